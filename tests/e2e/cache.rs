//! The response cache (`cache:`) through the real binary, with hits and misses proven by
//! counting what the mock upstream received: a repeated request is a `hit` whatever its
//! key order, whitespace, `stream_options` or `user`, and a change to any parameter
//! misses; non-deterministic chat and models not opted in are bypassed; a streamed answer
//! is replayed as JSON and a JSON one as a stream (usage only when asked);
//! `Cache-Control: no-cache` / `no-store`; errors and cut streams are never stored; an
//! alias shares its target's entries; `per_key`; the Redis tier shared by two gateways
//! (and a stopped Redis is only a miss); embeddings; and the OpenAI Python SDK reading a
//! streamed hit (`tests/python/cache_check.py`).

use crate::support::*;
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

const CHAT: &str = "/v1/chat/completions";
const ALICE: &str = "sk-alice-cache-test-1";
const BOB: &str = "sk-bob-cache-test-2";

/// One `up` upstream serving `m1`, `m2` and `emb-1`, `cache:` with `models: ['*']` plus
/// `cache_extra` (indented lines), then `extra` top-level sections.
fn config(up: &MockUpstream, cache_extra: &str, extra: &str) -> String {
    config_for(
        &[("up", &up.base_url(), &["m1", "m2", "emb-1"])],
        &format!("cache:\n  models: ['*']\n{cache_extra}{extra}"),
    )
}

/// A deterministic (temperature 0) chat request.
fn det(model: &str, text: &str) -> Value {
    json!({"model": model, "temperature": 0,
           "messages": [{"role": "user", "content": text}]})
}

/// The upstream answers `text` (whatever was asked).
fn says(text: &str) -> Reply {
    Reply::Json(200, chat_json("m1", text), vec![])
}

async fn post_with(gw: &TestGateway, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    gw.http()
        .call("POST", path, &all, Bytes::copy_from_slice(body))
        .await
}

async fn post(gw: &TestGateway, body: &Value) -> Answer {
    post_with(gw, CHAT, &[], body.to_string().as_bytes()).await
}

/// `x-switchyard-cache` of an answer (panics when absent).
fn cache_of(a: &Answer) -> String {
    a.headers
        .get("x-switchyard-cache")
        .unwrap_or_else(|| {
            panic!(
                "no x-switchyard-cache ({}): {:?} {}",
                a.status,
                a.headers,
                a.text()
            )
        })
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts a 200 with this `x-switchyard-cache`.
fn assert_cache(a: &Answer, expected: &str) {
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(cache_of(a), expected, "body: {}", a.text());
}

/// The assistant text of a `chat.completion`.
fn content(a: &Answer) -> String {
    a.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {}", a.text()))
        .to_owned()
}

/// Waits until `n` answers have been stored (an answer is kept once its body ended, a
/// moment after the client read it).
async fn stored(gw: &TestGateway, n: usize) {
    gw.scrape_until(&[&format!(
        "switchyard_cache_stores_total{{outcome=\"stored\"}} {n}"
    )])
    .await;
}

/// An SSE body's `data:` payloads as JSON chunks; asserts it ends with `data: [DONE]`
/// and that every other payload is JSON.
fn sse_chunks(text: &str) -> Vec<Value> {
    let payloads: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?} in {text}"))
        })
        .collect();
    assert_eq!(payloads.last(), Some(&"[DONE]"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|e| panic!("{e}: {p}")))
        .collect()
}

