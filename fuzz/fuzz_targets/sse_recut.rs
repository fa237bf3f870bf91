//! The SSE re-cutter (`switchyard_dialects::sse::EventAligner`), fed one stream in
//! several chunkings. Input: one control byte (seeds the chunk sizes and the event
//! limit), then the stream.
//!
//! Checked, for every chunking:
//! - nothing is lost or reordered: what comes out plus what is held is the stream;
//! - every piece handed out ends at an event boundary, and the cuts are the ones a
//!   whole-buffer rescan (the aligner's original design, kept here as the reference)
//!   makes after each push;
//! - the events (`data` payloads) are the same as when the stream is fed whole;
//! - `single_data` agrees with `data_payloads` on every event, and the usage scan
//!   the relay runs on aligned bytes only ever leaves events out;
//! - with a small limit, the aligner fails exactly when the unlimited one holds more
//!   than the limit without finishing an event, fails for good after that, and agrees
//!   with the unlimited one before it.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchyard_dialects::sse::{
    data_payloads, last_event_end, single_data, split_events, EventAligner,
};
use switchyard_dialects::usage::scan_events;

/// The original whole-buffer scan: a line end is `\r\n`, `\r` or `\n`; an event ends
/// after a line end that starts a line (index 0 excepted).
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

/// Chunk sizes: all at once, byte by byte, and pseudo-random sizes from `seed`.
fn chunkings(len: usize, seed: u8) -> Vec<Vec<usize>> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut random = Vec::new();
    let mut left = len;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 9 + 1).min(left);
        random.push(n);
        left -= n;
    }
    vec![vec![len], vec![1; len], random]
}

fn pieces<'a>(stream: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    sizes.iter().map(move |&n| {
        let piece = &stream[at..at + n];
        at += n;
        piece
    })
}

/// Feeds `stream` in pieces of `sizes`; returns the pieces handed out and what is held
/// at the end.
fn feed(stream: &[u8], sizes: &[usize]) -> (Vec<Bytes>, Bytes) {
    let mut aligner = EventAligner::with_limit(usize::MAX);
    let mut reference: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for piece in pieces(stream, sizes) {
        let got = aligner
            .push(Bytes::copy_from_slice(piece))
            .expect("no limit, no error");
        reference.extend_from_slice(piece);
        let want =
            reference_scan(&reference).map(|end| reference.drain(..end).collect::<Vec<u8>>());
        assert_eq!(
            got.as_deref(),
            want.as_deref(),
            "cut differs from the rescan"
        );
        assert_eq!(aligner.pending(), reference.len());
        if let Some(done) = got {
            assert!(!done.is_empty(), "an empty piece was handed out");
            assert_eq!(
                last_event_end(&done),
                Some(done.len()),
                "a piece does not end at an event boundary: {done:?}"
            );
            out.push(done);
        }
    }
    (out, aligner.take_rest())
}

fn check_events(piece: &Bytes) {
    for event in split_events(piece) {
        let single = single_data(&event).map(std::borrow::Cow::into_owned);
        assert_eq!(
            single,
            data_payloads(&event).into_iter().next(),
            "{event:?}"
        );
    }
    for drop in [false, true] {
        let scanned = scan_events(piece, drop);
        if let Some(kept) = scanned.kept {
            assert!(drop, "kept bytes without being asked to drop any");
            assert!(kept.len() < piece.len(), "nothing was left out");
        }
    }
}

/// The limited aligner against an unlimited one, in lockstep.
fn check_limit(stream: &[u8], sizes: &[usize], limit: usize) {
    let mut limited = EventAligner::with_limit(limit);
    let mut free = EventAligner::with_limit(usize::MAX);
    let mut failed = false;
    for piece in pieces(stream, sizes) {
        let chunk = Bytes::copy_from_slice(piece);
        let got = limited.push(chunk.clone());
        if failed {
            assert!(got.is_err(), "a push after an overflow succeeded");
            continue;
        }
        let want = free.push(chunk).expect("no limit, no error");
        match got {
            Err(e) => {
                assert_eq!(e.limit, limit);
                assert!(want.is_none(), "an overflow hid finished events");
                assert!(free.pending() > limit, "overflow below the limit");
                assert_eq!(limited.pending(), 0, "held bytes kept after an overflow");
                failed = true;
            }
            Ok(got) => {
                assert_eq!(got, want);
                assert!(
                    want.is_some() || free.pending() <= limit,
                    "held {} bytes past a limit of {limit} without an error",
                    free.pending()
                );
                assert_eq!(limited.pending(), free.pending());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let mut events_whole: Option<Vec<String>> = None;
    for sizes in chunkings(stream.len(), control) {
        let (out, rest) = feed(stream, &sizes);
        let mut all = Vec::with_capacity(stream.len());
        for piece in &out {
            all.extend_from_slice(piece);
        }
        all.extend_from_slice(&rest);
        assert_eq!(all, stream, "bytes lost or reordered");
        // Each piece on its own yields the events of the whole prefix handed out.
        let events: Vec<String> = out.iter().flat_map(|p| data_payloads(p)).collect();
        match &events_whole {
            None => events_whole = Some(events),
            Some(whole) => assert_eq!(&events, whole, "events differ from the whole feed"),
        }
        for piece in &out {
            check_events(piece);
        }
    }
    let limit = usize::from(control % 32) + 1;
    for sizes in chunkings(stream.len(), control.rotate_left(3)) {
        check_limit(stream, &sizes, limit);
    }
});
