//! Operator-configured plugins. This file owns the contract between the chain and a
//! plugin: the [`Plugin`] trait, what a plugin sees ([`RequestMeta`], [`Exchange`],
//! [`ResponseExchange`]) and what it may answer ([`Verdict`]), plus the registry that
//! maps a YAML `name` to a constructor. The chain that runs them is in `chain`; each
//! built-in plugin is one file.
//!
//! Adding a plugin: implement [`Plugin`] in a new file with a `build` function, add one
//! line to [`REGISTRY`]. See the README's worked example.

pub mod chain;
mod content_filter;
mod http_plugin;
mod isolate;
mod params;
mod rate_limiter;
#[cfg(test)]
mod require_user; // the README's worked example, compiled and tested
mod selector;
mod system_prompt;
mod token_limiter;
mod user_headers;

pub use chain::Chain;

pub use crate::error::Rejection;

use crate::caller::Caller;
use crate::client::Clients;
use crate::endpoint::Endpoint;
use crate::state::Shared;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use switchyard_config::{ConfigError, PluginSpec, Stage};

/// A plugin's asynchronous answer.
pub type PluginFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PluginError>> + Send + 'a>>;

/// A change to a JSON body, applied by the chain after the plugin returns.
pub type Patch = Box<dyn FnOnce(&mut Value) + Send>;

/// A plugin's own failure (not a rejection): the service it calls is unreachable or
/// answered something unusable. The plugin's `on_error` policy decides what happens
/// next.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The call out failed before an answer (connect, I/O).
    #[error("{0}")]
    Unreachable(String),
    /// The service answered with a non-success status.
    #[error("the plugin service answered {0}")]
    Status(StatusCode),
    /// The answer could not be read or understood.
    #[error("the plugin service's answer is not valid: {0}")]
    BadAnswer(String),
}

/// What a plugin wants done besides letting the request go on.
#[derive(Default)]
pub struct Effects {
    /// A change to the body (request at `pre_request`, response at `post_response`).
    /// Only sequential plugins may change bodies.
    pub patch: Option<Patch>,
    /// Headers added to the upstream request (sequential plugins only).
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers added to the client's response (any plugin).
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("patch", &self.patch.is_some())
            .field("upstream_headers", &self.upstream_headers)
            .field("response_headers", &self.response_headers)
            .finish()
    }
}

/// A plugin's answer at `pre_request`, `post_response` or `error`.
#[derive(Debug)]
pub enum Verdict {
    /// Go on, with these effects.
    Continue(Effects),
    /// Stop the chain and answer with this error.
    Reject(Rejection),
}

impl Verdict {
    /// Go on, changing nothing.
    pub fn pass() -> Self {
        Self::Continue(Effects::default())
    }

    /// Go on after changing the body.
    pub fn patch(f: impl FnOnce(&mut Value) + Send + 'static) -> Self {
        Self::Continue(Effects {
            patch: Some(Box::new(f)),
            ..Effects::default()
        })
    }
}

/// Token counts of one exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
}

impl Usage {
    /// Reads an OpenAI `usage` object.
    pub fn from_json(v: &Value) -> Option<Self> {
        let u = v.get("usage")?;
        Some(Self {
            prompt: u.get("prompt_tokens")?.as_u64()?,
            completion: u
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
    }

    /// Prompt plus completion.
    pub fn total(self) -> u64 {
        self.prompt + self.completion
    }
}

/// What every plugin knows about the request. Built once per request. Its `Debug` shows
/// the client's header names, not their values (`Authorization`…).
pub struct RequestMeta {
    /// `x-request-id`.
    pub request_id: HeaderValue,
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The model the client asked for (routing uses the body, which plugins may change;
    /// this stays what the client sent, so limits and selectors agree across stages).
    pub model: String,
    /// `"stream": true`.
    pub stream: bool,
    /// Who is calling.
    pub caller: Caller,
    /// The client's request headers.
    pub headers: HeaderMap,
}

impl std::fmt::Debug for RequestMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("RequestMeta")
            .field("request_id", &self.request_id)
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("stream", &self.stream)
            .field("caller", &self.caller)
            .field("headers", &headers)
            .finish()
    }
}

#[cfg(test)]
impl RequestMeta {
    /// An anonymous chat request for `model`.
    pub(crate) fn for_tests(model: &str) -> Self {
        Self {
            request_id: HeaderValue::from_static("test"),
            endpoint: Endpoint::Chat,
            model: model.to_owned(),
            stream: false,
            caller: Caller {
                key: None,
                token_hash: None,
                ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            },
            headers: HeaderMap::new(),
        }
    }
}

/// A request as a `pre_request` plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// Request facts.
    pub meta: &'a RequestMeta,
    /// The request JSON, when the plugin asked for it ([`Plugin::needs_request_body`]).
    pub body: Option<&'a Value>,
}

