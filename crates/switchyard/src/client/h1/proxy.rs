//! The HTTP proxy a [`Destination`] may go through ([`ProxyHop`]), and the `CONNECT`
//! exchange that opens a tunnel to an `https` upstream through it ([`tunnel`]). Requests
//! to `http` upstreams go to the proxy in absolute form instead (`wire::encode_head`).
//! Which proxy an upstream uses is decided by the config, not here. No error here names
//! the proxy or carries its credentials.

use super::wire::parse_head;
use super::{Destination, H1Error, MAX_HEAD, READ_CHUNK};
use bytes::BytesMut;
use http::HeaderValue;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy to connect through: where it is, and the `Proxy-Authorization` value (marked
/// sensitive) when it wants credentials. `Debug` shows neither credentials nor address.
#[derive(Clone)]
pub(super) struct ProxyHop {
    pub(super) host: Arc<str>,
    pub(super) port: u16,
    pub(super) authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for ProxyHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHop").finish_non_exhaustive()
    }
}

impl ProxyHop {
    /// A pool id for connections through this proxy (never 0, which means direct):
    /// connections through different proxies, or with different credentials, are never
    /// shared, nor with direct ones.
    pub(super) fn pool_id(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.host.hash(&mut h);
        self.port.hash(&mut h);
        self.authorization
            .as_ref()
            .map(HeaderValue::as_bytes)
            .hash(&mut h);
        h.finish() | 1
    }
}

/// Asks the proxy at the other end of `tcp` for a tunnel to the destination's host and
/// port, and reads its answer: 2xx leaves `tcp` as the tunnel; anything else is an error
/// with the proxy's status.
pub(super) async fn tunnel(
    tcp: &mut TcpStream,
    target: &Destination,
    proxy: &ProxyHop,
) -> Result<(), H1Error> {
    let host = &target.key.host;
    let authority = if host.contains(':') {
        format!("[{host}]:{}", target.key.port)
    } else {
        format!("{host}:{}", target.key.port)
    };
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n").into_bytes();
    if let Some(auth) = &proxy.authorization {
        head.extend_from_slice(b"proxy-authorization: ");
        head.extend_from_slice(auth.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    tcp.write_all(&head).await.map_err(to_proxy)?;
    let mut buf = BytesMut::with_capacity(1024);
    let answer = loop {
        if let Some(answer) = parse_head(&mut buf).map_err(|_discarded| bad_answer())? {
            if answer.status.is_informational() {
                continue;
            }
            break answer;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad_answer());
        }
        buf.reserve(READ_CHUNK);
        if tcp.read_buf(&mut buf).await.map_err(to_proxy)? == 0 {
            return Err(H1Error::Proxy(
                "the proxy closed the connection before answering CONNECT".to_owned(),
            ));
        }
    };
    if !answer.status.is_success() {
        return Err(H1Error::Proxy(format!(
            "proxy refused CONNECT: {}",
            answer.status.as_u16()
        )));
    }
    if !buf.is_empty() {
        // The upstream speaks only after our TLS hello: bytes here are the proxy's.
        return Err(bad_answer());
    }
    Ok(())
}

fn bad_answer() -> H1Error {
    H1Error::Proxy("the proxy's answer to CONNECT is not HTTP/1.1".to_owned())
}

/// An I/O error talking to the proxy, said to be the proxy's (its kind kept, so a
/// timeout is still one).
pub(super) fn to_proxy(e: io::Error) -> H1Error {
    H1Error::Connect(io::Error::new(e.kind(), format!("proxy: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::wire::encode_head;
    use super::*;
    use tokio::net::TcpListener;

    fn target(url: &str) -> Destination {
        Destination::from_uri(&url.parse().unwrap())
            .unwrap()
            .via_proxy("proxy", 3128, Some("Basic dTpw"))
            .unwrap()
    }

    #[test]
    fn plain_http_through_a_proxy_is_absolute_form_with_its_credentials() {
        let head = encode_head(
            &target("http://up:9/v1/x?k=1"),
            "GET",
            std::iter::empty(),
            None,
        );
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("GET http://up:9/v1/x?k=1 HTTP/1.1\r\nhost: up:9\r\n"));
        assert!(
            head.contains("proxy-authorization: Basic dTpw\r\n"),
            "{head}"
        );
    }

    #[test]
    fn tunnelled_https_requests_are_origin_form_without_proxy_credentials() {
        let head = encode_head(&target("https://up/v1/x"), "GET", std::iter::empty(), None);
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("GET /v1/x HTTP/1.1\r\n"), "{head}");
        assert!(!head.contains("proxy-authorization"), "{head}");
    }

    #[test]
    fn direct_and_proxied_connections_have_different_pool_keys() {
        let url = "https://up/v1".parse().unwrap();
        let direct = Destination::from_uri(&url).unwrap();
        let other = Destination::from_uri(&url)
            .unwrap()
            .via_proxy("proxy", 3128, Some("Basic b3RoZXI="))
            .unwrap();
        let proxied = target("https://up/v1");
        assert_ne!(direct.key, proxied.key);
        assert_ne!(other.key, proxied.key);
        assert!(!format!("{proxied:?}").contains("dTpw"));
    }

    /// A proxy that reads one head and answers `answer`; returns what it read.
    async fn one_shot_proxy(answer: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            while !buf.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                sock.read_exact(&mut byte).await.unwrap();
                buf.push(byte[0]);
            }
            sock.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(buf).unwrap()
        });
        (port, task)
    }

    #[tokio::test]
    async fn a_2xx_answer_opens_the_tunnel() {
        let (port, seen) = one_shot_proxy("HTTP/1.1 200 Connection established\r\n\r\n").await;
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let t = target("https://up.example:8443/v1");
        tunnel(&mut tcp, &t, t.proxy.as_ref().unwrap())
            .await
            .unwrap();
        let seen = seen.await.unwrap();
        assert!(seen.starts_with("CONNECT up.example:8443 HTTP/1.1\r\nhost: up.example:8443\r\n"));
        assert!(
            seen.contains("proxy-authorization: Basic dTpw\r\n"),
            "{seen}"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_a_connect_error_with_the_status_only() {
        let (port, _seen) = one_shot_proxy(
            "HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let t = target("https://up/v1");
        let e = tunnel(&mut tcp, &t, t.proxy.as_ref().unwrap())
            .await
            .unwrap_err();
        assert!(e.is_connect());
        assert_eq!(
            e.to_string(),
            "could not connect: proxy refused CONNECT: 407"
        );
    }
}
