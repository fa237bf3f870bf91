//! Per-key access and budgets through the real binary: a key limited to some models gets
//! 403 `model_not_allowed` for others (naming none of its allowed ones) and sees only its
//! models in `/v1/models` (also through the OpenAI Python SDK, which gets its typed 403,
//! 404 and 429 errors); a `sha256:` key works and
//! its value never reaches the logs; a token budget used up by real streamed usage gets
//! 429 `budget_exceeded` with `Retry-After`; `switchyard hash-key` prints the hash.

use crate::support::*;
use serde_json::Value;
use std::process::Stdio;

const ALICE: &str = "sk-alice-keys-test-1";
const BOB: &str = "sk-bob-keys-test-2";
const CAROL: &str = "sk-carol-keys-test-3";

async fn post_as(http: &Http, key: &str, body: &Value) -> Answer {
    let auth = format!("Bearer {key}");
    http.call(
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        body.to_string(),
    )
    .await
}

async fn get_as(http: &Http, key: &str, path: &str) -> Answer {
    let auth = format!("Bearer {key}");
    http.call(
        "GET",
        path,
        &[("authorization", &auth)],
        bytes::Bytes::new(),
    )
    .await
}

fn ids(answer: &Answer) -> Vec<String> {
    let mut ids: Vec<String> = answer.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// `alice` may use `gpt-4o*` and, through group `eng`, `claude-*`; `bob` may use
/// anything; `carol` has a budget of one token a day.
fn access_config(upstream: &MockUpstream) -> String {
    config_for(
        &[(
            "mock",
            &upstream.base_url(),
            &["gpt-4o", "gpt-4o-mini", "claude-3", "o1-secret"],
        )],
        &format!(
            "groups:\n  - {{name: eng, models: ['claude-*']}}\nkeys:\n  - {{name: alice, key: {ALICE}, models: ['gpt-4o*'], groups: [eng]}}\n  - {{name: bob, key: {BOB}}}\n  - {{name: carol, key: {CAROL}, budget: {{tokens: 1}}}}\n"
        ),
    )
}

#[tokio::test]
async fn a_model_the_key_may_not_use_gets_403_naming_no_allowed_model() {
    let upstream = MockUpstream::start().await;
    let gw = TestGateway::start(&access_config(&upstream)).await;
    let http = gw.http();
    let denied = post_as(&http, ALICE, &chat("o1-secret", "hi", false)).await;
    let message = denied.assert_error(403, "model_not_allowed");
    assert!(message.contains("o1-secret"), "{message}");
    for allowed in ["gpt-4o", "claude", "gpt-4o-mini"] {
        assert!(!message.contains(allowed), "{message}");
    }
    // Unknown models are refused the same way: nothing to probe.
    post_as(&http, ALICE, &chat("no-such-model", "hi", false))
        .await
        .assert_error(403, "model_not_allowed");
    assert!(
        upstream.completions().is_empty(),
        "nothing reached the upstream"
    );
    assert_eq!(
        post_as(&http, ALICE, &chat("claude-3", "hi", false))
            .await
            .status,
        200
    );
    assert_eq!(
        post_as(&http, ALICE, &chat("mock/gpt-4o", "hi", false))
            .await
            .status,
        200
    );
    assert_eq!(
        post_as(&http, BOB, &chat("o1-secret", "hi", false))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_model_list_shows_each_key_only_what_it_may_use() {
    let upstream = MockUpstream::start().await;
    let gw = TestGateway::start(&access_config(&upstream)).await;
    let http = gw.http();
    let alice = get_as(&http, ALICE, "/v1/models").await;
    assert_eq!(ids(&alice), ["claude-3", "gpt-4o", "gpt-4o-mini"]);
    let bob = get_as(&http, BOB, "/v1/models").await;
    assert_eq!(ids(&bob).len(), 4);
    assert_eq!(get_as(&http, ALICE, "/v1/models/gpt-4o").await.status, 200);
    get_as(&http, ALICE, "/v1/models/o1-secret")
        .await
        .assert_error(404, "model_not_found");
    assert_eq!(get_as(&http, BOB, "/v1/models/o1-secret").await.status, 200);
    // The access log says whose listing it was.
    let logs = gw.settled_logs().await;
    let listings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("switchyard::access") && l.contains("path=/v1/models"))
        .collect();
    assert!(!listings.is_empty(), "{logs}");
    assert!(listings.iter().all(|l| l.contains(" key=")), "{listings:?}");
}

#[tokio::test]
async fn the_openai_sdk_sees_only_the_allowed_models_and_typed_403_404_429_errors() {
    let upstream = MockUpstream::start().await;
    let gw = TestGateway::start(&access_config(&upstream)).await;
    let script = r#"
import os, openai
c = openai.OpenAI(base_url=os.environ["BASE"], api_key=os.environ["KEY"], max_retries=0)
ids = sorted(m.id for m in c.models.list())
assert ids == ["claude-3", "gpt-4o", "gpt-4o-mini"], ids
try:
    c.chat.completions.create(model="o1-secret", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("no error")
except openai.PermissionDeniedError as e:
    assert e.status_code == 403 and e.code == "model_not_allowed", e
try:
    c.models.retrieve("o1-secret")
    raise SystemExit("no error")
except openai.NotFoundError:
    pass
r = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
assert r.choices[0].message.content
carol = openai.OpenAI(base_url=os.environ["BASE"], api_key=os.environ["CAROL"], max_retries=0)
carol.chat.completions.create(model="o1-secret", messages=[{"role": "user", "content": "hi"}])
try:
    carol.chat.completions.create(model="o1-secret", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("no error")
except openai.RateLimitError as e:
    assert e.code == "budget_exceeded", e
    assert int(e.response.headers["retry-after"]) >= 1
print("ok")
"#;
    let out = tokio::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .env("BASE", format!("{}/v1", gw.base))
        .env("KEY", ALICE)
        .env("CAROL", CAROL)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_hashed_key_works_and_the_plain_value_never_reaches_the_logs() {
    let upstream = MockUpstream::start().await;
    let value = "sk-hashed-only-value-77";
    let hash = hash_key_cli(value).await;
    let yaml = config_for(
        &[("mock", &upstream.base_url(), &["m1"])],
        &format!("keys:\n  - {{name: hashed, key: '{hash}'}}\n"),
    );
    let gw = TestGateway::start(&yaml).await;
    let http = gw.http();
    assert_eq!(
        post_as(&http, value, &chat("m1", "hi", false)).await.status,
        200
    );
    post_as(&http, &hash, &chat("m1", "hi", false))
        .await
        .assert_error(401, "invalid_api_key");
    let logs = gw.settled_logs().await;
    assert!(logs.contains("hashed"), "{logs}");
    assert!(!logs.contains(value), "{logs}");
}

async fn hash_key_cli(value: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(binary())
        .arg("hash-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{value}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{hash}");
    hash
}

#[tokio::test]
async fn hash_key_prints_the_sha256_of_its_argument() {
    let out = tokio::process::Command::new(binary())
        .args(["hash-key", "abcdefgh"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "sha256:9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab"
    );
}

#[tokio::test]
async fn a_budget_used_up_by_streamed_usage_gets_429_with_retry_after() {
    // Each stream reports 1 prompt + 40 completion tokens; the budget is 60 a day.
    let upstream = MockUpstream::with_script(vec![
        Reply::StreamUsage(vec!["a".into(), "b".into()], 40),
        Reply::StreamUsage(vec!["c".into()], 40),
        Reply::StreamUsage(vec!["d".into()], 40),
    ])
    .await;
    let yaml = config_for(
        &[("mock", &upstream.base_url(), &["m1"])],
        &format!(
            "prices:\n  - {{model: m1, input: 1000, output: 1000}}\nkeys:\n  - {{name: alice, key: {ALICE}, budget: {{tokens: 60, window: 1d}}}}\n  - {{name: bob, key: {BOB}}}\n"
        ),
    );
    let gw = TestGateway::start(&yaml).await;
    let http = gw.http();
    let first = post_as(&http, ALICE, &chat("m1", "hi", true)).await;
    assert_eq!(first.status, 200);
    assert!(
        !first.text().contains("\"usage\""),
        "the usage chunk the gateway asked for is not relayed"
    );
    let second = post_as(&http, ALICE, &chat("m1", "hi", true)).await;
    assert_eq!(second.status, 200, "41 < 60: still under budget");
    let over = post_as(&http, ALICE, &chat("m1", "hi", true)).await;
    over.assert_error(429, "budget_exceeded");
    let retry_after: u64 = over.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    assert_eq!(upstream.completions().len(), 2);
    // Other keys are not affected.
    assert_eq!(
        post_as(&http, BOB, &chat("m1", "hi", true)).await.status,
        200
    );
    let metrics = gw
        .scrape_until(&["switchyard_key_tokens_total{key=\"alice\"} 82"])
        .await;
    assert!(
        metrics.contains("switchyard_key_spend_usd_total{key=\"alice\"} 0.082"),
        "{metrics}"
    );
}

#[tokio::test]
async fn check_reports_key_config_errors_with_paths_and_warns_of_unpriced_models() {
    let bad = temp_file(
        "keys-bad.yaml",
        "upstreams: [{name: u, base_url: 'http://u', models: [a]}]\ngroups: [{name: eng}]\nkeys:\n  - {name: k, key: 'sha256:zz', groups: [nope], budget: {usd: -1}}\n",
    );
    let out = tokio::process::Command::new(binary())
        .args(["check", "-c", bad.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for path in ["keys[0].key", "keys[0].groups[0]", "keys[0].budget.usd"] {
        assert!(text.contains(path), "{path}: {text}");
    }
    let unpriced = temp_file(
        "keys-unpriced.yaml",
        "upstreams: [{name: u, base_url: 'http://u', models: [a, b]}]\nprices: [{model: a, input: 1, output: 2}]\nkeys:\n  - {name: k, key: sk-12345678, budget: {usd: 1}}\n",
    );
    let out = tokio::process::Command::new(binary())
        .args(["check", "-c", unpriced.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("u/b") && !err.contains("u/a"),
        "{err}"
    );
}
