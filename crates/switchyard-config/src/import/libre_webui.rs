//! A Libre WebUI provider plugin (one JSON file: `id`, `endpoint`, `auth.header` /
//! `auth.prefix` / `auth.key_env`, `model_map`) → one upstream. The endpoint must be an
//! OpenAI `…/chat/completions` URL (its base is what Switchyard calls); other APIs are
//! skipped with a warning, as is anything else the plugin says that has no equivalent.

use super::{key_text, map, required_str, scalar, Fragment, Out};
use crate::error::{join, ConfigError, ConfigErrors};
use serde_yaml::{Mapping, Value};

/// Plugin fields that only describe it to Libre WebUI's UI.
const DESCRIPTIVE: &[&str] = &["name", "type", "description", "version"];

pub(super) fn convert(doc: &Mapping, out: &mut Out) -> Result<Fragment, ConfigErrors> {
    let mut errors = Vec::new();
    let id = required_str(doc, "id", "", &mut errors);
    let endpoint = required_str(doc, "endpoint", "", &mut errors);
    let (Some(id), Some(endpoint)) = (id, endpoint) else {
        return Err(ConfigErrors(errors));
    };
    let mut fragment = Fragment::default();
    let endpoint = endpoint.trim().trim_end_matches('/');
    let Some(base) = endpoint.strip_suffix("/chat/completions") else {
        out.warn(
            "endpoint",
            format!(
                "not an OpenAI chat/completions URL and Switchyard only speaks the OpenAI API; plugin `{id}` skipped"
            ),
        );
        return Ok(fragment);
    };
    let mut entry = vec![
        ("name", Value::from(id)),
        ("base_url", super::literal(base)),
        ("auth", auth(doc.get("auth"), out, &mut errors)),
    ];
    for (key, v) in doc {
        let key = key_text(key);
        match key.as_str() {
            "id" | "endpoint" | "auth" => {}
            "model_map" => match v {
                Value::Sequence(ids) => {
                    let ids = ids.iter().filter(|m| m.is_string()).cloned().collect();
                    entry.push(("models", Value::Sequence(ids)));
                }
                _ => out.warn(&key, "expected a list of model names; ignored"),
            },
            k if DESCRIPTIVE.contains(&k) => {}
            _ => out.warn(&key, "not supported by Switchyard; ignored"),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    fragment.upstreams.push(map(entry));
    Ok(fragment)
}

/// `auth: {header, prefix, key_env}` → bearer (`Authorization: Bearer …`) or a header.
fn auth(value: Option<&Value>, out: &mut Out, errors: &mut Vec<ConfigError>) -> Value {
    let Some(Value::Mapping(a)) = value else {
        return map([("type", "none".into())]);
    };
    for (key, _) in a {
        let key = key_text(key);
        if !["header", "prefix", "key_env"].contains(&key.as_str()) {
            out.warn(&join("auth", &key), "not supported by Switchyard; ignored");
        }
    }
    let Some(var) = required_str(a, "key_env", "auth", errors) else {
        return map([("type", "none".into())]);
    };
    let key = Value::from(format!("${{{var}}}"));
    let header = a
        .get("header")
        .and_then(scalar)
        .unwrap_or_else(|| "Authorization".to_owned());
    let prefix = a.get("prefix").and_then(scalar).unwrap_or_default();
    if header.eq_ignore_ascii_case("authorization") && prefix == "Bearer " {
        map([("type", "bearer".into()), ("key", key)])
    } else {
        map([
            ("type", "header".into()),
            ("name", Value::from(header)),
            ("prefix", super::literal(&prefix)),
            ("key", key),
        ])
    }
}
