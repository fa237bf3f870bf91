//! Non-streaming chat, completions and embeddings through the gateway: bodies forwarded
//! unchanged (or with only the model rewritten), auth applied per upstream, errors
//! OpenAI-shaped, request ids on every response.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn default_gateway_yaml_answers_with_the_mock_echo_model() {
    let yaml = std::fs::read_to_string(repo_root().join("gateway.yaml")).unwrap();
    let gw = TestGateway::start(&yaml).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("demo", "hello there", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "hello there");
    assert_eq!(r.json()["object"], "chat.completion");
}

#[tokio::test]
async fn body_is_forwarded_byte_for_byte_when_nothing_changes() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let body = r#"{ "messages":[{"role":"user","content":"x"}], "model":"m",  "temperature":0.25, "tools":[], "x_custom":{"k":[1,2]} }"#;
    let r = gw
        .http()
        .call(
            "POST",
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(&up.completions()[0].body[..], body.as_bytes());
}

#[tokio::test]
async fn alias_rewrites_only_the_model_name() {
    let up = MockUpstream::start().await;
    let extra = "routes:\n  - {model: fast, targets: [{upstream: a, model: real-model}]}\n";
    let gw = TestGateway::start(&config_for(
        &[("a", &up.base_url(), &["real-model"])],
        extra,
    ))
    .await;
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"x"}],"n":1}"#;
    let r = gw
        .http()
        .call("POST", "/v1/chat/completions", &[], body)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        &up.completions()[0].body[..],
        br#"{"model":"real-model","messages":[{"role":"user","content":"x"}],"n":1}"#
    );
}

#[tokio::test]
async fn each_auth_type_reaches_the_upstream_as_configured() {
    let up = MockUpstream::start().await;
    let url = up.base_url();
    let yaml = format!(
        r#"upstreams:
  - {{name: b, base_url: '{url}', models: [mb], auth: {{type: bearer, key: '${{K}}'}}, headers: {{X-Extra: one}}}}
  - {{name: h, base_url: '{url}', models: [mh], auth: {{type: header, name: x-api-key, key: '${{K}}'}}}}
  - {{name: t, base_url: '{url}', models: [mt], auth: {{type: header, name: Authorization, prefix: 'Token ', key: '${{K}}'}}}}
  - {{name: q, base_url: '{url}', models: [mq], auth: {{type: query, name: key, key: '${{K}}'}}}}
  - {{name: p, base_url: '{url}', models: [mp], auth: {{type: passthrough}}}}
  - {{name: n, base_url: '{url}', models: [mn], auth: {{type: none}}}}
"#
    );
    let gw = TestGateway::start_with_env(&yaml, &[("K", "sk-secret-123")]).await;
    let http = gw.http();
    for m in ["mb", "mh", "mt", "mq", "mp", "mn"] {
        let r = http
            .call(
                "POST",
                "/v1/chat/completions",
                &[("authorization", "Bearer client-own-key")],
                chat(m, "x", false).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{m}: {}", r.text());
    }
    let seen = up.completions();
    let h = |i: usize, name: &str| {
        seen[i]
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        h(0, "authorization").as_deref(),
        Some("Bearer sk-secret-123")
    );
    assert_eq!(h(0, "x-extra").as_deref(), Some("one"));
    assert_eq!(h(1, "x-api-key").as_deref(), Some("sk-secret-123"));
    assert_eq!(h(1, "authorization"), None);
    assert_eq!(
        h(2, "authorization").as_deref(),
        Some("Token sk-secret-123")
    );
    assert!(
        seen[3]
            .uri
            .ends_with("/v1/chat/completions?key=sk-secret-123"),
        "{}",
        seen[3].uri
    );
    assert_eq!(
        h(4, "authorization").as_deref(),
        Some("Bearer client-own-key")
    );
    assert_eq!(h(5, "authorization"), None);
    assert!(
        !gw.settled_logs().await.contains("sk-secret-123"),
        "a key leaked into the logs"
    );
}

#[tokio::test]
async fn embeddings_and_completions_are_routed_and_passed_through() {
    let up = MockUpstream::with_script(vec![Reply::Json(
        200,
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "emb"}),
        vec![],
    )])
    .await;
    let gw = TestGateway::start(&config_for(
        &[("a", &up.base_url(), &["emb", "text-davinci"])],
        "",
    ))
    .await;
    let r = gw
        .http()
        .post("/v1/embeddings", &json!({"model": "emb", "input": "hi"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["embedding"][0], 0.1);
    let r = gw
        .http()
        .post(
            "/v1/completions",
            &json!({"model": "text-davinci", "prompt": "p"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let uris: Vec<_> = up.completions().iter().map(|s| s.uri.clone()).collect();
    assert!(uris[0].ends_with("/v1/embeddings"));
    assert!(uris[1].ends_with("/v1/completions"));
}

#[tokio::test]
async fn request_id_is_echoed_or_generated_and_forwarded() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let r = gw
        .http()
        .call(
            "POST",
            "/v1/chat/completions",
            &[("x-request-id", "abc-123")],
            chat("m", "x", false).to_string(),
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "abc-123");
    assert_eq!(up.completions()[0].headers["x-request-id"], "abc-123");
    let r = gw.http().get("/nothing-here").await;
    assert!(!r.headers["x-request-id"].is_empty());
    r.assert_error(404, "unknown_url");
}

#[tokio::test]
async fn client_errors_are_openai_shaped() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config_for(
        &[("a", &up.base_url(), &["m"])],
        "server: {max_body_bytes: 1000}\n",
    ))
    .await;
    let http = gw.http();
    http.post("/v1/chat/completions", &chat("nope", "x", false))
        .await
        .assert_error(404, "model_not_found");
    let r = http
        .call("POST", "/v1/chat/completions", &[], "{not json")
        .await;
    r.assert_error(400, "invalid_request");
    let r = http
        .post("/v1/chat/completions", &json!({"messages": []}))
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.json()["error"]["param"], "model");
    let big = chat("m", &"x".repeat(5000), false);
    http.post("/v1/chat/completions", &big)
        .await
        .assert_error(413, "request_too_large");
    assert!(
        up.completions().is_empty(),
        "nothing bad may reach the upstream"
    );
}

