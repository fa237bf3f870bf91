//! The relay's source for an upstream stream in another dialect: each chunk read is
//! handed to the dialect's [`StreamDecode`], and what it writes — whole OpenAI events —
//! is what the relay sees, so alignment, usage, hooks and the end check work on
//! OpenAI's format as for any stream. An error the decoder reports (the upstream's own
//! mid-stream `error` event, bytes that are not its stream, an end before its end
//! marker) surfaces as a read error carrying the [`DecodeError`], after the events
//! decoded before it.

use crate::client::h1::H1Body;
use bytes::{Bytes, BytesMut};
use std::io;
use std::task::{Context, Poll};
use switchyard_dialects::translate::{DecodeError, StreamDecode};

/// An upstream body being decoded.
pub(super) struct Translated {
    body: H1Body,
    decoder: Box<dyn StreamDecode>,
    /// Decoded bytes not yet handed out.
    ready: Option<Bytes>,
    /// The decoder's error, handed out after `ready`.
    error: Option<DecodeError>,
    /// The body ended and the decoder finished.
    ended: bool,
}

impl std::fmt::Debug for Translated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translated")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Translated {
    /// Decodes `body`, starting with what was decoded of it already (`primed`: the
    /// events, and the decoder's error right after them if it failed there).
    pub(super) fn new(
        body: H1Body,
        decoder: Box<dyn StreamDecode>,
        primed: (Bytes, Option<DecodeError>),
    ) -> Self {
        let (ready, error) = primed;
        Self {
            body,
            decoder,
            ready: (!ready.is_empty()).then_some(ready),
            error,
            ended: false,
        }
    }

    pub(super) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            if let Some(ready) = self.ready.take() {
                return Poll::Ready(Some(Ok(ready)));
            }
            if let Some(e) = self.error.take() {
                self.ended = true;
                return Poll::Ready(Some(Err(io::Error::other(e))));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            let mut out = BytesMut::new();
            let decoded = match self.body.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(chunk))) => self.decoder.push(&chunk, &mut out),
                Poll::Ready(None) => {
                    self.ended = true;
                    self.decoder.finish(&mut out)
                }
            };
            if !out.is_empty() {
                self.ready = Some(out.freeze());
            }
            if let Err(e) = decoded {
                self.error = Some(e);
            }
        }
    }
}

/// What the upstream said when a translated stream failed, if that is why it failed.
pub(super) fn reported(e: &io::Error) -> Option<&str> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<DecodeError>())
        .map(|d| d.message.as_str())
}
