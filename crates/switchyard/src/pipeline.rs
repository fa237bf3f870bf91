//! One request, top to bottom: load one config snapshot → dispatch on the path →
//! authenticate → read the body under the size limit → peek `model` / `stream` →
//! plugins (`pre_request`) → resolve the model to a plan of targets → send with
//! failover → stream hooks (`on_chunk`) or `post_response` → relay. Every error becomes
//! an OpenAI-shaped response in one place (after the `error` plugins), and every
//! response carries `x-request-id`. With no plugins configured, the request takes the
//! short path: no body parse beyond the peek, no copies.

use crate::body::{ResponseBody, StreamHooks, StreamSummary};
use crate::error::GatewayError;
use crate::plugins::chain::{BodyCell, StageInput};
use crate::plugins::{RequestMeta, Usage};
use crate::snapshot::{Attempt, Live, Snapshot};
use crate::upstream::{self, Endpoint, Outgoing};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use switchyard_config::Stage;
use switchyard_dialects::{peek, Peek, PeekError};

/// Header carrying the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Largest response body buffered for `post_response` plugins.
const MAX_BUFFERED_RESPONSE: usize = 32 * 1024 * 1024;

/// A failed request, with what was known about it (for `error` plugins).
#[derive(Debug)]
struct Failed {
    error: GatewayError,
    meta: Option<Arc<RequestMeta>>,
}

impl From<GatewayError> for Failed {
    fn from(error: GatewayError) -> Self {
        Self { error, meta: None }
    }
}

/// Handles one data-plane request. Never fails: errors are responses.
pub async fn handle(
    live: &Live,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let request_id = request_id(&req);
    let snap = live.load_full();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let mut resp = match route(&snap, req, &request_id, peer).await {
        Ok(resp) => resp,
        Err(failed) => {
            tracing::info!(request_id = ?request_id, %method, path = uri.path(), status = failed.error.status().as_u16(), code = failed.error.code(), error = %failed.error, "request failed");
            respond_error(&snap, failed).await
        }
    };
    resp.headers_mut().insert(REQUEST_ID, request_id);
    resp
}

async fn route(
    snap: &Arc<Snapshot>,
    req: Request<Incoming>,
    request_id: &HeaderValue,
    peer: SocketAddr,
) -> Result<Response<ResponseBody>, Failed> {
    let path = req.uri().path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let endpoint = match (req.method(), path) {
        (&Method::POST, "/chat/completions") => Endpoint::Chat,
        (&Method::POST, "/completions") => Endpoint::Completions,
        (&Method::POST, "/embeddings") => Endpoint::Embeddings,
        (&Method::GET, "/models") => {
            snap.keys.authenticate(req.headers(), peer.ip())?;
            return Ok(list_models(snap).await);
        }
        (&Method::GET, p) if p.starts_with("/models/") => {
            snap.keys.authenticate(req.headers(), peer.ip())?;
            let id = percent_decode(&p["/models/".len()..]);
            return Ok(get_model(snap, &id).await?);
        }
        (&Method::GET, "/healthz") => {
            return Ok(json_response(StatusCode::OK, json!({"status": "ok"})))
        }
        (&Method::GET, "/readyz") => {
            return Ok(if snap.is_ready() {
                json_response(StatusCode::OK, json!({"status": "ready"}))
            } else {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "not ready", "reason": "every upstream is in cool-down"}),
                )
            })
        }
        _ => {
            return Err(GatewayError::NoSuchEndpoint {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
            }
            .into())
        }
    };
    proxy(snap, req, endpoint, request_id, peer).await
}

