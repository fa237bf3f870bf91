//! A `pre_request` plugin that changes `model` moves the request: routing follows the
//! body as the plugins left it (Open WebUI's router pipelines), the upstream gets the new
//! model's served name, an unknown new model is a 404, and `models:` selectors keep
//! matching the model the client asked for.

use super::*;
use crate::support::*;
use serde_json::{json, Value};

/// Upstream `one` serves `model-a`; upstream `two` serves `model-b` and, through the
/// `smart` route, `served-b`. Then these `plugins:` entries.
fn two_upstreams(one: &MockUpstream, two: &MockUpstream, plugins: &str) -> String {
    config_for(
        &[
            ("one", &one.base_url(), &["model-a"]),
            ("two", &two.base_url(), &["model-b", "served-b"]),
        ],
        &format!(
            "routes:\n  - {{model: smart, targets: [{{upstream: two, model: served-b}}]}}\nplugins:\n{plugins}"
        ),
    )
}

/// An upstream whose every answer says it came from `name`.
async fn answering_as(name: &str) -> MockUpstream {
    let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
        "model": name, "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": format!("from {name}")}}]});
    MockUpstream::with_script(vec![Reply::Json(200, body, vec![])]).await
}

fn content(r: &Answer) -> Value {
    r.json()["choices"][0]["message"]["content"].clone()
}

#[tokio::test]
async fn a_params_override_of_model_routes_to_the_new_models_upstream() {
    let (one, two) = (answering_as("one").await, answering_as("two").await);
    // The selector names the client's model: it must still match after the rewrite.
    let plugin = "  - {name: params, models: [model-a], config: {overrides: {model: smart}}}\n";
    let gw = TestGateway::start(&two_upstreams(&one, &two, plugin)).await;
    let r = post_as(&gw.http(), "tok", &chat("model-a", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(content(&r), "from two");
    assert!(
        one.completions().is_empty(),
        "the client's model was routed"
    );
    let sent = two.completions();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json()["model"], "served-b");
    assert_eq!(sent[0].json()["messages"][0]["content"], "hi");
}

#[tokio::test]
async fn a_plugin_that_picks_an_unknown_model_gets_model_not_found() {
    let (one, two) = (answering_as("one").await, answering_as("two").await);
    let plugin = "  - {name: params, config: {overrides: {model: no-such-model}}}\n";
    let gw = TestGateway::start(&two_upstreams(&one, &two, plugin)).await;
    let r = post_as(&gw.http(), "tok", &chat("model-a", "hi", false)).await;
    let message = r.assert_error(404, "model_not_found");
    assert!(message.contains("no-such-model"), "{message}");
    assert!(one.completions().is_empty() && two.completions().is_empty());
}

#[tokio::test]
async fn an_http_plugin_answering_modify_with_another_model_routes_there() {
    let (one, two) = (answering_as("one").await, answering_as("two").await);
    let svc = PluginService::start().await;
    let picked = json!({"model": "model-b",
        "messages": [{"role": "user", "content": "picked by the router"}]});
    svc.on("/inlet", Behavior::Modify(picked.clone()));
    let gw = TestGateway::start(&two_upstreams(
        &one,
        &two,
        &http_plugin(&svc.url("/inlet"), ""),
    ))
    .await;
    let r = post_as(&gw.http(), "tok", &chat("model-a", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(content(&r), "from two");
    assert!(
        one.completions().is_empty(),
        "the client's model was routed"
    );
    assert_eq!(two.completions()[0].json(), picked);
    // The service was told the model the client asked for.
    assert_eq!(svc.received("/inlet")[0]["model"], "model-a");
}

#[tokio::test]
async fn a_free_form_model_a_plugin_moved_is_not_a_metrics_label() {
    let (one, two) = (answering_as("one").await, answering_as("two").await);
    let plugin = "  - {name: params, config: {overrides: {model: model-b}}}\n";
    let gw = TestGateway::start(&two_upstreams(&one, &two, plugin)).await;
    let r = post_as(&gw.http(), "tok", &chat("router-xyz-123", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(two.completions()[0].json()["model"], "model-b");
    let text = gw
        .scrape_until(&[
            r#"switchyard_requests_total{endpoint="chat",model="other",status_class="2xx"} 1"#,
        ])
        .await;
    assert!(!text.contains("router-xyz-123"), "{text}");
}
