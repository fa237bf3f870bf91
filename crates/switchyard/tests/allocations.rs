//! Allocations per request, counted: a CI guard that fails when a change adds heap
//! allocations to the request path. It counts allocations, not time, so a busy or slow
//! machine does not move it.
//!
//! The gateway runs in this process through its library API (`Gateway::bind`, one
//! worker, metrics on, the access log on and queued to the real log writer, which
//! writes it to a line counter) in front of a mock upstream, and a blocking client sends it
//! chat requests over one keep-alive connection. The mock and the client are plain
//! std threads that allocate nothing per request once set up, so what the counting
//! global allocator sees while the measured requests run is the gateway's: its request
//! path, and whatever its background threads and tasks (log writer, pool reaper,
//! timers) allocate meanwhile.
//!
//! Streams run in lockstep: the mock writes an SSE event only once the client has
//! received the one before, so the gateway reads, relays and writes every event on its
//! own, as it does for a model producing tokens, and the count does not depend on how
//! reads happen to coalesce.
//!
//! A second gateway, whose config has a client key limited to `models`, with a `budget`
//! and a price, measures non-streamed requests that send that key.
//!
//! Then the same client's requests are counted in system calls (`syscalls`): the socket
//! calls of the gateway's worker thread per request, non-streamed and streamed, each
//! against its own budget.
//!
//! `cargo test -p switchyard --test allocations -- --nocapture` prints the figures.
//! The counting allocator is `stats_alloc`'s: the workspace forbids `unsafe`, which a
//! `GlobalAlloc` of our own would need.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness code outside #[test] fns: a broken fixture must fail loudly"
)]

#[path = "allocations/syscalls.rs"]
mod syscalls;

