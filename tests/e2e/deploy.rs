//! The deployment artifacts in `deploy/`: the Dockerfile (hadolint, and that its binary,
//! ports and config path are the workspace's), its health check script against the real
//! gateway, the Kubernetes manifests and the Helm chart (`tests/python/deploy_check.py`:
//! schemas, cross-references, `switchyard check` on their configs), the Prometheus alert
//! rules (`promtool check rules`, `promtool test rules`), and that the Grafana dashboard
//! and the alerts use only metric names from the contract, `deploy/metrics.txt`.
//!
//! Tools come from the project's venv (hadolint, kubernetes-validate, helm-python-sdk;
//! `SWITCHYARD_TEST_PYTHON` or `<repo>/.venv`) and from Debian (`promtool`, package
//! `prometheus`); `bash .ci/run` installs them. A missing tool fails the test, never skips it.

use crate::support::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HOW: &str = "run `bash .ci/run` from the repository root (it installs the venv's \
                   packages from tests/python/requirements.txt and, as root, Debian's `prometheus` for promtool)";

/// The metrics listener's default port (the metrics contract: `metrics.listen`,
/// default `0.0.0.0:9464`).
const METRICS_PORT: u16 = 9464;
/// Where the image and the manifests put the config.
const CONFIG_PATH: &str = "/etc/switchyard/gateway.yaml";

fn root() -> PathBuf {
    repo_root().canonicalize().unwrap()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tool the venv installs into its `bin/`, beside the interpreter.
fn venv_tool(name: &str) -> PathBuf {
    let python = python();
    let tool = python.parent().unwrap().join(name);
    assert!(
        tool.exists(),
        "{} is missing (pip package for it: see tests/python/requirements.txt); {HOW}",
        tool.display()
    );
    tool
}

/// `promtool`: on PATH, else Debian's `/usr/bin/promtool`.
fn promtool() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file());
    let tool = on_path.unwrap_or_else(|| PathBuf::from("/usr/bin/promtool"));
    assert!(
        tool.is_file(),
        "promtool not found (Debian package `prometheus`); {HOW}"
    );
    tool
}

