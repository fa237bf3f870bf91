//! The plugin chain through the real binary: the built-ins (rate and token limits,
//! content filter, system prompt, params, user headers), the `http` plugin against a
//! real local service (inlet, outlet, error stage, failures and timeouts per
//! `on_error`), priority order and parallel groups, isolation, and config validation.

use crate::support::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use switchyard_dialects::sse::data_payloads;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

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

/// A URL nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/plugin")
}

// ---------------------------------------------------------------------------------
// rate_limiter
// ---------------------------------------------------------------------------------

const RATE_LIMIT_BY_KEY: &str =
    "  - {name: rate_limiter, config: {limit: 2, window: 1m, key: api_key}}\n";

#[tokio::test]
async fn rate_limiter_rejects_the_request_over_the_limit_with_rate_limit_headers() {
    let gw = TestGateway::start(&mock_with(RATE_LIMIT_BY_KEY)).await;
    let http = gw.http();
    for _ in 0..2 {
        let ok = post_as(&http, "tok-a", &chat("mock-echo", "hi", false)).await;
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
    let third = post_as(&http, "tok-a", &chat("mock-echo", "hi", false)).await;
    third.assert_error(429, "rate_limit_exceeded");
    assert!(num(&third, "retry-after") >= 1);
    assert_eq!(num(&third, "x-ratelimit-limit"), 2);
    assert_eq!(num(&third, "x-ratelimit-remaining"), 0);
    assert!(num(&third, "x-ratelimit-reset") >= 1);
}

#[tokio::test]
async fn rate_limiter_reports_the_shrinking_budget_on_successful_responses() {
    let gw = TestGateway::start(&mock_with(RATE_LIMIT_BY_KEY)).await;
    let http = gw.http();
    let first = post_as(&http, "tok-a", &chat("mock-echo", "hi", false)).await;
    let second = post_as(&http, "tok-a", &chat("mock-echo", "hi", false)).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(num(&first, "x-ratelimit-limit"), 2);
    assert_eq!(num(&first, "x-ratelimit-remaining"), 1);
    assert_eq!(num(&second, "x-ratelimit-remaining"), 0);
    assert!(num(&first, "x-ratelimit-reset") >= 1);
}

#[tokio::test]
async fn rate_limiter_keyed_by_api_key_gives_each_bearer_token_its_own_budget() {
    let gw = TestGateway::start(&mock_with(RATE_LIMIT_BY_KEY)).await;
    let http = gw.http();
    for _ in 0..2 {
        assert_eq!(
            post_as(&http, "tok-a", &chat("mock-echo", "hi", false))
                .await
                .status,
            200
        );
    }
    post_as(&http, "tok-a", &chat("mock-echo", "hi", false))
        .await
        .assert_error(429, "rate_limit_exceeded");
    let other = post_as(&http, "tok-b", &chat("mock-echo", "hi", false)).await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(num(&other, "x-ratelimit-remaining"), 1);
}

#[tokio::test]
async fn rate_limiter_keyed_by_a_header_counts_each_header_value_separately() {
    let gw = TestGateway::start(&mock_with(
        "  - {name: rate_limiter, config: {limit: 2, window: 1m, key: 'header:x-tenant'}}\n",
    ))
    .await;
    let http = gw.http();
    let body = chat("mock-echo", "hi", false);
    // The same bearer token throughout: only the header tells the callers apart.
    let as_tenant = |t: &'static str| {
        let (http, body) = (http.clone(), body.clone());
        async move {
            post_with(
                &http,
                &[("authorization", "Bearer shared"), ("x-tenant", t)],
                &body,
            )
            .await
        }
    };
    assert_eq!(as_tenant("acme").await.status, 200);
    assert_eq!(as_tenant("acme").await.status, 200);
    as_tenant("acme")
        .await
        .assert_error(429, "rate_limit_exceeded");
    assert_eq!(as_tenant("globex").await.status, 200);
}

#[tokio::test]
async fn rate_limiter_keyed_globally_shares_one_budget_between_callers() {
    let gw = TestGateway::start(&mock_with(
        "  - {name: rate_limiter, config: {limit: 2, window: 1m, key: global}}\n",
    ))
    .await;
    let http = gw.http();
    let body = chat("mock-echo", "hi", false);
    assert_eq!(post_as(&http, "tok-a", &body).await.status, 200);
    assert_eq!(post_as(&http, "tok-b", &body).await.status, 200);
    post_as(&http, "tok-c", &body)
        .await
        .assert_error(429, "rate_limit_exceeded");
}

// ---------------------------------------------------------------------------------
// token_limiter
// ---------------------------------------------------------------------------------

