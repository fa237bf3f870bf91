//! One client connection's guard rails, as an I/O wrapper under hyper:
//!
//! - **Read deadlines while the connection is idle** (no request being answered): from
//!   accept to the end of the first request head (`server.header_timeout`), between
//!   requests (`server.idle_timeout`), and from a later request's first byte to the end
//!   of its head (`header_timeout` again). A silent connection is closed, not kept.
//!   While a request is being answered reads have no deadline here: the body has its
//!   own (`server.body_timeout`, in the pipeline), and a client receiving a long stream
//!   sends nothing.
//! - **A write deadline** (`server.write_timeout`): a write that makes no progress for
//!   that long (the client stopped reading) fails, hyper closes the connection, and the
//!   response body — with the upstream connection under it — is dropped.
//! - **hyper's own error answers made OpenAI-shaped**: for a head it cannot parse or
//!   that is too large, hyper writes a bare `400` / `414` / `431` itself, without asking
//!   the service. Such an answer lacks the `x-request-id` every service answer carries,
//!   so it is recognised and replaced with the same status carrying the gateway's JSON
//!   error.
//!
//! "In service" is counted by [`Activity`]: the service takes a [`Busy`] guard per
//! request and its response body ([`Tracked`]) holds it until hyper drops the body.

use crate::error::GatewayError;
use crate::metrics::metrics;
use crate::pipeline::MAX_TARGET_BYTES;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// The deadlines of one connection (from `server.*`), and its head size limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    /// `server.max_header_bytes` (for the 431 answer's message).
    pub(super) header_bytes: u32,
    /// Accept (or a later request's first byte) to the end of the head.
    pub(super) header: Duration,
    /// Between requests.
    pub(super) idle: Duration,
    /// A write making no progress.
    pub(super) write: Duration,
}

/// Requests of one connection: being answered now, and started so far.
#[derive(Debug, Default)]
pub(super) struct Activity {
    busy: AtomicUsize,
    started: AtomicUsize,
    /// The connection's reader, parked while a request was in service: woken when the
    /// last one ends, so the idle deadline starts.
    reader: Mutex<Option<Waker>>,
}

impl Activity {
    /// Marks one request as in service until the guard drops.
    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        IN_SERVICE.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::AcqRel);
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::Acquire)
    }
}

/// Requests in service on every connection (the drain waits for none).
static IN_SERVICE: AtomicUsize = AtomicUsize::new(0);
static ALL_DONE: Notify = Notify::const_new();

/// Waits until no request is in service on any connection, or `deadline`; whether
/// none was.
pub(super) async fn all_done(deadline: Instant) -> bool {
    loop {
        let done = ALL_DONE.notified();
        if IN_SERVICE.load(Ordering::Acquire) == 0 {
            return true;
        }
        tokio::select! {
            () = done => {}
            () = tokio::time::sleep_until(deadline) => {
                return IN_SERVICE.load(Ordering::Acquire) == 0;
            }
        }
    }
}

/// Requests in service now, on every connection.
pub(super) fn in_service() -> usize {
    IN_SERVICE.load(Ordering::Acquire)
}

/// One request in service (see [`Activity::busy`]).
#[derive(Debug)]
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if IN_SERVICE.fetch_sub(1, Ordering::AcqRel) == 1 {
            ALL_DONE.notify_waiters();
        }
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            let parked = self.0.reader.lock().ok().and_then(|mut w| w.take());
            if let Some(waker) = parked {
                waker.wake();
            }
        }
    }
}

/// A response body that keeps its request [`Busy`] until hyper is done with it.
#[derive(Debug)]
pub(super) struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