fn run(cmd: &mut Command) -> Output {
    cmd.current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

fn report(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// --- Docker -------------------------------------------------------------------------------

#[test]
fn dockerfile_passes_hadolint() {
    let out = run(Command::new(venv_tool("hadolint"))
        .args(["--failure-threshold", "info", "--no-color"])
        .arg("deploy/docker/Dockerfile"));
    assert!(out.status.success(), "hadolint:\n{}", report(&out));
}

/// `name = "…"` of the first `[[bin]]` in crates/switchyard/Cargo.toml.
fn binary_name() -> String {
    let manifest = read("crates/switchyard/Cargo.toml");
    let bin = manifest
        .split("[[bin]]")
        .nth(1)
        .expect("crates/switchyard/Cargo.toml has a [[bin]]");
    bin.lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("[[bin]] has a name")
}

/// The port of `server.listen` in the default gateway.yaml (`${VAR:-addr}` resolved to
/// its default).
fn default_listen_port() -> u16 {
    let yaml = read("gateway.yaml");
    let listen = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen:"))
        .expect("gateway.yaml sets server.listen");
    let listen = listen.split('#').next().unwrap().trim();
    let addr = listen
        .strip_prefix("${")
        .and_then(|s| s.split_once(":-"))
        .map_or(listen, |(_, default)| default.trim_end_matches('}'));
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn dockerfile_builds_runs_and_exposes_what_the_workspace_defines() {
    let dockerfile = read("deploy/docker/Dockerfile");
    let bin = binary_name();
    let http = default_listen_port();
    // Instructions, with continuation lines joined.
    let joined = dockerfile.replace("\\\n", " ");
    let instr = |name: &str| -> Vec<String> {
        joined
            .lines()
            .filter_map(|l| l.trim().strip_prefix(name).map(|r| r.trim().to_owned()))
            .collect()
    };

    assert!(
        instr("RUN")
            .iter()
            .any(|r| r.contains("-p switchyard") && r.contains(&format!("target/release/{bin} "))),
        "the builder should build `-p switchyard` and take target/release/{bin}"
    );
    assert!(
        instr("COPY")
            .iter()
            .any(|c| c.starts_with("--from=builder")
                && c.ends_with(&format!("/usr/local/bin/{bin}"))),
        "the runtime stage should copy the binary to /usr/local/bin/{bin}"
    );
    assert_eq!(
        instr("ENTRYPOINT"),
        [format!("[\"/usr/local/bin/{bin}\"]")],
        "ENTRYPOINT"
    );
    assert_eq!(
        instr("CMD"),
        [format!("[\"serve\", \"-c\", \"{CONFIG_PATH}\"]")],
        "CMD"
    );
    assert!(
        instr("COPY").contains(&format!("gateway.yaml {CONFIG_PATH}")),
        "the default gateway.yaml should be copied to {CONFIG_PATH}"
    );
    assert!(
        instr("ENV").contains(&format!("SWITCHYARD_CONFIG={CONFIG_PATH}")),
        "SWITCHYARD_CONFIG should name {CONFIG_PATH}"
    );
    let exposed: BTreeSet<u16> = instr("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    assert_eq!(exposed, BTreeSet::from([http, METRICS_PORT]), "EXPOSE");
    let user = instr("USER");
    assert!(
        user.last()
            .is_some_and(|u| !u.starts_with('0') && !u.starts_with("root")),
        "the image should run as a non-root user, has USER {user:?}"
    );
    assert!(
        instr("HEALTHCHECK")
            .iter()
            .any(|h| h.contains("switchyard-healthcheck") && h.contains("/healthz")),
        "HEALTHCHECK should run switchyard-healthcheck /healthz"
    );

    // Everything the Dockerfile COPYs from the context exists and is not .dockerignore'd.
    let ignore = read(".dockerignore");
    for copy in instr("COPY").iter().filter(|c| !c.starts_with("--from")) {
        let words: Vec<&str> = copy.split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            assert!(
                root().join(src).exists(),
                "COPY {src}: not in the repository"
            );
            let top = src.split('/').next().unwrap();
            let excluded = ignore.lines().any(|l| l.trim() == top || l.trim() == *src);
            let reincluded = ignore.lines().any(|l| l.trim() == format!("!{src}"));
            assert!(
                !excluded || reincluded,
                "COPY {src}: excluded by .dockerignore"
            );
        }
    }
}

#[tokio::test]
async fn image_health_check_script_passes_on_a_serving_gateway_and_fails_without_one() {
    let script = root().join("deploy/docker/healthcheck.sh");
    let gw = TestGateway::start("upstreams:\n  - {name: m, dialect: mock, models: [echo]}\n").await;
    let port = gw.base.rsplit(':').next().unwrap().to_owned();
    let check = |env: &[(&str, &str)], path: &str| {
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .arg(path)
            .env_remove("SWITCHYARD_LISTEN")
            .env_remove("SWITCHYARD_HEALTH_PORT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };

    for path in ["/healthz", "/readyz"] {
        let out = check(&[("SWITCHYARD_HEALTH_PORT", &port)], path);
        assert!(out.status.success(), "{path}: {}", report(&out));
    }
    // The port follows SWITCHYARD_LISTEN, as the default gateway.yaml's server.listen does.
    let out = check(
        &[("SWITCHYARD_LISTEN", &format!("0.0.0.0:{port}"))],
        "/healthz",
    );
    assert!(out.status.success(), "{}", report(&out));
    // A path that is not 200 fails.
    let out = check(&[("SWITCHYARD_HEALTH_PORT", &port)], "/no-such-path");
    assert!(!out.status.success(), "{}", report(&out));

    drop(gw);
    let out = check(&[("SWITCHYARD_HEALTH_PORT", &port)], "/healthz");
    assert!(!out.status.success(), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing listening"),
        "{}",
        report(&out)
    );
}

// --- Kubernetes and Helm ------------------------------------------------------------------

fn deploy_check(what: &str) {
    let out = run(Command::new(python())
        .arg("tests/python/deploy_check.py")
        .arg(what)
        .arg(binary())
        .env("PYTHONDONTWRITEBYTECODE", "1"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hint = if stderr.contains("ModuleNotFoundError") {
        format!("\n(a package is missing from the venv; {HOW})")
    } else {
        String::new()
    };
    assert!(out.status.success(), "{}{hint}", report(&out));
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn kubernetes_manifests_validate_and_agree_with_each_other() {
    deploy_check("kubernetes");
}

#[test]
fn helm_chart_lints_and_renders_valid_manifests_in_every_mode() {
    deploy_check("helm");
}

// --- Prometheus and Grafana ---------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool_check() {
    let out = run(Command::new(promtool())
        .args(["check", "rules"])
        .arg("deploy/prometheus/alerts.yaml"));
    assert!(out.status.success(), "{}", report(&out));
}

#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let out = run(Command::new(promtool())
        .args(["test", "rules"])
        .arg("deploy/prometheus/alerts_test.yaml"));
    assert!(out.status.success(), "{}", report(&out));
}

/// The contract: deploy/metrics.txt, one name per line, `#` comments.
fn contract() -> BTreeSet<String> {
    let names: Vec<String> = read("deploy/metrics.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let set: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(set.len(), names.len(), "deploy/metrics.txt has duplicates");
    for n in &set {
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && (n.starts_with("switchyard_") || n.starts_with("process_")),
            "deploy/metrics.txt: {n:?} is not a switchyard_ or process_ metric name"
        );
    }
    set
}

/// Every `switchyard_…` / `process_…` identifier in `text`.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["switchyard_", "process_"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix) {
            let start = from + i;
            let word_start = start == 0 || {
                let b = bytes[start - 1];
                !(b.is_ascii_alphanumeric() || b == b'_')
            };
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |e| start + e);
            if word_start {
                out.insert(text[start..end].to_owned());
            }
            from = end;
        }
    }
    out
}

/// A used name is known when it is in the contract, or is a histogram's series.
fn unknown_metrics(used: &BTreeSet<String>, contract: &BTreeSet<String>) -> Vec<String> {
    used.iter()
        .filter(|n| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !contract.contains(*n) && !contract.contains(base)
        })
        .cloned()
        .collect()
}

