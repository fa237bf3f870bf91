//! `upstreams:` entries: name, dialect, base URL, auth, static headers, timeouts, weight,
//! model filters and the proxy (its own `proxy:` or the environment's), plus the
//! cross-entry check that names are unique. Routes refer to upstreams by their index in
//! the list built here.

use super::{duration_or, typed};
use crate::error::{join, ConfigError};
use crate::proxy::{Proxy, ProxyEnv, ProxySetting};
use crate::raw;
use crate::resolved::*;
use crate::secret::Secret;
use serde_yaml::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use switchyard_dialects::Dialect;

/// Every upstream that resolves, in config order; at least one is required.
pub(super) fn upstreams(
    values: Vec<Value>,
    proxy_env: &ProxyEnv,
    errors: &mut Vec<ConfigError>,
) -> Vec<Upstream> {
    let mut upstreams = Vec::new();
    let mut names = HashSet::new();
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("upstreams[{i}]");
        let Some(up) = typed::<raw::UpstreamSpec>(value, &path)
            .map_err(|e| errors.push(e))
            .ok()
            .and_then(|spec| upstream(spec, &path, proxy_env, errors))
        else {
            continue;
        };
        if !names.insert(up.name.clone()) {
            errors.push(ConfigError::new(
                join(&path, "name"),
                format!("upstream name `{}` is used twice", up.name),
            ));
        }
        upstreams.push(up);
    }
    if upstreams.is_empty() && errors.is_empty() {
        errors.push(ConfigError::new(
            "upstreams",
            "at least one upstream is required",
        ));
    }
    upstreams
}

