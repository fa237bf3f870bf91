//! Server-sent-events framing: cutting a byte stream at event boundaries, and reading
//! the `data` of each event. Accepts every legal framing (LF, CRLF or CR line ends,
//! `data:` with or without a space, comments, keep-alives). Knows nothing of sockets.
//!
//! Why hand-written rather than an SSE crate: the gateway's job here is different from
//! event parsing. It must forward the upstream's bytes untouched (no re-encoding of
//! `data`, ids or comments), cut them only at event boundaries so that a client never
//! sees half an event, and do it without copying when chunks already align — SSE parser
//! crates (`eventsource-stream` and the like) decode into owned events and re-serialise
//! them. The re-cutter is small, scans each byte once, and has a property test over
//! arbitrary chunkings (`any_chunking_of_mixed_line_ends_cuts_like_the_whole_buffer_rescan`).

use bytes::{Bytes, BytesMut};

/// Default cap on one unfinished event held by an [`EventAligner`]: 1 MiB.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// An event grew past the aligner's limit without ending (the upstream never sent the
/// blank line that ends an event, or sent an absurdly large one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    /// The limit that was passed.
    pub limit: usize,
}

impl std::fmt::Display for EventTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an event exceeded {} bytes without ending", self.limit)
    }
}

impl std::error::Error for EventTooLarge {}

/// Re-cuts an arbitrary chunking of an SSE byte stream so that every piece it hands
/// out ends exactly at an event boundary. When upstream chunks are already aligned (the
/// usual case) the bytes pass through without a copy.
///
/// Each pushed byte is scanned once: a push looks only at the bytes it appends (and the
/// one before them), so a long event arriving in many small chunks costs linear time.
/// The unfinished event held back is capped (see [`EventAligner::with_limit`]).
#[derive(Debug)]
pub struct EventAligner {
    /// The unfinished event; always starts where an event starts (or with the `\n` of
    /// a `\r\n` whose `\r` ended the previous piece).
    partial: BytesMut,
    max_event_bytes: usize,
    /// Set once the limit was passed: the stream is no longer usable.
    overflowed: bool,
}

impl Default for EventAligner {
    /// An aligner holding at most [`MAX_EVENT_BYTES`] of an unfinished event.
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

impl EventAligner {
    /// An aligner that gives up on an event once more than `max_event_bytes` of it are
    /// held without its end in sight.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        Self {
            partial: BytesMut::new(),
            max_event_bytes,
            overflowed: false,
        }
    }

    /// Feeds one upstream chunk; returns the complete events it finishes, if any.
    ///
    /// `Err` when this push finishes no event and the unfinished one now holds more
    /// than the limit. The held bytes are dropped and every later push fails too. (A
    /// push that does finish events returns them; what follows them is held even if
    /// it passes the limit — at most one chunk — and the next push decides.)
    pub fn push(&mut self, chunk: Bytes) -> Result<Option<Bytes>, EventTooLarge> {
        if self.overflowed {
            return Err(self.too_large());
        }
        if self.partial.is_empty() {
            let Some(end) = last_event_end(&chunk) else {
                if chunk.len() > self.max_event_bytes {
                    return Err(self.overflow());
                }
                self.partial.extend_from_slice(&chunk);
                return Ok(None);
            };
            if end == chunk.len() {
                return Ok(Some(chunk));
            }
            let mut chunk = chunk;
            let done = chunk.split_to(end);
            self.partial.extend_from_slice(&chunk);
            return Ok(Some(done));
        }
        let old = self.partial.len();
        self.partial.extend_from_slice(&chunk);
        // Nothing before `old` ends an event (it would have been cut off), but the last
        // old byte may be the `\r` of a `\r\n` whose `\n` just arrived: scan from it.
        let found = if ends_with_blank_line(&self.partial) {
            Some(self.partial.len())
        } else {
            scan_from(&self.partial, old - 1)
        };
        match found {
            Some(end) => Ok(Some(self.partial.split_to(end).freeze())),
            None if self.partial.len() > self.max_event_bytes => Err(self.overflow()),
            None => Ok(None),
        }
    }

    /// Bytes of an event that was started but never finished.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Whether the limit was passed (every later push fails).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Takes whatever unfinished event remains (at the end of the stream).
    pub fn take_rest(&mut self) -> Bytes {
        self.partial.split().freeze()
    }

    fn too_large(&self) -> EventTooLarge {
        EventTooLarge {
            limit: self.max_event_bytes,
        }
    }

    fn overflow(&mut self) -> EventTooLarge {
        self.overflowed = true;
        self.partial = BytesMut::new();
        self.too_large()
    }
}

