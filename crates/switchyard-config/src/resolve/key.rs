//! `keys:` entries: client API keys, each with a unique name and a unique value of at
//! least 8 characters. Plugins refer to them by name.

use super::typed;
use crate::error::{join, ConfigError};
use crate::raw;
use crate::resolved::*;
use crate::secret::Secret;
use serde_yaml::Value;
use std::sync::Arc;

/// Every client key that resolves, in config order.
pub(super) fn keys(values: Vec<Value>, errors: &mut Vec<ConfigError>) -> Vec<ClientKey> {
    let mut keys = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("keys[{i}]");
        if let Ok(spec) = typed::<raw::KeySpec>(value, &path).map_err(|e| errors.push(e)) {
            if let Some(k) = client_key(spec, &path, &keys, errors) {
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
