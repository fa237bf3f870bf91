use super::*;
use std::path::PathBuf;
use std::time::Duration;

/// Secrets are set; everything else falls back to its default.
fn any_env(name: &str) -> Option<String> {
    ["KEY", "TOKEN"]
        .iter()
        .any(|s| name.contains(s))
        .then(|| "test-value".into())
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn errors(yaml: &str) -> Vec<ConfigError> {
    parse(yaml, &no_env).unwrap_err().0
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_root_gateway_yaml_parses_with_no_environment() {
    let text = std::fs::read_to_string(repo_root().join("gateway.yaml")).unwrap();
    let config = parse(&text, &no_env).unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(
        config.upstreams[0].dialect,
        switchyard_dialects::Dialect::Mock
    );
}

#[test]
fn every_example_in_config_dir_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo_root().join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let dir = path.parent().unwrap().to_owned();
            let read = |entry: &str| read_included(&dir, entry);
            if let Err(e) = parse_with_files(&text, &any_env, &read) {
                panic!("{} does not parse:\n{e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected example configs, found {seen}");
}

#[test]
fn the_include_example_brings_every_imported_format_and_reports_the_rest() {
    let path = repo_root().join("config/include-imports.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = path.parent().unwrap().to_owned();
    let read = |entry: &str| read_included(&dir, entry);
    let c = parse_with_files(&text, &any_env, &read).unwrap();
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "mock",
            "openai",
            "groq",
            "ollama",
            "OpenRouter",
            "vllm",
            "openai-plugin"
        ]
    );
    assert_eq!(c.routing.max_attempts, 3);
    assert_eq!(c.routing.request_timeout, Duration::from_secs(120));
    let warned = |p: &str| c.warnings.iter().any(|w| w.path == p);
    assert!(warned(
        "include[0] (import/litellm.yaml) model_list[0].litellm_params.rpm"
    ));
    assert!(warned(
        "include[0] (import/litellm.yaml) model_list[4].litellm_params.model"
    ));
    assert!(warned(
        "include[1] (import/librechat.yaml) endpoints.custom[0].dropParams"
    ));
    assert!(warned(
        "include[2] (import/plugins/anthropic.json) endpoint"
    ));
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse("upstreams: [{name: a, base_url: 'http://x/v1/'}]", &no_env).unwrap();
    let up = &c.upstreams[0];
    assert_eq!(up.base_url, "http://x/v1");
    assert_eq!(up.connect_timeout, Duration::from_secs(5));
    assert_eq!(up.pool_idle_timeout, Duration::from_secs(30));
    assert!(up.fetch_models);
    assert!(matches!(up.auth, Auth::None));
    assert_eq!(c.routing.max_attempts, 4);
    assert_eq!(c.catalogue.hide.len(), 5);
    assert_eq!(c.server.max_body_bytes, 10 * 1024 * 1024);
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let e = errors("upstreams: [{name: a, base_url: 'http://x', timeout: 5s}]");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "upstreams[0].timeout");
    assert!(e[0].message.contains("unknown field `timeout`"), "{}", e[0]);

    let e = errors("servr: {}\nupstreams: [{name: a, dialect: mock}]");
    assert!(e[0].message.contains("unknown field `servr`"), "{}", e[0]);
}

#[test]
fn every_broken_entry_is_reported_not_just_the_first() {
    let e = errors(
        "upstreams:\n  - {name: a, base_url: 'ftp://x'}\n  - {name: b, base_url: 'http://y', dialect: nope}\n  - {name: c, base_url: 'http://z', connect_timeout: soon}\nrouting: {cooldown: 0s}\n",
    );
    let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "routing.cooldown",
            "upstreams[0].base_url",
            "upstreams[1].dialect",
            "upstreams[2].connect_timeout"
        ]
    );
}

#[test]
fn unset_variable_is_an_error_naming_variable_and_path() {
    let e = errors("upstreams: [{name: a, base_url: 'http://x', auth: {type: bearer, key: '${OPENAI_API_KEY}'}}]");
    assert_eq!(e[0].path, "upstreams[0].auth.key");
    assert!(e[0].message.contains("OPENAI_API_KEY"));
}

