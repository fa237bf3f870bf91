//! The raw records `run.sh` writes while it runs, one JSON object a line, and
//! reading them back. Owns the file format only: the arithmetic is in `cells`, the
//! text in `markdown` and the scenario reports.
//!
//! ```text
//! {"kind":"meta","commit":"0c7f273","date":"2026-11-22","cores":2,"clk_tck":100,
//!  "duration_s":5,"warmup_s":1,"rounds":3,"mock_threads":1,"loadgen_threads":1,"plugin_ms":50}
//! {"kind":"run","scenario":"default","label":"switchyard","mode":"stream","conc":16,
//!  "round":2,"ticks":[1234,1801],"result":{…loadgen's JSON line…}}
//! {"kind":"rss","label":"switchyard","idle_kb":8100,"peak_kb":29600}
//! {"kind":"missing","scenario":"default","label":"nginx","why":"no nginx on PATH"}
//! {"kind":"variant","label":"a","name":"before","bin":"/x/switchyard","version":"switchyard 0.1.0",
//!  "tree":"066b4f8","rust_log":"warn","metrics_flag":false,"yaml":""}
//! {"kind":"rss","label":"ab-a","idle_kb":8100,"peak_kb":29600}
//! ```

use serde::Deserialize;
use std::fmt;

/// Which part of `run.sh` a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// direct vs switchyard vs nginx.
    Default,
    /// What plugins cost.
    Plugins,
    /// Two gateway variants, A vs B.
    Ab,
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Self::Default),
            "plugins" => Ok(Self::Plugins),
            "ab" => Ok(Self::Ab),
            other => Err(format!(
                "unknown scenario {other:?} (default, plugins or ab)"
            )),
        }
    }
}

/// One JSON answer, or an SSE stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum Mode {
    /// One `chat.completion` answer.
    #[serde(rename = "non-stream")]
    NonStream,
    /// 20 SSE chunks and `[DONE]`.
    #[serde(rename = "stream")]
    Stream,
}

impl Mode {
    /// Both modes, in table order.
    pub const ALL: [Self; 2] = [Self::NonStream, Self::Stream];
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NonStream => "non-stream",
            Self::Stream => "stream",
        })
    }
}

/// The settings of the whole bench run.
#[derive(Debug, Clone, Deserialize)]
pub struct Meta {
    /// `git rev-parse --short HEAD`, with `-dirty` when the tree had changes.
    pub commit: String,
    /// When the run started (UTC).
    pub date: String,
    /// CPUs online.
    pub cores: u32,
    /// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`).
    pub clk_tck: u32,
    /// Measured seconds per run.
    pub duration_s: f64,
    /// Unrecorded seconds before each run.
    pub warmup_s: f64,
    /// Interleaved rounds of the matrix.
    pub rounds: u32,
    /// mockup's worker threads.
    pub mock_threads: u32,
    /// loadgen's worker threads.
    pub loadgen_threads: u32,
    /// How long one external plugin call takes (plugin scenario).
    pub plugin_ms: u64,
    /// CPU pinning (`PIN=1`): the cores of the proxies under test and of the mockup and
    /// loadgen, and the gateway's `server.workers`. Absent in unpinned runs.
    #[serde(default)]
    pub pin: Option<Pin>,
}

/// Where a pinned run put its processes.
#[derive(Debug, Clone, Deserialize)]
pub struct Pin {
    /// `taskset -c` list of the gateway(s) and nginx.
    pub proxy_cpus: String,
    /// `taskset -c` list of the mockup and loadgen.
    pub load_cpus: String,
    /// The gateway's `server.workers` (nginx runs one worker per pinned CPU).
    pub workers: Option<u32>,
}

/// One loadgen run against one target.
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    /// The scenario it belongs to.
    pub scenario: Scenario,
    /// The target (`direct`, `switchyard`, `nginx`, `none`, `filter`, …).
    pub label: String,
    /// Streaming or not.
    pub mode: Mode,
    /// loadgen's concurrency.
    pub conc: u32,
    /// Which round of the matrix (1-based).
    pub round: u32,
    /// The target's utime + stime in clock ticks before and after the run, when
    /// measured.
    #[serde(default)]
    pub ticks: Option<[u64; 2]>,
    /// loadgen's result line.
    pub result: LoadgenResult,
}

