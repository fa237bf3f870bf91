//! Libre WebUI's plugin API on the admin listener (`/api/plugins…`): install, update,
//! upload, activate, export and delete plugins in `admin.plugins_dir`; each change is
//! written atomically (a `.bak` kept), applied through the reload path, shown in
//! `/v1/models` at once and kept across a restart; bad input is a 4xx that changes
//! nothing; the key named by `key_env` never appears in an answer.

use crate::support::*;
use bytes::Bytes;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const TOKEN: &str = "adm-tok-Pl9x2";
const PLUGIN_KEY: &str = "sk-plugin-Vb83Qa";

/// The gateway's config, with `include: [plugins]` and `plugins_dir: plugins` next to it
/// (the directory is created first: an include must exist).
fn config_file(up: &MockUpstream) -> (PathBuf, PathBuf) {
    let yaml = format!(
        "upstreams:\n  - {{name: base, base_url: '{}', models: [base-model]}}\ninclude: [plugins]\nadmin:\n  token: '{TOKEN}'\n  plugins_dir: plugins\n",
        up.base_url(),
    );
    let file = temp_file("gateway.yaml", &yaml);
    let dir = file.with_file_name("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    (file, dir)
}

fn plugin(id: &str, up: &MockUpstream, models: &[&str]) -> Value {
    json!({
        "id": id,
        "name": format!("Plugin {id}"),
        "type": "completion",
        "endpoint": format!("{}/chat/completions", up.base_url()),
        "auth": {"header": "Authorization", "prefix": "Bearer ", "key_env": "PLUGIN_KEY"},
        "model_map": models,
    })
}

async fn start(file: &Path) -> TestGateway {
    TestGateway::start_on_file(file, &[("PLUGIN_KEY", PLUGIN_KEY)]).await
}

async fn call(gw: &TestGateway, method: &str, path: &str, body: impl Into<Bytes>) -> Answer {
    let auth = format!("Bearer {TOKEN}");
    let answer = gw
        .admin_http()
        .call(method, path, &[("authorization", &auth)], body)
        .await;
    assert!(
        !answer.text().contains(PLUGIN_KEY),
        "the plugin key leaked: {}",
        answer.text()
    );
    answer
}

async fn model_ids(gw: &TestGateway) -> Vec<String> {
    let v = gw.http().get("/v1/models").await.json();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn installed_plugins_serve_at_once_survive_a_restart_and_bad_input_changes_nothing() {
    let up = MockUpstream::start().await;
    let (file, dir) = config_file(&up);
    let gw = start(&file).await;

    // No token: 401.
    let none = gw
        .admin_http()
        .call("GET", "/api/plugins", &[], Bytes::new())
        .await;
    assert_eq!(none.status, 401);

    // Install: models at once, chat reaches the plugin's upstream with its key.
    let installed = call(
        &gw,
        "POST",
        "/api/plugins/install",
        plugin("acme", &up, &["acme-1"]).to_string(),
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    assert!(model_ids(&gw).await.contains(&"acme-1".to_owned()));
    let chat_resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("acme-1", "hi", false).to_string(),
        )
        .await;
    assert_eq!(chat_resp.status(), 200);
    let seen = up.completions();
    let last = seen.last().unwrap();
    assert_eq!(
        last.headers["authorization"],
        format!("Bearer {PLUGIN_KEY}")
    );
    assert!(dir.join("acme.json").exists());

    // Get, export, status.
    let got = call(&gw, "GET", "/api/plugins/acme", Bytes::new()).await;
    assert_eq!(got.json()["data"]["id"], "acme");
    let exported = call(&gw, "GET", "/api/plugins/acme/export", Bytes::new()).await;
    assert_eq!(exported.json(), plugin("acme", &up, &["acme-1"]));
    let status = call(&gw, "GET", "/api/plugins/status/all", Bytes::new()).await;
    let row = &status.json()["data"][0];
    assert_eq!(row["id"], "acme");
    assert_eq!(row["available"], true);
    assert_eq!(row["active"], false);

    // Bad input: 400 and nothing changes.
    let before = std::fs::read(dir.join("acme.json")).unwrap();
    let models_before = model_ids(&gw).await;
    for body in [
        "{not json".to_owned(),
        json!({"id": "../evil", "endpoint": "http://x/v1/chat/completions"}).to_string(),
        json!({"id": "acme", "endpoint": "http://x/v1/embeddings"}).to_string(),
        json!({"id": "base", "endpoint": format!("{}/chat/completions", up.base_url())})
            .to_string(),
    ] {
        let bad = call(&gw, "POST", "/api/plugins/install", body.clone()).await;
        assert_eq!(bad.status, 400, "{body}: {}", bad.text());
        assert_eq!(bad.json()["error"]["code"], "invalid_plugin");
    }
    let bad_put = call(&gw, "PUT", "/api/plugins/acme", "[]").await;
    assert_eq!(bad_put.status, 400);
    assert_eq!(std::fs::read(dir.join("acme.json")).unwrap(), before);
    assert!(!dir.join("base.json").exists());
    assert_eq!(model_ids(&gw).await, models_before);
    assert_eq!(
        call(&gw, "GET", "/api/plugins/..%2Fx", Bytes::new())
            .await
            .status,
        404
    );

    // PUT: changed at once, the previous file kept as .bak.
    let put = call(
        &gw,
        "PUT",
        "/api/plugins/acme",
        plugin("acme", &up, &["acme-2"]).to_string(),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let ids = model_ids(&gw).await;
    assert!(
        ids.contains(&"acme-2".to_owned()) && !ids.contains(&"acme-1".to_owned()),
        "{ids:?}"
    );
    assert_eq!(std::fs::read(dir.join("acme.json.bak")).unwrap(), before);

    // Activate: the current one.
    assert_eq!(
        call(&gw, "POST", "/api/plugins/activate/acme", Bytes::new())
            .await
            .status,
        200
    );
    let current = call(&gw, "GET", "/api/plugins/active/current", Bytes::new()).await;
    assert_eq!(current.json()["data"]["id"], "acme");

    // Switchyard's upstream shape, through a multipart upload.
    let upstream = json!({"name": "own", "base_url": up.base_url(), "auth": {"type": "bearer", "key": "${PLUGIN_KEY}"}, "models": ["own-1"]});
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"plugin\"; filename=\"own.json\"\r\nContent-Type: application/json\r\n\r\n{upstream}\r\n--XyZ--\r\n"
    );
    let auth = format!("Bearer {TOKEN}");
    let uploaded = gw
        .admin_http()
        .call(
            "POST",
            "/api/plugins/upload",
            &[
                ("authorization", &auth),
                ("content-type", "multipart/form-data; boundary=XyZ"),
            ],
            body,
        )
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    assert!(model_ids(&gw).await.contains(&"own-1".to_owned()));
    drop(gw);

    // A restart on the same config file still serves them.
    let gw = start(&file).await;
    assert_eq!(gw.config, file);
    let ids = model_ids(&gw).await;
    assert!(
        ids.contains(&"acme-2".to_owned()) && ids.contains(&"own-1".to_owned()),
        "{ids:?}"
    );

    // Delete: gone from /v1/models at once (the file kept as .bak).
    let deleted = call(&gw, "DELETE", "/api/plugins/acme", Bytes::new()).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert!(!model_ids(&gw).await.contains(&"acme-2".to_owned()));
    assert!(!dir.join("acme.json").exists() && dir.join("acme.json.bak").exists());
    assert_eq!(
        call(&gw, "DELETE", "/api/plugins/own", Bytes::new())
            .await
            .status,
        200
    );
    let list = call(&gw, "GET", "/api/plugins", Bytes::new()).await;
    assert_eq!(list.json()["data"], json!([]));
    assert!(!gw.logs().contains(PLUGIN_KEY));
}

#[tokio::test]
async fn a_plugin_the_reload_rejects_is_rolled_back_and_the_api_is_off_without_plugins_dir() {
    let up = MockUpstream::start().await;
    let (file, dir) = config_file(&up);
    let gw = start(&file).await;
    let first = plugin("acme", &up, &["acme-1"]);
    let installed = call(&gw, "POST", "/api/plugins/install", first.to_string()).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    let before = std::fs::read(dir.join("acme.json")).unwrap();

    // `key_env` names a variable that is not set: the reload fails, the old file is back.
    let mut unset = plugin("acme", &up, &["acme-9"]);
    unset["auth"]["key_env"] = json!("NOT_SET_ANYWHERE_X1");
    let put = call(&gw, "PUT", "/api/plugins/acme", unset.to_string()).await;
    assert_eq!(put.status, 400, "{}", put.text());
    assert!(put.text().contains("nothing changed"), "{}", put.text());
    assert_eq!(std::fs::read(dir.join("acme.json")).unwrap(), before);
    let ids = model_ids(&gw).await;
    assert!(
        ids.contains(&"acme-1".to_owned()) && !ids.contains(&"acme-9".to_owned()),
        "{ids:?}"
    );
    let mut new_one = unset.clone();
    new_one["id"] = json!("fresh");
    let bad = call(&gw, "POST", "/api/plugins/install", new_one.to_string()).await;
    assert_eq!(bad.status, 400);
    assert!(!dir.join("fresh.json").exists());
    assert_eq!(
        call(&gw, "PUT", "/api/plugins/nope", first.to_string())
            .await
            .status,
        404
    );

    // Without admin.plugins_dir there is no plugin API.
    let plain = TestGateway::start(&format!(
        "upstreams:\n  - {{name: base, base_url: '{}', models: [m]}}\nadmin:\n  token: '{TOKEN}'\n",
        up.base_url()
    ))
    .await;
    let off = call(&plain, "GET", "/api/plugins", Bytes::new()).await;
    assert_eq!(off.status, 404);
    assert!(off.text().contains("plugins_dir"), "{}", off.text());
}
