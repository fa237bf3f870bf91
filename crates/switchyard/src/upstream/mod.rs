//! Sending a request upstream: one attempt per target in the plan, bounded by
//! `routing.max_attempts`; connect errors, first-byte timeouts, 429 and 5xx move on to
//! the next target (nothing has reached the client yet), every outcome is reported to
//! the target's [`Health`]. A response that starts is relayed as it arrives.

pub mod balance;
pub mod h1;
pub mod health;
pub mod pool;

use crate::body::{Relay, ResponseBody, StreamGuard};
use crate::error::{FailureKind, GatewayError};
use crate::snapshot::{Attempt, Snapshot};
use bytes::Bytes;
use h1::{H1Client, H1Response, Target};
use health::Health;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Uri};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_config::{Auth, Upstream};
use switchyard_dialects::mock::{other_reply, MockReply};
use switchyard_dialects::{rewrite_model, Dialect, Peek};
use tokio::time::Instant;

/// The proxied endpoints, by path under the base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/chat/completions`
    Chat,
    /// `/completions`
    Completions,
    /// `/embeddings`
    Embeddings,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }
}

/// One upstream, ready to use: client, precomputed headers and URLs, health.
#[derive(Debug)]
pub struct UpstreamRt {
    /// Config name.
    pub name: Arc<str>,
    /// Its resolved config.
    pub config: Upstream,
    /// `None` for the in-process mock dialect.
    pub client: Option<Arc<H1Client>>,
    /// Auth and extra headers, sent on every request.
    pub headers: HeaderMap,
    /// Passive health.
    pub health: Health,
    targets: [Target; 4],
}

impl UpstreamRt {
    /// Builds the runtime form of an upstream (reads `ca_file`, if set). An error names
    /// the field it is about (`None`: the upstream as a whole).
    pub fn new(
        config: Upstream,
        client: Option<Arc<H1Client>>,
    ) -> Result<Self, (Option<&'static str>, String)> {
        let ca = match &config.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                (
                    Some("ca_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
            None => None,
        };
        let mut headers = HeaderMap::new();
        let mut query = None;
        let secret_value = |v: &str| {
            HeaderValue::from_str(v)
                .map(|mut h| {
                    h.set_sensitive(true);
                    h
                })
                .map_err(|_discarded| {
                    (
                        Some("headers"),
                        format!("upstream {}: a header value is not valid", config.name),
                    )
                })
        };
        let header_name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|_discarded| {
                (
                    Some("headers"),
                    format!("upstream {}: `{n}` is not a header name", config.name),
                )
            })
        };
        for (name, value) in &config.headers {
            if !value.expose().is_empty() {
                headers.insert(header_name(name)?, secret_value(value.expose())?);
            }
        }
        match &config.auth {
            Auth::None | Auth::Passthrough => {}
            Auth::Bearer(key) => {
                headers.insert(
                    header::AUTHORIZATION,
                    secret_value(&format!("Bearer {}", key.expose()))?,
                );
            }
            Auth::Header { name, prefix, key } => {
                headers.insert(
                    header_name(name)?,
                    secret_value(&format!("{prefix}{}", key.expose()))?,
                );
            }
            Auth::Query { name, key } => {
                query = Some(format!(
                    "{}={}",
                    percent_encode(name),
                    percent_encode(key.expose())
                ));
            }
        }
        let target = |path: &str| -> Result<Target, (Option<&'static str>, String)> {
            let mut s = format!("{}/{path}", config.base_url);
            if let Some(q) = &query {
                s.push(if s.contains('?') { '&' } else { '?' });
                s.push_str(q);
            }
            if config.dialect == Dialect::Mock {
                s = format!("http://mock.invalid/{path}");
            }
            let uri: Uri = s
                .parse()
                .map_err(|_discarded| (Some("base_url"), "is not a valid URL".to_owned()))?;
            let target = Target::from_uri(&uri).map_err(|e| (Some("base_url"), e))?;
            match &ca {
                Some(pem) => target.trusting(pem).map_err(|e| (Some("ca_file"), e)),
                None => Ok(target),
            }
        };
        let targets = [
            target(Endpoint::Chat.path())?,
            target(Endpoint::Completions.path())?,
            target(Endpoint::Embeddings.path())?,
            target("models")?,
        ];
        Ok(Self {
            name: config.name.clone(),
            config,
            client,
            headers,
            health: Health::default(),
            targets,
        })
    }

    /// Where an endpoint's requests go (`None`: the model list).
    pub fn target(&self, endpoint: Option<Endpoint>) -> &Target {
        let i = match endpoint {
            Some(Endpoint::Chat) => 0,
            Some(Endpoint::Completions) => 1,
            Some(Endpoint::Embeddings) => 2,
            None => 3,
        };
        &self.targets[i]
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request as it will be sent to each target.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The peeked body (model, stream, raw bytes).
    pub peek: &'a Peek<'a>,
    /// The original body, forwarded as is when the model name does not change.
    pub body: &'a Bytes,
    /// The client's `Authorization`, for `passthrough` upstreams.
    pub client_auth: Option<&'a HeaderValue>,
    /// Propagated as `x-request-id`.
    pub request_id: &'a HeaderValue,
    /// Added by plugins (`user_headers`…).
    pub extra_headers: &'a [(HeaderName, HeaderValue)],
}

