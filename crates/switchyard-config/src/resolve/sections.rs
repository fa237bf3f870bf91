//! The single-entry sections: `server`, `catalogue`, `routing`, `metrics`, `admin` and `log`. Each field gets
//! its default and its own check; nothing here looks at other sections.

use super::duration_or;
use crate::error::ConfigError;
use crate::raw;
use crate::resolved::*;
use crate::secret::Secret;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn server(s: raw::ServerSpec, errors: &mut Vec<ConfigError>) -> Option<Server> {
    let listen = s.listen.as_deref().unwrap_or("0.0.0.0:8080");
    let listen = listen
        .parse()
        .map_err(|_discarded| {
            errors.push(ConfigError::new(
                "server.listen",
                format!("`{listen}` is not an address like 0.0.0.0:8080"),
            ))
        })
        .ok();
    let max_body_bytes = s.max_body_bytes.unwrap_or(10 * 1024 * 1024);
    if max_body_bytes == 0 {
        errors.push(ConfigError::new(
            "server.max_body_bytes",
            "must be greater than 0",
        ));
    }
    let log_format = match s.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            errors.push(ConfigError::new(
                "server.log_format",
                format!("unknown log format `{other}` (expected text or json)"),
            ));
            LogFormat::Text
        }
    };
    let max_header_bytes = match s.max_header_bytes.unwrap_or(64 * 1024) {
        n @ 8_192..=1_048_576 => n as u32,
        _ => {
            errors.push(ConfigError::new(
                "server.max_header_bytes",
                "must be between 8192 and 1048576",
            ));
            64 * 1024
        }
    };
    let max_connections = s.max_connections.unwrap_or(10_000);
    if max_connections == 0 {
        errors.push(ConfigError::new(
            "server.max_connections",
            "must be greater than 0",
        ));
    }
    let mut timeout = |value, path: &str, default_secs| {
        let d = duration_or(value, path, Duration::from_secs(default_secs), errors);
        if d == Some(Duration::ZERO) {
            errors.push(ConfigError::new(path, "must be greater than 0"));
        }
        d
    };
    let header_timeout = timeout(s.header_timeout, "server.header_timeout", 30);
    let idle_timeout = timeout(s.idle_timeout, "server.idle_timeout", 75);
    let body_timeout = timeout(s.body_timeout, "server.body_timeout", 60);
    let write_timeout = timeout(s.write_timeout, "server.write_timeout", 60);
    let drain_timeout = timeout(s.drain_timeout, "server.drain_timeout", 30);
    Some(Server {
        listen: listen?,
        max_body_bytes,
        max_concurrent_streams: s.max_concurrent_streams.unwrap_or(10_000),
        log_format,
        workers: s.workers.unwrap_or(0),
        tls: s.tls.map(|t| ServerTls {
            cert_file: t.cert_file.into(),
            key_file: t.key_file.into(),
        }),
        max_connections,
        max_header_bytes,
        header_timeout: header_timeout?,
        idle_timeout: idle_timeout?,
        body_timeout: body_timeout?,
        write_timeout: write_timeout?,
        drain_timeout: drain_timeout?,
        watch: s.watch.unwrap_or(false),
        cors: s.cors.and_then(|c| super::cors::cors(c, errors)),
    })
}

pub(super) fn catalogue(s: raw::CatalogueSpec, errors: &mut Vec<ConfigError>) -> Option<Catalogue> {
    let ttl = duration_or(s.ttl, "catalogue.ttl", Duration::from_secs(300), errors);
    let fetch_timeout = duration_or(
        s.fetch_timeout,
        "catalogue.fetch_timeout",
        Duration::from_secs(3),
        errors,
    );
    let hide = match s.hide {
        None => ModelKind::ALL.iter().map(|(k, _)| *k).collect(),
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let found = ModelKind::ALL.iter().find(|(_, name)| name == n);
                if found.is_none() {
                    errors.push(ConfigError::new(
                        format!("catalogue.hide[{i}]"),
                        format!(
                            "unknown model kind `{n}` (expected one of: embedding, tts, speech, image, moderation)"
                        ),
                    ));
                }
                found.map(|(k, _)| *k)
            })
            .collect(),
    };
    Some(Catalogue {
        ttl: ttl?,
        fetch_timeout: fetch_timeout?,
        hide,
    })
}

