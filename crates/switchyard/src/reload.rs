//! Hot reload: read the config file again, parse it, build a whole new [`Snapshot`]
//! off the request path, take over the state of unchanged upstreams
//! ([`Snapshot::carry_over`]), then swap it into [`Live`]. A bad file is rejected with
//! every problem and its YAML path and the old snapshot keeps serving. Requests and
//! streams in flight hold the snapshot they started with. Three triggers share one
//! [`Reloader`]: SIGHUP ([`spawn_sighup`]), `POST /admin/reload` (`admin`), and,
//! with `server.watch: true`, a change to the file ([`spawn_watch`]). Settings bound at
//! start (listeners, workers, TLS, export) keep their running values; a change to one
//! is logged as taking effect after a restart.

use crate::client::Clients;
use crate::metrics::metrics;
use crate::snapshot::{self, Live, Snapshot};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_config::{Config, ConfigErrors};

/// How often `server.watch` looks at the file.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What asked for a reload (the `trigger` field of its log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// `POST /admin/reload`.
    Admin,
    /// The file changed (`server.watch`).
    Watch,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Self::Signal => "sighup",
            Self::Admin => "admin",
            Self::Watch => "watch",
        }
    }
}

/// Command-line overrides applied to every config read (as they were at start).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
}

impl Overrides {
    /// Applies them to a config just read.
    pub fn apply(&self, config: &mut Config) {
        if let Some(addr) = self.metrics_listen {
            config.metrics.listen = addr;
        }
        if let Some(addr) = self.admin_listen {
            config.admin.listen = addr;
        }
    }
}

/// A successful reload.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The new generation.
    pub generation: u64,
    /// Restart-only settings that changed in the file and were not applied.
    pub restart_needed: Vec<&'static str>,
    /// Upstreams whose health and model list carried over.
    pub kept: Vec<Arc<str>>,
}

/// Everything a reload needs that outlives snapshots.
#[derive(Debug)]
pub struct Reloader {
    path: Option<PathBuf>,
    overrides: Overrides,
    live: Arc<Live>,
    clients: Arc<Clients>,
    open_streams: Arc<AtomicU32>,
    generation: AtomicU64,
    /// Hash of the file text the last reload read (so the watcher does not reload
    /// again what SIGHUP or the admin API already did).
    last_read: AtomicU64,
    /// One reload at a time; a second trigger waits and then reads the file again.
    running: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader over `live`, reading `path` (`None`: reloads are refused).
    pub fn new(
        path: Option<PathBuf>,
        overrides: Overrides,
        live: Arc<Live>,
        clients: Arc<Clients>,
        open_streams: Arc<AtomicU32>,
    ) -> Self {
        let generation = live.load().generation;
        Self {
            path,
            overrides,
            live,
            clients,
            open_streams,
            generation: AtomicU64::new(generation),
            last_read: AtomicU64::new(0),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The snapshot in use.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The config file reloads read, if any.
    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// Reads, parses and builds the config, then swaps it in; logs and counts the
    /// outcome. On error nothing changes.
    pub async fn reload(&self, trigger: Trigger) -> Result<Reloaded, ConfigErrors> {
        let _one = self.running.lock().await;
        let result = self.build_and_swap().await;
        match &result {
            Ok(done) => {
                metrics().config_reloads[0].inc();
                metrics().config_last_reload_success.set(unix_now());
                for field in &done.restart_needed {
                    tracing::warn!(
                        field,
                        "{field} changed: takes effect after a restart (the running value is kept)"
                    );
                }
                tracing::info!(
                    trigger = trigger.name(),
                    generation = done.generation,
                    kept_upstreams = done.kept.len(),
                    "config reloaded"
                );
            }
            Err(errors) => {
                metrics().config_reloads[1].inc();
                let all: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                tracing::warn!(
                    trigger = trigger.name(),
                    problems = all.len(),
                    errors = %all.join("; "),
                    "config reload rejected; the previous config keeps serving"
                );
            }
        }
        result
    }

    async fn build_and_swap(&self) -> Result<Reloaded, ConfigErrors> {
        let Some(path) = self.path.clone() else {
            return Err(ConfigErrors::single(
                "",
                "the gateway was not started from a config file; nothing to reload",
            ));
        };
        let old = self.live.load_full();
        let overrides = self.overrides;
        let clients = self.clients.clone();
        let open_streams = self.open_streams.clone();
        let running = old.clone();
        // Parsing and building read files and compile patterns: off the runtime's
        // workers, so requests in flight never wait on it.
        let built = tokio::task::spawn_blocking(move || {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                let message = format!("cannot read {}: {e}", path.display());
                (ConfigErrors::single("", message), None)
            })?;
            let read = hash(text.as_bytes());
            // Read as at start: `include:` entries relative to the file's directory.
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            let mut config = switchyard_config::parse_with_files(
                &text,
                &|name| std::env::var(name).ok(),
                &|entry| switchyard_config::read_included(dir, entry),
            )
            .map_err(|e| (e, Some(read)))?;
            overrides.apply(&mut config);
            let restart_needed = keep_restart_only(&running.config, &mut config);
            if let Err(e) = config.admin.check() {
                return Err((config.redactor.errors(ConfigErrors(vec![e])), Some(read)));
            }
            let snap =
                Snapshot::build(config, &clients, open_streams).map_err(|e| (e, Some(read)))?;
            Ok((snap, restart_needed, read))
        })
        .await
        .map_err(|e| ConfigErrors::single("", format!("the reload task failed: {e}")))?;
        let (mut snap, restart_needed, read) = match built {
            Ok(built) => built,
            Err((errors, read)) => {
                if let Some(read) = read {
                    self.last_read.store(read, Ordering::Release);
                }
                return Err(errors);
            }
        };
        self.last_read.store(read, Ordering::Release);
        snap.exporter = old.exporter.clone();
        let kept = snap.carry_over(&old);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        snap.generation = generation;
        let snap = Arc::new(snap);
        self.live.store(snap.clone());
        snapshot::spawn_catalog_refresh(&snap, false);
        Ok(Reloaded {
            generation,
            restart_needed,
            kept,
        })
    }
}

