//! Golden tests of the `ollama` dialect: fixtures under `tests/golden/ollama/`, written
//! from Ollama's `docs/api.md` shapes. Requests are compared as parsed JSON, streams as
//! the list of parsed `data:` payloads (tool-call `arguments` strings parsed too, so key
//! order inside them does not matter).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a missing or malformed fixture must fail loudly"
)]

use bytes::BytesMut;
use serde_json::Value;
use std::path::{Path, PathBuf};
use switchyard_dialects::ollama;
use switchyard_dialects::sse::data_payloads;
use switchyard_dialects::translate::{Reply, Settings, StreamDecode, Target};

fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/ollama")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(golden(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn read_json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The case names in `dir` whose files end with `suffix`, sorted.
fn cases(dir: &str, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(golden(dir))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(suffix).map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no {dir}/*{suffix} fixtures");
    names
}

fn reply(include_usage: bool) -> Reply {
    Reply {
        id: "chatcmpl-7Qyq".into(),
        model: "llama3.2".into(),
        created: 1_700_000_000,
        include_usage,
    }
}

/// Parses every `tool_calls[].function.arguments` string that holds whole JSON.
fn normalize(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(calls)) = map.get_mut("tool_calls") {
                    for call in calls {
                        if let Some(args) = call.pointer_mut("/function/arguments") {
                            if let Some(parsed) = args
                                .as_str()
                                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                            {
                                *args = parsed;
                            }
                        }
                    }
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn payloads(sse: &[u8]) -> Vec<Value> {
    data_payloads(sse)
        .into_iter()
        .map(|p| {
            if p == "[DONE]" {
                Value::String(p)
            } else {
                normalize(serde_json::from_str(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
            }
        })
        .collect()
}

/// Feeds `chunks` then finishes; the payloads written and the error, if any.
fn run_stream(chunks: &[&[u8]], include_usage: bool) -> (Vec<Value>, Option<String>) {
    let mut decoder = ollama::StreamDecoder::new(reply(include_usage));
    let mut out = BytesMut::new();
    let mut error = None;
    for chunk in chunks {
        if let Err(e) = decoder.push(chunk, &mut out) {
            error = Some(e.message);
            break;
        }
    }
    if error.is_none() {
        error = decoder.finish(&mut out).err().map(|e| e.message);
    }
    assert!(
        out.is_empty() || out.ends_with(b"\n\n"),
        "output ends inside an event"
    );
    (payloads(&out), error)
}

struct StreamCase {
    name: String,
    input: Vec<u8>,
    include_usage: bool,
    expected: Vec<Value>,
    error: Option<String>,
}

fn stream_cases() -> Vec<StreamCase> {
    let list = read_json("stream/cases.json");
    let list = list.as_array().unwrap();
    assert!(!list.is_empty());
    list.iter()
        .map(|c| {
            let name = c["case"].as_str().unwrap().to_owned();
            StreamCase {
                input: read(&format!("stream/{name}.ndjson")),
                include_usage: c["include_usage"].as_bool().unwrap(),
                expected: payloads(&read(&format!("stream/{name}.sse"))),
                error: c.get("error").and_then(Value::as_str).map(str::to_owned),
                name,
            }
        })
        .collect()
}

fn check(case: &StreamCase, got: &(Vec<Value>, Option<String>), how: &str) {
    assert_eq!(got.0, case.expected, "{} ({how}): payloads", case.name);
    match (&case.error, &got.1) {
        (None, None) => {}
        (Some(want), Some(err)) => assert!(
            err.contains(want.as_str()),
            "{} ({how}): error {err:?} lacks {want:?}",
            case.name
        ),
        (want, err) => panic!("{} ({how}): error {err:?}, wanted {want:?}", case.name),
    }
}

#[test]
fn ndjson_streams_translate_to_the_golden_chunks() {
    for case in stream_cases() {
        let got = run_stream(&[&case.input], case.include_usage);
        check(&case, &got, "whole");
    }
}

#[test]
fn ndjson_streams_translate_alike_when_split_at_every_byte() {
    for case in stream_cases() {
        let whole = run_stream(&[&case.input], case.include_usage);
        for cut in 0..=case.input.len() {
            let (a, b) = case.input.split_at(cut);
            let got = run_stream(&[a, b], case.include_usage);
            assert_eq!(got, whole, "{} split at {cut}", case.name);
        }
        // Three pieces, the middle one a single byte, at every position.
        for at in 0..case.input.len() {
            let (a, rest) = case.input.split_at(at);
            let (b, c) = rest.split_at(1);
            let got = run_stream(&[a, b, c], case.include_usage);
            assert_eq!(got, whole, "{} one byte at {at}", case.name);
        }
        let bytes: Vec<&[u8]> = case.input.chunks(1).collect();
        let got = run_stream(&bytes, case.include_usage);
        check(&case, &got, "byte by byte");
    }
}

fn settings_from(v: &Value) -> Settings {
    Settings {
        default_max_tokens: v.get("default_max_tokens").and_then(Value::as_u64),
        strict: v.get("strict").and_then(Value::as_bool).unwrap_or(false),
        num_ctx: v.get("num_ctx").and_then(Value::as_u64),
        keep_alive: v
            .get("keep_alive")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

#[test]
fn openai_requests_encode_to_the_golden_ollama_requests() {
    for name in cases("encode", ".in.json") {
        let input = read_json(&format!("encode/{name}.in.json"));
        let settings = settings_from(&input["settings"]);
        let body = input["request"].to_string();
        let result = ollama::encode(
            body.as_bytes(),
            Target {
                model: input["model"].as_str().unwrap(),
                settings: &settings,
            },
        );
        if golden(&format!("encode/{name}.err.json")).exists() {
            let want = read_json(&format!("encode/{name}.err.json"));
            let err = result.expect_err(&name);
            assert_eq!(err.param.as_deref(), want["param"].as_str(), "{name}");
            assert!(!err.message.is_empty());
            continue;
        }
        let want = read_json(&format!("encode/{name}.out.json"));
        let enc = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(enc.path, want["path"], "{name}: path");
        assert_eq!(enc.stream, want["stream"], "{name}: stream");
        assert_eq!(
            enc.include_usage, want["include_usage"],
            "{name}: include_usage"
        );
        let mut dropped = enc.dropped.clone();
        dropped.sort();
        let mut want_dropped: Vec<String> = want["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect();
        want_dropped.sort();
        assert_eq!(dropped, want_dropped, "{name}: dropped");
        let got: Value = serde_json::from_slice(&enc.body).unwrap();
        assert_eq!(got, want["body"], "{name}: body");
    }
}

#[test]
fn whole_answers_decode_to_the_golden_completions() {
    for name in cases("decode", ".upstream.json") {
        let body = read(&format!("decode/{name}.upstream.json"));
        let got = ollama::decode(&body, &reply(false)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = normalize(serde_json::from_slice(&got).unwrap());
        let want = normalize(read_json(&format!("decode/{name}.expected.json")));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn the_tags_list_gives_the_model_names() {
    let got = ollama::parse_models(&read("models/tags.json")).unwrap();
    let want: Vec<String> = serde_json::from_value(read_json("models/tags.expected.json")).unwrap();
    assert_eq!(got, want);
}
