//! HTTP/1.1 on the wire, without sockets: encoding a request head (absolute form with
//! `Proxy-Authorization` through a forward proxy), parsing a
//! response head (header values sliced from the received bytes), deciding how the body
//! ends, and decoding `Content-Length`, chunked and close-delimited bodies from a buffer.

use super::{Destination, H1Error, SMALL_BODY};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use std::io;

/// Longest chunk-size or trailer line accepted in a chunked body.
pub(super) const MAX_LINE: usize = 4 * 1024;
/// Most trailer fields accepted after a chunked body.
pub(super) const MAX_TRAILERS: usize = 32;
/// Most trailer bytes accepted after a chunked body.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// The request head — and, for small bodies, the body too, so one write sends all.
pub(super) fn encode_head<'h>(
    target: &Destination,
    method: &str,
    headers: impl Iterator<Item = (&'h HeaderName, &'h HeaderValue)>,
    body: Option<&Bytes>,
) -> Vec<u8> {
    let small_body = body.filter(|b| b.len() <= SMALL_BODY);
    let mut out = Vec::with_capacity(512 + small_body.map_or(0, Bytes::len));
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    // Through a proxy, a plain-HTTP request names its origin (absolute form) and
    // carries the proxy's credentials; a tunnelled one is origin-form as ever.
    let forward_proxy = target.proxy.as_ref().filter(|_| !target.key.tls);
    if forward_proxy.is_some() {
        out.extend_from_slice(b"http://");
        out.extend_from_slice(target.host_header.as_bytes());
    }
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(target.host_header.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(auth) = forward_proxy.and_then(|p| p.authorization.as_ref()) {
        out.extend_from_slice(b"proxy-authorization: ");
        out.extend_from_slice(auth.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(b) = body {
        out.extend_from_slice(b"content-length: ");
        write_decimal(&mut out, b.len());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if name == header::HOST
            || name == header::PROXY_AUTHORIZATION
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(b) = small_body {
        out.extend_from_slice(b);
    }
    out
}

fn write_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A parsed response head.
pub(super) struct Head {
    /// Status.
    pub(super) status: StatusCode,
    /// Headers, values sharing the received bytes.
    pub(super) headers: HeaderMap,
    /// `HTTP/1.1` (else `HTTP/1.0`).
    pub(super) http11: bool,
}

impl Head {
    /// Whether the connection may carry another request after this response: HTTP/1.1
    /// unless a `Connection` token says `close`; HTTP/1.0 only when one says
    /// `keep-alive`. `Connection` is a token list and may come in several fields.
    pub(super) fn keep_alive(&self) -> bool {
        let mut tokens = self
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii);
        if self.http11 {
            !tokens.any(|t| t.eq_ignore_ascii_case(b"close"))
        } else {
            let mut keep = false;
            for t in tokens {
                if t.eq_ignore_ascii_case(b"close") {
                    return false;
                }
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }
            keep
        }
    }
}

/// Parses a complete response head off the front of `buf`, if there is one. Header
/// values are slices of the received bytes, not copies.
pub(super) fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, H1Error> {
    match parse_head_with::<24>(buf) {
        Err(HeadError::TooManyHeaders) => {
            parse_head_with::<128>(buf).map_err(HeadError::into_error)
        }
        other => other.map_err(HeadError::into_error),
    }
}

enum HeadError {
    TooManyHeaders,
    Bad(H1Error),
}

impl HeadError {
    fn into_error(self) -> H1Error {
        match self {
            Self::TooManyHeaders => H1Error::protocol("too many response headers"),
            Self::Bad(e) => e,
        }
    }
}

fn parse_head_with<const SLOTS: usize>(buf: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let mut resp = httparse::Response::new(&mut slots);
    let mut config = httparse::ParserConfig::default();
    // RFC 9112 §5.2: a recipient may replace obs-fold with spaces (done below).
    config.allow_obsolete_multiline_headers_in_responses(true);
    let len = match config.parse_response(&mut resp, buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => {
            return Err(HeadError::Bad(H1Error::protocol(format!(
                "bad response head: {e}"
            ))))
        }
    };
    let bad = |what: &str| HeadError::Bad(H1Error::protocol(what.to_owned()));
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| bad("bad status code"))?;
    let http11 = resp.version == Some(1);
    let base = buf.as_ptr() as usize;
    // Where each name and value sits in the head: the head is split off the buffer
    // (and shared by the values) only once the parser's borrow of it ends.
    let count = resp.headers.len();
    let mut spans = [(0usize, 0usize, 0usize, 0usize); SLOTS];
    for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
        let name = (h.name.as_ptr() as usize).saturating_sub(base);
        let value = (h.value.as_ptr() as usize).saturating_sub(base);
        *span = (name, h.name.len(), value, h.value.len());
    }
    let head = buf.split_to(len).freeze();
    // Room for what the gateway adds to the answer (`x-request-id` and the like)
    // without the map growing.
    let mut headers = HeaderMap::with_capacity(count + 4);
    for &(name_at, name_len, value_at, value_len) in &spans[..count] {
        let name = head
            .get(name_at..name_at + name_len)
            .and_then(|n| HeaderName::from_bytes(n).ok())
            .ok_or_else(|| bad("bad header name"))?;
        let raw = head.slice(value_at..value_at + value_len);
        let value = if raw.contains(&b'\n') {
            HeaderValue::from_bytes(&unfold(&raw))
        } else {
            HeaderValue::from_maybe_shared(raw)
        }
        .map_err(|_discarded| bad("bad header value"))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        headers,
        http11,
    }))
}

