//! [`RequestRecord`]: one request's facts, gathered by the pipeline and reported once
//! its response body has ended — as metrics (requests, errors, latency, time to first
//! byte), and as the access-log line (`log.access`), an event of target
//! `switchyard::access` in the configured text or JSON format. Never message content,
//! never a key or token: the caller is named by its key's name only.

use crate::metrics::{metrics, status_class};
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Model label for requests whose model is not known to the config or catalogue.
pub const OTHER_MODEL: &str = "other";

/// Model label for requests that name no model (`/v1/models`, health checks).
pub const NO_MODEL: &str = "none";

/// One request, as logged and exported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestRecord {
    /// When the request arrived, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// `x-request-id`.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// `chat`, `completions`, `embeddings`, `models` or `other`.
    pub endpoint: &'static str,
    /// The gateway key's name, when keys are configured.
    pub key: Option<String>,
    /// The model the client asked for.
    pub model: Option<String>,
    /// The model name sent upstream.
    pub served_model: Option<String>,
    /// The upstream that answered.
    pub upstream: Option<String>,
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
    /// The bounded model label its metrics use (not logged).
    #[serde(skip)]
    pub model_label: &'static str,
    /// The model label when it is the asked model (known to the config or catalogue).
    #[serde(skip)]
    pub known_model: bool,
}

impl RequestRecord {
    /// Counts the request in the metrics and, when `access_log`, logs its line.
    pub fn report(&self, latency: Duration, ttfb: Option<Duration>, access_log: bool) {
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
        if access_log {
            self.log();
        }
    }

    fn log(&self) {
        tracing::info!(
            target: "switchyard::access",
            timestamp = %self.timestamp,
            request_id = %self.request_id,
            method = %self.method,
            path = %self.path,
            key = self.key.as_deref(),
            model = self.model.as_deref(),
            served_model = self.served_model.as_deref(),
            upstream = self.upstream.as_deref(),
            attempts = self.attempts,
            status = self.status,
            error_code = self.error_code.as_deref(),
            latency_ms = self.latency_ms,
            ttfb_ms = self.ttfb_ms,
            input_tokens = self.input_tokens,
            output_tokens = self.output_tokens,
            bytes_out = self.bytes_out,
            stream = self.stream,
            stream_error = self.stream_error,
            "access"
        );
    }
}

/// RFC 3339 UTC with milliseconds (`2026-11-30T20:21:11.042Z`).
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let at = UNIX_EPOCH + Duration::from_millis(1_796_070_071_042);
        assert_eq!(rfc3339(at), "2026-11-30T20:21:11.042Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

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
        record.report(Duration::from_millis(1), None, false);
        let text = metrics().render();
        assert!(!text.contains("made-up-model-xyz"));
        assert!(text.contains(
            "switchyard_requests_total{endpoint=\"chat\",model=\"other\",status_class=\"4xx\"}"
        ));
    }
}
