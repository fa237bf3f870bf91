//! [`RequestRecord`]: one request's facts, gathered by the pipeline and reported once
//! its response body has ended — as metrics (requests, errors, latency, time to first
//! byte), and as the access-log line (`log.access`), an event of target
//! `switchyard::access` in the configured text or JSON format (formatted by hand, see
//! `access`). Never message content,
//! never a key or token: the caller is named by its key's name only.

mod access;

pub use access::{rfc3339, Precision};

use crate::metrics::{metrics, status_class};
use http::Method;
use serde::{Serialize, Serializer};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_config::LogFormat;

/// Model label for requests whose model is not known to the config or catalogue.
pub const OTHER_MODEL: &str = "other";

/// Model label for requests that name no model (`/v1/models`, health checks).
pub const NO_MODEL: &str = "none";

/// One request, as logged and exported. The fields a request already holds (its
/// method, arrival time, request id, the upstream's and model's shared names) are kept
/// as they are and turned into text only when a line or an export record is written.
/// Nothing in it may share the client connection's read buffer (a record waiting in
/// the export queue would keep that buffer alive): the path is copied, a client's
/// request id too (`pipeline::request_id`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestRecord {
    /// When the request arrived; written as RFC 3339 UTC with milliseconds.
    pub timestamp: Timestamp,
    /// `x-request-id`.
    pub request_id: RequestId,
    /// HTTP method.
    #[serde(serialize_with = "method_str")]
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// `chat`, `completions`, `embeddings`, `models` or `other`.
    pub endpoint: &'static str,
    /// The gateway key's name, when keys are configured.
    pub key: Option<String>,
    /// The model the client asked for.
    pub model: Option<String>,
    /// The model name sent upstream.
    pub served_model: Option<Arc<str>>,
    /// The upstream that answered.
    pub upstream: Option<Arc<str>>,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Response status.
    pub status: u16,
    /// OpenAI error code of a failed request.
    pub error_code: Option<String>,
    /// Request to end of body, milliseconds.
    pub latency_ms: f64,
    /// Request to first body byte, milliseconds (streams).
    pub ttfb_ms: Option<f64>,
    /// Prompt tokens, when the upstream reported usage.
    pub input_tokens: Option<u64>,
    /// Completion tokens, when the upstream reported usage.
    pub output_tokens: Option<u64>,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Whether the response was a stream.
    pub stream: bool,
    /// Why a started stream ended early, if it did.
    pub stream_error: Option<&'static str>,
    /// The response cache's verdict (`hit`, `miss`, `bypass`), when `cache:` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
    /// The bounded model label its metrics use (not logged).
    #[serde(skip)]
    pub model_label: &'static str,
    /// The model label when it is the asked model (known to the config or catalogue).
    #[serde(skip)]
    pub known_model: bool,
}

/// When a request arrived: RFC 3339 UTC with milliseconds as text
/// (`2026-11-30T20:21:11.042Z`); the epoch by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub SystemTime);

impl Default for Timestamp {
    fn default() -> Self {
        Self(SystemTime::UNIX_EPOCH)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = Vec::with_capacity(24);
        access::push_rfc3339(&mut text, self.0, Precision::Millis);
        // Only ASCII digits and separators were pushed.
        s.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

/// A request's `x-request-id`, as sent back to the client (a shared handle on its
/// bytes: no copy per record); written as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub http::HeaderValue);

impl RequestId {
    /// The id as text: a client's id in UTF-8 (`café`) as it came, other bytes
    /// replaced by U+FFFD. Borrowed, unless bytes had to be replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.0.as_bytes())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self(http::HeaderValue::from_static(""))
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

fn method_str<S: Serializer>(method: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(method.as_str())
}

/// Where a finished request is reported.
#[derive(Debug, Clone, Copy)]
pub struct Reporting {
    /// Count it in the request metrics (`metrics.enabled`).
    pub metrics: bool,
    /// Log its access line in this format (`log.access`, `server.log_format`), when
    /// `RUST_LOG` lets `switchyard::access` through.
    pub access_log: Option<LogFormat>,
}

impl RequestRecord {
    /// Counts the request in the metrics and logs its access line, as `to` says.
    pub fn report(&self, latency: Duration, ttfb: Option<Duration>, to: Reporting) {
        if to.metrics {
            self.count(latency, ttfb);
        }
        if let Some(format) = to.access_log {
            if access::enabled() {
                access::log(self, format);
            }
        }
    }

    fn count(&self, latency: Duration, ttfb: Option<Duration>) {
        let m = metrics();
        let model = match (&self.model, self.known_model) {
            (Some(model), true) => model.as_str(),
            _ => self.model_label,
        };
        m.requests
            .with_label_values(&[self.endpoint, model, status_class(self.status)])
            .inc();
        if let Some(code) = &self.error_code {
            m.request_errors
                .with_label_values(&[self.endpoint, code])
                .inc();
        }
        m.request_duration
            .with_label_values(&[self.endpoint, model])
            .observe(latency.as_secs_f64());
        if let (true, Some(ttfb)) = (self.stream, ttfb) {
            m.stream_ttfb
                .with_label_values(&[model])
                .observe(ttfb.as_secs_f64());
        }
        if let (Some(upstream), Some(input)) = (&self.upstream, self.input_tokens) {
            m.input_tokens
                .with_label_values(&[model, upstream])
                .inc_by(input);
            m.output_tokens
                .with_label_values(&[model, upstream])
                .inc_by(self.output_tokens.unwrap_or(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_models_are_counted_as_other() {
        let record = RequestRecord {
            endpoint: "chat",
            model: Some("made-up-model-xyz".to_owned()),
            model_label: OTHER_MODEL,
            status: 404,
            error_code: Some("model_not_found".to_owned()),
            ..RequestRecord::default()
        };
        let to = Reporting {
            metrics: true,
            access_log: None,
        };
        record.report(Duration::from_millis(1), None, to);
        let text = metrics().render();
        assert!(!text.contains("made-up-model-xyz"));
        assert!(text.contains(
            "switchyard_requests_total{endpoint=\"chat\",model=\"other\",status_class=\"4xx\"}"
        ));
    }
}