/// The text the deltas of these chunks spell.
fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn a_repeated_request_is_a_hit_whatever_its_key_order_whitespace_stream_options_or_user() {
    let up = MockUpstream::with_script(vec![says("first"), says("second")]).await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let compact = br#"{"model":"m1","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
    let first = post_with(&gw, CHAT, &[], compact).await;
    assert_cache(&first, "miss");
    assert_eq!(content(&first), "first");
    stored(&gw, 1).await;

    let again = post_with(&gw, CHAT, &[], compact).await;
    assert_cache(&again, "hit");
    assert_eq!(
        again.body, first.body,
        "a hit is the stored answer byte for byte"
    );

    let reordered = b"{\n  \"messages\" : [ { \"content\" : \"hi\",\n \"role\":\"user\" } ],\n\t\"temperature\": 0.0 ,  \"model\" : \"m1\"\n}";
    let a = post_with(&gw, CHAT, &[], reordered).await;
    assert_cache(&a, "hit");
    assert_eq!(a.body, first.body);

    let extras = json!({"user": "someone-else", "stream": false,
                        "stream_options": {"include_usage": true},
                        "messages": [{"role": "user", "content": "hi"}],
                        "model": "m1", "temperature": 0});
    let a = post(&gw, &extras).await;
    assert_cache(&a, "hit");
    assert_eq!(a.body, first.body);

    assert_eq!(
        up.completions().len(),
        1,
        "only the first request went upstream"
    );
    // The access log says which answer came from where.
    let logs = gw.logs_with("cache=hit").await;
    assert!(logs.contains("cache=miss"), "{logs}");
    let hit = logs.lines().find(|l| l.contains("cache=hit")).unwrap();
    assert!(
        hit.contains("attempts=0") && !hit.contains("upstream="),
        "{hit}"
    );
}

#[tokio::test]
async fn a_request_differing_in_one_parameter_misses_and_reaches_the_upstream() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let base = det("m1", "hi");
    assert_cache(&post(&gw, &base).await, "miss");
    stored(&gw, 1).await;
    assert_cache(&post(&gw, &base).await, "hit");
    assert_eq!(up.completions().len(), 1);

    let tools = json!([{"type": "function",
                        "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let variants: Vec<(&str, Value)> = vec![
        ("max_tokens", {
            let mut v = base.clone();
            v["max_tokens"] = json!(5);
            v
        }),
        ("seed", {
            let mut v = base.clone();
            v["seed"] = json!(7);
            v
        }),
        ("a message", det("m1", "hi!")),
        ("tools", {
            let mut v = base.clone();
            v["tools"] = tools;
            v
        }),
        ("the model", det("m2", "hi")),
    ];
    for (i, (what, body)) in variants.iter().enumerate() {
        let a = post(&gw, body).await;
        assert_cache(&a, "miss");
        assert_eq!(
            up.completions().len(),
            i + 2,
            "a request differing in {what} reached the upstream"
        );
        assert_eq!(
            up.completions().last().unwrap().json()["messages"],
            body["messages"],
            "{what}"
        );
    }
}

#[tokio::test]
async fn non_deterministic_chat_is_bypassed_and_never_offered_to_the_cache() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let plain = json!({"model": "m1", "messages": [{"role": "user", "content": "hi"}]});
    let warm = json!({"model": "m1", "temperature": 0.7,
                      "messages": [{"role": "user", "content": "hi"}]});
    for body in [&plain, &plain, &warm, &warm] {
        assert_cache(&post(&gw, body).await, "bypass");
    }
    assert_eq!(
        up.completions().len(),
        4,
        "every bypassed request went upstream"
    );
    let scrape = gw.scrape().await;
    for outcome in ["stored", "too_large", "incomplete"] {
        assert_eq!(
            series(
                &scrape,
                &format!("switchyard_cache_stores_total{{outcome=\"{outcome}\"}}")
            ),
            0.0,
            "nothing was offered to the cache:\n{scrape}"
        );
    }
    assert!(
        scrape
            .lines()
            .any(|l| l == "switchyard_cache_lookups_total{result=\"bypass\",tier=\"none\"} 4"),
        "{scrape}"
    );
}

#[tokio::test]
async fn with_only_deterministic_off_non_deterministic_chat_is_cached() {
    let warm = json!({"model": "m1", "temperature": 0.7,
                      "messages": [{"role": "user", "content": "hi"}]});
    let any = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&any, "  only_deterministic: false\n", "")).await;
    assert_cache(&post(&gw, &warm).await, "miss");
    stored(&gw, 1).await;
    assert_cache(&post(&gw, &warm).await, "hit");
    assert_eq!(any.completions().len(), 1);
}

