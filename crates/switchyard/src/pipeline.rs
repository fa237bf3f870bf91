//! One request, top to bottom: load one config snapshot → dispatch on the path →
//! authenticate → read the body under the size limit → peek `model` / `stream` → (the
//! key's model access and budget) → (plugins: `pre_request`) → plan the candidates of
//! the model the body names after the plugins → (streams: ask for usage) → send with
//! failover → (plugins: stream hooks or `post_response`) → relay. Every error becomes
//! an OpenAI-shaped response at one edge (`respond`, after the `error` plugins), and
//! every response carries `x-request-id`. With no plugins configured the plugin layer
//! is skipped: no body parse beyond the peek, no copies. A CORS preflight is answered
//! before dispatch and CORS headers are set last (`cors`); `HEAD` runs as `GET` and
//! loses its body at the end (`head`).
//!
//! Tokens are counted for every request: a stream that did not ask for usage is made
//! to (`stream_options.include_usage`, set in place) and the relay leaves the extra
//! usage chunk out, so the client receives what it would have without the gateway; the
//! relay reads usage from stream events or the end of a JSON body, and a complete body
//! held here is read the same way. The caller's key account is charged with it when the
//! body ends.

mod cors;
mod framing;
mod head;
mod models;
mod plugin_layer;
mod request_id;
mod respond;

pub use request_id::REQUEST_ID;

pub use framing::MAX_TARGET_BYTES;

use crate::auth::account::Account;
use crate::cache::{self, ResponseCache, X_SWITCHYARD_CACHE};
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::lifecycle;
use crate::metrics::metrics;
use crate::plugins::RequestMeta;
use crate::record::{Reporting, RequestId, RequestRecord, Timestamp, NO_MODEL, OTHER_MODEL};
use crate::relay::ingress::Kind;
use crate::relay::BodyStats;
use crate::relay::ResponseBody;
use crate::snapshot::{Live, Snapshot};
use crate::upstream::{Candidate, Outgoing, Served, Upstream};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use plugin_layer::PluginLayer;
use respond::{json_response, respond_error};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_dialects::usage::{ask_for_usage, read_body_end, UsageAsked};
use switchyard_dialects::{peek, Peek, PeekError};
use tokio::time::Instant;

static X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

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

