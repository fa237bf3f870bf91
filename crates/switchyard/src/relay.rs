//! The response body type: a complete buffer, or a relay of an upstream body (or of
//! the mock model's ready-made events). The relay forwards whatever is ready in one
//! write (no waiting: only frames already received are coalesced), enforces the idle
//! timeout, keeps SSE output aligned to whole events, reads token usage when asked
//! ([`Relay::read_usage`]: from the events of a stream — leaving out the usage-only
//! chunk the gateway asked for on the client's behalf — or from the end of a JSON body),
//! runs a request's [`StreamHooks`] (the plugin chain implements them: `on_chunk`
//! filters, text for `post_response`) and — when an SSE stream breaks after bytes were
//! sent — ends it with an OpenAI-shaped error event, never a silent cut. It knows
//! nothing of plugins.

use crate::client::h1::H1Body;
use crate::error::Rejection;
use crate::lifecycle;
use crate::metrics::UpstreamMetrics;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchyard_dialects::sse::EventAligner;
use switchyard_dialects::translate::StreamDecode;
use switchyard_dialects::usage::{read_body_end, scan_events, Usage, TAIL_BYTES};
use switchyard_dialects::{complete, error_event};
use tokio::sync::futures::Notified;
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
    /// A chat response on its way back to a Messages (`/v1/messages`) client.
    Ingress(Box<crate::relay::ingress::IngressBody>),
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
            Self::Ingress(body) => body.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Relay(relay) => relay.done && relay.fail_next.is_none(),
            Self::Ingress(body) => body.is_end_stream(),
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
                (Source::Frames(frames), None) => {
                    SizeHint::with_exact(frames.iter().map(|f| f.len() as u64).sum())
                }
                _ => SizeHint::default(),
            },
            Self::Ingress(body) => body.size_hint(),
        }
    }
}

/// Open streams — a counter every config generation shares — and the most allowed at
/// once (`server.max_concurrent_streams` of this generation).
#[derive(Debug, Clone)]
pub struct StreamLimit {
    open: Arc<AtomicU32>,
    /// The limit.
    pub max: u32,
}

impl StreamLimit {
    /// A limit over a (shared) counter.
    pub fn new(open: Arc<AtomicU32>, max: u32) -> Self {
        Self { open, max }
    }

    /// Streams open now (every generation's).
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a slot if fewer than `max` are taken.
    pub fn acquire(&self) -> Option<StreamGuard> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamGuard(self.open.clone()))
    }
}

