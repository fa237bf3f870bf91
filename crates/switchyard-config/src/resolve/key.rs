//! `keys:`, `groups:` and `prices:`. A key has a unique name and a unique value — plain
//! (at least 8 characters) or `sha256:<64 hex>` — and may be limited to `models`
//! (globs) and a `budget` per window. `groups:` entries give their members model lists
//! too; once `groups:` is written, every group a key names must be declared there.
//! Prices are dollars per million tokens, never negative. Plugins refer to keys by name.

use super::{duration_or, typed};
use crate::access::{Budget, Group, KeyValue, Price};
use crate::error::{join, ConfigError};
use crate::raw;
use crate::resolved::*;
use crate::secret::Secret;
use serde_yaml::Value;
use std::sync::Arc;
use std::time::Duration;

/// The default budget window.
const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Every `groups:` entry that resolves, in config order.
pub(super) fn groups(values: Vec<Value>, errors: &mut Vec<ConfigError>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("groups[{i}]");
        let Ok(spec) = typed::<raw::GroupSpec>(value, &path).map_err(|e| errors.push(e)) else {
            continue;
        };
        let before = errors.len();
        if spec.name.is_empty() {
            errors.push(ConfigError::new(join(&path, "name"), "must not be empty"));
        }
        if groups.iter().any(|g| g.name == spec.name) {
            errors.push(ConfigError::new(
                join(&path, "name"),
                format!("group name `{}` is used twice", spec.name),
            ));
        }
        let models = model_globs(spec.models, &join(&path, "models"), errors);
        if errors.len() == before {
            groups.push(Group {
                name: spec.name,
                models,
            });
        }
    }
    groups
}

/// Every `prices:` entry that resolves, in config order.
pub(super) fn prices(values: Vec<Value>, errors: &mut Vec<ConfigError>) -> Vec<Price> {
    let mut prices = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("prices[{i}]");
        let Ok(spec) = typed::<raw::PriceSpec>(value, &path).map_err(|e| errors.push(e)) else {
            continue;
        };
        let before = errors.len();
        if spec.model.is_empty() {
            errors.push(ConfigError::new(join(&path, "model"), "must not be empty"));
        }
        for (field, v) in [("input", spec.input), ("output", spec.output)] {
            if !v.is_finite() || v < 0.0 {
                errors.push(ConfigError::new(
                    join(&path, field),
                    "must be a price in dollars per million tokens, 0 or more",
                ));
            }
        }
        if errors.len() == before {
            prices.push(Price {
                model: Glob::new(spec.model),
                input: spec.input,
                output: spec.output,
            });
        }
    }
    prices
}

/// Every client key that resolves, in config order.
pub(super) fn keys(
    values: Vec<Value>,
    groups: &[Group],
    groups_declared: bool,
    errors: &mut Vec<ConfigError>,
) -> Vec<ClientKey> {
    let mut keys = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("keys[{i}]");
        if let Ok(spec) = typed::<raw::KeySpec>(value, &path).map_err(|e| errors.push(e)) {
            if let Some(k) = client_key(spec, &path, &keys, groups, groups_declared, errors) {
                keys.push(k);
            }
        }
    }
    keys
}

fn client_key(
    s: raw::KeySpec,
    path: &str,
    existing: &[ClientKey],
    groups: &[Group],
    groups_declared: bool,
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
    let key_path = join(path, "key");
    let key = match KeyValue::parse_sha256(&s.key) {
        Some(Ok(digest)) => Some(KeyValue::Sha256(digest)),
        Some(Err(msg)) => {
            errors.push(ConfigError::new(&key_path, msg));
            None
        }
        None if s.key.len() < 8 => {
            errors.push(ConfigError::new(
                &key_path,
                "a client key must be at least 8 characters",
            ));
            None
        }
        None => Some(KeyValue::Plain(Secret::new(s.key))),
    };
    if key.is_some() && existing.iter().any(|k| Some(&k.key) == key.as_ref()) {
        errors.push(ConfigError::new(
            &key_path,
            "the same key value is configured twice",
        ));
    }
    let mut models = model_globs(s.models, &join(path, "models"), errors);
    for (j, name) in s.groups.iter().enumerate() {
        match groups.iter().find(|g| g.name == *name) {
            Some(g) => {
                if let Some(more) = &g.models {
                    models
                        .get_or_insert_with(Vec::new)
                        .extend(more.iter().cloned());
                }
            }
            None if groups_declared => errors.push(ConfigError::new(
                join(path, &format!("groups[{j}]")),
                format!("unknown group `{name}` (not in `groups:`)"),
            )),
            None => {}
        }
    }
    let budget = s
        .budget
        .and_then(|b| budget(b, &join(path, "budget"), errors));
    let key = key?;
    if errors.len() > before {
        return None;
    }
    Some(ClientKey {
        name: Arc::from(s.name),
        key,
        user: s.user.map(Arc::from),
        groups: Arc::from(s.groups),
        models: models.map(Arc::from),
        budget,
    })
}

/// A `models:` list as globs; an empty list is an error (leave it out to allow all).
fn model_globs(
    models: Option<Vec<String>>,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Vec<Glob>> {
    let models = models?;
    if models.is_empty() {
        errors.push(ConfigError::new(
            path,
            "must list at least one model (leave `models` out to allow every model)",
        ));
    }
    for (i, m) in models.iter().enumerate() {
        if m.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}[{i}]"),
                "must not be empty",
            ));
        }
    }
    Some(models.into_iter().map(Glob::new).collect())
}

fn budget(b: raw::BudgetSpec, path: &str, errors: &mut Vec<ConfigError>) -> Option<Budget> {
    let before = errors.len();
    if b.tokens.is_none() && b.usd.is_none() {
        errors.push(ConfigError::new(
            path,
            "a budget needs `tokens`, `usd` or both",
        ));
    }
    if b.tokens == Some(0) {
        errors.push(ConfigError::new(join(path, "tokens"), "must be at least 1"));
    }
    if let Some(usd) = b.usd {
        if !usd.is_finite() || usd <= 0.0 {
            errors.push(ConfigError::new(
                join(path, "usd"),
                "must be a dollar amount greater than 0",
            ));
        }
    }
    let window_path = join(path, "window");
    let window = duration_or(b.window, &window_path, DEFAULT_WINDOW, errors)?;
    if window.subsec_nanos() != 0 {
        errors.push(ConfigError::new(
            window_path,
            "a budget window is a whole number of seconds",
        ));
    }
    (errors.len() == before).then_some(Budget {
        tokens: b.tokens,
        usd: b.usd,
        window,
    })
}