#[tokio::test]
async fn a_model_not_opted_in_is_bypassed() {
    let up = MockUpstream::start().await;
    let yaml = config_for(
        &[("up", &up.base_url(), &["m1", "m2"])],
        "cache:\n  models: ['m1']\n",
    );
    let gw = TestGateway::start(&yaml).await;
    assert_cache(&post(&gw, &det("m2", "hi")).await, "bypass");
    assert_cache(&post(&gw, &det("m2", "hi")).await, "bypass");
    assert_eq!(up.completions().len(), 2);
    assert_cache(&post(&gw, &det("m1", "hi")).await, "miss");
    assert_eq!(up.completions().len(), 3);
}

#[tokio::test]
async fn a_streamed_answer_is_replayed_as_json_with_the_same_content_and_usage() {
    let pieces: Vec<String> = ["Hel", "lo, ", "world"].map(String::from).into();
    let up = MockUpstream::with_script(vec![Reply::StreamUsage(pieces, 4)]).await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let mut body = det("m1", "hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let streamed = post(&gw, &body).await;
    assert_cache(&streamed, "miss");
    let chunks = sse_chunks(&streamed.text());
    assert_eq!(streamed_text(&chunks), "Hello, world");
    let usage = chunks
        .iter()
        .rev()
        .find(|c| !c["usage"].is_null())
        .unwrap_or_else(|| panic!("no usage chunk: {}", streamed.text()))["usage"]
        .clone();
    assert_eq!(usage["completion_tokens"], 4, "{usage}");
    stored(&gw, 1).await;

    let json = post(&gw, &det("m1", "hi")).await;
    assert_cache(&json, "hit");
    assert!(
        json.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        json.headers
    );
    let v = json.json();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello, world", "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant", "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], usage["prompt_tokens"], "{v}");
    assert_eq!(
        v["usage"]["completion_tokens"], usage["completion_tokens"],
        "{v}"
    );
    assert_eq!(v["usage"]["total_tokens"], usage["total_tokens"], "{v}");
    assert_eq!(up.completions().len(), 1);
}

#[tokio::test]
async fn a_json_answer_is_replayed_as_a_valid_stream_with_usage_only_when_asked() {
    let up = MockUpstream::with_script(vec![says("Hello there")]).await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let first = post(&gw, &det("m1", "hi")).await;
    assert_cache(&first, "miss");
    stored(&gw, 1).await;

    let mut body = det("m1", "hi");
    body["stream"] = json!(true);
    let no_usage = post(&gw, &body).await;
    assert_cache(&no_usage, "hit");
    assert!(
        no_usage.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        no_usage.headers
    );
    let chunks = sse_chunks(&no_usage.text());
    assert_eq!(streamed_text(&chunks), "Hello there");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["usage"].is_null()),
        "no usage unless asked: {}",
        no_usage.text()
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{}",
        no_usage.text()
    );

    body["stream_options"] = json!({"include_usage": true});
    let with_usage = post(&gw, &body).await;
    assert_cache(&with_usage, "hit");
    let chunks = sse_chunks(&with_usage.text());
    assert_eq!(streamed_text(&chunks), "Hello there");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "{}", with_usage.text());
    assert_eq!(
        last["usage"],
        first.json()["usage"],
        "{}",
        with_usage.text()
    );
    assert_eq!(
        chunks.iter().filter(|c| !c["usage"].is_null()).count(),
        1,
        "one usage chunk: {}",
        with_usage.text()
    );
    assert_eq!(up.completions().len(), 1);
}

