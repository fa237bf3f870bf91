//! The [`RedisServer`] harness itself, so CI knows it works before the `state:` and
//! `cache:` tests lean on it: a real `redis-server` (Debian's, installed by `.ci/run`)
//! starts, stores and lists keys, plays a slow and a frozen Redis, restarts empty on the
//! same port, and stops; the TLS variant (`rediss://`) answers, and a password is required.

use crate::support::*;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn redis_harness_starts_stores_pauses_restarts_empty_and_stops() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    assert!(
        url.starts_with("redis://127.0.0.1:") && url.ends_with("/0"),
        "{url}"
    );

    assert_eq!(
        redis.cli(&["SET", "switchyard:k", "v"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(
        redis.cli(&["GET", "switchyard:k"]).await.text().as_deref(),
        Some("v")
    );
    assert_eq!(redis.cli(&["GET", "missing"]).await, Resp::Bulk(None));
    assert_eq!(
        redis.cli(&["KEYS", "switchyard:*"]).await.strings(),
        ["switchyard:k"]
    );
    assert!(matches!(
        redis.cli(&["NOSUCHCOMMAND"]).await,
        Resp::Error(_)
    ));

    // A paused Redis holds commands back until the pause ends.
    redis.pause(Duration::from_millis(400)).await;
    let started = Instant::now();
    assert!(!redis.answers(Duration::from_millis(100)).await);
    assert_eq!(redis.cli(&["PING"]).await.text().as_deref(), Some("PONG"));
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A frozen one answers nothing until it is thawed.
    redis.freeze();
    assert!(!redis.answers(Duration::from_millis(200)).await);
    redis.thaw();
    assert!(redis.answers(Duration::from_secs(5)).await);

    // Restart: same port, no data (no persistence).
    redis.restart().await;
    assert_eq!(redis.url(), url);
    assert_eq!(redis.cli(&["GET", "switchyard:k"]).await, Resp::Bulk(None));
    assert_eq!(redis.cli(&["DBSIZE"]).await.int(), Some(0));

    redis.stop();
    assert!(!redis.answers(Duration::from_millis(500)).await);
}

#[tokio::test]
async fn redis_harness_serves_tls() {
    let certs = test_certs();
    let redis = RedisServer::start_tls(&certs).await;
    assert!(redis.url().starts_with("rediss://127.0.0.1:"));
    assert_eq!(
        std::fs::read_to_string(redis.ca_file()).unwrap(),
        certs.ca_pem
    );
    assert_eq!(
        redis.cli(&["SET", "switchyard:t", "1"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(redis.cli(&["INCR", "switchyard:t"]).await.int(), Some(2));
}

#[tokio::test]
async fn redis_harness_requires_the_password_it_was_given() {
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("s3cret-pass".into()),
        ..RedisOptions::default()
    })
    .await;
    // The harness authenticates itself…
    assert_eq!(redis.cli(&["DBSIZE"]).await.int(), Some(0));
    // …a client without the password is refused.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    std::io::Write::write_all(&mut plain, b"*1\r\n$6\r\nDBSIZE\r\n").unwrap();
    let mut buf = [0; 64];
    let n = std::io::Read::read(&mut plain, &mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("-NOAUTH"), "{answer}");
}
