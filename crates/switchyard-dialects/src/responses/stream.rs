//! An OpenAI `chat.completion.chunk` SSE stream re-told as the Responses API's typed
//! stream events: `response.created` and `response.in_progress` first; per output item
//! (reasoning, message or refusal, function call; numbered by `output_index` in order of
//! appearance) its `added` event, deltas and `done` events; then `response.completed`
//! (or `response.incomplete`), held until the end so that a usage chunk following the
//! finish reason is reported. An upstream error or a truncated stream ends with
//! `response.failed`. Every event carries `sequence_number` 0, 1, ….

use super::answer::reasoning_of;
use super::items::{Event, Item, Kind};
use super::{error_code_for, outcome, response_object, usage_of, write_event, Ids, ResponseState};
use crate::sse::{single_data, split_events, EventAligner};
use crate::translate::DecodeError;
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// The closing events were written; later bytes are ignored.
    Done,
    /// `response.failed` was written; the stream is over.
    Failed,
}

/// Translates one OpenAI chat stream into Responses stream events.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    response_id: String,
    ids: Ids,
    aligner: EventAligner,
    state: State,
    started: bool,
    seq: u64,
    created_at: u64,
    items: Vec<Item>,
    /// The item being written (at most one is open at a time).
    open: Option<usize>,
    messages: usize,
    reasonings: usize,
    calls: usize,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

impl StreamEncoder {
    /// An encoder for the response `response_id` (`resp_…`, chosen by the caller) of
    /// `model` (the name the client asked for).
    pub fn new(model: &str, response_id: &str) -> Self {
        Self {
            model: model.to_owned(),
            response_id: response_id.to_owned(),
            ids: Ids::new(response_id),
            aligner: EventAligner::default(),
            state: State::Running,
            started: false,
            seq: 0,
            created_at: 0,
            items: Vec::new(),
            open: None,
            messages: 0,
            reasonings: 0,
            calls: 0,
            finish_reason: None,
            usage: None,
        }
    }

    /// OpenAI chat SSE bytes in any chunking → Responses events appended to `out`.
    /// `Err` (after a `response.failed` event is written) for an error event in the
    /// stream, or bytes that are not an OpenAI chat stream.
    pub fn push(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        match self.state {
            State::Running => {}
            State::Done => return Ok(()),
            State::Failed => return Err(DecodeError::new("the stream already failed")),
        }
        let events = match self.aligner.push(Bytes::copy_from_slice(chunk)) {
            Ok(Some(events)) => events,
            Ok(None) => return Ok(()),
            Err(e) => return Err(self.fail(out, &format!("upstream stream: {e}"), None)),
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
    /// `[DONE]` nor a finish reason (truncated): `response.failed` is written instead.
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<(), DecodeError> {
        match self.state {
            State::Done => Ok(()),
            State::Failed => Err(DecodeError::new("the stream already failed")),
            State::Running if self.finish_reason.is_some() => {
                self.close(out);
                Ok(())
            }
            State::Running => {
                Err(self.fail(out, "upstream stream ended before it was complete", None))
            }
        }
    }

    fn event(&mut self, out: &mut BytesMut, kind: &str, data: Value) {
        write_event(out, self.seq, kind, data);
        self.seq += 1;
    }

    fn response(&self, status: &str, error: Value, incomplete_details: Value) -> Value {
        let finished = status != "in_progress";
        response_object(ResponseState {
            id: &self.response_id,
            model: &self.model,
            created_at: self.created_at,
            status,
            output: if finished {
                self.items
                    .iter()
                    .map(|i| i.value(status == "failed"))
                    .collect()
            } else {
                Vec::new()
            },
            usage: if finished {
                usage_of(self.usage.as_ref())
            } else {
                Value::Null
            },
            error,
            incomplete_details,
        })
    }

    fn fail(&mut self, out: &mut BytesMut, message: &str, error: Option<&Value>) -> DecodeError {
        self.start(out);
        let code = error.map_or("server_error", error_code_for);
        let response = self.response(
            "failed",
            json!({ "code": code, "message": message }),
            Value::Null,
        );
        self.event(out, "response.failed", json!({ "response": response }));
        self.state = State::Failed;
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
                None,
            ));
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .unwrap_or("upstream stream error")
                .to_owned();
            return Err(self.fail(out, &message, Some(error)));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        if !self.started {
            self.created_at = chunk.get("created").and_then(Value::as_u64).unwrap_or(0);
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
        if self.finish_reason.is_some() {
            // Items were closed at the finish reason; only usage may follow.
            return Ok(());
        }
        if let Some(delta) = choice.get("delta") {
            self.on_delta(delta, out);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
            self.close_open(out);
        }
        Ok(())
    }

    fn on_delta(&mut self, delta: &Value, out: &mut BytesMut) {
        if let Some(reasoning) = reasoning_of(delta) {
            let at = self.ensure_open(out, Kind::Reasoning);
            self.grow(out, at, reasoning);
        }
        for (key, kind) in [("content", Kind::Message), ("refusal", Kind::Refusal)] {
            if let Some(text) = delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                let at = self.ensure_open(out, kind);
                self.grow(out, at, text);
            }
        }
        if let Some(Value::Array(calls)) = delta.get("tool_calls") {
            for (position, call) in calls.iter().enumerate() {
                self.on_tool_call(position, call, out);
            }
        }
    }