impl<B> Tracked<B> {
    /// Wraps `inner`.
    pub(super) fn new(inner: B, busy: Busy) -> Self {
        Self { inner, _busy: busy }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where the connection is, for the read deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, no byte yet: the first head is due by the deadline.
    Fresh,
    /// Between requests.
    Idle,
    /// A head has started arriving.
    Head,
    /// A request is in service: no read deadline.
    Serving,
}

/// The guarded connection.
pub(super) struct ConnIo<T> {
    inner: T,
    activity: Arc<Activity>,
    deadlines: Deadlines,
    peer: SocketAddr,
    phase: Phase,
    /// [`Activity::started`] when last looked at.
    seen: usize,
    read_due: Instant,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_due: Option<Instant>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// hyper's bare error answer, replaced: our bytes, how many are out, and how many
    /// of hyper's to report written when ours are.
    replacing: Option<(Bytes, usize, usize)>,
}

impl<T> std::fmt::Debug for ConnIo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnIo")
            .field("peer", &self.peer)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<T> ConnIo<T> {
    /// Guards `inner`, accepted just now.
    pub(super) fn new(
        inner: T,
        activity: Arc<Activity>,
        deadlines: Deadlines,
        peer: SocketAddr,
    ) -> Self {
        Self {
            inner,
            activity,
            deadlines,
            peer,
            phase: Phase::Fresh,
            seen: 0,
            read_due: Instant::now() + deadlines.header,
            read_timer: None,
            write_due: None,
            write_timer: None,
            replacing: None,
        }
    }

    /// Brings the phase up to date with the service's activity (a request may have
    /// started and even finished since the last read).
    fn track(&mut self) {
        let idle = self.activity.idle();
        let started = self.activity.started();
        let new_request = started != self.seen;
        self.seen = started;
        match (self.phase, idle) {
            (_, false) => self.phase = Phase::Serving,
            (phase, true) if new_request || phase == Phase::Serving => {
                self.phase = Phase::Idle;
                self.read_due = Instant::now() + self.deadlines.idle;
            }
            _ => {}
        }
    }

    /// Whether `due` has passed; registers the waker for it otherwise.
    fn expired(timer: &mut Option<Pin<Box<Sleep>>>, due: Instant, cx: &mut Context<'_>) -> bool {
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    fn timed_out(&self, kind: &'static str) -> io::Error {
        metrics().client_timeout(kind);
        match kind {
            "write" => {
                tracing::info!(peer = %self.peer, after = ?self.deadlines.write, "client stopped reading; connection closed")
            }
            _ => tracing::debug!(peer = %self.peer, kind, "client connection timed out"),
        }
        io::Error::new(io::ErrorKind::TimedOut, format!("client {kind} timeout"))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.track();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    match this.phase {
                        Phase::Fresh => this.phase = Phase::Head,
                        Phase::Idle => {
                            this.phase = Phase::Head;
                            this.read_due = Instant::now() + this.deadlines.header;
                        }
                        Phase::Head | Phase::Serving => {}
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.phase == Phase::Serving => {
                if let Ok(mut reader) = this.activity.reader.lock() {
                    if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *reader = Some(cx.waker().clone());
                    }
                }
                // The request may have ended since `track` looked.
                if this.activity.idle() {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Pending => {
                if Self::expired(&mut this.read_timer, this.read_due, cx) {
                    let kind = if this.phase == Phase::Idle {
                        "idle"
                    } else {
                        "header"
                    };
                    return Poll::Ready(Err(this.timed_out(kind)));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> ConnIo<T> {
    /// Applies the write deadline to one write-side poll.
    fn guard_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(result) => {
                self.write_due = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let due = *self
                    .write_due
                    .get_or_insert_with(|| Instant::now() + self.deadlines.write);
                if Self::expired(&mut self.write_timer, due, cx) {
                    return Poll::Ready(Err(self.timed_out("write")));
                }
                Poll::Pending
            }
        }
    }

    /// Starts replacing hyper's bare error answer when `head` is one.
    fn intercept(&mut self, head: &[u8], len: usize) {
        if self.replacing.is_none() {
            if let Some(ours) = openai_shaped(head, self.deadlines.header_bytes) {
                tracing::debug!(peer = %self.peer, "malformed request head refused");
                self.replacing = Some((ours, 0, len));
            }
        }
    }

    /// Writes the replacement out; `Ready(n)` with hyper's length once it is all out.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<usize>>> {
        let (ours, written, claimed) = self.replacing.as_mut()?;
        while *written < ours.len() {
            let polled = Pin::new(&mut self.inner).poll_write(cx, &ours[*written..]);
            let n = match polled {
                Poll::Ready(Ok(0)) => {
                    return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Pending => return Some(Poll::Pending),
            };
            *written += n;
        }
        Some(Poll::Ready(Ok(*claimed)))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.intercept(buf, buf.len());
        if let Some(polled) = this.poll_replacement(cx) {
            return this.guard_write(cx, polled);
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.guard_write(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            let total = bufs.iter().map(|b| b.len()).sum();
            this.intercept(first, total);
        }
        if let Some(polled) = this.poll_replacement(cx) {
            return this.guard_write(cx, polled);
        }
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard_write(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}

/// The OpenAI-shaped answer for a bare error head hyper wrote itself (`400`, `414`,
/// `431`), or `None` for anything else. Every answer of the service carries
/// `x-request-id`; hyper's own never does — that, not timing, tells them apart (a
/// service's response may well be written after its body, and so its request, is done).
fn openai_shaped(head: &[u8], header_bytes: u32) -> Option<Bytes> {
    // Every response head passes here: the status decides first, without a copy.
    let error = match head.strip_prefix(b"HTTP/1.1 ".as_slice())?.get(..3)? {
        b"400" => GatewayError::BadFraming("the request could not be parsed as HTTP/1.1"),
        b"414" => GatewayError::UriTooLong(MAX_TARGET_BYTES),
        b"431" => GatewayError::HeadersTooLarge(header_bytes),
        _ => return None,
    };
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    let ours = head[..end]
        .windows(13)
        .any(|w| w.eq_ignore_ascii_case(b"x-request-id:"));
    (!ours).then(|| raw_response(&error))
}

/// A whole HTTP/1.1 response for `error`, closing the connection.
pub(super) fn raw_response(error: &GatewayError) -> Bytes {
    let status = error.status();
    let body = error.body_json().to_string();
    Bytes::from(format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_own_error_heads_are_replaced() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 02:55:39 GMT\r\n\r\n";
        let ours = openai_shaped(hyper_431, 65_536).unwrap();
        let text = String::from_utf8_lossy(&ours);
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
        assert!(text.contains("65536-byte"), "{text}");
        let service_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nX-Request-Id: req_1\r\ncontent-length: 2\r\n\r\n{}";
        assert!(openai_shaped(service_400, 65_536).is_none());
        assert!(openai_shaped(b"HTTP/1.1 200 OK\r\n\r\n", 65_536).is_none());
        assert!(openai_shaped(b"HTTP/1.1 500 Internal\r\n\r\n", 65_536).is_none());
    }
}
