//! Header fidelity: which of the client's request headers an upstream receives, and
//! which of an upstream's response headers the client does not.
//!
//! Going up: a `passthrough` upstream (the client's own key) gets the client's
//! `OpenAI-Organization`, `OpenAI-Project` and `OpenAI-Beta`, and its `User-Agent` with
//! ` switchyard/<version>` appended; every upstream gets the client headers its
//! `forward_headers` names. An upstream's configured `headers:` win over the client's;
//! hop-by-hop headers never go (config refuses them in `forward_headers`, and a header
//! the client's `Connection` names is hop-by-hop for that request). The client's
//! `Authorization` is `send`'s affair (`passthrough` only), its `x-api-key` never goes.
//!
//! Coming back: the upstream's `x-request-id` is kept as `x-upstream-request-id` (the
//! client's `x-request-id` is ours), and the upstream's `strip_response_headers` (by
//! default the operator's `openai-organization` / `openai-project`) are removed.
//!
//! Nothing here allocates unless a header is actually forwarded with a changed value
//! (the `User-Agent`).

use super::super::Upstream;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The `User-Agent` sent upstream, and appended to the client's where it is forwarded.
pub(super) const USER_AGENT: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// What a `passthrough` upstream gets of the client's headers, besides its
/// `Authorization` and `User-Agent` (names built at compile time).
static PASSTHROUGH: [HeaderName; 3] = [
    HeaderName::from_static("openai-organization"),
    HeaderName::from_static("openai-project"),
    HeaderName::from_static("openai-beta"),
];

/// The upstream's own request id, beside ours.
pub(super) static X_UPSTREAM_REQUEST_ID: HeaderName =
    HeaderName::from_static("x-upstream-request-id");

/// The client's headers this upstream receives (every value of each), `User-Agent`
/// aside (see [`user_agent`]).
pub(super) fn forwarded<'a>(
    up: &'a Upstream,
    client: &'a HeaderMap,
) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> {
    let builtin: &'a [HeaderName] = if up.takes_callers_credentials() {
        &PASSTHROUGH
    } else {
        &[]
    };
    let listed = up.forward.iter().filter(move |n| !builtin.contains(n));
    builtin
        .iter()
        .chain(listed)
        .filter(move |n| {
            *n != header::USER_AGENT && !up.headers.contains_key(*n) && !nominated(client, n)
        })
        .flat_map(move |n| client.get_all(n).iter().map(move |v| (n, v)))
}

/// The `User-Agent` for this upstream: the client's with ` switchyard/<version>`
/// appended where the client's is forwarded (`passthrough`, or `forward_headers` names
/// it), else ours alone.
pub(super) fn user_agent(up: &Upstream, client: &HeaderMap) -> HeaderValue {
    let ours = HeaderValue::from_static(USER_AGENT);
    let forwards = up.takes_callers_credentials() || up.forward.contains(&header::USER_AGENT);
    if !forwards || nominated(client, &header::USER_AGENT) {
        return ours;
    }
    let Some(theirs) = client
        .get(header::USER_AGENT)
        .filter(|v| !v.as_bytes().trim_ascii().is_empty())
    else {
        return ours;
    };
    let theirs = theirs.as_bytes().trim_ascii();
    let mut v = Vec::with_capacity(theirs.len() + 1 + USER_AGENT.len());
    v.extend_from_slice(theirs);
    v.push(b' ');
    v.extend_from_slice(USER_AGENT.as_bytes());
    HeaderValue::from_maybe_shared(Bytes::from(v)).unwrap_or(ours)
}

/// Whether the client's `Connection` header names `name` (making it hop-by-hop).
fn nominated(client: &HeaderMap, name: &HeaderName) -> bool {
    client.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|t| {
            t.trim_ascii()
                .eq_ignore_ascii_case(name.as_str().as_bytes())
        })
    })
}

/// An upstream's response headers as the client gets them: its `x-request-id` moved to
/// `x-upstream-request-id`, its `strip_response_headers` removed.
pub(super) fn from_upstream(headers: &mut HeaderMap, up: &Upstream) {
    if let Some(id) = headers.remove(&super::X_REQUEST_ID) {
        headers.insert(&X_UPSTREAM_REQUEST_ID, id);
    }
    for name in &up.strip {
        headers.remove(name);
    }
}
