//! An OpenAI `chat.completion.chunk` SSE stream re-told as Anthropic's Messages stream:
//! `message_start`, then per content block `content_block_start` / `content_block_delta`
//! / `content_block_stop` (blocks indexed 0, 1, … in order, never interleaved), then
//! `message_delta` (held until the end so the usage chunk that follows the finish
//! reason can be reported) and `message_stop`.

use super::{error_event, stop_reason_for, usage_of, write_event};
use crate::raw::{self, Arr, Obj, Raw};
use crate::sse::EventAligner;
use crate::translate::DecodeError;
use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::borrow::Cow;

/// The content block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Thinking(usize),
    Tool(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// The closing events were written; later bytes are ignored.
    Done,
    /// An `error` event was written; the stream is over.
    Failed,
}

/// Translates one OpenAI chat stream into Anthropic stream events.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    message_id: String,
    aligner: EventAligner,
    state: State,
    started: bool,
    open: Option<Open>,
    next_index: usize,
    /// OpenAI tool call index → content block index.
    tools: Vec<(u64, usize)>,
    finish_reason: Option<String>,
    refused: bool,
    usage: Option<Value>,
}

impl StreamEncoder {
    /// An encoder for the answer `message_id` (`msg_…`, chosen by the caller) of `model`
    /// (the name the client asked for).
    pub fn new(model: &str, message_id: &str) -> Self {
        Self {
            model: model.to_owned(),
            message_id: message_id.to_owned(),
            aligner: EventAligner::default(),
            state: State::Running,
            started: false,
            open: None,
            next_index: 0,
            tools: Vec::new(),
            finish_reason: None,
            refused: false,
            usage: None,
        }
    }

    /// OpenAI SSE bytes in any chunking (the gateway's stream) → Anthropic SSE events
    /// appended to `out`. `Err` (after an Anthropic `error` event is written) for an
    /// error event in the stream, or bytes that are not an OpenAI chat stream.
    pub fn push(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        match self.state {
            State::Running => {}
            State::Done => return Ok(()),
            State::Failed => return Err(DecodeError::new("the stream already failed")),
        }
        let mut aligner = std::mem::take(&mut self.aligner);
        let result = raw::for_each_data(&mut aligner, chunk, |data| {
            if self.state == State::Done {
                return Ok(());
            }
            self.on_data(data, out)
        });
        self.aligner = aligner;
        match result {
            Ok(result) => result,
            Err(e) => Err(self.fail(out, &format!("upstream stream: {e}"))),
        }
    }

    /// The OpenAI stream ended: writes the closing events. `Err` when it never sent
    /// `[DONE]` nor a finish reason (truncated): an Anthropic `error` event is written
    /// instead, and nothing half-read.
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<(), DecodeError> {
        match self.state {
            State::Done => Ok(()),
            State::Failed => Err(DecodeError::new("the stream already failed")),
            State::Running if self.finish_reason.is_some() => {
                self.close(out);
                Ok(())
            }
            State::Running => Err(self.fail(out, "upstream stream ended before it was complete")),
        }
    }

    fn fail(&mut self, out: &mut BytesMut, message: &str) -> DecodeError {
        self.state = State::Failed;
        out.extend_from_slice(&error_event(message, "api_error"));
        DecodeError::new(message)
    }

