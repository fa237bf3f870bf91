use super::*;

fn failed(outcomes: Vec<AttemptError>) -> GatewayError {
    Failures(outcomes.into_iter().map(|e| (Arc::from("up"), e)).collect()).into_error()
}

#[test]
fn all_rate_limited_becomes_429_with_smallest_retry_after() {
    let e = failed(vec![
        AttemptError::RateLimited(Some(Duration::from_secs(9)), false),
        AttemptError::RateLimited(Some(Duration::from_secs(3)), true),
    ]);
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(
        e,
        GatewayError::RateLimited { retry_after: Some(d), retry_after_ms: true, .. } if d == Duration::from_secs(3)
    ));
}

#[test]
fn mixed_failures_become_502_and_all_timeouts_504() {
    let mixed = failed(vec![
        AttemptError::FirstByteTimeout(Duration::from_secs(1)),
        AttemptError::RateLimited(None, false),
    ]);
    assert_eq!(mixed.status(), StatusCode::BAD_GATEWAY);
    let slow = failed(vec![
        AttemptError::FirstByteTimeout(Duration::from_secs(1)),
        AttemptError::Connect(H1Error::ConnectTimeout(Duration::from_secs(1))),
    ]);
    assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(failed(vec![]).status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn connect_failures_are_told_apart_from_broken_exchanges() {
    let refused = AttemptError::from_h1(H1Error::Connect(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused,
    )));
    assert_eq!(refused.outcome(), "connect_error");
    let broken = AttemptError::from_h1(H1Error::protocol("connection closed before a response"));
    assert_eq!(broken.outcome(), "exchange_error");
    assert_eq!(
        AttemptError::ServerError(StatusCode::BAD_GATEWAY, None).outcome(),
        "status_5xx"
    );
}