const TOKEN_LIMIT_10: &str = "  - {name: token_limiter, config: {limit: 10, window: 1m}}\n";

#[tokio::test]
async fn token_limiter_rejects_the_next_request_once_reported_usage_exceeded_the_budget() {
    let gw = TestGateway::start(&mock_with(TOKEN_LIMIT_10)).await;
    let http = gw.http();
    // The echo model reports 6 prompt + 6 completion tokens: over the budget of 10.
    let first = post_as(
        &http,
        "tok",
        &chat("mock-echo", "one two three four five six", false),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["usage"]["total_tokens"], 12);
    let next = post_as(&http, "tok", &chat("mock-echo", "hi", false)).await;
    next.assert_error(429, "rate_limit_exceeded");
    assert!(num(&next, "retry-after") >= 1);
}

#[tokio::test]
async fn token_limiter_asks_a_streaming_upstream_for_usage_the_client_did_not_request() {
    let up =
        MockUpstream::with_script(vec![Reply::StreamUsage(pieces(&["a ", "b ", "c"]), 3)]).await;
    let gw = TestGateway::start(&upstream_with(&up, &["m"], TOKEN_LIMIT_10)).await;
    stream_events(&gw.http(), &chat("m", "hi", true)).await;
    let sent = up.completions()[0].json();
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
}

#[tokio::test]
async fn token_limiter_hides_the_usage_chunk_from_a_client_that_did_not_ask_for_it() {
    let up =
        MockUpstream::with_script(vec![Reply::StreamUsage(pieces(&["a ", "b ", "c"]), 3)]).await;
    let gw = TestGateway::start(&upstream_with(&up, &["m"], TOKEN_LIMIT_10)).await;
    let events = stream_events(&gw.http(), &chat("m", "hi", true)).await;
    assert_eq!(stream_text(&events), "a b c");
    assert_eq!(events.last().unwrap(), "[DONE]");
    for e in &events {
        assert!(!e.contains("\"usage\""), "usage leaked to the client: {e}");
        assert!(!e.contains("\"choices\":[]"), "usage-only chunk sent: {e}");
    }
}

#[tokio::test]
async fn token_limiter_keeps_the_usage_chunk_for_a_client_that_asked_for_it() {
    let up =
        MockUpstream::with_script(vec![Reply::StreamUsage(pieces(&["a ", "b ", "c"]), 3)]).await;
    let gw = TestGateway::start(&upstream_with(&up, &["m"], TOKEN_LIMIT_10)).await;
    let mut body = chat("m", "hi", true);
    body["stream_options"] = json!({"include_usage": true});
    let events = stream_events(&gw.http(), &body).await;
    let usage: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v["choices"] == json!([]))
        .collect();
    assert_eq!(usage.len(), 1, "{events:?}");
    assert_eq!(usage[0]["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn token_limiter_charges_the_usage_of_a_stream_the_client_did_not_ask_usage_for() {
    // The stream reports 1 + 20 tokens (only because the gateway asked for usage);
    // later answers report none, so only the stream can spend the budget of 10.
    let no_usage = json!({"id": "x", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]});
    let up = MockUpstream::with_script(vec![
        Reply::StreamUsage(pieces(&["a ", "b"]), 20),
        Reply::Json(200, no_usage, vec![]),
    ])
    .await;
    let gw = TestGateway::start(&upstream_with(&up, &["m"], TOKEN_LIMIT_10)).await;
    let http = gw.http();
    stream_events(&http, &chat("m", "hi", true)).await;
    // The charge lands when the stream's end is processed, just after the client saw
    // it: ask until the limiter says no (each allowed probe costs nothing).
    let rejected = async {
        loop {
            // No bearer token, like the stream: the same (anonymous) budget.
            let r = post_with(&http, &[], &chat("m", "probe", false)).await;
            if r.status == 429 {
                return r;
            }
            assert_eq!(r.status, 200, "{}", r.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let r = tokio::time::timeout(Duration::from_secs(10), rejected)
        .await
        .expect("the stream's usage was never charged");
    r.assert_error(429, "rate_limit_exceeded");
}

// ---------------------------------------------------------------------------------
// content_filter
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn content_filter_rejects_a_banned_request_before_it_reaches_the_upstream() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: content_filter, config: {banned_patterns: ['(?i)password']}}\n",
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "my PASSWORD is 42", false)).await;
    r.assert_error(400, "content_filter");
    assert!(up.completions().is_empty());
}

