//! Unit tests for the `anthropic` dialect: the cases too small for a golden file.

use super::*;
use crate::translate::{EncodeError, Encoded, Reply, Settings, StreamDecode, Target};
use bytes::BytesMut;
use serde_json::{json, Value};

fn encode_with(request: Value, model: &str, settings: &Settings) -> Result<Encoded, EncodeError> {
    encode(request.to_string().as_bytes(), Target { model, settings })
}

fn encoded(request: Value) -> (Value, Vec<String>) {
    let e = encode_with(request, "claude-3-5-haiku-20241022", &Settings::default()).unwrap();
    (serde_json::from_slice(&e.body).unwrap(), e.dropped)
}

fn error(request: Value) -> EncodeError {
    encode_with(request, "claude-3-5-haiku-20241022", &Settings::default()).unwrap_err()
}

fn with_tools(extra: Value) -> Value {
    let mut request = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    request
}

#[test]
fn thinking_models_are_claude_3_7_and_generation_4_on() {
    for model in [
        "claude-3-7-sonnet-20250219",
        "claude-3-7-sonnet-latest",
        "claude-sonnet-4-20250514",
        "claude-opus-4-1-20250805",
        "claude-opus-4-7",
        "claude-haiku-4-5",
        "claude-sonnet-4-5@20250929",
        "claude-fable-5",
        "claude-4-opus",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
    ] {
        assert!(supports_thinking(model), "{model}");
    }
    for model in [
        "claude-3-5-sonnet-20241022",
        "claude-3-5-haiku-latest",
        "claude-3-opus-20240229",
        "claude-3-haiku-20240307",
        "claude-2.1",
        "claude-instant-1.2",
        "gpt-4o",
        "",
    ] {
        assert!(!supports_thinking(model), "{model}");
    }
}

#[test]
fn tool_choice_auto_and_none_map_to_their_types() {
    let (body, _) = encoded(with_tools(json!({"tool_choice": "auto"})));
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    let (body, _) = encoded(with_tools(json!({"tool_choice": "none"})));
    assert_eq!(body["tool_choice"], json!({"type": "none"}));
}

#[test]
fn parallel_tool_calls_false_without_tool_choice_disables_parallel_use_on_auto() {
    let (body, _) = encoded(with_tools(json!({"parallel_tool_calls": false})));
    assert_eq!(
        body["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
}

#[test]
fn parallel_tool_calls_false_leaves_tool_choice_none_alone() {
    let (body, _) = encoded(with_tools(
        json!({"tool_choice": "none", "parallel_tool_calls": false}),
    ));
    assert_eq!(body["tool_choice"], json!({"type": "none"}));
}

#[test]
fn parallel_tool_calls_true_sends_no_tool_choice() {
    let (body, _) = encoded(with_tools(json!({"parallel_tool_calls": true})));
    assert!(body.get("tool_choice").is_none());
    assert_eq!(body["tools"][0]["name"], "f");
}

#[test]
fn tool_choice_without_tools_is_not_sent() {
    let (body, _) = encoded(json!({
        "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": "required",
    }));
    assert!(body.get("tool_choice").is_none());
    assert!(body.get("tools").is_none());
}

#[test]
fn a_bad_tool_choice_names_its_field() {
    let e = error(with_tools(json!({"tool_choice": "sometimes"})));
    assert_eq!(e.param.as_deref(), Some("tool_choice"));
}

#[test]
fn non_function_tools_are_dropped_or_refused_when_strict() {
    let request = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"type": "custom", "custom": {"name": "grammar"}},
            {"type": "function", "function": {"name": "f"}},
        ],
    });
    let (body, dropped) = encoded(request.clone());
    assert_eq!(dropped, vec!["tools[0]"]);
    assert_eq!(body["tools"].as_array().unwrap().len(), 1);
    let strict = Settings {
        strict: true,
        ..Settings::default()
    };
    let e = encode_with(request, "claude-3-5-haiku-20241022", &strict).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("tools[0]"));
}

#[test]
fn strict_refuses_reasoning_effort_for_a_model_without_thinking() {
    let strict = Settings {
        strict: true,
        ..Settings::default()
    };
    let request = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "high",
    });
    let e = encode_with(request, "claude-3-5-haiku-20241022", &strict).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("reasoning_effort"));
}

