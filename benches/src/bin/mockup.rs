//! `mockup`: a fast mock OpenAI upstream for load tests.
//!
//! Owns the canned responses and the hyper 1 HTTP/1.1 server that serves them:
//! `POST /v1/chat/completions` answers a fixed `chat.completion` (or, when the
//! request body says `"stream":true`, 20 `chat.completion.chunk` SSE events plus
//! `[DONE]`, one body frame each, with no delay), `GET /v1/models` lists
//! `bench-model`, `POST /plugin?ms=N` plays a slow external plugin service (waits N
//! milliseconds, then answers `{"action":"continue"}`), and everything else is 404.
//! It does as little work as it can so that a benchmark measures whatever sits in
//! front of it.
//!
//! ```text
//! mockup --listen 127.0.0.1:0 [--threads 1]
//! ```
//! The first stdout line is `listening on ADDR`.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchyard_benches::Args;
use tokio::net::TcpListener;

const USAGE: &str = "usage: mockup --listen HOST:PORT [--threads N]

  --listen HOST:PORT  address to bind (port 0 picks a free one); default 127.0.0.1:0
  --threads N         tokio worker threads; default 1 (leave the cores to the gateway)

Serves POST /v1/chat/completions (JSON or 20-chunk SSE), GET /v1/models and
POST /plugin?ms=N (waits N ms, answers {\"action\":\"continue\"}).
Prints `listening on ADDR` as its first stdout line.";

/// How many `chat.completion.chunk` events a streamed answer has.
const STREAM_CHUNKS: usize = 20;

const COMPLETION_JSON: &str = concat!(
    r#"{"id":"chatcmpl-bench0000000000000000000000","object":"chat.completion","#,
    r#""created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"#,
    r#""Hello! This is a fixed answer from the benchmark mock upstream.","#,
    r#""refusal":null},"logprobs":null,"finish_reason":"stop"}],"#,
    r#""usage":{"prompt_tokens":12,"completion_tokens":31,"total_tokens":43}}"#,
);

const MODELS_JSON: &str = r#"{"object":"list","data":[{"id":"bench-model","object":"model","created":0,"owned_by":"bench"}]}"#;

const PLUGIN_CONTINUE_JSON: &str = r#"{"action":"continue"}"#;

/// Longest wait `POST /plugin?ms=N` accepts (a minute).
const MAX_PLUGIN_WAIT_MS: u64 = 60_000;

const NOT_FOUND_JSON: &str =
    r#"{"error":{"message":"not found","type":"invalid_request_error","code":"not_found"}}"#;

/// The canned bodies, built once and shared by every connection.
struct Payloads {
    completion: Bytes,
    models: Bytes,
    not_found: Bytes,
    /// One `data: …\n\n` event per entry, `[DONE]` last.
    sse: Arc<[Bytes]>,
}

impl Payloads {
    fn new() -> Self {
        let mut sse = Vec::with_capacity(STREAM_CHUNKS + 1);
        for i in 0..STREAM_CHUNKS {
            let delta = if i == 0 {
                r#"{"role":"assistant","content":""}"#.to_owned()
            } else if i + 1 == STREAM_CHUNKS {
                "{}".to_owned()
            } else {
                format!(r#"{{"content":"tok{i} "}}"#)
            };
            let finish = if i + 1 == STREAM_CHUNKS {
                r#""stop""#
            } else {
                "null"
            };
            sse.push(Bytes::from(format!(
                concat!(
                    r#"data: {{"id":"chatcmpl-bench0000000000000000000000","#,
                    r#""object":"chat.completion.chunk","created":1700000000,"#,
                    r#""model":"bench-model","system_fingerprint":"fp_bench","#,
                    r#""choices":[{{"index":0,"delta":{delta},"logprobs":null,"#,
                    r#""finish_reason":{finish}}}]}}"#,
                    "\n\n"
                ),
                delta = delta,
                finish = finish,
            )));
        }
        sse.push(Bytes::from_static(b"data: [DONE]\n\n"));
        Self {
            completion: Bytes::from_static(COMPLETION_JSON.as_bytes()),
            models: Bytes::from_static(MODELS_JSON.as_bytes()),
            not_found: Bytes::from_static(NOT_FOUND_JSON.as_bytes()),
            sse: sse.into(),
        }
    }
}

/// A response body: either one buffer or the SSE events, one frame each.
enum MockBody {
    Full(Option<Bytes>),
    Sse { events: Arc<[Bytes]>, next: usize },
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            Self::Full(buf) => buf.take(),
            Self::Sse { events, next } => {
                let ev = events.get(*next).cloned();
                *next += 1;
                ev
            }
        };
        Poll::Ready(frame.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(buf) => buf.is_none(),
            Self::Sse { events, next } => *next >= events.len(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(buf) => SizeHint::with_exact(buf.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Sse { .. } => SizeHint::default(),
        }
    }
}

/// Whether a chat request asks for streaming: a byte search, no JSON parse.
fn wants_stream(body: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 2] = [b"\"stream\":true", b"\"stream\": true"];
    NEEDLES
        .iter()
        .any(|n| body.windows(n.len()).any(|w| w == *n))
}

/// The `ms` query parameter of `POST /plugin`: 0 when absent, `None` when not a
/// number of milliseconds up to [`MAX_PLUGIN_WAIT_MS`].
fn plugin_wait_ms(query: Option<&str>) -> Option<u64> {
    let mut ms = 0;
    for pair in query.unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("ms=") {
            ms = v.parse().ok().filter(|ms| *ms <= MAX_PLUGIN_WAIT_MS)?;
        }
    }
    Some(ms)
}

fn full(status: StatusCode, body: Bytes) -> Response<MockBody> {
    let len = body.len();
    let mut resp = Response::new(MockBody::Full(Some(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

async fn handle(
    req: Request<Incoming>,
    payloads: Arc<Payloads>,
) -> Result<Response<MockBody>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => {
            let body = match req.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_read_error) => {
                    return Ok(full(
                        StatusCode::BAD_REQUEST,
                        Bytes::from_static(b"{\"error\":{\"message\":\"bad body\"}}"),
                    ))
                }
            };
            if wants_stream(&body) {
                let mut resp = Response::new(MockBody::Sse {
                    events: Arc::clone(&payloads.sse),
                    next: 0,
                });
                let h = resp.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                resp
            } else {
                full(StatusCode::OK, payloads.completion.clone())
            }
        }
        (&Method::GET, "/v1/models") => full(StatusCode::OK, payloads.models.clone()),
        (&Method::POST, "/plugin") => {
            let Some(ms) = plugin_wait_ms(req.uri().query()) else {
                return Ok(full(
                    StatusCode::BAD_REQUEST,
                    Bytes::from_static(b"{\"error\":{\"message\":\"bad ms\"}}"),
                ));
            };
            // Read the whole envelope, as a real plugin service would, then wait.
            if req.into_body().collect().await.is_err() {
                return Ok(full(
                    StatusCode::BAD_REQUEST,
                    Bytes::from_static(b"{\"error\":{\"message\":\"bad body\"}}"),
                ));
            }
            if ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            full(
                StatusCode::OK,
                Bytes::from_static(PLUGIN_CONTINUE_JSON.as_bytes()),
            )
        }
        _ => full(StatusCode::NOT_FOUND, payloads.not_found.clone()),
    };
    Ok(resp)
}

#[expect(
    clippy::print_stdout,
    reason = "the bound address is this binary's output"
)]
async fn serve(listen: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("bind {listen}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    println!("listening on {local}");
    std::io::stdout()
        .flush()
        .map_err(|e| format!("stdout: {e}"))?;

    let payloads = Arc::new(Payloads::new());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true);
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends: back off a little instead of spinning.
                eprintln!("mockup: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("mockup: set_nodelay: {e}");
        }
        let payloads = Arc::clone(&payloads);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req| handle(req, Arc::clone(&payloads))),
        );
        tokio::spawn(async move {
            // A client hanging up mid-response is normal under load; nothing to report.
            if let Err(e) = conn.await {
                if !e.is_incomplete_message() && !e.is_canceled() {
                    eprintln!("mockup: connection: {e}");
                }
            }
        });
    }
}

