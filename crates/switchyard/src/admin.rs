//! The admin API, on its own listener (`admin.listen`, default `127.0.0.1:9090`): JSON
//! endpoints for operators — the effective config with every secret redacted, reload,
//! upstream health, the model catalogue and its refresh. Every call needs
//! `Authorization: Bearer <admin.token>` when a token is configured (compared in
//! constant time; the token in use is the live config's, so a reload can rotate it);
//! without one the listener is loopback-only (the config check enforces it). Errors are
//! OpenAI-shaped JSON: 401 for a missing or wrong token, 404 for an unknown path, 405
//! for a wrong method, 400 for a body where none belongs. Only Libre WebUI's plugin API
//! (`/api/plugins…`, `admin/plugins.rs`) takes a body and writes files.

mod plugins;
mod view;

use crate::reload::{Reloader, Trigger};
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest body an admin call may carry (only `{}` or nothing is accepted).
const MAX_BODY: usize = 4096;

/// Largest body a plugin install, update or upload may carry.
const MAX_PLUGIN_BODY: usize = 1 << 20;

/// How long one admin connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// The endpoints and the method each one answers.
const ROUTES: [(&str, Method); 6] = [
    ("/admin/config", Method::GET),
    ("/admin/reload", Method::POST),
    ("/admin/upstreams", Method::GET),
    ("/admin/models", Method::GET),
    ("/admin/models/refresh", Method::POST),
    ("/admin/keys", Method::GET),
];

/// Serves the admin API until the task is dropped.
pub async fn serve(listener: TcpListener, reloader: Arc<Reloader>) {
    let builder = hyper::server::conn::http1::Builder::new();
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let reloader = reloader.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let reloader = reloader.clone();
            async move { Ok::<_, Infallible>(handle(&reloader, req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                tracing::debug!(error = %e, "admin connection timed out");
            }
        });
    }
}

/// One admin call.
async fn handle(reloader: &Reloader, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let snap = reloader.live().load_full();
    if !authorized(&snap, req.headers()) {
        let mut resp = error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_admin_token",
            "missing or wrong admin token: send `Authorization: Bearer <admin.token>`",
        );
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    let path = req.uri().path().to_owned();
    if path == "/api/plugins" || path.starts_with("/api/plugins/") {
        let method = req.method().clone();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let Ok(collected) = Limited::new(req.into_body(), MAX_PLUGIN_BODY)
            .collect()
            .await
        else {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                "a plugin body may be at most 1 MiB",
            );
        };
        let body = collected.to_bytes();
        return plugins::handle(reloader, &method, &path, &content_type, &body).await;
    }
    let Some((_, method)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            &format!(
                "no admin endpoint at {path}; there are: {}",
                ROUTES
                    .iter()
                    .map(|(p, m)| format!("{m} {p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    };
    if req.method() != method {
        let mut resp = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            &format!("{path} answers {method} only"),
        );
        if let Ok(allow) = HeaderValue::from_str(method.as_str()) {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        return resp;
    }
    if let Err(resp) = no_body(req.into_body()).await {
        return *resp;
    }
    match path.as_str() {
        "/admin/config" => ok(&json!({
            "generation": snap.generation,
            "config": view::config(&snap.config),
        })),
        "/admin/reload" => match reloader.reload(Trigger::Admin).await {
            Ok(done) => ok(&json!({
                "status": "ok",
                "generation": done.generation,
                "restart_needed": done.restart_needed,
                "kept_upstreams": done.kept.iter().map(|n| &**n).collect::<Vec<_>>(),
            })),
            Err(errors) => respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({
                    "status": "error",
                    "generation": reloader.live().load().generation,
                    "errors": errors.0.iter().map(|e| json!({"path": e.path, "message": e.message})).collect::<Vec<_>>(),
                }),
            ),
        },
        "/admin/upstreams" => ok(&view::upstreams(&snap)),
        "/admin/models" => ok(&view::models(&snap)),
        "/admin/keys" => ok(&view::keys(&snap).await),
        "/admin/models/refresh" => {
            snap.catalog.refresh(&snap.upstreams.list, true).await;
            ok(&view::models(&snap))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            "no such admin endpoint",
        ),
    }
}

/// Whether the call carries the configured token (any call, when none is configured).
fn authorized(snap: &Snapshot, headers: &http::HeaderMap) -> bool {
    let Some(token) = &snap.config.admin.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes())
}

/// Compares without stopping at the first difference (only the length leaks).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Admin calls take no input: an empty body or `{}` passes, anything else is a 400.
async fn no_body(body: Incoming) -> Result<(), Box<Response<Full<Bytes>>>> {
    let bad = |message: &str| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_body",
            message,
        ))
    };
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_too_large) => return Err(bad("admin endpoints take no request body")),
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() || serde_json::from_str::<Value>(text).is_ok_and(|v| v == json!({})) {
        Ok(())
    } else {
        Err(bad(
            "admin endpoints take no request body (send none, or `{}`)",
        ))
    }
}

fn ok(body: &Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, body)
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_only_equal_bytes() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(constant_time_eq(b"", b""));
    }
}
