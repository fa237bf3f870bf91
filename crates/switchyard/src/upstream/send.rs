//! [`Upstreams::send`]: one attempt per [`Candidate`] of the plan, bounded by
//! `routing.max_attempts`. Every attempt failure is an [`AttemptError`] that says what
//! happened; the loop asks it whether to move on to the next candidate (while nothing
//! has reached the client, every kind may) and reports the outcome to the target's
//! health. A response that starts is relayed as it arrives.

use super::dialect::{self, Prepared};
use super::rest;
use super::{Upstream, Upstreams};
use crate::client::h1::H1Error;
use crate::endpoint::Endpoint;
use crate::error::{FailureKind, GatewayError};
use crate::log_writer::Throttle;
use crate::metrics::metrics;
use crate::relay::ResponseBody;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use respond::{mock_response, respond, Answer, RETRY_AFTER_MS, X_REQUEST_ID};
use std::sync::Arc;
use std::time::Duration;
use switchyard_config::Auth;
use switchyard_dialects::translate::EncodeError;
use switchyard_dialects::{Dialect, Peek};
use tokio::time::Instant;

/// One planned target: an upstream and the model name it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index into [`Upstreams::list`].
    pub upstream: usize,
    /// Model name sent upstream.
    pub model: String,
}

/// A request as it will be sent to each candidate. Its `Debug` leaves out the client's
/// `Authorization` and header values.
pub struct Outgoing<'a> {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The request's method.
    pub method: &'a http::Method,
    /// Path and query under `/v1` (`/moderations`), for [`Endpoint::Other`].
    pub path: &'a str,
    /// The client's `Content-Type` and `Accept`, kept for [`Endpoint::Other`] (a
    /// multipart body keeps its boundary); the others are JSON.
    pub client_types: (Option<&'a HeaderValue>, Option<&'a HeaderValue>),
    /// The body is a multipart form whose `model` field is `peek.model_span` (replaced
    /// as raw bytes, not as a JSON string).
    pub multipart: bool,
    /// The peeked body (model, stream, raw bytes).
    pub peek: &'a Peek<'a>,
    /// The body, forwarded as is when the model name does not change.
    pub body: &'a Bytes,
    /// The client's `Authorization`, for `passthrough` upstreams.
    pub client_auth: Option<&'a HeaderValue>,
    /// Propagated as `x-request-id`.
    pub request_id: &'a HeaderValue,
    /// Added by plugins (`user_headers`…).
    pub extra_headers: &'a [(HeaderName, HeaderValue)],
    /// The client's request headers, some of which are forwarded (see `send/headers`).
    pub client_headers: &'a HeaderMap,
    /// Whether a timed-out attempt may fail over to another target (the route's
    /// `retry_on_timeout`, else `routing.retry_on_timeout`).
    pub retry_on_timeout: bool,
}

impl std::fmt::Debug for Outgoing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra: Vec<&str> = self.extra_headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Outgoing")
            .field("endpoint", &self.endpoint)
            .field("body_bytes", &self.body.len())
            .field("client_auth", &self.client_auth.map(|_| "***"))
            .field("request_id", &self.request_id)
            .field("extra_headers", &extra)
            .field("retry_on_timeout", &self.retry_on_timeout)
            .finish_non_exhaustive()
    }
}

/// Which upstream answered, for logs and metrics (returned beside the response: the
/// request's record takes it, without a response extension's three allocations).
#[derive(Debug, Clone)]
pub struct Served {
    /// The upstream's name.
    pub upstream: Arc<str>,
    /// The model name it was sent.
    pub model: Arc<str>,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// Why one attempt produced nothing to relay.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// No connection (refused, DNS, TLS, connect timeout): the upstream never saw it.
    #[error(transparent)]
    Connect(H1Error),
    /// The request went out, then the exchange failed before a response head.
    #[error(transparent)]
    Exchange(H1Error),
    /// No response head within `first_byte_timeout`.
    #[error("no response within {0:?}")]
    FirstByteTimeout(Duration),
    /// The upstream answered 429 (with how long it asked us to wait, if it said, and
    /// whether it said so in `retry-after-ms`).
    #[error("answered {}", StatusCode::TOO_MANY_REQUESTS)]
    RateLimited(Option<Duration>, bool),
    /// The upstream answered 5xx (with the `Retry-After` a 503 may carry).
    #[error("answered {0}")]
    ServerError(StatusCode, Option<Duration>),
    /// The request cannot be put in this upstream's dialect; nothing was sent.
    #[error("{0}")]
    Untranslatable(EncodeError),
}

