//! The `default` scenario's report: direct vs switchyard vs nginx, then the added
//! latency at the lowest concurrency, the switchyard/nginx ratios at the highest,
//! and Switchyard's memory.

use super::cells::{diff, ratio, Cells};
use super::markdown::{num, signed, table_head, table_row, warnings, Limit};
use super::raw::{Mode, Raw, Scenario};

const TARGETS: [&str; 3] = ["direct", "switchyard", "nginx"];

/// Appends the scenario's Markdown to `out`.
pub fn render(raw: &Raw, out: &mut String) {
    let m = &raw.meta;
    let cells = Cells::of(&raw.runs, Scenario::Default, m.clk_tck);
    out.push_str(&format!(
        "Switchyard benchmark: {}s per run after {}s warm-up, {} cores, mockup threads {}, \
         loadgen threads {}.\n{}\n\n",
        m.duration_s,
        m.warmup_s,
        m.cores,
        m.mock_threads,
        m.loadgen_threads,
        super::provenance(m),
    ));
    let targets: Vec<&str> = TARGETS.into_iter().filter(|t| cells.has(t)).collect();
    let concs = cells.concs("direct");
    table_head(out);
    for target in &targets {
        for mode in Mode::ALL {
            for &conc in &concs {
                table_row(out, target, mode, conc, cells.get(target, mode, conc));
            }
        }
    }
    out.push('\n');
    warnings(out, &cells.trouble());

    if !cells.has("switchyard") {
        let why = raw
            .missing(Scenario::Default, "switchyard")
            .unwrap_or("no binary, or it did not start");
        out.push_str(&format!("- switchyard: not measured ({why})\n"));
        return;
    }
    let (Some(&low), Some(&high)) = (concs.first(), concs.last()) else {
        return;
    };
    added_latency(out, &cells, low);
    if cells.has("nginx") {
        for mode in Mode::ALL {
            let s = cells.get("switchyard", mode, high);
            let n = cells.get("nginx", mode, high);
            let rr = ratio(n.and_then(|c| c.rps), s.and_then(|c| c.rps));
            let cr = ratio(n.and_then(|c| c.cpu_us), s.and_then(|c| c.cpu_us));
            out.push_str(&format!(
                "- {mode} at c={high}: rps switchyard/nginx {}× {}; CPU/request \
                 switchyard/nginx {}× {}\n",
                num(rr, 2),
                Limit::AtLeast(0.8).judge(rr),
                num(cr, 2),
                Limit::AtMost(1.5).judge(cr),
            ));
        }
    } else {
        let why = raw
            .missing(Scenario::Default, "nginx")
            .unwrap_or("install it: apt-get install -y nginx");
        out.push_str(&format!("- nginx: not measured ({why})\n"));
    }
    let rss = raw.rss.iter().find(|r| r.label == "switchyard");
    #[expect(
        clippy::cast_precision_loss,
        reason = "memory sizes in kB are far below 2^52"
    )]
    let mb = |kb: Option<u64>| kb.map(|kb| kb as f64 / 1024.0);
    let idle = mb(rss.and_then(|r| r.idle_kb));
    let peak = mb(rss.and_then(|r| r.peak_kb));
    out.push_str(&format!(
        "- Switchyard RSS: idle {} MB {}, peak {} MB\n",
        num(idle, 1),
        Limit::AtMost(20.0).judge(idle),
        num(peak, 1),
    ));
}

/// Switchyard minus direct at concurrency `low`, both modes.
fn added_latency(out: &mut String, cells: &Cells, low: u32) {
    for mode in Mode::ALL {
        let d = cells.get("direct", mode, low);
        let s = cells.get("switchyard", mode, low);
        let field = |f: fn(&super::cells::Cell) -> Option<f64>| diff(d.and_then(f), s.and_then(f));
        let p50 = field(|c| c.p50_ms);
        let p99 = field(|c| c.p99_ms);
        out.push_str(&format!(
            "- Added latency at c={low}, {mode}: p50 {} ms {}, p99 {} ms {}",
            signed(p50, 3),
            Limit::AtMost(0.1).judge(p50),
            signed(p99, 3),
            Limit::AtMost(0.5).judge(p99),
        ));
        if mode == Mode::Stream {
            let t50 = field(|c| c.ttfb_p50_ms);
            let t99 = field(|c| c.ttfb_p99_ms);
            out.push_str(&format!(
                "; TTFB p50 {} ms {}, TTFB p99 {} ms",
                signed(t50, 3),
                Limit::AtMost(0.2).judge(t50),
                signed(t99, 3),
            ));
        }
        out.push('\n');
    }
}
