//! The admin API: its own listener, a bearer token (401 without it or with a wrong
//! one), JSON endpoints for the config (every secret redacted), upstream health and the
//! catalogue; 404 / 405 / 400 for bad calls; no secret in any answer or log line; no
//! start on a non-loopback address without a token; per upstream, attempts in flight and
//! the last minute's attempts, error ratio and time to the response head.

use crate::support::*;
use bytes::Bytes;
use std::process::Command;

const TOKEN: &str = "adm-tok-Zq81xkP0";
const UPSTREAM_KEY: &str = "sk-up-Jd93kLq07";
const LITERAL_KEY: &str = "sk-client-Wm4Tz9";
const PLUGIN_SECRET: &str = "plug-hdr-Kx71";

fn config(up: &MockUpstream) -> String {
    format!(
        "upstreams:\n  - {{name: a, base_url: '{}', auth: {{type: bearer, key: '${{UP_KEY}}'}}, headers: {{x-extra: '${{UP_KEY}}'}}}}\nkeys:\n  - {{name: team, key: '{LITERAL_KEY}'}}\nplugins:\n  - name: content_filter\n    config: {{banned_patterns: [forbidden], action: reject}}\nadmin:\n  token: '${{ADMIN_TOKEN}}'\n",
        up.base_url()
    )
}

async fn start() -> (MockUpstream, TestGateway) {
    let up = MockUpstream::start().await;
    up.set_models(&["fetched-1", "fetched-2"]);
    let gw = TestGateway::start_with_env(
        &config(&up),
        &[("UP_KEY", UPSTREAM_KEY), ("ADMIN_TOKEN", TOKEN)],
    )
    .await;
    (up, gw)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn calls_without_the_token_or_with_a_wrong_one_are_refused() {
    let (_up, gw) = start().await;
    let admin = gw.admin_http();
    for (path, method) in [
        ("/admin/config", "GET"),
        ("/admin/reload", "POST"),
        ("/admin/upstreams", "GET"),
        ("/admin/models", "GET"),
        ("/admin/models/refresh", "POST"),
    ] {
        let none = admin.call(method, path, &[], Bytes::new()).await;
        assert_eq!(none.status, 401, "{path}: {}", none.text());
        assert_eq!(none.json()["error"]["code"], "invalid_admin_token");
        let wrong = bearer("adm-tok-Zq81xkP1");
        let wrong = admin
            .call(method, path, &[("authorization", &wrong)], Bytes::new())
            .await;
        assert_eq!(wrong.status, 401, "{path}");
    }
    let reloads = gw.scrape().await;
    assert!(
        reloads.contains("switchyard_config_reloads_total{outcome=\"ok\"} 0"),
        "a refused reload did not run"
    );
}

#[tokio::test]
async fn with_the_token_every_endpoint_answers_and_no_secret_gets_out() {
    let (_up, gw) = start().await;
    let admin = gw.admin_http();
    let auth = bearer(TOKEN);
    let h = [("authorization", auth.as_str())];
    let mut seen = String::new();

    let config = admin.call("GET", "/admin/config", &h, Bytes::new()).await;
    assert_eq!(config.status, 200, "{}", config.text());
    let v = config.json();
    assert_eq!(v["config"]["upstreams"][0]["name"], "a");
    assert_eq!(v["config"]["upstreams"][0]["auth"]["key"], "***");
    assert_eq!(v["config"]["keys"][0]["key"], "***");
    assert_eq!(v["config"]["admin"]["token"], "***");
    seen.push_str(&config.text());

    let refresh = admin
        .call("POST", "/admin/models/refresh", &h, Bytes::new())
        .await;
    assert_eq!(refresh.status, 200, "{}", refresh.text());
    seen.push_str(&refresh.text());
    let models = admin.call("GET", "/admin/models", &h, Bytes::new()).await;
    assert_eq!(models.status, 200);
    let v = models.json();
    let ids: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"fetched-1"), "{v}");
    assert_eq!(v["lists"][0]["upstream"], "a");
    assert_eq!(v["lists"][0]["source"], "fetched");
    assert!(v["lists"][0]["age_seconds"].as_f64().unwrap() < 60.0, "{v}");
    assert_eq!(v["models"][0]["upstreams"], serde_json::json!(["a"]));
    seen.push_str(&models.text());

    let upstreams = admin
        .call("GET", "/admin/upstreams", &h, Bytes::new())
        .await;
    assert_eq!(upstreams.status, 200);
    let v = upstreams.json();
    assert_eq!(v["upstreams"][0]["name"], "a");
    assert_eq!(v["upstreams"][0]["available"], true);
    seen.push_str(&upstreams.text());

    // A chat request as the key, then its usage in /admin/keys (never its value).
    let chat_resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &bearer(LITERAL_KEY))],
            chat("fetched-1", "hi", false).to_string(),
        )
        .await;
    assert_eq!(chat_resp.status(), 200);
    let keys = admin.call("GET", "/admin/keys", &h, Bytes::new()).await;
    assert_eq!(keys.status, 200, "{}", keys.text());
    let v = keys.json();
    assert_eq!(v["keys"][0]["name"], "team");
    assert_eq!(v["keys"][0]["usage"]["requests"], 1, "{v}");
    seen.push_str(&keys.text());

    let reload = admin.call("POST", "/admin/reload", &h, "{}").await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    seen.push_str(&reload.text());

    // Bad calls: 404, 405, 400, and nothing changes.
    let unknown = admin.call("GET", "/admin/nope", &h, Bytes::new()).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "not_found");
    let method = admin.call("GET", "/admin/reload", &h, Bytes::new()).await;
    assert_eq!(method.status, 405);
    assert_eq!(method.headers["allow"], "POST");
    let body = admin
        .call("POST", "/admin/reload", &h, "{\"path\": \"/etc/passwd\"}")
        .await;
    assert_eq!(body.status, 400, "{}", body.text());
    assert_eq!(body.json()["error"]["code"], "invalid_body");
    let after = admin.call("GET", "/admin/config", &h, Bytes::new()).await;
    assert_eq!(after.json()["generation"], 2, "only the good reload ran");
    for answer in [&unknown, &method, &body] {
        seen.push_str(&answer.text());
    }

    let logs = gw.settled_logs().await;
    for secret in [TOKEN, UPSTREAM_KEY, LITERAL_KEY, PLUGIN_SECRET] {
        assert!(!seen.contains(secret), "{secret} in an admin answer");
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

#[tokio::test]
async fn plugin_settings_that_look_secret_are_redacted_in_the_config() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [m]}}\nplugins:\n  - name: http\n    config: {{url: 'http://127.0.0.1:9/check', headers: {{authorization: 'Bearer {PLUGIN_SECRET}'}}}}\nadmin: {{}}\n",
        up.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    let config = gw.admin_http().get("/admin/config").await;
    assert_eq!(config.status, 200, "no token configured: loopback is open");
    assert!(!config.text().contains(PLUGIN_SECRET), "{}", config.text());
    assert_eq!(
        config.json()["config"]["plugins"][0]["config"]["headers"]["authorization"],
        "***"
    );
}

