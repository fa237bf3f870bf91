//! Config errors never show a value that came from the environment: `check` and `serve`
//! run with canary values in their environment, on configs whose broken fields pull the
//! canaries in through `${VAR}` — wrong types the config crate finds, and plugin settings
//! only the daemon checks. Each must exit with the config-error code, name the YAML path,
//! and print no canary.

use crate::support::*;
use std::process::Command;

const CANARY: &str = "sk-canary-e2e-R4nd0mV4lue";

/// Exit code, stdout and stderr of the binary with the canary in its environment.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env_remove("SWITCHYARD_CONFIG")
        .env("SWITCHYARD_TEST_CANARY", CANARY)
        .env("SWITCHYARD_TEST_CANARY_URL", format!("http://x/{CANARY}"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (config, the YAML path its error names)
const BROKEN: &[(&str, &str)] = &[
    (
        "upstreams: [{name: a, base_url: 'http://x', auth: '${SWITCHYARD_TEST_CANARY}'}]\n",
        "upstreams[0].auth",
    ),
    (
        "upstreams: [{name: a, dialect: mock}]\nkeys: ['${SWITCHYARD_TEST_CANARY}']\n",
        "keys[0]",
    ),
    (
        "upstreams: [{name: a, base_url: '${SWITCHYARD_TEST_CANARY}'}]\n",
        "upstreams[0].base_url",
    ),
    (
        "upstreams: [{name: a, dialect: mock}]\nplugins: [{name: params, config: '${SWITCHYARD_TEST_CANARY}'}]\n",
        "plugins[0].config",
    ),
    (
        "upstreams: [{name: a, dialect: mock}]\nplugins: [{name: params, config: {overrides: '${SWITCHYARD_TEST_CANARY}'}}]\n",
        "plugins[0].config.overrides",
    ),
    (
        "upstreams: [{name: a, dialect: mock}]\nplugins: [{name: http, config: {url: 'ftp://${SWITCHYARD_TEST_CANARY}'}}]\n",
        "plugins[0].config.url",
    ),
    (
        "upstreams: [{name: a, dialect: mock}]\nplugins: [{name: http, config: {url: '${SWITCHYARD_TEST_CANARY_URL}', headers: '${SWITCHYARD_TEST_CANARY}'}}]\n",
        "plugins[0].config.headers",
    ),
];

#[test]
fn check_and_serve_never_print_an_environment_value_in_a_config_error() {
    for (yaml, path) in BROKEN {
        let file = temp_file("secret.yaml", yaml);
        for command in ["check", "serve"] {
            let (code, out, err) = run(&[command, "-c", file.to_str().unwrap()]);
            let shown = format!("{out}{err}");
            assert_eq!(code, 64, "{command} on\n{yaml}\nexited {code}: {shown}");
            assert!(
                !shown.contains(CANARY) && !shown.contains("canary"),
                "{command} on\n{yaml}\nprinted the canary: {shown}"
            );
            assert!(
                shown.contains(&format!("{path}: ")),
                "{command} on\n{yaml}\ndoes not name `{path}`: {shown}"
            );
        }
    }
}
