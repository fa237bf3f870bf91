//! Raw YAML → resolved [`Config`]: types each section on its own (so every broken entry
//! is reported), fills defaults, parses durations, URLs and globs, and checks
//! cross-references. Pure: the environment arrives already expanded.

use crate::duration::parse_duration;
use crate::error::{join, ConfigError};
use crate::raw;
use crate::resolved::*;
use crate::secret::Secret;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use switchyard_dialects::Dialect;

/// Types `value` as `T`, reporting the failing field's full path.
pub(crate) fn typed<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let at = if inner == "." {
            path.to_owned()
        } else {
            join(path, &inner)
        };
        ConfigError::new(at, clean_serde_message(&e.into_inner().to_string()))
    })
}

/// serde_yaml appends " at line X column Y" positions of the sub-document, which are
/// meaningless once we type sections separately.
fn clean_serde_message(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(at) => msg[..at].to_owned(),
        None => msg.to_owned(),
    }
}

pub(crate) fn resolve(top: raw::Top, errors: &mut Vec<ConfigError>) -> Option<Config> {
    let server =
        section::<raw::ServerSpec>(top.server, "server", errors).and_then(|s| server(s, errors));
    let catalogue = section::<raw::CatalogueSpec>(top.catalogue, "catalogue", errors)
        .and_then(|s| catalogue(s, errors));
    let routing = section::<raw::RoutingSpec>(top.routing, "routing", errors)
        .and_then(|s| routing(s, errors));

    let mut upstreams = Vec::new();
    let mut names = HashSet::new();
    for (i, value) in top.upstreams.into_iter().enumerate() {
        let path = format!("upstreams[{i}]");
        let Some(up) = typed::<raw::UpstreamSpec>(value, &path)
            .map_err(|e| errors.push(e))
            .ok()
            .and_then(|spec| upstream(spec, &path, errors))
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

    let mut routes = Vec::new();
    let mut route_names = HashSet::new();
    for (i, value) in top.routes.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        let Ok(spec) = typed::<raw::RouteSpec>(value, &path).map_err(|e| errors.push(e)) else {
            continue;
        };
        if !route_names.insert(spec.model.clone()) {
            errors.push(ConfigError::new(
                join(&path, "model"),
                format!("route `{}` is defined twice", spec.model),
            ));
        }
        if let Some(r) = route(spec, &path, &upstreams, errors) {
            routes.push(r);
        }
    }

    let mut keys = Vec::new();
    for (i, value) in top.keys.into_iter().enumerate() {
        let path = format!("keys[{i}]");
        if let Ok(spec) = typed::<raw::KeySpec>(value, &path).map_err(|e| errors.push(e)) {
            if let Some(k) = client_key(spec, &path, &keys, errors) {
                keys.push(k);
            }
        }
    }

    let mut plugins: Vec<PluginSpec> = Vec::new();
    for (i, value) in top.plugins.into_iter().enumerate() {
        let path = format!("plugins[{i}]");
        if let Ok(spec) = typed::<raw::PluginSpec>(value, &path).map_err(|e| errors.push(e)) {
            if let Some(p) = plugin(spec, &path, &plugins, &keys, errors) {
                plugins.push(p);
            }
        }
    }

    if !errors.is_empty() {
        return None;
    }
    Some(Config {
        server: server?,
        catalogue: catalogue?,
        routing: routing?,
        upstreams,
        routes,
        keys,
        plugins,
    })
}

fn section<T: DeserializeOwned + Default>(
    value: Option<Value>,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    match value {
        None | Some(Value::Null) => Some(T::default()),
        Some(v) => typed(v, path).map_err(|e| errors.push(e)).ok(),
    }
}

fn server(s: raw::ServerSpec, errors: &mut Vec<ConfigError>) -> Option<Server> {
    let listen = s.listen.as_deref().unwrap_or("0.0.0.0:8080");
    let listen = listen
        .parse()
        .map_err(|_discarded| {
            errors.push(ConfigError::new(
                "server.listen",
                format!("`{listen}` is not an address like 0.0.0.0:8080"),
            ))
        })
        .ok();
    let max_body_bytes = s.max_body_bytes.unwrap_or(10 * 1024 * 1024);
    if max_body_bytes == 0 {
        errors.push(ConfigError::new(
            "server.max_body_bytes",
            "must be greater than 0",
        ));
    }
    let log_format = match s.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            errors.push(ConfigError::new(
                "server.log_format",
                format!("unknown log format `{other}` (expected text or json)"),
            ));
            LogFormat::Text
        }
    };
    Some(Server {
        listen: listen?,
        max_body_bytes,
        max_concurrent_streams: s.max_concurrent_streams.unwrap_or(10_000),
        log_format,
        workers: s.workers.unwrap_or(0),
        tls: s.tls.map(|t| ServerTls {
            cert_file: t.cert_file.into(),
            key_file: t.key_file.into(),
        }),
    })
}

