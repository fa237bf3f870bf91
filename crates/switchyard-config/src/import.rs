//! Foreign config files → native config fragments: a LiteLLM proxy `config.yaml`
//! (`litellm`), a LibreChat `librechat.yaml` (`librechat`) and Libre WebUI plugin JSON
//! files (`libre_webui`; JSON is read as YAML). Each converter turns what
//! it can honour into native `upstreams:` / `routes:` / `keys:` / `routing:` entries and
//! reports everything else as a warning with the path inside the foreign file — nothing
//! is dropped silently. `include:` merges fragments into a `gateway.yaml` (`include`);
//! `switchyard import` prints one as native YAML ([`import_to_yaml`]).
//!
//! Secrets: `os.environ/VAR` (LiteLLM) and `${VAR}` (LibreChat) become `${VAR}`
//! references. A literal key is kept (escaped, and handed to the redactor) when the file
//! is included, but never printed: [`import_to_yaml`] writes a `${VAR}` reference in its
//! place and says which variable to set.

use crate::error::{join, ConfigError, ConfigErrors};
use serde_yaml::{Mapping, Value};

mod include;
mod libre_webui;
mod librechat;
mod litellm;

pub(crate) use include::expand_includes;

/// What a converter produced: native entries, in the order they should be appended.
#[derive(Default)]
pub(crate) struct Fragment {
    pub upstreams: Vec<Value>,
    pub routes: Vec<Value>,
    pub keys: Vec<Value>,
    /// `routing:` settings, each applied only if the main config does not set it.
    pub routing: Mapping,
}

/// Whether literal secrets may stay in the tree (included) or must not (printed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Include,
    Print,
}

/// A converter's running state: its warnings and the literal secrets it kept.
pub(crate) struct Out {
    pub mode: Mode,
    pub warnings: Vec<ConfigError>,
    pub literals: Vec<String>,
    /// When printing: each variable named in place of a literal, with that literal, so
    /// two different keys never share one variable.
    named: Vec<(String, String)>,
}

impl Out {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            warnings: Vec::new(),
            literals: Vec::new(),
            named: Vec::new(),
        }
    }

    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigError::new(path, message));
    }

    /// A credential as written in the foreign file, as a native string: an environment
    /// reference stays one; a literal is kept (escaped) or, when printing, replaced by
    /// `${suggested}`.
    pub(crate) fn secret(&mut self, written: &str, path: &str, suggested: &str) -> Value {
        if let Some(var) = written.strip_prefix("os.environ/") {
            return Value::from(format!("${{{var}}}"));
        }
        if written.contains("${") {
            return Value::from(written);
        }
        match self.mode {
            Mode::Include => {
                self.literals.push(written.to_owned());
                literal(written)
            }
            Mode::Print => {
                let suggested = self.variable_for(written, suggested);
                self.warn(
                    path,
                    format!(
                        "a literal key is not printed; the output reads it from `${{{suggested}}}`: set that variable"
                    ),
                );
                Value::from(format!("${{{suggested}}}"))
            }
        }
    }
}

impl Out {
    /// The variable a printed literal is read from: `suggested`, or `suggested_2`,
    /// `_3`… when another literal already took it (the same literal keeps its name).
    fn variable_for(&mut self, literal: &str, suggested: &str) -> String {
        let mut name = suggested.to_owned();
        for n in 2.. {
            match self.named.iter().find(|(var, _)| *var == name) {
                Some((_, value)) if value == literal => return name,
                Some(_) => name = format!("{suggested}_{n}"),
                None => break,
            }
        }
        self.named.push((name.clone(), literal.to_owned()));
        name
    }
}

/// The foreign formats `include:` and `switchyard import` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// LiteLLM proxy `config.yaml` (`model_list`).
    LiteLlm,
    /// LibreChat `librechat.yaml` (`endpoints.custom`).
    LibreChat,
    /// A Libre WebUI provider plugin JSON file (`id`, `endpoint`, `model_map`).
    LibreWebUi,
}

impl Format {
    fn detect(doc: &Mapping) -> Option<Self> {
        if doc.contains_key("model_list") {
            Some(Self::LiteLlm)
        } else if doc.contains_key("endpoints") {
            Some(Self::LibreChat)
        } else if doc.contains_key("endpoint") && doc.contains_key("id") {
            Some(Self::LibreWebUi)
        } else {
            None
        }
    }

    /// How it is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::LiteLlm => "LiteLLM config",
            Self::LibreChat => "LibreChat librechat.yaml",
            Self::LibreWebUi => "Libre WebUI plugin",
        }
    }
}

/// Reads and converts a foreign file's text.
pub(crate) fn convert(text: &str, mode: Mode) -> Result<(Format, Fragment, Out), ConfigErrors> {
    #[expect(
        clippy::disallowed_methods,
        reason = "foreign config files are parsed here, inside the config crate"
    )]
    let value: Value = serde_yaml::from_str(text)
        .map_err(|e| ConfigErrors::single("", format!("not valid YAML or JSON: {e}")))?;
    let Value::Mapping(doc) = value else {
        return Err(ConfigErrors::single("", "expected a mapping at the top"));
    };
    let Some(format) = Format::detect(&doc) else {
        return Err(ConfigErrors::single(
            "",
            "not a format Switchyard imports: expected a LiteLLM config (`model_list`), a LibreChat librechat.yaml (`endpoints`) or a Libre WebUI plugin (`id`, `endpoint`)",
        ));
    };
    let mut out = Out::new(mode);
    let fragment = match format {
        Format::LiteLlm => litellm::convert(&doc, &mut out),
        Format::LibreChat => librechat::convert(&doc, &mut out),
        Format::LibreWebUi => libre_webui::convert(&doc, &mut out),
    }?;
    Ok((format, fragment, out))
}