    fn on_data(&mut self, data: &str, out: &mut BytesMut) -> Result<(), DecodeError> {
        if data.trim() == "[DONE]" {
            self.close(out);
            return Ok(());
        }
        let Ok(Some(chunk)) = raw::parse_object::<Chunk<'_>>(data) else {
            return Err(self.fail(
                out,
                "upstream stream sent an event that is not a JSON object",
            ));
        };
        if let Some(error) = chunk.error {
            let message = raw::object::<ErrorBody<'_>>(Some(error))
                .and_then(|e| raw::as_str(e.message))
                .or_else(|| raw::as_str(Some(error)));
            let message = message.as_deref().unwrap_or("upstream stream error");
            return Err(self.fail(out, message));
        }
        if let Some(usage) = chunk.usage.filter(|u| raw::is_object(Some(u))) {
            self.usage = serde_json::from_str(usage.get()).ok();
        }
        self.start(out);
        let choices = chunk.choices.and_then(|c| c.0).unwrap_or_default();
        // The first choice with index 0 (a choice that is not an object counts as one).
        let found = choices.iter().find(|c| {
            c.0.as_ref()
                .is_none_or(|c| raw::as_u64(c.index).unwrap_or(0) == 0)
        });
        let Some(Obj(Some(choice))) = found else {
            return Ok(());
        };
        if let Some(Obj(Some(delta))) = &choice.delta {
            self.on_delta(delta, out);
        }
        if let Some(reason) = raw::as_str(choice.finish_reason) {
            self.finish_reason = Some(reason.into_owned());
            self.close_block(out);
        }
        Ok(())
    }

    fn on_delta(&mut self, delta: &Delta<'_>, out: &mut BytesMut) {
        let reasoning = raw::as_str(delta.reasoning_content)
            .or_else(|| raw::as_str(delta.reasoning))
            .filter(|r| !r.is_empty());
        if let Some(reasoning) = reasoning {
            let index = self.ensure_block(out, Open::Thinking);
            delta_event(out, index, "thinking_delta", "thinking", &reasoning);
        }
        for (key, field) in [("content", delta.content), ("refusal", delta.refusal)] {
            if let Some(text) = raw::as_str(field).filter(|t| !t.is_empty()) {
                self.refused |= key == "refusal";
                let index = self.ensure_block(out, Open::Text);
                delta_event(out, index, "text_delta", "text", &text);
            }
        }
        if let Some(calls) = raw::array(delta.tool_calls) {
            for (position, call) in calls.into_iter().enumerate() {
                self.on_tool_call(position, call, out);
            }
        }
    }

    fn on_tool_call(&mut self, position: usize, call: &RawValue, out: &mut BytesMut) {
        let call = raw::object::<ToolCall<'_>>(Some(call));
        let tool_index = call
            .as_ref()
            .and_then(|c| raw::as_u64(c.index))
            .unwrap_or(position as u64);
        let function = call
            .as_ref()
            .and_then(|c| raw::object::<Function<'_>>(c.function));
        let known = self
            .tools
            .iter()
            .find(|(t, _)| *t == tool_index)
            .map(|(_, block)| *block);
        let block = match known {
            Some(block) => block,
            None => {
                self.close_block(out);
                let block = self.next_index;
                self.next_index += 1;
                let id = call.as_ref().and_then(|c| raw::as_str(c.id)).map_or_else(
                    || format!("toolu_{}_{tool_index}", self.message_id),
                    Cow::into_owned,
                );
                let name = function
                    .as_ref()
                    .map(|f| raw::text(f.name))
                    .unwrap_or_default();
                write_event(
                    out,
                    "content_block_start",
                    json!({
                        "type": "content_block_start",
                        "index": block,
                        "content_block": { "type": "tool_use", "id": id, "name": name, "input": {} },
                    }),
                );
                self.open = Some(Open::Tool(block));
                self.tools.push((tool_index, block));
                block
            }
        };
        // Arguments of an earlier call that arrive after another block started (OpenAI
        // may interleave parallel calls) still go to that call's block.
        if let Some(arguments) = function
            .and_then(|f| raw::as_str(f.arguments))
            .filter(|a| !a.is_empty())
        {
            delta_event(out, block, "input_json_delta", "partial_json", &arguments);
        }
    }

    /// The index of the open block of this kind, starting one (and closing any other)
    /// when needed.
    fn ensure_block(&mut self, out: &mut BytesMut, kind: fn(usize) -> Open) -> usize {
        if let Some(open) = self.open {
            let index = match open {
                Open::Text(i) | Open::Thinking(i) | Open::Tool(i) => i,
            };
            if open == kind(index) {
                return index;
            }
            self.close_block(out);
        }
        let index = self.next_index;
        self.next_index += 1;
        let open = kind(index);
        out.put_slice(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
        );
        out.put_slice(index.to_string().as_bytes());
        out.put_slice(match open {
            Open::Thinking(_) => {
                &b",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"[..]
            }
            Open::Text(_) | Open::Tool(_) => {
                &b",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"[..]
            }
        });
        self.open = Some(open);
        index
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some(Open::Text(index) | Open::Thinking(index) | Open::Tool(index)) =
            self.open.take()
        {
            out.put_slice(
                b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":",
            );
            out.put_slice(index.to_string().as_bytes());
            out.put_slice(b"}\n\n");
        }
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        // Input tokens are known this early only from upstreams that send usage in
        // every chunk; output tokens come with `message_delta`.
        let mut usage = usage_of(self.usage.as_ref());
        usage.insert("output_tokens".into(), 0.into());
        write_event(
            out,
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": usage,
                },
            }),
        );
    }

    /// Closes the open block and writes `message_delta` and `message_stop`.
    fn close(&mut self, out: &mut BytesMut) {
        self.start(out);
        self.close_block(out);
        let stop_reason = if self.refused {
            "refusal"
        } else {
            stop_reason_for(self.finish_reason.as_deref().unwrap_or("stop"))
        };
        write_event(
            out,
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason, "stop_sequence": null },
                "usage": usage_of(self.usage.as_ref()),
            }),
        );
        write_event(out, "message_stop", json!({ "type": "message_stop" }));
        self.state = State::Done;
    }
}

/// `content_block_delta` for block `index`: `{"type": kind, field: text}`.
fn delta_event(out: &mut BytesMut, index: usize, kind: &str, field: &str, text: &str) {
    out.put_slice(
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
    );
    out.put_slice(index.to_string().as_bytes());
    out.put_slice(b",\"delta\":{\"type\":\"");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\",\"");
    out.put_slice(field.as_bytes());
    out.put_slice(b"\":");
    // Serialising a `str` into a buffer cannot fail.
    let _infallible = serde_json::to_writer((&mut *out).writer(), text);
    out.put_slice(b"}}\n\n");
}

/// One OpenAI chunk, members unread.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default, deserialize_with = "raw::keep_null")]
    error: Raw<'a>,
    #[serde(borrow)]
    usage: Raw<'a>,
    #[serde(borrow)]
    choices: Option<Arr<Obj<Choice<'a>>>>,
}

/// A chunk's `error`.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    message: Raw<'a>,
}

/// A choice.
#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    index: Raw<'a>,
    #[serde(borrow)]
    delta: Option<Obj<Delta<'a>>>,
    #[serde(borrow)]
    finish_reason: Raw<'a>,
}

/// A choice's `delta`.
#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    reasoning_content: Raw<'a>,
    #[serde(borrow)]
    reasoning: Raw<'a>,
    #[serde(borrow)]
    content: Raw<'a>,
    #[serde(borrow)]
    refusal: Raw<'a>,
    #[serde(borrow)]
    tool_calls: Raw<'a>,
}

/// One of `delta.tool_calls`.
#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    index: Raw<'a>,
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    function: Raw<'a>,
}

/// A tool call's `function`.
#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    arguments: Raw<'a>,
}

/// The encoder as the daemon drives every stream translation.
impl crate::translate::StreamDecode for StreamEncoder {
    fn push(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        StreamEncoder::push(self, chunk, out)
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), DecodeError> {
        StreamEncoder::finish(self, out)
    }
}
