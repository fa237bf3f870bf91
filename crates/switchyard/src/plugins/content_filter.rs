//! `content_filter`: regex `banned_patterns` over request text (`pre_request`), over
//! streamed replies (`on_chunk`) and complete replies (`post_response`). `reject`
//! refuses (requests: 400 `content_filter`; streams end with an error event);
//! `redact` replaces each match with `replacement`.
//!
//! Streams: each choice keeps a window of its last `stream_window` characters, so a
//! pattern split across two chunks is still caught. With `redact`, those characters
//! are held back until the next chunk (or the end) so a split match can be replaced
//! before any of it is sent.

use super::{
    BuildCtx, ChunkFilter, ChunkVerdict, Exchange, Plugin, PluginFuture, Rejection, RequestMeta,
    ResponseExchange, SseEvent, Verdict,
};
use http::StatusCode;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use switchyard_config::ConfigError;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Action {
    Reject,
    Redact,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    banned_patterns: Vec<String>,
    #[serde(default = "default_action")]
    action: Action,
    #[serde(default = "default_replacement")]
    replacement: String,
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default = "default_window")]
    stream_window: usize,
}

fn default_action() -> Action {
    Action::Reject
}
fn default_replacement() -> String {
    "[REDACTED]".to_owned()
}
fn default_status() -> u16 {
    400
}
fn default_window() -> usize {
    64
}

#[derive(Debug)]
struct Rules {
    regex: Regex,
    action: Action,
    replacement: String,
    status: StatusCode,
    window: usize,
}

struct ContentFilter(Arc<Rules>);

pub(super) fn build(ctx: &BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>> {
    let s: Settings = ctx.config()?;
    if s.banned_patterns.is_empty() {
        return Err(ctx.error("banned_patterns", "list at least one pattern"));
    }
    let mut errors = Vec::new();
    for (i, p) in s.banned_patterns.iter().enumerate() {
        if let Err(e) = Regex::new(p) {
            errors.extend(ctx.error(
                &format!("banned_patterns[{i}]"),
                format!("not a valid regex: {}", one_line(&e)),
            ));
        }
    }
    let status = StatusCode::from_u16(s.status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error());
    if status.is_none() {
        errors.extend(ctx.error("status", "must be a 4xx or 5xx status"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let combined: Vec<String> = s
        .banned_patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect();
    let regex = Regex::new(&combined.join("|"))
        .map_err(|e| ctx.error("banned_patterns", format!("patterns do not combine: {e}")))?;
    Ok(Arc::new(ContentFilter(Arc::new(Rules {
        regex,
        action: s.action,
        replacement: s.replacement,
        status: status.unwrap_or(StatusCode::BAD_REQUEST),
        window: s.stream_window.max(1),
    }))))
}

/// The regex crate's errors draw a caret diagram over several lines; keep the verdict.
fn one_line(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map_or(text.clone(), |l| {
            l.trim().trim_start_matches("error: ").to_owned()
        })
}

impl Rules {
    fn rejection(&self, what: &str) -> Rejection {
        Rejection::new(
            self.status,
            "invalid_request_error",
            "content_filter",
            format!("The {what} was blocked by the gateway's content filter."),
        )
    }
}

/// A read-only walk over the strings of a body.
type Walk = fn(&Value, &mut dyn FnMut(&str));
/// The same walk, allowing changes.
type WalkMut = fn(&mut Value, &mut dyn FnMut(&mut String));

fn request_strs(body: &Value, f: &mut dyn FnMut(&str)) {
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for m in messages {
            strs_in(&m["content"], f);
        }
    }
    for key in ["prompt", "input"] {
        if let Some(v) = body.get(key) {
            strs_in(v, f);
        }
    }
}

fn reply_strs(body: &Value, f: &mut dyn FnMut(&str)) {
    if let Some(choices) = body.get("choices").and_then(Value::as_array) {
        for c in choices {
            if let Some(s) = c["message"]["content"].as_str() {
                f(s);
            }
            if let Some(s) = c["text"].as_str() {
                f(s);
            }
        }
    }
}

fn strs_in(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => {
            for item in items {
                if let Some(s) = item.as_str().or_else(|| item["text"].as_str()) {
                    f(s);
                }
            }
        }
        _ => {}
    }
}

/// Every string the client wrote: message contents (text and text parts), `prompt`,
/// `input`.
fn request_texts(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) {
        for m in messages {
            if let Some(content) = m.get_mut("content") {
                texts_in(content, f);
            }
        }
    }
    for key in ["prompt", "input"] {
        if let Some(v) = body.get_mut(key) {
            texts_in(v, f);
        }
    }
}

/// Every string of a reply: `choices[].message.content` and `choices[].text`.
fn reply_texts(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) {
        for c in choices {
            if let Some(Value::String(s)) = c.get_mut("message").and_then(|m| m.get_mut("content"))
            {
                f(s);
            }
            if let Some(Value::String(s)) = c.get_mut("text") {
                f(s);
            }
        }
    }
}

