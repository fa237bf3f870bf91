use super::*;
use crate::{peek, rewrite_model};
use serde_json::{json, Value};

/// Request bodies in many spellings: whitespace, key order, `stream_options` absent,
/// `null`, `{}`, with `include_usage` false, with other (nested) options, escaped
/// strings that mention `stream_options`.
const BODIES: &[&str] = &[
    r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    "{ \n\t\"messages\" : [ ] ,\r\n \"model\" : \"m\" , \"stream\" : true }",
    r#"  {"stream":true,"model":"m"}  "#,
    r#"{"model":"m","stream":true,"stream_options":null}"#,
    r#"{"model":"m","stream":true,"stream_options" :  null ,"n":1}"#,
    r#"{"stream_options":{},"model":"m","stream":true}"#,
    r#"{"model":"m","stream_options":{"include_usage":false},"stream":true}"#,
    r#"{"model":"m","stream":true,"stream_options":{ "include_usage" : false , "x":{"y":[1,{"z":null}]}}}"#,
    r#"{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true}}"#,
    r#"{"messages":[{"role":"user","content":"\"stream_options\":{\"include_usage\":true}"}],"model":"m","stream":true}"#,
    r#"{"model":"m\u00e9\"q","stream":true,"tools":[{"a":{"b":{"c":[]}}}],"stream_options":{"a":1}}"#,
];

fn value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// What the body must mean once usage is asked for: the same request, with
/// `stream_options.include_usage` true and the request's other options kept.
fn expected(original: &str) -> Value {
    let mut v: Value = serde_json::from_str(original).unwrap();
    let options = &mut v["stream_options"];
    if !options.is_object() {
        *options = json!({});
    }
    options["include_usage"] = json!(true);
    v
}

#[test]
fn asking_for_usage_sets_include_usage_and_keeps_the_rest_of_the_request() {
    for body in BODIES {
        let p = peek(body.as_bytes()).unwrap();
        assert!(!p.include_usage, "{body}");
        let asked = ask_for_usage(&p).unwrap();
        assert_eq!(value(asked.body()), expected(body), "{body}");
    }
}

#[test]
fn an_absent_stream_options_is_inserted_after_the_brace_and_nothing_else_moves() {
    for body in BODIES.iter().filter(|b| !b.contains("\"stream_options\" ")) {
        let p = peek(body.as_bytes()).unwrap();
        if p.stream_options_span.is_some() {
            continue;
        }
        let asked = ask_for_usage(&p).unwrap();
        let open = body.find('{').unwrap() + 1;
        let inserted = r#""stream_options":{"include_usage":true},"#;
        let want = format!("{}{inserted}{}", &body[..open], &body[open..]);
        assert_eq!(asked.body(), want.as_bytes(), "{body}");
    }
}

#[test]
fn a_present_stream_options_is_the_only_part_rewritten() {
    let body =
        r#"{ "model" : "m", "stream_options" : {"include_usage":false,"x":1} , "stream":true }"#;
    let asked = ask_for_usage(&peek(body.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        asked.body(),
        &br#"{ "model" : "m", "stream_options" : {"include_usage":true,"x":1} , "stream":true }"#[..]
    );
    let null = r#"{"model":"m","stream_options":null,"stream":true}"#;
    let asked = ask_for_usage(&peek(null.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        asked.body(),
        &br#"{"model":"m","stream_options":{"include_usage":true},"stream":true}"#[..]
    );
}

#[test]
fn the_moved_peek_is_the_peek_of_the_new_body() {
    for body in BODIES {
        let asked = ask_for_usage(&peek(body.as_bytes()).unwrap()).unwrap();
        let moved = asked.peek();
        let fresh = peek(asked.body()).unwrap();
        assert_eq!(moved.model, fresh.model, "{body}");
        assert_eq!(moved.model_span, fresh.model_span, "{body}");
        assert_eq!(moved.stream, fresh.stream, "{body}");
        assert_eq!(
            moved.stream_options_span, fresh.stream_options_span,
            "{body}"
        );
        assert!(fresh.include_usage, "{body}");
        assert!(moved.include_usage);
    }
}

#[test]
fn the_model_rewrite_composes_with_the_usage_request() {
    for body in BODIES {
        let asked = ask_for_usage(&peek(body.as_bytes()).unwrap()).unwrap();
        let rewritten = rewrite_model(&asked.peek(), "other/model-\"x\"");
        let mut want = expected(body);
        want["model"] = json!("other/model-\"x\"");
        assert_eq!(value(&rewritten), want, "{body}");
    }
}

#[test]
fn a_body_that_already_asks_or_has_odd_options_is_left_alone() {
    let asks = br#"{"model":"m","stream":true,"stream_options":{"x":2, "include_usage" : true}}"#;
    let p = peek(asks).unwrap();
    assert!(p.include_usage);
    assert!(ask_for_usage(&p).is_none());
    for odd in [
        &br#"{"model":"m","stream":true,"stream_options":"yes"}"#[..],
        br#"{"model":"m","stream":true,"stream_options":[true]}"#,
        br#"{"model":"m","stream":true,"stream_options":{"include_usage":"true"}}"#,
    ] {
        let p = peek(odd).unwrap();
        assert!(!p.include_usage, "{}", String::from_utf8_lossy(odd));
        if !odd.ends_with(b"}}") {
            assert!(ask_for_usage(&p).is_none());
        }
    }
}

fn event(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn chunk(content: &str) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}],
           "usage": null})
}

