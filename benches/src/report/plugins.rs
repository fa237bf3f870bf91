//! The `plugins` scenario's report: no plugins vs rate_limiter + content_filter,
//! what content filtering costs per SSE chunk, and parallel vs sequential external
//! (`http`) plugins next to the plugin service's own latency.

use super::cells::{diff, ratio, Cell, Cells};
use super::markdown::{num, signed, table_head, table_row, warnings};
use super::raw::{Mode, Raw, Scenario};

/// The SSE chunks of a streamed mockup answer (the per-chunk cost divides by this).
const STREAM_CHUNKS: f64 = 20.0;

/// Rows in table order, with their display names.
const ROWS: [(&str, &str); 5] = [
    ("none", "no plugins"),
    ("filter", "rate_limiter + content_filter"),
    ("pluginsvc", "plugin service alone (direct)"),
    ("httppar", "2× http, parallel"),
    ("httpseq", "2× http, sequential"),
];

fn name(label: &str) -> &str {
    ROWS.iter()
        .find(|(l, _)| *l == label)
        .map_or(label, |(_, n)| n)
}

/// Appends the scenario's Markdown to `out`.
pub fn render(raw: &Raw, out: &mut String) {
    let m = &raw.meta;
    let cells = Cells::of(&raw.runs, Scenario::Plugins, m.clk_tck);
    if cells.is_empty() {
        let why = raw
            .missing(Scenario::Plugins, "switchyard")
            .unwrap_or("nothing ran");
        out.push_str(&format!("- plugins: not measured ({why})\n"));
        return;
    }
    out.push_str(&format!(
        "Plugin cost: {}s per run after {}s warm-up, {} cores, mockup threads {}, loadgen \
         threads {}; each row is its own Switchyard process in front of the same mockup; \
         http plugins wait {} ms.\n{}\n\n",
        m.duration_s,
        m.warmup_s,
        m.cores,
        m.mock_threads,
        m.loadgen_threads,
        m.plugin_ms,
        super::provenance(m),
    ));
    table_head(out);
    for (label, display) in ROWS {
        for mode in Mode::ALL {
            for conc in cells.concs(label) {
                if let Some(cell) = cells.get(label, mode, conc) {
                    table_row(out, display, mode, conc, Some(cell));
                }
            }
        }
    }
    out.push('\n');
    warnings(out, &cells.trouble());
    for label in ["none", "filter", "httppar", "httpseq"] {
        if let Some(why) = raw.missing(Scenario::Plugins, label) {
            out.push_str(&format!("- {}: not measured ({why})\n", name(label)));
        }
    }

    let concs = cells.concs("none");
    if let (Some(&low), Some(&high)) = (concs.first(), concs.last()) {
        if cells.has("filter") {
            filter_cost(out, &cells, low, high);
        }
    }
    let low = cells.concs("pluginsvc").first().copied().unwrap_or(1);
    if cells.has("httppar") && cells.has("httpseq") {
        http_plugins(out, &cells, low, m.plugin_ms);
    }
}

fn get<'c>(cells: &'c Cells, label: &str, mode: Mode, conc: u32) -> Option<&'c Cell> {
    cells.get(label, mode, conc)
}

/// `f` of the cell, when it ran and has it.
fn at(
    cells: &Cells,
    label: &str,
    mode: Mode,
    conc: u32,
    f: fn(&Cell) -> Option<f64>,
) -> Option<f64> {
    get(cells, label, mode, conc).and_then(f)
}

