//! The HTTP collector sink: POSTs one batch as newline-delimited JSON
//! (`content-type: application/x-ndjson`) with the configured headers, bounded by the
//! collector's timeout from connect to the end of the reply, and says whether a failure
//! is worth retrying (connect errors, timeouts, 408, 429, 5xx) or not (other 4xx). An
//! Elasticsearch `_bulk` reply of 200 can still refuse single documents
//! (`"errors": true`); those are counted as rejected, not retried. Errors never carry
//! the URL, whose query may hold credentials.

use super::SinkError;
use crate::client::{http_client, HttpClient};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use switchyard_config::{ConfigError, ExportFormat, ExportHttp};

/// Largest collector reply read (an Elasticsearch `_bulk` reply lists every item).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// One collector.
#[derive(Debug, Clone)]
pub(crate) struct HttpSink {
    client: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    timeout: Duration,
    bulk: bool,
}

impl HttpSink {
    /// Checks the URL and headers (errors at `path`) and builds the client.
    pub(crate) fn new(config: &ExportHttp, path: &str) -> Result<Self, ConfigError> {
        let error = |field: &str, message: String| ConfigError {
            path: format!("{path}.{field}"),
            message,
        };
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| error("url", format!("is not a valid URL: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        for (name, value) in &config.headers {
            let field = format!("headers.{name}");
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_discarded| error(&field, "is not a valid header name".to_owned()))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_discarded| error(&field, "is not a valid header value".to_owned()))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        Ok(Self {
            client: http_client(config.timeout, Duration::from_secs(30), 2)
                .map_err(|e| error("url", e.to_string()))?,
            uri,
            headers,
            timeout: config.timeout,
            bulk: matches!(config.format, ExportFormat::Elasticsearch { .. }),
        })
    }

    /// Sends one body of `records` records; `Ok(rejected)` once the collector took it.
    pub(crate) async fn post(&self, body: Bytes, records: usize) -> Result<usize, SinkError> {
        let mut req = Request::post(self.uri.clone());
        if let Some(headers) = req.headers_mut() {
            headers.clone_from(&self.headers);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| SinkError::fatal(format!("request could not be built: {e}")))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                SinkError::retry(if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "request failed".to_owned()
                })
            })?;
            let status = resp.status();
            let reply = Limited::new(resp.into_body(), MAX_REPLY_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, SinkError>((status, reply))
        };
        let (status, reply) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_elapsed| {
                SinkError::retry(format!("no reply within {:?}", self.timeout))
            })??;
        if status.is_success() {
            return Ok(if self.bulk {
                rejected_items(&reply).min(records)
            } else {
                0
            });
        }
        let message = format!("status {}", status.as_u16());
        if retryable(status) {
            Err(SinkError::retry(message))
        } else {
            Err(SinkError::fatal(message))
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// Items of a `_bulk` reply whose own status is not a success.
fn rejected_items(reply: &[u8]) -> usize {
    #[derive(Deserialize)]
    struct BulkReply {
        #[serde(default)]
        errors: bool,
        #[serde(default)]
        items: Vec<HashMap<String, BulkItem>>,
    }
    #[derive(Deserialize)]
    struct BulkItem {
        #[serde(default)]
        status: u16,
    }
    match serde_json::from_slice::<BulkReply>(reply) {
        Ok(r) if r.errors => r
            .items
            .iter()
            .filter(|item| item.values().any(|i| !(200..300).contains(&i.status)))
            .count(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_reply_without_errors_rejects_nothing() {
        let reply = br#"{"took":3,"errors":false,"items":[{"index":{"status":201}}]}"#;
        assert_eq!(rejected_items(reply), 0);
        assert_eq!(rejected_items(b"not json"), 0);
    }

    #[test]
    fn a_bulk_reply_with_errors_counts_the_refused_items() {
        let reply = br#"{"errors":true,"items":[{"index":{"status":201}},{"index":{"status":400,"error":{"type":"mapper_parsing_exception"}}},{"create":{"status":409}}]}"#;
        assert_eq!(rejected_items(reply), 2);
    }

    #[test]
    fn server_errors_and_throttling_are_retried_other_refusals_are_not() {
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::REQUEST_TIMEOUT));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert!(!retryable(StatusCode::UNAUTHORIZED));
    }
}
