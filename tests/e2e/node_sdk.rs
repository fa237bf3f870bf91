//! openai-node (the official Node SDK) against the real binary: its default embeddings
//! call (base64), a chat stream through its iterator, and the Responses API, served by
//! the built-in mock. `bash .ci/run` installs the package into `tests/node` when `node`
//! and `npm` are on the machine; without `node` this test says so and checks nothing
//! else (the Python SDK tests cover the same calls).

use crate::support::*;
use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn openai_node_uses_its_defaults_against_the_gateway() {
    let node_present = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_present {
        eprintln!(
            "skipped: `node` is not installed (bash .ci/run installs openai-node when it is)"
        );
        return;
    }
    let root = repo_root().canonicalize().unwrap();
    assert!(
        root.join("tests/node/node_modules/openai").exists(),
        "node is installed but openai-node is not: run `npm install --prefix tests/node` (bash .ci/run does)"
    );
    let gw = TestGateway::start("upstreams: [{name: m, dialect: mock}]\n").await;
    let child = tokio::process::Command::new("node")
        .arg(root.join("tests/node/check.mjs"))
        .current_dir(root.join("tests/node"))
        .env("SWITCHYARD_BASE_URL", &gw.base)
        .env_remove("OPENAI_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the node script did not finish within 120 s")
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{report}\n--- gateway logs ---\n{}",
        gw.logs()
    );
    assert_eq!(report.matches("ok: ").count(), 3, "{report}");
    eprintln!("{report}");
}
