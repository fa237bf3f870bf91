//! Which plugins run and how: scoping by model and `enabled`, priority order,
//! parallel groups, and isolation from failing or slow plugins.

use super::*;
use crate::support::*;

// ---------------------------------------------------------------------------------
// Scope: which requests a plugin runs for
// ---------------------------------------------------------------------------------

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
    gw.logs_with("plugin failed").await;
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

/// A URL nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/plugin")
}
