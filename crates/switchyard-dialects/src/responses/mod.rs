//! OpenAI Responses ingress: clients speak `POST /v1/responses`, the gateway serves
//! them from an upstream that only has Chat Completions. Owns the three translations of
//! that direction: a Responses request into a chat request ([`request_to_chat`]), a
//! `chat.completion` into a response object ([`chat_to_response`]), and a chat SSE
//! stream into the Responses typed stream events ([`StreamEncoder`]).
//!
//! Does not own: stored responses (`previous_response_id` is refused), hosted tools,
//! routing, HTTP, ids or time — the caller passes the response id; `created_at` is the
//! upstream's `created`.

mod answer;
mod items;
mod request;
mod stream;

pub use answer::chat_to_response;
pub use request::{request_to_chat, ChatRequest};
pub use stream::StreamEncoder;

use bytes::{BufMut, BytesMut};
use serde_json::{json, Value};

/// The item ids of one response: `msg_<base>`, `rs_<base>`, `fc_<base>_<n>`, where
/// `<base>` is the response id without its `resp_` prefix.
#[derive(Debug, Clone)]
struct Ids {
    base: String,
}

impl Ids {
    fn new(response_id: &str) -> Self {
        let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
        Self {
            base: base.to_owned(),
        }
    }

    fn message(&self, n: usize) -> String {
        if n == 0 {
            format!("msg_{}", self.base)
        } else {
            format!("msg_{}_{n}", self.base)
        }
    }

    fn reasoning(&self, n: usize) -> String {
        if n == 0 {
            format!("rs_{}", self.base)
        } else {
            format!("rs_{}_{n}", self.base)
        }
    }

    fn call(&self, n: usize) -> String {
        format!("fc_{}_{n}", self.base)
    }

    /// A `call_id` for an upstream tool call that came without an id.
    fn call_id(&self, n: usize) -> String {
        format!("call_{}_{n}", self.base)
    }
}

/// The Responses `usage` from an OpenAI chat `usage` object (`null` when there is none).
fn usage_of(openai: Option<&Value>) -> Value {
    let Some(usage) = openai.filter(|u| u.is_object()) else {
        return Value::Null;
    };
    let num = |v: Option<&Value>, key: &str| v.and_then(|u| u.get(key)).and_then(Value::as_u64);
    let input = num(Some(usage), "prompt_tokens").unwrap_or(0);
    let output = num(Some(usage), "completion_tokens").unwrap_or(0);
    let total = num(Some(usage), "total_tokens").unwrap_or(input.saturating_add(output));
    let cached = num(usage.get("prompt_tokens_details"), "cached_tokens").unwrap_or(0);
    let reasoning = num(usage.get("completion_tokens_details"), "reasoning_tokens").unwrap_or(0);
    json!({
        "input_tokens": input,
        // `cache_write_tokens`: required by newer SDK models; chat usage has no such count.
        "input_tokens_details": { "cached_tokens": cached, "cache_write_tokens": 0 },
        "output_tokens": output,
        "output_tokens_details": { "reasoning_tokens": reasoning },
        "total_tokens": total,
    })
}

/// `status` and `incomplete_details` for an OpenAI `finish_reason`.
fn outcome(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({ "reason": "max_output_tokens" })),
        Some("content_filter") => ("incomplete", json!({ "reason": "content_filter" })),
        _ => ("completed", Value::Null),
    }
}

/// The parts of a response object that change while it is built.
struct ResponseState<'a> {
    id: &'a str,
    model: &'a str,
    created_at: u64,
    status: &'a str,
    output: Vec<Value>,
    usage: Value,
    error: Value,
    incomplete_details: Value,
}

/// A whole response object. The request's own settings (tools, temperature…) are not
/// known here: the defaults are reported.
fn response_object(state: ResponseState<'_>) -> Value {
    json!({
        "id": state.id,
        "object": "response",
        "created_at": state.created_at,
        "status": state.status,
        "model": state.model,
        "output": state.output,
        "usage": state.usage,
        "error": state.error,
        "incomplete_details": state.incomplete_details,
        "instructions": null,
        "metadata": {},
        "parallel_tool_calls": true,
        "temperature": null,
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
    })
}

/// A `message` output item with one `output_text` part (or none when `text` is `None`).
fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(text) => json!([output_text(text)]),
        None => json!([]),
    };
    json!({ "type": "message", "id": id, "status": status, "role": "assistant", "content": content })
}

fn output_text(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [] })
}

/// A `reasoning` output item with its text as one summary part.
fn reasoning_item(id: &str, text: Option<&str>) -> Value {
    let summary = match text {
        Some(text) => json!([{ "type": "summary_text", "text": text }]),
        None => json!([]),
    };
    json!({ "type": "reasoning", "id": id, "summary": summary })
}

fn function_call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

/// The Responses error `code` for an upstream error: `rate_limit_exceeded` when it
/// says so, else `server_error`.
fn error_code_for(error: &Value) -> &'static str {
    let says = |key: &str| {
        error
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("rate_limit"))
    };
    if says("code") || says("type") {
        "rate_limit_exceeded"
    } else {
        "server_error"
    }
}

/// Writes `event: <kind>\ndata: {…,"sequence_number":seq,"type":kind}\n\n`.
fn write_event(out: &mut BytesMut, seq: u64, kind: &str, mut data: Value) {
    if let Some(fields) = data.as_object_mut() {
        fields.insert("type".into(), kind.into());
        fields.insert("sequence_number".into(), seq.into());
    }
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data.to_string().as_bytes());
    out.put_slice(b"\n\n");
}
