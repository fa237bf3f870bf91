//! Whether an OpenAI-style chat stream reached its end: a `data: [DONE]` event, or a
//! chunk whose `finish_reason` is set. A stream that stops before either — cleanly
//! closed or not — was cut short, and must not look like a whole answer to clients
//! (openai-python, openai-node, LangChain and async-openai all accept one as complete).

use memchr::memmem;

/// Whether these whole events hold the stream's end: a `[DONE]` data line or a
/// non-null `finish_reason`.
pub fn marks_end(events: &[u8]) -> bool {
    has_done_line(events) || has_finish_reason(events)
}

/// Whether these whole events of a Responses API stream hold its end: the terminal
/// `response.completed`, `response.incomplete` or `response.failed` event, or `error`.
pub fn marks_responses_end(events: &[u8]) -> bool {
    [
        b"\"response.completed\"".as_slice(),
        b"\"response.incomplete\"",
        b"\"response.failed\"",
        b"event: error",
    ]
    .iter()
    .any(|marker| memmem::find(events, marker).is_some())
}

/// Whether an unfinished last event (no blank line after it) is just `data: [DONE]`:
/// some servers close right after it.
pub fn is_bare_done(rest: &[u8]) -> bool {
    let line = rest.trim_ascii();
    line.strip_prefix(b"data:")
        .is_some_and(|value| value.trim_ascii() == b"[DONE]")
}

/// A line `data: [DONE]` (the space optional, as SSE allows).
fn has_done_line(events: &[u8]) -> bool {
    memmem::find_iter(events, b"[DONE]").any(|at| {
        let before = &events[..at];
        let before = before.strip_suffix(b" ").unwrap_or(before);
        before
            .strip_suffix(b"data:")
            .is_some_and(|line_start| line_start.is_empty() || line_start.ends_with(b"\n"))
    })
}

/// `"finish_reason"` followed by `:` and a string (not `null`).
fn has_finish_reason(events: &[u8]) -> bool {
    const KEY: &[u8] = b"\"finish_reason\"";
    memmem::find_iter(events, KEY).any(|at| {
        let after = events[at + KEY.len()..].trim_ascii_start();
        after
            .strip_prefix(b":")
            .is_some_and(|value| value.trim_ascii_start().starts_with(b"\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_lines_and_finish_reasons_end_a_stream() {
        assert!(marks_end(b"data: [DONE]\n\n"));
        assert!(marks_end(b"data:[DONE]\r\n\r\n"));
        assert!(marks_end(b"data: {\"a\":1}\n\ndata: [DONE]\n\n"));
        assert!(marks_end(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        ));
        assert!(marks_end(b"data: {\"finish_reason\" : \"length\"}\n\n"));
    }

    #[test]
    fn content_and_null_reasons_do_not() {
        assert!(!marks_end(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"[DONE]\"},\"finish_reason\":null}]}\n\n"
        ));
        assert!(!marks_end(b"data: {\"content\":\"say data: [DONE]\"}\n\n"));
        assert!(!marks_end(b""));
    }

    #[test]
    fn a_bare_done_without_its_blank_line_counts() {
        assert!(is_bare_done(b"data: [DONE]"));
        assert!(is_bare_done(b"data: [DONE]\n"));
        assert!(!is_bare_done(b"data: [DO"));
        assert!(!is_bare_done(b"data: {\"a\":"));
    }
}
