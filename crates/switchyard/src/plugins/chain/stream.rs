//! The `on_chunk` side of the chain: each stream gets its filters (one per plugin that
//! applies), every event runs through them in priority order, and before `[DONE]` (or
//! when the upstream ends) each filter flushes what it held back through the filters
//! after it. A filter that fails is counted and logged; `fail_closed` ends the stream.

use super::super::isolate::{self, Failure};
use super::super::{ChunkFilter, ChunkVerdict, Rejection, SseEvent};
use super::Counters;
use bytes::Bytes;
use http::StatusCode;
use std::sync::Arc;
use switchyard_config::OnError;

/// A stream filter with its plugin's identity and policy.
pub struct ActiveFilter {
    pub(super) filter: Box<dyn ChunkFilter>,
    pub(super) id: Arc<str>,
    pub(super) on_error: OnError,
    pub(super) counters: Arc<Counters>,
}

impl std::fmt::Debug for ActiveFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveFilter")
            .field("id", &self.id)
            .finish()
    }
}

/// What the filters did with one event.
#[derive(Debug)]
pub(super) enum FilterOutcome {
    /// Send these bytes (maybe none).
    Send(Vec<Bytes>),
    /// Send these, then end the stream with this error.
    End(Vec<Bytes>, Rejection),
}

/// Runs a stream's filters over one event, in priority order. Before `[DONE]`, every
/// filter flushes what it held back, in order, through the filters after it.
pub(super) fn filter_event(filters: &mut [ActiveFilter], raw: Bytes) -> FilterOutcome {
    let event = SseEvent::new(raw);
    if !event.is_done() {
        return run_from(filters, 0, event);
    }
    match flush_filters(filters) {
        FilterOutcome::Send(mut out) => {
            out.push(event.into_bytes());
            FilterOutcome::Send(out)
        }
        ended @ FilterOutcome::End(..) => ended,
    }
}

/// Flushes every filter (the stream is ending), each flushed event going through the
/// filters after the one that held it.
pub(super) fn flush_filters(filters: &mut [ActiveFilter]) -> FilterOutcome {
    let mut out = Vec::new();
    for i in 0..filters.len() {
        let f = &mut filters[i];
        let flushed = match isolate::call(|| f.filter.flush()) {
            Ok(events) => events,
            Err(e) => match filter_failed(f, &e) {
                Some(r) => return FilterOutcome::End(out, r),
                None => continue,
            },
        };
        for raw in flushed {
            match run_from(filters, i + 1, SseEvent::new(raw)) {
                FilterOutcome::Send(bytes) => out.extend(bytes),
                FilterOutcome::End(bytes, r) => {
                    out.extend(bytes);
                    return FilterOutcome::End(out, r);
                }
            }
        }
    }
    FilterOutcome::Send(out)
}

/// Runs `filters[start..]` over one event.
fn run_from(filters: &mut [ActiveFilter], start: usize, mut event: SseEvent) -> FilterOutcome {
    for f in filters.iter_mut().skip(start) {
        match isolate::call(|| f.filter.on_event(&mut event)) {
            Ok(ChunkVerdict::Pass) => {}
            Ok(ChunkVerdict::Drop) => return FilterOutcome::Send(Vec::new()),
            Ok(ChunkVerdict::End(r)) => {
                f.counters.rejected();
                return FilterOutcome::End(Vec::new(), r);
            }
            Err(e) => {
                if let Some(r) = filter_failed(f, &e) {
                    return FilterOutcome::End(Vec::new(), r);
                }
            }
        }
    }
    FilterOutcome::Send(vec![event.into_bytes()])
}

/// A filter failed: counted and logged; `fail_closed` ends the stream.
fn filter_failed(f: &ActiveFilter, error: &Failure) -> Option<Rejection> {
    f.counters.failed();
    tracing::warn!(plugin = %f.id, error = %error, stage = "on_chunk", "plugin failed");
    (f.on_error == OnError::FailClosed).then(|| {
        Rejection::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "plugin_error",
            format!("plugin `{}` failed; the stream was stopped", f.id),
        )
    })
}

/// Stands in for a `fail_closed` filter that could not start: ends the stream.
pub(super) struct Broken(pub(super) Arc<str>);

impl ChunkFilter for Broken {
    fn on_event(&mut self, _event: &mut SseEvent) -> ChunkVerdict {
        ChunkVerdict::End(Rejection::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "plugin_error",
            format!("plugin `{}` failed; the stream was stopped", self.0),
        ))
    }
}
