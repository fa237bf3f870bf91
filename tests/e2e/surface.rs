//! The rest of the OpenAI API surface through the real binary: any other `/v1/` path
//! with a JSON `model` (moderations, rerank — also at `/rerank` —, images, audio speech,
//! responses) is routed by it like chat and forwarded untouched, streams of typed events
//! and binary bodies included; without a model (a GET such as `/v1/files`, a DELETE, a
//! multipart body) it goes to the upstream named by `x-switchyard-upstream` or
//! `routing.default_upstream`, else a 404 that says how. The OpenAI Python SDK's own
//! calls go through the same way.

use crate::support::*;
use serde_json::json;

/// An OpenAI-compatible upstream that answers each path in its own format.
fn surface(seen: &Seen) -> NativeReply {
    let path = seen.uri.split('?').next().unwrap_or_default();
    match path {
        "/v1/moderations" => NativeReply::json(
            200,
            &json!({"id": "modr-1", "model": seen.json()["model"], "results": [{"flagged": false, "categories": {}, "category_scores": {}}]}),
        ),
        "/v1/rerank" => NativeReply::json(
            200,
            &json!({"id": "rr-1", "model": seen.json()["model"], "results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]}),
        ),
        "/v1/images/generations" => NativeReply::json(
            200,
            &json!({"created": 1, "data": [{"b64_json": "aGVsbG8="}]}),
        ),
        "/v1/audio/speech" => NativeReply {
            status: 200,
            content_type: "audio/mpeg",
            headers: Vec::new(),
            frames: vec![
                bytes::Bytes::from_static(b"ID3\x04\x00"),
                bytes::Bytes::from_static(&[0xff, 0xfb, 0x90, 0x00]),
                bytes::Bytes::from_static(b"more-audio"),
            ],
        },
        "/v1/responses" if seen.json()["input"] == "CUT" => NativeReply::lines(
            200,
            "text/event-stream",
            "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_cut\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
        ),
        "/v1/responses" if seen.json()["stream"] == true => {
            let events = [
                (
                    "response.created",
                    json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "gpt-4o", "output": []}}),
                ),
                (
                    "response.output_text.delta",
                    json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hi there"}),
                ),
                (
                    "response.completed",
                    json!({"type": "response.completed", "sequence_number": 2, "response": {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "gpt-4o",
                    "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}],
                    "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}}),
                ),
            ];
            let body: String = events
                .iter()
                .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
                .collect();
            NativeReply::lines(200, "text/event-stream", &body)
        }
        "/v1/responses" => NativeReply::json(
            200,
            &json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": seen.json()["model"],
            "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}],
            "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}),
        ),
        p if p.starts_with("/v1/responses/") => NativeReply::json(
            200,
            &json!({"id": "resp_1", "object": "response", "status": "completed", "output": []}),
        ),
        "/v1/files" => NativeReply::json(
            200,
            &json!({"object": "list", "data": [{"id": "file-1", "object": "file"}]}),
        ),
        p if p.starts_with("/v1/files/") => NativeReply::json(
            200,
            &json!({"id": "file-1", "object": "file", "deleted": true}),
        ),
        "/v1/audio/transcriptions" => NativeReply::json(200, &json!({"text": "hello"})),
        _ => NativeReply::json(
            404,
            &json!({"error": {"message": "no", "type": "invalid_request_error", "param": null, "code": null}}),
        ),
    }
}

fn yaml(a: &str, b: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  - {{name: a, base_url: '{a}/v1', models: [omni-moderation-latest, rerank-v1, gpt-image-1, tts-1, gpt-4o, whisper-1]}}\n  - {{name: b, base_url: '{b}/v1', models: [other-model]}}\nroutes:\n  - {{model: moderation, targets: [{{upstream: a, model: omni-moderation-latest}}]}}\n  - {{model: stt, targets: [{{upstream: a, model: whisper-1}}]}}\n{extra}"
    )
}

#[tokio::test]
async fn other_v1_endpoints_are_routed_by_model_and_forwarded_untouched() {
    let a = NativeUpstream::start(surface).await;
    let b = NativeUpstream::start(surface).await;
    let gw = TestGateway::start(&yaml(&a.url(), &b.url(), "")).await;
    let http = gw.http();
    // An alias maps the model; the rest of the body goes as it came.
    let body = json!({"model": "moderation", "input": ["one", "two"], "extra": {"kept": true}});
    let m = http.post("/v1/moderations", &body).await;
    assert_eq!(m.status, 200, "{}", m.text());
    assert_eq!(m.json()["results"][0]["flagged"], false);
    let sent = a.requests()[0].json();
    assert_eq!(sent["model"], "omni-moderation-latest");
    assert_eq!(sent["extra"], json!({"kept": true}));
    assert_eq!(a.requests()[0].uri, "/v1/moderations");
    // Rerank at both spellings.
    for path in ["/v1/rerank", "/rerank"] {
        let r = http
            .post(
                path,
                &json!({"model": "rerank-v1", "query": "q", "documents": ["x", "y"]}),
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["results"][0]["index"], 1);
    }
    // Binary audio relayed byte for byte, with its content type.
    let speech = http
        .post(
            "/v1/audio/speech",
            &json!({"model": "tts-1", "input": "hello", "voice": "alloy"}),
        )
        .await;
    assert_eq!(speech.status, 200);
    assert_eq!(speech.headers["content-type"], "audio/mpeg");
    assert_eq!(&speech.body[..], b"ID3\x04\x00\xff\xfb\x90\x00more-audio");
    // A stream of typed events is relayed whole, not taken for a truncated chat stream.
    let stream = http
        .post(
            "/v1/responses",
            &json!({"model": "gpt-4o", "input": "hi", "stream": true}),
        )
        .await;
    let text = stream.text();
    assert!(text.contains("event: response.completed"), "{text}");
    assert!(!text.contains("upstream_stream_error"), "{text}");
    assert!(
        !a.requests()
            .iter()
            .any(|s| s.json().get("stream_options").is_some()),
        "no stream_options added to non-chat bodies"
    );
    // An unknown model is a 404 as for chat; a model only `b` serves goes to `b`.
    http.post("/v1/moderations", &json!({"model": "nope", "input": "x"}))
        .await
        .assert_error(404, "model_not_found");
    assert_eq!(
        http.post(
            "/v1/images/generations",
            &json!({"model": "other-model", "prompt": "x"})
        )
        .await
        .status,
        200
    );
    assert_eq!(b.requests().len(), 1);
    // Paths outside /v1 are not forwarded.
    http.post("/v2/moderations", &body)
        .await
        .assert_error(404, "unknown_url");
}

#[tokio::test]
async fn requests_without_a_model_go_to_the_named_or_default_upstream() {
    let a = NativeUpstream::start(surface).await;
    let b = NativeUpstream::start(surface).await;
    let http_of = |gw: &TestGateway| gw.http();
    let gw = TestGateway::start(&yaml(&a.url(), &b.url(), "")).await;
    let http = http_of(&gw);
    let refused = http
        .call("GET", "/v1/files", &[], bytes::Bytes::new())
        .await;
    let message = refused.assert_error(404, "no_upstream");
    assert!(
        message.contains("x-switchyard-upstream") && message.contains("default_upstream"),
        "{message}"
    );
    let listed = http
        .call(
            "GET",
            "/v1/files?purpose=batch",
            &[("x-switchyard-upstream", "b")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()["data"][0]["id"], "file-1");
    let seen = &b.requests()[0];
    assert_eq!(seen.uri, "/v1/files?purpose=batch");
    assert!(seen.body.is_empty());
    let deleted = http
        .call(
            "DELETE",
            "/v1/files/file-1",
            &[("x-switchyard-upstream", "b")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(deleted.json()["deleted"], true);
    http.call(
        "GET",
        "/v1/files",
        &[("x-switchyard-upstream", "zz")],
        bytes::Bytes::new(),
    )
    .await
    .assert_error(404, "no_upstream");
    // A multipart body keeps its boundary.
    let form = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF....\r\n--XyZ--\r\n";
    let multipart = http
        .call(
            "POST",
            "/v1/audio/transcriptions",
            &[
                ("x-switchyard-upstream", "a"),
                ("content-type", "multipart/form-data; boundary=XyZ"),
            ],
            bytes::Bytes::from(form),
        )
        .await;
    assert_eq!(multipart.status, 200, "{}", multipart.text());
    let seen = a.requests().into_iter().last().unwrap();
    assert_eq!(
        seen.headers["content-type"],
        "multipart/form-data; boundary=XyZ"
    );
    assert_eq!(&seen.body[..], form.as_bytes());
    drop(gw);

    let gw = TestGateway::start(&yaml(
        &a.url(),
        &b.url(),
        "routing: {default_upstream: b}\n",
    ))
    .await;
    let listed = http_of(&gw)
        .call("GET", "/v1/files", &[], bytes::Bytes::new())
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(b.requests().len(), 3);
}

#[tokio::test]
async fn a_default_upstream_that_does_not_exist_is_a_config_error() {
    let out = std::process::Command::new(binary())
        .args(["check", "-c"])
        .arg(temp_file(
            "default-upstream.yaml",
            "upstreams: [{name: m, dialect: mock}]\nrouting: {default_upstream: nope}\n",
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("routing.default_upstream") && err.contains("nope"),
        "{err}"
    );
}

#[tokio::test]
async fn the_openai_python_sdk_uses_the_rest_of_the_surface() {
    let a = NativeUpstream::start(surface).await;
    let b = NativeUpstream::start(surface).await;
    let gw = TestGateway::start(&yaml(&a.url(), &b.url(), "")).await;
    let (passed, report) = run_python(
        "surface_check.py",
        &[("SWITCHYARD_BASE_URL", gw.base.clone())],
    )
    .await;
    assert!(passed, "{report}\n--- gateway logs ---\n{}", gw.logs());
    eprintln!("{report}");
}

#[tokio::test]
async fn a_multipart_form_is_routed_by_its_model_field_and_forwarded_byte_for_byte() {
    let a = NativeUpstream::start(surface).await;
    let b = NativeUpstream::start(surface).await;
    let gw = TestGateway::start(&yaml(&a.url(), &b.url(), "")).await;
    let form = |model: &str| {
        format!("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\x01data\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nfr\r\n--XyZ--\r\n")
    };
    let ct = [("content-type", "multipart/form-data; boundary=XyZ")];
    let answer = gw
        .http()
        .call(
            "POST",
            "/v1/audio/transcriptions",
            &ct,
            bytes::Bytes::from(form("stt")),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["text"], "hello");
    let seen = a.requests().into_iter().last().unwrap();
    assert_eq!(seen.uri, "/v1/audio/transcriptions");
    assert_eq!(
        &seen.body[..],
        form("whisper-1").as_bytes(),
        "only the model value changed"
    );
    assert_eq!(
        seen.headers["content-type"],
        "multipart/form-data; boundary=XyZ"
    );
    // An unknown model in the form is a 404 like anywhere else.
    gw.http()
        .call(
            "POST",
            "/v1/audio/transcriptions",
            &ct,
            bytes::Bytes::from(form("nope")),
        )
        .await
        .assert_error(404, "model_not_found");
}

#[tokio::test]
async fn a_stored_response_is_fetched_from_the_upstream_that_created_it() {
    let a = NativeUpstream::start(surface).await;
    let b = NativeUpstream::start(surface).await;
    let gw = TestGateway::start(&yaml(
        &a.url(),
        &b.url(),
        "routing: {default_upstream: a}\n",
    ))
    .await;
    let http = gw.http();
    // Created on `b` (the only one serving the model), streamed: the id is read from
    // the `response.created` event.
    let created = http
        .post(
            "/v1/responses",
            &json!({"model": "other-model", "input": "hi", "stream": true}),
        )
        .await;
    assert_eq!(created.status, 200);
    let before = b.requests().len();
    for (method, path) in [
        ("GET", "/v1/responses/resp_1"),
        ("GET", "/v1/responses/resp_1/input_items?limit=5"),
        ("POST", "/v1/responses/resp_1/cancel"),
        ("DELETE", "/v1/responses/resp_1"),
    ] {
        let answer = http.call(method, path, &[], bytes::Bytes::new()).await;
        assert_eq!(answer.status, 200, "{method} {path}: {}", answer.text());
    }
    let seen: Vec<String> = b.requests()[before..]
        .iter()
        .map(|s| s.uri.clone())
        .collect();
    assert_eq!(
        seen,
        [
            "/v1/responses/resp_1",
            "/v1/responses/resp_1/input_items?limit=5",
            "/v1/responses/resp_1/cancel",
            "/v1/responses/resp_1"
        ]
    );
    assert!(
        a.requests().is_empty(),
        "the default upstream was not asked"
    );
    // An id nobody created goes to the default upstream.
    http.call(
        "GET",
        "/v1/responses/resp_unknown",
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(a.requests()[0].uri, "/v1/responses/resp_unknown");
}

#[tokio::test]
async fn the_built_in_mock_answers_what_the_sdks_send_by_default() {
    let gw = TestGateway::start("upstreams: [{name: m, dialect: mock}]\n").await;
    let (passed, report) =
        run_python("mock_check.py", &[("SWITCHYARD_BASE_URL", gw.base.clone())]).await;
    assert!(passed, "{report}\n--- gateway logs ---\n{}", gw.logs());
    eprintln!("{report}");
    // Other paths are not the mock's: a clear 404.
    gw.http()
        .post(
            "/v1/moderations",
            &json!({"model": "mock-echo", "input": "x"}),
        )
        .await
        .assert_error(404, "unknown_url");
}

#[tokio::test]
async fn the_responses_api_is_served_through_chat_for_upstreams_without_it() {
    let gpt = NativeUpstream::start(crate::messages::openai).await;
    let claude = NativeUpstream::start(crate::dialects_sdk::anthropic).await;
    let yaml = format!(
        "upstreams:\n  - {{name: gpt, base_url: '{}/v1', models: [gpt-4o], responses: false}}\n  - {{name: claude, dialect: anthropic, base_url: '{}', models: [claude-sonnet-4]}}\n",
        gpt.url(),
        claude.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let (passed, report) = run_python(
        "responses_check.py",
        &[
            ("SWITCHYARD_BASE_URL", gw.base.clone()),
            (
                "SWITCHYARD_RESPONSES_MODELS",
                json!(["gpt-4o", "claude-sonnet-4"]).to_string(),
            ),
        ],
    )
    .await;
    assert!(passed, "{report}\n--- gateway logs ---\n{}", gw.logs());
    eprintln!("{report}");
    // The OpenAI upstream was asked for chat completions, never /responses.
    assert!(
        gpt.requests()
            .iter()
            .all(|s| s.uri == "/v1/chat/completions"),
        "{:?}",
        gpt.requests().iter().map(|s| &s.uri).collect::<Vec<_>>()
    );
    let first = gpt.requests()[0].json();
    assert_eq!(
        first["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
}

#[tokio::test]
async fn responses_requests_rotate_like_chat_and_a_cut_stream_is_an_error() {
    let a = NativeUpstream::start(surface).await;
    let b = NativeUpstream::start(surface).await;
    let yaml = format!(
        "upstreams:\n  - {{name: a, base_url: '{}/v1', models: [gpt-4o]}}\n  - {{name: b, base_url: '{}/v1', models: [gpt-4o]}}\n",
        a.url(),
        b.url()
    );
    let gw = TestGateway::start(&yaml).await;
    for stream in [false, false, true, true] {
        let r = gw
            .http()
            .post(
                "/v1/responses",
                &json!({"model": "gpt-4o", "input": "hi", "stream": stream}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        (a.requests().len(), b.requests().len()),
        (2, 2),
        "round robin, one step per request"
    );
    // A stream that ends cleanly before its terminal event is not passed off as whole.
    let cut = gw
        .http()
        .post(
            "/v1/responses",
            &json!({"model": "gpt-4o", "input": "CUT", "stream": true}),
        )
        .await;
    let text = cut.text();
    assert!(text.contains("response.created"), "{text}");
    assert!(text.contains("upstream_stream_error"), "{text}");
}
