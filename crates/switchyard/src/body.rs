//! The response body type: a complete buffer, a list of ready events (mock dialect), or
//! an upstream body relayed frame by frame. Relaying enforces the idle timeout, keeps
//! SSE output aligned to whole events, and — when an SSE stream breaks after bytes were
//! sent — ends it with an OpenAI-shaped error event instead of a silent cut.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use switchyard_dialects::{error_event, sse::EventAligner};
use tokio::time::{Instant, Sleep};

/// Error type of a relayed body; makes hyper abort the client connection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the gateway sends.
#[derive(Debug)]
pub enum ResponseBody {
    /// One buffer (errors, JSON built here, mock replies).
    Full(Option<Bytes>),
    /// Ready-made frames sent one by one (mock streams).
    Frames(VecDeque<Bytes>),
    /// An upstream body, relayed as it arrives.
    Relay(Box<Relay>),
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Frames(frames) => Poll::Ready(frames.pop_front().map(|b| Ok(Frame::data(b)))),
            Self::Relay(relay) => relay.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Frames(frames) => frames.is_empty(),
            Self::Relay(relay) => relay.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Frames(_) => SizeHint::default(),
            Self::Relay(relay) => relay.upstream.size_hint(),
        }
    }
}

/// Counts open streams; the count drops when the guard does (stream finished or the
/// client went away).
#[derive(Debug)]
pub struct StreamGuard(Arc<AtomicU32>);

impl StreamGuard {
    /// Takes a slot if fewer than `limit` are taken.
    pub fn acquire(counter: &Arc<AtomicU32>, limit: u32) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(counter.clone()))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An upstream body on its way to the client.
#[derive(Debug)]
pub struct Relay {
    upstream: Incoming,
    /// `Some` for SSE: output is cut at event boundaries.
    aligner: Option<EventAligner>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    upstream_name: Arc<str>,
    done: bool,
    _guard: Option<StreamGuard>,
}

impl Relay {
    /// Wraps an upstream body. `sse` turns on event alignment and error events.
    pub fn new(
        upstream: Incoming,
        sse: bool,
        idle: Duration,
        upstream_name: Arc<str>,
        guard: Option<StreamGuard>,
    ) -> Self {
        Self {
            upstream,
            aligner: sse.then(EventAligner::default),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            upstream_name,
            done: false,
            _guard: guard,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    self.deadline.as_mut().reset(Instant::now() + self.idle);
                    let frame = match (frame.into_data(), &mut self.aligner) {
                        (Ok(data), Some(aligner)) => match aligner.push(data) {
                            Some(events) => Frame::data(events),
                            None => continue,
                        },
                        (Ok(data), None) => Frame::data(data),
                        (Err(frame), _) => frame, // trailers pass through
                    };
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(upstream = %self.upstream_name, error = %e, "upstream body broke");
                    return self.fail("the upstream connection broke mid-response");
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let rest = self.aligner.as_mut().map(EventAligner::take_rest);
                    return Poll::Ready(rest.filter(|r| !r.is_empty()).map(|r| Ok(Frame::data(r))));
                }
                Poll::Pending => {
                    ready!(self.deadline.as_mut().poll(cx));
                    tracing::warn!(upstream = %self.upstream_name, idle = ?self.idle, "upstream went idle");
                    return self
                        .fail("the upstream stopped sending before the response was complete");
                }
            }
        }
    }

    /// Ends the body after an upstream failure: an error event for SSE, an aborted
    /// connection otherwise (a truncated JSON body must not look complete).
    fn fail(&mut self, why: &str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        let message = format!("{why} (upstream: {})", self.upstream_name);
        match self.aligner {
            Some(_) => Poll::Ready(Some(Ok(Frame::data(error_event(
                &message,
                "server_error",
                Some("upstream_stream_error"),
            ))))),
            None => Poll::Ready(Some(Err(message.into()))),
        }
    }
}