/// A folded header value (`a\r\n  b`) with each line break and the whitespace around it
/// replaced by one space.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut lines = raw.split(|&b| b == b'\n').map(|l| l.trim_ascii());
    if let Some(first) = lines.next() {
        out.extend_from_slice(first);
    }
    for line in lines.filter(|l| !l.is_empty()) {
        out.push(b' ');
        out.extend_from_slice(line);
    }
    out
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    /// Trailer fields seen so far: how many, how many bytes.
    Trailers {
        fields: usize,
        bytes: usize,
    },
    Done,
}

/// How the response body is framed (RFC 9112 §6.3). A `Content-Length` that is not a
/// number, or several that disagree, is an error: reading such a body to the close
/// would relay garbage, or a second response, as this one's.
pub(super) fn framing(status: StatusCode, headers: &HeaderMap) -> Result<Framing, H1Error> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Length(0));
    }
    let chunked = headers.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("chunked"))
    });
    if chunked {
        return Ok(Framing::Chunked(Chunk::Size));
    }
    let mut length: Option<u64> = None;
    for field in headers.get_all(header::CONTENT_LENGTH) {
        // `Content-Length: 5, 5` is one field listing the same length twice.
        for value in field.as_bytes().split(|&b| b == b',') {
            let n = std::str::from_utf8(value.trim_ascii())
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| H1Error::protocol("invalid Content-Length in the response"))?;
            if length.is_some_and(|seen| seen != n) {
                return Err(H1Error::protocol(
                    "conflicting Content-Length values in the response",
                ));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Decodes what `buf` holds; returns the data and whether the body is complete.
pub(super) fn decode(buf: &mut BytesMut, framing: &mut Framing) -> io::Result<(Bytes, bool)> {
    match framing {
        Framing::Length(left) => {
            let take = (*left).min(buf.len() as u64) as usize;
            *left -= take as u64;
            Ok((buf.split_to(take).freeze(), *left == 0))
        }
        Framing::UntilClose => Ok((buf.split().freeze(), false)),
        Framing::Chunked(state) => {
            let mut out: Option<BytesMut> = None;
            let mut first: Option<Bytes> = None;
            loop {
                match *state {
                    Chunk::Size => {
                        let Some(eol) = find_line(buf, "chunk size line too long")? else {
                            break;
                        };
                        let line = &buf[..eol];
                        let hex_end = line
                            .iter()
                            .position(|b| *b == b';' || *b == b' ' || *b == b'\t')
                            .unwrap_or(line.len());
                        let size = std::str::from_utf8(&line[..hex_end])
                            .ok()
                            .and_then(|s| u64::from_str_radix(s, 16).ok())
                            .ok_or_else(|| bad("bad chunk size"))?;
                        buf.advance(eol + 2);
                        *state = if size == 0 {
                            Chunk::Trailers {
                                fields: 0,
                                bytes: 0,
                            }
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        if buf.is_empty() {
                            break;
                        }
                        let take = left.min(buf.len() as u64) as usize;
                        let piece = buf.split_to(take).freeze();
                        match (&mut first, &mut out) {
                            (None, _) => first = Some(piece),
                            (Some(f), None) => {
                                let mut m = BytesMut::with_capacity(f.len() + piece.len() + 512);
                                m.extend_from_slice(f);
                                m.extend_from_slice(&piece);
                                out = Some(m);
                            }
                            (Some(_), Some(m)) => m.extend_from_slice(&piece),
                        }
                        *state = if left == take as u64 {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left - take as u64)
                        };
                    }
                    Chunk::DataEnd => {
                        if buf.len() < 2 {
                            break;
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(bad("missing CRLF after chunk data"));
                        }
                        buf.advance(2);
                        *state = Chunk::Size;
                    }
                    Chunk::Trailers { fields, bytes } => {
                        let Some(eol) = find_line(buf, "trailer line too long")? else {
                            break;
                        };
                        buf.advance(eol + 2);
                        *state = if eol == 0 {
                            Chunk::Done
                        } else if fields >= MAX_TRAILERS || bytes + eol > MAX_TRAILER_BYTES {
                            return Err(bad("too many trailers"));
                        } else {
                            Chunk::Trailers {
                                fields: fields + 1,
                                bytes: bytes + eol,
                            }
                        };
                    }
                    Chunk::Done => break,
                }
            }
            let data = match (out, first) {
                (Some(m), _) => m.freeze(),
                (None, Some(f)) => f,
                (None, None) => Bytes::new(),
            };
            Ok((data, *state == Chunk::Done))
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Where the line at the front of `buf` ends (its CRLF), if it is all there; an error
/// (`too_long`) once it is known to be longer than [`MAX_LINE`].
fn find_line(buf: &[u8], too_long: &str) -> io::Result<Option<usize>> {
    // A line of MAX_LINE bytes and its CRLF fit in this window.
    match find_crlf(&buf[..buf.len().min(MAX_LINE + 2)]) {
        Some(eol) => Ok(Some(eol)),
        None if buf.len() > MAX_LINE + 1 => Err(bad(too_long)),
        None => Ok(None),
    }
}
