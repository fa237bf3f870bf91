//! Pure translation between the OpenAI wire format and each upstream dialect.
//!
//! Owns: reading the few request fields the gateway needs ([`peek`]), rewriting the
//! `model` value in place without re-serialising the body ([`rewrite_model`]), token
//! usage (asking a stream for it in place, reading it back: [`usage`]), SSE framing
//! ([`sse`]), OpenAI-shaped error bodies ([`error_body`]), the built-in `mock`
//! dialect ([`mock`]) and the pure half of the response cache (keys, stream ⇄ JSON:
//! [`cache`]). Does not own: sockets, timeouts, routing — no I/O here.

pub mod anthropic;
pub mod azure;
pub mod cache;
pub mod complete;
pub mod gemini;
pub mod messages;
pub mod mock;
pub mod multipart;
pub mod ollama;
mod raw;
pub mod responses;
pub mod sse;
pub mod translate;
pub mod usage;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use std::str::FromStr;

/// The wire format an upstream speaks. This is the only place a dialect is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI's HTTP API and everything compatible with it (Groq, Mistral, vLLM, LM Studio,
    /// Ollama's `/v1`, GitHub Models…): bodies pass through unchanged.
    OpenAi,
    /// In-process echo model for demos and smoke tests; no network.
    Mock,
    /// Anthropic's Messages API (`/v1/messages`), translated.
    Anthropic,
    /// Google's Gemini API (`generateContent`), translated.
    Gemini,
    /// Azure OpenAI: OpenAI bodies on deployment paths with `api-version`.
    Azure,
    /// Ollama's native API (`/api/chat`, NDJSON streams), translated.
    Ollama,
}

impl Dialect {
    /// Every accepted spelling, for error messages.
    pub const NAMES: &'static [&'static str] =
        &["openai", "mock", "anthropic", "gemini", "azure", "ollama"];

    /// Canonical name, as written in `gateway.yaml`.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Mock => "mock",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Azure => "azure",
            Self::Ollama => "ollama",
        }
    }

    /// Whether request and answer bodies are translated (not OpenAI's wire format).
    pub fn translates(self) -> bool {
        matches!(self, Self::Anthropic | Self::Gemini | Self::Ollama)
    }

    /// The header a plain API key is sent in (`auth: {type: bearer}` in config), when
    /// the dialect has its own.
    pub fn key_header(self) -> Option<&'static str> {
        match self {
            Self::Anthropic => Some("x-api-key"),
            Self::Gemini => Some("x-goog-api-key"),
            Self::Azure => Some("api-key"),
            Self::OpenAi | Self::Mock | Self::Ollama => None,
        }
    }

    /// The base URL used when the config gives none.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::Anthropic => Some("https://api.anthropic.com"),
            Self::Gemini => Some("https://generativelanguage.googleapis.com/v1beta"),
            Self::Ollama => Some("http://127.0.0.1:11434"),
            Self::OpenAi | Self::Mock | Self::Azure => None,
        }
    }
}

impl Dialect {
    /// Whether a streaming request to this dialect can ask for a usage chunk with
    /// OpenAI's `stream_options.include_usage` (see [`usage::ask_for_usage`]).
    pub fn takes_stream_options(self) -> bool {
        match self {
            Self::OpenAi | Self::Mock | Self::Azure => true,
            // Translated: the encoder reads it, the decoder writes the usage chunk.
            Self::Anthropic | Self::Gemini | Self::Ollama => true,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(Self::OpenAi),
            "mock" => Ok(Self::Mock),
            "anthropic" => Ok(Self::Anthropic),
            "gemini" => Ok(Self::Gemini),
            "azure" => Ok(Self::Azure),
            "ollama" => Ok(Self::Ollama),
            other => Err(format!(
                "unknown dialect `{other}` (expected one of: {})",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// The request fields the gateway reads, borrowed from the body. Everything else is
/// skipped by the parser and forwarded untouched.
#[derive(Debug)]
pub struct Peek<'a> {
    /// The `model` value, unescaped.
    pub model: String,
    /// Byte range of the `model` JSON string (quotes included) inside the body.
    pub model_span: std::ops::Range<usize>,
    /// `"stream": true`.
    pub stream: bool,
    /// Byte range of the `stream_options` value (any JSON value, `null` included).
    pub stream_options_span: Option<std::ops::Range<usize>>,
    /// `"stream_options": {"include_usage": true}`: the client asked for a usage chunk.
    pub include_usage: bool,
    /// The whole body the fields were read from.
    pub raw: &'a [u8],
}

/// Why a body could not be peeked; the message is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekError {
    /// Not JSON, or not an object.
    Malformed(String),
    /// No `model`, or not a string.
    MissingModel,
    /// `stream` present but not a boolean.
    BadStream,
}

impl fmt::Display for PeekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "request body is not valid JSON: {e}"),
            Self::MissingModel => f.write_str("you must provide a model parameter"),
            Self::BadStream => f.write_str("`stream` must be a boolean"),
        }
    }
}

