//! Header fidelity: which client headers reach an upstream (`passthrough` upstreams get
//! the OpenAI account headers and the client's `User-Agent` with ` switchyard/<v>`
//! appended; `forward_headers` adds others to any upstream; hop-by-hop and credential
//! headers never), what of the upstream's response headers the client gets (its
//! `x-request-id` as `x-upstream-request-id`; the operator's `openai-organization` /
//! `openai-project` removed unless configured), and the gateway's own request ids.

use crate::support::*;
use serde_json::json;
use std::collections::HashSet;

/// Ours, as an upstream sees it.
const OURS: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// What an OpenAI SDK sends beside its body, plus headers that must never go upstream.
const CLIENT: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("authorization", "Bearer sk-client-own-key"),
    ("openai-organization", "org-client"),
    ("openai-project", "proj-client"),
    ("openai-beta", "assistants=v2"),
    ("user-agent", "OpenAI/Python 1.54.0"),
    ("x-api-key", "sk-client-x-api-key"),
    ("x-trace-id", "trace-1"),
    ("x-trace-id", "trace-2"),
    ("x-stainless-lang", "python"),
    ("te", "trailers"),
    ("keep-alive", "timeout=5"),
    ("proxy-authorization", "Basic cHJveHk6c2VjcmV0"),
    ("proxy-connection", "keep-alive"),
    ("x-hop", "named-by-connection"),
    ("connection", "keep-alive, x-hop"),
];

/// One upstream `u` serving `m`, with these extra settings (YAML flow entries).
fn one_upstream(url: &str, settings: &str) -> String {
    format!("upstreams:\n  - {{name: u, base_url: '{url}', models: [m]{settings}}}\n")
}

/// Sends one chat request with [`CLIENT`]'s headers; the headers the upstream saw.
async fn seen_upstream(settings: &str) -> http::HeaderMap {
    seen_upstream_with(settings, "").await
}

/// [`seen_upstream`], with more config after the upstream (`plugins:`…).
async fn seen_upstream_with(settings: &str, extra: &str) -> http::HeaderMap {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&(one_upstream(&up.base_url(), settings) + extra)).await;
    let r = gw
        .http()
        .call(
            "POST",
            "/v1/chat/completions",
            CLIENT,
            chat("m", "x", false).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    up.completions()[0].headers.clone()
}

fn values<'a>(h: &'a http::HeaderMap, name: &str) -> Vec<&'a str> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// Hop-by-hop headers and the client's `x-api-key` never go upstream, whatever the
/// upstream.
fn assert_never_forwarded(h: &http::HeaderMap) {
    for name in [
        "x-api-key",
        "te",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "x-hop",
    ] {
        assert!(!h.contains_key(name), "{name} reached the upstream: {h:?}");
    }
    for v in values(h, "connection") {
        assert!(!v.contains("x-hop"), "{v}");
    }
}

#[tokio::test]
async fn a_passthrough_upstream_gets_the_openai_headers_and_the_clients_user_agent() {
    let h = seen_upstream(", auth: {type: passthrough}").await;
    assert_eq!(values(&h, "authorization"), ["Bearer sk-client-own-key"]);
    assert_eq!(values(&h, "openai-organization"), ["org-client"]);
    assert_eq!(values(&h, "openai-project"), ["proj-client"]);
    assert_eq!(values(&h, "openai-beta"), ["assistants=v2"]);
    assert_eq!(
        values(&h, "user-agent"),
        [format!("OpenAI/Python 1.54.0 {OURS}").as_str()]
    );
    // Not on the allowlist: stays with the gateway.
    assert!(!h.contains_key("x-trace-id"), "{h:?}");
    assert!(!h.contains_key("x-stainless-lang"), "{h:?}");
    // The request id is ours (the client sent none), not a forwarded header.
    assert!(values(&h, "x-request-id")[0].starts_with("req_"), "{h:?}");
    assert_never_forwarded(&h);
}

#[tokio::test]
async fn a_keyed_upstream_gets_none_of_the_clients_headers_by_default() {
    let h = seen_upstream(", auth: {type: bearer, key: sk-operator}").await;
    assert_eq!(values(&h, "authorization"), ["Bearer sk-operator"]);
    for name in [
        "openai-organization",
        "openai-project",
        "openai-beta",
        "x-trace-id",
        "x-stainless-lang",
    ] {
        assert!(!h.contains_key(name), "{name}: {h:?}");
    }
    assert_eq!(values(&h, "user-agent"), [OURS]);
    assert_never_forwarded(&h);
}

