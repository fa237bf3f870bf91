//! Passive health: a target that fails `failures_before_cooldown` times in a row sits
//! out for `cooldown`, then comes back on its own. Kept twice over for each upstream
//! ([`UpstreamHealth`]): once for its connections (refused, DNS, TLS — every model
//! fails alike) and once per target, the model sent there (429s, 5xx, timeouts — one
//! model's limits or outage leave the upstream's other models in rotation). Knows
//! nothing of HTTP; the send loop reports each outcome. Time is `tokio::time`, so tests
//! pause it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Health of one upstream's connections and of each of its targets (model names).
/// A target gets an entry at its first failure; until then it is healthy.
#[derive(Debug, Default)]
pub struct UpstreamHealth {
    /// Connection-level: every model of the upstream at once.
    pub connections: Health,
    targets: RwLock<HashMap<Box<str>, Arc<Health>>>,
    /// Attempts in flight and the last minute's outcomes, for the admin API.
    pub recent: super::recent::Recent,
}

impl UpstreamHealth {
    /// Whether `model` may be tried there now.
    pub fn is_available(&self, model: &str, now: Instant) -> bool {
        self.connections.is_available(now) && self.with(model, |h| h.is_available(now), true)
    }

    /// A success clears the connections' and the target's failures.
    pub fn record_success(&self, model: &str) {
        self.connections.record_success();
        self.with(model, |h| h.record_success(), ());
    }

    /// The target's health, created at its first use.
    pub fn target(&self, model: &str) -> Arc<Health> {
        if let Some(h) = self.with(model, |h| Some(h.clone()), None) {
            return h;
        }
        let Ok(mut targets) = self.targets.write() else {
            return Arc::default();
        };
        targets.entry(model.into()).or_default().clone()
    }

    /// Every target known (one that failed once), with whether it is cooling now.
    pub fn targets(&self, now: Instant) -> Vec<(String, bool)> {
        let Ok(targets) = self.targets.read() else {
            return Vec::new();
        };
        let mut all: Vec<(String, bool)> = targets
            .iter()
            .map(|(m, h)| (m.to_string(), !h.is_available(now)))
            .collect();
        all.sort_unstable();
        all
    }

    /// Every target cooling now, with how long it still sits out.
    pub fn cooling(&self, now: Instant) -> Vec<(String, Duration)> {
        let Ok(targets) = self.targets.read() else {
            return Vec::new();
        };
        let mut all: Vec<(String, Duration)> = targets
            .iter()
            .filter_map(|(m, h)| Some((m.to_string(), h.cooling_for(now)?)))
            .collect();
        all.sort_unstable();
        all
    }

    fn with<T>(&self, model: &str, f: impl FnOnce(&Arc<Health>) -> T, absent: T) -> T {
        match self.targets.read() {
            Ok(targets) => targets.get(model).map_or(absent, f),
            Err(_) => absent,
        }
    }
}

/// Health of one upstream's connections, or of one target.
#[derive(Debug, Default)]
pub struct Health {
    consecutive_failures: AtomicU32,
    cooling: AtomicBool,
    cooldown_until: Mutex<Option<Instant>>,
}

impl Health {
    /// Whether the target may be tried now.
    pub fn is_available(&self, now: Instant) -> bool {
        match self.cooldown_until.lock() {
            Ok(until) => until.is_none_or(|t| now >= t),
            Err(_) => true,
        }
    }

    /// How long it still sits out, if it is cooling now.
    pub fn cooling_for(&self, now: Instant) -> Option<Duration> {
        let until = (*self.cooldown_until.lock().ok()?)?;
        (now < until).then(|| until - now)
    }

    /// A success clears the failure count and any cool-down.
    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.cooling.swap(false, Ordering::AcqRel) {
            if let Ok(mut until) = self.cooldown_until.lock() {
                *until = None;
            }
        }
    }

    /// The upstream asked to be left alone for `wait` (`Retry-After` on a 429 or 503):
    /// it sits out that long at once (capped at `max`), whatever the failure count.
    pub fn rest_for(&self, wait: Duration, max: Duration, now: Instant) {
        if wait.is_zero() {
            return;
        }
        if let Ok(mut until) = self.cooldown_until.lock() {
            let asked = now.checked_add(wait.min(max));
            // Never shorten a cool-down already running.
            *until = (*until).max(asked);
        }
        self.cooling.store(true, Ordering::Release);
    }

    /// A failure; returns true when it sent the target into cool-down.
    pub fn record_failure(&self, threshold: u32, cooldown: Duration, now: Instant) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < threshold {
            return false;
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if let Ok(mut until) = self.cooldown_until.lock() {
            *until = now.checked_add(cooldown);
        }
        self.cooling.store(true, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_models_cool_down_leaves_the_others_in_rotation() {
        let h = UpstreamHealth::default();
        let cd = Duration::from_secs(30);
        assert!(h.target("gpt-a").record_failure(1, cd, Instant::now()));
        assert!(!h.is_available("gpt-a", Instant::now()));
        assert!(h.is_available("gpt-b", Instant::now()));
        assert_eq!(h.targets(Instant::now()), [("gpt-a".to_owned(), true)]);
        // The connections failing takes every model out.
        assert!(h.connections.record_failure(1, cd, Instant::now()));
        assert!(!h.is_available("gpt-b", Instant::now()));
        // A success of the cooling model (tried anyway) ends both.
        h.record_success("gpt-a");
        assert!(h.is_available("gpt-a", Instant::now()));
        assert!(h.is_available("gpt-b", Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn goes_into_cooldown_after_threshold_and_comes_back() {
        let h = Health::default();
        let cd = Duration::from_secs(30);
        assert!(!h.record_failure(2, cd, Instant::now()));
        assert!(h.is_available(Instant::now()));
        assert!(h.record_failure(2, cd, Instant::now()));
        assert!(!h.is_available(Instant::now()));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(!h.is_available(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(h.is_available(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_while_cooling_down_ends_the_cool_down() {
        let h = Health::default();
        assert!(h.record_failure(1, Duration::from_secs(30), Instant::now()));
        assert!(!h.is_available(Instant::now()));
        h.record_success(); // tried anyway (every target was cooling) and it worked
        assert!(h.is_available(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_count() {
        let h = Health::default();
        let cd = Duration::from_secs(5);
        h.record_failure(2, cd, Instant::now());
        h.record_success();
        assert!(!h.record_failure(2, cd, Instant::now()));
        assert!(h.is_available(Instant::now()));
    }
}
