//! Golden tests for the `gemini` dialect: fixtures under `tests/golden/gemini/` written
//! from the Gemini API reference (requests, answers, SSE streams, error bodies, model
//! lists), compared as parsed JSON; plus the edge cases that are clearer as code.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a broken fixture must fail loudly"
)]

use bytes::BytesMut;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use switchyard_dialects::gemini::{
    decode, encode, map_error, models_path, parse_models, StreamDecoder,
};
use switchyard_dialects::sse::data_payloads;
use switchyard_dialects::translate::{Reply, Settings, StreamDecode, Target};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/gemini")
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixtures in `dir` whose names end with `suffix`, as (case name, path).
fn cases(dir: &str, suffix: &str) -> Vec<(String, PathBuf)> {
    let mut out: Vec<_> = fs::read_dir(golden().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_suffix(suffix)?.to_owned();
            Some((name, p))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {dir}/*{suffix} fixtures");
    out
}

fn reply(include_usage: bool) -> Reply {
    Reply {
        id: "chatcmpl-g1".into(),
        model: "gemini-2.5-flash".into(),
        created: 1_764_583_200,
        include_usage,
    }
}

fn target<'a>(model: &'a str, settings: &'a Settings) -> Target<'a> {
    Target { model, settings }
}

fn encode_value(request: &Value, settings: &Settings) -> Value {
    let model = request["model"].as_str().unwrap();
    let body = serde_json::to_vec(request).unwrap();
    let enc = encode(&body, target(model, settings)).unwrap();
    json!({
        "path": enc.path,
        "stream": enc.stream,
        "include_usage": enc.include_usage,
        "dropped": enc.dropped,
        "body": serde_json::from_slice::<Value>(&enc.body).unwrap(),
    })
}

#[test]
fn encode_goldens_match() {
    for (name, path) in cases("encode", ".request.json") {
        let request = json_file(&path);
        let expected = json_file(&golden().join(format!("encode/{name}.expected.json")));
        let got = encode_value(&request, &Settings::default());
        assert_eq!(got, expected, "encode/{name}");
    }
}

#[test]
fn decode_goldens_match() {
    for (name, path) in cases("decode", ".response.json") {
        let expected = json_file(&golden().join(format!("decode/{name}.expected.json")));
        let got = decode(&read(&path), &reply(false)).unwrap();
        let got: Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(got, expected, "decode/{name}");
    }
}

/// Feeds `pieces` to a fresh decoder; the output and the result of `finish`.
fn run_stream(pieces: &[&[u8]], include_usage: bool) -> (BytesMut, Result<(), String>) {
    let mut decoder = StreamDecoder::new(reply(include_usage));
    let mut out = BytesMut::new();
    for piece in pieces {
        if let Err(e) = decoder.push(piece, &mut out) {
            return (out, Err(e.message));
        }
    }
    let end = decoder.finish(&mut out).map_err(|e| e.message);
    (out, end)
}

fn payloads(out: &[u8]) -> Vec<Value> {
    data_payloads(out)
        .iter()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.clone())))
        .collect()
}

/// The golden stream fixtures that end properly (an `.expected.json` next to them).
fn good_streams() -> Vec<(String, Vec<u8>, Value)> {
    cases("stream", ".sse")
        .into_iter()
        .filter_map(|(name, path)| {
            let expected = golden().join(format!("stream/{name}.expected.json"));
            expected
                .exists()
                .then(|| (name, read(&path), json_file(&expected)))
        })
        .collect()
}

#[test]
fn stream_goldens_match() {
    let streams = good_streams();
    assert!(streams.len() >= 6);
    for (name, sse, expected) in streams {
        let (out, end) = run_stream(&[&sse], true);
        assert_eq!(end, Ok(()), "stream/{name}");
        assert_eq!(Value::Array(payloads(&out)), expected, "stream/{name}");
    }
}

#[test]
fn stream_goldens_survive_a_split_at_every_byte() {
    for (name, sse, _) in good_streams() {
        let (whole, _) = run_stream(&[&sse], true);
        for cut in 0..=sse.len() {
            let (a, b) = sse.split_at(cut);
            let (out, end) = run_stream(&[a, b], true);
            assert_eq!(end, Ok(()), "stream/{name} cut at {cut}");
            assert_eq!(out, whole, "stream/{name} cut at {cut}");
        }
        let bytes: Vec<&[u8]> = sse.chunks(1).collect();
        let (out, end) = run_stream(&bytes, true);
        assert_eq!(end, Ok(()), "stream/{name} byte by byte");
        assert_eq!(out, whole, "stream/{name} byte by byte");
    }
}

#[test]
fn a_stream_cut_short_anywhere_either_fails_or_only_lost_trailing_blank_bytes() {
    for (name, sse, _) in good_streams() {
        let (whole, _) = run_stream(&[&sse], true);
        for cut in 0..sse.len() {
            let (out, end) = run_stream(&[&sse[..cut]], true);
            match end {
                Ok(()) => {
                    assert!(
                        sse[cut..].iter().all(u8::is_ascii_whitespace),
                        "{name} {cut}"
                    );
                    assert_eq!(out, whole, "stream/{name} cut at {cut}");
                }
                Err(e) => {
                    assert!(e.contains("truncated"), "stream/{name} cut at {cut}: {e}");
                    assert!(!out.ends_with(b"data: [DONE]\n\n"), "{name} {cut}");
                }
            }
        }
    }
}

#[test]
fn a_stream_without_a_finish_reason_is_truncated() {
    let sse = read(&golden().join("stream/truncated.sse"));
    let (out, end) = run_stream(&[&sse], true);
    assert!(end.unwrap_err().contains("before a finishReason"));
    let got = payloads(&out);
    assert_eq!(got.len(), 2, "role and the text seen: {got:?}");
    assert_eq!(got[1]["choices"][0]["delta"]["content"], "Half an ans");
}

#[test]
fn a_stream_ending_inside_an_event_emits_nothing_of_it() {
    let sse = read(&golden().join("stream/cut_mid_event.sse"));
    let (out, end) = run_stream(&[&sse], true);
    assert!(end.unwrap_err().contains("middle of an event"));
    let got = payloads(&out);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["choices"][0]["delta"]["content"], "Done");
}

#[test]
fn an_error_event_ends_the_stream_with_its_message() {
    let sse = read(&golden().join("stream/error_event.sse"));
    let (out, end) = run_stream(&[&sse], true);
    let err = end.unwrap_err();
    assert!(
        err.contains("UNAVAILABLE") && err.contains("overloaded"),
        "{err}"
    );
    assert_eq!(
        payloads(&out).len(),
        2,
        "what came before the error is kept"
    );
}

#[test]
fn a_stream_that_is_not_json_fails() {
    let (_, end) = run_stream(&[b"data: {not json\r\n\r\n"], true);
    assert!(end.unwrap_err().contains("not JSON"));
}

#[test]
fn no_usage_chunk_unless_the_client_asked() {
    let sse = read(&golden().join("stream/max_tokens.sse"));
    let (out, end) = run_stream(&[&sse], false);
    assert_eq!(end, Ok(()));
    let got = payloads(&out);
    assert!(got.iter().all(|p| p.get("usage").is_none()), "{got:?}");
    assert_eq!(got.last(), Some(&json!("[DONE]")));
}

#[test]
fn tool_call_ids_are_the_same_in_a_stream_and_a_whole_answer() {
    let sse = read(&golden().join("stream/parallel_calls.sse"));
    let (out, _) = run_stream(&[&sse], false);
    let streamed: Vec<Value> = payloads(&out)
        .iter()
        .filter_map(|p| p["choices"][0]["delta"]["tool_calls"][0]["id"].as_str())
        .map(Value::from)
        .collect();
    let body = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "a", "args": {}}},
        {"functionCall": {"name": "b", "args": {}}}
    ]}, "finishReason": "STOP"}]});
    let whole = decode(body.to_string().as_bytes(), &reply(false)).unwrap();
    let whole: Value = serde_json::from_slice(&whole).unwrap();
    let ids: Vec<Value> = whole["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(streamed, ids);
    assert_eq!(ids, vec![json!("call_g1_0"), json!("call_g1_1")]);
}

#[test]
fn error_bodies_map_to_openai_errors() {
    let table = json_file(&golden().join("errors.json"));
    for case in table.as_array().unwrap() {
        let name = &case["case"];
        let body = match case.get("raw") {
            Some(raw) => raw.as_str().unwrap().as_bytes().to_vec(),
            None => serde_json::to_vec(&case["body"]).unwrap(),
        };
        let http = u16::try_from(case["http"].as_u64().unwrap()).unwrap();
        let mapped = map_error(http, &body);
        assert_eq!(u64::from(mapped.status), case["status"], "{name}");
        assert_eq!(mapped.retryable, case["retryable"], "{name}");
        let got: Value = serde_json::from_slice(&mapped.body).unwrap();
        assert_eq!(got["error"]["type"], case["type"], "{name}");
        assert_eq!(got["error"]["code"], case["code"], "{name}");
        let want_message = case
            .pointer("/body/error/message")
            .or_else(|| case.pointer("/body/0/error/message"))
            .cloned()
            .unwrap_or_else(|| json!(format!("the gemini upstream answered HTTP {http}")));
        assert_eq!(got["error"]["message"], want_message, "{name}");
    }
}

#[test]
fn model_lists_keep_generate_content_models_without_prefix() {
    let (ids, next) = parse_models(&read(&golden().join("models.response.json"))).unwrap();
    let expected = json_file(&golden().join("models.expected.json"));
    assert_eq!(json!(ids), expected["ids"]);
    assert_eq!(json!(next), expected["next_page_token"]);
    let (ids, next) = parse_models(b"{\"models\":[],\"nextPageToken\":\"\"}").unwrap();
    assert!(ids.is_empty());
    assert_eq!(next, None);
    assert!(parse_models(b"<html>").is_err());
    assert!(parse_models(b"{\"models\":3}").is_err());
}

#[test]
fn model_list_paths_percent_encode_the_page_token() {
    assert_eq!(models_path(None), "/models?pageSize=1000");
    assert_eq!(
        models_path(Some("Ch+a/b=")),
        "/models?pageSize=1000&pageToken=Ch%2Ba%2Fb%3D"
    );
}

fn encode_err(request: Value, strict: bool) -> (String, Option<String>) {
    let settings = Settings {
        strict,
        ..Settings::default()
    };
    let body = serde_json::to_vec(&request).unwrap();
    let err = encode(&body, target("gemini-2.5-flash", &settings)).unwrap_err();
    (err.message, err.param)
}

#[test]
fn strict_mode_refuses_a_field_gemini_cannot_carry() {
    let request = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                         "logit_bias": {"1": 2}});
    let (message, param) = encode_err(request, true);
    assert_eq!(param.as_deref(), Some("logit_bias"));
    assert!(message.contains("gemini"), "{message}");
}

#[test]
fn strict_mode_refuses_an_unsupported_content_part() {
    let request = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"}, {"type": "video", "video": {}}]}]});
    let (_, param) = encode_err(request, true);
    assert_eq!(param.as_deref(), Some("messages[0].content[1]"));
}

#[test]
fn tool_choice_strings_map_to_modes() {
    for (choice, mode) in [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")] {
        let request = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                             "tool_choice": choice});
        let got = encode_value(&request, &Settings::default());
        assert_eq!(
            got["body"]["toolConfig"],
            json!({"functionCallingConfig": {"mode": mode}})
        );
    }
    let request = json!({"model": "m", "messages": [], "tool_choice": "sometimes"});
    assert_eq!(encode_err(request, false).1.as_deref(), Some("tool_choice"));
}

#[test]
fn a_tool_result_for_an_unknown_call_is_refused() {
    let request = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "call_nope", "content": "x"}]});
    assert_eq!(
        encode_err(request, false).1.as_deref(),
        Some("messages[1].tool_call_id")
    );
}

#[test]
fn tool_call_arguments_that_are_not_an_object_are_refused() {
    let request = json!({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": "[1"}}]}]});
    assert_eq!(
        encode_err(request, false).1.as_deref(),
        Some("messages[0].tool_calls[0].function.arguments")
    );
}

#[test]
fn malformed_requests_are_encode_errors() {
    let settings = Settings::default();
    assert!(encode(b"{nope", target("m", &settings)).is_err());
    assert!(encode(b"[]", target("m", &settings)).is_err());
    assert_eq!(
        encode_err(json!({"model": "m"}), false).1.as_deref(),
        Some("messages")
    );
    let request = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]});
    assert_eq!(
        encode_err(request, false).1.as_deref(),
        Some("messages[0].content[0].image_url.url")
    );
    let request = json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]});
    assert_eq!(
        encode_err(request, false).1.as_deref(),
        Some("messages[0].role")
    );
    let request = json!({"model": "m", "messages": [], "reasoning_effort": "max"});
    assert_eq!(
        encode_err(request, false).1.as_deref(),
        Some("reasoning_effort")
    );
}

#[test]
fn the_model_is_percent_encoded_in_the_path() {
    let settings = Settings::default();
    let body = br#"{"model":"x","messages":[]}"#;
    let enc = encode(body, target("tunedModels/my model?", &settings)).unwrap();
    assert_eq!(
        enc.path,
        "/models/tunedModels%2Fmy%20model%3F:generateContent"
    );
    assert!(!enc.path.contains("key="));
}

#[test]
fn n_is_dropped_from_a_stream() {
    let request = json!({"model": "m", "stream": true, "n": 3,
                         "messages": [{"role": "user", "content": "hi"}]});
    let got = encode_value(&request, &Settings::default());
    assert_eq!(got["dropped"], json!(["n"]));
    assert!(got["body"].get("generationConfig").is_none());
}

#[test]
fn an_error_answer_is_a_decode_error() {
    let body = br#"{"error":{"code":500,"message":"boom","status":"INTERNAL"}}"#;
    let err = decode(body, &reply(false)).unwrap_err();
    assert!(err.message.contains("boom"));
}

#[test]
fn reasoning_effort_sets_a_thinking_budget() {
    for (effort, budget, thoughts) in [
        ("none", 0, false),
        ("minimal", 0, false),
        ("low", 1024, true),
        ("medium", 8192, true),
        ("high", 24576, true),
    ] {
        let request = json!({"model": "m", "messages": [], "reasoning_effort": effort});
        let got = encode_value(&request, &Settings::default());
        assert_eq!(
            got["body"]["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": budget, "includeThoughts": thoughts}),
            "{effort}"
        );
    }
}

#[test]
fn a_text_response_format_adds_nothing_and_an_unknown_one_is_refused() {
    let request = json!({"model": "m", "messages": [], "response_format": {"type": "text"}});
    let got = encode_value(&request, &Settings::default());
    assert!(got["body"].get("generationConfig").is_none());
    let request = json!({"model": "m", "messages": [], "response_format": {"type": "xml"}});
    assert_eq!(
        encode_err(request, false).1.as_deref(),
        Some("response_format")
    );
}

#[test]
fn not_implemented_is_not_retried_elsewhere() {
    let body = br#"{"error":{"code":501,"message":"Operation is not implemented","status":"UNIMPLEMENTED"}}"#;
    let mapped = map_error(501, body);
    assert_eq!(mapped.status, 501);
    assert!(!mapped.retryable);
}

#[test]
fn a_stream_event_larger_than_the_default_sse_limit_is_accepted() {
    let big = "x".repeat(2 * 1024 * 1024);
    let event = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"inlineData": {"mimeType": "image/png", "data": big}}, {"text": "here"}]},
        "finishReason": "STOP"}]});
    let sse = format!("data: {event}\r\n\r\n");
    let (out, end) = run_stream(&[sse.as_bytes()], false);
    assert_eq!(end, Ok(()));
    assert_eq!(payloads(&out)[1]["choices"][0]["delta"]["content"], "here");
}
