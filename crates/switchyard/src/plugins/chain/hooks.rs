//! The chain's side of a stream: [`ChainHooks`] implements the relay's
//! [`StreamHooks`] — every whole event goes through the request's `on_chunk` filters,
//! text is read for `post_response` — and [`StreamSummary`] is what `post_response`
//! learns once the stream ends. Usage is not read here: the relay reads it for every
//! stream (and leaves out the usage-only chunk a client did not ask for) and hands it
//! over in [`StreamHooks::finish`].

use super::stream::{filter_event, flush_filters, ActiveFilter, FilterOutcome};
use crate::error::Rejection;
use crate::plugins::Usage;
use crate::relay::StreamHooks;
use bytes::{Bytes, BytesMut};
use switchyard_dialects::sse::split_events;
use switchyard_dialects::usage;

/// How a stream went, for `post_response` plugins.
#[derive(Debug, Default)]
pub struct StreamSummary {
    /// Usage, if the upstream reported it.
    pub usage: Option<Usage>,
    /// The assistant text, if collected.
    pub text: Option<String>,
}

/// The chain's work on one stream's events.
#[derive(Default)]
pub struct ChainHooks {
    /// `on_chunk` filters, in run order.
    pub filters: Vec<ActiveFilter>,
    /// Collect the assistant text.
    pub collect_text: bool,
    /// Called once when the stream ends, however it ends.
    pub on_end: Option<Box<dyn FnOnce(StreamSummary) + Send>>,
    /// Filled in as the stream goes.
    pub summary: StreamSummary,
}

impl std::fmt::Debug for ChainHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainHooks")
            .field("filters", &self.filters)
            .field("collect_text", &self.collect_text)
            .finish_non_exhaustive()
    }
}

impl StreamHooks for ChainHooks {
    fn finish(&mut self, usage: Option<usage::Usage>) {
        if let Some(on_end) = self.on_end.take() {
            let mut summary = std::mem::take(&mut self.summary);
            summary.usage = usage.map(|u| Usage {
                prompt: u.prompt_tokens,
                completion: u.completion_tokens.unwrap_or(0),
            });
            on_end(summary);
        }
    }

    /// Runs the filters and text collection over whole events. When every event comes
    /// out as it went in (the usual case for reject filters), the aligned bytes are
    /// passed on without a copy.
    fn on_events(&mut self, aligned: &Bytes) -> Result<Bytes, Box<(Bytes, Rejection)>> {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut unchanged = true;
        for event in split_events(aligned) {
            if self.collect_text {
                self.collect(&event);
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

    /// With hooks, an unfinished last event was dropped (SSE clients discard it too), so
    /// nothing reaches the client unfiltered; what the filters held back goes out.
    fn on_upstream_end(&mut self) -> Result<Bytes, Box<(Bytes, Rejection)>> {
        match flush_filters(&mut self.filters) {
            FilterOutcome::Send(parts) => Ok(join(&parts)),
            FilterOutcome::End(parts, rejection) => Err(Box::new((join(&parts), rejection))),
        }
    }
}

impl ChainHooks {
    /// Adds the assistant text of one event (events without `"content"` — the usage
    /// chunk, `[DONE]` — are not parsed).
    fn collect(&mut self, event: &Bytes) {
        if !contains(event, b"\"content\"") {
            return;
        }
        let Some(data) = switchyard_dialects::sse::single_data(event) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) else {
            return;
        };
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            self.summary
                .text
                .get_or_insert_with(String::new)
                .push_str(t);
        }
    }
}

fn join(parts: &[Bytes]) -> Bytes {
    match parts {
        [] => Bytes::new(),
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
