//! What the admin endpoints answer, as JSON: the effective config with every secret
//! redacted, upstream health, and the model catalogue. Redaction is layered: every
//! `Secret` (keys, auth, header values, the admin token) is written as `***`, URL
//! credentials and plugin settings whose name says secret (`key`, `token`, `secret`,
//! `password`, `auth`, headers) are hidden, and every string then goes through the
//! config's [`Redactor`](switchyard_config::Redactor), which hides each value that came
//! from the environment wherever it appears.

use crate::metrics::OUTCOMES;
use crate::snapshot::Snapshot;
use serde_json::{json, Map, Value};
use std::time::Duration;
use switchyard_config::{Auth, Config, ModelKind, Secret};
use tokio::time::Instant;

/// What a hidden value is written as.
const HIDDEN: &str = "***";

/// The effective config (restart-only settings as running), secrets redacted.
pub(super) fn config(c: &Config) -> Value {
    let s = &c.server;
    let mut out = json!({
        "server": {
            "listen": s.listen.to_string(),
            "max_body_bytes": s.max_body_bytes,
            "max_concurrent_streams": s.max_concurrent_streams,
            "log_format": format!("{:?}", s.log_format).to_lowercase(),
            "workers": s.workers,
            "tls": s.tls.as_ref().map(|t| json!({"cert_file": t.cert_file, "key_file": t.key_file})),
            "max_connections": s.max_connections,
            "max_header_bytes": s.max_header_bytes,
            "header_timeout": secs(s.header_timeout),
            "idle_timeout": secs(s.idle_timeout),
            "body_timeout": secs(s.body_timeout),
            "write_timeout": secs(s.write_timeout),
            "drain_timeout": secs(s.drain_timeout),
            "watch": s.watch,
            "cors": s.cors.as_ref().map(|c| json!({
                "allow_origins": c.allow_origins.iter().map(String::as_str)
                    .chain(c.any_origin.then_some("*")).collect::<Vec<_>>(),
                "allow_methods": c.allow_methods,
                "allow_headers": c.allow_headers.clone().unwrap_or_else(|| vec!["*".to_owned()]),
                "expose_headers": c.expose_headers,
                "max_age": secs(c.max_age),
                "allow_credentials": c.allow_credentials,
            })),
        },
        "admin": {
            "enabled": c.admin.enabled,
            "listen": c.admin.listen.to_string(),
            "token": c.admin.token.as_ref().map(|_| HIDDEN),
        },
        "metrics": {"enabled": c.metrics.enabled, "listen": c.metrics.listen.to_string()},
        "log": {"access": c.log.access},
        "catalogue": {
            "ttl": secs(c.catalogue.ttl),
            "fetch_timeout": secs(c.catalogue.fetch_timeout),
            "hide": c.catalogue.hide.iter().map(|k| kind_name(*k)).collect::<Vec<_>>(),
        },
        "routing": {
            "max_attempts": c.routing.max_attempts,
            "cooldown": secs(c.routing.cooldown),
            "failures_before_cooldown": c.routing.failures_before_cooldown,
            "request_timeout": secs(c.routing.request_timeout),
            "retry_on_timeout": c.routing.retry_on_timeout,
            "retry_budget": {
                "ratio": c.routing.retry_budget.ratio,
                "min_per_second": c.routing.retry_budget.min_per_second,
                "window": secs(c.routing.retry_budget.window),
            },
        },
        "upstreams": c.upstreams.iter().map(|u| json!({
            "name": &*u.name,
            "base_url": hide_userinfo(&u.base_url),
            "dialect": u.dialect.name(),
            "auth": auth(&u.auth),
            "headers": hidden_pairs(&u.headers),
            "connect_timeout": secs(u.connect_timeout),
            "first_byte_timeout": secs(u.first_byte_timeout),
            "idle_timeout": secs(u.idle_timeout),
            "pool_idle_timeout": secs(u.pool_idle_timeout),
            "weight": u.weight,
            "models": u.models,
            "fetch_models": u.fetch_models,
            "include": u.include.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>(),
            "exclude": u.exclude.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>(),
            "ca_file": u.ca_file,
            "proxy": u.proxy.as_ref().map(|p| json!({
                "host": &*p.host, "port": p.port,
                "credentials": p.authorization.as_ref().map(|_| HIDDEN),
            })),
            "trust": format!("{:?}", u.trust).to_lowercase(),
            "forward_headers": u.forward_headers,
            "strip_response_headers": u.strip_response_headers,
        })).collect::<Vec<_>>(),
        "routes": c.routes.iter().map(|r| json!({
            "model": r.model,
            "strategy": format!("{:?}", r.strategy),
            "targets": r.targets.iter().map(|t| json!({
                "upstream": c.upstreams.get(t.upstream).map(|u| &*u.name),
                "model": t.model,
                "weight": t.weight,
            })).collect::<Vec<_>>(),
            "fallbacks": r.fallbacks,
            "retry_on_timeout": r.retry_on_timeout,
        })).collect::<Vec<_>>(),
        "keys": c.keys.iter().map(|k| json!({
            "name": &*k.name,
            "key": HIDDEN,
            "user": k.user.as_deref(),
            "groups": &*k.groups,
        })).collect::<Vec<_>>(),
        "plugins": c.plugins.iter().map(|p| json!({
            "name": p.name,
            "id": &*p.id,
            "enabled": p.enabled,
            "stages": p.stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "priority": p.priority,
            "parallel": p.parallel,
            "on_error": format!("{:?}", p.on_error),
            "timeout": secs(p.timeout),
            "models": p.models.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>(),
            "keys": p.keys,
            "config": hide_secret_settings(p.config.clone()),
        })).collect::<Vec<_>>(),
        "export": c.export.as_ref().map(|e| json!({
            "queue": e.queue,
            "batch_size": e.batch_size,
            "flush_interval": secs(e.flush_interval),
            "max_attempts": e.max_attempts,
            "backoff": secs(e.backoff),
            "file": e.file.as_ref().map(|f| json!({"path": f.path, "max_bytes": f.max_bytes, "keep": f.keep})),
            "http": e.http.iter().map(|h| json!({
                "name": h.name,
                "url": hide_userinfo(&h.url),
                "format": h.format.name(),
                "headers": hidden_pairs(&h.headers),
                "timeout": secs(h.timeout),
            })).collect::<Vec<_>>(),
        })),
        "state": match &c.state.redis {
            None => json!({"backend": "memory"}),
            Some(r) => json!({
                "backend": "redis",
                "url": hide_userinfo(r.url.expose()),
                "username": r.username.as_ref().map(|_| HIDDEN),
                "password": r.password.as_ref().map(|_| HIDDEN),
                "ca_file": r.ca_file,
                "prefix": r.prefix,
                "pool_size": r.pool_size,
                "command_timeout": secs(r.command_timeout),
                "connect_timeout": secs(r.connect_timeout),
                "on_unavailable": format!("{:?}", r.on_unavailable).to_lowercase(),
            }),
        },
        "cache": c.cache.as_ref().map(|k| json!({
            "models": k.models.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            "ttl": secs(k.ttl),
            "max_bytes": k.max_bytes,
            "max_entry_bytes": k.max_entry_bytes,
            "only_deterministic": k.only_deterministic,
            "per_key": k.per_key,
            "shared": k.shared,
        })),
    });
    redact_strings(&mut out, &|s| c.redactor.message(s));
    out
}

