//! An OpenAI `chat.completion` turned into a Responses API response object.

use super::items::refusal_part;
use super::{
    function_call_item, message_item, outcome, reasoning_item, response_object, usage_of, Ids,
    ResponseState,
};
use crate::translate::{text_of, DecodeError};
use bytes::Bytes;
use serde_json::{json, Value};

/// Translates a `chat.completion` body into a response object `response_id` for `model`
/// (the name the client asked for). Choice 0 is read: its reasoning becomes a
/// `reasoning` item, its text (or refusal) a `message` item, its tool calls
/// `function_call` items, in that order.
pub fn chat_to_response(
    openai_body: &[u8],
    model: &str,
    response_id: &str,
) -> Result<Bytes, DecodeError> {
    let answer: Value = serde_json::from_slice(openai_body)
        .map_err(|e| DecodeError::new(format!("upstream answer is not valid JSON: {e}")))?;
    if let Some(error) = answer.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| error.as_str())
            .unwrap_or("upstream answered with an error");
        return Err(DecodeError::new(message));
    }
    let choice = answer
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| DecodeError::new("upstream answer has no choices[0]"))?;
    let message = choice
        .get("message")
        .ok_or_else(|| DecodeError::new("upstream answer has no choices[0].message"))?;
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let ids = Ids::new(response_id);

    let mut output = Vec::new();
    if let Some(reasoning) = reasoning_of(message) {
        output.push(reasoning_item(&ids.reasoning(0), Some(reasoning)));
    }
    let text = message.get("content").map(text_of).unwrap_or_default();
    let refusal = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    if let Some(refusal) = refusal {
        let mut item = message_item(&ids.message(0), "completed", None);
        item["content"] = json!([refusal_part(refusal)]);
        output.push(item);
    } else if !text.is_empty() {
        output.push(message_item(&ids.message(0), "completed", Some(&text)));
    }
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for (n, call) in calls.iter().enumerate() {
            let function = call.get("function");
            let field = |key: &str| function.and_then(|f| f.get(key)).and_then(Value::as_str);
            let call_id = call
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| ids.call_id(n), str::to_owned);
            output.push(function_call_item(
                &ids.call(n),
                &call_id,
                field("name").unwrap_or(""),
                field("arguments").unwrap_or(""),
                "completed",
            ));
        }
    }
    let (status, incomplete_details) = outcome(finish);
    let body = response_object(ResponseState {
        id: response_id,
        model,
        created_at: answer.get("created").and_then(Value::as_u64).unwrap_or(0),
        status,
        output,
        usage: usage_of(answer.get("usage")),
        error: Value::Null,
        incomplete_details,
    });
    Ok(Bytes::from(body.to_string()))
}

/// The reasoning text of a message or delta: `reasoning_content` (DeepSeek, vLLM) or
/// `reasoning` (OpenRouter, Ollama), when not empty.
pub(super) fn reasoning_of(message: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|key| message.get(*key).and_then(Value::as_str))
        .filter(|r| !r.is_empty())
}
