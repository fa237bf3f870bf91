//! The request id every response carries as `x-request-id`: the client's own when it
//! is sane, else a new one — `req_` and 128 random bits in hex. The bits come from a
//! keyed hash (SipHash, std's `RandomState`, keyed from the OS's randomness once per
//! thread) of a per-thread counter: no system call, lock or allocation per id, and ids
//! that neither repeat nor follow one another (without the key, one id says nothing
//! about the next). One allocation per new id; copies share it.

use http::{HeaderName, HeaderValue, Request};
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Header carrying the request id both ways (built at compile time: a `&str` key would
/// be parsed on every lookup).
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent id that is kept.
const MAX_CLIENT_ID: usize = 128;

thread_local! {
    /// This thread's key (random per thread) and how many ids it has made.
    static SOURCE: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
}

/// The client's `x-request-id` if it is sane, else a new one.
pub(super) fn request_id<B>(req: &Request<B>) -> HeaderValue {
    if let Some(v) = req.headers().get(&REQUEST_ID) {
        if !v.is_empty() && v.len() <= MAX_CLIENT_ID {
            // Copied: the client's value is a slice of the connection's read buffer,
            // which the request's record (kept until exported) would keep alive.
            return HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
        }
    }
    let (high, low) = SOURCE.with(|(key, count)| {
        let n = count.get();
        count.set(n.wrapping_add(1));
        let mut h = key.build_hasher();
        h.write_u64(n);
        let high = h.finish();
        // The same hasher, one more word in: a second, independent 64 bits.
        h.write_u64(high);
        (high, h.finish())
    });
    // `req_` + 32 hex digits, written in place.
    let mut id = *b"req_00000000000000000000000000000000";
    hex(&mut id[4..20], high);
    hex(&mut id[20..], low);
    // One allocation holds the bytes, shared by every copy of the value (the
    // response's header, the upstream request's, the access record's); a `Vec`-backed
    // value would allocate again on its first clone.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(id))
        .unwrap_or_else(|_discarded| HeaderValue::from_static("req_unknown"))
}

/// Writes the low digits of `n` in lower-case hex, right-aligned, into `out`.
fn hex(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept_and_others_are_replaced() {
        let with = |id: &str| Request::builder().header(&REQUEST_ID, id).body(()).unwrap();
        assert_eq!(request_id(&with("abc-1")), "abc-1");
        let long = "x".repeat(MAX_CLIENT_ID + 1);
        assert!(request_id(&with(&long))
            .to_str()
            .unwrap()
            .starts_with("req_"));
        let fresh = Request::new(());
        assert_ne!(request_id(&fresh), request_id(&fresh), "new ids are unique");
        let id = request_id(&fresh);
        let id = id.to_str().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }

    #[test]
    fn new_ids_are_random_across_threads_not_counted() {
        let fresh = Request::new(());
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..500)
                            .map(|_| request_id(&fresh).to_str().unwrap().to_owned())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: std::collections::HashSet<&str> = ids.iter().map(|s| &s[..12]).collect();
        // 2000 ids: their first 32 bits alone all differ but for a rare coincidence.
        assert!(distinct.len() >= 1990, "{}", distinct.len());
    }
}
