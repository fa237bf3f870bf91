//! Upstreams whose wire format is not OpenAI's: what one attempt sends (path, body —
//! per candidate, since the model may sit in either) and how its answer comes back in
//! OpenAI's shape: a JSON body read whole and decoded, a stream decoded chunk by chunk
//! inside the relay, an error body mapped to OpenAI's error. The translations are
//! `switchyard_dialects`' pure functions; this module only picks them and does the I/O
//! around them (bounded body reads).

use super::{Outgoing, Upstream};
use crate::client::h1::{Destination, H1Body, H1Error};
use crate::endpoint::Endpoint;
use bytes::Bytes;
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_dialects::translate::{
    DecodeError, EncodeError, MappedError, Reply, StreamDecode, Target,
};
use switchyard_dialects::{anthropic, azure, gemini, ollama, rewrite_model, Dialect};

/// Largest translated answer (or error body) read whole.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// One attempt's request, ready to send.
pub(super) struct Prepared<'a> {
    pub destination: Cow<'a, Destination>,
    pub body: Bytes,
    /// Set for translated dialects: the identity of the OpenAI answer to build.
    pub reply: Option<Reply>,
}

/// Builds the request one candidate is sent.
pub(super) fn prepare<'a>(
    up: &'a Upstream,
    model: &str,
    out: &Outgoing<'_>,
) -> Result<Prepared<'a>, EncodeError> {
    let passed_body = || {
        if model == out.peek.model {
            out.body.clone()
        } else if out.multipart {
            switchyard_dialects::splice(out.peek.raw, out.peek.model_span.clone(), model.as_bytes())
        } else {
            rewrite_model(out.peek, model)
        }
    };
    let dialect = up.config.dialect;
    match dialect {
        Dialect::OpenAi | Dialect::Mock if out.endpoint == Endpoint::Other => Ok(Prepared {
            destination: Cow::Owned(up.destination_at(out.path)),
            body: passed_body(),
            reply: None,
        }),
        Dialect::OpenAi | Dialect::Mock => Ok(Prepared {
            destination: Cow::Borrowed(up.destination(out.endpoint)),
            body: passed_body(),
            reply: None,
        }),
        Dialect::Azure => {
            let deployment = azure::deployment_for(&up.config.deployments, model);
            let operation = match out.endpoint {
                Endpoint::Other => out
                    .path
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('/'),
                other => other.path(),
            };
            // The v1 form names the deployment in the body's `model`.
            let (path, body) = if up.config.api_version == "v1" {
                let body = if deployment == out.peek.model {
                    out.body.clone()
                } else {
                    rewrite_model(out.peek, deployment)
                };
                (azure::v1_path(operation, None), body)
            } else {
                let path = azure::deployment_path(deployment, operation, &up.config.api_version);
                (path, passed_body())
            };
            Ok(Prepared {
                destination: Cow::Owned(up.destination_at(&path)),
                body,
                reply: None,
            })
        }
        // A Messages request passed through as it came (`/v1/messages` ingress).
        Dialect::Anthropic if out.endpoint == Endpoint::Other && out.path == "/messages" => {
            Ok(Prepared {
                destination: Cow::Owned(up.destination_at(anthropic::MESSAGES_PATH)),
                body: passed_body(),
                reply: None,
            })
        }
        Dialect::Anthropic | Dialect::Gemini | Dialect::Ollama => {
            if out.endpoint != Endpoint::Chat {
                return Err(EncodeError::new(
                    format!(
                        "model `{}` is served by a {dialect} API upstream, which has no /v1{}",
                        out.peek.model,
                        out.path.split('?').next().unwrap_or_default()
                    ),
                    None,
                ));
            }
            let target = Target {
                model,
                settings: &up.config.translate,
            };
            let encoded = match dialect {
                Dialect::Anthropic => anthropic::encode(out.body, target),
                Dialect::Gemini => gemini::encode(out.body, target),
                _ => ollama::encode(out.body, target),
            }?;
            if !encoded.dropped.is_empty() {
                tracing::debug!(
                    request_id = ?out.request_id,
                    upstream = %up.name,
                    dropped = %encoded.dropped.join(", "),
                    "request fields the upstream's dialect cannot carry were left out"
                );
            }
            let created = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let reply = Reply {
                id: format!("chatcmpl-{}", out.request_id.to_str().unwrap_or("0")),
                model: model.to_owned(),
                created,
                include_usage: encoded.include_usage,
            };
            Ok(Prepared {
                destination: Cow::Owned(up.destination_at(&encoded.path)),
                body: encoded.body,
                reply: Some(reply),
            })
        }
    }
}

/// The stream translator of a dialect (only translating ones are asked).
pub(super) fn stream_decoder(dialect: Dialect, reply: Reply) -> Box<dyn StreamDecode> {
    match dialect {
        Dialect::Anthropic => Box::new(anthropic::StreamDecoder::new(reply)),
        Dialect::Gemini => Box::new(gemini::StreamDecoder::new(reply)),
        _ => Box::new(ollama::StreamDecoder::new(reply)),
    }
}

/// A whole JSON answer, translated.
pub(super) fn decode(dialect: Dialect, body: &[u8], reply: &Reply) -> Result<Bytes, DecodeError> {
    match dialect {
        Dialect::Anthropic => anthropic::decode(body, reply),
        Dialect::Gemini => gemini::decode(body, reply),
        _ => ollama::decode(body, reply),
    }
}

