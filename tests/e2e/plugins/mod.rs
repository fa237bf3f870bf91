//! The plugin chain through the real binary, one file per concern: the built-in limits
//! (`limits`), the built-ins that read or rewrite what is said (`content`), client keys
//! and identity headers (`callers`), the `http` plugin against a real local service
//! (`http`), which plugins run and in what order, in parallel and in isolation
//! (`chain`), a plugin that changes `model` (`reroute`), and config validation
//! (`validation`). The helpers they share are here.

mod callers;
mod chain;
mod content;
mod http;
mod limits;
mod reroute;
mod validation;

use crate::support::*;
use serde_json::Value;
use std::time::Duration;
use switchyard_dialects::sse::data_payloads;

/// Safety net only: a broken gateway must fail the test, not hang it.
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out waiting for the gateway")
}

/// The built-in echo model plus these `plugins:` entries (YAML list items).
fn mock_with(plugins: &str) -> String {
    format!("upstreams:\n  - {{name: mock, dialect: mock}}\nplugins:\n{plugins}")
}

/// One scripted upstream `up` serving `models`, plus these `plugins:` entries.
fn upstream_with(up: &MockUpstream, models: &[&str], plugins: &str) -> String {
    config_for(
        &[("up", &up.base_url(), models)],
        &format!("plugins:\n{plugins}"),
    )
}

/// POSTs a chat request with extra headers.
async fn post_with(http: &Http, headers: &[(&str, &str)], body: &Value) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    within(http.call("POST", "/v1/chat/completions", &all, body.to_string())).await
}

/// POSTs a chat request as the bearer of `token`.
async fn post_as(http: &Http, token: &str, body: &Value) -> Answer {
    let auth = format!("Bearer {token}");
    post_with(http, &[("authorization", &auth)], body).await
}

/// A numeric response header.
fn num(a: &Answer, name: &str) -> u64 {
    a.headers
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` header in {:?}", a.headers))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Streams a chat request (expecting 200) and returns its SSE data payloads.
async fn stream_events(http: &Http, body: &Value) -> Vec<String> {
    let resp = within(http.send(
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        body.to_string(),
    ))
    .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let raw = within(read_all(&mut body)).await.unwrap();
    data_payloads(&raw)
}

/// The assistant text of a stream's events (`choices[0].delta.content`, concatenated).
fn stream_text(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The text pieces an upstream streams.
fn pieces(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

/// An `http` plugin entry: `extra` are more flow-map fields (`stage: …, on_error: …`).
fn http_plugin(url: &str, extra: &str) -> String {
    format!("  - {{name: http, {extra}config: {{url: '{url}'}}}}\n")
}
