use super::*;

#[test]
fn units_from_milliseconds_to_hours_parse() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
}

#[test]
fn a_decimal_with_a_unit_parses() {
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
}

#[test]
fn compound_durations_add_up() {
    assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
}

#[test]
fn a_bare_integer_is_seconds() {
    assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
}

#[test]
fn a_bare_decimal_is_fractional_seconds() {
    assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
}

#[test]
fn surrounding_whitespace_is_ignored() {
    assert_eq!(parse_duration(" 5s "), Ok(Duration::from_secs(5)));
}

#[test]
fn a_plugin_window_written_as_text_parses() {
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
}

#[test]
fn zero_is_rejected() {
    let err = parse_duration("0s").unwrap_err();
    assert!(err.contains("greater than 0"), "{err}");
    assert!(parse_duration("0").is_err());
}

#[test]
fn more_than_thirty_days_is_rejected() {
    assert_eq!(parse_duration("30d"), Ok(MAX_DURATION));
    let err = parse_duration("9999999h").unwrap_err();
    assert!(err.contains("30 days"), "{err}");
}

#[test]
fn unknown_units_and_non_numbers_are_rejected_naming_the_text() {
    let err = parse_duration("5 parsecs").unwrap_err();
    assert!(err.contains("`5 parsecs`"), "{err}");
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("1e30s").is_err());
    assert!(parse_duration("1e30").is_err());
    assert!(parse_duration("inf").is_err());
}

#[test]
fn negative_durations_are_rejected() {
    assert!(parse_duration("-1").is_err());
    assert!(parse_duration("-5s").is_err());
}
