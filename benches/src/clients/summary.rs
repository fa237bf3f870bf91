//! The comparison's figures: one `Sample` per run, medians over rounds per
//! (client, mode, concurrency), and the Markdown table with the verdict — is hyper
//! within 10% of Switchyard's client in CPU per request?

use super::{ClientKind, Plan};
use crate::percentile_ms;
use crate::report::cells::{median, ratio};
use crate::report::markdown::num;
use std::collections::BTreeMap;
use std::time::Duration;

/// How much more CPU per request than Switchyard's client still counts as "within".
pub const WITHIN: f64 = 1.10;

/// Counts of one run.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    /// Real length of the measured window.
    pub measured: Duration,
    /// Process CPU over the whole run (warm-up included).
    pub cpu: Duration,
    /// Requests over the whole run (warm-up included).
    pub total: u64,
    /// Transport errors.
    pub errors: u64,
    /// Non-2xx answers.
    pub non_2xx: u64,
    /// Body bytes of the recorded 2xx answers.
    pub body_bytes: u64,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Which client.
    pub client: ClientKind,
    /// Streaming or not.
    pub stream: bool,
    /// Concurrency.
    pub conc: u32,
    /// Round, 1-based.
    pub round: u32,
    /// 2xx per second in the measured window.
    pub rps: f64,
    /// Latency p50.
    pub p50_ms: Option<f64>,
    /// Latency p99.
    pub p99_ms: Option<f64>,
    /// Process CPU µs per request.
    pub cpu_us: Option<f64>,
    /// Body bytes per recorded answer (a check that both clients read it all).
    pub bytes_per_answer: Option<f64>,
    /// Errors plus non-2xx.
    pub failures: u64,
}

impl Sample {
    /// The figures of a run; sorts `latency_us`.
    #[expect(
        clippy::cast_precision_loss,
        reason = "counts and bytes are far below 2^52"
    )]
    pub fn new(plan: Plan, round: u32, latency_us: &mut [u32], t: Totals) -> Self {
        latency_us.sort_unstable();
        let ok = latency_us.len() as f64;
        Self {
            client: plan.client,
            stream: plan.stream,
            conc: plan.conc,
            round,
            rps: ok / t.measured.as_secs_f64().max(f64::EPSILON),
            p50_ms: percentile_ms(latency_us, 50.0),
            p99_ms: percentile_ms(latency_us, 99.0),
            cpu_us: (t.total > 0).then(|| t.cpu.as_secs_f64() * 1e6 / t.total as f64),
            bytes_per_answer: (ok > 0.0).then(|| t.body_bytes as f64 / ok),
            failures: t.errors + t.non_2xx,
        }
    }
}

/// Medians of one (client, mode, concurrency) over its rounds.
#[derive(Debug, Clone, Default)]
struct Median {
    rps: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    cpu_us: Option<f64>,
    bytes: Option<f64>,
    failures: u64,
}

type Key = (bool, u32, ClientKind);

fn medians(samples: &[Sample]) -> BTreeMap<Key, Median> {
    let mut groups: BTreeMap<Key, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        groups
            .entry((s.stream, s.conc, s.client))
            .or_default()
            .push(s);
    }
    groups
        .into_iter()
        .map(|(k, ss)| {
            let med =
                |f: fn(&Sample) -> Option<f64>| median(ss.iter().filter_map(|s| f(s)).collect());
            let m = Median {
                rps: med(|s| Some(s.rps)),
                p50_ms: med(|s| s.p50_ms),
                p99_ms: med(|s| s.p99_ms),
                cpu_us: med(|s| s.cpu_us),
                bytes: med(|s| s.bytes_per_answer),
                failures: ss.iter().map(|s| s.failures).sum(),
            };
            (k, m)
        })
        .collect()
}

fn mode(stream: bool) -> &'static str {
    if stream {
        "stream"
    } else {
        "non-stream"
    }
}