/// Index just past the last blank line (event terminator) in `buf`.
pub fn last_event_end(buf: &[u8]) -> Option<usize> {
    // Fast path: upstreams almost always send whole events, so the buffer ends with a
    // blank line and nothing needs scanning.
    if ends_with_blank_line(buf) {
        return Some(buf.len());
    }
    last_event_end_scan(buf)
}

fn ends_with_blank_line(buf: &[u8]) -> bool {
    buf.ends_with(b"\n\n") || buf.ends_with(b"\r\r") || buf.ends_with(b"\n\r\n")
}

fn last_event_end_scan(buf: &[u8]) -> Option<usize> {
    scan_from(buf, 0)
}

/// The end of the last blank line in `buf` whose line end starts at or after `from`.
///
/// Whether a position starts a line depends only on the byte before it (a line end of
/// any kind), so a scan can begin anywhere. Index 0 never ends an event: `buf` starts
/// at an event start, or with the `\n` of a `\r\n` split from its `\r`. A `\n` right
/// after a `\r` is the rest of that line end, never a line end of its own; a `\r` at
/// the very end counts as a whole line end (what follows is not known yet).
fn scan_from(buf: &[u8], from: usize) -> Option<usize> {
    let mut last = None;
    for i in from.max(1)..buf.len() {
        let prev = buf[i - 1];
        let at_line_start = prev == b'\n' || prev == b'\r';
        match buf[i] {
            b'\r' if at_line_start => {
                last = Some(if buf.get(i + 1) == Some(&b'\n') {
                    i + 2
                } else {
                    i + 1
                });
            }
            b'\n' if prev == b'\n' => last = Some(i + 1),
            _ => {}
        }
    }
    last
}

/// Splits bytes that end at an event boundary into one slice per event (no copies).
pub fn split_events(buf: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut at_line_start = true;
    let mut i = 0;
    while i < buf.len() {
        let b = buf[i];
        if b == b'\r' || b == b'\n' {
            let len = if b == b'\r' && buf.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            if at_line_start && i > start {
                out.push(buf.slice(start..i + len));
                start = i + len;
            }
            at_line_start = true;
            i += len;
        } else {
            at_line_start = false;
            i += 1;
        }
    }
    if start < buf.len() {
        out.push(buf.slice(start..));
    }
    out
}

