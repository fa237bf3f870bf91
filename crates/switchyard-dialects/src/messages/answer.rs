//! An OpenAI `chat.completion` turned into an Anthropic Messages answer (non-streaming).

use super::{stop_reason_for, usage_of};
use crate::translate::{text_of, DecodeError};
use bytes::Bytes;
use serde_json::{json, Value};

/// Translates a `chat.completion` body into an Anthropic `message` answer for `model`
/// (the name the client asked for). Choice 0 is read: its reasoning becomes a
/// `thinking` block (empty signature), its text a `text` block, its tool calls
/// `tool_use` blocks (arguments that are not JSON become `{}`).
pub fn chat_to_message(openai_body: &[u8], model: &str) -> Result<Bytes, DecodeError> {
    let answer: Value = serde_json::from_slice(openai_body)
        .map_err(|e| DecodeError::new(format!("upstream answer is not valid JSON: {e}")))?;
    if let Some(error) = answer.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("upstream answered with an error");
        return Err(DecodeError::new(message));
    }
    let message = answer
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("message"))
        .ok_or_else(|| DecodeError::new("upstream answer has no choices[0].message"))?;
    let finish = answer
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);

    let mut content = Vec::new();
    if let Some(reasoning) = reasoning_of(message) {
        content.push(json!({ "type": "thinking", "thinking": reasoning, "signature": "" }));
    }
    let text = message.get("content").map(text_of).unwrap_or_default();
    if !text.is_empty() {
        content.push(json!({ "type": "text", "text": text }));
    }
    let refusal = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    if let Some(refusal) = refusal {
        content.push(json!({ "type": "text", "text": refusal }));
    }
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for call in calls {
            content.push(tool_use_block(call));
        }
    }
    let stop_reason = if refusal.is_some() {
        "refusal"
    } else {
        stop_reason_for(finish.unwrap_or("stop"))
    };
    let id = answer.get("id").and_then(Value::as_str).unwrap_or("");
    let body = json!({
        "id": message_id_for(id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage_of(answer.get("usage")),
    });
    Ok(crate::raw::json_bytes(&body))
}

/// The reasoning text of a message or delta: `reasoning_content` (DeepSeek, vLLM) or
/// `reasoning` (OpenRouter, Ollama), when not empty.
pub(super) fn reasoning_of(message: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|key| message.get(*key).and_then(Value::as_str))
        .filter(|r| !r.is_empty())
}

fn tool_use_block(call: &Value) -> Value {
    let function = call.get("function");
    let field = |key: &str| function.and_then(|f| f.get(key)).and_then(Value::as_str);
    let input = field("arguments")
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({
        "type": "tool_use",
        "id": call.get("id").and_then(Value::as_str).unwrap_or(""),
        "name": field("name").unwrap_or(""),
        "input": input,
    })
}

/// `msg_` and the part of an OpenAI id after its prefix (`chatcmpl-abc` → `msg_abc`).
fn message_id_for(chat_id: &str) -> String {
    let suffix = chat_id.split_once('-').map_or(chat_id, |(_, rest)| rest);
    format!("msg_{suffix}")
}