#[tokio::test]
async fn content_filter_redacts_a_banned_request_before_it_reaches_the_upstream() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: content_filter, config: {banned_patterns: ['password'], action: redact}}\n",
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "my password is 42", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = up.completions()[0].json();
    assert_eq!(sent["messages"][0]["content"], "my [REDACTED] is 42");
}

#[tokio::test]
async fn content_filter_ends_a_stream_whose_banned_word_is_split_across_chunks() {
    let up = MockUpstream::with_script(vec![Reply::Stream(pieces(&[
        "the pass",
        "word is 42",
        " and more",
    ]))])
    .await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: content_filter, stage: [on_chunk], config: {banned_patterns: [password]}}\n",
    ))
    .await;
    let events = stream_events(&gw.http(), &chat("m", "hi", true)).await;
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "content_filter", "{events:?}");
    assert!(last["error"]["message"].is_string());
    let text = stream_text(&events);
    assert!(!text.contains("word is 42"), "{text}");
    assert!(!text.contains("and more"), "{text}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
}

#[tokio::test]
async fn content_filter_redacts_a_banned_word_split_across_stream_chunks() {
    let up = MockUpstream::with_script(vec![Reply::Stream(pieces(&[
        "the pass",
        "word is ",
        "42",
        ", all else intact",
    ]))])
    .await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: content_filter, stage: [on_chunk], config: {banned_patterns: [password], action: redact}}\n",
    ))
    .await;
    let events = stream_events(&gw.http(), &chat("m", "hi", true)).await;
    assert_eq!(
        stream_text(&events),
        "the [REDACTED] is 42, all else intact"
    );
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn content_filter_rejects_a_banned_non_streamed_reply_at_post_response() {
    let up = MockUpstream::start().await; // echoes the user's text
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: content_filter, stage: post_response, config: {banned_patterns: [password]}}\n",
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "the password is 42", false)).await;
    r.assert_error(400, "content_filter");
    assert!(!r.text().contains("42"), "{}", r.text());
    // The request itself was not filtered (that stage is not configured).
    assert_eq!(up.completions().len(), 1);
}

#[tokio::test]
async fn content_filter_redacts_a_banned_non_streamed_reply_at_post_response() {
    let up = MockUpstream::start().await; // echoes the user's text
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: content_filter, stage: post_response, config: {banned_patterns: [password], action: redact}}\n",
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "the password is 42", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "the [REDACTED] is 42"
    );
    assert_eq!(
        v["usage"]["total_tokens"], 5,
        "the rest of the body is kept"
    );
    let sent = up.completions()[0].json();
    assert_eq!(sent["messages"][0]["content"], "the password is 42");
}

// ---------------------------------------------------------------------------------
// system_prompt and params
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn system_prompt_inject_adds_a_system_message_to_a_request_without_one() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: system_prompt, config: {content: 'Be brief.'}}\n",
    ))
    .await;
    assert_eq!(
        post_as(&gw.http(), "tok", &chat("m", "hi", false))
            .await
            .status,
        200
    );
    let sent = up.completions()[0].json();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
}

#[tokio::test]
async fn system_prompt_inject_keeps_the_clients_own_system_message() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: system_prompt, config: {content: 'Be brief.', mode: inject}}\n",
    ))
    .await;
    let messages =
        json!([{"role": "system", "content": "Mine."}, {"role": "user", "content": "hi"}]);
    let body = json!({"model": "m", "messages": messages});
    assert_eq!(post_as(&gw.http(), "tok", &body).await.status, 200);
    assert_eq!(up.completions()[0].json()["messages"], messages);
}