use stats_alloc::{Stats, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use switchyard::log_writer::{self, LogWriter};
use switchyard::Gateway;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Most allocations a non-streamed chat request may make (`alloc`, `alloc_zeroed` and
/// `realloc` count one each), in a debug build as CI runs it.
///
/// Set from `cargo test -p switchyard --test allocations -- --nocapture`: the smallest
/// of [`REPEATS`] runs of [`MEASURED`] requests, rounded up, plus one (the counts are
/// exact to ±0.05: any new allocation per request fails). Measured 2026-12-01: 36.00 at
/// `10033d0` (debug and release alike), 32.00 after the request id and header names
/// stopped allocating, 21.00 after the access record kept the request's own method, URI,
/// time and names, the request id became one shared allocation, and the upstream
/// answer's head stopped building a span list and growing its header map; 18.00 once
/// `Served` came back beside the response instead of in its extensions; 19.00 with the
/// path copied into the record again (a `Uri` shared the connection's read buffer,
/// which a record waiting in the export queue kept alive); so 20.
/// Lowering it after an optimisation is expected (do it in the same commit); raising
/// it needs a reason in the commit message.
const NON_STREAM_BUDGET: f64 = 20.0;

/// Most allocations a streamed chat request ([`STREAM_EVENTS`] events, a usage chunk
/// and `[DONE]`) may make, set and maintained like [`NON_STREAM_BUDGET`]. Measured
/// 2026-12-01: 49.02 at `10033d0` (debug and release alike), none of them per event;
/// 45.02 after the request id and header names, 34.03 after the changes listed under
/// [`NON_STREAM_BUDGET`], so 35.
const STREAM_BUDGET: f64 = 35.0;

/// Most allocations a non-streamed chat request with a client key may make, the key
/// limited to `models`, with a `budget`, and the model priced (`prices:`), so the access
/// check, the budget check and the charge at the end are all on the path. Measured
/// 2026-12-01: 35.00 at `c1e0f7d` with a plain key (before model access and budgets
/// existed), 35.00 with them: those checks allocate nothing; 20.00 after the changes
/// listed under [`NON_STREAM_BUDGET`]. So 21.
const KEYED_BUDGET: f64 = 21.0;

/// Most socket calls (`syscalls::IO_CALLS`) the gateway's worker thread may make per
/// non-streamed request on a kept-alive client connection: read the request, write it
/// upstream on a pooled connection, read the answer, write it to the client. Counted
/// exactly (the calls do not depend on the machine's speed), so one more call per
/// request fails. Measured 2026-12-01: 4.00 (5.00 before the pooled connection's
/// `recv(MSG_PEEK)` was dropped), so 4.5.
const NON_STREAM_IO_BUDGET: f64 = 4.5;

/// Most socket calls per streamed request ([`STREAM_EVENTS`] events in lockstep, each
/// read from the upstream and written to the client on its own, then the usage chunk
/// and `[DONE]`), set like [`NON_STREAM_IO_BUDGET`]. Measured 2026-12-01: 44.00 (22
/// reads, 21 writes to the client, 1 upstream write), so 44.5.
const STREAM_IO_BUDGET: f64 = 44.5;

/// Requests per system-call count.
const COUNTED: usize = 200;

/// The key [`KEYED_BUDGET`]'s requests send, and its limits.
const KEYED: &str = "prices:\n  - {model: 'bench-*', input: 1, output: 2}\n\
                     keys:\n  - {name: bench, key: sk-alloc-key-123, models: ['bench-*'], \
                     budget: {tokens: 1000000000000, usd: 1000000000}}\n";

/// Requests before counting: connections, pools, metric label sets and lazy statics
/// are set up by then.
const WARMUP: usize = 200;

/// Requests per measured run.
const MEASURED: usize = 1000;

/// Measured runs per mode; the smallest count is checked (background work can only
/// add to a run).
const REPEATS: usize = 3;

/// The most the mock waits for the client to receive an event before writing the next.
const LOCKSTEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Buffer size of the mock's and the client's connections.
const BUF_BYTES: usize = 64 * 1024;

const CHAT_BODY: &str =
    r#"{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}]}"#;

const STREAM_BODY: &str =
    r#"{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"stream":true}"#;

const COMPLETION_JSON: &str = concat!(
    r#"{"id":"chatcmpl-alloc0000000000000000000000","object":"chat.completion","#,
    r#""created":1700000000,"model":"bench-model","system_fingerprint":"fp_alloc","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"#,
    r#""Hello! This is a fixed answer from the allocation test's mock upstream.","#,
    r#""refusal":null},"logprobs":null,"finish_reason":"stop"}],"#,
    r#""usage":{"prompt_tokens":12,"completion_tokens":31,"total_tokens":43}}"#,
);

/// `chat.completion.chunk` events in a streamed answer: the role, tokens, and the
/// `finish_reason` (followed by the usage-only chunk and `[DONE]`). As many as the
/// benchmark's (`benches/`), and enough that an allocation added per event cannot hide
/// in the budget's headroom.
const STREAM_EVENTS: usize = 20;

const USAGE_EVENT: &str = concat!(
    r#"data: {"id":"chatcmpl-alloc0000000000000000000000","object":"chat.completion.chunk","#,
    r#""created":1700000000,"model":"bench-model","system_fingerprint":"fp_alloc","#,
    r#""choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
    "\n\n"
);

const DONE_EVENT: &str = "data: [DONE]\n\n";

/// Lines the log writer wrote (access-log lines and any other log line).
static LOG_LINES: AtomicU64 = AtomicU64::new(0);

/// The stream lockstep: SSE events the client has received, in total.
static GATE: Gate = Gate {
    seen: Mutex::new(0),
    changed: Condvar::new(),
    timeouts: AtomicU64::new(0),
};

struct Gate {
    seen: Mutex<u64>,
    changed: Condvar,
    /// Waits that ran out: the gateway held an event back, so the count is off.
    timeouts: AtomicU64,
}

impl Gate {
    fn seen(&self) -> u64 {
        *self.seen.lock().unwrap()
    }

    fn bump(&self) {
        *self.seen.lock().unwrap() += 1;
        self.changed.notify_all();
    }

    fn wait_for(&self, events: u64) {
        let seen = self.seen.lock().unwrap();
        let (_seen, wait) = self
            .changed
            .wait_timeout_while(seen, LOCKSTEP_TIMEOUT, |seen| *seen < events)
            .unwrap();
        if wait.timed_out() {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One streamed event (`data: {…}\n\n`).
fn chunk_event(delta: &str, finish: &str) -> String {
    format!(
        concat!(
            r#"data: {{"id":"chatcmpl-alloc0000000000000000000000","#,
            r#""object":"chat.completion.chunk","created":1700000000,"#,
            r#""model":"bench-model","system_fingerprint":"fp_alloc","#,
            r#""choices":[{{"index":0,"delta":{delta},"logprobs":null,"#,
            r#""finish_reason":{finish}}}]}}"#,
            "\n\n"
        ),
        delta = delta,
        finish = finish,
    )
}

/// The streamed answer's content events, as the mock sends them and the client
/// receives them.
fn content_events() -> Vec<String> {
    (0..STREAM_EVENTS)
        .map(|i| match i {
            0 => chunk_event(r#"{"role":"assistant","content":""}"#, "null"),
            i if i + 1 == STREAM_EVENTS => chunk_event("{}", r#""stop""#),
            i => chunk_event(&format!(r#"{{"content":"tok{i} "}}"#), "null"),
        })
        .collect()
}

/// `len\r\ndata\r\n`
fn http_chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

/// The mock's answers, built once.
struct Canned {
    completion: Vec<u8>,
    not_found: Vec<u8>,
    /// What the mock writes for a stream, one write each; the writes after the first
    /// wait for the client to have received one more event.
    stream: Vec<Vec<u8>>,
}

impl Canned {
    fn new() -> Self {
        let completion = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{COMPLETION_JSON}",
            COMPLETION_JSON.len()
        );
        let not_found = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
        let events = content_events();
        let mut stream: Vec<Vec<u8>> = events.iter().map(|e| http_chunk(e).into_bytes()).collect();
        stream[0].splice(0..0, head.bytes());
        let last = format!(
            "{}{}0\r\n\r\n",
            http_chunk(USAGE_EVENT),
            http_chunk(DONE_EVENT)
        );
        stream.push(last.into_bytes());
        Self {
            completion: completion.into_bytes(),
            not_found: not_found.as_bytes().to_vec(),
            stream,
        }
    }
}

/// What the client must receive for a stream: the content events and `[DONE]` (the
/// gateway asked for the usage chunk on the client's behalf, so it leaves it out).
fn expected_stream_body() -> Vec<u8> {
    let mut body = content_events().concat().into_bytes();
    body.extend_from_slice(DONE_EVENT.as_bytes());
    body
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A header's value in a request or response head (names case-insensitive).
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| line[colon + 1..].trim_ascii())
    })
}

fn parse_decimal(digits: &[u8]) -> usize {
    assert!(!digits.is_empty() && digits.iter().all(u8::is_ascii_digit));
    digits.iter().fold(0, |n, d| n * 10 + usize::from(d - b'0'))
}

/// A mock OpenAI upstream: a blocking listener, a thread per connection, requests read
/// into a fixed buffer and answered with canned bytes.
fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let canned = Arc::new(Canned::new());
    std::thread::Builder::new()
        .name("mock-upstream".to_owned())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let canned = canned.clone();
                std::thread::spawn(move || serve_upstream(conn, &canned));
            }
        })
        .unwrap();
    addr
}

fn serve_upstream(mut conn: TcpStream, canned: &Canned) {
    conn.set_nodelay(true).unwrap();
    let mut buf = vec![0_u8; BUF_BYTES];
    let mut filled = 0;
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf[..filled], b"\r\n\r\n") {
                break i + 4;
            }
            assert!(filled < buf.len(), "request head over {BUF_BYTES} bytes");
            match conn.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            }
        };
        let head = &buf[..head_end];
        assert!(
            header(head, b"transfer-encoding").is_none(),
            "the mock reads Content-Length bodies only"
        );
        let end = head_end + header(head, b"content-length").map_or(0, parse_decimal);
        assert!(end <= buf.len(), "request over {BUF_BYTES} bytes");
        let chat = head.starts_with(b"POST /v1/chat/completions ");
        while filled < end {
            match conn.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            }
        }
        let stream = find(&buf[head_end..end], br#""stream":true"#).is_some();
        let written = match (chat, stream) {
            (false, _) => conn.write_all(&canned.not_found),
            (true, false) => conn.write_all(&canned.completion),
            (true, true) => {
                // Every earlier event reached the client before this request was sent.
                let base = GATE.seen();
                canned.stream.iter().enumerate().try_for_each(|(i, piece)| {
                    if i > 0 {
                        GATE.wait_for(base + i as u64);
                    }
                    conn.write_all(piece)
                })
            }
        };
        if written.is_err() {
            return;
        }
        buf.copy_within(end..filled, 0);
        filled -= end;
    }
}

