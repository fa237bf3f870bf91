//! `HEAD` works wherever `GET` does: the request is dispatched as a `GET`, and the
//! answer keeps its status and headers (`Content-Length` included) but not its body.
//! hyper leaves a HEAD response's body out on HTTP/1.1 but not on HTTP/2, so it is
//! dropped here for both.

use crate::relay::ResponseBody;
use http::{header, HeaderValue, Method, Request, Response};
use http_body::Body;

/// Turns a `HEAD` into the `GET` it mirrors; true when it was one.
pub(super) fn as_get<B>(req: &mut Request<B>) -> bool {
    let head = req.method() == Method::HEAD;
    if head {
        *req.method_mut() = Method::GET;
    }
    head
}

/// Drops the body of a response to `HEAD`, keeping the length it would have had.
pub(super) fn strip(resp: &mut Response<ResponseBody>) {
    if let Some(len) = resp.body().size_hint().exact() {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    *resp.body_mut() = ResponseBody::Full(None);
}
