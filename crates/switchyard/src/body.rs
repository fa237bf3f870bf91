//! The response body type: a complete buffer, or a relay of an upstream body (or of
//! the mock model's ready-made events). The relay forwards whatever is ready in one
//! write (no waiting: only frames already received are coalesced), enforces the idle
//! timeout, keeps SSE output aligned to whole events, runs stream hooks (`on_chunk`
//! filters, usage capture) when a request has them, and — when an SSE stream breaks
//! after bytes were sent — ends it with an OpenAI-shaped error event, never a silent
//! cut.

use crate::plugins::chain::{filter_event, flush_filters, ActiveFilter, FilterOutcome};
use crate::plugins::{Rejection, Usage};
use crate::upstream::h1::H1Body;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchyard_dialects::error_event;
use switchyard_dialects::sse::{split_events, EventAligner};
use tokio::time::{Instant, Sleep};

/// Error type of a relayed body; makes hyper abort the client connection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most bytes gathered into one write.
const MAX_COALESCE: usize = 64 * 1024;

/// Every response body the gateway sends.
#[derive(Debug)]
pub enum ResponseBody {
    /// One buffer (errors, JSON built here, mock replies).
    Full(Option<Bytes>),
    /// A body relayed as it arrives.
    Relay(Box<Relay>),
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Relay(relay) => relay.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Relay(relay) => relay.done && relay.fail_next.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Relay(relay) => match (&relay.source, &relay.aligner) {
                (Source::Upstream(body), None) => match body.remaining() {
                    Some(n) => SizeHint::with_exact(n),
                    None => SizeHint::default(),
                },
                _ => SizeHint::default(),
            },
        }
    }
}

/// Counts open streams; the count drops when the guard does (stream finished or the
/// client went away).
#[derive(Debug)]
pub struct StreamGuard(Arc<AtomicU32>);

impl StreamGuard {
    /// Takes a slot if fewer than `limit` are taken.
    pub fn acquire(counter: &Arc<AtomicU32>, limit: u32) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(counter.clone()))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a stream went, for `post_response` plugins.
#[derive(Debug, Default)]
pub struct StreamSummary {
    /// Usage, if the upstream reported it.
    pub usage: Option<Usage>,
    /// The assistant text, if collected.
    pub text: Option<String>,
}

/// Per-request work on a stream's events.
#[derive(Default)]
pub struct StreamHooks {
    /// `on_chunk` filters, in run order.
    pub filters: Vec<ActiveFilter>,
    /// Read `usage` from the events.
    pub capture_usage: bool,
    /// Leave out the usage-only chunk (the client did not ask for it).
    pub strip_usage: bool,
    /// Collect the assistant text.
    pub collect_text: bool,
    /// Called once when the stream ends, however it ends.
    pub on_end: Option<Box<dyn FnOnce(StreamSummary) + Send>>,
    /// Filled in as the stream goes.
    pub summary: StreamSummary,
}

impl std::fmt::Debug for StreamHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHooks")
            .field("filters", &self.filters)
            .field("capture_usage", &self.capture_usage)
            .field("strip_usage", &self.strip_usage)
            .finish_non_exhaustive()
    }
}

impl StreamHooks {
    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(std::mem::take(&mut self.summary));
        }
    }

    /// Runs the hooks over whole events; `Err` carries what to send before ending.
    /// When every event comes out as it went in (the usual case for reject filters and
    /// usage capture), the aligned bytes are passed on without a copy.
    fn process(&mut self, aligned: &Bytes) -> Result<Bytes, Box<(Bytes, Rejection)>> {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut unchanged = true;
        for event in split_events(aligned) {
            if (self.capture_usage || self.collect_text)
                && self.inspect(&event) == Some(true)
                && self.strip_usage
            {
                unchanged = false;
                continue;
            }
            let (ptr, len) = (event.as_ptr(), event.len());
            match filter_event(&mut self.filters, event) {
                FilterOutcome::Send(sent) => {
                    unchanged &=
                        matches!(sent.as_slice(), [one] if one.as_ptr() == ptr && one.len() == len);
                    parts.extend(sent);
                }
                FilterOutcome::End(sent, rejection) => {
                    parts.extend(sent);
                    return Err(Box::new((join(&parts), rejection)));
                }
            }
        }
        Ok(if unchanged {
            aligned.clone()
        } else {
            join(&parts)
        })
    }

    /// Reads usage and text from one event; `Some(true)` for a usage-only chunk.
    fn inspect(&mut self, event: &Bytes) -> Option<bool> {
        let has_usage = contains(event, b"\"usage\"");
        if !has_usage && !self.collect_text {
            return None;
        }
        let data = switchyard_dialects::sse::single_data(event)?;
        let v: serde_json::Value = serde_json::from_str(&data).ok()?;
        if self.collect_text {
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                self.summary
                    .text
                    .get_or_insert_with(String::new)
                    .push_str(t);
            }
        }
        let usage = Usage::from_json(&v);
        if usage.is_some() {
            self.summary.usage = usage;
        }
        let choices_empty = v["choices"].as_array().is_some_and(Vec::is_empty);
        Some(usage.is_some() && choices_empty)
    }
}