#[test]
fn secrets_from_env_never_print() {
    let c = parse(
        "upstreams: [{name: a, base_url: 'http://x', auth: {type: bearer, key: '${K}'}, headers: {X-T: '${K}'}}]",
        &|name| (name == "K").then(|| "sk-very-secret".into()),
    )
    .unwrap();
    let dump = format!("{c:?}");
    assert!(!dump.contains("sk-very-secret"), "{dump}");
    let Auth::Bearer(key) = &c.upstreams[0].auth else {
        panic!("bearer expected")
    };
    assert_eq!(key.expose(), "sk-very-secret");
}

#[test]
fn auth_types_parse() {
    let c = parse(
        r#"upstreams:
  - {name: h, base_url: 'http://x', auth: {type: header, name: api-key, key: k}}
  - {name: t, base_url: 'http://x', auth: {type: header, name: Authorization, prefix: 'Token ', key: k}}
  - {name: q, base_url: 'http://x', auth: {type: query, name: key, key: k}}
  - {name: p, base_url: 'http://x', auth: {type: passthrough}}
"#,
        &no_env,
    )
    .unwrap();
    assert!(matches!(&c.upstreams[1].auth, Auth::Header { prefix, .. } if prefix == "Token "));
    assert!(matches!(&c.upstreams[2].auth, Auth::Query { name, .. } if name == "key"));
    assert!(matches!(c.upstreams[3].auth, Auth::Passthrough));
    let e = errors("upstreams: [{name: a, base_url: 'http://x', auth: {type: magic}}]");
    assert_eq!(e[0].path, "upstreams[0].auth.type");
}

#[test]
fn routes_must_name_existing_upstreams() {
    let e = errors(
        "upstreams: [{name: a, dialect: mock}]\nroutes: [{model: m, targets: [{upstream: b}]}]",
    );
    assert_eq!(e[0].path, "routes[0].targets[0].upstream");
    assert!(e[0].message.contains("`b`"));
}

#[test]
fn duplicate_upstream_names_and_routes_are_rejected() {
    let e = errors("upstreams: [{name: a, dialect: mock}, {name: a, dialect: mock}]\nroutes: [{model: m, targets: [{upstream: a}]}, {model: m, targets: [{upstream: a}]}]");
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].path, "upstreams[1].name");
    assert_eq!(e[1].path, "routes[1].model");
}

#[test]
fn route_targets_default_model_and_weight() {
    let c = parse(
        "upstreams: [{name: a, base_url: 'http://x', weight: 5}]\nroutes: [{model: m, strategy: weighted, targets: [{upstream: a}], fallbacks: [z]}]",
        &no_env,
    )
    .unwrap();
    let t = &c.routes[0].targets[0];
    assert_eq!((t.model.as_str(), t.weight), ("m", 5));
    assert_eq!(c.routes[0].strategy, Strategy::Weighted);
}

fn one_upstream_with(field: &str) -> String {
    format!("upstreams:\n  - name: a\n    base_url: 'http://x'\n    {field}\n")
}

#[test]
fn a_yaml_number_duration_is_seconds() {
    let c = parse(&one_upstream_with("first_byte_timeout: 7"), &no_env).unwrap();
    assert_eq!(c.upstreams[0].first_byte_timeout, Duration::from_secs(7));
}

#[test]
fn a_yaml_decimal_duration_is_fractional_seconds() {
    let c = parse(&one_upstream_with("first_byte_timeout: 1.5"), &no_env).unwrap();
    assert_eq!(
        c.upstreams[0].first_byte_timeout,
        Duration::from_millis(1500)
    );
}

#[test]
fn a_quoted_bare_number_duration_is_seconds() {
    let c = parse(&one_upstream_with("first_byte_timeout: \"30\""), &no_env).unwrap();
    assert_eq!(c.upstreams[0].first_byte_timeout, Duration::from_secs(30));
}

#[test]
fn a_duration_from_an_environment_variable_is_expanded_before_parsing() {
    let yaml = one_upstream_with("connect_timeout: ${CONNECT_TIMEOUT}");
    let c = parse(&yaml, &|n| (n == "CONNECT_TIMEOUT").then(|| "5s".into())).unwrap();
    assert_eq!(c.upstreams[0].connect_timeout, Duration::from_secs(5));
}