/// The fields of loadgen's JSON line that the report reads.
#[derive(Debug, Clone, Deserialize)]
pub struct LoadgenResult {
    /// 2xx answers per second in the measured window.
    pub rps: f64,
    /// Latency to the last body byte.
    pub p50_ms: Option<f64>,
    /// Latency to the last body byte.
    pub p99_ms: Option<f64>,
    /// Time to the first body byte (streams only).
    pub ttfb_p50_ms: Option<f64>,
    /// Time to the first body byte (streams only).
    pub ttfb_p99_ms: Option<f64>,
    /// Transport errors in the measured window.
    pub errors: u64,
    /// Non-2xx answers in the measured window.
    pub non_2xx: u64,
    /// Requests sent, warm-up included.
    pub total_requests: u64,
}

/// Resident memory of a gateway process, in kB.
#[derive(Debug, Clone, Deserialize)]
pub struct Rss {
    /// Which process (`switchyard`; `ab-a`, `ab-b` for the `ab` variants).
    pub label: String,
    /// `VmRSS` after start-up and one request.
    pub idle_kb: Option<u64>,
    /// `VmHWM` at the end.
    pub peak_kb: Option<u64>,
}

/// A target that was not measured, and why.
#[derive(Debug, Clone, Deserialize)]
pub struct Missing {
    /// The scenario it would have been part of.
    pub scenario: Scenario,
    /// The target.
    pub label: String,
    /// Why (no binary, did not start, …).
    pub why: String,
}

/// One gateway variant of the `ab` scenario: what ran, and how.
#[derive(Debug, Clone, Deserialize)]
pub struct Variant {
    /// `a` or `b`: the `label` of its runs.
    pub label: String,
    /// The display name (`AB_A_LABEL`, …).
    pub name: String,
    /// The binary's path.
    pub bin: String,
    /// The first line of `BIN --version`, when it printed one.
    #[serde(default)]
    pub version: Option<String>,
    /// `git rev-parse --short HEAD` of the checkout the binary lives in, when it is in one.
    #[serde(default)]
    pub tree: Option<String>,
    /// Its `RUST_LOG`.
    pub rust_log: String,
    /// Whether it knows `--metrics-listen` (and so the `metrics:` section); `run.sh`
    /// gives it its own metrics port with that flag.
    pub metrics_flag: bool,
    /// The YAML appended to its config (empty for none).
    #[serde(default)]
    pub yaml: String,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Meta(Meta),
    Run(Run),
    Rss(Rss),
    Missing(Missing),
    Variant(Variant),
}

/// Everything one bench run recorded.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The settings.
    pub meta: Meta,
    /// Every loadgen run, in the order they ran.
    pub runs: Vec<Run>,
    /// Gateway memory.
    pub rss: Vec<Rss>,
    /// Targets not measured.
    pub missing: Vec<Missing>,
    /// The `ab` scenario's variants.
    pub variants: Vec<Variant>,
}

impl Raw {
    /// Reads the JSON-lines text `run.sh` wrote; blank lines are skipped.
    ///
    /// # Errors
    /// A line that is not one of the records above (with its number), or no `meta`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut meta = None;
        let (mut runs, mut rss, mut missing, mut variants) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record: Record =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            match record {
                Record::Meta(m) => meta = Some(m),
                Record::Run(r) => runs.push(r),
                Record::Rss(r) => rss.push(r),
                Record::Missing(m) => missing.push(m),
                Record::Variant(v) => variants.push(v),
            }
        }
        let meta = meta.ok_or("no meta record")?;
        Ok(Self {
            meta,
            runs,
            rss,
            missing,
            variants,
        })
    }

    /// Why `label` was not measured in `scenario`, if `run.sh` said so.
    pub fn missing(&self, scenario: Scenario, label: &str) -> Option<&str> {
        self.missing
            .iter()
            .find(|m| m.scenario == scenario && m.label == label)
            .map(|m| m.why.as_str())
    }
}
