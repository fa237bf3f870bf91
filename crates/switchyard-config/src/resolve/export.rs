//! The `export:` section: queue and batch sizes, flush interval, retry policy, the JSONL
//! file sink and the HTTP collectors (URL, body format, index, secret headers, timeout,
//! unique sink names). Nothing here opens a file or a connection; the daemon does that
//! when it starts the exporter.

use super::upstream::check_header_name;
use super::{duration_or, typed};
use crate::error::{join, ConfigError};
use crate::raw;
use crate::resolved::*;
use crate::secret::Secret;
use serde_yaml::Value;
use std::time::Duration;

/// The name of the file sink in metrics (`sink` label).
pub(crate) const FILE_SINK: &str = "file";

pub(super) fn export(s: raw::ExportSpec, errors: &mut Vec<ConfigError>) -> Option<Export> {
    let before = errors.len();
    let queue = at_least_one(s.queue, 10_000, "export.queue", errors);
    let batch_size = at_least_one(s.batch_size, 500, "export.batch_size", errors);
    let max_attempts = s.max_attempts.unwrap_or(5);
    if max_attempts == 0 {
        errors.push(ConfigError::new(
            "export.max_attempts",
            "must be at least 1",
        ));
    }
    let flush_interval = duration_or(
        s.flush_interval,
        "export.flush_interval",
        Duration::from_secs(2),
        errors,
    );
    let backoff = duration_or(
        s.backoff,
        "export.backoff",
        Duration::from_millis(500),
        errors,
    );
    let file = match s.file {
        None | Some(Value::Null) => None,
        Some(v) => typed::<raw::ExportFileSpec>(v, "export.file")
            .map_err(|e| errors.push(e))
            .ok()
            .and_then(|f| file(f, errors)),
    };
    let mut names: Vec<String> = file.iter().map(|_| FILE_SINK.to_owned()).collect();
    let mut http = Vec::new();
    for (i, value) in s.http.into_iter().enumerate() {
        let path = format!("export.http[{i}]");
        if let Ok(spec) = typed::<raw::ExportHttpSpec>(value, &path).map_err(|e| errors.push(e)) {
            if let Some(sink) = collector(spec, &path, &names, errors) {
                names.push(sink.name.clone());
                http.push(sink);
            }
        }
    }
    if errors.len() > before {
        return None;
    }
    if file.is_none() && http.is_empty() {
        errors.push(ConfigError::new(
            "export",
            "names no sink (set `file` or at least one `http` collector)",
        ));
        return None;
    }
    Some(Export {
        queue,
        batch_size,
        flush_interval: flush_interval?,
        max_attempts,
        backoff: backoff?,
        file,
        http,
    })
}

fn at_least_one(
    value: Option<usize>,
    default: usize,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> usize {
    let value = value.unwrap_or(default);
    if value == 0 {
        errors.push(ConfigError::new(path, "must be at least 1"));
    }
    value
}

fn file(s: raw::ExportFileSpec, errors: &mut Vec<ConfigError>) -> Option<ExportFile> {
    let before = errors.len();
    if s.path.trim().is_empty() {
        errors.push(ConfigError::new("export.file.path", "must not be empty"));
    }
    let max_bytes = s.max_bytes.unwrap_or(100 * 1024 * 1024);
    if max_bytes == 0 {
        errors.push(ConfigError::new(
            "export.file.max_bytes",
            "must be greater than 0",
        ));
    }
    (errors.len() == before).then(|| ExportFile {
        path: s.path.into(),
        max_bytes,
        keep: s.keep.unwrap_or(5),
    })
}

fn collector(
    s: raw::ExportHttpSpec,
    path: &str,
    taken: &[String],
    errors: &mut Vec<ConfigError>,
) -> Option<ExportHttp> {
    let before = errors.len();
    let at = |field: &str| join(path, field);
    let has_host = |rest: &str| !rest.is_empty() && !rest.starts_with(['/', '?']);
    let url_ok = match (
        s.url.strip_prefix("http://"),
        s.url.strip_prefix("https://"),
    ) {
        (Some(rest), _) | (_, Some(rest)) => has_host(rest) && !s.url.contains(char::is_whitespace),
        (None, None) => false,
    };
    if !url_ok {
        errors.push(ConfigError::new(
            at("url"),
            format!("`{}` is not an http:// or https:// URL", s.url),
        ));
    }
    let format = match s.format.as_deref() {
        Some("elasticsearch") => Some(ExportFormat::Elasticsearch {
            index: s.index.clone(),
        }),
        Some("clickhouse") => Some(ExportFormat::ClickHouse),
        Some(other) => {
            errors.push(ConfigError::new(
                at("format"),
                format!("unknown format `{other}` (expected elasticsearch or clickhouse)"),
            ));
            None
        }
        None => {
            errors.push(ConfigError::new(
                at("format"),
                "is required (elasticsearch or clickhouse)",
            ));
            None
        }
    };
    match (&format, &s.index) {
        (Some(ExportFormat::ClickHouse), Some(_)) => errors.push(ConfigError::new(
            at("index"),
            "applies to format elasticsearch only (ClickHouse takes the table in the URL's query)",
        )),
        (_, Some(index)) if index.is_empty() => {
            errors.push(ConfigError::new(at("index"), "must not be empty"));
        }
        _ => {}
    }
    let mut headers = Vec::new();
    for (name, value) in s.headers {
        let header_path = at(&format!("headers.{name}"));
        check_header_name(&name, &header_path, errors);
        if name.eq_ignore_ascii_case("content-type")
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("host")
        {
            errors.push(ConfigError::new(
                &header_path,
                "is set by the exporter and cannot be configured",
            ));
        }
        if value.contains(['\r', '\n']) {
            errors.push(ConfigError::new(
                &header_path,
                "header values cannot contain line breaks",
            ));
        }
        headers.push((name, Secret::new(value)));
    }
    let timeout = duration_or(s.timeout, &at("timeout"), Duration::from_secs(10), errors);
    let format = format?;
    let name = s.name.unwrap_or_else(|| format.name().to_owned());
    if name.is_empty() {
        errors.push(ConfigError::new(at("name"), "must not be empty"));
    } else if taken.contains(&name) {
        errors.push(ConfigError::new(
            at("name"),
            format!("sink name `{name}` is used twice (set `name:` to tell the sinks apart)"),
        ));
    }
    if errors.len() > before {
        return None;
    }
    Some(ExportHttp {
        name,
        url: s.url,
        format,
        headers,
        timeout: timeout?,
    })
}

#[cfg(test)]
mod tests;