#[test]
fn an_environment_variable_holding_bare_seconds_is_a_duration() {
    let yaml = one_upstream_with("connect_timeout: ${CONNECT_TIMEOUT}");
    let c = parse(&yaml, &|n| (n == "CONNECT_TIMEOUT").then(|| "2".into())).unwrap();
    assert_eq!(c.upstreams[0].connect_timeout, Duration::from_secs(2));
}

#[test]
fn a_plugin_timeout_accepts_a_compound_quoted_duration() {
    let c = parse(
        "upstreams: [{name: m, dialect: mock}]\nplugins: [{name: http, timeout: '1m 30s'}]",
        &no_env,
    )
    .unwrap();
    assert_eq!(c.plugins[0].timeout, Duration::from_secs(90));
}

#[test]
fn a_zero_duration_is_rejected_with_its_path() {
    let e = errors(&one_upstream_with("idle_timeout: 0"));
    assert_eq!(e[0].path, "upstreams[0].idle_timeout");
    assert!(e[0].message.contains("greater than 0"), "{}", e[0]);
}

#[test]
fn a_duration_that_is_not_text_or_a_number_is_rejected() {
    let e = errors(&one_upstream_with("idle_timeout: [5s]"));
    assert_eq!(e[0].path, "upstreams[0].idle_timeout");
}

#[test]
fn globs_and_model_kinds_filter() {
    let g = Glob::new("gpt-*-mini");
    assert!(g.matches("gpt-4o-mini"));
    assert!(!g.matches("gpt-4o"));
    assert!(ModelKind::Embedding.matches("text-embedding-3-small"));
    assert!(ModelKind::Tts.matches("gpt-4o-mini-tts"));
    assert!(!ModelKind::Image.matches("gpt-4o"));
}

#[test]
fn a_glob_star_matches_any_run_including_none() {
    let g = Glob::new("*-preview");
    assert!(g.matches("gpt-4o-preview"));
    assert!(g.matches("-preview"));
    assert!(!g.matches("gpt-4o-preview-2"));
}

#[test]
fn a_glob_treats_question_mark_and_brackets_as_literals() {
    assert!(Glob::new("o?-mini").matches("o?-mini"));
    assert!(!Glob::new("o?-mini").matches("o1-mini"));
    assert!(!Glob::new("o[13]-mini").matches("o1-mini"));
}

#[test]
fn a_glob_is_case_sensitive() {
    assert!(!Glob::new("GPT-*").matches("gpt-4o"));
}

#[test]
fn not_yaml_is_one_clear_error() {
    let e = errors("upstreams: [");
    assert_eq!(e.len(), 1);
    assert!(e[0].message.starts_with("not valid YAML"));
}

#[test]
fn plugin_settings_never_print() {
    let c = parse(
        "upstreams: [{name: m, dialect: mock}]\nplugins: [{name: http, config: {url: 'http://x', headers: {Authorization: '${T}'}}}]",
        &|_| Some("tok-very-secret".into()),
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("tok-very-secret"));
}

#[test]
fn an_upstream_proxy_setting_beats_the_environment() {
    let env = |name: &str| (name == "HTTPS_PROXY").then(|| "http://env-proxy:3128".to_owned());
    let c = parse(
        "upstreams:\n  - {name: a, base_url: 'https://a.example/v1', models: [m]}\n  - {name: b, base_url: 'https://b.example/v1', models: [m], proxy: none}\n  - {name: c, base_url: 'https://c.example/v1', models: [m], proxy: 'http://u:p@own:8080'}\n",
        &env,
    )
    .unwrap();
    let proxy = |i: usize| {
        c.upstreams[i]
            .proxy
            .as_ref()
            .map(|p| (p.host.to_string(), p.port))
    };
    assert_eq!(proxy(0), Some(("env-proxy".into(), 3128)));
    assert_eq!(proxy(1), None);
    assert_eq!(proxy(2), Some(("own".into(), 8080)));
    assert!(c.upstreams[2]
        .proxy
        .as_ref()
        .unwrap()
        .authorization
        .is_some());
}

#[test]
fn a_bad_proxy_setting_is_an_error_at_its_path_without_its_value() {
    let e = errors("upstreams: [{name: a, base_url: 'https://x', models: [m], proxy: 'socks5://u:hunter2@h:1'}]");
    assert_eq!(e[0].path, "upstreams[0].proxy");
    assert!(!e[0].message.contains("hunter2"), "{}", e[0].message);
}

