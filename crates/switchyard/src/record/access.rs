//! The access-log line, formatted by hand into one buffer and queued to the log writer
//! without going through `tracing`'s formatter: per request that saves generic field
//! visiting, a second clock-to-text conversion and a string per field, the bulk of what
//! an access line cost. The line keeps the shape of the gateway's other log lines: the
//! text format is `tracing`'s (`<time>  INFO switchyard::access: access key=value …`,
//! strings quoted, absent fields left out), the JSON format its JSON layer's
//! (`{"timestamp", "level", "fields": {"message": "access", …}, "target"}`).

use super::RequestRecord;
use crate::log_writer;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};
use switchyard_config::LogFormat;

/// The access log's `tracing` target: `RUST_LOG` filters it like any other.
pub(super) const TARGET: &str = "switchyard::access";

/// Whether `RUST_LOG` lets access lines through (a cached per-callsite answer).
pub(super) fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// Formats `record`'s line and queues it.
pub(super) fn log(record: &RequestRecord, format: LogFormat) {
    let mut line = Vec::with_capacity(512);
    let now = SystemTime::now();
    match format {
        LogFormat::Text => text(&mut line, record, now),
        LogFormat::Json => json(&mut line, record, now),
    }
    line.push(b'\n');
    log_writer::write_line(line);
}

fn text(out: &mut Vec<u8>, r: &RequestRecord, now: SystemTime) {
    push_rfc3339(out, now, Precision::Micros);
    out.extend_from_slice(b"  INFO ");
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(b": access timestamp=");
    push_rfc3339(out, r.timestamp.0, Precision::Millis);
    // The request id may come from the client: quoted, so it cannot forge fields.
    quoted(out, "request_id", Some(&r.request_id.text()));
    word(out, "method", r.method.as_str());
    word(out, "path", &r.path);
    quoted(out, "key", r.key.as_deref());
    quoted(out, "model", r.model.as_deref());
    quoted(out, "served_model", r.served_model.as_deref());
    quoted(out, "upstream", r.upstream.as_deref());
    number(out, "attempts", r.attempts.into());
    number(out, "status", r.status.into());
    quoted(out, "error_code", r.error_code.as_deref());
    millis(out, "latency_ms", r.latency_ms);
    if let Some(ttfb) = r.ttfb_ms {
        millis(out, "ttfb_ms", ttfb);
    }
    if let Some(tokens) = r.input_tokens {
        number(out, "input_tokens", tokens);
    }
    if let Some(tokens) = r.output_tokens {
        number(out, "output_tokens", tokens);
    }
    number(out, "bytes_out", r.bytes_out);
    word(out, "stream", if r.stream { "true" } else { "false" });
    quoted(out, "stream_error", r.stream_error);
    if let Some(cache) = r.cache {
        word(out, "cache", cache);
    }
}

/// ` name=`
fn name(out: &mut Vec<u8>, name: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
}

/// ` name=value`, for values that hold no space or quote (methods, URI paths).
fn word(out: &mut Vec<u8>, field: &str, value: &str) {
    name(out, field);
    out.extend_from_slice(value.as_bytes());
}

fn number(out: &mut Vec<u8>, field: &str, value: u64) {
    name(out, field);
    push_u64(out, value);
}

/// Milliseconds to the microsecond: `1.250`.
fn millis(out: &mut Vec<u8>, field: &str, ms: f64) {
    name(out, field);
    let micros = (ms * 1000.0).round().max(0.0) as u64;
    push_u64(out, micros / 1000);
    out.push(b'.');
    push_digits(out, micros % 1000, 3);
}

/// ` name="value"` with `\`, `"` and control characters escaped as Rust's `{:?}` does
/// (what `tracing` writes); nothing when absent.
fn quoted(out: &mut Vec<u8>, field: &str, value: Option<&str>) {
    let Some(value) = value else { return };
    name(out, field);
    // Plain ASCII goes as it is; anything else through `{:?}`, which also escapes
    // non-ASCII controls and separators (U+0085, U+2028…) a client could send.
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _infallible = write!(out, "{value:?}");
    }
}

fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `value`'s last `width` (at most 20) digits, zero-padded.
fn push_digits(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let width = width.min(digits.len());
    let mut rest = value;
    for digit in digits[..width].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

fn json(out: &mut Vec<u8>, r: &RequestRecord, now: SystemTime) {
    out.extend_from_slice(br#"{"timestamp":""#);
    push_rfc3339(out, now, Precision::Micros);
    out.extend_from_slice(br#"","level":"INFO","fields":{"message":"access","#);
    let start = out.len();
    if serde_json::to_writer(&mut *out, r).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"}");
    }
    // The record's object, opened by the prefix above: drop its own `{`.
    if out.get(start) == Some(&b'{') {
        out.remove(start);
    }
    out.extend_from_slice(br#","target":"switchyard::access"}"#);
}

/// Fractional seconds of [`push_rfc3339`].
#[derive(Debug, Clone, Copy)]
pub enum Precision {
    /// `.042Z`
    Millis,
    /// `.042137Z`
    Micros,
}

/// Appends `at` as RFC 3339 UTC (`2026-11-30T20:21:11.042Z`), without `fmt` machinery;
/// the date and time to the second are computed once per second per thread.
pub(super) fn push_rfc3339(out: &mut Vec<u8>, at: SystemTime, precision: Precision) {
    thread_local! {
        static LAST: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let seconds = LAST.with(|last| {
        let (cached, text) = last.get();
        if cached == secs {
            return text;
        }
        let text = to_the_second(secs);
        last.set((secs, text));
        text
    });
    out.extend_from_slice(&seconds);
    out.push(b'.');
    match precision {
        Precision::Millis => push_digits(out, u64::from(since.subsec_millis()), 3),
        Precision::Micros => push_digits(out, u64::from(since.subsec_micros()), 6),
    }
    out.push(b'Z');
}

/// `2026-11-30T20:21:11` for seconds since the epoch.
fn to_the_second(secs: u64) -> [u8; 19] {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let parts = [
        (year.clamp(0, 9999) as u64, 4, b'-'),
        (month as u64, 2, b'-'),
        (day as u64, 2, b'T'),
        (rest / 3600, 2, b':'),
        (rest / 60 % 60, 2, b':'),
        (rest % 60, 2, b'.'),
    ];
    let mut out = Vec::with_capacity(20);
    for (value, width, then) in parts {
        push_digits(&mut out, value, width);
        out.push(then);
    }
    let mut text = [0; 19];
    text.copy_from_slice(&out[..19]);
    text
}

/// [`push_rfc3339`] into a new string.
pub fn rfc3339(at: SystemTime, precision: Precision) -> String {
    let mut out = Vec::with_capacity(27);
    push_rfc3339(&mut out, at, precision);
    // Only ASCII digits and separators were pushed.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record() -> RequestRecord {
        RequestRecord {
            timestamp: crate::record::Timestamp(
                UNIX_EPOCH + Duration::from_millis(1_796_070_071_042),
            ),
            request_id: crate::record::RequestId(http::HeaderValue::from_static("req \"1\"")),
            method: http::Method::POST,
            path: "/v1/chat/completions".to_owned(),
            endpoint: "chat",
            key: Some("team-a".to_owned()),
            model: Some("m".to_owned()),
            upstream: Some("up".into()),
            attempts: 1,
            status: 200,
            latency_ms: 1.5,
            ttfb_ms: Some(0.25),
            input_tokens: Some(3),
            output_tokens: Some(7),
            bytes_out: 120,
            stream: true,
            ..RequestRecord::default()
        }
    }

    #[test]
    fn text_lines_read_like_tracing_lines_and_quote_what_a_client_chose() {
        let at = UNIX_EPOCH + Duration::from_micros(1_796_070_071_042_137);
        let mut out = Vec::new();
        text(&mut out, &record(), at);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "2026-11-30T20:21:11.042137Z  INFO switchyard::access: access \
             timestamp=2026-11-30T20:21:11.042Z request_id=\"req \\\"1\\\"\" method=POST \
             path=/v1/chat/completions key=\"team-a\" model=\"m\" upstream=\"up\" attempts=1 \
             status=200 latency_ms=1.500 ttfb_ms=0.250 input_tokens=3 output_tokens=7 \
             bytes_out=120 stream=true"
        );
    }

    #[test]
    fn non_ascii_text_is_kept_and_its_controls_and_separators_escaped() {
        let mut out = Vec::new();
        quoted(&mut out, "request_id", Some("café"));
        quoted(&mut out, "model", Some("a\u{85}b\u{2028}c"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            " request_id=\"café\" model=\"a\\u{85}b\\u{2028}c\""
        );
    }

    #[test]
    fn no_value_can_break_the_line_or_forge_a_field() {
        let mut out = Vec::new();
        quoted(&mut out, "key", Some("a\nb\" status=1 \\"));
        millis(&mut out, "latency_ms", 0.0004);
        millis(&mut out, "ttfb_ms", 12_345.678_9);
        number(&mut out, "bytes_out", u64::MAX);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#" key="a\nb\" status=1 \\" latency_ms=0.000 ttfb_ms=12345.679 bytes_out=18446744073709551615"#
        );
    }

    #[test]
    fn json_lines_nest_the_record_under_fields() {
        let mut out = Vec::new();
        json(&mut out, &record(), SystemTime::now());
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], "switchyard::access");
        let fields = &value["fields"];
        assert_eq!(fields["message"], "access");
        assert_eq!(fields["request_id"], "req \"1\"");
        assert_eq!(fields["key"], "team-a");
        assert_eq!(fields["output_tokens"], 7);
        assert_eq!(fields["ttfb_ms"], 0.25);
        assert!(fields["error_code"].is_null());
        assert!(value["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(
            rfc3339(UNIX_EPOCH, Precision::Millis),
            "1970-01-01T00:00:00.000Z"
        );
        let at = UNIX_EPOCH + Duration::from_millis(1_796_070_071_042);
        assert_eq!(rfc3339(at, Precision::Millis), "2026-11-30T20:21:11.042Z");
        assert_eq!(
            rfc3339(at, Precision::Micros),
            "2026-11-30T20:21:11.042000Z"
        );
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap, Precision::Millis), "2000-02-29T00:00:00.000Z");
    }
}
