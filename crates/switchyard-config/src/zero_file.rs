//! Zero-file mode: a config built from Open WebUI's environment variables, for a sidecar
//! that has no `gateway.yaml`. `OPENAI_API_BASE_URLS` and `OPENAI_API_KEYS` are parallel
//! `;`-separated lists (one OpenAI-compatible upstream per URL, a bearer key per URL;
//! a missing or empty key means no auth); `OLLAMA_BASE_URLS` adds Ollama servers through
//! their OpenAI-compatible API (`/v1` appended when missing); `SWITCHYARD_LISTEN` and
//! `SWITCHYARD_METRICS_LISTEN` set the addresses. `ENABLE_OPENAI_API=false` /
//! `ENABLE_OLLAMA_API=false` turn a family off, as in Open WebUI.
//!
//! The variables become the tree a `gateway.yaml` would give and go through the same
//! checks as a file ([`crate::parse_tree`]); keys are literal values in that tree, noted
//! in the [`Redactor`] first, so no message can show one. Errors name the variable and the
//! entry (`env OPENAI_API_BASE_URLS[1]`), not the generated YAML path. Deciding *whether*
//! to use this mode (no file given or found) is the command line's job.

use crate::error::{ConfigError, ConfigErrors};
use crate::redact::Redactor;
use crate::resolved::Config;
use serde_yaml::{Mapping, Value};

const OPENAI_URLS: &str = "OPENAI_API_BASE_URLS";
const OPENAI_KEYS: &str = "OPENAI_API_KEYS";
const OLLAMA_URLS: &str = "OLLAMA_BASE_URLS";

/// The variables whose presence selects zero-file mode (`SWITCHYARD_LISTEN` alone does
/// not: it is also read by the default `gateway.yaml`).
pub const ZERO_FILE_VARIABLES: &[&str] = &[OPENAI_URLS, OPENAI_KEYS, OLLAMA_URLS];

/// Whether any of [`ZERO_FILE_VARIABLES`] is set to something other than blanks.
pub fn zero_file_requested(env: &dyn Fn(&str) -> Option<String>) -> bool {
    ZERO_FILE_VARIABLES
        .iter()
        .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()))
}

/// Open WebUI's `ENABLE_OPENAI_API` / `ENABLE_OLLAMA_API`: `false` (any case) or `0`
/// turns that family off; unset or anything else leaves it on.
fn enabled(env: &dyn Fn(&str) -> Option<String>, toggle: &str) -> bool {
    !env(toggle).is_some_and(|v| {
        let v = v.trim();
        v.eq_ignore_ascii_case("false") || v == "0"
    })
}

/// Where one generated upstream came from, to put errors back on the variable.
struct Origin {
    name: String,
    urls: &'static str,
    keys: Option<&'static str>,
    index: usize,
}

/// Builds and checks the config the environment describes.
pub fn parse_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let (tree, origins, redactor) = tree(env)?;
    crate::parse_tree(tree, env, redactor, &|_| {
        Err("no files in zero-file mode".to_owned())
    })
    .map_err(|e| relabel(e, &origins))
}

/// The native tree, the origin of each upstream in it, and the keys it holds.
fn tree(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Value, Vec<Origin>, Redactor), ConfigErrors> {
    let (mut openai, mut keys, mut ollama) = (Vec::new(), Vec::new(), Vec::new());
    if enabled(env, "ENABLE_OPENAI_API") {
        openai = list(env, OPENAI_URLS);
        keys = list(env, OPENAI_KEYS);
    }
    if enabled(env, "ENABLE_OLLAMA_API") {
        ollama = list(env, OLLAMA_URLS);
    }
    let mut errors = Vec::new();
    if keys.len() > openai.len() {
        errors.push(ConfigError::new(
            format!("env {OPENAI_KEYS}"),
            format!(
                "has {} entries but {OPENAI_URLS} has {}: one key per URL, in the same order \
                 (leave an entry empty for a URL without a key)",
                keys.len(),
                openai.len()
            ),
        ));
    }
    let mut redactor = Redactor::default();
    let mut upstreams = Vec::new();
    let mut origins = Vec::new();
    for (i, url) in openai.iter().enumerate() {
        let name = indexed("openai", i, openai.len());
        let key = keys.get(i).filter(|k| !k.is_empty());
        if let Some(key) = key {
            redactor.add(key);
        }
        match checked_url(url, OPENAI_URLS, i) {
            Ok(url) => upstreams.push(upstream(&name, url, key.map(String::as_str), None)),
            Err(e) => errors.push(e),
        }
        origins.push(Origin {
            name,
            urls: OPENAI_URLS,
            keys: Some(OPENAI_KEYS),
            index: i,
        });
    }
    for (i, url) in ollama.iter().enumerate() {
        let name = indexed("ollama", i, ollama.len());
        match checked_url(url, OLLAMA_URLS, i) {
            Ok(url) => {
                let url = url.trim_end_matches('/');
                let url = if url.ends_with("/v1") {
                    url.to_owned()
                } else {
                    format!("{url}/v1")
                };
                // Local models can take minutes to load before the first byte.
                upstreams.push(upstream(&name, &url, None, Some("10m")));
            }
            Err(e) => errors.push(e),
        }
        origins.push(Origin {
            name,
            urls: OLLAMA_URLS,
            keys: None,
            index: i,
        });
    }
    if !errors.is_empty() {
        return Err(redactor.errors(ConfigErrors(errors)));
    }
    let mut top = Mapping::new();
    top.insert(
        "server".into(),
        map([("listen", "${SWITCHYARD_LISTEN:-0.0.0.0:8080}".into())]),
    );
    top.insert(
        "metrics".into(),
        map([(
            "listen",
            "${SWITCHYARD_METRICS_LISTEN:-0.0.0.0:9464}".into(),
        )]),
    );
    top.insert("upstreams".into(), Value::Sequence(upstreams));
    Ok((Value::Mapping(top), origins, redactor))
}

