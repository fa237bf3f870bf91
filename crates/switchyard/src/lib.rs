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
pub mod upstream;

use snapshot::{Live, Snapshot};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use switchyard_config::{Config, ConfigErrors};
use tokio::net::TcpListener;
use upstream::pool::Pools;

/// A bound gateway, ready to run.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    live: Arc<Live>,
}

impl Gateway {
    /// Builds the first snapshot and binds the data-plane listener.
    pub async fn bind(config: Config, listen: Option<SocketAddr>) -> Result<Self, String> {
        let addr = listen.unwrap_or(config.server.listen);
        let snap = Arc::new(build_snapshot(config).map_err(|e| {
            let all: Vec<String> = e.0.iter().map(ToString::to_string).collect();
            format!("invalid config: {}", all.join("; "))
        })?);
        snapshot::spawn_catalog_refresh(&snap);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        Ok(Self {
            listener,
            live: Arc::new(Live::new(snap)),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        server::serve(self.listener, self.live, shutdown).await;
    }
}

/// Builds a snapshot with fresh pools (one-shot uses such as `switchyard models`).
pub fn build_snapshot(config: Config) -> Result<Snapshot, ConfigErrors> {
    Snapshot::build(config, &Pools::default(), Arc::new(AtomicU32::new(0)))
}
