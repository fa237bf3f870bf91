//! Metrics and the access log, through the binary: the metrics listener answers without
//! client keys, counters follow real traffic (attempts by outcome, failovers, requests
//! by status class, errors by code, bounded model labels), and every request — success
//! or failure — gets one access-log line that never holds a key.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

/// How long a test waits for what it expects before failing.
const DEADLINE: Duration = Duration::from_secs(10);

fn status(code: u16) -> Reply {
    Reply::Json(
        code,
        json!({"error": {"message": "no", "type": "server_error", "param": null, "code": null}}),
        vec![],
    )
}

#[tokio::test]
async fn counters_follow_attempts_failovers_statuses_and_error_codes() {
    let limited = Reply::Json(
        429,
        json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": null}}),
        vec![("retry-after", "3".to_owned())],
    );
    let a = MockUpstream::with_script(vec![status(500), limited, Reply::Chat]).await;
    let b = MockUpstream::start().await;
    let c = MockUpstream::with_script(vec![Reply::Stream(vec!["x".into(), "y".into()])]).await;
    let extra = "routes:\n  - {model: m, targets: [{upstream: a, model: m}], fallbacks: [b/m]}\n";
    let gw = TestGateway::start(&config_for(
        &[
            ("a", &a.base_url(), &["m"]),
            ("b", &b.base_url(), &["m"]),
            ("c", &c.base_url(), &["s"]),
        ],
        extra,
    ))
    .await;
    let http = gw.http();
    for _ in 0..2 {
        let answer = http
            .post("/v1/chat/completions", &chat("m", "hi", false))
            .await;
        assert_eq!(answer.status, 200);
    }
    let stream = http
        .post("/v1/chat/completions", &chat("s", "hi", true))
        .await;
    assert_eq!(stream.status, 200);
    http.post(
        "/v1/chat/completions",
        &chat("no-such-model-123", "hi", false),
    )
    .await
    .assert_error(404, "model_not_found");

    let text = gw
        .scrape_until(&[
            r#"switchyard_upstream_attempts_total{outcome="status_5xx",upstream="a"} 1"#,
            r#"switchyard_upstream_attempts_total{outcome="status_429",upstream="a"} 1"#,
            r#"switchyard_upstream_attempts_total{outcome="ok",upstream="b"} 2"#,
            r#"switchyard_upstream_attempts_total{outcome="ok",upstream="c"} 1"#,
            r#"switchyard_upstream_failovers_total{upstream="a"} 2"#,
            r#"switchyard_upstream_retry_after_total{upstream="a"} 1"#,
            r#"switchyard_requests_total{endpoint="chat",model="m",status_class="2xx"} 2"#,
            r#"switchyard_requests_total{endpoint="chat",model="s",status_class="2xx"} 1"#,
            r#"switchyard_requests_total{endpoint="chat",model="other",status_class="4xx"} 1"#,
            r#"switchyard_request_errors_total{code="model_not_found",endpoint="chat"} 1"#,
            r#"switchyard_request_duration_seconds_count{endpoint="chat",model="m"} 2"#,
            r#"switchyard_stream_time_to_first_byte_seconds_count{model="s"} 1"#,
            r#"switchyard_requests_in_flight{endpoint="chat"} 0"#,
        ])
        .await;
    assert!(
        !text.contains("no-such-model-123"),
        "unknown models are labelled `other`"
    );
    assert!(text.contains("# TYPE switchyard_request_duration_seconds histogram"));
    assert!(text.contains("process_resident_memory_bytes "));
}

#[tokio::test]
async fn the_metrics_listener_needs_no_key_and_serves_nothing_else() {
    let yaml = "keys:\n  - {name: team, key: sk-metrics-secret-1}\nupstreams:\n  - {name: mock, dialect: mock, models: [mock-echo]}\n";
    let gw = TestGateway::start(yaml).await;
    assert_eq!(
        gw.http()
            .post("/v1/chat/completions", &chat("mock-echo", "hi", false))
            .await
            .status,
        401,
        "the data plane still wants a key"
    );
    let text = gw.scrape().await;
    assert!(text.contains("switchyard_build_info{version=\""));
    let url = gw.metrics.clone().unwrap();
    let base = url.trim_end_matches("/metrics").to_owned();
    assert_eq!(Http::new(base).get("/v1/models").await.status, 404);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let yaml = "metrics: {enabled: false}\nupstreams:\n  - {name: mock, dialect: mock, models: [mock-echo]}\n";
    let gw = TestGateway::start(yaml).await;
    assert!(gw.metrics.is_none());
    gw.logs_with("metrics=off").await;
}

fn access_lines(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.contains("switchyard::access"))
        .collect()
}