#[tokio::test]
async fn forward_headers_reach_any_upstream_every_value_of_them() {
    // A keyed upstream: the allowlist alone decides (names are case-insensitive).
    let h = seen_upstream(
        ", auth: {type: bearer, key: sk-operator}, \
         forward_headers: [OpenAI-Beta, X-Trace-Id, user-agent, x-hop]",
    )
    .await;
    assert_eq!(values(&h, "authorization"), ["Bearer sk-operator"]);
    assert_eq!(values(&h, "openai-beta"), ["assistants=v2"]);
    assert_eq!(values(&h, "x-trace-id"), ["trace-1", "trace-2"]);
    assert_eq!(
        values(&h, "user-agent"),
        [format!("OpenAI/Python 1.54.0 {OURS}").as_str()]
    );
    assert!(!h.contains_key("openai-organization"), "{h:?}");
    assert!(!h.contains_key("x-stainless-lang"), "{h:?}");
    // Listed, but the client's `Connection` made it hop-by-hop for this request.
    assert_never_forwarded(&h);

    // A passthrough upstream: its own set plus the allowlist, each header once.
    let h = seen_upstream(
        ", auth: {type: passthrough}, forward_headers: [openai-beta, x-stainless-lang]",
    )
    .await;
    assert_eq!(values(&h, "openai-beta"), ["assistants=v2"]);
    assert_eq!(values(&h, "x-stainless-lang"), ["python"]);
    assert_eq!(values(&h, "openai-project"), ["proj-client"]);
    assert_never_forwarded(&h);
}

#[tokio::test]
async fn an_upstreams_configured_headers_win_over_the_clients() {
    let h = seen_upstream(
        ", auth: {type: passthrough}, forward_headers: [x-trace-id], \
         headers: {OpenAI-Organization: org-operator, x-trace-id: fixed, User-Agent: ops-agent}",
    )
    .await;
    assert_eq!(values(&h, "openai-organization"), ["org-operator"]);
    assert_eq!(values(&h, "x-trace-id"), ["fixed"]);
    assert_eq!(values(&h, "user-agent"), ["ops-agent"]);
    assert_eq!(values(&h, "openai-project"), ["proj-client"]);
}