#[test]
fn dashboard_and_alerts_use_only_metrics_from_the_contract() {
    let contract = contract();
    let files = [
        "deploy/grafana/switchyard.json",
        "deploy/prometheus/alerts.yaml",
        "deploy/prometheus/alerts_test.yaml",
    ];
    let mut all_used = BTreeSet::new();
    for file in files {
        let used = metric_names_in(&read(file));
        assert!(!used.is_empty(), "{file} uses no metric at all");
        let unknown = unknown_metrics(&used, &contract);
        assert!(
            unknown.is_empty(),
            "{file} uses metrics that are not in deploy/metrics.txt: {unknown:?}"
        );
        all_used.extend(used);
    }
    // The scanner itself: it finds names and would flag a stray one.
    let probe = metric_names_in("rate(switchyard_requests_total[5m]) + switchyard_nope_total");
    assert_eq!(
        unknown_metrics(&probe, &contract),
        ["switchyard_nope_total"]
    );
    // The dashboard is valid JSON with panels whose queries all name a metric.
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/switchyard.json")).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let mut exprs = 0;
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel {} has no targets", p["title"]));
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            assert!(
                !metric_names_in(expr).is_empty(),
                "panel {}: {expr}",
                p["title"]
            );
            exprs += 1;
        }
    }
    assert!(exprs >= 10, "only {exprs} queries in the dashboard");
    eprintln!(
        "{} of {} contract metrics used by the dashboard and alerts",
        contract
            .iter()
            .filter(|c| all_used.iter().any(|u| u.starts_with(c.as_str())))
            .count(),
        contract.len()
    );
}

#[test]
fn dashboard_covers_what_operators_look_at_first() {
    let dash = read("deploy/grafana/switchyard.json");
    for (what, needle) in [
        ("request rate", "rate(switchyard_requests_total"),
        (
            "latency quantiles",
            "switchyard_request_duration_seconds_bucket",
        ),
        (
            "TTFB quantiles",
            "switchyard_stream_time_to_first_byte_seconds_bucket",
        ),
        ("tokens", "switchyard_output_tokens_total"),
        ("cool-down", "switchyard_upstream_cooldown"),
        ("failovers", "switchyard_upstream_failovers_total"),
        ("plugin rejections", "switchyard_plugin_rejections_total"),
        ("streams in flight", "switchyard_streams_in_flight"),
        ("cache hits", "switchyard_cache_lookups_total"),
        ("the shared state store", "switchyard_state_up"),
    ] {
        assert!(
            dash.contains(needle),
            "the dashboard has no {what} ({needle})"
        );
    }
    assert!(dash.contains("histogram_quantile(0.99"), "no p99");
    assert!(dash.contains("histogram_quantile(0.5"), "no p50");
}

#[test]
fn helm_chart_and_manifests_name_the_same_config_path_and_ports() {
    for file in [
        "deploy/kubernetes/standalone/deployment.yaml",
        "deploy/kubernetes/sidecar/deployment.yaml",
        "deploy/helm/switchyard/templates/_helpers.tpl",
    ] {
        let text = read(file);
        assert!(
            text.contains(CONFIG_PATH),
            "{file} does not use {CONFIG_PATH}"
        );
        assert!(
            text.contains("mountPath: /etc/switchyard"),
            "{file} does not mount the config at /etc/switchyard"
        );
    }
    let values = read("deploy/helm/switchyard/values.yaml");
    let http = default_listen_port();
    assert!(
        values.contains(&format!("  http: {http}\n")),
        "values.yaml ports.http"
    );
    assert!(
        values.contains(&format!("  metrics: {METRICS_PORT}\n")),
        "values.yaml ports.metrics"
    );
    assert!(Path::new(&root().join("deploy/helm/switchyard/README.md")).exists());
}
