//! Raw YAML → resolved [`Config`]: types each section on its own (so every broken entry
//! is reported), fills defaults, parses durations, URLs and globs, and checks
//! cross-references. Pure: the environment arrives already expanded (the proxy variables
//! as a [`ProxyEnv`]). This file holds the order of the sections and the helpers they
//! share; each section lives in its own
//! module (`sections` and its `cors`, `upstream`, `route`, `key`, `plugin`, `export`,
//! `state` for `state:` and `cache:`).

use crate::duration::parse_duration;
use crate::error::{join, ConfigError};
use crate::proxy::ProxyEnv;
use crate::raw;
use crate::redact::hide_string_values;
use crate::resolved::*;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::time::Duration;

mod cors;
mod export;
mod key;
mod plugin;
mod route;
mod sections;
mod state;
mod upstream;

/// Types `value` as `T`, reporting the failing field's full path.
pub(crate) fn typed<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let at = if inner == "." {
            path.to_owned()
        } else {
            join(path, &inner)
        };
        ConfigError::new(
            at,
            hide_string_values(&clean_serde_message(&e.into_inner().to_string())),
        )
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

pub(crate) fn resolve(
    top: raw::Top,
    proxy_env: &ProxyEnv,
    errors: &mut Vec<ConfigError>,
) -> Option<Config> {
    let server = section::<raw::ServerSpec>(top.server, "server", errors)
        .and_then(|s| sections::server(s, errors));
    let catalogue = section::<raw::CatalogueSpec>(top.catalogue, "catalogue", errors)
        .and_then(|s| sections::catalogue(s, errors));
    let routing = section::<raw::RoutingSpec>(top.routing, "routing", errors)
        .and_then(|s| sections::routing(s, errors));
    let upstreams = upstream::upstreams(top.upstreams, proxy_env, errors);
    let routes = route::routes(top.routes, &upstreams, errors);
    if let Some(name) = routing.as_ref().and_then(|r| r.default_upstream.as_deref()) {
        if !upstreams.iter().any(|u| &*u.name == name) {
            errors.push(ConfigError::new(
                "routing.default_upstream",
                format!("no upstream is named `{name}`"),
            ));
        }
    }
    let groups_declared = !top.groups.is_empty();
    let groups = key::groups(top.groups, errors);
    let prices = key::prices(top.prices, errors);
    let keys = key::keys(top.keys, &groups, groups_declared, errors);
    let plugins = plugin::plugins(top.plugins, &keys, errors);
    let metrics = section::<raw::MetricsSpec>(top.metrics, "metrics", errors)
        .and_then(|s| sections::metrics(s, errors));
    let log = section::<raw::LogSpec>(top.log, "log", errors).map(sections::log);
    let admin = match top.admin {
        None => sections::admin(None, errors),
        Some(Value::Null) => sections::admin(Some(raw::AdminSpec::default()), errors),
        Some(v) => typed::<raw::AdminSpec>(v, "admin")
            .map_err(|e| errors.push(e))
            .ok()
            .and_then(|s| sections::admin(Some(s), errors)),
    };
    let export = match top.export {
        None | Some(Value::Null) => None,
        Some(v) => typed::<raw::ExportSpec>(v, "export")
            .map_err(|e| errors.push(e))
            .ok()
            .and_then(|s| export::export(s, errors)),
    };
    let state =
        section::<raw::StateSpec>(top.state, "state", errors).and_then(|s| state::state(s, errors));
    let cache = match top.cache {
        None | Some(Value::Null) => None,
        Some(v) => typed::<raw::CacheSpec>(v, "cache")
            .map_err(|e| errors.push(e))
            .ok()
            .and_then(|s| state::cache(s, errors)),
    };

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
        groups,
        prices,
        plugins,
        metrics: metrics?,
        log: log?,
        export,
        admin: admin?,
        state: state?,
        cache,
        redactor: Default::default(),
        warnings: Vec::new(),
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
