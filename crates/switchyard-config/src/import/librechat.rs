//! A LibreChat `librechat.yaml` → native fragment. Each `endpoints.custom` entry is an
//! OpenAI-compatible upstream: `name`, `baseURL`, `apiKey` (`${ENV}` stays a reference;
//! `user_provided` forwards the client's own key: `auth: passthrough`), `models.default`
//! (static list) and `models.fetch`, `headers`. What only LibreChat's UI uses, request
//! rewriting (`addParams`, `dropParams`) and the other endpoint kinds are warnings at
//! their path.

use super::{key_text, map, required_str, scalar, unique_name, Fragment, Out};
use crate::error::{join, ConfigError, ConfigErrors};
use serde_yaml::{Mapping, Value};

/// Custom-endpoint settings that only shape LibreChat's own UI.
const UI_ONLY: &[&str] = &[
    "titleConvo",
    "titleModel",
    "titleMethod",
    "titleMessageRole",
    "summarize",
    "summaryModel",
    "forcePrompt",
    "modelDisplayLabel",
    "iconURL",
    "directEndpoint",
    "titleEndpoint",
];

pub(super) fn convert(doc: &Mapping, out: &mut Out) -> Result<Fragment, ConfigErrors> {
    let mut errors = Vec::new();
    let mut fragment = Fragment::default();
    for (key, _) in doc {
        let key = key_text(key);
        if key != "endpoints" {
            out.warn(
                &key,
                "a LibreChat application setting, not a gateway one; ignored",
            );
        }
    }
    let Some(Value::Mapping(endpoints)) = doc.get("endpoints") else {
        return Err(ConfigErrors::single("endpoints", "expected a mapping"));
    };
    for (kind, value) in endpoints {
        let kind = key_text(kind);
        let at = join("endpoints", &kind);
        if kind != "custom" {
            out.warn(
                &at,
                "only `custom` (OpenAI-compatible) endpoints are imported; ignored",
            );
            continue;
        }
        let Value::Sequence(list) = value else {
            errors.push(ConfigError::new(at, "expected a list"));
            continue;
        };
        let mut taken = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let path = format!("{at}[{i}]");
            if let Some(up) = endpoint(entry, &path, &mut taken, out, &mut errors) {
                fragment.upstreams.push(up);
            }
        }
    }
    if errors.is_empty() {
        Ok(fragment)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn endpoint(
    value: &Value,
    path: &str,
    taken: &mut Vec<String>,
    out: &mut Out,
    errors: &mut Vec<ConfigError>,
) -> Option<Value> {
    let Value::Mapping(e) = value else {
        errors.push(ConfigError::new(path, "expected a mapping"));
        return None;
    };
    let name = required_str(e, "name", path, errors);
    let base = required_str(e, "baseURL", path, errors);
    let (name, base) = (name?, base?);
    let name = unique_name(name, taken);
    taken.push(name.clone());
    let mut entry = vec![
        ("name", Value::from(name.as_str())),
        ("base_url", Value::from(base.trim().trim_end_matches('/'))),
    ];
    let env_base: String = name
        .to_ascii_uppercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let auth = match e.get("apiKey").and_then(scalar) {
        Some(k) if k == "user_provided" => map([("type", "passthrough".into())]),
        Some(k) if !k.is_empty() => {
            let key = out.secret(&k, &join(path, "apiKey"), &format!("{env_base}_API_KEY"));
            map([("type", "bearer".into()), ("key", key)])
        }
        _ => map([("type", "none".into())]),
    };
    entry.push(("auth", auth));
    let mut fetch = false;
    let mut listed = None;
    for (key, v) in e {
        let key = key_text(key);
        let at = join(path, &key);
        match key.as_str() {
            "name" | "baseURL" | "apiKey" => {}
            "models" => (listed, fetch) = models(v, &at, out),
            "headers" => {
                if let Some(h) = headers(v, &at, &env_base, out) {
                    entry.push(("headers", h));
                }
            }
            "addParams" | "dropParams" => out.warn(
                &at,
                "request bodies are forwarded as sent; not applied (the `params` plugin sets defaults and overrides)",
            ),
            k if UI_ONLY.contains(&k) => {
                out.warn(&at, "a LibreChat UI setting; ignored");
            }
            _ => out.warn(&at, "not supported by Switchyard; ignored"),
        }
    }
    if let Some(list) = listed {
        entry.push(("models", list));
        if fetch {
            entry.push(("fetch_models", true.into()));
        }
    }
    Some(map(entry))
}

/// `models: {default: [...], fetch: bool}` → the static list, and whether to fetch.
fn models(value: &Value, path: &str, out: &mut Out) -> (Option<Value>, bool) {
    let Value::Mapping(m) = value else {
        out.warn(path, "expected {default: [...], fetch: …}; ignored");
        return (None, false);
    };
    let mut fetch = false;
    let mut listed = None;
    for (key, v) in m {
        let key = key_text(key);
        match key.as_str() {
            "default" => {
                if let Value::Sequence(s) = v {
                    let ids: Vec<Value> = s.iter().filter(|v| v.is_string()).cloned().collect();
                    listed = Some(Value::Sequence(ids));
                }
            }
            "fetch" => fetch = v.as_bool().unwrap_or(false),
            _ => out.warn(&join(path, &key), "not supported by Switchyard; ignored"),
        }
    }
    (listed, fetch)
}

/// Header names whose values are credentials: a literal one is never printed.
const CREDENTIAL_HEADER_WORDS: &[&str] = &["auth", "key", "token", "secret", "cookie", "password"];

/// Static headers (values are secrets in the native config either way; credential-like
/// ones are never printed literally). LibreChat's `{{…}}` placeholders
/// (user fields) cannot be filled in and are reported.
fn headers(value: &Value, path: &str, env_base: &str, out: &mut Out) -> Option<Value> {
    let Value::Mapping(h) = value else {
        out.warn(path, "expected a mapping; ignored");
        return None;
    };
    let mut headers = Mapping::new();
    for (name, v) in h {
        let name = key_text(name);
        let at = join(path, &name);
        let Some(v) = scalar(v) else {
            out.warn(&at, "expected a string; ignored");
            continue;
        };
        if v.contains("{{") {
            out.warn(
                &at,
                "LibreChat placeholders (`{{…}}`) are not filled in by Switchyard; header skipped",
            );
            continue;
        }
        let suggested = format!(
            "{env_base}_{}",
            name.to_ascii_uppercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        );
        let lower = name.to_ascii_lowercase();
        let value = if CREDENTIAL_HEADER_WORDS.iter().any(|w| lower.contains(w)) {
            out.secret(&v, &at, &suggested)
        } else if v.contains("${") {
            Value::from(v)
        } else {
            super::literal(&v)
        };
        headers.insert(Value::from(name), value);
    }
    (!headers.is_empty()).then_some(Value::Mapping(headers))
}
