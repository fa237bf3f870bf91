//! A streamed chat answer, as the client received it, rebuilt into the
//! `chat.completion` a non-streamed request would have got ([`StreamAssembler`]).
//! Each chunk is read into small borrowing structs (raw JSON slices, no `Value` tree);
//! only the text pieces are copied, appended to the answer being built.

use super::push_compact;
use crate::raw::push_json_str as push_str;
use crate::raw::{self, as_str, as_u64, Raw};
use crate::sse::EventAligner;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Rebuilds a `chat.completion` JSON from the SSE bytes of an OpenAI chat completion
/// stream (`chat.completion.chunk` events, `data: [DONE]` last), fed exactly as the
/// client received them: frames cut anywhere, several events per frame or one event
/// across frames, any SSE line ends, comments and keep-alives.
///
/// Choices are merged by `index`, tool calls by their `index` within a choice
/// (`arguments` concatenated), text pieces (`content`, `refusal`,
/// `reasoning_content`) concatenated; `id`, `created`, `model`, `system_fingerprint`
/// and `service_tier` come from the first chunk that has them, `usage` from the last
/// that has one (the usage-only chunk, `choices: []`, or the final chunk, as some
/// upstreams send it), `logprobs` from the concatenated `content`/`refusal` arrays.
///
/// The result is `None` — nothing to store — unless the stream was whole: ended with
/// `data: [DONE]`, had no error event (a JSON object with a non-null `error`), no
/// event that is not a JSON object or not a chunk, nothing after `[DONE]`, every
/// choice a `finish_reason`, and `id`, `created` and `model` somewhere.
#[derive(Debug)]
pub struct StreamAssembler {
    aligner: EventAligner,
    answer: Answer,
    /// An event failed to parse, was an error, or came after `[DONE]`.
    broken: bool,
}

impl Default for StreamAssembler {
    fn default() -> Self {
        Self::new()
    }
}

/// What the stream said so far.
#[derive(Debug, Default)]
struct Answer {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    service_tier: Option<String>,
    /// In the order first seen; sorted by index when written.
    choices: Vec<Choice>,
    /// The raw `usage` object.
    usage: Option<String>,
    /// `data: [DONE]` was seen.
    done: bool,
}

#[derive(Debug)]
struct Choice {
    index: u64,
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    reasoning: Option<String>,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
    /// Raw elements of `logprobs.content` / `logprobs.refusal`; `None` until a chunk
    /// carried that array.
    logprobs_content: Option<Vec<String>>,
    logprobs_refusal: Option<Vec<String>>,
}

#[derive(Debug, Default)]
struct ToolCall {
    index: u64,
    id: String,
    name: String,
    arguments: String,
}

/// One `chat.completion.chunk` (or an error event), borrowed.
#[derive(Deserialize)]
struct ChunkIn<'a> {
    /// `null` reads as `None`: only a real error breaks the stream.
    #[serde(default)]
    error: Option<IgnoredAny>,
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
    delta: Option<DeltaIn<'a>>,
    #[serde(borrow, default)]
    finish_reason: Raw<'a>,
    #[serde(borrow, default)]
    logprobs: Option<LogprobsIn<'a>>,
}

#[derive(Deserialize)]
struct DeltaIn<'a> {
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
    index: Raw<'a>,
    #[serde(borrow, default)]
    id: Raw<'a>,
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

#[derive(Deserialize)]
struct LogprobsIn<'a> {
    #[serde(borrow, default)]
    content: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    refusal: Option<Vec<&'a RawValue>>,
}

/// An event that makes the stream unfit for the cache.
struct Broken;

impl StreamAssembler {
    /// An assembler for one stream.
    pub fn new() -> Self {
        Self {
            aligner: EventAligner::default(),
            answer: Answer::default(),
            broken: false,
        }
    }

    /// Feeds the next bytes of the stream, cut anywhere. After a broken event the rest
    /// is ignored (the stream will not be stored).
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        let answer = &mut self.answer;
        let fed = raw::for_each_data(&mut self.aligner, bytes, |data| answer.event(data));
        if !matches!(fed, Ok(Ok(()))) {
            self.broken = true;
        }
    }

    /// The `chat.completion` JSON of a whole stream; `None` for a partial or failed
    /// one (see [`StreamAssembler`]).
    pub fn finish(self) -> Option<Vec<u8>> {
        self.finish_with_usage(None)
    }

    /// [`StreamAssembler::finish`], with `usage` `(prompt_tokens, completion_tokens)`
    /// written as `{prompt_tokens, completion_tokens, total_tokens}` when the stream
    /// carried none (the gateway may have read the usage chunk and kept it from the
    /// client). A usage the stream carried wins.
    pub fn finish_with_usage(self, usage: Option<(u64, u64)>) -> Option<Vec<u8>> {
        if self.broken || !self.answer.done {
            return None;
        }
        self.answer.write(usage).map(String::into_bytes)
    }
}

