//! Golden tests of the Anthropic Messages ingress (`switchyard_dialects::messages`):
//! request, answer and stream translations read from `tests/golden/messages/`, every
//! split point of every stream, the rules the Anthropic Python SDK's stream accumulator
//! relies on, and the structure of real Anthropic streams (`golden/messages/reference/`).
//! `UPDATE_FIXTURES=1` rewrites the expected files.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a missing fixture or a broken rule must fail loudly"
)]

use bytes::BytesMut;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use switchyard_dialects::messages::{
    chat_to_message, error_body, error_event, error_from_openai, request_to_chat, StreamEncoder,
};

const MODEL: &str = "claude-sonnet-4-5";
const MESSAGE_ID: &str = "msg_test01";

fn golden(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/messages")
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
    for (name, input) in cases("request", ".anthropic.json") {
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
fn invalid_requests_are_refused_naming_the_field() {
    let ok_messages = json!([{ "role": "user", "content": "hi" }]);
    let cases = [
        (json!({ "max_tokens": 5, "messages": ok_messages }), "model"),
        (
            json!({ "model": "", "max_tokens": 5, "messages": ok_messages }),
            "model",
        ),
        (
            json!({ "model": "m", "messages": ok_messages }),
            "max_tokens",
        ),
        (
            json!({ "model": "m", "max_tokens": "5", "messages": ok_messages }),
            "max_tokens",
        ),
        (
            json!({ "model": "m", "max_tokens": 0, "messages": ok_messages }),
            "max_tokens",
        ),
        (json!({ "model": "m", "max_tokens": 5 }), "messages"),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": "hi" }),
            "messages",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "stream": "yes" }),
            "stream",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "system", "content": "x" }] }),
            "messages[0].role",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "user", "content": 3 }] }),
            "messages[0].content",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "user", "content": [{ "type": "document", "source": {} }] }] }),
            "messages[0].content[0].type",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "user", "content": [{ "type": "image", "source": { "type": "file", "file_id": "f" } }] }] }),
            "messages[0].content[0].source.type",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "user", "content": [{ "type": "tool_result", "content": "x" }] }] }),
            "messages[0].content[0].tool_use_id",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "temperature": "hot" }),
            "temperature",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "stop_sequences": "x" }),
            "stop_sequences",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "tools": [{ "type": "web_search_20250305", "name": "web_search" }] }),
            "tools[0].type",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "tools": [{ "name": "f" }] }),
            "tools[0].input_schema",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "tool_choice": { "type": "tool" } }),
            "tool_choice.name",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "tool_choice": { "type": "some" } }),
            "tool_choice.type",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "thinking": { "type": "enabled" } }),
            "thinking.budget_tokens",
        ),
        (
            json!({ "model": "m", "max_tokens": 5, "messages": ok_messages, "system": [{ "type": "image" }] }),
            "system[0]",
        ),
    ];
    for (body, param) in cases {
        let err = request_to_chat(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.param.as_deref(), Some(param), "{body}: {err:?}");
        assert!(!err.message.is_empty());
    }
    for body in [&b"not json"[..], b"[1]", b""] {
        let err = request_to_chat(body).unwrap_err();
        assert_eq!(err.param, None);
    }
}

#[test]
fn thinking_budgets_map_to_reasoning_effort() {
    let cases = [
        (
            json!({ "type": "enabled", "budget_tokens": 2048 }),
            Some("low"),
        ),
        (
            json!({ "type": "enabled", "budget_tokens": 2049 }),
            Some("medium"),
        ),
        (
            json!({ "type": "enabled", "budget_tokens": 8192 }),
            Some("medium"),
        ),
        (
            json!({ "type": "enabled", "budget_tokens": 8193 }),
            Some("high"),
        ),
        (json!({ "type": "disabled" }), None),
    ];
    for (thinking, effort) in cases {
        let body = json!({
            "model": "m", "max_tokens": 9000, "thinking": thinking,
            "messages": [{ "role": "user", "content": "hi" }],
        });
        let chat = json_of(&request_to_chat(body.to_string().as_bytes()).unwrap().body);
        assert_eq!(
            chat.get("reasoning_effort").and_then(Value::as_str),
            effort,
            "{thinking}"
        );
    }
}