fn catalogue(s: raw::CatalogueSpec, errors: &mut Vec<ConfigError>) -> Option<Catalogue> {
    let ttl = duration_or(s.ttl, "catalogue.ttl", Duration::from_secs(300), errors);
    let fetch_timeout = duration_or(
        s.fetch_timeout,
        "catalogue.fetch_timeout",
        Duration::from_secs(3),
        errors,
    );
    let hide = match s.hide {
        None => ModelKind::ALL.iter().map(|(k, _)| *k).collect(),
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let found = ModelKind::ALL.iter().find(|(_, name)| name == n);
                if found.is_none() {
                    errors.push(ConfigError::new(
                        format!("catalogue.hide[{i}]"),
                        format!(
                            "unknown model kind `{n}` (expected one of: embedding, tts, speech, image, moderation)"
                        ),
                    ));
                }
                found.map(|(k, _)| *k)
            })
            .collect(),
    };
    Some(Catalogue {
        ttl: ttl?,
        fetch_timeout: fetch_timeout?,
        hide,
    })
}

fn routing(s: raw::RoutingSpec, errors: &mut Vec<ConfigError>) -> Option<Routing> {
    let max_attempts = s.max_attempts.unwrap_or(4);
    if max_attempts == 0 {
        errors.push(ConfigError::new(
            "routing.max_attempts",
            "must be at least 1",
        ));
    }
    let cooldown = duration_or(
        s.cooldown,
        "routing.cooldown",
        Duration::from_secs(30),
        errors,
    );
    let failures_before_cooldown = s.failures_before_cooldown.unwrap_or(3);
    if failures_before_cooldown == 0 {
        errors.push(ConfigError::new(
            "routing.failures_before_cooldown",
            "must be at least 1",
        ));
    }
    Some(Routing {
        max_attempts,
        cooldown: cooldown?,
        failures_before_cooldown,
    })
}

fn upstream(s: raw::UpstreamSpec, path: &str, errors: &mut Vec<ConfigError>) -> Option<Upstream> {
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
        weight,
        models,
        fetch_models,
        include: s.include.into_iter().map(Glob::new).collect(),
        exclude: s.exclude.into_iter().map(Glob::new).collect(),
        ca_file: s.ca_file.map(std::path::PathBuf::from),
    })
}

