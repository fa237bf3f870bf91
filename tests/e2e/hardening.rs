//! The client side under misbehaving clients, through the binary on raw sockets:
//! silent and slow connections are timed out, oversized or ambiguous requests get
//! OpenAI-shaped refusals and a closed connection, connections beyond the limit are
//! refused, a client that stops reading does not pin its upstream, readiness follows
//! only the gateway's own state, and shutdown drains, cuts and exits as documented.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn addr(gw: &TestGateway) -> String {
    gw.base.trim_start_matches("http://").to_owned()
}

/// Everything the gateway sends on `s` until it closes the connection (at most 10 s),
/// and how long that took.
async fn read_to_close(s: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the gateway kept the connection open: {out:?}"
    );
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

/// One response's head and JSON body from a whole answer `text`.
fn split(text: &str) -> (&str, Value) {
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    (head, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn mock_config(server: &str) -> String {
    format!("server:\n{server}upstreams:\n  - {{name: mock, dialect: mock, models: [mock-echo]}}\n")
}

fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn silent_connections_and_stalled_heads_are_closed_at_the_header_timeout() {
    let gw = TestGateway::start(&mock_config("  header_timeout: 1s\n")).await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr(&gw)).await.unwrap());
    }
    let mut slow = TcpStream::connect(addr(&gw)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    // The gateway keeps answering others meanwhile.
    assert_eq!(gw.http().get("/healthz").await.status, 200);
    for s in &mut silent {
        let (text, took) = read_to_close(s).await;
        assert!(text.is_empty(), "{text}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    let (_, took) = read_to_close(&mut slow).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let text = gw.scrape().await;
    assert!(counter(&text, r#"switchyard_client_timeouts_total{kind="header"}"#) >= 21);
}

#[tokio::test]
async fn idle_keep_alive_connections_close_at_the_idle_timeout() {
    let gw = TestGateway::start(&mock_config("  idle_timeout: 1s\n  header_timeout: 30s\n")).await;
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (text, took) = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let metrics = gw.scrape().await;
    assert_eq!(
        counter(&metrics, r#"switchyard_client_timeouts_total{kind="idle"}"#),
        1
    );
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_and_the_connection_closes() {
    let gw = TestGateway::start(&mock_config("  body_timeout: 1s\n")).await;
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let (text, took) = read_to_close(&mut s).await;
    let (head, body) = split(&text);
    assert!(head.starts_with("HTTP/1.1 408"), "{text}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn oversized_or_malformed_heads_get_openai_shaped_refusals() {
    let gw = TestGateway::start(&mock_config("")).await;
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let long_target = format!(
        "GET /v1/models?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(9000)
    );
    for (request, status, code) in [
        (big_header, "431", "headers_too_large"),
        (long_target, "414", "uri_too_long"),
        ("NONSENSE\r\n\r\n".to_owned(), "400", "bad_framing"),
    ] {
        let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
        // The gateway may answer before it read everything: a failed write is fine.
        let _ = s.write_all(request.as_bytes()).await;
        let (text, _) = read_to_close(&mut s).await;
        let (head, body) = split(&text);
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        assert!(head.contains("application/json"), "{head}");
        assert_eq!(body["error"]["code"], code, "{text}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn ambiguous_framing_is_refused_and_nothing_after_it_is_served() {
    let gw = TestGateway::start(&mock_config("")).await;
    // Content-Length and Transfer-Encoding both, with a second request smuggled in
    // the chunked reading of the body.
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let (text, _) = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        !text.contains("HTTP/1.1 200"),
        "the smuggled request was served: {text}"
    );
    assert_eq!(split(&text).1["error"]["type"], "invalid_request_error");

    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let (text, _) = read_to_close(&mut s).await;
    let (head, body) = split(&text);
    assert!(head.starts_with("HTTP/1.1 501"), "{text}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body["error"]["code"], "unsupported_transfer_encoding");
}

#[tokio::test]
async fn connections_beyond_max_connections_are_refused_with_503() {
    let gw = TestGateway::start(&mock_config(
        "  max_connections: 5\n  header_timeout: 60s\n",
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(addr(&gw)).await.unwrap());
    }
    // Accepting is asynchronous: wait until the gateway counts all five.
    gw.scrape_until(&["switchyard_client_connections_open 5"])
        .await;
    let mut extra = TcpStream::connect(addr(&gw)).await.unwrap();
    let (text, _) = read_to_close(&mut extra).await;
    let (head, body) = split(&text);
    assert!(head.starts_with("HTTP/1.1 503"), "{text}");
    assert_eq!(body["error"]["code"], "overloaded");
    // A freed slot is usable again.
    drop(held.pop());
    gw.scrape_until(&["switchyard_client_connections_open 4"])
        .await;
    assert_eq!(gw.http().get("/healthz").await.status, 200);
    let text = gw.scrape().await;
    assert!(counter(&text, "switchyard_client_connections_refused_total") >= 1);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_its_upstream_closed() {
    // ~8 MB of events: far more than the socket buffers between the gateway and a
    // client that never reads.
    let big: Vec<String> = (0..4000)
        .map(|i| format!("{i:04}{}", "x".repeat(2000)))
        .collect();
    let up = MockUpstream::with_script(vec![Reply::Stream(big)]).await;
    let yaml = format!(
        "server:\n  write_timeout: 1s\n{}",
        config_for(&[("a", &up.base_url(), &["m"])], "")
    );
    let gw = TestGateway::start(&yaml).await;
    let body = chat("m", "x", true).to_string();
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Never read. The gateway gives up on the client and closes the upstream.
    tokio::time::timeout(Duration::from_secs(10), up.wait_closed(1))
        .await
        .expect("the upstream connection was closed");
    gw.scrape_until(&[
        r#"switchyard_client_timeouts_total{kind="write"} 1"#,
        "switchyard_streams_in_flight 0",
    ])
    .await;
    gw.logs_with("client stopped reading").await;
    drop(s);
}

#[tokio::test]
async fn readiness_does_not_follow_upstream_health() {
    let limited = || {
        Reply::Json(
            429,
            serde_json::json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": null}}),
            vec![],
        )
    };
    let up = MockUpstream::with_script(vec![limited(), limited(), limited()]).await;
    let yaml = config_for(
        &[("only", &up.base_url(), &["m"])],
        "routing:\n  failures_before_cooldown: 1\n  cooldown: 60s\n",
    );
    let gw = TestGateway::start(&yaml).await;
    for _ in 0..3 {
        gw.http()
            .post("/v1/chat/completions", &chat("m", "x", false))
            .await;
    }
    let ready = gw.http().get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["status"], "ready");
    let verbose = gw.http().get("/readyz?verbose").await;
    assert_eq!(verbose.status, 200);
    assert_eq!(
        verbose.json()["upstreams"][0],
        serde_json::json!({"name": "only", "available": true, "cooling_models": ["m"]}),
        "a 429 rests the model; the upstream's connections are fine"
    );
}

/// A raw keep-alive request on `s`: the response head and body (content-length framed).
async fn get_on(s: &mut TcpStream, path: &str) -> (String, String) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")?
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            if body.len() >= len {
                return (head.to_owned(), body.to_owned());
            }
        }
    }
}

#[tokio::test]
async fn the_drain_answers_not_ready_then_cuts_open_streams_and_exits_3() {
    let up = MockUpstream::with_script(vec![Reply::StreamHold(
        (0..3).map(|i| format!("piece{i} ")).collect(),
        1,
    )])
    .await;
    let yaml = format!(
        "server:\n  drain_timeout: 1s\n{}",
        config_for(&[("a", &up.base_url(), &["m"])], "")
    );
    let mut gw = TestGateway::start(&yaml).await;
    let mut keep_alive = TcpStream::connect(addr(&gw)).await.unwrap();
    let (head, _) = get_on(&mut keep_alive, "/readyz").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let mut body = resp.into_body();
    next_data(&mut body).await.unwrap().unwrap();
    gw.terminate();
    gw.logs_with("draining").await;
    let (head, body_text) = get_on(&mut keep_alive, "/readyz").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(body_text.contains("draining"), "{body_text}");
    // The held stream never finishes: at the drain's end it gets the error event.
    let rest = tokio::time::timeout(Duration::from_secs(10), read_all(&mut body))
        .await
        .unwrap()
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("\"gateway_shutting_down\""), "{rest}");
    assert!(!rest.contains("[DONE]"), "{rest}");
    assert_eq!(gw.wait_exit().await, Some(3), "{}", gw.logs());
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let up =
        MockUpstream::with_script(vec![Reply::StreamHold(vec!["a ".into(), "b".into()], 1)]).await;
    let yaml = format!(
        "server:\n  drain_timeout: 60s\n{}",
        config_for(&[("a", &up.base_url(), &["m"])], "")
    );
    let mut gw = TestGateway::start(&yaml).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let mut body = resp.into_body();
    next_data(&mut body).await.unwrap().unwrap();
    gw.terminate();
    gw.logs_with("draining").await;
    let started = Instant::now();
    gw.terminate();
    assert_eq!(gw.wait_exit().await, Some(130));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_flood_of_connections_beyond_the_fd_limit_is_refused_promptly_not_hung() {
    // 128 descriptors: room for (128 − 64) / 2 = 32 client connections.
    let gw = TestGateway::start_with_nofile(&mock_config("  header_timeout: 60s\n"), 128).await;
    gw.logs_with("lowered to fit the open-file limit").await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect(addr(&gw)).await {
            Ok(s) => flood.push(s),
            Err(_) => break,
        }
    }
    // A probe during the flood gets an answer at once (503 `overloaded` while the
    // gateway is full) instead of waiting in the accept queue.
    let mut probe = TcpStream::connect(addr(&gw)).await.unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (text, took) = read_to_close(&mut probe).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let metrics = gw.scrape().await;
    assert!(
        counter(&metrics, "switchyard_client_connections_refused_total") >= 200,
        "{metrics}"
    );
    drop(flood);
    gw.scrape_until(&["switchyard_client_connections_open 0"])
        .await;
    assert_eq!(gw.http().get("/healthz").await.status, 200);
    let logs = gw.logs();
    assert!(
        logs.matches("refusing connections").count() <= 5,
        "refusals are logged at most once a second:\n{logs}"
    );
}
