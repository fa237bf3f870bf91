//! The contract every translating dialect (`anthropic`, `gemini`, `ollama`) meets, and
//! the OpenAI output pieces they share. A translating dialect turns an OpenAI chat
//! request into its own ([`Encoded`]), its answer back into a `chat.completion`, its
//! stream into `chat.completion.chunk` events ([`StreamDecode`]), and its error bodies
//! into OpenAI's shape ([`MappedError`]). Pure: no I/O, no clock — the caller passes the
//! id and the time in a [`Reply`].

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};
use std::fmt;

/// Per-upstream settings a translation reads, from `gateway.yaml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// `max_tokens` sent when the client gave none (Anthropic requires one).
    pub default_max_tokens: Option<u64>,
    /// Reject (400) a request field the dialect cannot carry instead of dropping it.
    pub strict: bool,
    /// Ollama's `options.num_ctx`.
    pub num_ctx: Option<u64>,
    /// Ollama's `keep_alive` (a duration string such as `5m`, or `-1`).
    pub keep_alive: Option<String>,
}

/// What an encoder is asked for besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The model name the upstream knows.
    pub model: &'a str,
    /// The upstream's settings.
    pub settings: &'a Settings,
}

/// An upstream request built from an OpenAI chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Appended to the upstream's base URL, starting with `/` (query included), e.g.
    /// `/v1/messages` or `/models/gemini-2.0-flash:streamGenerateContent?alt=sse`.
    pub path: String,
    /// The JSON body.
    pub body: Bytes,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether the client asked for a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Request fields that were dropped because the dialect cannot carry them (for a
    /// debug log line).
    pub dropped: Vec<String>,
}

/// Why a request could not be translated: answered 400 to the client (OpenAI shape),
/// never sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// Safe to show the client.
    pub message: String,
    /// The request field at fault, e.g. `messages[2].content`.
    pub param: Option<String>,
}

impl EncodeError {
    /// An error about `param`.
    pub fn new(message: impl Into<String>, param: impl Into<Option<String>>) -> Self {
        Self {
            message: message.into(),
            param: param.into(),
        }
    }

    /// The field is valid OpenAI but this upstream, configured `strict: true`, cannot
    /// carry it.
    pub fn unsupported(dialect: &str, field: &str) -> Self {
        Self::new(
            format!("`{field}` is not supported by this model's upstream ({dialect} API)"),
            Some(field.to_owned()),
        )
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EncodeError {}

/// The identity of the OpenAI answer being built: the gateway chooses the id and time.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `chatcmpl-…`.
    pub id: String,
    /// The model reported back (the upstream's name for it).
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// Whether a stream should end with a usage chunk (`choices: []`).
    pub include_usage: bool,
}

/// Why an upstream answer could not be translated, or the upstream said it failed in
/// the middle of a stream: the gateway ends the client's stream with its
/// `upstream_stream_error` event, or answers 502.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Safe to show the client (no upstream URL, no secret).
    pub message: String,
}

impl DecodeError {
    /// A decode error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// A stream translator: fed the upstream's body bytes in arbitrary chunks (split
/// anywhere, inside a UTF-8 character included), it writes complete OpenAI SSE events
/// (`data: {chat.completion.chunk}\n\n`) to `out`, and `data: [DONE]\n\n` once the
/// upstream's stream ended properly.
pub trait StreamDecode: Send {
    /// Feeds one chunk. An `Err` ends the stream: an upstream `error` event, or bytes
    /// that are not the dialect's stream.
    fn push(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError>;

    /// The upstream's body ended. `Err` when it ended before the dialect's end marker
    /// (truncated); nothing half-read is flushed.
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), DecodeError>;
}

/// An upstream error answer in OpenAI's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedError {
    /// The status the client gets.
    pub status: u16,
    /// `{"error":{"message","type","param","code"}}`.
    pub body: Bytes,
    /// Whether another upstream should be tried (overloaded, rate limited, 5xx).
    pub retryable: bool,
    /// How long the upstream asked to wait, in whole seconds, when it said so in the
    /// body rather than in a `Retry-After` header (Gemini's `RetryInfo.retryDelay`).
    pub retry_after_secs: Option<u64>,
}

/// Writes OpenAI `chat.completion.chunk` events for one answer (choice 0).
#[derive(Debug)]
pub struct ChunkWriter {
    prefix: String,
}

