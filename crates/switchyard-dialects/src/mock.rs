//! The built-in `mock` dialect: an echo model that answers with the last user message.
//! It lets the default `gateway.yaml` work with no keys and no network, and gives demos
//! and smoke tests a real OpenAI-shaped reply (JSON or SSE). Pure: the daemon decides
//! when to send each piece.

use crate::sse::data_event;
use bytes::Bytes;
use serde_json::{json, Value};

/// What the mock model answers to one request.
#[derive(Debug, Clone)]
pub struct MockReply {
    /// Completion id (`chatcmpl-…`).
    pub id: String,
    /// Model name reported back.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// The text the model "generates".
    pub text: String,
    /// Rough prompt token count (words).
    pub prompt_tokens: u64,
    /// Whether the client asked for a usage chunk at the end of a stream.
    pub include_usage: bool,
}

impl MockReply {
    /// Builds the reply to a chat request body. The body was already peeked, so it is
    /// JSON; a body without user messages gets an empty echo.
    pub fn for_chat(body: &[u8], model: &str, id: String, created: u64) -> Self {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let messages = value["messages"].as_array().cloned().unwrap_or_default();
        let prompt_tokens = messages
            .iter()
            .map(|m| word_count(&content_text(&m["content"])))
            .sum();
        let text = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| content_text(&m["content"]))
            .unwrap_or_default();
        Self {
            id,
            model: model.to_owned(),
            created,
            text,
            prompt_tokens,
            include_usage: value["stream_options"]["include_usage"] == true,
        }
    }

    fn completion_tokens(&self) -> u64 {
        word_count(&self.text)
    }

    fn usage(&self) -> Value {
        let completion = self.completion_tokens();
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    /// The whole `chat.completion` JSON body.
    pub fn to_json(&self) -> Bytes {
        let v = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": self.text, "refusal": null },
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": self.usage(),
        });
        Bytes::from(v.to_string())
    }

    /// The reply as SSE events: a role chunk, one chunk per word, a final chunk with
    /// `finish_reason`, an optional usage chunk, then `[DONE]`.
    pub fn to_events(&self) -> Vec<Bytes> {
        let mut events = vec![self.chunk(json!({"role": "assistant", "content": ""}), None)];
        for piece in split_keeping_spaces(&self.text) {
            events.push(self.chunk(json!({ "content": piece }), None));
        }
        events.push(self.chunk(json!({}), Some("stop")));
        if self.include_usage {
            let v = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": null, "choices": [],
                "usage": self.usage(),
            });
            events.push(data_event(&v.to_string()));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        data_event(&v.to_string())
    }
}

/// A `/v1/completions` or `/v1/embeddings` style reply from the mock model.
pub fn other_reply(endpoint: &str, body: &[u8], model: &str, created: u64) -> Bytes {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let v = if endpoint == "embeddings" {
        let inputs = match &value["input"] {
            Value::Array(a) => a.len().max(1),
            _ => 1,
        };
        let data: Vec<Value> = (0..inputs)
            .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.0, 0.5, 1.0]}))
            .collect();
        json!({"object": "list", "data": data, "model": model,
               "usage": {"prompt_tokens": inputs, "total_tokens": inputs}})
    } else {
        let prompt = content_text(&value["prompt"]);
        json!({"id": "cmpl-mock", "object": "text_completion", "created": created, "model": model,
               "choices": [{"index": 0, "text": prompt, "logprobs": null, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": word_count(&prompt), "completion_tokens": word_count(&prompt),
                         "total_tokens": 2 * word_count(&prompt)}})
    };
    Bytes::from(v.to_string())
}

/// Text of a message `content`: a string, or the `text` parts of an array.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or_else(|| p.as_str()))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Splits text into words, each keeping its trailing whitespace, so the pieces
/// concatenate back to the original.
fn split_keeping_spaces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            out.push(&text[start..i]);
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::data_payloads;

    fn reply(body: &str) -> MockReply {
        MockReply::for_chat(body.as_bytes(), "mock-echo", "chatcmpl-1".into(), 7)
    }

    #[test]
    fn echoes_the_last_user_message() {
        let r = reply(
            r#"{"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"hello there"}]}]}"#,
        );
        let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello there");
        assert_eq!(v["usage"]["completion_tokens"], 2);
    }

    #[test]
    fn stream_pieces_concatenate_to_the_text_and_end_with_done() {
        let r = reply(
            r#"{"messages":[{"role":"user","content":"a  b c"}],"stream_options":{"include_usage":true}}"#,
        );
        let events = r.to_events();
        let all: Vec<u8> = events.iter().flat_map(|e| e.to_vec()).collect();
        let payloads = data_payloads(&all);
        assert_eq!(payloads.last().unwrap(), "[DONE]");
        let text: String = payloads[..payloads.len() - 1]
            .iter()
            .map(|p| serde_json::from_str::<Value>(p).unwrap())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "a  b c");
        let usage: Value = serde_json::from_str(&payloads[payloads.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 6);
    }
}