#[tokio::test]
async fn no_cache_skips_the_lookup_but_stores_the_fresh_answer() {
    let up = MockUpstream::with_script(vec![says("one"), says("two"), says("three")]).await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let body = det("m1", "hi").to_string();
    let a = post_with(&gw, CHAT, &[], body.as_bytes()).await;
    assert_cache(&a, "miss");
    assert_eq!(content(&a), "one");
    stored(&gw, 1).await;

    let fresh = post_with(&gw, CHAT, &[("cache-control", "no-cache")], body.as_bytes()).await;
    assert_cache(&fresh, "bypass");
    assert_eq!(content(&fresh), "two", "the upstream answered");
    assert_eq!(up.completions().len(), 2);
    stored(&gw, 2).await;

    let a = post_with(&gw, CHAT, &[], body.as_bytes()).await;
    assert_cache(&a, "hit");
    assert_eq!(content(&a), "two", "the fresh answer replaced the old one");
    assert_eq!(up.completions().len(), 2);
}

#[tokio::test]
async fn no_store_bypasses_and_stores_nothing() {
    let up = MockUpstream::with_script(vec![says("one"), says("two"), says("three")]).await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let body = det("m1", "hi").to_string();
    let a = post_with(&gw, CHAT, &[("cache-control", "no-store")], body.as_bytes()).await;
    assert_cache(&a, "bypass");
    assert_eq!(content(&a), "one");

    let a = post_with(&gw, CHAT, &[], body.as_bytes()).await;
    assert_cache(&a, "miss");
    assert_eq!(
        content(&a),
        "two",
        "nothing was stored by the no-store request"
    );
    assert_eq!(up.completions().len(), 2);
    stored(&gw, 1).await;
    let a = post_with(&gw, CHAT, &[("cache-control", "no-store")], body.as_bytes()).await;
    assert_cache(&a, "bypass");
    assert_eq!(content(&a), "three", "no-store skips the lookup too");
}

#[tokio::test]
async fn upstream_errors_are_never_cached() {
    for status in [500u16, 429] {
        let error = json!({"error": {"message": "nope", "type": "server_error",
                                     "param": null, "code": "nope"}});
        let up = MockUpstream::with_script(vec![Reply::Json(status, error, vec![])]).await;
        let gw = TestGateway::start(&config(&up, "", "routing: {max_attempts: 1}\n")).await;
        let first = post(&gw, &det("m1", "hi")).await;
        assert_ne!(first.status, 200, "{}", first.text());
        let seen = up.completions().len();
        assert!(seen >= 1);
        let second = post(&gw, &det("m1", "hi")).await;
        assert_ne!(second.status, 200, "{}", second.text());
        assert!(
            up.completions().len() > seen,
            "after an upstream {status} the identical request reached the upstream again"
        );
        let scrape = gw.scrape().await;
        let stored = series(&scrape, "switchyard_cache_stores_total{outcome=\"stored\"}");
        let hits = series(
            &scrape,
            "switchyard_cache_lookups_total{result=\"hit\",tier=\"memory\"}",
        );
        assert_eq!((stored, hits), (0.0, 0.0), "{scrape}");
    }
}

#[tokio::test]
async fn a_stream_cut_before_done_is_not_cached() {
    let pieces: Vec<String> = ["one ", "two ", "three"].map(String::from).into();
    let up = MockUpstream::with_script(vec![
        Reply::StreamDrop(pieces.clone(), 2),
        Reply::Stream(pieces),
    ])
    .await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let mut body = det("m1", "count");
    body["stream"] = json!(true);
    let cut = post(&gw, &body).await;
    assert_cache(&cut, "miss");
    assert!(!cut.text().contains("[DONE]"), "{}", cut.text());
    gw.scrape_until(&["switchyard_cache_stores_total{outcome=\"incomplete\"} 1"])
        .await;

    let whole = post(&gw, &body).await;
    assert_cache(&whole, "miss");
    assert_eq!(streamed_text(&sse_chunks(&whole.text())), "one two three");
    assert_eq!(up.completions().len(), 2, "the cut stream was not stored");
    stored(&gw, 1).await;
    let hit = post(&gw, &body).await;
    assert_cache(&hit, "hit");
    assert_eq!(streamed_text(&sse_chunks(&hit.text())), "one two three");
    assert_eq!(up.completions().len(), 2);
}

