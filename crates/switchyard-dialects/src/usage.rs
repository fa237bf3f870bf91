//! Token usage, both ways, without parsing more than the small objects involved.
//!
//! Asking: [`ask_for_usage`] makes a streaming request ask for a usage chunk
//! (`"stream_options":{"include_usage":true}`) by editing the peeked bytes — an
//! insertion right after the opening `{`, or an edit inside the request's own
//! `stream_options` object (its `include_usage` value, or that key inserted) — and moves
//! the peek to the new bytes, so the model rewrite of each candidate still works without
//! a second peek.
//!
//! Reading: [`scan_events`] takes usage from whole SSE events (and can leave out the
//! usage-only chunk), [`read_body_end`] from the end of a JSON body (OpenAI puts
//! `usage` last). Both first look for a `"usage": {` with a substring search; only an
//! event holding one is parsed, and only the `usage` object of a body.

use crate::{sse, Peek};
use bytes::{Bytes, BytesMut};
use memchr::memmem;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::ops::Range;
use std::sync::LazyLock;

/// How much of the end of a JSON body [`read_body_end`] looks at.
pub const TAIL_BYTES: usize = 4096;

/// Token counts an upstream reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `prompt_tokens`.
    pub prompt_tokens: u64,
    /// `completion_tokens`; `None` when absent (embeddings report prompt tokens only).
    pub completion_tokens: Option<u64>,
}

/// `stream_options` as [`ask_for_usage`] writes it.
const ASKING: &str = r#"{"include_usage":true}"#;
/// The key inserted before it when the request has no `stream_options`.
const KEY: &str = r#""stream_options":"#;

/// A request body that now asks for usage, with what its peek knew, moved to the new
/// bytes.
#[derive(Debug, Clone)]
pub struct UsageAsked {
    body: Bytes,
    model: String,
    model_span: Range<usize>,
    stream: bool,
    stream_options_span: Range<usize>,
}

impl UsageAsked {
    /// The body to send.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The peek of [`UsageAsked::body`], without parsing it again.
    pub fn peek(&self) -> Peek<'_> {
        Peek {
            model: self.model.clone(),
            model_span: self.model_span.clone(),
            stream: self.stream,
            stream_options_span: Some(self.stream_options_span.clone()),
            include_usage: true,
            raw: &self.body,
        }
    }
}

