//! Tests of the response cache's pure half (`switchyard_dialects::cache`): request
//! keys, and the round trips between a streamed answer and a stored `chat.completion`,
//! over the OpenAI streams and answers of `tests/golden/` and a few written here. The
//! shapes are checked by hand against the required members of OpenAI's
//! `CreateChatCompletionResponse` and `CreateChatCompletionStreamResponse`.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a missing fixture or a broken rule must fail loudly"
)]

use serde_json::{json, Value};
use std::path::Path;
use switchyard_dialects::cache::{deterministic, normalize, replay_stream, StreamAssembler};

fn golden(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(path),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Whole OpenAI chat streams, each ending with `data: [DONE]`.
const WHOLE_STREAMS: &[&str] = &[
    "responses/stream/text.openai.sse",
    "responses/stream/text_then_two_tools.openai.sse",
    "responses/stream/reasoning.openai.sse",
    "responses/stream/refusal.openai.sse",
    "responses/stream/usage_after_finish.openai.sse",
    "messages/stream/text.openai.sse",
    "messages/stream/text_then_two_tools.openai.sse",
    "messages/stream/reasoning.openai.sse",
    "messages/stream/usage_after_finish.openai.sse",
    "ollama/stream/text.sse",
    "ollama/stream/two_tools.sse",
    "ollama/stream/thinking.sse",
    "ollama/stream/length.sse",
];

/// Stored OpenAI answers.
const ANSWERS: &[&str] = &[
    "responses/answer/text.openai.json",
    "responses/answer/text_and_tool.openai.json",
    "responses/answer/tools.openai.json",
    "responses/answer/refusal.openai.json",
    "responses/answer/reasoning.openai.json",
    "responses/answer/length.openai.json",
    "messages/answer/text.openai.json",
    "messages/answer/text_and_tool.openai.json",
    "messages/answer/tools.openai.json",
    "messages/answer/refusal.openai.json",
    "messages/answer/reasoning.openai.json",
    "messages/answer/length.openai.json",
];

fn assemble(parts: &[&[u8]]) -> Option<Vec<u8>> {
    let mut a = StreamAssembler::new();
    for part in parts {
        a.feed(part);
    }
    a.finish()
}

fn assemble_events(events: &[bytes::Bytes]) -> Option<Vec<u8>> {
    let parts: Vec<&[u8]> = events.iter().map(|e| &e[..]).collect();
    assemble(&parts)
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// The required members of `CreateChatCompletionResponse` (with `nullable` read as
/// OpenAPI 3.0 means it), and those this module promises.
fn assert_completion_shape(v: &Value) {
    assert!(v["id"].is_string(), "{v}");
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert!(v["created"].is_u64(), "{v}");
    assert!(v["model"].is_string(), "{v}");
    let choices = v["choices"].as_array().unwrap();
    assert!(!choices.is_empty(), "{v}");
    for c in choices {
        assert!(c["index"].is_u64(), "{c}");
        assert!(c["logprobs"].is_null() || c["logprobs"].is_object(), "{c}");
        let reason = c["finish_reason"].as_str().unwrap();
        assert!(
            [
                "stop",
                "length",
                "tool_calls",
                "content_filter",
                "function_call"
            ]
            .contains(&reason),
            "{c}"
        );
        let m = &c["message"];
        assert_eq!(m["role"], "assistant", "{c}");
        assert!(m["content"].is_string() || m["content"].is_null(), "{c}");
        assert!(m["refusal"].is_string() || m["refusal"].is_null(), "{c}");
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            assert!(call["id"].is_string(), "{call}");
            assert_eq!(call["type"], "function", "{call}");
            assert!(call["function"]["name"].is_string(), "{call}");
            assert!(call["function"]["arguments"].is_string(), "{call}");
        }
    }
    if let Some(u) = v.get("usage") {
        for key in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            assert!(u[key].is_u64(), "{u}");
        }
    }
}

