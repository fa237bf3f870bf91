//! Gemini `GenerateContentResponse` → OpenAI `chat.completion` (the [`decode`] half of
//! the `gemini` dialect), and the pieces the stream translator shares with it: finish
//! reasons, usage, synthesized tool call ids, upstream error events. Owns no framing.

use crate::translate::{completion_body, usage_value, DecodeError, Reply};
use bytes::Bytes;
use serde_json::{json, Map, Value};

/// Translates a whole `GenerateContentResponse` into a `chat.completion`: one choice
/// per candidate. A prompt Gemini blocked (`promptFeedback.blockReason`, no candidates)
/// answers an empty assistant message with `finish_reason: "content_filter"`.
pub fn decode(body: &[u8], reply: &Reply) -> Result<Bytes, DecodeError> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new(format!("gemini answer is not valid JSON: {e}")))?;
    if let Some(err) = upstream_error(&answer) {
        return Err(err);
    }
    if !answer.is_object() {
        return Err(DecodeError::new("gemini answer is not a JSON object"));
    }
    let usage = answer.get("usageMetadata").and_then(usage_of);
    let candidates = answer
        .get("candidates")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty());
    let Some(candidates) = candidates else {
        if answer.pointer("/promptFeedback/blockReason").is_some() {
            let message = json!({ "role": "assistant", "content": "" });
            return Ok(completion_body(reply, message, "content_filter", usage));
        }
        return Err(DecodeError::new("gemini answer has no candidates"));
    };
    let mut calls = 0;
    let mut choices = Vec::with_capacity(candidates.len());
    for (i, candidate) in candidates.iter().enumerate() {
        let index = candidate
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(i as u64);
        let (message, finish) = candidate_message(candidate, reply, &mut calls);
        choices.push(json!({
            "index": index, "message": message, "logprobs": null, "finish_reason": finish,
        }));
    }
    let mut out = json!({
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": null,
        "choices": choices,
    });
    if let (Some(usage), Some(obj)) = (usage, out.as_object_mut()) {
        obj.insert("usage".into(), usage);
    }
    Ok(crate::raw::json_bytes(&out))
}

/// One candidate → (assistant message, finish reason). `calls` numbers tool calls
/// across the whole answer.
fn candidate_message(candidate: &Value, reply: &Reply, calls: &mut usize) -> (Value, String) {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let parts = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for part in parts {
        if let Some(call) = part.get("functionCall") {
            let (name, args) = call_name_args(call);
            let mut tool_call = json!({
                "id": call_id(reply, *calls),
                "type": "function",
                "function": { "name": name, "arguments": args },
            });
            if let (Some(sig), Some(obj)) = (signature_of(part), tool_call.as_object_mut()) {
                obj.insert("extra_content".into(), sig);
            }
            tool_calls.push(tool_call);
            *calls += 1;
        } else if let Some(piece) = part.get("text").and_then(Value::as_str) {
            if is_thought(part) {
                reasoning.push_str(piece);
            } else {
                text.push_str(piece);
            }
        }
    }
    let reason = candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .unwrap_or("STOP");
    let finish = finish_reason(reason, !tool_calls.is_empty());
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), reasoning.into());
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), tool_calls.into());
    }
    (Value::Object(message), finish.to_owned())
}

/// Whether a part is a thought summary (`"thought": true`).
pub(super) fn is_thought(part: &Value) -> bool {
    part.get("thought").and_then(Value::as_bool) == Some(true)
}

/// A `functionCall`'s name and its `args` as a JSON string (`{}` when absent).
pub(super) fn call_name_args(call: &Value) -> (String, String) {
    let name = call
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let args = match call.get("args") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(args) => crate::raw::json_string(args),
    };
    (name, args)
}

/// A part's `thoughtSignature` as OpenAI `extra_content` (the shape Gemini's own
/// OpenAI-compatible endpoint uses), for the client to send back with the call.
pub(super) fn signature_of(part: &Value) -> Option<Value> {
    let sig = part.get("thoughtSignature").and_then(Value::as_str)?;
    Some(json!({ "google": { "thought_signature": sig } }))
}

/// The id of the `n`th tool call of an answer: `call_<reply id>_<n>`, the same in a
/// stream and in a whole answer, and distinct across answers.
pub(super) fn call_id(reply: &Reply, n: usize) -> String {
    let stem: String = reply
        .id
        .strip_prefix("chatcmpl-")
        .unwrap_or(&reply.id)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if stem.is_empty() {
        format!("call_{n}")
    } else {
        format!("call_{stem}_{n}")
    }
}

/// Gemini's `finishReason` → OpenAI's `finish_reason`.
pub(super) fn finish_reason(reason: &str, saw_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if saw_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` → OpenAI `usage`: thoughts count as completion tokens (and as
/// reasoning tokens), tool-use prompt tokens as prompt tokens.
pub(super) fn usage_of(meta: &Value) -> Option<Value> {
    if !meta.is_object() {
        return None;
    }
    let count = |key: &str| meta.get(key).and_then(Value::as_u64);
    let prompt =
        count("promptTokenCount").unwrap_or(0) + count("toolUsePromptTokenCount").unwrap_or(0);
    let thoughts = count("thoughtsTokenCount");
    let completion = count("candidatesTokenCount").unwrap_or(0) + thoughts.unwrap_or(0);
    Some(usage_value(
        prompt,
        completion,
        count("cachedContentTokenCount"),
        thoughts,
    ))
}

/// An `{"error": {...}}` answer or event as a decode error.
pub(super) fn upstream_error(value: &Value) -> Option<DecodeError> {
    let error = value.get("error")?;
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .unwrap_or("unknown error");
    let status = error.get("status").and_then(Value::as_str);
    Some(DecodeError::new(match status {
        Some(status) => format!("gemini error ({status}): {message}"),
        None => format!("gemini error: {message}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: &str) -> Reply {
        Reply {
            id: id.into(),
            model: "m".into(),
            created: 1,
            include_usage: false,
        }
    }

    #[test]
    fn call_ids_follow_the_reply_id_and_the_call_number() {
        assert_eq!(call_id(&reply("chatcmpl-ab1"), 2), "call_ab1_2");
        assert_eq!(call_id(&reply("chatcmpl-"), 0), "call_0");
        assert_eq!(call_id(&reply("x-y"), 1), "call_xy_1");
    }

    #[test]
    fn finish_reasons_map_to_openai_names() {
        assert_eq!(finish_reason("STOP", false), "stop");
        assert_eq!(finish_reason("STOP", true), "tool_calls");
        assert_eq!(finish_reason("MAX_TOKENS", true), "length");
        for r in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
        ] {
            assert_eq!(finish_reason(r, false), "content_filter");
        }
        assert_eq!(finish_reason("MALFORMED_FUNCTION_CALL", false), "stop");
        assert_eq!(finish_reason("OTHER", false), "stop");
    }

    #[test]
    fn thoughts_count_as_completion_and_reasoning_tokens() {
        let usage = usage_of(&json!({
            "promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
            "cachedContentTokenCount": 4, "totalTokenCount": 22,
        }))
        .unwrap();
        assert_eq!(usage["prompt_tokens"], 10);
        assert_eq!(usage["completion_tokens"], 12);
        assert_eq!(usage["total_tokens"], 22);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 4);
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 7);
    }

    #[test]
    fn malformed_answers_are_decode_errors() {
        assert!(decode(b"not json", &reply("chatcmpl-1")).is_err());
        assert!(decode(b"[1]", &reply("chatcmpl-1")).is_err());
        assert!(decode(b"{\"candidates\":[]}", &reply("chatcmpl-1")).is_err());
    }
}
