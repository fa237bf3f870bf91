//! Config parsing (`switchyard_config::parse`: YAML → `${ENV}` expansion → typed
//! sections → resolved `Config`), plus the two text parsers it is built on
//! (`expand`, `parse_duration`). Input: the config text (lossy UTF-8).
//!
//! Checked: nothing panics; a refusal carries at least one error and every error has
//! a non-empty message; parsing is deterministic; an accepted duration is in
//! (0, MAX_DURATION]; text without `$` expands to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_config::{expand, parse, parse_duration, MAX_DURATION};

/// Secrets and a URL are set, one variable is empty, the rest are unset.
fn env(name: &str) -> Option<String> {
    match name {
        "EMPTY" => Some(String::new()),
        "BASE_URL" => Some("http://127.0.0.1:9/v1".to_owned()),
        n if n.contains("KEY") || n.contains("TOKEN") => Some("test-value".to_owned()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let first = parse(&text, &env);
    match &first {
        Ok(_) => {}
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without an error");
            for e in &errors.0 {
                assert!(
                    !e.message.trim().is_empty(),
                    "empty message at `{}`",
                    e.path
                );
            }
            assert!(!errors.to_string().trim().is_empty());
        }
    }
    let second = parse(&text, &env);
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "two parses of one text differ"
    );

    match expand(&text, &env) {
        Ok(out) if !text.contains('$') => assert_eq!(out, text),
        Ok(_) => {}
        Err(msg) => assert!(!msg.is_empty()),
    }
    match parse_duration(&text) {
        Ok(d) => assert!(!d.is_zero() && d <= MAX_DURATION, "{d:?}"),
        Err(msg) => assert!(!msg.is_empty()),
    }
});
