//! Zero-file mode against injected environments.

use super::*;
use crate::Auth;

fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn messages(e: &ConfigErrors) -> String {
    e.to_string()
}

#[test]
fn only_the_upstream_variables_select_zero_file_mode() {
    assert!(!zero_file_requested(&env_of(&[(
        "SWITCHYARD_LISTEN",
        "127.0.0.1:1"
    )])));
    assert!(!zero_file_requested(&env_of(&[(
        "OPENAI_API_BASE_URLS",
        "  "
    )])));
    assert!(zero_file_requested(&env_of(&[(
        "OLLAMA_BASE_URLS",
        "http://o:11434"
    )])));
}

#[test]
fn a_single_url_is_named_openai_and_several_are_numbered_from_one() {
    let c = parse_env(&env_of(&[("OPENAI_API_BASE_URLS", "http://a/v1")])).unwrap();
    assert_eq!(&*c.upstreams[0].name, "openai");
    let c = parse_env(&env_of(&[(
        "OPENAI_API_BASE_URLS",
        "http://a/v1; http://b/v1/",
    )]))
    .unwrap();
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.to_string()).collect();
    assert_eq!(names, ["openai-1", "openai-2"]);
    assert_eq!(c.upstreams[1].base_url, "http://b/v1");
}

#[test]
fn keys_pair_with_urls_and_short_or_empty_entries_mean_no_auth() {
    let c = parse_env(&env_of(&[
        (
            "OPENAI_API_BASE_URLS",
            "http://a/v1;http://b/v1;http://c/v1",
        ),
        ("OPENAI_API_KEYS", ";sk-b"),
    ]))
    .unwrap();
    assert!(matches!(c.upstreams[0].auth, Auth::None));
    match &c.upstreams[1].auth {
        Auth::Bearer(k) => assert_eq!(k.expose(), "sk-b"),
        _ => panic!("expected a bearer key"),
    }
    assert!(matches!(c.upstreams[2].auth, Auth::None));
}

#[test]
fn more_keys_than_urls_is_an_error_naming_the_variable_without_the_keys() {
    let e = parse_env(&env_of(&[
        ("OPENAI_API_BASE_URLS", "http://a/v1"),
        ("OPENAI_API_KEYS", "sk-secret-1;sk-secret-2"),
    ]))
    .unwrap_err();
    assert_eq!(e.0[0].path, "env OPENAI_API_KEYS");
    assert!(!messages(&e).contains("sk-secret"), "{e}");
}

#[test]
fn keys_without_urls_is_an_error() {
    let e = parse_env(&env_of(&[("OPENAI_API_KEYS", "sk-x")])).unwrap_err();
    assert_eq!(e.0[0].path, "env OPENAI_API_KEYS");
}

#[test]
fn a_bad_or_empty_url_entry_is_reported_at_its_index() {
    let e = parse_env(&env_of(&[(
        "OPENAI_API_BASE_URLS",
        "http://a/v1;ftp://b;;",
    )]))
    .unwrap_err();
    let paths: Vec<_> = e.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "env OPENAI_API_BASE_URLS[1]",
            "env OPENAI_API_BASE_URLS[2]",
            "env OPENAI_API_BASE_URLS[3]"
        ]
    );
}

#[test]
fn errors_from_the_normal_checks_point_at_the_variable() {
    let e = parse_env(&env_of(&[("OPENAI_API_BASE_URLS", "http:///v1")])).unwrap_err();
    assert_eq!(e.0[0].path, "env OPENAI_API_BASE_URLS[0]", "{e}");
    assert!(e.0[0].message.contains("upstream `openai`.base_url"), "{e}");
    let e = parse_env(&env_of(&[
        ("OLLAMA_BASE_URLS", "http://o:11434"),
        ("SWITCHYARD_LISTEN", "nowhere"),
    ]))
    .unwrap_err();
    assert_eq!(e.0[0].path, "env SWITCHYARD_LISTEN", "{e}");
}

#[test]
fn ollama_urls_get_v1_once_and_no_auth() {
    let c = parse_env(&env_of(&[(
        "OLLAMA_BASE_URLS",
        "http://o1:11434;http://o2:11434/v1/",
    )]))
    .unwrap();
    assert_eq!(c.upstreams[0].base_url, "http://o1:11434/v1");
    assert_eq!(c.upstreams[1].base_url, "http://o2:11434/v1");
    assert_eq!(&*c.upstreams[1].name, "ollama-2");
    assert!(matches!(c.upstreams[0].auth, Auth::None));
}

#[test]
fn listen_addresses_come_from_switchyard_variables() {
    let c = parse_env(&env_of(&[
        ("OLLAMA_BASE_URLS", "http://o:11434"),
        ("SWITCHYARD_LISTEN", "127.0.0.1:9000"),
        ("SWITCHYARD_METRICS_LISTEN", "127.0.0.1:9001"),
    ]))
    .unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(c.metrics.listen.to_string(), "127.0.0.1:9001");
    let c = parse_env(&env_of(&[("OLLAMA_BASE_URLS", "http://o:11434")])).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
}

#[test]
fn dollar_braces_in_values_are_taken_literally_and_keys_are_redacted() {
    let c = parse_env(&env_of(&[
        ("OPENAI_API_BASE_URLS", "http://a/v1"),
        ("OPENAI_API_KEYS", "sk-${NOT_A_VAR}"),
    ]))
    .unwrap();
    match &c.upstreams[0].auth {
        Auth::Bearer(k) => assert_eq!(k.expose(), "sk-${NOT_A_VAR}"),
        _ => panic!("expected a bearer key"),
    }
    assert_eq!(c.redactor.message("key sk-${NOT_A_VAR}"), "key ***");
}

#[test]
fn enable_toggles_turn_a_family_off_as_in_open_webui() {
    let c = parse_env(&env_of(&[
        ("OPENAI_API_BASE_URLS", "http://a/v1"),
        ("OLLAMA_BASE_URLS", "http://o:11434"),
        ("ENABLE_OLLAMA_API", "False"),
    ]))
    .unwrap();
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.to_string()).collect();
    assert_eq!(names, ["openai"]);
    let e = parse_env(&env_of(&[
        ("OPENAI_API_BASE_URLS", "http://a/v1"),
        ("ENABLE_OPENAI_API", "false"),
    ]))
    .unwrap_err();
    assert_eq!(e.0[0].path, "env", "{e}");
    assert!(e.0[0].message.contains("ENABLE_OPENAI_API"), "{e}");
}
