//! The `http` plugin against a real local service: what the service receives, inlet
//! and outlet changes, the error stage, and failures and timeouts per `on_error`.

use super::*;
use crate::support::*;
use serde_json::json;

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