/// A finished response as a `post_response` plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct ResponseExchange<'a> {
    /// Request facts.
    pub meta: &'a RequestMeta,
    /// The request JSON, if any plugin parsed it.
    pub request: Option<&'a Value>,
    /// Response status.
    pub status: StatusCode,
    /// The response JSON (non-streamed responses, when asked for).
    pub body: Option<&'a Value>,
    /// Usage, when the upstream reported it.
    pub usage: Option<Usage>,
    /// Whether this was a stream (then `body` is `None` and changes are ignored).
    pub streamed: bool,
    /// For streams: the assistant text, when a plugin asked for it.
    pub content: Option<&'a str>,
}

/// A failed request as an `error` plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct ErrorExchange<'a> {
    /// Request facts (absent when the request failed before they were known).
    pub meta: Option<&'a RequestMeta>,
    /// The error status.
    pub status: StatusCode,
    /// The OpenAI-shaped error body about to be sent.
    pub body: &'a Value,
}

/// One SSE event of a stream, as `on_chunk` filters see it. Parsed on demand.
#[derive(Debug)]
pub struct SseEvent {
    raw: bytes::Bytes,
    json: Option<Value>,
    parsed: bool,
    modified: bool,
}

impl SseEvent {
    /// Wraps one complete event (terminator included).
    pub fn new(raw: bytes::Bytes) -> Self {
        Self {
            raw,
            json: None,
            parsed: false,
            modified: false,
        }
    }

    /// The event's data payload, unparsed (`[DONE]`, JSON text…); `None` for comments.
    /// Borrowed from the event in the usual one-line case.
    pub fn data(&self) -> Option<std::borrow::Cow<'_, str>> {
        switchyard_dialects::sse::single_data(&self.raw)
    }

    /// Whether this is the `[DONE]` terminator.
    pub fn is_done(&self) -> bool {
        self.raw.len() < 32 && self.data().is_some_and(|d| d.trim() == "[DONE]")
    }

    /// Reads the data as a typed view borrowing from the event — the cheap way to look
    /// at a few fields (no tree is built, nothing changes).
    pub fn view<'a, T: serde::Deserialize<'a>>(&'a self) -> Option<T> {
        match switchyard_dialects::sse::single_data(&self.raw)? {
            std::borrow::Cow::Borrowed(text) => serde_json::from_str(text).ok(),
            std::borrow::Cow::Owned(_) => None,
        }
    }

    /// The data as JSON, parsed on first use.
    pub fn json(&mut self) -> Option<&Value> {
        self.parse();
        self.json.as_ref()
    }

    /// The data as mutable JSON; the event is re-serialised when sent.
    pub fn json_mut(&mut self) -> Option<&mut Value> {
        self.parse();
        self.modified |= self.json.is_some();
        self.json.as_mut()
    }

    fn parse(&mut self) {
        if !self.parsed {
            self.parsed = true;
            self.json = self.data().and_then(|d| serde_json::from_str(&d).ok());
        }
    }

    /// The bytes to send: the original, or the re-serialised JSON if it changed.
    pub fn into_bytes(self) -> bytes::Bytes {
        match (self.modified, &self.json) {
            (true, Some(v)) => switchyard_dialects::sse::data_event(&v.to_string()),
            _ => self.raw,
        }
    }
}

/// What an `on_chunk` filter does with one event.
#[derive(Debug)]
pub enum ChunkVerdict {
    /// Send it (possibly changed through [`SseEvent::json_mut`]).
    Pass,
    /// Leave it out.
    Drop,
    /// End the stream with this error event.
    End(Rejection),
}

/// Per-stream state of an `on_chunk` plugin. Called in order for every event.
pub trait ChunkFilter: Send {
    /// Looks at (and may change) one event.
    fn on_event(&mut self, event: &mut SseEvent) -> ChunkVerdict;

    /// The stream is ending (`[DONE]`, or the upstream finished): events to send for
    /// anything held back. They go through the filters after this one.
    fn flush(&mut self) -> Vec<bytes::Bytes> {
        Vec::new()
    }
}

/// A plugin. Every method has a default that does nothing, so a plugin implements
/// only the stages it supports. Methods run concurrently for different requests: keep
/// state in atomics or locks that are never held across `.await`.
pub trait Plugin: Send + Sync + 'static {
    /// Whether `pre_request` needs the request JSON (parsing it costs; say no if you
    /// only look at the model, caller or headers).
    fn needs_request_body(&self) -> bool {
        false
    }

    /// Whether `post_response` needs the response JSON (non-streamed responses are
    /// then buffered) or, for streams, the assembled text.
    fn needs_response_body(&self) -> bool {
        false
    }

    /// Whether `post_response` needs token usage (streams then ask the upstream for a
    /// usage chunk, which is hidden from clients that did not ask for it).
    fn needs_usage(&self) -> bool {
        false
    }

    /// Whether this plugin may change bodies or upstream headers; such plugins cannot
    /// be configured `parallel: true`.
    fn modifies(&self) -> bool {
        false
    }

    /// Before routing.
    fn pre_request<'a>(&'a self, _ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        Box::pin(std::future::ready(Ok(Verdict::pass())))
    }

    /// A filter for one stream, or `None` to leave this stream alone.
    fn chunk_filter(&self, _meta: &RequestMeta) -> Option<Box<dyn ChunkFilter>> {
        None
    }

    /// After a complete response, or once at the end of a stream.
    fn post_response<'a>(&'a self, _ex: ResponseExchange<'a>) -> PluginFuture<'a, Verdict> {
        Box::pin(std::future::ready(Ok(Verdict::pass())))
    }

    /// When a request fails: observe, or patch the error body.
    fn on_error<'a>(&'a self, _ex: ErrorExchange<'a>) -> PluginFuture<'a, Verdict> {
        Box::pin(std::future::ready(Ok(Verdict::pass())))
    }
}

