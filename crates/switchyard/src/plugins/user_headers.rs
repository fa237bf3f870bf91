//! `user_headers`: forwards the caller's identity to upstreams as
//! `X-Switchyard-User-Key` (key name), `-Name` (user) and `-Groups` (comma-separated),
//! like Open WebUI's `ENABLE_FORWARD_USER_INFO_HEADERS`. Off unless configured; sends
//! nothing for callers without a key.

use super::{BuildCtx, Exchange, Plugin, PluginFuture, Verdict};
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::sync::Arc;
use switchyard_config::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_prefix")]
    prefix: String,
}

fn default_prefix() -> String {
    "X-Switchyard-User-".to_owned()
}

struct UserHeaders {
    key: HeaderName,
    name: HeaderName,
    groups: HeaderName,
}

pub(super) fn build(ctx: &BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>> {
    let s: Settings = ctx.config()?;
    let header = |suffix: &str| {
        HeaderName::from_bytes(format!("{}{suffix}", s.prefix).as_bytes()).map_err(|_discarded| {
            ctx.error(
                "prefix",
                format!("`{}` does not make valid header names", s.prefix),
            )
        })
    };
    Ok(Arc::new(UserHeaders {
        key: header("Key")?,
        name: header("Name")?,
        groups: header("Groups")?,
    }))
}

impl Plugin for UserHeaders {
    fn modifies(&self) -> bool {
        true
    }

    fn pre_request<'a>(&'a self, ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        let mut effects = super::Effects::default();
        if let Some(key) = &ex.meta.caller.key {
            let mut add = |name: &HeaderName, value: &str| {
                if let Ok(v) = HeaderValue::from_str(value) {
                    effects.upstream_headers.push((name.clone(), v));
                }
            };
            add(&self.key, &key.name);
            if let Some(user) = &key.user {
                add(&self.name, user);
            }
            if !key.groups.is_empty() {
                add(&self.groups, &key.groups.join(","));
            }
        }
        Box::pin(std::future::ready(Ok(Verdict::Continue(effects))))
    }
}
