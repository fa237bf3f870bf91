//! `loadgen`: a closed-loop HTTP load generator for the benchmark harness.
//!
//! Owns the workers, the timing windows and the result line. N workers share one
//! keep-alive hyper-util client (TCP_NODELAY) and each sends POSTs back to back.
//! Requests started during the warm-up are sent but not recorded; for the rest it
//! records the latency to the end of the body and, with `--stream`, the time to
//! the first body byte. It prints one JSON line:
//!
//! ```text
//! {"concurrency":16,"duration_s":5.0,"errors":0,"non_2xx":0,"ok":81234,"p50_ms":0.9,
//!  "p99_ms":1.7,"requests":81234,"rps":16246.8,"stream":false,"total_requests":97410,
//!  "ttfb_p50_ms":null,"ttfb_p99_ms":null}
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use switchyard_benches::{percentile_ms, Args};
use tokio::time::Instant;

const USAGE: &str = "usage: loadgen --url URL [options]

  --url URL            target, e.g. http://127.0.0.1:8080/v1/chat/completions
  --concurrency N      workers, each with requests back to back; default 1
  --duration SECS      measured time; default 5
  --warmup SECS        unrecorded time before it; default 1
  --stream             send the built-in streaming body and record TTFB
  --body-file PATH     send this file as the body instead (verbatim)
  --threads N          tokio worker threads; default 1

Prints one JSON line: requests, ok, errors, non_2xx, rps, p50_ms, p99_ms,
ttfb_p50_ms, ttfb_p99_ms (null unless --stream), total_requests (warm-up included).";

const CHAT_BODY: &str = r#"{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}"#;
const CHAT_BODY_STREAM: &str = r#"{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32,"stream":true}"#;

/// Pause after a transport error so a dead target does not become a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(1);

struct Opts {
    url: Uri,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    stream: bool,
    body: Bytes,
    threads: usize,
}

impl Opts {
    fn parse() -> Result<Option<Self>, String> {
        let mut args = Args::from_env();
        if args.wants_help() {
            return Ok(None);
        }
        let url = args.value("--url")?;
        let concurrency: usize = args.parse_or("--concurrency", 1)?;
        let duration: f64 = args.parse_or("--duration", 5.0)?;
        let warmup: f64 = args.parse_or("--warmup", 1.0)?;
        let stream = args.flag("--stream");
        let body_file = args.value("--body-file")?;
        let threads: usize = args.parse_or("--threads", 1)?;
        args.finish()?;

        let url: Uri = url
            .ok_or("--url is required")?
            .parse()
            .map_err(|e| format!("--url: {e}"))?;
        if url.scheme_str() != Some("http") {
            return Err("--url must be http://".to_owned());
        }
        if concurrency == 0 || threads == 0 {
            return Err("--concurrency and --threads must be at least 1".to_owned());
        }
        let duration =
            Duration::try_from_secs_f64(duration).map_err(|e| format!("--duration: {e}"))?;
        let warmup = Duration::try_from_secs_f64(warmup).map_err(|e| format!("--warmup: {e}"))?;
        if duration.is_zero() {
            return Err("--duration must be positive".to_owned());
        }
        let body = match body_file {
            Some(path) => Bytes::from(std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?),
            None if stream => Bytes::from_static(CHAT_BODY_STREAM.as_bytes()),
            None => Bytes::from_static(CHAT_BODY.as_bytes()),
        };
        Ok(Some(Self {
            url,
            concurrency,
            duration,
            warmup,
            stream,
            body,
            threads,
        }))
    }
}

