//! Target order for one request. A schedule of target indices is computed once per
//! route (smooth weighted round-robin; plain round-robin is the all-ones case) and each
//! request takes the next slot with one atomic add; the remaining targets follow as
//! failover candidates. Knows nothing of HTTP or health.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest schedule kept; larger weight sums are scaled down.
const MAX_SCHEDULE: u64 = 1024;

/// Picks targets for one route.
#[derive(Debug)]
pub struct Balancer {
    schedule: Vec<u16>,
    targets: usize,
    next: AtomicUsize,
}

impl Balancer {
    /// A balancer over targets with these weights (all ones: round-robin).
    pub fn new(weights: &[u32]) -> Self {
        Self {
            schedule: smooth_schedule(weights),
            targets: weights.len(),
            next: AtomicUsize::new(0),
        }
    }

    /// Target indices for one request: the scheduled pick first, then every other
    /// target once, in index order after it.
    pub fn order(&self) -> impl Iterator<Item = usize> + '_ {
        self.order_if(true)
    }

    /// [`Balancer::order`] when `rotate`, else every target in config order without
    /// moving the rotation (for looking, not for sending).
    pub fn order_if(&self, rotate: bool) -> impl Iterator<Item = usize> + '_ {
        let n = self.targets;
        let first = match self.schedule.len() {
            0 => 0,
            _ if !rotate => 0,
            len => usize::from(self.schedule[self.next.fetch_add(1, Ordering::Relaxed) % len]),
        };
        (0..n).map(move |i| (first + i) % n)
    }
}

/// Nginx's smooth weighted round-robin, unrolled into one period.
fn smooth_schedule(weights: &[u32]) -> Vec<u16> {
    if weights.is_empty() || weights.len() > usize::from(u16::MAX) {
        return Vec::new();
    }
    let total: u64 = weights.iter().map(|w| u64::from((*w).max(1))).sum();
    let scale = total.div_ceil(MAX_SCHEDULE).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .map(|w| (u64::from((*w).max(1)) / scale).max(1) as i64)
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..weights.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(b: &Balancer, n: usize) -> Vec<usize> {
        (0..n).map(|_| b.order().next().unwrap()).collect()
    }

    #[test]
    fn round_robin_cycles_through_targets() {
        let b = Balancer::new(&[1, 1, 1]);
        assert_eq!(firsts(&b, 6), vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weighted_follows_weights_smoothly() {
        let b = Balancer::new(&[5, 1, 1]);
        let picks = firsts(&b, 7);
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 5);
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn order_lists_every_target_once_for_failover() {
        let b = Balancer::new(&[1, 1, 1]);
        b.order().next();
        let order: Vec<_> = b.order().collect();
        assert_eq!(order, vec![1, 2, 0]);
    }

    #[test]
    fn huge_weights_are_scaled_into_a_bounded_schedule() {
        let s = smooth_schedule(&[1_000_000, 1]);
        assert!(s.len() <= MAX_SCHEDULE as usize + 1);
        assert!(s.contains(&1));
    }
}
