//! A stored `chat.completion` replayed as the stream a client would have got
//! ([`replay_stream`]). The stored JSON is read into borrowing structs; each chunk is
//! written by hand around a prefix (`id`, `object`, `created`, `model`, …) built once.

use super::push_compact;
use crate::raw::push_json_str as push_str;
use crate::raw::{as_str, as_u64, Raw};
use crate::sse;
use bytes::Bytes;
use serde::Deserialize;

/// A stored `chat.completion`, borrowed.
#[derive(Deserialize)]
struct CompletionIn<'a> {
    #[serde(borrow, default)]
    object: Raw<'a>,
    #[serde(borrow, default)]
    id: Raw<'a>,
    #[serde(borrow, default)]
    created: Raw<'a>,
    #[serde(borrow, default)]
    model: Raw<'a>,
    #[serde(borrow, default)]
    system_fingerprint: Raw<'a>,
    #[serde(borrow, default)]
    service_tier: Raw<'a>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceIn<'a>>>,
    #[serde(borrow, default)]
    usage: Raw<'a>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(borrow, default)]
    index: Raw<'a>,
    #[serde(borrow, default)]
    message: Option<MessageIn<'a>>,
    #[serde(borrow, default)]
    logprobs: Raw<'a>,
    #[serde(borrow, default)]
    finish_reason: Raw<'a>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow, default)]
    role: Raw<'a>,
    #[serde(borrow, default)]
    content: Raw<'a>,
    #[serde(borrow, default)]
    refusal: Raw<'a>,
    #[serde(borrow, default)]
    reasoning_content: Raw<'a>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallIn<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallIn<'a> {
    #[serde(borrow, default)]
    id: Raw<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow, default)]
    function: Option<FunctionIn<'a>>,
}

#[derive(Deserialize)]
struct FunctionIn<'a> {
    #[serde(borrow, default)]
    name: Raw<'a>,
    #[serde(borrow, default)]
    arguments: Raw<'a>,
}

