//! Client keys and `user_headers`: who the caller is, what reaches the upstream about
//! them, and plugins limited to some keys.

use super::*;
use crate::support::*;

const ALICE_KEY: &str = "sk-alice-0123456789";

/// Client keys, a passthrough upstream (model `p`), a bearer upstream (model `b`),
/// and these plugin entries.
fn keyed(up: &MockUpstream, plugins: &str) -> String {
    let url = up.base_url();
    format!(
        "keys:\n  - {{name: alice, key: '${{ALICE_KEY}}', user: alice@example.com, groups: [eng, ops]}}\n\
         upstreams:\n  \
           - {{name: pass, base_url: '{url}', models: [p], auth: {{type: passthrough}}}}\n  \
           - {{name: own, base_url: '{url}', models: [b], auth: {{type: bearer, key: upstream-own-key}}}}\n\
         {plugins}"
    )
}

async fn keyed_gateway(up: &MockUpstream, plugins: &str) -> TestGateway {
    TestGateway::start_with_env(&keyed(up, plugins), &[("ALICE_KEY", ALICE_KEY)]).await
}

#[tokio::test]
async fn user_headers_forwards_the_callers_key_name_user_and_groups_upstream() {
    let up = MockUpstream::start().await;
    let gw = keyed_gateway(&up, "plugins:\n  - {name: user_headers}\n").await;
    let r = post_as(&gw.http(), ALICE_KEY, &chat("p", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = &up.completions()[0].headers;
    assert_eq!(h["x-switchyard-user-key"], "alice");
    assert_eq!(h["x-switchyard-user-name"], "alice@example.com");
    assert_eq!(h["x-switchyard-user-groups"], "eng,ops");
}

#[tokio::test]
async fn without_the_user_headers_plugin_no_identity_headers_reach_the_upstream() {
    let up = MockUpstream::start().await;
    let gw = keyed_gateway(&up, "").await;
    let r = post_as(&gw.http(), ALICE_KEY, &chat("p", "hi", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = &up.completions()[0].headers;
    assert!(
        !h.keys()
            .any(|k| k.as_str().starts_with("x-switchyard-user")),
        "{h:?}"
    );
}

#[tokio::test]
async fn a_plugin_limited_to_some_keys_leaves_other_callers_untouched() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "keys:\n  - {{name: alice, key: '${{ALICE_KEY}}'}}\n  - {{name: bob, key: sk-bob-0123456789}}\n\
         upstreams:\n  - {{name: up, base_url: '{}', models: [m]}}\n\
         plugins:\n  - {{name: system_prompt, keys: [alice], config: {{content: 'For Alice.'}}}}\n",
        up.base_url()
    );
    let gw = TestGateway::start_with_env(&yaml, &[("ALICE_KEY", ALICE_KEY)]).await;
    let http = gw.http();
    let body = chat("m", "hi", false);
    assert_eq!(post_as(&http, "sk-bob-0123456789", &body).await.status, 200);
    assert_eq!(post_as(&http, ALICE_KEY, &body).await.status, 200);
    let seen = up.completions();
    assert_eq!(seen[0].json(), body, "bob's request was changed");
    assert_eq!(seen[1].json()["messages"][0]["content"], "For Alice.");
}

#[tokio::test]
async fn with_keys_configured_a_request_without_a_key_gets_401() {
    let up = MockUpstream::start().await;
    let gw = keyed_gateway(&up, "plugins:\n  - {name: user_headers}\n").await;
    let http = gw.http();
    let none = post_with(&http, &[], &chat("p", "hi", false)).await;
    none.assert_error(401, "invalid_api_key");
    let wrong = post_as(&http, "sk-not-a-configured-key", &chat("p", "hi", false)).await;
    wrong.assert_error(401, "invalid_api_key");
    assert!(up.completions().is_empty());
}

#[tokio::test]
async fn the_gateway_key_is_never_forwarded_upstream() {
    let up = MockUpstream::start().await;
    let gw = keyed_gateway(&up, "plugins:\n  - {name: user_headers}\n").await;
    let http = gw.http();
    for model in ["p", "b"] {
        let r = post_as(&http, ALICE_KEY, &chat(model, "hi", false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let seen = up.completions();
    // Passthrough forwards the client's own key, never a gateway key.
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "{:?}",
        seen[0].headers
    );
    assert_eq!(seen[1].headers["authorization"], "Bearer upstream-own-key");
    for s in &seen {
        for (name, value) in &s.headers {
            let v = String::from_utf8_lossy(value.as_bytes());
            assert!(
                !v.contains(ALICE_KEY),
                "gateway key sent upstream in `{name}`"
            );
        }
        assert!(!String::from_utf8_lossy(&s.body).contains(ALICE_KEY));
        assert!(!s.uri.contains(ALICE_KEY));
    }
}