impl Answer {
    /// Takes in the data of one event.
    fn event(&mut self, data: &str) -> Result<(), Broken> {
        if self.done {
            return Err(Broken);
        }
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        // A struct also deserialises from an array: make sure this is an object.
        if !data.starts_with('{') {
            return Err(Broken);
        }
        let chunk: ChunkIn<'_> = serde_json::from_str(data).map_err(|_not_a_chunk| Broken)?;
        if chunk.error.is_some() {
            return Err(Broken);
        }
        first_str(&mut self.id, chunk.id);
        first_str(&mut self.model, chunk.model);
        first_str(&mut self.system_fingerprint, chunk.system_fingerprint);
        first_str(&mut self.service_tier, chunk.service_tier);
        if self.created.is_none() {
            self.created = as_u64(chunk.created);
        }
        if raw::is_object(chunk.usage) {
            self.usage = chunk.usage.map(|u| u.get().to_owned());
        }
        for choice in chunk.choices.unwrap_or_default() {
            self.choice(choice);
        }
        Ok(())
    }

    fn choice(&mut self, delta: ChoiceIn<'_>) {
        let index = as_u64(delta.index).unwrap_or(0);
        let choice = slot(
            &mut self.choices,
            |c| c.index == index,
            || Choice::new(index),
        );
        if let Some(reason) = as_str(delta.finish_reason) {
            choice.finish_reason = Some(reason.into_owned());
        }
        if let Some(logprobs) = delta.logprobs {
            extend_raw(&mut choice.logprobs_content, logprobs.content);
            extend_raw(&mut choice.logprobs_refusal, logprobs.refusal);
        }
        let Some(delta) = delta.delta else {
            return;
        };
        first_str(&mut choice.role, delta.role);
        append(&mut choice.content, delta.content);
        append(&mut choice.refusal, delta.refusal);
        append(&mut choice.reasoning, delta.reasoning_content);
        for call in delta.tool_calls.unwrap_or_default() {
            let index = as_u64(call.index).unwrap_or(0);
            let merged = slot(
                &mut choice.tool_calls,
                |t| t.index == index,
                || ToolCall {
                    index,
                    ..ToolCall::default()
                },
            );
            if merged.id.is_empty() {
                merged.id = as_str(call.id).unwrap_or_default().into_owned();
            }
            if let Some(function) = call.function {
                if merged.name.is_empty() {
                    merged.name = as_str(function.name).unwrap_or_default().into_owned();
                }
                if let Some(arguments) = as_str(function.arguments) {
                    merged.arguments.push_str(&arguments);
                }
            }
        }
    }

    /// The `chat.completion` JSON; `None` when the stream lacked what one needs.
    fn write(mut self, usage: Option<(u64, u64)>) -> Option<String> {
        let (id, created, model) = (self.id.as_deref()?, self.created?, self.model.as_deref()?);
        if self.choices.is_empty() || self.choices.iter().any(|c| c.finish_reason.is_none()) {
            return None;
        }
        self.choices.sort_by_key(|c| c.index);
        let mut out =
            String::with_capacity(256 + self.choices.iter().map(Choice::len).sum::<usize>());
        out.push_str("{\"id\":");
        push_str(&mut out, id);
        out.push_str(",\"object\":\"chat.completion\",\"created\":");
        out.push_str(&created.to_string());
        out.push_str(",\"model\":");
        push_str(&mut out, model);
        out.push_str(",\"choices\":[");
        for (i, choice) in self.choices.iter_mut().enumerate() {
            if i > 0 {
                out.push(',');
            }
            choice.write(&mut out);
        }
        out.push(']');
        match (&self.usage, usage) {
            (Some(raw), _) => {
                out.push_str(",\"usage\":");
                push_compact(&mut out, raw);
            }
            (None, Some((prompt, completion))) => {
                out.push_str(&format!(
                    ",\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{}}}",
                    prompt.saturating_add(completion)
                ));
            }
            (None, None) => {}
        }
        if let Some(tier) = &self.service_tier {
            out.push_str(",\"service_tier\":");
            push_str(&mut out, tier);
        }
        if let Some(fingerprint) = &self.system_fingerprint {
            out.push_str(",\"system_fingerprint\":");
            push_str(&mut out, fingerprint);
        }
        out.push('}');
        Some(out)
    }
}