#[test]
fn minimal_and_low_effort_get_the_smallest_budget_and_none_turns_thinking_off() {
    // The default 4096 must stay above the budget: medium's 4096 raises it to 8192.
    for (effort, budget, max_tokens) in [
        ("minimal", 1024, 4096),
        ("low", 1024, 4096),
        ("medium", 4096, 8192),
    ] {
        let e = encode_with(
            json!({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort}),
            "claude-opus-4-20250514",
            &Settings::default(),
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(body["thinking"]["budget_tokens"], budget, "{effort}");
        assert_eq!(body["max_tokens"], max_tokens, "{effort}");
    }
    let e = encode_with(
        json!({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "none"}),
        "claude-opus-4-20250514",
        &Settings::default(),
    )
    .unwrap();
    let body: Value = serde_json::from_slice(&e.body).unwrap();
    assert!(body.get("thinking").is_none());
    assert!(e.dropped.is_empty());
}

#[test]
fn an_unknown_reasoning_effort_is_refused() {
    let e = error(json!({"messages": [], "reasoning_effort": "extreme"}));
    assert_eq!(e.param.as_deref(), Some("reasoning_effort"));
}

#[test]
fn a_body_that_is_not_a_json_object_is_refused() {
    let e = encode(
        b"[1, 2]",
        Target {
            model: "claude-3-5-haiku-20241022",
            settings: &Settings::default(),
        },
    )
    .unwrap_err();
    assert!(e.message.contains("JSON object"), "{}", e.message);
}

#[test]
fn missing_messages_are_refused_naming_the_field() {
    assert_eq!(
        error(json!({"model": "m"})).param.as_deref(),
        Some("messages")
    );
}

#[test]
fn an_unknown_role_is_refused_naming_the_message() {
    let e = error(
        json!({"messages": [{"role": "user", "content": "a"}, {"role": "function", "name": "f", "content": "x"}]}),
    );
    assert_eq!(e.param.as_deref(), Some("messages[1].role"));
}

#[test]
fn a_tool_message_without_tool_call_id_is_refused() {
    let e = error(json!({"messages": [{"role": "tool", "content": "x"}]}));
    assert_eq!(e.param.as_deref(), Some("messages[0].tool_call_id"));
}

#[test]
fn an_image_url_that_is_neither_http_nor_data_is_refused() {
    let e = error(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}
    ]}]}));
    assert_eq!(
        e.param.as_deref(),
        Some("messages[0].content[0].image_url.url")
    );
}

#[test]
fn an_audio_part_is_refused_naming_its_type() {
    let e = error(json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    ]}]}));
    assert_eq!(e.param.as_deref(), Some("messages[0].content[0].type"));
    assert!(e.message.contains("input_audio"));
}

#[test]
fn a_pdf_file_part_becomes_a_document_block() {
    let (body, _) = encoded(json!({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
    ]}]}));
    assert_eq!(
        body["messages"][0]["content"][0],
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}})
    );
}

#[test]
fn tool_call_arguments_that_are_not_an_object_are_refused() {
    let e = error(json!({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    ]}]}));
    assert_eq!(
        e.param.as_deref(),
        Some("messages[0].tool_calls[0].function.arguments")
    );
}

#[test]
fn empty_tool_call_arguments_are_an_empty_input() {
    let (body, _) = encoded(json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
        ]}
    ]}));
    assert_eq!(
        body["messages"][1]["content"],
        json!([{"type": "tool_use", "id": "c", "name": "f", "input": {}}])
    );
}

#[test]
fn an_empty_assistant_message_is_left_out_and_its_neighbours_merge() {
    let (body, _) = encoded(json!({"messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "b"},
    ]}));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}
        ]}])
    );
}

#[test]
fn stream_options_is_recorded_not_sent() {
    let e = encode_with(
        json!({"messages": [], "stream": true, "stream_options": {"include_usage": true}}),
        "claude-3-5-haiku-20241022",
        &Settings::default(),
    )
    .unwrap();
    let body: Value = serde_json::from_slice(&e.body).unwrap();
    assert!(e.stream && e.include_usage);
    assert!(body.get("stream_options").is_none());
    assert_eq!(body["stream"], true);
}

fn reply(include_usage: bool) -> Reply {
    Reply {
        id: "chatcmpl-1".into(),
        model: "claude".into(),
        created: 1,
        include_usage,
    }
}

const SHORT_STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

fn payloads(out: &BytesMut) -> Vec<String> {
    crate::sse::data_payloads(out)
}

#[test]
fn without_include_usage_the_stream_ends_with_finish_then_done() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    d.push(SHORT_STREAM.as_bytes(), &mut out).unwrap();
    d.finish(&mut out).unwrap();
    let p = payloads(&out);
    assert_eq!(p.len(), 4);
    let last: Value = serde_json::from_str(&p[2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(!p.iter().any(|x| x.contains("\"usage\"")));
    assert_eq!(p[3], "[DONE]");
}

#[test]
fn bytes_after_message_stop_are_ignored() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    d.push(SHORT_STREAM.as_bytes(), &mut out).unwrap();
    let before = out.len();
    d.push(b"data: not json\n\n", &mut out).unwrap();
    d.finish(&mut out).unwrap();
    assert_eq!(out.len(), before);
}