fn upstream(
    s: raw::UpstreamSpec,
    path: &str,
    proxy_env: &ProxyEnv,
    errors: &mut Vec<ConfigError>,
) -> Option<Upstream> {
    let before = errors.len();
    let at = |field: &str| join(path, field);
    if s.name.is_empty() || s.name.contains('/') || s.name.chars().any(char::is_whitespace) {
        errors.push(ConfigError::new(
            at("name"),
            format!(
                "`{}` is not a valid upstream name (non-empty, no `/` or spaces)",
                s.name
            ),
        ));
    }
    let dialect = match s.dialect.as_deref().unwrap_or("openai").parse::<Dialect>() {
        Ok(d) => d,
        Err(msg) => {
            errors.push(ConfigError::new(at("dialect"), msg));
            Dialect::OpenAi
        }
    };
    let base_url = match (s.base_url, dialect) {
        (Some(url), _) => {
            let trimmed = url.trim_end_matches('/').to_owned();
            let host = trimmed
                .strip_prefix("http://")
                .or_else(|| trimmed.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                errors.push(ConfigError::new(
                    at("base_url"),
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
            trimmed
        }
        (None, Dialect::Mock) => "mock://local".to_owned(),
        (None, _) => {
            errors.push(ConfigError::new(at("base_url"), "is required"));
            String::new()
        }
    };
    let auth = match s.auth {
        None | Some(raw::AuthSpec::None) => Auth::None,
        Some(raw::AuthSpec::Passthrough) => Auth::Passthrough,
        Some(raw::AuthSpec::Bearer { key }) => Auth::Bearer(Secret::new(key)),
        Some(raw::AuthSpec::Header { name, prefix, key }) => {
            check_header_name(&name, &at("auth.name"), errors);
            Auth::Header {
                name,
                prefix: prefix.unwrap_or_default(),
                key: Secret::new(key),
            }
        }
        Some(raw::AuthSpec::Query { name, key }) => {
            if name.is_empty() {
                errors.push(ConfigError::new(at("auth.name"), "must not be empty"));
            }
            Auth::Query {
                name,
                key: Secret::new(key),
            }
        }
    };
    let mut headers = Vec::new();
    for (name, value) in s.headers {
        check_header_name(&name, &at(&format!("headers.{name}")), errors);
        if value.contains(['\r', '\n']) {
            errors.push(ConfigError::new(
                at(&format!("headers.{name}")),
                "header values cannot contain line breaks",
            ));
        }
        headers.push((name, Secret::new(value)));
    }
    let connect_timeout = duration_or(
        s.connect_timeout,
        &at("connect_timeout"),
        Duration::from_secs(5),
        errors,
    );
    let first_byte_timeout = duration_or(
        s.first_byte_timeout,
        &at("first_byte_timeout"),
        Duration::from_secs(300),
        errors,
    );
    let idle_timeout = duration_or(
        s.idle_timeout,
        &at("idle_timeout"),
        Duration::from_secs(60),
        errors,
    );
    let trust = match s.trust.as_deref() {
        None | Some("both") => Some(Trust::Both),
        Some("bundled") => Some(Trust::Bundled),
        Some("system") => Some(Trust::System),
        Some(other) => {
            errors.push(ConfigError::new(
                at("trust"),
                format!("unknown trust `{other}` (expected bundled, system or both)"),
            ));
            None
        }
    };
    let pool_idle_timeout = duration_or(
        s.pool_idle_timeout,
        &at("pool_idle_timeout"),
        Duration::from_secs(30),
        errors,
    );
    let weight = s.weight.unwrap_or(1);
    if weight == 0 {
        errors.push(ConfigError::new(at("weight"), "must be at least 1"));
    }
    let models = match (s.models, dialect) {
        (None, Dialect::Mock) => Some(vec!["mock-echo".to_owned()]),
        (m, _) => m,
    };
    let fetch_models = s
        .fetch_models
        .unwrap_or(models.is_none() && dialect != Dialect::Mock);
    if fetch_models && dialect == Dialect::Mock {
        errors.push(ConfigError::new(
            at("fetch_models"),
            "the mock dialect has no models endpoint; list `models` instead",
        ));
    }
    let proxy = match proxy_setting(s.proxy.as_deref(), &at("proxy"), errors) {
        ProxySetting::Never => None,
        ProxySetting::Via(p) => Some(p),
        ProxySetting::FromEnv if dialect == Dialect::Mock => None,
        ProxySetting::FromEnv => proxy_env
            .proxy_for(&base_url)
            .map_err(|msg| {
                errors.push(ConfigError::new(
                    path,
                    format!("{msg}; fix it, list this host in NO_PROXY, or set `proxy: none`"),
                ))
            })
            .ok()
            .flatten(),
    };
    if errors.len() > before {
        return None;
    }
    Some(Upstream {
        name: Arc::from(s.name),
        base_url,
        dialect,
        auth,
        headers,
        connect_timeout: connect_timeout?,
        first_byte_timeout: first_byte_timeout?,
        idle_timeout: idle_timeout?,
        pool_idle_timeout: pool_idle_timeout?,
        weight,
        models,
        fetch_models,
        include: s.include.into_iter().map(Glob::new).collect(),
        exclude: s.exclude.into_iter().map(Glob::new).collect(),
        ca_file: s.ca_file.map(std::path::PathBuf::from),
        trust: trust?,
        proxy,
    })
}

/// `proxy:` as written: unset or empty (the environment decides), `none`, or a URL. An
/// error never quotes the value (it may hold credentials).
fn proxy_setting(value: Option<&str>, path: &str, errors: &mut Vec<ConfigError>) -> ProxySetting {
    match value.map(str::trim) {
        None | Some("") => ProxySetting::FromEnv,
        Some(v) if v.eq_ignore_ascii_case("none") => ProxySetting::Never,
        Some(v) => match Proxy::parse(v) {
            Ok(p) => ProxySetting::Via(p),
            Err(msg) => {
                errors.push(ConfigError::new(
                    path,
                    format!("{msg} (or `none` for no proxy)"),
                ));
                ProxySetting::FromEnv
            }
        },
    }
}

pub(super) fn check_header_name(name: &str, path: &str, errors: &mut Vec<ConfigError>) {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        errors.push(ConfigError::new(
            path,
            format!("`{name}` is not a valid HTTP header name"),
        ));
    }
}
