//! The plugin named `http`: an external plugin over HTTP, like Open WebUI's pipelines. At `pre_request`
//! (inlet) it POSTs the request, at `post_response` (outlet) the response, at `error`
//! the error, each as JSON with the caller and request facts. The service answers
//! `{"action":"continue"}` (or nothing), `{"action":"modify","body":{…}}` (the new
//! body) or `{"action":"reject","status":403,"message":"…","code":"…"}`. Anything else
//! — a non-2xx, bad JSON, a timeout — is a plugin failure, handled by `on_error`.

use super::{
    BuildCtx, ErrorExchange, Exchange, Plugin, PluginError, PluginFuture, Rejection, RequestMeta,
    ResponseExchange, Verdict,
};
use crate::client::{describe_client_error, HttpClient};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use switchyard_config::ConfigError;

/// Largest answer accepted from the service.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// No `Debug`: `headers` usually carries the service's token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

struct HttpPlugin {
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    client: HttpClient,
}

pub(super) fn build(ctx: &BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>> {
    let s: Settings = ctx.config()?;
    let url: Uri = s
        .url
        .parse()
        .ok()
        .filter(|u: &Uri| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        .ok_or_else(|| {
            ctx.error(
                "url",
                format!("`{}` is not an http:// or https:// URL", s.url),
            )
        })?;
    let mut headers = Vec::new();
    for (name, value) in &s.headers {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_discarded| {
            ctx.error(&format!("headers.{name}"), "not a valid header name")
        })?;
        let mut v = HeaderValue::from_str(value).map_err(|_discarded| {
            ctx.error(&format!("headers.{name}"), "not a valid header value")
        })?;
        v.set_sensitive(true);
        headers.push((n, v));
    }
    let client = ctx
        .clients
        .plugin_client()
        .map_err(|e| ctx.error("url", e.to_string()))?;
    Ok(Arc::new(HttpPlugin {
        url,
        headers,
        client,
    }))
}

fn caller_json(meta: &RequestMeta) -> Value {
    match &meta.caller.key {
        Some(k) => json!({"key": &*k.name, "name": k.user.as_deref(), "groups": &*k.groups}),
        None => Value::Null,
    }
}

fn envelope(stage: &str, meta: Option<&RequestMeta>) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("stage".into(), json!(stage));
    if let Some(meta) = meta {
        m.insert(
            "request_id".into(),
            json!(meta.request_id.to_str().unwrap_or("")),
        );
        m.insert("model".into(), json!(meta.model));
        m.insert("stream".into(), json!(meta.stream));
        m.insert("user".into(), caller_json(meta));
    }
    m
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl HttpPlugin {
    async fn call(&self, payload: Value) -> Result<Verdict, PluginError> {
        let mut req = Request::new(Full::new(Bytes::from(payload.to_string())));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.url.clone();
        let h = req.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (n, v) in &self.headers {
            h.insert(n.clone(), v.clone());
        }
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| PluginError::Unreachable(describe_client_error(&e)))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| PluginError::BadAnswer(format!("reading it failed: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(PluginError::Status(status));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Verdict::pass());
        }
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| PluginError::BadAnswer(e.to_string()))?;
        match answer.action.as_deref() {
            None | Some("continue") => Ok(Verdict::pass()),
            Some("modify") => {
                let new = answer.body.ok_or_else(|| {
                    PluginError::BadAnswer("`modify` without a `body`".to_owned())
                })?;
                Ok(Verdict::patch(move |b| *b = new))
            }
            Some("reject") => {
                let status = answer
                    .status
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .unwrap_or(StatusCode::FORBIDDEN);
                Ok(Verdict::Reject(Rejection::new(
                    status,
                    "invalid_request_error",
                    answer.code.as_deref().unwrap_or("rejected_by_plugin"),
                    answer.message.unwrap_or_else(|| {
                        "The request was rejected by a gateway plugin.".to_owned()
                    }),
                )))
            }
            Some(other) => Err(PluginError::BadAnswer(format!("unknown action `{other}`"))),
        }
    }
}

impl Plugin for HttpPlugin {
    fn needs_request_body(&self) -> bool {
        true
    }

    fn needs_response_body(&self) -> bool {
        true
    }

    fn needs_usage(&self) -> bool {
        true
    }

    fn pre_request<'a>(&'a self, ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        let mut m = envelope("pre_request", Some(ex.meta));
        m.insert("body".into(), ex.body.cloned().unwrap_or(Value::Null));
        Box::pin(self.call(Value::Object(m)))
    }

    fn post_response<'a>(&'a self, ex: ResponseExchange<'a>) -> PluginFuture<'a, Verdict> {
        let mut m = envelope("post_response", Some(ex.meta));
        m.insert("status".into(), json!(ex.status.as_u16()));
        m.insert("streamed".into(), json!(ex.streamed));
        m.insert("request".into(), ex.request.cloned().unwrap_or(Value::Null));
        m.insert("response".into(), ex.body.cloned().unwrap_or(Value::Null));
        m.insert("content".into(), json!(ex.content));
        m.insert(
            "usage".into(),
            ex.usage.map_or(Value::Null, |u| {
                json!({"prompt_tokens": u.prompt, "completion_tokens": u.completion, "total_tokens": u.total()})
            }),
        );
        Box::pin(self.call(Value::Object(m)))
    }

    fn on_error<'a>(&'a self, ex: ErrorExchange<'a>) -> PluginFuture<'a, Verdict> {
        let mut m = envelope("error", ex.meta);
        m.insert("status".into(), json!(ex.status.as_u16()));
        m.insert("error".into(), ex.body.clone());
        Box::pin(self.call(Value::Object(m)))
    }
}
