//! `include:` in `gateway.yaml`: each listed file (a LiteLLM config or a LibreChat
//! `librechat.yaml`, path relative to the config's directory) is converted and merged
//! into the tree before it is expanded and typed, so every native check applies to
//! what it brings. Upstream, route and client-key names that clash with the config's
//! own (or an earlier include's) are errors at `include[i]`; `routing:` settings are
//! applied only where the config sets none. Warnings keep the path inside the
//! included file.

use super::{convert, key_text, Fragment, Mode};
use crate::error::ConfigError;
use crate::redact::Redactor;
use serde_yaml::{Mapping, Value};

/// Reads the files an `include:` entry names (one, or a directory's / glob's), as
/// `(path, text)`.
pub(crate) type ReadFile<'a> = &'a dyn Fn(&str) -> Result<crate::IncludedFiles, String>;

/// Takes `include:` out of `top` and merges every listed file into it.
pub(crate) fn expand_includes(
    top: &mut Value,
    read: ReadFile<'_>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
    redactor: &mut Redactor,
) {
    let Value::Mapping(doc) = top else {
        return;
    };
    let paths = match doc.remove("include") {
        None | Some(Value::Null) => return,
        Some(Value::String(s)) => vec![Some(s)],
        Some(Value::Sequence(list)) => list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        Some(_) => {
            errors.push(ConfigError::new("include", "expected a list of file paths"));
            return;
        }
    };
    for (i, entry) in paths.into_iter().enumerate() {
        let at = format!("include[{i}]");
        let Some(entry) = entry else {
            errors.push(ConfigError::new(at, "expected a file path"));
            continue;
        };
        let files = match read(&entry) {
            Ok(files) => files,
            Err(msg) => {
                errors.push(ConfigError::new(at, msg));
                continue;
            }
        };
        for (file, text) in files {
            include_one(doc, &at, &file, &text, errors, warnings, redactor);
        }
    }
}

fn include_one(
    doc: &mut Mapping,
    at: &str,
    file: &str,
    text: &str,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
    redactor: &mut Redactor,
) {
    let inner = |path: &str| {
        if path.is_empty() {
            format!("{at} ({file})")
        } else {
            format!("{at} ({file}) {path}")
        }
    };
    let (_, fragment, out) = match convert(text, Mode::Include) {
        Ok(done) => done,
        Err(es) => {
            for e in es.0 {
                errors.push(ConfigError::new(inner(&e.path), e.message));
            }
            return;
        }
    };
    for literal in &out.literals {
        redactor.add(literal);
    }
    for w in out.warnings {
        warnings.push(ConfigError::new(inner(&w.path), w.message));
    }
    merge(doc, fragment, at, file, errors, warnings);
}

fn merge(
    doc: &mut Mapping,
    fragment: Fragment,
    at: &str,
    file: &str,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) {
    for (section, field, what, entries) in [
        ("upstreams", "name", "upstream", fragment.upstreams),
        ("routes", "model", "route", fragment.routes),
        ("keys", "name", "client key", fragment.keys),
    ] {
        if entries.is_empty() {
            continue;
        }
        let list = doc
            .entry(section.into())
            .or_insert_with(|| Value::Sequence(Vec::new()));
        if list.is_null() {
            *list = Value::Sequence(Vec::new());
        }
        let Value::Sequence(list) = list else {
            continue;
        };
        for entry in entries {
            let name = entry.get(field).and_then(Value::as_str).unwrap_or_default();
            if list
                .iter()
                .any(|e| e.get(field).and_then(Value::as_str) == Some(name))
            {
                errors.push(ConfigError::new(
                    at,
                    format!("{what} `{name}` from {file} clashes with one of the same name already in the config"),
                ));
                continue;
            }
            list.push(entry);
        }
    }
    if fragment.routing.is_empty() {
        return;
    }
    let routing = doc
        .entry("routing".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if routing.is_null() {
        *routing = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(routing) = routing else {
        return;
    };
    for (key, value) in fragment.routing {
        if routing.contains_key(&key) {
            warnings.push(ConfigError::new(
                at,
                format!(
                    "routing.{} from {file} not applied: the config sets it",
                    key_text(&key)
                ),
            ));
        } else {
            routing.insert(key, value);
        }
    }
}
