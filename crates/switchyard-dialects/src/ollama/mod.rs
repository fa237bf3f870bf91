//! The native `ollama` dialect: OpenAI chat requests become Ollama `/api/chat`
//! requests ([`encode`]), its whole answer becomes a `chat.completion` ([`decode`]),
//! its NDJSON stream becomes `chat.completion.chunk` events ([`StreamDecoder`]), its
//! `{"error": "…"}` bodies become OpenAI errors ([`map_error`]), and `/api/tags`
//! becomes a model list ([`parse_models`]). Pure: no I/O; the gateway sends the bytes.
//! (Ollama's OpenAI-compatible `/v1` needs none of this: it is the `openai` dialect.)

mod decode;
mod encode;

pub use decode::{decode, StreamDecoder, MAX_LINE_BYTES};
pub use encode::encode;

use crate::translate::{error_type_for, DecodeError, MappedError};
use serde_json::Value;

/// The chat endpoint, relative to the upstream's base URL.
pub const CHAT_PATH: &str = "/api/chat";

/// The endpoint listing the models pulled on the server.
pub const MODELS_PATH: &str = "/api/tags";

/// The dialect's name in error messages.
const DIALECT: &str = "ollama";

/// An Ollama error answer (`{"error": "model 'x' not found"}`) in OpenAI's shape. The
/// status is kept; a 404 is a missing model (`model_not_found`); 408, 429 and 5xx may
/// be tried on another upstream.
pub fn map_error(status: u16, body: &[u8]) -> MappedError {
    let upstream = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .filter(|m| !m.trim().is_empty());
    let message = upstream.unwrap_or_else(|| format!("Ollama answered with status {status}"));
    let code = match status {
        404 => Some("model_not_found"),
        429 => Some("rate_limit_exceeded"),
        _ => None,
    };
    MappedError {
        status,
        body: crate::error_body(&message, error_type_for(status), None, code),
        retryable: status == 408 || status == 429 || status >= 500,
        retry_after_secs: None,
    }
}

/// The model names of an `/api/tags` answer (`{"models": [{"name", "model", …}]}`), in
/// its order; an entry without a name falls back to its `model`, then is skipped.
pub fn parse_models(body: &[u8]) -> Result<Vec<String>, DecodeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new(format!("Ollama model list is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(DecodeError::new("Ollama model list is not a JSON object"));
    };
    let models = match fields.get("models") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(models)) => models,
        Some(_) => return Err(DecodeError::new("Ollama `models` is not an array")),
    };
    Ok(models
        .iter()
        .filter_map(|m| {
            ["name", "model"]
                .iter()
                .find_map(|key| m.get(*key).and_then(Value::as_str))
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        })
        .collect())
}

#[cfg(test)]
mod tests;
