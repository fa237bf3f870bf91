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

fn chunk(text: &str, finish: Option<&str>) -> SseEvent {
    let v = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]});
    SseEvent::new(switchyard_dialects::sse::data_event(&v.to_string()))
}

fn sent_text(events: Vec<SseEvent>) -> String {
    let mut out = String::new();
    for e in events {
        let (before, main) = e.into_bytes();
        for b in before.into_iter().chain([main]) {
            for d in switchyard_dialects::sse::data_payloads(&b) {
                if let Ok(v) = serde_json::from_str::<Value>(&d) {
                    out.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
                }
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
    let mut f = StreamFilter {
        rules: rules(Action::Reject, 16),
        choices: HashMap::new(),
    };
    assert!(matches!(
        f.on_event(&mut chunk("the secr", None)),
        ChunkVerdict::Pass
    ));
    assert!(matches!(
        f.on_event(&mut chunk("et-42 is", None)),
        ChunkVerdict::End(_)
    ));
}

#[test]
fn stream_redact_replaces_a_split_match_before_any_of_it_is_sent() {
    let mut f = StreamFilter {
        rules: rules(Action::Redact, 16),
        choices: HashMap::new(),
    };
    let mut events = vec![
        chunk("Here: secr", None),
        chunk("et-42 and more text follows", None),
        chunk("", Some("stop")),
    ];
    for e in &mut events {
        assert!(matches!(f.on_event(e), ChunkVerdict::Pass));
    }
    let mut done = SseEvent::new(bytes::Bytes::from_static(b"data: [DONE]\n\n"));
    f.on_event(&mut done);
    events.push(done);
    assert_eq!(sent_text(events), "Here: [REDACTED] and more text follows");
}

#[test]
fn held_back_text_is_flushed_before_done_without_a_finish_chunk() {
    let mut f = StreamFilter {
        rules: rules(Action::Redact, 16),
        choices: HashMap::new(),
    };
    let mut events = vec![chunk("short", None)];
    f.on_event(&mut events[0]);
    let mut done = SseEvent::new(bytes::Bytes::from_static(b"data: [DONE]\n\n"));
    f.on_event(&mut done);
    events.push(done);
    assert_eq!(sent_text(events), "short");
}
