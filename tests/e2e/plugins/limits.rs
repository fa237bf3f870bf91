//! `rate_limiter` and `token_limiter`: over-limit rejections with their headers, how
//! budgets are keyed, and token usage charged from replies and streams.

use super::*;
use crate::support::*;
use serde_json::json;
use std::time::Duration;

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
