//! The pure half of the response cache: what a cache key is made of, whether a
//! request is worth caching, and the two conversions between a streamed answer and a
//! stored one. Owns no storage, no clock and no policy (what to cache, for how long):
//! the daemon decides those.
//!
//! - [`normalize`]: the canonical bytes of a request, for an exact-match key.
//! - [`deterministic`]: whether the request asked for a repeatable answer.
//! - [`StreamAssembler`]: a `chat.completion.chunk` SSE stream, as the client got it →
//!   the `chat.completion` JSON a non-streamed request would have got (`None` for a
//!   stream that did not end properly: partial answers are never stored).
//! - [`replay_stream`]: a stored `chat.completion` → the SSE events of that answer.
//!
//! A stored answer is always the JSON form; a stream request that hits the cache is
//! replayed from it, a JSON request gets it as it is.

mod assemble;
mod normalize;
mod replay;

pub use assemble::StreamAssembler;
pub use normalize::{deterministic, normalize};
pub use replay::replay_stream;

/// Appends the JSON text `raw` (valid JSON) without its insignificant whitespace, so
/// that a stored object pretty-printed over several lines fits one SSE `data:` line.
fn push_compact(out: &mut String, raw: &str) {
    if !raw.contains(['\n', '\r', ' ', '\t']) {
        out.push_str(raw);
        return;
    }
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
}
