//! A small HTTP/1.1 client for the request path to upstreams, over TCP or rustls.
//!
//! Why not hyper's client here: its response body crosses a one-slot channel from the
//! connection task, so every upstream chunk costs a task wake-up and a separate write
//! to the client. This client reads the upstream socket inside the response body's own
//! poll: whatever one `read` returns — often a whole burst of SSE events — is decoded
//! and handed on as one piece, and the connection goes back to the pool the moment its
//! body ends. Keep-alive connections are pooled per (scheme, host, port, trust, proxy);
//! through an HTTP proxy, `https` upstreams are reached over a `CONNECT` tunnel and
//! `http` ones with absolute-form requests ([`proxy`]), the connect timeout covering
//! proxy connect, `CONNECT` and TLS alike. An idle connection whose close (or stray
//! bytes) the reactor has already seen is not reused, and idle connections expire
//! (after the destination's idle limit, `IDLE_FOR` by default, or sooner when the
//! upstream's `Keep-Alive: timeout=N` says so); [`reap_idle`] closes expired ones on a
//! timer, whether or not another request comes ([`pool`]).
//! A request is sent again, once, on a fresh connection only when a reused one failed
//! before the request got out or closed without a byte of answer (a server closing an
//! idle connection as the request arrived has not acted on it); after any byte of
//! answer, a failure is the caller's (the server may have acted on it, and a POST must
//! not run twice).

use crate::metrics::metrics;
use bytes::{Bytes, BytesMut};
use destination::{connector, default_roots, ConnKey};
pub use destination::{Destination, DestinationError, Roots};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use idle::idle_for;
pub use pool::{reap_idle, REAP_EVERY};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use wire::{decode, encode_head, framing, parse_head, Framing};

mod destination;
#[doc(hidden)]
pub mod fuzzing;
mod idle;
mod pool;
mod proxy;
mod wire;

/// Bodies up to this size are sent in the same write as the head.
const SMALL_BODY: usize = 16 * 1024;

/// After writing the body failed, how long an answer the server sent before it closed
/// may take to arrive.
const EARLY_ANSWER_WAIT: Duration = Duration::from_millis(500);
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Why a request failed: before the connection was up (`Connect`, `ConnectTimeout`,
/// `Tls`, `Proxy`: the upstream never saw the request) or after (`Io`, `Protocol`).
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// TCP connect failed.
    #[error("could not connect: {0}")]
    Connect(#[source] io::Error),
    /// TCP connect plus TLS handshake took longer than the connect timeout.
    #[error("could not connect: timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The TLS handshake failed.
    #[error("could not connect: TLS: {0}")]
    Tls(#[source] io::Error),
    /// The proxy would not open a tunnel (its status), or did not speak HTTP/1.1.
    #[error("could not connect: {0}")]
    Proxy(String),
    /// Reading or writing the connection failed.
    #[error("request failed: {0}")]
    Io(#[source] io::Error),
    /// The upstream broke HTTP/1.1 (bad head, closed before a response…).
    #[error("request failed: {0}")]
    Protocol(String),
}

impl H1Error {
    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol(message.into())
    }

    /// Why a TLS handshake failed, in words a client may see (no URL, no detail that
    /// varies): the certificate's trust, name or dates, or the handshake as such.
    pub fn tls_reason(&self) -> Option<&'static str> {
        use rustls::{CertificateError, Error};
        let Self::Tls(e) = self else { return None };
        let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>());
        Some(match rustls_error {
            Some(Error::InvalidCertificate(cert)) => match cert {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "TLS certificate not trusted"
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "TLS certificate not valid for the upstream's host name"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "TLS certificate expired"
                }
                _ => "TLS certificate rejected",
            },
            _ => "TLS handshake failed",
        })
    }

    /// The connection could not be made (the upstream never saw the request).
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Connect(_) | Self::ConnectTimeout(_) | Self::Tls(_) | Self::Proxy(_) => true,
            Self::Io(_) | Self::Protocol(_) => false,
        }
    }

    /// A timeout: connecting, or a socket timeout reading or writing.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::ConnectTimeout(_) => true,
            Self::Connect(e) | Self::Io(e) => e.kind() == io::ErrorKind::TimedOut,
            Self::Tls(_) | Self::Proxy(_) | Self::Protocol(_) => false,
        }
    }
}
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Io {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(s) => Pin::new(s).poll_write(cx, data),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(data).await,
            Self::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }
}