#[test]
fn retry_policy_defaults_and_bad_values_name_their_path() {
    let c = parse("upstreams: [{name: a, dialect: mock}]", &no_env).unwrap();
    assert!(c.routing.retry_on_timeout);
    assert_eq!(c.routing.retry_budget.ratio, 0.2);
    assert_eq!(c.routing.retry_budget.min_per_second, 10);
    assert_eq!(c.routing.retry_budget.window, Duration::from_secs(10));
    let c = parse(
        "upstreams: [{name: a, dialect: mock, models: [x]}]\nrouting: {retry_on_timeout: false}\nroutes:\n  - {model: m, targets: [{upstream: a, model: x}], retry_on_timeout: true}\n",
        &no_env,
    )
    .unwrap();
    assert!(!c.routing.retry_on_timeout);
    assert_eq!(c.routes[0].retry_on_timeout, Some(true));
    let e = errors(
        "upstreams: [{name: a, dialect: mock}]\nrouting: {retry_budget: {ratio: -1, window: 2m, min_per_second: 3}}\n",
    );
    let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["routing.retry_budget.ratio", "routing.retry_budget.window"]
    );
    let e = errors("upstreams: [{name: a, dialect: mock}]\nrouting: {retry_budget: {ratoi: 1}}\n");
    assert!(e[0].message.contains("unknown field `ratoi`"), "{}", e[0]);
}

const ONE_UPSTREAM: &str = "upstreams: [{name: u, base_url: 'http://u', models: [m]}]\n";

#[test]
fn key_access_budgets_groups_and_prices_resolve() {
    let hash = format!("sha256:{}", "aB".repeat(32));
    let c = parse(
        &format!(
            "{ONE_UPSTREAM}groups:\n  - {{name: eng, models: ['claude-*']}}\n  - {{name: ops}}\nprices:\n  - {{model: 'gpt-4o*', input: 2.5, output: 10}}\n  - {{model: 'u/m', input: 0, output: 0}}\nkeys:\n  - {{name: a, key: '{hash}', models: [fast], groups: [eng, ops], budget: {{tokens: 1000, usd: 2.5, window: 1h}}}}\n  - {{name: b, key: sk-plain-key}}\n"
        ),
        &no_env,
    )
    .unwrap();
    let a = &c.keys[0];
    assert!(matches!(a.key, KeyValue::Sha256(d) if d[0] == 0xab));
    let models: Vec<&str> = a
        .models
        .as_deref()
        .unwrap()
        .iter()
        .map(Glob::as_str)
        .collect();
    assert_eq!(models, ["fast", "claude-*"]);
    let budget = a.budget.unwrap();
    assert_eq!(
        (budget.tokens, budget.usd, budget.window),
        (Some(1000), Some(2.5), Duration::from_secs(3600))
    );
    assert!(c.keys[1].models.is_none() && c.keys[1].budget.is_none());
    assert!(c.prices[0].applies("any", "gpt-4o-mini"));
    assert!(c.prices[1].applies("u", "m") && !c.prices[1].applies("v", "m"));
    let dump = format!("{c:?}");
    assert!(
        !dump.contains("sk-plain-key") && !dump.contains("abab"),
        "{dump}"
    );
}

#[test]
fn a_budget_window_defaults_to_one_day() {
    let c = parse(
        &format!(
            "{ONE_UPSTREAM}keys:\n  - {{name: a, key: sk-plain-key, budget: {{tokens: 5}}}}\n"
        ),
        &no_env,
    )
    .unwrap();
    assert_eq!(
        c.keys[0].budget.unwrap().window,
        Duration::from_secs(86_400)
    );
}

#[test]
fn bad_access_and_budget_values_name_their_path() {
    let e = errors(&format!(
        "{ONE_UPSTREAM}groups:\n  - {{name: eng, models: []}}\nprices:\n  - {{model: m, input: -1, output: 1}}\n  - {{model: m, input: 1}}\nkeys:\n  - {{name: a, key: 'sha256:abc', groups: [nope], models: []}}\n  - {{name: b, key: sk-plain-key, budget: {{window: 1h}}}}\n  - {{name: c, key: sk-other-key, budget: {{tokens: -5}}}}\n  - {{name: d, key: sk-third-key, budget: {{usd: 0, window: 1.5s}}}}\n"
    ));
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    for path in [
        "groups[0].models",
        "prices[0].input",
        "prices[1]",
        "keys[0].key",
        "keys[0].models",
        "keys[0].groups[0]",
        "keys[1].budget",
        "keys[2].budget.tokens",
        "keys[3].budget.usd",
        "keys[3].budget.window",
    ] {
        assert!(paths.contains(&path), "{path} missing from {e:?}");
    }
    let unknown = e.iter().find(|e| e.path == "keys[0].groups[0]").unwrap();
    assert!(
        unknown.message.contains("unknown group `nope`"),
        "{unknown:?}"
    );
}

