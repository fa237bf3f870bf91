//! The request id every response carries as `x-request-id`: the client's own when it
//! is sane, else a new one — a per-process random prefix and a counter, so ids are
//! unique without a random draw per request.

use http::{HeaderName, HeaderValue, Request};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Header carrying the request id both ways (built at compile time: a `&str` key would
/// be parsed on every lookup).
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent id that is kept.
const MAX_CLIENT_ID: usize = 128;

/// The client's `x-request-id` if it is sane, else a new one.
pub(super) fn request_id<B>(req: &Request<B>) -> HeaderValue {
    if let Some(v) = req.headers().get(&REQUEST_ID) {
        if !v.is_empty() && v.len() <= MAX_CLIENT_ID {
            return v.clone();
        }
    }
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `req_` + 8 hex digits of the prefix + 12 of the counter, written in place.
    let mut id = *b"req_00000000000000000000";
    hex(&mut id[4..12], u64::from(prefix as u32));
    hex(&mut id[12..], n);
    HeaderValue::from_bytes(&id)
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
        assert_eq!(id.len(), 24, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
}
