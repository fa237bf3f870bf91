//! `clientbench`: Switchyard's own upstream HTTP/1.1 client against hyper's
//! `client::conn::http1`, same process, same mockup, same request, interleaved
//! rounds; prints a Markdown table of medians (rps, latency, process CPU per
//! request) and whether hyper comes within 10% of our CPU per request. The logic
//! is in the library's `clients` module; this owns the command line and the
//! runtime. `bash benches/run.sh clients` starts the mockup and runs this.
//!
//! ```text
//! clientbench --url http://127.0.0.1:PORT/v1/chat/completions [--concs 1,64]
//!             [--rounds 5] [--duration 3] [--warmup 1] [--threads 1]
//! ```

use std::time::Duration;
use switchyard_benches::clients::{measure, summary, ClientKind, Plan};
use switchyard_benches::Args;

const USAGE: &str = "usage: clientbench --url URL [options]

  --url URL        the mockup's chat endpoint, http://HOST:PORT/v1/chat/completions
  --concs LIST     comma-separated concurrencies; default 1,64
  --rounds N       interleaved rounds (the table shows medians); default 5
  --duration SECS  measured time per run; default 3
  --warmup SECS    unrecorded time before it; default 1
  --threads N      tokio worker threads; default 1
  --commit TEXT    the commit to name in the report; --date TEXT likewise

For every round, mode (non-stream, stream) and concurrency it runs each client in
turn: Switchyard's H1Client as the gateway uses it, hyper conn::http1 with the
connection polled in the worker's task, and with it spawned.";

struct Opts {
    url: hyper::Uri,
    concs: Vec<u32>,
    rounds: u32,
    duration: Duration,
    warmup: Duration,
    threads: usize,
    commit: String,
    date: String,
}

fn parse() -> Result<Option<Opts>, String> {
    let mut args = Args::from_env();
    if args.wants_help() {
        return Ok(None);
    }
    let url = args.value("--url")?.ok_or("--url is required")?;
    let concs = args.value("--concs")?.unwrap_or_else(|| "1,64".to_owned());
    let rounds: u32 = args.parse_or("--rounds", 5)?;
    let duration: f64 = args.parse_or("--duration", 3.0)?;
    let warmup: f64 = args.parse_or("--warmup", 1.0)?;
    let threads: usize = args.parse_or("--threads", 1)?;
    let commit = args
        .value("--commit")?
        .unwrap_or_else(|| "unknown".to_owned());
    let date = args
        .value("--date")?
        .unwrap_or_else(|| "unknown".to_owned());
    args.finish()?;
    let concs = concs
        .split([',', ' '])
        .filter(|c| !c.is_empty())
        .map(|c| c.parse().map_err(|e| format!("--concs: {c:?}: {e}")))
        .collect::<Result<Vec<u32>, _>>()?;
    if concs.is_empty() || concs.contains(&0) || rounds == 0 || threads == 0 {
        return Err("--concs, --rounds and --threads must be at least 1".to_owned());
    }
    Ok(Some(Opts {
        url: url.parse().map_err(|e| format!("--url: {e}"))?,
        concs,
        rounds,
        duration: Duration::try_from_secs_f64(duration).map_err(|e| format!("--duration: {e}"))?,
        warmup: Duration::try_from_secs_f64(warmup).map_err(|e| format!("--warmup: {e}"))?,
        threads,
        commit,
        date,
    }))
}

async fn run(o: &Opts) -> Result<Vec<summary::Sample>, String> {
    let mut samples = Vec::new();
    for round in 1..=o.rounds {
        for stream in [false, true] {
            for &conc in &o.concs {
                for client in ClientKind::ALL {
                    let plan = Plan {
                        client,
                        stream,
                        conc,
                        warmup: o.warmup,
                        duration: o.duration,
                    };
                    let s = measure(&o.url, plan, round).await?;
                    eprintln!(
                        "[clientbench] round {round} {client} stream={stream} c={conc}: {:.0} rps, {} µs/req",
                        s.rps,
                        s.cpu_us.map_or("-".to_owned(), |c| format!("{c:.2}"))
                    );
                    samples.push(s);
                }
            }
        }
    }
    Ok(samples)
}

#[expect(clippy::print_stdout, reason = "the report is this binary's output")]
fn main() {
    let o = match parse() {
        Ok(Some(o)) => o,
        Ok(None) => {
            eprintln!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("clientbench: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads)
        .enable_io()
        .enable_time()
        .build();
    let samples = match rt
        .map_err(|e| format!("tokio runtime: {e}"))
        .and_then(|rt| rt.block_on(run(&o)))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clientbench: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "Upstream clients: {}s per run after {}s warm-up, {} interleaved rounds (medians), \
         {} tokio worker thread(s), one process against one mockup; commit `{}`, {}. \
         CPU is the whole process's (utime + stime from /proc/self/stat) over every request \
         of the run, warm-up included.\n",
        o.duration.as_secs_f64(),
        o.warmup.as_secs_f64(),
        o.rounds,
        o.threads,
        o.commit,
        o.date,
    );
    print!("{}", summary::markdown(&samples));
}