fn serve(config: &str, args: &[&str]) -> (Option<i32>, String) {
    let path = temp_file("gateway.yaml", config);
    let mut child = Command::new(binary())
        .args([
            "serve",
            "-c",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, String::new())
}

#[test]
fn a_non_loopback_admin_listener_without_a_token_refuses_to_start() {
    let upstreams = "upstreams:\n  - {name: a, base_url: 'http://127.0.0.1:9', models: [m]}\n";
    let (code, err) = serve(&format!("{upstreams}admin: {{listen: '0.0.0.0:0'}}\n"), &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("admin.listen"), "{err}");
    assert!(err.contains("admin.token"), "{err}");
    // The same through the command line's override.
    let (code, err) = serve(
        &format!("{upstreams}admin: {{}}\n"),
        &["--admin-listen", "0.0.0.0:0"],
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("admin.listen"), "{err}");
}

#[tokio::test]
async fn upstreams_show_attempts_in_flight_and_the_last_minute() {
    let pieces: Vec<String> = ["a", "b", "c"].map(String::from).into();
    let held = MockUpstream::with_script(vec![Reply::StreamHold(pieces, 1)]).await;
    let broken =
        MockUpstream::with_script(vec![Reply::Json(500, serde_json::json!({}), vec![])]).await;
    let yaml = format!(
        "routing: {{failures_before_cooldown: 100}}\nupstreams:\n  - {{name: held, base_url: '{}', models: [slow]}}\n  - {{name: broken, base_url: '{}', models: [bad]}}\nadmin: {{token: '{TOKEN}'}}\n",
        held.base_url(),
        broken.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    let admin = gw.admin_http();
    let auth = bearer(TOKEN);
    let h = [("authorization", auth.as_str())];
    let row = |v: &serde_json::Value, name: &str| {
        v["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
            .unwrap()
    };
    // A stream held open by its upstream is in flight until it ends.
    let mut stream = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("slow", "x", true).to_string(),
        )
        .await
        .into_body();
    let first = next_data(&mut stream).await.unwrap().unwrap();
    assert!(!first.is_empty());
    let v = admin
        .call("GET", "/admin/upstreams", &h, Bytes::new())
        .await
        .json();
    let held_row = row(&v, "held");
    assert_eq!(held_row["in_flight"], 1, "{v}");
    assert_eq!(held_row["last_minute"]["attempts"], 1, "{v}");
    assert_eq!(held_row["last_minute"]["error_ratio"], 0.0, "{v}");
    assert!(
        held_row["last_minute"]["mean_time_to_head_ms"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{v}"
    );
    held.release();
    read_all(&mut stream).await.unwrap();
    // Two failed attempts at the broken one.
    for _ in 0..2 {
        let answer = gw
            .http()
            .post("/v1/chat/completions", &chat("bad", "x", false))
            .await;
        assert_eq!(answer.status, 502);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let v = admin
            .call("GET", "/admin/upstreams", &h, Bytes::new())
            .await
            .json();
        let (held_row, broken_row) = (row(&v, "held"), row(&v, "broken"));
        if held_row["in_flight"] == 0 {
            assert_eq!(broken_row["in_flight"], 0, "{v}");
            assert_eq!(broken_row["last_minute"]["attempts"], 2, "{v}");
            assert_eq!(broken_row["last_minute"]["error_ratio"], 1.0, "{v}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still in flight after the stream ended: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