/// One open stream; the count drops when the guard does (stream finished or the
/// client went away).
#[derive(Debug)]
pub struct StreamGuard(Arc<AtomicU32>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-request work on a stream's events (the plugin chain's `on_chunk` filters and
/// text collection implement it). The relay hands it whole SSE events only — after
/// usage was read and a usage-only chunk the client did not ask for was left out — and
/// calls [`StreamHooks::finish`] at least once (implementations act on the first),
/// however the stream ends.
pub trait StreamHooks: Send + std::fmt::Debug {
    /// Whole events in, what to send out; `Err` carries what to send before the stream
    /// ends with the rejection's error event.
    fn on_events(&mut self, aligned: &Bytes) -> Result<Bytes, Box<(Bytes, Rejection)>>;

    /// The upstream ended cleanly: whatever the hooks held back, or a final rejection.
    fn on_upstream_end(&mut self) -> Result<Bytes, Box<(Bytes, Rejection)>>;

    /// The stream is over (completed, failed, stopped or dropped by the client), with
    /// the usage the relay read from it (when [`Relay::read_usage`] was on and the
    /// upstream reported it).
    fn finish(&mut self, usage: Option<Usage>);
}

/// Sees the upstream's answer as the relay reads it — whole SSE events, before any
/// per-request hook changed them (a usage chunk the client did not ask for already left
/// out) — and how the body ended. The response cache keeps a whole answer through it.
pub trait Tee: Send {
    /// The next bytes of the answer.
    fn frame(&mut self, data: &Bytes);

    /// The body is over (completed, failed, or dropped by the client).
    fn end(self: Box<Self>, stats: &BodyStats);
}

/// One upstream attempt in flight, until its answer's body ends (or the attempt
/// failed); the count is the upstream's, shown by the admin API.
#[derive(Debug)]
pub struct InFlight(Arc<std::sync::atomic::AtomicU64>);

impl InFlight {
    /// Counts one more in flight on `count` until dropped.
    pub fn new(count: Arc<std::sync::atomic::AtomicU64>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the relay saw of one body, reported once when it is dropped (finished, failed,
/// or abandoned by the client).
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyStats {
    /// Bytes handed to the client.
    pub bytes: u64,
    /// Frames handed to the client.
    pub frames: u64,
    /// When the first byte was handed over.
    pub first_byte: Option<Instant>,
    /// Why the body ended early, if it did (one of `metrics::STREAM_FAILURES`).
    pub failure: Option<&'static str>,
    /// The body reached its end (not abandoned by the client). A body whose
    /// `content-length` hyper wrote in full may end without the relay seeing it: false
    /// does not prove it was cut.
    pub completed: bool,
    /// Token usage the upstream reported (when [`Relay::read_usage`] was on).
    pub usage: Option<Usage>,
}

/// Called once with the first frame of a body.
pub type FirstFrame = Box<dyn FnOnce(&Bytes) + Send>;

/// Called once with the body's [`BodyStats`].
pub type BodyObserver = Box<dyn FnOnce(BodyStats) + Send>;

#[derive(Debug)]
enum Source {
    Upstream(H1Body),
    Frames(VecDeque<Bytes>),
    /// An upstream body in another dialect, decoded into OpenAI events as it arrives.
    Translated(Box<translated::Translated>),
}

impl Source {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        match self {
            Self::Frames(frames) => Poll::Ready(frames.pop_front().map(Ok)),
            Self::Upstream(body) => body.poll_data(cx),
            Self::Translated(t) => t.poll_data(cx),
        }
    }

    /// Whether this is an upstream's stream (whose end is checked), translated or not.
    fn is_upstream(&self) -> bool {
        matches!(self, Self::Upstream(_) | Self::Translated(_))
    }
}

/// A body on its way to the client.
pub struct Relay {
    source: Source,
    /// `Some` for SSE: output is cut at event boundaries.
    aligner: Option<EventAligner>,
    hooks: Option<Box<dyn StreamHooks>>,
    idle: Duration,
    last_data: Instant,
    deadline: Option<Pin<Box<Sleep>>>,
    upstream_name: Arc<str>,
    done: bool,
    fail_next: Option<Bytes>,
    _guard: Option<StreamGuard>,
    in_flight: Option<InFlight>,
    /// Called with the first frame handed to the client.
    on_first: Option<FirstFrame>,
    stats: BodyStats,
    observer: Option<BodyObserver>,
    tee: Option<Box<dyn Tee>>,
    upstream_metrics: Option<UpstreamMetrics>,
    usage: Option<UsageWatch>,
    /// SSE: resolves when the drain ends (see `lifecycle`), created when first idle.
    cut: Option<Pin<Box<Notified<'static>>>>,
    /// SSE from an upstream: whether its end (`[DONE]` or a `finish_reason`) was seen;
    /// a stream that stops before it was cut short.
    end_seen: bool,
    /// Whether the stream has an end marker to check (chat and completions streams;
    /// not the typed events of other endpoints).
    check_end: EndCheck,
}

/// Which end marker an upstream stream must reach to count as whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndCheck {
    /// Chat and completions: `[DONE]` or a `finish_reason`.
    Chat,
    /// The Responses API: its terminal event.
    Responses,
    /// Streams whose end is not known (other endpoints).
    None,
}

/// Reading token usage from one body (see [`Relay::read_usage`]).
#[derive(Debug, Default)]
struct UsageWatch {
    /// Leave out the usage-only chunk: the gateway asked for it, the client did not.
    strip: bool,
    /// The last frames of a non-SSE body: at least [`TAIL_BYTES`] when the body has
    /// that many (shared, not copied).
    tail: VecDeque<Bytes>,
    held: usize,
}

impl UsageWatch {
    fn keep(&mut self, data: &Bytes) {
        self.held += data.len();
        self.tail.push_back(data.clone());
        while let Some(front) = self.tail.front() {
            if self.held - front.len() < TAIL_BYTES {
                break;
            }
            self.held -= front.len();
            self.tail.pop_front();
        }
    }

    fn read_tail(&self) -> Option<Usage> {
        match self.tail.as_slices() {
            ([], []) => None,
            ([one], []) | ([], [one]) => read_body_end(one),
            _ => read_body_end(&self.tail.iter().flatten().copied().collect::<Vec<u8>>()),
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("sse", &self.aligner.is_some())
            .field("upstream", &self.upstream_name)
            .field("done", &self.done)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
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

    /// Relays a stream in another dialect, decoded into OpenAI events as it arrives.
    pub fn translated(
        upstream: H1Body,
        decoder: Box<dyn StreamDecode>,
        primed: (Bytes, Option<switchyard_dialects::translate::DecodeError>),
        idle: Duration,
        upstream_name: Arc<str>,
        guard: Option<StreamGuard>,
    ) -> Self {
        let source = Source::Translated(Box::new(translated::Translated::new(
            upstream, decoder, primed,
        )));
        Self::new(source, true, idle, upstream_name, guard)
    }

    /// Relays one ready body (a translated JSON answer).
    pub fn ready(body: Bytes, upstream_name: Arc<str>) -> Self {
        Self::new(
            Source::Frames(VecDeque::from([body])),
            false,
            Duration::from_secs(60),
            upstream_name,
            None,
        )
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
            in_flight: None,
            on_first: None,
            stats: BodyStats::default(),
            observer: None,
            tee: None,
            upstream_metrics: None,
            usage: None,
            cut: None,
            end_seen: false,
            check_end: EndCheck::Chat,
        }
    }

    /// Reads token usage into [`BodyStats::usage`]: from the events of an SSE stream
    /// (only events holding a `"usage": {` are parsed), or from the last few KiB of
    /// any other body. With `strip_usage_chunk`, the usage-only chunk (`choices: []`)
    /// is left out of the stream: the gateway asked for it, the client did not.
    pub fn read_usage(&mut self, strip_usage_chunk: bool) {
        self.usage = Some(UsageWatch {
            strip: strip_usage_chunk,
            ..UsageWatch::default()
        });
    }

    /// Relays a stream without an OpenAI end marker to check (`[DONE]`, a
    /// `finish_reason`): the typed events of endpoints other than chat and completions.
    pub fn without_end_check(&mut self) {
        self.check_end = EndCheck::None;
    }

    /// Relays a Responses API stream: whole only once its terminal event came.
    pub fn with_responses_end_check(&mut self) {
        self.check_end = EndCheck::Responses;
    }

    /// Calls `first` with the first frame handed to the client (a Responses API
    /// answer's id is read there).
    pub fn on_first_frame(&mut self, first: FirstFrame) {
        self.on_first = Some(first);
    }

    /// Keeps the upstream attempt counted in flight until this body ends.
    pub fn hold(&mut self, in_flight: InFlight) {
        self.in_flight = Some(in_flight);
    }

    /// Counts this body's frames and its attempt outcome against an upstream.
    pub fn count_for(&mut self, upstream: UpstreamMetrics) {
        self.upstream_metrics = Some(upstream);
    }

    /// Reports the body's [`BodyStats`] to `observer` once it is dropped.
    pub fn observe(&mut self, observer: BodyObserver) {
        self.observer = Some(observer);
    }

    /// Shows the answer as read (before hooks), and the body's end, to `tee`.
    pub fn tee(&mut self, tee: Box<dyn Tee>) {
        self.tee = Some(tee);
    }

    /// Whether this relays SSE.
    pub fn is_sse(&self) -> bool {
        self.aligner.is_some()
    }

    /// Installs per-request stream hooks (SSE only).
    pub fn set_hooks(&mut self, hooks: Box<dyn StreamHooks>) {
        if self.is_sse() {
            self.hooks = Some(hooks);
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = self.poll_inner(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.stats.bytes += data.len() as u64;
                    self.stats.frames += 1;
                    // hyper stops polling once `is_end_stream` says so: this was the last.
                    if self.done && self.fail_next.is_none() {
                        self.stats.completed = true;
                    }
                    if self.stats.first_byte.is_none() {
                        self.stats.first_byte = Some(Instant::now());
                        if let Some(first) = self.on_first.take() {
                            first(data);
                        }
                    }
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.stats.completed = true,
            Poll::Pending => {}
        }
        polled
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(event) = self.fail_next.take() {
            return Poll::Ready(Some(Ok(Frame::data(event))));
        }
        if !self.done && self.aligner.is_some() && lifecycle::is_cut() {
            return self.shut_down();
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
                        broke = Some(e);
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
                    None => {
                        if let Some(watch) = self.usage.as_mut() {
                            watch.keep(&data);
                        }
                        if let Some(tee) = self.tee.as_mut() {
                            tee.frame(&data);
                        }
                        out = data;
                    }
                    Some(aligner) => {
                        let pushed = match aligner.push(data) {
                            Ok(pushed) => pushed,
                            Err(e) => {
                                tracing::warn!(upstream = %self.upstream_name, error = %e, "upstream event too large");
                                return self.fail(
                                    Bytes::new(),
                                    "upstream_error",
                                    "an upstream event exceeded 1 MiB",
                                );
                            }
                        };
                        if let Some(aligned) = pushed {
                            // Only upstream streams are checked for their end (see `ended`).
                            if !self.end_seen
                                && self.source.is_upstream()
                                && match self.check_end {
                                    EndCheck::Chat => complete::marks_end(&aligned),
                                    EndCheck::Responses => complete::marks_responses_end(&aligned),
                                    EndCheck::None => false,
                                }
                            {
                                self.end_seen = true;
                            }
                            let aligned = match self.usage.as_ref() {
                                None => aligned,
                                Some(watch) => {
                                    let scanned = scan_events(&aligned, watch.strip);
                                    if scanned.usage.is_some() {
                                        self.stats.usage = scanned
                                            .usage
                                            .map(|u| Usage::update(self.stats.usage, u));
                                    }
                                    scanned.kept.unwrap_or(aligned)
                                }
                            };
                            // What the upstream said, before any per-request hook.
                            if let Some(tee) = self.tee.as_mut() {
                                tee.frame(&aligned);
                            }
                            match self.hooks.as_mut() {
                                None => out = aligned,
                                Some(_) if aligned.is_empty() => {}
                                Some(hooks) => match hooks.on_events(&aligned) {
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
                let message = match translated::reported(&e) {
                    Some(said) => format!("the upstream reported an error mid-stream: {said}"),
                    None => "the upstream connection broke mid-response".to_owned(),
                };
                return self.fail(out, "upstream_error", &message);
            }
            if ended {
                self.done = true;
                if let (None, Some(watch)) = (&self.aligner, &self.usage) {
                    self.stats.usage = watch.read_tail();
                }
                let mut rest = self
                    .aligner
                    .as_mut()
                    .map(EventAligner::take_rest)
                    .unwrap_or_default();
                if self.aligner.is_some()
                    && self.check_end != EndCheck::None
                    && self.source.is_upstream()
                {
                    // A server may close right after `data: [DONE]`, without the blank
                    // line; any other unfinished event is never sent. A stream without
                    // its end is an error, however cleanly the upstream closed it.
                    let bare_done = complete::is_bare_done(&rest);
                    if bare_done {
                        self.end_seen = true;
                        rest = Bytes::from_static(b"data: [DONE]\n\n");
                    }
                    if !self.end_seen || !(rest.is_empty() || bare_done) {
                        tracing::warn!(upstream = %self.upstream_name, "upstream stream ended before [DONE] or a finish_reason");
                        return self.fail(
                            out,
                            "upstream_error",
                            "the upstream stream ended before it was complete",
                        );
                    }
                }
                if let (Some(tee), false) = (self.tee.as_mut(), rest.is_empty()) {
                    tee.frame(&rest);
                }
                match self.hooks.as_mut() {
                    // With hooks, an unfinished last event is dropped (SSE clients discard
                    // it too), so nothing reaches the client unfiltered; what the filters
                    // held back goes out.
                    Some(hooks) => {
                        match hooks.on_upstream_end() {
                            // `rest` is empty here, or the `[DONE]` completed above.
                            Ok(held) => out = concat(concat(out, held), rest),
                            Err(stopped) => {
                                let (held, rejection) = *stopped;
                                return self.stop(concat(out, held), &rejection);
                            }
                        }
                        hooks.finish(self.stats.usage);
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

    /// Nothing to send and the source is waiting: arm (lazily) and check the idle timer
    /// and, for SSE, the end of a drain.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.aligner.is_some() {
            let cut = self
                .cut
                .get_or_insert_with(|| Box::pin(lifecycle::on_cut()));
            if cut.as_mut().poll(cx).is_ready() || lifecycle::is_cut() {
                return self.shut_down();
            }
        }
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
                    "idle_timeout",
                    "the upstream stopped sending before the response was complete",
                )
            }
        }
    }

    /// Ends a stream still open when the drain ends: what the aligner holds whole was
    /// sent already; the client gets the `gateway_shutting_down` error event.
    fn shut_down(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.finish_early("shutdown");
        let event = error_event(
            "the gateway is shutting down; the response was cut short",
            "server_error",
            Some("gateway_shutting_down"),
        );
        Poll::Ready(Some(Ok(Frame::data(event))))
    }

    fn finish_early(&mut self, reason: &'static str) {
        self.done = true;
        self.stats.failure = Some(reason);
        if let Some(hooks) = self.hooks.as_mut() {
            hooks.finish(self.stats.usage);
        }
    }

    /// Ends the body after an upstream failure: what was received whole, then an error
    /// event for SSE; an aborted connection otherwise (a truncated JSON body must not
    /// look complete).
    fn fail(
        &mut self,
        out: Bytes,
        reason: &'static str,
        why: &str,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.finish_early(reason);
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
        self.stats.failure = Some("plugin");
        if let Some(hooks) = self.hooks.as_mut() {
            hooks.finish(self.stats.usage);
        }
        let event = error_event(&r.message, &r.kind, Some(&r.code));
        Poll::Ready(Some(Ok(Frame::data(concat(before, event)))))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(m) = &self.upstream_metrics {
            m.stream_chunks.inc_by(self.stats.frames);
            match self.stats.failure {
                Some(reason @ ("upstream_error" | "idle_timeout")) => {
                    m.attempt("stream_error");
                    m.stream_failed(reason);
                }
                Some(reason) => {
                    m.attempt("ok");
                    m.stream_failed(reason);
                }
                None => m.attempt("ok"),
            }
        }
        if let Some(tee) = self.tee.take() {
            tee.end(&self.stats);
        }
        if let Some(observer) = self.observer.take() {
            observer(self.stats);
        }
        // The client went away (or the body was dropped early): hooks still learn it ended.
        if let Some(hooks) = self.hooks.as_mut() {
            hooks.finish(self.stats.usage);
        }
    }
}

fn concat(a: Bytes, b: Bytes) -> Bytes {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    let mut m = BytesMut::with_capacity(a.len() + b.len());
    m.extend_from_slice(&a);
    m.extend_from_slice(&b);
    m.freeze()
}

pub mod ingress;
mod translated;

#[cfg(test)]
mod tests;
