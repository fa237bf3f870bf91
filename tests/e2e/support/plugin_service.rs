//! `PluginService`: an in-process external plugin service (the other end of the `http`
//! plugin) on 127.0.0.1:0. Each path answers with a scripted [`Behavior`]; every call is
//! recorded, the number of calls in flight at once is tracked, and calls the gateway
//! gave up on (connection closed before the answer) are counted.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How long a [`Behavior::Gather`] call waits for the others before going on alone.
/// Calls that do run together meet at once, so this is only ever waited out when they
/// don't; it is long so that a loaded machine cannot make concurrent calls look
/// sequential.
const GATHER_FALLBACK: Duration = Duration::from_secs(5);

/// What the service does with a call to one path.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// `{"action":"continue"}`.
    Continue,
    /// `{"action":"modify","body":…}`.
    Modify(Value),
    /// `{"action":"reject",…}` with this status, message and code.
    Reject(u16, &'static str, &'static str),
    /// This status with an empty JSON object (a failing service).
    Status(u16),
    /// Never answers.
    Hang,
    /// Waits until this many calls have been in flight at once (or a fallback passed),
    /// then behaves like the inner one.
    Gather(usize, Box<Behavior>),
}

#[derive(Debug, Default)]
struct State {
    routes: Mutex<HashMap<String, Behavior>>,
    seen: Mutex<Vec<(String, Value)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    abandoned: Mutex<HashMap<String, usize>>,
    changed: Notify,
}

/// A scripted plugin service.
#[derive(Debug, Clone)]
pub struct PluginService {
    addr: SocketAddr,
    state: Arc<State>,
}

/// Counts one call as in flight until dropped; a call dropped before it answered was
/// abandoned by the gateway.
struct InFlight {
    state: Arc<State>,
    path: String,
    answered: bool,
}

impl InFlight {
    fn new(state: Arc<State>, path: String) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        state.changed.notify_waiters();
        Self {
            state,
            path,
            answered: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.answered {
            *self
                .state
                .abandoned
                .lock()
                .unwrap()
                .entry(self.path.clone())
                .or_default() += 1;
        }
        self.state.changed.notify_waiters();
    }
}

impl PluginService {
    /// Starts a service with no paths configured (every call gets 404).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                stream.set_nodelay(true).ok();
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(answer(st, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    /// Makes `path` answer with `behavior`.
    pub fn on(&self, path: &str, behavior: Behavior) -> &Self {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), behavior);
        self
    }

    /// The URL of `path`, for a plugin's `config.url`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every payload received on `path`, in order.
    pub fn received(&self, path: &str) -> Vec<Value> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Waits until `path` received `n` calls (fails after 10 s); returns them.
    pub async fn wait_received(&self, path: &str, n: usize) -> Vec<Value> {
        let wait = async {
            loop {
                let changed = self.state.changed.notified();
                let calls = self.received(path);
                if calls.len() >= n {
                    return calls;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("{path} never received {n} call(s)"))
    }

    /// The most calls that were in flight at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Calls to `path` dropped before they were answered.
    pub fn abandoned(&self, path: &str) -> usize {
        self.state
            .abandoned
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `n` calls to `path` were abandoned (fails after 10 s).
    pub async fn wait_abandoned(&self, path: &str, n: usize) {
        let wait = async {
            loop {
                let changed = self.state.changed.notified();
                if self.abandoned(path) >= n {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the gateway never gave up on its call to {path} (abandoned: {})",
                    self.abandoned(path)
                )
            });
    }
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn answer(st: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let mut guard = InFlight::new(st.clone(), path.clone());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.seen.lock().unwrap().push((path.clone(), payload));
    let behavior = st.routes.lock().unwrap().get(&path).cloned();
    let resp = match behavior {
        Some(b) => behave(&st, b).await,
        None => respond(404, &json!({"error": "no such path"})),
    };
    guard.answered = true;
    resp
}

async fn behave(st: &State, behavior: Behavior) -> Response<Full<Bytes>> {
    match behavior {
        Behavior::Continue => respond(200, &json!({"action": "continue"})),
        Behavior::Modify(body) => respond(200, &json!({"action": "modify", "body": body})),
        Behavior::Reject(status, message, code) => respond(
            200,
            &json!({"action": "reject", "status": status, "message": message, "code": code}),
        ),
        Behavior::Status(status) => respond(status, &json!({})),
        Behavior::Hang => std::future::pending().await,
        Behavior::Gather(n, then) => {
            let gathered = async {
                loop {
                    let changed = st.changed.notified();
                    // The high-water mark, not the current count: a call that met
                    // this one and has already answered still counts.
                    if st.max_in_flight.load(Ordering::SeqCst) >= n {
                        break;
                    }
                    changed.await;
                }
            };
            let _ = tokio::time::timeout(GATHER_FALLBACK, gathered).await;
            Box::pin(behave(st, *then)).await
        }
    }
}