#[tokio::test]
async fn oversize_chunked_body_without_length_is_refused() {
    let up = MockUpstream::start().await;
    let gw = TestGateway::start(&config_for(
        &[("a", &up.base_url(), &["m"])],
        "server: {max_body_bytes: 1000}\n",
    ))
    .await;
    // A raw chunked request: no Content-Length, so the limit must hold while reading.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = "a".repeat(600);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

#[tokio::test]
async fn upstream_4xx_is_relayed_with_its_own_body_and_status() {
    let up = MockUpstream::with_script(vec![Reply::Json(
        400,
        json!({"error": {"message": "max_tokens is too large", "type": "invalid_request_error", "param": "max_tokens", "code": null}}),
        vec![],
    )])
    .await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "x", false))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "max_tokens is too large");
    assert_eq!(up.completions().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn health_and_readiness_endpoints_answer() {
    let yaml = std::fs::read_to_string(repo_root().join("gateway.yaml")).unwrap();
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(gw.http().get("/healthz").await.status, 200);
    let r = gw.http().get("/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ready");
}

#[tokio::test]
async fn https_upstreams_work_with_a_trusted_ca_and_fail_without_it() {
    let (up, ca_pem) = MockUpstream::with_script_tls(vec![Reply::Chat]).await;
    let ca = temp_file("ca.pem", &ca_pem);
    let yaml = format!(
        "upstreams:\n  - {{name: secure, base_url: '{}', models: [m], ca_file: '{}'}}\n  - {{name: untrusted, base_url: '{}', models: [u]}}\n",
        up.base_url(),
        ca.display(),
        up.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "over tls", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "over tls");
    // A second request reuses the pooled TLS connection.
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "again", false))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.completions().len(), 2);
    // The same server without its CA trusted: the handshake must fail.
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("u", "x", false))
        .await;
    r.assert_error(502, "upstream_error");
    assert_eq!(up.completions().len(), 2);
}

#[tokio::test]
async fn https_streams_are_relayed_event_by_event() {
    let (up, ca_pem) =
        MockUpstream::with_script_tls(vec![Reply::StreamHold(vec!["a ".into(), "b ".into()], 1)])
            .await;
    let ca = temp_file("ca.pem", &ca_pem);
    let yaml = format!(
        "upstreams:\n  - {{name: secure, base_url: '{}', models: [m], ca_file: '{}'}}\n",
        up.base_url(),
        ca.display()
    );
    let gw = TestGateway::start(&yaml).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let mut body = resp.into_body();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), next_data(&mut body))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("a "));
    up.release();
    let rest = read_all(&mut body).await.unwrap();
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));
}

#[test]
fn check_reports_an_unreadable_ca_file_at_its_path() {
    let cfg = temp_file(
        "g.yaml",
        "upstreams:\n  - {name: a, base_url: 'https://x.example/v1', models: [m], ca_file: /nonexistent/ca.pem}\n",
    );
    let out = std::process::Command::new(binary())
        .args(["check", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upstreams[0].ca_file"), "{err}");
}

/// An HTTPS client (HTTP/1.1 and HTTP/2 by ALPN) trusting only `ca_pem`.
fn https_client(
    ca_pem: &str,
) -> hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
}

#[tokio::test]
async fn the_gateway_serves_https_with_http2_when_configured() {
    use http_body_util::BodyExt;
    let certs = test_certs();
    let cert = temp_file("cert.pem", &certs.chain_pem);
    let key = temp_file("key.pem", &certs.key_pem);
    let yaml = format!(
        "server: {{tls: {{cert_file: '{}', key_file: '{}'}}}}\nupstreams: [{{name: mock, dialect: mock}}]\n",
        cert.display(),
        key.display()
    );
    let gw = TestGateway::start(&yaml).await;
    let port = gw.base.rsplit(':').next().unwrap().to_owned();
    let client = https_client(&certs.ca_pem);
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("https://localhost:{port}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            chat("mock-echo", "over https", false).to_string(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "over https");
}

#[test]
fn check_reports_unreadable_tls_files_at_their_path() {
    let cfg = temp_file(
        "g.yaml",
        "server: {tls: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}}\nupstreams: [{name: mock, dialect: mock}]\n",
    );
    let out = std::process::Command::new(binary())
        .args(["check", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.tls.cert_file"), "{err}");
}
