//! The built-ins that read or rewrite what is said: `content_filter` on requests,
//! replies and split stream chunks; `system_prompt`; and `params`.

use super::*;
use crate::support::*;
use serde_json::{json, Value};

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
