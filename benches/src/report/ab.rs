//! The `ab` scenario's report: two gateway variants, A and B, run back to back in
//! every round, mode and concurrency; the usual table per variant, then B − A per
//! round (paired, so that drift between rounds cancels) with the median over the
//! rounds, the spread and how many rounds went B's way.

use super::cells::{cpu_us_per_request, median, ratio, Cells};
use super::markdown::{num, signed, table_head, table_row, warnings};
use super::raw::{Mode, Raw, Run, Scenario, Variant};

/// The labels of the two variants' runs, in order.
pub const LABELS: [&str; 2] = ["a", "b"];

/// B − A of one figure over the rounds where both variants have it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// Per-round differences, in round order.
    pub rounds: Vec<f64>,
}

impl Delta {
    /// The median of the per-round differences.
    pub fn median(&self) -> Option<f64> {
        median(self.rounds.clone())
    }

    /// The smallest and largest per-round difference.
    pub fn range(&self) -> Option<(f64, f64)> {
        let min = self.rounds.iter().copied().reduce(f64::min)?;
        let max = self.rounds.iter().copied().reduce(f64::max)?;
        Some((min, max))
    }

    /// Rounds where B was higher than A.
    pub fn b_higher(&self) -> usize {
        self.rounds.iter().filter(|d| **d > 0.0).count()
    }

    /// `−0.3 … +2.1, B higher 4/5`, or `-` without rounds.
    pub fn spread(&self, decimals: usize) -> String {
        self.range().map_or_else(
            || "-".to_owned(),
            |(lo, hi)| {
                format!(
                    "{} … {}, B higher {}/{}",
                    signed(Some(lo), decimals),
                    signed(Some(hi), decimals),
                    self.b_higher(),
                    self.rounds.len()
                )
            },
        )
    }
}

/// B against A in one (mode, concurrency): per-round differences and ratios.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pair {
    /// Rounds in which both variants ran.
    pub rounds: usize,
    /// rps B / A per round.
    pub rps_ratio: Delta,
    /// p50 B − A, ms.
    pub p50_ms: Delta,
    /// p99 B − A, ms.
    pub p99_ms: Delta,
    /// TTFB p50 B − A, ms (streams).
    pub ttfb_p50_ms: Delta,
    /// TTFB p99 B − A, ms (streams).
    pub ttfb_p99_ms: Delta,
    /// CPU µs per request B − A.
    pub cpu_us: Delta,
}

impl Pair {
    /// Pairs the `ab` runs of `mode` and `conc` round by round.
    pub fn of(runs: &[Run], mode: Mode, conc: u32, clk_tck: u32) -> Self {
        let find = |label: &str, round: u32| {
            runs.iter().find(|r| {
                r.scenario == Scenario::Ab
                    && r.label == label
                    && r.mode == mode
                    && r.conc == conc
                    && r.round == round
            })
        };
        let mut rounds: Vec<u32> = runs
            .iter()
            .filter(|r| r.scenario == Scenario::Ab && r.mode == mode && r.conc == conc)
            .map(|r| r.round)
            .collect();
        rounds.sort_unstable();
        rounds.dedup();
        let mut pair = Self::default();
        for round in rounds {
            let (Some(a), Some(b)) = (find(LABELS[0], round), find(LABELS[1], round)) else {
                continue;
            };
            pair.rounds += 1;
            let push = |delta: &mut Delta, f: &dyn Fn(&Run) -> Option<f64>| {
                if let (Some(x), Some(y)) = (f(a), f(b)) {
                    delta.rounds.push(y - x);
                }
            };
            push(&mut pair.p50_ms, &|r| r.result.p50_ms);
            push(&mut pair.p99_ms, &|r| r.result.p99_ms);
            push(&mut pair.ttfb_p50_ms, &|r| r.result.ttfb_p50_ms);
            push(&mut pair.ttfb_p99_ms, &|r| r.result.ttfb_p99_ms);
            push(&mut pair.cpu_us, &|r| {
                cpu_us_per_request(r.ticks?, clk_tck, r.result.total_requests)
            });
            if let Some(q) = ratio(Some(a.result.rps), Some(b.result.rps)) {
                pair.rps_ratio.rounds.push(q);
            }
        }
        pair
    }
}

fn variant<'r>(raw: &'r Raw, label: &str) -> Option<&'r Variant> {
    raw.variants.iter().find(|v| v.label == label)
}

/// The display name of `label`: its variant's name, else `A` / `B`.
fn name(raw: &Raw, label: &str) -> String {
    variant(raw, label).map_or_else(|| label.to_uppercase(), |v| v.name.clone())
}

