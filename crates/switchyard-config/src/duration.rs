//! Durations as operators write them. [`parse_duration`] is the one parser behind every
//! duration in the config and in plugin settings. It takes text only: callers turn a
//! YAML or JSON number into its decimal text first, and `${ENV}` references are
//! expanded before it ever sees the value. Knows nothing about YAML paths; callers
//! attach those to the error.

use std::time::Duration;

/// Longest duration accepted anywhere in the config.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses a positive duration of at most [`MAX_DURATION`].
///
/// Accepts a bare number of seconds (`30`, `0.25`) and anything `humantime` reads:
/// `250ms`, `5s`, `1.5s`, `1m`, `2h`, `1d`, and compound forms like `1m 30s` or `1h30m`.
/// Surrounding whitespace is ignored. Zero, negative values and unknown units are errors.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration like 250ms, 5s, 1m or 2h");
    let is_bare_number = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.');
    let parsed = if is_bare_number {
        humantime::parse_duration(&format!("{text}s"))
    } else {
        humantime::parse_duration(text)
    };
    match parsed {
        Ok(d) if d.is_zero() => Err("must be greater than 0".to_owned()),
        Ok(d) if d <= MAX_DURATION => Ok(d),
        Ok(_) => Err(format!("`{text}` is longer than 30 days")),
        Err(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
