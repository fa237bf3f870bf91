//! CORS (`server.cors`) and `HEAD`: a browser's preflight is answered by the gateway
//! (no key, no upstream), allowed origins get CORS headers on every answer — JSON,
//! streams, errors — while disallowed ones are served without them; with no
//! `server.cors` nothing changes (`OPTIONS` is 404, no CORS header, not even an
//! upstream's). `HEAD` answers like `GET`, without the body.

use crate::support::*;
use bytes::Bytes;
use std::process::Command;

const APP: &str = "https://app.example.com";
const KEY: &str = "sk-cors-test-key-1";

/// What Chrome sends before `openai.chat.completions.create(...)` from a page
/// (`dangerouslyAllowBrowser: true`): the SDK's `x-stainless-*` headers, sorted and
/// lower-cased, as Chrome lists them.
const CHROME_REQUEST_HEADERS: &str = "authorization,content-type,x-stainless-arch,\
x-stainless-lang,x-stainless-os,x-stainless-package-version,x-stainless-retry-count,\
x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout";

fn chrome_preflight(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-US,en;q=0.9"),
        ("access-control-request-headers", CHROME_REQUEST_HEADERS),
        ("access-control-request-method", "POST"),
        ("origin", origin),
        ("referer", "https://app.example.com/"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "cross-site"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    ]
}

/// One upstream serving `m`, a client key, and `server.cors` as given (none if empty).
fn config(up: &MockUpstream, cors: &str) -> String {
    let server = if cors.is_empty() {
        String::new()
    } else {
        format!("server:\n  cors: {cors}\n")
    };
    config_for(
        &[("a", &up.base_url(), &["m"])],
        &format!("{server}keys:\n  - {{name: web, key: {KEY}}}\n"),
    )
}

const ALLOW_APP: &str = "{allow_origins: ['https://app.example.com']}";

fn bearer() -> String {
    format!("Bearer {KEY}")
}

/// Every `access-control-*` header of an answer.
fn cors_headers(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn split(v: &http::HeaderValue) -> Vec<String> {
    v.to_str()
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn chrome_preflight_for_an_openai_sdk_call_is_answered_without_key_or_upstream() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, ALLOW_APP)).await;
    let r = gw
        .http()
        .call(
            "OPTIONS",
            "/v1/chat/completions",
            &chrome_preflight(APP),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    let h = &r.headers;
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["vary"], "Origin");
    assert_eq!(h["access-control-max-age"], "600");
    assert!(split(&h["access-control-allow-methods"]).contains(&"POST".to_owned()));
    let allowed = split(&h["access-control-allow-headers"]);
    for asked in CHROME_REQUEST_HEADERS.split(',') {
        assert!(
            allowed.iter().any(|a| a == asked),
            "{asked} not in {allowed:?}"
        );
    }
    assert!(!h.contains_key("access-control-allow-credentials"));
    assert!(h.contains_key("x-request-id"));
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    // The same preflight on another path, with no key either.
    let r = gw
        .http()
        .call(
            "OPTIONS",
            "/v1/models",
            &chrome_preflight(APP),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_preflight_from_an_origin_not_allowed_is_refused_with_403() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, ALLOW_APP)).await;
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.net",
    ] {
        let r = gw
            .http()
            .call(
                "OPTIONS",
                "/v1/chat/completions",
                &chrome_preflight(origin),
                Bytes::new(),
            )
            .await;
        let message = r.assert_error(403, "origin_not_allowed");
        assert!(message.contains(origin), "{message}");
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        assert!(cors_headers(&r.headers).is_empty(), "{:?}", r.headers);
    }
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_json_answer_to_an_allowed_origin_carries_cors_headers_and_not_the_upstreams() {
    // The upstream sends CORS headers of its own: the gateway's policy replaces them.
    let up = MockUpstream::with_script(vec![Reply::Json(
        200,
        chat_json("m", "hi"),
        vec![
            ("access-control-allow-origin", "*".to_owned()),
            ("access-control-allow-credentials", "true".to_owned()),
            ("x-ratelimit-remaining-requests", "99".to_owned()),
        ],
    )])
    .await;
    let gw = TestGateway::start(&config(&up, ALLOW_APP)).await;
    let auth = bearer();
    let body = chat("m", "hi", false).to_string();
    let r = gw
        .http()
        .call(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth), ("origin", APP)],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["access-control-allow-origin"], APP);
    assert!(!r.headers.contains_key("access-control-allow-credentials"));
    assert_eq!(r.headers["vary"], "Origin");
    let exposed = split(&r.headers["access-control-expose-headers"]);
    for name in [
        "x-request-id",
        "retry-after",
        "x-ratelimit-remaining-requests",
    ] {
        assert!(
            exposed.iter().any(|e| e == name),
            "{name} not in {exposed:?}"
        );
    }
    assert_eq!(r.headers["x-ratelimit-remaining-requests"], "99");
    // A disallowed origin is served, without CORS headers (the browser keeps the
    // answer from the page).
    let r = gw
        .http()
        .call(
            "POST",
            "/v1/chat/completions",
            &[
                ("authorization", &auth),
                ("origin", "https://evil.example.com"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(cors_headers(&r.headers).is_empty(), "{:?}", r.headers);
    assert_eq!(up.completions().len(), 2);
}

#[tokio::test]
async fn a_stream_to_an_allowed_origin_carries_cors_headers() {
    let up = MockUpstream::with_script(vec![Reply::Stream(vec!["a".into(), "b".into()])]).await;
    let gw = TestGateway::start(&config(&up, ALLOW_APP)).await;
    let auth = bearer();
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth), ("origin", APP)],
            chat("m", "x", true).to_string(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["access-control-allow-origin"], APP);
    assert!(resp.headers().contains_key("access-control-expose-headers"));
    let mut body = resp.into_body();
    let all = read_all(&mut body).await.unwrap();
    assert!(String::from_utf8_lossy(&all).contains("data: [DONE]"));
}

