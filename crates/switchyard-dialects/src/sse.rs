//! Server-sent-events framing: cutting a byte stream at event boundaries, and reading
//! the `data` of each event. Accepts every legal framing (LF, CRLF or CR line ends,
//! `data:` with or without a space, comments, keep-alives). Knows nothing of sockets.

use bytes::{Bytes, BytesMut};

/// Re-cuts an arbitrary chunking of an SSE byte stream so that every piece it hands
/// out ends exactly at an event boundary. When upstream chunks are already aligned (the
/// usual case) the bytes pass through without a copy.
#[derive(Debug, Default)]
pub struct EventAligner {
    partial: BytesMut,
}

impl EventAligner {
    /// Feeds one upstream chunk; returns the complete events it finishes, if any.
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        if self.partial.is_empty() {
            let end = last_event_end(&chunk)?;
            if end == chunk.len() {
                return Some(chunk);
            }
            let mut chunk = chunk;
            let done = chunk.split_to(end);
            self.partial.extend_from_slice(&chunk);
            return Some(done);
        }
        self.partial.extend_from_slice(&chunk);
        let end = last_event_end(&self.partial)?;
        Some(self.partial.split_to(end).freeze())
    }

    /// Bytes of an event that was started but never finished.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Takes whatever unfinished event remains (at the end of the stream).
    pub fn take_rest(&mut self) -> Bytes {
        self.partial.split().freeze()
    }
}

/// Index just past the last blank line (event terminator) in `buf`.
pub fn last_event_end(buf: &[u8]) -> Option<usize> {
    // Fast path: upstreams almost always send whole events, so the buffer ends with a
    // blank line and nothing needs scanning.
    if buf.ends_with(b"\n\n") || buf.ends_with(b"\r\r") || buf.ends_with(b"\n\r\n") {
        return Some(buf.len());
    }
    last_event_end_scan(buf)
}

fn last_event_end_scan(buf: &[u8]) -> Option<usize> {
    let mut last = None;
    let mut at_line_start = true; // the stream starts at a line start
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
    let line_end = event.iter().position(|&b| b == b'\n' || b == b'\r')?;
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
        assert_eq!(a.push(chunk.clone()).unwrap(), chunk);
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn split_event_is_held_until_finished() {
        let mut a = EventAligner::default();
        assert_eq!(
            a.push(Bytes::from_static(b"data: 1\n\ndata: 2")).unwrap(),
            &b"data: 1\n\n"[..]
        );
        assert_eq!(a.push(Bytes::from_static(b"2\n")), None);
        assert_eq!(
            a.push(Bytes::from_static(b"\n")).unwrap(),
            &b"data: 22\n\n"[..]
        );
        assert_eq!(a.pending(), 0);
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
        ] {
            assert_eq!(last_event_end(case), last_event_end_scan(case), "{case:?}");
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