#[tokio::test]
async fn an_alias_and_its_target_share_entries() {
    let up = MockUpstream::start().await;
    let routes = "routes:\n  - {model: fast, targets: [{upstream: up, model: m1}]}\n";
    let gw = TestGateway::start(&config(&up, "", routes)).await;
    assert_cache(&post(&gw, &det("m1", "target first")).await, "miss");
    stored(&gw, 1).await;
    let a = post(&gw, &det("fast", "target first")).await;
    assert_cache(&a, "hit");
    assert_eq!(content(&a), "target first");
    assert_eq!(up.completions().len(), 1);

    assert_cache(&post(&gw, &det("fast", "alias first")).await, "miss");
    assert_eq!(up.completions().last().unwrap().json()["model"], "m1");
    stored(&gw, 2).await;
    assert_cache(&post(&gw, &det("m1", "alias first")).await, "hit");
    assert_eq!(up.completions().len(), 2);
}

async fn post_as(gw: &TestGateway, key: &str, body: &Value) -> Answer {
    let auth = format!("Bearer {key}");
    post_with(
        gw,
        CHAT,
        &[("authorization", &auth)],
        body.to_string().as_bytes(),
    )
    .await
}

#[tokio::test]
async fn per_key_entries_are_apart_and_shared_without_it() {
    let keys = format!("keys:\n  - {{name: alice, key: {ALICE}}}\n  - {{name: bob, key: {BOB}}}\n");
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, "  per_key: true\n", &keys)).await;
    assert_cache(&post_as(&gw, ALICE, &det("m1", "hi")).await, "miss");
    stored(&gw, 1).await;
    assert_cache(&post_as(&gw, ALICE, &det("m1", "hi")).await, "hit");
    assert_cache(&post_as(&gw, BOB, &det("m1", "hi")).await, "miss");
    assert_eq!(up.completions().len(), 2, "bob's request went upstream");

    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, "  per_key: false\n", &keys)).await;
    assert_cache(&post_as(&gw, ALICE, &det("m1", "hi")).await, "miss");
    stored(&gw, 1).await;
    assert_cache(&post_as(&gw, BOB, &det("m1", "hi")).await, "hit");
    assert_eq!(up.completions().len(), 1);
}

/// `config` with `state:` on `redis` (prefix `test:`).
fn redis_config(up: &MockUpstream, redis: &RedisServer) -> String {
    config(
        up,
        "",
        &format!(
            "state:\n  backend: redis\n  url: '{}'\n  prefix: 'test:'\n  command_timeout: 1s\n",
            redis.url()
        ),
    )
}