#[tokio::test]
async fn errors_to_an_allowed_origin_carry_cors_headers() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, ALLOW_APP)).await;
    let http = gw.http();
    // No key: 401.
    let r = http
        .call(
            "POST",
            "/v1/chat/completions",
            &[("origin", APP)],
            chat("m", "x", false).to_string(),
        )
        .await;
    r.assert_error(401, "invalid_api_key");
    assert_eq!(r.headers["access-control-allow-origin"], APP);
    // An unknown model: 404.
    let auth = bearer();
    let r = http
        .call(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth), ("origin", APP)],
            chat("nope", "x", false).to_string(),
        )
        .await;
    r.assert_error(404, "model_not_found");
    assert_eq!(r.headers["access-control-allow-origin"], APP);
    assert!(r.headers.contains_key("access-control-expose-headers"));
    // An OPTIONS that is not a preflight (no Access-Control-Request-Method) is 404.
    let r = http
        .call(
            "OPTIONS",
            "/v1/chat/completions",
            &[("origin", APP)],
            Bytes::new(),
        )
        .await;
    r.assert_error(404, "unknown_url");
    assert_eq!(r.headers["access-control-allow-origin"], APP);
}

#[tokio::test]
async fn cors_is_off_by_default_and_upstream_cors_headers_are_not_relayed() {
    let up = MockUpstream::with_script(vec![Reply::Json(
        200,
        chat_json("m", "hi"),
        vec![("access-control-allow-origin", "*".to_owned())],
    )])
    .await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let r = gw
        .http()
        .call(
            "OPTIONS",
            "/v1/chat/completions",
            &chrome_preflight(APP),
            Bytes::new(),
        )
        .await;
    r.assert_error(404, "unknown_url");
    assert!(cors_headers(&r.headers).is_empty(), "{:?}", r.headers);
    let auth = bearer();
    let r = gw
        .http()
        .call(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth), ("origin", APP)],
            chat("m", "x", false).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(cors_headers(&r.headers).is_empty(), "{:?}", r.headers);
    assert!(!r.headers.contains_key("vary"));
}

#[tokio::test]
async fn any_origin_with_credentials_echoes_the_origin_and_star_headers_echo_the_request() {
    let up = MockUpstream::start().await;
    let cors = "{allow_origins: ['*'], allow_credentials: true, allow_headers: ['*'], \
                allow_methods: [post, GET], expose_headers: [], max_age: 1h}";
    let gw = TestGateway::start(&config(&up, cors)).await;
    let origin = "http://localhost:5173";
    let r = gw
        .http()
        .call(
            "OPTIONS",
            "/v1/chat/completions",
            &chrome_preflight(origin),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.headers["access-control-allow-origin"], origin);
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    assert_eq!(
        r.headers["access-control-allow-headers"],
        CHROME_REQUEST_HEADERS
    );
    assert_eq!(r.headers["access-control-allow-methods"], "POST, GET");
    assert_eq!(r.headers["access-control-max-age"], "3600");
    let auth = bearer();
    let r = gw
        .http()
        .call(
            "GET",
            "/v1/models",
            &[("authorization", &auth), ("origin", origin)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["access-control-allow-origin"], origin);
    assert!(!r.headers.contains_key("access-control-expose-headers"));
    // Without credentials, `*` is sent as `*`.
    let gw = TestGateway::start(&config(&up, "{allow_origins: ['*']}")).await;
    let r = gw
        .http()
        .call("GET", "/healthz", &[("origin", origin)], Bytes::new())
        .await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn cors_applies_on_reload() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let preflight = || async {
        gw.http()
            .call(
                "OPTIONS",
                "/v1/models",
                &chrome_preflight(APP),
                Bytes::new(),
            )
            .await
    };
    preflight().await.assert_error(404, "unknown_url");
    gw.rewrite_config(&config(&up, ALLOW_APP));
    gw.hangup();
    gw.logs_with("config reloaded").await;
    let r = preflight().await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.headers["access-control-allow-origin"], APP);
}