/// The entries of a `;`-separated list, trimmed; none when unset or blank.
fn list(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Vec<String> {
    match env(name) {
        Some(v) if !v.trim().is_empty() => v.split(';').map(|s| s.trim().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// `openai` when it is the only one, else `openai-1`, `openai-2`… (counting from 1).
fn indexed(prefix: &str, i: usize, of: usize) -> String {
    if of == 1 {
        prefix.to_owned()
    } else {
        format!("{prefix}-{}", i + 1)
    }
}

/// An entry that is there and looks like an http(s) URL (the full check is the normal
/// `base_url` one).
fn checked_url<'a>(url: &'a str, var: &str, i: usize) -> Result<&'a str, ConfigError> {
    let at = format!("env {var}[{i}]");
    if url.is_empty() {
        return Err(ConfigError::new(at, "is empty (a stray `;`?)"));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::new(
            at,
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    Ok(url)
}

/// One `upstreams:` entry. Values go in literally: `${` is escaped so expansion leaves
/// them as they are.
fn upstream(name: &str, url: &str, key: Option<&str>, first_byte: Option<&str>) -> Value {
    let mut entry = vec![("name", Value::from(name)), ("base_url", literal(url))];
    let auth = match key {
        Some(key) => map([("type", "bearer".into()), ("key", literal(key))]),
        None => map([("type", "none".into())]),
    };
    entry.push(("auth", auth));
    if let Some(t) = first_byte {
        entry.push(("first_byte_timeout", t.into()));
    }
    map(entry)
}

fn literal(s: &str) -> Value {
    Value::from(s.replace("${", "$${"))
}

fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Mapping(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// Puts errors found in the generated tree back on the variables they came from.
fn relabel(errors: ConfigErrors, origins: &[Origin]) -> ConfigErrors {
    let relabelled = errors
        .0
        .into_iter()
        .map(|e| {
            for (i, origin) in origins.iter().enumerate() {
                let prefix = format!("upstreams[{i}]");
                let Some(field) = e.path.strip_prefix(&prefix) else {
                    continue;
                };
                if !(field.is_empty() || field.starts_with('.')) {
                    continue;
                }
                let var = match origin.keys {
                    Some(keys) if field.starts_with(".auth") => keys,
                    _ => origin.urls,
                };
                return ConfigError::new(
                    format!("env {var}[{}]", origin.index),
                    format!("{} (upstream `{}`{field})", e.message, origin.name),
                );
            }
            let var = match e.path.as_str() {
                "upstreams" => {
                    return ConfigError::new(
                        "env",
                        format!(
                            "no upstream: set {OPENAI_URLS} or {OLLAMA_URLS} (and leave ENABLE_OPENAI_API / ENABLE_OLLAMA_API on)"
                        ),
                    )
                }
                "server.listen" => "SWITCHYARD_LISTEN",
                "metrics.listen" => "SWITCHYARD_METRICS_LISTEN",
                _ => return e,
            };
            ConfigError::new(format!("env {var}"), e.message)
        })
        .collect();
    ConfigErrors(relabelled)
}

#[cfg(test)]
mod tests;
