//! Failover policy beyond the single request: health kept per target (upstream +
//! model), the retry budget that stops an outage from multiplying the load,
//! `retry_on_timeout`, and `x-ratelimit-remaining-requests: 0` read as a rest.

use crate::support::*;
use serde_json::json;

fn limited(seconds: &str) -> Reply {
    Reply::Json(
        429,
        json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": null}}),
        vec![("retry-after", seconds.to_owned())],
    )
}

#[tokio::test]
async fn one_model_s_429s_leave_the_upstream_s_other_models_in_rotation() {
    let a = MockUpstream::with_script(vec![Reply::ForModel(
        "m1",
        Box::new(limited("30")),
        Box::new(Reply::Chat),
    )])
    .await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [m1, m2]}}\n  - {{name: b, base_url: '{}', models: [m2]}}\n",
        a.base_url(),
        b.base_url()
    ))
    .await;
    let http = gw.http();
    let r = http
        .post("/v1/chat/completions", &chat("a/m1", "x", false))
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    // m2 on a is another target: still in rotation beside b.
    for _ in 0..4 {
        let r = http
            .post("/v1/chat/completions", &chat("m2", "y", false))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let on_a = a
        .completions()
        .iter()
        .filter(|s| s.json()["model"] == "m2")
        .count();
    assert_eq!(on_a, 2, "round robin over a and b goes on for m2");
    assert_eq!(b.completions().len(), 2);
    gw.scrape_until(&[
        "switchyard_upstream_target_cooldown{model=\"m1\",upstream=\"a\"} 1",
        "switchyard_upstream_cooldown{upstream=\"a\"} 0",
    ])
    .await;
    let ready = http.get("/readyz?verbose").await;
    assert_eq!(
        ready.json()["upstreams"][0],
        json!({"name": "a", "available": true, "cooling_models": ["m1"]})
    );
}

#[tokio::test]
async fn the_retry_budget_bounds_failovers_when_every_target_fails() {
    let dead: Vec<MockUpstream> = futures_util::future::join_all((0..6).map(|_| {
        MockUpstream::with_script(vec![Reply::Json(
            500,
            json!({"error": {"message": "down", "type": "server_error", "param": null, "code": null}}),
            vec![],
        )])
    }))
    .await;
    let ups: String = dead
        .iter()
        .enumerate()
        .map(|(i, u)| {
            format!(
                "  - {{name: u{i}, base_url: '{}', models: [m]}}\n",
                u.base_url()
            )
        })
        .collect();
    // No cool-down in the way, and no minimum: only the ratio decides.
    let gw = TestGateway::start(&format!(
        "upstreams:\n{ups}routing:\n  max_attempts: 6\n  failures_before_cooldown: 100000\n  retry_budget: {{ratio: 0.2, min_per_second: 0, window: 60s}}\n"
    ))
    .await;
    let http = gw.http();
    let body = chat("m", "x", false);
    for _ in 0..10 {
        let batch = (0..10).map(|_| http.post("/v1/chat/completions", &body));
        for r in futures_util::future::join_all(batch).await {
            assert_eq!(r.status, 502, "{}", r.text());
        }
    }
    let attempts: usize = dead.iter().map(|u| u.completions().len()).sum();
    // 100 first attempts, and failovers up to 20 % of them (a few more may slip in
    // between the check and the count under concurrency); without a budget, 600.
    assert!(
        (110..=126).contains(&attempts),
        "{attempts} attempts for 100 requests"
    );
    let text = gw.scrape().await;
    let exhausted: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_retry_budget_exhausted_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(exhausted >= 70.0, "{exhausted}");
    let logs = gw.settled_logs().await;
    let spent = logs.matches("retry budget spent").count();
    // One line a second at most, saying how many it stands for.
    assert!((1..=5).contains(&spent), "{spent} lines");
    assert!(logs.contains("refused_since_last_line="), "{logs}");
    // Failed requests say in the access log how many attempts they made.
    let access: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("switchyard::access") && l.contains("status=502"))
        .collect();
    assert_eq!(access.len(), 100);
    assert!(
        access.iter().all(|l| !l.contains("attempts=0")),
        "{}",
        access[0]
    );
    assert!(
        access.iter().any(|l| l.contains("attempts=2")),
        "{}",
        access[0]
    );
}

#[tokio::test]
async fn retry_on_timeout_off_answers_504_without_starting_a_second_generation() {
    let a = MockUpstream::with_script(vec![Reply::Hang]).await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [x], first_byte_timeout: 300ms}}\n  - {{name: b, base_url: '{}', models: [y]}}\nrouting: {{retry_on_timeout: false}}\nroutes:\n  - {{model: careful, targets: [{{upstream: a, model: x}}], fallbacks: [b/y]}}\n  - {{model: eager, targets: [{{upstream: a, model: x}}], fallbacks: [b/y], retry_on_timeout: true}}\n",
        a.base_url(),
        b.base_url()
    ))
    .await;
    let http = gw.http();
    http.post("/v1/chat/completions", &chat("careful", "x", false))
        .await
        .assert_error(504, "upstream_timeout");
    assert_eq!(b.completions().len(), 0, "no second generation on b");
    let r = http
        .post("/v1/chat/completions", &chat("eager", "x", false))
        .await;
    assert_eq!(r.status, 200, "the route's own setting wins: {}", r.text());
    assert_eq!(b.completions().len(), 1);
    assert_eq!(a.completions().len(), 2, "one attempt at a per request");
}

#[tokio::test]
async fn no_request_left_until_the_reset_rests_the_target() {
    let exhausted = Reply::Json(
        200,
        chat_json("ma", "last one"),
        vec![
            ("x-ratelimit-remaining-requests", "0".to_owned()),
            ("x-ratelimit-reset-requests", "1m30s".to_owned()),
        ],
    );
    let a = MockUpstream::with_script(vec![exhausted, Reply::Chat]).await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [ma]}}\n  - {{name: b, base_url: '{}', models: [mb]}}\nroutes:\n  - {{model: m, targets: [{{upstream: a, model: ma}}], fallbacks: [b/mb]}}\n",
        a.base_url(),
        b.base_url()
    ))
    .await;
    let http = gw.http();
    for _ in 0..3 {
        let r = http
            .post("/v1/chat/completions", &chat("m", "x", false))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(a.completions().len(), 1, "a said it had no request left");
    assert_eq!(b.completions().len(), 2);
}