fn usage_chunk(prompt: u64, completion: u64) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [],
           "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                     "total_tokens": prompt + completion,
                     "prompt_tokens_details": {"cached_tokens": 0}}})
}

#[test]
fn events_without_a_usage_object_are_not_read() {
    assert_eq!(read_event(&event(&chunk("hi"))), None);
    assert_eq!(read_event(b"data: [DONE]\n\n"), None);
    let mentions = chunk("the \"usage\": {\"prompt_tokens\": 1} key");
    assert!(!has_usage(&event(&mentions)));
}

#[test]
fn the_usage_only_chunk_is_recognised() {
    let found = read_event(&event(&usage_chunk(7, 3))).unwrap();
    assert_eq!(
        found,
        EventUsage {
            usage: Usage {
                prompt_tokens: 7,
                completion_tokens: Some(3)
            },
            usage_only: true
        }
    );
    let mut with_choice = chunk("x");
    with_choice["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 2});
    assert!(!read_event(&event(&with_choice)).unwrap().usage_only);
    let spaced = b"data:{ \"choices\" : [ ] , \"usage\" : { \"prompt_tokens\" : 2 } }\r\n\r\n";
    assert_eq!(
        read_event(spaced).unwrap().usage,
        Usage {
            prompt_tokens: 2,
            completion_tokens: None
        }
    );
}

#[test]
fn scanning_drops_only_the_usage_only_chunk_and_only_when_asked() {
    let parts = [
        event(&chunk("a")),
        event(&usage_chunk(5, 2)),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ];
    let all = Bytes::from(parts.concat());
    let kept = scan_events(&all, true);
    assert_eq!(kept.usage.unwrap().prompt_tokens, 5);
    let want = [parts[0].clone(), parts[2].clone()].concat();
    assert_eq!(kept.kept.as_deref(), Some(&want[..]));
    let untouched = scan_events(&all, false);
    assert_eq!(untouched.usage, kept.usage);
    assert_eq!(untouched.kept, None);
    let plain = Bytes::from([event(&chunk("a")), event(&chunk("b"))].concat());
    assert_eq!(scan_events(&plain, true), Scanned::default());
    let alone = scan_events(&parts[1], true);
    assert_eq!(alone.kept.as_deref(), Some(&b""[..]));
}

#[test]
fn the_end_of_a_json_body_gives_its_usage() {
    let chat = json!({"id": "x", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant",
                     "content": "\"usage\": {\"prompt_tokens\": 99}"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16,
                  "completion_tokens_details": {"reasoning_tokens": 0}},
        "system_fingerprint": "fp"});
    assert_eq!(
        read_body_end(chat.to_string().as_bytes()),
        Some(Usage {
            prompt_tokens: 12,
            completion_tokens: Some(4)
        })
    );
    let pretty = serde_json::to_vec_pretty(&chat).unwrap();
    assert_eq!(read_body_end(&pretty).unwrap().prompt_tokens, 12);
    let embeddings = br#"{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    assert_eq!(
        read_body_end(embeddings),
        Some(Usage {
            prompt_tokens: 8,
            completion_tokens: None
        })
    );
}

#[test]
fn usage_far_from_the_end_or_absent_is_not_found() {
    assert_eq!(read_body_end(br#"{"choices":[],"usage":null}"#), None);
    assert_eq!(read_body_end(b"<html>oops</html>"), None);
    let far = format!(
        r#"{{"usage":{{"prompt_tokens":1}},"data":"{}"}}"#,
        "x".repeat(TAIL_BYTES)
    );
    assert_eq!(read_body_end(far.as_bytes()), None);
    // Cut inside the usage object: found, not parseable, nothing.
    assert_eq!(read_body_end(br#"{"usage":{"prompt_tokens":1"#), None);
}

#[test]
fn fuzz_regression_other_stream_options_keep_their_exact_bytes() {
    // Found by fuzz/request_model_rewrite: the options object used to be re-serialised
    // through serde_json, which rounded this number (5.5555555555555555e78 came back
    // as 5.555555555555555e78) and reordered the keys.
    let digits = format!("5{}0", "5".repeat(77));
    let body = format!(
        r#"{{"model":"a","stream":true,"stream_options":{{"include_usage":false,"x":{digits}}}}}"#
    );
    let asked = ask_for_usage(&peek(body.as_bytes()).unwrap()).unwrap();
    let want = body.replace("false", "true");
    assert_eq!(std::str::from_utf8(asked.body()).unwrap(), want);

    let body = format!(r#"{{"model":"a","stream_options":{{ "z":{digits}, "a":[] }}}}"#);
    let asked = ask_for_usage(&peek(body.as_bytes()).unwrap()).unwrap();
    let want = body.replace("{ \"z\"", "{\"include_usage\":true, \"z\"");
    assert_eq!(std::str::from_utf8(asked.body()).unwrap(), want);
    let fresh = peek(asked.body()).unwrap();
    assert_eq!(asked.peek().stream_options_span, fresh.stream_options_span);
}

#[test]
fn stream_options_naming_include_usage_twice_are_left_to_the_upstream() {
    let body = br#"{"model":"a","stream":true,"stream_options":{"include_usage":false,"include_usage":false}}"#;
    let p = peek(body).unwrap();
    assert!(ask_for_usage(&p).is_none());
}