impl AttemptError {
    fn from_h1(e: H1Error) -> Self {
        if e.is_connect() {
            Self::Connect(e)
        } else {
            Self::Exchange(e)
        }
    }

    /// Whether the next candidate may be tried. Every kind may, because nothing has
    /// reached the client yet: connect failures never reached the upstream; 429 and 5xx
    /// are answers asking to go elsewhere; a timeout or a broken exchange leaves this
    /// upstream's outcome unknown, and another upstream is a separate system — except
    /// a timeout after the request went out when `retry_on_timeout` is off: the first
    /// generation may still run, and be billed, beside a second.
    pub fn is_retryable(&self, retry_on_timeout: bool) -> bool {
        match self {
            Self::Connect(_) | Self::RateLimited(..) | Self::ServerError(..) => true,
            Self::Exchange(_) | Self::FirstByteTimeout(_) => retry_on_timeout || !self.is_timeout(),
            // The client's request is at fault: every upstream would be asked the same.
            Self::Untranslatable(_) => false,
        }
    }

    /// Whether it says something about the upstream's connections (every model alike)
    /// rather than about one target.
    fn is_connection_level(&self) -> bool {
        matches!(self, Self::Connect(_))
    }

    /// Whether it was a timeout (connecting, or waiting for the head).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Connect(e) | Self::Exchange(e) => e.is_timeout(),
            Self::FirstByteTimeout(_) => true,
            Self::RateLimited(..) | Self::ServerError(..) | Self::Untranslatable(_) => false,
        }
    }

    /// A low-cardinality name of the outcome, for logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            _ if self.is_timeout() => "timeout",
            Self::Connect(_) => "connect_error",
            Self::Exchange(_) => "exchange_error",
            Self::FirstByteTimeout(_) => "timeout",
            Self::RateLimited(..) => "status_429",
            Self::ServerError(..) => "status_5xx",
            Self::Untranslatable(_) => "untranslatable",
        }
    }
}

/// The failed attempts of one request, in order.
#[derive(Debug, Default)]
struct Failures(Vec<(Arc<str>, AttemptError)>);

impl Failures {
    fn into_error(mut self) -> GatewayError {
        if let Some((_, AttemptError::Untranslatable(_))) = self.0.last() {
            if let Some((_, AttemptError::Untranslatable(e))) = self.0.pop() {
                return GatewayError::Untranslatable {
                    message: e.message,
                    param: e.param,
                };
            }
        }
        let n = self.0.len();
        let rate_limited = self
            .0
            .iter()
            .filter(|(_, e)| matches!(e, AttemptError::RateLimited(..)))
            .count();
        let timeouts = self.0.iter().filter(|(_, e)| e.is_timeout()).count();
        let last_rate_limited = self
            .0
            .last()
            .is_some_and(|(_, e)| matches!(e, AttemptError::RateLimited(..)));
        let retry_after = self
            .0
            .iter()
            .filter_map(|(_, e)| match e {
                AttemptError::RateLimited(after, _) => *after,
                _ => None,
            })
            .min();
        let retry_after_ms = self
            .0
            .iter()
            .any(|(_, e)| matches!(e, AttemptError::RateLimited(_, true)));
        let why = self
            .0
            .iter()
            .filter_map(|(name, e)| match e {
                AttemptError::Connect(h1) => h1.tls_reason().map(|why| (name.clone(), why)),
                _ => None,
            })
            .collect();
        let tried = self.0.into_iter().map(|(name, _)| name).collect();
        // All of them, or several (the last among them): the gateway's own 429.
        if n > 0 && (rate_limited == n || rate_limited > 1 && last_rate_limited) {
            return GatewayError::RateLimited {
                tried,
                retry_after,
                retry_after_ms,
            };
        }
        let kind = if n == 0 {
            FailureKind::Unavailable
        } else if timeouts == n {
            FailureKind::Timeout
        } else {
            FailureKind::BadGateway
        };
        GatewayError::UpstreamsFailed { kind, tried, why }
    }
}