fn texts_in(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => f(s),
                    Value::Object(part) => {
                        if let Some(Value::String(s)) = part.get_mut("text") {
                            f(s);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Whether any string of `body` that `walk` visits matches.
fn any_match(rules: &Rules, body: &Value, walk: Walk) -> bool {
    let mut found = false;
    walk(body, &mut |s: &str| found |= rules.regex.is_match(s));
    found
}

fn redact_all(rules: &Rules, body: &mut Value, walk: WalkMut) {
    walk(body, &mut |s| {
        if rules.regex.is_match(s) {
            *s = rules
                .regex
                .replace_all(s, rules.replacement.as_str())
                .into_owned();
        }
    });
}

impl ContentFilter {
    fn judge(&self, body: Option<&Value>, what: &str, walk: Walk, walk_mut: WalkMut) -> Verdict {
        let rules = &self.0;
        let Some(body) = body else {
            return Verdict::pass();
        };
        if !any_match(rules, body, walk) {
            return Verdict::pass();
        }
        match rules.action {
            Action::Reject => Verdict::Reject(rules.rejection(what)),
            Action::Redact => {
                let rules = self.0.clone();
                Verdict::patch(move |b| redact_all(&rules, b, walk_mut))
            }
        }
    }
}

impl Plugin for ContentFilter {
    fn needs_request_body(&self) -> bool {
        true
    }

    fn needs_response_body(&self) -> bool {
        true
    }

    fn modifies(&self) -> bool {
        self.0.action == Action::Redact
    }

    fn pre_request<'a>(&'a self, ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        Box::pin(std::future::ready(Ok(self.judge(
            ex.body,
            "request",
            request_strs,
            request_texts,
        ))))
    }

    fn post_response<'a>(&'a self, ex: ResponseExchange<'a>) -> PluginFuture<'a, Verdict> {
        let verdict = if ex.streamed {
            Verdict::pass() // streams were filtered chunk by chunk
        } else {
            self.judge(ex.body, "response", reply_strs, reply_texts)
        };
        Box::pin(std::future::ready(Ok(verdict)))
    }

    fn chunk_filter(&self, _meta: &RequestMeta) -> Option<Box<dyn ChunkFilter>> {
        Some(Box::new(StreamFilter {
            rules: self.0.clone(),
            choices: HashMap::new(),
            template: None,
        }))
    }
}

/// Where a stream chunk keeps its text: chat (`delta.content`) or completions (`text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Chat,
    Completion,
}

/// Per-choice state: the recent text (reject: a window to catch split matches) or the
/// raw text held back (redact: not sent yet).
#[derive(Debug)]
struct Held {
    text: String,
    shape: Shape,
}

/// Per-stream state of the filter.
struct StreamFilter {
    rules: Arc<Rules>,
    choices: HashMap<u64, Held>,
    /// `id`, `object`, `created`, `model` of the stream, for chunks the filter writes.
    template: Option<serde_json::Map<String, Value>>,
}

/// The last `n` characters of `s`, as a byte offset.
fn tail_start(s: &str, n: usize) -> usize {
    s.char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i)
}

/// The fields of a stream chunk the filter reads, borrowed from the event.
#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(borrow, default)]
    choices: Vec<ChoiceView<'a>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow, default)]
    delta: Option<DeltaView<'a>>,
    #[serde(borrow, default)]
    text: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(borrow, default)]
    content: Option<std::borrow::Cow<'a, str>>,
}

impl ChoiceView<'_> {
    fn text(&self) -> Option<(&str, Shape)> {
        if let Some(t) = self.delta.as_ref().and_then(|d| d.content.as_deref()) {
            return Some((t, Shape::Chat));
        }
        self.text.as_deref().map(|t| (t, Shape::Completion))
    }
}

/// The text of one choice of a parsed chunk, and where it sits.
fn choice_text(choice: &Value) -> Option<(&str, Shape)> {
    if let Some(t) = choice["delta"]["content"].as_str() {
        return Some((t, Shape::Chat));
    }
    choice["text"].as_str().map(|t| (t, Shape::Completion))
}

/// Writes a choice's text back where it was found (objects only; never panics).
fn set_choice_text(choice: &mut Value, shape: Shape, text: String) {
    let Some(choice) = choice.as_object_mut() else {
        return;
    };
    match shape {
        Shape::Completion => {
            choice.insert("text".to_owned(), Value::String(text));
        }
        Shape::Chat => {
            let delta = choice
                .entry("delta")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(delta) = delta.as_object_mut() {
                delta.insert("content".to_owned(), Value::String(text));
            }
        }
    }
}

impl ChunkFilter for StreamFilter {
    fn on_event(&mut self, event: &mut SseEvent) -> ChunkVerdict {
        if event.is_done() {
            return ChunkVerdict::Pass;
        }
        match self.rules.action {
            Action::Reject => self.scan(event),
            Action::Redact => self.redact(event),
        }
    }