#[tokio::test]
async fn system_prompt_replace_swaps_the_clients_system_message_for_the_configured_one() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: system_prompt, config: {content: 'Be brief.', mode: replace}}\n",
    ))
    .await;
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": "Mine."}, {"role": "user", "content": "hi"}]});
    assert_eq!(post_as(&gw.http(), "tok", &body).await.status, 200);
    assert_eq!(
        up.completions()[0].json()["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
}

/// Sends `body` through a gateway with one `params` plugin; returns what the upstream got.
async fn through_params(config: &str, body: Value) -> Value {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        &format!("  - {{name: params, config: {config}}}\n"),
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    up.completions()[0].json()
}

#[tokio::test]
async fn params_defaults_fill_only_the_parameters_the_client_left_out() {
    let mut body = chat("m", "hi", false);
    body["temperature"] = json!(0.9);
    let sent = through_params("{defaults: {temperature: 0.2, top_p: 0.5}}", body).await;
    assert_eq!(sent["temperature"], 0.9);
    assert_eq!(sent["top_p"], 0.5);
}

#[tokio::test]
async fn params_overrides_replace_the_clients_values() {
    let mut body = chat("m", "hi", false);
    body["user"] = json!("client-chosen");
    let sent = through_params("{overrides: {user: gateway, seed: 7}}", body).await;
    assert_eq!(sent["user"], "gateway");
    assert_eq!(sent["seed"], 7);
}

#[tokio::test]
async fn params_drop_removes_parameters_before_the_upstream_sees_them() {
    let mut body = chat("m", "hi", false);
    body["logit_bias"] = json!({"50256": -100});
    body["temperature"] = json!(0.3);
    let sent = through_params("{drop: [logit_bias]}", body).await;
    assert!(sent.get("logit_bias").is_none(), "{sent}");
    assert_eq!(sent["temperature"], 0.3);
}

#[tokio::test]
async fn params_reasoning_rewrites_max_tokens_and_the_system_role() {
    let body = json!({"model": "m", "max_tokens": 100, "messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": "u"}]});
    let sent = through_params("{reasoning: true}", body).await;
    assert_eq!(sent["max_completion_tokens"], 100);
    assert!(sent.get("max_tokens").is_none(), "{sent}");
    assert_eq!(
        sent["messages"],
        json!([{"role": "developer", "content": "s"}, {"role": "user", "content": "u"}])
    );
}

#[tokio::test]
async fn a_plugin_limited_to_gpt_models_leaves_other_models_untouched() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["gpt-4o", "llama-3"],
        "  - {name: system_prompt, models: ['gpt-*'], config: {content: 'Be brief.'}}\n",
    ))
    .await;
    let http = gw.http();
    let other = chat("llama-3", "hi", false).to_string();
    let r = within(http.call(
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        other.clone(),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        post_as(&http, "tok", &chat("gpt-4o", "hi", false))
            .await
            .status,
        200
    );
    let seen = up.completions();
    assert_eq!(&seen[0].body[..], other.as_bytes(), "llama-3 was changed");
    assert_eq!(seen[1].json()["messages"][0]["content"], "Be brief.");
}

#[tokio::test]
async fn a_disabled_plugin_does_not_run() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        "  - {name: system_prompt, enabled: false, config: {content: 'Be brief.'}}\n",
    ))
    .await;
    let body = chat("m", "hi", false);
    assert_eq!(post_as(&gw.http(), "tok", &body).await.status, 200);
    assert_eq!(up.completions()[0].json(), body);
}

// ---------------------------------------------------------------------------------
// Client keys and user_headers
// ---------------------------------------------------------------------------------

const ALICE_KEY: &str = "sk-alice-0123456789";

/// Client keys, a passthrough upstream (model `p`), a bearer upstream (model `b`),
/// and these plugin entries.
fn keyed(up: &MockUpstream, plugins: &str) -> String {
    let url = up.base_url();
    format!(
        "keys:\n  - {{name: alice, key: '${{ALICE_KEY}}', user: alice@example.com, groups: [eng, ops]}}\n\
         upstreams:\n  \
           - {{name: pass, base_url: '{url}', models: [p], auth: {{type: passthrough}}}}\n  \
           - {{name: own, base_url: '{url}', models: [b], auth: {{type: bearer, key: upstream-own-key}}}}\n\
         {plugins}"
    )
}

async fn keyed_gateway(up: &MockUpstream, plugins: &str) -> TestGateway {
    TestGateway::start_with_env(&keyed(up, plugins), &[("ALICE_KEY", ALICE_KEY)]).await
}