impl Upstreams {
    /// Tries the plan's candidates in order until one answers with something to relay:
    /// those in rotation first, then those cooling down; every attempt after the first
    /// is drawn from the retry budget. With the answer, which upstream and model gave it.
    pub async fn send(
        &self,
        plan: &[Candidate],
        out: &Outgoing<'_>,
    ) -> Result<(Response<ResponseBody>, Served), GatewayError> {
        let mut guard = if out.peek.stream {
            Some(
                self.streams
                    .acquire()
                    .ok_or(GatewayError::Overloaded(self.streams.max))?,
            )
        } else {
            None
        };
        let routing = &self.routing;
        let mut failures = Failures::default();
        let now = Instant::now();
        self.budget.request(now);
        let deadline = now + routing.request_timeout;
        // Targets out of cool-down first, in plan order; the cooling ones after them, so
        // that when every healthy target failed the rest are still tried within
        // `max_attempts` rather than answering after one attempt.
        let available = |c: &&Candidate| self.list[c.upstream].health.is_available(&c.model, now);
        // Decided once, before any attempt changes a target's health; no list is built
        // when every target is available (the usual case).
        let reordered: Vec<&Candidate>;
        let ordered: &mut (dyn Iterator<Item = &Candidate> + Send) =
            if plan.iter().all(|c| available(&c)) {
                &mut plan.iter()
            } else {
                let (mut first, cooling): (Vec<&Candidate>, Vec<&Candidate>) =
                    plan.iter().partition(available);
                first.extend(cooling);
                reordered = first;
                &mut reordered.into_iter()
            };
        let mut failed: Option<(&Upstream, bool)> = None;
        // The last attempt's 429 answer, unread, with who gave it.
        let mut last_429: Option<(Answer, &Upstream, &Candidate)> = None;
        // Candidates that timed out this request: a second generation is never started
        // on the same target (another target is a separate system: that one is tried).
        let mut timed_out: Vec<&Candidate> = Vec::new();
        for candidate in ordered {
            if failures.0.len() >= routing.max_attempts as usize || Instant::now() >= deadline {
                break;
            }
            if timed_out
                .iter()
                .any(|t| t.upstream == candidate.upstream && t.model == candidate.model)
            {
                continue;
            }
            if !failures.0.is_empty() && !self.budget.withdraw(Instant::now()) {
                metrics().retry_budget_exhausted.inc();
                static LOG: Throttle = Throttle::new();
                if let Some(held) = LOG.allow() {
                    tracing::warn!(
                        request_id = ?out.request_id,
                        refused_since_last_line = held,
                        "retry budget spent: no failover for this request"
                    );
                }
                break;
            }
            let up = &self.list[candidate.upstream];
            if let Some((previous, after_retry_after)) = failed.take() {
                previous.metrics.failovers.inc();
                if after_retry_after {
                    previous.metrics.retries_after_retry_after.inc();
                }
            }
            let served = || Served {
                upstream: up.name.clone(),
                model: Arc::from(candidate.model.as_str()),
                attempts: u32::try_from(failures.0.len() + 1).unwrap_or(u32::MAX),
            };
            let in_flight = up.health.recent.begin();
            let sent_at = Instant::now();
            let outcome = attempt(up, candidate, out, deadline).await;
            let head = sent_at.elapsed();
            up.health
                .recent
                .record(outcome.is_ok(), head, Instant::now());
            let error = match outcome {
                Ok(Answer::Mock) => {
                    up.metrics.attempt("ok");
                    let resp = mock_response(out, &candidate.model, &up.name);
                    return Ok((resp, served()));
                }
                Ok(answer) => {
                    up.health.record_success(&candidate.model);
                    // Answered, but said no request is left until its limit resets.
                    if let Some(wait) = answer.headers().and_then(rest::exhausted_until_reset) {
                        let target = up.health.target(&candidate.model);
                        target.rest_for(wait, MAX_REST, Instant::now());
                    }
                    let mut resp = respond(answer, up, guard.take());
                    if let ResponseBody::Relay(relay) = resp.body_mut() {
                        relay.hold(in_flight);
                        if out.endpoint == Endpoint::Other {
                            relay.without_end_check();
                            // A created Responses API object: remember who holds it.
                            if *out.method == http::Method::POST
                                && out.path.split('?').next() == Some("/responses")
                            {
                                relay.with_responses_end_check();
                                let name = up.name.clone();
                                relay.on_first_frame(Box::new(move |first| {
                                    super::owners::remember(first, name);
                                }));
                            }
                        }
                    }
                    return Ok((resp, served()));
                }
                Err((e, answer)) => {
                    last_429 = answer.map(|resp| (resp, up, candidate));
                    e
                }
            };
            up.metrics.attempt(error.outcome());
            if let AttemptError::Untranslatable(e) = &error {
                // Nothing was sent: the upstream's health is not in question.
                tracing::debug!(request_id = ?out.request_id, upstream = %up.name, reason = %e, "request not translatable");
                failures.0.push((up.name.clone(), error));
                break;
            }
            let target = up.health.target(&candidate.model);
            // An upstream that said how long to wait is left alone that long at once.
            if let AttemptError::RateLimited(Some(wait), _)
            | AttemptError::ServerError(_, Some(wait)) = &error
            {
                target.rest_for(*wait, MAX_REST, Instant::now());
            }
            if error.is_timeout() {
                timed_out.push(candidate);
            }
            failed = Some((up, matches!(error, AttemptError::RateLimited(Some(_), _))));
            let health = if error.is_connection_level() {
                &up.health.connections
            } else {
                &target
            };
            let cooled = health.record_failure(
                routing.failures_before_cooldown,
                routing.cooldown,
                Instant::now(),
            );
            tracing::warn!(
                request_id = ?out.request_id,
                upstream = %up.name,
                model = %candidate.model,
                outcome = error.outcome(),
                reason = %error,
                cooldown = cooled,
                "upstream attempt failed"
            );
            let retryable = error.is_retryable(out.retry_on_timeout);
            failures.0.push((up.name.clone(), error));
            if !retryable {
                break;
            }
        }
        // One upstream said 429 last: the client gets its answer as it came (status,
        // body with its `code`, `retry-after`, `x-ratelimit-*`, `x-should-retry`…), for
        // SDKs decide from those whether and when to retry.
        let rate_limited = failures
            .0
            .iter()
            .filter(|(_, e)| matches!(e, AttemptError::RateLimited(..)))
            .count();
        if let (Some((answer, up, candidate)), 1) = (last_429, rate_limited) {
            let served = Served {
                upstream: up.name.clone(),
                model: Arc::from(candidate.model.as_str()),
                attempts: u32::try_from(failures.0.len()).unwrap_or(u32::MAX),
            };
            return Ok((respond(answer, up, None), served));
        }
        Err(failures.into_error())
    }
}

