//! Tokens counted for every request, through the binary: a stream that did not ask for
//! usage is made to (`stream_options.include_usage` added upstream) and receives exactly
//! what it would have without that (no usage chunk), a stream that asked keeps its usage
//! chunk, complete JSON answers are read too; every count lands in
//! `switchyard_{input,output}_tokens_total` and the access line.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;
use switchyard_dialects::sse::data_payloads;

/// How long a test waits for what it expects before failing.
const DEADLINE: Duration = Duration::from_secs(10);

/// Safety net only: a broken gateway must fail the test, not hang it.
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("timed out waiting for the gateway")
}

fn pieces(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

/// Posts `body` as it is written and reads the whole stream.
async fn stream_raw(gw: &TestGateway, body: &str) -> Vec<u8> {
    let resp = within(gw.http().send(
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        body.to_owned(),
    ))
    .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    within(read_all(&mut body)).await.unwrap()
}

/// The bytes the mock streams for `pieces` when nobody asks it for usage.
fn plain_stream(model: &str, texts: &[&str]) -> String {
    let mut out: String = texts
        .iter()
        .map(|t| chunk_event(model, Some(t), None))
        .collect();
    out.push_str(&chunk_event(model, None, Some("stop")));
    out.push_str("data: [DONE]\n\n");
    out
}

/// The access lines logged so far, once there are `n`.
async fn access_lines(gw: &TestGateway, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < deadline {
        lines = gw
            .logs()
            .lines()
            .filter(|l| l.contains("switchyard::access"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} access lines, got {lines:#?}");
}

#[tokio::test]
async fn a_stream_without_include_usage_is_counted_and_receives_exactly_the_plain_stream() {
    let texts = ["a ", "b ", "c"];
    let up = MockUpstream::with_script(vec![Reply::StreamUsage(pieces(&texts), 3)]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let got = stream_raw(&gw, body).await;
    assert_eq!(
        String::from_utf8(got).unwrap(),
        plain_stream("m", &texts),
        "the client sees no trace of the usage the gateway asked for"
    );
    gw.scrape_until(&[
        r#"switchyard_input_tokens_total{model="m",upstream="a"} 1"#,
        r#"switchyard_output_tokens_total{model="m",upstream="a"} 3"#,
    ])
    .await;
    let line = &access_lines(&gw, 1).await[0];
    assert!(line.contains("input_tokens=1"), "{line}");
    assert!(line.contains("output_tokens=3"), "{line}");
}

#[tokio::test]
async fn the_upstream_is_asked_for_usage_and_the_rest_of_the_body_is_untouched() {
    let up = MockUpstream::with_script(vec![Reply::StreamUsage(pieces(&["x"]), 1)]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let body = r#"{ "messages":[{"role":"user","content":"x"}], "model":"m", "stream":true, "temperature":0.25 }"#;
    stream_raw(&gw, body).await;
    let seen = &up.completions()[0];
    assert_eq!(seen.json()["stream_options"]["include_usage"], true);
    let want = format!(
        r#"{{"stream_options":{{"include_usage":true}},{}"#,
        &body[1..]
    );
    assert_eq!(String::from_utf8_lossy(&seen.body), want);
}

#[tokio::test]
async fn an_alias_stream_gets_both_the_model_rewrite_and_the_usage_request() {
    let up = MockUpstream::with_script(vec![Reply::StreamUsage(pieces(&["x"]), 1)]).await;
    let extra = "routes:\n  - {model: fast, targets: [{upstream: a, model: real-model}]}\n";
    let gw = TestGateway::start(&config_for(
        &[("a", &up.base_url(), &["real-model"])],
        extra,
    ))
    .await;
    let body = r#"{"model":"fast","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[]}"#;
    let got = stream_raw(&gw, body).await;
    assert_eq!(
        String::from_utf8(got).unwrap(),
        plain_stream("real-model", &["x"])
    );
    assert_eq!(
        String::from_utf8_lossy(&up.completions()[0].body),
        r#"{"model":"real-model","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[]}"#
    );
}

#[tokio::test]
async fn a_client_that_asked_for_usage_still_gets_its_usage_chunk() {
    let up = MockUpstream::with_script(vec![Reply::StreamUsage(pieces(&["a ", "b"]), 2)]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let mut body = chat("m", "hi", true);
    body["stream_options"] = json!({"include_usage": true});
    let raw = stream_raw(&gw, &body.to_string()).await;
    let usage: Vec<Value> = data_payloads(&raw)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v["choices"] == json!([]))
        .collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 2);
    assert_eq!(
        up.completions()[0].body,
        body.to_string(),
        "a body that asks is forwarded as is"
    );
    gw.scrape_until(&[
        r#"switchyard_input_tokens_total{model="m",upstream="a"} 1"#,
        r#"switchyard_output_tokens_total{model="m",upstream="a"} 2"#,
    ])
    .await;
}

#[tokio::test]
async fn a_complete_chat_answer_is_counted() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    for _ in 0..2 {
        let answer = gw
            .http()
            .post("/v1/chat/completions", &chat("m", "hi", false))
            .await;
        assert_eq!(answer.status, 200);
    }
    // The mock's chat.completion reports 3 prompt and 2 completion tokens.
    gw.scrape_until(&[
        r#"switchyard_input_tokens_total{model="m",upstream="a"} 6"#,
        r#"switchyard_output_tokens_total{model="m",upstream="a"} 4"#,
    ])
    .await;
    let lines = access_lines(&gw, 2).await;
    assert!(lines[0].contains("input_tokens=3") && lines[0].contains("output_tokens=2"));
}

#[tokio::test]
async fn the_mock_model_is_counted_streamed_or_not_and_for_embeddings() {
    let yaml = "upstreams:\n  - {name: mock, dialect: mock, models: [mock-echo]}\n";
    let gw = TestGateway::start(yaml).await;
    let http = gw.http();
    // Prompt: 3 words; the echo: the same 3 words.
    let full = http
        .post(
            "/v1/chat/completions",
            &chat("mock-echo", "one two three", false),
        )
        .await;
    assert_eq!(full.status, 200);
    let raw = stream_raw(&gw, &chat("mock-echo", "one two three", true).to_string()).await;
    let events = data_payloads(&raw);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "no usage chunk for a client that did not ask: {events:?}"
    );
    let embeddings = http
        .post(
            "/v1/embeddings",
            &json!({"model": "mock-echo", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(embeddings.status, 200);
    gw.scrape_until(&[
        r#"switchyard_input_tokens_total{model="mock-echo",upstream="mock"} 8"#,
        r#"switchyard_output_tokens_total{model="mock-echo",upstream="mock"} 6"#,
    ])
    .await;
    let lines = access_lines(&gw, 3).await;
    let line = lines.iter().find(|l| l.contains("/v1/embeddings")).unwrap();
    assert!(line.contains("input_tokens=2"), "{line}");
    assert!(!line.contains("output_tokens="), "{line}");
}

#[tokio::test]
async fn with_plugins_the_stream_is_counted_once_and_the_usage_chunk_still_hidden() {
    let texts = ["a ", "b"];
    let up = MockUpstream::with_script(vec![Reply::StreamUsage(pieces(&texts), 5)]).await;
    let extra = "plugins:\n  - {name: token_limiter, config: {limit: 1000, window: 1m}}\n";
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], extra)).await;
    let got = stream_raw(&gw, &chat("m", "hi", true).to_string()).await;
    assert_eq!(String::from_utf8(got).unwrap(), plain_stream("m", &texts));
    gw.scrape_until(&[
        r#"switchyard_input_tokens_total{model="m",upstream="a"} 1"#,
        r#"switchyard_output_tokens_total{model="m",upstream="a"} 5"#,
    ])
    .await;
}