impl ChunkWriter {
    /// A writer for this answer.
    pub fn new(reply: &Reply) -> Self {
        // `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,` shared by
        // every chunk: written once.
        let mut prefix = String::with_capacity(96 + reply.id.len() + reply.model.len());
        prefix.push_str("{\"id\":");
        crate::raw::push_json_str(&mut prefix, &reply.id);
        prefix.push_str(",\"object\":\"chat.completion.chunk\",\"created\":");
        prefix.push_str(&reply.created.to_string());
        prefix.push_str(",\"model\":");
        crate::raw::push_json_str(&mut prefix, &reply.model);
        prefix.push_str(",\"system_fingerprint\":null");
        Self { prefix }
    }

    /// `data: {shared members,` … `}\n\n` around what `members` writes.
    fn event(&self, out: &mut BytesMut, members: impl FnOnce(&mut BytesMut)) {
        out.put_slice(b"data: ");
        out.put_slice(self.prefix.as_bytes());
        out.put_u8(b',');
        members(out);
        out.put_slice(b"}\n\n");
    }

    /// `"choices":[{"index":0,"delta":{` + `delta` + `},"logprobs":null,"finish_reason":…}]`.
    fn choice(
        &self,
        out: &mut BytesMut,
        finish_reason: Option<&str>,
        delta: impl FnOnce(&mut BytesMut),
    ) {
        self.event(out, |out| {
            out.put_slice(b"\"choices\":[{\"index\":0,\"delta\":{");
            delta(out);
            out.put_slice(b"},\"logprobs\":null,\"finish_reason\":");
            match finish_reason {
                Some(reason) => put_str(out, reason),
                None => out.put_slice(b"null"),
            }
            out.put_slice(b"}]");
        });
    }

    /// A chunk whose choice 0 carries `delta` (and `finish_reason`, null when `None`).
    pub fn delta(&self, out: &mut BytesMut, delta: Value, finish_reason: Option<&str>) {
        let delta = crate::raw::json_string(&delta);
        self.choice(out, finish_reason, |out| {
            // `delta` is an object: its members without the braces.
            let inner = delta
                .get(1..delta.len().saturating_sub(1))
                .unwrap_or_default();
            out.put_slice(inner.as_bytes());
        });
    }

    /// The first chunk: `{"role":"assistant","content":""}`.
    pub fn role(&self, out: &mut BytesMut) {
        self.choice(out, None, |out| {
            out.put_slice(b"\"role\":\"assistant\",\"content\":\"\"");
        });
    }

    /// A text piece.
    pub fn content(&self, out: &mut BytesMut, text: &str) {
        self.choice(out, None, |out| {
            out.put_slice(b"\"content\":");
            put_str(out, text);
        });
    }

    /// A reasoning piece (`reasoning_content`, as DeepSeek and vLLM send it).
    pub fn reasoning(&self, out: &mut BytesMut, text: &str) {
        self.choice(out, None, |out| {
            out.put_slice(b"\"reasoning_content\":");
            put_str(out, text);
        });
    }

    /// The first delta of tool call `index`: its id, name and (maybe empty) arguments.
    pub fn tool_call_start(&self, out: &mut BytesMut, index: usize, id: &str, name: &str) {
        self.choice(out, None, |out| {
            out.put_slice(b"\"tool_calls\":[{\"index\":");
            out.put_slice(index.to_string().as_bytes());
            out.put_slice(b",\"id\":");
            put_str(out, id);
            out.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            put_str(out, name);
            out.put_slice(b",\"arguments\":\"\"}}]");
        });
    }

    /// [`ChunkWriter::tool_call_start`] with an `extra_content` member on the call:
    /// `extra_content` is written as is (it must be a JSON value).
    pub fn tool_call_start_extra(
        &self,
        out: &mut BytesMut,
        index: usize,
        id: &str,
        name: &str,
        extra_content: &str,
    ) {
        self.choice(out, None, |out| {
            out.put_slice(b"\"tool_calls\":[{\"index\":");
            out.put_slice(index.to_string().as_bytes());
            out.put_slice(b",\"id\":");
            put_str(out, id);
            out.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            put_str(out, name);
            out.put_slice(b",\"arguments\":\"\"},\"extra_content\":");
            out.put_slice(extra_content.as_bytes());
            out.put_slice(b"}]");
        });
    }

    /// More arguments of tool call `index`.
    pub fn tool_call_arguments(&self, out: &mut BytesMut, index: usize, arguments: &str) {
        self.choice(out, None, |out| {
            out.put_slice(b"\"tool_calls\":[{\"index\":");
            out.put_slice(index.to_string().as_bytes());
            out.put_slice(b",\"function\":{\"arguments\":");
            put_str(out, arguments);
            out.put_slice(b"}}]");
        });
    }

    /// The chunk with the finish reason and an empty delta.
    pub fn finish(&self, out: &mut BytesMut, finish_reason: &str) {
        self.choice(out, Some(finish_reason), |_| {});
    }

