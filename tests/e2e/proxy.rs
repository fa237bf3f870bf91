//! Egress proxies: upstreams reached through an HTTP proxy named by the environment
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) or by an upstream's own `proxy:` — a
//! `CONNECT` tunnel for `https` upstreams, absolute-form requests for `http` ones — against
//! an in-test proxy that logs the request line and `Proxy-Authorization` of everything
//! it carries.

use crate::support::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the proxy received.
#[derive(Debug, Clone)]
struct Carried {
    /// `CONNECT localhost:1234 HTTP/1.1` or `POST http://127.0.0.1:1234/v1/… HTTP/1.1`.
    line: String,
    /// The `Proxy-Authorization` value, if any.
    authorization: Option<String>,
}

/// A CONNECT / forward proxy on 127.0.0.1:0 that relays bytes, or refuses with `refuse`.
struct TestProxy {
    port: u16,
    seen: Arc<Mutex<Vec<Carried>>>,
}

impl TestProxy {
    async fn start() -> Self {
        Self::serve(None).await
    }

    /// Answers every request with this status (407…) and relays nothing.
    async fn refusing(status: u16) -> Self {
        Self::serve(Some(status)).await
    }

    async fn serve(refuse: Option<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(carry(client, log.clone(), refuse));
            }
        });
        Self { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Carried> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request head, logs it, then tunnels (CONNECT) or forwards (absolute form).
async fn carry(mut client: TcpStream, log: Arc<Mutex<Vec<Carried>>>, refuse: Option<u16>) {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default().to_owned();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    log.lock().unwrap().push(Carried {
        line: line.clone(),
        authorization: header("proxy-authorization"),
    });
    if let Some(status) = refuse {
        let answer = format!(
            "HTTP/1.1 {status} Refused\r\nProxy-Authenticate: Basic realm=\"test\"\r\ncontent-length: 0\r\n\r\n"
        );
        let _ = client.write_all(answer.as_bytes()).await;
        return;
    }
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(target.replace("localhost", "127.0.0.1")).await
        else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .unwrap();
        upstream.write_all(&buf[head_end..]).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    } else {
        // `POST http://host:port/path HTTP/1.1` → origin form to host:port, without the
        // proxy's own header.
        let rest = target.strip_prefix("http://").unwrap_or(target);
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let Ok(mut upstream) = TcpStream::connect(authority).await else {
            return;
        };
        let mut out = format!("{method} {path} HTTP/1.1\r\n");
        for l in lines.filter(|l| !l.is_empty()) {
            if !l.to_ascii_lowercase().starts_with("proxy-authorization:") {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
        out.push_str("\r\n");
        upstream.write_all(out.as_bytes()).await.unwrap();
        upstream.write_all(&buf[head_end..]).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

/// An HTTPS mock and its `ca_file`, port.
async fn https_upstream() -> (MockUpstream, String, u16) {
    let (up, ca_pem) = MockUpstream::with_script_tls(vec![Reply::Chat]).await;
    let ca = temp_file("proxy-ca.pem", &ca_pem).display().to_string();
    let port = port_of(&up.base_url());
    (up, ca, port)
}

fn port_of(base_url: &str) -> u16 {
    base_url
        .rsplit(':')
        .next()
        .and_then(|s| s.split('/').next())
        .unwrap()
        .parse()
        .unwrap()
}

async fn chat_ok(gw: &TestGateway, model: &str) {
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat(model, "via proxy", false))
        .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "via proxy");
}

#[tokio::test]
async fn proxy_from_https_proxy_env_tunnels_https_upstreams_with_connect() {
    let proxy = TestProxy::start().await;
    let (up, ca, port) = https_upstream().await;
    let yaml = format!(
        "upstreams:\n  - {{name: secure, base_url: '{}', models: [m], ca_file: '{ca}'}}\n",
        up.base_url()
    );
    let gw = TestGateway::start_with_env(&yaml, &[("HTTPS_PROXY", &proxy.url())]).await;
    chat_ok(&gw, "m").await;
    chat_ok(&gw, "m").await;
    // Each tunnel carries requests (pools are per worker thread, so the second request
    // may or may not find the first one's tunnel).
    let seen = proxy.seen();
    assert!(!seen.is_empty() && seen.len() <= 2, "{seen:?}");
    for carried in &seen {
        assert_eq!(carried.line, format!("CONNECT localhost:{port} HTTP/1.1"));
        assert_eq!(carried.authorization, None);
    }
    assert_eq!(up.completions().len(), 2);
}

#[tokio::test]
async fn proxy_from_http_proxy_env_gets_http_requests_in_absolute_form() {
    let proxy = TestProxy::start().await;
    let up = MockUpstream::start().await;
    let yaml = config_for(&[("plain", &up.base_url(), &["m"])], "");
    let gw = TestGateway::start_with_env(&yaml, &[("HTTP_PROXY", &proxy.url())]).await;
    chat_ok(&gw, "m").await;
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].line,
        format!("POST {}/chat/completions HTTP/1.1", up.base_url())
    );
    assert_eq!(up.completions().len(), 1);
}

