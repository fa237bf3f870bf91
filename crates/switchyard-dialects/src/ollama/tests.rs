//! Unit tests of the `ollama` dialect's edges; the golden fixtures run from
//! `tests/ollama.rs`.

use super::*;
use crate::translate::{Reply, Settings, StreamDecode, Target};
use bytes::BytesMut;
use serde_json::{json, Value};

fn settings() -> Settings {
    Settings::default()
}

fn encode_json(
    request: Value,
    settings: &Settings,
) -> Result<(Value, Vec<String>), crate::translate::EncodeError> {
    let body = request.to_string();
    let enc = encode(
        body.as_bytes(),
        Target {
            model: "llama3.2",
            settings,
        },
    )?;
    assert_eq!(enc.path, CHAT_PATH);
    Ok((serde_json::from_slice(&enc.body).unwrap(), enc.dropped))
}

fn reply(include_usage: bool) -> Reply {
    Reply {
        id: "chatcmpl-xyz".into(),
        model: "llama3.2".into(),
        created: 1,
        include_usage,
    }
}

#[test]
fn stream_is_always_written_even_when_the_client_left_it_out() {
    let (body, _) = encode_json(json!({"model": "m", "messages": []}), &settings()).unwrap();
    assert_eq!(body["stream"], false);
    assert_eq!(body["model"], "llama3.2");
}

#[test]
fn keep_alive_seconds_go_as_a_number_and_durations_as_a_string() {
    for (given, sent) in [
        ("-1", json!(-1)),
        ("0", json!(0)),
        ("10m", json!("10m")),
        ("1.5", json!(1.5)),
    ] {
        let s = Settings {
            keep_alive: Some(given.into()),
            ..Settings::default()
        };
        let (body, _) = encode_json(json!({"messages": []}), &s).unwrap();
        assert_eq!(body["keep_alive"], sent, "keep_alive {given}");
    }
}

#[test]
fn default_max_tokens_applies_only_when_the_client_gave_none() {
    let s = Settings {
        default_max_tokens: Some(512),
        ..Settings::default()
    };
    let (body, _) = encode_json(json!({"messages": []}), &s).unwrap();
    assert_eq!(body["options"]["num_predict"], 512);
    let (body, _) = encode_json(json!({"messages": [], "max_tokens": 7}), &s).unwrap();
    assert_eq!(body["options"]["num_predict"], 7);
}

#[test]
fn max_completion_tokens_wins_over_max_tokens() {
    let (body, _) = encode_json(
        json!({"messages": [], "max_tokens": 7, "max_completion_tokens": 9}),
        &settings(),
    )
    .unwrap();
    assert_eq!(body["options"]["num_predict"], 9);
}

#[test]
fn strict_refuses_an_unsupported_field_with_its_name() {
    let s = Settings {
        strict: true,
        ..Settings::default()
    };
    let err = encode_json(json!({"messages": [], "logit_bias": {"1": 2}}), &s).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("logit_bias"));
    assert!(err.message.contains("ollama"), "{}", err.message);
}

#[test]
fn strict_refuses_an_image_link() {
    let s = Settings {
        strict: true,
        ..Settings::default()
    };
    let request = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    ]}]});
    let err = encode_json(request, &s).unwrap_err();
    assert_eq!(
        err.param.as_deref(),
        Some("messages[0].content[0].image_url")
    );
}

#[test]
fn tool_choice_none_withholds_the_tools() {
    let (body, dropped) = encode_json(
        json!({"messages": [], "tool_choice": "none",
               "tools": [{"type": "function", "function": {"name": "f"}}]}),
        &settings(),
    )
    .unwrap();
    assert!(body.get("tools").is_none());
    assert!(dropped.is_empty());
}

#[test]
fn unknown_role_and_non_json_body_are_client_errors() {
    let err = encode_json(
        json!({"messages": [{"role": "robot", "content": "x"}]}),
        &settings(),
    )
    .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages[0].role"));
    let err = encode(
        b"{not json",
        Target {
            model: "m",
            settings: &settings(),
        },
    )
    .unwrap_err();
    assert_eq!(err.param, None);
    let err = encode_json(json!({"model": "m"}), &settings()).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages"));
}

#[test]
fn tool_call_arguments_that_are_not_an_object_are_refused() {
    let request = json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    ]}]});
    let err = encode_json(request, &settings()).unwrap_err();
    assert_eq!(
        err.param.as_deref(),
        Some("messages[0].tool_calls[0].function.arguments")
    );
}

#[test]
fn a_not_found_model_maps_to_404_model_not_found() {
    let m = map_error(404, br#"{"error":"model 'llama9' not found"}"#);
    assert_eq!(m.status, 404);
    assert!(!m.retryable);
    let body: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(body["error"]["message"], "model 'llama9' not found");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "model_not_found");
}