#[tokio::test]
async fn user_headers_forwards_the_callers_key_name_user_and_groups_upstream() {
    let up = MockUpstream::start().await;
    let gw = keyed_gateway(&up, "plugins:\n  - {name: user_headers}\n").await;
    let r = post_as(&gw.http(), ALICE_KEY, &chat("p", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = &up.completions()[0].headers;
    assert_eq!(h["x-switchyard-user-key"], "alice");
    assert_eq!(h["x-switchyard-user-name"], "alice@example.com");
    assert_eq!(h["x-switchyard-user-groups"], "eng,ops");
}

#[tokio::test]
async fn without_the_user_headers_plugin_no_identity_headers_reach_the_upstream() {
    let up = MockUpstream::start().await;
    let gw = keyed_gateway(&up, "").await;
    let r = post_as(&gw.http(), ALICE_KEY, &chat("p", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = &up.completions()[0].headers;
    assert!(
        !h.keys()
            .any(|k| k.as_str().starts_with("x-switchyard-user")),
        "{h:?}"
    );
}

#[tokio::test]
async fn a_plugin_limited_to_some_keys_leaves_other_callers_untouched() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "keys:\n  - {{name: alice, key: '${{ALICE_KEY}}'}}\n  - {{name: bob, key: sk-bob-0123456789}}\n\
         upstreams:\n  - {{name: up, base_url: '{}', models: [m]}}\n\
         plugins:\n  - {{name: system_prompt, keys: [alice], config: {{content: 'For Alice.'}}}}\n",
        up.base_url()
    );
    let gw = TestGateway::start_with_env(&yaml, &[("ALICE_KEY", ALICE_KEY)]).await;
    let http = gw.http();
    let body = chat("m", "hi", false);
    assert_eq!(post_as(&http, "sk-bob-0123456789", &body).await.status, 200);
    assert_eq!(post_as(&http, ALICE_KEY, &body).await.status, 200);
    let seen = up.completions();
    assert_eq!(seen[0].json(), body, "bob's request was changed");
    assert_eq!(seen[1].json()["messages"][0]["content"], "For Alice.");
}

#[tokio::test]
async fn with_keys_configured_a_request_without_a_key_gets_401() {
    let up = MockUpstream::start().await;
    let gw = keyed_gateway(&up, "plugins:\n  - {name: user_headers}\n").await;
    let http = gw.http();
    let none = post_with(&http, &[], &chat("p", "hi", false)).await;
    none.assert_error(401, "invalid_api_key");
    let wrong = post_as(&http, "sk-not-a-configured-key", &chat("p", "hi", false)).await;
    wrong.assert_error(401, "invalid_api_key");
    assert!(up.completions().is_empty());
}

#[tokio::test]
async fn the_gateway_key_is_never_forwarded_upstream() {
    let up = MockUpstream::start().await;
    let gw = keyed_gateway(&up, "plugins:\n  - {name: user_headers}\n").await;
    let http = gw.http();
    for model in ["p", "b"] {
        let r = post_as(&http, ALICE_KEY, &chat(model, "hi", false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let seen = up.completions();
    // Passthrough forwards the client's own key, never a gateway key.
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "{:?}",
        seen[0].headers
    );
    assert_eq!(seen[1].headers["authorization"], "Bearer upstream-own-key");
    for s in &seen {
        for (name, value) in &s.headers {
            let v = String::from_utf8_lossy(value.as_bytes());
            assert!(
                !v.contains(ALICE_KEY),
                "gateway key sent upstream in `{name}`"
            );
        }
        assert!(!String::from_utf8_lossy(&s.body).contains(ALICE_KEY));
        assert!(!s.uri.contains(ALICE_KEY));
    }
}

// ---------------------------------------------------------------------------------
// The `http` plugin against a real local service
// ---------------------------------------------------------------------------------

/// An `http` plugin entry: `extra` are more flow-map fields (`stage: …, on_error: …`).
fn http_plugin(url: &str, extra: &str) -> String {
    format!("  - {{name: http, {extra}config: {{url: '{url}'}}}}\n")
}

#[tokio::test]
async fn http_plugin_service_receives_the_stage_model_and_request_body() {
    let svc = PluginService::start().await;
    svc.on("/inlet", Behavior::Continue);
    let gw = TestGateway::start(&mock_with(&http_plugin(&svc.url("/inlet"), ""))).await;
    let r = post_as(&gw.http(), "tok", &chat("mock-echo", "hello there", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "hello there");
    let calls = svc.received("/inlet");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["stage"], "pre_request");
    assert_eq!(calls[0]["model"], "mock-echo");
    assert_eq!(calls[0]["stream"], false);
    assert_eq!(calls[0]["body"], chat("mock-echo", "hello there", false));
    assert_eq!(
        calls[0]["request_id"],
        r.headers["x-request-id"].to_str().unwrap()
    );
}

#[tokio::test]
async fn http_inlet_modify_changes_what_the_upstream_receives() {
    let up = MockUpstream::start().await;
    let svc = PluginService::start().await;
    let rewritten = json!({"model": "m", "temperature": 0,
        "messages": [{"role": "user", "content": "rewritten by the plugin"}]});
    svc.on("/inlet", Behavior::Modify(rewritten.clone()));
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        &http_plugin(&svc.url("/inlet"), ""),
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "original", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.completions()[0].json(), rewritten);
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "rewritten by the plugin"
    );
}

#[tokio::test]
async fn http_inlet_reject_answers_with_the_services_status_and_message() {
    let up = MockUpstream::start().await;
    let svc = PluginService::start().await;
    svc.on(
        "/inlet",
        Behavior::Reject(451, "blocked by house policy", "policy_violation"),
    );
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        &http_plugin(&svc.url("/inlet"), ""),
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "hi", false)).await;
    let message = r.assert_error(451, "policy_violation");
    assert_eq!(message, "blocked by house policy");
    assert!(up.completions().is_empty());
}

