//! Proxy URLs, the proxy environment and `NO_PROXY` matching.

use super::*;
use std::collections::HashMap;

fn env_of(vars: &[(&str, &str)]) -> ProxyEnv {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ProxyEnv::read(&|name| map.get(name).cloned())
}

fn via(env: &ProxyEnv, url: &str) -> Option<(String, u16)> {
    env.proxy_for(url)
        .unwrap()
        .map(|p| (p.host.to_string(), p.port))
}

#[test]
fn a_proxy_url_gives_host_port_and_basic_credentials() {
    let p = Proxy::parse("http://us%40er:p%3Ass@proxy.corp:3128/").unwrap();
    assert_eq!((&*p.host, p.port), ("proxy.corp", 3128));
    // base64("us@er:p:ss")
    assert_eq!(p.authorization.unwrap().expose(), "Basic dXNAZXI6cDpzcw==");
    let bare = Proxy::parse("proxy.corp").unwrap();
    assert_eq!((bare.port, bare.authorization), (1080, None));
    assert_eq!(&*Proxy::parse("http://[::1]:8080").unwrap().host, "::1");
}

#[test]
fn bad_proxy_urls_are_refused_without_quoting_them() {
    for bad in [
        "socks5://u:secret@h:1",
        "http://u:secret@h:notaport",
        "http://h/path",
        "",
    ] {
        let msg = Proxy::parse(bad).unwrap_err();
        assert!(!msg.contains("secret"), "{msg}");
    }
}

#[test]
fn base64_pads_as_rfc_4648_says() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
}

#[test]
fn the_scheme_picks_the_variable_lower_case_first_then_all_proxy() {
    let env = env_of(&[
        ("https_proxy", "http://lower:1"),
        ("HTTPS_PROXY", "http://upper:2"),
        ("HTTP_PROXY", "http://plain:3"),
    ]);
    assert_eq!(via(&env, "https://api.x/v1"), Some(("lower".into(), 1)));
    assert_eq!(via(&env, "http://api.x/v1"), Some(("plain".into(), 3)));
    let env = env_of(&[("ALL_PROXY", "http://all:4"), ("http_proxy", "")]);
    assert_eq!(via(&env, "http://api.x/v1"), Some(("all".into(), 4)));
    assert_eq!(via(&env, "https://api.x/v1"), Some(("all".into(), 4)));
    assert_eq!(via(&env_of(&[]), "https://api.x/v1"), None);
}

#[test]
fn no_proxy_matches_as_curl_does() {
    let env = env_of(&[
        ("HTTPS_PROXY", "http://p:1"),
        ("NO_PROXY", "example.com, .internal,10.0.0.1,[::1],svc:8443"),
    ]);
    let direct = |url: &str| via(&env, url).is_none();
    assert!(direct("https://example.com/v1"));
    assert!(direct("https://API.Example.com/v1"));
    assert!(!direct("https://notexample.com/v1"));
    assert!(direct("https://a.b.internal/v1"));
    assert!(direct("https://internal/v1"));
    assert!(direct("https://10.0.0.1:9000/v1"));
    assert!(!direct("https://10.0.0.10/v1"));
    assert!(direct("https://[::1]:9/v1"));
    assert!(direct("https://svc:8443/v1"));
    assert!(!direct("https://svc/v1"));
    // Loopback is not implied.
    assert!(!direct("https://localhost/v1"));
    assert!(!direct("https://127.0.0.1/v1"));
}

#[test]
fn a_no_proxy_star_disables_every_proxy() {
    let env = env_of(&[("https_proxy", "http://p:1"), ("no_proxy", "*")]);
    assert_eq!(via(&env, "https://api.x/v1"), None);
}

#[test]
fn a_bad_variable_is_an_error_only_where_it_applies_and_names_only_the_variable() {
    let env = env_of(&[("HTTPS_PROXY", "socks5://u:secret@h:1"), ("NO_PROXY", "ok")]);
    let msg = env.proxy_for("https://api.x/v1").unwrap_err();
    assert!(
        msg.contains("HTTPS_PROXY") && !msg.contains("secret"),
        "{msg}"
    );
    assert_eq!(env.proxy_for("https://ok/v1"), Ok(None));
    assert_eq!(env.proxy_for("http://api.x/v1"), Ok(None));
}

#[test]
fn debug_hides_credentials() {
    let p = Proxy::parse("http://user:hunter2@proxy:3128").unwrap();
    let shown = format!("{p:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("user"),
        "{shown}"
    );
}
