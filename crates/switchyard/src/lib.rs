//! Switchyard, the daemon: an OpenAI-compatible gateway in front of many upstream LLM
//! APIs. [`Gateway`] is the API the binary, tests and benches use: build it from a
//! [`Config`], bind, run until a shutdown signal.
//!
//! Map of the crate: `pipeline` (one request top to bottom) · `snapshot` (everything
//! built from one config, swapped atomically) · `auth` (client keys) · `plugins` (the
//! chain and the built-ins) · `catalog` (model lists) · `upstream` (send with
//! failover; `balance`, `health`, `pool`) · `body` (relay, stream hooks, SSE errors) ·
//! `error` (OpenAI-shaped errors) · `server` (listener) · `cli`.

pub mod auth;
pub mod body;
pub mod catalog;
pub mod cli;
pub mod concurrent;
pub mod error;
pub mod pipeline;
pub mod plugins;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod upstream;

use snapshot::{Live, Snapshot};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use switchyard_config::{Config, ConfigErrors};
use upstream::pool::Pools;

/// A bound gateway, ready to run.
pub struct Gateway {
    listener: std::net::TcpListener,
    live: Arc<Live>,
    workers: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listener", &self.listener)
            .field("workers", &self.workers)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the first snapshot and binds the data-plane listener.
    pub fn bind(config: Config, listen: Option<SocketAddr>) -> Result<Self, String> {
        let addr = listen.unwrap_or(config.server.listen);
        let workers = match config.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n as usize,
        };
        let one_line = |e: ConfigErrors| {
            let all: Vec<String> = e.0.iter().map(ToString::to_string).collect();
            format!("invalid config: {}", all.join("; "))
        };
        let tls = config
            .server
            .tls
            .as_ref()
            .map(tls::acceptor)
            .transpose()
            .map_err(one_line)?;
        let snap = build_snapshot(config).map_err(one_line)?;
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        Ok(Self {
            listener,
            live: Arc::new(Live::new(Arc::new(snap))),
            workers,
            tls,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Worker threads the runtime should have (`server.workers`, or one per CPU).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests. Call it on a
    /// multi-threaded runtime with [`Gateway::workers`] threads.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), String> {
        snapshot::spawn_catalog_refresh(&self.live.load_full());
        let listener = tokio::net::TcpListener::from_std(self.listener)
            .map_err(|e| format!("cannot register the listener: {e}"))?;
        server::serve(listener, self.live, self.tls, shutdown).await;
        Ok(())
    }
}

/// Builds a snapshot with fresh pools (one-shot uses such as `switchyard models`).
pub fn build_snapshot(config: Config) -> Result<Snapshot, ConfigErrors> {
    Snapshot::build(config, &Pools::default(), Arc::new(AtomicU32::new(0)))
}
