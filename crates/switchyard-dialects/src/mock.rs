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
        // What the SDKs ask for by default: the floats as base64 of little-endian f32s.
        let vector = [0.0f32, 0.5, 1.0];
        let embedding = if value["encoding_format"] == "base64" {
            let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
            json!(base64(&bytes))
        } else {
            json!(vector)
        };
        let data: Vec<Value> = (0..inputs)
            .map(|i| json!({"object": "embedding", "index": i, "embedding": embedding}))
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

/// A `/v1/completions` stream from the mock model: the prompt echoed word by word as
/// `text_completion` chunks, a finish chunk, an optional usage chunk, `[DONE]`.
pub fn completion_events(body: &[u8], model: &str, id: &str, created: u64) -> Vec<Bytes> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let prompt = content_text(&value["prompt"]);
    let chunk = |text: &str, finish: Option<&str>| {
        let v = json!({"id": id, "object": "text_completion", "created": created, "model": model,
                       "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}]});
        data_event(&v.to_string())
    };
    let mut events: Vec<Bytes> = split_keeping_spaces(&prompt)
        .into_iter()
        .map(|piece| chunk(piece, None))
        .collect();
    events.push(chunk("", Some("stop")));
    if value["stream_options"]["include_usage"] == true {
        let n = word_count(&prompt);
        let v = json!({"id": id, "object": "text_completion", "created": created, "model": model, "choices": [],
                       "usage": {"prompt_tokens": n, "completion_tokens": n, "total_tokens": 2 * n}});
        events.push(data_event(&v.to_string()));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// A `/v1/responses` answer from the mock model, echoing the last user input: the
/// response object (JSON) or, for `stream: true`, its typed events (`response.created`
/// … `response.output_text.delta` per word … `response.completed`).
pub fn responses_reply(body: &[u8], model: &str, id: &str, created: u64) -> (bool, Vec<Bytes>) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = match &value["input"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .rev()
            .find(|i| i["role"] == "user")
            .map(|i| content_text(&i["content"]))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let words = word_count(&text);
    let message_id = format!("msg_{id}");
    let message = |status: &str, text: &str| {
        json!({"type": "message", "id": message_id, "status": status, "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]})
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": format!("resp_{id}"), "object": "response", "created_at": created, "status": status,
               "model": model, "output": output, "usage": usage, "error": null, "incomplete_details": null,
               "instructions": null, "metadata": {}, "parallel_tool_calls": true, "temperature": null,
               "tool_choice": "auto", "tools": [], "top_p": null})
    };
    let usage = json!({"input_tokens": words, "output_tokens": words, "total_tokens": 2 * words,
                       "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}});
    let done = response("completed", json!([message("completed", &text)]), usage);
    if value["stream"] != true {
        return (false, vec![Bytes::from(done.to_string())]);
    }
    let mut seq = 0u64;
    let mut events = Vec::new();
    let mut event = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        events.push(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    };
    event(
        "response.created",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    event(
        "response.in_progress",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    let mut item = message("in_progress", "");
    item["content"] = json!([]);
    event(
        "response.output_item.added",
        json!({"output_index": 0, "item": item}),
    );
    let part = json!({"type": "output_text", "text": "", "annotations": []});
    event(
        "response.content_part.added",
        json!({"item_id": message_id, "output_index": 0, "content_index": 0, "part": part}),
    );
    for piece in split_keeping_spaces(&text) {
        event(
            "response.output_text.delta",
            json!({"item_id": message_id, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}),
        );
    }
    event(
        "response.output_text.done",
        json!({"item_id": message_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
    );
    let part = json!({"type": "output_text", "text": text, "annotations": []});
    event(
        "response.content_part.done",
        json!({"item_id": message_id, "output_index": 0, "content_index": 0, "part": part}),
    );
    event(
        "response.output_item.done",
        json!({"output_index": 0, "item": message("completed", &text)}),
    );
    event("response.completed", json!({"response": done}));
    (true, events)
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0, 0, 0, 0, 0, 0, 0, 0x3f]), "AAAAAAAAAD8=");
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
