//! `MockUpstream`: an in-process OpenAI-compatible server on 127.0.0.1:0. Each request
//! takes the next scripted [`Reply`] (the last one repeats); every request is recorded,
//! and connections are counted so tests can see the gateway hang up.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

/// What the mock does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A `chat.completion` whose text echoes the last user message.
    Chat,
    /// Any status and JSON body, with extra headers.
    Json(u16, Value, Vec<(&'static str, String)>),
    /// A chat stream: these content pieces, then finish and `[DONE]`.
    Stream(Vec<String>),
    /// Like [`Reply::Stream`], plus — when the request asked for
    /// `stream_options.include_usage` — a usage-only chunk (`choices: []`) before
    /// `[DONE]`, reporting this many completion tokens (and 1 prompt token).
    StreamUsage(Vec<String>, u64),
    /// Sends the first `n` pieces of a stream, then waits for [`MockUpstream::release`]
    /// before sending the rest.
    StreamHold(Vec<String>, usize),
    /// Sends the first `n` pieces (the last one cut in half), then drops the connection.
    StreamDrop(Vec<String>, usize),
    /// Waits, then does the inner reply.
    Delay(Duration, Box<Reply>),
    /// Never answers.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// The first reply for requests naming this model, the second for the others.
    ForModel(&'static str, Box<Reply>, Box<Reply>),
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path and query.
    pub uri: String,
    /// Headers as received.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Seen {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Debug)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    models: Mutex<Value>,
    seen: Mutex<Vec<Seen>>,
    open: AtomicUsize,
    closed: AtomicUsize,
    release: Notify,
    closed_signal: Notify,
    models_mode: Mutex<ModelsMode>,
}

/// How `GET /models` behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelsMode {
    /// 200 with the list.
    Ok,
    /// 500.
    Fail,
    /// Never answers.
    Hang,
}

/// A scripted upstream.
#[derive(Debug, Clone)]
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    scheme: &'static str,
}

impl MockUpstream {
    /// Starts a mock that answers every chat request with [`Reply::Chat`].
    pub async fn start() -> Self {
        Self::with_script(vec![Reply::Chat]).await
    }

    /// Starts a mock that plays `script` in order, repeating the last reply.
    pub async fn with_script(script: Vec<Reply>) -> Self {
        Self::serve(script, None).await
    }

    /// Starts a mock that speaks HTTPS with a certificate for `localhost` and
    /// `127.0.0.1`, issued by a fresh test CA; returns the CA's PEM.
    pub async fn with_script_tls(script: Vec<Reply>) -> (Self, String) {
        let (acceptor, ca_pem) = test_tls();
        (Self::serve(script, Some(acceptor)).await, ca_pem)
    }