/// An error answer, in OpenAI's shape.
pub(super) fn map_error(dialect: Dialect, status: u16, body: &[u8]) -> MappedError {
    match dialect {
        Dialect::Anthropic => anthropic::map_error(status, body),
        Dialect::Gemini => gemini::map_error(status, body),
        _ => ollama::map_error(status, body),
    }
}

/// What was decoded of a translated stream before it was handed to the relay.
#[derive(Debug, Default)]
pub(super) struct Primed {
    /// Decoded events to send first.
    pub(super) ready: Bytes,
    /// The decoder's error right after them, if it failed there.
    pub(super) error: Option<DecodeError>,
}

/// Reads a translated stream until its decoder writes something for the client (or
/// `until`): an upstream that fails before that — Anthropic's `overloaded_error` as its
/// first event after `message_start` — fails the attempt, so the next target is tried
/// instead of the client getting a stream that ends in an error with nothing in it.
pub(super) async fn prime(
    body: &mut H1Body,
    decoder: &mut dyn StreamDecode,
    until: tokio::time::Instant,
) -> Result<Primed, H1Error> {
    let mut out = bytes::BytesMut::new();
    loop {
        let read = tokio::time::timeout_at(until, std::future::poll_fn(|cx| body.poll_data(cx)));
        let chunk = match read.await {
            // Slow to say anything: relayed as it comes (the idle timeout applies).
            Err(_) | Ok(None) => return Ok(Primed::default()),
            Ok(Some(Err(e))) => return Err(H1Error::Io(e)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        match decoder.push(&chunk, &mut out) {
            Err(e) if out.is_empty() || only_role(&out) => {
                return Err(H1Error::protocol(format!(
                    "the upstream's stream failed before any content: {e}"
                )))
            }
            Err(e) => {
                return Ok(Primed {
                    ready: out.freeze(),
                    error: Some(e),
                })
            }
            Ok(()) if !out.is_empty() && !only_role(&out) => {
                return Ok(Primed {
                    ready: out.freeze(),
                    error: None,
                })
            }
            Ok(()) => {}
        }
    }
}

/// Whether decoded output is nothing but the opening role chunk (no content yet).
fn only_role(out: &[u8]) -> bool {
    let events = memchr::memmem::find_iter(out, b"data: ").count();
    events == 1
        && memchr::memmem::find(out, br#""delta":{"role":"assistant","content":""}"#).is_some()
}

/// Reads a body to its end: at most [`MAX_ANSWER_BYTES`], each piece within `idle`.
pub(super) async fn read_all(body: &mut H1Body, idle: Duration) -> Result<Bytes, H1Error> {
    let mut all = Vec::new();
    loop {
        let piece = tokio::time::timeout(idle, std::future::poll_fn(|cx| body.poll_data(cx)))
            .await
            .map_err(|_elapsed| {
                H1Error::protocol(format!("the answer stalled for {idle:?} while being read"))
            })?;
        match piece {
            None => return Ok(Bytes::from(all)),
            Some(Err(e)) => return Err(H1Error::Io(e)),
            Some(Ok(data)) => {
                all.extend_from_slice(&data);
                if all.len() > MAX_ANSWER_BYTES {
                    return Err(H1Error::protocol("the answer is too large to translate"));
                }
            }
        }
    }
}

/// Path of Anthropic's token counting, under an `anthropic` upstream's base URL.
const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";

impl super::Upstreams {
    /// Anthropic's `count_tokens` for a Messages request: sent as it came (model
    /// rewritten) to the first candidate whose upstream speaks `anthropic`, its answer
    /// relayed whole. `None` when no candidate can answer it.
    pub async fn count_tokens(
        &self,
        plan: &[super::Candidate],
        peek: &switchyard_dialects::Peek<'_>,
        request_id: &http::HeaderValue,
    ) -> Option<Result<http::Response<crate::relay::ResponseBody>, crate::error::GatewayError>>
    {
        use crate::error::{FailureKind, GatewayError};
        let (candidate, up) = plan.iter().find_map(|c| {
            let up = self.list.get(c.upstream)?;
            (up.config.dialect == Dialect::Anthropic).then_some((c, up))
        })?;
        let client = up.client.as_ref()?;
        let body = if candidate.model == peek.model {
            Bytes::copy_from_slice(peek.raw)
        } else {
            rewrite_model(peek, &candidate.model)
        };
        let json = http::HeaderValue::from_static("application/json");
        let id = http::HeaderName::from_static("x-request-id");
        let headers = up
            .headers
            .iter()
            .chain([(&http::header::CONTENT_TYPE, &json), (&id, request_id)]);
        let failed = || GatewayError::UpstreamsFailed {
            kind: FailureKind::BadGateway,
            tried: vec![up.name.clone()],
            why: Vec::new(),
        };
        let destination = up.destination_at(COUNT_TOKENS_PATH);
        let sent = client.request(
            &destination,
            headers,
            Some(&body),
            up.config.connect_timeout,
        );
        let answered = tokio::time::timeout(up.config.first_byte_timeout, sent).await;
        let Ok(Ok(mut resp)) = answered else {
            return Some(Err(failed()));
        };
        let Ok(whole) = read_all(&mut resp.body, up.config.idle_timeout).await else {
            return Some(Err(failed()));
        };
        let mut out = http::Response::new(crate::relay::ResponseBody::full(whole));
        *out.status_mut() = resp.status;
        out.headers_mut().insert(http::header::CONTENT_TYPE, json);
        Some(Ok(out))
    }
}
