//! No config error may echo a value that came from the environment: a corpus of broken
//! configs, each pulling canary values in through `${VAR}`, and every error they produce
//! checked for the canaries (raw and in the escaped forms messages quote them in) and for
//! the YAML path an operator needs to fix the problem.

use switchyard_config::{parse, ConfigErrors};

/// A canary that looks like an API key.
const KEY: &str = "sk-canary-Q7x9ZpL2vW";
/// A canary with characters that `{:?}` and JSON escape.
const QUOTED: &str = "sk-\"canary\\Q7x9\tquoted";

fn env(name: &str) -> Option<String> {
    match name {
        "CANARY" => Some(KEY.to_owned()),
        "CANARY_QUOTED" => Some(QUOTED.to_owned()),
        _ => None,
    }
}

/// Every form a canary could take inside a message.
fn leaks(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for canary in [KEY, QUOTED] {
        let debug = format!("{canary:?}");
        let json = serde_json::Value::from(canary).to_string();
        for form in [canary, &debug[1..debug.len() - 1], &json[1..json.len() - 1]] {
            if text.contains(form) {
                found.push(form.to_owned());
            }
        }
        // A recognisable stretch of the canary is a leak too.
        if text.contains("canary") {
            found.push("canary".to_owned());
        }
    }
    found
}

/// A minimal valid upstream list, for cases broken elsewhere.
const UP: &str = "upstreams: [{name: a, dialect: mock}]\n";

/// (config text, the YAML path the error must name, a word saying what is wrong)
fn corpus() -> Vec<(String, &'static str, &'static str)> {
    let c = |yaml: &str, path: &'static str, what: &'static str| (yaml.to_owned(), path, what);
    let with_up =
        |yaml: &str, path: &'static str, what: &'static str| (format!("{UP}{yaml}"), path, what);
    vec![
        // A string where a mapping, list, number or boolean belongs.
        with_up("keys: ['${CANARY}']", "keys[0]", "string"),
        with_up("keys: ['${CANARY_QUOTED}']", "keys[0]", "string"),
        with_up(
            "keys: [{name: a, key: abcdefghij, groups: '${CANARY}'}]",
            "keys[0].groups",
            "string",
        ),
        c("upstreams: ['${CANARY}']", "upstreams[0]", "string"),
        c(
            "upstreams: [{name: a, base_url: 'http://x', auth: '${CANARY}'}]",
            "upstreams[0].auth",
            "string",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', auth: '${CANARY_QUOTED}'}]",
            "upstreams[0].auth",
            "string",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', auth: {type: '${CANARY}', key: x}}]",
            "upstreams[0].auth.type",
            "variant",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', headers: '${CANARY}'}]",
            "upstreams[0].headers",
            "string",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', headers: {x-api-key: ['${CANARY}']}}]",
            "upstreams[0].headers.x-api-key",
            "sequence",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', weight: '${CANARY}'}]",
            "upstreams[0].weight",
            "string",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', fetch_models: '${CANARY}'}]",
            "upstreams[0].fetch_models",
            "string",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', models: '${CANARY}'}]",
            "upstreams[0].models",
            "string",
        ),
        // Values a validation message quotes.
        c(
            "upstreams: [{name: a, base_url: '${CANARY}'}]",
            "upstreams[0].base_url",
            "URL",
        ),
        c(
            "upstreams: [{name: a, base_url: 'ftp://user:${CANARY}@host/v1'}]",
            "upstreams[0].base_url",
            "URL",
        ),
        c(
            "upstreams: [{name: 'a/${CANARY}', base_url: 'http://x'}]",
            "upstreams[0].name",
            "name",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', dialect: '${CANARY}'}]",
            "upstreams[0].dialect",
            "dialect",
        ),
        c(
            "upstreams: [{name: a, base_url: 'http://x', connect_timeout: '${CANARY}'}]",
            "upstreams[0].connect_timeout",
            "duration",
        ),
        with_up(
            "keys: [{name: '${CANARY}', key: abcdefghij}, {name: '${CANARY}', key: bcdefghijk}]",
            "keys[1].name",
            "twice",
        ),
        with_up(
            "routes: [{model: m, targets: [{upstream: '${CANARY}'}]}]",
            "routes[0].targets[0].upstream",
            "upstream",
        ),
        // Plugins.
        with_up("plugins: ['${CANARY}']", "plugins[0]", "string"),
        with_up(
            "plugins: [{name: http, stage: '${CANARY}'}]",
            "plugins[0].stage",
            "stage",
        ),
        with_up(
            "plugins: [{name: http, on_error: '${CANARY}'}]",
            "plugins[0].on_error",
            "policy",
        ),
        with_up(
            "plugins: [{name: http, keys: ['${CANARY}']}]",
            "plugins[0].keys[0]",
            "key",
        ),
        with_up(
            "plugins: [{name: http, models: '${CANARY}'}]",
            "plugins[0].models",
            "string",
        ),
        // Export sinks.
        with_up("export: '${CANARY}'", "export", "string"),
        with_up("export: {file: '${CANARY}'}", "export.file", "string"),
        with_up(
            "export: {http: [{url: 'http://c', format: clickhouse, headers: '${CANARY}'}]}",
            "export.http[0].headers",
            "string",
        ),
        with_up(
            "export: {http: [{url: '${CANARY}', format: clickhouse}]}",
            "export.http[0].url",
            "URL",
        ),
        with_up(
            "export: {http: [{url: 'http://c', format: '${CANARY}'}]}",
            "export.http[0].format",
            "format",
        ),
        // Single-entry sections.
        with_up("metrics: '${CANARY}'", "metrics", "string"),
        with_up(
            "metrics: {listen: '${CANARY}'}",
            "metrics.listen",
            "address",
        ),
        with_up(
            "metrics: {enabled: '${CANARY}'}",
            "metrics.enabled",
            "string",
        ),
        with_up("server: '${CANARY}'", "server", "string"),
        with_up("server: {listen: '${CANARY}'}", "server.listen", "address"),
        with_up(
            "server: {log_format: '${CANARY}'}",
            "server.log_format",
            "format",
        ),
        with_up("server: {tls: '${CANARY}'}", "server.tls", "string"),
        with_up(
            "server: {max_body_bytes: '${CANARY}'}",
            "server.max_body_bytes",
            "string",
        ),
        with_up(
            "catalogue: {hide: ['${CANARY}']}",
            "catalogue.hide[0]",
            "kind",
        ),
        with_up(
            "routing: {cooldown: '${CANARY}'}",
            "routing.cooldown",
            "duration",
        ),
        with_up("log: '${CANARY}'", "log", "string"),
        // The whole document.
        c("'${CANARY}'", "", "string"),
    ]
}