/// One attempt at one candidate: the answer to relay ([`Answer::Mock`] for the
/// in-process mock, answered by the caller), or why there is nothing to relay — with
/// the upstream's 429 answer, which is relayed as it came when it is the request's only
/// one.
async fn attempt(
    up: &Upstream,
    candidate: &Candidate,
    out: &Outgoing<'_>,
    deadline: Instant,
) -> Result<Answer, (AttemptError, Option<Answer>)> {
    let Some(client) = &up.client else {
        return Ok(Answer::Mock);
    };
    let Prepared {
        destination,
        body,
        reply,
    } = dialect::prepare(up, &candidate.model, out)
        .map_err(|e| (AttemptError::Untranslatable(e), None))?;
    let accept = match (out.peek.stream, up.config.dialect) {
        (true, Dialect::Ollama) => "application/x-ndjson",
        (true, _) => "text/event-stream",
        (false, _) => "application/json",
    };
    let (content_type, accept) = match (out.endpoint, out.client_types) {
        (Endpoint::Other, (content_type, client_accept)) => (
            content_type
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json")),
            client_accept
                .cloned()
                .unwrap_or(HeaderValue::from_static("*/*")),
        ),
        _ => (
            HeaderValue::from_static("application/json"),
            HeaderValue::from_static(accept),
        ),
    };
    let fixed = [
        (header::CONTENT_TYPE, content_type),
        (header::ACCEPT, accept),
        (X_REQUEST_ID.clone(), out.request_id.clone()),
        // The relay reads and re-cuts bodies: ask for them uncompressed.
        (
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        ),
        // Some WAFs refuse requests without one; an upstream's `headers:` may override.
        (
            header::USER_AGENT,
            headers::user_agent(up, out.client_headers),
        ),
    ];
    // GET and DELETE (forwarded `Other` requests) carry no body.
    let carries_body = !matches!(*out.method, http::Method::GET | http::Method::DELETE);
    let sent = client.send(
        &destination,
        out.method.as_str(),
        request_headers(up, out, &fixed),
        carries_body.then_some(&body),
        up.config.connect_timeout,
    );
    // The attempt's own bound, or what is left of the request's.
    let started = Instant::now();
    let until = (started + up.config.first_byte_timeout).min(deadline);
    let mut resp = match tokio::time::timeout_at(until, sent).await {
        Err(_elapsed) => {
            let waited = until.saturating_duration_since(started);
            return Err((AttemptError::FirstByteTimeout(waited), None));
        }
        Ok(Err(e)) => return Err((AttemptError::from_h1(e), None)),
        Ok(Ok(resp)) => resp,
    };
    if let Some(coding) = compressed_stream(&resp.headers) {
        // Events cannot be relayed one by one out of a compressed body: refuse it
        // rather than hold it back (or, with stream plugins, send an empty success).
        let why = format!(
            "the upstream sent a `{coding}`-compressed event stream, which cannot be relayed event by event"
        );
        return Err((AttemptError::Exchange(H1Error::protocol(why)), None));
    }
    let answer = match reply {
        None => Answer::Upstream(resp),
        Some(reply) if resp.status.is_success() && out.peek.stream => {
            let mut decoder = dialect::stream_decoder(up.config.dialect, reply);
            let primed = dialect::prime(&mut resp.body, decoder.as_mut(), until)
                .await
                .map_err(|e| (AttemptError::Exchange(e), None))?;
            Answer::Translated(resp, decoder, primed)
        }
        Some(reply) => {
            let whole = dialect::read_all(&mut resp.body, up.config.idle_timeout)
                .await
                .map_err(|e| (AttemptError::Exchange(e), None))?;
            if resp.status.is_success() {
                let json = dialect::decode(up.config.dialect, &whole, &reply).map_err(|e| {
                    let why = format!("the upstream's answer could not be translated: {e}");
                    (AttemptError::Exchange(H1Error::protocol(why)), None)
                })?;
                Answer::Ready(resp.status, resp.headers, json)
            } else {
                let mapped = dialect::map_error(up.config.dialect, resp.status.as_u16(), &whole);
                // A wait said in the body (Gemini) becomes the answer's `Retry-After`, so
                // the rest and the client's retry see it like any other.
                if let Some(secs) = mapped.retry_after_secs {
                    if !resp.headers.contains_key(header::RETRY_AFTER) {
                        resp.headers
                            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                    }
                }
                let status = StatusCode::from_u16(mapped.status).unwrap_or(resp.status);
                if mapped.retryable
                    && !status.is_server_error()
                    && status != StatusCode::TOO_MANY_REQUESTS
                {
                    // Retryable by the dialect's word (an overload said in a 4xx).
                    return Err((
                        AttemptError::ServerError(StatusCode::SERVICE_UNAVAILABLE, None),
                        None,
                    ));
                }
                Answer::Ready(status, resp.headers, mapped.body)
            }
        }
    };
    let (status, headers) = match &answer {
        Answer::Upstream(r) | Answer::Translated(r, ..) => (r.status, &r.headers),
        Answer::Ready(status, headers, _) => (*status, headers),
        Answer::Mock => return Ok(answer),
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        let ms = headers.contains_key(&RETRY_AFTER_MS);
        let wait = rest::asked(headers);
        return Err((AttemptError::RateLimited(wait, ms), Some(answer)));
    }
    if status.is_server_error() {
        let wait = (status == StatusCode::SERVICE_UNAVAILABLE)
            .then(|| rest::asked(headers))
            .flatten();
        return Err((AttemptError::ServerError(status, wait), None));
    }
    Ok(answer)
}

