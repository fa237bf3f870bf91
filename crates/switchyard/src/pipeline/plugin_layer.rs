//! The plugin chain around the one send path, used only when plugins are configured.
//! Before: `pre_request` (which may change the body or reject). After: a stream gets
//! the chain's hooks (`on_chunk` filters, text collection, `post_response` once it
//! ends, with the usage the relay read); a complete response is buffered for
//! `post_response` only when a plugin runs there. Asking a stream for usage is not
//! done here: the pipeline does it for every stream, plugins or not.

use super::Failed;
use crate::error::GatewayError;
use crate::plugins::chain::{BodyCell, ChainHooks, StageEffects, StageInput, StreamSummary};
use crate::plugins::{RequestMeta, Usage};
use crate::relay::ResponseBody;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use switchyard_config::Stage;

/// Largest response body buffered for `post_response` plugins.
const MAX_BUFFERED_RESPONSE: usize = 32 * 1024 * 1024;

/// One request's plugin state between `before` and `after`.
#[derive(Debug)]
pub(super) struct PluginLayer {
    meta: Arc<RequestMeta>,
    /// The request body as the plugins left it.
    body: BodyCell,
    /// Its bytes, when a plugin changed it.
    changed: Option<Bytes>,
    pre: StageEffects,
    needs_usage: bool,
}

impl PluginLayer {
    /// Runs `pre_request`.
    pub(super) async fn before(
        snap: &Snapshot,
        mut meta: RequestMeta,
        raw: Bytes,
    ) -> Result<Self, Failed> {
        let chain = &snap.chain;
        let mut body = BodyCell::new(raw);
        let pre = match chain
            .run(
                Stage::PreRequest,
                Some(&meta),
                StageInput::Request,
                &mut body,
            )
            .await
        {
            Ok(effects) => effects,
            Err(error) => {
                return Err(Failed {
                    error,
                    meta: Some(Arc::new(meta)),
                })
            }
        };
        let needs_usage = chain.needs_usage(&meta);
        let changed = body.dirty.then(|| body.to_bytes());
        if let Some(bytes) = &changed {
            // A plugin may have turned streaming on or off.
            if let Ok(peeked) = switchyard_dialects::peek(bytes) {
                meta.stream = peeked.stream;
            }
        }
        Ok(Self {
            meta: Arc::new(meta),
            body,
            changed,
            pre,
            needs_usage,
        })
    }

    /// The request facts, for `error` plugins.
    pub(super) fn meta(&self) -> Arc<RequestMeta> {
        self.meta.clone()
    }

    /// The request body, if a plugin changed it.
    pub(super) fn changed_body(&self) -> Option<&Bytes> {
        self.changed.as_ref()
    }

    /// The client's request headers.
    pub(super) fn client_headers(&self) -> &http::HeaderMap {
        &self.meta.headers
    }

    /// Headers plugins add to the upstream request.
    pub(super) fn upstream_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.pre.upstream_headers
    }

    /// Hooks a stream, or runs `post_response` over a complete response; adds the
    /// plugins' response headers.
    pub(super) async fn after(
        self,
        snap: &Arc<Snapshot>,
        mut resp: Response<ResponseBody>,
    ) -> Result<Response<ResponseBody>, Failed> {
        let chain = &snap.chain;
        let meta = &self.meta;
        let status = resp.status();
        let post = chain.applies(Stage::PostResponse, meta);
        let with_meta = |error: GatewayError| Failed {
            error,
            meta: Some(meta.clone()),
        };
        match resp.body_mut() {
            ResponseBody::Relay(relay) if relay.is_sse() => {
                let on_end = post.then(|| {
                    let (snap, meta) = (snap.clone(), meta.clone());
                    let request = self.body.json().cloned();
                    Box::new(move |summary: StreamSummary| {
                        after_stream(snap, meta, request, status, summary);
                    }) as Box<dyn FnOnce(StreamSummary) + Send>
                });
                relay.set_hooks(Box::new(ChainHooks {
                    filters: chain.chunk_filters(meta),
                    collect_text: chain.needs_response_body(meta),
                    on_end,
                    ..ChainHooks::default()
                }));
            }
            _ if post && status.is_success() => {
                let (mut parts, resp_body) = resp.into_parts();
                let collected = Limited::new(resp_body, MAX_BUFFERED_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| with_meta(GatewayError::ResponseUnreadable(e.to_string())))?
                    .to_bytes();
                let mut cell = BodyCell::new(collected);
                let usage = if self.needs_usage {
                    cell.json_now().and_then(Usage::from_json)
                } else {
                    None
                };
                let input = StageInput::Response {
                    status,
                    usage,
                    streamed: false,
                    content: None,
                    request: self.body.json(),
                };
                let effects = chain
                    .run(Stage::PostResponse, Some(meta), input, &mut cell)
                    .await
                    .map_err(with_meta)?;
                if cell.dirty {
                    parts.headers.remove(header::CONTENT_LENGTH);
                }
                resp = Response::from_parts(parts, ResponseBody::full(cell.to_bytes()));
                add_headers(&mut resp, effects.response_headers);
            }
            _ => {}
        }
        add_headers(&mut resp, self.pre.response_headers);
        Ok(resp)
    }
}

/// `post_response` for a stream, once it ended (observe only: the bytes are gone).
fn after_stream(
    snap: Arc<Snapshot>,
    meta: Arc<RequestMeta>,
    request: Option<serde_json::Value>,
    status: StatusCode,
    summary: StreamSummary,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let input = StageInput::Response {
            status,
            usage: summary.usage,
            streamed: true,
            content: summary.text.as_deref(),
            request: request.as_ref(),
        };
        let mut cell = BodyCell::default();
        if let Err(e) = snap
            .chain
            .run(Stage::PostResponse, Some(&meta), input, &mut cell)
            .await
        {
            tracing::debug!(request_id = ?meta.request_id, error = %e, "post_response after a stream");
        }
    });
}

fn add_headers(resp: &mut Response<ResponseBody>, headers: Vec<(HeaderName, HeaderValue)>) {
    for (name, value) in headers {
        resp.headers_mut().insert(name, value);
    }
}
