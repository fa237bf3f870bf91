//! Moving from LiteLLM / LibreChat / Libre WebUI through the real binary: `switchyard import FILE`
//! prints native YAML that `check` accepts, with what cannot be honoured on stderr;
//! `check` on a config that `include:`s the shipped examples lists their warnings with
//! paths inside the included files; included literal keys never reach the output.

use crate::support::*;
use std::process::Command;

/// Every variable the shipped examples reference.
const ENV: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "sk-import-openai"),
    ("GROQ_API_KEY", "sk-import-groq"),
    ("ANTHROPIC_API_KEY", "sk-import-anthropic"),
    ("LITELLM_MASTER_KEY", "sk-import-master"),
    ("OPENROUTER_KEY", "sk-import-openrouter"),
];

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_remove("SWITCHYARD_CONFIG");
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

fn example(name: &str) -> String {
    repo_root().join(name).to_str().unwrap().to_owned()
}

#[test]
fn import_prints_native_yaml_that_check_accepts() {
    for (file, upstreams, warns) in [
        ("config/import/litellm.yaml", "3 upstreams", true),
        ("config/import/librechat.yaml", "2 upstreams", true),
        ("config/import/plugins/openai.json", "1 upstreams", false),
    ] {
        let (code, yaml, err) = run(&["import", &example(file)], &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(err.contains("warning: "), warns, "{file}: {err}");
        let native = temp_file("native.yaml", &yaml);
        let (code, out, err) = run(&["check", "-c", native.to_str().unwrap()], ENV);
        assert_eq!(code, 0, "{file} imported as:\n{yaml}\n{err}");
        assert!(out.contains(upstreams), "{file}: {out}");
    }
}

#[test]
fn import_reports_what_litellm_settings_cannot_be_honoured_with_their_path() {
    let (code, _, err) = run(&["import", &example("config/import/litellm.yaml")], &[]);
    assert_eq!(code, 0);
    assert!(
        err.contains("model_list[0].litellm_params.rpm: per-deployment rate limits"),
        "{err}"
    );
    assert!(err.contains("model_list[4].litellm_params.model: provider `anthropic`"));
    assert!(err.contains("litellm_settings.drop_params"), "{err}");
}

#[test]
fn import_never_prints_a_literal_key() {
    let litellm = temp_file(
        "litellm.yaml",
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_key: sk-literal-import-9876}\ngeneral_settings: {master_key: sk-literal-master-5432}\n",
    );
    let (code, out, err) = run(&["import", litellm.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    for text in [&out, &err] {
        assert!(!text.contains("sk-literal"), "{text}");
    }
    assert!(out.contains("${OPENAI_API_KEY}"), "{out}");
}

#[test]
fn check_on_the_include_example_lists_the_included_files_warnings() {
    let (code, out, err) = run(
        &["check", "-c", &example("config/include-imports.yaml")],
        ENV,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK (7 upstreams"), "{out}");
    assert!(
        err.contains("warning: include[2] (import/plugins/anthropic.json) endpoint"),
        "{err}"
    );
    assert!(
        err.contains("warning: include[0] (import/litellm.yaml) model_list[0].litellm_params.rpm"),
        "{err}"
    );
    assert!(
        err.contains("warning: include[1] (import/librechat.yaml) endpoints.custom[0].dropParams"),
        "{err}"
    );
    for (_, key) in ENV {
        assert!(!out.contains(key) && !err.contains(key));
    }
}

#[test]
fn an_include_clash_is_an_error_naming_the_include() {
    let dir = temp_file(
        "litellm.yaml",
        "model_list:\n  - {model_name: m, litellm_params: {model: openai/m}}\n",
    );
    let main = dir.with_file_name("gateway.yaml");
    std::fs::write(
        &main,
        "include: [litellm.yaml]\nupstreams: [{name: openai, base_url: 'http://x/v1'}]\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "-c", main.to_str().unwrap()], &[]);
    assert_eq!(code, 64);
    assert!(
        err.contains("include[0]: upstream `openai` from litellm.yaml clashes"),
        "{err}"
    );
}

#[tokio::test]
async fn serve_with_an_include_routes_to_its_models_and_logs_its_warnings() {
    let up = MockUpstream::start().await;
    let litellm = temp_file(
        "litellm.yaml",
        &format!(
            "model_list:\n  - model_name: alias\n    litellm_params: {{model: openai/real-model, api_base: '{}', api_key: sk-literal-serve-1111, rpm: 5}}\n",
            up.base_url()
        ),
    );
    let gw = TestGateway::start(&format!("include: ['{}']\n", litellm.display())).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("alias", "hi", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = up.completions();
    assert_eq!(sent[0].json()["model"], "real-model");
    assert_eq!(
        sent[0].headers["authorization"],
        "Bearer sk-literal-serve-1111"
    );
    let logs = gw.logs_with("litellm_params.rpm").await;
    assert!(!logs.contains("sk-literal-serve-1111"), "{logs}");
}

#[test]
fn import_of_a_plugin_directory_prints_every_plugin_and_reports_the_skipped_ones() {
    let (code, yaml, err) = run(&["import", &example("config/import/plugins")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(yaml.contains("name: openai-plugin"), "{yaml}");
    assert!(
        err.contains("anthropic.json endpoint: not an OpenAI"),
        "{err}"
    );
    let native = temp_file("plugins.yaml", &yaml);
    let (code, out, err) = run(&["check", "-c", native.to_str().unwrap()], ENV);
    assert_eq!(code, 0, "{yaml}\n{err}");
    assert!(out.contains("OK (1 upstreams"), "{out}");
}
