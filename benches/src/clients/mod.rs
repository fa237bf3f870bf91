//! The upstream-client comparison: Switchyard's own HTTP/1.1 client against hyper's
//! `client::conn::http1`, in one process, against the same mockup, sending the
//! chat-completions POST the gateway sends. Owns the request bodies, the timing
//! windows and the per-run tally, and the process CPU per request; the clients are
//! in `gateway` (the only switchyard user) and `hyper_conn`, the medians and the
//! Markdown in `summary`.

pub mod gateway;
pub mod hyper_conn;
pub mod summary;

use crate::cpu::process_cpu;
use bytes::Bytes;
use gateway::GatewayClient;
use http::Uri;
use hyper_conn::{Driver, HyperConn};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The connect timeout passed to the clients (the gateway's default order).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a transport error so a dead target does not become a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(1);

/// A chat-completions request as a client sends it through the gateway (~300 bytes).
pub const CHAT_BODY: &str = concat!(
    r#"{"model":"bench-model","messages":[{"role":"system","content":"You are a "#,
    r#"concise assistant. Answer in one short sentence and do not add any "#,
    r#"preamble."},{"role":"user","content":"Say hello to the benchmark, and "#,
    r#"mention that this request is about three hundred bytes long."}],"#,
    r#""max_tokens":32,"temperature":0.2,"user":"bench-user-0001""#,
);

/// The request body for `stream` (the same request, with `"stream":true`).
pub fn chat_body(stream: bool) -> Bytes {
    let tail = if stream { r#","stream":true}"# } else { "}" };
    Bytes::from(format!("{CHAT_BODY}{tail}"))
}

/// Which client a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientKind {
    /// Switchyard's `H1Client`, as the gateway uses it.
    Switchyard,
    /// hyper `conn::http1`, connection polled in the worker's task.
    HyperInTask,
    /// hyper `conn::http1`, connection spawned as its own task.
    HyperSpawned,
}

impl ClientKind {
    /// All clients, in table order.
    pub const ALL: [Self; 3] = [Self::Switchyard, Self::HyperInTask, Self::HyperSpawned];
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Switchyard => "switchyard H1Client",
            Self::HyperInTask => "hyper conn::http1, in task",
            Self::HyperSpawned => "hyper conn::http1, spawned",
        })
    }
}

/// How one request went.
#[derive(Debug, Clone, Copy)]
pub enum Exchange {
    /// 2xx, whole body read: latency and body bytes.
    Ok(Duration, usize),
    /// Not 2xx (body read).
    Non2xx,
    /// A transport or protocol error.
    Error,
}

impl Exchange {
    /// The outcome of a request that got `status` and `bytes` of body, begun at `t0`.
    pub fn done(status: u16, bytes: usize, t0: Instant) -> Self {
        if (200..300).contains(&status) {
            Self::Ok(t0.elapsed(), bytes)
        } else {
            Self::Non2xx
        }
    }
}

/// When a run records and when it stops.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

/// What one worker saw.
#[derive(Debug, Default)]
struct Tally {
    /// All requests, warm-up included (the CPU covers them all).
    total: u64,
    errors: u64,
    non_2xx: u64,
    body_bytes: u64,
    /// Latencies of the recorded 2xx requests, µs.
    latency_us: Vec<u32>,
}

impl Tally {
    fn record(&mut self, t0: Instant, w: Window, outcome: Exchange) {
        self.total += 1;
        let recorded = t0 >= w.measure_from;
        match outcome {
            Exchange::Ok(latency, bytes) if recorded => {
                self.latency_us
                    .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                self.body_bytes += bytes as u64;
            }
            Exchange::Ok(..) => {}
            Exchange::Non2xx => self.non_2xx += 1,
            Exchange::Error => self.errors += 1,
        }
    }

    fn merge(&mut self, other: Self) {
        self.total += other.total;
        self.errors += other.errors;
        self.non_2xx += other.non_2xx;
        self.body_bytes += other.body_bytes;
        self.latency_us.extend(other.latency_us);
    }
}

/// One run: a client, a mode, a concurrency.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The client.
    pub client: ClientKind,
    /// Streaming request or not.
    pub stream: bool,
    /// Concurrent workers.
    pub conc: u32,
    /// Unrecorded time first.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
}

/// Runs `plan` against `url` and measures it; `round` is carried into the sample.
///
/// # Errors
/// When a client cannot be built or the CPU clock cannot be read.
pub async fn measure(url: &Uri, plan: Plan, round: u32) -> Result<summary::Sample, String> {
    let body = chat_body(plan.stream);
    let cpu_before = process_cpu()?;
    let start = Instant::now();
    let w = Window {
        measure_from: start + plan.warmup,
        end: start + plan.warmup + plan.duration,
    };
    let mut tasks = Vec::new();
    let gateway = match plan.client {
        ClientKind::Switchyard => Some(Arc::new(GatewayClient::new(url, plan.stream)?)),
        _ => None,
    };
    for _ in 0..plan.conc {
        let body = body.clone();
        let url = url.clone();
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            match (plan.client, gateway) {
                (ClientKind::Switchyard, Some(gw)) => Ok(switchyard_worker(&gw, &body, w).await),
                (ClientKind::HyperInTask, _) => {
                    hyper_worker(&url, plan.stream, Driver::InTask, body, w).await
                }
                _ => hyper_worker(&url, plan.stream, Driver::Spawned, body, w).await,
            }
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await.map_err(|e| format!("worker: {e}"))??);
    }
    let measured = Instant::now().saturating_duration_since(w.measure_from);
    let cpu = process_cpu()?.saturating_sub(cpu_before);
    Ok(summary::Sample::new(
        plan,
        round,
        &mut tally.latency_us,
        summary::Totals {
            measured,
            cpu,
            total: tally.total,
            errors: tally.errors,
            non_2xx: tally.non_2xx,
            body_bytes: tally.body_bytes,
        },
    ))
}

async fn switchyard_worker(gw: &GatewayClient, body: &Bytes, w: Window) -> Tally {
    let mut t = Tally::default();
    loop {
        let t0 = Instant::now();
        if t0 >= w.end {
            return t;
        }
        let outcome = gw.exchange(body).await;
        t.record(t0, w, outcome);
        if matches!(outcome, Exchange::Error) {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
}

async fn hyper_worker(
    url: &Uri,
    stream: bool,
    driver: Driver,
    body: Bytes,
    w: Window,
) -> Result<Tally, String> {
    HyperConn::with(url, stream, driver, |mut conn| async move {
        let mut t = Tally::default();
        loop {
            let t0 = Instant::now();
            if t0 >= w.end {
                return t;
            }
            let outcome = conn.exchange(&body).await;
            t.record(t0, w, outcome);
            if matches!(outcome, Exchange::Error) {
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    })
    .await
}
