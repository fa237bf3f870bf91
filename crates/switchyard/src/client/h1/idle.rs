//! Keep-alive bookkeeping: a list of idle connections per host with their expiry
//! (generic, so it is tested without sockets), and how long the upstream lets a
//! connection idle (`Keep-Alive: timeout=N`).

use http::header::{HeaderMap, HeaderName};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Idle connections kept per host.
pub(super) const MAX_IDLE_PER_HOST: usize = 256;
/// How long an idle connection is kept (less when the upstream's `Keep-Alive` says so).
pub(super) const IDLE_FOR: Duration = Duration::from_secs(30);

/// Idle connections to one host, oldest at the front, each with its own expiry.
/// Generic so the bookkeeping can be tested without sockets.
pub(super) struct IdleList<T> {
    pub(super) entries: VecDeque<(T, Instant)>,
}

impl<T> Default for IdleList<T> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
        }
    }
}

impl<T> IdleList<T> {
    /// Drops expired entries from the front (the oldest).
    pub(super) fn sweep(&mut self, now: Instant) {
        while self
            .entries
            .front()
            .is_some_and(|(_, expires)| *expires <= now)
        {
            self.entries.pop_front();
        }
    }

    /// Keeps `item` until `expires`; the oldest entry makes room when the list is full.
    pub(super) fn checkin(&mut self, item: T, expires: Instant, now: Instant) {
        self.sweep(now);
        if expires <= now {
            return;
        }
        if self.entries.len() >= MAX_IDLE_PER_HOST {
            self.entries.pop_front();
        }
        self.entries.push_back((item, expires));
    }

    /// The newest unexpired entry that `usable` accepts; the ones it passes over are
    /// dropped. Only the entry being taken is probed.
    pub(super) fn checkout(
        &mut self,
        now: Instant,
        mut usable: impl FnMut(&mut T) -> bool,
    ) -> Option<T> {
        self.sweep(now);
        while let Some((mut item, expires)) = self.entries.pop_back() {
            if expires > now && usable(&mut item) {
                return Some(item);
            }
        }
        None
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// How long a connection may idle after this response: [`IDLE_FOR`], or a second less
/// than the upstream's `Keep-Alive: timeout=N` (at least a second) when that is
/// shorter; zero (not pooled) for `timeout=0`.
pub(super) fn idle_for(headers: &HeaderMap) -> Duration {
    match keep_alive_timeout(headers) {
        None => IDLE_FOR,
        Some(0) => Duration::ZERO,
        Some(n) => Duration::from_secs(n.saturating_sub(1).max(1)).min(IDLE_FOR),
    }
}

/// The `timeout` parameter of the `Keep-Alive` response header, in seconds.
pub(super) fn keep_alive_timeout(headers: &HeaderMap) -> Option<u64> {
    headers
        .get_all(HeaderName::from_static("keep-alive"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|param| {
            let (name, value) = param.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("timeout") {
                return None;
            }
            value.trim().trim_matches('"').parse().ok()
        })
}