#[test]
fn undeclared_groups_are_labels_while_no_groups_section_exists() {
    let c = parse(
        &format!("{ONE_UPSTREAM}keys:\n  - {{name: a, key: sk-plain-key, groups: [eng]}}\n"),
        &no_env,
    )
    .unwrap();
    assert!(c.keys[0].models.is_none());
}

#[test]
fn admin_is_off_without_its_section_and_loopback_only_without_a_token() {
    const UP: &str = "upstreams: [{name: a, base_url: 'http://a', models: [m]}]\n";
    let off = parse(UP, &|_| None).unwrap();
    assert!(!off.admin.enabled);
    let on = parse(&format!("{UP}admin: {{}}\n"), &|_| None).unwrap();
    assert!(on.admin.enabled);
    assert_eq!(on.admin.listen.to_string(), "127.0.0.1:9090");
    let errors = parse(&format!("{UP}admin: {{listen: '0.0.0.0:9090'}}\n"), &|_| {
        None
    })
    .unwrap_err();
    assert_eq!(errors.0[0].path, "admin.listen");
    let with_token = parse(
        &format!("{UP}admin: {{listen: '0.0.0.0:9090', token: '${{T}}'}}\n"),
        &|_| Some("t0ken-value".into()),
    )
    .unwrap();
    assert_eq!(with_token.admin.token.unwrap().expose(), "t0ken-value");
    let empty = parse(&format!("{UP}admin: {{token: ''}}\n"), &|_| None).unwrap_err();
    assert_eq!(empty.0[0].path, "admin.token");
    let plugins = parse(&format!("{UP}admin: {{plugins_dir: plugins}}\n"), &|_| None).unwrap();
    assert_eq!(plugins.admin.plugins_dir.as_deref(), Some("plugins"));
    assert!(on.admin.plugins_dir.is_none());
}