/// What a constructor gets.
#[derive(Debug)]
pub struct BuildCtx<'a> {
    /// The entry as configured.
    pub spec: &'a PluginSpec,
    /// HTTP clients (for plugins that call out).
    pub clients: &'a Clients,
    /// The shared state store, when `state.backend` is redis (limits kept there are
    /// enforced across replicas).
    pub state: Option<&'a Arc<Shared>>,
}

impl BuildCtx<'_> {
    /// The entry's `config`, typed, with unknown keys and bad values reported at their
    /// YAML path.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Vec<ConfigError>> {
        serde_path_to_error::deserialize(self.spec.config.clone()).map_err(|e| {
            let inner = e.path().to_string();
            let path = if inner == "." {
                format!("{}.config", self.spec.path)
            } else {
                format!("{}.config.{inner}", self.spec.path)
            };
            let message = switchyard_config::hide_string_values(&e.into_inner().to_string());
            vec![config_error(path, message)]
        })
    }

    /// An error about one field of this entry's `config`.
    pub fn error(&self, field: &str, message: impl Into<String>) -> Vec<ConfigError> {
        vec![config_error(
            format!("{}.config.{field}", self.spec.path),
            message.into(),
        )]
    }
}

/// Builds a [`ConfigError`] (its constructor is private to the config crate).
pub fn config_error(path: String, message: String) -> ConfigError {
    ConfigError { path, message }
}

/// A plugin constructor: the entry in, the plugin or every problem (with its path) out.
pub type Constructor = fn(&BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>>;

/// A registered plugin: its name, the stages it can run at, the stages it runs at
/// when `stage` is omitted, and its constructor.
#[derive(Debug)]
pub struct Registration {
    /// YAML `name`.
    pub name: &'static str,
    /// Stages it implements.
    pub stages: &'static [Stage],
    /// Stages used when `stage` is omitted.
    pub default_stages: &'static [Stage],
    /// Constructor.
    pub build: Constructor,
}

use Stage::{Error as ErrorStage, OnChunk, PostResponse, PreRequest};

/// Every plugin the gateway knows, by name. Add yours here.
pub const REGISTRY: &[Registration] = &[
    Registration {
        name: "rate_limiter",
        stages: &[PreRequest],
        default_stages: &[PreRequest],
        build: rate_limiter::build,
    },
    Registration {
        name: "token_limiter",
        stages: &[PreRequest, PostResponse],
        default_stages: &[PreRequest, PostResponse],
        build: token_limiter::build,
    },
    Registration {
        name: "content_filter",
        stages: &[PreRequest, OnChunk, PostResponse],
        default_stages: &[PreRequest],
        build: content_filter::build,
    },
    Registration {
        name: "system_prompt",
        stages: &[PreRequest],
        default_stages: &[PreRequest],
        build: system_prompt::build,
    },
    Registration {
        name: "params",
        stages: &[PreRequest],
        default_stages: &[PreRequest],
        build: params::build,
    },
    Registration {
        name: "user_headers",
        stages: &[PreRequest],
        default_stages: &[PreRequest],
        build: user_headers::build,
    },
    Registration {
        name: "http",
        stages: &[PreRequest, PostResponse, ErrorStage],
        default_stages: &[PreRequest],
        build: http_plugin::build,
    },
];

/// Deserialises a duration written as `250ms`, `5s`, `1m`, `2h` or a number of seconds.
pub fn de_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::time::Duration, D::Error> {
    use serde::Deserialize;
    let v = Value::deserialize(d)?;
    let parsed = match &v {
        Value::Number(n) => switchyard_config::parse_duration(&n.to_string()),
        Value::String(s) => switchyard_config::parse_duration(s),
        other => Err(format!(
            "`{other}` is not a duration like 250ms, 5s, 1m or 2h"
        )),
    };
    // The parser refuses zero and more than 30 days itself.
    parsed.map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_meta_debug_shows_header_names_not_values() {
        let mut meta = RequestMeta::for_tests("m");
        meta.headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-client-456"),
        );
        let shown = format!("{meta:?}");
        assert!(shown.contains("authorization"), "{shown}");
        assert!(!shown.contains("sk-client-456"), "{shown}");
    }
}
