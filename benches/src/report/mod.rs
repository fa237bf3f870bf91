//! The bench report: reads what `run.sh` recorded (`raw`), takes medians over the
//! rounds and CPU per request (`cells`), and writes the Markdown tables and the
//! comparisons below them (`proxy` for the default scenario, `plugins` for the
//! plugin one, `ab` for the A/B one, with `markdown` for the shared pieces). `run.sh` only launches
//! processes and records; every number in the report is computed here.

pub mod ab;
pub mod cells;
pub mod markdown;
pub mod plugins;
pub mod proxy;
pub mod raw;

#[cfg(test)]
mod tests;

use raw::{Meta, Raw, Scenario};

/// The Markdown report of `scenario` from the JSON-lines text `run.sh` recorded.
///
/// # Errors
/// When the text is not valid records (see [`raw`]).
pub fn render(text: &str, scenario: Scenario) -> Result<String, String> {
    let raw = Raw::parse(text)?;
    let mut out = String::new();
    match scenario {
        Scenario::Default => proxy::render(&raw, &mut out),
        Scenario::Plugins => plugins::render(&raw, &mut out),
        Scenario::Ab => ab::render(&raw, &mut out),
    }
    Ok(out)
}

/// Where and when the figures come from, and how they were combined.
fn provenance(m: &Meta) -> String {
    let rounds = match m.rounds {
        1 => "one round".to_owned(),
        n => format!("each cell the median of {n} interleaved rounds"),
    };
    let pin = match &m.pin {
        None => String::new(),
        Some(pin) => format!(
            " Pinned: proxies on CPU {}{}, mockup and loadgen on CPU {}.",
            pin.proxy_cpus,
            pin.workers
                .map(|w| format!(" (gateway workers: {w})"))
                .unwrap_or_default(),
            pin.load_cpus
        ),
    };
    format!("Commit `{}`, {}; {rounds}.{pin}", m.commit, m.date)
}
