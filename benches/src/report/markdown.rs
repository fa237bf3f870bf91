//! Text pieces shared by the scenario reports: number formats, `ok`/`MISS`
//! verdicts, and the results table. Knows nothing about which rows a scenario has.

use super::cells::Cell;
use super::raw::Mode;

/// A figure with `decimals` places, or `-` when unknown (table cells, ratios).
pub fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// A signed difference with `decimals` places (`+0.033`), or `n/a` when unknown.
pub fn signed(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:+.decimals$}"))
}

/// A target a figure is held to.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// The figure must be at most this.
    AtMost(f64),
    /// The figure must be at least this.
    AtLeast(f64),
}

impl Limit {
    /// `(target ≤ 0.1: ok)`: the target and whether `v` meets it (`n/a` unknown).
    pub fn judge(self, v: Option<f64>) -> String {
        let (sign, limit, ok) = match (self, v) {
            (Self::AtMost(l), v) => ("≤", l, v.map(|v| v <= l)),
            (Self::AtLeast(l), v) => ("≥", l, v.map(|v| v >= l)),
        };
        let verdict = match ok {
            Some(true) => "ok",
            Some(false) => "MISS",
            None => "n/a",
        };
        format!("(target {sign} {limit}: {verdict})")
    }
}

/// The table's header lines.
pub fn table_head(out: &mut String) {
    out.push_str(
        "| target | mode | conc | rps | p50 ms | p99 ms | TTFB p50 | TTFB p99 | CPU µs/req |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
}

/// One table row; a cell that did not run shows `-` throughout.
pub fn table_row(out: &mut String, name: &str, mode: Mode, conc: u32, cell: Option<&Cell>) {
    let empty = Cell::default();
    let c = cell.unwrap_or(&empty);
    out.push_str(&format!(
        "| {name} | {mode} | {conc} | {} | {} | {} | {} | {} | {} |\n",
        num(c.rps, 0),
        num(c.p50_ms, 3),
        num(c.p99_ms, 3),
        num(c.ttfb_p50_ms, 3),
        num(c.ttfb_p99_ms, 3),
        num(c.cpu_us, 1),
    ));
}

/// Warnings for cells with errors, one bullet each.
pub fn warnings(out: &mut String, trouble: &[String]) {
    for t in trouble {
        out.push_str(&format!("- WARNING: {t}\n"));
    }
}
