//! One request, top to bottom: load one config snapshot → dispatch on the path → read
//! the body under the size limit → peek `model` / `stream` → resolve the model to a
//! plan of targets → send with failover → relay. Every error becomes an OpenAI-shaped
//! response in one place, and every response carries `x-request-id`.

use crate::body::ResponseBody;
use crate::error::GatewayError;
use crate::snapshot::{Live, Snapshot};
use crate::upstream::{self, Endpoint, Outgoing};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use switchyard_dialects::{peek, PeekError};

/// Header carrying the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Handles one data-plane request. Never fails: errors are responses.
pub async fn handle(live: &Live, req: Request<Incoming>) -> Response<ResponseBody> {
    let request_id = request_id(&req);
    let snap = live.load_full();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = match route(&snap, req, &request_id).await {
        Ok(resp) => resp,
        Err(err) => {
            tracing::info!(request_id = ?request_id, %method, %path, status = err.status().as_u16(), code = err.code(), error = %err, "request failed");
            err.into_response()
        }
    };
    resp.headers_mut().insert(REQUEST_ID, request_id);
    resp
}

async fn route(
    snap: &Arc<Snapshot>,
    req: Request<Incoming>,
    request_id: &HeaderValue,
) -> Result<Response<ResponseBody>, GatewayError> {
    let path = req.uri().path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    match (req.method(), path) {
        (&Method::POST, "/chat/completions") => proxy(snap, req, Endpoint::Chat, request_id).await,
        (&Method::POST, "/completions") => {
            proxy(snap, req, Endpoint::Completions, request_id).await
        }
        (&Method::POST, "/embeddings") => proxy(snap, req, Endpoint::Embeddings, request_id).await,
        (&Method::GET, "/models") => list_models(snap).await,
        (&Method::GET, p) if p.starts_with("/models/") => {
            let id = percent_decode(&p["/models/".len()..]);
            get_model(snap, &id).await
        }
        (&Method::GET, "/healthz") => Ok(json_response(StatusCode::OK, json!({"status": "ok"}))),
        (&Method::GET, "/readyz") => Ok(if snap.is_ready() {
            json_response(StatusCode::OK, json!({"status": "ready"}))
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "not ready", "reason": "every upstream is in cool-down"}),
            )
        }),
        _ => Err(GatewayError::NoSuchEndpoint {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
        }),
    }
}

/// The proxied endpoints: read, peek, plan, send.
async fn proxy(
    snap: &Arc<Snapshot>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    request_id: &HeaderValue,
) -> Result<Response<ResponseBody>, GatewayError> {
    let client_auth = req.headers().get(header::AUTHORIZATION).cloned();
    let body = read_body(req, snap.config.server.max_body_bytes).await?;
    let peeked = peek(&body).map_err(|e| match e {
        PeekError::MissingModel => GatewayError::bad_request(e.to_string(), Some("model")),
        PeekError::BadStream => GatewayError::bad_request(e.to_string(), Some("stream")),
        PeekError::Malformed(_) => GatewayError::bad_request(e.to_string(), None),
    })?;
    let plan = match snap.plan(&peeked.model) {
        Some(plan) => plan,
        None => {
            // Maybe the catalogue is stale or still loading: refresh (bounded), look again.
            snap.catalog.refresh(&snap.upstreams, false).await;
            snap.plan(&peeked.model)
                .ok_or_else(|| GatewayError::UnknownModel(peeked.model.clone()))?
        }
    };
    let out = Outgoing {
        endpoint,
        peek: &peeked,
        body: &body,
        client_auth: client_auth.as_ref(),
        request_id,
    };
    upstream::send(snap, &plan, &out).await
}

/// Reads the whole request body, refusing more than `limit` bytes.
async fn read_body(req: Request<Incoming>, limit: u64) -> Result<Bytes, GatewayError> {
    let too_large = GatewayError::BodyTooLarge { limit };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Err(e) => Err(GatewayError::bad_request(
            format!("could not read the request body: {e}"),
            None,
        )),
    }
}

async fn list_models(snap: &Arc<Snapshot>) -> Result<Response<ResponseBody>, GatewayError> {
    snap.catalog.refresh(&snap.upstreams, false).await;
    let index = snap.catalog.index();
    let data: Vec<_> = index.listing.iter().map(model_json).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"object": "list", "data": data}),
    ))
}

async fn get_model(snap: &Arc<Snapshot>, id: &str) -> Result<Response<ResponseBody>, GatewayError> {
    snap.catalog.refresh(&snap.upstreams, false).await;
    let index = snap.catalog.index();
    let found = index.listing.iter().find(|m| m.id == id);
    match found {
        Some(m) => Ok(json_response(StatusCode::OK, model_json(m))),
        None if snap.plan(id).is_some() => Ok(json_response(
            StatusCode::OK,
            json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"}),
        )),
        None => Err(GatewayError::UnknownModel(id.to_owned())),
    }
}

fn model_json(m: &crate::catalog::Listed) -> serde_json::Value {
    json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by})
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The client's `x-request-id` if it is sane, else a new one.
fn request_id(req: &Request<Incoming>) -> HeaderValue {
    if let Some(v) = req.headers().get(REQUEST_ID) {
        if !v.is_empty() && v.len() <= 128 {
            return v.clone();
        }
    }
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("req_{:08x}{n:012x}", prefix as u32);
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("req_unknown"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
