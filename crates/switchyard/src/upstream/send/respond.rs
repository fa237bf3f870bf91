//! What one attempt's answer becomes for the client: an OpenAI-format upstream body
//! relayed as it arrives (hop-by-hop headers dropped; the upstream's request id and
//! account headers as `send/headers` says), a translated stream decoded in
//! the relay, a translated JSON answer or mapped error ready whole, or the in-process
//! mock's reply.

use super::super::Upstream;
use super::Outgoing;
use crate::client::h1::H1Response;
use crate::endpoint::Endpoint;
use crate::relay::{Relay, ResponseBody, StreamGuard};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use switchyard_dialects::mock::{completion_events, other_reply, responses_reply, MockReply};
use switchyard_dialects::translate::StreamDecode;

/// What one attempt produced to relay.
pub(super) enum Answer {
    /// The in-process mock answers (the caller builds it).
    Mock,
    /// An OpenAI-format answer, relayed as it arrives.
    Upstream(H1Response),
    /// A translated stream: decoded chunk by chunk as it arrives.
    Translated(
        H1Response,
        Box<dyn StreamDecode>,
        super::super::dialect::Primed,
    ),
    /// A translated answer, read and decoded whole (or a mapped error body), with the
    /// upstream's headers.
    Ready(StatusCode, HeaderMap, Bytes),
}

impl Answer {
    pub(super) fn headers(&self) -> Option<&HeaderMap> {
        match self {
            Self::Mock => None,
            Self::Upstream(r) | Self::Translated(r, ..) => Some(&r.headers),
            Self::Ready(_, headers, _) => Some(headers),
        }
    }
}

/// Hop-by-hop headers are not relayed (names built at compile time: a `&str` key
/// would be parsed again on every lookup).
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
];

pub(super) static RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
pub(super) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's response for an answer (not [`Answer::Mock`], built by the caller).
pub(super) fn respond(
    mut answer: Answer,
    up: &Upstream,
    guard: Option<StreamGuard>,
) -> Response<ResponseBody> {
    match &mut answer {
        Answer::Upstream(r) | Answer::Translated(r, ..) => {
            super::headers::from_upstream(&mut r.headers, up)
        }
        Answer::Ready(_, headers, _) => super::headers::from_upstream(headers, up),
        Answer::Mock => {}
    }
    match answer {
        Answer::Upstream(resp) => relay(resp, up, guard),
        Answer::Translated(resp, decoder, primed) => {
            let H1Response {
                status,
                mut headers,
                body,
            } = resp;
            strip_for_translation(&mut headers);
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            let mut body = Relay::translated(
                body,
                decoder,
                (primed.ready, primed.error),
                up.config.idle_timeout,
                up.name.clone(),
                guard,
            );
            body.count_for(up.metrics.clone());
            let mut out = Response::new(ResponseBody::Relay(Box::new(body)));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            out
        }
        Answer::Ready(status, mut headers, json) => {
            strip_for_translation(&mut headers);
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let mut body = Relay::ready(json, up.name.clone());
            body.count_for(up.metrics.clone());
            let mut out = Response::new(ResponseBody::Relay(Box::new(body)));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            out
        }
        Answer::Mock => {
            let mut out = Response::new(ResponseBody::full(Bytes::new()));
            *out.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            out
        }
    }
}

/// Headers of a translated answer that described the upstream's body, not ours.
fn strip_for_translation(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
}

fn relay(resp: H1Response, up: &Upstream, guard: Option<StreamGuard>) -> Response<ResponseBody> {
    let H1Response {
        status,
        mut headers,
        body,
    } = resp;
    let sse = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if sse || chunked {
        // Chunked framing wins over a stray Content-Length; SSE events are re-cut and
        // may be added to (error events), so the length can change.
        headers.remove(header::CONTENT_LENGTH);
    }
    let mut body = Relay::upstream(
        body,
        sse,
        up.config.idle_timeout,
        up.name.clone(),
        guard.filter(|_| sse),
    );
    body.count_for(up.metrics.clone());
    let mut out = Response::new(ResponseBody::Relay(Box::new(body)));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

pub(super) fn mock_response(
    out: &Outgoing<'_>,
    model: &str,
    name: &Arc<str>,
) -> Response<ResponseBody> {
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
        Endpoint::Completions if out.peek.stream => {
            let rid = out.request_id.to_str().unwrap_or("mock");
            let events = completion_events(out.body, model, &format!("cmpl-{rid}"), created);
            (
                ResponseBody::Relay(Box::new(Relay::events(events, name.clone()))),
                "text/event-stream",
            )
        }
        Endpoint::Completions => (
            ResponseBody::full(other_reply("completions", out.body, model, created)),
            "application/json",
        ),
        Endpoint::Other
            if *out.method == http::Method::POST
                && out.path.split('?').next() == Some("/responses") =>
        {
            let rid = out.request_id.to_str().unwrap_or("mock");
            match responses_reply(out.body, model, rid, created) {
                (true, events) => (
                    ResponseBody::Relay(Box::new(Relay::events(events, name.clone()))),
                    "text/event-stream",
                ),
                (false, mut json) => (
                    ResponseBody::full(json.pop().unwrap_or_default()),
                    "application/json",
                ),
            }
        }
        Endpoint::Embeddings => (
            ResponseBody::full(other_reply("embeddings", out.body, model, created)),
            "application/json",
        ),
        Endpoint::Other => {
            let message = format!(
                "the built-in mock model does not serve /v1{}",
                out.path.split('?').next().unwrap_or_default()
            );
            let mut resp = Response::new(ResponseBody::full(switchyard_dialects::error_body(
                &message,
                "invalid_request_error",
                None,
                Some("unknown_url"),
            )));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return resp;
        }
    };
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
