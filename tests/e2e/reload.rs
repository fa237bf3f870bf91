//! Hot reload: SIGHUP and `POST /admin/reload` swap in a whole new config; a bad file is
//! rejected with its YAML path while the old config keeps serving; streams in flight
//! finish on the config they started with; no request fails while reloads alternate
//! under load; an unchanged upstream keeps its health across a reload.

use crate::support::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Two upstreams; `m` is routed to `to` (the upstream model `x` there), `ms` streams.
fn routed(a: &MockUpstream, b: &MockUpstream, to: &str) -> String {
    format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [x, s]}}\n  - {{name: b, base_url: '{}', models: [x, s]}}\nroutes:\n  - {{model: m, targets: [{{upstream: {to}, model: x}}]}}\n  - {{model: ms, targets: [{{upstream: {to}, model: s}}]}}\nadmin: {{}}\n",
        a.base_url(),
        b.base_url()
    )
}

/// Chat for `x`, a short stream for `s`.
fn mixed() -> Vec<Reply> {
    vec![Reply::ForModel(
        "s",
        Box::new(Reply::Stream(vec!["a".into(), "b".into()])),
        Box::new(Reply::Chat),
    )]
}

async fn reload(gw: &TestGateway) -> Answer {
    gw.admin_http()
        .call("POST", "/admin/reload", &[], bytes::Bytes::new())
        .await
}

#[tokio::test]
async fn sighup_moves_a_model_to_the_upstream_the_new_config_names() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&routed(&a, &b, "a")).await;
    let http = gw.http();
    assert_eq!(
        http.post("/v1/chat/completions", &chat("m", "hi", false))
            .await
            .status,
        200
    );
    assert_eq!((a.completions().len(), b.completions().len()), (1, 0));

    gw.rewrite_config(&routed(&a, &b, "b"));
    gw.hangup();
    gw.logs_with("config reloaded").await;
    assert_eq!(
        http.post("/v1/chat/completions", &chat("m", "hi", false))
            .await
            .status,
        200
    );
    assert_eq!((a.completions().len(), b.completions().len()), (1, 1));
    gw.scrape_until(&["switchyard_config_reloads_total{outcome=\"ok\"} 1"])
        .await;
}

#[tokio::test]
async fn admin_reload_answers_with_the_new_generation() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&routed(&a, &b, "a")).await;
    gw.rewrite_config(&routed(&a, &b, "b"));
    let answer = reload(&gw).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let v = answer.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["generation"], 2);
    // Both upstreams kept their settings, so both kept their state.
    assert_eq!(v["kept_upstreams"], serde_json::json!(["a", "b"]));
    gw.http()
        .post("/v1/chat/completions", &chat("m", "hi", false))
        .await;
    assert_eq!(b.completions().len(), 1);
}

#[tokio::test]
async fn a_bad_config_is_rejected_with_its_yaml_paths_and_the_old_one_keeps_serving() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&routed(&a, &b, "a")).await;
    // Upstream b is gone, a route names a ghost, and a setting is out of range.
    let broken = format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [x]}}\nroutes:\n  - {{model: m, targets: [{{upstream: b, model: x}}]}}\n  - {{model: z, targets: [{{upstream: ghost}}]}}\nrouting: {{max_attempts: 0}}\nadmin: {{}}\n",
        a.base_url()
    );
    gw.rewrite_config(&broken);
    let answer = reload(&gw).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    let v = answer.json();
    assert_eq!(v["status"], "error");
    assert_eq!(v["generation"], 1);
    let paths: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"routes[0].targets[0].upstream"), "{v}");
    assert!(paths.contains(&"routes[1].targets[0].upstream"), "{v}");
    assert!(paths.contains(&"routing.max_attempts"), "{v}");

    // Not YAML at all, through SIGHUP: logged, counted, nothing changes.
    gw.rewrite_config("upstreams: [\n");
    gw.hangup();
    let logs = gw.logs_with("config reload rejected").await;
    assert!(logs.contains("routes[0].targets[0].upstream"), "{logs}");
    let answer = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "hi", false))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!((a.completions().len(), b.completions().len()), (1, 0));
    gw.scrape_until(&["switchyard_config_reloads_total{outcome=\"error\"} 2"])
        .await;
}

