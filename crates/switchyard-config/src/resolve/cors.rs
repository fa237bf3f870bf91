//! `server.cors`: origins (`*` or exact `scheme://host[:port]`), methods and header
//! names as HTTP tokens, `*` in `allow_headers` for "echo what the preflight asks",
//! the max age as a duration. Each bad entry is reported at its own path.

use super::duration_or;
use crate::cors::{Cors, DEFAULT_ALLOW_HEADERS, DEFAULT_EXPOSE_HEADERS};
use crate::error::ConfigError;
use crate::raw;
use std::time::Duration;

const PATH: &str = "server.cors";

pub(super) fn cors(c: raw::CorsSpec, errors: &mut Vec<ConfigError>) -> Option<Cors> {
    let before = errors.len();
    if c.allow_origins.is_empty() {
        errors.push(ConfigError::new(
            format!("{PATH}.allow_origins"),
            "is empty: list the origins allowed (`https://app.example.com`), or `*`",
        ));
    }
    let mut any_origin = false;
    let mut allow_origins = Vec::new();
    for (i, o) in c.allow_origins.iter().enumerate() {
        if o == "*" {
            any_origin = true;
        } else if let Err(why) = check_origin(o) {
            errors.push(ConfigError::new(
                format!("{PATH}.allow_origins[{i}]"),
                format!("`{o}` {why}"),
            ));
        } else {
            allow_origins.push(o.to_ascii_lowercase());
        }
    }
    let allow_methods = match c.allow_methods {
        None => vec!["GET".to_owned(), "POST".to_owned(), "OPTIONS".to_owned()],
        Some(methods) => {
            if methods.is_empty() {
                errors.push(ConfigError::new(
                    format!("{PATH}.allow_methods"),
                    "is empty: list the methods allowed (GET, POST, OPTIONS)",
                ));
            }
            names(&methods, "allow_methods", "method", errors)
                .into_iter()
                .map(|m| m.to_ascii_uppercase())
                .collect()
        }
    };
    let allow_headers = match c.allow_headers {
        None => Some(DEFAULT_ALLOW_HEADERS.map(str::to_owned).to_vec()),
        Some(list) if list.iter().any(|h| h == "*") => None,
        Some(list) => Some(names(&list, "allow_headers", "header name", errors)),
    };
    let expose_headers = match c.expose_headers {
        None => DEFAULT_EXPOSE_HEADERS.map(str::to_owned).to_vec(),
        Some(list) => names(&list, "expose_headers", "header name", errors),
    };
    let max_age = duration_or(
        c.max_age,
        &format!("{PATH}.max_age"),
        Duration::from_secs(600),
        errors,
    );
    if errors.len() > before {
        return None;
    }
    Some(Cors {
        allow_origins,
        any_origin,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age: max_age?,
        allow_credentials: c.allow_credentials.unwrap_or(false),
    })
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn check_origin(o: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = o.split_once("://") else {
        return Err("is not an origin like https://app.example.com (or `*`)");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok || rest.is_empty() {
        return Err("is not an origin like https://app.example.com (or `*`)");
    }
    if rest.contains(['/', '?', '#']) {
        return Err("has a path: an origin is scheme://host[:port], with no trailing slash");
    }
    if rest.contains('*') {
        return Err("has a wildcard: list each origin, or allow any with `*` alone");
    }
    if !rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c))
    {
        return Err("is not an origin like https://app.example.com (or `*`)");
    }
    Ok(())
}

/// HTTP tokens (methods, header names), lower-cased; a wildcard is explained.
fn names(list: &[String], field: &str, what: &str, errors: &mut Vec<ConfigError>) -> Vec<String> {
    let mut out = Vec::with_capacity(list.len());
    for (i, name) in list.iter().enumerate() {
        let at = || format!("{PATH}.{field}[{i}]");
        if name.contains('*') {
            let hint = if field == "allow_headers" {
                "list the names (`x-stainless-arch`…), or `*` alone to allow what each preflight asks for"
            } else {
                "list the names"
            };
            errors.push(ConfigError::new(
                at(),
                format!("`{name}` is not a {what}: CORS has no patterns; {hint}"),
            ));
        } else if name.is_empty() || !name.bytes().all(is_tchar) {
            errors.push(ConfigError::new(at(), format!("`{name}` is not a {what}")));
        } else {
            out.push(name.to_ascii_lowercase());
        }
    }
    out
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