#[tokio::test]
async fn proxy_is_skipped_for_hosts_listed_in_no_proxy() {
    let proxy = TestProxy::start().await;
    let (secure, ca, _) = https_upstream().await;
    let plain = MockUpstream::start().await;
    let yaml = format!(
        "upstreams:\n  - {{name: secure, base_url: '{}', models: [s], ca_file: '{ca}'}}\n  - {{name: plain, base_url: '{}', models: [p]}}\n",
        secure.base_url(),
        plain.base_url()
    );
    let env = [
        ("https_proxy", proxy.url()),
        ("http_proxy", proxy.url()),
        ("no_proxy", "example.com, .localhost,localhost".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = TestGateway::start_with_env(&yaml, &env).await;
    chat_ok(&gw, "s").await;
    chat_ok(&gw, "p").await;
    // localhost is listed: straight there. 127.0.0.1 is not (loopback is not implied).
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].line.starts_with("POST http://127.0.0.1:"),
        "{seen:?}"
    );
    assert_eq!(secure.completions().len(), 1);
}

#[tokio::test]
async fn proxy_none_on_an_upstream_beats_the_environment() {
    let proxy = TestProxy::start().await;
    let (direct, ca, _) = https_upstream().await;
    let (tunnelled, ca2, _) = https_upstream().await;
    let yaml = format!(
        "upstreams:\n  - {{name: direct, base_url: '{}', models: [d], ca_file: '{ca}', proxy: none}}\n  - {{name: env, base_url: '{}', models: [e], ca_file: '{ca2}'}}\n",
        direct.base_url(),
        tunnelled.base_url()
    );
    let gw = TestGateway::start_with_env(&yaml, &[("HTTPS_PROXY", &proxy.url())]).await;
    chat_ok(&gw, "d").await;
    chat_ok(&gw, "e").await;
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].line,
        format!(
            "CONNECT localhost:{} HTTP/1.1",
            port_of(&tunnelled.base_url())
        )
    );
    assert_eq!(direct.completions().len(), 1);
}

#[tokio::test]
async fn proxy_url_on_an_upstream_sends_basic_credentials_that_never_reach_the_logs() {
    let env_proxy = TestProxy::start().await;
    let own = TestProxy::start().await;
    let (up, ca, port) = https_upstream().await;
    let yaml = format!(
        "upstreams:\n  - {{name: secure, base_url: '{}', models: [m], ca_file: '{ca}', proxy: 'http://alice:s3cr3t-pw@127.0.0.1:{}'}}\n",
        up.base_url(),
        own.port
    );
    let gw = TestGateway::start_with_env(&yaml, &[("HTTPS_PROXY", &env_proxy.url())]).await;
    chat_ok(&gw, "m").await;
    assert!(env_proxy.seen().is_empty());
    let seen = own.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].line, format!("CONNECT localhost:{port} HTTP/1.1"));
    // base64("alice:s3cr3t-pw")
    let basic = "YWxpY2U6czNjcjN0LXB3";
    assert_eq!(seen[0].authorization, Some(format!("Basic {basic}")));
    let logs = gw.settled_logs().await;
    assert!(!logs.contains("s3cr3t") && !logs.contains(basic), "{logs}");
}

#[tokio::test]
async fn proxy_refusing_connect_is_a_502_that_shows_neither_credentials_nor_proxy() {
    let proxy = TestProxy::refusing(407).await;
    let (up, ca, _) = https_upstream().await;
    let yaml = format!(
        "upstreams:\n  - {{name: secure, base_url: '{}', models: [m], ca_file: '{ca}'}}\n",
        up.base_url()
    );
    let proxy_url = format!("http://bob:hunter2-pw@127.0.0.1:{}", proxy.port);
    let gw = TestGateway::start_with_env(&yaml, &[("HTTPS_PROXY", &proxy_url)]).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "refused", false))
        .await;
    r.assert_error(502, "upstream_error");
    let body = r.text();
    for secret in [
        "hunter2",
        "bob:",
        &proxy_url,
        &format!("127.0.0.1:{}", proxy.port),
    ] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }
    assert!(!proxy.seen().is_empty());
    assert_eq!(up.completions().len(), 0);
    let logs = gw.logs_with("407").await;
    assert!(!logs.contains("hunter2"), "{logs}");
}