/// A connection with its read buffer.
struct Conn {
    io: Io,
    buf: BytesMut,
    scratch: Box<[u8; READ_CHUNK]>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        metrics().connections_open.dec();
    }
}

impl Conn {
    /// Reads once into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(&mut self.scratch[..]);
        match self.io.poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.buf.extend_from_slice(rb.filled());
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Whether a pooled connection still looks usable: anything the reactor has seen
    /// waiting on it while idle — end of stream, an error, stray bytes or a TLS alert
    /// — means it is not. Only the reactor's cached readiness is asked (no syscall
    /// unless it saw something): a FIN that reached the socket after the reactor's
    /// last look is caught by the send itself, which tries once more on a new
    /// connection when a reused one closes unanswered (see [`SendError`]). Asking the
    /// socket with a `MSG_PEEK` here was one syscall on every pooled request.
    fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut rb = ReadBuf::new(&mut probe);
        matches!(self.io.poll_read(&mut cx, &mut rb), Poll::Pending)
    }
}

/// The client: a TLS configuration; idle connections live in per-thread pools
/// ([`pool`]).
pub struct H1Client {
    tls: TlsConnector,
}

impl std::fmt::Debug for H1Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Client").finish_non_exhaustive()
    }
}

/// A response head and its body, still to be read.
pub struct H1Response {
    /// Status.
    pub status: StatusCode,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The body.
    pub body: H1Body,
}

impl H1Client {
    /// A client trusting the bundled webpki roots.
    pub fn new() -> Result<Arc<Self>, DestinationError> {
        Ok(Arc::new(Self {
            tls: connector(default_roots())?,
        }))
    }