/// Each upstream's health and attempt counts.
pub(super) fn upstreams(snap: &Snapshot) -> Value {
    let now = Instant::now();
    let rows: Vec<Value> = snap
        .upstreams
        .list
        .iter()
        .map(|u| {
            let attempts: Map<String, Value> = OUTCOMES
                .iter()
                .map(|o| ((*o).to_owned(), json!(u.metrics.attempts_of(o))))
                .collect();
            let total: u64 = OUTCOMES.iter().map(|o| u.metrics.attempts_of(o)).sum();
            let failed = total - u.metrics.attempts_of("ok");
            let recent = u.health.recent.report(now);
            json!({
                "name": &*u.name,
                "available": u.health.connections.is_available(now),
                "cooldown_remaining_seconds": u.health.connections.cooling_for(now).map(|d| d.as_secs_f64()),
                "cooling_models": u.health.cooling(now).into_iter().map(|(model, left)| json!({
                    "model": model, "cooldown_remaining_seconds": left.as_secs_f64(),
                })).collect::<Vec<_>>(),
                "attempts_since_start": attempts,
                "error_ratio_since_start": (total > 0).then(|| failed as f64 / total as f64),
                "in_flight": recent.in_flight,
                "last_minute": {
                    "attempts": recent.attempts,
                    "error_ratio": recent.error_ratio,
                    "mean_time_to_head_ms": recent.mean_head_ms,
                },
            })
        })
        .collect();
    json!({
        "generation": snap.generation,
        "streams_open": snap.upstreams.streams.open(),
        "upstreams": rows,
    })
}

