//! Anthropic Messages answer → OpenAI `chat.completion`: content blocks, stop reason and
//! usage. The stop-reason and usage mappings are shared with the stream translator.

use crate::raw::{self, Raw};
use crate::translate::{completion_body, usage_value, DecodeError, Reply};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub(super) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, and anything new.
        _ => "stop",
    }
}

/// Token counts read from Anthropic `usage` objects (a stream updates them as it goes).
#[derive(Debug, Default, Clone)]
pub(super) struct Tokens {
    input: u64,
    cache_read: Option<u64>,
    cache_creation: u64,
    output: u64,
    thinking: Option<u64>,
}

impl Tokens {
    /// Takes every count present in `usage` (counts are totals, not increments).
    pub(super) fn update(&mut self, usage: &Value) {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64);
        if let Some(n) = count("input_tokens") {
            self.input = n;
        }
        if let Some(n) = count("cache_read_input_tokens") {
            self.cache_read = Some(n);
        }
        if let Some(n) = count("cache_creation_input_tokens") {
            self.cache_creation = n;
        }
        if let Some(n) = count("output_tokens") {
            self.output = n;
        }
        if let Some(n) = usage
            .get("output_tokens_details")
            .and_then(|d| d.get("thinking_tokens"))
            .and_then(Value::as_u64)
        {
            self.thinking = Some(n);
        }
    }

    /// [`Tokens::update`] for a `usage` object kept as raw JSON (a stream event's).
    pub(super) fn update_raw(&mut self, usage: &RawValue) {
        let Some(usage) = raw::object::<RawUsage<'_>>(Some(usage)) else {
            return;
        };
        if let Some(n) = raw::as_u64(usage.input_tokens) {
            self.input = n;
        }
        if let Some(n) = raw::as_u64(usage.cache_read_input_tokens) {
            self.cache_read = Some(n);
        }
        if let Some(n) = raw::as_u64(usage.cache_creation_input_tokens) {
            self.cache_creation = n;
        }
        if let Some(n) = raw::as_u64(usage.output_tokens) {
            self.output = n;
        }
        let details = raw::object::<RawDetails<'_>>(usage.output_tokens_details);
        if let Some(n) = details.and_then(|d| raw::as_u64(d.thinking_tokens)) {
            self.thinking = Some(n);
        }
    }

    /// OpenAI's `usage`: cache reads and writes are prompt tokens too.
    pub(super) fn value(&self) -> Value {
        let prompt = self
            .input
            .saturating_add(self.cache_read.unwrap_or(0))
            .saturating_add(self.cache_creation);
        usage_value(prompt, self.output, self.cache_read, self.thinking)
    }
}

/// An Anthropic `usage` object, fields unread.
#[derive(Deserialize)]
struct RawUsage<'a> {
    #[serde(borrow)]
    input_tokens: Raw<'a>,
    #[serde(borrow)]
    cache_read_input_tokens: Raw<'a>,
    #[serde(borrow)]
    cache_creation_input_tokens: Raw<'a>,
    #[serde(borrow)]
    output_tokens: Raw<'a>,
    #[serde(borrow)]
    output_tokens_details: Raw<'a>,
}

/// `usage.output_tokens_details`, fields unread.
#[derive(Deserialize)]
struct RawDetails<'a> {
    #[serde(borrow)]
    thinking_tokens: Raw<'a>,
}

/// Translates a Messages answer (JSON) into a `chat.completion` body.
pub fn decode(body: &[u8], reply: &Reply) -> Result<Bytes, DecodeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new(format!("anthropic answer is not JSON: {e}")))?;
    if value.get("type").and_then(Value::as_str) == Some("error") {
        let message = value
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(DecodeError::new(format!(
            "anthropic upstream error: {message}"
        )));
    }
    let blocks = value
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| DecodeError::new("anthropic answer has no `content` array"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
            }
            Some("tool_use") => {
                let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let arguments = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": crate::raw::json_string(&arguments) },
                }));
            }
            // redacted_thinking, server tool blocks, anything new: not OpenAI's.
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), reasoning.into());
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    let finish = finish_reason(value.get("stop_reason").and_then(Value::as_str));
    let usage = value.get("usage").map(|u| {
        let mut tokens = Tokens::default();
        tokens.update(u);
        tokens.value()
    });
    Ok(completion_body(
        reply,
        Value::Object(message),
        finish,
        usage,
    ))
}
