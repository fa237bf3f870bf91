//! Zero-file mode through the real binary: no `gateway.yaml`, no `-c`, and Open WebUI's
//! `OPENAI_API_BASE_URLS` / `OPENAI_API_KEYS` (plus `SWITCHYARD_LISTEN`) describe the
//! upstreams. `serve`, `check` and `models` all read them; keys never reach the output.

use crate::support::*;
use std::path::PathBuf;
use std::process::Command;

const KEY_A: &str = "sk-zerofile-key-aaaa";
const KEY_B: &str = "sk-zerofile-key-bbbb";

/// An empty directory to run the binary in (so no `./gateway.yaml` is found).
fn empty_dir() -> PathBuf {
    temp_file("empty", "").parent().unwrap().to_owned()
}

fn run_without_file(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.current_dir(empty_dir())
        .args(args)
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("OPENAI_API_BASE_URLS")
        .env_remove("OPENAI_API_KEYS")
        .env_remove("OLLAMA_BASE_URLS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn two_upstreams() -> (MockUpstream, MockUpstream, String) {
    let a = MockUpstream::start().await;
    a.set_models(&["model-a"]);
    let b = MockUpstream::start().await;
    b.set_models(&["model-b"]);
    let urls = format!("{};{}", a.base_url(), b.base_url());
    (a, b, urls)
}

#[tokio::test]
async fn serve_routes_to_each_url_with_its_key_and_lists_both_models() {
    let (a, b, urls) = two_upstreams().await;
    let keys = format!("{KEY_A};{KEY_B}");
    let gw = TestGateway::start_zero_file(&[
        ("OPENAI_API_BASE_URLS", &urls),
        ("OPENAI_API_KEYS", &keys),
    ])
    .await;
    let models = gw.http().get("/v1/models").await;
    assert_eq!(models.status, 200);
    let ids: Vec<_> = models.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&"model-a".to_owned()), "{ids:?}");
    assert!(ids.contains(&"model-b".to_owned()), "{ids:?}");

    for model in ["model-a", "model-b"] {
        let r = gw
            .http()
            .post("/v1/chat/completions", &chat(model, "hi", false))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (sent_a, sent_b) = (a.completions(), b.completions());
    assert_eq!(sent_a.len(), 1);
    assert_eq!(sent_b.len(), 1);
    assert_eq!(sent_a[0].json()["model"], "model-a");
    assert_eq!(
        sent_a[0].headers["authorization"],
        format!("Bearer {KEY_A}").as_str()
    );
    assert_eq!(
        sent_b[0].headers["authorization"],
        format!("Bearer {KEY_B}").as_str()
    );
    let logs = gw.settled_logs().await;
    assert!(logs.contains("switchyard listening"), "{logs}");
    assert!(!logs.contains(KEY_A) && !logs.contains(KEY_B), "{logs}");
}

#[tokio::test]
async fn a_url_without_a_key_gets_no_authorization_header() {
    let (a, b, urls) = two_upstreams().await;
    let gw = TestGateway::start_zero_file(&[
        ("OPENAI_API_BASE_URLS", &urls),
        ("OPENAI_API_KEYS", KEY_A),
    ])
    .await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("model-b", "hi", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(b.completions()[0].headers.get("authorization").is_none());
    assert!(a.completions().is_empty());
}

#[tokio::test]
async fn check_and_models_read_the_environment() {
    let (_a, _b, urls) = two_upstreams().await;
    let keys = format!("{KEY_A};{KEY_B}");
    let env = [
        ("OPENAI_API_BASE_URLS", urls.as_str()),
        ("OPENAI_API_KEYS", keys.as_str()),
    ];
    let env_owned: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (check, models) = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env_owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        (
            run_without_file(&["check"], &env),
            run_without_file(&["models", "--json"], &env),
        )
    })
    .await
    .unwrap();
    let (code, out, err) = check;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("environment (OPENAI_API_BASE_URLS"), "{out}");
    assert!(out.contains("OK (2 upstreams"), "{out}");
    let (code, out, err) = models;
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let owners: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}@{}",
                m["id"].as_str().unwrap(),
                m["owned_by"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(owners, ["model-a@openai-1", "model-b@openai-2"]);
    for text in [&out, &err] {
        assert!(!text.contains(KEY_A) && !text.contains(KEY_B));
    }
}

#[test]
fn mismatched_lists_are_an_error_naming_the_variable_and_no_key() {
    let (code, _, err) = run_without_file(
        &["check"],
        &[
            ("OPENAI_API_BASE_URLS", "http://127.0.0.1:9/v1"),
            ("OPENAI_API_KEYS", &format!("{KEY_A};{KEY_B}")),
        ],
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("env OPENAI_API_KEYS"), "{err}");
    assert!(!err.contains(KEY_A) && !err.contains(KEY_B), "{err}");
    let (code, _, err) = run_without_file(
        &["serve"],
        &[("OPENAI_API_BASE_URLS", "http://127.0.0.1:9/v1;not-a-url")],
    );
    assert_eq!(code, 64);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("env OPENAI_API_BASE_URLS[1]"), "{err}");
}

#[test]
fn with_neither_a_file_nor_variables_the_missing_gateway_yaml_is_reported() {
    let (code, _, err) = run_without_file(&["check"], &[]);
    assert_eq!(code, 64);
    assert!(err.contains("cannot read gateway.yaml"), "{err}");
}

#[test]
fn a_named_file_wins_over_the_variables() {
    let path = repo_root().join("config/mock-only.yaml");
    let (code, out, err) = run_without_file(
        &["check", "-c", path.to_str().unwrap()],
        &[("OPENAI_API_BASE_URLS", "not-a-url")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mock-only.yaml: OK"), "{out}");
    assert!(
        err.contains("warning: OPENAI_API_BASE_URLS ignored: the config file"),
        "{err}"
    );
}

#[test]
fn an_empty_switchyard_config_counts_as_unset() {
    // A container image sets SWITCHYARD_CONFIG; a pod blanks it to use the variables.
    let (code, out, err) = run_without_file(
        &["check"],
        &[
            ("SWITCHYARD_CONFIG", ""),
            ("OLLAMA_BASE_URLS", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK (1 upstreams"), "{out}");
}