/// The catalogue: each id with the upstreams serving it, and each upstream's list with
/// its source and age.
pub(super) fn models(snap: &Snapshot) -> Value {
    let index = snap.catalog.index();
    let sources = snap.catalog.sources();
    let lists: Vec<Value> = snap
        .catalog
        .list_ages()
        .zip(sources)
        .map(|((name, age), (fetched, count))| {
            json!({
                "upstream": &**name,
                "source": if fetched { "fetched" } else { "static" },
                "models": count,
                "age_seconds": age.map(|a| a.as_secs_f64()),
            })
        })
        .collect();
    let models: Vec<Value> = index
        .listing
        .iter()
        .map(|m| {
            let upstreams: Vec<&str> = index.models.get(&m.id).map_or_else(
                || vec![m.owned_by.as_str()],
                |t| {
                    t.upstreams
                        .iter()
                        .filter_map(|i| snap.upstreams.list.get(*i).map(|u| &*u.name))
                        .collect()
                },
            );
            json!({"id": m.id, "upstreams": upstreams})
        })
        .collect();
    json!({
        "generation": snap.generation,
        "ttl_seconds": snap.catalog.ttl().as_secs_f64(),
        "lists": lists,
        "models": models,
    })
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn kind_name(kind: ModelKind) -> &'static str {
    ModelKind::ALL
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("?", |(_, n)| n)
}

fn auth(a: &Auth) -> Value {
    match a {
        Auth::None => json!({"type": "none"}),
        Auth::Passthrough => json!({"type": "passthrough"}),
        Auth::Bearer(_) => json!({"type": "bearer", "key": HIDDEN}),
        Auth::Header { name, prefix, .. } => {
            json!({"type": "header", "name": name, "prefix": prefix, "key": HIDDEN})
        }
        Auth::Query { name, .. } => json!({"type": "query", "name": name, "key": HIDDEN}),
    }
}

fn hidden_pairs(pairs: &[(String, Secret)]) -> Value {
    pairs
        .iter()
        .map(|(name, _)| (name.clone(), json!(HIDDEN)))
        .collect::<Map<String, Value>>()
        .into()
}

/// `scheme://user:pass@host/…` → `scheme://***@host/…`.
fn hide_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{HIDDEN}@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Plugin settings with every value under a secret-sounding name hidden.
fn hide_secret_settings(mut v: Value) -> Value {
    fn secretish(name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        [
            "key",
            "token",
            "secret",
            "password",
            "auth",
            "header",
            "credential",
        ]
        .iter()
        .any(|w| n.contains(w))
    }
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if secretish(k) {
                        hide_all(child);
                    } else {
                        walk(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::String(s) => *s = hide_userinfo(s),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    fn hide_all(v: &mut Value) {
        match v {
            Value::Object(map) => map.values_mut().for_each(hide_all),
            Value::Array(items) => items.iter_mut().for_each(hide_all),
            Value::String(_) | Value::Number(_) => *v = json!(HIDDEN),
            Value::Null | Value::Bool(_) => {}
        }
    }
    walk(&mut v);
    v
}

/// Applies `hide` to every string (keys too) of a JSON tree.
fn redact_strings(v: &mut Value, hide: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => *s = hide(s),
        Value::Array(items) => items.iter_mut().for_each(|i| redact_strings(i, hide)),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut child) in old {
                redact_strings(&mut child, hide);
                map.insert(hide(&k), child);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Client keys by name with their groups, allowed models and usage against their
/// budgets — never a key value or its hash.
pub(super) async fn keys(snap: &Snapshot) -> Value {
    let usage = snap.keys.usage_report().await;
    let keys: Vec<Value> = snap
        .config
        .keys
        .iter()
        .map(|k| {
            let used = usage.iter().find(|u| u.key == *k.name);
            json!({
                "name": &*k.name,
                "groups": &*k.groups,
                "models": k.models.as_ref().map(|m| m.iter().map(|g| g.as_str()).collect::<Vec<_>>()),
                "usage": used,
            })
        })
        .collect();
    json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_hidden() {
        assert_eq!(
            hide_userinfo("https://u:p@es:9200/_bulk"),
            "https://***@es:9200/_bulk"
        );
        assert_eq!(hide_userinfo("http://a/b@c"), "http://a/b@c");
    }

    #[test]
    fn secret_sounding_plugin_settings_are_hidden() {
        let v = hide_secret_settings(
            json!({"url": "http://x", "headers": {"authorization": "Bearer s"}, "api_key": "k", "limit": 3}),
        );
        assert_eq!(
            v,
            json!({"url": "http://x", "headers": {"authorization": "***"}, "api_key": "***", "limit": 3})
        );
    }

    #[test]
    fn environment_values_are_hidden_everywhere() {
        let config = switchyard_config::parse(
            "upstreams:\n  - {name: a, base_url: 'http://${HOST}/v1', models: [m], auth: {type: bearer, key: '${KEY}'}}\nadmin: {token: '${TOKEN}'}\n",
            &|name| match name {
                "HOST" => Some("secret-host.internal".into()),
                "KEY" => Some("sk-live-123".into()),
                "TOKEN" => Some("admin-tok-456".into()),
                _ => None,
            },
        )
        .unwrap();
        let text = config_text(&config);
        for secret in ["secret-host.internal", "sk-live-123", "admin-tok-456"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    fn config_text(c: &Config) -> String {
        config(c).to_string()
    }
}