/// The SSE events (each a whole `data: …\n\n` event) a client streaming the answer
/// stored in `completion` would have received, `data: [DONE]` last.
///
/// Per choice, in `index` order: a chunk with `delta: {role, content}` (plus
/// `reasoning_content` and `refusal` when the message has them, and the stored
/// `logprobs`), one chunk per tool call (`index`, `id`, `type`, `function {name,
/// arguments}` whole), then a chunk with an empty `delta` and the `finish_reason`.
/// Every chunk carries `id`, `object: "chat.completion.chunk"`, `created`, `model`,
/// `service_tier` and `system_fingerprint` when stored, and `logprobs: null` and
/// `finish_reason: null` but where said above. With `include_usage`, every chunk has
/// `"usage": null` and a last chunk with `choices: []` carries the stored `usage` (no
/// such chunk when none was stored).
///
/// `None` when `completion` is not a `chat.completion` (not JSON, another `object`,
/// no `id`, `created`, `model` or choices, a choice without a message or
/// `finish_reason`).
pub fn replay_stream(completion: &[u8], include_usage: bool) -> Option<Vec<Bytes>> {
    let stored: CompletionIn<'_> =
        crate::raw::parse_object(std::str::from_utf8(completion).ok()?).ok()??;
    if as_str(stored.object).as_deref() != Some("chat.completion") {
        return None;
    }
    let mut choices = stored.choices?;
    if choices.is_empty() {
        return None;
    }
    choices.sort_by_key(|c| as_u64(c.index).unwrap_or(0));

    let mut prefix = String::with_capacity(160);
    prefix.push_str("{\"id\":");
    push_str(&mut prefix, &as_str(stored.id)?);
    prefix.push_str(",\"object\":\"chat.completion.chunk\",\"created\":");
    prefix.push_str(&as_u64(stored.created)?.to_string());
    prefix.push_str(",\"model\":");
    push_str(&mut prefix, &as_str(stored.model)?);
    if let Some(tier) = as_str(stored.service_tier) {
        prefix.push_str(",\"service_tier\":");
        push_str(&mut prefix, &tier);
    }
    if let Some(fingerprint) = as_str(stored.system_fingerprint) {
        prefix.push_str(",\"system_fingerprint\":");
        push_str(&mut prefix, &fingerprint);
    }
    let chunks = Chunks {
        prefix,
        usage_null: include_usage,
    };

    let mut events = Vec::with_capacity(choices.len() * 3 + 2);
    let mut buf = String::with_capacity(completion.len() + 256);
    for choice in choices {
        let index = as_u64(choice.index).unwrap_or(0);
        let message = choice.message?;
        let finish_reason = as_str(choice.finish_reason)?;

        chunks.choice(&mut buf, index, choice.logprobs, None, |out| {
            out.push_str("\"role\":");
            push_str(out, &as_str(message.role).unwrap_or("assistant".into()));
            out.push_str(",\"content\":");
            match as_str(message.content) {
                Some(content) => push_str(out, &content),
                None => out.push_str("null"),
            }
            if let Some(reasoning) = as_str(message.reasoning_content) {
                out.push_str(",\"reasoning_content\":");
                push_str(out, &reasoning);
            }
            if let Some(refusal) = as_str(message.refusal) {
                out.push_str(",\"refusal\":");
                push_str(out, &refusal);
            }
        });
        events.push(sse::data_event(&buf));

        for (k, call) in message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let function = call.function;
            let (name, arguments) = function
                .map(|f| (as_str(f.name), as_str(f.arguments)))
                .unwrap_or_default();
            chunks.choice(&mut buf, index, None, None, |out| {
                out.push_str("\"tool_calls\":[{\"index\":");
                out.push_str(&k.to_string());
                out.push_str(",\"id\":");
                push_str(out, &as_str(call.id).unwrap_or_default());
                out.push_str(",\"type\":");
                push_str(out, &as_str(call.kind).unwrap_or("function".into()));
                out.push_str(",\"function\":{\"name\":");
                push_str(out, &name.unwrap_or_default());
                out.push_str(",\"arguments\":");
                push_str(out, &arguments.unwrap_or_default());
                out.push_str("}}]");
            });
            events.push(sse::data_event(&buf));
        }

        chunks.choice(&mut buf, index, None, Some(&finish_reason), |_| {});
        events.push(sse::data_event(&buf));
    }

    if include_usage {
        if let Some(usage) = stored.usage.filter(|u| u.get().starts_with('{')) {
            buf.clear();
            buf.push_str(&chunks.prefix);
            buf.push_str(",\"choices\":[],\"usage\":");
            push_compact(&mut buf, usage.get());
            buf.push('}');
            events.push(sse::data_event(&buf));
        }
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Some(events)
}

/// Writes the chunks of one replayed answer.
struct Chunks {
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…` and the
    /// optional members every chunk shares, without the closing brace.
    prefix: String,
    /// Every chunk but the usage one ends with `"usage":null`.
    usage_null: bool,
}

impl Chunks {
    /// Writes into `buf` (cleared first) a chunk whose single choice `index` has the
    /// delta members `delta` writes.
    fn choice(
        &self,
        buf: &mut String,
        index: u64,
        logprobs: Raw<'_>,
        finish_reason: Option<&str>,
        delta: impl FnOnce(&mut String),
    ) {
        buf.clear();
        buf.push_str(&self.prefix);
        buf.push_str(",\"choices\":[{\"index\":");
        buf.push_str(&index.to_string());
        buf.push_str(",\"delta\":{");
        delta(buf);
        buf.push_str("},\"logprobs\":");
        push_compact(buf, logprobs.map_or("null", |l| l.get()));
        buf.push_str(",\"finish_reason\":");
        match finish_reason {
            Some(reason) => push_str(buf, reason),
            None => buf.push_str("null"),
        }
        buf.push_str("}]");
        if self.usage_null {
            buf.push_str(",\"usage\":null");
        }
        buf.push('}');
    }
}
