//! The HTTP/1.1 client's chunked-body decoder (`client::h1` `decode` with chunked
//! framing), fed in reads of any size. Input: one control byte, then bytes. When the
//! control byte is odd the bytes are the body as received; when even they describe
//! chunks (sizes, data, spellings of the size line, a trailer) that are encoded into a
//! valid body followed by bytes of the next response, which must be left alone.
//!
//! Checked:
//! - the decoder never yields more bytes than it consumed;
//! - every chunking of the reads ends the same way (same data, same end, same error);
//! - on any input a strict reference decoder accepts (every generated body, and raw
//!   inputs that happen to be valid), the decoder yields exactly the reference's data,
//!   ends, and consumes exactly the body — not a byte of what follows;
//! - once done, decoding again yields nothing and consumes nothing.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::client::h1::fuzzing::{BodyDecoder, MAX_LINE};

/// A strict decoder of a whole chunked body: hex size (at most 15 digits), optional
/// `;extension` without CR or LF, CRLF, data, CRLF; after the last (zero) chunk at most
/// 8 trailer lines of at most 256 bytes each, then an empty line. Returns the data and
/// the length of the body, or `None` when the input is not such a body.
fn reference(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let line_at = |pos: usize| -> Option<&[u8]> {
        let rest = input.get(pos..)?;
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &rest[..eol];
        (line.len() <= MAX_LINE && !line.iter().any(|&b| b == b'\r' || b == b'\n')).then_some(line)
    };
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        let line = line_at(pos)?;
        pos += line.len() + 2;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 15 || !(digits == line.len() || line[digits] == b';') {
            return None;
        }
        let size = usize::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
        if size == 0 {
            break;
        }
        let data = input.get(pos..pos.checked_add(size)?)?;
        out.extend_from_slice(data);
        pos += size;
        if input.get(pos..pos + 2)? != b"\r\n" {
            return None;
        }
        pos += 2;
    }
    for _ in 0..=8 {
        let line = line_at(pos)?;
        pos += line.len() + 2;
        if line.is_empty() {
            return Some((out, pos));
        }
        if line.len() > 256 {
            return None;
        }
    }
    None
}

/// A valid chunked body built from `desc`, then the start of a pipelined response.
fn generate(desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = desc;
    while let Some((&spec, tail)) = rest.split_first() {
        // Low 6 bits: size (0 ends the body); bit 6: upper-case hex and a leading
        // zero; bit 7: an extension.
        let size = usize::from(spec & 0x3f).min(tail.len());
        if size == 0 {
            rest = tail;
            break;
        }
        let hex = if spec & 0x40 != 0 {
            format!("0{size:X}")
        } else {
            format!("{size:x}")
        };
        out.extend_from_slice(hex.as_bytes());
        if spec & 0x80 != 0 {
            out.extend_from_slice(b";name=\"va;lue\"");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&tail[..size]);
        out.extend_from_slice(b"\r\n");
        rest = &tail[size..];
    }
    out.extend_from_slice(if rest.first().is_some_and(|b| b & 1 == 1) {
        b"0\r\nx-checksum: abc\r\n\r\n"
    } else {
        b"0\r\n\r\n"
    });
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
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
        let n = (state as usize % 13 + 1).min(left);
        random.push(n);
        left -= n;
    }
    vec![vec![len], random, vec![1; len]]
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Error,
    /// Data so far, and how many bytes the body took when it ended.
    Decoded {
        data: Vec<u8>,
        ended_after: Option<usize>,
    },
}

/// Feeds the reads the way the client's body does: decode after every read, stop once
/// the body is done.
fn run(input: &[u8], sizes: &[usize]) -> Outcome {
    let mut decoder = BodyDecoder::chunked();
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut data = Vec::new();
    for &n in sizes {
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        let Ok((piece, done)) = decoder.decode(&mut buf) else {
            return Outcome::Error;
        };
        data.extend_from_slice(&piece);
        let consumed = fed - buf.len();
        assert!(data.len() <= consumed, "yielded more than it consumed");
        if done {
            let left = buf.len();
            let again = decoder.decode(&mut buf).expect("decoding after the end");
            assert_eq!(again, (bytes::Bytes::new(), true), "data after the end");
            assert_eq!(buf.len(), left, "consumed after the end");
            return Outcome::Decoded {
                data,
                ended_after: Some(consumed),
            };
        }
    }
    Outcome::Decoded {
        data,
        ended_after: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let generated;
    let input = if control & 1 == 1 {
        rest
    } else {
        generated = generate(rest);
        &generated[..]
    };
    let want = reference(input);
    if control & 1 == 0 {
        assert!(want.is_some(), "the reference refused a generated body");
    }
    let mut first: Option<Outcome> = None;
    for sizes in read_sizes(input.len(), control) {
        let got = run(input, &sizes);
        if let Some((body, len)) = &want {
            assert_eq!(
                got,
                Outcome::Decoded {
                    data: body.clone(),
                    ended_after: Some(*len),
                },
                "valid body, reads of {sizes:?}"
            );
        }
        match &first {
            None => first = Some(got),
            Some(whole) => assert_eq!(&got, whole, "reads of {sizes:?}"),
        }
    }
});
