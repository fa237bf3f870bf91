//! Request-smuggling hygiene for HTTP/1.x, checked before anything else reads the
//! request: a request whose body length could be read two ways (`Content-Length` and
//! `Transfer-Encoding` both), a `Transfer-Encoding` other than exactly `chunked`, or a
//! request target longer than [`MAX_TARGET_BYTES`] is refused, and the connection is
//! closed after the answer (see `GatewayError::closes_connection`).

use crate::error::GatewayError;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Request, Version};

/// Longest request target (path and query) accepted, as nginx's default
/// `large_client_header_buffers` line.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// Refuses a request whose framing or target cannot be trusted.
pub(super) fn check<B>(req: &Request<B>) -> Result<(), GatewayError> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Err(GatewayError::UriTooLong(MAX_TARGET_BYTES));
    }
    if req.version() >= Version::HTTP_2 {
        return Ok(()); // HTTP/2 frames bodies itself; it has no Transfer-Encoding.
    }
    let headers = req.headers();
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_none() {
        return Ok(());
    }
    if headers.contains_key(CONTENT_LENGTH) {
        return Err(GatewayError::BadFraming(
            "a request may not carry both Content-Length and Transfer-Encoding",
        ));
    }
    let codings: Vec<String> = codings
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    match codings.as_slice() {
        [one] if one.trim().eq_ignore_ascii_case("chunked") => Ok(()),
        _ => {
            let mut shown = codings.join(", ");
            shown.truncate(shown.floor_char_boundary(64));
            Err(GatewayError::UnsupportedTransferEncoding(shown))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], target: &str) -> Request<()> {
        let mut b = Request::post(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn ambiguous_or_unknown_framing_is_refused() {
        let both = req(
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
            "/v1/chat/completions",
        );
        assert!(matches!(check(&both), Err(GatewayError::BadFraming(_))));
        for te in ["gzip, chunked", "chunked, chunked", "identity"] {
            let r = req(&[("transfer-encoding", te)], "/");
            let err = check(&r).unwrap_err();
            assert_eq!(err.status(), 501, "{te}");
            assert!(err.closes_connection());
        }
        let twice = req(
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            "/",
        );
        assert!(check(&twice).is_err());
        assert!(check(&req(&[("transfer-encoding", "Chunked")], "/")).is_ok());
        assert!(check(&req(&[("content-length", "5")], "/")).is_ok());
    }

    #[test]
    fn long_targets_get_414() {
        let long = format!("/v1/models?{}", "a".repeat(MAX_TARGET_BYTES));
        assert_eq!(check(&req(&[], &long)).unwrap_err().status(), 414);
        let fits = format!("/v1/models?{}", "a".repeat(MAX_TARGET_BYTES - 20));
        assert!(check(&req(&[], &fits)).is_ok());
    }
}