    async fn serve(script: Vec<Reply>, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            models: Mutex::new(json!([])),
            seen: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            release: Notify::new(),
            closed_signal: Notify::new(),
            models_mode: Mutex::new(ModelsMode::Ok),
        });
        let st = state.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                stream.set_nodelay(true).ok();
                let st = st.clone();
                let tls = tls.clone();
                st.open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc_state = st.clone();
                    let svc = service_fn(move |req| {
                        let st = svc_state.clone();
                        async move { Ok::<_, Infallible>(answer(st, req).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => builder.serve_connection(TokioIo::new(stream), svc).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls_stream) => {
                                builder
                                    .serve_connection(TokioIo::new(tls_stream), svc)
                                    .await
                            }
                            Err(_) => Ok(()),
                        },
                    };
                    st.closed.fetch_add(1, Ordering::SeqCst);
                    st.closed_signal.notify_waiters();
                });
            }
        });
        Self {
            addr,
            state,
            scheme,
        }
    }

    /// Base URL for a gateway config (`http://127.0.0.1:PORT/v1`; HTTPS mocks use the
    /// name `localhost`, which their certificate is for).
    pub fn base_url(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}/v1", self.addr.port()),
            _ => format!("http://{}/v1", self.addr),
        }
    }

    /// Serve this model list on `GET /v1/models`.
    pub fn set_models(&self, ids: &[&str]) {
        let data: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "mock"}))
            .collect();
        *self.state.models.lock().unwrap() = Value::Array(data);
    }

    /// Makes `GET /models` succeed, fail or hang.
    pub fn models_mode(&self, mode: ModelsMode) {
        *self.state.models_mode.lock().unwrap() = mode;
    }

    /// Every request received, in order (model-list fetches included).
    pub fn requests(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests other than `GET /models`.
    pub fn completions(&self) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|s| !s.uri.ends_with("/models"))
            .collect()
    }

    /// Lets held streams go on.
    pub fn release(&self) {
        self.state.release.notify_waiters();
    }

    /// Connections closed so far.
    pub fn closed_connections(&self) -> usize {
        self.state.closed.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections have closed (fails after 10 s).
    pub async fn wait_closed(&self, n: usize) {
        let wait = async {
            while self.closed_connections() < n {
                let notified = self.state.closed_signal.notified();
                if self.closed_connections() >= n {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the upstream connection was never closed");
    }
}

type MockBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<MockBody> {
    let body = http_body_util::Full::new(body.into())
        .map_err(|never| match never {})
        .boxed();
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", content_type)
        .body(body)
        .unwrap()
}

async fn answer(st: Arc<State>, req: Request<Incoming>) -> Response<MockBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let uri = parts.uri.to_string();
    st.seen.lock().unwrap().push(Seen {
        uri: uri.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    if parts.uri.path().ends_with("/models") {
        let mode = *st.models_mode.lock().unwrap();
        match mode {
            ModelsMode::Ok => {}
            ModelsMode::Fail => return full(500, "application/json", "{}"),
            ModelsMode::Hang => std::future::pending::<()>().await,
        }
        let models = st.models.lock().unwrap().clone();
        return full(
            200,
            "application/json",
            json!({"object": "list", "data": models}).to_string(),
        );
    }
    let reply = {
        let mut script = st.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().unwrap_or(Reply::Chat)
        }
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    play(st, reply, request).await
}

async fn play(st: Arc<State>, reply: Reply, request: Value) -> Response<MockBody> {
    let model = request["model"].as_str().unwrap_or("unknown").to_owned();
    match reply {
        Reply::Chat => {
            let text = request["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .and_then(|m| m["content"].as_str())
                .unwrap_or("")
                .to_owned();
            full(
                200,
                "application/json",
                chat_json(&model, &text).to_string(),
            )
        }
        Reply::Json(status, value, headers) => {
            let mut resp = full(status, "application/json", value.to_string());
            for (k, v) in headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
        Reply::Stream(pieces) => stream(st, &model, pieces, None, None, None),
        Reply::StreamUsage(pieces, completion) => {
            let usage = (request["stream_options"]["include_usage"] == true).then(|| {
                json!({"prompt_tokens": 1, "completion_tokens": completion,
                       "total_tokens": completion + 1})
            });
            stream(st, &model, pieces, None, None, usage)
        }
        Reply::StreamHold(pieces, n) => stream(st, &model, pieces, Some(n), None, None),
        Reply::StreamDrop(pieces, n) => stream(st, &model, pieces, None, Some(n), None),
        Reply::Delay(d, inner) => {
            tokio::time::sleep(d).await;
            Box::pin(play(st, *inner, request)).await
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Garbage => full(200, "application/json", "<html>upstream exploded</html>"),
        Reply::ForModel(name, this, other) => {
            let reply = if model == name { *this } else { *other };
            Box::pin(play(st, reply, request)).await
        }
    }
}

/// A realistic `chat.completion` body.
pub fn chat_json(model: &str, text: &str) -> Value {
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "system_fingerprint": null,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
}

/// One `chat.completion.chunk` SSE event.
pub fn chunk_event(model: &str, content: Option<&str>, finish: Option<&str>) -> String {
    let delta = match content {
        Some(c) => json!({"content": c}),
        None => json!({}),
    };
    let v = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
                   "model": model, "system_fingerprint": null,
                   "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
    format!("data: {v}\n\n")
}

fn stream(
    st: Arc<State>,
    model: &str,
    pieces: Vec<String>,
    hold_after: Option<usize>,
    drop_after: Option<usize>,
    usage: Option<Value>,
) -> Response<MockBody> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(64);
    let model = model.to_owned();
    tokio::spawn(async move {
        for (i, piece) in pieces.iter().enumerate() {
            if hold_after == Some(i) {
                let released = st.release.notified();
                released.await;
            }
            let event = chunk_event(&model, Some(piece), None);
            if drop_after == Some(i) {
                let half = &event.as_bytes()[..event.len() / 2];
                let _ = tx.send(Ok(Frame::data(Bytes::copy_from_slice(half)))).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx
                    .send(Err(std::io::Error::other("mock drops the connection")))
                    .await;
                return;
            }
            if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                return;
            }
        }
        let usage_event = usage.map_or_else(String::new, |u| {
            let v = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk",
                           "created": 1_700_000_000, "model": model,
                           "system_fingerprint": null, "choices": [], "usage": u});
            format!("data: {v}\n\n")
        });
        let tail = format!(
            "{}{usage_event}data: [DONE]\n\n",
            chunk_event(&model, None, Some("stop"))
        );
        let _ = tx.send(Ok(Frame::data(Bytes::from(tail)))).await;
    });
    let body = ChannelBody(rx).boxed();
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

/// Body frames fed from a channel; an `Err` makes hyper drop the connection.
struct ChannelBody(mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx)
    }
}

/// A fresh test CA and a leaf certificate for `localhost` / `127.0.0.1` it signed.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate (what clients must trust), PEM.
    pub ca_pem: String,
    /// The leaf certificate followed by the CA, PEM.
    pub chain_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
    chain_der: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

/// Generates [`TestCerts`].
pub fn test_certs() -> TestCerts {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "switchyard test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    TestCerts {
        ca_pem: ca.pem(),
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: leaf_key.serialize_pem(),
        chain_der: vec![leaf.der().clone(), ca.der().clone()],
        key_der: leaf_key.serialize_der(),
    }
}

/// A TLS acceptor for the test certificate, and the CA's PEM.
pub fn test_tls() -> (tokio_rustls::TlsAcceptor, String) {
    let certs = test_certs();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certs.key_der.clone().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs.chain_der.clone(), key)
    .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        certs.ca_pem,
    )
}