/// The table (medians) and, per mode and concurrency, hyper's CPU per request
/// against Switchyard's client, then the overall verdict.
pub fn markdown(samples: &[Sample]) -> String {
    let meds = medians(samples);
    let mut out = String::new();
    out.push_str("| client | mode | conc | rps | p50 ms | p99 ms | CPU µs/req | CPU vs switchyard | body B/answer |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (&(stream, conc, client), m) in &meds {
        let ours = meds
            .get(&(stream, conc, ClientKind::Switchyard))
            .and_then(|m| m.cpu_us);
        out.push_str(&format!(
            "| {client} | {} | {conc} | {} | {} | {} | {} | {}× | {} |\n",
            mode(stream),
            num(m.rps, 0),
            num(m.p50_ms, 3),
            num(m.p99_ms, 3),
            num(m.cpu_us, 2),
            num(ratio(ours, m.cpu_us), 3),
            num(m.bytes, 0),
        ));
    }
    out.push('\n');
    for (&(stream, conc, client), m) in &meds {
        if m.failures != 0 {
            out.push_str(&format!(
                "- WARNING: {client} {} c={conc}: {} errors or non-2xx answers\n",
                mode(stream),
                m.failures
            ));
        }
    }
    let (mut within, mut cells) = (0, 0);
    let mut cases: Vec<(bool, u32)> = meds.keys().map(|&(s, c, _)| (s, c)).collect();
    cases.dedup();
    for (stream, conc) in cases {
        let cpu = |k| meds.get(&(stream, conc, k)).and_then(|m: &Median| m.cpu_us);
        let ours = cpu(ClientKind::Switchyard);
        let best = [ClientKind::HyperInTask, ClientKind::HyperSpawned]
            .into_iter()
            .filter_map(|k| Some((k, cpu(k)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((k, hyper)) = best else { continue };
        let Some(r) = ratio(ours, Some(hyper)) else {
            continue;
        };
        cells += 1;
        let ok = r <= WITHIN;
        within += usize::from(ok);
        out.push_str(&format!(
            "- {} c={conc}: best hyper ({k}) {} µs/req vs switchyard {} µs/req = {:.3}× ({:+.1}%): {}\n",
            mode(stream),
            num(Some(hyper), 2),
            num(ours, 2),
            r,
            (r - 1.0) * 100.0,
            if ok { "within 10%" } else { "NOT within 10%" },
        ));
    }
    out.push_str(&format!(
        "- Verdict: hyper is within 10% of Switchyard's client in CPU per request in {within} of {cells} cases.\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(client: ClientKind, stream: bool, conc: u32, round: u32, cpu_us: f64) -> Sample {
        Sample {
            client,
            stream,
            conc,
            round,
            rps: 1000.0,
            p50_ms: Some(0.1),
            p99_ms: Some(0.2),
            cpu_us: Some(cpu_us),
            bytes_per_answer: Some(400.0),
            failures: 0,
        }
    }

    #[test]
    fn verdict_compares_the_best_hyper_median_with_ours() {
        let mut s = Vec::new();
        for (round, ours) in [(1, 20.0), (2, 21.0), (3, 50.0)] {
            s.push(sample(ClientKind::Switchyard, false, 1, round, ours));
            s.push(sample(ClientKind::HyperInTask, false, 1, round, 23.0));
            s.push(sample(ClientKind::HyperSpawned, false, 1, round, 30.0));
            s.push(sample(ClientKind::Switchyard, true, 64, round, 10.0));
            s.push(sample(ClientKind::HyperInTask, true, 64, round, 20.0));
            s.push(sample(ClientKind::HyperSpawned, true, 64, round, 15.0));
        }
        let md = markdown(&s);
        // Median of ours is 21; best hyper 23: 1.095×, within.
        assert!(md.contains("- non-stream c=1: best hyper (hyper conn::http1, in task) 23.00 µs/req vs switchyard 21.00 µs/req = 1.095× (+9.5%): within 10%"), "{md}");
        assert!(md.contains("- stream c=64: best hyper (hyper conn::http1, spawned) 15.00 µs/req vs switchyard 10.00 µs/req = 1.500× (+50.0%): NOT within 10%"), "{md}");
        assert!(md.contains("in 1 of 2 cases"), "{md}");
        assert!(md.contains("| switchyard H1Client | non-stream | 1 | 1000 | 0.100 | 0.200 | 21.00 | 1.000× | 400 |"), "{md}");
    }

    #[test]
    fn the_stream_body_is_the_same_request_with_stream_true() {
        let plain = super::super::chat_body(false);
        let stream = super::super::chat_body(true);
        let a: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&stream).unwrap();
        assert_eq!(b["stream"], true);
        assert!(a.get("stream").is_none());
        assert!((250..=350).contains(&plain.len()), "{}", plain.len());
    }
}