#[test]
fn an_empty_include_directory_brings_nothing_but_an_empty_glob_is_an_error() {
    let dir = std::env::temp_dir().join(format!("switchyard-empty-inc-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    assert!(crate::read_included(&dir, "plugins").unwrap().is_empty());
    let glob = crate::read_included(&dir, "plugins/*.json").unwrap_err();
    assert!(glob.contains("names no files"), "{glob}");
}

#[test]
fn cors_is_off_unless_configured_and_fills_its_defaults() {
    let up = "upstreams: [{name: a, dialect: mock, models: [m]}]\n";
    assert_eq!(parse(up, &no_env).unwrap().server.cors, None);
    let c = parse(
        &format!(
            "{up}server: {{cors: {{allow_origins: ['HTTPS://App.Example.com:8443', '*']}}}}\n"
        ),
        &no_env,
    )
    .unwrap()
    .server
    .cors
    .unwrap();
    assert_eq!(c.allow_origins, ["https://app.example.com:8443"]);
    assert!(c.any_origin && !c.allow_credentials);
    assert_eq!(c.allow_methods, ["GET", "POST", "OPTIONS"]);
    let headers = c.allow_headers.as_deref().unwrap();
    assert!(headers.iter().any(|h| h == "x-stainless-retry-count"));
    assert!(c
        .expose_headers
        .iter()
        .any(|h| h == "x-ratelimit-reset-tokens"));
    assert_eq!(c.max_age, Duration::from_secs(600));
    assert!(c.allows(b"https://app.example.com:8443") && c.allows(b"https://other.test"));
    let e = errors(&format!(
        "{up}server: {{cors: {{allow_origins: ['https://a.test/'], allow_methods: []}}}}\n"
    ));
    assert_eq!(e[0].path, "server.cors.allow_origins[0]");
    assert_eq!(e[1].path, "server.cors.allow_methods");
}

#[test]
fn state_defaults_to_memory_and_redis_takes_its_settings_with_defaults() {
    let c = parse(ONE_UPSTREAM, &no_env).unwrap();
    assert_eq!(c.state.redis, None);
    let env = |name: &str| (name == "REDIS_PASSWORD").then(|| "s3cret-pw".to_owned());
    let c = parse(
        &format!("{ONE_UPSTREAM}state: {{backend: redis, url: 'rediss://cache:6380/1', password: '${{REDIS_PASSWORD}}', on_unavailable: deny, command_timeout: 50ms}}\n"),
        &env,
    )
    .unwrap();
    let r = c.state.redis.unwrap();
    assert_eq!(r.url.expose(), "rediss://cache:6380/1");
    assert_eq!(r.password.as_ref().map(Secret::expose), Some("s3cret-pw"));
    assert_eq!(r.on_unavailable, OnUnavailable::Deny);
    assert_eq!(r.command_timeout, Duration::from_millis(50));
    assert_eq!(r.connect_timeout, Duration::from_secs(1));
    assert_eq!((r.prefix.as_str(), r.pool_size), ("switchyard:", 2));
}

#[test]
fn bad_state_settings_are_reported_at_their_paths_without_the_url() {
    let e = errors(&format!(
        "{ONE_UPSTREAM}state: {{backend: redis, url: 'http://:hunter2@x', pool_size: 0, on_unavailable: maybe, command_timeout: 0s}}\n"
    ));
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "state.url",
        "state.pool_size",
        "state.on_unavailable",
        "state.command_timeout",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert!(!format!("{e:?}").contains("hunter2"));
    let e = errors(&format!("{ONE_UPSTREAM}state: {{backend: redis}}\n"));
    assert_eq!(e[0].path, "state.url");
    let e = errors(&format!("{ONE_UPSTREAM}state: {{url: 'redis://x'}}\n"));
    assert_eq!(e[0].path, "state.url");
    assert!(e[0].message.contains("backend: redis"), "{}", e[0].message);
    let e = errors(&format!("{ONE_UPSTREAM}state: {{backend: etcd}}\n"));
    assert_eq!(e[0].path, "state.backend");
    let e = errors(&format!(
        "{ONE_UPSTREAM}state: {{backend: redis, url: 'redis://x', ca_file: ca.pem}}\n"
    ));
    assert_eq!(e[0].path, "state.ca_file");
}

#[test]
fn the_cache_is_opt_in_per_model_with_defaults() {
    let c = parse(ONE_UPSTREAM, &no_env).unwrap();
    assert!(c.cache.is_none());
    let c = parse(
        &format!("{ONE_UPSTREAM}cache: {{models: ['gpt-4o*']}}\n"),
        &no_env,
    )
    .unwrap();
    let cache = c.cache.unwrap();
    assert!(cache.models[0].matches("gpt-4o-mini"));
    assert_eq!(cache.ttl, Duration::from_secs(600));
    assert_eq!(
        (cache.max_bytes, cache.max_entry_bytes),
        (64 << 20, 1 << 20)
    );
    assert!(cache.only_deterministic && cache.shared && !cache.per_key);
    let e = errors(&format!("{ONE_UPSTREAM}cache: {{ttl: 5s}}\n"));
    assert_eq!(e[0].path, "cache.models");
    let e = errors(&format!(
        "{ONE_UPSTREAM}cache: {{models: ['*'], max_bytes: 10, max_entry_bytes: 11, ttl: soon}}\n"
    ));
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"cache.max_entry_bytes") && paths.contains(&"cache.ttl"),
        "{paths:?}"
    );
    let redis_only = parse(
        &format!("{ONE_UPSTREAM}cache: {{models: ['*'], max_bytes: 0}}\n"),
        &no_env,
    )
    .unwrap();
    assert_eq!(redis_only.cache.unwrap().max_bytes, 0);
    let e = errors(&format!(
        "{ONE_UPSTREAM}cache: {{models: ['*'], per_user: true}}\n"
    ));
    assert!(e[0].path.starts_with("cache"), "{e:?}");
    let off = parse(
        &format!("{ONE_UPSTREAM}cache: {{enabled: false}}\n"),
        &no_env,
    )
    .unwrap();
    assert!(off.cache.is_none());
}