#[derive(Deserialize)]
struct PeekFields<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    /// `Some` whenever the key is there, `null` included (its span is replaced).
    #[serde(borrow, default, deserialize_with = "raw_even_if_null")]
    stream_options: Option<&'a RawValue>,
}

fn raw_even_if_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct StreamOptionsFields<'a> {
    #[serde(borrow, default)]
    include_usage: Option<&'a RawValue>,
}

/// Reads `model`, `stream` and `stream_options` from a JSON request body without
/// building a tree (only a present `stream_options` object is looked into).
pub fn peek(body: &[u8]) -> Result<Peek<'_>, PeekError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(PeekError::Malformed("expected a JSON object".to_owned()));
    }
    let fields: PeekFields<'_> =
        serde_json::from_slice(body).map_err(|e| PeekError::Malformed(e.to_string()))?;
    let raw_model = fields.model.ok_or(PeekError::MissingModel)?;
    let model: String =
        serde_json::from_str(raw_model.get()).map_err(|_not_a_string| PeekError::MissingModel)?;
    if model.is_empty() {
        return Err(PeekError::MissingModel);
    }
    let model_span = span_of(body, raw_model.get().as_bytes());
    let stream = match fields.stream.map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(PeekError::BadStream),
    };
    // A `stream_options` that is not an object is the upstream's to refuse.
    let include_usage = fields.stream_options.is_some_and(|raw| {
        raw.get().starts_with('{')
            && serde_json::from_str::<StreamOptionsFields<'_>>(raw.get())
                .is_ok_and(|o| o.include_usage.is_some_and(|v| v.get() == "true"))
    });
    Ok(Peek {
        model,
        model_span,
        stream,
        stream_options_span: fields
            .stream_options
            .map(|raw| span_of(body, raw.get().as_bytes())),
        include_usage,
        raw: body,
    })
}

/// Where `inner` (a sub-slice borrowed from `outer`) sits inside `outer`.
fn span_of(outer: &[u8], inner: &[u8]) -> std::ops::Range<usize> {
    let start = (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    start..start + inner.len()
}

/// Replaces the `model` value of a peeked body with `new_model`, copying the rest of the
/// bytes as they are (no re-serialisation, key order and formatting kept).
pub fn rewrite_model(peek: &Peek<'_>, new_model: &str) -> Bytes {
    let quoted = serde_json::Value::String(new_model.to_owned()).to_string();
    splice(peek.raw, peek.model_span.clone(), quoted.as_bytes())
}

/// `body` with the bytes of `span` replaced by `with` (a span outside the body
/// replaces nothing), the rest copied as it is.
pub fn splice(body: &[u8], span: std::ops::Range<usize>, with: &[u8]) -> Bytes {
    let (before, after) = (body.get(..span.start), body.get(span.end..));
    let mut out = BytesMut::with_capacity(body.len() + with.len());
    out.extend_from_slice(before.unwrap_or_default());
    out.extend_from_slice(with);
    out.extend_from_slice(after.unwrap_or_default());
    out.freeze()
}

/// An OpenAI-shaped error body: `{"error":{"message","type","param","code"}}`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Bytes {
    let value = serde_json::json!({
        "error": { "message": message, "type": kind, "param": param, "code": code }
    });
    Bytes::from(value.to_string())
}

/// The same error as one SSE event, for a stream that breaks after bytes were sent.
pub fn error_event(message: &str, kind: &str, code: Option<&str>) -> Bytes {
    let body = error_body(message, kind, None, code);
    let mut out = BytesMut::with_capacity(body.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

#[cfg(test)]
mod tests;