// === answers ===

#[test]
fn answer_goldens_translate_to_the_expected_anthropic_message() {
    for (name, input) in cases("answer", ".openai.json") {
        let body = std::fs::read(&input).unwrap();
        let message = chat_to_message(&body, MODEL).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        check_json(
            &golden("answer").join(format!("{name}.anthropic.json")),
            &json_of(&message),
        );
    }
}

#[test]
fn answers_that_are_not_a_chat_completion_are_decode_errors() {
    assert!(chat_to_message(b"<html>", MODEL).is_err());
    assert!(chat_to_message(b"{\"choices\":[]}", MODEL).is_err());
    let err = chat_to_message(b"{\"error\":{\"message\":\"boom\"}}", MODEL).unwrap_err();
    assert_eq!(err.message, "boom");
}

// === streams ===

/// One Anthropic SSE event: its `event:` name and parsed `data:`.
type Event = (String, Value);

/// Parses Anthropic SSE text; every event must have an `event:` line and one JSON
/// `data:` line whose `type` is the event name.
fn parse_anthropic_sse(text: &str) -> Vec<Event> {
    let text = text.replace("\r\n", "\n");
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                assert!(data.is_none(), "two data lines in {block:?}");
                data = Some(json_of(v.trim().as_bytes()));
            } else {
                panic!("unexpected line {line:?}");
            }
        }
        let (name, data) = (name.unwrap(), data.unwrap());
        assert_eq!(
            data["type"],
            json!(name),
            "event name and data type differ: {block}"
        );
        events.push((name, data));
    }
    events
}

/// The rules `accumulate_event` / `build_events` of the Anthropic Python SDK
/// (`src/anthropic/lib/streaming/_messages.py`) rely on: `message_start` first; a
/// block's index is the number of blocks started before it (it is appended, and later
/// events look it up by index); deltas refer to a started, unstopped block of the
/// matching kind; tool input deltas concatenate to JSON; `message_delta` carries
/// `stop_reason` and `usage.output_tokens`, after every block stopped; `message_stop`
/// (or `error`, which may also be the only event) ends the stream.
fn check_sdk_rules(events: &[Event], context: &str) {
    check_rules(events, context, true);
}