/// A chat answer carrying an upstream's own request id and account headers.
fn answer_with_upstream_headers(status: u16) -> Reply {
    let body = if status == 200 {
        chat_json("m", "hi")
    } else {
        json!({"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}})
    };
    Reply::Json(
        status,
        body,
        vec![
            ("x-request-id", "req-upstream-7".to_owned()),
            ("openai-organization", "org-operator".to_owned()),
            ("openai-project", "proj-operator".to_owned()),
            ("openai-processing-ms", "12".to_owned()),
        ],
    )
}

#[tokio::test]
async fn the_upstreams_request_id_is_kept_beside_ours_and_its_account_headers_removed() {
    for status in [200, 429] {
        let up = MockUpstream::with_script(vec![answer_with_upstream_headers(status)]).await;
        let gw = TestGateway::start(&one_upstream(&up.base_url(), "")).await;
        let r = gw
            .http()
            .post("/v1/chat/completions", &chat("m", "x", false))
            .await;
        assert_eq!(r.status, status, "{}", r.text());
        let ours = r.headers["x-request-id"].to_str().unwrap();
        assert!(ours.starts_with("req_") && ours.len() == 36, "{ours}");
        assert_eq!(r.headers["x-upstream-request-id"], "req-upstream-7");
        assert_eq!(
            up.completions()[0].headers["x-request-id"],
            ours,
            "ours went upstream"
        );
        assert!(!r.headers.contains_key("openai-organization"), "{status}");
        assert!(!r.headers.contains_key("openai-project"), "{status}");
        assert_eq!(r.headers["openai-processing-ms"], "12");
    }
}

#[tokio::test]
async fn strip_response_headers_keeps_the_account_headers_or_removes_others() {
    let up = MockUpstream::with_script(vec![answer_with_upstream_headers(200)]).await;
    let gw = TestGateway::start(&one_upstream(
        &up.base_url(),
        ", strip_response_headers: []",
    ))
    .await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "x", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["openai-organization"], "org-operator");
    assert_eq!(r.headers["openai-project"], "proj-operator");

    let gw = TestGateway::start(
        &(one_upstream(
            &up.base_url(),
            ", strip_response_headers: [OpenAI-Processing-Ms, x-upstream-request-id], \
             forward_headers: [X-Trace-Id]",
        ) + "admin: {}\n"),
    )
    .await;
    let config = gw.admin_http().get("/admin/config").await.json();
    let view = &config["config"]["upstreams"][0];
    assert_eq!(
        view["strip_response_headers"],
        json!(["openai-processing-ms", "x-upstream-request-id"])
    );
    assert_eq!(view["forward_headers"], json!(["x-trace-id"]));
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "x", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["openai-organization"], "org-operator");
    assert!(!r.headers.contains_key("openai-processing-ms"));
    assert!(!r.headers.contains_key("x-upstream-request-id"));
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn header_lists_that_name_what_may_never_be_forwarded_are_config_errors() {
    let bad = temp_file(
        "headers-bad.yaml",
        "upstreams:\n  - {name: u, base_url: 'http://u', models: [a], \
         forward_headers: [x-ok, Connection, authorization, x-api-key, 'bad name', Proxy-Authorization, host], \
         strip_response_headers: [x-request-id, 'also bad']}\n",
    );
    let out = tokio::process::Command::new(binary())
        .args(["check", "-c", bad.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for path in 1..=6 {
        let path = format!("upstreams[0].forward_headers[{path}]");
        assert!(text.contains(&path), "{path}: {text}");
    }
    assert!(!text.contains("forward_headers[0]"), "{text}");
    assert!(text.contains("hop-by-hop"), "{text}");
    for path in [
        "upstreams[0].strip_response_headers[0]",
        "upstreams[0].strip_response_headers[1]",
    ] {
        assert!(text.contains(path), "{path}: {text}");
    }
}

#[tokio::test]
async fn new_request_ids_are_128_random_bits_never_sequential() {
    let gw = TestGateway::start("upstreams: [{name: m, dialect: mock}]\n").await;
    let http = gw.http();
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let r = http
            .post("/v1/chat/completions", &chat("mock-echo", "x", false))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.headers["x-request-id"].to_str().unwrap().to_owned());
    }
    for id in &ids {
        let hex = id.strip_prefix("req_").unwrap_or_else(|| panic!("{id}"));
        assert_eq!(hex.len(), 32, "{id}");
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{id}"
        );
    }
    let distinct: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), ids.len(), "ids repeat");
    // No shared prefix (a per-process prefix and a counter would give one 16-hex prefix
    // to all): even the first 8 hex digits differ but for a rare coincidence.
    let prefixes: HashSet<&str> = ids.iter().map(|id| &id[4..20]).collect();
    assert_eq!(prefixes.len(), ids.len(), "a common 16-hex prefix");
    let short: HashSet<&str> = ids.iter().map(|id| &id[4..12]).collect();
    assert!(short.len() >= 995, "{}", short.len());
    // Not counted: consecutive ids are not a small step apart.
    let steps = ids
        .windows(2)
        .filter(|w| {
            let a = u128::from_str_radix(&w[0][4..], 16).unwrap();
            let b = u128::from_str_radix(&w[1][4..], 16).unwrap();
            a.abs_diff(b) < 1 << 64
        })
        .count();
    assert!(steps <= 1, "{steps} consecutive ids a small step apart");
}

#[tokio::test]
async fn with_plugins_configured_the_same_headers_are_forwarded() {
    let h = seen_upstream_with(
        ", auth: {type: passthrough}, forward_headers: [x-trace-id]",
        "plugins:\n  - {name: user_headers}\n",
    )
    .await;
    assert_eq!(values(&h, "openai-beta"), ["assistants=v2"]);
    assert_eq!(values(&h, "x-trace-id"), ["trace-1", "trace-2"]);
    assert_eq!(
        values(&h, "user-agent"),
        [format!("OpenAI/Python 1.54.0 {OURS}").as_str()]
    );
    assert_never_forwarded(&h);
}