/// The peeked body with `stream_options.include_usage` set to `true`; every other byte
/// stays as it was. `None` when the body already asks for usage, or when its
/// `stream_options` is neither an object nor `null` (the upstream's to refuse), or
/// names `include_usage` twice.
pub fn ask_for_usage(peek: &Peek<'_>) -> Option<UsageAsked> {
    if peek.include_usage {
        return None;
    }
    let body = peek.raw;
    // What to replace, with what, and where `stream_options` then sits.
    let (replace, insert, options) = match &peek.stream_options_span {
        None => {
            // `peek` made sure the first non-blank byte is the object's `{`.
            let after = body.iter().position(|&b| b == b'{')? + 1;
            let empty = body[after..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
            let suffix = if empty { "" } else { "," };
            let start = after + KEY.len();
            (
                after..after,
                format!("{KEY}{ASKING}{suffix}"),
                start..start + ASKING.len(),
            )
        }
        Some(span) => {
            let raw = &body[span.clone()];
            let (replace, insert) = if raw == b"null" {
                (span.clone(), ASKING.to_owned())
            } else if raw.first() == Some(&b'{') {
                let (inner, insert) = usage_edit(raw)?;
                (span.start + inner.start..span.start + inner.end, insert)
            } else {
                return None;
            };
            let end = span.end - replace.len() + insert.len();
            (replace, insert, span.start..end)
        }
    };
    let mut out = BytesMut::with_capacity(body.len() + insert.len());
    out.extend_from_slice(&body[..replace.start]);
    out.extend_from_slice(insert.as_bytes());
    out.extend_from_slice(&body[replace.end..]);
    // Spans after the edit move by its change in length; the model is never inside it.
    let moved = |span: &Range<usize>| {
        if span.start >= replace.end {
            span.start - replace.len() + insert.len()..span.end - replace.len() + insert.len()
        } else {
            span.clone()
        }
    };
    Some(UsageAsked {
        body: out.freeze(),
        model: peek.model.clone(),
        model_span: moved(&peek.model_span),
        stream: peek.stream,
        stream_options_span: options,
    })
}

/// The edit, inside a `stream_options` object, that makes it ask for usage: the
/// `include_usage` value replaced by `true`, or the key inserted first. The object's
/// other bytes are kept as sent: re-serialising it (as this once did) rounded its
/// numbers — found by the `request_model_rewrite` fuzz target. `None` when the key is
/// there twice (which one counts is the upstream's call).
fn usage_edit(options: &[u8]) -> Option<(Range<usize>, String)> {
    let fields: crate::StreamOptionsFields<'_> = serde_json::from_slice(options).ok()?;
    match fields.include_usage {
        Some(value) => Some((
            crate::span_of(options, value.get().as_bytes()),
            "true".to_owned(),
        )),
        None => {
            let after = options.iter().position(|&b| b == b'{')? + 1;
            let empty = options[after..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
            let comma = if empty { "" } else { "," };
            Some((after..after, format!(r#""include_usage":true{comma}"#)))
        }
    }
}

#[derive(Deserialize)]
struct UsageFields {
    /// `input_tokens` in Anthropic's and the Responses API's answers.
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Option<u64>,
}

impl UsageFields {
    /// The counts; an object with output tokens only (Anthropic's `message_delta`)
    /// reports a prompt of 0, which [`Usage::update`] does not let replace a known one.
    fn usage(self) -> Option<Usage> {
        match (self.prompt_tokens, self.completion_tokens) {
            (None, None) => None,
            (prompt, completion) => Some(Usage {
                prompt_tokens: prompt.unwrap_or(0),
                completion_tokens: completion,
            }),
        }
    }
}

impl Usage {
    /// The later of two reports of one answer: its counts, keeping the earlier prompt
    /// count when the later one gives none (Anthropic's `message_start` has the input
    /// tokens, its `message_delta` the output tokens).
    pub fn update(earlier: Option<Self>, later: Self) -> Self {
        match earlier {
            Some(e) if later.prompt_tokens == 0 => Self {
                prompt_tokens: e.prompt_tokens,
                completion_tokens: later.completion_tokens.or(e.completion_tokens),
            },
            _ => later,
        }
    }
}

#[derive(Deserialize)]
struct ChunkFields {
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<UsageFields>,
    /// Anthropic's `message_start` carries it in its `message`.
    #[serde(default)]
    message: Option<Nested>,
    /// The Responses API's `response.completed` carries it in its `response`.
    #[serde(default)]
    response: Option<Nested>,
}

#[derive(Deserialize)]
struct Nested {
    #[serde(default)]
    usage: Option<UsageFields>,
}

const USAGE_KEY: &[u8] = b"\"usage\"";
static FIND: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(USAGE_KEY));
/// Where the object starts when the `"usage"` found at `key` is a key with an object
/// value (`"usage": {`); `"usage": null` and a `"usage"` string value are not.
fn object_after(bytes: &[u8], key: usize) -> Option<usize> {
    let mut i = key + USAGE_KEY.len();
    let skip = |i: &mut usize| {
        while bytes.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    skip(&mut i);
    if bytes.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    skip(&mut i);
    (bytes.get(i) == Some(&b'{')).then_some(i)
}

/// Whether `bytes` hold a `"usage": {` (a string's escaped `\"usage\"` does not count).
pub fn has_usage(bytes: &[u8]) -> bool {
    FIND.find_iter(bytes)
        .any(|at| object_after(bytes, at).is_some())
}

/// Usage read from one SSE event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventUsage {
    /// What it reported.
    pub usage: Usage,
    /// The chunk carries nothing else (`choices` empty or absent): the one the
    /// upstream adds for `include_usage`.
    pub usage_only: bool,
}

/// Usage of one whole SSE event, if it reports any. Events without a `"usage": {` are
/// not parsed.
pub fn read_event(event: &[u8]) -> Option<EventUsage> {
    if !has_usage(event) {
        return None;
    }
    let data = sse::single_data(event)?;
    let chunk: ChunkFields = serde_json::from_str(&data).ok()?;
    let fields = chunk
        .usage
        .or_else(|| chunk.message.and_then(|m| m.usage))
        .or_else(|| chunk.response.and_then(|r| r.usage));
    Some(EventUsage {
        usage: fields?.usage()?,
        usage_only: chunk.choices.is_none_or(|c| c.is_empty()),
    })
}

/// What [`scan_events`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scanned {
    /// The last usage reported by these events.
    pub usage: Option<Usage>,
    /// The events without the usage-only chunk, when one was left out.
    pub kept: Option<Bytes>,
}

/// Reads usage from whole SSE events (bytes that end at an event boundary) and, with
/// `drop_usage_only`, leaves out the usage-only chunk. Bytes without a `"usage": {`
/// (nearly all of a stream) cost one substring search.
pub fn scan_events(aligned: &Bytes, drop_usage_only: bool) -> Scanned {
    let mut scanned = Scanned::default();
    if !has_usage(aligned) {
        return scanned;
    }
    let events = sse::split_events(aligned);
    let mut kept: Option<BytesMut> = None;
    for (i, event) in events.iter().enumerate() {
        let found = read_event(event);
        if let Some(found) = found {
            scanned.usage = Some(Usage::update(scanned.usage, found.usage));
            if drop_usage_only && found.usage_only {
                kept.get_or_insert_with(|| {
                    let mut k = BytesMut::with_capacity(aligned.len());
                    events[..i].iter().for_each(|e| k.extend_from_slice(e));
                    k
                });
                continue;
            }
        }
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(event);
        }
    }
    scanned.kept = kept.map(BytesMut::freeze);
    scanned
}

/// Usage from the end of a JSON body: the last `"usage": {` among its last
/// [`TAIL_BYTES`], and only that object parsed. `None` when it is not there (no usage,
/// or not near the end) — never a parse of the whole body.
pub fn read_body_end(body: &[u8]) -> Option<Usage> {
    let tail = &body[body.len().saturating_sub(TAIL_BYTES)..];
    // Forward: memchr's forward search is vectorised, its reverse one is not.
    let at = FIND
        .find_iter(tail)
        .filter_map(|at| object_after(tail, at))
        .last()?;
    let mut de = serde_json::Deserializer::from_slice(&tail[at..]);
    UsageFields::deserialize(&mut de).ok()?.usage()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod anthropic_usage {
    use super::*;

    #[test]
    fn input_tokens_from_the_start_and_output_tokens_from_the_delta() {
        let events = Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":21,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":15}}\n\n");
        let scanned = scan_events(&events, false);
        assert_eq!(
            scanned.usage,
            Some(Usage {
                prompt_tokens: 21,
                completion_tokens: Some(15)
            })
        );
        assert_eq!(
            read_body_end(br#"{"type":"message","usage":{"input_tokens":5,"output_tokens":7}}"#),
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: Some(7)
            })
        );
    }
}
