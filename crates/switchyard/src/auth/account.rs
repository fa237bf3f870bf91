//! [`Account`]: one configured key at run time — which models it may use, its budget,
//! and its usage. Usage is kept process-wide by key name ([`usage_for`]), so it outlives
//! a config generation. Budgets count in fixed windows aligned to the Unix epoch (a `1d`
//! window runs from 00:00 to 24:00 UTC): a request is refused while the current window's
//! tokens or spend reached the limit, and is charged when its response ends, so requests
//! already in flight when the limit is reached may overshoot it. With
//! `state.backend: redis` the window's counts live in Redis (one hash per key and
//! window), so every replica checks and charges the same budget; the process's totals
//! stay its own.

use crate::error::GatewayError;
use crate::metrics::metrics;
use crate::state::{Shared, Unavailable};
use prometheus::{Counter, IntCounter};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};
use switchyard_config::{Budget, ClientKey, OnUnavailable};

/// One configured key at run time. Its `Debug` shows the name only.
pub struct Account {
    /// The key as configured.
    pub key: Arc<ClientKey>,
    usage: Arc<Usage>,
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.key.name)
            .finish_non_exhaustive()
    }
}

/// A key's usage: the current budget window and totals since the process started,
/// with its Prometheus counters.
struct Usage {
    state: Mutex<UsageState>,
    tokens_metric: IntCounter,
    spend_metric: Counter,
    /// Charges Redis did not take (it was down or slow), by window key: sent with the
    /// next charge that reaches it, and counted by checks meanwhile.
    unsynced: Mutex<HashMap<String, Unsynced>>,
}

/// Tokens and dollars a budget window is owed.
#[derive(Debug, Clone, Copy, Default)]
struct Unsynced {
    tokens: u64,
    usd: f64,
    ttl: Duration,
    /// Unix seconds after which the window is over (and its debt forgotten).
    until: u64,
}

#[derive(Default)]
struct UsageState {
    /// Window length in seconds (0: no budget, no window).
    window_secs: u64,
    /// Which window (`unix seconds / window_secs`) the counts below belong to.
    window: u64,
    tokens: u64,
    usd: f64,
    total_tokens: u64,
    total_usd: f64,
    requests: u64,
}

impl UsageState {
    /// Moves to the window holding `now` (unix seconds), resetting the counts when it is
    /// a new one.
    fn roll(&mut self, window_secs: u64, now: u64) {
        let window = now.checked_div(window_secs).unwrap_or(0);
        if self.window_secs != window_secs || self.window != window {
            self.window_secs = window_secs;
            self.window = window;
            self.tokens = 0;
            self.usd = 0.0;
        }
    }
}

/// The usage of one key, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyUsage {
    /// Key name.
    pub key: String,
    /// Requests charged since the process started.
    pub requests: u64,
    /// Tokens (input + output) since the process started.
    pub total_tokens: u64,
    /// Spend since the process started, in US dollars.
    pub total_usd: f64,
    /// The budget's current window, when the key has a budget.
    pub window: Option<WindowUsage>,
}

/// A budget window's usage and limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowUsage {
    /// Window start, Unix seconds.
    pub start: u64,
    /// Window end (exclusive), Unix seconds.
    pub end: u64,
    /// Tokens used in this window.
    pub tokens: u64,
    /// Token limit, if any.
    pub tokens_limit: Option<u64>,
    /// Dollars spent in this window.
    pub usd: f64,
    /// Spend limit, if any.
    pub usd_limit: Option<f64>,
}

/// The usage record of the key named `name`, shared by every config generation.
fn usage_for(name: &str) -> Arc<Usage> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<Usage>>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    all.entry(name.to_owned())
        .or_insert_with(|| {
            let m = metrics();
            Arc::new(Usage {
                state: Mutex::default(),
                unsynced: Mutex::default(),
                tokens_metric: m.key_tokens.with_label_values(&[name]),
                spend_metric: m.key_spend.with_label_values(&[name]),
            })
        })
        .clone()
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds from `now` to the end of its window (at least 1).
fn until_window_end(window_secs: u64, now: u64) -> u64 {
    let window_secs = window_secs.max(1);
    (window_secs - now % window_secs).max(1)
}

