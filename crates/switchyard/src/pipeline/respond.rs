//! The edge where failures become responses: a [`GatewayError`] becomes its
//! OpenAI-shaped JSON with its status and headers, after the `error` plugins had their
//! look (and maybe their say). Also the small JSON responses the gateway answers itself.

use super::Failed;
use crate::error::GatewayError;
use crate::plugins::chain::{BodyCell, StageInput};
use crate::relay::ResponseBody;
use crate::snapshot::Snapshot;
use http::{header, HeaderValue, Response, StatusCode};
use switchyard_config::Stage;

/// A JSON response.
pub(super) fn json_response(
    status: StatusCode,
    value: &serde_json::Value,
) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The OpenAI-shaped error response, with the error's own headers (`Retry-After`…).
pub(super) fn error_response(error: &GatewayError) -> Response<ResponseBody> {
    let mut resp = json_response(error.status(), &error.body_json());
    for (name, value) in error.headers() {
        resp.headers_mut().insert(name, value);
    }
    if error.closes_connection() {
        // HTTP/1.1: the connection ends after this answer (hyper leaves the header
        // out of HTTP/2 responses, where it has no meaning).
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The error response, after `error` plugins had their look (and maybe their say).
pub(super) async fn respond_error(snap: &Snapshot, failed: Failed) -> Response<ResponseBody> {
    if !snap.chain.has_stage(Stage::Error) {
        return error_response(&failed.error);
    }
    let status = failed.error.status();
    let mut cell = BodyCell::parsed(failed.error.body_json());
    if let Err(e) = snap
        .chain
        .run(
            Stage::Error,
            failed.meta.as_deref(),
            StageInput::Error { status },
            &mut cell,
        )
        .await
    {
        tracing::warn!(error = %e, "an error plugin failed");
    }
    let mut resp = error_response(&failed.error);
    if cell.dirty {
        *resp.body_mut() = ResponseBody::full(cell.to_bytes());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn upstream_rate_limits_carry_retry_after_in_whole_seconds() {
        let e = GatewayError::RateLimited {
            tried: vec!["a".into()],
            retry_after: Some(Duration::from_millis(1500)),
            retry_after_ms: true,
        };
        let resp = error_response(&e);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert_eq!(resp.headers()["retry-after-ms"], "1500");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    }
}
