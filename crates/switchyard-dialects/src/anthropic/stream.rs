//! Anthropic Messages SSE stream → OpenAI `chat.completion.chunk` events. Owns the
//! event mapping (message_start … message_stop), tool-call numbering and the
//! end-of-stream check; SSE framing is [`crate::sse`]'s, chunk shapes
//! [`ChunkWriter`]'s.

use super::decode::{finish_reason, Tokens};
use crate::sse::{data_payloads, EventAligner};
use crate::translate::{ChunkWriter, DecodeError, Reply, StreamDecode};
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use std::collections::HashMap;

/// Why a stream that ended without `message_stop` failed.
const TRUNCATED: &str = "anthropic stream ended before message_stop";

/// Translates one Anthropic Messages stream into OpenAI chunk events, fed in chunks
/// split anywhere.
#[derive(Debug)]
pub struct StreamDecoder {
    writer: ChunkWriter,
    include_usage: bool,
    aligner: EventAligner,
    /// Anthropic block index → OpenAI tool-call index (tool calls only count: 0, 1, …).
    tools: HashMap<u64, usize>,
    tool_calls: usize,
    tokens: Tokens,
    stop_reason: Option<String>,
    /// The role chunk was written.
    started: bool,
    /// `message_stop` was seen and `[DONE]` written.
    done: bool,
    /// The error that ended the stream; every later call returns it again.
    failed: Option<DecodeError>,
}

impl StreamDecoder {
    /// A translator for the answer `reply` (its id, model and time go on every chunk; a
    /// usage chunk is written at the end when `reply.include_usage`).
    pub fn new(reply: Reply) -> Self {
        Self {
            writer: ChunkWriter::new(&reply),
            include_usage: reply.include_usage,
            aligner: EventAligner::default(),
            tools: HashMap::new(),
            tool_calls: 0,
            tokens: Tokens::default(),
            stop_reason: None,
            started: false,
            done: false,
            failed: None,
        }
    }

    fn push_aligned(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        let events = self
            .aligner
            .push(Bytes::copy_from_slice(chunk))
            .map_err(|e| DecodeError::new(format!("anthropic stream: {e}")))?;
        match events {
            Some(events) => self.events(&events, out),
            None => Ok(()),
        }
    }

    /// Handles complete SSE events.
    fn events(&mut self, events: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        for payload in data_payloads(events) {
            if self.done {
                break;
            }
            self.event(&payload, out)?;
        }
        Ok(())
    }

    /// Writes the role chunk once, before anything else.
    fn start(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            self.writer.role(out);
        }
    }

    fn event(&mut self, payload: &str, out: &mut BytesMut) -> Result<(), DecodeError> {
        let value: Value = serde_json::from_str(payload).map_err(|e| {
            DecodeError::new(format!(
                "anthropic stream sent an event that is not JSON: {e}"
            ))
        })?;
        match value.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(usage) = value.get("message").and_then(|m| m.get("usage")) {
                    self.tokens.update(usage);
                }
                self.start(out);
            }
            Some("content_block_start") => self.block_start(&value, out),
            Some("content_block_delta") => self.block_delta(&value, out),
            Some("message_delta") => {
                if let Some(reason) = value
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(usage) = value.get("usage") {
                    self.tokens.update(usage);
                }
            }
            Some("message_stop") => {
                self.start(out);
                self.writer
                    .finish(out, finish_reason(self.stop_reason.as_deref()));
                if self.include_usage {
                    self.writer.usage(out, &self.tokens.value());
                }
                ChunkWriter::done(out);
                self.done = true;
            }
            Some("error") => {
                let error = value.get("error");
                let field = |key: &str| {
                    error
                        .and_then(|e| e.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                };
                let (kind, message) = (field("type"), field("message"));
                return Err(DecodeError::new(format!(
                    "anthropic stream error ({kind}): {message}"
                )));
            }
            // ping, content_block_stop, and events added later.
            _ => {}
        }
        Ok(())
    }

    fn block_start(&mut self, value: &Value, out: &mut BytesMut) {
        let Some(block) = value.get("content_block") else {
            return;
        };
        let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default();
        match block.get("type").and_then(Value::as_str) {
            Some("text") if !text("text").is_empty() => {
                self.start(out);
                self.writer.content(out, text("text"));
            }
            Some("thinking") if !text("thinking").is_empty() => {
                self.start(out);
                self.writer.reasoning(out, text("thinking"));
            }
            Some("tool_use") => {
                let call = self.tool_calls;
                self.tool_calls += 1;
                if let Some(index) = value.get("index").and_then(Value::as_u64) {
                    self.tools.insert(index, call);
                }
                self.start(out);
                self.writer
                    .tool_call_start(out, call, text("id"), text("name"));
                // Streams send `input: {}` and the arguments as deltas; an input given
                // whole up front is sent as the first arguments.
                if let Some(input) = block.get("input").and_then(Value::as_object) {
                    if !input.is_empty() {
                        let arguments = Value::Object(input.clone()).to_string();
                        self.writer.tool_call_arguments(out, call, &arguments);
                    }
                }
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, value: &Value, out: &mut BytesMut) {
        let Some(delta) = value.get("delta") else {
            return;
        };
        let text = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or_default();
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") if !text("text").is_empty() => {
                self.start(out);
                self.writer.content(out, text("text"));
            }
            Some("thinking_delta") if !text("thinking").is_empty() => {
                self.start(out);
                self.writer.reasoning(out, text("thinking"));
            }
            Some("input_json_delta") if !text("partial_json").is_empty() => {
                let call = value
                    .get("index")
                    .and_then(Value::as_u64)
                    .and_then(|i| self.tools.get(&i).copied());
                if let Some(call) = call {
                    self.writer
                        .tool_call_arguments(out, call, text("partial_json"));
                }
            }
            // signature_delta, citations_delta, empty pieces.
            _ => {}
        }
    }

    /// A last event the upstream did not end with a blank line: handled only if it
    /// completes the stream, so nothing half-read is written.
    fn finish_rest(&mut self, out: &mut BytesMut) -> Result<(), DecodeError> {
        let rest = self.aligner.take_rest();
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let mut whole = rest.to_vec();
        whole.extend_from_slice(b"\n\n");
        let mut scratch = BytesMut::new();
        for payload in data_payloads(&whole) {
            // A payload cut short is not JSON: the stream was truncated. (A whole last
            // `error` event keeps its own message.)
            if serde_json::from_str::<serde::de::IgnoredAny>(&payload).is_err() {
                return Err(DecodeError::new(TRUNCATED));
            }
            if !self.done {
                self.event(&payload, &mut scratch)?;
            }
        }
        if self.done {
            out.extend_from_slice(&scratch);
        }
        Ok(())
    }

    /// Runs `step` unless the stream already failed; remembers a failure.
    fn guarded(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = step(self);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }
}

impl StreamDecode for StreamDecoder {
    fn push(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        self.guarded(|s| {
            if s.done {
                return Ok(());
            }
            s.push_aligned(chunk, out)
        })
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), DecodeError> {
        self.guarded(|s| {
            if !s.done {
                s.finish_rest(out)?;
            }
            if s.done {
                Ok(())
            } else {
                Err(DecodeError::new(TRUNCATED))
            }
        })
    }
}
