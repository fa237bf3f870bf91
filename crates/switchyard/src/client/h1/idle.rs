//! Keep-alive bookkeeping: a list of idle connections per host with their expiry
//! (generic, so it is tested without sockets), and how long a connection may idle (the
//! destination's limit, shortened by the upstream's `Keep-Alive: timeout=N`).

use http::header::{HeaderMap, HeaderName};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Idle connections kept per host.
pub(super) const MAX_IDLE_PER_HOST: usize = 256;
/// How long an idle connection is kept by default (a destination may say otherwise, and
/// the upstream's `Keep-Alive` may shorten it).
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

    /// Moves every expired entry, and every one `usable` refuses, into `out` — wherever
    /// it sits in the list (a shorter keep-alive can sit behind a longer one). For the
    /// reaper, not the request path: it visits every entry.
    pub(super) fn reap(
        &mut self,
        now: Instant,
        out: &mut Vec<T>,
        mut usable: impl FnMut(&mut T) -> bool,
    ) {
        for _ in 0..self.entries.len() {
            let Some((mut item, expires)) = self.entries.pop_front() else {
                break;
            };
            if expires > now && usable(&mut item) {
                self.entries.push_back((item, expires));
            } else {
                out.push(item);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// How long a connection may idle after this response: `max`, or a second less than
/// the upstream's `Keep-Alive: timeout=N` (at least a second) when that is shorter;
/// zero (not pooled) for `timeout=0`.
pub(super) fn idle_for(headers: &HeaderMap, max: Duration) -> Duration {
    match keep_alive_timeout(headers) {
        None => max,
        Some(0) => Duration::ZERO,
        Some(n) => Duration::from_secs(n.saturating_sub(1).max(1)).min(max),
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
