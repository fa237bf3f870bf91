//! The request peek and the in-place edits made on the peeked bytes
//! (`switchyard_dialects::{peek, rewrite_model}`, `usage::ask_for_usage`). Input: the
//! new model name, a NUL byte, then the request body (without a NUL, a fixed name).
//!
//! Checked, whenever `peek` accepts a body:
//! - the body is a JSON object whose `model` is the peeked string, whose `stream` is
//!   the peeked flag, and the model span holds exactly that JSON string;
//! - `rewrite_model` yields valid JSON whose `model` is the new name and whose other
//!   fields are unchanged (compared as `serde_json::Value`), and which peeks again to
//!   the new name;
//! - `ask_for_usage`, when it edits, yields valid JSON that asks for usage, changes
//!   nothing else (other `stream_options` keys included), and carries a peek equal to
//!   peeking its bytes again — so rewriting the model on top of it is sound as well.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchyard_dialects::usage::ask_for_usage;
use switchyard_dialects::{peek, rewrite_model, Peek};

/// `stream_options` with its `include_usage` at most once (derive refuses duplicates).
#[derive(serde::Deserialize)]
struct OptionsOnce {
    #[serde(default)]
    #[expect(dead_code, reason = "only its presence is parsed")]
    include_usage: Option<serde::de::IgnoredAny>,
}

/// The body as a tree, when serde_json builds one (it refuses a few bodies the peek
/// skips over, such as numbers beyond f64).
fn tree(bytes: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn without(mut map: serde_json::Map<String, Value>, key: &str) -> serde_json::Map<String, Value> {
    map.remove(key);
    map
}

/// The peek of `bytes` agrees with `p` (taken from other bytes that should be equal).
fn same_peek(p: &Peek<'_>, bytes: &[u8]) {
    let again = peek(bytes).expect("an edited body no longer peeks");
    assert_eq!(again.model, p.model);
    assert_eq!(again.model_span, p.model_span);
    assert_eq!(again.stream, p.stream);
    assert_eq!(again.stream_options_span, p.stream_options_span);
    assert_eq!(again.include_usage, p.include_usage);
}

/// Rewrites the model of `p` and checks the result against `before`.
fn check_rewrite(p: &Peek<'_>, before: Option<&serde_json::Map<String, Value>>, new_model: &str) {
    let out = rewrite_model(p, new_model);
    // An empty name is refused by the peek (routes always name a model).
    if !new_model.is_empty() {
        let again = peek(&out).expect("a rewritten body no longer peeks");
        assert_eq!(again.model, new_model);
        assert_eq!(again.stream, p.stream);
        assert_eq!(again.include_usage, p.include_usage);
    }
    if let Some(before) = before {
        let after = tree(&out).expect("a rewritten body is not a JSON object");
        assert_eq!(
            after.get("model"),
            Some(&Value::String(new_model.to_owned()))
        );
        assert_eq!(
            without(after, "model"),
            without(before.clone(), "model"),
            "rewrite changed another field"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (new_model, body) = match data.iter().position(|&b| b == 0) {
        Some(at) => (
            String::from_utf8_lossy(&data[..at]).into_owned(),
            &data[at + 1..],
        ),
        None => ("gpt-4o-mini".to_owned(), data),
    };
    let Ok(p) = peek(body) else {
        return;
    };
    assert!(!p.model.is_empty());
    let model_json: String =
        serde_json::from_slice(&body[p.model_span.clone()]).expect("model span is a JSON string");
    assert_eq!(model_json, p.model);
    let before = tree(body);
    if let Some(before) = &before {
        assert_eq!(before.get("model"), Some(&Value::String(p.model.clone())));
        assert_eq!(p.stream, before.get("stream") == Some(&Value::Bool(true)));
        if p.include_usage {
            let asked = before
                .get("stream_options")
                .and_then(|o| o.get("include_usage"));
            assert_eq!(asked, Some(&Value::Bool(true)));
        }
    }
    check_rewrite(&p, before.as_ref(), &new_model);

    let Some(asked) = ask_for_usage(&p) else {
        // Refused: usage already asked for, a `stream_options` that is neither an
        // object nor null, one naming `include_usage` twice, or a body serde_json
        // cannot hold (a number beyond f64).
        assert!(
            p.include_usage
                || before.is_none()
                || p.stream_options_span.as_ref().is_some_and(|s| {
                    let raw = &body[s.clone()];
                    raw.first() == Some(&b'{')
                        && serde_json::from_slice::<OptionsOnce>(raw).is_err()
                })
                || p.stream_options_span
                    .as_ref()
                    .is_some_and(
                        |s| body[s.clone()].first() != Some(&b'{') && &body[s.clone()] != b"null"
                    ),
            "ask_for_usage refused an object or null stream_options"
        );
        return;
    };
    assert!(!p.include_usage);
    let asked_peek = asked.peek();
    same_peek(&asked_peek, asked.body());
    assert!(asked_peek.include_usage);
    if let Some(before) = &before {
        let after = tree(asked.body()).expect("the usage edit is not a JSON object");
        let options = after
            .get("stream_options")
            .and_then(Value::as_object)
            .expect("stream_options is an object after the edit");
        assert_eq!(options.get("include_usage"), Some(&Value::Bool(true)));
        if let Some(Value::Object(old)) = before.get("stream_options") {
            assert_eq!(
                without(options.clone(), "include_usage"),
                without(old.clone(), "include_usage"),
                "the usage edit changed another stream option"
            );
        }
        assert_eq!(
            without(after.clone(), "stream_options"),
            without(before.clone(), "stream_options"),
            "the usage edit changed another field"
        );
        check_rewrite(&asked_peek, Some(&after), &new_model);
    } else {
        check_rewrite(&asked_peek, None, &new_model);
    }
});
