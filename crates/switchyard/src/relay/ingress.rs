//! Requests in another API served as chat: Anthropic's Messages (`POST /v1/messages`)
//! and, for upstreams without it, OpenAI's Responses API (`POST /v1/responses`). The
//! request is translated into an OpenAI chat request at the door ([`to_chat`]) and runs
//! the chat pipeline like any other — keys, plugins, routing, failover, every upstream
//! dialect — and the response is translated back on its way out ([`wrap`]): a JSON
//! answer, a stream event by event, and (Messages) any error into Anthropic's shape.
//! The translations are `switchyard_dialects::{messages, responses}`' (pure); this
//! module holds the body that applies them.

use super::{BoxError, ResponseBody};
use crate::error::GatewayError;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use switchyard_dialects::translate::StreamDecode;
use switchyard_dialects::{messages, responses};

/// Which API the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anthropic's Messages API.
    Messages,
    /// OpenAI's Responses API, for an upstream without it.
    Responses,
}

/// Largest answer held to be translated whole (JSON answers and errors).
const MAX_HELD: usize = 32 * 1024 * 1024;

/// The request as an OpenAI chat request.
pub fn to_chat(kind: Kind, body: &[u8]) -> Result<Bytes, GatewayError> {
    let chat = match kind {
        Kind::Messages => messages::request_to_chat(body).map(|c| c.body),
        Kind::Responses => responses::request_to_chat(body).map(|c| c.body),
    };
    chat.map_err(|e| GatewayError::Untranslatable {
        message: e.message,
        param: e.param,
    })
}

/// How a response body is translated back.
enum Mode {
    /// A stream: each piece re-encoded as the client's events.
    Stream(Box<dyn StreamDecode>),
    /// A JSON answer, held whole, then translated.
    Json(BytesMut),
    /// An error body, held whole, then put in Anthropic's shape.
    Error(BytesMut, u16),
}

/// A response body on its way back to a Messages client.
pub struct IngressBody {
    inner: ResponseBody,
    mode: Mode,
    kind: Kind,
    /// The answer's id (`msg_…` / `resp_…`).
    id: String,
    model: String,
    done: bool,
}

impl std::fmt::Debug for IngressBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressBody")
            .field("model", &self.model)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Turns a chat pipeline response into one of the client's API. A Responses client's
/// errors are OpenAI's already: they pass as they are.
pub fn wrap(
    resp: Response<ResponseBody>,
    kind: Kind,
    model: String,
    request_id: &str,
) -> Response<ResponseBody> {
    if kind == Kind::Responses && !resp.status().is_success() {
        return resp;
    }
    let (mut parts, inner) = resp.into_parts();
    let sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let status = parts.status.as_u16();
    let id = match kind {
        Kind::Messages => format!("msg_{request_id}"),
        Kind::Responses => format!("resp_{request_id}"),
    };
    let mode = if !parts.status.is_success() {
        Mode::Error(BytesMut::new(), status)
    } else if sse {
        match kind {
            Kind::Messages => Mode::Stream(Box::new(messages::StreamEncoder::new(&model, &id))),
            Kind::Responses => Mode::Stream(Box::new(responses::StreamEncoder::new(&model, &id))),
        }
    } else {
        Mode::Json(BytesMut::new())
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if !sse {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let body = IngressBody {
        inner,
        mode,
        kind,
        id,
        model,
        done: false,
    };
    Response::from_parts(parts, ResponseBody::Ingress(Box::new(body)))
}

impl IngressBody {
    /// Polls the next translated frame.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            };
            match frame {
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    match &mut self.mode {
                        Mode::Stream(encoder) => {
                            let mut out = BytesMut::new();
                            let pushed = encoder.push(&data, &mut out);
                            if pushed.is_err() {
                                // The encoder wrote the Anthropic `error` event.
                                self.done = true;
                            }
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                            }
                        }
                        Mode::Json(held) | Mode::Error(held, _) => {
                            if held.len() + data.len() > MAX_HELD {
                                return Poll::Ready(Some(Err(
                                    "the answer is too large to translate".into(),
                                )));
                            }
                            held.extend_from_slice(&data);
                        }
                    }
                }
                None => {
                    self.done = true;
                    let out = match &mut self.mode {
                        Mode::Stream(encoder) => {
                            let mut out = BytesMut::new();
                            // An unfinished stream gets an `error` event from the encoder.
                            let _ended_cleanly = encoder.finish(&mut out).is_ok();
                            out.freeze()
                        }
                        Mode::Json(held) => {
                            let translated = match self.kind {
                                Kind::Messages => messages::chat_to_message(held, &self.model),
                                Kind::Responses => {
                                    responses::chat_to_response(held, &self.model, &self.id)
                                }
                            };
                            match translated {
                                Ok(answer) => answer,
                                Err(e) => {
                                    let why = format!("the answer could not be translated: {e}");
                                    match self.kind {
                                        Kind::Messages => messages::error_body(502, &why),
                                        Kind::Responses => switchyard_dialects::error_body(
                                            &why,
                                            "server_error",
                                            None,
                                            Some("upstream_error"),
                                        ),
                                    }
                                }
                            }
                        }
                        Mode::Error(held, status) => messages::error_from_openai(*status, held),
                    };
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
            }
        }
    }

    /// Whether nothing is left to send.
    pub fn is_end_stream(&self) -> bool {
        self.done
    }

    /// Unknown: the translation changes the length.
    pub fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