/// Each event is one `data:` line; the chunks meet `CreateChatCompletionStreamResponse`
/// (nullables allowed, `finish_reason` null included); `[DONE]` last; `usage: null` on
/// every chunk but the usage chunk when usage was asked for, absent otherwise.
fn assert_chunk_shapes(events: &[bytes::Bytes], include_usage: bool) {
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(&done[..], b"data: [DONE]\n\n");
    for (i, event) in chunks.iter().enumerate() {
        let text = std::str::from_utf8(event).unwrap();
        let payload = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        assert!(!payload.contains('\n'), "{text}");
        let v: Value = serde_json::from_str(payload).unwrap();
        assert!(v["id"].is_string() && v["model"].is_string() && v["created"].is_u64());
        assert_eq!(v["object"], "chat.completion.chunk");
        let choices = v["choices"].as_array().unwrap();
        for c in choices {
            assert!(c["index"].is_u64() && c["delta"].is_object(), "{c}");
            assert!(c["finish_reason"].is_null() || c["finish_reason"].is_string());
            assert!(c.get("logprobs").is_some(), "{c}");
            for call in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                assert!(call["index"].is_u64(), "{call}");
            }
        }
        let last = i + 1 == chunks.len();
        if !include_usage {
            assert!(v.get("usage").is_none(), "{v}");
        } else if choices.is_empty() {
            assert!(last && v["usage"].is_object(), "{v}");
        } else {
            assert!(v["usage"].is_null(), "{v}");
        }
    }
}

#[test]
fn key_order_and_whitespace_do_not_change_the_key() {
    let a = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#;
    let b = br#"{ "temperature" : 0.2,
        "messages": [ {"content": "hi", "role": "user"} ],
        "model": "m" }"#;
    assert_eq!(normalize(a).unwrap(), normalize(b).unwrap());
    assert_eq!(
        normalize(b).unwrap(),
        br#"{"messages":[{"content":"hi","role":"user"}],"model":"m","temperature":0.2}"#
    );
}

#[test]
fn one_differing_parameter_changes_the_key() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 1});
    let key = normalize(base.to_string().as_bytes()).unwrap();
    for (field, value) in [
        ("model", json!("n")),
        ("seed", json!(2)),
        ("max_tokens", json!(10)),
        ("tools", json!([])),
        ("messages", json!([{"role": "user", "content": "hi!"}])),
    ] {
        let mut other = base.clone();
        other[field] = value;
        assert_ne!(
            normalize(other.to_string().as_bytes()).unwrap(),
            key,
            "{field}"
        );
    }
}

#[test]
fn delivery_and_bookkeeping_members_are_left_out_of_the_key() {
    let plain = br#"{"model":"m","messages":[]}"#;
    let streamed = br#"{"stream":true,"stream_options":{"include_usage":true},"model":"m","messages":[],"user":"u1","metadata":{"a":"b"},"store":true,"service_tier":"auto"}"#;
    let not_streamed = br#"{"stream":false,"model":"m","messages":[]}"#;
    assert_eq!(normalize(plain).unwrap(), normalize(streamed).unwrap());
    assert_eq!(normalize(plain).unwrap(), normalize(not_streamed).unwrap());
    // Only at the top level: a nested `user` is content.
    let nested = br#"{"model":"m","messages":[],"response_format":{"user":1}}"#;
    assert_ne!(normalize(plain).unwrap(), normalize(nested).unwrap());
}