/// Settings bound when the process started: for each one the new file changes, its
/// name, and the running value put back into `new`.
fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut keep = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    let (r, n) = (&running.server, &mut new.server);
    keep("server.listen", r.listen != n.listen);
    keep("server.workers", r.workers != n.workers);
    keep(
        "server.tls",
        format!("{:?}", r.tls) != format!("{:?}", n.tls),
    );
    keep("server.log_format", r.log_format != n.log_format);
    keep(
        "server.max_connections",
        r.max_connections != n.max_connections,
    );
    keep(
        "server.max_header_bytes",
        r.max_header_bytes != n.max_header_bytes,
    );
    keep(
        "server.header_timeout",
        r.header_timeout != n.header_timeout,
    );
    keep("server.idle_timeout", r.idle_timeout != n.idle_timeout);
    keep("server.write_timeout", r.write_timeout != n.write_timeout);
    keep("server.drain_timeout", r.drain_timeout != n.drain_timeout);
    keep(
        "metrics.listen",
        running.metrics.enabled != new.metrics.enabled
            || running.metrics.listen != new.metrics.listen,
    );
    keep(
        "admin.listen",
        running.admin.enabled != new.admin.enabled || running.admin.listen != new.admin.listen,
    );
    keep(
        "export",
        format!("{:?}", running.export) != format!("{:?}", new.export),
    );
    // The rest of `server` (body and stream limits, body timeout, watch) applies.
    n.listen = r.listen;
    n.workers = r.workers;
    n.tls.clone_from(&r.tls);
    n.log_format = r.log_format;
    n.max_connections = r.max_connections;
    n.max_header_bytes = r.max_header_bytes;
    n.header_timeout = r.header_timeout;
    n.idle_timeout = r.idle_timeout;
    n.write_timeout = r.write_timeout;
    n.drain_timeout = r.drain_timeout;
    new.metrics = running.metrics.clone();
    new.admin.enabled = running.admin.enabled;
    new.admin.listen = running.admin.listen;
    new.export = running.export.clone();
    changed
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Marks the config in use as loaded now (at start).
pub fn mark_loaded() {
    metrics().config_last_reload_success.set(unix_now());
}

/// Reloads on every SIGHUP until the task is dropped.
pub fn spawn_sighup(reloader: Arc<Reloader>) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /admin/reload");
                return None;
            }
        };
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _outcome = reloader.reload(Trigger::Signal).await;
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _unused = reloader;
        None
    }
}

/// While `server.watch` is on, looks at the config file every second and reloads when
/// its content changed (a bad file is reported once, then again only when it changes).
pub fn spawn_watch(reloader: Arc<Reloader>) -> Option<tokio::task::JoinHandle<()>> {
    let path = reloader.path()?.clone();
    Some(tokio::spawn(async move {
        let mut seen = fingerprint(&path).await;
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if !reloader.live().load().config.server.watch {
                // Keep following the file, so turning watch on does not reload at once.
                seen = fingerprint(&path).await;
                continue;
            }
            let now = fingerprint(&path).await;
            let already = now == Some(reloader.last_read.load(Ordering::Acquire));
            if now.is_some() && now != seen && !already {
                let _outcome = reloader.reload(Trigger::Watch).await;
            }
            seen = now;
        }
    }))
}

/// A hash of the file's content (`None` while it cannot be read, e.g. mid-rename).
async fn fingerprint(path: &std::path::Path) -> Option<u64> {
    let path = path.to_owned();
    let text = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .ok()?
        .ok()?;
    Some(hash(&text))
}

fn hash(text: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        switchyard_config::parse(
            &format!("{yaml}upstreams: [{{name: a, base_url: 'http://a', models: [m]}}]\n"),
            &|_| None,
        )
        .unwrap()
    }

    #[test]
    fn restart_only_settings_keep_their_running_value_and_the_rest_applies() {
        let running =
            config("server: {listen: '127.0.0.1:1', workers: 2, max_body_bytes: 10}\nadmin: {}\n");
        let mut new = config(
            "server: {listen: '127.0.0.1:2', workers: 2, max_body_bytes: 20, watch: true}\nadmin: {listen: '127.0.0.1:3'}\nmetrics: {enabled: false}\n",
        );
        let changed = keep_restart_only(&running, &mut new);
        assert_eq!(
            changed,
            vec!["server.listen", "metrics.listen", "admin.listen"]
        );
        assert_eq!(new.server.listen, running.server.listen);
        assert_eq!(new.admin.listen, running.admin.listen);
        assert!(new.metrics.enabled);
        assert_eq!(new.server.max_body_bytes, 20);
        assert!(new.server.watch);
    }
}
