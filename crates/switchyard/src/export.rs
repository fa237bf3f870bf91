//! Request-record export (`export:`): each request's [`RequestRecord`] — the access-log
//! fields — batched to a JSONL file (rotated by size) and/or POSTed to HTTP collectors
//! as newline-delimited JSON, in the shapes Elasticsearch `_bulk` and ClickHouse
//! `INSERT … FORMAT JSONEachRow` accept.
//!
//! The request path never waits: [`Exporter::send`] puts the record on each sink's
//! bounded queue with `try_send`; a full queue drops it and counts it. One task per sink
//! takes records off its queue into batches (written when `batch_size` records are in,
//! or `flush_interval` after the first), and writes each batch with up to
//! `max_attempts` attempts, waiting `backoff`, doubling, capped at [`MAX_BACKOFF`],
//! between them. Connect errors, timeouts, 408, 429 and 5xx are retried; other refusals
//! and exhausted attempts drop the batch and count it. While a sink is retrying it takes
//! nothing off its queue, so a slow or dead sink fills its queue and further records are
//! dropped there — memory stays bounded by `queue` + one batch per sink. At shutdown
//! each sink writes what its queue holds, one attempt per batch, within a bound.
//!
//! The exporter is built once per process (it outlives config generations, like
//! metrics); a snapshot holds a handle to it. This module knows nothing of requests or
//! the pipeline beyond the record.

mod encode;
mod file;
mod http;

pub use encode::Encoding;
pub use file::FileSink;

use crate::metrics::metrics;
use crate::record::RequestRecord;
use bytes::Bytes;
use prometheus::IntCounter;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_config::{ConfigError, ConfigErrors, Export, ExportFormat};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};

/// The longest wait between two attempts at one batch.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The file sink's name in metrics.
const FILE_SINK: &str = "file";

type Queue = mpsc::Receiver<Arc<RequestRecord>>;

/// The request path's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Exporter {
    queues: Arc<[(mpsc::Sender<Arc<RequestRecord>>, SinkMetrics)]>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("sinks", &self.queues.len())
            .finish()
    }
}

impl Exporter {
    /// Queues `record` for every sink; a sink whose queue is full drops it and counts it.
    pub fn send(&self, record: RequestRecord) {
        let record = Arc::new(record);
        for (queue, m) in self.queues.iter() {
            match queue.try_send(record.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => m.drop_records(&m.queue_full, 1),
                // The sink has stopped (shutdown): nothing will write it.
                Err(TrySendError::Closed(_)) => m.drop_records(&m.failed, 1),
            }
        }
    }
}

/// The sinks and their queues' far ends, built (files opened, URLs checked) but not yet
/// running: [`Workers::spawn`] starts them on the runtime.
#[derive(Debug)]
pub struct Workers {
    sinks: Vec<(Sink, Queue, SinkMetrics)>,
    policy: Policy,
}

