//! The benches crate's library: a tiny command-line reader and latency percentiles
//! shared by the binaries (`mockup`, `loadgen`, `report`, `clientbench`), the
//! bench report (`report`: raw records in, Markdown out), the process CPU clock
//! (`cpu`), and the upstream-client comparison (`clients`).

use std::str::FromStr;

#[cfg(feature = "clientbench")]
pub mod clients;
pub mod cpu;
pub mod report;

/// A minimal `--name value` / `--name=value` / `--flag` command-line reader.
///
/// Options are taken out as they are asked for; [`Args::finish`] then rejects
/// anything left over, so a typo is an error rather than silently ignored.
#[derive(Debug)]
pub struct Args {
    rest: Vec<String>,
}

impl Args {
    /// The process's arguments, without the program name.
    pub fn from_env() -> Self {
        Self::from_vec(std::env::args().skip(1).collect())
    }

    /// Arguments from an explicit list (the program name already removed).
    pub fn from_vec(rest: Vec<String>) -> Self {
        Self { rest }
    }

    /// Whether `--help` or `-h` was given.
    pub fn wants_help(&self) -> bool {
        self.rest.iter().any(|a| a == "--help" || a == "-h")
    }

    /// Takes out a boolean `--name`; true if it was present.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| a != name);
        self.rest.len() != before
    }

    /// Takes out `--name value` or `--name=value`; the last one wins.
    ///
    /// # Errors
    /// When `--name` is the last argument and has no value.
    pub fn value(&mut self, name: &str) -> Result<Option<String>, String> {
        let prefix = format!("{name}=");
        let mut found = None;
        let mut i = 0;
        while i < self.rest.len() {
            if self.rest[i] == name {
                if i + 1 >= self.rest.len() {
                    return Err(format!("{name} needs a value"));
                }
                let v = self.rest.remove(i + 1);
                self.rest.remove(i);
                found = Some(v);
            } else if let Some(v) = self.rest[i].strip_prefix(&prefix) {
                found = Some(v.to_owned());
                self.rest.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(found)
    }

    /// Takes out `--name value` and parses it, or returns `default` if absent.
    ///
    /// # Errors
    /// When the value is missing or does not parse as `T`.
    pub fn parse_or<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.value(name)? {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_parse_error| format!("{name}: cannot parse {v:?}")),
        }
    }

    /// Takes out the first argument that is not an option (does not start with `--`).
    pub fn positional(&mut self) -> Option<String> {
        let i = self.rest.iter().position(|a| !a.starts_with("--"))?;
        Some(self.rest.remove(i))
    }

    /// Ends parsing.
    ///
    /// # Errors
    /// When arguments remain that no option asked for.
    pub fn finish(self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("unknown arguments: {}", self.rest.join(" ")))
        }
    }
}

/// The `p`-th percentile (0–100, nearest rank) of an ascending sample of
/// microsecond values, in milliseconds; `None` for an empty sample.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let n = sorted_us.len();
    // Nearest rank: ceil(p/100 * n), 1-based, clamped into the sample.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "rank of a sample far below 2^52, clamped right after"
    )]
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let idx = rank.clamp(1, n) - 1;
    sorted_us.get(idx).map(|us| f64::from(*us) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_take_values_flags_and_reject_leftovers() {
        let mut a = Args::from_vec(
            [
                "--url",
                "http://x",
                "--stream",
                "--concurrency=4",
                "--bogus",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(a.value("--url").unwrap().as_deref(), Some("http://x"));
        assert!(a.flag("--stream"));
        assert_eq!(a.parse_or("--concurrency", 1_usize).unwrap(), 4);
        assert_eq!(a.parse_or("--duration", 5.0_f64).unwrap(), 5.0);
        assert!(a.finish().is_err());
    }

    #[test]
    fn positional_is_the_first_non_option_left() {
        let mut a = Args::from_vec(
            ["--scenario", "plugins", "raw.jsonl"]
                .map(String::from)
                .to_vec(),
        );
        assert_eq!(a.value("--scenario").unwrap().as_deref(), Some("plugins"));
        assert_eq!(a.positional().as_deref(), Some("raw.jsonl"));
        assert!(a.finish().is_ok());
    }

    #[test]
    fn missing_value_is_an_error() {
        let mut a = Args::from_vec(vec!["--url".to_owned()]);
        assert!(a.value("--url").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&v, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&v, 100.0), Some(100.0));
        assert_eq!(percentile_ms(&[1500], 99.0), Some(1.5));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }
}