#[tokio::test]
async fn a_stream_in_flight_finishes_after_a_reload_removes_its_upstream() {
    let a = MockUpstream::with_script(vec![Reply::StreamHold(
        vec!["one ".into(), "two".into()],
        1,
    )])
    .await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&routed(&a, &b, "a")).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            chat("ms", "hi", true).to_string(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = next_data(&mut body).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("one"));

    // The new config has no upstream `a` at all.
    gw.rewrite_config(&format!(
        "upstreams:\n  - {{name: b, base_url: '{}', models: [x, s]}}\nroutes:\n  - {{model: ms, targets: [{{upstream: b, model: s}}]}}\nadmin: {{}}\n",
        b.base_url()
    ));
    let answer = reload(&gw).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    a.release();
    let rest = String::from_utf8(read_all(&mut body).await.unwrap()).unwrap();
    assert!(rest.contains("two"), "{rest}");
    assert!(rest.contains("[DONE]"), "{rest}");
    assert!(!rest.contains("error"), "{rest}");
}

#[tokio::test]
async fn no_request_fails_while_reloads_alternate_under_load() {
    let a = MockUpstream::with_script(mixed()).await;
    let b = MockUpstream::with_script(mixed()).await;
    let configs = [routed(&a, &b, "a"), routed(&a, &b, "b")];
    let gw = TestGateway::start(&configs[0]).await;
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..8 {
        let http = gw.http();
        let (failures, done, stop) = (failures.clone(), done.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let stream = (i + n).is_multiple_of(2);
                n += 1;
                let model = if stream { "ms" } else { "m" };
                let resp = http
                    .send(
                        "POST",
                        "/v1/chat/completions",
                        &[("content-type", "application/json")],
                        chat(model, "hi", stream).to_string(),
                    )
                    .await;
                let ok = resp.status() == 200;
                let mut body = resp.into_body();
                let ok = match read_all(&mut body).await {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        ok && if stream {
                            text.contains("[DONE]") && !text.contains("\"error\"")
                        } else {
                            text.contains("chat.completion")
                        }
                    }
                    Err(_) => false,
                };
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        gw.rewrite_config(&configs[(i + 1) % 2]);
        let answer = reload(&gw).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let done = done.load(Ordering::Relaxed);
    assert!(done > 100, "only {done} requests ran");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {done}");
    assert!(!a.completions().is_empty() && !b.completions().is_empty());
}

fn cooling_config(a: &MockUpstream, b: &MockUpstream, a_timeout: &str) -> String {
    format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [x], first_byte_timeout: {a_timeout}}}\n  - {{name: b, base_url: '{}', models: [y]}}\nrouting: {{failures_before_cooldown: 1, cooldown: 60s, max_attempts: 1}}\nadmin: {{}}\n",
        a.base_url(),
        b.base_url()
    )
}

