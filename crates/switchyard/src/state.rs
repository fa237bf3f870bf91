//! Where state that replicas share lives (`state:`). With `memory` (the default) there
//! is nothing here: limits, budgets and the cache keep their state in the process. With
//! `redis`, [`Shared`] is the one way to Redis: a few multiplexed connections (commands
//! pipelined on each, reconnecting on their own), every call bounded by
//! `command_timeout`, and the store's availability tracked — the first failure is logged
//! and `switchyard_state_up` drops to 0; while it is down, calls fail at once (no waiting
//! on a dead server) except one probe every [`PROBE_EVERY`]; the first success logs the
//! recovery. Callers decide what a failure means (`on_unavailable`).
//!
//! The store outlives config generations: [`Shared::for_config`] hands every snapshot
//! built from equal settings the same connections.

mod scripts;

pub use scripts::{Gcra, TokenBucket};

use crate::metrics::metrics;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use switchyard_config::{OnUnavailable, RedisState};
use tokio::time::Instant;

/// While the store is down, one call in this long is let through to see whether it is
/// back; the others fail at once.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// Redis did not answer in time, or answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// No answer within `command_timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The store is known to be down; not asked.
    #[error("the store is down")]
    Down,
    /// Redis refused the connection: nothing was sent.
    #[error("{0}")]
    Refused(String),
    /// The connection or the command failed (it may or may not have been applied).
    #[error("{0}")]
    Failed(String),
}