/// One bullet saying what a variant is: binary, version, log level, extra config.
fn describe(raw: &Raw, v: &Variant) -> String {
    let mut what = format!("`{}`", v.bin);
    let mut about = Vec::new();
    if let Some(version) = v.version.as_deref().filter(|s| !s.is_empty()) {
        about.push(version.to_owned());
    }
    if let Some(tree) = v.tree.as_deref().filter(|s| !s.is_empty()) {
        about.push(format!("checkout at `{tree}`"));
    }
    if !about.is_empty() {
        what.push_str(&format!(" ({})", about.join(", ")));
    }
    let metrics = if v.metrics_flag {
        "own metrics port (`--metrics-listen`)"
    } else {
        "no `metrics:` section (the binary does not know it)"
    };
    let yaml = if v.yaml.trim().is_empty() {
        "none".to_owned()
    } else {
        format!("`{}`", v.yaml.trim().replace('\n', "` / `"))
    };
    #[expect(
        clippy::cast_precision_loss,
        reason = "memory sizes in kB are far below 2^52"
    )]
    let mb = |kb: Option<u64>| kb.map(|kb| kb as f64 / 1024.0);
    let rss = raw
        .rss
        .iter()
        .find(|r| r.label == format!("ab-{}", v.label));
    format!(
        "{what}; `RUST_LOG={}`; {metrics}; YAML appended: {yaml}; RSS idle {} MB, peak {} MB",
        v.rust_log,
        num(mb(rss.and_then(|r| r.idle_kb)), 1),
        num(mb(rss.and_then(|r| r.peak_kb)), 1),
    )
}

/// Appends the scenario's Markdown to `out`.
pub fn render(raw: &Raw, out: &mut String) {
    let m = &raw.meta;
    let cells = Cells::of(&raw.runs, Scenario::Ab, m.clk_tck);
    let (a, b) = (name(raw, LABELS[0]), name(raw, LABELS[1]));
    out.push_str(&format!(
        "A/B: {}s per run after {}s warm-up, {} cores, mockup threads {}, loadgen threads \
         {}; A and B are two Switchyard processes in front of the same mockup, measured \
         back to back for every mode and concurrency of every round (A then B in odd \
         rounds, B then A in even ones).\n{}\n\n",
        m.duration_s,
        m.warmup_s,
        m.cores,
        m.mock_threads,
        m.loadgen_threads,
        super::provenance(m),
    ));
    for (label, letter) in LABELS.iter().zip(["A", "B"]) {
        match variant(raw, label) {
            Some(v) => out.push_str(&format!(
                "- {letter} = **{}**: {}\n",
                v.name,
                describe(raw, v)
            )),
            None => out.push_str(&format!("- {letter}: no record of what ran\n")),
        }
    }
    out.push('\n');
    for label in LABELS {
        if let Some(why) = raw.missing(Scenario::Ab, label) {
            out.push_str(&format!("- {}: not measured ({why})\n", name(raw, label)));
        }
    }
    if cells.is_empty() {
        return;
    }

    let mut concs = cells.concs(LABELS[0]);
    concs.extend(cells.concs(LABELS[1]));
    concs.sort_unstable();
    concs.dedup();
    table_head(out);
    for mode in Mode::ALL {
        for &conc in &concs {
            for label in LABELS {
                if let Some(cell) = cells.get(label, mode, conc) {
                    table_row(out, &name(raw, label), mode, conc, Some(cell));
                }
            }
        }
    }
    out.push('\n');
    warnings(out, &cells.trouble());
    if !(cells.has(LABELS[0]) && cells.has(LABELS[1])) {
        return;
    }

    out.push_str(&format!(
        "B − A ({b} − {a}), paired by round, then the median over the rounds; the spread is \
         the smallest and largest per-round difference and the rounds where B was higher:\n\n"
    ));
    out.push_str(
        "| mode | conc | rounds | rps B/A | p50 Δ ms | p99 Δ ms | TTFB p50 Δ ms | TTFB p99 Δ ms \
         | CPU Δ µs/req | CPU Δ spread | p99 Δ spread |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for mode in Mode::ALL {
        for &conc in &concs {
            let p = Pair::of(&raw.runs, mode, conc, m.clk_tck);
            if p.rounds == 0 {
                continue;
            }
            let opt = |d: &Delta, decimals| {
                d.median()
                    .map_or_else(|| "-".to_owned(), |v| signed(Some(v), decimals))
            };
            out.push_str(&format!(
                "| {mode} | {conc} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                p.rounds,
                num(p.rps_ratio.median(), 3),
                opt(&p.p50_ms, 3),
                opt(&p.p99_ms, 3),
                opt(&p.ttfb_p50_ms, 3),
                opt(&p.ttfb_p99_ms, 3),
                opt(&p.cpu_us, 2),
                p.cpu_us.spread(2),
                p.p99_ms.spread(3),
            ));
        }
    }
    out.push('\n');

    let (Some(&low), Some(&high)) = (concs.first(), concs.last()) else {
        return;
    };
    let mut cpu = Vec::new();
    let mut lat = Vec::new();
    for mode in Mode::ALL {
        let hp = Pair::of(&raw.runs, mode, high, m.clk_tck);
        let base = cells.get(LABELS[0], mode, high).and_then(|c| c.cpu_us);
        let d = hp.cpu_us.median();
        let pct = ratio(base, d).map(|r| r * 100.0);
        cpu.push(format!(
            "{mode} {} µs/req ({} % of A's {})",
            signed(d, 2),
            signed(pct, 1),
            num(base, 1)
        ));
        let lp = Pair::of(&raw.runs, mode, low, m.clk_tck);
        lat.push(format!(
            "{mode} p99 {} ms, p50 {} ms",
            signed(lp.p99_ms.median(), 3),
            signed(lp.p50_ms.median(), 3)
        ));
    }
    out.push_str(&format!(
        "- CPU per request at c={high}, B − A: {}\n",
        cpu.join("; ")
    ));
    out.push_str(&format!(
        "- Latency at c={low}, B − A: {}\n",
        lat.join("; ")
    ));
}