/// Why the errors of one config fail the test, if they do.
fn problem(yaml: &str, errors: &ConfigErrors, path: &str, what: &str) -> Option<String> {
    for e in &errors.0 {
        let shown = format!("{e} {e:?}");
        let found = leaks(&shown);
        if !found.is_empty() {
            return Some(format!("config:\n{yaml}\nerror leaks {found:?}: {shown}"));
        }
    }
    let named = errors
        .0
        .iter()
        .any(|e| e.path == path && e.message.contains(what));
    (!named).then(|| {
        format!("config:\n{yaml}\nexpected an error at `{path}` saying `{what}`, got: {errors}")
    })
}

#[test]
fn no_config_error_echoes_a_value_from_the_environment() {
    let corpus = corpus();
    assert!(corpus.len() >= 15);
    let failures: Vec<String> = corpus
        .iter()
        .filter_map(|(yaml, path, what)| match parse(yaml, &env) {
            Ok(_) => Some(format!("config:\n{yaml}\nparsed, but it is broken")),
            Err(errors) => problem(yaml, &errors, path, what),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} configs failed:\n\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_string_given_for_a_mapping_says_what_was_expected_without_the_value() {
    let errors = parse(
        "upstreams: [{name: a, base_url: 'http://x', auth: '${CANARY}'}]",
        &env,
    )
    .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "upstreams[0].auth: expected a mapping, found a string (value hidden)"
    );
}

#[test]
fn a_literal_key_in_the_wrong_place_is_not_echoed_either() {
    let errors = parse(&format!("{UP}keys: ['sk-literal-Zq81mN0p']"), &|_: &str| {
        None
    })
    .unwrap_err();
    let text = errors.to_string();
    assert!(!text.contains("sk-literal-Zq81mN0p"), "{text}");
    assert!(text.starts_with("keys[0]: "), "{text}");
}