/// Waits until Redis holds `n` cache keys under the prefix; returns them.
async fn redis_cache_keys(redis: &RedisServer, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = redis.cli(&["KEYS", "test:cache:*"]).await.strings();
        if keys.len() >= n {
            return keys;
        }
        assert!(Instant::now() < deadline, "cache keys in Redis: {keys:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_gateways_sharing_one_redis_share_entries() {
    let redis = RedisServer::start().await;
    let up = MockUpstream::with_script(vec![says("shared answer")]).await;
    let yaml = redis_config(&up, &redis);
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;

    let first = post(&a, &det("m1", "hi")).await;
    assert_cache(&first, "miss");
    let keys = redis_cache_keys(&redis, 1).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let hex = keys[0].strip_prefix("test:cache:").unwrap();
    assert!(
        hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        "{keys:?}"
    );

    let from_b = post(&b, &det("m1", "hi")).await;
    assert_cache(&from_b, "hit");
    assert_eq!(from_b.body, first.body);
    assert_eq!(
        up.completions().len(),
        1,
        "gateway B did not call the upstream"
    );
    b.scrape_until(&["switchyard_cache_lookups_total{result=\"hit\",tier=\"redis\"} 1"])
        .await;

    // Now in B's memory too.
    assert_cache(&post(&b, &det("m1", "hi")).await, "hit");
    b.scrape_until(&["switchyard_cache_lookups_total{result=\"hit\",tier=\"memory\"} 1"])
        .await;
    assert_eq!(up.completions().len(), 1);
}

#[tokio::test]
async fn a_stopped_redis_makes_lookups_misses_not_errors() {
    let mut redis = RedisServer::start().await;
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&redis_config(&up, &redis)).await;
    assert_cache(&post(&gw, &det("m1", "before")).await, "miss");
    redis.stop();

    for text in ["after", "after again"] {
        let started = Instant::now();
        let a = post(&gw, &det("m1", text)).await;
        let took = started.elapsed();
        assert_cache(&a, "miss");
        assert_eq!(content(&a), text);
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
    assert_eq!(up.completions().len(), 3);
    // The lookups did try Redis, failed, and went on without it.
    let scrape = gw.scrape().await;
    let fallbacks = scrape
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_state_fallbacks_total{what=\"cache\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(fallbacks >= 2.0, "{scrape}");
}

#[tokio::test]
async fn embeddings_are_cached_without_temperature_or_seed() {
    let embedding = json!({"object": "list", "model": "emb-1",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2}});
    let up = MockUpstream::with_script(vec![Reply::Json(200, embedding, vec![])]).await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let body = json!({"model": "emb-1", "input": "hello world"}).to_string();
    let first = post_with(&gw, "/v1/embeddings", &[], body.as_bytes()).await;
    assert_cache(&first, "miss");
    assert_eq!(first.json()["data"][0]["embedding"][1], -0.5);
    stored(&gw, 1).await;
    let again = post_with(&gw, "/v1/embeddings", &[], body.as_bytes()).await;
    assert_cache(&again, "hit");
    assert_eq!(again.body, first.body);
    assert_eq!(up.completions().len(), 1);
    assert!(up.completions()[0].uri.ends_with("/embeddings"));
}

#[tokio::test]
async fn the_openai_python_sdk_reads_a_streamed_hit_as_a_normal_stream() {
    let up = MockUpstream::with_script(vec![says("The cache answered this.")]).await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let metrics = gw.metrics.clone().unwrap();
    let stdout = run_script(
        "cache_check.py",
        &[
            ("SWITCHYARD_BASE_URL", &gw.base),
            ("SWITCHYARD_METRICS_URL", &metrics),
            ("SWITCHYARD_CACHE_MODEL", "m1"),
        ],
        Duration::from_secs(120),
    )
    .await;
    assert!(stdout.contains("all cache checks passed"), "{stdout}");
    assert_eq!(
        up.completions().len(),
        1,
        "the streamed request was served from the cache"
    );
}

#[tokio::test]
async fn plugins_apply_to_each_caller_and_are_not_stored_with_the_answer() {
    // A redaction for alice only; bob asks the same thing and gets the upstream's text.
    let up = MockUpstream::with_script(vec![says("the secret is out")]).await;
    let extra = format!(
        "keys:\n  - {{name: alice, key: {ALICE}}}\n  - {{name: bob, key: {BOB}}}\nplugins:\n  - {{name: content_filter, stage: post_response, keys: [alice], config: {{banned_patterns: [secret], action: redact}}}}\n"
    );
    let gw = TestGateway::start(&config(&up, "", &extra)).await;
    let body = det("m1", "tell me");
    let as_key = |key: &'static str| post_as(&gw, key, &body);
    let first = as_key(ALICE).await;
    assert_cache(&first, "miss");
    assert_eq!(content(&first), "the [REDACTED] is out");
    stored(&gw, 1).await;
    let again = as_key(ALICE).await;
    assert_cache(&again, "hit");
    assert_eq!(
        content(&again),
        "the [REDACTED] is out",
        "redacted once, not twice"
    );
    let bob = as_key(BOB).await;
    assert_cache(&bob, "hit");
    assert_eq!(
        content(&bob),
        "the secret is out",
        "the entry is the upstream's answer, not alice's view of it"
    );
    assert_eq!(up.completions().len(), 1);
}

#[tokio::test]
async fn an_error_answered_with_200_is_not_cached() {
    let error = json!({"error": {"message": "overloaded", "type": "server_error", "param": null, "code": null}});
    let up =
        MockUpstream::with_script(vec![Reply::Json(200, error, vec![]), says("a real answer")])
            .await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let first = post(&gw, &det("m1", "hi")).await;
    assert_eq!(first.status, 200);
    gw.scrape_until(&["switchyard_cache_stores_total{outcome=\"incomplete\"} 1"])
        .await;
    let second = post(&gw, &det("m1", "hi")).await;
    assert_cache(&second, "miss");
    assert_eq!(content(&second), "a real answer");
    assert_eq!(up.completions().len(), 2);
}

#[tokio::test]
async fn answers_from_an_upstream_that_takes_the_callers_credentials_are_kept_per_caller() {
    let up = MockUpstream::with_script(vec![says("for one"), says("for two")]).await;
    let yaml = format!(
        "upstreams:\n  - {{name: up, base_url: '{}', models: [m1], auth: {{type: passthrough}}}}\ncache:\n  models: ['*']\n",
        up.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    let body = det("m1", "hi");
    let as_token = |token: &'static str| post_as(&gw, token, &body);
    assert_cache(&as_token("sk-user-one-1").await, "miss");
    stored(&gw, 1).await;
    assert_cache(&as_token("sk-user-one-1").await, "hit");
    // Another credential is asked of the upstream, never served the first one's answer.
    let two = as_token("sk-user-two-2").await;
    assert_cache(&two, "miss");
    assert_eq!(content(&two), "for two");
    assert_eq!(up.completions().len(), 2);
}

#[tokio::test]
async fn headers_that_change_the_answer_are_part_of_the_key() {
    let up = MockUpstream::with_script(vec![says("org a"), says("org b")]).await;
    let gw = TestGateway::start(&config(&up, "", "")).await;
    let body = det("m1", "hi").to_string();
    let a = post_with(
        &gw,
        CHAT,
        &[("openai-organization", "org-a")],
        body.as_bytes(),
    )
    .await;
    assert_cache(&a, "miss");
    stored(&gw, 1).await;
    let a2 = post_with(
        &gw,
        CHAT,
        &[("openai-organization", "org-a")],
        body.as_bytes(),
    )
    .await;
    assert_cache(&a2, "hit");
    let b = post_with(
        &gw,
        CHAT,
        &[("openai-organization", "org-b")],
        body.as_bytes(),
    )
    .await;
    assert_cache(&b, "miss");
    assert_eq!(content(&b), "org b");
}

#[tokio::test]
async fn an_entry_copied_from_redis_lives_only_as_long_as_it_had_left() {
    let redis = RedisServer::start().await;
    let up = MockUpstream::with_script(vec![says("first"), says("second")]).await;
    let yaml = config(
        &up,
        "  ttl: 2s\n",
        &format!(
            "state:\n  backend: redis\n  url: '{}'\n  prefix: 'test:'\n  command_timeout: 1s\n",
            redis.url()
        ),
    );
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    assert_cache(&post(&a, &det("m1", "hi")).await, "miss");
    redis_cache_keys(&redis, 1).await;
    let stored_at = Instant::now();
    // B copies the entry from Redis with about 0.8 s left of its 2 s.
    tokio::time::sleep_until(stored_at + Duration::from_millis(1200)).await;
    let copied = post(&b, &det("m1", "hi")).await;
    assert_cache(&copied, "hit");
    assert_eq!(content(&copied), "first");
    // Past the entry's end in Redis: B's copy is gone too (a fresh `ttl` would keep it
    // until about 3.2 s).
    tokio::time::sleep_until(stored_at + Duration::from_millis(2500)).await;
    let later = post(&b, &det("m1", "hi")).await;
    assert_cache(&later, "miss");
    assert_eq!(content(&later), "second");
}