fn join(parts: &[Bytes]) -> Bytes {
    match parts {
        [one] => one.clone(),
        _ => {
            let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            parts.iter().for_each(|p| out.extend_from_slice(p));
            out.freeze()
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[derive(Debug)]
enum Source {
    Upstream(H1Body),
    Frames(VecDeque<Bytes>),
}

impl Source {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        match self {
            Self::Frames(frames) => Poll::Ready(frames.pop_front().map(Ok)),
            Self::Upstream(body) => body.poll_data(cx),
        }
    }
}

/// A body on its way to the client.
#[derive(Debug)]
pub struct Relay {
    source: Source,
    /// `Some` for SSE: output is cut at event boundaries.
    aligner: Option<EventAligner>,
    hooks: Option<Box<StreamHooks>>,
    idle: Duration,
    last_data: Instant,
    deadline: Option<Pin<Box<Sleep>>>,
    upstream_name: Arc<str>,
    done: bool,
    fail_next: Option<Bytes>,
    _guard: Option<StreamGuard>,
}

impl Relay {
    /// Relays an upstream body. `sse` turns on event alignment and error events.
    pub fn upstream(
        upstream: H1Body,
        sse: bool,
        idle: Duration,
        upstream_name: Arc<str>,
        guard: Option<StreamGuard>,
    ) -> Self {
        Self::new(Source::Upstream(upstream), sse, idle, upstream_name, guard)
    }

    /// Relays ready-made SSE events (the mock model).
    pub fn events(events: Vec<Bytes>, upstream_name: Arc<str>) -> Self {
        Self::new(
            Source::Frames(events.into()),
            true,
            Duration::from_secs(60),
            upstream_name,
            None,
        )
    }

    fn new(
        source: Source,
        sse: bool,
        idle: Duration,
        upstream_name: Arc<str>,
        guard: Option<StreamGuard>,
    ) -> Self {
        Self {
            source,
            aligner: sse.then(EventAligner::default),
            hooks: None,
            idle,
            last_data: Instant::now(),
            deadline: None,
            upstream_name,
            done: false,
            fail_next: None,
            _guard: guard,
        }
    }

    /// Whether this relays SSE.
    pub fn is_sse(&self) -> bool {
        self.aligner.is_some()
    }

    /// Installs per-request stream hooks (SSE only).
    pub fn set_hooks(&mut self, hooks: StreamHooks) {
        if self.is_sse() {
            self.hooks = Some(Box::new(hooks));
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(event) = self.fail_next.take() {
            return Poll::Ready(Some(Ok(Frame::data(event))));
        }
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            // Take everything that is ready now, up to MAX_COALESCE bytes.
            let mut first: Option<Bytes> = None;
            let mut more: Option<BytesMut> = None;
            let mut ended = false;
            let mut broke = None;
            let mut pending = false;
            loop {
                match self.source.poll_data(cx) {
                    Poll::Ready(Some(Ok(data))) => {
                        match (&first, &mut more) {
                            (None, _) => first = Some(data),
                            (Some(f), None) => {
                                let mut m = BytesMut::with_capacity(f.len() + data.len());
                                m.extend_from_slice(f);
                                m.extend_from_slice(&data);
                                more = Some(m);
                            }
                            (Some(_), Some(m)) => m.extend_from_slice(&data),
                        }
                        let size = more
                            .as_ref()
                            .map_or_else(|| first.as_ref().map_or(0, Bytes::len), BytesMut::len);
                        if size >= MAX_COALESCE {
                            break;
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        broke = Some(e.to_string());
                        break;
                    }
                    Poll::Ready(None) => {
                        ended = true;
                        break;
                    }
                    Poll::Pending => {
                        pending = true;
                        break;
                    }
                }
            }
            let data = match more {
                Some(m) => Some(m.freeze()),
                None => first,
            };
            let mut out = Bytes::new();
            if let Some(data) = data {
                self.last_data = Instant::now();
                match self.aligner.as_mut() {
                    None => out = data,
                    Some(aligner) => {
                        let pushed = match aligner.push(data) {
                            Ok(pushed) => pushed,
                            Err(e) => {
                                tracing::warn!(upstream = %self.upstream_name, error = %e, "upstream event too large");
                                return self.fail(Bytes::new(), "an upstream event exceeded 1 MiB");
                            }
                        };
                        if let Some(aligned) = pushed {
                            match self.hooks.as_mut() {
                                None => out = aligned,
                                Some(hooks) => match hooks.process(&aligned) {
                                    Ok(bytes) => out = bytes,
                                    Err(stopped) => {
                                        let (before, rejection) = *stopped;
                                        return self.stop(before, &rejection);
                                    }
                                },
                            }
                        }
                    }
                }
            }
            if let Some(e) = broke {
                tracing::warn!(upstream = %self.upstream_name, error = %e, "upstream body broke");
                return self.fail(out, "the upstream connection broke mid-response");
            }
            if ended {
                self.done = true;
                let rest = self
                    .aligner
                    .as_mut()
                    .map(EventAligner::take_rest)
                    .unwrap_or_default();
                match self.hooks.as_mut() {
                    // With hooks, an unfinished last event is dropped (SSE clients discard
                    // it too), so nothing reaches the client unfiltered; what the filters
                    // held back goes out.
                    Some(hooks) => {
                        match flush_filters(&mut hooks.filters) {
                            FilterOutcome::Send(parts) => {
                                for p in parts {
                                    out = concat(out, p);
                                }
                            }
                            FilterOutcome::End(parts, rejection) => {
                                for p in parts {
                                    out = concat(out, p);
                                }
                                return self.stop(out, &rejection);
                            }
                        }
                        hooks.finish();
                    }
                    None if !rest.is_empty() => out = concat(out, rest),
                    None => {}
                }
                return Poll::Ready((!out.is_empty()).then(|| Ok(Frame::data(out))));
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            if pending {
                return self.poll_idle(cx);
            }
        }
    }

    /// Nothing to send and the source is waiting: arm (lazily) and check the idle timer.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let due = self.last_data + self.idle;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if deadline.deadline() != due {
            deadline.as_mut().reset(due);
        }
        match deadline.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                tracing::warn!(upstream = %self.upstream_name, idle = ?self.idle, "upstream went idle");
                self.fail(
                    Bytes::new(),
                    "the upstream stopped sending before the response was complete",
                )
            }
        }
    }

    /// Ends the body after an upstream failure: what was received whole, then an error
    /// event for SSE; an aborted connection otherwise (a truncated JSON body must not
    /// look complete).
    fn fail(&mut self, out: Bytes, why: &str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        if let Some(hooks) = self.hooks.as_mut() {
            hooks.finish();
        }
        let message = format!("{why} (upstream: {})", self.upstream_name);
        if self.aligner.is_none() {
            return Poll::Ready(Some(Err(message.into())));
        }
        let event = error_event(&message, "server_error", Some("upstream_stream_error"));
        if out.is_empty() {
            Poll::Ready(Some(Ok(Frame::data(event))))
        } else {
            self.fail_next = Some(event);
            Poll::Ready(Some(Ok(Frame::data(out))))
        }
    }

    /// Ends the stream because a filter said so: what it let through, then its error.
    fn stop(
        &mut self,
        before: Bytes,
        r: &Rejection,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        if let Some(hooks) = self.hooks.as_mut() {
            hooks.finish();
        }
        let event = error_event(&r.message, &r.kind, Some(&r.code));
        Poll::Ready(Some(Ok(Frame::data(concat(before, event)))))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The client went away (or the body was dropped early): hooks still learn it ended.
        if let Some(hooks) = self.hooks.as_mut() {
            hooks.finish();
        }
    }
}

fn concat(a: Bytes, b: Bytes) -> Bytes {
    if a.is_empty() {
        return b;
    }
    let mut m = BytesMut::with_capacity(a.len() + b.len());
    m.extend_from_slice(&a);
    m.extend_from_slice(&b);
    m.freeze()
}