#[test]
fn an_empty_stream_fails_at_finish_and_writes_nothing() {
    let mut d = StreamDecoder::new(reply(true));
    let mut out = BytesMut::new();
    let e = d.finish(&mut out).unwrap_err();
    assert!(e.message.contains("message_stop"), "{}", e.message);
    assert!(out.is_empty());
}

#[test]
fn an_error_event_ends_the_stream_with_its_message_and_stays_failed() {
    let mut d = StreamDecoder::new(reply(true));
    let mut out = BytesMut::new();
    let event = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}\n\n";
    let e = d.push(event.as_bytes(), &mut out).unwrap_err();
    assert!(e.message.contains("Internal server error"), "{}", e.message);
    assert!(e.message.contains("api_error"), "{}", e.message);
    assert_eq!(d.push(SHORT_STREAM.as_bytes(), &mut out).unwrap_err(), e);
    assert_eq!(d.finish(&mut out).unwrap_err(), e);
    assert!(out.is_empty());
}

#[test]
fn an_error_event_without_a_final_blank_line_keeps_its_message() {
    let mut d = StreamDecoder::new(reply(true));
    let mut out = BytesMut::new();
    let event = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
    d.push(event.as_bytes(), &mut out).unwrap();
    let e = d.finish(&mut out).unwrap_err();
    assert!(e.message.contains("Overloaded"), "{}", e.message);
}

#[test]
fn an_event_that_is_not_json_is_an_error() {
    let mut d = StreamDecoder::new(reply(true));
    let mut out = BytesMut::new();
    assert!(d.push(b"data: <html>\n\n", &mut out).is_err());
}

#[test]
fn an_event_that_never_ends_is_an_error_not_unbounded_memory() {
    let mut d = StreamDecoder::new(reply(true));
    let mut out = BytesMut::new();
    let big = vec![b'a'; crate::sse::MAX_EVENT_BYTES + 1];
    assert!(d.push(b"data: ", &mut out).is_ok());
    assert!(d.push(&big, &mut out).is_err());
}

#[test]
fn usage_reports_input_tokens_from_message_start() {
    let mut d = StreamDecoder::new(reply(true));
    let mut out = BytesMut::new();
    d.push(SHORT_STREAM.as_bytes(), &mut out).unwrap();
    let p = payloads(&out);
    let usage: Value = serde_json::from_str(&p[p.len() - 2]).unwrap();
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    );
}

#[test]
fn decode_refuses_what_is_not_a_message() {
    assert!(decode(b"not json", &reply(false)).is_err());
    assert!(decode(b"{\"type\":\"message\"}", &reply(false)).is_err());
    let e = decode(
        br#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
        &reply(false),
    )
    .unwrap_err();
    assert!(e.message.contains("boom"));
}

#[test]
fn stop_reasons_map_to_openai_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        let body = json!({"content": [{"type": "text", "text": "x"}], "stop_reason": stop});
        let out = decode(body.to_string().as_bytes(), &reply(false)).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], finish, "{stop}");
    }
}

#[test]
fn the_model_list_must_be_json_with_data() {
    assert!(parse_models(b"<html>").is_err());
    assert!(parse_models(b"{\"models\":[]}").is_err());
    assert_eq!(
        parse_models(b"{\"data\":[]}").unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn an_error_body_without_a_message_gets_one_from_the_status() {
    let mapped = map_error(
        429,
        br#"{"type":"error","error":{"type":"rate_limit_error"}}"#,
    );
    let body: Value = serde_json::from_slice(&mapped.body).unwrap();
    assert_eq!(mapped.status, 429);
    assert!(mapped.retryable);
    assert_eq!(
        body["error"]["message"],
        "anthropic upstream answered HTTP 429 Too Many Requests"
    );
}

#[test]
fn thinking_is_left_out_when_a_tool_is_forced() {
    let mut request = with_tools(json!({"tool_choice": "required", "reasoning_effort": "low"}));
    request["temperature"] = json!(0.3);
    let e = encode_with(request, "claude-sonnet-4-20250514", &Settings::default()).unwrap();
    let body: Value = serde_json::from_slice(&e.body).unwrap();
    assert!(body.get("thinking").is_none());
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(e.dropped, vec!["reasoning_effort"]);
}

#[test]
fn thinking_is_left_out_when_the_last_assistant_turn_called_tools() {
    let request = json!({
        "messages": [
            {"role": "user", "content": "time?"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "12:00"},
        ],
        "reasoning_effort": "high",
    });
    let strict = Settings {
        strict: true,
        ..Settings::default()
    };
    let e = encode_with(request, "claude-opus-4-1", &strict).unwrap();
    let body: Value = serde_json::from_slice(&e.body).unwrap();
    assert!(body.get("thinking").is_none());
    assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(e.dropped, vec!["reasoning_effort"]);
}