/// [`check_sdk_rules`], the tool input JSON checked only when `tool_json`.
fn check_rules(events: &[Event], context: &str, tool_json: bool) {
    let events: Vec<&Event> = events.iter().filter(|(n, _)| n != "ping").collect();
    // The SDK raises on an `error` event before it accumulates anything.
    if events.first().map(|e| e.0.as_str()) == Some("error") {
        assert_eq!(events.len(), 1, "{context}: events after error");
        return;
    }
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("message_start"),
        "{context}"
    );
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]), "{context}");
    assert_eq!(start["role"], "assistant", "{context}");
    assert!(start["usage"]["input_tokens"].is_u64(), "{context}");
    // (kind, stopped, tool input json)
    let mut blocks: Vec<(String, bool, String)> = Vec::new();
    let mut delta_seen = false;
    for (at, (name, data)) in events.iter().enumerate().skip(1) {
        let last = at == events.len() - 1;
        match name.as_str() {
            "content_block_start" => {
                assert!(!delta_seen, "{context}: block after message_delta");
                assert_eq!(data["index"], json!(blocks.len()), "{context}: index");
                let kind = data["content_block"]["type"].as_str().unwrap().to_owned();
                if kind == "tool_use" {
                    assert!(data["content_block"]["id"].is_string(), "{context}");
                    assert!(data["content_block"]["name"].is_string(), "{context}");
                    assert_eq!(data["content_block"]["input"], json!({}), "{context}");
                }
                blocks.push((kind, false, String::new()));
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                let block = blocks
                    .get_mut(index)
                    .unwrap_or_else(|| panic!("{context}: delta for unstarted block {index}"));
                assert!(!block.1, "{context}: delta after content_block_stop");
                let delta = &data["delta"];
                let wanted = match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        assert!(delta["text"].is_string(), "{context}");
                        "text"
                    }
                    "thinking_delta" => {
                        assert!(delta["thinking"].is_string(), "{context}");
                        "thinking"
                    }
                    "signature_delta" => "thinking",
                    "input_json_delta" => {
                        block.2.push_str(delta["partial_json"].as_str().unwrap());
                        "tool_use"
                    }
                    other => panic!("{context}: unknown delta {other}"),
                };
                assert_eq!(block.0, wanted, "{context}: delta kind for block {index}");
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                let block = blocks
                    .get_mut(index)
                    .unwrap_or_else(|| panic!("{context}: stop of unstarted block"));
                assert!(!block.1, "{context}: block {index} stopped twice");
                block.1 = true;
                if tool_json && block.0 == "tool_use" && !block.2.is_empty() {
                    serde_json::from_str::<Value>(&block.2)
                        .unwrap_or_else(|e| panic!("{context}: tool input {:?}: {e}", block.2));
                }
            }
            "message_delta" => {
                assert!(!delta_seen, "{context}: two message_delta");
                delta_seen = true;
                assert!(
                    blocks.iter().all(|b| b.1),
                    "{context}: message_delta with an open block"
                );
                assert!(data["delta"]["stop_reason"].is_string(), "{context}");
                assert_eq!(data["delta"]["stop_sequence"], Value::Null, "{context}");
                assert!(data["usage"]["output_tokens"].is_u64(), "{context}");
            }
            "message_stop" => {
                assert!(delta_seen, "{context}: message_stop before message_delta");
                assert!(last, "{context}: events after message_stop");
            }
            "error" => {
                assert!(last, "{context}: events after error");
                assert!(data["error"]["type"].is_string(), "{context}");
                assert!(data["error"]["message"].is_string(), "{context}");
            }
            other => panic!("{context}: unknown event {other}"),
        }
    }
    let end = events.last().unwrap().0.as_str();
    assert!(
        end == "message_stop" || end == "error",
        "{context}: ends with {end}"
    );
}

/// Feeds `pieces` then finishes; the output and whether it failed.
fn run_stream<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> (BytesMut, bool) {
    let mut encoder = StreamEncoder::new(MODEL, MESSAGE_ID);
    let mut out = BytesMut::new();
    let mut failed = false;
    for piece in pieces {
        if encoder.push(piece, &mut out).is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        failed = encoder.finish(&mut out).is_err();
    }
    (out, failed)
}

fn stream_fixtures() -> Vec<(String, Vec<u8>)> {
    cases("stream", ".openai.sse")
        .into_iter()
        .map(|(name, path)| (name, std::fs::read(path).unwrap()))
        .collect()
}

#[test]
fn stream_goldens_translate_to_the_expected_anthropic_events() {
    for (name, input) in stream_fixtures() {
        let (out, failed) = run_stream([input.as_slice()]);
        assert_eq!(
            failed,
            name.starts_with("fail_"),
            "{name}: failed = {failed}"
        );
        let text = std::str::from_utf8(&out).unwrap();
        let events = parse_anthropic_sse(text);
        check_sdk_rules(&events, &name);
        let expected_path = golden("stream").join(format!("{name}.anthropic.sse"));
        if updating() {
            std::fs::write(&expected_path, text).unwrap();
            continue;
        }
        let expected = parse_anthropic_sse(&std::fs::read_to_string(&expected_path).unwrap());
        assert_eq!(events, expected, "{name}; actual:\n{text}");
    }
}

