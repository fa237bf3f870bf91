//! `plugins:` entries: stages, failure policy, timeout, model and key selectors (keys
//! must exist), unique ids. The plugin's own `config` is only turned into JSON here; the
//! daemon checks it against the named plugin.

use super::{duration_or, typed};
use crate::error::{join, ConfigError};
use crate::raw;
use crate::resolved::*;
use serde_yaml::Value;
use std::sync::Arc;
use std::time::Duration;

/// Every plugin entry that resolves against `keys`, in config order.
pub(super) fn plugins(
    values: Vec<Value>,
    keys: &[ClientKey],
    errors: &mut Vec<ConfigError>,
) -> Vec<PluginSpec> {
    let mut plugins: Vec<PluginSpec> = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("plugins[{i}]");
        if let Ok(spec) = typed::<raw::PluginSpec>(value, &path).map_err(|e| errors.push(e)) {
            if let Some(p) = plugin(spec, &path, &plugins, keys, errors) {
                plugins.push(p);
            }
        }
    }
    plugins
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
                errors.push(ConfigError::new(
                    join(path, "config"),
                    crate::redact::hide_string_values(&e.to_string()),
                ));
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
