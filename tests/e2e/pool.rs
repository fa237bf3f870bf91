//! The upstream connection pool after load: connections kept alive once a burst of
//! streams ends are closed when they have idled `pool_idle_timeout`, with no further
//! request to notice them, and `switchyard_upstream_connections_open` follows.

use crate::support::*;
use std::time::Duration;
use switchyard_dialects::sse::data_payloads;
use tokio::time::Instant;

const STREAMS: usize = 20;
const POOL_IDLE: Duration = Duration::from_secs(2);
/// The reaper's period (1 s) plus room for a loaded machine.
const SLACK: Duration = Duration::from_secs(3);

/// Safety net only: a broken gateway must fail the test, not hang it.
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out waiting for the gateway")
}

#[tokio::test]
async fn idle_upstream_connections_close_after_the_pool_idle_timeout_with_no_more_requests() {
    let pieces = vec!["p0 ".to_owned(), "p1 ".to_owned()];
    let up = MockUpstream::with_script(vec![Reply::StreamHold(pieces, 1)]).await;
    let yaml = format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [m], pool_idle_timeout: 2s}}\n",
        up.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    let http = gw.http();
    // STREAMS streams open at once: each holds its own upstream connection.
    let mut bodies = Vec::new();
    for _ in 0..STREAMS {
        bodies.push(http.send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        ));
    }
    let mut bodies: Vec<_> = within(futures_util::future::join_all(bodies))
        .await
        .into_iter()
        .map(|resp| resp.into_body())
        .collect();
    for body in &mut bodies {
        within(next_data(body)).await.unwrap().unwrap();
    }
    up.release();
    for body in &mut bodies {
        let rest = within(read_all(body)).await.unwrap();
        assert_eq!(data_payloads(&rest).last().unwrap(), "[DONE]");
    }
    let ended = Instant::now();
    // The streams ended cleanly: their connections went back to the pool, still open.
    gw.scrape_until(&[&format!("switchyard_upstream_connections_open {STREAMS}")])
        .await;
    assert_eq!(up.closed_connections(), 0, "pooled, not closed");
    // No request from here on: only the reaper can close them.
    up.wait_closed(STREAMS).await;
    let took = ended.elapsed();
    assert!(
        took >= POOL_IDLE - Duration::from_millis(100) && took <= POOL_IDLE + SLACK,
        "closed {took:?} after the streams ended (pool_idle_timeout {POOL_IDLE:?})"
    );
    assert_eq!(up.closed_connections(), STREAMS);
    gw.scrape_until(&["switchyard_upstream_connections_open 0"])
        .await;
}
