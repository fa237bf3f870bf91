//! Gemini `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk` events. Each
//! upstream SSE event is a whole `GenerateContentResponse`; this module owns turning
//! each into deltas (text, thought summaries, whole function calls) and ending the
//! stream. Gemini has no end marker: the stream ended properly when a `finishReason`
//! was seen before the body ended.

use super::response::{call_id, finish_reason};
use crate::raw::{self, Arr, Obj, Raw};
use crate::sse::EventAligner;
use crate::translate::{usage_value, ChunkWriter, DecodeError, Reply, StreamDecode};
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

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
        let not_json = |e: serde_json::Error| {
            DecodeError::new(format!("gemini stream event is not JSON: {e}"))
        };
        // An error may come wrapped in an array, as in Gemini's error answers.
        let mut data = data;
        if data.starts_with('[') {
            let items: Vec<&RawValue> = serde_json::from_str(data).map_err(not_json)?;
            if let [item] = items.as_slice() {
                data = item.get();
            }
        }
        let Some(event) = raw::parse_object::<Event<'_>>(data).map_err(not_json)? else {
            return Err(DecodeError::new("gemini stream event is not a JSON object"));
        };
        if let Some(err) = event.error.and_then(raw_error) {
            return Err(err);
        }
        if !self.started {
            self.writer.role(out);
            self.started = true;
        }
        if let Some(usage) = raw::object::<Usage<'_>>(event.usage_metadata) {
            self.usage = Some(usage.openai());
        }
        let candidates = event.candidates.and_then(|c| c.0).unwrap_or_default();
        // The first candidate with index 0 (one that is not an object counts as one).
        let first = candidates.iter().find(|c| {
            c.0.as_ref()
                .is_none_or(|c| raw::as_u64(c.index).unwrap_or(0) == 0)
        });
        let Some(candidate) = first else {
            let feedback = event
                .prompt_feedback
                .and_then(|f| serde_json::from_str::<Value>(f.get()).ok());
            if feedback.is_some_and(|f| f.get("blockReason").is_some()) {
                // A blocked prompt: no candidates will come.
                self.finish = Some("SAFETY".to_owned());
            }
            return Ok(());
        };
        let Some(candidate) = &candidate.0 else {
            return Ok(());
        };
        let parts = candidate
            .content
            .as_ref()
            .and_then(|c| c.0.as_ref())
            .and_then(|c| c.parts.as_ref())
            .and_then(|p| p.0.as_deref())
            .unwrap_or_default();
        for part in parts {
            let Some(part) = &part.0 else {
                continue;
            };
            if let Some(call) = part.function_call {
                self.tool_call(part, call, out);
            } else if let Some(text) = raw::as_str(part.text) {
                if text.is_empty() {
                    continue;
                }
                if raw::as_bool(part.thought) == Some(true) {
                    self.writer.reasoning(out, &text);
                } else {
                    self.writer.content(out, &text);
                }
            }
        }
        if let Some(reason) = raw::as_str(candidate.finish_reason) {
            self.finish = Some(reason.into_owned());
        }
        Ok(())
    }

    /// A whole function call: its start, then all its arguments in one chunk.
    fn tool_call(&mut self, part: &Part<'_>, call: &RawValue, out: &mut BytesMut) {
        let index = self.calls;
        self.calls += 1;
        let id = call_id(&self.reply, index);
        let call = raw::object::<Call<'_>>(Some(call));
        let name = call.as_ref().map(|c| raw::text(c.name)).unwrap_or_default();
        let args = match call.and_then(|c| c.args) {
            None => "{}".to_owned(),
            Some(args) => raw::canonical(args),
        };
        match raw::as_str(part.thought_signature) {
            None => self.writer.tool_call_start(out, index, &id, &name),
            Some(sig) => {
                let mut extra = String::from("{\"google\":{\"thought_signature\":");
                extra.push_str(&raw::json_string(&sig));
                extra.push_str("}}");
                self.writer
                    .tool_call_start_extra(out, index, &id, &name, &extra);
            }
        }
        self.writer.tool_call_arguments(out, index, &args);
    }
}

/// An `{"error": …}` member as a decode error (as [`super::response`] words it).
fn raw_error(error: &RawValue) -> Option<DecodeError> {
    let body = raw::object::<ErrorBody<'_>>(Some(error));
    let message = body
        .as_ref()
        .and_then(|b| raw::as_str(b.message))
        .or_else(|| raw::as_str(Some(error)));
    let message = message.as_deref().unwrap_or("unknown error");
    let status = body.as_ref().and_then(|b| raw::as_str(b.status));
    Some(DecodeError::new(match status {
        Some(status) => format!("gemini error ({status}): {message}"),
        None => format!("gemini error: {message}"),
    }))
}

/// One `GenerateContentResponse` event, members unread.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(borrow, default, deserialize_with = "raw::keep_null")]
    error: Raw<'a>,
    #[serde(borrow)]
    usage_metadata: Raw<'a>,
    #[serde(borrow)]
    candidates: Option<Arr<Obj<Candidate<'a>>>>,
    #[serde(borrow)]
    prompt_feedback: Raw<'a>,
}

/// An event's `error`.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    message: Raw<'a>,
    #[serde(borrow)]
    status: Raw<'a>,
}

/// A candidate.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(borrow)]
    index: Raw<'a>,
    #[serde(borrow)]
    content: Option<Obj<Content<'a>>>,
    #[serde(borrow)]
    finish_reason: Raw<'a>,
}

/// A candidate's `content`.
#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow)]
    parts: Option<Arr<Obj<Part<'a>>>>,
}

/// One content part.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(borrow, default, deserialize_with = "raw::keep_null")]
    function_call: Raw<'a>,
    #[serde(borrow)]
    text: Raw<'a>,
    #[serde(borrow)]
    thought: Raw<'a>,
    #[serde(borrow)]
    thought_signature: Raw<'a>,
}

/// A part's `functionCall`.
#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    args: Raw<'a>,
}

/// `usageMetadata`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Usage<'a> {
    #[serde(borrow)]
    prompt_token_count: Raw<'a>,
    #[serde(borrow)]
    tool_use_prompt_token_count: Raw<'a>,
    #[serde(borrow)]
    thoughts_token_count: Raw<'a>,
    #[serde(borrow)]
    candidates_token_count: Raw<'a>,
    #[serde(borrow)]
    cached_content_token_count: Raw<'a>,
}

impl Usage<'_> {
    /// As OpenAI usage, the way [`super::response`] counts it.
    fn openai(&self) -> Value {
        let count = |raw| raw::as_u64(raw);
        let prompt = count(self.prompt_token_count).unwrap_or(0)
            + count(self.tool_use_prompt_token_count).unwrap_or(0);
        let thoughts = count(self.thoughts_token_count);
        let completion = count(self.candidates_token_count).unwrap_or(0) + thoughts.unwrap_or(0);
        usage_value(
            prompt,
            completion,
            count(self.cached_content_token_count),
            thoughts,
        )
    }
}

impl StreamDecode for StreamDecoder {
    fn push(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        let mut aligner = std::mem::take(&mut self.aligner);
        let result = raw::for_each_data(&mut aligner, chunk, |data| self.event(data, out));
        self.aligner = aligner;
        result.map_err(|e| DecodeError::new(format!("gemini stream: {e}")))?
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
