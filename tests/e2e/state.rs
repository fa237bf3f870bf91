//! `state: {backend: redis}` through the real binary and a real `redis-server`: several
//! gateway processes sharing one Redis enforce one `rate_limiter` limit (exact admits
//! under concurrent load, headers from the shared state), one `token_limiter` bucket and
//! one key budget; when Redis goes away each gateway falls back as `on_unavailable` says
//! (logged once, counted) without hanging, and shares again once Redis is back.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

const KEY: &str = "sk-state-test-1";

/// A mock upstream, `state:` on `redis` (plus `state_extra` lines), and these extra
/// top-level sections. Unless a test is about timeouts, Redis gets a second per call: a
/// loaded CI machine must not turn a slow first connection into a fallback.
fn config(redis: &RedisServer, state_extra: &str, extra: &str) -> String {
    let timeout = if state_extra.contains("command_timeout") {
        ""
    } else {
        "  command_timeout: 1s\n"
    };
    format!(
        "upstreams:\n  - {{name: mock, dialect: mock}}\nstate:\n  backend: redis\n  url: '{}'\n  prefix: 'test:'\n{timeout}{state_extra}{extra}",
        redis.url()
    )
}

async fn start_n(n: usize, yaml: &str) -> Vec<TestGateway> {
    let mut gws = Vec::new();
    for _ in 0..n {
        gws.push(TestGateway::start(yaml).await);
    }
    gws
}

/// One chat request to the mock model, without a key.
async fn hi(gw: &TestGateway) -> Answer {
    gw.http()
        .post("/v1/chat/completions", &chat("mock-echo", "hi", false))
        .await
}

async fn chat_on(gw: &TestGateway, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    gw.http()
        .call(
            "POST",
            "/v1/chat/completions",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            serde_json::to_vec(&chat("mock-echo", "hi", false)).unwrap(),
        )
        .await
}

