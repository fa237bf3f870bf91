//! The Python the tests run (the OpenAI SDK, hadolint, kubernetes-validate, the
//! Prometheus text parser): `SWITCHYARD_TEST_PYTHON`, else `<repo>/.venv/bin/python`.
//! `bash .ci/run` makes the venv; a missing one fails the test, never skips it.

use super::repo_root;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

/// How to get the Python the tests need.
const HOW: &str = "run `bash .ci/run` from the repository root, or: \
                   python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt";

/// The test Python interpreter.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_TEST_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "SWITCHYARD_TEST_PYTHON={} does not exist; {HOW}",
            p.display()
        );
        return p;
    }
    let venv = repo_root().canonicalize().unwrap().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the tests: {} does not exist and SWITCHYARD_TEST_PYTHON is not set; {HOW}",
        venv.display()
    );
    venv
}

/// Runs `tests/python/<script>` with the test Python and `env` (none of the machine's
/// OpenAI or Anthropic variables), within `limit`; its exit status and outputs.
async fn run(script: &str, env: &[(&str, &str)], limit: Duration) -> Output {
    let root = repo_root().canonicalize().unwrap();
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(root.join("tests/python").join(script))
        .current_dir(&root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("ANTHROPIC_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not start the Python interpreter: {e}"));
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {limit:?}"))
        .unwrap()
}

/// `script`'s exit status and both outputs, for an assertion message.
fn report(script: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hint = if stderr.contains("ModuleNotFoundError") {
        "\n(a package is missing from the venv: .venv/bin/pip install -r tests/python/requirements.txt)"
    } else {
        ""
    };
    format!(
        "{script} exited with {}\n--- stdout ---\n{}--- stderr ---\n{stderr}{hint}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
    )
}

/// Runs `tests/python/<script>` (see [`run`]); fails the test with both outputs unless
/// it exits 0. Returns its stdout.
pub async fn run_script(script: &str, env: &[(&str, &str)], limit: Duration) -> String {
    let out = run(script, env, limit).await;
    assert!(out.status.success(), "{}", report(script, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `tests/python/<script>` (see [`run`]) for up to 180 s; (success, report).
pub async fn run_python(script: &str, env: &[(&str, String)]) -> (bool, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run(script, &env, Duration::from_secs(180)).await;
    (out.status.success(), report(script, &out))
}
