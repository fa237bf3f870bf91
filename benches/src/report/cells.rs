//! The arithmetic: CPU per request of one run, and each (target, mode,
//! concurrency) cell as the median over its rounds. Knows nothing about text.

use super::raw::{Mode, Run, Scenario};
use std::collections::BTreeMap;

/// The median of `values` (the mean of the middle two for an even count); `None`
/// for none. NaNs sort last.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let mid = n / 2;
    match n {
        0 => None,
        _ if n % 2 == 1 => values.get(mid).copied(),
        _ => Some((values.get(mid - 1)? + values.get(mid)?) / 2.0),
    }
}

/// CPU microseconds per request: the tick difference over all requests sent
/// (warm-up included, as the ticks cover it); `None` without requests or ticks.
pub fn cpu_us_per_request(ticks: [u64; 2], clk_tck: u32, requests: u64) -> Option<f64> {
    let [before, after] = ticks;
    if requests == 0 || clk_tck == 0 || after < before {
        return None;
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "tick and request counts are far below 2^52"
    )]
    let per = (after - before) as f64 * 1e6 / f64::from(clk_tck) / requests as f64;
    Some(per)
}

/// `b - a`, when both are known.
pub fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

/// `b / a`, when both are known and `a` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let a = a?;
    (a != 0.0).then_some(b? / a)
}

/// One cell of the table: each figure is the median over the rounds that have it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    /// Rounds that ran.
    pub rounds: usize,
    /// 2xx answers per second.
    pub rps: Option<f64>,
    /// Latency p50.
    pub p50_ms: Option<f64>,
    /// Latency p99.
    pub p99_ms: Option<f64>,
    /// TTFB p50 (streams).
    pub ttfb_p50_ms: Option<f64>,
    /// TTFB p99 (streams).
    pub ttfb_p99_ms: Option<f64>,
    /// The target's CPU µs per request, when measured.
    pub cpu_us: Option<f64>,
    /// Transport errors, summed over the rounds.
    pub errors: u64,
    /// Non-2xx answers, summed over the rounds.
    pub non_2xx: u64,
}

impl Cell {
    fn of(runs: &[&Run], clk_tck: u32) -> Self {
        let med =
            |f: &dyn Fn(&Run) -> Option<f64>| median(runs.iter().filter_map(|r| f(r)).collect());
        Self {
            rounds: runs.len(),
            rps: med(&|r| Some(r.result.rps)),
            p50_ms: med(&|r| r.result.p50_ms),
            p99_ms: med(&|r| r.result.p99_ms),
            ttfb_p50_ms: med(&|r| r.result.ttfb_p50_ms),
            ttfb_p99_ms: med(&|r| r.result.ttfb_p99_ms),
            cpu_us: med(&|r| cpu_us_per_request(r.ticks?, clk_tck, r.result.total_requests)),
            errors: runs.iter().map(|r| r.result.errors).sum(),
            non_2xx: runs.iter().map(|r| r.result.non_2xx).sum(),
        }
    }
}

type Key = (String, Mode, u32);

/// Every cell of one scenario.
#[derive(Debug, Clone, Default)]
pub struct Cells {
    map: BTreeMap<Key, Cell>,
}

impl Cells {
    /// Groups `runs` of `scenario` by (label, mode, concurrency) and takes medians.
    pub fn of(runs: &[Run], scenario: Scenario, clk_tck: u32) -> Self {
        let mut groups: BTreeMap<Key, Vec<&Run>> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.scenario == scenario) {
            groups
                .entry((r.label.clone(), r.mode, r.conc))
                .or_default()
                .push(r);
        }
        let map = groups
            .into_iter()
            .map(|(k, rs)| (k, Cell::of(&rs, clk_tck)))
            .collect();
        Self { map }
    }

    /// The cell, if it ran.
    pub fn get(&self, label: &str, mode: Mode, conc: u32) -> Option<&Cell> {
        self.map.get(&(label.to_owned(), mode, conc))
    }

    /// Whether `label` ran at all.
    pub fn has(&self, label: &str) -> bool {
        self.map.keys().any(|(l, _, _)| l == label)
    }

    /// Whether nothing ran.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The concurrencies `label` ran at, ascending.
    pub fn concs(&self, label: &str) -> Vec<u32> {
        let mut c: Vec<u32> = self
            .map
            .keys()
            .filter(|(l, _, _)| l == label)
            .map(|(_, _, c)| *c)
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// One line per cell that saw transport errors or non-2xx answers.
    pub fn trouble(&self) -> Vec<String> {
        self.map
            .iter()
            .filter(|(_, c)| c.errors != 0 || c.non_2xx != 0)
            .map(|((label, mode, conc), c)| {
                format!(
                    "{label} {mode} c={conc}: {} errors, {} non-2xx (over {} rounds)",
                    c.errors, c.non_2xx, c.rounds
                )
            })
            .collect()
    }
}
