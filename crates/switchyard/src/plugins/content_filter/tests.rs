use super::*;
use serde_json::json;

fn rules(action: Action, window: usize) -> Arc<Rules> {
    Arc::new(Rules {
        regex: Regex::new(r"(?:(?i)password\s*=)|(?:secret-\d+)").unwrap(),
        action,
        replacement: "[REDACTED]".into(),
        status: StatusCode::BAD_REQUEST,
        window,
    })
}

fn filter(action: Action, window: usize, pattern: &str) -> StreamFilter {
    StreamFilter {
        rules: Arc::new(Rules {
            regex: Regex::new(pattern).unwrap(),
            action,
            replacement: "[REDACTED]".into(),
            status: StatusCode::BAD_REQUEST,
            window,
        }),
        choices: HashMap::new(),
        template: None,
    }
}

fn chat_chunk(text: &str, finish: Option<&str>) -> bytes::Bytes {
    let v = json!({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]});
    switchyard_dialects::sse::data_event(&v.to_string())
}

fn completion_chunk(text: &str) -> bytes::Bytes {
    let v = json!({"id": "c1", "object": "text_completion",
                   "choices": [{"index": 0, "text": text, "finish_reason": null}]});
    switchyard_dialects::sse::data_event(&v.to_string())
}

/// Streams events through the filter like the chain does (flush before `[DONE]`);
/// returns the text the client would see and whether the stream was ended.
fn run(f: &mut StreamFilter, events: Vec<bytes::Bytes>) -> (String, bool) {
    let mut sent = Vec::new();
    for raw in events {
        let mut e = SseEvent::new(raw);
        match f.on_event(&mut e) {
            ChunkVerdict::Pass => sent.push(e.into_bytes()),
            ChunkVerdict::Drop => {}
            ChunkVerdict::End(_) => return (text_of(&sent), true),
        }
    }
    sent.extend(f.flush());
    (text_of(&sent), false)
}

fn text_of(events: &[bytes::Bytes]) -> String {
    let mut out = String::new();
    for b in events {
        for d in switchyard_dialects::sse::data_payloads(b) {
            if let Ok(v) = serde_json::from_str::<Value>(&d) {
                let c = &v["choices"][0];
                out.push_str(
                    c["delta"]["content"]
                        .as_str()
                        .or(c["text"].as_str())
                        .unwrap_or(""),
                );
            }
        }
    }
    out
}

#[test]
fn request_match_rejects_and_redact_patches() {
    let body = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "my PASSWORD = x"}]}]});
    let reject = ContentFilter(rules(Action::Reject, 8));
    assert!(matches!(
        reject.judge(Some(&body), "request", request_strs, request_texts),
        Verdict::Reject(_)
    ));
    let redact = ContentFilter(rules(Action::Redact, 8));
    let Verdict::Continue(effects) =
        redact.judge(Some(&body), "request", request_strs, request_texts)
    else {
        panic!("redact rejected")
    };
    let mut b = body.clone();
    (effects.patch.unwrap())(&mut b);
    assert_eq!(b["messages"][0]["content"][0]["text"], "my [REDACTED] x");
}

#[test]
fn redacting_odd_shaped_messages_does_not_panic() {
    let body = json!({"messages": ["x", {"role": "user", "content": "secret-1"}, 7, null]});
    let redact = ContentFilter(rules(Action::Redact, 8));
    let Verdict::Continue(effects) =
        redact.judge(Some(&body), "request", request_strs, request_texts)
    else {
        panic!("redact rejected")
    };
    let mut b = body.clone();
    (effects.patch.unwrap())(&mut b);
    assert_eq!(b["messages"][1]["content"], "[REDACTED]");
}

#[test]
fn clean_requests_pass_untouched() {
    let f = ContentFilter(rules(Action::Redact, 8));
    let v = f.judge(
        Some(&json!({"messages": [{"role": "user", "content": "hello"}]})),
        "request",
        request_strs,
        request_texts,
    );
    assert!(matches!(v, Verdict::Continue(e) if e.patch.is_none()));
}

#[test]
fn stream_reject_catches_a_pattern_split_across_chunks() {
    let mut f = filter(Action::Reject, 16, r"secret-\d+");
    let (sent, ended) = run(
        &mut f,
        vec![chat_chunk("the secr", None), chat_chunk("et-42 is", None)],
    );
    assert!(ended);
    assert_eq!(sent, "the secr");
}

#[test]
fn stream_redact_replaces_a_split_match_before_any_of_it_is_sent() {
    let mut f = filter(Action::Redact, 16, r"secret-\d+");
    let (sent, _) = run(
        &mut f,
        vec![
            chat_chunk("Here: secr", None),
            chat_chunk("et-42 and more text follows", None),
            chat_chunk("", Some("stop")),
        ],
    );
    assert_eq!(sent, "Here: [REDACTED] and more text follows");
}

#[test]
fn stream_redact_waits_for_a_match_that_may_still_grow() {
    let mut f = filter(Action::Redact, 4, r"\d{13,16}");
    let (sent, _) = run(
        &mut f,
        vec![
            chat_chunk("card 4111111111111", None),
            chat_chunk("111 ok", None),
            chat_chunk("", Some("stop")),
        ],
    );
    assert_eq!(sent, "card [REDACTED] ok");
}

#[test]
fn held_back_text_is_flushed_when_the_stream_ends_without_a_finish_chunk() {
    let mut f = filter(Action::Redact, 16, r"secret-\d+");
    let (sent, _) = run(&mut f, vec![chat_chunk("short", None)]);
    assert_eq!(sent, "short");
}

#[test]
fn completions_streams_are_filtered_too() {
    let mut f = filter(Action::Reject, 16, r"secret-\d+");
    let (_, ended) = run(&mut f, vec![completion_chunk("the secret-7")]);
    assert!(ended);
    let mut f = filter(Action::Redact, 16, r"secret-\d+");
    let (sent, _) = run(
        &mut f,
        vec![completion_chunk("a secret-7 "), completion_chunk("b")],
    );
    assert_eq!(sent, "a [REDACTED] b");
}

#[test]
fn multibyte_text_is_cut_on_character_boundaries() {
    let mut f = filter(Action::Redact, 3, r"secret-\d+");
    let (sent, _) = run(
        &mut f,
        vec![
            chat_chunk("héllo wörld ", None),
            chat_chunk("🙂🙂 secret-1 ✓", None),
        ],
    );
    assert_eq!(sent, "héllo wörld 🙂🙂 [REDACTED] ✓");
}