fn header(a: &Answer, name: &str) -> u64 {
    a.headers
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` in {:?}", a.headers))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn three_gateways_sharing_one_redis_admit_exactly_one_limit_under_concurrent_load() {
    let redis = RedisServer::start().await;
    // 20 an hour: no slot comes back while the test runs, so the count is exact.
    let yaml = config(
        &redis,
        "",
        "plugins:\n  - {name: rate_limiter, config: {limit: 20, window: 1h, key: global}}\n",
    );
    let gws = start_n(3, &yaml).await;
    let mut calls = Vec::new();
    for i in 0..90 {
        let http = gws[i % 3].http();
        calls.push(tokio::spawn(async move {
            http.post("/v1/chat/completions", &chat("mock-echo", "hi", false))
                .await
                .status
                .as_u16()
        }));
    }
    let mut admitted = [0usize; 3];
    let mut refused = 0;
    for (i, call) in calls.into_iter().enumerate() {
        match call.await.unwrap() {
            200 => admitted[i % 3] += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let total: usize = admitted.iter().sum();
    assert_eq!(total, 20, "admitted per gateway: {admitted:?}");
    assert_eq!(refused, 70);
    assert!(
        admitted.iter().filter(|&&n| n > 0).count() >= 2,
        "the load was spread: {admitted:?}"
    );
    let keys = redis.cli(&["KEYS", "test:rl:*"]).await.strings();
    assert_eq!(keys.len(), 1, "one shared key: {keys:?}");
}

#[tokio::test]
async fn rate_limit_headers_come_from_the_shared_state() {
    let redis = RedisServer::start().await;
    let yaml = config(
        &redis,
        "",
        "plugins:\n  - {name: rate_limiter, config: {limit: 3, window: 1h, key: api_key}}\n",
    );
    let gws = start_n(2, &yaml).await;
    let first = chat_on(&gws[0], "tok-a").await;
    let second = chat_on(&gws[1], "tok-a").await;
    let third = chat_on(&gws[0], "tok-a").await;
    for a in [&first, &second, &third] {
        assert_eq!(a.status, 200, "{}", a.text());
    }
    assert_eq!(header(&first, "x-ratelimit-remaining"), 2);
    assert_eq!(header(&second, "x-ratelimit-remaining"), 1);
    assert_eq!(header(&third, "x-ratelimit-remaining"), 0);
    assert_eq!(header(&first, "x-ratelimit-limit"), 3);
    // One slot comes back every 20 minutes: the third used slot resets in 3 × 1200 s.
    let reset = header(&third, "x-ratelimit-reset");
    assert!((3590..=3600).contains(&reset), "reset {reset}");
    let over = chat_on(&gws[1], "tok-a").await;
    over.assert_error(429, "rate_limit_exceeded");
    let retry = header(&over, "retry-after");
    assert!((1190..=1200).contains(&retry), "retry-after {retry}");
    // Another key has its own budget, on either gateway.
    let other = chat_on(&gws[1], "tok-b").await;
    assert_eq!(other.status, 200);
    assert_eq!(header(&other, "x-ratelimit-remaining"), 2);
}

#[tokio::test]
async fn a_token_limit_and_a_key_budget_are_shared_across_gateways() {
    let redis = RedisServer::start().await;
    // Each mock answer to "hi" costs 2 tokens (1 prompt + 1 completion).
    let yaml = config(
        &redis,
        "",
        &format!(
            "keys:\n  - {{name: team, key: {KEY}, budget: {{tokens: 6, window: 1d}}}}\n  - {{name: free, key: sk-state-free-2}}\nplugins:\n  - {{name: token_limiter, config: {{limit: 4, window: 1h, key: api_key}}}}\n"
        ),
    );
    let gws = start_n(2, &yaml).await;
    // token_limiter (4 an hour): two answers on one gateway spend it for both.
    for _ in 0..2 {
        let ok = chat_on(&gws[0], "sk-state-free-2").await;
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
    let spent =
        wait_for(|| async { chat_on(&gws[1], "sk-state-free-2").await.status == 429 }).await;
    assert!(spent, "the other gateway saw the spent token limit");
    let refused = chat_on(&gws[1], "sk-state-free-2").await;
    refused.assert_error(429, "rate_limit_exceeded");
    assert_eq!(header(&refused, "x-ratelimit-remaining-tokens"), 0);

    // The key budget (6 tokens a day), spent across both gateways. Each answer is
    // charged as its body ends, a moment after the client read it: wait for each
    // charge to land before the next request (requests in flight when the budget runs
    // out may pass it, as on one gateway). The key's token_limiter (4 an hour) is reset
    // between requests so only the budget decides.
    let _ = redis.cli(&["FLUSHALL"]).await;
    let used = || async {
        let keys = redis.cli(&["KEYS", "test:budget:team:*"]).await.strings();
        match keys.first() {
            Some(k) => redis
                .cli(&["HGET", k, "tokens"])
                .await
                .text()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0),
            None => 0,
        }
    };
    for (i, gw) in [0, 0, 1].into_iter().enumerate() {
        for k in redis.cli(&["KEYS", "test:tl:*"]).await.strings() {
            let _ = redis.cli(&["DEL", &k]).await;
        }
        let ok = chat_on(&gws[gw], KEY).await;
        assert_eq!(ok.status, 200, "request {i}: {}", ok.text());
        let want = 2 * (i as u64 + 1);
        assert!(
            wait_for(|| async { used().await == want }).await,
            "charge {i} landed: {} tokens",
            used().await
        );
    }
    // 6 of 6 used, two on one gateway and one on the other: both refuse.
    for gw in &gws {
        let answer = chat_on(gw, KEY).await;
        answer.assert_error(429, "budget_exceeded");
        assert!(header(&answer, "retry-after") >= 1);
    }
    let budget_keys = redis.cli(&["KEYS", "test:budget:team:*"]).await.strings();
    assert_eq!(budget_keys.len(), 1, "one shared window: {budget_keys:?}");
}

/// Retries `check` for up to 5 s (usage is charged as a body ends, a moment after the
/// client has read it).
async fn wait_for<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn when_redis_goes_away_each_gateway_falls_back_to_its_own_limit_and_shares_again_when_it_returns(
) {
    let mut redis = RedisServer::start().await;
    let yaml = config(
        &redis,
        "  command_timeout: 200ms\n",
        "plugins:\n  - {name: rate_limiter, config: {limit: 2, window: 1h, key: global}}\n",
    );
    let gws = start_n(2, &yaml).await;
    let statuses = |gw: usize, n: usize| {
        let http = gws[gw].http();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(
                    http.post("/v1/chat/completions", &chat("mock-echo", "hi", false))
                        .await
                        .status
                        .as_u16(),
                );
            }
            out
        }
    };
    // Shared: 2 in total.
    assert_eq!(statuses(0, 2).await, [200, 200]);
    assert_eq!(statuses(1, 1).await, [429]);

    redis.stop();
    // Down: each gateway enforces the limit alone (its local limiter is fresh), and no
    // request waits on the dead store.
    let started = Instant::now();
    assert_eq!(statuses(0, 3).await, [200, 200, 429]);
    assert_eq!(statuses(1, 3).await, [200, 200, 429]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "6 requests took {:?}",
        started.elapsed()
    );
    let logs = gws[0].logs_with("does not answer").await;
    assert_eq!(
        logs.matches("does not answer").count(),
        1,
        "the outage is logged once: {logs}"
    );
    let scrape = gws[0].scrape().await;
    assert_eq!(series(&scrape, "switchyard_state_up "), 0.0, "{scrape}");
    assert!(
        series(
            &scrape,
            "switchyard_state_fallbacks_total{what=\"rate_limiter\"}"
        ) >= 3.0,
        "{scrape}"
    );

    redis.restart().await;
    // Back (an empty Redis: the shared count starts again) — no restart of the gateways.
    let back = wait_for(|| async {
        let s = gws[0].http();
        s.post("/v1/chat/completions", &chat("mock-echo", "hi", false))
            .await
            .status
            == 200
            && gws[0].logs().contains("answers again")
    })
    .await;
    assert!(back, "gateway 0 uses Redis again: {}", gws[0].logs());
    let keys = redis.cli(&["KEYS", "test:rl:*"]).await.strings();
    assert_eq!(keys.len(), 1, "the shared key is written again: {keys:?}");
    // One slot of the shared 2 is left (gateway 1 may have probed once more).
    let rest = statuses(1, 2).await;
    assert!(rest.contains(&429), "shared again: {rest:?}");
    let scrape = gws[0].scrape().await;
    assert_eq!(series(&scrape, "switchyard_state_up "), 1.0, "{scrape}");
}

#[tokio::test]
async fn on_unavailable_deny_refuses_limited_requests_and_a_frozen_redis_costs_one_timeout() {
    let redis = RedisServer::start().await;
    let yaml = config(
        &redis,
        "  command_timeout: 150ms\n  on_unavailable: deny\n",
        "plugins:\n  - {name: rate_limiter, config: {limit: 100, window: 1m, key: global}}\n",
    );
    let gw = TestGateway::start(&yaml).await;
    let ok = hi(&gw).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // A Redis that accepts connections but never answers.
    redis.freeze();
    let started = Instant::now();
    let refused = hi(&gw).await;
    let took = started.elapsed();
    redis.thaw();
    refused.assert_error(503, "state_unavailable");
    let body = refused.text();
    assert!(!body.contains(&redis.url()), "{body}");
    assert!(
        took < Duration::from_secs(2),
        "bounded by the command timeout: {took:?}"
    );
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["type"], "server_error");
}

#[tokio::test]
async fn rediss_with_a_ca_file_and_a_password_from_the_environment_shares_a_limit() {
    let certs = test_certs();
    let redis = RedisServer::start_with(RedisOptions {
        tls: Some(certs.clone()),
        password: Some("redis-pw-7f3a".to_owned()),
    })
    .await;
    let yaml = format!(
        "upstreams:\n  - {{name: mock, dialect: mock}}\nstate:\n  backend: redis\n  url: '{}'\n  password: ${{TEST_REDIS_PASSWORD}}\n  ca_file: '{}'\n  prefix: 'tls:'\n  command_timeout: 2s\n  connect_timeout: 2s\nplugins:\n  - {{name: rate_limiter, config: {{limit: 1, window: 1h, key: global}}}}\n",
        redis.url(),
        redis.ca_file().display()
    );
    assert!(yaml.contains("rediss://"));
    let env = [("TEST_REDIS_PASSWORD", "redis-pw-7f3a")];
    let a = TestGateway::start_with_env(&yaml, &env).await;
    let b = TestGateway::start_with_env(&yaml, &env).await;
    let first = hi(&a).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = hi(&b).await;
    second.assert_error(429, "rate_limit_exceeded");
    let keys = redis.cli(&["KEYS", "tls:rl:*"]).await.strings();
    assert_eq!(keys.len(), 1, "{keys:?}");
    // The password is in no log line, nor in the admin-free config check output.
    for gw in [&a, &b] {
        let logs = gw.settled_logs().await;
        assert!(!logs.contains("redis-pw-7f3a"), "{logs}");
        assert!(
            !logs.contains("does not answer"),
            "TLS + AUTH worked: {logs}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_is_an_unavailable_store_not_a_failed_request() {
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("right-pw-1".to_owned()),
        ..RedisOptions::default()
    })
    .await;
    let yaml = config(
        &redis,
        "  password: wrong-pw-2\n",
        "plugins:\n  - {name: rate_limiter, config: {limit: 5, window: 1h, key: global}}\n",
    );
    let gw = TestGateway::start(&yaml).await;
    let answer = hi(&gw).await;
    assert_eq!(answer.status, 200, "local fallback: {}", answer.text());
    let logs = gw.logs_with("does not answer").await;
    assert!(!logs.contains("wrong-pw-2"), "{logs}");
    // At start the gateway says why, not only that Redis is slow.
    let logs = gw.logs_with("refused the gateway").await;
    assert!(logs.contains("authentication failed"), "{logs}");
    assert!(!logs.contains("wrong-pw-2"), "{logs}");
}

/// The tokens in `team`'s shared budget window, if the window exists.
async fn window_tokens(redis: &RedisServer) -> Option<u64> {
    let keys = redis.cli(&["KEYS", "test:budget:team:*"]).await.strings();
    let k = keys.first()?;
    redis.cli(&["HGET", k, "tokens"]).await.text()?.parse().ok()
}

#[tokio::test]
async fn budget_spend_during_an_outage_reaches_redis_when_it_returns() {
    let mut redis = RedisServer::start().await;
    let yaml = config(
        &redis,
        "",
        &format!("keys:\n  - {{name: team, key: {KEY}, budget: {{tokens: 1000, window: 1d}}}}\n"),
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(chat_on(&gw, KEY).await.status, 200);
    assert!(wait_for(|| async { window_tokens(&redis).await == Some(2) }).await);

    redis.stop();
    // Down: served (budget checked locally), charges kept to be delivered.
    for _ in 0..2 {
        assert_eq!(chat_on(&gw, KEY).await.status, 200);
    }
    redis.restart().await; // empty: the first answer's 2 tokens are gone with it
    let mut after = 0u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    while window_tokens(&redis).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "never reached Redis again: {}",
            gw.logs()
        );
        assert_eq!(chat_on(&gw, KEY).await.status, 200);
        after += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The two answers served while Redis was down, plus every one since.
    let want = 2 * (2 + after);
    assert!(
        wait_for(|| async { window_tokens(&redis).await == Some(want) }).await,
        "{:?} tokens in the shared window, {want} expected",
        window_tokens(&redis).await
    );
}
