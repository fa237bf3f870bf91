//! `state:` (where limits, budgets and the shared cache tier live) and `cache:` (the
//! response cache). Each field gets its default and its own check.

use super::duration_or;
use crate::error::ConfigError;
use crate::raw;
use crate::resolved::*;
use crate::secret::Secret;
use std::time::Duration;

pub(super) fn state(s: raw::StateSpec, errors: &mut Vec<ConfigError>) -> Option<State> {
    let redis = match s.backend.as_deref() {
        None | Some("memory") => {
            let set = [
                ("url", s.url.is_some()),
                ("username", s.username.is_some()),
                ("password", s.password.is_some()),
                ("ca_file", s.ca_file.is_some()),
                ("prefix", s.prefix.is_some()),
                ("pool_size", s.pool_size.is_some()),
                ("command_timeout", s.command_timeout.is_some()),
                ("connect_timeout", s.connect_timeout.is_some()),
                ("on_unavailable", s.on_unavailable.is_some()),
            ];
            for (field, _) in set.iter().filter(|(_, set)| *set) {
                errors.push(ConfigError::new(
                    format!("state.{field}"),
                    "only applies to `backend: redis` (the backend is memory)",
                ));
            }
            return Some(State { redis: None });
        }
        Some("redis") => redis(s, errors)?,
        Some(other) => {
            errors.push(ConfigError::new(
                "state.backend",
                format!("unknown backend `{other}` (expected memory or redis)"),
            ));
            return None;
        }
    };
    Some(State { redis: Some(redis) })
}

fn redis(s: raw::StateSpec, errors: &mut Vec<ConfigError>) -> Option<RedisState> {
    let url = match s.url {
        None => {
            errors.push(ConfigError::new(
                "state.url",
                "is required with `backend: redis` (redis://host:6379/0 or rediss://…)",
            ));
            None
        }
        Some(url) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
            // The URL may hold a password: never echo it.
            errors.push(ConfigError::new(
                "state.url",
                "must start with redis:// or rediss://",
            ));
            None
        }
        Some(url) => Some(url),
    };
    let tls = url.as_deref().is_some_and(|u| u.starts_with("rediss://"));
    if s.ca_file.is_some() && !tls && url.is_some() {
        errors.push(ConfigError::new(
            "state.ca_file",
            "only applies to a rediss:// URL",
        ));
    }
    let pool_size = s.pool_size.unwrap_or(2);
    if !(1..=64).contains(&pool_size) {
        errors.push(ConfigError::new(
            "state.pool_size",
            "must be between 1 and 64",
        ));
    }
    let mut timeout = |value, path: &str, default: Duration| {
        let d = duration_or(value, path, default, errors);
        if d == Some(Duration::ZERO) {
            errors.push(ConfigError::new(path, "must be greater than 0"));
        }
        d
    };
    let command_timeout = timeout(
        s.command_timeout,
        "state.command_timeout",
        Duration::from_millis(100),
    );
    let connect_timeout = timeout(
        s.connect_timeout,
        "state.connect_timeout",
        Duration::from_secs(1),
    );
    let on_unavailable = match s.on_unavailable.as_deref() {
        None | Some("local") => OnUnavailable::Local,
        Some("allow") => OnUnavailable::Allow,
        Some("deny") => OnUnavailable::Deny,
        Some(other) => {
            errors.push(ConfigError::new(
                "state.on_unavailable",
                format!("unknown policy `{other}` (expected local, allow or deny)"),
            ));
            OnUnavailable::Local
        }
    };
    let nonempty = |v: Option<String>, field: &str, errors: &mut Vec<ConfigError>| match v {
        Some(v) if v.is_empty() => {
            errors.push(ConfigError::new(
                format!("state.{field}"),
                "is empty (unset the key, or give a value)",
            ));
            None
        }
        v => v.map(Secret::new),
    };
    let username = nonempty(s.username, "username", errors);
    let password = nonempty(s.password, "password", errors);
    Some(RedisState {
        url: Secret::new(url?),
        username,
        password,
        ca_file: s.ca_file.map(Into::into),
        prefix: s.prefix.unwrap_or_else(|| "switchyard:".to_owned()),
        pool_size,
        command_timeout: command_timeout?,
        connect_timeout: connect_timeout?,
        on_unavailable,
    })
}

pub(super) fn cache(s: raw::CacheSpec, errors: &mut Vec<ConfigError>) -> Option<Cache> {
    if s.enabled == Some(false) {
        return None;
    }
    if s.models.is_empty() {
        errors.push(ConfigError::new(
            "cache.models",
            "name the models whose answers are cached (globs; `[\"*\"]` for all)",
        ));
    }
    let ttl = duration_or(s.ttl, "cache.ttl", Duration::from_secs(600), errors);
    // 0: no in-process tier (Redis alone, when shared).
    let max_bytes = s.max_bytes.unwrap_or(64 * 1024 * 1024);
    let max_entry_bytes = s.max_entry_bytes.unwrap_or(1024 * 1024);
    if max_bytes > 0 && max_entry_bytes > max_bytes {
        errors.push(ConfigError::new(
            "cache.max_entry_bytes",
            "is larger than cache.max_bytes",
        ));
    }
    if max_entry_bytes == 0 {
        errors.push(ConfigError::new(
            "cache.max_entry_bytes",
            "must be greater than 0",
        ));
    }
    Some(Cache {
        models: s.models.into_iter().map(Glob::new).collect(),
        ttl: ttl?,
        max_bytes,
        max_entry_bytes,
        only_deterministic: s.only_deterministic.unwrap_or(true),
        per_key: s.per_key.unwrap_or(false),
        shared: s.shared.unwrap_or(true),
    })
}
