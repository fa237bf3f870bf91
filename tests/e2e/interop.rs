//! HTTP/1.1 interop with upstreams that do what real servers do: HTTP/1.0 answers,
//! `Connection` token lists, bad `Content-Length`s, folded header lines. Each upstream
//! here is a raw server that answers one request per connection with exact bytes and
//! then either closes or keeps the connection open without reading from it again —
//! so a connection the gateway wrongly pools hangs the next request.

use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers the first request of every connection with `response`; then closes, or
/// (with `hold`) keeps the socket open, unread, for a minute.
async fn one_shot_upstream(response: &'static [u8], hold: bool) -> String {
    let hold = if hold {
        Some(Duration::from_secs(60))
    } else {
        None
    };
    one_shot_upstream_closing_after(response, hold).await
}

/// [`one_shot_upstream`] that closes `after` its answer (`None`: at once).
async fn one_shot_upstream_closing_after(
    response: &'static [u8],
    after: Option<Duration>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 8192];
                // The head, then as much body as it announces.
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
                let _ = s.write_all(response).await;
                if let Some(after) = after {
                    tokio::time::sleep(after).await;
                }
            });
        }
    });
    format!("http://{addr}/v1")
}

const CHAT: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#;

fn gateway_yaml(url: &str) -> String {
    format!(
        "upstreams:\n  - {{name: raw, base_url: '{url}', models: [m], first_byte_timeout: 2s}}\n"
    )
}

async fn ten_in_a_row(response: &'static [u8]) -> Vec<u16> {
    let up = one_shot_upstream(response, true).await;
    let gw = TestGateway::start(&gateway_yaml(&up)).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = gw
            .http()
            .post("/v1/chat/completions", &chat("m", "x", false))
            .await;
        statuses.push(r.status.as_u16());
    }
    statuses
}

#[tokio::test]
async fn http_1_0_answers_are_not_pooled() {
    let response: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{CHAT}",
            CHAT.len()
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    assert_eq!(ten_in_a_row(response).await, vec![200; 10]);
}

#[tokio::test]
async fn a_close_token_anywhere_in_connection_is_honoured() {
    let response: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{CHAT}",
            CHAT.len()
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    assert_eq!(ten_in_a_row(response).await, vec![200; 10]);
}

#[tokio::test]
async fn invalid_or_conflicting_content_lengths_are_upstream_errors() {
    for response in [
        &b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12abc\r\n\r\n{\"a\":1}"[..],
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\ncontent-length: 9\r\n\r\n{\"a\":1}",
    ] {
        let up = one_shot_upstream(response, false).await;
        let gw = TestGateway::start(&gateway_yaml(&up)).await;
        let r = gw
            .http()
            .post("/v1/chat/completions", &chat("m", "x", false))
            .await;
        r.assert_error(502, "upstream_error");
    }
}

#[tokio::test]
async fn folded_header_lines_are_accepted() {
    let response: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-folded: one\r\n  two\r\ncontent-length: {}\r\n\r\n{CHAT}",
            CHAT.len()
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let up = one_shot_upstream(response, false).await;
    let gw = TestGateway::start(&gateway_yaml(&up)).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "x", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "ok");
}

#[tokio::test]
async fn upstreams_are_asked_for_identity_bodies_with_a_user_agent() {
    let up = MockUpstream::with_script(vec![Reply::Chat]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "x", false))
        .await;
    assert_eq!(r.status, 200);
    let seen = &up.completions()[0];
    assert_eq!(seen.headers["accept-encoding"], "identity");
    let agent = seen.headers["user-agent"].to_str().unwrap();
    assert!(agent.starts_with("switchyard/"), "{agent}");
}

#[tokio::test]
async fn a_compressed_event_stream_is_refused_never_an_empty_success() {
    let up = one_shot_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\n\x1f\x8b\x08\x00",
        false,
    )
    .await;
    let gw = TestGateway::start(&gateway_yaml(&up)).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "x", true))
        .await;
    let message = r.assert_error(502, "upstream_error");
    assert!(!message.is_empty());
    let logs = gw.logs_with("compressed").await;
    assert!(logs.contains("gzip"), "{logs}");
}