    /// Sends a POST (or GET when `body` is `None`) and reads the response head.
    pub async fn request<'h>(
        self: &Arc<Self>,
        target: &Destination,
        headers: impl Iterator<Item = (&'h HeaderName, &'h HeaderValue)>,
        body: Option<&Bytes>,
        connect_timeout: Duration,
    ) -> Result<H1Response, H1Error> {
        let method = if body.is_some() { "POST" } else { "GET" };
        self.send(target, method, headers, body, connect_timeout)
            .await
    }

    /// Sends a request with this method (`body` for methods that carry one) and reads
    /// the response head.
    pub async fn send<'h>(
        self: &Arc<Self>,
        target: &Destination,
        method: &str,
        headers: impl Iterator<Item = (&'h HeaderName, &'h HeaderValue)>,
        body: Option<&Bytes>,
        connect_timeout: Duration,
    ) -> Result<H1Response, H1Error> {
        let head = encode_head(target, method, headers, body);
        if let Some(conn) = self.checkout(&target.key) {
            // Counted whatever comes of it: a request sent again after this connection
            // closed unanswered is one reuse and one new connection.
            metrics().connections_reused.inc();
            match self.exchange(conn, target, &head, body).await {
                Ok(resp) => return Ok(resp),
                // The server closed this kept-alive connection before the request got
                // out, or as it arrived: it never answered, and a connection closed
                // while idle cannot have processed it. One new connection carries it
                // (what hyper and Go's transport do); counted.
                Err(SendError::NotSent(_) | SendError::Unanswered(_)) => {
                    metrics().connections_retried.inc();
                }
                Err(SendError::Failed(e)) => return Err(e),
            }
        }
        let conn = self.connect(target, connect_timeout).await?;
        match self.exchange(conn, target, &head, body).await {
            Ok(resp) => Ok(resp),
            Err(SendError::NotSent(e) | SendError::Unanswered(e) | SendError::Failed(e)) => Err(e),
        }
    }

    fn checkout(&self, key: &ConnKey) -> Option<Conn> {
        let now = Instant::now();
        pool::with_local(|idle| idle.get_mut(key)?.checkout(now, Conn::is_reusable))
    }

    fn checkin(&self, key: ConnKey, conn: Conn, idle_for: Duration) {
        let now = Instant::now();
        pool::with_local(|idle| {
            // Every host's expired connections go, not only this one's (the reaper
            // catches the rest within a second).
            for list in idle.values_mut() {
                list.sweep(now);
            }
            idle.entry(key)
                .or_default()
                .checkin(conn, now + idle_for, now);
        });
    }

    async fn connect(&self, target: &Destination, timeout: Duration) -> Result<Conn, H1Error> {
        let key = &target.key;
        let connect = async {
            let mut tcp = match &target.proxy {
                None => TcpStream::connect((&*key.host, key.port))
                    .await
                    .map_err(H1Error::Connect)?,
                Some(p) => TcpStream::connect((&*p.host, p.port))
                    .await
                    .map_err(proxy::to_proxy)?,
            };
            tcp.set_nodelay(true).map_err(H1Error::Connect)?;
            if let Some(p) = target.proxy.as_ref().filter(|_| key.tls) {
                proxy::tunnel(&mut tcp, target, p).await?;
            }
            let io = if key.tls {
                let tls = target
                    .tls
                    .as_ref()
                    .unwrap_or(&self.tls)
                    .connect(target.server_name.clone(), tcp)
                    .await
                    .map_err(H1Error::Tls)?;
                Io::Tls(Box::new(tls))
            } else {
                Io::Plain(tcp)
            };
            metrics().connections_opened.inc();
            metrics().connections_open.inc();
            Ok(Conn {
                io,
                buf: BytesMut::with_capacity(READ_CHUNK),
                scratch: Box::new([0; READ_CHUNK]),
            })
        };
        tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_elapsed| H1Error::ConnectTimeout(timeout))?
    }

    async fn exchange(
        self: &Arc<Self>,
        mut conn: Conn,
        target: &Destination,
        head: &[u8],
        body: Option<&Bytes>,
    ) -> Result<H1Response, SendError> {
        let small = body.is_none_or(|b| b.len() <= SMALL_BODY);
        conn.buf.clear();
        // A large body is written while the connection is watched: a server may answer
        // (401, 413…) before it has read it all, and close — that answer is relayed, not
        // a broken pipe.
        let mut answered_early = false;
        let written = if small {
            conn.io.write_all(head).await // the body is already in `head`
        } else {
            match conn.io.write_all(head).await {
                Ok(()) => {
                    let body = body.map_or(&[][..], |b| &b[..]);
                    match write_watching(&mut conn, body).await {
                        Ok(early) => {
                            answered_early = early;
                            Ok(())
                        }
                        Err(e) => {
                            // The answer may be in the buffer, or still on its way.
                            let arriving =
                                tokio::time::timeout(EARLY_ANSWER_WAIT, conn.fill()).await;
                            if conn.buf.is_empty() && !matches!(arriving, Ok(Ok(1..))) {
                                Err(e)
                            } else {
                                tracing::debug!(error = %e, "the upstream answered before taking the whole body");
                                answered_early = true;
                                Ok(())
                            }
                        }
                    }
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = written {
            return Err(SendError::NotSent(H1Error::Io(e)));
        }
        // Anything at all came back (a 1xx head included, which leaves `buf` empty).
        let mut received = false;
        loop {
            if let Some(parsed) = parse_head(&mut conn.buf).map_err(SendError::Failed)? {
                if parsed.status.is_informational() {
                    continue; // 100 Continue and friends
                }
                let framing = framing(parsed.status, &parsed.headers).map_err(SendError::Failed)?;
                // Part of the request is still unsent: the connection cannot be reused.
                let keep_alive = parsed.keep_alive() && !answered_early;
                let body = H1Body {
                    conn: Some(conn),
                    framing,
                    keep_alive,
                    idle_for: idle_for(&parsed.headers, target.idle_for),
                    pool: Arc::downgrade(self),
                    key: target.key.clone(),
                };
                return Ok(H1Response {
                    status: parsed.status,
                    headers: parsed.headers,
                    body,
                });
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(SendError::Failed(H1Error::protocol(
                    "response head too large",
                )));
            }
            // The request is out: from here on it is only sent again when the
            // connection ended without a single byte of answer.
            match conn.fill().await {
                Ok(0) if received => {
                    return Err(SendError::Failed(H1Error::protocol(
                        "connection closed inside the response head",
                    )))
                }
                Ok(0) => {
                    return Err(SendError::Unanswered(H1Error::protocol(
                        "connection closed before a response",
                    )))
                }
                Ok(_) => received = true,
                Err(e) if !received && is_reset(&e) => {
                    return Err(SendError::Unanswered(H1Error::Io(e)))
                }
                Err(e) => return Err(SendError::Failed(H1Error::Io(e))),
            }
        }
    }
}

/// Writes `body` while reading whatever the server sends meanwhile into the
/// connection's buffer; `Ok(true)` when an answer began before the body was all out
/// (the rest is then not sent).
async fn write_watching(conn: &mut Conn, body: &[u8]) -> io::Result<bool> {
    let mut written = 0;
    std::future::poll_fn(|cx| loop {
        match conn.poll_fill(cx) {
            Poll::Ready(Ok(0)) if !conn.buf.is_empty() => return Poll::Ready(Ok(true)),
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the upstream closed the connection while the body was sent",
                )))
            }
            Poll::Ready(Ok(_)) => return Poll::Ready(Ok(true)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        if written == body.len() {
            return match conn.io.poll_flush(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(false)),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
        match conn.io.poll_write(cx, &body[written..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// The peer closed or reset the connection.
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

enum SendError {
    /// Writing the request failed: on a reused connection, the server closed it
    /// before the request got out, so a fresh connection may carry it.
    NotSent(H1Error),
    /// Written, then the connection closed or reset without a byte of answer: on a
    /// reused connection, the server closed it while idle, as the request arrived.
    Unanswered(H1Error),
    /// The request was written (the server may have acted on it): never sent again.
    Failed(H1Error),
}

/// A response body read straight off the connection.
pub struct H1Body {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    /// How long the connection may idle in the pool once the body ends.
    idle_for: Duration,
    pool: std::sync::Weak<H1Client>,
    key: ConnKey,
}

impl std::fmt::Debug for H1Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body")
            .field("framing", &self.framing)
            .finish()
    }
}

impl H1Body {
    /// Bytes left, when the upstream said how many.
    pub fn remaining(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The next piece of body: everything decodable from what has been read.
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let (data, done) = match decode(&mut conn.buf, &mut self.framing) {
                Ok(decoded) => decoded,
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            };
            if done {
                self.finish();
            }
            if !data.is_empty() {
                return Poll::Ready(Some(Ok(data)));
            }
            if done {
                return Poll::Ready(None);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                // A TLS peer that closes without `close_notify` ends a close-delimited
                // body as browsers and curl accept it: a cut there cannot be told from
                // the end over plain TCP either (streams are checked for their end).
                Poll::Ready(Err(e))
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        && self.framing == Framing::UntilClose =>
                {
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Err(e)) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Ok(0)) => {
                    self.conn = None;
                    return Poll::Ready(if self.framing == Framing::UntilClose {
                        None
                    } else {
                        Some(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the upstream closed the connection mid-body",
                        )))
                    });
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// The body ended: the connection goes back to the pool if it can be reused.
    fn finish(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.keep_alive && conn.buf.is_empty() && self.framing != Framing::UntilClose {
            if let Some(pool) = self.pool.upgrade() {
                pool.checkin(self.key.clone(), conn, self.idle_for);
            }
        }
    }
}

#[cfg(test)]
mod tests;