/// What the failed attempts add up to.
#[derive(Debug, Default)]
struct Failures {
    tried: Vec<Arc<str>>,
    timeouts: usize,
    rate_limited: usize,
    retry_after: Option<Duration>,
}

impl Failures {
    fn into_error(self) -> GatewayError {
        let n = self.tried.len();
        if n > 0 && self.rate_limited == n {
            return GatewayError::RateLimited {
                tried: self.tried,
                retry_after: self.retry_after,
            };
        }
        let kind = if n == 0 {
            FailureKind::Unavailable
        } else if self.timeouts == n {
            FailureKind::Timeout
        } else {
            FailureKind::BadGateway
        };
        GatewayError::UpstreamsFailed {
            kind,
            tried: self.tried,
        }
    }
}

/// Tries the plan's targets in order until one answers with something to relay.
pub async fn send(
    snap: &Snapshot,
    plan: &[Attempt],
    out: &Outgoing<'_>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let routing = &snap.config.routing;
    let guard = if out.peek.stream {
        let limit = snap.config.server.max_concurrent_streams;
        Some(StreamGuard::acquire(&snap.streams, limit).ok_or(GatewayError::Overloaded(limit))?)
    } else {
        None
    };
    let mut guard = guard;
    let mut failures = Failures::default();
    let now = Instant::now();
    // Targets in cool-down are skipped, unless every one is (then all are tried).
    let any_available = plan
        .iter()
        .any(|a| snap.upstreams[a.upstream].health.is_available(now));
    for attempt in plan {
        if failures.tried.len() >= routing.max_attempts as usize {
            break;
        }
        let up = &snap.upstreams[attempt.upstream];
        if any_available && !up.health.is_available(now) {
            continue;
        }
        failures.tried.push(up.name.clone());
        let Some(client) = &up.client else {
            return Ok(mock_response(out, &attempt.model, &up.name));
        };
        let body = if attempt.model == out.peek.model {
            out.body.clone()
        } else {
            rewrite_model(out.peek, &attempt.model)
        };
        let fixed = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::ACCEPT,
                HeaderValue::from_static(if out.peek.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }),
            ),
            (
                HeaderName::from_static("x-request-id"),
                out.request_id.clone(),
            ),
        ];
        let sent = client.request(
            up.target(Some(out.endpoint)),
            request_headers(up, out, &fixed),
            Some(&body),
            up.config.connect_timeout,
        );
        let failure = match tokio::time::timeout(up.config.first_byte_timeout, sent).await {
            Err(_elapsed) => {
                failures.timeouts += 1;
                format!("no response within {:?}", up.config.first_byte_timeout)
            }
            Ok(Err(e)) => {
                if e.is_timeout() {
                    failures.timeouts += 1;
                }
                e.to_string()
            }
            Ok(Ok(resp)) => {
                let status = resp.status;
                if status == StatusCode::TOO_MANY_REQUESTS {
                    failures.rate_limited += 1;
                    if let Some(after) = retry_after(&resp.headers) {
                        failures.retry_after =
                            Some(failures.retry_after.map_or(after, |m| m.min(after)));
                    }
                    format!("answered {status}")
                } else if status.is_server_error() {
                    format!("answered {status}")
                } else {
                    up.health.record_success();
                    return Ok(relay(resp, up, guard.take()));
                }
            }
        };
        let cooled = up.health.record_failure(
            routing.failures_before_cooldown,
            routing.cooldown,
            Instant::now(),
        );
        tracing::warn!(
            request_id = ?out.request_id,
            upstream = %up.name,
            model = %attempt.model,
            reason = %failure,
            cooldown = cooled,
            "upstream attempt failed"
        );
    }
    Err(failures.into_error())
}

