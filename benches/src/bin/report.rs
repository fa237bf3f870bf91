//! `report`: turns the JSON lines `run.sh` recorded into the Markdown report of one
//! scenario. All the logic is in the library's `report` module; this owns only the
//! command line.
//!
//! ```text
//! report --scenario default|plugins|ab RAW.jsonl
//! ```

use switchyard_benches::report::{self, raw::Scenario};
use switchyard_benches::Args;

const USAGE: &str = "usage: report [--scenario default|plugins|ab] RAW.jsonl

Reads the records run.sh wrote (meta, run, rss, missing, variant; one JSON object a
line)
and prints the scenario's Markdown table and comparisons: medians over rounds,
CPU µs per request, added latency and ratios. Default scenario: default.";

fn run() -> Result<Option<String>, String> {
    let mut args = Args::from_env();
    if args.wants_help() {
        return Ok(None);
    }
    let scenario: Scenario = args.parse_or("--scenario", Scenario::Default)?;
    let path = args.positional().ok_or("the raw file is required")?;
    args.finish()?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    report::render(&text, scenario).map(Some)
}

#[expect(clippy::print_stdout, reason = "the report is this binary's output")]
fn main() {
    match run() {
        Ok(Some(text)) => print!("{text}"),
        Ok(None) => eprintln!("{USAGE}"),
        Err(e) => {
            eprintln!("report: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}
