//! Per-key access and budgets as resolved: how a key's value is stored (plain or as a
//! SHA-256 digest), which models a key may use (its own `models` and its groups'),
//! its token / USD budget per window, and the per-model prices spend is computed from.
//! Types only; `resolve::key` and `resolve::price` build them.

use crate::resolved::Glob;
use crate::secret::Secret;
use std::fmt;
use std::time::Duration;

/// A client key's value as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// The value itself (from `${ENV}` in practice).
    Plain(Secret),
    /// `sha256:<64 hex>`: only the digest of the value is known.
    Sha256([u8; 32]),
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(***)"),
            Self::Sha256(_) => f.write_str("Sha256(***)"),
        }
    }
}

impl KeyValue {
    /// Parses `sha256:<64 hex digits>` (either case); `None` when `text` does not
    /// start with `sha256:`, `Some(Err)` when the digest is malformed.
    pub fn parse_sha256(text: &str) -> Option<Result<[u8; 32], String>> {
        let hex = text.strip_prefix("sha256:")?;
        Some(decode_hex32(hex).ok_or_else(|| {
            format!(
                "a hashed key is `sha256:` and 64 hex digits (got {} characters after the prefix); `switchyard hash-key` prints it",
                hex.len()
            )
        }))
    }
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// A group of keys (`groups:`), with the models its members may use.
#[derive(Debug, Clone)]
pub struct Group {
    /// The name keys list in their `groups`.
    pub name: String,
    /// Models members may use (globs); `None`: the group grants no model list.
    pub models: Option<Vec<Glob>>,
}

/// A key's budget (`keys[].budget`): at most `tokens` tokens (input + output) and
/// `usd` dollars of spend per `window`. Windows are aligned to the Unix epoch (a `1d`
/// window starts at 00:00 UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Token limit per window.
    pub tokens: Option<u64>,
    /// Spend limit per window, in US dollars.
    pub usd: Option<f64>,
    /// The window length, in whole seconds (at least 1 s).
    pub window: Duration,
}

/// The price of the models one glob matches (`prices:`), in US dollars per million
/// tokens. The glob is matched against the served model id; a glob with a `/` is
/// `upstream-glob/model-glob`.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// Which models.
    pub model: Glob,
    /// Dollars per million input (prompt) tokens.
    pub input: f64,
    /// Dollars per million output (completion) tokens.
    pub output: f64,
}

impl Price {
    /// Whether this price applies to `model` served by `upstream`.
    pub fn applies(&self, upstream: &str, model: &str) -> bool {
        match self.model.as_str().split_once('/') {
            Some((up, m)) => Glob::match_pattern(up, upstream) && Glob::match_pattern(m, model),
            None => self.model.matches(model),
        }
    }
}
