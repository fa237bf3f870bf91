//! Golden tests of the Responses API ingress (`switchyard_dialects::responses`):
//! request, answer and stream translations read from `tests/golden/responses/`, every
//! split point of every stream, and the rules the OpenAI Python SDK's stream
//! accumulator (`lib/streaming/responses/_responses.py`) relies on.
//! `UPDATE_FIXTURES=1` rewrites the expected files.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a missing fixture or a broken rule must fail loudly"
)]

use bytes::BytesMut;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use switchyard_dialects::responses::{chat_to_response, request_to_chat, StreamEncoder};

const MODEL: &str = "gpt-4o-mini";
const RESPONSE_ID: &str = "resp_test01";

fn golden(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/responses")
        .join(dir)
}

/// `(case name, input path)` for every file of `dir` ending in `suffix`, sorted.
fn cases(dir: &str, suffix: &str) -> Vec<(String, PathBuf)> {
    let mut found: Vec<_> = std::fs::read_dir(golden(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_suffix(suffix)?.to_owned();
            Some((name, p))
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no {suffix} fixtures in {dir}");
    found
}

fn updating() -> bool {
    std::env::var_os("UPDATE_FIXTURES").is_some()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// Compares `actual` with the JSON in `expected_path` (or writes it when updating).
fn check_json(expected_path: &Path, actual: &Value) {
    if updating() {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(expected_path, text).unwrap();
        return;
    }
    let expected = json_of(&std::fs::read(expected_path).unwrap());
    assert_eq!(
        actual,
        &expected,
        "{} differs; actual:\n{}",
        expected_path.display(),
        serde_json::to_string_pretty(actual).unwrap()
    );
}

// === requests ===

#[test]
fn request_goldens_translate_to_the_expected_openai_chat_request() {
    for (name, input) in cases("request", ".responses.json") {
        let body = std::fs::read(&input).unwrap();
        let request = request_to_chat(&body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let client = json_of(&body);
        assert_eq!(request.model, client["model"].as_str().unwrap(), "{name}");
        assert_eq!(request.stream, client["stream"] == json!(true), "{name}");
        check_json(
            &golden("request").join(format!("{name}.openai.json")),
            &json_of(&request.body),
        );
    }
}

#[test]
fn invalid_or_unservable_requests_are_refused_naming_the_field() {
    let user = json!([{ "role": "user", "content": "hi" }]);
    let cases = [
        (json!({ "input": "hi" }), "model"),
        (json!({ "model": "", "input": "hi" }), "model"),
        (json!({ "model": "m" }), "input"),
        (json!({ "model": "m", "input": 3 }), "input"),
        (
            json!({ "model": "m", "input": "hi", "previous_response_id": "resp_1" }),
            "previous_response_id",
        ),
        (
            json!({ "model": "m", "input": "hi", "conversation": "conv_1" }),
            "conversation",
        ),
        (
            json!({ "model": "m", "input": "hi", "stream": "yes" }),
            "stream",
        ),
        (
            json!({ "model": "m", "input": "hi", "background": true }),
            "background",
        ),
        (
            json!({ "model": "m", "input": "hi", "text": { "verbosity": 1 } }),
            "text.verbosity",
        ),
        (
            json!({ "model": "m", "input": "hi", "instructions": 1 }),
            "instructions",
        ),
        (
            json!({ "model": "m", "input": "hi", "max_output_tokens": 0 }),
            "max_output_tokens",
        ),
        (
            json!({ "model": "m", "input": "hi", "temperature": "hot" }),
            "temperature",
        ),
        (
            json!({ "model": "m", "input": "hi", "tools": [{ "type": "web_search" }] }),
            "tools[0].type",
        ),
        (
            json!({ "model": "m", "input": user, "tools": [{ "type": "function", "name": "f" }, { "type": "file_search", "vector_store_ids": [] }] }),
            "tools[1].type",
        ),
        (
            json!({ "model": "m", "input": "hi", "tools": [{ "type": "function" }] }),
            "tools[0].name",
        ),
        (
            json!({ "model": "m", "input": "hi", "tool_choice": { "type": "web_search_preview" } }),
            "tool_choice",
        ),
        (
            json!({ "model": "m", "input": "hi", "text": { "format": { "type": "yaml" } } }),
            "text.format.type",
        ),
        (
            json!({ "model": "m", "input": "hi", "text": { "format": { "type": "json_schema", "name": "x" } } }),
            "text.format.schema",
        ),
        (
            json!({ "model": "m", "input": [{ "role": "tool", "content": "x" }] }),
            "input[0].role",
        ),
        (
            json!({ "model": "m", "input": [{ "role": "user", "content": 3 }] }),
            "input[0].content",
        ),
        (
            json!({ "model": "m", "input": [{ "role": "user", "content": [{ "type": "input_file", "file_id": "f" }] }] }),
            "input[0].content[0].type",
        ),
        (
            json!({ "model": "m", "input": [{ "role": "user", "content": [{ "type": "input_image", "file_id": "f" }] }] }),
            "input[0].content[0].image_url",
        ),
        (
            json!({ "model": "m", "input": [{ "type": "function_call", "name": "f", "arguments": "{}" }] }),
            "input[0].call_id",
        ),
        (
            json!({ "model": "m", "input": [{ "type": "function_call_output", "call_id": "c" }] }),
            "input[0].output",
        ),
        (
            json!({ "model": "m", "input": [{ "type": "item_reference", "id": "msg_1" }] }),
            "input[0].type",
        ),
        (
            json!({ "model": "m", "input": [{ "content": "x" }] }),
            "input[0].type",
        ),
    ];
    for (body, param) in cases {
        let err = request_to_chat(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.param.as_deref(), Some(param), "{body}: {err:?}");
        assert!(!err.message.is_empty());
    }
    let err =
        request_to_chat(br#"{"model":"m","input":"hi","previous_response_id":"r"}"#).unwrap_err();
    assert!(
        err.message.contains("send the whole conversation in input"),
        "{err:?}"
    );
    for body in [&b"not json"[..], b"[1]", b""] {
        let err = request_to_chat(body).unwrap_err();
        assert_eq!(err.param, None);
    }
}

// === answers ===

#[test]
fn answer_goldens_translate_to_the_expected_response_object() {
    for (name, input) in cases("answer", ".openai.json") {
        let body = std::fs::read(&input).unwrap();
        let response =
            chat_to_response(&body, MODEL, RESPONSE_ID).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let response = json_of(&response);
        check_response_object(&response, &name);
        check_json(
            &golden("answer").join(format!("{name}.responses.json")),
            &response,
        );
    }
}

#[test]
fn answers_that_are_not_a_chat_completion_are_decode_errors() {
    assert!(chat_to_response(b"<html>", MODEL, RESPONSE_ID).is_err());
    assert!(chat_to_response(b"{\"choices\":[]}", MODEL, RESPONSE_ID).is_err());
    let err =
        chat_to_response(b"{\"error\":{\"message\":\"boom\"}}", MODEL, RESPONSE_ID).unwrap_err();
    assert_eq!(err.message, "boom");
}

/// The fields the SDK's `Response` model requires, with the right types.
fn check_response_object(r: &Value, context: &str) {
    assert_eq!(r["object"], "response", "{context}");
    assert_eq!(r["id"], RESPONSE_ID, "{context}");
    assert_eq!(r["model"], MODEL, "{context}");
    assert!(r["created_at"].is_u64(), "{context}");
    assert!(r["output"].is_array(), "{context}");
    assert!(r["parallel_tool_calls"].is_boolean(), "{context}");
    assert!(r["tools"].is_array(), "{context}");
    assert!(r["tool_choice"].is_string(), "{context}");
    assert!(r["metadata"].is_object(), "{context}");
    for key in [
        "error",
        "incomplete_details",
        "instructions",
        "temperature",
        "top_p",
    ] {
        assert!(r.get(key).is_some(), "{context}: no {key}");
    }
    let status = r["status"].as_str().unwrap();
    assert_eq!(
        status == "incomplete",
        r["incomplete_details"]["reason"].is_string(),
        "{context}"
    );
    if !r["usage"].is_null() {
        let u = &r["usage"];
        for key in ["input_tokens", "output_tokens", "total_tokens"] {
            assert!(u[key].is_u64(), "{context}: usage.{key}");
        }
        assert!(
            u["input_tokens_details"]["cached_tokens"].is_u64(),
            "{context}"
        );
        assert!(
            u["output_tokens_details"]["reasoning_tokens"].is_u64(),
            "{context}"
        );
    }
    for item in r["output"].as_array().unwrap() {
        assert!(item["id"].is_string(), "{context}: {item}");
        match item["type"].as_str().unwrap() {
            "message" => {
                assert_eq!(item["role"], "assistant", "{context}");
                assert!(item["status"].is_string(), "{context}");
                for part in item["content"].as_array().unwrap() {
                    match part["type"].as_str().unwrap() {
                        "output_text" => {
                            assert!(part["text"].is_string(), "{context}");
                            assert!(part["annotations"].is_array(), "{context}");
                        }
                        "refusal" => assert!(part["refusal"].is_string(), "{context}"),
                        other => panic!("{context}: part {other}"),
                    }
                }
            }
            "function_call" => {
                for key in ["call_id", "name", "arguments", "status"] {
                    assert!(item[key].is_string(), "{context}: {key}");
                }
            }
            "reasoning" => assert!(item["summary"].is_array(), "{context}"),
            other => panic!("{context}: item {other}"),
        }
    }
}

#[path = "responses/streams.rs"]
mod streams;