#[test]
fn every_split_point_gives_the_unsplit_output() {
    for (name, input) in stream_fixtures() {
        let (whole, whole_failed) = run_stream([input.as_slice()]);
        for cut in 0..=input.len() {
            let (head, tail) = input.split_at(cut);
            let (out, failed) = run_stream([head, tail]);
            assert_eq!(failed, whole_failed, "{name} cut at {cut}");
            assert_eq!(out, whole, "{name} cut at {cut}");
        }
        let (bytewise, failed) = run_stream(input.chunks(1));
        assert_eq!(failed, whole_failed, "{name} byte by byte");
        assert_eq!(bytewise, whole, "{name} byte by byte");
    }
}

/// Corrupted upstream bytes never panic and never break the event rules: a line end
/// put anywhere (events merge or split, data lines are lost) still gives a stream the
/// SDK accepts, and
/// any byte overwritten still gives a stream that ends with `message_stop` or `error`.
#[test]
fn corrupted_streams_still_end_cleanly() {
    for (name, input) in stream_fixtures() {
        for at in 0..input.len() {
            // One corruption per position, cycling through the kinds (keeps it quick).
            let replacement = [b'\n', b'\r', b'x', b'"'][at % 4];
            let mut corrupted = input.clone();
            corrupted[at] = replacement;
            let (out, _) = run_stream([corrupted.as_slice()]);
            let events = parse_anthropic_sse(std::str::from_utf8(&out).unwrap());
            let context = format!("{name}: byte {at} set to {replacement}");
            if matches!(replacement, b'\n' | b'\r') {
                // A lost `data:` line loses a piece of tool input: not checked.
                check_rules(&events, &context, false);
            }
            let last = events.last().map(|e| e.0.as_str());
            assert!(
                matches!(last, Some("message_stop" | "error")),
                "{context}: ends with {last:?}"
            );
        }
    }
}

#[test]
fn real_anthropic_streams_pass_the_sdk_rules() {
    for file in [
        "basic_response.txt",
        "tool_use_response.txt",
        "refusal_response.txt",
        "stream-a-refusal.sse",
    ] {
        let text = std::fs::read_to_string(golden("reference").join(file)).unwrap();
        check_sdk_rules(&parse_anthropic_sse(&text), file);
    }
}

/// Event names with block kinds and delta kinds, pings and signature deltas left out,
/// runs of the same entry collapsed: what must match a real Anthropic stream.
fn structure(events: &[Event]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, data) in events {
        let entry = match name.as_str() {
            "ping" => continue,
            "content_block_start" => {
                format!("{name} {} {}", data["index"], data["content_block"]["type"])
            }
            "content_block_delta" if data["delta"]["type"] == "signature_delta" => continue,
            "content_block_delta" => format!("{name} {} {}", data["index"], data["delta"]["type"]),
            "content_block_stop" => format!("{name} {}", data["index"]),
            "message_delta" => format!("{name} {}", data["delta"]["stop_reason"]),
            _ => name.clone(),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out
}

fn reference_structure(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(golden("reference").join(file)).unwrap();
    structure(&parse_anthropic_sse(&text))
}

fn translated_structure(openai: &[u8]) -> Vec<String> {
    let (out, failed) = run_stream([openai]);
    assert!(!failed);
    structure(&parse_anthropic_sse(std::str::from_utf8(&out).unwrap()))
}

fn openai_chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
    });
    format!("data: {chunk}\n\n")
}

#[test]
fn a_text_stream_has_the_structure_of_a_real_anthropic_text_stream() {
    let input = std::fs::read(golden("stream").join("text.openai.sse")).unwrap();
    assert_eq!(
        translated_structure(&input),
        reference_structure("basic_response.txt")
    );
}