#[tokio::test]
async fn every_request_gets_one_access_line_naming_the_key_never_its_value() {
    let yaml = "keys:\n  - {name: team-a, key: sk-access-secret-9}\nupstreams:\n  - {name: mock, dialect: mock, models: [mock-echo]}\n";
    let gw = TestGateway::start(yaml).await;
    let authed = |body: serde_json::Value| {
        let http = gw.http();
        async move {
            http.call(
                "POST",
                "/v1/chat/completions",
                &[
                    ("authorization", "Bearer sk-access-secret-9"),
                    ("content-type", "application/json"),
                ],
                body.to_string(),
            )
            .await
        }
    };
    assert_eq!(authed(chat("mock-echo", "hello", false)).await.status, 200);
    assert_eq!(authed(chat("mock-echo", "hello", true)).await.status, 200);
    assert_eq!(authed(chat("missing", "hello", false)).await.status, 404);
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < deadline {
        let logs = gw.logs();
        lines = access_lines(&logs).into_iter().map(str::to_owned).collect();
        if lines.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines.iter().all(|l| l.contains("key=\"team-a\"")));
    assert!(lines[0].contains("status=200") && lines[0].contains("upstream=\"mock\""));
    assert!(lines[1].contains("stream=true") && lines[1].contains("ttfb_ms="));
    assert!(lines[2].contains("status=404") && lines[2].contains("error_code=\"model_not_found\""));
    let logs = gw.settled_logs().await;
    assert!(!logs.contains("sk-access-secret-9"));
    assert!(!logs.contains("hello"), "no message content in logs");
}

#[tokio::test]
async fn a_client_request_id_in_utf8_is_logged_as_it_was_sent_back() {
    // Header values may carry bytes beyond ASCII: the id goes back to the client and
    // upstream as it came, and the access line shows the same text.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw =
        TestGateway::start("upstreams:\n  - {name: mock, dialect: mock, models: [mock-echo]}\n")
            .await;
    let body = chat("mock-echo", "hi", false).to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nx-request-id: ",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice("café 7".as_bytes());
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(body.as_bytes());
    let addr = gw.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let echoed = "\r\nx-request-id: café 7\r\n".as_bytes();
    assert!(
        answer
            .windows(echoed.len())
            .any(|w| w.eq_ignore_ascii_case(echoed)),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let logs = gw.logs_with("switchyard::access").await;
    let line = access_lines(&logs)[0].to_owned();
    assert!(line.contains("request_id=\"café 7\""), "{line}");
}

#[tokio::test]
async fn the_access_log_can_be_turned_off() {
    let yaml =
        "log: {access: false}\nupstreams:\n  - {name: mock, dialect: mock, models: [mock-echo]}\n";
    let gw = TestGateway::start(yaml).await;
    for _ in 0..2 {
        gw.http()
            .post("/v1/chat/completions", &chat("missing", "hi", false))
            .await
            .assert_error(404, "model_not_found");
    }
    // Log lines keep their order: once the second request's failure line is out, the
    // first request's access line would be out too.
    let mut logs = String::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < deadline {
        logs = gw.logs();
        if logs.matches("request failed").count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(logs.matches("request failed").count(), 2, "{logs}");
    assert!(access_lines(&logs).is_empty(), "{logs}");
}

#[tokio::test]
async fn plugins_count_calls_rejections_and_time() {
    let yaml = "upstreams:\n  - {name: mock, dialect: mock, models: [mock-echo]}\nplugins:\n  - name: content_filter\n    config: { banned_patterns: [\"forbidden\"], action: reject }\n";
    let gw = TestGateway::start(yaml).await;
    let http = gw.http();
    assert_eq!(
        http.post("/v1/chat/completions", &chat("mock-echo", "fine", false))
            .await
            .status,
        200
    );
    http.post(
        "/v1/chat/completions",
        &chat("mock-echo", "forbidden words", false),
    )
    .await
    .assert_error(400, "content_filter");
    let text = gw
        .scrape_until(&[
            r#"switchyard_plugin_calls_total{plugin="content_filter",stage="pre_request"} 2"#,
            r#"switchyard_plugin_rejections_total{plugin="content_filter"} 1"#,
            r#"switchyard_plugin_duration_seconds_count{plugin="content_filter"} 2"#,
            r#"switchyard_request_errors_total{code="content_filter",endpoint="chat"} 1"#,
        ])
        .await;
    assert!(!text.contains("forbidden"), "no request text in metrics");
}

/// The counter's value in a scrape.
fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn every_upstream_request_opens_or_reuses_a_connection() {
    let a = MockUpstream::start().await;
    let gw = TestGateway::start(&config_for(&[("a", &a.base_url(), &["m"])], "")).await;
    for _ in 0..10 {
        let answer = gw
            .http()
            .post("/v1/chat/completions", &chat("m", "x", false))
            .await;
        assert_eq!(answer.status, 200);
    }
    let text = gw
        .scrape_until(&[r#"switchyard_upstream_attempts_total{outcome="ok",upstream="a"} 10"#])
        .await;
    let opened = value(&text, "switchyard_upstream_connections_opened_total");
    let reused = value(&text, "switchyard_upstream_connections_reused_total");
    assert_eq!(opened + reused, 10, "{text}");
    assert!(reused >= 1, "keep-alive connections are reused: {text}");
    assert!(value(&text, "switchyard_upstream_connections_open") >= 1);
}
