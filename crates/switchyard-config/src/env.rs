//! `${VAR}` and `${VAR:-default}` expansion over every string in the YAML tree, before
//! it is typed. `$${` stays a literal `${`. An unset variable without a default is an
//! error naming the variable and the path. The environment is injected, so tests do not
//! touch the process environment. Every value taken from the environment is handed to a
//! [`Redactor`], so no error message can show it.

use crate::error::{join, ConfigError};
use crate::redact::Redactor;
use serde_yaml::Value;

/// Expands references in place; collects one error per unset variable, and every value
/// taken from the environment into `taken`.
pub(crate) fn expand_tree(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
    taken: &mut Redactor,
) {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                match expand_noting(s, env, &mut |v| taken.add(v)) {
                    Ok(new) => *s = new,
                    Err(msg) => errors.push(ConfigError::new(path, msg)),
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &join(path, &format!("[{i}]")), env, errors, taken);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                expand_tree(v, &join(path, &key), env, errors, taken);
            }
        }
        Value::Tagged(t) => expand_tree(&mut t.value, path, env, errors, taken),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Expands one string.
pub fn expand(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    expand_noting(input, env, &mut |_| {})
}

/// Expands one string, calling `noted` with each value taken from the environment. An
/// error never quotes the input (a literal secret may sit beside the reference).
fn expand_noting(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
    noted: &mut dyn FnMut(&str),
) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(body_start) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(close) = body_start.find('}') else {
            return Err("unterminated `${` (no closing `}`)".to_owned());
        };
        let body = &body_start[..close];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{body}}}` is not a valid variable reference"));
        }
        match (env(name).filter(|v| !v.is_empty() || default.is_none()), default) {
            (Some(v), _) => {
                noted(&v);
                out.push_str(&v);
            }
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set (use `${{{name}:-default}}` for an optional value)"
                ))
            }
        }
        rest = &body_start[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_inside_text() {
        assert_eq!(expand("Bearer ${KEY}!", &env).unwrap(), "Bearer sk-123!");
    }

    #[test]
    fn uses_default_when_unset_or_empty() {
        assert_eq!(expand("${NOPE:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${EMPTY:-y}", &env).unwrap(), "y");
        assert_eq!(expand("${NOPE:-}", &env).unwrap(), "");
    }

    #[test]
    fn unset_variable_without_default_names_the_variable() {
        let err = expand("${NOPE}", &env).unwrap_err();
        assert!(err.contains("`NOPE`"), "{err}");
    }

    #[test]
    fn dollar_dollar_escapes_and_lone_dollar_stays() {
        assert_eq!(expand("$${KEY} costs $5", &env).unwrap(), "${KEY} costs $5");
    }

    #[test]
    fn rejects_unterminated_and_bad_names() {
        assert!(expand("${KEY", &env).is_err());
        assert!(expand("${A-B}", &env).is_err());
    }

    #[test]
    fn tree_errors_carry_the_yaml_path() {
        #[expect(clippy::disallowed_methods, reason = "building a test tree")]
        let mut v: Value = serde_yaml::from_str("a:\n  - b: ${NOPE}\n").unwrap();
        let mut errors = Vec::new();
        expand_tree(&mut v, "", &env, &mut errors, &mut Redactor::default());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "a[0].b");
    }

    #[test]
    fn values_from_the_environment_are_noted_and_defaults_are_not() {
        #[expect(clippy::disallowed_methods, reason = "building a test tree")]
        let mut v: Value = serde_yaml::from_str("a: 'x ${KEY} ${NOPE:-dflt}'\n").unwrap();
        let mut taken = Redactor::default();
        expand_tree(&mut v, "", &env, &mut Vec::new(), &mut taken);
        assert_eq!(taken.message("sk-123 dflt"), "*** dflt");
    }
}