#[tokio::test]
async fn a_close_delimited_tls_body_without_close_notify_is_complete() {
    let (acceptor, ca_pem) = test_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = [0u8; 8192];
                let _ = tls.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(CHAT.as_bytes()).await;
                let _ = tls.flush().await;
                // Dropped without shutdown: the TCP connection closes, no close_notify.
                drop(tls);
            });
        }
    });
    let ca = temp_file("ca.pem", &ca_pem);
    let yaml = format!(
        "upstreams:\n  - {{name: tls, base_url: 'https://localhost:{port}/v1', models: [m], ca_file: '{}'}}\n",
        ca.display()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "x", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "ok");
}

#[tokio::test]
async fn keep_alive_answers_from_a_server_that_then_closes_never_fail() {
    // Like uvicorn with `--timeout-keep-alive 0`: an HTTP/1.1 keep-alive answer, then
    // the connection closes at once. 8 clients × 100 requests: every one answered.
    let response: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{CHAT}",
            CHAT.len()
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    // Closing a moment after the answer: the gateway may already be reusing it.
    let up = one_shot_upstream_closing_after(response, Some(Duration::from_millis(1))).await;
    let gw = TestGateway::start(&gateway_yaml(&up)).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        let http = gw.http();
        clients.push(tokio::spawn(async move {
            let mut failed = 0;
            for _ in 0..100 {
                let r = http
                    .post("/v1/chat/completions", &chat("m", "x", false))
                    .await;
                failed += usize::from(r.status != 200);
            }
            failed
        }));
    }
    let mut failed = 0;
    for c in clients {
        failed += c.await.unwrap();
    }
    assert_eq!(failed, 0, "of 800 requests");
    // Every send went out on a pooled connection or a new one; one sent again after
    // its pooled connection closed unanswered counts as both.
    let text = gw.scrape().await;
    let count = |name| series(&text, name);
    let (opened, reused) = (
        count("switchyard_upstream_connections_opened_total"),
        count("switchyard_upstream_connections_reused_total"),
    );
    let retried = count("switchyard_upstream_connection_retries_total");
    assert_eq!(opened + reused, 800.0 + retried, "{text}");
}

#[tokio::test]
async fn an_answer_before_a_large_body_was_read_is_relayed() {
    // Like Go's net/http refusing a request: it answers 401 after the head and closes
    // without reading the 5 MiB body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
                let answer = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                // Dropped with the body unread: the kernel resets the connection.
            });
        }
    });
    let gw = TestGateway::start(&gateway_yaml(&format!("http://{addr}/v1"))).await;
    let big = "x".repeat(5 * 1024 * 1024);
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", &big, false))
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn ssl_cert_file_is_trusted_and_an_untrusted_certificate_is_named_in_the_502() {
    let (up, ca_pem) = MockUpstream::with_script_tls(vec![Reply::Chat, Reply::Chat]).await;
    let ca = temp_file("corporate-ca.pem", &ca_pem);
    let yaml = format!(
        "upstreams:\n  - {{name: corp, base_url: '{url}', models: [m]}}\n  - {{name: pinned, base_url: '{url}', models: [b], trust: bundled}}\n",
        url = up.base_url()
    );
    // A re-signing egress CA handed over the usual way: SSL_CERT_FILE.
    let gw = TestGateway::start_with_env(&yaml, &[("SSL_CERT_FILE", ca.to_str().unwrap())]).await;
    let r = gw
        .http()
        .post(
            "/v1/chat/completions",
            &chat("m", "via the system store", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Only the bundled roots: not trusted, and the client is told why, without a URL.
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("b", "x", false))
        .await;
    let message = r.assert_error(502, "upstream_error");
    assert!(
        message.contains("pinned: TLS certificate not trusted"),
        "{message}"
    );
    assert!(
        !message.contains("localhost") && !message.contains("127.0.0.1"),
        "{message}"
    );
}
