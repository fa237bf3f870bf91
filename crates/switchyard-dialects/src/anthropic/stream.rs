//! Anthropic Messages SSE stream → OpenAI `chat.completion.chunk` events. Owns the
//! event mapping (message_start … message_stop), tool-call numbering and the
//! end-of-stream check; SSE framing is [`crate::sse`]'s, chunk shapes
//! [`ChunkWriter`]'s.

use super::decode::{finish_reason, Tokens};
use crate::raw::{self, Raw};
use crate::sse::{data_payloads, EventAligner};
use crate::translate::{ChunkWriter, DecodeError, Reply, StreamDecode};
use bytes::BytesMut;
use serde::Deserialize;
use std::collections::HashMap;

/// Why a stream that ended without `message_stop` failed.
const TRUNCATED: &str = "anthropic stream ended before message_stop";

/// One stream event, its members unread.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    message: Raw<'a>,
    #[serde(borrow)]
    content_block: Raw<'a>,
    #[serde(borrow)]
    delta: Raw<'a>,
    #[serde(borrow)]
    usage: Raw<'a>,
    #[serde(borrow)]
    index: Raw<'a>,
    #[serde(borrow)]
    error: Raw<'a>,
}

/// `message_start`'s `message`.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    usage: Raw<'a>,
}

/// A `content_block`, or a `delta` (of a block, or of the message).
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    text: Raw<'a>,
    #[serde(borrow)]
    thinking: Raw<'a>,
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    input: Raw<'a>,
    #[serde(borrow)]
    partial_json: Raw<'a>,
    #[serde(borrow)]
    stop_reason: Raw<'a>,
}

/// An `error` event's `error`.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    message: Raw<'a>,
}

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
    /// Per tool call: whether any arguments were written (a call without arguments
    /// gets `{}` when its block stops: `""` is not JSON).
    argued: Vec<bool>,
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
            argued: Vec::new(),
            tokens: Tokens::default(),
            stop_reason: None,
            started: false,
            done: false,
            failed: None,
        }
    }

    fn push_aligned(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        let mut aligner = std::mem::take(&mut self.aligner);
        let result = raw::for_each_data(&mut aligner, chunk, |payload| {
            if self.done {
                return Ok(());
            }
            self.event(payload, out)
        });
        self.aligner = aligner;
        result.map_err(|e| DecodeError::new(format!("anthropic stream: {e}")))?
    }

    /// Writes the role chunk once, before anything else.
    fn start(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            self.writer.role(out);
        }
    }

    fn event(&mut self, payload: &str, out: &mut BytesMut) -> Result<(), DecodeError> {
        let event = raw::parse_object::<Event<'_>>(payload).map_err(|e| {
            DecodeError::new(format!(
                "anthropic stream sent an event that is not JSON: {e}"
            ))
        })?;
        let Some(event) = event else {
            return Ok(());
        };
        match raw::as_str(event.kind).as_deref() {
            Some("message_start") => {
                let message = raw::object::<Message<'_>>(event.message);
                if let Some(usage) = message.and_then(|m| m.usage) {
                    self.tokens.update_raw(usage);
                }
                self.start(out);
            }
            Some("content_block_start") => self.block_start(&event, out),
            Some("content_block_delta") => self.block_delta(&event, out),
            Some("message_delta") => {
                let delta = raw::object::<Block<'_>>(event.delta);
                if let Some(reason) = delta.and_then(|d| raw::as_str(d.stop_reason)) {
                    self.stop_reason = Some(reason.into_owned());
                }
                if let Some(usage) = event.usage {
                    self.tokens.update_raw(usage);
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
                let error = raw::object::<ErrorBody<'_>>(event.error);
                let (kind, message) = match error {
                    Some(e) => (raw::text(e.kind), raw::text(e.message)),
                    None => Default::default(),
                };
                return Err(DecodeError::new(format!(
                    "anthropic stream error ({kind}): {message}"
                )));
            }
            Some("content_block_stop") => {
                let call = raw::as_u64(event.index).and_then(|i| self.tools.get(&i).copied());
                if let Some(call) = call {
                    if self.argued.get(call) == Some(&false) {
                        self.writer.tool_call_arguments(out, call, "{}");
                        self.argued[call] = true;
                    }
                }
            }
            // ping, and events added later.
            _ => {}
        }
        Ok(())
    }

    fn block_start(&mut self, event: &Event<'_>, out: &mut BytesMut) {
        let Some(block) = raw::object::<Block<'_>>(event.content_block) else {
            return;
        };
        let text = raw::text;
        match raw::as_str(block.kind).as_deref() {
            Some("text") => {
                let piece = text(block.text);
                if !piece.is_empty() {
                    self.start(out);
                    self.writer.content(out, &piece);
                }
            }
            Some("thinking") => {
                let piece = text(block.thinking);
                if !piece.is_empty() {
                    self.start(out);
                    self.writer.reasoning(out, &piece);
                }
            }
            Some("tool_use") => {
                let call = self.tool_calls;
                self.tool_calls += 1;
                self.argued.push(false);
                if let Some(index) = raw::as_u64(event.index) {
                    self.tools.insert(index, call);
                }
                self.start(out);
                self.writer
                    .tool_call_start(out, call, &text(block.id), &text(block.name));
                // Streams send `input: {}` and the arguments as deltas; an input given
                // whole up front is sent as the first arguments.
                if let Some(input) = block.input.filter(|i| raw::is_object(Some(i))) {
                    let arguments = raw::canonical(input);
                    if arguments != "{}" {
                        self.writer.tool_call_arguments(out, call, &arguments);
                        self.argued[call] = true;
                    }
                }
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, event: &Event<'_>, out: &mut BytesMut) {
        let Some(delta) = raw::object::<Block<'_>>(event.delta) else {
            return;
        };
        let text = raw::text;
        match raw::as_str(delta.kind).as_deref() {
            Some("text_delta") => {
                let piece = text(delta.text);
                if !piece.is_empty() {
                    self.start(out);
                    self.writer.content(out, &piece);
                }
            }
            Some("thinking_delta") => {
                let piece = text(delta.thinking);
                if !piece.is_empty() {
                    self.start(out);
                    self.writer.reasoning(out, &piece);
                }
            }
            Some("input_json_delta") => {
                let piece = text(delta.partial_json);
                let call = raw::as_u64(event.index).and_then(|i| self.tools.get(&i).copied());
                if let (false, Some(call)) = (piece.is_empty(), call) {
                    self.writer.tool_call_arguments(out, call, &piece);
                    if let Some(argued) = self.argued.get_mut(call) {
                        *argued = true;
                    }
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