fn route(
    s: raw::RouteSpec,
    path: &str,
    upstreams: &[Upstream],
    errors: &mut Vec<ConfigError>,
) -> Option<Route> {
    let before = errors.len();
    let strategy = match s.strategy.as_deref() {
        None | Some("round_robin") => Strategy::RoundRobin,
        Some("weighted") => Strategy::Weighted,
        Some(other) => {
            errors.push(ConfigError::new(
                join(path, "strategy"),
                format!("unknown strategy `{other}` (expected round_robin or weighted)"),
            ));
            Strategy::RoundRobin
        }
    };
    if s.targets.is_empty() {
        errors.push(ConfigError::new(
            join(path, "targets"),
            "a route needs at least one target",
        ));
    }
    let mut targets = Vec::new();
    for (i, t) in s.targets.into_iter().enumerate() {
        let at = join(path, &format!("targets[{i}]"));
        let Some(index) = upstreams.iter().position(|u| *u.name == t.upstream) else {
            errors.push(ConfigError::new(
                join(&at, "upstream"),
                format!("no upstream is named `{}`", t.upstream),
            ));
            continue;
        };
        let weight = t.weight.unwrap_or(upstreams[index].weight);
        if weight == 0 {
            errors.push(ConfigError::new(join(&at, "weight"), "must be at least 1"));
        }
        targets.push(Target {
            upstream: index,
            model: t.model.unwrap_or_else(|| s.model.clone()),
            weight,
        });
    }
    for (i, f) in s.fallbacks.iter().enumerate() {
        if *f == s.model {
            errors.push(ConfigError::new(
                join(path, &format!("fallbacks[{i}]")),
                "a route cannot fall back to itself",
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Route {
        model: s.model,
        targets,
        strategy,
        fallbacks: s.fallbacks,
    })
}

fn client_key(
    s: raw::KeySpec,
    path: &str,
    existing: &[ClientKey],
    errors: &mut Vec<ConfigError>,
) -> Option<ClientKey> {
    let before = errors.len();
    if s.name.is_empty() {
        errors.push(ConfigError::new(join(path, "name"), "must not be empty"));
    }
    if existing.iter().any(|k| *k.name == s.name) {
        errors.push(ConfigError::new(
            join(path, "name"),
            format!("key name `{}` is used twice", s.name),
        ));
    }
    if s.key.len() < 8 {
        errors.push(ConfigError::new(
            join(path, "key"),
            "a client key must be at least 8 characters",
        ));
    }
    if existing.iter().any(|k| k.key.expose() == s.key) {
        errors.push(ConfigError::new(
            join(path, "key"),
            "the same key value is configured twice",
        ));
    }
    if errors.len() > before {
        return None;
    }
    Some(ClientKey {
        name: Arc::from(s.name),
        key: Secret::new(s.key),
        user: s.user.map(Arc::from),
        groups: Arc::from(s.groups),
    })
}

fn plugin(
    s: raw::PluginSpec,
    path: &str,
    existing: &[PluginSpec],
    keys: &[ClientKey],
    errors: &mut Vec<ConfigError>,
) -> Option<PluginSpec> {
    let before = errors.len();
    let stage_names = match s.stage {
        None => Vec::new(),
        Some(raw::OneOrMany::One(one)) => vec![one],
        Some(raw::OneOrMany::Many(many)) => many,
    };
    let mut stages = Vec::new();
    for name in &stage_names {
        match Stage::ALL.iter().find(|(_, n)| n == name) {
            Some((stage, _)) if !stages.contains(stage) => stages.push(*stage),
            Some(_) => {}
            None => errors.push(ConfigError::new(
                join(path, "stage"),
                format!(
                    "unknown stage `{name}` (expected one of: pre_request, on_chunk, post_response, error)"
                ),
            )),
        }
    }
    let on_error = match s.on_error.as_deref() {
        None | Some("fail_open") => OnError::FailOpen,
        Some("fail_closed") => OnError::FailClosed,
        Some(other) => {
            errors.push(ConfigError::new(
                join(path, "on_error"),
                format!("unknown policy `{other}` (expected fail_open or fail_closed)"),
            ));
            OnError::FailOpen
        }
    };
    let timeout = duration_or(
        s.timeout,
        &join(path, "timeout"),
        Duration::from_secs(5),
        errors,
    );
    for (i, key) in s.keys.iter().enumerate() {
        if !keys.iter().any(|k| *k.name == *key) {
            errors.push(ConfigError::new(
                join(path, &format!("keys[{i}]")),
                format!("no client key is named `{key}` (see `keys:`)"),
            ));
        }
    }
    let id = match s.id {
        Some(id) => id,
        None => {
            let same = existing.iter().filter(|p| p.name == s.name).count();
            if same == 0 {
                s.name.clone()
            } else {
                format!("{}#{}", s.name, same + 1)
            }
        }
    };
    if existing.iter().any(|p| *p.id == id) {
        errors.push(ConfigError::new(
            join(path, "id"),
            format!("plugin id `{id}` is used twice"),
        ));
    }
    let config = match s.config {
        None | Some(Value::Null) => serde_json::Value::Object(Default::default()),
        Some(v) => match serde_json::to_value(&v) {
            Ok(json) => json,
            Err(e) => {
                errors.push(ConfigError::new(join(path, "config"), e.to_string()));
                serde_json::Value::Null
            }
        },
    };
    if errors.len() > before {
        return None;
    }
    Some(PluginSpec {
        name: s.name,
        id: Arc::from(id),
        path: path.to_owned(),
        enabled: s.enabled.unwrap_or(true),
        stages,
        priority: s.priority.unwrap_or(0),
        parallel: s.parallel.unwrap_or(false),
        on_error,
        timeout: timeout?,
        models: s.models.into_iter().map(Glob::new).collect(),
        keys: s.keys,
        config,
    })
}

fn check_header_name(name: &str, path: &str, errors: &mut Vec<ConfigError>) {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        errors.push(ConfigError::new(
            path,
            format!("`{name}` is not a valid HTTP header name"),
        ));
    }
}

fn duration_or(
    value: Option<Value>,
    path: &str,
    default: Duration,
    errors: &mut Vec<ConfigError>,
) -> Option<Duration> {
    let Some(value) = value else {
        return Some(default);
    };
    duration_text(&value)
        .and_then(|text| parse_duration(&text))
        .map_err(|msg| errors.push(ConfigError::new(path, msg)))
        .ok()
}

/// The text of a duration as written: a string as it is (already `${ENV}`-expanded), a
/// YAML number as its decimal form, so both reach the one parser.
fn duration_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Tagged(t) => duration_text(&t.value),
        Value::Null | Value::Bool(_) | Value::Sequence(_) | Value::Mapping(_) => {
            Err("is not a duration like 250ms, 5s, 1m or 2h".to_owned())
        }
    }
}