#[tokio::test]
async fn http_outlet_modify_changes_the_non_streamed_response() {
    let svc = PluginService::start().await;
    let replaced = json!({"id": "chatcmpl-plugin", "object": "chat.completion", "created": 1,
        "model": "mock-echo", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "said by the plugin"}}]});
    svc.on("/outlet", Behavior::Modify(replaced.clone()));
    let gw = TestGateway::start(&mock_with(&http_plugin(
        &svc.url("/outlet"),
        "stage: post_response, ",
    )))
    .await;
    let r = post_as(
        &gw.http(),
        "tok",
        &chat("mock-echo", "original words", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), replaced);
    let calls = svc.received("/outlet");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["stage"], "post_response");
    assert_eq!(
        calls[0]["response"]["choices"][0]["message"]["content"],
        "original words"
    );
    assert_eq!(calls[0]["usage"]["total_tokens"], 4);
}

#[tokio::test]
async fn an_outlet_http_plugin_sees_a_streams_text_and_usage_once_it_ended() {
    let svc = PluginService::start().await;
    svc.on("/outlet", Behavior::Continue);
    let gw = TestGateway::start(&mock_with(&http_plugin(
        &svc.url("/outlet"),
        "stage: post_response, ",
    )))
    .await;
    let events = stream_events(&gw.http(), &chat("mock-echo", "three little words", true)).await;
    assert_eq!(stream_text(&events), "three little words");
    let calls = svc.wait_received("/outlet", 1).await;
    assert_eq!(calls[0]["stage"], "post_response");
    assert_eq!(calls[0]["streamed"], true);
    assert_eq!(calls[0]["content"], "three little words");
    assert_eq!(calls[0]["usage"]["total_tokens"], 6);
}

#[tokio::test]
async fn a_failing_fail_open_http_plugin_lets_the_request_through() {
    let svc = PluginService::start().await;
    svc.on("/broken", Behavior::Status(500));
    let gw = TestGateway::start(&mock_with(&http_plugin(
        &svc.url("/broken"),
        "on_error: fail_open, ",
    )))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("mock-echo", "still here", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "still here");
    assert_eq!(svc.received("/broken").len(), 1);
}

#[tokio::test]
async fn a_failing_fail_closed_http_plugin_answers_500_plugin_error() {
    let up = MockUpstream::start().await;
    let svc = PluginService::start().await;
    svc.on("/broken", Behavior::Status(500));
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        &http_plugin(&svc.url("/broken"), "on_error: fail_closed, "),
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "hi", false)).await;
    r.assert_error(500, "plugin_error");
    assert!(up.completions().is_empty());
}

#[tokio::test]
async fn a_hanging_fail_open_http_plugin_times_out_and_the_request_goes_on() {
    let svc = PluginService::start().await;
    svc.on("/slow", Behavior::Hang);
    let gw = TestGateway::start(&mock_with(&http_plugin(
        &svc.url("/slow"),
        "timeout: 200ms, on_error: fail_open, ",
    )))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("mock-echo", "go on", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "go on");
    svc.wait_abandoned("/slow", 1).await;
}

#[tokio::test]
async fn a_hanging_fail_closed_http_plugin_times_out_into_500_plugin_error() {
    let up = MockUpstream::start().await;
    let svc = PluginService::start().await;
    svc.on("/slow", Behavior::Hang);
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        &http_plugin(&svc.url("/slow"), "timeout: 200ms, on_error: fail_closed, "),
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "hi", false)).await;
    r.assert_error(500, "plugin_error");
    assert!(up.completions().is_empty());
}

#[tokio::test]
async fn an_error_stage_http_plugin_replaces_the_error_body_of_an_unknown_model() {
    let svc = PluginService::start().await;
    let custom = json!({"error": {"message": "No such model here; try mock-echo.",
        "type": "invalid_request_error", "param": "model", "code": "custom_model_not_found"}});
    svc.on("/errors", Behavior::Modify(custom.clone()));
    let gw = TestGateway::start(&mock_with(&http_plugin(
        &svc.url("/errors"),
        "stage: error, ",
    )))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("no-such-model", "hi", false)).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json(), custom);
    let calls = svc.received("/errors");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["stage"], "error");
    assert_eq!(calls[0]["status"], 404);
    assert_eq!(calls[0]["error"]["error"]["code"], "model_not_found");
}

