//! The process's outbound HTTP clients. Upstream requests use the request-path
//! HTTP/1.1 client ([`h1`], which pools its own connections); plugins that call out
//! (`http`) use hyper-util's client over rustls (bundled webpki roots, so a bare
//! container works), HTTP/1.1 and HTTP/2 by ALPN, `TCP_NODELAY`, keep-alive. Each is
//! built once, on first use, and shared by every snapshot built from this [`Clients`].

pub mod h1;

use bytes::Bytes;
use h1::{DestinationError, H1Client};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The client plugins call out with.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Connect bound of the plugins' client.
const PLUGIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The TLS configuration was refused.
    #[error("{0}")]
    Tls(#[from] DestinationError),
    /// rustls could not load the bundled roots.
    #[error("TLS setup failed: {0}")]
    Roots(String),
    /// A previous build panicked while holding the slot.
    #[error("client slot lock poisoned")]
    Poisoned,
}

/// The process's HTTP clients, each built on first use and kept by whoever holds this
/// value (the gateway keeps one for its lifetime).
#[derive(Debug, Default)]
pub struct Clients {
    plugins: Mutex<Option<HttpClient>>,
    h1: Mutex<Option<Arc<H1Client>>>,
}

impl Clients {
    /// The request-path client for upstreams.
    pub fn h1(&self) -> Result<Arc<H1Client>, ClientError> {
        built_once(&self.h1, || Ok(H1Client::new()?))
    }

    /// The client plugins that call out (`http`) use.
    pub fn plugin_client(&self) -> Result<HttpClient, ClientError> {
        built_once(&self.plugins, || {
            http_client(PLUGIN_CONNECT_TIMEOUT, Duration::from_secs(90), 256)
        })
    }
}

/// The value in `slot`, building it the first time.
fn built_once<T: Clone>(
    slot: &Mutex<Option<T>>,
    build: impl FnOnce() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let mut slot = slot.lock().map_err(|_discarded| ClientError::Poisoned)?;
    if let Some(c) = slot.as_ref() {
        return Ok(c.clone());
    }
    let client = build()?;
    *slot = Some(client.clone());
    Ok(client)
}

/// A hyper-util client over rustls (bundled roots), HTTP/1.1 and HTTP/2 by ALPN,
/// `TCP_NODELAY`, keep-alive; idle connections kept `pool_idle` (at most
/// `max_idle_per_host` per host). Plugins and export sinks use one each.
pub fn http_client(
    connect_timeout: Duration,
    pool_idle: Duration,
    max_idle_per_host: usize,
) -> Result<HttpClient, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| ClientError::Roots(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool_idle)
        .pool_max_idle_per_host(max_idle_per_host)
        .build(https))
}

/// A short description of a client error that never includes the URL.
pub fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut innermost = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        innermost = err.to_string();
        source = err.source();
    }
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    if innermost.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {innermost}")
    }
}
