//! Pooled HTTP clients, shared by every config generation. Upstream requests use the
//! request-path HTTP/1.1 client (`h1`); plugins that call out (`http`) use hyper-util's
//! client over rustls (bundled webpki roots, so a bare container works), HTTP/1.1 and
//! HTTP/2 by ALPN, `TCP_NODELAY`, keep-alive.

use super::h1::H1Client;
use bytes::Bytes;
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

/// The process's HTTP clients, each built on first use; they outlive config
/// generations so connections survive reloads.
#[derive(Debug, Default)]
pub struct Pools {
    plugins: Mutex<Option<HttpClient>>,
    h1: Mutex<Option<Arc<H1Client>>>,
}

impl Pools {
    /// The request-path client for upstreams.
    pub fn h1(&self) -> Result<Arc<H1Client>, String> {
        built_once(&self.h1, H1Client::new)
    }

    /// The client plugins that call out (`http`) use.
    pub fn plugin_client(&self) -> Result<HttpClient, String> {
        built_once(&self.plugins, || build(PLUGIN_CONNECT_TIMEOUT))
    }
}

/// The value in `slot`, building it the first time.
fn built_once<T: Clone>(
    slot: &Mutex<Option<T>>,
    build: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let mut slot = slot
        .lock()
        .map_err(|_discarded| "client pool lock poisoned".to_owned())?;
    if let Some(c) = slot.as_ref() {
        return Ok(c.clone());
    }
    let client = build()?;
    *slot = Some(client.clone());
    Ok(client)
}

fn build(connect_timeout: Duration) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https))
}