impl Account {
    pub(super) fn new(key: ClientKey, shared: Option<Arc<Shared>>) -> Self {
        Self {
            usage: usage_for(&key.name),
            key: Arc::new(key),
            shared,
        }
    }

    /// The Redis key of the budget window holding `now`.
    fn window_key(shared: &Shared, name: &str, window_secs: u64, now: u64) -> String {
        let index = now.checked_div(window_secs).unwrap_or(0);
        shared.key(&["budget", name, &window_secs.to_string(), &index.to_string()])
    }

    /// Refuses with 429 while the current window's usage reached the budget — the
    /// shared window when `state` is redis, else this process's
    /// ([`Account::check_budget`]).
    pub async fn within_budget(&self, now: SystemTime) -> Result<(), GatewayError> {
        let (Some(budget), Some(shared)) = (self.key.budget, &self.shared) else {
            return self.check_budget(now);
        };
        let now = unix_now(now);
        let window_secs = budget.window.as_secs().max(1);
        let key = Self::window_key(shared, &self.key.name, window_secs, now);
        let owed = self.unsynced(&key);
        match shared
            .window_usage(&key)
            .await
            .map(|(tokens, usd)| (tokens.saturating_add(owed.tokens), usd + owed.usd))
        {
            Ok((tokens, usd)) if over(&budget, tokens, usd) => Err(GatewayError::BudgetExceeded {
                retry_after: Duration::from_secs(until_window_end(window_secs, now)),
            }),
            Ok(_) => Ok(()),
            Err(_unavailable) => {
                shared.fell_back("budget");
                match shared.on_unavailable() {
                    OnUnavailable::Local => {
                        self.check_budget(SystemTime::UNIX_EPOCH + Duration::from_secs(now))
                    }
                    OnUnavailable::Allow => Ok(()),
                    OnUnavailable::Deny => Err(GatewayError::StateUnavailable("budget")),
                }
            }
        }
    }

    /// Whether this key may use `model` (the name the client sent): one of its globs
    /// matches it, or, for `upstream/model`, matches the model part.
    pub fn may_use(&self, model: &str) -> bool {
        let Some(globs) = &self.key.models else {
            return true;
        };
        let bare = model.split_once('/').map(|(_, m)| m);
        globs
            .iter()
            .any(|g| g.matches(model) || bare.is_some_and(|m| g.matches(m)))
    }

    /// Refuses `model` with 403 when the key may not use it.
    pub fn check_model(&self, model: &str) -> Result<(), GatewayError> {
        if self.may_use(model) {
            Ok(())
        } else {
            Err(GatewayError::ModelNotAllowed(model.to_owned()))
        }
    }

    /// Refuses with 429 while the current window's usage reached the budget.
    pub fn check_budget(&self, now: SystemTime) -> Result<(), GatewayError> {
        let Some(budget) = self.key.budget else {
            return Ok(());
        };
        let now = unix_now(now);
        let window_secs = budget.window.as_secs();
        let mut state = self.lock();
        state.roll(window_secs, now);
        if over(&budget, state.tokens, state.usd) {
            return Err(GatewayError::BudgetExceeded {
                retry_after: Duration::from_secs(until_window_end(window_secs, now)),
            });
        }
        Ok(())
    }

