//! The retry budget (Envoy's and Linkerd's idea): failover attempts beyond a request's
//! first are allowed while they stay under `ratio` of the requests of the last
//! `window`, or, whatever the traffic, while this second has had fewer than
//! `min_per_second` of them (a per-second minimum, so that it is never spent in one
//! burst). Without it, when
//! every upstream fails, a gateway that makes `max_attempts` attempts per request
//! multiplies the load on them by that much just when they can least take it.
//!
//! Counted in one-second slots on a ring of atomics: a slot packs its second (high 32
//! bits) and its count (low 32), so a request costs one compare-and-swap and a slot
//! left from an older second is restarted by whoever counts in it next.

use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_config::RetryBudget as Policy;
use tokio::time::Instant;

/// Requests and failovers of the recent past, and the policy over them.
#[derive(Debug)]
pub struct RetryBudget {
    policy: Policy,
    epoch: Instant,
    requests: Box<[AtomicU64]>,
    retries: Box<[AtomicU64]>,
}

impl RetryBudget {
    /// An empty budget under `policy`.
    pub fn new(policy: Policy) -> Self {
        let slots = usize::try_from(policy.window.as_secs().clamp(1, 60)).unwrap_or(60);
        let ring = || (0..slots).map(|_| AtomicU64::new(0)).collect();
        Self {
            policy,
            epoch: Instant::now(),
            requests: ring(),
            retries: ring(),
        }
    }

    /// Counts one request.
    pub fn request(&self, now: Instant) {
        count(&self.requests, self.second(now));
    }

    /// Whether one more failover is allowed now; if it is, it is counted.
    pub fn withdraw(&self, now: Instant) -> bool {
        let second = self.second(now);
        let by_ratio = || {
            let requests = sum(&self.requests, second);
            (sum(&self.retries, second) as f64) < requests as f64 * self.policy.ratio
        };
        let by_minimum = || current(&self.retries, second) < u64::from(self.policy.min_per_second);
        if !(by_minimum() || by_ratio()) {
            return false;
        }
        count(&self.retries, second);
        true
    }

    fn second(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        // Seconds start at 1 so that a never-used slot (0) is never current.
        u32::try_from(secs.saturating_add(1)).unwrap_or(u32::MAX)
    }
}

fn count(ring: &[AtomicU64], second: u32) {
    let Some(slot) = ring.get(second as usize % ring.len()) else {
        return;
    };
    let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(if (v >> 32) as u32 == second {
            v.saturating_add(1)
        } else {
            (u64::from(second) << 32) | 1
        })
    });
}

/// The count of `second`'s own slot.
fn current(ring: &[AtomicU64], second: u32) -> u64 {
    ring.get(second as usize % ring.len())
        .map(|slot| slot.load(Ordering::Relaxed))
        .filter(|v| (v >> 32) as u32 == second)
        .map_or(0, |v| v & 0xffff_ffff)
}

/// The counts of the slots whose second is within the ring's span before `second`.
fn sum(ring: &[AtomicU64], second: u32) -> u64 {
    let span = u32::try_from(ring.len()).unwrap_or(u32::MAX);
    ring.iter()
        .map(|slot| slot.load(Ordering::Relaxed))
        .filter(|v| {
            let at = (v >> 32) as u32;
            at != 0 && at <= second && second - at < span
        })
        .map(|v| v & 0xffff_ffff)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget(ratio: f64, min_per_second: u32, window: u64) -> RetryBudget {
        RetryBudget::new(Policy {
            ratio,
            min_per_second,
            window: Duration::from_secs(window),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn failovers_stay_under_the_ratio_of_recent_requests() {
        let b = budget(0.2, 0, 10);
        let now = Instant::now();
        for _ in 0..100 {
            b.request(now);
        }
        let granted = (0..100).filter(|_| b.withdraw(now)).count();
        assert_eq!(granted, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn the_minimum_is_granted_each_second_never_in_one_burst() {
        let b = budget(0.0, 3, 10);
        for _ in 0..4 {
            b.request(Instant::now());
            let granted = (0..100).filter(|_| b.withdraw(Instant::now())).count();
            assert_eq!(granted, 3, "3 a second, not 30 at once");
            tokio::time::advance(Duration::from_secs(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn old_seconds_leave_the_window() {
        let b = budget(1.0, 0, 3);
        b.request(Instant::now());
        assert!(b.withdraw(Instant::now()));
        assert!(!b.withdraw(Instant::now()));
        tokio::time::advance(Duration::from_secs(3)).await;
        // The request and the failover are both out of the window now.
        assert!(!b.withdraw(Instant::now()));
        b.request(Instant::now());
        assert!(b.withdraw(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_is_restarted_when_its_second_comes_round_again() {
        let b = budget(1.0, 0, 2);
        for _ in 0..10 {
            b.request(Instant::now());
        }
        tokio::time::advance(Duration::from_secs(2)).await; // same slot, two seconds on
        b.request(Instant::now());
        assert!(b.withdraw(Instant::now()));
        assert!(!b.withdraw(Instant::now()), "the 10 old requests are gone");
    }
}