/// The `data` payloads of the complete events in `buf`, in order (multi-line data
/// joined with `\n`). Comments and events without data are skipped.
pub fn data_payloads(buf: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(buf);
    let mut out = Vec::new();
    let mut data: Option<String> = None;
    for line in split_lines(&text) {
        if line.is_empty() {
            if let Some(d) = data.take() {
                out.push(d);
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(at) => {
                let v = &line[at + 1..];
                (&line[..at], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        if field == "data" {
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    out
}

fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            usize::from(end < rest.len())
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

/// The data of one event without copying when it is the usual single `data:` line
/// (`data: {...}\n\n`); other shapes fall back to [`data_payloads`].
pub fn single_data(event: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let line_end = memchr::memchr2(b'\n', b'\r', event)?;
    let rest = &event[line_end..];
    let one_line = matches!(rest, b"\n\n" | b"\r\n\r\n" | b"\r\r");
    if one_line {
        if let Some(value) = event[..line_end].strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if let Ok(text) = std::str::from_utf8(value) {
                return Some(std::borrow::Cow::Borrowed(text));
            }
        }
    }
    data_payloads(event)
        .into_iter()
        .next()
        .map(std::borrow::Cow::Owned)
}

/// Frames one `data:` event.
pub fn data_event(payload: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(payload.as_bytes());
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_chunks_pass_through_whole() {
        let mut a = EventAligner::default();
        let chunk = Bytes::from_static(b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(a.push(chunk.clone()).unwrap().unwrap(), chunk);
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn split_event_is_held_until_finished() {
        let mut a = EventAligner::default();
        assert_eq!(
            a.push(Bytes::from_static(b"data: 1\n\ndata: 2"))
                .unwrap()
                .unwrap(),
            &b"data: 1\n\n"[..]
        );
        assert_eq!(a.push(Bytes::from_static(b"2\n")).unwrap(), None);
        assert_eq!(
            a.push(Bytes::from_static(b"\n")).unwrap().unwrap(),
            &b"data: 22\n\n"[..]
        );
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn a_first_chunk_without_an_event_end_is_held_not_lost() {
        let mut a = EventAligner::default();
        assert_eq!(a.push(Bytes::from_static(b"da")).unwrap(), None);
        assert_eq!(a.pending(), 2);
        assert_eq!(
            a.push(Bytes::from_static(b"ta: x\n\n")).unwrap().unwrap(),
            &b"data: x\n\n"[..]
        );
    }

    /// The aligner as it was first written: append, then rescan everything held.
    struct Reference {
        partial: Vec<u8>,
    }

    impl Reference {
        fn push(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
            self.partial.extend_from_slice(chunk);
            let end = reference_scan(&self.partial)?;
            Some(self.partial.drain(..end).collect())
        }
    }

    /// The original whole-buffer scan: a line end is `\r\n`, `\r` or `\n`; an event
    /// ends after a line end that starts a line (index 0 excepted).
    fn reference_scan(buf: &[u8]) -> Option<usize> {
        let mut last = None;
        let mut at_line_start = true;
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            if b == b'\r' || b == b'\n' {
                let len = if b == b'\r' && buf.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                if at_line_start && i > 0 {
                    last = Some(i + len);
                }
                at_line_start = true;
                i += len;
            } else {
                at_line_start = false;
                i += 1;
            }
        }
        last
    }

    const MIXED: &[&[u8]] = &[
        b"data: 1\n\ndata: 2\r\n\r\ndata: 3\r\rdata: 4\n\n",
        b": ping\r\n\r\ndata: a\r\ndata: b\r\n\r\nevent: x\rdata: c\r\r",
        b"data: 1\r\n\ndata: 2\n\r\ndata: 3\r\r\ndata: 4\n\r\n\n\ndata: 5\r\n\r",
        b"\r\n\r\n\n\r\r\ndata: x\r\n\r\n\r\n",
        b"data: {\"a\":\"b\\r\\n\"}\r\n\r\ndata: tail without end\r\n",
        b"data: 1\r",
        b"\n\n\n",
    ];

    /// Feeds `stream` in pieces of the given sizes (cycled) to both aligners and checks
    /// they cut in the same places, and that nothing is lost.
    fn agrees_with_reference(stream: &[u8], sizes: &[usize]) {
        let mut a = EventAligner::default();
        let mut r = Reference {
            partial: Vec::new(),
        };
        let mut all = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < stream.len() {
            let n = sizes[k % sizes.len()].clamp(1, stream.len() - at);
            k += 1;
            let piece = &stream[at..at + n];
            at += n;
            let got = a.push(Bytes::copy_from_slice(piece)).unwrap();
            let want = r.push(piece);
            assert_eq!(
                got.as_deref(),
                want.as_deref(),
                "{stream:?} in pieces of {sizes:?}, at {at}"
            );
            all.extend_from_slice(got.as_deref().unwrap_or_default());
            assert_eq!(a.pending(), r.partial.len());
        }
        all.extend_from_slice(&a.take_rest());
        assert_eq!(all, stream);
    }

    #[test]
    fn byte_by_byte_feeding_cuts_like_the_whole_buffer_rescan() {
        for stream in MIXED {
            agrees_with_reference(stream, &[1]);
        }
    }

    #[test]
    fn any_chunking_of_mixed_line_ends_cuts_like_the_whole_buffer_rescan() {
        let mut seed = 0x2545_f491_u32;
        for stream in MIXED {
            agrees_with_reference(stream, &[stream.len()]);
            for _ in 0..200 {
                let sizes: Vec<usize> = (0..8)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (seed >> 16) as usize % 6 + 1
                    })
                    .collect();
                agrees_with_reference(stream, &sizes);
            }
        }
    }

    #[test]
    fn byte_by_byte_feeding_keeps_every_payload() {
        for stream in MIXED {
            let mut a = EventAligner::default();
            let mut pieces = Vec::new();
            for b in stream.iter() {
                if let Some(done) = a.push(Bytes::copy_from_slice(&[*b])).unwrap() {
                    pieces.push(done);
                }
            }
            let events: Vec<String> = pieces.iter().flat_map(|p| data_payloads(p)).collect();
            let end = reference_scan(stream).unwrap_or(0);
            assert_eq!(events, data_payloads(&stream[..end]), "{stream:?}");
        }
    }

    #[test]
    fn the_lf_of_a_crlf_split_across_pushes_is_not_a_second_line_end() {
        let mut a = EventAligner::default();
        assert_eq!(a.push(Bytes::from_static(b"data: 1\r")).unwrap(), None);
        // `\r` + `\n` is one line end: no blank line yet.
        assert_eq!(a.push(Bytes::from_static(b"\n")).unwrap(), None);
        assert_eq!(a.push(Bytes::from_static(b"data: 2\r")).unwrap(), None);
        assert_eq!(a.push(Bytes::from_static(b"\ndata: 3\r\n\r")).unwrap(), {
            Some(Bytes::from_static(b"data: 1\r\ndata: 2\r\ndata: 3\r\n\r"))
        });
        // The `\n` completing that last `\r` starts the next piece, and is not taken
        // for a blank line either.
        assert_eq!(a.push(Bytes::from_static(b"\n")).unwrap(), None);
        assert_eq!(a.push(Bytes::from_static(b"data: 4\r")).unwrap(), None);
        assert_eq!(
            a.push(Bytes::from_static(b"\n\r\n")).unwrap().unwrap(),
            &b"\ndata: 4\r\n\r\n"[..]
        );
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn an_event_that_never_ends_is_an_error_once_past_the_limit() {
        let mut a = EventAligner::with_limit(16);
        assert_eq!(a.push(Bytes::from_static(b"data: 12345")).unwrap(), None);
        assert_eq!(a.push(Bytes::from_static(b"67890")).unwrap(), None);
        assert_eq!(a.pending(), 16);
        assert_eq!(
            a.push(Bytes::from_static(b"x")),
            Err(EventTooLarge { limit: 16 })
        );
        assert_eq!(a.pending(), 0);
        // The stream is out of step for good.
        assert!(a.push(Bytes::from_static(b"\n\n")).is_err());
    }

    #[test]
    fn an_event_at_the_limit_still_passes() {
        let mut a = EventAligner::with_limit(16);
        assert_eq!(
            a.push(Bytes::from_static(b"data: 1234567890")).unwrap(),
            None
        );
        assert_eq!(
            a.push(Bytes::from_static(b"\n\n")).unwrap().unwrap(),
            &b"data: 1234567890\n\n"[..]
        );
    }

    #[test]
    fn finished_events_come_out_before_an_oversized_tail_is_refused() {
        let mut a = EventAligner::with_limit(8);
        assert_eq!(
            a.push(Bytes::from_static(b"data: 1\n\ndata: 22222222"))
                .unwrap()
                .unwrap(),
            &b"data: 1\n\n"[..]
        );
        assert!(a.push(Bytes::from_static(b"2")).is_err());
    }

    #[test]
    fn the_default_limit_is_one_mebibyte() {
        let mut a = EventAligner::default();
        let big = Bytes::from(vec![b'x'; MAX_EVENT_BYTES]);
        assert_eq!(a.push(big).unwrap(), None);
        assert_eq!(
            a.push(Bytes::from_static(b"x")),
            Err(EventTooLarge {
                limit: MAX_EVENT_BYTES
            })
        );
        let mut a = EventAligner::default();
        assert!(a
            .push(Bytes::from(vec![b'x'; MAX_EVENT_BYTES + 1]))
            .is_err());
    }

    #[test]
    fn pushes_scan_only_what_they_add() {
        // Held bytes never end an event, so a push does not look at them again. Plant
        // a blank line among them (which a whole-buffer rescan would find) to show it.
        let mut a = EventAligner::default();
        a.partial.extend_from_slice(b"data: 1\n\ndata: 2");
        assert_eq!(reference_scan(b"data: 1\n\ndata: 2!"), Some(9));
        assert_eq!(a.push(Bytes::from_static(b"!")).unwrap(), None);
        assert_eq!(
            a.push(Bytes::from_static(b"\n\n")).unwrap().unwrap(),
            &b"data: 1\n\ndata: 2!\n\n"[..]
        );
    }

    #[test]
    fn split_events_cuts_at_every_blank_line() {
        let b = Bytes::from_static(b"data: 1\n\n: ping\r\n\r\ndata: 2\n\n");
        let parts = split_events(&b);
        assert_eq!(parts.len(), 3);
        assert_eq!(&parts[1][..], b": ping\r\n\r\n");
        assert_eq!(&parts[2][..], b"data: 2\n\n");
    }

    #[test]
    fn fast_path_agrees_with_the_scan() {
        for case in [
            &b"data: 1\n\n"[..],
            b"data: 1\r\n\r\n",
            b"data: 1\r\r",
            b"data: 1\n\ndata: 2\n",
            b"a\n\r\n",
            b"\n\n",
            b"\r\n\n",
            b"x\r\r\n",
        ] {
            assert_eq!(last_event_end(case), last_event_end_scan(case), "{case:?}");
            assert_eq!(last_event_end(case), reference_scan(case), "{case:?}");
        }
    }

    #[test]
    fn single_data_borrows_the_common_shape_and_parses_the_rest() {
        assert!(matches!(
            single_data(b"data: {\"a\":1}\n\n"),
            Some(std::borrow::Cow::Borrowed("{\"a\":1}"))
        ));
        assert_eq!(single_data(b"data:x\r\n\r\n").unwrap(), "x");
        assert_eq!(single_data(b"event: e\ndata: y\n\n").unwrap(), "y");
        assert_eq!(single_data(b": comment\n\n"), None);
    }

    #[test]
    fn crlf_and_cr_framings_are_recognised() {
        assert_eq!(last_event_end(b"data: x\r\n\r\nda"), Some(11));
        assert_eq!(last_event_end(b"data: x\r\rda"), Some(9));
        assert_eq!(last_event_end(b"data: x\r\n"), None);
    }

    #[test]
    fn payloads_accept_every_legal_spelling() {
        let got = data_payloads(
            b": keep-alive\n\ndata:{\"a\":1}\r\n\r\ndata: x\ndata: y\n\nevent: ping\n\n",
        );
        assert_eq!(got, vec!["{\"a\":1}".to_owned(), "x\ny".to_owned()]);
    }
}
