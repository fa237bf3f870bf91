//! hyper 1's `client::conn::http1`, used the way the gateway uses its own client:
//! one connection per concurrent worker (TCP_NODELAY), reused for successive
//! requests, the same request, and the body read with `BodyExt::frame()`. The
//! connection future is either polled in the worker's own task next to the request
//! (`InTask`: the closest hyper gets to reading the body in place) or spawned as
//! its own task, the usual hyper pattern (`Spawned`: the body crosses from the
//! connection task).

use super::{Exchange, CONNECT_TIMEOUT};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Where hyper's connection future runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Polled in the worker's task, beside the request and its body.
    InTask,
    /// `tokio::spawn`ed as its own task.
    Spawned,
}

/// One worker's connection.
pub struct HyperConn {
    sender: SendRequest<Full<Bytes>>,
    uri: Uri,
    host: HeaderValue,
    accept: HeaderValue,
}

impl HyperConn {
    /// Connects to `url`'s host and runs `work` with the connection, driving the
    /// connection as `driver` says. The connection closes when `work` ends.
    ///
    /// # Errors
    /// When connecting or the HTTP/1.1 handshake fails.
    pub async fn with<W, F, T>(
        url: &Uri,
        stream: bool,
        driver: Driver,
        work: W,
    ) -> Result<T, String>
    where
        W: FnOnce(Self) -> F,
        F: Future<Output = T>,
    {
        let authority = url.authority().ok_or("the URL has no host")?.clone();
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_elapsed| format!("{addr}: connect timed out"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let me = Self {
            sender,
            uri: Uri::from(url.path_and_query().cloned().ok_or("the URL has no path")?),
            host: HeaderValue::from_str(authority.as_str()).map_err(|e| format!("host: {e}"))?,
            accept: HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        };
        match driver {
            Driver::Spawned => {
                let task = tokio::spawn(conn);
                let out = work(me).await;
                task.abort();
                Ok(out)
            }
            Driver::InTask => {
                // After the connection ends (the server closed it) the requests fail on
                // their own; keep this branch from finishing the select.
                let conn = async {
                    let _closed = conn.await;
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    out = work(me) => Ok(out),
                    () = conn => Err("unreachable: the connection branch never ends".to_owned()),
                }
            }
        }
    }

    /// One request on this connection: head, then every body frame, in this task.
    pub async fn exchange(&mut self, body: &Bytes) -> Exchange {
        let t0 = Instant::now();
        let mut req = Request::post(self.uri.clone()).body(Full::new(body.clone()));
        if let Ok(r) = &mut req {
            let h = r.headers_mut();
            h.insert(HOST, self.host.clone());
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(ACCEPT, self.accept.clone());
            h.insert(
                "x-request-id",
                HeaderValue::from_static("bench-0000000000000000"),
            );
        }
        let Ok(req) = req else {
            return Exchange::Error;
        };
        if self.sender.ready().await.is_err() {
            return Exchange::Error;
        }
        let Ok(resp) = self.sender.send_request(req).await else {
            return Exchange::Error;
        };
        let status = resp.status().as_u16();
        let mut incoming = resp.into_body();
        let mut bytes = 0;
        while let Some(frame) = incoming.frame().await {
            match frame {
                Ok(frame) => bytes += frame.data_ref().map_or(0, Bytes::len),
                Err(_body_error) => return Exchange::Error,
            }
        }
        Exchange::done(status, bytes, t0)
    }
}