#[test]
fn a_text_then_tool_stream_has_the_structure_of_a_real_anthropic_tool_stream() {
    let mut input = openai_chunk(json!({ "role": "assistant", "content": "" }), None);
    input += &openai_chunk(json!({ "content": "I" }), None);
    input += &openai_chunk(
        json!({ "content": "'ll check the current weather in Paris for you." }),
        None,
    );
    input += &openai_chunk(
        json!({ "tool_calls": [{ "index": 0, "id": "call_1", "type": "function",
            "function": { "name": "get_weather", "arguments": "" } }] }),
        None,
    );
    for piece in ["{\"locati", "on\": \"P", "ar", "is\"}"] {
        input += &openai_chunk(
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }),
            None,
        );
    }
    input += &openai_chunk(json!({}), Some("tool_calls"));
    input += "data: [DONE]\n\n";
    assert_eq!(
        translated_structure(input.as_bytes()),
        reference_structure("tool_use_response.txt")
    );
}

#[test]
fn a_reasoning_stream_has_the_structure_of_a_real_anthropic_thinking_stream() {
    let input = std::fs::read(golden("stream").join("reasoning.openai.sse")).unwrap();
    let mut expected = reference_structure("stream-a-refusal.sse");
    // The reference ends in a refusal; this one ends its turn.
    for entry in &mut expected {
        if entry.starts_with("message_delta") {
            *entry = "message_delta \"end_turn\"".to_owned();
        }
    }
    assert_eq!(translated_structure(&input), expected);
}

#[test]
fn after_an_error_the_encoder_writes_nothing_more() {
    let input = std::fs::read(golden("stream").join("fail_error_mid_stream.openai.sse")).unwrap();
    let mut encoder = StreamEncoder::new(MODEL, MESSAGE_ID);
    let mut out = BytesMut::new();
    let err = encoder.push(&input, &mut out).unwrap_err();
    assert_eq!(err.message, "the upstream connection broke mid-stream");
    let written = out.len();
    assert!(encoder.push(b"data: [DONE]\n\n", &mut out).is_err());
    assert!(encoder.finish(&mut out).is_err());
    assert_eq!(out.len(), written);
}

#[test]
fn bytes_after_done_are_ignored() {
    let mut input = openai_chunk(json!({ "content": "Hi" }), Some("stop"));
    input += "data: [DONE]\n\n";
    let (whole, failed) = run_stream([input.as_bytes()]);
    assert!(!failed);
    let (with_tail, failed) = run_stream([input.as_bytes(), b"data: {\"oops\"\n\n"]);
    assert!(!failed);
    assert_eq!(whole, with_tail);
}

#[test]
fn a_stream_that_is_not_json_fails_with_an_error_event() {
    let (out, failed) = run_stream([&b"data: <html>\n\n"[..]]);
    assert!(failed);
    let events = parse_anthropic_sse(std::str::from_utf8(&out).unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["error"]["type"], "api_error");
}

#[test]
fn an_empty_finished_stream_is_a_valid_empty_message() {
    let (out, failed) = run_stream([&b"data: [DONE]\n\n"[..]]);
    assert!(!failed);
    let events = parse_anthropic_sse(std::str::from_utf8(&out).unwrap());
    check_sdk_rules(&events, "empty");
    let names: Vec<_> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
}

#[test]
fn parallel_tool_calls_in_one_delta_get_a_block_each() {
    let mut input = openai_chunk(
        json!({ "tool_calls": [
            { "index": 0, "id": "call_a", "function": { "name": "a", "arguments": "{}" } },
            { "index": 1, "id": "call_b", "function": { "name": "b", "arguments": "{\"x\":1}" } },
        ] }),
        None,
    );
    input += &openai_chunk(json!({}), Some("tool_calls"));
    input += "data: [DONE]\n\n";
    let (out, failed) = run_stream([input.as_bytes()]);
    assert!(!failed);
    let events = parse_anthropic_sse(std::str::from_utf8(&out).unwrap());
    check_sdk_rules(&events, "parallel");
    let starts: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "content_block_start")
        .map(|e| (e.1["index"].clone(), e.1["content_block"]["id"].clone()))
        .collect();
    assert_eq!(
        starts,
        [(json!(0), json!("call_a")), (json!(1), json!("call_b"))]
    );
    let last_delta = &events.iter().rfind(|e| e.0 == "message_delta").unwrap().1;
    assert_eq!(last_delta["delta"]["stop_reason"], "tool_use");
}