/// Checks a response body byte by byte against what it must be, counting SSE events.
struct BodyCheck<'a> {
    expected: &'a [u8],
    at: usize,
    newline: bool,
    /// Tell the mock about every event (streams).
    lockstep: bool,
}

impl BodyCheck<'_> {
    fn push(&mut self, b: u8) {
        let want = self.expected.get(self.at).copied();
        assert!(
            want == Some(b),
            "response body differs at byte {}: got {:?}, want {:?}; expected body: {}",
            self.at,
            char::from(b),
            want.map(char::from),
            String::from_utf8_lossy(self.expected)
        );
        self.at += 1;
        let event_end = b == b'\n' && self.newline;
        self.newline = b == b'\n';
        if event_end && self.lockstep {
            GATE.bump();
        }
    }

    fn finish(&self) {
        assert_eq!(self.at, self.expected.len(), "response body cut short");
    }
}

/// A blocking HTTP/1.1 client on one keep-alive connection that reads into fixed
/// buffers.
struct Client {
    conn: TcpStream,
    buf: Vec<u8>,
    at: usize,
    filled: usize,
    head: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let conn = TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Self {
            conn,
            buf: vec![0; BUF_BYTES],
            at: 0,
            filled: 0,
            head: Vec::with_capacity(4096),
        }
    }

    fn byte(&mut self) -> u8 {
        if self.at == self.filled {
            let n = self.conn.read(&mut self.buf).unwrap();
            assert!(n > 0, "the gateway closed the connection");
            self.at = 0;
            self.filled = n;
        }
        self.at += 1;
        self.buf[self.at - 1]
    }

    /// Sends one request and reads its whole answer, which must be a 200 with `body`.
    fn exchange(&mut self, request: &[u8], body: &[u8], stream: bool) {
        self.conn.write_all(request).unwrap();
        self.head.clear();
        while !self.head.ends_with(b"\r\n\r\n") {
            assert!(
                self.head.len() < self.head.capacity(),
                "response head too long"
            );
            let b = self.byte();
            self.head.push(b);
        }
        assert!(
            self.head.starts_with(b"HTTP/1.1 200 "),
            "{}",
            String::from_utf8_lossy(&self.head)
        );
        let chunked = header(&self.head, b"transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
        let length = header(&self.head, b"content-length").map(parse_decimal);
        let mut check = BodyCheck {
            expected: body,
            at: 0,
            newline: false,
            lockstep: stream,
        };
        match (chunked, length) {
            (true, _) => self.read_chunked(&mut check),
            (false, Some(length)) => {
                for _ in 0..length {
                    let b = self.byte();
                    check.push(b);
                }
            }
            (false, None) => unreachable!("a keep-alive answer without framing"),
        }
        check.finish();
        assert_eq!(self.at, self.filled, "bytes after the response");
        assert_eq!(
            GATE.timeouts.load(Ordering::Relaxed),
            0,
            "the stream lockstep broke: the mock waited {LOCKSTEP_TIMEOUT:?} for the client to \
             receive an event the gateway held back, so events no longer go one by one"
        );
    }

    fn read_chunked(&mut self, check: &mut BodyCheck<'_>) {
        loop {
            let mut size = 0_usize;
            let mut digits = true;
            loop {
                match self.byte() {
                    b'\r' => break,
                    b';' => digits = false,
                    b if digits => {
                        let digit = char::from(b).to_digit(16).expect("chunk size in hex");
                        size = size * 16 + digit as usize;
                    }
                    _ => {}
                }
            }
            assert_eq!(self.byte(), b'\n');
            if size == 0 {
                // No trailers: the blank line ends the body.
                assert_eq!((self.byte(), self.byte()), (b'\r', b'\n'));
                return;
            }
            for _ in 0..size {
                let b = self.byte();
                check.push(b);
            }
            assert_eq!((self.byte(), self.byte()), (b'\r', b'\n'));
        }
    }
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// [`post`] with the [`KEYED`] config's key.
fn post_with_key(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer sk-alloc-key-123\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Counts the lines the log writer writes.
struct CountLines;

impl Write for CountLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let lines = buf.iter().filter(|&&b| b == b'\n').count();
        LOG_LINES.fetch_add(lines as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logging as `switchyard serve` sets it up (`cli::init_logging`, `RUST_LOG` unset:
/// `info`, so access lines are formatted and queued), writing to a line counter
/// instead of stderr.
fn init_logging() -> LogWriter {
    let writer = LogWriter::spawn(CountLines).unwrap();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(writer.clone())
        .try_init()
        .unwrap();
    log_writer::install(writer.clone());
    writer
}

/// The gateway, serving on its own runtime thread until told to stop.
struct Running {
    addr: SocketAddr,
    metrics: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// `extra` is appended to the config (keys…).
fn start_gateway(upstream: SocketAddr, extra: &str) -> Running {
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  workers: 1\n  log_format: text\n\
         metrics:\n  listen: 127.0.0.1:0\n\
         upstreams:\n  - name: mock\n    base_url: http://{upstream}/v1\n    \
         auth: {{type: none}}\n    models: [bench-model]\n{extra}"
    );
    let config = switchyard_config::parse(&yaml, &|_| None).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("switchyard-worker")
        .enable_all()
        .build()
        .unwrap();
    let gateway = {
        let _entered = runtime.enter();
        Gateway::bind(config, Some(SocketAddr::from(([127, 0, 0, 1], 0)))).unwrap()
    };
    assert_eq!(gateway.workers(), 1);
    let addr = gateway.local_addr().unwrap();
    let metrics = gateway.metrics_addr().expect("metrics are on");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("gateway".to_owned())
        .spawn(move || {
            let shutdown = async {
                let _stopped = stopped.await;
            };
            runtime.block_on(gateway.run(shutdown)).unwrap();
        })
        .unwrap();
    Running {
        addr,
        metrics,
        stop,
        thread,
    }
}

/// One measured run, per request.
#[derive(Debug, Clone, Copy)]
struct PerRequest {
    /// `alloc`, `alloc_zeroed` and `realloc` calls.
    allocs: f64,
    /// Of those, `realloc` calls.
    reallocs: f64,
    /// Bytes asked for: allocation sizes plus what reallocations grew by.
    bytes: f64,
    /// `dealloc` calls.
    frees: f64,
}

impl PerRequest {
    fn of(stats: Stats, requests: usize) -> Self {
        let n = requests as f64;
        Self {
            allocs: (stats.allocations + stats.reallocations) as f64 / n,
            reallocs: stats.reallocations as f64 / n,
            bytes: stats.bytes_allocated as f64 / n,
            frees: stats.deallocations as f64 / n,
        }
    }
}

/// Warms up, then runs [`REPEATS`] measured runs of [`MEASURED`] requests.
fn measure(client: &mut Client, request: &[u8], body: &[u8], stream: bool) -> Vec<PerRequest> {
    let started = tokio::time::Instant::now();
    for _ in 0..WARMUP {
        client.exchange(request, body, stream);
    }
    let runs = (0..REPEATS)
        .map(|_| {
            let before = GLOBAL.stats();
            for _ in 0..MEASURED {
                client.exchange(request, body, stream);
            }
            PerRequest::of(GLOBAL.stats() - before, MEASURED)
        })
        .collect();
    let requests = WARMUP + REPEATS * MEASURED;
    eprintln!(
        "{requests} {} requests in {:.1?}",
        if stream { "streamed" } else { "non-streamed" },
        started.elapsed()
    );
    runs
}

/// [`COUNTED`] requests with the system calls of `workers` counted; prints them per
/// request and returns the socket calls per request.
fn count_syscalls(
    client: &mut Client,
    request: &[u8],
    body: &[u8],
    stream: bool,
    workers: &[u32],
    budget: f64,
) -> f64 {
    let mut counter = syscalls::Counter::attach(workers);
    counter.enable();
    for _ in 0..COUNTED {
        client.exchange(request, body, stream);
    }
    let counts = counter.finish();
    let per = |call: &str| counts.get(call).copied().unwrap_or(0) as f64 / COUNTED as f64;
    let io: f64 = syscalls::IO_CALLS.iter().map(|c| per(c)).sum();
    let shown = |calls: &[&str]| {
        calls
            .iter()
            .filter(|c| counts.get(**c).is_some_and(|n| *n > 0))
            .map(|c| format!("{c} {:.2}", per(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "system calls per request, {} ({COUNTED} requests, worker threads {workers:?}): \
         socket calls {io:.2} ({}); scheduling {}; budget {budget}",
        if stream { "stream" } else { "non-stream" },
        shown(syscalls::IO_CALLS),
        shown(syscalls::SCHEDULING_CALLS),
    );
    io
}

/// Prints a mode's runs; returns the smallest allocation count.
fn report(mode: &str, runs: &[PerRequest], budget: f64) -> f64 {
    let least = runs.iter().map(|r| r.allocs).fold(f64::INFINITY, f64::min);
    let most = runs.iter().map(|r| r.allocs).fold(0.0, f64::max);
    let best = runs
        .iter()
        .find(|r| r.allocs == least)
        .copied()
        .unwrap_or(runs[0]);
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "allocations per request, {mode} ({build} build, {REPEATS} runs of {MEASURED}): \
         {least:.2} (runs {}; spread {:.3}), of which reallocs {:.2}; {:.0} bytes; \
         frees {:.2}; budget {budget}",
        runs.iter()
            .map(|r| format!("{:.3}", r.allocs))
            .collect::<Vec<_>>()
            .join(", "),
        most - least,
        best.reallocs,
        best.bytes,
        best.frees,
    );
    if least * 1.2 < budget {
        eprintln!("  more than 20 % under its budget: lower the budget");
    }
    least
}

/// One `GET /metrics` on its own connection.
fn scrape(metrics: SocketAddr) -> String {
    let mut conn = TcpStream::connect(metrics).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn request_path_allocations_stay_within_budget() {
    let writer = init_logging();
    let upstream = start_upstream();
    let gateway = start_gateway(upstream, "");
    let mut client = Client::connect(gateway.addr);

    let chat = post(CHAT_BODY);
    let non_stream = measure(&mut client, &chat, COMPLETION_JSON.as_bytes(), false);
    let streamed = post(STREAM_BODY);
    let stream = measure(&mut client, &streamed, &expected_stream_body(), true);

    let non_stream = report("non-stream", &non_stream, NON_STREAM_BUDGET);
    let stream = report(
        &format!("stream ({STREAM_EVENTS} events, usage chunk, [DONE])"),
        &stream,
        STREAM_BUDGET,
    );

    // The same requests in system calls, on the gateway's worker thread (the runtime's
    // threads are named `switchyard-worker`, 15 bytes of it kept).
    let workers = syscalls::threads_named("switchyard-work");
    let non_stream_io = count_syscalls(
        &mut client,
        &chat,
        COMPLETION_JSON.as_bytes(),
        false,
        &workers,
        NON_STREAM_IO_BUDGET,
    );
    let stream_io = count_syscalls(
        &mut client,
        &streamed,
        &expected_stream_body(),
        true,
        &workers,
        STREAM_IO_BUDGET,
    );

    // Everything counted went through the production path: every request was counted
    // in the metrics and wrote its access line.
    let requests = 2 * (WARMUP + REPEATS * MEASURED + COUNTED);
    let metrics = scrape(gateway.metrics);
    let line = format!(
        "switchyard_requests_total{{endpoint=\"chat\",model=\"bench-model\",status_class=\"2xx\"}} {requests}"
    );
    assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    drop(client);
    writer.flush(Duration::from_secs(5));
    let lines = LOG_LINES.load(Ordering::Relaxed);
    assert!(
        lines >= requests as u64,
        "{lines} log lines for {requests} requests"
    );

    // A second gateway, with a client key that has models, a budget and a price. The
    // first keeps running (idle): a stopped gateway leaves the process draining.
    let keyed_gateway = start_gateway(upstream, KEYED);
    let mut client = Client::connect(keyed_gateway.addr);
    let keyed = measure(
        &mut client,
        &post_with_key(CHAT_BODY),
        COMPLETION_JSON.as_bytes(),
        false,
    );
    let keyed = report(
        "non-stream, key with models, budget and price",
        &keyed,
        KEYED_BUDGET,
    );
    drop(client);
    for running in [keyed_gateway, gateway] {
        running.stop.send(()).unwrap();
        running.thread.join().unwrap();
    }

    assert!(
        non_stream <= NON_STREAM_BUDGET,
        "a non-streamed request makes {non_stream:.2} allocations, over the budget of \
         {NON_STREAM_BUDGET}: find what allocates (a heap profiler such as dhat shows where) \
         or, if it is worth its cost, raise NON_STREAM_BUDGET and say why in the commit message"
    );
    assert!(
        stream <= STREAM_BUDGET,
        "a streamed request makes {stream:.2} allocations, over the budget of {STREAM_BUDGET}: \
         find what allocates (a heap profiler such as dhat shows where) or, if it is worth its \
         cost, raise STREAM_BUDGET and say why in the commit message"
    );
    // At least the request's read and the answer's write: perf counted this thread.
    for (mode, io, budget) in [
        ("non-streamed", non_stream_io, NON_STREAM_IO_BUDGET),
        ("streamed", stream_io, STREAM_IO_BUDGET),
    ] {
        assert!(
            io >= 2.0,
            "{io:.2} socket calls per {mode} request: not counted"
        );
        assert!(
            io <= budget,
            "a {mode} request makes {io:.2} socket calls on the gateway's worker, over the \
             budget of {budget}: find the new read or write (`perf trace -t TID` shows them) \
             or, if it is worth its cost, raise the budget and say why in the commit message"
        );
    }
    assert!(
        keyed <= KEYED_BUDGET,
        "a non-streamed request with a client key makes {keyed:.2} allocations, over the \
         budget of {KEYED_BUDGET}: find what allocates (a heap profiler such as dhat shows \
         where) or, if it is worth its cost, raise KEYED_BUDGET and say why in the commit \
         message"
    );
}