// ---------------------------------------------------------------------------------
// Order and parallel groups
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn plugins_run_by_priority_lowest_first_whatever_their_config_order() {
    let svc = PluginService::start().await;
    svc.on("/late", Behavior::Continue);
    svc.on(
        "/early",
        Behavior::Modify(chat("mock-echo", "set by the early plugin", false)),
    );
    let plugins = format!(
        "  - {{name: http, id: late, priority: 10, config: {{url: '{}'}}}}\n  \
           - {{name: http, id: early, priority: 1, config: {{url: '{}'}}}}\n",
        svc.url("/late"),
        svc.url("/early")
    );
    let gw = TestGateway::start(&mock_with(&plugins)).await;
    let r = post_as(&gw.http(), "tok", &chat("mock-echo", "original", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        svc.received("/early")[0]["body"]["messages"][0]["content"],
        "original"
    );
    assert_eq!(
        svc.received("/late")[0]["body"]["messages"][0]["content"],
        "set by the early plugin"
    );
}

/// Two `http` plugins in one parallel group (same priority), at these service paths.
fn parallel_pair(svc: &PluginService, a: &str, b: &str, extra: &str) -> String {
    format!(
        "  - {{name: http, id: pa, parallel: true, priority: 5, {extra}config: {{url: '{}'}}}}\n  \
           - {{name: http, id: pb, parallel: true, priority: 5, {extra}config: {{url: '{}'}}}}\n",
        svc.url(a),
        svc.url(b)
    )
}

#[tokio::test]
async fn parallel_http_plugins_of_one_priority_call_their_services_concurrently() {
    let svc = PluginService::start().await;
    // Each call waits for the other to arrive (with a fallback, so sequential calls
    // would still finish — and be seen one at a time).
    svc.on("/a", Behavior::Gather(2, Box::new(Behavior::Continue)));
    svc.on("/b", Behavior::Gather(2, Box::new(Behavior::Continue)));
    let gw = TestGateway::start(&mock_with(&parallel_pair(&svc, "/a", "/b", ""))).await;
    let r = post_as(&gw.http(), "tok", &chat("mock-echo", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((svc.received("/a").len(), svc.received("/b").len()), (1, 1));
    assert_eq!(
        svc.max_in_flight(),
        2,
        "the two plugins ran one after the other"
    );
}

#[tokio::test]
async fn a_parallel_rejection_cancels_the_other_members_of_its_group() {
    let up = MockUpstream::start().await;
    let svc = PluginService::start().await;
    // `/no` rejects once `/hang` has its call too; `/hang` would never answer, and its
    // timeout is far away: only cancellation can end that call.
    svc.on(
        "/no",
        Behavior::Gather(2, Box::new(Behavior::Reject(403, "not allowed", "blocked"))),
    );
    svc.on("/hang", Behavior::Hang);
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        &parallel_pair(&svc, "/no", "/hang", "timeout: 1h, "),
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("m", "hi", false)).await;
    r.assert_error(403, "blocked");
    assert_eq!(svc.received("/hang").len(), 1);
    svc.wait_abandoned("/hang", 1).await;
    assert!(up.completions().is_empty());
}

#[tokio::test]
async fn a_parallel_http_plugin_cannot_change_the_request_body() {
    let up = MockUpstream::start().await;
    let svc = PluginService::start().await;
    svc.on("/a", Behavior::Continue);
    svc.on(
        "/b",
        Behavior::Modify(chat("m", "changed in parallel", false)),
    );
    let gw = TestGateway::start(&upstream_with(
        &up,
        &["m"],
        &parallel_pair(&svc, "/a", "/b", ""),
    ))
    .await;
    let body = chat("m", "original", false);
    let r = post_as(&gw.http(), "tok", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(svc.received("/b").len(), 1);
    assert_eq!(up.completions()[0].json(), body);
}

#[tokio::test]
async fn a_parallel_plugin_still_adds_its_response_headers() {
    let svc = PluginService::start().await;
    svc.on("/a", Behavior::Continue);
    let plugins = format!(
        "  - {{name: rate_limiter, parallel: true, priority: 5, config: {{limit: 3, window: 1m}}}}\n  \
           - {{name: http, parallel: true, priority: 5, config: {{url: '{}'}}}}\n",
        svc.url("/a")
    );
    let gw = TestGateway::start(&mock_with(&plugins)).await;
    let r = post_as(&gw.http(), "tok", &chat("mock-echo", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(num(&r, "x-ratelimit-limit"), 3);
    assert_eq!(num(&r, "x-ratelimit-remaining"), 2);
    assert_eq!(svc.received("/a").len(), 1);
}

// ---------------------------------------------------------------------------------
// Isolation
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_fail_open_http_plugin_whose_service_is_down_does_not_stop_requests() {
    let gw = TestGateway::start(&mock_with(&http_plugin(
        &dead_url(),
        "id: down, on_error: fail_open, ",
    )))
    .await;
    let http = gw.http();
    for i in 0..5 {
        let text = format!("request {i}");
        let r = post_as(&http, "tok", &chat("mock-echo", &text, false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["choices"][0]["message"]["content"], text.as_str());
    }
    let events = stream_events(&http, &chat("mock-echo", "a stream too", true)).await;
    assert_eq!(stream_text(&events), "a stream too");
    assert!(gw.logs().contains("plugin failed"), "{}", gw.logs());
}

#[tokio::test]
async fn the_gateway_keeps_serving_after_plugin_timeouts_and_failures() {
    let svc = PluginService::start().await;
    svc.on("/slow", Behavior::Hang);
    svc.on("/broken", Behavior::Status(502));
    let plugins = format!(
        "{}{}",
        http_plugin(&svc.url("/slow"), "id: slow, timeout: 100ms, "),
        http_plugin(&svc.url("/broken"), "id: broken, ")
    );
    let gw = TestGateway::start(&mock_with(&plugins)).await;
    let http = gw.http();
    let burst: Vec<_> = (0..8)
        .map(|i| {
            let http = http.clone();
            async move { post_as(&http, "tok", &chat("mock-echo", &format!("n{i}"), false)).await }
        })
        .collect();
    for r in within(futures_join_all(burst)).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(svc.received("/broken").len(), 8);
    let health = within(http.get("/healthz")).await;
    assert_eq!(health.status, 200);
    let r = post_as(&http, "tok", &chat("mock-echo", "after", false)).await;
    assert_eq!(r.json()["choices"][0]["message"]["content"], "after");
}

/// Awaits every future (concurrently, on spawned tasks); results in order.
async fn futures_join_all<F>(futs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

// ---------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------

/// One problem per plugin entry, each in a different place.
const BAD_PLUGINS: &str = "upstreams:\n  - {name: mock, dialect: mock}\nplugins:\n  \
    - {name: no_such_plugin}\n  \
    - {name: content_filter, config: {banned_patterns: ['(unclosed', 'fine']}}\n  \
    - {name: rate_limiter, config: {limit: 2, window: soon}}\n  \
    - {name: system_prompt, config: {content: hi, colour: red}}\n  \
    - {name: system_prompt, id: sp2, parallel: true, config: {content: hi}}\n";

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_every_plugin_problem_with_its_yaml_path() {
    let path = temp_file("plugins.yaml", BAD_PLUGINS);
    let (code, out, err) = run(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(code, 64, "stdout: {out}\nstderr: {err}");
    for expected in [
        "plugins[0].name: unknown plugin `no_such_plugin`",
        "plugins[1].config.banned_patterns[0]: not a valid regex",
        "plugins[2].config.window",
        "plugins[3].config.colour: unknown field `colour`",
        "plugins[4].parallel",
    ] {
        assert!(err.contains(expected), "`{expected}` missing from:\n{err}");
    }
    assert!(!err.contains("banned_patterns[1]"), "{err}");
}

#[test]
fn serve_with_a_bad_plugin_config_exits_64_with_one_line_naming_every_problem() {
    let yaml = "upstreams:\n  - {name: mock, dialect: mock}\nplugins:\n  \
        - {name: no_such_plugin}\n  \
        - {name: rate_limiter, config: {limit: 2, window: soon}}\n  \
        - {name: system_prompt, config: {content: hi, colour: red}}\n  \
        - {name: params, parallel: true, config: {drop: [seed]}}\n";
    let path = temp_file("plugins.yaml", yaml);
    let (code, _, err) = run(&[
        "serve",
        "-c",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 64, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for expected in [
        "plugins[0].name",
        "plugins[1].config.window",
        "plugins[2].config.colour",
        "plugins[3].parallel",
    ] {
        assert!(err.contains(expected), "`{expected}` missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn serve_reports_a_bad_plugin_regex_on_one_line() {
    let yaml = "upstreams:\n  - {name: mock, dialect: mock}\nplugins:\n  \
        - {name: content_filter, config: {banned_patterns: ['(unclosed']}}\n";
    let path = temp_file("plugins.yaml", yaml);
    let (code, _, err) = run(&[
        "serve",
        "-c",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("plugins[0].config.banned_patterns[0]"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