fn run() -> Result<(), String> {
    let mut args = Args::from_env();
    if args.wants_help() {
        eprintln!("{USAGE}");
        return Ok(());
    }
    let listen: SocketAddr = args.parse_or("--listen", SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let threads: usize = args.parse_or("--threads", 1)?;
    args.finish()?;
    if threads == 0 {
        return Err("--threads must be at least 1".to_owned());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(serve(listen))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("mockup: {e}\n\n{USAGE}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_detection_accepts_both_spacings() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(br#"{"model":"m", "stream": true}"#));
        assert!(!wants_stream(br#"{"model":"m","stream":false}"#));
        assert!(!wants_stream(br#"{"model":"m"}"#));
    }

    #[test]
    fn plugin_wait_reads_ms() {
        assert_eq!(plugin_wait_ms(None), Some(0));
        assert_eq!(plugin_wait_ms(Some("ms=50")), Some(50));
        assert_eq!(plugin_wait_ms(Some("x=1&ms=7")), Some(7));
        assert_eq!(plugin_wait_ms(Some("ms=abc")), None);
        assert_eq!(plugin_wait_ms(Some("ms=60001")), None);
        assert!(serde_json::from_str::<serde_json::Value>(PLUGIN_CONTINUE_JSON).is_ok());
    }

    #[test]
    fn canned_bodies_are_valid_json() {
        let p = Payloads::new();
        assert!(serde_json::from_slice::<serde_json::Value>(&p.completion).is_ok());
        assert!(serde_json::from_slice::<serde_json::Value>(&p.models).is_ok());
        assert_eq!(p.sse.len(), STREAM_CHUNKS + 1);
        for ev in p.sse.iter().take(STREAM_CHUNKS) {
            let json = ev
                .strip_prefix(b"data: ")
                .and_then(|e| e.strip_suffix(b"\n\n"))
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk");
        }
        assert_eq!(p.sse.last().unwrap().as_ref(), b"data: [DONE]\n\n");
    }
}