/// The proxied endpoints: authenticate, read, peek, (plugins), plan, send.
async fn proxy(
    snap: &Arc<Snapshot>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    request_id: &HeaderValue,
    peer: SocketAddr,
) -> Result<Response<ResponseBody>, Failed> {
    let (parts, incoming) = req.into_parts();
    let caller = snap.keys.authenticate(&parts.headers, peer.ip())?;
    // Bring-your-own-key upstreams get the client's Authorization, unless it was a
    // gateway key (that one never leaves the gateway).
    let client_auth = match caller.key {
        None => parts.headers.get(header::AUTHORIZATION).cloned(),
        Some(_) => None,
    };
    let raw = read_body(incoming, snap.config.server.max_body_bytes).await?;
    let peeked = peek_body(&raw)?;
    if snap.chain.is_empty() {
        let plan = plan(snap, &peeked.model).await?;
        let out = Outgoing {
            endpoint,
            peek: &peeked,
            body: &raw,
            client_auth: client_auth.as_ref(),
            request_id,
            extra_headers: &[],
        };
        return Ok(upstream::send(snap, &plan, &out).await?);
    }
    let meta = RequestMeta {
        request_id: request_id.clone(),
        endpoint,
        model: peeked.model.clone(),
        stream: peeked.stream,
        caller,
        headers: parts.headers,
    };
    with_plugins(snap, meta, raw, client_auth).await
}

/// The same path with the plugin chain around the upstream call.
async fn with_plugins(
    snap: &Arc<Snapshot>,
    mut meta: RequestMeta,
    raw: Bytes,
    client_auth: Option<HeaderValue>,
) -> Result<Response<ResponseBody>, Failed> {
    let chain = &snap.chain;
    let mut body = BodyCell::new(raw);
    let pre = match chain
        .run(
            Stage::PreRequest,
            Some(&meta),
            StageInput::Request,
            &mut body,
        )
        .await
    {
        Ok(effects) => effects,
        Err(error) => {
            return Err(Failed {
                error,
                meta: Some(Arc::new(meta)),
            })
        }
    };
    // Usage for plugins: ask streaming upstreams for it, hide it from clients that
    // did not ask.
    let needs_usage = chain.needs_usage(&meta);
    let strip_usage = meta.stream
        && needs_usage
        && body
            .json_now()
            .is_some_and(|v| v["stream_options"]["include_usage"] != true);
    if strip_usage {
        body.apply(Box::new(|v| {
            let Some(request) = v.as_object_mut() else {
                return;
            };
            let options = request.entry("stream_options").or_insert_with(|| json!({}));
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".to_owned(), json!(true));
            }
        }));
    }
    let bytes = body.to_bytes();
    let peeked = match peek_body(&bytes) {
        Ok(p) => p,
        Err(error) => {
            return Err(Failed {
                error,
                meta: Some(Arc::new(meta)),
            })
        }
    };
    // `meta.model` stays the model the client asked for (plugins key limits and
    // selectors on it at every stage); routing uses the body as the plugins left it.
    if body.dirty {
        meta.stream = peeked.stream;
    }
    let meta = Arc::new(meta);
    let with_meta = |error: GatewayError| Failed {
        error,
        meta: Some(meta.clone()),
    };
    let plan = plan(snap, &meta.model).await.map_err(with_meta)?;
    let out = Outgoing {
        endpoint: meta.endpoint,
        peek: &peeked,
        body: &bytes,
        client_auth: client_auth.as_ref(),
        request_id: &meta.request_id,
        extra_headers: &pre.upstream_headers,
    };
    let mut resp = upstream::send(snap, &plan, &out).await.map_err(with_meta)?;
    let status = resp.status();
    let post = chain.applies(Stage::PostResponse, &meta);
    match resp.body_mut() {
        ResponseBody::Relay(relay) if relay.is_sse() => {
            let on_end = post.then(|| {
                let (snap, meta) = (snap.clone(), meta.clone());
                let request = body.json().cloned();
                Box::new(move |summary: StreamSummary| {
                    after_stream(snap, meta, request, status, summary);
                }) as Box<dyn FnOnce(StreamSummary) + Send>
            });
            relay.set_hooks(StreamHooks {
                filters: chain.chunk_filters(&meta),
                capture_usage: needs_usage,
                strip_usage,
                collect_text: chain.needs_response_body(&meta),
                on_end,
                ..StreamHooks::default()
            });
        }
        _ if post && status.is_success() => {
            let (mut parts, resp_body) = resp.into_parts();
            let collected = Limited::new(resp_body, MAX_BUFFERED_RESPONSE)
                .collect()
                .await
                .map_err(|e| with_meta(GatewayError::ResponseUnreadable(e.to_string())))?
                .to_bytes();
            let mut cell = BodyCell::new(collected);
            let usage = if needs_usage {
                cell.json_now().and_then(Usage::from_json)
            } else {
                None
            };
            let input = StageInput::Response {
                status,
                usage,
                streamed: false,
                content: None,
                request: body.json(),
            };
            let effects = chain
                .run(Stage::PostResponse, Some(&meta), input, &mut cell)
                .await
                .map_err(with_meta)?;
            if cell.dirty {
                parts.headers.remove(header::CONTENT_LENGTH);
            }
            resp = Response::from_parts(parts, ResponseBody::full(cell.to_bytes()));
            add_headers(&mut resp, effects.response_headers);
        }
        _ => {}
    }
    add_headers(&mut resp, pre.response_headers);
    Ok(resp)
}

