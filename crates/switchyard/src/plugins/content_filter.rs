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
            texts_in(&mut m["content"], f);
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
        }))
    }
}

/// Per-stream state: for each choice index, the recent text (reject) or the text held
/// back (redact).
struct StreamFilter {
    rules: Arc<Rules>,
    choices: HashMap<u64, String>,
}

/// The last `n` characters of `s`, as a byte offset.
fn tail_start(s: &str, n: usize) -> usize {
    s.char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i)
}

/// The fields of a `chat.completion.chunk` the filter reads, borrowed from the event.
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
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(borrow, default)]
    content: Option<std::borrow::Cow<'a, str>>,
}

impl ChunkFilter for StreamFilter {
    fn on_event(&mut self, event: &mut SseEvent) -> ChunkVerdict {
        if event.is_done() {
            return self.flush_before_done(event);
        }
        match self.rules.action {
            Action::Reject => self.scan(event),
            Action::Redact => self.redact(event),
        }
    }
}

impl StreamFilter {
    /// `reject`: reads the deltas without building a tree; the event passes as is.
    fn scan(&mut self, event: &SseEvent) -> ChunkVerdict {
        let Some(view) = event.view::<ChunkView<'_>>() else {
            return self.scan_slow(event);
        };
        for choice in &view.choices {
            let Some(text) = choice.delta.as_ref().and_then(|d| d.content.as_deref()) else {
                continue;
            };
            if let Some(r) = self.push_and_check(choice.index, text) {
                return ChunkVerdict::End(r);
            }
        }
        ChunkVerdict::Pass
    }

    /// Events in an unusual shape (several lines): parse them whole.
    fn scan_slow(&mut self, event: &SseEvent) -> ChunkVerdict {
        let Some(v) = event
            .data()
            .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        else {
            return ChunkVerdict::Pass;
        };
        for choice in v["choices"].as_array().into_iter().flatten() {
            if let Some(text) = choice["delta"]["content"].as_str() {
                let index = choice["index"].as_u64().unwrap_or(0);
                if let Some(r) = self.push_and_check(index, text) {
                    return ChunkVerdict::End(r);
                }
            }
        }
        ChunkVerdict::Pass
    }

    fn push_and_check(&mut self, index: u64, text: &str) -> Option<Rejection> {
        let held = self.choices.entry(index).or_default();
        held.push_str(text);
        if self.rules.regex.is_match(held) {
            return Some(self.rules.rejection("response"));
        }
        let keep = tail_start(held, self.rules.window);
        held.drain(..keep);
        None
    }

    /// `redact`: holds back the tail of each choice's text and rewrites the delta.
    fn redact(&mut self, event: &mut SseEvent) -> ChunkVerdict {
        let rules = self.rules.clone();
        let Some(json) = event.json_mut() else {
            return ChunkVerdict::Pass;
        };
        let Some(choices) = json.get_mut("choices").and_then(Value::as_array_mut) else {
            return ChunkVerdict::Pass;
        };
        for choice in choices {
            let index = choice["index"].as_u64().unwrap_or(0);
            let finished = !choice["finish_reason"].is_null();
            let delta = choice["delta"]["content"].as_str().unwrap_or("").to_owned();
            let held = self.choices.entry(index).or_default();
            held.push_str(&delta);
            let redacted = rules
                .regex
                .replace_all(held, rules.replacement.as_str())
                .into_owned();
            let cut = if finished {
                redacted.len()
            } else {
                tail_start(&redacted, rules.window)
            };
            let (send, keep) = redacted.split_at(cut);
            if !send.is_empty() || !delta.is_empty() {
                choice["delta"]["content"] = Value::String(send.to_owned());
            }
            *held = keep.to_owned();
        }
        ChunkVerdict::Pass
    }
}

impl StreamFilter {
    /// At `[DONE]`, text still held back (no finish chunk came) goes out first.
    fn flush_before_done(&mut self, event: &mut SseEvent) -> ChunkVerdict {
        if self.rules.action == Action::Redact {
            for (index, held) in self.choices.drain() {
                if held.is_empty() {
                    continue;
                }
                let chunk = serde_json::json!({"object": "chat.completion.chunk",
                    "choices": [{"index": index, "delta": {"content": held}, "finish_reason": null}]});
                event
                    .before
                    .push(switchyard_dialects::sse::data_event(&chunk.to_string()));
            }
        }
        ChunkVerdict::Pass
    }
}

#[cfg(test)]
mod tests;