/// The headers of an upstream request: the upstream's own (auth, extras), the JSON
/// content type, what the client accepts, the request id, plugin headers, and the
/// client's `Authorization` for bring-your-own-key upstreams.
fn request_headers<'a>(
    up: &'a UpstreamRt,
    out: &'a Outgoing<'_>,
    fixed: &'a [(HeaderName, HeaderValue); 3],
) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> {
    let passthrough = match up.config.auth {
        Auth::Passthrough => out.client_auth.map(|v| (&header::AUTHORIZATION, v)),
        _ => None,
    };
    up.headers
        .iter()
        .chain(fixed.iter().map(|(n, v)| (n, v)))
        .chain(out.extra_headers.iter().map(|(n, v)| (n, v)))
        .chain(passthrough)
}

/// Hop-by-hop headers are not relayed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

fn relay(resp: H1Response, up: &UpstreamRt, guard: Option<StreamGuard>) -> Response<ResponseBody> {
    let H1Response {
        status,
        mut headers,
        body,
    } = resp;
    let sse = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if sse || chunked {
        // Chunked framing wins over a stray Content-Length; SSE events are re-cut and
        // may be added to (error events), so the length can change.
        headers.remove(header::CONTENT_LENGTH);
    }
    let body = Relay::upstream(
        body,
        sse,
        up.config.idle_timeout,
        up.name.clone(),
        guard.filter(|_| sse),
    );
    let mut out = Response::new(ResponseBody::Relay(Box::new(body)));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

fn mock_response(out: &Outgoing<'_>, model: &str, name: &Arc<str>) -> Response<ResponseBody> {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = format!("chatcmpl-{}", out.request_id.to_str().unwrap_or("mock"));
    let (body, content_type) = match out.endpoint {
        Endpoint::Chat => {
            let reply = MockReply::for_chat(out.body, model, id, created);
            if out.peek.stream {
                (
                    ResponseBody::Relay(Box::new(Relay::events(reply.to_events(), name.clone()))),
                    "text/event-stream",
                )
            } else {
                (ResponseBody::full(reply.to_json()), "application/json")
            }
        }
        Endpoint::Completions => (
            ResponseBody::full(other_reply("completions", out.body, model, created)),
            "application/json",
        ),
        Endpoint::Embeddings => (
            ResponseBody::full(other_reply("embeddings", out.body, model, created)),
            "application/json",
        ),
    };
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Longest `Retry-After` believed from an upstream.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` (seconds) or OpenAI's `retry-after-ms`, capped at a day.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    let secs = match number("retry-after-ms") {
        Some(ms) => ms / 1000.0,
        None => number("retry-after")?,
    };
    Some(Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER)))
}

/// A short description of a client error that never includes the URL.
pub fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut innermost = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        innermost = err.to_string();
        source = err.source();
    }
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    if innermost.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {innermost}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_retry_after_values_are_capped_not_fatal() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert("retry-after", HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn all_rate_limited_becomes_429_with_smallest_retry_after() {
        let f = Failures {
            tried: vec!["a".into(), "b".into()],
            rate_limited: 2,
            retry_after: Some(Duration::from_secs(3)),
            ..Failures::default()
        };
        assert_eq!(f.into_error().status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn mixed_failures_become_502_and_all_timeouts_504() {
        let mixed = Failures {
            tried: vec!["a".into(), "b".into()],
            timeouts: 1,
            rate_limited: 1,
            ..Failures::default()
        };
        assert_eq!(mixed.into_error().status(), StatusCode::BAD_GATEWAY);
        let slow = Failures {
            tried: vec!["a".into()],
            timeouts: 1,
            ..Failures::default()
        };
        assert_eq!(slow.into_error().status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn query_auth_is_percent_encoded() {
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }
}
