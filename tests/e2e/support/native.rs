//! `NativeUpstream`: an in-process server on 127.0.0.1:0 that answers in a provider's
//! own wire format (Anthropic SSE, Gemini SSE, Ollama NDJSON, Azure paths), scripted by
//! a handler that sees each request and returns the literal bytes to send — as separate
//! body frames, so a test can split a stream wherever it likes. Every request is
//! recorded.

use super::Seen;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// One scripted answer: status, content type, extra headers and the body in frames.
#[derive(Debug, Clone)]
pub struct NativeReply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body frames, sent 5 ms apart.
    pub frames: Vec<Bytes>,
}

impl NativeReply {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            frames: vec![Bytes::from(body.to_string())],
        }
    }

    /// A body cut into frames at these byte offsets (a stream split at awkward places).
    pub fn split(status: u16, content_type: &'static str, body: &str, cuts: &[usize]) -> Self {
        let bytes = body.as_bytes();
        let mut frames = Vec::new();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(bytes.len());
            if cut > at {
                frames.push(Bytes::copy_from_slice(&bytes[at..cut]));
                at = cut;
            }
        }
        frames.push(Bytes::copy_from_slice(&bytes[at..]));
        Self {
            status,
            content_type,
            headers: Vec::new(),
            frames,
        }
    }

    /// A body sent in one frame per line (SSE events and NDJSON alike).
    pub fn lines(status: u16, content_type: &'static str, body: &str) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            frames: body
                .split_inclusive('\n')
                .map(|l| Bytes::copy_from_slice(l.as_bytes()))
                .collect(),
        }
    }

    /// With an extra header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Seen) -> NativeReply + Send + Sync;

/// A server speaking whatever its handler answers.
#[derive(Clone)]
pub struct NativeUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl NativeUpstream {
    /// Starts a server whose every request is answered by `handler`.
    pub async fn start(handler: impl Fn(&Seen) -> NativeReply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let (seen2, handler2) = (seen.clone(), handler.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, handler) = (seen2.clone(), handler2.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (seen, handler) = (seen.clone(), handler.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let request = Seen {
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let reply = handler(&request);
                            seen.lock().unwrap().push(request);
                            Ok::<_, Infallible>(respond(reply))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    /// `http://127.0.0.1:PORT` (no path: each dialect adds its own).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type NativeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn respond(reply: NativeReply) -> Response<NativeBody> {
    let frames = reply.frames;
    let stream =
        futures_util::stream::unfold((frames.into_iter(), true), |(mut it, first)| async move {
            let next = it.next()?;
            if !first {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(next)), (it, false)))
        });
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap())
        .header("content-type", reply.content_type);
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    builder.body(StreamBody::new(stream).boxed()).unwrap()
}
