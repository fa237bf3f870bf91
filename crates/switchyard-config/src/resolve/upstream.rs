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

/// `anthropic-version` sent unless an upstream's `headers:` say otherwise.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Azure's `api-version` unless an upstream's `api_version` says otherwise (the latest
/// GA data-plane version).
const AZURE_API_VERSION: &str = "2024-10-21";

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
    mut s: raw::UpstreamSpec,
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
    let translate = translate_settings(&s, dialect, path, errors);
    let api_version = s
        .api_version
        .clone()
        .unwrap_or_else(|| AZURE_API_VERSION.to_owned());
    if dialect != Dialect::Azure && (s.api_version.is_some() || !s.deployments.is_empty()) {
        errors.push(ConfigError::new(
            at(if s.api_version.is_some() {
                "api_version"
            } else {
                "deployments"
            }),
            "only `azure` upstreams take this setting",
        ));
    }
    let deployments: Vec<(String, String)> = s.deployments.clone().into_iter().collect();
    let forward_headers = forward_headers(std::mem::take(&mut s.forward_headers), path, errors);
    let strip_response_headers =
        strip_response_headers(s.strip_response_headers.take(), path, errors);
    let base_url = match (s.base_url.take(), dialect) {
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
        (None, d) if d.default_base_url().is_some() => {
            d.default_base_url().unwrap_or_default().to_owned()
        }
        (None, _) => {
            errors.push(ConfigError::new(at("base_url"), "is required"));
            String::new()
        }
    };
    let auth = match s.auth {
        None | Some(raw::AuthSpec::None) => Auth::None,
        Some(raw::AuthSpec::Passthrough) => Auth::Passthrough,
        // A dialect with its own key header gets the key there.
        Some(raw::AuthSpec::Bearer { key }) => match dialect.key_header() {
            Some(name) => Auth::Header {
                name: name.to_owned(),
                prefix: String::new(),
                key: Secret::new(key),
            },
            None => Auth::Bearer(Secret::new(key)),
        },
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
    for (name, value) in std::mem::take(&mut s.headers) {
        check_header_name(&name, &at(&format!("headers.{name}")), errors);
        if value.contains(['\r', '\n']) {
            errors.push(ConfigError::new(
                at(&format!("headers.{name}")),
                "header values cannot contain line breaks",
            ));
        }
        headers.push((name, Secret::new(value)));
    }
    if dialect == Dialect::Anthropic
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("anthropic-version"))
    {
        headers.push((
            "anthropic-version".to_owned(),
            Secret::new(ANTHROPIC_VERSION.to_owned()),
        ));
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
        // Azure has no list of deployments to fetch: its map is the catalogue.
        (None, Dialect::Azure) if !deployments.is_empty() => {
            Some(deployments.iter().map(|(model, _)| model.clone()).collect())
        }
        (m, _) => m,
    };
    let fetch_models = s
        .fetch_models
        .unwrap_or(models.is_none() && !matches!(dialect, Dialect::Mock | Dialect::Azure));
    if fetch_models && matches!(dialect, Dialect::Mock | Dialect::Azure) {
        errors.push(ConfigError::new(
            at("fetch_models"),
            format!("the {dialect} dialect has no models endpoint to fetch; list `models` (or `deployments`) instead"),
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
        translate,
        api_version,
        deployments,
        responses: s.responses.unwrap_or(matches!(
            dialect,
            Dialect::OpenAi | Dialect::Azure | Dialect::Mock
        )),
        forward_headers,
        strip_response_headers,
    })
}

/// Response headers removed unless `strip_response_headers` says otherwise: they name
/// the operator's OpenAI organization and project to every client.
const ACCOUNT_HEADERS: [&str; 2] = ["openai-organization", "openai-project"];

/// Headers `forward_headers` may not name: hop-by-hop ones (never forwarded), the
/// client's credentials (`Authorization` goes only to `passthrough` upstreams, by
/// `auth`), and those the gateway sets itself.
fn never_forwarded(name: &str) -> Option<&'static str> {
    match name {
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade" => {
            Some("is hop-by-hop and never forwarded")
        }
        n if n.starts_with("proxy-") => Some("is hop-by-hop and never forwarded"),
        "authorization" | "x-api-key" => Some(
            "carries the client's credentials, never forwarded (`auth: {type: passthrough}` forwards `Authorization`)",
        ),
        "host" | "content-length" | "content-type" | "accept" | "accept-encoding"
        | "x-request-id" => Some("is set by the gateway"),
        _ => None,
    }
}

/// `forward_headers`: valid names, lower-cased, none that may never be forwarded.
fn forward_headers(names: Vec<String>, path: &str, errors: &mut Vec<ConfigError>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let at = join(path, &format!("forward_headers[{i}]"));
        let before = errors.len();
        check_header_name(&name, &at, errors);
        let name = name.to_ascii_lowercase();
        if let Some(why) = never_forwarded(&name) {
            errors.push(ConfigError::new(&at, format!("`{name}` {why}")));
        }
        if errors.len() == before && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// `strip_response_headers`: valid names, lower-cased; unset: the account headers.
fn strip_response_headers(
    names: Option<Vec<String>>,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<String> {
    let Some(names) = names else {
        return ACCOUNT_HEADERS.map(str::to_owned).to_vec();
    };
    let mut out: Vec<String> = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let at = join(path, &format!("strip_response_headers[{i}]"));
        let before = errors.len();
        check_header_name(&name, &at, errors);
        let name = name.to_ascii_lowercase();
        if name == "x-request-id" || name == "content-type" {
            errors.push(ConfigError::new(
                &at,
                format!("`{name}` is set by the gateway"),
            ));
        }
        if errors.len() == before && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The settings translating dialects read; each is refused on a dialect that ignores it.
fn translate_settings(
    s: &raw::UpstreamSpec,
    dialect: Dialect,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> switchyard_dialects::translate::Settings {
    let mut only = |field: &str, set: bool, wanted: &[Dialect]| {
        if set && !wanted.contains(&dialect) {
            let names: Vec<&str> = wanted.iter().map(|d| d.name()).collect();
            errors.push(ConfigError::new(
                join(path, field),
                format!("only {} upstreams take this setting", names.join(" / ")),
            ));
        }
    };
    only("max_tokens", s.max_tokens.is_some(), &[Dialect::Anthropic]);
    only("num_ctx", s.num_ctx.is_some(), &[Dialect::Ollama]);
    only("keep_alive", s.keep_alive.is_some(), &[Dialect::Ollama]);
    only(
        "strict",
        s.strict.is_some(),
        &[Dialect::Anthropic, Dialect::Gemini, Dialect::Ollama],
    );
    let keep_alive = match &s.keep_alive {
        None => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            errors.push(ConfigError::new(
                join(path, "keep_alive"),
                "must be a duration such as `5m`, or -1 to keep the model loaded",
            ));
            None
        }
    };
    switchyard_dialects::translate::Settings {
        default_max_tokens: s.max_tokens,
        strict: s.strict.unwrap_or(false),
        num_ctx: s.num_ctx,
        keep_alive,
    }
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
