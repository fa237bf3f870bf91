//! The command line: `check` reports every problem with its path, a bad config makes
//! `serve` exit non-zero with one line (no panic), `models` prints the catalogue.

use crate::support::*;
use std::process::Command;

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

#[test]
fn check_accepts_the_default_config() {
    let path = repo_root().join("gateway.yaml");
    let (code, out, _) = run(&["check", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("OK"));
}

#[test]
fn check_lists_every_problem_with_its_path() {
    let bad = temp_file(
        "bad.yaml",
        "upstreams:\n  - {name: a, base_url: 'ftp://x', timeout: 3}\n  - {name: b, base_url: 'http://y', auth: {type: bearer, key: '${MISSING_KEY_VAR}'}}\nroutes:\n  - {model: m, targets: [{upstream: zzz}]}\n",
    );
    let (code, _, err) = run(&["check", "-c", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 64);
    assert!(
        err.contains("upstreams[0].timeout: unknown field `timeout`"),
        "{err}"
    );
    assert!(err.contains("upstreams[1].auth.key"), "{err}");
    assert!(err.contains("MISSING_KEY_VAR"), "{err}");
    assert!(err.contains("routes[0].targets[0].upstream"), "{err}");
}

#[test]
fn check_reads_switchyard_config_from_the_environment() {
    let path = repo_root().join("config/mock-only.yaml");
    let (code, out, _) = run(&["check"], &[("SWITCHYARD_CONFIG", path.to_str().unwrap())]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn serve_with_a_bad_config_exits_with_one_line_and_no_panic() {
    let bad = temp_file(
        "bad.yaml",
        "upstreams: [{name: a, dialect: nope, base_url: 'http://x'}]\n",
    );
    let (code, _, err) = run(&["serve", "-c", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 64);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("upstreams[0].dialect"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"));
    let (code, _, err) = run(&["serve", "-c", "/nonexistent/gateway.yaml"], &[]);
    assert_eq!(code, 64);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn serve_on_a_taken_port_fails_cleanly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let path = repo_root().join("config/mock-only.yaml");
    let (code, _, err) = run(
        &["serve", "-c", path.to_str().unwrap(), "--listen", &addr],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot listen"), "{err}");
}

#[tokio::test]
async fn models_prints_a_table_and_json() {
    let a = MockUpstream::start().await;
    a.set_models(&["fetched-model"]);
    let cfg = temp_file(
        "m.yaml",
        &format!(
            "upstreams:\n  - {{name: a, base_url: '{}'}}\n  - {{name: mock, dialect: mock}}\n",
            a.base_url()
        ),
    );
    let cfg = cfg.to_str().unwrap().to_owned();
    let c2 = cfg.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || run(&["models", "-c", &c2], &[]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(out.lines().next().unwrap().starts_with("ID"));
    assert!(
        out.contains("fetched-model") && out.contains("mock-echo"),
        "{out}"
    );
    let (code, out, _) =
        tokio::task::spawn_blocking(move || run(&["models", "--json", "-c", &cfg], &[]))
            .await
            .unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn version_and_help_work() {
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("switchyard "));
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("Examples:"));
}

#[test]
fn default_workers_follow_the_cpus_the_process_may_use() {
    // One CPU allowed (as a container's cpuset or CPU quota would): one worker, not
    // one per host CPU. The listening line says how many.
    let path = repo_root().join("config/mock-only.yaml");
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(binary())
        .args([
            "serve",
            "-c",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env_remove("SWITCHYARD_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("taskset (util-linux) runs the gateway");
    let stderr = child.stderr.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|l| l.contains("switchyard listening"));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("the gateway said it was listening");
    assert!(line.contains("workers=1"), "{line}");
}

#[tokio::test]
async fn models_says_which_upstream_could_not_be_listed() {
    let a = MockUpstream::start().await;
    a.set_models(&["fetched-model"]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let cfg = temp_file(
        "dead.yaml",
        &format!(
            "upstreams:\n  - {{name: a, base_url: '{}'}}\n  - {{name: gone, base_url: 'http://127.0.0.1:{dead_port}/v1'}}\ncatalogue: {{fetch_timeout: 1s}}\n",
            a.base_url()
        ),
    );
    let cfg = cfg.to_str().unwrap().to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || run(&["models", "-c", &cfg], &[]))
        .await
        .unwrap();
    assert_eq!(
        code, 0,
        "the reachable upstream's models are still listed: {err}"
    );
    assert!(out.contains("fetched-model"), "{out}");
    assert!(
        err.contains("upstream gone: its model list could not be fetched"),
        "{err}"
    );
    assert!(!err.contains("upstream a:"), "{err}");
}