/// Opens the file, checks the collectors, and creates one queue per sink. Problems are
/// reported at their YAML path (`export.file.path`, `export.http[1].url`…).
pub fn build(config: &Export) -> Result<(Exporter, Workers), ConfigErrors> {
    let mut sinks = Vec::new();
    let mut errors = Vec::new();
    if let Some(file) = &config.file {
        match FileSink::open(file) {
            Ok(sink) => sinks.push((FILE_SINK.to_owned(), Sink::File(Arc::new(Mutex::new(sink))))),
            Err(e) => errors.push(ConfigError {
                path: "export.file.path".to_owned(),
                message: format!("cannot open {}: {e}", file.path.display()),
            }),
        }
    }
    for (i, collector) in config.http.iter().enumerate() {
        let encoding = match &collector.format {
            ExportFormat::Elasticsearch { index } => Encoding::bulk(index.as_deref()),
            ExportFormat::ClickHouse => Encoding::Lines,
        };
        match http::HttpSink::new(collector, &format!("export.http[{i}]")) {
            Ok(sink) => sinks.push((collector.name.clone(), Sink::Http(Box::new(sink), encoding))),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let mut queues = Vec::with_capacity(sinks.len());
    let mut workers = Vec::with_capacity(sinks.len());
    for (name, sink) in sinks {
        let (tx, rx) = mpsc::channel(config.queue);
        let m = SinkMetrics::new(&name);
        queues.push((tx, m.clone()));
        workers.push((sink, rx, m));
    }
    let policy = Policy {
        batch_size: config.batch_size,
        flush_interval: config.flush_interval,
        max_attempts: config.max_attempts,
        backoff: config.backoff,
    };
    Ok((
        Exporter {
            queues: queues.into(),
        },
        Workers {
            sinks: workers,
            policy,
        },
    ))
}

impl Workers {
    /// Starts one task per sink on the current runtime.
    pub fn spawn(self) -> Running {
        let (stop, stopped) = watch::channel(false);
        let tasks = self
            .sinks
            .into_iter()
            .map(|(sink, queue, m)| {
                tokio::spawn(run(sink, queue, stopped.clone(), self.policy.clone(), m))
            })
            .collect();
        Running { stop, tasks }
    }
}

/// The running sink tasks.
#[derive(Debug)]
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Tells every sink to write what it holds (one attempt per batch) and waits up to
    /// `within` for them; a sink still busy then is abandoned.
    pub async fn shutdown(self, within: Duration) {
        let _receivers_may_be_gone = self.stop.send(true);
        let deadline = Instant::now() + within;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(?within, "export: the final flush did not finish in time");
                task.abort();
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Policy {
    batch_size: usize,
    flush_interval: Duration,
    max_attempts: u32,
    backoff: Duration,
}

/// Why a write failed, and whether to try the batch again.
#[derive(Debug)]
pub struct SinkError {
    retryable: bool,
    reason: String,
}

impl SinkError {
    fn retry(reason: String) -> Self {
        Self {
            retryable: true,
            reason,
        }
    }

    fn fatal(reason: String) -> Self {
        Self {
            retryable: false,
            reason,
        }
    }
}

#[derive(Debug)]
enum Sink {
    File(Arc<Mutex<FileSink>>),
    Http(Box<http::HttpSink>, Encoding),
}

impl Sink {
    /// Writes one batch; `Ok(rejected)` with the records the collector refused.
    async fn write(&self, batch: &[Arc<RequestRecord>]) -> Result<usize, SinkError> {
        match self {
            Self::File(file) => {
                let mut lines = Vec::with_capacity(batch.len() * 512);
                Encoding::Lines.encode(batch, &mut lines);
                let file = file.clone();
                let written = tokio::task::spawn_blocking(move || match file.lock() {
                    Ok(mut file) => file.write(&lines).map_err(|e| e.to_string()),
                    Err(_poisoned) => Err("file sink lock poisoned".to_owned()),
                })
                .await;
                match written {
                    Ok(Ok(())) => Ok(0),
                    Ok(Err(e)) => Err(SinkError::retry(e)),
                    Err(e) => Err(SinkError::retry(e.to_string())),
                }
            }
            Self::Http(sink, encoding) => {
                let mut body = Vec::with_capacity(batch.len() * 560);
                let records = encoding.encode(batch, &mut body);
                sink.post(Bytes::from(body), records).await
            }
        }
    }
}

/// One sink's loop: batch, write with retries, and at the end write what is left.
async fn run(
    sink: Sink,
    mut queue: Queue,
    mut stop: watch::Receiver<bool>,
    policy: Policy,
    m: SinkMetrics,
) {
    let mut batch = Vec::with_capacity(policy.batch_size);
    let mut stopping = false;
    while !stopping {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            n = queue.recv_many(&mut batch, policy.batch_size) => if n == 0 { break },
        }
        let deadline = Instant::now() + policy.flush_interval;
        while batch.len() < policy.batch_size && !stopping {
            let room = policy.batch_size - batch.len();
            tokio::select! {
                _ = stop.changed() => stopping = true,
                n = queue.recv_many(&mut batch, room) => stopping = n == 0,
                () = sleep_until(deadline) => break,
            }
        }
        deliver(&sink, &batch, &policy, &m, &mut stop, &mut stopping).await;
        batch.clear();
    }
    // Final flush: no more records come in; what the queue holds goes out once.
    queue.close();
    loop {
        if queue.recv_many(&mut batch, policy.batch_size).await == 0 {
            return;
        }
        let mut last = true;
        deliver(&sink, &batch, &policy, &m, &mut stop, &mut last).await;
        batch.clear();
    }
}

/// Writes `batch` with retries and back-off; once `stopping`, one attempt at most.
async fn deliver(
    sink: &Sink,
    batch: &[Arc<RequestRecord>],
    policy: &Policy,
    m: &SinkMetrics,
    stop: &mut watch::Receiver<bool>,
    stopping: &mut bool,
) {
    let mut wait = policy.backoff;
    let mut attempt = 1;
    loop {
        let last = *stopping || attempt >= policy.max_attempts;
        match sink.write(batch).await {
            Ok(rejected) => {
                m.batch_sent.inc();
                m.sent.inc_by((batch.len() - rejected) as u64);
                if rejected > 0 {
                    tracing::warn!(sink = %m.name, rejected, "export: the collector refused records");
                    m.drop_records(&m.rejected, rejected);
                }
                return;
            }
            Err(e) if e.retryable && !last => {
                tracing::warn!(sink = %m.name, attempt, error = %e.reason, retry_in = ?wait, "export: batch not written; retrying");
                m.batch_retried.inc();
            }
            Err(e) => {
                tracing::warn!(sink = %m.name, attempt, error = %e.reason, records = batch.len(), "export: batch dropped");
                m.batch_failed.inc();
                m.drop_records(&m.failed, batch.len());
                return;
            }
        }
        tokio::select! {
            () = sleep(wait) => {}
            _ = stop.changed(), if !*stopping => *stopping = true,
        }
        wait = (wait * 2).min(MAX_BACKOFF);
        attempt += 1;
    }
}

/// One sink's counters, resolved once.
#[derive(Debug, Clone)]
struct SinkMetrics {
    name: Arc<str>,
    sent: IntCounter,
    queue_full: IntCounter,
    failed: IntCounter,
    rejected: IntCounter,
    dropped: IntCounter,
    batch_sent: IntCounter,
    batch_retried: IntCounter,
    batch_failed: IntCounter,
}

impl SinkMetrics {
    fn new(name: &str) -> Self {
        let m = metrics();
        let record = |outcome: &str| m.export_records.with_label_values(&[name, outcome]);
        let batch = |outcome: &str| m.export_batches.with_label_values(&[name, outcome]);
        Self {
            name: Arc::from(name),
            sent: record("sent"),
            queue_full: record("queue_full"),
            failed: record("failed"),
            rejected: record("rejected"),
            dropped: m.export_dropped.with_label_values(&[name]),
            batch_sent: batch("sent"),
            batch_retried: batch("retried"),
            batch_failed: batch("failed"),
        }
    }

    fn drop_records(&self, outcome: &IntCounter, n: usize) {
        outcome.inc_by(n as u64);
        self.dropped.inc_by(n as u64);
    }
}

#[cfg(test)]
mod tests;