    /// Appends `delta` to item `at` and writes its delta event.
    fn grow(&mut self, out: &mut BytesMut, at: usize, delta: &str) {
        self.items[at].text.push_str(delta);
        let event = self.items[at].delta_event(at, delta);
        self.events(out, vec![event]);
    }

    fn events(&mut self, out: &mut BytesMut, events: Vec<Event>) {
        for (kind, data) in events {
            self.event(out, kind, data);
        }
    }

    fn on_tool_call(&mut self, position: usize, call: &Value, out: &mut BytesMut) {
        let tool_index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let function = call.get("function");
        let known = self
            .items
            .iter()
            .rposition(|i| i.kind == Kind::Call && i.tool_index == tool_index);
        let at = match known {
            Some(at) => at,
            None => {
                let n = self.calls;
                self.calls += 1;
                let mut item = Item::new(Kind::Call, self.ids.call(n));
                item.tool_index = tool_index;
                item.call_id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| self.ids.call_id(n), str::to_owned);
                item.name = function
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                self.open_item(out, item)
            }
        };
        // Arguments of an earlier call that arrive after another item started (an
        // upstream may interleave parallel calls) still go to that call's item: its
        // `done` events were written already, the final response has them all.
        if let Some(arguments) = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            self.grow(out, at, arguments);
        }
    }

    /// Closes the open item, appends `item` and writes its opening events; its output
    /// index.
    fn open_item(&mut self, out: &mut BytesMut, item: Item) -> usize {
        self.close_open(out);
        let at = self.items.len();
        let events = item.opening_events(at);
        self.items.push(item);
        self.events(out, events);
        self.open = Some(at);
        at
    }

    /// The index of the open item of this kind, opening one when needed.
    fn ensure_open(&mut self, out: &mut BytesMut, kind: Kind) -> usize {
        if let Some(at) = self.open.filter(|at| self.items[*at].kind == kind) {
            return at;
        }
        let id = if kind == Kind::Reasoning {
            self.reasonings += 1;
            self.ids.reasoning(self.reasonings - 1)
        } else {
            self.messages += 1;
            self.ids.message(self.messages - 1)
        };
        self.open_item(out, Item::new(kind, id))
    }

    /// Writes the `done` events of the open item.
    fn close_open(&mut self, out: &mut BytesMut) {
        if let Some(at) = self.open.take() {
            let events = self.items[at].closing_events(at);
            self.events(out, events);
        }
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.response("in_progress", Value::Null, Value::Null);
        self.event(out, "response.created", json!({ "response": response }));
        let response = self.response("in_progress", Value::Null, Value::Null);
        self.event(out, "response.in_progress", json!({ "response": response }));
    }

    /// Closes the open items and writes `response.completed` (or `.incomplete`).
    fn close(&mut self, out: &mut BytesMut) {
        self.start(out);
        self.close_open(out);
        let (status, incomplete_details) = outcome(self.finish_reason.as_deref());
        let response = self.response(status, Value::Null, incomplete_details);
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.event(out, kind, json!({ "response": response }));
        self.state = State::Done;
    }
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
