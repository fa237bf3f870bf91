//! `/v1/models`: the union of every upstream's list (fetched with the upstream's auth
//! or static), deduplicated with `upstream/model` ids for shared names, filtered, and
//! served stale when an upstream is down.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

fn ids(v: &Value) -> Vec<(String, String)> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["owned_by"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn lists_the_union_of_fetched_and_static_models() {
    let a = MockUpstream::start().await;
    a.set_models(&["gpt-4o", "shared", "text-embedding-3-small"]);
    let b = MockUpstream::start().await;
    let yaml = format!(
        "upstreams:\n  - {{name: a, base_url: '{}', auth: {{type: bearer, key: sk-a}}}}\n  - {{name: b, base_url: '{}', models: [shared, llama]}}\n",
        a.base_url(),
        b.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.http().get("/v1/models").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["object"], "list");
    let got = ids(&r.json());
    let want: Vec<(String, String)> = [
        ("gpt-4o", "a"),
        ("shared", "a,b"),
        ("a/shared", "a"),
        ("b/shared", "b"),
        ("llama", "b"),
    ]
    .iter()
    .map(|(i, o)| (i.to_string(), o.to_string()))
    .collect();
    assert_eq!(got, want);
    let fetch = a
        .requests()
        .into_iter()
        .find(|s| s.uri.ends_with("/models"))
        .unwrap();
    assert_eq!(fetch.headers["authorization"], "Bearer sk-a");
    for m in r.json()["data"].as_array().unwrap() {
        assert_eq!(m["object"], "model");
        assert!(m["created"].is_u64());
    }
}

#[tokio::test]
async fn hidden_kinds_stay_routable() {
    let a = MockUpstream::start().await;
    a.set_models(&["gpt-4o", "text-embedding-3-small"]);
    let gw = TestGateway::start(&format!(
        "upstreams:\n  - {{name: a, base_url: '{}'}}\n",
        a.base_url()
    ))
    .await;
    let got = ids(&gw.http().get("/v1/models").await.json());
    assert_eq!(got, vec![("gpt-4o".to_owned(), "a".to_owned())]);
    let r = gw
        .http()
        .post(
            "/v1/embeddings",
            &serde_json::json!({"model": "text-embedding-3-small", "input": "x"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Retrieved by id, a hidden model and a one-upstream `upstream/model` id are owned
    // by their upstream, as the listing would say.
    for id in [
        "text-embedding-3-small",
        "a/text-embedding-3-small",
        "a/gpt-4o",
    ] {
        let one = gw.http().get(&format!("/v1/models/{id}")).await;
        assert_eq!(one.status, 200, "{id}: {}", one.text());
        assert_eq!(one.json()["owned_by"], "a", "{id}");
    }
}

#[tokio::test]
async fn include_exclude_filters_apply_to_fetched_lists() {
    let a = MockUpstream::start().await;
    a.set_models(&["gpt-4o", "gpt-4o-preview", "babbage"]);
    let yaml = format!(
        "upstreams:\n  - {{name: a, base_url: '{}', include: ['gpt-*'], exclude: ['*-preview']}}\n",
        a.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(ids(&gw.http().get("/v1/models").await.json()).len(), 1);
    gw.http()
        .post("/v1/chat/completions", &chat("babbage", "x", false))
        .await
        .assert_error(404, "model_not_found");
}

#[tokio::test]
async fn retrieves_one_model_including_upstream_prefixed_ids() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(&config_for(
        &[("a", &a.base_url(), &["m"]), ("b", &b.base_url(), &["m"])],
        "",
    ))
    .await;
    let r = gw.http().get("/v1/models/b/m").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], "b/m");
    assert_eq!(r.json()["owned_by"], "b");
    let r = gw.http().get("/v1/models/b%2Fm").await;
    assert_eq!(r.json()["id"], "b/m");
    gw.http()
        .get("/v1/models/nope")
        .await
        .assert_error(404, "model_not_found");
}

/// `GET /models` requests the upstream has received so far.
fn models_fetches(up: &MockUpstream) -> usize {
    up.requests()
        .iter()
        .filter(|s| s.uri.ends_with("/models"))
        .count()
}

/// Waits until the gateway has fetched the upstream's list twice more. The background
/// refresh fetches one list at a time, so when the second fetch arrives the first one
/// has finished — or been given up on — and the catalogue has taken its outcome in.
async fn wait_for_two_more_fetches(up: &MockUpstream) {
    let want = models_fetches(up) + 2;
    let fetched = async {
        while models_fetches(up) < want {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fetched)
        .await
        .expect("the catalogue stopped refreshing");
}

#[tokio::test]
async fn a_down_upstream_keeps_its_last_known_list() {
    let a = MockUpstream::start().await;
    a.set_models(&["kept-model"]);
    let yaml = format!(
        "catalogue: {{ttl: 200ms, fetch_timeout: 300ms}}\nupstreams:\n  - {{name: a, base_url: '{}'}}\n",
        a.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(
        ids(&gw.http().get("/v1/models").await.json())[0].0,
        "kept-model"
    );
    a.models_mode(ModelsMode::Hang);
    wait_for_two_more_fetches(&a).await; // one fetch has timed out
    let r = tokio::time::timeout(Duration::from_secs(10), gw.http().get("/v1/models"))
        .await
        .expect("a hanging upstream must not hold /v1/models");
    assert_eq!(ids(&r.json())[0].0, "kept-model");
    a.models_mode(ModelsMode::Fail);
    wait_for_two_more_fetches(&a).await; // one fetch has failed
    assert_eq!(
        ids(&gw.http().get("/v1/models").await.json())[0].0,
        "kept-model"
    );
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("kept-model", "x", false))
        .await;
    assert_eq!(r.status, 200, "a stale model stays routable");
}

#[tokio::test]
async fn unreachable_upstream_does_not_hide_the_others() {
    let b = MockUpstream::start().await;
    b.set_models(&["bm"]);
    let yaml = format!(
        "catalogue: {{fetch_timeout: 300ms}}\nupstreams:\n  - {{name: dead, base_url: 'http://127.0.0.1:9/v1'}}\n  - {{name: b, base_url: '{}'}}\n",
        b.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.http().get("/v1/models").await;
    assert_eq!(ids(&r.json()), vec![("bm".to_owned(), "b".to_owned())]);
}

#[tokio::test]
async fn new_upstream_models_appear_after_the_ttl() {
    let a = MockUpstream::start().await;
    a.set_models(&["old"]);
    let yaml = format!(
        "catalogue: {{ttl: 200ms}}\nupstreams:\n  - {{name: a, base_url: '{}'}}\n",
        a.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(ids(&gw.http().get("/v1/models").await.json()).len(), 1);
    a.set_models(&["old", "new"]);
    // Ask until the refreshed list shows up, rather than sleeping a margin past the TTL.
    let listed = async {
        while ids(&gw.http().get("/v1/models").await.json()).len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), listed)
        .await
        .expect("the new model was never listed");
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("new", "x", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn each_upstreams_created_is_kept_in_the_list_and_by_id() {
    let up = NativeUpstream::start(|_| {
        NativeReply::json(
            200,
            &serde_json::json!({"object": "list", "data": [
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
            {"id": "o3", "object": "model", "created": 1744225308, "owned_by": "system"}]}),
        )
    })
    .await;
    let gw = TestGateway::start(&format!(
        "upstreams:\n  - {{name: a, base_url: '{}/v1'}}\n",
        up.url()
    ))
    .await;
    let list = gw.http().get("/v1/models").await.json();
    let created: Vec<(String, u64)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["created"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        created,
        [
            ("gpt-4o".to_owned(), 1715367049),
            ("o3".to_owned(), 1744225308)
        ]
    );
    let one = gw.http().get("/v1/models/o3").await.json();
    assert_eq!(one["created"], 1744225308);
    assert_eq!(one["owned_by"], "a");
}
