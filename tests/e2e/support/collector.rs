//! `Collector`: the far end of an `export:` HTTP sink, on 127.0.0.1 — a stand-in for
//! Elasticsearch or ClickHouse that records every POST (method, path and query, headers,
//! body) and answers as told: 200 with a `_bulk`-style reply, any status, or never.

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// How the collector answers.
#[derive(Debug, Clone, Copy)]
pub enum Collect {
    /// 200 `{"errors":false,"items":[]}`.
    Ok,
    /// This status.
    Status(u16),
    /// Reads the request, never answers.
    Hang,
}

/// One POST the collector received.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Method.
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, as text.
    pub body: String,
}

/// A collector listening on 127.0.0.1.
#[derive(Debug)]
pub struct Collector {
    addr: SocketAddr,
    batches: Arc<Mutex<Vec<Batch>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Starts on a port the OS picks.
    pub async fn start(mode: Collect) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), mode).await
    }

    /// Starts on `addr` (a port a test held closed until now).
    pub async fn start_at(addr: SocketAddr, mode: Collect) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(answer(req, mode, &seen).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            batches,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path_and_query}`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Every POST so far.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until the bodies hold at least `lines` lines; every POST.
    pub async fn wait_lines(&self, lines: usize) -> Vec<Batch> {
        for _ in 0..200 {
            let batches = self.batches();
            if batches
                .iter()
                .map(|b| b.body.lines().count())
                .sum::<usize>()
                >= lines
            {
                return batches;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "collector got fewer than {lines} lines: {:?}",
            self.batches()
        );
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    mode: Collect,
    seen: &Mutex<Vec<Batch>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    seen.lock().unwrap().push(Batch {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let status = match mode {
        Collect::Ok => 200,
        Collect::Status(code) => code,
        Collect::Hang => {
            std::future::pending::<()>().await;
            500
        }
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            b"{\"errors\":false,\"items\":[]}",
        )))
        .unwrap()
}
