//! Gemini `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk` events. Each
//! upstream SSE event is a whole `GenerateContentResponse`; this module owns turning
//! each into deltas (text, thought summaries, whole function calls) and ending the
//! stream. Gemini has no end marker: the stream ended properly when a `finishReason`
//! was seen before the body ended.

use super::response::{
    call_id, call_name_args, finish_reason, is_thought, signature_of, upstream_error, usage_of,
};
use crate::sse::{single_data, split_events, EventAligner};
use crate::translate::{ChunkWriter, DecodeError, Reply, StreamDecode};
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

/// Cap on one upstream event: each is a whole `GenerateContentResponse`, which carries
/// a generated image inline (base64) on image-output models — more than the default
/// SSE limit allows.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Translates a Gemini SSE stream into OpenAI chunk events for one answer.
#[derive(Debug)]
pub struct StreamDecoder {
    reply: Reply,
    writer: ChunkWriter,
    aligner: EventAligner,
    /// The role chunk was written.
    started: bool,
    /// Tool calls written so far (the next call's `index`).
    calls: usize,
    /// The last `finishReason` seen (Gemini's name).
    finish: Option<String>,
    /// The last `usageMetadata` seen, as OpenAI usage.
    usage: Option<Value>,
    /// `finish` wrote the end of the stream.
    ended: bool,
}

impl StreamDecoder {
    /// A translator for the answer `reply` describes.
    pub fn new(reply: Reply) -> Self {
        Self {
            writer: ChunkWriter::new(&reply),
            reply,
            aligner: EventAligner::with_limit(MAX_EVENT_BYTES),
            started: false,
            calls: 0,
            finish: None,
            usage: None,
            ended: false,
        }
    }

    fn event(&mut self, data: &str, out: &mut BytesMut) -> Result<(), DecodeError> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let value: Value = serde_json::from_str(data)
            .map_err(|e| DecodeError::new(format!("gemini stream event is not JSON: {e}")))?;
        // An error may come wrapped in an array, as in Gemini's error answers.
        let value = match value {
            Value::Array(mut items) if items.len() == 1 => items.pop().unwrap_or_default(),
            other => other,
        };
        if let Some(err) = upstream_error(&value) {
            return Err(err);
        }
        if !value.is_object() {
            return Err(DecodeError::new("gemini stream event is not a JSON object"));
        }
        if !self.started {
            self.writer.role(out);
            self.started = true;
        }
        if let Some(usage) = value.get("usageMetadata").and_then(usage_of) {
            self.usage = Some(usage);
        }
        let first = value
            .get("candidates")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        let Some(candidate) = first else {
            if value.pointer("/promptFeedback/blockReason").is_some() {
                // A blocked prompt: no candidates will come.
                self.finish = Some("SAFETY".to_owned());
            }
            return Ok(());
        };
        let parts = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for part in parts {
            if let Some(call) = part.get("functionCall") {
                self.tool_call(part, call, out);
            } else if let Some(text) = part.get("text").and_then(Value::as_str) {
                if text.is_empty() {
                    continue;
                }
                if is_thought(part) {
                    self.writer.reasoning(out, text);
                } else {
                    self.writer.content(out, text);
                }
            }
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            self.finish = Some(reason.to_owned());
        }
        Ok(())
    }

    /// A whole function call: its start, then all its arguments in one chunk.
    fn tool_call(&mut self, part: &Value, call: &Value, out: &mut BytesMut) {
        let index = self.calls;
        self.calls += 1;
        let id = call_id(&self.reply, index);
        let (name, args) = call_name_args(call);
        match signature_of(part) {
            None => self.writer.tool_call_start(out, index, &id, &name),
            Some(extra) => self.writer.delta(
                out,
                json!({ "tool_calls": [{
                    "index": index, "id": id, "type": "function",
                    "function": { "name": name, "arguments": "" },
                    "extra_content": extra,
                }]}),
                None,
            ),
        }
        self.writer.tool_call_arguments(out, index, &args);
    }
}

impl StreamDecode for StreamDecoder {
    fn push(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        let events = self
            .aligner
            .push(Bytes::copy_from_slice(chunk))
            .map_err(|e| DecodeError::new(format!("gemini stream: {e}")))?;
        let Some(events) = events else {
            return Ok(());
        };
        for event in split_events(&events) {
            if let Some(data) = single_data(&event) {
                self.event(&data, out)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), DecodeError> {
        if self.ended {
            return Ok(());
        }
        let rest = self.aligner.take_rest();
        if rest.iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(DecodeError::new(
                "gemini stream ended in the middle of an event (truncated)",
            ));
        }
        let Some(reason) = self.finish.as_deref() else {
            return Err(DecodeError::new(
                "gemini stream ended before a finishReason (truncated)",
            ));
        };
        if !self.started {
            self.writer.role(out);
        }
        self.writer
            .finish(out, finish_reason(reason, self.calls > 0));
        if self.reply.include_usage {
            if let Some(usage) = &self.usage {
                self.writer.usage(out, usage);
            }
        }
        ChunkWriter::done(out);
        self.ended = true;
        Ok(())
    }
}