impl Choice {
    fn new(index: u64) -> Self {
        Self {
            index,
            role: None,
            content: None,
            refusal: None,
            reasoning: None,
            tool_calls: Vec::new(),
            finish_reason: None,
            logprobs_content: None,
            logprobs_refusal: None,
        }
    }

    /// Roughly the bytes its JSON takes.
    fn len(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        text(&self.content)
            + text(&self.refusal)
            + text(&self.reasoning)
            + self
                .tool_calls
                .iter()
                .map(|t| 64 + t.id.len() + t.name.len() + t.arguments.len())
                .sum::<usize>()
    }

    /// `{"index","message":{role, content, refusal, reasoning_content?, tool_calls?},
    /// "logprobs","finish_reason"}`. `content` is `null` when no text came and the
    /// answer is tool calls or a refusal (as OpenAI answers those).
    fn write(&mut self, out: &mut String) {
        self.tool_calls.sort_by_key(|t| t.index);
        out.push_str("{\"index\":");
        out.push_str(&self.index.to_string());
        out.push_str(",\"message\":{\"role\":");
        push_str(out, self.role.as_deref().unwrap_or("assistant"));
        out.push_str(",\"content\":");
        let no_text = self.content.as_deref().is_none_or(str::is_empty);
        match &self.content {
            Some(_) if no_text && (!self.tool_calls.is_empty() || self.refusal.is_some()) => {
                out.push_str("null");
            }
            Some(content) => push_str(out, content),
            None => out.push_str("null"),
        }
        out.push_str(",\"refusal\":");
        match &self.refusal {
            Some(refusal) => push_str(out, refusal),
            None => out.push_str("null"),
        }
        if let Some(reasoning) = &self.reasoning {
            out.push_str(",\"reasoning_content\":");
            push_str(out, reasoning);
        }
        if !self.tool_calls.is_empty() {
            out.push_str(",\"tool_calls\":[");
            for (i, call) in self.tool_calls.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"id\":");
                push_str(out, &call.id);
                out.push_str(",\"type\":\"function\",\"function\":{\"name\":");
                push_str(out, &call.name);
                out.push_str(",\"arguments\":");
                push_str(out, &call.arguments);
                out.push_str("}}");
            }
            out.push(']');
        }
        out.push_str("},\"logprobs\":");
        if self.logprobs_content.is_none() && self.logprobs_refusal.is_none() {
            out.push_str("null");
        } else {
            out.push_str("{\"content\":");
            write_raw_array(out, self.logprobs_content.as_deref());
            out.push_str(",\"refusal\":");
            write_raw_array(out, self.logprobs_refusal.as_deref());
            out.push('}');
        }
        out.push_str(",\"finish_reason\":");
        push_str(out, self.finish_reason.as_deref().unwrap_or("stop"));
        out.push('}');
    }
}

/// The element of `items` that `found` picks, added with `new` when there is none.
fn slot<T>(items: &mut Vec<T>, found: impl Fn(&T) -> bool, new: impl FnOnce() -> T) -> &mut T {
    let at = match items.iter().position(found) {
        Some(at) => at,
        None => {
            items.push(new());
            items.len() - 1
        }
    };
    &mut items[at]
}

/// Sets `slot` from a string field the first time one comes (empty strings skipped).
fn first_str(slot: &mut Option<String>, raw: Raw<'_>) {
    if slot.is_none() {
        if let Some(text) = as_str(raw).filter(|t| !t.is_empty()) {
            *slot = Some(text.into_owned());
        }
    }
}

/// Appends a text piece (a string field; `null` and other types add nothing).
fn append(slot: &mut Option<String>, raw: Raw<'_>) {
    if let Some(piece) = as_str(raw) {
        slot.get_or_insert_with(String::new).push_str(&piece);
    }
}

fn extend_raw(slot: &mut Option<Vec<String>>, items: Option<Vec<&RawValue>>) {
    if let Some(items) = items {
        slot.get_or_insert_with(Vec::new)
            .extend(items.into_iter().map(|r| r.get().to_owned()));
    }
}

fn write_raw_array(out: &mut String, items: Option<&[String]>) {
    let Some(items) = items else {
        out.push_str("null");
        return;
    };
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_compact(out, item);
    }
    out.push(']');
}