/// Handles one data-plane request. Never fails: errors are responses. The request is
/// counted and logged when its response body ends.
pub async fn handle(
    live: &Live,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let at = SystemTime::now();
    let request_id = request_id::request_id(&req);
    let snap = live.load_full();
    // The record's text fields are only read by the access log and export; without
    // them a request costs no allocation for its record beyond the model name.
    let detailed = snap.config.log.access || snap.exporter.is_some();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let head = head::as_get(&mut req);
    let cors = snap.config.server.cors.as_ref();
    let origin = cors::origin(cors, &req);
    let preflight = cors::preflight(cors, &req);
    let preflighted = preflight.is_some();
    let mut record = RequestRecord {
        endpoint: if preflighted {
            "preflight"
        } else {
            endpoint_label(uri.path())
        },
        model_label: NO_MODEL,
        ..RequestRecord::default()
    };
    // With `metrics.enabled: false` nothing could read the request's metrics.
    let reporting = Reporting {
        metrics: snap.config.metrics.enabled,
        access_log: snap
            .config
            .log
            .access
            .then_some(snap.config.server.log_format),
    };
    let in_flight = reporting.metrics.then(|| {
        let gauge = metrics()
            .requests_in_flight
            .with_label_values(&[record.endpoint]);
        gauge.inc();
        gauge
    });
    // The caller's key account, charged when the response ends.
    let mut account: Option<Arc<Account>> = None;
    let outcome = match preflight {
        Some(answer) => answer.map_err(Failed::from),
        None => dispatch(&snap, req, &request_id, peer, &mut record, &mut account).await,
    };
    let mut resp = match outcome {
        Ok(resp) => resp,
        Err(failed) => {
            tracing::info!(request_id = ?request_id, %method, path = uri.path(), status = failed.error.status().as_u16(), code = failed.error.code(), error = %failed.error, "request failed");
            record.error_code = Some(failed.error.code().to_owned());
            if let Some(tried) = failed.error.tried() {
                record.attempts = u32::try_from(tried.len()).unwrap_or(u32::MAX);
                record.upstream = tried.last().cloned();
            }
            respond_error(&snap, failed).await
        }
    };
    // A cached answer cost no upstream anything: not charged to the key.
    if resp.extensions().get::<crate::cache::CacheHit>().is_some() {
        account = None;
    }
    // Dollars per million input / output tokens of what served it, for the key's spend.
    let rates = match (&account, &record.upstream, &record.served_model) {
        (Some(_), Some(upstream), Some(model)) => snap
            .keys
            .price(upstream, model)
            .map(|p| (p.input, p.output)),
        _ => None,
    };
    record.status = resp.status().as_u16();
    record.cache = resp
        .headers()
        .get(&X_SWITCHYARD_CACHE)
        .and_then(|v| match v.as_bytes() {
            b"hit" => Some("hit"),
            b"miss" => Some("miss"),
            b"bypass" => Some("bypass"),
            _ => None,
        });
    if detailed {
        record.method = method;
        record.path = uri.path().to_owned();
        record.timestamp = Timestamp(at);
        record.request_id = RequestId(request_id.clone());
    }
    resp.headers_mut().insert(&REQUEST_ID, request_id);
    if lifecycle::draining() {
        // HTTP/1.1: this connection is not reused (hyper omits the header on HTTP/2).
        resp.headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    let exporter = snap.exporter.clone();
    // A Messages client gets the answer back in its own format (after the record
    // hooks: they count what the chat pipeline produced).
    let native = resp.extensions().get::<NativeMessages>().is_some();
    let ingress = match record.endpoint {
        "messages" if !native => Some((Kind::Messages, record.model.clone().unwrap_or_default())),
        // Its answer is Anthropic's already; only the gateway's own errors are put in
        // Anthropic's shape.
        "count_tokens" if !resp.status().is_success() => Some((Kind::Messages, String::new())),
        _ => resp
            .extensions()
            .get::<ResponsesIngress>()
            .map(|r| (Kind::Responses, r.0.clone())),
    };
    let finish = move |mut record: RequestRecord, stats: BodyStats| {
        if let Some(gauge) = &in_flight {
            gauge.dec();
        }
        let latency = started.elapsed();
        let ttfb = stats
            .first_byte
            .map(|t| t.saturating_duration_since(started));
        record.latency_ms = ms(latency);
        record.ttfb_ms = ttfb.map(ms);
        record.bytes_out = stats.bytes;
        record.stream_error = stats.failure;
        record.input_tokens = stats.usage.map(|u| u.prompt_tokens);
        record.output_tokens = stats.usage.and_then(|u| u.completion_tokens);
        if let (Some(account), Some(usage)) = (&account, stats.usage) {
            let output = usage.completion_tokens.unwrap_or(0);
            account.charge(rates, usage.prompt_tokens, output, SystemTime::now());
        }
        record.report(latency, ttfb, reporting);
        if let Some(exporter) = &exporter {
            exporter.send(record);
        }
    };
    match resp.body_mut() {
        ResponseBody::Relay(relay) => {
            record.stream = relay.is_sse();
            relay.observe(Box::new(move |stats| finish(record, stats)));
        }
        ResponseBody::Full(bytes) => {
            let proxied = matches!(
                record.endpoint,
                "chat" | "completions" | "embeddings" | "messages"
            );
            let stats = BodyStats {
                bytes: bytes.as_ref().map_or(0, |b| b.len() as u64),
                completed: true,
                usage: bytes
                    .as_deref()
                    .filter(|_| proxied && (200..300).contains(&record.status))
                    .and_then(read_body_end),
                ..BodyStats::default()
            };
            finish(record, stats);
        }
        // Built below, never before this point.
        ResponseBody::Ingress(_) => finish(record, BodyStats::default()),
    }
    let mut resp = match ingress {
        Some((kind, model)) => {
            let id = resp
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            crate::relay::ingress::wrap(resp, kind, model, &id)
        }
        None => resp,
    };
    if head {
        head::strip(&mut resp);
    }
    cors::apply(cors, origin, preflighted, resp.headers_mut());
    resp
}

/// Notes what served the request in its record: the upstream (which also labels its
/// token counts and prices them), the model it was sent and the attempts made.
fn note_served(record: &mut RequestRecord, served: Served) {
    record.upstream = Some(served.upstream);
    record.served_model = Some(served.model);
    record.attempts = served.attempts;
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The `endpoint` label of a path.
fn endpoint_label(path: &str) -> &'static str {
    match path.strip_prefix("/v1").unwrap_or(path) {
        "/chat/completions" => "chat",
        "/completions" => "completions",
        "/embeddings" => "embeddings",
        "/messages" => "messages",
        "/messages/count_tokens" => "count_tokens",
        p if p == "/models" || p.starts_with("/models/") => "models",
        _ => "other",
    }
}

async fn dispatch(
    snap: &Arc<Snapshot>,
    req: Request<Incoming>,
    request_id: &http::HeaderValue,
    peer: SocketAddr,
    record: &mut RequestRecord,
    account: &mut Option<Arc<Account>>,
) -> Result<Response<ResponseBody>, Failed> {
    framing::check(&req)?;
    let path = req.uri().path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let mut ingress = None;
    let endpoint = match (req.method(), path) {
        (&Method::POST, "/chat/completions") => Endpoint::Chat,
        (&Method::POST, "/messages/count_tokens") => {
            return count_tokens(snap, req, request_id, peer, record, account).await;
        }
        // Anthropic's Messages API: served as a chat request (see `ingress`).
        (&Method::POST, "/messages") => {
            ingress = Some(Kind::Messages);
            Endpoint::Chat
        }
        (&Method::POST, "/completions") => Endpoint::Completions,
        (&Method::POST, "/embeddings") => Endpoint::Embeddings,
        (&Method::GET, "/models") => {
            let auth = snap.keys.authenticate(req.headers(), peer.ip())?;
            record.key = auth.caller.key_name().map(str::to_owned);
            return Ok(models::list(snap, auth.account.map(|a| &**a)).await);
        }
        (&Method::GET, p) if p.starts_with("/models/") => {
            let auth = snap.keys.authenticate(req.headers(), peer.ip())?;
            record.key = auth.caller.key_name().map(str::to_owned);
            let id = &p["/models/".len()..];
            return Ok(models::get(snap, id, auth.account.map(|a| &**a)).await?);
        }
        (&Method::GET, "/healthz") => {
            return Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
        }
        (&Method::GET, "/readyz") => return Ok(readiness(snap, req.uri().query())),
        // Anything else under `/v1/` (and `/rerank`, as vLLM, Jina and Cohere-style
        // servers spell it): routed by `model` when the body names one, else to the
        // upstream the request names.
        (m, _)
            if is_forwardable(req.uri().path())
                && matches!(
                    *m,
                    Method::POST | Method::GET | Method::DELETE | Method::PUT | Method::PATCH
                ) =>
        {
            Endpoint::Other
        }
        _ => {
            return Err(GatewayError::NoSuchEndpoint {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
            }
            .into())
        }
    };
    proxy(
        snap, req, endpoint, ingress, request_id, peer, record, account,
    )
    .await
}

/// The proxied endpoints: authenticate, read, peek, (the key's model access and
/// budget), (plugins before), plan, send, (plugins after). The one send path; the
/// plugin layer wraps it when configured. `account` is left holding the caller's key
/// account, to be charged when the response ends.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
async fn proxy(
    snap: &Arc<Snapshot>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    mut ingress: Option<Kind>,
    request_id: &http::HeaderValue,
    peer: SocketAddr,
    record: &mut RequestRecord,
    account: &mut Option<Arc<Account>>,
) -> Result<Response<ResponseBody>, Failed> {
    let (mut parts, incoming) = req.into_parts();
    record.model_label = OTHER_MODEL;
    if ingress == Some(Kind::Messages) {
        api_key_as_bearer(&mut parts.headers);
    }
    let auth = snap.keys.authenticate(&parts.headers, peer.ip())?;
    let caller = auth.caller;
    record.key = caller.key_name().map(str::to_owned);
    // Who is calling, for cache entries scoped by caller (built only when they can be).
    let cache_namespace = snap
        .cache
        .as_ref()
        .filter(|c| {
            c.per_key()
                || snap
                    .upstreams
                    .list
                    .iter()
                    .any(Upstream::takes_callers_credentials)
        })
        .map(|_| caller.limit_key());
    // Bring-your-own-key upstreams get the client's Authorization, unless it was a
    // gateway key (that one never leaves the gateway).
    let client_auth = match caller.key {
        None => parts.headers.get(header::AUTHORIZATION).cloned(),
        Some(_) => None,
    };
    let server = &snap.config.server;
    let mut raw = read_body(incoming, server.max_body_bytes, server.body_timeout).await?;
    // The model asked for, where it decides how the request is served (read once).
    let asked = match (endpoint, ingress) {
        (Endpoint::Other, _) | (_, Some(_)) => peek(&raw).ok().map(|p| p.model),
        _ => None,
    };
    let serving_upstreams = || asked.as_deref().map_or_else(Vec::new, |m| serving(snap, m));
    // The Responses API to an upstream without it: served as chat, translated back.
    let mut endpoint = endpoint;
    if endpoint == Endpoint::Other
        && parts.method == Method::POST
        && forwarded_path(&parts.uri) == "/responses"
        && serving_upstreams().iter().any(|u| !u.responses)
    {
        ingress = Some(Kind::Responses);
        endpoint = Endpoint::Chat;
    }
    // A Messages request whose every target is an Anthropic upstream (and no plugin
    // needs to read it) goes as it came: no translation either way.
    let native = ingress == Some(Kind::Messages) && snap.chain.is_empty() && {
        let ups = serving_upstreams();
        !ups.is_empty()
            && ups
                .iter()
                .all(|u| u.dialect == switchyard_dialects::Dialect::Anthropic)
    };
    if native {
        ingress = None;
        endpoint = Endpoint::Other;
    }
    if let Some(kind) = ingress {
        raw = crate::relay::ingress::to_chat(kind, &raw)?;
    }
    // A multipart form (audio transcriptions, image edits) is routed by its `model`
    // field, which is replaced in place when an alias maps it to another name.
    let form_model = match endpoint {
        Endpoint::Other => multipart_model(&parts.headers, &raw),
        _ => None,
    };
    if endpoint == Endpoint::Other
        && form_model.is_none()
        && (parts.method != Method::POST || asked.is_none())
    {
        // Nothing to route by: the upstream the request names, or the default one.
        let (resp, served) = unrouted(snap, &parts, raw, request_id, client_auth.as_ref()).await?;
        note_served(record, served);
        return Ok(resp);
    }
    let multipart = form_model.is_some();
    let peeked = match form_model {
        Some((model, span)) => Peek {
            model,
            model_span: span,
            stream: false,
            stream_options_span: None,
            include_usage: false,
            raw: &raw,
        },
        None => peek_body(&raw)?,
    };
    record.model = Some(peeked.model.clone());
    record.stream = peeked.stream;
    // Kept for `Other` requests (a multipart body keeps its boundary).
    let client_types = match endpoint {
        Endpoint::Other => (
            parts.headers.get(header::CONTENT_TYPE).cloned(),
            parts.headers.get(header::ACCEPT).cloned(),
        ),
        _ => (None, None),
    };
    // The key's limits apply to the model the client asked for (403 whether or not it
    // exists, so a key cannot probe), before any plugin runs.
    if let Some(key) = auth.account {
        key.check_model(&peeked.model)?;
        key.within_budget(SystemTime::now()).await?;
        *account = Some(key.clone());
    }
    let layer = if snap.chain.is_empty() {
        None
    } else {
        let meta = RequestMeta {
            request_id: request_id.clone(),
            endpoint,
            model: peeked.model.clone(),
            stream: peeked.stream,
            caller,
            headers: std::mem::take(&mut parts.headers),
        };
        Some(PluginLayer::before(snap, meta, raw.clone()).await?)
    };
    // Some are forwarded upstream (`OpenAI-Beta`, `forward_headers`…).
    let client_headers = layer
        .as_ref()
        .map_or(&parts.headers, PluginLayer::client_headers);
    let with_meta = |error: GatewayError| Failed {
        error,
        meta: layer.as_ref().map(PluginLayer::meta),
    };
    // Plugins may have changed the body, `model` included: routing follows the body as
    // they left it (a router plugin picks the model), and the upstream is sent that
    // model's served name. Plugin selectors and limits stay on the model the client
    // asked for (`RequestMeta::model`), so every stage agrees on them.
    let repeeked;
    let (body, peek) = match layer.as_ref().and_then(PluginLayer::changed_body) {
        None => (&raw, &peeked),
        Some(changed) => {
            repeeked = peek_body(changed).map_err(with_meta)?;
            (changed, &repeeked)
        }
    };
    let plan = plan(snap, &peek.model).await.map_err(with_meta)?;
    // The metrics label is the asked model; when a plugin moved the request, only if
    // that model is known too (a client's free-form name must not become a label).
    record.known_model = peek.model == peeked.model || snap.serving(&peeked.model).is_some();
    // A stream that did not ask for usage asks for it (when every candidate takes
    // `stream_options`); the relay then leaves the usage chunk out for the client.
    let asked = if peek.stream
        && matches!(endpoint, Endpoint::Chat | Endpoint::Completions)
        && !peek.include_usage
        && plan.iter().all(|c| {
            snap.upstreams.list[c.upstream]
                .config
                .dialect
                .takes_stream_options()
        }) {
        ask_for_usage(peek)
    } else {
        None
    };
    // The response cache: a hit answers here (plugins still see it), a miss keeps the
    // fresh answer once its body ends whole.
    let cached = cache_plan(
        snap,
        endpoint,
        &peeked.model,
        peek,
        &plan,
        cache_namespace.as_deref(),
        client_headers,
        layer.as_ref().map_or(&[], PluginLayer::upstream_headers),
    );
    let mark = |mut resp: Response<ResponseBody>| {
        if ingress == Some(Kind::Responses) {
            resp.extensions_mut()
                .insert(ResponsesIngress(peeked.model.clone()));
        }
        if native {
            resp.extensions_mut().insert(NativeMessages);
        }
        resp
    };
    if let Some((cache, Some(plan))) = cached
        .as_ref()
        .filter(|(_, p)| p.as_ref().is_some_and(|p| p.read))
    {
        let hit = cache.get(plan).await.and_then(|(entry, tier)| {
            cache::hit_response(entry, peek.stream, peek.include_usage).map(|r| (r, tier))
        });
        if let Some((mut resp, tier)) = hit {
            ResponseCache::count("hit", Some(tier));
            resp.headers_mut()
                .insert(&X_SWITCHYARD_CACHE, http::HeaderValue::from_static("hit"));
            let resp = match layer {
                None => resp,
                Some(layer) => layer.after(snap, resp).await?,
            };
            return Ok(mark(resp));
        }
    }
    let asked_peek = asked.as_ref().map(UsageAsked::peek);
    let (body, peek) = match (&asked, &asked_peek) {
        (Some(asked), Some(asked_peek)) => (asked.body(), asked_peek),
        _ => (body, peek),
    };
    let out = Outgoing {
        endpoint,
        method: &parts.method,
        path: forwarded_path(&parts.uri),
        client_types: (client_types.0.as_ref(), client_types.1.as_ref()),
        multipart,
        peek,
        body,
        client_auth: client_auth.as_ref(),
        request_id,
        extra_headers: layer.as_ref().map_or(&[], PluginLayer::upstream_headers),
        client_headers,
        retry_on_timeout: snap.retry_on_timeout(&peek.model),
    };
    let (mut resp, served) = snap.upstreams.send(&plan, &out).await.map_err(with_meta)?;
    note_served(record, served);
    let success = resp.status().is_success();
    if let (true, ResponseBody::Relay(relay)) = (success, resp.body_mut()) {
        relay.read_usage(asked.is_some());
    }
    // The cache keeps the upstream's answer, before any plugin changed it for this
    // caller: a hit goes through the plugins again, for its own caller.
    let outcome = cached.map(|(cache, plan)| match plan {
        Some(plan) => {
            let outcome = if plan.read { "miss" } else { "bypass" };
            if plan.write {
                cache.keep(plan, &mut resp);
            }
            outcome
        }
        None => "bypass",
    });
    let mut resp = match layer {
        None => resp,
        Some(layer) => layer.after(snap, resp).await?,
    };
    if let Some(outcome) = outcome {
        ResponseCache::count(outcome, None);
        resp.headers_mut()
            .insert(&X_SWITCHYARD_CACHE, http::HeaderValue::from_static(outcome));
    }
    Ok(mark(resp))
}

/// Client headers that can change an upstream's answer to the same body; requests that
/// differ in them do not share cache entries.
static CACHE_VARY: [&str; 5] = [
    "openai-organization",
    "openai-project",
    "openai-beta",
    "anthropic-version",
    "anthropic-beta",
];

/// The response cache's plan for a request it may serve: the key is the request as it
/// goes upstream with its model replaced by every model it may be served by (so an
/// alias and its target share entries), scoped by the caller when entries are per key
/// or when an upstream that may answer it takes the caller's own credentials (a cached
/// answer must not reach a caller the upstream would refuse), and by the headers that
/// can change the answer ([`CACHE_VARY`], plugins' upstream headers). `None` when the
/// cache is off or this endpoint is not cached; `Some((_, None))`: bypassed.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
fn cache_plan<'s>(
    snap: &'s Snapshot,
    endpoint: Endpoint,
    asked: &str,
    peek: &Peek<'_>,
    plan: &[Candidate],
    caller: Option<&str>,
    headers: &http::HeaderMap,
    upstream_headers: &[(http::HeaderName, http::HeaderValue)],
) -> Option<(&'s Arc<ResponseCache>, Option<cache::Plan>)> {
    let cache = snap.cache.as_ref()?;
    if !matches!(
        endpoint,
        Endpoint::Chat | Endpoint::Completions | Endpoint::Embeddings
    ) {
        return None;
    }
    let mut models: Vec<&str> = plan.iter().map(|c| c.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let passthrough = plan.iter().any(|c| {
        snap.upstreams
            .list
            .get(c.upstream)
            .is_some_and(Upstream::takes_callers_credentials)
    });
    let mut scope = Vec::new();
    if cache.per_key() || passthrough {
        scope.extend_from_slice(caller.unwrap_or_default().as_bytes());
    }
    let vary = CACHE_VARY
        .iter()
        .filter_map(|name| headers.get(*name).map(|v| (name.as_bytes(), v)))
        .chain(
            upstream_headers
                .iter()
                .map(|(n, v)| (n.as_str().as_bytes(), v)),
        );
    for (name, value) in vary {
        scope.push(0);
        scope.extend_from_slice(name);
        scope.push(b':');
        scope.extend_from_slice(value.as_bytes());
    }
    let plan = cache.plan(
        endpoint,
        asked,
        peek.raw,
        peek.model_span.clone(),
        &models.join(","),
        &scope,
        headers,
    );
    Some((cache, plan))
}

/// The settings of the upstreams that could serve `model` (none when it is unknown),
/// read without moving any rotation: how to serve a request is decided from them.
fn serving<'s>(snap: &'s Snapshot, model: &str) -> Vec<&'s switchyard_config::Upstream> {
    snap.serving(model)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|u| snap.upstreams.list.get(u).map(|up| &up.config))
        .collect()
}

