//! Switchyard's own upstream client, driven exactly as the gateway's send path
//! drives it (`upstream/send.rs`): one shared `H1Client`, `request(&destination,
//! headers, Some(&body), connect_timeout)`, then `H1Body::poll_data` until the end.
//!
//! This is the only file of the benches that names switchyard items:
//! `switchyard::client::h1::{H1Client, Destination}` (with `H1Client::new`,
//! `H1Client::request`, `Destination::from_uri`, and `H1Response::{status, body}`,
//! `H1Body::poll_data`). When the gateway renames or moves them, adapt here.

use super::{Exchange, CONNECT_TIMEOUT};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::Uri;
use std::sync::Arc;
use switchyard::client::h1::{Destination, H1Client};
use tokio::time::Instant;

/// The gateway's client and where it sends.
pub struct GatewayClient {
    client: Arc<H1Client>,
    destination: Destination,
    headers: [(HeaderName, HeaderValue); 3],
}

impl GatewayClient {
    /// A client for `url`, sending the headers the gateway sends (content type,
    /// what it accepts, a request id).
    ///
    /// # Errors
    /// When `url` is not a usable destination or the client cannot be built.
    pub fn new(url: &Uri, stream: bool) -> Result<Self, String> {
        let destination = Destination::from_uri(url).map_err(|e| format!("{url}: {e}"))?;
        let client = H1Client::new().map_err(|e| format!("H1Client: {e}"))?;
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        Ok(Self {
            client,
            destination,
            headers: [
                (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (ACCEPT, HeaderValue::from_static(accept)),
                (
                    HeaderName::from_static("x-request-id"),
                    HeaderValue::from_static("bench-0000000000000000"),
                ),
            ],
        })
    }

    /// One request: head, then the body polled in this task until it ends.
    pub async fn exchange(&self, body: &Bytes) -> Exchange {
        let t0 = Instant::now();
        let sent = self.client.request(
            &self.destination,
            self.headers.iter().map(|(n, v)| (n, v)),
            Some(body),
            CONNECT_TIMEOUT,
        );
        let Ok(mut resp) = sent.await else {
            return Exchange::Error;
        };
        let mut bytes = 0;
        while let Some(piece) = std::future::poll_fn(|cx| resp.body.poll_data(cx)).await {
            match piece {
                Ok(data) => bytes += data.len(),
                Err(_io_error) => return Exchange::Error,
            }
        }
        Exchange::done(resp.status.as_u16(), bytes, t0)
    }
}