    fn flush(&mut self) -> Vec<bytes::Bytes> {
        if self.rules.action != Action::Redact {
            return Vec::new();
        }
        let mut held: Vec<(u64, Held)> = self.choices.drain().collect();
        held.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (index, h) in held {
            if h.text.is_empty() {
                continue;
            }
            let text = self
                .rules
                .regex
                .replace_all(&h.text, self.rules.replacement.as_str())
                .into_owned();
            let mut chunk = self.template.clone().unwrap_or_default();
            let mut choice = serde_json::json!({"index": index, "finish_reason": null});
            set_choice_text(&mut choice, h.shape, text);
            chunk.insert("choices".to_owned(), Value::Array(vec![choice]));
            out.push(switchyard_dialects::sse::data_event(
                &Value::Object(chunk).to_string(),
            ));
        }
        out
    }
}

impl StreamFilter {
    /// `reject`: reads the text without building a tree; the event passes as is.
    fn scan(&mut self, event: &SseEvent) -> ChunkVerdict {
        if let Some(view) = event.view::<ChunkView<'_>>() {
            for choice in &view.choices {
                if let Some((text, shape)) = choice.text() {
                    if let Some(r) = self.push_and_check(choice.index, text, shape) {
                        return ChunkVerdict::End(r);
                    }
                }
            }
            return ChunkVerdict::Pass;
        }
        // Unusual shapes (several data lines, odd types): parse the whole event.
        let Some(v) = event
            .data()
            .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        else {
            return ChunkVerdict::Pass;
        };
        for choice in v["choices"].as_array().into_iter().flatten() {
            if let Some((text, shape)) = choice_text(choice) {
                let index = choice["index"].as_u64().unwrap_or(0);
                if let Some(r) = self.push_and_check(index, text, shape) {
                    return ChunkVerdict::End(r);
                }
            }
        }
        ChunkVerdict::Pass
    }

    fn push_and_check(&mut self, index: u64, text: &str, shape: Shape) -> Option<Rejection> {
        let held = self.choices.entry(index).or_insert_with(|| Held {
            text: String::new(),
            shape,
        });
        held.text.push_str(text);
        if self.rules.regex.is_match(&held.text) {
            return Some(self.rules.rejection("response"));
        }
        let keep = tail_start(&held.text, self.rules.window);
        held.text.drain(..keep);
        None
    }

    /// `redact`: sends each choice's text only up to a point no match can still grow
    /// past (and at least `stream_window` characters back from the end), redacted; the
    /// rest waits for the next chunk, or the end.
    fn redact(&mut self, event: &mut SseEvent) -> ChunkVerdict {
        let rules = self.rules.clone();
        let Some(json) = event.json_mut() else {
            return ChunkVerdict::Pass;
        };
        if self.template.is_none() {
            if let Some(obj) = json.as_object() {
                let keep = ["id", "object", "created", "model", "system_fingerprint"];
                self.template = Some(
                    obj.iter()
                        .filter(|(k, _)| keep.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
            }
        }
        let Some(choices) = json.get_mut("choices").and_then(Value::as_array_mut) else {
            return ChunkVerdict::Pass;
        };
        for choice in choices {
            let index = choice["index"].as_u64().unwrap_or(0);
            let finished = !choice["finish_reason"].is_null();
            let (text, shape) = match choice_text(choice) {
                Some((t, shape)) => (t.to_owned(), Some(shape)),
                None => (String::new(), None),
            };
            let held = self.choices.entry(index).or_insert_with(|| Held {
                text: String::new(),
                shape: shape.unwrap_or(Shape::Chat),
            });
            held.text.push_str(&text);
            let cut = if finished {
                held.text.len()
            } else {
                safe_cut(&rules, &held.text)
            };
            let send = rules
                .regex
                .replace_all(&held.text[..cut], rules.replacement.as_str())
                .into_owned();
            held.text.drain(..cut);
            if shape.is_some() || !send.is_empty() {
                set_choice_text(choice, held.shape, send);
            }
        }
        ChunkVerdict::Pass
    }
}

/// How much of `held` can go out now: everything but the last `window` characters,
/// and nothing from the start of a match that reaches that point (it may still grow).
/// A match that keeps growing past 16 windows is cut anyway, so memory stays bounded.
fn safe_cut(rules: &Rules, held: &str) -> usize {
    let mut cut = tail_start(held, rules.window);
    if held.len().saturating_sub(cut) > 0 {
        for m in rules.regex.find_iter(held) {
            if m.start() >= cut {
                break;
            }
            if m.end() >= cut {
                cut = m.start();
                break;
            }
        }
    }
    let bound = tail_start(held, rules.window.saturating_mul(16));
    cut.max(bound)
}

#[cfg(test)]
mod tests;