/// Marks a Messages answer an Anthropic upstream gave as it is (nothing to translate).
#[derive(Debug, Clone, Copy)]
struct NativeMessages;

/// Marks a chat response that answers a Responses API request (with the model asked),
/// to be translated back once its body is observed.
#[derive(Debug, Clone)]
struct ResponsesIngress(String);

/// Anthropic SDKs send their key as `x-api-key`: taken as the gateway key when no
/// `Authorization` came.
fn api_key_as_bearer(headers: &mut http::HeaderMap) {
    if headers.contains_key(header::AUTHORIZATION) {
        return;
    }
    if let Some(key) = headers.get(&X_API_KEY) {
        let bearer = [b"Bearer ".as_slice(), key.as_bytes()].concat();
        if let Ok(mut value) = http::HeaderValue::from_bytes(&bearer) {
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
    }
}

/// `POST /v1/messages/count_tokens`: authenticated and routed like a Messages request,
/// answered by the first `anthropic` upstream among the model's candidates.
async fn count_tokens(
    snap: &Arc<Snapshot>,
    req: Request<Incoming>,
    request_id: &http::HeaderValue,
    peer: SocketAddr,
    record: &mut RequestRecord,
    account: &mut Option<Arc<Account>>,
) -> Result<Response<ResponseBody>, Failed> {
    let (mut parts, incoming) = req.into_parts();
    api_key_as_bearer(&mut parts.headers);
    let auth = snap.keys.authenticate(&parts.headers, peer.ip())?;
    record.key = auth.caller.key_name().map(str::to_owned);
    let server = &snap.config.server;
    let raw = read_body(incoming, server.max_body_bytes, server.body_timeout).await?;
    let peeked = peek_body(&raw)?;
    record.model = Some(peeked.model.clone());
    if let Some(key) = auth.account {
        key.check_model(&peeked.model)?;
        *account = Some(key.clone());
    }
    let plan = plan(snap, &peeked.model).await?;
    match snap
        .upstreams
        .count_tokens(&plan, &peeked, request_id)
        .await
    {
        Some(answer) => Ok(answer?),
        None => Err(GatewayError::Untranslatable {
            message: format!(
                "model `{}` is not served by an anthropic upstream, which alone counts tokens",
                peeked.model
            ),
            param: Some("model".to_owned()),
        }
        .into()),
    }
}

/// The `model` field of a `multipart/form-data` body, and where its value sits.
fn multipart_model(
    headers: &http::HeaderMap,
    raw: &[u8],
) -> Option<(String, std::ops::Range<usize>)> {
    use switchyard_dialects::multipart::{boundary, field};
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let span = field(raw, boundary(content_type)?, "model").ok()?;
    let model = std::str::from_utf8(raw.get(span.clone())?).ok()?.trim();
    (!model.is_empty() && model.len() == span.len()).then(|| (model.to_owned(), span))
}

/// Whether a path not handled by name is forwarded ([`Endpoint::Other`]).
fn is_forwardable(path: &str) -> bool {
    path.starts_with("/v1/") || path == "/rerank"
}

/// Path and query under `/v1`, as forwarded to an upstream's base URL.
fn forwarded_path(uri: &http::Uri) -> &str {
    let full = uri.path_and_query().map_or("/", |p| p.as_str());
    full.strip_prefix("/v1")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(full)
}

static X_SWITCHYARD_UPSTREAM: http::HeaderName =
    http::HeaderName::from_static("x-switchyard-upstream");

/// A forwardable request without a `model` to route by (a GET such as `/v1/files`, a
/// body without one): sent once, untouched, to the upstream named by its
/// `x-switchyard-upstream` header or `routing.default_upstream`.
async fn unrouted(
    snap: &Snapshot,
    parts: &http::request::Parts,
    raw: Bytes,
    request_id: &http::HeaderValue,
    client_auth: Option<&http::HeaderValue>,
) -> Result<(Response<ResponseBody>, Served), GatewayError> {
    let path = forwarded_path(&parts.uri);
    let named = parts
        .headers
        .get(&X_SWITCHYARD_UPSTREAM)
        .and_then(|v| v.to_str().ok());
    // A stored Responses API object lives on the upstream that created it.
    let owner = path
        .strip_prefix("/responses/")
        .and_then(|rest| rest.split(['/', '?']).next())
        .and_then(crate::upstream::owners::owner);
    let name = named
        .or(owner.as_deref())
        .or(snap.config.routing.default_upstream.as_deref());
    let index = name.and_then(|n| snap.upstreams.list.iter().position(|u| &*u.name == n));
    let Some(index) = index else {
        return Err(GatewayError::Unrouted {
            path: parts.uri.path().to_owned(),
            named: named.map(str::to_owned),
        });
    };
    let peek = Peek {
        model: String::new(),
        model_span: 0..0,
        stream: false,
        stream_options_span: None,
        include_usage: false,
        raw: &raw,
    };
    let out = Outgoing {
        endpoint: Endpoint::Other,
        method: &parts.method,
        path,
        client_types: (
            parts.headers.get(header::CONTENT_TYPE),
            parts.headers.get(header::ACCEPT),
        ),
        multipart: false,
        client_headers: &parts.headers,
        peek: &peek,
        body: &raw,
        client_auth,
        request_id,
        extra_headers: &[],
        retry_on_timeout: false,
    };
    let plan = [Candidate {
        upstream: index,
        model: String::new(),
    }];
    snap.upstreams.send(&plan, &out).await
}

fn peek_body(raw: &Bytes) -> Result<Peek<'_>, GatewayError> {
    peek(raw).map_err(|e| match e {
        PeekError::MissingModel => GatewayError::bad_request(e.to_string(), Some("model")),
        PeekError::BadStream => GatewayError::bad_request(e.to_string(), Some("stream")),
        PeekError::Malformed(_) => GatewayError::bad_request(e.to_string(), None),
    })
}