#[test]
fn integer_valued_floats_key_like_integers() {
    let keys: Vec<Vec<u8>> = [
        r#"{"temperature":0}"#,
        r#"{"temperature":0.0}"#,
        r#"{"temperature":-0.0}"#,
        r#"{"temperature":0e5}"#,
    ]
    .iter()
    .map(|b| normalize(b.as_bytes()).unwrap())
    .collect();
    assert!(
        keys.iter().all(|k| k == br#"{"temperature":0}"#),
        "{keys:?}"
    );
    assert_eq!(
        normalize(br#"{"t":1e2,"u":0.5}"#).unwrap(),
        br#"{"t":100,"u":0.5}"#
    );
    assert_eq!(
        normalize(b"[1.0, {\"b\":1,\"a\":2}]").unwrap(),
        br#"[1,{"a":2,"b":1}]"#
    );
}

#[test]
fn strings_are_keyed_with_serde_json_escapes() {
    let body = "{\"s\":\"a\\u0041\\\"\\\\\\n\\u0001é\\/\"}";
    let want: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        normalize(body.as_bytes()).unwrap(),
        want.to_string().into_bytes()
    );
}

#[test]
fn a_body_that_is_not_json_has_no_key() {
    assert!(normalize(b"{\"model\":").is_err());
}

#[test]
fn zero_temperature_or_a_seed_is_deterministic() {
    assert!(deterministic(br#"{"model":"m","temperature":0}"#));
    assert!(deterministic(br#"{"model":"m","temperature":0.0}"#));
    assert!(deterministic(
        br#"{"model":"m","temperature":0.7,"seed":42}"#
    ));
    assert!(!deterministic(br#"{"model":"m","temperature":0.7}"#));
    assert!(!deterministic(br#"{"model":"m"}"#));
    assert!(!deterministic(
        br#"{"model":"m","seed":null,"temperature":null}"#
    ));
    assert!(!deterministic(b"not json"));
    assert!(!deterministic(b"[0]"));
}

#[test]
fn golden_streams_assemble_into_valid_completions() {
    for path in WHOLE_STREAMS {
        let json = assemble(&[&golden(path)]).unwrap_or_else(|| panic!("{path}"));
        assert_completion_shape(&parse(&json));
    }
}

#[test]
fn assembled_text_then_two_tools_has_the_merged_calls_and_usage() {
    let v =
        parse(&assemble(&[&golden("responses/stream/text_then_two_tools.openai.sse")]).unwrap());
    assert_eq!(v["id"], "chatcmpl-tools2");
    assert_eq!(v["system_fingerprint"], "fp_e5e4913e83");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "I'll check both cities.");
    assert_eq!(m["refusal"], Value::Null);
    assert_eq!(
        m["tool_calls"],
        json!([
            {"id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
            {"id": "call_ABC2", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Rome\"}"}}
        ])
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["total_tokens"], 442);
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );
}

#[test]
fn reasoning_and_refusal_streams_keep_their_text() {
    let v = parse(&assemble(&[&golden("responses/stream/reasoning.openai.sse")]).unwrap());
    let m = &v["choices"][0]["message"];
    assert_eq!(m["reasoning_content"], "Simple educational question.");
    assert_eq!(
        m["content"],
        "A solar eclipse happens when the Moon passes in front of the Sun."
    );
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 16);
    let v = parse(&assemble(&[&golden("responses/stream/refusal.openai.sse")]).unwrap());
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null);
    assert_eq!(m["refusal"], "I'm sorry, I can't help with that.");
}

#[test]
fn stream_to_json_to_stream_to_json_is_stable() {
    for path in WHOLE_STREAMS {
        let first = assemble(&[&golden(path)]).unwrap();
        let events = replay_stream(&first, true).unwrap_or_else(|| panic!("{path}"));
        assert_chunk_shapes(&events, true);
        let second = assemble_events(&events).unwrap();
        assert_eq!(
            String::from_utf8(second).unwrap(),
            String::from_utf8(first.clone()).unwrap(),
            "{path}"
        );
        let events = replay_stream(&first, false).unwrap();
        assert_chunk_shapes(&events, false);
        let mut without_usage = parse(&first);
        without_usage.as_object_mut().unwrap().remove("usage");
        assert_eq!(
            parse(&assemble_events(&events).unwrap()),
            without_usage,
            "{path}"
        );
    }
}

#[test]
fn stored_answers_replay_to_the_same_message_finish_reason_and_usage() {
    for path in ANSWERS {
        let stored = parse(&golden(path));
        let events = replay_stream(&golden(path), true).unwrap_or_else(|| panic!("{path}"));
        assert_chunk_shapes(&events, true);
        let back = parse(&assemble_events(&events).unwrap());
        assert_completion_shape(&back);
        for (a, b) in stored["choices"]
            .as_array()
            .unwrap()
            .iter()
            .zip(back["choices"].as_array().unwrap())
        {
            let (sm, bm) = (&a["message"], &b["message"]);
            for key in ["content", "reasoning_content", "tool_calls"] {
                assert_eq!(sm.get(key), bm.get(key), "{path}: {key}");
            }
            assert_eq!(sm["refusal"], bm["refusal"], "{path}");
            assert_eq!(a["finish_reason"], b["finish_reason"], "{path}");
        }
        assert_eq!(stored["usage"], back["usage"], "{path}");
        assert_eq!(stored["id"], back["id"], "{path}");
        assert_eq!(stored["created"], back["created"], "{path}");
    }
}

#[test]
fn every_split_point_assembles_the_same() {
    for path in WHOLE_STREAMS {
        let stream = golden(path);
        let whole = assemble(&[&stream]).unwrap();
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(
                assemble(&[a, b]).as_ref(),
                Some(&whole),
                "{path} cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(
            assemble(&bytes).as_ref(),
            Some(&whole),
            "{path} byte by byte"
        );
    }
}

#[test]
fn crlf_line_ends_and_comments_assemble_the_same() {
    let stream = golden("messages/stream/usage_after_finish.openai.sse");
    let crlf = String::from_utf8(stream.clone())
        .unwrap()
        .replace('\n', "\r\n");
    let with_ping = [b": ping\n\n".as_slice(), &stream].concat();
    let whole = assemble(&[&stream]).unwrap();
    assert_eq!(assemble(&[crlf.as_bytes()]).unwrap(), whole);
    assert_eq!(assemble(&[&with_ping]).unwrap(), whole);
}

#[test]
fn a_stream_without_done_is_not_stored() {
    assert_eq!(
        assemble(&[&golden("responses/stream/fail_truncated.openai.sse")]),
        None
    );
    assert_eq!(
        assemble(&[&golden("responses/stream/finish_without_done.openai.sse")]),
        None
    );
    // Every prefix of a whole stream that stops before `[DONE]` is complete.
    let stream = golden("responses/stream/text_then_two_tools.openai.sse");
    let done_at = stream
        .windows(12)
        .position(|w| w == b"data: [DONE]")
        .unwrap();
    for cut in 0..done_at + 12 {
        assert_eq!(assemble(&[&stream[..cut]]), None, "cut at {cut}");
    }
}

#[test]
fn an_error_event_or_an_unreadable_event_is_not_stored() {
    assert_eq!(
        assemble(&[&golden("messages/stream/fail_error_mid_stream.openai.sse")]),
        None
    );
    let stream = golden("messages/stream/text.openai.sse");
    let error =
        br#"data: {"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}

"#;
    assert_eq!(assemble(&[error.as_slice(), &stream]), None);
    assert_eq!(
        assemble(&[b"data: {not json\n\n".as_slice(), &stream]),
        None
    );
    assert_eq!(assemble(&[b"data: [1,2]\n\n".as_slice(), &stream]), None);
    // Something after `[DONE]`.
    assert_eq!(assemble(&[&stream, b"data: {}\n\n"]), None);
    // No chunk at all.
    assert_eq!(assemble(&[b"data: [DONE]\n\n"]), None);
}

fn chunk(choices: Value, usage: Option<Value>) -> String {
    let mut v = json!({
        "id": "chatcmpl-par", "object": "chat.completion.chunk", "created": 1_726_789_000,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_44709d6fcb",
        "choices": choices,
    });
    if let Some(usage) = usage {
        v["usage"] = usage;
    }
    format!("data: {v}\n\n")
}

fn call_delta(index: u64, call: Value) -> Value {
    json!([{"index": 0, "delta": {"tool_calls": [call.as_object().map(|o| {
        let mut o = o.clone();
        o.insert("index".into(), index.into());
        o
    })]}, "logprobs": null, "finish_reason": null}])
}

#[test]
fn interleaved_parallel_tool_calls_merge_by_index() {
    let events = [
        chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": null}, "logprobs": null, "finish_reason": null}]), None),
        chunk(call_delta(0, json!({"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}})), None),
        chunk(call_delta(1, json!({"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}})), None),
        chunk(call_delta(0, json!({"function": {"arguments": "{\"city\":"}})), None),
        chunk(call_delta(1, json!({"function": {"arguments": "{\"tz\":\"Europe/"}})), None),
        chunk(call_delta(0, json!({"function": {"arguments": "\"Paris\"}"}})), None),
        chunk(call_delta(1, json!({"function": {"arguments": "Paris\"}"}})), None),
        chunk(json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "tool_calls"}]), None),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let v = parse(&assemble(&[events.as_bytes()]).unwrap());
    assert_completion_shape(&v);
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null);
    assert_eq!(
        m["tool_calls"],
        json!([
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\":\"Europe/Paris\"}"}}
        ])
    );
    // And back: one chunk per call, whole.
    let replayed = replay_stream(&serde_json::to_vec(&v).unwrap(), false).unwrap();
    assert_eq!(replayed.len(), 5);
    assert_eq!(parse(&assemble_events(&replayed).unwrap()), v);
}

#[test]
fn several_choices_are_kept_apart_and_ordered_by_index() {
    let delta = |i: u64, d: Value, f: Value| json!([{"index": i, "delta": d, "logprobs": null, "finish_reason": f}]);
    let events = [
        chunk(
            delta(1, json!({"role": "assistant", "content": "B"}), Value::Null),
            None,
        ),
        chunk(
            delta(0, json!({"role": "assistant", "content": "A"}), Value::Null),
            None,
        ),
        chunk(delta(1, json!({"content": "b"}), json!("length")), None),
        chunk(delta(0, json!({"content": "a"}), json!("stop")), None),
        chunk(
            json!([]),
            Some(json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})),
        ),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let v = parse(&assemble(&[events.as_bytes()]).unwrap());
    assert_eq!(v["choices"][0]["message"]["content"], "Aa");
    assert_eq!(v["choices"][1]["message"]["content"], "Bb");
    assert_eq!(v["choices"][1]["finish_reason"], "length");
    let back = assemble_events(&replay_stream(&serde_json::to_vec(&v).unwrap(), true).unwrap());
    assert_eq!(parse(&back.unwrap()), v);
}

#[test]
fn logprobs_pieces_are_concatenated_and_replayed() {
    let token = |t: &str| json!({"token": t, "logprob": -0.1, "bytes": null, "top_logprobs": []});
    let delta = |text: &str, f: Value| json!([{"index": 0, "delta": {"content": text}, "logprobs": {"content": [token(text)], "refusal": null}, "finish_reason": f}]);
    let events = [
        chunk(delta("Hel", Value::Null), None),
        chunk(delta("lo", json!("stop")), None),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let v = parse(&assemble(&[events.as_bytes()]).unwrap());
    assert_eq!(
        v["choices"][0]["logprobs"],
        json!({"content": [token("Hel"), token("lo")], "refusal": null})
    );
    let back = assemble_events(&replay_stream(&serde_json::to_vec(&v).unwrap(), false).unwrap());
    assert_eq!(parse(&back.unwrap()), v);
}

#[test]
fn a_usage_read_elsewhere_fills_in_for_a_stripped_usage_chunk() {
    let stream = golden("messages/stream/text.openai.sse");
    let mut a = StreamAssembler::new();
    a.feed(&stream);
    let v = parse(&a.finish_with_usage(Some((10, 3))).unwrap());
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13})
    );
    // The stream's own usage wins.
    let stream = golden("messages/stream/usage_after_finish.openai.sse");
    let mut a = StreamAssembler::new();
    a.feed(&stream);
    let v = parse(&a.finish_with_usage(Some((10, 3))).unwrap());
    assert_eq!(v["usage"]["total_tokens"], 16);
}

#[test]
fn only_a_chat_completion_replays() {
    assert_eq!(replay_stream(b"not json", false), None);
    assert_eq!(
        replay_stream(br#"{"object":"list","data":[]}"#, false),
        None
    );
    assert_eq!(
        replay_stream(
            br#"{"object":"chat.completion","id":"x","created":1,"model":"m","choices":[]}"#,
            false
        ),
        None
    );
    assert_eq!(replay_stream(br#"{"object":"embedding"}"#, true), None);
}

#[test]
fn a_pretty_printed_answer_replays_as_single_line_events() {
    // `messages/answer/reasoning.openai.json` spreads its usage over several lines.
    let events = replay_stream(&golden("messages/answer/reasoning.openai.json"), true).unwrap();
    assert_chunk_shapes(&events, true);
}
