//! An upstream's recent past, for `GET /admin/upstreams`: attempts in flight now (from
//! sending until the answer's body ends), and over the last minute the attempts made,
//! the share that failed, and the mean time to the response head. Six ten-second slots
//! on a ring of atomics (a slot left from an older period is restarted by whoever
//! counts in it next), so counting costs a few relaxed atomic adds and no lock; two
//! attempts racing over a slot's restart may lose a count, which a display tolerates.

use crate::relay::InFlight;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Seconds per slot.
const SLOT_SECS: u64 = 10;
/// Slots: the window is `SLOTS × SLOT_SECS` = one minute.
const SLOTS: usize = 6;

#[derive(Debug, Default)]
struct Slot {
    /// Which period (seconds since the epoch / SLOT_SECS) the counts belong to.
    period: AtomicU64,
    attempts: AtomicU64,
    failures: AtomicU64,
    /// Sum of the times to the response head, in microseconds.
    head_micros: AtomicU64,
}

/// Attempts in flight and the last minute's attempts, failures and head latency.
#[derive(Debug)]
pub struct Recent {
    epoch: Instant,
    in_flight: Arc<AtomicU64>,
    slots: [Slot; SLOTS],
}

impl Default for Recent {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: Arc::default(),
            slots: Default::default(),
        }
    }
}

/// What [`Recent::report`] read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecentReport {
    /// Attempts sent whose answer has not ended.
    pub in_flight: u64,
    /// Attempts of the last minute.
    pub attempts: u64,
    /// Failed share of those (none when there were none).
    pub error_ratio: Option<f64>,
    /// Mean time from sending to the response head, in milliseconds.
    pub mean_head_ms: Option<f64>,
}

impl Recent {
    /// An attempt starts: counted in flight until the guard is dropped (with the
    /// answer's body, or at once when the attempt failed).
    pub fn begin(&self) -> InFlight {
        InFlight::new(self.in_flight.clone())
    }

    /// An attempt got its answer (`ok`) or failed, `head` after it was sent.
    pub fn record(&self, ok: bool, head: Duration, now: Instant) {
        let period = self.period(now);
        let slot = self.slot(period);
        if slot.period.swap(period, Ordering::AcqRel) != period {
            slot.attempts.store(0, Ordering::Relaxed);
            slot.failures.store(0, Ordering::Relaxed);
            slot.head_micros.store(0, Ordering::Relaxed);
        }
        slot.attempts.fetch_add(1, Ordering::Relaxed);
        if !ok {
            slot.failures.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(head.as_micros()).unwrap_or(u64::MAX);
        slot.head_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The last minute, read now.
    pub fn report(&self, now: Instant) -> RecentReport {
        let period = self.period(now);
        let oldest = period.saturating_sub(SLOTS as u64 - 1);
        let (mut attempts, mut failures, mut micros) = (0u64, 0u64, 0u64);
        for slot in &self.slots {
            let p = slot.period.load(Ordering::Acquire);
            if p < oldest || p > period {
                continue;
            }
            attempts += slot.attempts.load(Ordering::Relaxed);
            failures += slot.failures.load(Ordering::Relaxed);
            micros = micros.saturating_add(slot.head_micros.load(Ordering::Relaxed));
        }
        RecentReport {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            attempts,
            error_ratio: (attempts > 0).then(|| failures as f64 / attempts as f64),
            mean_head_ms: (attempts > 0).then(|| micros as f64 / attempts as f64 / 1e3),
        }
    }

    fn period(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / SLOT_SECS
    }

    fn slot(&self, period: u64) -> &Slot {
        let i = usize::try_from(period % SLOTS as u64).unwrap_or(0);
        &self.slots[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_the_last_minute_and_what_is_in_flight() {
        let recent = Recent::default();
        let now = Instant::now();
        let guard = recent.begin();
        recent.record(true, Duration::from_millis(10), now);
        recent.record(false, Duration::from_millis(30), now);
        let r = recent.report(now);
        assert_eq!(r.in_flight, 1);
        assert_eq!(r.attempts, 2);
        assert_eq!(r.error_ratio, Some(0.5));
        assert_eq!(r.mean_head_ms, Some(20.0));
        drop(guard);
        let later = now + Duration::from_secs(61);
        let r = recent.report(later);
        assert_eq!((r.in_flight, r.attempts, r.error_ratio), (0, 0, None));
        recent.record(true, Duration::from_millis(4), later);
        assert_eq!(recent.report(later).attempts, 1, "an old slot is restarted");
    }
}
