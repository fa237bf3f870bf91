//! Which upstream created a Responses API object: `GET / DELETE /v1/responses/{id}`,
//! `…/cancel` and `…/input_items` must reach the upstream that holds it, and the id is
//! opaque. The id is read from the first frame of a `POST /v1/responses` answer (the
//! JSON's `id`, or the `response.created` event of a stream) and kept in a bounded map
//! with a TTL, process-wide so that it outlives config reloads.

use bytes::Bytes;
use memchr::memmem;
use moka::sync::Cache;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Most response ids remembered.
const CAPACITY: u64 = 100_000;
/// How long an id is remembered.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);

fn owners() -> &'static Cache<Box<str>, Arc<str>> {
    static OWNERS: OnceLock<Cache<Box<str>, Arc<str>>> = OnceLock::new();
    OWNERS.get_or_init(|| {
        Cache::builder()
            .max_capacity(CAPACITY)
            .time_to_live(TTL)
            .build()
    })
}

/// Remembers the upstream that answered, under the response id in `first` (if any).
pub fn remember(first: &Bytes, upstream: Arc<str>) {
    if let Some(id) = response_id(first) {
        owners().insert(id.into(), upstream);
    }
}

/// The upstream that created response `id`, if it is remembered.
pub fn owner(id: &str) -> Option<Arc<str>> {
    owners().get(id)
}

/// The first `"resp_…"` string in `bytes`: the id of the response object (it comes
/// before any other in both the JSON answer and the first stream event).
fn response_id(bytes: &[u8]) -> Option<&str> {
    let start = memmem::find(bytes, b"\"resp_")? + 1;
    let len = memchr::memchr(b'"', bytes.get(start..)?)?;
    let id = std::str::from_utf8(bytes.get(start..start + len)?).ok()?;
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_id_of_a_json_answer_and_of_a_stream() {
        assert_eq!(
            response_id(br#"{"id":"resp_67ccd2","object":"response"}"#),
            Some("resp_67ccd2")
        );
        let event = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1-a\",\"object\":\"response\"}}\n\n";
        assert_eq!(response_id(event), Some("resp_1-a"));
        assert_eq!(response_id(b"{\"id\":\"chatcmpl-1\"}"), None);
        remember(&Bytes::from_static(br#"{"id":"resp_xyz"}"#), Arc::from("b"));
        assert_eq!(owner("resp_xyz").as_deref(), Some("b"));
        assert_eq!(owner("resp_other"), None);
    }
}