/// The longest an upstream's own `Retry-After` keeps it out of rotation.
const MAX_REST: Duration = Duration::from_secs(300);

/// The content coding of an event stream that is not `identity`, if any.
fn compressed_stream(headers: &HeaderMap) -> Option<String> {
    let sse = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let coding = headers.get(header::CONTENT_ENCODING)?;
    (sse && !coding
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"identity"))
    .then(|| String::from_utf8_lossy(coding.as_bytes()).into_owned())
}

/// The headers of an upstream request: the upstream's own (auth, extras), the JSON
/// content type, what the client accepts, the request id, the client headers it is
/// forwarded, plugin headers, and the client's `Authorization` for bring-your-own-key
/// upstreams.
fn request_headers<'a>(
    up: &'a Upstream,
    out: &'a Outgoing<'_>,
    fixed: &'a [(HeaderName, HeaderValue); 5],
) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> {
    let passthrough = match up.config.auth {
        Auth::Passthrough => out.client_auth.map(|v| (&header::AUTHORIZATION, v)),
        _ => None,
    };
    up.headers
        .iter()
        .chain(
            fixed
                .iter()
                .filter(|(n, _)| !up.headers.contains_key(n))
                .map(|(n, v)| (n, v)),
        )
        .chain(headers::forwarded(up, out.client_headers))
        .chain(out.extra_headers.iter().map(|(n, v)| (n, v)))
        .chain(passthrough)
}

mod headers;
mod respond;

#[cfg(test)]
mod tests;
