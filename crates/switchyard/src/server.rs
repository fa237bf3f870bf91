//! The listeners. The data plane accepts TCP connections (`TCP_NODELAY`) up to
//! `server.max_connections` (fitted to the open-file limit; more are refused with a 503),
//! backs off when accepting fails, guards each connection with deadlines (`conn`),
//! serves HTTP/1.1 and h2c with hyper-util's auto builder (HTTPS with `server.tls`),
//! hands each request to `pipeline::handle`, and on shutdown drains for
//! `server.drain_timeout`, then cuts the streams still open. The
//! metrics listener answers `GET /metrics` in the Prometheus text format, without keys.

mod conn;

use crate::error::GatewayError;
use crate::lifecycle;
use crate::log_writer::Throttle;
use crate::metrics::metrics;
use crate::pipeline;
use crate::snapshot::Live;
use bytes::Bytes;
use conn::{Activity, ConnIo, Deadlines, Tracked};
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// After the drain ends and streams are cut, how long their error events have to go out.
const CUT_GRACE: Duration = Duration::from_secs(2);

/// File descriptors kept for everything but client connections (listeners, log and
/// export files, the metrics listener…), when `server.max_connections` is fitted to
/// the open-file limit.
const RESERVED_FDS: u64 = 64;

/// How shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every request finished within `server.drain_timeout`.
    Clean,
    /// Requests were still running when the drain ended; streams among them were cut.
    Cut,
}

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> Drained {
    let server = live.load().config.server.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's head timer also runs between requests; `conn` keeps both deadlines.
        .header_read_timeout(None)
        .max_buf_size(server.max_header_bytes as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024)
        .max_header_list_size(server.max_header_bytes);
    let deadlines = Deadlines {
        header_bytes: server.max_header_bytes,
        header: server.header_timeout,
        idle: server.idle_timeout,
        write: server.write_timeout,
    };
    let max_connections = fit_to_fd_limit(server.max_connections);
    let open = Arc::new(AtomicUsize::new(0));
    let mut accept = AcceptErrors::default();
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    accept.succeeded();
                    conn
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tokio::time::sleep(accept.failed(&e)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&open, max_connections) else {
            refuse(stream, peer, tls.is_some());
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::default());
        let live = live.clone();
        let in_service = activity.clone();
        let service = service_fn(move |req| {
            let live = live.clone();
            let busy = in_service.busy();
            async move {
                let resp = pipeline::handle(&live, req, peer).await;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, busy)))
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let result = match tls {
                None => {
                    let io = ConnIo::new(stream, activity, deadlines, peer);
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_elapsed) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let io = ConnIo::new(stream, activity, deadlines, peer);
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    // The drain: no new connections; requests on open ones are still answered (an
    // HTTP/1.1 answer then closes its connection, `/readyz` says 503) until none is in
    // service, or `drain_timeout`.
    drop(listener);
    lifecycle::start_draining();
    tracing::info!(timeout = ?server.drain_timeout, "shutting down; draining in-flight requests");
    let clean = conn::all_done(Instant::now() + server.drain_timeout).await;
    if !clean {
        tracing::warn!(
            requests = conn::in_service(),
            "drain timed out; cutting what is still running"
        );
        lifecycle::cut_streams();
    }
    // Idle connections close now; cut streams get a moment to send their error event.
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(CUT_GRACE) => {}
    }
    if clean {
        tracing::info!("all requests finished");
        Drained::Clean
    } else {
        Drained::Cut
    }
}

/// One client connection counted against `server.max_connections`.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        metrics().client_connections.inc();
        Some(Self(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics().client_connections.dec();
    }
}

/// A connection beyond `server.max_connections`: plain HTTP gets a 503 `overloaded`
/// answer (written without waiting on the client), TLS is closed. Counted; logged at
/// most once a second.
fn refuse(stream: TcpStream, peer: SocketAddr, tls: bool) {
    metrics().client_refused.inc();
    static LOG: Throttle = Throttle::new();
    if let Some(held) = LOG.allow() {
        tracing::warn!(%peer, refused_since_last_line = held, "at server.max_connections; refusing connections");
    }
    if tls {
        return;
    }
    let answer = conn::raw_response(&GatewayError::Overloaded(0));
    let _ = stream.try_write(&answer); // best effort: one write, then close
}

/// Accept failures: exponential back-off (5 ms to 1 s) and one log line a second.
#[derive(Debug, Default)]
struct AcceptErrors {
    backoff: Option<Duration>,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    fn succeeded(&mut self) {
        self.backoff = None;
    }

    fn failed(&mut self, e: &std::io::Error) -> Duration {
        metrics().accept_errors.inc();
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(error = %e, failures = self.unlogged, "accept failed; backing off");
            self.last_log = Some(now);
            self.unlogged = 0;
        }
        let next = self.backoff.map_or(Duration::from_millis(5), |b| {
            (b * 2).min(Duration::from_secs(1))
        });
        self.backoff = Some(next);
        next
    }
}

/// `server.max_connections`, lowered when the open-file limit could not hold that
/// many client connections plus one upstream connection each.
fn fit_to_fd_limit(configured: u32) -> usize {
    let configured = configured as usize;
    let Some(limit) = open_file_limit() else {
        return configured;
    };
    let fits = (limit.saturating_sub(RESERVED_FDS) / 2).max(1) as usize;
    if fits < configured {
        tracing::info!(
            configured,
            max_connections = fits,
            open_file_limit = limit,
            "server.max_connections lowered to fit the open-file limit (two descriptors per connection)"
        );
        return fits;
    }
    configured
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `GET /metrics` until the task is dropped. Scrape-time gauges (cool-downs,
/// open streams, the catalogue) are read from the current snapshot.
pub async fn serve_metrics(listener: TcpListener, live: Arc<Live>) {
    let builder = hyper::server::conn::http1::Builder::new();
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let live = live.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let live = live.clone();
            async move {
                let resp = if req.method() == Method::GET && req.uri().path() == "/metrics" {
                    live.load().observe(metrics());
                    let mut resp = Response::new(Full::new(Bytes::from(metrics().render())));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    resp
                } else {
                    let mut resp = Response::new(Full::new(Bytes::from_static(
                        b"only GET /metrics is served here\n",
                    )));
                    *resp.status_mut() = StatusCode::NOT_FOUND;
                    resp
                };
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(Duration::from_secs(60), conn).await {
                tracing::debug!(error = %e, "metrics connection timed out");
            }
        });
    }
}
