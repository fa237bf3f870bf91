//! The HTTP/1.1 client's response-head parser (`client::h1` `parse_head`), then the
//! body framing and decoding it picks, as the client runs them on received bytes.
//! Input: one control byte (seeds the read sizes), then what the upstream sends.
//!
//! Checked:
//! - on the first head, `parse_head` agrees with a plain `httparse` parse of the same
//!   bytes: complete exactly when httparse is, an error when httparse refuses, and the
//!   same status, header values (byte for byte; values are sliced out of the read
//!   buffer by pointer arithmetic) and head length;
//! - the exchange (interim 1xx heads skipped, then the final head and its body, fed in
//!   reads of any size) ends the same way as when everything arrives in one read;
//! - a body never yields more bytes than were received, and a `Content-Length` body
//!   exactly its length when complete;
//! - the keep-alive idle time never exceeds the pool's default.

#![no_main]

use bytes::BytesMut;
use http::{HeaderMap, StatusCode};
use libfuzzer_sys::fuzz_target;
use switchyard::client::h1::fuzzing::{idle_time, parse_head, BodyDecoder, IDLE_FOR};

#[derive(Debug, PartialEq)]
enum Outcome {
    /// The head never completed.
    Partial,
    /// `parse_head` refused the bytes.
    BadHead,
    /// The head announced its body's length in a way the client refuses (a
    /// `Content-Length` that is not a number, or several that disagree).
    Refused,
    /// A final head, and what its body decoder made of the rest.
    Response {
        status: StatusCode,
        headers: Vec<(String, Vec<u8>)>,
        body: Body,
    },
}

#[derive(Debug, PartialEq)]
enum Body {
    Error,
    Decoded { data: Vec<u8>, done: bool },
}

fn sorted(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    // Stable: values of one name keep their order.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn read_sizes(len: usize, seed: u8) -> Vec<Vec<usize>> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let mut random = Vec::new();
    let mut left = len;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 17 + 1).min(left);
        random.push(n);
        left -= n;
    }
    vec![vec![len], random, vec![1; len]]
}

/// What the client's `exchange` and body polling do with these reads.
fn exchange(input: &[u8], sizes: &[usize]) -> Outcome {
    let mut reads = {
        let mut at = 0;
        sizes.iter().map(move |&n| {
            let piece = &input[at..at + n];
            at += n;
            piece
        })
    };
    let mut buf = BytesMut::new();
    let mut received = 0usize;
    let head = loop {
        match parse_head(&mut buf) {
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return Outcome::BadHead;
            }
            Ok(Some(head)) if head.status.is_informational() => continue,
            Ok(Some(head)) => break head,
            Ok(None) => match reads.next() {
                Some(piece) => {
                    buf.extend_from_slice(piece);
                    received += piece.len();
                }
                None => return Outcome::Partial,
            },
        }
    };
    assert!(idle_time(&head.headers) <= IDLE_FOR);
    let Ok(mut decoder) = BodyDecoder::for_head(head.status, &head.headers) else {
        // An invalid or conflicting Content-Length: refused, like the client does.
        return Outcome::Refused;
    };
    let body_start = received - buf.len();
    let mut data = Vec::new();
    let body = loop {
        let done = match decoder.decode(&mut buf) {
            Err(_) => break Body::Error,
            Ok((piece, done)) => {
                data.extend_from_slice(&piece);
                done
            }
        };
        if done {
            break Body::Decoded { data, done };
        }
        match reads.next() {
            Some(piece) => {
                buf.extend_from_slice(piece);
                received += piece.len();
            }
            None => break Body::Decoded { data, done: false },
        }
    };
    if let Body::Decoded { data, .. } = &body {
        assert!(
            data.len() <= received - body_start,
            "a body yielded more bytes than were received"
        );
        if let Some(n) = content_length(&head.headers) {
            if !decoder.is_chunked() && head.status != StatusCode::NO_CONTENT {
                assert!(data.len() as u64 <= n);
            }
        }
    }
    Outcome::Response {
        status: head.status,
        headers: sorted(&head.headers),
        body,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `parse_head` on the whole input against httparse with room for every header.
fn agrees_with_httparse(input: &[u8]) {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut slots);
    let want = resp.parse(input);
    let mut buf = BytesMut::from(input);
    let got = parse_head(&mut buf);
    match (want, got) {
        (Ok(httparse::Status::Complete(len)), Ok(Some(head))) => {
            assert_eq!(input.len() - buf.len(), len, "head length");
            assert_eq!(Some(head.status.as_u16()), resp.code);
            let mut want: Vec<(String, Vec<u8>)> = resp
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(sorted(&head.headers), want, "header values");
        }
        (Ok(httparse::Status::Partial), Ok(None)) => assert_eq!(buf.len(), input.len()),
        // httparse reads any three digits; `http` (rightly) refuses a status below 100.
        (Ok(httparse::Status::Complete(_)), Err(_)) if resp.code.is_some_and(|c| c < 100) => {}
        (Err(_), Err(_)) => {}
        (want, got) => panic!(
            "httparse: {want:?}, parse_head: {:?}",
            got.map(|h| h.map(|h| h.status))
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    agrees_with_httparse(input);
    let mut first: Option<Outcome> = None;
    for sizes in read_sizes(input.len(), control) {
        let outcome = exchange(input, &sizes);
        match &first {
            None => first = Some(outcome),
            Some(whole) => assert_eq!(&outcome, whole, "reads of {sizes:?}"),
        }
    }
});