/// `post_response` for a stream, once it ended (observe only: the bytes are gone).
fn after_stream(
    snap: Arc<Snapshot>,
    meta: Arc<RequestMeta>,
    request: Option<serde_json::Value>,
    status: StatusCode,
    summary: StreamSummary,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let input = StageInput::Response {
            status,
            usage: summary.usage,
            streamed: true,
            content: summary.text.as_deref(),
            request: request.as_ref(),
        };
        let mut cell = BodyCell::default();
        if let Err(e) = snap
            .chain
            .run(Stage::PostResponse, Some(&meta), input, &mut cell)
            .await
        {
            tracing::debug!(request_id = ?meta.request_id, error = %e, "post_response after a stream");
        }
    });
}

fn add_headers(resp: &mut Response<ResponseBody>, headers: Vec<(http::HeaderName, HeaderValue)>) {
    for (name, value) in headers {
        resp.headers_mut().insert(name, value);
    }
}

/// The error response, after `error` plugins had their look (and maybe their say).
async fn respond_error(snap: &Arc<Snapshot>, failed: Failed) -> Response<ResponseBody> {
    if !snap.chain.has_stage(Stage::Error) {
        return failed.error.into_response();
    }
    let status = failed.error.status();
    let mut cell = BodyCell::parsed(failed.error.body_json());
    let meta = failed.meta.as_deref();
    if let Err(e) = snap
        .chain
        .run(Stage::Error, meta, StageInput::Error { status }, &mut cell)
        .await
    {
        tracing::warn!(error = %e, "an error plugin failed");
    }
    let mut resp = failed.error.into_response();
    if cell.dirty {
        *resp.body_mut() = ResponseBody::full(cell.to_bytes());
    }
    resp
}

fn peek_body(raw: &Bytes) -> Result<Peek<'_>, GatewayError> {
    peek(raw).map_err(|e| match e {
        PeekError::MissingModel => GatewayError::bad_request(e.to_string(), Some("model")),
        PeekError::BadStream => GatewayError::bad_request(e.to_string(), Some("stream")),
        PeekError::Malformed(_) => GatewayError::bad_request(e.to_string(), None),
    })
}

/// The targets for a model. A miss may mean the catalogue is stale or still loading:
/// refresh (bounded) and look again.
async fn plan(snap: &Arc<Snapshot>, model: &str) -> Result<Vec<Attempt>, GatewayError> {
    if let Some(plan) = snap.plan(model) {
        return Ok(plan);
    }
    snap.catalog.refresh(&snap.upstreams, false).await;
    snap.plan(model)
        .ok_or_else(|| GatewayError::UnknownModel(model.to_owned()))
}

/// Reads the whole request body, refusing more than `limit` bytes.
async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, GatewayError> {
    let too_large = GatewayError::BodyTooLarge { limit };
    if http_body::Body::size_hint(&body).lower() > limit {
        return Err(too_large);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Err(e) => Err(GatewayError::bad_request(
            format!("could not read the request body: {e}"),
            None,
        )),
    }
}

async fn list_models(snap: &Arc<Snapshot>) -> Response<ResponseBody> {
    snap.catalog.refresh(&snap.upstreams, false).await;
    let index = snap.catalog.index();
    let data: Vec<_> = index.listing.iter().map(model_json).collect();
    json_response(StatusCode::OK, json!({"object": "list", "data": data}))
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
    HeaderValue::from_str(&id).unwrap_or_else(|_discarded| HeaderValue::from_static("req_unknown"))
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
