//! Shared limit checks per second, without the HTTP around them: N tasks each run the
//! gateway's own Redis GCRA check (`switchyard::state::Shared::gcra`, the call the
//! `rate_limiter` makes with `state.backend: redis`) back to back for a while, over the
//! store's pool of multiplexed connections; prints checks/s and the latency of one check.
//! The end-to-end cost (a request with the limiter, memory against Redis) is
//! `benches/state.sh`.
//!
//!   statebench --url redis://127.0.0.1:6379/0 [--concurrency 64] [--duration 5]
//!              [--keys 1000] [--pool 2] [--threads 1]

use std::sync::Arc;
use std::time::Duration;
use switchyard::state::Shared;
use switchyard_benches::{percentile_ms, Args};
use switchyard_config::{OnUnavailable, RedisState, Secret};
use tokio::time::Instant;

const USAGE: &str = "usage: statebench --url redis://HOST:PORT/DB [--concurrency N] [--duration SECS] [--keys N] [--pool N] [--threads N]";

#[expect(
    clippy::print_stdout,
    reason = "the result line is this binary's output"
)]
fn main() -> Result<(), String> {
    let mut args = Args::from_env();
    if args.wants_help() {
        println!("{USAGE}");
        return Ok(());
    }
    let url = args.value("--url")?.ok_or("--url is required")?;
    let concurrency: usize = args.parse_or("--concurrency", 64)?;
    let duration: f64 = args.parse_or("--duration", 5.0)?;
    let keys: usize = args.parse_or("--keys", 1000)?;
    let pool: u32 = args.parse_or("--pool", 2)?;
    let threads: usize = args.parse_or("--threads", 1)?;
    args.finish()?;
    let config = RedisState {
        url: Secret::new(url),
        username: None,
        password: None,
        ca_file: None,
        prefix: "statebench:".to_owned(),
        pool_size: pool,
        command_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        on_unavailable: OnUnavailable::Local,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let shared = Shared::for_config(&config);
        // One check first: connects, loads the script.
        shared
            .gcra("statebench:warm", Duration::from_micros(1), 1_000_000)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        let end = Instant::now() + Duration::from_secs_f64(duration);
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let shared: Arc<Shared> = shared.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat_us: Vec<u32> = Vec::new();
                let mut errors = 0u64;
                let mut i = t;
                while Instant::now() < end {
                    let key = format!("statebench:rl:{}", i % keys.max(1));
                    i += concurrency;
                    let started = Instant::now();
                    // A limit that never refuses: every check is a full script run.
                    match shared.gcra(&key, Duration::from_micros(1), 1_000_000).await {
                        Ok(_) => lat_us
                            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)),
                        Err(_) => errors += 1,
                    }
                }
                (lat_us, errors)
            }));
        }
        let started = Instant::now();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.map_err(|e| e.to_string())?;
            all.extend(lat);
            errors += e;
        }
        let secs = started.elapsed().as_secs_f64();
        all.sort_unstable();
        println!(
            "{}",
            serde_json::json!({
                "concurrency": concurrency,
                "pool": pool,
                "keys": keys,
                "checks": all.len(),
                "errors": errors,
                "checks_per_s": (all.len() as f64 / secs).round(),
                "p50_ms": percentile_ms(&all, 0.50),
                "p99_ms": percentile_ms(&all, 0.99),
            })
        );
        Ok(())
    })
}