/// What one worker saw. Latencies are microseconds, recorded requests only.
#[derive(Default)]
struct Tally {
    /// Requests started in the measured window (any outcome).
    requests: u64,
    /// All requests, warm-up included: for CPU-per-request accounting.
    total: u64,
    errors: u64,
    non_2xx: u64,
    latency_us: Vec<u32>,
    ttfb_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Self) {
        self.requests += other.requests;
        self.total += other.total;
        self.errors += other.errors;
        self.non_2xx += other.non_2xx;
        self.latency_us.extend(other.latency_us);
        self.ttfb_us.extend(other.ttfb_us);
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

enum Outcome {
    /// 2xx with the whole body read: latency and (if any body) TTFB.
    Ok(Duration, Option<Duration>),
    Non2xx,
    Error,
}

async fn one_request(
    client: &Client<HttpConnector, Full<Bytes>>,
    opts: &Opts,
    t0: Instant,
) -> Outcome {
    let mut req = Request::post(opts.url.clone()).body(Full::new(opts.body.clone()));
    if let Ok(r) = &mut req {
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let Ok(req) = req else {
        return Outcome::Error;
    };
    let Ok(resp) = client.request(req).await else {
        return Outcome::Error;
    };
    let success = resp.status().is_success();
    let mut body = resp.into_body();
    let mut ttfb = None;
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if ttfb.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                    ttfb = Some(t0.elapsed());
                }
            }
            Some(Err(_body_error)) => return Outcome::Error,
            None => break,
        }
    }
    if success {
        Outcome::Ok(t0.elapsed(), ttfb)
    } else {
        Outcome::Non2xx
    }
}

async fn worker(
    client: Client<HttpConnector, Full<Bytes>>,
    opts: Arc<Opts>,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut t = Tally::default();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let outcome = one_request(&client, &opts, t0).await;
        t.total += 1;
        let recorded = t0 >= measure_from;
        if recorded {
            t.requests += 1;
        }
        match outcome {
            Outcome::Ok(latency, ttfb) => {
                if recorded {
                    t.latency_us.push(micros(latency));
                    if opts.stream {
                        if let Some(ttfb) = ttfb {
                            t.ttfb_us.push(micros(ttfb));
                        }
                    }
                }
            }
            Outcome::Non2xx => {
                if recorded {
                    t.non_2xx += 1;
                }
            }
            Outcome::Error => {
                if recorded {
                    t.errors += 1;
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    t
}

#[expect(
    clippy::print_stdout,
    reason = "the result line is this binary's output"
)]
async fn run(opts: Opts) -> Result<(), String> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .build(connector);

    let opts = Arc::new(opts);
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    let workers: Vec<_> = (0..opts.concurrency)
        .map(|_| tokio::spawn(worker(client.clone(), Arc::clone(&opts), measure_from, end)))
        .collect();
    let mut tally = Tally::default();
    for w in workers {
        tally.merge(w.await.map_err(|e| format!("worker: {e}"))?);
    }
    // Requests that started before `end` finish after it: divide by the real span.
    let measured = Instant::now().saturating_duration_since(measure_from);

    tally.latency_us.sort_unstable();
    tally.ttfb_us.sort_unstable();
    let ok = tally.latency_us.len() as u64;
    #[expect(
        clippy::cast_precision_loss,
        reason = "request counts are far below 2^52"
    )]
    let rps = ok as f64 / measured.as_secs_f64().max(f64::EPSILON);
    let ttfb = |p| {
        if opts.stream {
            percentile_ms(&tally.ttfb_us, p)
        } else {
            None
        }
    };
    let line = json!({
        "concurrency": opts.concurrency,
        "stream": opts.stream,
        "duration_s": (measured.as_secs_f64() * 1000.0).round() / 1000.0,
        "requests": tally.requests,
        "ok": ok,
        "errors": tally.errors,
        "non_2xx": tally.non_2xx,
        "total_requests": tally.total,
        "rps": (rps * 10.0).round() / 10.0,
        "p50_ms": percentile_ms(&tally.latency_us, 50.0),
        "p99_ms": percentile_ms(&tally.latency_us, 99.0),
        "ttfb_p50_ms": ttfb(50.0),
        "ttfb_p99_ms": ttfb(99.0),
    });
    println!("{line}");
    Ok(())
}

fn main() {
    let opts = match Opts::parse() {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            eprintln!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: tokio runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(run(opts)) {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