#[tokio::test]
async fn head_answers_like_get_without_the_body() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let http = gw.http();
    let auth = bearer();
    for path in [
        "/v1/models",
        "/v1/models/m",
        "/healthz",
        "/readyz",
        "/v1/models/nope",
    ] {
        let get = http
            .call("GET", path, &[("authorization", &auth)], Bytes::new())
            .await;
        let head = http
            .call("HEAD", path, &[("authorization", &auth)], Bytes::new())
            .await;
        assert_eq!(head.status, get.status, "{path}");
        assert!(head.body.is_empty(), "{path}: {:?}", head.body);
        assert!(!get.body.is_empty(), "{path}");
        assert_eq!(
            head.headers["content-length"],
            get.body.len().to_string(),
            "{path}"
        );
        assert_eq!(
            head.headers["content-type"], get.headers["content-type"],
            "{path}"
        );
        assert!(head.headers.contains_key("x-request-id"));
    }
    // Keys apply to HEAD as to GET; HEAD on a POST-only endpoint is 404, bodiless.
    let r = http.call("HEAD", "/v1/models", &[], Bytes::new()).await;
    assert_eq!(r.status, 401);
    assert!(r.body.is_empty());
    let r = http
        .call(
            "HEAD",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn head_over_http2_has_no_body_either() {
    // hyper leaves a HEAD answer's body out on HTTP/1.1 only; h2c (prior knowledge)
    // shows the gateway drops it itself.
    use http_body_util::{BodyExt, Full};
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let auth = bearer();
    for method in ["GET", "HEAD"] {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}/v1/models", gw.base))
            .header("authorization", &auth)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let length: usize = resp.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        match method {
            "GET" => assert_eq!(body.len(), length),
            _ => assert!(body.is_empty() && length > 0, "{body:?}"),
        }
    }
}

fn check(yaml: &str) -> (i32, String) {
    let path = temp_file("cors.yaml", yaml);
    let out = Command::new(binary())
        .args(["check", "-c", path.to_str().unwrap()])
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_their_yaml_path() {
    let base = "upstreams: [{name: a, dialect: mock, models: [m]}]\n";
    let (code, err) = check(&format!(
        "{base}server:\n  cors:\n    allow_origins: ['https://ok.example.com', 'https://app.example.com/', 'app.example.com', 'https://*.example.com']\n    allow_methods: ['GE T']\n    allow_headers: [authorization, 'x-stainless-*']\n    expose_headers: ['x-ratelimit-*']\n    max_age: soon\n"
    ));
    assert_eq!(code, 64, "{err}");
    for needle in [
        "server.cors.allow_origins[1]: `https://app.example.com/` has a path",
        "server.cors.allow_origins[2]: `app.example.com` is not an origin",
        "server.cors.allow_origins[3]: `https://*.example.com` has a wildcard",
        "server.cors.allow_methods[0]: `GE T` is not a method",
        "server.cors.allow_headers[1]: `x-stainless-*` is not a header name",
        "server.cors.expose_headers[0]: `x-ratelimit-*` is not a header name",
        "server.cors.max_age: `soon` is not a duration",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
    assert!(!err.contains("allow_origins[0]"), "{err}");
    let (code, err) = check(&format!("{base}server:\n  cors: {{origins: ['*']}}\n"));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("server.cors.origins: unknown field `origins`"),
        "{err}"
    );
    let (code, err) = check(&format!("{base}server:\n  cors: {{allow_origins: []}}\n"));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("server.cors.allow_origins: is empty"), "{err}");
    let (code, err) = check(&format!(
        "{base}server:\n  cors: {{allow_origins: ['*', 'http://localhost:5173']}}\n"
    ));
    assert_eq!(code, 0, "{err}");
}
