//! A non-blocking log writer: every log line (access-log lines included) goes into a
//! bounded queue that one thread drains to stderr, so a slow or blocked stderr never
//! slows a request. When the queue is full the line is dropped and counted
//! (`switchyard_access_log_dropped_total`). [`LogWriter::flush`] waits (bounded) for the
//! queue to drain, for the last lines before exit.
//!
//! Lines formatted outside `tracing` (the access log, see `record`) are queued with
//! [`write_line`] to the writer [`install`]ed at start-up. [`Throttle`] keeps a
//! warning that can repeat per request (refused connections, spent retry budgets) to
//! one line a second.

use crate::metrics::metrics;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// Lets one log line through a second and counts the ones it held back, for warnings
/// that would otherwise repeat with every request.
#[derive(Debug)]
pub struct Throttle {
    last: Mutex<Option<Instant>>,
    held: AtomicU64,
}

impl Throttle {
    /// A throttle that lets the first line through.
    pub const fn new() -> Self {
        Self {
            last: Mutex::new(None),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when this one may be logged.
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        if let Ok(mut last) = self.last.try_lock() {
            if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                *last = Some(now);
                return Some(self.held.swap(0, Ordering::Relaxed));
            }
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

/// Lines held while stderr is slow (and between batches: at 20,000 requests a second,
/// one interval's lines are 200).
const QUEUE_LINES: usize = 16 * 1024;

/// How long the thread rests after writing a batch: the most a line waits for `write(2)`.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The writer side, handed to the tracing subscriber.
#[derive(Clone)]
pub struct LogWriter {
    queue: SyncSender<Message>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Starts the thread that writes to `out`.
    pub fn spawn(out: impl Write + Send + 'static) -> std::io::Result<Self> {
        let (queue, lines) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("switchyard-log".to_owned())
            .spawn(move || drain(lines, out))?;
        Ok(Self { queue })
    }

    /// Waits up to `timeout` for every queued line to be written.
    pub fn flush(&self, timeout: Duration) {
        let (done, wait) = sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            // Timing out is fine: exit goes on without the lines.
            let _unwritten = wait.recv_timeout(timeout);
        }
    }
}

/// The process's writer, for [`write_line`].
static INSTALLED: OnceLock<LogWriter> = OnceLock::new();

/// Makes `writer` the one [`write_line`] queues to (the first call wins).
pub fn install(writer: LogWriter) {
    let _already = INSTALLED.set(writer);
}

/// Queues one whole line (ending in `\n`) behind the log lines before it. Without an
/// installed writer the line goes straight to stderr.
pub fn write_line(line: Vec<u8>) {
    match INSTALLED.get() {
        Some(writer) => queue(&writer.queue, line),
        None => {
            // Nowhere to report a broken stderr.
            let _lost = std::io::stderr().write_all(&line);
        }
    }
}

/// Queues without waiting; a full queue drops the line and counts it.
fn queue(queue: &SyncSender<Message>, line: Vec<u8>) {
    if let Err(TrySendError::Full(_)) = queue.try_send(Message::Line(line)) {
        metrics().access_log_dropped.inc();
    }
}

/// Writes lines in batches: everything queued by the time the thread wakes goes out in
/// one buffered write, then the thread sleeps for [`BATCH_INTERVAL`] instead of waiting
/// on the queue. While lines keep coming the thread is never parked on the queue, so a
/// request's line costs the request no wake-up (a futex call and a context switch each,
/// the bulk of the access log's cost when the thread waited on every line), and a busy
/// gateway costs one `write(2)` per interval. An idle one parks until the next line.
fn drain(lines: Receiver<Message>, out: impl Write) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                // Nowhere to report a broken stderr; the line is lost either way.
                Message::Line(line) => {
                    let _lost = out.write_all(&line);
                }
                Message::Flush(done) => {
                    let _lost = out.flush();
                    let _gone = done.send(());
                }
            }
            next = lines.try_recv().ok();
        }
        let _lost = out.flush();
        std::thread::sleep(BATCH_INTERVAL);
    }
}

/// One event's line, queued when the subscriber drops it.
#[derive(Debug)]
pub struct LineWriter {
    queue: SyncSender<Message>,
    line: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        queue(&self.queue, std::mem::take(&mut self.line));
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            queue: self.queue.clone(),
            line: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Blocks every write until the gate opens, like a stalled terminal.
    struct Stalled(Arc<Mutex<()>>);

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            drop(self.0.lock().unwrap());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order() {
        let out = Shared::default();
        let writer = LogWriter::spawn(out.clone()).unwrap();
        for i in 0..100 {
            let mut w = writer.make_writer();
            write!(w, "line {i}").unwrap();
            writeln!(w).unwrap();
        }
        writer.flush(Duration::from_secs(5));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[42], "line 42");
    }

    #[test]
    fn a_stalled_output_drops_and_counts_instead_of_blocking() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let writer = LogWriter::spawn(Stalled(gate.clone())).unwrap();
        let before = metrics().access_log_dropped.get();
        // More than the queue and the writer's 64 KiB buffer can hold.
        let line = "x".repeat(99);
        for _ in 0..QUEUE_LINES + 1000 {
            writeln!(writer.make_writer(), "{line}").unwrap();
        }
        // Every write above returned although nothing could be written.
        assert!(metrics().access_log_dropped.get() - before >= 99);
        drop(held);
        writer.flush(Duration::from_secs(5));
    }
}
