//! CORS (`server.cors`), for browser clients. A preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`, on any path) is answered here before dispatch:
//! 204 with what the config allows, or 403 for an origin it does not; no key is asked
//! for and no upstream is touched. Every other response from an allowed origin gets
//! `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers` at the end of the
//! pipeline (JSON, streams and errors alike); a disallowed origin is served without
//! them, and the browser withholds the answer from the page.
//!
//! CORS headers an upstream sent are never relayed: the gateway's policy is the only
//! one a browser sees (none when `server.cors` is absent). That removal is all the
//! no-CORS path does here, and it allocates nothing.

use crate::error::GatewayError;
use crate::relay::ResponseBody;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use switchyard_config::Cors;

/// The response headers CORS is made of, removed from what an upstream sent.
static RESPONSE_HEADERS: [http::HeaderName; 6] = [
    ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE,
];

/// The answer to a preflight, or `None` when the request is not one (or CORS is off).
pub(super) fn preflight<B>(
    cors: Option<&Cors>,
    req: &Request<B>,
) -> Option<Result<Response<ResponseBody>, GatewayError>> {
    let cors = cors?;
    let headers = req.headers();
    if req.method() != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let origin = headers.get(ORIGIN)?;
    if !cors.allows(origin.as_bytes()) {
        let shown = String::from_utf8_lossy(origin.as_bytes());
        return Some(Err(GatewayError::OriginNotAllowed(
            shown.chars().take(200).collect(),
        )));
    }
    let mut resp = Response::new(ResponseBody::Full(None));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let out = resp.headers_mut();
    if let Some(value) = joined(&cors.allow_methods) {
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, value);
    }
    let allow_headers = match &cors.allow_headers {
        Some(list) => joined(list),
        None => headers.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned(),
    };
    if let Some(value) = allow_headers {
        out.insert(ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
    out.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age.as_secs()),
    );
    // `Access-Control-Allow-Origin` and the rest: `apply`, at the end, as for any answer.
    Some(Ok(resp))
}

/// The request's `Origin` when CORS is on (kept for [`apply`]; a shared buffer, not a
/// copy).
pub(super) fn origin<B>(cors: Option<&Cors>, req: &Request<B>) -> Option<HeaderValue> {
    cors.and_then(|_| req.headers().get(ORIGIN).cloned())
}

/// Puts the gateway's CORS headers on a response, after removing any an upstream sent
/// (`preflight`: the answer is [`preflight`]'s, all the gateway's own).
pub(super) fn apply(
    cors: Option<&Cors>,
    origin: Option<HeaderValue>,
    preflight: bool,
    headers: &mut HeaderMap,
) {
    if !preflight {
        for name in &RESPONSE_HEADERS {
            headers.remove(name);
        }
    }
    let Some(cors) = cors else {
        return;
    };
    // The answer depends on the origin (allowed or not, echoed or not): caches must
    // key on it.
    headers.append(VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin.filter(|o| cors.allows(o.as_bytes())) else {
        return;
    };
    let allowed = if cors.any_origin && !cors.allow_credentials {
        HeaderValue::from_static("*")
    } else {
        origin
    };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if cors.allow_credentials {
        headers.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if let Some(value) = joined(&cors.expose_headers) {
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, value);
    }
}

/// `a, b, c` as a header value; `None` for an empty list.
fn joined(list: &[String]) -> Option<HeaderValue> {
    if list.is_empty() {
        return None;
    }
    HeaderValue::try_from(list.join(", ")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cors(origins: &[&str], any: bool, credentials: bool) -> Cors {
        Cors {
            allow_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            any_origin: any,
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: None,
            expose_headers: vec!["x-request-id".into()],
            max_age: Duration::from_secs(600),
            allow_credentials: credentials,
        }
    }

    #[test]
    fn any_origin_with_credentials_echoes_the_origin() {
        let c = cors(&[], true, true);
        let mut h = HeaderMap::new();
        apply(
            Some(&c),
            Some(HeaderValue::from_static("https://a.test")),
            false,
            &mut h,
        );
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.test");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let c = cors(&[], true, false);
        let mut h = HeaderMap::new();
        apply(
            Some(&c),
            Some(HeaderValue::from_static("https://a.test")),
            false,
            &mut h,
        );
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }

    #[test]
    fn upstream_cors_headers_never_pass_and_off_adds_none() {
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("5"));
        apply(
            None,
            Some(HeaderValue::from_static("https://a.test")),
            false,
            &mut h,
        );
        assert!(h.is_empty(), "{h:?}");
        let c = cors(&["https://b.test"], false, false);
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        apply(
            Some(&c),
            Some(HeaderValue::from_static("https://a.test")),
            false,
            &mut h,
        );
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN), "{h:?}");
        assert_eq!(h[VARY], "Origin");
    }
}