fn cooling_models(v: &serde_json::Value, upstream: &str) -> Vec<String> {
    v["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == upstream)
        .unwrap()["cooling_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_unchanged_upstream_stays_cooling_across_a_reload_and_a_changed_one_starts_fresh() {
    let a = MockUpstream::with_script(vec![Reply::Json(
        500,
        serde_json::json!({"error": {"message": "down", "type": "server_error", "param": null, "code": null}}),
        vec![],
    )])
    .await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&cooling_config(&a, &b, "30s")).await;
    gw.http()
        .post("/v1/chat/completions", &chat("x", "hi", false))
        .await;
    let admin = gw.admin_http();
    let before = admin.get("/admin/upstreams").await.json();
    assert_eq!(cooling_models(&before, "a"), vec!["x"], "{before}");

    // Only b changes: a keeps its cool-down.
    gw.rewrite_config(&cooling_config(&a, &b, "30s").replace("models: [y]", "models: [y, z]"));
    assert_eq!(reload(&gw).await.status, 200);
    let after = admin.get("/admin/upstreams").await.json();
    assert_eq!(after["generation"], 2);
    assert_eq!(cooling_models(&after, "a"), vec!["x"], "{after}");
    let remaining = after["upstreams"][0]["cooling_models"][0]["cooldown_remaining_seconds"]
        .as_f64()
        .unwrap();
    assert!(remaining > 50.0 && remaining <= 60.0, "{after}");

    // a's own settings change: it starts with a clean slate.
    gw.rewrite_config(&cooling_config(&a, &b, "31s"));
    assert_eq!(reload(&gw).await.status, 200);
    let fresh = admin.get("/admin/upstreams").await.json();
    assert!(cooling_models(&fresh, "a").is_empty(), "{fresh}");
}

#[tokio::test]
async fn with_watch_on_a_changed_file_is_reloaded_and_restart_only_settings_are_kept() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let watched = |to: &str, workers: u32, body: u32| {
        format!(
            "server: {{watch: true, workers: {workers}, max_body_bytes: {body}}}\n{}",
            routed(&a, &b, to)
        )
    };
    let gw = TestGateway::start(&watched("a", 2, 100_000)).await;
    gw.http()
        .post("/v1/chat/completions", &chat("m", "hi", false))
        .await;
    assert_eq!(a.completions().len(), 1);

    gw.rewrite_config(&watched("b", 3, 200));
    let logs = gw.logs_with("config reloaded").await;
    assert!(
        logs.contains("trigger=\"watch\"") || logs.contains("trigger=watch"),
        "{logs}"
    );
    let logs = gw
        .logs_with("server.workers changed: takes effect after a restart")
        .await;
    assert!(!logs.contains("config reload rejected"), "{logs}");
    gw.http()
        .post("/v1/chat/completions", &chat("m", "hi", false))
        .await;
    assert_eq!(b.completions().len(), 1, "routed by the new file");
    let config = gw.admin_http().get("/admin/config").await.json();
    assert_eq!(
        config["config"]["server"]["workers"], 2,
        "the running value"
    );
}

#[tokio::test]
async fn an_unchanged_rate_limiter_keeps_its_counts_across_a_reload() {
    let a = MockUpstream::start().await;
    let limited = |models: &str, limit: u32| {
        format!(
            "upstreams:\n  - {{name: a, base_url: '{}', models: [{models}]}}\nplugins:\n  - name: rate_limiter\n    config: {{limit: {limit}, window: 1m, key: global}}\nadmin: {{}}\n",
            a.base_url()
        )
    };
    let gw = TestGateway::start(&limited("x", 2)).await;
    let http = gw.http();
    for _ in 0..2 {
        assert_eq!(
            http.post("/v1/chat/completions", &chat("x", "hi", false))
                .await
                .status,
            200
        );
    }
    // Another part of the config changes; the limiter's settings do not.
    gw.rewrite_config(&limited("x, y", 2));
    assert_eq!(reload(&gw).await.status, 200);
    http.post("/v1/chat/completions", &chat("x", "hi", false))
        .await
        .assert_error(429, "rate_limit_exceeded");
    // New settings: a new limiter.
    gw.rewrite_config(&limited("x, y", 3));
    assert_eq!(reload(&gw).await.status, 200);
    assert_eq!(
        http.post("/v1/chat/completions", &chat("x", "hi", false))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_sighup_right_after_start_does_not_end_the_process() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let mut gw = TestGateway::start(&routed(&a, &b, "a")).await;
    gw.hangup();
    gw.hangup();
    let answer = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "hi", false))
        .await;
    assert_eq!(answer.status, 200);
    gw.terminate();
    assert_eq!(gw.wait_exit().await, Some(0), "{}", gw.logs());
}
