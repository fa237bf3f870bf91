//! The `anthropic` dialect: OpenAI chat ⇄ Anthropic Messages API (`/v1/messages`).
//!
//! Owns: turning an OpenAI chat request into a Messages request ([`encode()`]), a Messages
//! answer into a `chat.completion` ([`decode()`]), a Messages SSE stream into
//! `chat.completion.chunk` events ([`StreamDecoder`]), Anthropic error bodies into
//! OpenAI's shape ([`map_error`]) and the model list ([`parse_models`]). Does not own:
//! headers (`x-api-key`, `anthropic-version` = [`DEFAULT_VERSION`]), sockets, retries —
//! the daemon does those. Pure: no I/O, no clock.

mod decode;
mod encode;
mod messages;
mod stream;

pub use decode::decode;
pub use encode::{encode, supports_thinking};
pub use stream::StreamDecoder;

use crate::error_body;
use crate::translate::{error_type_for, DecodeError, MappedError};
use serde_json::Value;

/// Path of the Messages endpoint, appended to the upstream's base URL.
pub const MESSAGES_PATH: &str = "/v1/messages";
/// Path of the model list endpoint.
pub const MODELS_PATH: &str = "/v1/models";
/// The `anthropic-version` header value the daemon sends.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// `max_tokens` sent when neither the client nor `Settings.default_max_tokens` gave one
/// (the Messages API requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The dialect's name in error messages.
const NAME: &str = "anthropic";

/// Maps an Anthropic error answer (`{"type":"error","error":{"type","message"}}`) to
/// OpenAI's shape: the status the client gets, the body, and whether another upstream
/// should be tried. A body that is not Anthropic's error JSON gets a message made from
/// the status.
pub fn map_error(status: u16, body: &[u8]) -> MappedError {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let error = v.get("error")?;
            let kind = error.get("type")?.as_str()?.to_owned();
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Some((kind, message))
        });
    let (anthropic_type, message) = match parsed {
        Some((kind, message)) => (Some(kind), message),
        None => (
            None,
            format!("anthropic upstream answered {}", status_text(status)),
        ),
    };
    let mapped = match anthropic_type.as_deref() {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("billing_error") => 402,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        Some("rate_limit_error") => 429,
        Some("api_error") => 500,
        Some("overloaded_error") => 503,
        Some("timeout_error") => 504,
        _ => match status {
            529 => 503,
            400..=599 => status,
            _ => 502,
        },
    };
    let retryable = mapped == 429 || mapped >= 500;
    let kind = error_type_for(mapped);
    let message = if message.is_empty() {
        format!("anthropic upstream answered {}", status_text(status))
    } else {
        message
    };
    // The upstream's own type is kept as `code` when OpenAI's `type` does not say it
    // (529 is Anthropic's overloaded status even when the body is not theirs).
    let code = match anthropic_type.as_deref() {
        Some(t) => Some(t).filter(|t| *t != kind),
        None => (status == 529).then_some("overloaded_error"),
    };
    MappedError {
        status: mapped,
        body: error_body(&message, kind, None, code),
        retryable,
        retry_after_secs: None,
    }
}

/// A status as `529 Overloaded`, for messages made without an upstream body.
fn status_text(status: u16) -> String {
    let reason = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "",
    };
    if reason.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {reason}")
    }
}

/// The model ids of a `GET /v1/models` answer (`{"data":[{"id":…},…]}`).
pub fn parse_models(body: &[u8]) -> Result<Vec<String>, DecodeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new(format!("anthropic model list is not JSON: {e}")))?;
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| DecodeError::new("anthropic model list has no `data` array"))?;
    Ok(data
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests;
