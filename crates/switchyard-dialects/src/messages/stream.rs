//! An OpenAI `chat.completion.chunk` SSE stream re-told as Anthropic's Messages stream:
//! `message_start`, then per content block `content_block_start` / `content_block_delta`
//! / `content_block_stop` (blocks indexed 0, 1, … in order, never interleaved), then
//! `message_delta` (held until the end so the usage chunk that follows the finish
//! reason can be reported) and `message_stop`.

use super::answer::reasoning_of;
use super::{error_event, stop_reason_for, usage_of, write_event};
use crate::sse::{single_data, split_events, EventAligner};
use crate::translate::DecodeError;
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

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
        let events = match self.aligner.push(Bytes::copy_from_slice(chunk)) {
            Ok(Some(events)) => events,
            Ok(None) => return Ok(()),
            Err(e) => return Err(self.fail(out, &format!("upstream stream: {e}"))),
        };
        for event in split_events(&events) {
            let Some(data) = single_data(&event) else {
                continue;
            };
            self.on_data(&data, out)?;
            if self.state == State::Done {
                break;
            }
        }
        Ok(())
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
        let Ok(chunk @ Value::Object(_)) = serde_json::from_str::<Value>(data) else {
            return Err(self.fail(
                out,
                "upstream stream sent an event that is not a JSON object",
            ));
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .unwrap_or("upstream stream error")
                .to_owned();
            return Err(self.fail(out, &message));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        self.start(out);
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            })
        else {
            return Ok(());
        };
        if let Some(delta) = choice.get("delta") {
            self.on_delta(delta, out);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
            self.close_block(out);
        }
        Ok(())
    }

    fn on_delta(&mut self, delta: &Value, out: &mut BytesMut) {
        if let Some(reasoning) = reasoning_of(delta) {
            let index = self.ensure_block(out, Open::Thinking);
            delta_event(
                out,
                index,
                json!({ "type": "thinking_delta", "thinking": reasoning }),
            );
        }
        for key in ["content", "refusal"] {
            if let Some(text) = delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                self.refused |= key == "refusal";
                let index = self.ensure_block(out, Open::Text);
                delta_event(out, index, json!({ "type": "text_delta", "text": text }));
            }
        }
        if let Some(Value::Array(calls)) = delta.get("tool_calls") {
            for (position, call) in calls.iter().enumerate() {
                self.on_tool_call(position, call, out);
            }
        }
    }

    fn on_tool_call(&mut self, position: usize, call: &Value, out: &mut BytesMut) {
        let tool_index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let function = call.get("function");
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
                let id = call.get("id").and_then(Value::as_str).map_or_else(
                    || format!("toolu_{}_{tool_index}", self.message_id),
                    str::to_owned,
                );
                let name = function
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
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
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            delta_event(
                out,
                block,
                json!({ "type": "input_json_delta", "partial_json": arguments }),
            );
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
        let block = match open {
            Open::Thinking(_) => json!({ "type": "thinking", "thinking": "", "signature": "" }),
            Open::Text(_) | Open::Tool(_) => json!({ "type": "text", "text": "" }),
        };
        write_event(
            out,
            "content_block_start",
            json!({ "type": "content_block_start", "index": index, "content_block": block }),
        );
        self.open = Some(open);
        index
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some(Open::Text(index) | Open::Thinking(index) | Open::Tool(index)) =
            self.open.take()
        {
            write_event(
                out,
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": index }),
            );
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

fn delta_event(out: &mut BytesMut, index: usize, delta: Value) {
    write_event(
        out,
        "content_block_delta",
        json!({ "type": "content_block_delta", "index": index, "delta": delta }),
    );
}