    /// Charges a finished request's tokens, and their cost at `rates` (dollars per
    /// million input and output tokens; none: free).
    pub fn charge(&self, rates: Option<(f64, f64)>, input: u64, output: u64, now: SystemTime) {
        let tokens = input.saturating_add(output);
        let usd = rates.map_or(0.0, |(i, o)| (input as f64 * i + output as f64 * o) / 1e6);
        {
            let mut state = self.lock();
            if let Some(budget) = self.key.budget {
                state.roll(budget.window.as_secs(), unix_now(now));
            }
            state.tokens = state.tokens.saturating_add(tokens);
            state.usd += usd;
            state.total_tokens = state.total_tokens.saturating_add(tokens);
            state.total_usd += usd;
            state.requests += 1;
        }
        self.usage.tokens_metric.inc_by(tokens);
        if usd > 0.0 {
            self.usage.spend_metric.inc_by(usd);
        }
        if let (Some(budget), Some(shared)) = (self.key.budget, &self.shared) {
            // Charged when a body ends (off any request's path): sent on its own task.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let window_secs = budget.window.as_secs().max(1);
            let now = unix_now(now);
            let key = Self::window_key(shared, &self.key.name, window_secs, now);
            // Kept a little past the window's end, for late readers (the admin API).
            let ttl = Duration::from_secs(window_secs + 60);
            let until = (now / window_secs + 1) * window_secs + 60;
            let (shared, usage) = (shared.clone(), self.usage.clone());
            runtime.spawn(async move {
                // What earlier charges could not deliver goes with this one (windows
                // that are over are dropped: nothing reads them any more).
                let mut batch = std::mem::take(&mut *lock(&usage.unsynced));
                batch.retain(|_, owed| owed.until > now);
                let owed = batch.entry(key).or_default();
                owed.tokens = owed.tokens.saturating_add(tokens);
                owed.usd += usd;
                owed.ttl = ttl;
                owed.until = until;
                let mut failed = Vec::new();
                let mut fell_back = false;
                for (key, owed) in batch {
                    match shared
                        .add_window_usage(&key, owed.tokens, owed.usd, owed.ttl)
                        .await
                    {
                        Ok(()) => {}
                        // Not sent: kept for the next charge.
                        Err(Unavailable::Down | Unavailable::Refused(_)) => {
                            failed.push((key, owed))
                        }
                        // Sent, and perhaps applied (a slow Redis applies it late; a
                        // connection may break after the write): not sent again, which
                        // could charge it twice.
                        Err(Unavailable::Timeout(_) | Unavailable::Failed(_)) => fell_back = true,
                    }
                }
                if fell_back || !failed.is_empty() {
                    shared.fell_back("budget");
                }
                if !failed.is_empty() {
                    let mut unsynced = lock(&usage.unsynced);
                    for (key, owed) in failed {
                        let kept = unsynced.entry(key).or_default();
                        kept.tokens = kept.tokens.saturating_add(owed.tokens);
                        kept.usd += owed.usd;
                        kept.ttl = owed.ttl;
                        kept.until = owed.until;
                    }
                }
            });
        }
    }

    /// What this process owes the shared window `key` (charges Redis did not take).
    fn unsynced(&self, key: &str) -> Unsynced {
        lock(&self.usage.unsynced)
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    /// [`Account::report`], with the window's usage read from the shared store when
    /// `state` is redis (this process's when it does not answer).
    pub async fn report_shared(&self, now: SystemTime) -> KeyUsage {
        let mut report = self.report(now);
        if let (Some(budget), Some(shared), Some(window)) =
            (self.key.budget, &self.shared, report.window.as_mut())
        {
            let window_secs = budget.window.as_secs().max(1);
            let key = Self::window_key(shared, &self.key.name, window_secs, unix_now(now));
            if let Ok((tokens, usd)) = shared.window_usage(&key).await {
                let owed = self.unsynced(&key);
                window.tokens = tokens.saturating_add(owed.tokens);
                window.usd = usd + owed.usd;
            }
        }
        report
    }

    /// This key's usage now.
    pub fn report(&self, now: SystemTime) -> KeyUsage {
        let now = unix_now(now);
        let mut state = self.lock();
        let window = self.key.budget.map(|b| {
            let secs = b.window.as_secs().max(1);
            state.roll(secs, now);
            WindowUsage {
                start: state.window * secs,
                end: (state.window + 1) * secs,
                tokens: state.tokens,
                tokens_limit: b.tokens,
                usd: state.usd,
                usd_limit: b.usd,
            }
        });
        KeyUsage {
            key: self.key.name.to_string(),
            requests: state.requests,
            total_tokens: state.total_tokens,
            total_usd: state.total_usd,
            window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UsageState> {
        self.usage
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a window's usage reached the budget.
fn over(budget: &Budget, tokens: u64, usd: f64) -> bool {
    budget.tokens.is_some_and(|limit| tokens >= limit)
        || budget.usd.is_some_and(|limit| usd >= limit)
}

#[cfg(test)]
mod tests;