#[test]
fn server_errors_and_rate_limits_are_retryable_and_bad_requests_not() {
    let m = map_error(500, br#"{"error":"llama runner process has terminated"}"#);
    assert!(m.retryable);
    assert_eq!(m.status, 500);
    let body: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(body["error"]["type"], "api_error");
    assert!(map_error(429, b"{}").retryable);
    assert!(map_error(503, b"").retryable);
    let m = map_error(400, br#"{"error":"llama3 does not support tools"}"#);
    assert!(!m.retryable);
    let body: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(body["error"]["message"], "llama3 does not support tools");
}

#[test]
fn an_error_body_that_is_not_json_gets_a_generic_message() {
    let m = map_error(502, b"<html>bad gateway</html>");
    let body: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(body["error"]["message"], "Ollama answered with status 502");
}

#[test]
fn parse_models_reads_names_and_falls_back_to_model() {
    let names = parse_models(
        br#"{"models":[{"name":"a:latest","model":"a:latest"},{"model":"b:7b"},{"size":1}]}"#,
    )
    .unwrap();
    assert_eq!(names, vec!["a:latest", "b:7b"]);
    assert_eq!(
        parse_models(br#"{"models":[]}"#).unwrap(),
        Vec::<String>::new()
    );
    assert!(parse_models(b"[]").is_err());
    assert!(parse_models(br#"{"models":"x"}"#).is_err());
    assert!(parse_models(b"nope").is_err());
}

#[test]
fn decode_refuses_an_answer_without_done() {
    let err = decode(
        br#"{"model":"m","message":{"role":"assistant","content":"hi"},"done":false}"#,
        &reply(false),
    )
    .unwrap_err();
    assert!(err.message.contains("done"), "{}", err.message);
}

#[test]
fn decode_turns_an_error_object_into_an_error() {
    let err = decode(br#"{"error":"out of memory"}"#, &reply(false)).unwrap_err();
    assert!(err.message.contains("out of memory"));
}

#[test]
fn decode_maps_length_and_load() {
    let v: Value = serde_json::from_slice(
        &decode(
            br#"{"message":{"role":"assistant","content":"a"},"done":true,"done_reason":"length","prompt_eval_count":3,"eval_count":4}"#,
            &reply(false),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["total_tokens"], 7);
    let v: Value = serde_json::from_slice(
        &decode(
            br#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"load"}"#,
            &reply(false),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 0);
}

#[test]
fn a_final_line_without_its_newline_still_ends_the_stream() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    d.push(
        br#"{"message":{"role":"assistant","content":"hi"},"done":false}"#,
        &mut out,
    )
    .unwrap();
    d.push(
        b"\n{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true}",
        &mut out,
    )
    .unwrap();
    d.finish(&mut out).unwrap();
    let payloads = crate::sse::data_payloads(&out);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn a_cut_off_last_line_fails_and_writes_nothing() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    d.push(
        br#"{"message":{"role":"assistant","content":"hi"},"do"#,
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
    assert!(d.finish(&mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn an_error_object_on_the_unterminated_last_line_is_reported_as_such() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    d.push(br#"{"error":"model unloaded"}"#, &mut out).unwrap();
    let err = d.finish(&mut out).unwrap_err();
    assert!(err.message.contains("model unloaded"), "{}", err.message);
}

#[test]
fn a_line_that_is_not_json_ends_the_stream_with_an_error() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    assert!(d.push(b"<html>\n", &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn lines_after_done_are_ignored() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    d.push(
        b"{\"done\":true}\n{\"message\":{\"content\":\"late\"},\"done\":false}\n",
        &mut out,
    )
    .unwrap();
    d.finish(&mut out).unwrap();
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(!text.contains("late"));
}

#[test]
fn an_endless_line_is_refused_once_it_passes_the_limit() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    let piece = vec![b'x'; MAX_LINE_BYTES / 2];
    d.push(&piece, &mut out).unwrap();
    d.push(&piece, &mut out).unwrap();
    assert!(d.push(b"x", &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn a_long_stream_of_short_lines_is_not_a_long_line() {
    let mut d = StreamDecoder::new(reply(false));
    let mut out = BytesMut::new();
    let line = b"{\"message\":{\"content\":\"x\"},\"done\":false}\n";
    for _ in 0..(MAX_LINE_BYTES / line.len() + 10) {
        d.push(line, &mut out).unwrap();
    }
    d.push(b"{\"done\":true}\n", &mut out).unwrap();
    d.finish(&mut out).unwrap();
}

#[test]
fn absurd_token_counts_do_not_overflow() {
    let body = format!(
        r#"{{"message":{{"content":"a"}},"done":true,"prompt_eval_count":{m},"eval_count":{m}}}"#,
        m = u64::MAX
    );
    let v: Value =
        serde_json::from_slice(&decode(body.as_bytes(), &reply(false)).unwrap()).unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], u64::MAX / 2);
}
