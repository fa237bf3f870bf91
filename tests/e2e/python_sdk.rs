//! The official OpenAI Python SDK against the real gateway: `tests/python/sdk_check.py`
//! runs in the project's venv (`bash .ci/run` makes it) and checks chat, streaming through
//! the SDK's own iterator, the model list, and that every kind of failure arrives as the
//! SDK's typed exception. One mock upstream per behaviour; the script is told which model
//! name triggers which. A missing interpreter fails the test: it is never skipped.

use crate::support::*;
use serde_json::json;

/// Runs `sdk_check.py` against `base` with these cases; returns (success, report).
async fn run_sdk_check(base: &str, cases: &serde_json::Value) -> (bool, String) {
    let mut env = vec![
        ("SWITCHYARD_BASE_URL", base.to_owned()),
        ("SWITCHYARD_SDK_CASES", cases.to_string()),
    ];
    let spec = repo_root().join("../shared/specs/openai/openapi.yaml");
    if spec.exists() {
        let spec = spec.canonicalize().unwrap();
        env.push(("SWITCHYARD_OPENAPI_SPEC", spec.display().to_string()));
    }
    run_python("sdk_check.py", &env).await
}

fn error(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})
}

#[tokio::test]
async fn openai_python_sdk_talks_to_the_gateway() {
    let pieces: Vec<String> = ["Hel", "lo, ", "wor", "ld!"].map(String::from).into();
    let drop_pieces: Vec<String> = ["one ", "two ", "three"].map(String::from).into();

    let echo = MockUpstream::start().await;
    let fetched = MockUpstream::start().await;
    fetched.set_models(&["sdk-fetched"]);
    let streamer = MockUpstream::with_script(vec![Reply::Stream(pieces.clone())]).await;
    let dropper = MockUpstream::with_script(vec![Reply::StreamDrop(drop_pieces.clone(), 2)]).await;
    let rejecting = MockUpstream::with_script(vec![Reply::Json(
        400,
        error("bad_messages", "messages[0] is not acceptable here"),
        vec![],
    )])
    .await;
    let limited = MockUpstream::with_script(vec![Reply::Json(
        429,
        json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
        vec![("retry-after", "1".into())],
    )])
    .await;
    let broken = MockUpstream::with_script(vec![Reply::Json(
        500,
        json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}),
        vec![],
    )])
    .await;

    let yaml = format!(
        "routing: {{max_attempts: 2, cooldown: 1s, failures_before_cooldown: 100}}
upstreams:
  - {{name: echo, base_url: '{}', models: [sdk-echo]}}
  - {{name: fetched, base_url: '{}'}}
  - {{name: streamer, base_url: '{}', models: [sdk-stream]}}
  - {{name: dropper, base_url: '{}', models: [sdk-drop]}}
  - {{name: rejecting, base_url: '{}', models: [sdk-bad]}}
  - {{name: limited, base_url: '{}', models: [sdk-limited]}}
  - {{name: broken, base_url: '{}', models: [sdk-broken]}}
  - {{name: builtin, dialect: mock, models: [sdk-builtin]}}
routes:
  - {{model: sdk-alias, targets: [{{upstream: echo, model: sdk-echo}}]}}
",
        echo.base_url(),
        fetched.base_url(),
        streamer.base_url(),
        dropper.base_url(),
        rejecting.base_url(),
        limited.base_url(),
        broken.base_url(),
    );
    let gw = TestGateway::start(&yaml).await;

    let cases = json!({
        "echo": "sdk-echo",
        "alias": "sdk-alias",
        "stream": "sdk-stream",
        "stream_pieces": pieces,
        "builtin": "sdk-builtin",
        "drop": "sdk-drop",
        "drop_pieces": drop_pieces[..2],
        "bad_request": "sdk-bad",
        "bad_request_code": "bad_messages",
        "rate_limited": "sdk-limited",
        "retry_after": "1",
        "server_error": "sdk-broken",
        "unknown": "no-such-model",
        "listed": ["sdk-alias", "sdk-echo", "sdk-fetched", "sdk-stream", "sdk-limited", "sdk-broken", "sdk-builtin"],
    });
    let (passed, report) = run_sdk_check(&gw.base, &cases).await;
    assert!(passed, "{report}\n--- gateway logs ---\n{}", gw.logs());
    eprintln!("{report}");

    // What the upstreams saw: the alias rewritten, no SDK retries (max_retries=0), and the
    // SDK's `Authorization: Bearer test` never forwarded to an `auth: none` upstream.
    let seen = echo.completions();
    let models: Vec<_> = seen.iter().map(|s| s.json()["model"].clone()).collect();
    assert_eq!(
        models,
        [json!("sdk-echo"), json!("sdk-echo")],
        "echo upstream saw {models:?}"
    );
    for s in &seen {
        assert!(
            !s.headers.contains_key("authorization"),
            "client key leaked upstream: {:?}",
            s.headers
        );
    }
    assert_eq!(
        limited.completions().len(),
        1,
        "the 429 upstream was asked more than once"
    );
    assert_eq!(
        rejecting.completions().len(),
        1,
        "the 400 upstream was asked more than once"
    );
    assert_eq!(
        broken.completions().len(),
        2,
        "one non-streaming and one streaming attempt"
    );
    assert_eq!(streamer.completions().len(), 1);
    assert_eq!(dropper.completions().len(), 1);
    assert!(fetched.completions().is_empty());
}
