//! `GatewayError`: every way a request can fail before a response starts, with its
//! status and OpenAI `type` / `code` decided in one place; and [`Rejection`], a
//! plugin's refusal. This is the bottom layer: it imports nothing from the crate. The
//! response is built at the edge (`pipeline::respond`). Upstream 4xx replies are not
//! errors here: they are relayed as they came.

use http::{HeaderName, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// A plugin's refusal, sent to the client as an OpenAI-shaped error.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// HTTP status (400, 403, 429…).
    pub status: StatusCode,
    /// Shown to the client.
    pub message: String,
    /// OpenAI error `type`.
    pub kind: String,
    /// OpenAI error `code`.
    pub code: String,
    /// Extra response headers (`Retry-After`, `x-ratelimit-*`…).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Rejection {
    /// A rejection with no extra headers.
    pub fn new(status: StatusCode, kind: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: kind.to_owned(),
            code: code.to_owned(),
            headers: Vec::new(),
        }
    }
}

/// Why every attempt at the upstreams failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Every attempt timed out (connect, first byte).
    Timeout,
    /// Nothing could be tried.
    Unavailable,
    /// Connection errors, 5xx, garbage.
    BadGateway,
}

/// A request that failed before its response started.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Body is not JSON, not an object, or lacks what the endpoint needs.
    #[error("{message}")]
    BadRequest {
        /// Shown to the client.
        message: String,
        /// The offending parameter, if one.
        param: Option<&'static str>,
    },
    /// The request cannot be put in the chosen upstream's wire format (a field its
    /// dialect cannot carry, with `strict: true`; an endpoint it does not serve).
    #[error("{message}")]
    Untranslatable {
        /// Shown to the client.
        message: String,
        /// The request field at fault, if one (`messages[2].content`).
        param: Option<String>,
    },
    /// Body larger than `server.max_body_bytes`.
    #[error("request body is larger than the {limit}-byte limit")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// No route and no upstream serves this model.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    UnknownModel(String),
    /// The caller's key may not use this model (the message names no other model).
    #[error("This API key may not use the model `{0}`.")]
    ModelNotAllowed(String),
    /// The shared state store (Redis) cannot say whether the request is within its
    /// limits, and `state.on_unavailable` is `deny`.
    #[error("The shared {0} state cannot be reached; try again shortly.")]
    StateUnavailable(&'static str),
    /// The caller's key used up its budget for the current window.
    #[error("This API key has used its budget for the current window; it resets in {}s.", retry_after.as_secs())]
    BudgetExceeded {
        /// Until the window ends.
        retry_after: Duration,
    },
    /// A CORS preflight from an origin `server.cors` does not allow.
    #[error("The origin `{0}` is not allowed to call this API (server.cors.allow_origins).")]
    OriginNotAllowed(String),
    /// No such endpoint.
    #[error("Unknown request URL: {method} {path}")]
    NoSuchEndpoint {
        /// Request method.
        method: String,
        /// Request path (no query).
        path: String,
    },
    /// Several upstreams answered 429 (one alone is relayed as it came).
    #[error("all upstreams are rate limited (tried: {})", tried.join(", "))]
    RateLimited {
        /// Upstream names, in attempt order.
        tried: Vec<Arc<str>>,
        /// Smallest `Retry-After` any of them sent.
        retry_after: Option<Duration>,
        /// Whether any sent `retry-after-ms` (then it is sent too).
        retry_after_ms: bool,
    },
    /// Every attempt failed.
    #[error("{} (tried: {}){}", match kind {
        FailureKind::Timeout => "upstreams timed out",
        FailureKind::Unavailable => "no upstream is available",
        FailureKind::BadGateway => "upstreams failed",
    }, if tried.is_empty() { "none".to_owned() } else { tried.join(", ") },
    why.iter().map(|(up, why)| format!("; {up}: {why}")).collect::<String>())]
    UpstreamsFailed {
        /// What went wrong, overall.
        kind: FailureKind,
        /// Upstream names, in attempt order.
        tried: Vec<Arc<str>>,
        /// Reasons worth telling the client (a TLS certificate not trusted…), never a
        /// URL or a key.
        why: Vec<(Arc<str>, &'static str)>,
    },
    /// A forwarded request without a `model` and no upstream to send it to.
    #[error("{path} names no model to route by: send `x-switchyard-upstream: <upstream name>`{}, or set `routing.default_upstream`", named.as_ref().map(|n| format!(" (no upstream is named `{n}`)")).unwrap_or_default())]
    Unrouted {
        /// The request path.
        path: String,
        /// The upstream the request named, when it named one that does not exist.
        named: Option<String>,
    },
    /// Too many open streams.
    #[error("the gateway is at its limit of {0} concurrent streams; retry shortly")]
    Overloaded(u32),
    /// The upstream's response could not be read (for plugins that need it whole).
    #[error("the upstream response could not be read: {0}")]
    ResponseUnreadable(String),
    /// Keys are configured and the request had none, or an unknown one.
    #[error("Incorrect API key provided. Send a configured key as `Authorization: Bearer <key>`.")]
    Unauthorized,
    /// A plugin refused the request.
    #[error("{}", .0.message)]
    PluginRejected(Box<Rejection>),
    /// A `fail_closed` plugin errored, timed out or panicked.
    #[error("plugin `{0}` failed; the request was not processed")]
    PluginFailed(Arc<str>),
    /// The request head was larger than `server.max_header_bytes`.
    #[error("the request line and headers are larger than the {0}-byte limit")]
    HeadersTooLarge(u32),
    /// The request target was longer than the limit.
    #[error("the request URL is longer than the {0}-byte limit")]
    UriTooLong(usize),
    /// The request's framing is ambiguous (both `Content-Length` and
    /// `Transfer-Encoding`) or malformed: refused, and the connection closed.
    #[error("{0}")]
    BadFraming(&'static str),
    /// A `Transfer-Encoding` other than `chunked`.
    #[error("Transfer-Encoding `{0}` is not supported; send the body with Content-Length or Transfer-Encoding: chunked")]
    UnsupportedTransferEncoding(String),
    /// The request body stalled.
    #[error("the request body stalled: nothing arrived for {0:?}")]
    BodyTimeout(Duration),
}

impl GatewayError {
    /// The upstreams attempted, in order, when every attempt failed.
    pub fn tried(&self) -> Option<&[Arc<str>]> {
        match self {
            Self::RateLimited { tried, .. } | Self::UpstreamsFailed { tried, .. } => Some(tried),
            _ => None,
        }
    }

    /// Shorthand for a 400 about one parameter.
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::Untranslatable { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnknownModel(_) | Self::NoSuchEndpoint { .. } | Self::Unrouted { .. } => {
                StatusCode::NOT_FOUND
            }
            Self::ModelNotAllowed(_) | Self::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::BudgetExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamsFailed { kind, .. } => match kind {
                FailureKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                FailureKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                FailureKind::BadGateway => StatusCode::BAD_GATEWAY,
            },
            Self::Overloaded(_) | Self::StateUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::ResponseUnreadable(_) => StatusCode::BAD_GATEWAY,
            Self::PluginRejected(r) => r.status,
            Self::PluginFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::BadFraming(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedTransferEncoding(_) => StatusCode::NOT_IMPLEMENTED,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// OpenAI `type`, `param` and `code`.
    fn parts(&self) -> (&str, Option<&str>, &str) {
        match self {
            Self::BadRequest { param, .. } => ("invalid_request_error", *param, "invalid_request"),
            Self::Untranslatable { param, .. } => (
                "invalid_request_error",
                param.as_deref(),
                "unsupported_parameter",
            ),
            Self::BodyTooLarge { .. } => ("invalid_request_error", None, "request_too_large"),
            Self::UnknownModel(_) => ("invalid_request_error", Some("model"), "model_not_found"),
            Self::NoSuchEndpoint { .. } => ("invalid_request_error", None, "unknown_url"),
            Self::Unrouted { .. } => ("invalid_request_error", None, "no_upstream"),
            Self::OriginNotAllowed(_) => ("invalid_request_error", None, "origin_not_allowed"),
            Self::ModelNotAllowed(_) => {
                ("invalid_request_error", Some("model"), "model_not_allowed")
            }
            Self::BudgetExceeded { .. } => ("insufficient_quota", None, "budget_exceeded"),
            Self::RateLimited { .. } => ("rate_limit_error", None, "rate_limit_exceeded"),
            Self::UpstreamsFailed { kind, .. } => (
                "server_error",
                None,
                match kind {
                    FailureKind::Timeout => "upstream_timeout",
                    FailureKind::Unavailable => "upstream_unavailable",
                    FailureKind::BadGateway => "upstream_error",
                },
            ),
            Self::Overloaded(_) => ("server_error", None, "overloaded"),
            Self::StateUnavailable(_) => ("server_error", None, "state_unavailable"),
            Self::Unauthorized => ("invalid_request_error", None, "invalid_api_key"),
            Self::ResponseUnreadable(_) => ("server_error", None, "upstream_error"),
            Self::PluginRejected(r) => (&r.kind, None, &r.code),
            Self::PluginFailed(_) => ("server_error", None, "plugin_error"),
            Self::HeadersTooLarge(_) => ("invalid_request_error", None, "headers_too_large"),
            Self::UriTooLong(_) => ("invalid_request_error", None, "uri_too_long"),
            Self::BadFraming(_) => ("invalid_request_error", None, "bad_framing"),
            Self::UnsupportedTransferEncoding(_) => (
                "invalid_request_error",
                None,
                "unsupported_transfer_encoding",
            ),
            Self::BodyTimeout(_) => ("invalid_request_error", None, "request_timeout"),
        }
    }

    /// Whether the client connection must close after this error's response: the
    /// request's framing cannot be trusted, or its body was not read to the end.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::HeadersTooLarge(_)
                | Self::UriTooLong(_)
                | Self::BadFraming(_)
                | Self::UnsupportedTransferEncoding(_)
                | Self::BodyTimeout(_)
        )
    }

    /// Low-cardinality label for logs and, later, metrics.
    pub fn code(&self) -> &str {
        self.parts().2
    }

    /// The OpenAI-shaped error body as JSON (for `error` plugins).
    pub fn body_json(&self) -> serde_json::Value {
        let (kind, param, code) = self.parts();
        serde_json::json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}})
    }

    /// Response headers the error carries: `Retry-After` for upstream rate limits, a
    /// rejecting plugin's own headers.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Self::RateLimited {
                retry_after: Some(after),
                retry_after_ms,
                ..
            } => {
                let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                let mut headers = vec![(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)))];
                if *retry_after_ms {
                    let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
                    headers.push((
                        HeaderName::from_static("retry-after-ms"),
                        HeaderValue::from(ms),
                    ));
                }
                headers
            }
            Self::BudgetExceeded { retry_after } => vec![(
                http::header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            )],
            // Too many open streams clears up within seconds.
            Self::Overloaded(_) | Self::StateUnavailable(_) => {
                vec![(http::header::RETRY_AFTER, HeaderValue::from_static("1"))]
            }
            Self::PluginRejected(r) => r.headers.clone(),
            _ => Vec::new(),
        }
    }
}
