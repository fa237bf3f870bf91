//! How long an upstream asked to be left alone, from its answer's headers: OpenAI's
//! `retry-after-ms`, `Retry-After` (seconds or an HTTP date), and the rate-limit
//! headers — `x-ratelimit-remaining-requests: 0` with `x-ratelimit-reset-requests`
//! (`1s`, `6m0s`, `20ms`…) says the next request would be refused until the reset.

use http::header::{HeaderMap, HeaderName};
use std::time::{Duration, SystemTime};

static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");

/// The rest an answer asks for: its `Retry-After` (either form), else the request
/// rate limit's reset when no request is left.
pub(super) fn asked(headers: &HeaderMap) -> Option<Duration> {
    retry_after(headers).or_else(|| exhausted_until_reset(headers))
}

/// The reset of the request rate limit when the answer says none is left.
pub(super) fn exhausted_until_reset(headers: &HeaderMap) -> Option<Duration> {
    let remaining = headers.get(&REMAINING)?.as_bytes().trim_ascii();
    if remaining != b"0" {
        return None;
    }
    let reset = headers.get(&RESET)?.to_str().ok()?;
    go_duration(reset.trim()).map(|d| d.min(MAX_RETRY_AFTER))
}

/// A duration as Go prints them (`1h2m3.5s`, `6m0s`, `20ms`), or a bare number of
/// seconds.
fn go_duration(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total <= 1e9).then(|| Duration::from_secs_f64(total))
}

/// Longest `Retry-After` believed from an upstream.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// OpenAI's `retry-after-ms`, else `Retry-After` in seconds or as an HTTP date; capped
/// at a day.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let number = |name: &str| {
        text(name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    let secs = match number("retry-after-ms") {
        Some(ms) => ms / 1000.0,
        None => match number("retry-after") {
            Some(secs) => secs,
            None => {
                let date = httpdate::parse_http_date(text("retry-after")?).ok()?;
                let wait = date.duration_since(SystemTime::now()).unwrap_or_default();
                return Some(wait.min(MAX_RETRY_AFTER));
            }
        },
    };
    Some(Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn absurd_retry_after_values_are_capped_not_fatal() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert("retry-after", HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn retry_after_reads_an_http_date() {
        let mut h = HeaderMap::new();
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let date = httpdate::fmt_http_date(in_a_minute);
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&h).unwrap();
        // The date has whole seconds, so the wait is within a second of the minute.
        assert!(
            wait > Duration::from_secs(58) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
    }

    #[test]
    fn no_request_left_rests_until_the_reset() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_static("6m0s"),
        );
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("3"),
        );
        assert_eq!(asked(&h), None, "requests are left");
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        assert_eq!(asked(&h), Some(Duration::from_secs(360)));
        h.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_static("1h2m3.5s"),
        );
        assert_eq!(asked(&h), Some(Duration::from_secs_f64(3723.5)));
        h.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_static("20ms"),
        );
        assert_eq!(asked(&h), Some(Duration::from_millis(20)));
        h.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_static("later"),
        );
        assert_eq!(asked(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(asked(&h), Some(Duration::from_secs(2)), "Retry-After first");
    }
}
