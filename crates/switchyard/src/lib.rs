//! Switchyard, the daemon: an OpenAI-compatible gateway in front of many upstream LLM
//! APIs. [`Gateway`] is the API the binary, tests and benches use: build it from a
//! [`Config`], bind, run until a shutdown signal.
//!
//! The modules form layers; each imports only from layers below it (ARCHITECTURE.md
//! draws them, and `tests/layers.rs` enforces it). Bottom to top: vocabulary (`error`,
//! `endpoint`, `caller`) · telemetry (`metrics`, `record`, `log_writer`) · `export` (request records out) · transport (`client`, `tls`) · `relay` (response bodies) ·
//! `upstream` (send with failover) · services (`auth`, `catalog`, `plugins`) ·
//! `snapshot` · `pipeline` (one request, top to bottom) · `reload` (build, then swap) ·
//! `admin` (the operators' listener) · edge (`server`, `cli`, this file).

pub mod admin;
pub mod auth;
pub mod cache;
pub mod caller;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod export;
pub mod lifecycle;
pub mod log_writer;
pub mod metrics;
pub mod pipeline;
pub mod plugins;
pub mod record;
pub mod relay;
pub mod reload;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod tls;
pub mod upstream;

use client::Clients;
use reload::{Overrides, Reloader};
use snapshot::{Live, Snapshot};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;
use switchyard_config::{Config, ConfigErrors};

/// How long shutdown waits for the exporter to write what it holds.
const EXPORT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config failed a check only a full build can make (plugins, files, TLS).
    #[error("invalid config: {}", .0.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Config(ConfigErrors),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The bound listener could not join the runtime.
    #[error("cannot register the listener: {0}")]
    Register(std::io::Error),
}

/// A bound gateway, ready to run.
pub struct Gateway {
    listener: std::net::TcpListener,
    metrics_listener: Option<std::net::TcpListener>,
    admin_listener: Option<std::net::TcpListener>,
    live: Arc<Live>,
    clients: Arc<Clients>,
    open_streams: Arc<AtomicU32>,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    workers: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
    export: Option<export::Workers>,
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
    pub fn bind(config: Config, listen: Option<SocketAddr>) -> Result<Self, StartError> {
        let addr = listen.unwrap_or(config.server.listen);
        // 0: the CPUs this process may use — its affinity mask, capped by a cgroup CPU
        // quota (a container's CPU limit, cgroup v2 `cpu.max` or v1 CFS), rounded down,
        // at least 1 — never the host's count when a limit says otherwise.
        let workers = match config.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n as usize,
        };
        let hidden = |e| StartError::Config(config.redactor.errors(e));
        let tls = config
            .server
            .tls
            .as_ref()
            .map(tls::acceptor)
            .transpose()
            .map_err(hidden)?;
        let metrics_addr = config.metrics.enabled.then_some(config.metrics.listen);
        let (exporter, export) = match &config.export {
            Some(e) => export::build(e)
                .map(|(exporter, workers)| (Some(exporter), Some(workers)))
                .map_err(hidden)?,
            None => (None, None),
        };
        config
            .admin
            .check()
            .map_err(|e| StartError::Config(ConfigErrors(vec![e])))?;
        let admin_addr = config.admin.enabled.then_some(config.admin.listen);
        let clients = Arc::new(Clients::default());
        let open_streams = Arc::new(AtomicU32::new(0));
        let mut snap =
            Snapshot::build(config, &clients, open_streams.clone()).map_err(StartError::Config)?;
        snap.exporter = exporter;
        let listener = bind(addr)?;
        let metrics_listener = metrics_addr.map(bind).transpose()?;
        let admin_listener = admin_addr.map(bind).transpose()?;
        reload::mark_loaded();
        Ok(Self {
            listener,
            metrics_listener,
            admin_listener,
            clients,
            open_streams,
            config_path: None,
            overrides: Overrides::default(),
            live: Arc::new(Live::new(Arc::new(snap))),
            workers,
            tls,
            export,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Makes reloads (SIGHUP, `POST /admin/reload`, `server.watch`) read `path`, with
    /// the command line's `overrides` applied to each read.
    #[must_use]
    pub fn reloading_from(mut self, path: Option<PathBuf>, overrides: Overrides) -> Self {
        self.config_path = path;
        self.overrides = overrides;
        self
    }

    /// The admin listener's address, when the admin API is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref()?.local_addr().ok()
    }

    /// The metrics listener's address, when metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref()?.local_addr().ok()
    }

    /// Worker threads the runtime should have (`server.workers`, or one per CPU).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests. Call it on a
    /// multi-threaded runtime with [`Gateway::workers`] threads.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<server::Drained, StartError> {
        snapshot::spawn_catalog_refresh(&self.live.load_full(), true);
        if let Some(shared) = &self.live.load_full().state {
            shared.say_first_contact();
        }
        let reloader = Arc::new(Reloader::new(
            self.config_path,
            self.overrides,
            self.live.clone(),
            self.clients,
            self.open_streams,
        ));
        let sighup = reload::spawn_sighup(reloader.clone());
        let watch = reload::spawn_watch(reloader.clone());
        let admin = match self.admin_listener {
            Some(l) => {
                let l = tokio::net::TcpListener::from_std(l).map_err(StartError::Register)?;
                Some(tokio::spawn(admin::serve(l, reloader)))
            }
            None => None,
        };
        let reaper = tokio::spawn(client::h1::reap_idle());
        let export = self.export.map(export::Workers::spawn);
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(StartError::Register)?;
        let metrics = match self.metrics_listener {
            Some(l) => {
                let l = tokio::net::TcpListener::from_std(l).map_err(StartError::Register)?;
                Some(tokio::spawn(server::serve_metrics(l, self.live.clone())))
            }
            None => None,
        };
        let drained = server::serve(listener, self.live, self.tls, shutdown).await;
        for task in [metrics, admin, sighup, watch].into_iter().flatten() {
            task.abort();
        }
        reaper.abort();
        if let Some(export) = export {
            export.shutdown(EXPORT_FLUSH_TIMEOUT).await;
        }
        Ok(drained)
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| StartError::Listen { addr, source })
}

/// Builds a snapshot with clients of its own (one-shot uses such as `switchyard models`).
pub fn build_snapshot(config: Config) -> Result<Snapshot, ConfigErrors> {
    Snapshot::build(config, &Clients::default(), Arc::new(AtomicU32::new(0)))
}