#[test]
fn interleaved_tool_arguments_go_to_their_own_block() {
    let call = |index: u64, id: Option<&str>, arguments: &str| {
        let mut call = json!({ "index": index, "function": { "arguments": arguments } });
        if let Some(id) = id {
            call["id"] = json!(id);
            call["function"]["name"] = json!(format!("f{index}"));
        }
        openai_chunk(json!({ "tool_calls": [call] }), None)
    };
    let mut input = call(0, Some("call_a"), "{\"a\":");
    input += &call(1, Some("call_b"), "{\"b\":2}");
    input += &call(0, None, "1}");
    input += &openai_chunk(json!({}), Some("tool_calls"));
    input += "data: [DONE]\n\n";
    let (out, failed) = run_stream([input.as_bytes()]);
    assert!(!failed);
    let events = parse_anthropic_sse(std::str::from_utf8(&out).unwrap());
    let deltas: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "content_block_delta")
        .map(|e| (e.1["index"].clone(), e.1["delta"]["partial_json"].clone()))
        .collect();
    assert_eq!(
        deltas,
        [
            (json!(0), json!("{\"a\":")),
            (json!(1), json!("{\"b\":2}")),
            (json!(0), json!("1}")),
        ]
    );
}

#[test]
fn input_tokens_known_at_the_first_chunk_are_in_message_start() {
    let chunk = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{ "index": 0, "delta": { "content": "Hi" }, "finish_reason": null }],
        "usage": { "prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10 },
    });
    let input = format!("data: {chunk}\n\n");
    let mut encoder = StreamEncoder::new(MODEL, MESSAGE_ID);
    let mut out = BytesMut::new();
    encoder.push(input.as_bytes(), &mut out).unwrap();
    let events = parse_anthropic_sse(std::str::from_utf8(&out).unwrap());
    assert_eq!(
        events[0].1["message"]["usage"],
        json!({ "input_tokens": 9, "output_tokens": 0 })
    );
}

// === errors ===

#[test]
fn error_bodies_have_anthropic_shape() {
    assert_eq!(
        json_of(&error_body(429, "slow down")),
        json!({ "type": "error", "error": { "type": "rate_limit_error", "message": "slow down" } })
    );
    assert_eq!(
        json_of(&error_body(529, "Overloaded")),
        json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } })
    );
}

#[test]
fn openai_errors_keep_their_message() {
    let openai = br#"{"error":{"message":"Incorrect API key provided: sk-****","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    assert_eq!(
        json_of(&error_from_openai(401, openai)),
        json!({ "type": "error", "error": { "type": "authentication_error", "message": "Incorrect API key provided: sk-****" } })
    );
    assert_eq!(
        json_of(&error_from_openai(
            404,
            br#"{"error":"model 'x' not found"}"#
        ))["error"]["message"],
        "model 'x' not found"
    );
    assert_eq!(
        json_of(&error_from_openai(502, b""))["error"],
        json!({ "type": "api_error", "message": "upstream answered with status 502" })
    );
}

#[test]
fn error_events_are_one_named_sse_event() {
    let event = error_event("Overloaded", "overloaded_error");
    let text = std::str::from_utf8(&event).unwrap();
    assert!(
        text.starts_with("event: error\ndata: {\"type\":\"error\","),
        "{text}"
    );
    assert!(text.ends_with("\n\n"));
    let events = parse_anthropic_sse(text);
    assert_eq!(
        events,
        [(
            "error".to_owned(),
            json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } })
        )]
    );
}