/// A foreign file as native `gateway.yaml` text, and what it says that Switchyard
/// cannot honour (paths inside the foreign file). No literal key is printed.
pub fn import_to_yaml(text: &str) -> Result<(Format, String, Vec<ConfigError>), ConfigErrors> {
    let (format, fragment, out) = convert(text, Mode::Print)?;
    let yaml = native_yaml(fragment, format.name())?;
    Ok((format, yaml, out.warnings))
}

/// Several foreign files (a directory of Libre WebUI plugins, say) as one native
/// `gateway.yaml`; warnings and errors name the file. Names used twice are errors.
pub fn import_files_to_yaml(
    files: &[(String, String)],
) -> Result<(String, Vec<ConfigError>), ConfigErrors> {
    let mut all = Fragment::default();
    let (mut warnings, mut errors, mut formats) = (Vec::new(), Vec::new(), Vec::new());
    let at = |file: &str, path: &str| {
        if path.is_empty() {
            file.to_owned()
        } else {
            format!("{file} {path}")
        }
    };
    for (file, text) in files {
        let (format, fragment, out) = match convert(text, Mode::Print) {
            Ok(done) => done,
            Err(es) => {
                errors.extend(
                    es.0.into_iter()
                        .map(|e| ConfigError::new(at(file, &e.path), e.message)),
                );
                continue;
            }
        };
        if !formats.contains(&format.name()) {
            formats.push(format.name());
        }
        warnings.extend(
            out.warnings
                .into_iter()
                .map(|w| ConfigError::new(at(file, &w.path), w.message)),
        );
        for (mine, theirs, field) in [
            (&mut all.upstreams, fragment.upstreams, "name"),
            (&mut all.routes, fragment.routes, "model"),
            (&mut all.keys, fragment.keys, "name"),
        ] {
            for entry in theirs {
                let name = entry.get(field).and_then(Value::as_str).unwrap_or_default();
                if mine
                    .iter()
                    .any(|e| e.get(field).and_then(Value::as_str) == Some(name))
                {
                    errors.push(ConfigError::new(
                        file.as_str(),
                        format!("`{name}` is already defined by an earlier file"),
                    ));
                } else {
                    mine.push(entry);
                }
            }
        }
        for (k, v) in fragment.routing {
            all.routing.entry(k).or_insert(v);
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok((native_yaml(all, &formats.join(" + "))?, warnings))
}

/// A fragment as `gateway.yaml` text with a header naming where it came from.
fn native_yaml(fragment: Fragment, from: &str) -> Result<String, ConfigErrors> {
    let mut top = Mapping::new();
    if !fragment.routing.is_empty() {
        top.insert("routing".into(), Value::Mapping(fragment.routing));
    }
    for (key, list) in [
        ("upstreams", fragment.upstreams),
        ("routes", fragment.routes),
        ("keys", fragment.keys),
    ] {
        if !list.is_empty() {
            top.insert(key.into(), Value::Sequence(list));
        }
    }
    let yaml = serde_yaml::to_string(&Value::Mapping(top))
        .map_err(|e| ConfigErrors::single("", format!("cannot write YAML: {e}")))?;
    Ok(format!(
        "# Imported from {from} by `switchyard import`.\n{yaml}"
    ))
}

/// A non-secret value as native text: LiteLLM's `os.environ/VAR` becomes `${VAR}`;
/// `${VAR}` (LibreChat's syntax, and ours) stays a reference.
pub(crate) fn env_text(written: &str) -> String {
    match written.strip_prefix("os.environ/") {
        Some(var) => format!("${{{var}}}"),
        None => written.to_owned(),
    }
}

/// A string value written literally: `${` escaped so expansion leaves it alone.
pub(crate) fn literal(s: &str) -> Value {
    Value::from(s.replace("${", "$${"))
}

/// A mapping from `(key, value)` pairs.
pub(crate) fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Mapping(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// A mapping's key as text.
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// A scalar as text (strings, numbers, booleans).
pub(crate) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A required string field, or an error at its path.
pub(crate) fn required_str<'a>(
    map: &'a Mapping,
    key: &str,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<&'a str> {
    match map.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(_) => {
            errors.push(ConfigError::new(join(path, key), "expected a string"));
            None
        }
        None => {
            errors.push(ConfigError::new(join(path, key), "is required"));
            None
        }
    }
}

/// A unique upstream name built from `base`: `base`, then `base-2`, `base-3`…
pub(crate) fn unique_name(base: &str, taken: &[String]) -> String {
    let clean: String = base
        .chars()
        .map(|c| {
            if c == '/' || c.is_whitespace() {
                '-'
            } else {
                c
            }
        })
        .collect();
    if !taken.contains(&clean) {
        return clean;
    }
    (2..)
        .map(|n| format!("{clean}-{n}"))
        .find(|n| !taken.contains(n))
        .unwrap_or(clean)
}

#[cfg(test)]
mod tests;