    /// The usage chunk (`choices: []`), sent last when the client asked for it.
    pub fn usage(&self, out: &mut BytesMut, usage: &Value) {
        self.event(out, |out| {
            out.put_slice(b"\"choices\":[],\"usage\":");
            out.put_slice(&crate::raw::json_bytes(usage));
        });
    }

    /// `data: [DONE]`.
    pub fn done(out: &mut BytesMut) {
        out.put_slice(b"data: [DONE]\n\n");
    }
}

/// Writes `text` as a JSON string (quoted, escaped).
fn put_str(out: &mut BytesMut, text: &str) {
    // Serialising a `str` into a `Vec` cannot fail.
    let _infallible = serde_json::to_writer((&mut *out).writer(), text);
}

/// OpenAI's `usage` object; cached input tokens go in `prompt_tokens_details`,
/// reasoning tokens in `completion_tokens_details`.
pub fn usage_value(
    prompt: u64,
    completion: u64,
    cached: Option<u64>,
    reasoning: Option<u64>,
) -> Value {
    let mut usage = Map::new();
    usage.insert("prompt_tokens".into(), prompt.into());
    usage.insert("completion_tokens".into(), completion.into());
    usage.insert(
        "total_tokens".into(),
        prompt.saturating_add(completion).into(),
    );
    if let Some(cached) = cached {
        usage.insert(
            "prompt_tokens_details".into(),
            json!({ "cached_tokens": cached }),
        );
    }
    if let Some(reasoning) = reasoning {
        usage.insert(
            "completion_tokens_details".into(),
            json!({ "reasoning_tokens": reasoning }),
        );
    }
    Value::Object(usage)
}

/// A whole `chat.completion` body with one choice.
pub fn completion_body(
    reply: &Reply,
    message: Value,
    finish_reason: &str,
    usage: Option<Value>,
) -> Bytes {
    let mut v = json!({
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
    });
    if let Some(usage) = usage {
        v["usage"] = usage;
    }
    crate::raw::json_bytes(&v)
}

/// The OpenAI error `type` for a status the gateway relays.
pub fn error_type_for(status: u16) -> &'static str {
    match status {
        400 | 404 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// A text content value as one string: a string as is, an array of parts joined (its
/// `text` parts; other parts are the caller's to look at).
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// A `data:` URL split into its media type and base64 payload.
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

/// Cuts a byte stream into complete lines (`\n`, `\r\n`), holding a partial line and a
/// partial UTF-8 character across pushes. For NDJSON streams (Ollama); SSE streams use
/// [`crate::sse::EventAligner`].
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Appends `chunk` and calls `each` with every complete line (without its end).
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        while let Some(at) = memchr::memchr(b'\n', rest) {
            let (line, after) = rest.split_at(at);
            rest = &after[1..];
            if self.partial.is_empty() {
                each(trim_cr(line))?;
            } else {
                self.partial.extend_from_slice(line);
                let whole = std::mem::take(&mut self.partial);
                each(trim_cr(&whole))?;
            }
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// What is left after the last line end (a line without its `\n`).
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> Reply {
        Reply {
            id: "chatcmpl-1".into(),
            model: "m".into(),
            created: 7,
            include_usage: false,
        }
    }

    #[test]
    fn chunks_are_whole_json_events() {
        let w = ChunkWriter::new(&reply());
        let mut out = BytesMut::new();
        w.role(&mut out);
        w.tool_call_start(&mut out, 1, "call_1", "f");
        w.finish(&mut out, "tool_calls");
        ChunkWriter::done(&mut out);
        let payloads = crate::sse::data_payloads(&out);
        assert_eq!(payloads.len(), 4);
        let first: Value = serde_json::from_str(&payloads[0]).unwrap();
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["id"], "chatcmpl-1");
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        let second: Value = serde_json::from_str(&payloads[1]).unwrap();
        assert_eq!(second["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(payloads[3], "[DONE]");
    }

    #[test]
    fn lines_survive_any_split() {
        let text = "{\"a\":\"é\"}\r\n{\"b\":2}\n{\"c\"";
        for cut in 0..text.len() {
            let mut buf = LineBuffer::default();
            let mut lines = Vec::new();
            for part in [&text.as_bytes()[..cut], &text.as_bytes()[cut..]] {
                buf.push::<()>(part, |l| {
                    lines.push(l.to_vec());
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(
                lines,
                vec![b"{\"a\":\"\xc3\xa9\"}".to_vec(), b"{\"b\":2}".to_vec()]
            );
            assert_eq!(buf.take_rest(), b"{\"c\"".to_vec());
        }
    }
}
