//! The `gemini` dialect: OpenAI chat ⇄ the Google Gemini API (`generateContent`,
//! `streamGenerateContent?alt=sse`, `models.list`), relative to a base URL such as
//! `https://generativelanguage.googleapis.com/v1beta`. Pure translation; the daemon sends
//! the API key in the `x-goog-api-key` header — it never appears in a path built here.
//!
//! Owns: the request ([`encode`], in `request`; its messages in `messages`), the whole answer ([`decode`], in
//! `response`), the stream ([`StreamDecoder`], in `stream`), error answers
//! ([`map_error`]) and the model list ([`models_path`], [`parse_models`]).
//!
//! Choices worth knowing:
//! - `response_format: json_schema` is sent as `responseJsonSchema` (plain JSON Schema,
//!   Gemini 2.5 and later) rather than `responseSchema` (an OpenAPI subset that refuses
//!   `additionalProperties`, `$ref` and the like, which OpenAI schemas use). For the
//!   same reason a tool's `parameters` are sent as `parametersJsonSchema`.
//! - Tool call ids are synthesized (`call_<reply id>_<n>`), the same in a stream and in
//!   a whole answer. A call's `thoughtSignature` travels to the client as
//!   `extra_content.google.thought_signature` (as on Gemini's own OpenAI endpoint) and
//!   back; a replayed first call without one gets Google's documented stand-in, since
//!   Gemini 3 refuses function calls in the history without a signature.
//! - A blocked prompt (`promptFeedback.blockReason`, no candidates) answers an empty
//!   assistant message with `finish_reason: "content_filter"`.
//! - A stream with `n` > 1 drops `n` (the stream carries choice 0 only).

mod messages;
mod request;
mod response;
mod stream;

pub use request::encode;
pub use response::decode;
pub use stream::StreamDecoder;

use crate::error_body;
use crate::translate::{error_type_for, DecodeError, MappedError};
use serde_json::Value;

/// The path listing models, 1000 a page: `/models?pageSize=1000`, plus
/// `&pageToken=…` (percent-encoded) for a later page.
pub fn models_path(page_token: Option<&str>) -> String {
    match page_token {
        Some(token) => format!("/models?pageSize=1000&pageToken={}", path_segment(token)),
        None => "/models?pageSize=1000".to_owned(),
    }
}

/// Reads a `models.list` answer: the ids (without `models/`) of the models whose
/// `supportedGenerationMethods` include `generateContent`, and the next page's token.
pub fn parse_models(body: &[u8]) -> Result<(Vec<String>, Option<String>), DecodeError> {
    let list: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new(format!("gemini model list is not valid JSON: {e}")))?;
    if !list.is_object() {
        return Err(DecodeError::new("gemini model list is not a JSON object"));
    }
    let models = match list.get("models") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(models)) => models.as_slice(),
        Some(_) => {
            return Err(DecodeError::new(
                "gemini model list: `models` is not an array",
            ))
        }
    };
    let ids = models
        .iter()
        .filter(|m| {
            m.get("supportedGenerationMethods")
                .and_then(Value::as_array)
                .is_some_and(|ms| ms.iter().any(|x| x == "generateContent"))
        })
        .filter_map(|m| m.get("name").and_then(Value::as_str))
        .map(|name| name.strip_prefix("models/").unwrap_or(name).to_owned())
        .collect();
    let next = list
        .get("nextPageToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok((ids, next))
}

/// A Gemini error answer (`{"error":{"code","message","status"}}`, or that object
/// wrapped in an array) in OpenAI's shape. The status comes from Gemini's `status`
/// name when known, else from the HTTP status; 429 and 5xx but 501 are retryable.
pub fn map_error(status: u16, body: &[u8]) -> MappedError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| match v {
        Value::Array(items) => items.first().and_then(|i| i.get("error")),
        other => other.get("error"),
    });
    let name = error.and_then(|e| e.get("status")).and_then(Value::as_str);
    // A wrong API key is answered 400 INVALID_ARGUMENT with this reason: to an OpenAI
    // client it is a 401.
    let bad_key = error
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .is_some_and(|ds| {
            ds.iter()
                .any(|d| d.get("reason") == Some(&Value::from("API_KEY_INVALID")))
        });
    let mapped = if bad_key {
        401
    } else {
        name.and_then(status_for).unwrap_or(status)
    };
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map_or_else(
            || format!("the gemini upstream answered HTTP {status}"),
            str::to_owned,
        );
    MappedError {
        status: mapped,
        body: error_body(&message, error_type_for(mapped), None, name),
        // Another upstream may well succeed; 501 (not implemented) would fail there too.
        retryable: mapped == 429 || (mapped >= 500 && mapped != 501),
        retry_after_secs: retry_delay(error),
    }
}

/// `RetryInfo.retryDelay` ("36.2s") of an error's details, rounded up to seconds.
fn retry_delay(error: Option<&Value>) -> Option<u64> {
    let secs = error?
        .get("details")?
        .as_array()?
        .iter()
        .filter_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .find_map(|d| d.strip_suffix('s')?.parse::<f64>().ok())?;
    (secs.is_finite() && secs >= 0.0).then(|| secs.ceil().min(86_400.0) as u64)
}

/// The HTTP status of a Google RPC status name.
fn status_for(name: &str) -> Option<u16> {
    Some(match name {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ALREADY_EXISTS" | "ABORTED" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a path segment or
/// a query value.
fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_keep_unreserved_bytes_only() {
        assert_eq!(path_segment("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(path_segment("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn status_names_map_to_http_statuses() {
        assert_eq!(status_for("FAILED_PRECONDITION"), Some(400));
        assert_eq!(status_for("UNAVAILABLE"), Some(503));
        assert_eq!(status_for("SOMETHING_NEW"), None);
    }
}