/// rate_limiter + content_filter against no plugins, and the per-chunk cost.
fn filter_cost(out: &mut String, cells: &Cells, low: u32, high: u32) {
    for mode in Mode::ALL {
        let p50 = diff(
            at(cells, "none", mode, low, |c| c.p50_ms),
            at(cells, "filter", mode, low, |c| c.p50_ms),
        );
        let p99 = diff(
            at(cells, "none", mode, low, |c| c.p99_ms),
            at(cells, "filter", mode, low, |c| c.p99_ms),
        );
        let rr = ratio(
            at(cells, "none", mode, high, |c| c.rps),
            at(cells, "filter", mode, high, |c| c.rps),
        );
        let cpu_b = at(cells, "none", mode, high, |c| c.cpu_us);
        let cpu_f = at(cells, "filter", mode, high, |c| c.cpu_us);
        out.push_str(&format!(
            "- rate_limiter + content_filter, {mode}: c={low} p50 {} ms, p99 {} ms; c={high} \
             rps {}× of no plugins, CPU {} µs/req ({} → {})\n",
            signed(p50, 3),
            signed(p99, 3),
            num(rr, 2),
            signed(diff(cpu_b, cpu_f), 1),
            num(cpu_b, 1),
            num(cpu_f, 1),
        ));
    }

    // Per chunk: the stream difference over the chunk count; "net" also takes off
    // the non-stream difference, i.e. the pre_request share (rate_limiter and the
    // request-side content_filter), leaving what on_chunk filtering adds.
    let per_chunk = |conc: u32, f: fn(&Cell) -> Option<f64>, scale: f64| {
        let ds = diff(
            at(cells, "none", Mode::Stream, conc, f),
            at(cells, "filter", Mode::Stream, conc, f),
        );
        let dn = diff(
            at(cells, "none", Mode::NonStream, conc, f),
            at(cells, "filter", Mode::NonStream, conc, f),
        );
        let per = ds.map(|ds| ds * scale / STREAM_CHUNKS);
        let net = diff(dn, ds).map(|d| d * scale / STREAM_CHUNKS);
        (per, net)
    };
    let mut parts = Vec::new();
    for conc in [high, low] {
        let (per, net) = per_chunk(conc, |c| c.cpu_us, 1.0);
        parts.push(format!(
            "c={conc}: {} µs/chunk ({} net of the non-stream difference)",
            num(per, 2),
            num(net, 2)
        ));
        if low == high {
            break;
        }
    }
    out.push_str(&format!(
        "- content_filter per chunk, from CPU: (CPU/req with − without) / {STREAM_CHUNKS} \
         chunks: {}\n",
        parts.join("; ")
    ));
    let (per, net) = per_chunk(low, |c| c.p50_ms, 1000.0);
    out.push_str(&format!(
        "- content_filter per chunk, from latency: (stream p50 with − without) / \
         {STREAM_CHUNKS} at c={low}: {} µs/chunk ({} net of the non-stream difference)\n",
        num(per, 2),
        num(net, 2)
    ));
}

/// Parallel vs sequential external plugins, and what they cost beyond the service.
fn http_plugins(out: &mut String, cells: &Cells, low: u32, plugin_ms: u64) {
    let ns = Mode::NonStream;
    let base = at(cells, "none", ns, low, |c| c.p50_ms);
    let svc = at(cells, "pluginsvc", ns, low, |c| c.p50_ms);
    let par = at(cells, "httppar", ns, low, |c| c.p50_ms);
    let par99 = at(cells, "httppar", ns, low, |c| c.p99_ms);
    let seq = at(cells, "httpseq", ns, low, |c| c.p50_ms);
    let seq99 = at(cells, "httpseq", ns, low, |c| c.p99_ms);
    out.push_str(&format!(
        "- 2 http plugins ({plugin_ms} ms each) at c={low}: parallel p50 {} ms / p99 {} ms \
         (expect ≈ {plugin_ms}), sequential p50 {} ms / p99 {} ms (expect ≈ {}); no plugins \
         p50 {} ms\n",
        num(par, 2),
        num(par99, 2),
        num(seq, 2),
        num(seq99, 2),
        2 * plugin_ms,
        num(base, 3),
    ));
    let own_par = diff(base, par).and_then(|d| Some(d - svc?));
    let own_seq = diff(base, seq).and_then(|d| Some(d - 2.0 * svc?));
    out.push_str(&format!(
        "- http plugins' own cost, beyond the service's latency (direct p50 {} ms) and the \
         no-plugin p50: parallel {} ms (p50 − no-plugin − 1 × service), sequential {} ms \
         (− 2 × service); parallel/sequential p50 {}×\n",
        num(svc, 3),
        signed(own_par, 3),
        signed(own_seq, 3),
        num(ratio(seq, par), 2),
    ));
}
