//! Anthropic Messages ingress: clients speak Anthropic's `POST /v1/messages`, the gateway
//! serves them from an OpenAI-dialect upstream. Owns the four translations of that
//! direction: a Messages request into an OpenAI chat request ([`request_to_chat`]), a
//! `chat.completion` into a Messages answer ([`chat_to_message`]), an OpenAI SSE stream
//! into Anthropic's stream events ([`StreamEncoder`]), and error bodies into Anthropic's
//! error shape ([`error_body`], [`error_from_openai`], [`error_event`]).
//!
//! Does not own: the egress direction (an Anthropic upstream; module `anthropic`),
//! routing, HTTP, ids or time — the caller passes the message id.

mod answer;
mod chat;
mod request;
mod stream;

pub use answer::chat_to_message;
pub use request::{request_to_chat, ChatRequest};
pub use stream::StreamEncoder;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

/// Anthropic's error `type` for an HTTP status.
pub fn error_type_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An Anthropic error body for `status`:
/// `{"type":"error","error":{"type":…,"message":…}}`.
pub fn error_body(status: u16, message: &str) -> Bytes {
    Bytes::from(error_value(error_type_for(status), message).to_string())
}

/// An OpenAI-shaped upstream error body turned into Anthropic's shape; the message is
/// kept (read from `error.message`, a string `error`, `message` or `detail`; a short
/// plain-text body is taken as it is).
pub fn error_from_openai(status: u16, openai_body: &[u8]) -> Bytes {
    let message = openai_error_message(openai_body)
        .unwrap_or_else(|| format!("upstream answered with status {status}"));
    error_body(status, &message)
}

/// One Anthropic `error` stream event:
/// `event: error\ndata: {"type":"error","error":{"type":kind,"message":…}}\n\n`.
pub fn error_event(message: &str, kind: &str) -> Bytes {
    let mut out = BytesMut::new();
    write_event(&mut out, "error", error_value(kind, message));
    out.freeze()
}

fn error_value(kind: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}

/// The longest plain-text upstream error body relayed as a message.
const MAX_TEXT_MESSAGE: usize = 1000;

fn openai_error_message(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let found = match v.get("error") {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(e) => e.get("message").and_then(Value::as_str),
            None => None,
        }
        .or_else(|| v.get("message").and_then(Value::as_str))
        .or_else(|| v.get("detail").and_then(Value::as_str));
        return found.filter(|m| !m.is_empty()).map(str::to_owned);
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    (!text.is_empty() && text.len() <= MAX_TEXT_MESSAGE).then(|| text.to_owned())
}

/// Writes `event: <name>\ndata: <json>\n\n`, the data's `type` (the event name) first
/// as Anthropic writes it.
fn write_event(out: &mut BytesMut, name: &str, mut data: Value) {
    if let Some(fields) = data.as_object_mut() {
        fields.remove("type");
    }
    let rest = crate::raw::json_string(&data);
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: {\"type\":");
    out.put_slice(Value::from(name).to_string().as_bytes());
    match rest.strip_prefix('{') {
        Some("}") | None => out.put_u8(b'}'),
        Some(members) => {
            out.put_u8(b',');
            out.put_slice(members.as_bytes());
        }
    }
    out.put_slice(b"\n\n");
}

/// Anthropic's `usage` from an OpenAI `usage` object. Anthropic's `input_tokens` does
/// not count cache reads (they are `cache_read_input_tokens`), OpenAI's `prompt_tokens`
/// does: the cached tokens are taken out of it.
fn usage_of(openai: Option<&Value>) -> serde_json::Map<String, Value> {
    let num = |v: Option<&Value>, key: &str| v.and_then(|u| u.get(key)).and_then(Value::as_u64);
    let prompt = num(openai, "prompt_tokens").unwrap_or(0);
    let completion = num(openai, "completion_tokens").unwrap_or(0);
    let cached = num(
        openai.and_then(|u| u.get("prompt_tokens_details")),
        "cached_tokens",
    );
    let mut usage = serde_json::Map::new();
    usage.insert(
        "input_tokens".into(),
        prompt.saturating_sub(cached.unwrap_or(0)).into(),
    );
    usage.insert("output_tokens".into(), completion.into());
    if let Some(cached) = cached {
        usage.insert("cache_read_input_tokens".into(), cached.into());
    }
    usage
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`. OpenAI does not say whether
/// a stop sequence matched: `stop` is always `end_turn`.
fn stop_reason_for(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

#[cfg(test)]
mod tests;
