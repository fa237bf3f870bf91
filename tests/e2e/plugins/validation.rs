//! Plugin config validation: `check` and `serve` name every problem with its YAML
//! path, on one line, and exit 64.

use crate::support::*;
use std::process::Command;

/// One problem per plugin entry, each in a different place.
const BAD_PLUGINS: &str = "upstreams:\n  - {name: mock, dialect: mock}\nplugins:\n  \
    - {name: no_such_plugin}\n  \
    - {name: content_filter, config: {banned_patterns: ['(unclosed', 'fine']}}\n  \
    - {name: rate_limiter, config: {limit: 2, window: soon}}\n  \
    - {name: system_prompt, config: {content: hi, colour: red}}\n  \
    - {name: system_prompt, id: sp2, parallel: true, config: {content: hi}}\n";

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_every_plugin_problem_with_its_yaml_path() {
    let path = temp_file("plugins.yaml", BAD_PLUGINS);
    let (code, out, err) = run(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(code, 64, "stdout: {out}\nstderr: {err}");
    for expected in [
        "plugins[0].name: unknown plugin `no_such_plugin`",
        "plugins[1].config.banned_patterns[0]: not a valid regex",
        "plugins[2].config.window",
        "plugins[3].config.colour: unknown field `colour`",
        "plugins[4].parallel",
    ] {
        assert!(err.contains(expected), "`{expected}` missing from:\n{err}");
    }
    assert!(!err.contains("banned_patterns[1]"), "{err}");
}

#[test]
fn serve_with_a_bad_plugin_config_exits_64_with_one_line_naming_every_problem() {
    let yaml = "upstreams:\n  - {name: mock, dialect: mock}\nplugins:\n  \
        - {name: no_such_plugin}\n  \
        - {name: rate_limiter, config: {limit: 2, window: soon}}\n  \
        - {name: system_prompt, config: {content: hi, colour: red}}\n  \
        - {name: params, parallel: true, config: {drop: [seed]}}\n";
    let path = temp_file("plugins.yaml", yaml);
    let (code, _, err) = run(&[
        "serve",
        "-c",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 64, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for expected in [
        "plugins[0].name",
        "plugins[1].config.window",
        "plugins[2].config.colour",
        "plugins[3].parallel",
    ] {
        assert!(err.contains(expected), "`{expected}` missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn serve_reports_a_bad_plugin_regex_on_one_line() {
    let yaml = "upstreams:\n  - {name: mock, dialect: mock}\nplugins:\n  \
        - {name: content_filter, config: {banned_patterns: ['(unclosed']}}\n";
    let path = temp_file("plugins.yaml", yaml);
    let (code, _, err) = run(&[
        "serve",
        "-c",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("plugins[0].config.banned_patterns[0]"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
