//! [`Counters`]: one plugin instance's failures, rejections, calls and call time, kept
//! on the instance (for tests and the chain's own decisions) and in the process-wide
//! metrics by plugin id.

use super::stage_index;
use crate::metrics::metrics;
use prometheus::{Histogram, IntCounter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchyard_config::Stage;

/// Failure and rejection counts of one plugin instance, kept here and in the
/// process-wide metrics (by plugin id).
#[derive(Debug)]
pub struct Counters {
    /// Errors, timeouts and panics.
    pub errors: AtomicU64,
    /// Requests it rejected.
    pub rejections: AtomicU64,
    failures: IntCounter,
    rejected: IntCounter,
    pub(super) calls: [IntCounter; 4],
    duration: Histogram,
}

impl Counters {
    pub(crate) fn new(id: &str) -> Self {
        let m = metrics();
        Self {
            errors: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            failures: m.plugin_failures.with_label_values(&[id]),
            rejected: m.plugin_rejections.with_label_values(&[id]),
            calls: [
                Stage::PreRequest,
                Stage::OnChunk,
                Stage::PostResponse,
                Stage::Error,
            ]
            .map(|s| m.plugin_calls.with_label_values(&[id, s.name()])),
            duration: m.plugin_duration.with_label_values(&[id]),
        }
    }

    /// An error, timeout or panic.
    pub fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.failures.inc();
    }

    /// A rejection.
    pub fn rejected(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
        self.rejected.inc();
    }

    /// One call at `stage` that took `took`.
    pub(super) fn called(&self, stage: Stage, took: Duration) {
        self.calls[stage_index(stage)].inc();
        self.duration.observe(took.as_secs_f64());
    }
}
