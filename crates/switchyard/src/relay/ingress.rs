//! Anthropic-format ingress (`POST /v1/messages`): the request is translated into an
//! OpenAI chat request at the door ([`to_chat`]) and runs the chat pipeline like any
//! other — keys, plugins, routing, failover, every upstream dialect — and the response
//! is translated back on its way out ([`wrap`]): a JSON answer into a Messages answer,
//! a stream event by event into Messages events, any error into Anthropic's error shape.
//! The translations are `switchyard_dialects::messages`' (pure); this module holds the
//! body that applies them.

use super::{BoxError, ResponseBody};
use crate::error::GatewayError;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use switchyard_dialects::messages::{self, StreamEncoder};

/// Largest answer held to be translated whole (JSON answers and errors).
const MAX_HELD: usize = 32 * 1024 * 1024;

/// The Messages request as an OpenAI chat request, with the model it names.
pub fn to_chat(body: &[u8]) -> Result<(Bytes, String), GatewayError> {
    messages::request_to_chat(body)
        .map(|chat| (chat.body, chat.model))
        .map_err(|e| GatewayError::Untranslatable {
            message: e.message,
            param: e.param,
        })
}

/// How a response body is translated back.
enum Mode {
    /// A stream: each piece re-encoded as Messages events.
    Stream(Box<StreamEncoder>),
    /// A JSON answer, held whole, then translated.
    Json(BytesMut),
    /// An error body, held whole, then put in Anthropic's shape.
    Error(BytesMut, u16),
}

/// A response body on its way back to a Messages client.
pub struct IngressBody {
    inner: ResponseBody,
    mode: Mode,
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

/// Turns a chat pipeline response into a Messages one.
pub fn wrap(
    resp: Response<ResponseBody>,
    model: String,
    request_id: &str,
) -> Response<ResponseBody> {
    let (mut parts, inner) = resp.into_parts();
    let sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let status = parts.status.as_u16();
    let mode = if !parts.status.is_success() {
        Mode::Error(BytesMut::new(), status)
    } else if sse {
        let id = format!("msg_{request_id}");
        Mode::Stream(Box::new(StreamEncoder::new(&model, &id)))
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
                        Mode::Json(held) => match messages::chat_to_message(held, &self.model) {
                            Ok(message) => message,
                            Err(e) => messages::error_body(
                                502,
                                &format!("the answer could not be translated: {e}"),
                            ),
                        },
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
