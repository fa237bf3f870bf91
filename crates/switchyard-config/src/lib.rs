//! `gateway.yaml` text → validated [`Config`]. The only user of serde_yaml.
//!
//! Pipeline: YAML text → `serde_yaml::Value` → `${ENV}` expansion over every string
//! (`env`) → each section typed with unknown keys denied (`raw`) → defaults, units and
//! cross-references resolved (`resolve`, durations by `duration`, upstream proxies from
//! their `proxy:` or the proxy environment by `proxy`) → [`Config`] (`resolved`). Every
//! problem is collected with its YAML path; [`parse`] is pure, [`load`] reads the file. No error
//! shows a value taken from the environment, nor a string serde found in the wrong
//! place (`redact`); the config keeps its [`Redactor`] for the daemon's own checks.
//! With no file, [`parse_env`] builds the same tree from Open WebUI's variables
//! (`zero_file`) and sends it down the same path. `include:` merges LiteLLM and
//! LibreChat files into the tree first (`import`); what they say that cannot be honoured
//! is kept in [`Config::warnings`].

mod access;
mod cors;
mod duration;
mod env;
mod error;
mod import;
mod proxy;
mod raw;
mod redact;
mod resolve;
mod resolved;
mod secret;
mod zero_file;

pub use access::{Budget, Group, KeyValue, Price};
pub use cors::Cors;
pub use duration::{parse_duration, MAX_DURATION};
pub use env::expand;
pub use error::{ConfigError, ConfigErrors};
pub use import::{import_files_to_yaml, import_to_yaml, Format};
pub use proxy::{Proxy, ProxyEnv, ProxySetting};
pub use redact::{hide_string_values, Redactor};
pub use resolved::*;
pub use secret::Secret;
pub use zero_file::{parse_env, zero_file_requested, ZERO_FILE_VARIABLES};

use std::path::Path;

/// The files one `include:` entry names, as `(path as shown in messages, text)`.
pub type IncludedFiles = Vec<(String, String)>;

/// Parses config text with an injected environment lookup. `include:` needs files, so
/// it is an error here: use [`parse_with_files`] or [`load`].
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    parse_with_files(text, env, &no_files)
}

fn no_files(_: &str) -> Result<IncludedFiles, String> {
    Err("`include:` is read only from a config file (`-c FILE`)".to_owned())
}

/// Parses config text; `read` returns the files an `include:` entry names, as
/// `(path, text)` pairs ([`read_included`] reads them from disk).
pub fn parse_with_files(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read: &dyn Fn(&str) -> Result<IncludedFiles, String>,
) -> Result<Config, ConfigErrors> {
    #[expect(
        clippy::disallowed_methods,
        reason = "this is the one place config YAML is parsed"
    )]
    let value: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| ConfigErrors::single("", format!("not valid YAML: {e}")))?;
    parse_tree(value, env, Redactor::default(), read)
}

/// Parses a config tree (as YAML text would give it) through every check `parse` makes;
/// `redactor` already knows the literal secrets the tree holds.
pub(crate) fn parse_tree(
    mut value: serde_yaml::Value,
    env: &dyn Fn(&str) -> Option<String>,
    mut redactor: Redactor,
    read: &dyn Fn(&str) -> Result<IncludedFiles, String>,
) -> Result<Config, ConfigErrors> {
    if value.is_null() {
        value = serde_yaml::Value::Mapping(Default::default());
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    import::expand_includes(&mut value, read, &mut errors, &mut warnings, &mut redactor);
    env::expand_tree(&mut value, "", env, &mut errors, &mut redactor);
    let proxy_env = ProxyEnv::read(env);
    for name in proxy::VARIABLES {
        if let Some(value) = env(name).filter(|v| v.contains('@')) {
            redactor.add(&value);
        }
    }
    let top: raw::Top = match resolve::typed(value, "") {
        Ok(top) => top,
        Err(e) => {
            errors.push(e);
            return Err(redactor.errors(ConfigErrors(errors)));
        }
    };
    match resolve::resolve(top, &proxy_env, &mut errors) {
        Some(mut config) if errors.is_empty() => {
            config.warnings = redactor.errors(ConfigErrors(warnings)).0;
            config.redactor = redactor;
            Ok(config)
        }
        _ => Err(redactor.errors(ConfigErrors(errors))),
    }
}

/// Reads and parses a config file against the process environment; `include:` paths
/// are relative to its directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::single("", format!("cannot read {}: {e}", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse_with_files(&text, &|name| std::env::var(name).ok(), &|entry| {
        read_included(dir, entry)
    })
}

/// The files one `include:` entry names, relative to `dir`: a file; or every `.json`
/// file of a directory, or of a glob whose file name has one `*` (`plugins/*.json`), in
/// name order. Returned as `(path as written + file name, text)`.
pub fn read_included(dir: &Path, entry: &str) -> Result<IncludedFiles, String> {
    let read = |shown: String, path: &Path| {
        std::fs::read_to_string(path)
            .map(|text| (shown.clone(), text))
            .map_err(|e| format!("cannot read {shown}: {e}"))
    };
    let full = dir.join(entry);
    let (folder, pattern) = if entry.contains('*') {
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (full.parent().unwrap_or(dir).to_owned(), Some(name))
    } else if full.is_dir() {
        (full, None)
    } else {
        return read(entry.to_owned(), &full).map(|one| vec![one]);
    };
    let pattern_given = pattern.is_some();
    let glob = Glob::new(pattern.unwrap_or_else(|| "*.json".to_owned()));
    let listing = std::fs::read_dir(&folder).map_err(|e| format!("cannot read {entry}: {e}"))?;
    let mut names: Vec<String> = listing
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| glob.matches(n))
        .collect();
    names.sort();
    // An empty directory (the plugin API's, after its last plugin went) brings nothing;
    // a glob that matches nothing is a mistake.
    if names.is_empty() && pattern_given {
        return Err(format!("{entry} names no files"));
    }
    let shown_dir = if entry.contains('*') {
        entry.rsplit_once('/').map_or("", |(d, _)| d).to_owned()
    } else {
        entry.trim_end_matches('/').to_owned()
    };
    names
        .into_iter()
        .map(|n| {
            let shown = if shown_dir.is_empty() {
                n.clone()
            } else {
                format!("{shown_dir}/{n}")
            };
            read(shown, &folder.join(&n))
        })
        .collect()
}

#[cfg(test)]
mod tests;
