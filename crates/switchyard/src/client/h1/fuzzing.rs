//! The wire-level entry points the fuzz targets in `fuzz/` drive: response-head
//! parsing, body framing and decoding, and the keep-alive idle time — exactly the
//! functions the client calls on received bytes, with no socket. Not an API: hidden
//! from the docs, and nothing in the daemon uses it.

use super::idle::{idle_for, IDLE_FOR as DEFAULT_IDLE};
use super::wire::{self, Chunk, Framing};
use super::H1Error;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use std::io;
use std::time::Duration;

/// Longest chunk-size or trailer line the chunked decoder accepts.
pub const MAX_LINE: usize = wire::MAX_LINE;

/// How long an idle connection is kept when the upstream does not say.
pub const IDLE_FOR: Duration = DEFAULT_IDLE;

/// A parsed response head: status and headers.
#[derive(Debug)]
pub struct Head {
    /// Status.
    pub status: StatusCode,
    /// Headers, values sharing the received bytes.
    pub headers: HeaderMap,
}

/// Parses a complete response head off the front of `buf`, if there is one (what
/// the client does after every read).
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, H1Error> {
    Ok(wire::parse_head(buf)?.map(|h| Head {
        status: h.status,
        headers: h.headers,
    }))
}

/// How long a connection whose response carried `headers` may idle in the pool.
pub fn idle_time(headers: &HeaderMap) -> Duration {
    idle_for(headers, DEFAULT_IDLE)
}

/// A body decoder in the state the client keeps between reads.
#[derive(Debug)]
pub struct BodyDecoder(Framing);

impl BodyDecoder {
    /// The decoder for a body announced by this head (an invalid or conflicting
    /// `Content-Length` is an error).
    pub fn for_head(status: StatusCode, headers: &HeaderMap) -> Result<Self, H1Error> {
        wire::framing(status, headers).map(Self)
    }

    /// A chunked-body decoder at the first chunk-size line.
    pub fn chunked() -> Self {
        Self(Framing::Chunked(Chunk::Size))
    }

    /// Whether the body is chunked.
    pub fn is_chunked(&self) -> bool {
        matches!(self.0, Framing::Chunked(_))
    }

    /// Decodes what `buf` holds; returns the data and whether the body is complete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> io::Result<(Bytes, bool)> {
        wire::decode(buf, &mut self.0)
    }
}
