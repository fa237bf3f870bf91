//! Keeping values out of config errors. Two guards, both applied to every message
//! before it leaves the crate (and offered to the daemon for the checks it makes later):
//!
//! - [`Redactor`] knows every value `${VAR}` expansion took from the environment and
//!   hides each occurrence of it, raw or in the escaped forms a message quotes it in
//!   (`{:?}`, JSON). Whatever a message says, an environment value does not get out.
//! - [`hide_string_values`] rewrites serde's `invalid type: string "…"` and
//!   `invalid value: string "…"` so a string given in the wrong place is never echoed,
//!   even a literal one (a key pasted where a mapping belongs).
//!
//! Neither touches the YAML path: keys are never expanded, and the path is what an
//! operator needs to find the line.

use crate::error::ConfigErrors;
use std::fmt;

/// What a hidden environment value is replaced with.
const HIDDEN: &str = "***";

/// Values shorter than this are only hidden where they stand alone (not inside a word),
/// so that an environment value like `1` does not turn every `1` of a message into
/// `***`. Such short values are never credentials.
const SHORT: usize = 3;

/// The values that came from the environment, ready to be hidden from messages.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Each value and its escaped forms, longest first (so a value that contains
    /// another is hidden whole).
    forms: Vec<String>,
}

impl Redactor {
    /// Remembers a value taken from the environment.
    pub(crate) fn add(&mut self, value: &str) {
        if value.trim().is_empty() {
            return;
        }
        let debug = format!("{value:?}");
        let json = serde_json::Value::from(value).to_string();
        for form in [value, unquote(&debug), unquote(&json)] {
            if !form.is_empty() && !self.forms.iter().any(|f| f == form) {
                self.forms.push(form.to_owned());
            }
        }
        self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// Whether no environment value was used.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every environment value hidden.
    pub fn message(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for form in &self.forms {
            if out.contains(form.as_str()) {
                out = replace(&out, form, form.chars().count() < SHORT);
            }
        }
        out
    }

    /// Every message of `errors` with environment values hidden.
    pub fn errors(&self, mut errors: ConfigErrors) -> ConfigErrors {
        for e in &mut errors.0 {
            e.message = self.message(&e.message);
        }
        errors
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("forms", &self.forms.len())
            .finish()
    }
}

/// The inside of a quoted form (`"a\"b"` → `a\"b`).
fn unquote(quoted: &str) -> &str {
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or("")
}

/// Replaces each occurrence of `form` with [`HIDDEN`]; with `whole_word`, only where it
/// is not part of a longer word.
fn replace(text: &str, form: &str, whole_word: bool) -> String {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(form) {
        out.push_str(&rest[..at]);
        let after = &rest[at + form.len()..];
        let alone = !word(out.chars().next_back()) && !word(after.chars().next());
        out.push_str(if whole_word && !alone { form } else { HIDDEN });
        rest = after;
    }
    out.push_str(rest);
    out
}

const INVALID_TYPE: &str = "invalid type: ";
const INVALID_VALUE: &str = "invalid value: ";
const STRING: &str = "string \"";

/// serde's messages with any quoted string value hidden: `invalid type: string "sk-…",
/// expected struct KeySpec` becomes `expected a mapping, found a string (value hidden)`;
/// elsewhere in a message, `string "…"` becomes `a string (value hidden)`.
pub fn hide_string_values(message: &str) -> String {
    if let Some(expected) = message
        .strip_prefix(INVALID_TYPE)
        .and_then(|m| m.strip_prefix(STRING))
        .and_then(after_quoted)
        .and_then(|rest| rest.strip_prefix(", expected "))
    {
        return format!(
            "expected {}, found a string (value hidden)",
            describe(expected)
        );
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let next = [INVALID_TYPE, INVALID_VALUE]
            .iter()
            .filter_map(|marker| {
                let at = rest.find(&format!("{marker}{STRING}"))?;
                Some(at + marker.len())
            })
            .min();
        let Some(at) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str("a string (value hidden)");
        match after_quoted(&rest[at + STRING.len()..]) {
            Some(after) => rest = after,
            // No closing quote: hide everything that follows.
            None => return out,
        }
    }
}

/// The text after a `{:?}`-quoted string whose opening quote is already consumed.
fn after_quoted(s: &str) -> Option<&str> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return Some(&s[i + 1..]),
            _ => {}
        }
    }
    None
}

/// serde's `expected …` in an operator's words.
fn describe(expected: &str) -> &str {
    if expected.starts_with("struct ")
        || expected.contains("tagged enum ")
        || expected == "a map"
        || expected == "map"
    {
        "a mapping"
    } else if expected == "a sequence" {
        "a list"
    } else if matches!(expected, "u8" | "u16" | "u32" | "u64" | "usize") {
        "a whole number"
    } else if matches!(expected, "i8" | "i16" | "i32" | "i64" | "isize") {
        "an integer"
    } else {
        expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(values: &[&str]) -> Redactor {
        let mut r = Redactor::default();
        for v in values {
            r.add(v);
        }
        r
    }

    #[test]
    fn hides_raw_and_escaped_forms() {
        let r = redactor(&["sk-\"a\\b"]);
        assert_eq!(r.message("raw sk-\"a\\b here"), "raw *** here");
        assert_eq!(r.message(r#"debug "sk-\"a\\b""#), r#"debug "***""#);
    }

    #[test]
    fn hides_the_longer_of_two_overlapping_values_whole() {
        let r = redactor(&["abc", "abcdef"]);
        assert_eq!(r.message("`abcdef` and abc"), "`***` and ***");
    }

    #[test]
    fn short_values_are_hidden_only_where_they_stand_alone() {
        let r = redactor(&["1", " "]);
        assert_eq!(
            r.message("upstreams1 must be at least 1"),
            "upstreams1 must be at least ***"
        );
    }

    #[test]
    fn a_string_for_a_struct_says_what_was_expected() {
        assert_eq!(
            hide_string_values(r#"invalid type: string "sk-\"x", expected struct KeySpec"#),
            "expected a mapping, found a string (value hidden)"
        );
        assert_eq!(
            hide_string_values(r#"invalid type: string "x", expected u64"#),
            "expected a whole number, found a string (value hidden)"
        );
    }

    #[test]
    fn other_quoted_strings_after_invalid_are_hidden() {
        assert_eq!(
            hide_string_values(r#"bad: invalid value: string "x\"y", expected a URL; ok"#),
            "bad: invalid value: a string (value hidden), expected a URL; ok"
        );
        assert_eq!(
            hide_string_values(r#"invalid value: string "unterminated"#),
            "invalid value: a string (value hidden)"
        );
        assert_eq!(hide_string_values("unknown field `x`"), "unknown field `x`");
    }
}