/// The candidates for a model. A miss may mean the catalogue is stale or still
/// loading: refresh (bounded) and look again.
async fn plan(snap: &Snapshot, model: &str) -> Result<Vec<Candidate>, GatewayError> {
    if let Some(plan) = snap.plan(model) {
        return Ok(plan);
    }
    snap.catalog.refresh(&snap.upstreams.list, false).await;
    snap.plan(model)
        .ok_or_else(|| GatewayError::UnknownModel(model.to_owned()))
}

/// Readiness is the gateway's own: 503 only while it drains, never because upstreams
/// are cooling down (one provider's 429s would otherwise take every replica out of
/// its Service at once). `?verbose` adds each upstream's state, for people.
fn readiness(snap: &Snapshot, query: Option<&str>) -> Response<ResponseBody> {
    let (status, mut body) = if lifecycle::draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "draining", "reason": "the gateway is shutting down"}),
        )
    } else {
        (StatusCode::OK, json!({"status": "ready"}))
    };
    if query.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    }) {
        let now = tokio::time::Instant::now();
        let upstreams: Vec<_> = snap
            .upstreams
            .list
            .iter()
            .map(|u| {
                let cooling: Vec<String> = u
                    .health
                    .targets(now)
                    .into_iter()
                    .filter_map(|(model, cooling)| cooling.then_some(model))
                    .collect();
                json!({
                    "name": &*u.name,
                    "available": u.health.connections.is_available(now),
                    "cooling_models": cooling,
                })
            })
            .collect();
        body["upstreams"] = serde_json::Value::Array(upstreams);
    }
    json_response(status, &body)
}

/// Reads the whole request body, refusing more than `limit` bytes, and a body that
/// sends nothing for `stall` (408; the connection is closed after the answer).
async fn read_body(mut body: Incoming, limit: u64, stall: Duration) -> Result<Bytes, GatewayError> {
    let too_large = GatewayError::BodyTooLarge { limit };
    if http_body::Body::size_hint(&body).lower() > limit {
        return Err(too_large);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Err(_elapsed) => {
                metrics().client_timeout("body");
                return Err(GatewayError::BodyTimeout(stall));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(GatewayError::bad_request(
                    format!("could not read the request body: {e}"),
                    None,
                ))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total > limit {
                return Err(too_large);
            }
            chunks.push(data);
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = bytes::BytesMut::with_capacity(total);
            for chunk in chunks {
                all.extend_from_slice(&chunk);
            }
            all.freeze()
        }
    })
}
