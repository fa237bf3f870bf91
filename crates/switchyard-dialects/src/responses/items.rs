//! The output items of a streamed response and the events that open, grow and close
//! each of them (the data of each event, without `type` and `sequence_number`).

use super::{function_call_item, message_item, output_text, reasoning_item};
use serde_json::{json, Value};

/// What an output item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A `reasoning` item with one summary part.
    Reasoning,
    /// A `message` item with one `output_text` part.
    Message,
    /// A `message` item with one `refusal` part.
    Refusal,
    /// A `function_call` item.
    Call,
}

/// One output item being built.
#[derive(Debug)]
pub(super) struct Item {
    pub(super) kind: Kind,
    pub(super) id: String,
    /// Text, reasoning text, refusal or arguments so far.
    pub(super) text: String,
    /// OpenAI tool call index (calls only).
    pub(super) tool_index: u64,
    pub(super) call_id: String,
    pub(super) name: String,
    pub(super) done: bool,
}

/// An event to write: its type and data.
pub(super) type Event = (&'static str, Value);

impl Item {
    /// A reasoning, message or refusal item.
    pub(super) fn new(kind: Kind, id: String) -> Self {
        Self {
            kind,
            id,
            text: String::new(),
            tool_index: 0,
            call_id: String::new(),
            name: String::new(),
            done: false,
        }
    }

    /// The item as the `item` of its events: its `done` form once closed, else empty
    /// (`in_progress`), or with what arrived so far (`incomplete`) when `partial`.
    pub(super) fn value(&self, partial: bool) -> Value {
        let status = match (self.done, partial) {
            (true, _) => "completed",
            (false, true) => "incomplete",
            (false, false) => "in_progress",
        };
        let text = (self.done || partial).then_some(self.text.as_str());
        match self.kind {
            Kind::Message => message_item(&self.id, status, text),
            Kind::Refusal => {
                let mut item = message_item(&self.id, status, None);
                if let Some(refusal) = text {
                    item["content"] = json!([refusal_part(refusal)]);
                }
                item
            }
            Kind::Reasoning => reasoning_item(&self.id, text),
            Kind::Call => {
                let arguments = text.unwrap_or("");
                function_call_item(&self.id, &self.call_id, &self.name, arguments, status)
            }
        }
    }

    fn part(&self, text: &str) -> Value {
        match self.kind {
            Kind::Refusal => refusal_part(text),
            Kind::Reasoning => json!({ "type": "summary_text", "text": text }),
            Kind::Message | Kind::Call => output_text(text),
        }
    }

    /// `response.output_item.added` and, but for a call, its part's `added` event.
    pub(super) fn opening_events(&self, at: usize) -> Vec<Event> {
        let mut events = vec![(
            "response.output_item.added",
            json!({ "output_index": at, "item": self.value(false) }),
        )];
        let part = self.part("");
        match self.kind {
            Kind::Message | Kind::Refusal => events.push((
                "response.content_part.added",
                json!({ "item_id": self.id, "output_index": at, "content_index": 0, "part": part }),
            )),
            Kind::Reasoning => events.push((
                "response.reasoning_summary_part.added",
                json!({ "item_id": self.id, "output_index": at, "summary_index": 0, "part": part }),
            )),
            Kind::Call => {}
        }
        events
    }

    /// The event carrying `delta` (already appended to `text`).
    pub(super) fn delta_event(&self, at: usize, delta: &str) -> Event {
        let (id, i) = (&self.id, at);
        match self.kind {
            Kind::Message => (
                "response.output_text.delta",
                json!({ "item_id": id, "output_index": i, "content_index": 0, "delta": delta, "logprobs": [] }),
            ),
            Kind::Refusal => (
                "response.refusal.delta",
                json!({ "item_id": id, "output_index": i, "content_index": 0, "delta": delta }),
            ),
            Kind::Reasoning => (
                "response.reasoning_summary_text.delta",
                json!({ "item_id": id, "output_index": i, "summary_index": 0, "delta": delta }),
            ),
            Kind::Call => (
                "response.function_call_arguments.delta",
                json!({ "item_id": id, "output_index": i, "delta": delta }),
            ),
        }
    }

    /// The `done` events, `response.output_item.done` last (the item is marked done).
    pub(super) fn closing_events(&mut self, at: usize) -> Vec<Event> {
        self.done = true;
        let (id, i, text) = (&self.id, at, self.text.as_str());
        let part = self.part(text);
        let mut events = match self.kind {
            Kind::Message => vec![
                (
                    "response.output_text.done",
                    json!({ "item_id": id, "output_index": i, "content_index": 0, "text": text, "logprobs": [] }),
                ),
                (
                    "response.content_part.done",
                    json!({ "item_id": id, "output_index": i, "content_index": 0, "part": part }),
                ),
            ],
            Kind::Refusal => vec![
                (
                    "response.refusal.done",
                    json!({ "item_id": id, "output_index": i, "content_index": 0, "refusal": text }),
                ),
                (
                    "response.content_part.done",
                    json!({ "item_id": id, "output_index": i, "content_index": 0, "part": part }),
                ),
            ],
            Kind::Reasoning => vec![
                (
                    "response.reasoning_summary_text.done",
                    json!({ "item_id": id, "output_index": i, "summary_index": 0, "text": text }),
                ),
                (
                    "response.reasoning_summary_part.done",
                    json!({ "item_id": id, "output_index": i, "summary_index": 0, "part": part }),
                ),
            ],
            Kind::Call => vec![(
                "response.function_call_arguments.done",
                json!({ "item_id": id, "output_index": i, "arguments": text, "name": self.name }),
            )],
        };
        events.push((
            "response.output_item.done",
            json!({ "output_index": at, "item": self.value(false) }),
        ));
        events
    }
}

/// A `refusal` content part.
pub(super) fn refusal_part(refusal: &str) -> Value {
    json!({ "type": "refusal", "refusal": refusal })
}