pub(super) fn routing(s: raw::RoutingSpec, errors: &mut Vec<ConfigError>) -> Option<Routing> {
    let max_attempts = s.max_attempts.unwrap_or(4);
    if max_attempts == 0 {
        errors.push(ConfigError::new(
            "routing.max_attempts",
            "must be at least 1",
        ));
    }
    let cooldown = duration_or(
        s.cooldown,
        "routing.cooldown",
        Duration::from_secs(30),
        errors,
    );
    let failures_before_cooldown = s.failures_before_cooldown.unwrap_or(3);
    if failures_before_cooldown == 0 {
        errors.push(ConfigError::new(
            "routing.failures_before_cooldown",
            "must be at least 1",
        ));
    }
    let request_timeout = duration_or(
        s.request_timeout,
        "routing.request_timeout",
        Duration::from_secs(300),
        errors,
    );
    let retry_budget = retry_budget(s.retry_budget.unwrap_or_default(), errors);
    Some(Routing {
        max_attempts,
        cooldown: cooldown?,
        failures_before_cooldown,
        request_timeout: request_timeout?,
        retry_on_timeout: s.retry_on_timeout.unwrap_or(true),
        retry_budget: retry_budget?,
        default_upstream: s.default_upstream.map(Arc::from),
    })
}

fn retry_budget(s: raw::RetryBudgetSpec, errors: &mut Vec<ConfigError>) -> Option<RetryBudget> {
    let ratio = s.ratio.unwrap_or(0.2);
    if !(0.0..=100.0).contains(&ratio) {
        errors.push(ConfigError::new(
            "routing.retry_budget.ratio",
            "must be between 0 and 100 (failovers per request)",
        ));
    }
    let window = duration_or(
        s.window,
        "routing.retry_budget.window",
        Duration::from_secs(10),
        errors,
    )?;
    if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&window) {
        errors.push(ConfigError::new(
            "routing.retry_budget.window",
            "must be between 1s and 60s",
        ));
    }
    Some(RetryBudget {
        ratio,
        min_per_second: s.min_per_second.unwrap_or(10),
        window,
    })
}

pub(super) fn metrics(s: raw::MetricsSpec, errors: &mut Vec<ConfigError>) -> Option<Metrics> {
    let listen = s.listen.as_deref().unwrap_or("0.0.0.0:9464");
    let listen = listen
        .parse()
        .map_err(|_discarded| {
            errors.push(ConfigError::new(
                "metrics.listen",
                format!("`{listen}` is not an address like 0.0.0.0:9464"),
            ))
        })
        .ok()?;
    Some(Metrics {
        enabled: s.enabled.unwrap_or(true),
        listen,
    })
}

pub(super) fn admin(s: Option<raw::AdminSpec>, errors: &mut Vec<ConfigError>) -> Option<Admin> {
    let present = s.is_some();
    let s = s.unwrap_or_default();
    let text = s.listen.as_deref().unwrap_or(Admin::DEFAULT_LISTEN);
    let listen = text
        .parse()
        .map_err(|_discarded| {
            errors.push(ConfigError::new(
                "admin.listen",
                format!("`{text}` is not an address like 127.0.0.1:9090"),
            ))
        })
        .ok()?;
    let token = match s.token {
        Some(t) if t.trim().is_empty() => {
            errors.push(ConfigError::new(
                "admin.token",
                "is empty (unset the key, or give a token)",
            ));
            None
        }
        t => t.map(Secret::new),
    };
    let admin = Admin {
        enabled: s.enabled.unwrap_or(present),
        listen,
        token,
        plugins_dir: s.plugins_dir,
    };
    if let Err(e) = admin.check() {
        errors.push(e);
    }
    Some(admin)
}

pub(super) fn log(s: raw::LogSpec) -> Log {
    Log {
        access: s.access.unwrap_or(true),
    }
}