/// The Redis-backed store of one `state:` setting.
pub struct Shared {
    config: RedisState,
    /// Built on first use (needs the runtime).
    conns: OnceLock<Result<Vec<ConnectionManager>, String>>,
    next: AtomicUsize,
    up: AtomicBool,
    /// Whether the first contact was made (and logged).
    contacted: AtomicBool,
    /// While down: when the next probe may go (ms since `epoch`).
    probe_at: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.config.prefix)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The store for `config`: the process's existing one when its settings are equal
    /// (connections survive reloads), else a new one, connected on first use.
    pub fn for_config(config: &RedisState) -> Arc<Self> {
        static CURRENT: Mutex<Option<Arc<Shared>>> = Mutex::new(None);
        let mut current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = current.as_ref().filter(|s| s.config == *config) {
            return shared.clone();
        }
        let shared = Arc::new(Self {
            config: config.clone(),
            conns: OnceLock::new(),
            next: AtomicUsize::new(0),
            up: AtomicBool::new(true),
            contacted: AtomicBool::new(false),
            probe_at: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        *current = Some(shared.clone());
        // Outside a runtime (the config check, the start before it), `Gateway::run`
        // says it instead.
        shared.say_first_contact();
        shared
    }

    /// Checks, off the caller's path, whether Redis can be reached, and logs why not
    /// (a refused password, a TLS mismatch) — once per store; nothing without a runtime.
    pub fn say_first_contact(self: &Arc<Self>) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            if !self.contacted.swap(true, Ordering::Relaxed) {
                runtime.spawn(self.clone().first_contact());
            }
        }
    }

    /// What limits do while the store cannot answer.
    pub fn on_unavailable(&self) -> OnUnavailable {
        self.config.on_unavailable
    }

    /// `prefix` + `parts` joined by `:` — every key the gateway writes.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.config.prefix.clone();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            key.push_str(part);
        }
        key
    }

    /// Counts one decision taken without the store.
    pub fn fell_back(&self, what: &str) {
        metrics().state_fallbacks.with_label_values(&[what]).inc();
    }

    /// Whether the last call reached the store.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Runs one command (or pipeline, or script) on a pooled connection, bounded by
    /// `command_timeout`; tracks the store's availability.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.up.load(Ordering::Relaxed) && !self.may_probe() {
            return Err(Unavailable::Down);
        }
        let conn = match self.connection() {
            Ok(conn) => conn,
            Err(e) => return Err(self.failed(Unavailable::Failed(e))),
        };
        let timeout = self.config.command_timeout;
        match tokio::time::timeout(timeout, call(conn)).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Ok(value)
            }
            // An error reply (out of memory, a wrong type) is this call's, not a sign
            // that the store is gone.
            Ok(Err(e)) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                Err(Unavailable::Failed(e.to_string()))
            }
            Ok(Err(e)) if e.is_connection_refusal() => {
                Err(self.failed(Unavailable::Refused(e.to_string())))
            }
            Ok(Err(e)) => Err(self.failed(Unavailable::Failed(e.to_string()))),
            Err(_elapsed) => Err(self.failed(Unavailable::Timeout(timeout))),
        }
    }

    /// The next connection of the pool (round robin), building the pool on first use.
    fn connection(&self) -> Result<ConnectionManager, String> {
        let conns = self.conns.get_or_init(|| self.connect()).as_ref()?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len().max(1);
        conns
            .get(i)
            .cloned()
            .ok_or_else(|| "no connection".to_owned())
    }

    /// Whether `config` can make a client at all (the URL parses, the database is a
    /// number, `ca_file` reads): problems as `(field, message)`, for the config check.
    pub fn check(config: &RedisState) -> Result<(), (&'static str, String)> {
        Self::client(config).map(drop)
    }

    fn client(c: &RedisState) -> Result<redis::Client, (&'static str, String)> {
        // redis-rs's messages name no part of the URL (which may hold a password).
        let mut info = redis::IntoConnectionInfo::into_connection_info(c.url.expose())
            .map_err(|e| ("url", format!("is not a usable Redis URL: {e}")))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &c.username {
            settings = settings.set_username(user.expose());
        }
        if let Some(password) = &c.password {
            settings = settings.set_password(password.expose());
        }
        info = info.set_redis_settings(settings);
        match &c.ca_file {
            Some(path) => {
                let root = std::fs::read(path)
                    .map_err(|e| ("ca_file", format!("`{}`: {e}", path.display())))?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root),
                    },
                )
                .map_err(|e| ("ca_file", e.to_string()))
            }
            None => redis::Client::open(info).map_err(|e| ("url", e.to_string())),
        }
    }

    fn connect(&self) -> Result<Vec<ConnectionManager>, String> {
        let c = &self.config;
        let client = Self::client(c).map_err(|(field, e)| format!("state.{field} {e}"))?;
        // Reconnection is the manager's; a request never waits on more than one try.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(c.connect_timeout))
            .set_response_timeout(Some(c.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        (0..c.pool_size)
            .map(|_| {
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    /// Says once, at start, whether Redis can be reached and why not — with the time a
    /// connection may take, not a request's command timeout, so a refused password
    /// or a TLS mismatch is named rather than seen as a slow store.
    async fn first_contact(self: Arc<Self>) {
        let conn = match self.connection() {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "the shared state store (Redis) cannot be used");
                return;
            }
        };
        let limit = self.config.connect_timeout * 2 + self.config.command_timeout;
        let mut conn = conn;
        let ping = redis::cmd("PING");
        match tokio::time::timeout(limit, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => {
                tracing::info!(prefix = %self.config.prefix, "the shared state store (Redis) answers")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the shared state store (Redis) refused the gateway: limits are per replica until it answers")
            }
            Err(_elapsed) => {
                tracing::warn!(waited = ?limit, "the shared state store (Redis) did not answer at start: limits are per replica until it does")
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// While down: lets one call through per [`PROBE_EVERY`].
    fn may_probe(&self) -> bool {
        let now = self.now_ms();
        let at = self.probe_at.load(Ordering::Relaxed);
        now >= at
            && self
                .probe_at
                .compare_exchange(
                    at,
                    now + PROBE_EVERY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn succeeded(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            metrics().state_up.set(1);
            tracing::info!(
                prefix = %self.config.prefix,
                "the shared state store (Redis) answers again: limits, budgets and the cache are shared again"
            );
        }
    }

    fn failed(&self, error: Unavailable) -> Unavailable {
        if self.up.swap(false, Ordering::Relaxed) {
            metrics().state_up.set(0);
            self.probe_at.store(
                self.now_ms() + PROBE_EVERY.as_millis() as u64,
                Ordering::Relaxed,
            );
            let policy = match self.config.on_unavailable {
                OnUnavailable::Local => "each replica enforces limits alone",
                OnUnavailable::Allow => "limited requests are let through",
                OnUnavailable::Deny => "limited requests are refused",
            };
            tracing::warn!(%error, "the shared state store (Redis) does not answer: {policy} until it does");
        }
        error
    }
}
