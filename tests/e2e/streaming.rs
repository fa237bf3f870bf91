//! SSE streaming: events reach the client as they arrive, a client that goes away
//! takes the upstream request with it, and a stream that breaks or stalls after bytes
//! were sent ends with an OpenAI-shaped error event — never a silent cut.

use crate::support::*;
use std::time::Duration;
use switchyard_dialects::sse::data_payloads;

fn pieces(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i} ")).collect()
}

/// Safety net only: a broken gateway must fail the test, not hang it.
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out waiting for the gateway")
}

#[tokio::test]
async fn first_chunk_arrives_while_upstream_still_holds_the_rest() {
    let up = MockUpstream::with_script(vec![Reply::StreamHold(pieces(3), 1)]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // The upstream has sent only piece 0 and is waiting for release().
    let first = within(next_data(&mut body)).await.unwrap().unwrap();
    let first = data_payloads(&first);
    assert!(first[0].contains("p0 "), "{first:?}");
    up.release();
    let rest = within(read_all(&mut body)).await.unwrap();
    let events = data_payloads(&rest);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(events.iter().any(|e| e.contains("p2 ")));
}

#[tokio::test]
async fn client_disconnect_mid_stream_closes_the_upstream_connection() {
    let up = MockUpstream::with_script(vec![Reply::StreamHold(pieces(3), 1)]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let mut body = resp.into_body();
    within(next_data(&mut body)).await.unwrap().unwrap();
    assert_eq!(up.closed_connections(), 0);
    drop(body); // the client goes away mid-stream
    up.wait_closed(1).await;
}

#[tokio::test]
async fn client_disconnect_before_the_answer_closes_the_upstream_connection() {
    let up = MockUpstream::with_script(vec![Reply::Hang]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let http = gw.http();
    let send = http.send(
        "POST",
        "/v1/chat/completions",
        &[],
        chat("m", "x", false).to_string(),
    );
    // Give up on the request once the upstream has it.
    tokio::select! {
        _ = send => panic!("a hanging upstream cannot answer"),
        () = async { while up.completions().is_empty() { tokio::time::sleep(Duration::from_millis(10)).await } } => {}
    }
    up.wait_closed(1).await;
}

#[tokio::test]
async fn upstream_drop_mid_stream_ends_with_an_error_event() {
    let up = MockUpstream::with_script(vec![Reply::StreamDrop(pieces(4), 2)]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let all = within(read_all(&mut resp.into_body())).await.unwrap();
    let events = data_payloads(&all);
    // p0 and p1 went out whole; the half of p2 never did.
    assert!(
        events[0].contains("p0 ") && events[1].contains("p1 "),
        "{events:?}"
    );
    for e in &events {
        serde_json::from_str::<serde_json::Value>(e)
            .unwrap_or_else(|_| panic!("partial event forwarded: {e}"));
    }
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error", "{last}");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("upstream: a"));
    assert!(!events.iter().any(|e| e == "[DONE]"));
}

#[tokio::test]
async fn stalled_stream_ends_with_an_error_event_after_the_idle_timeout() {
    let up = MockUpstream::with_script(vec![Reply::StreamHold(pieces(3), 1)]).await;
    // p0 must get through before the timer fires, so the timeout is long enough that
    // no scheduling delay can beat it; the test waits it out only once.
    let yaml = format!(
        "upstreams:\n  - {{name: a, base_url: '{}', models: [m], idle_timeout: 1s}}\n",
        up.base_url()
    );
    let gw = TestGateway::start(&yaml).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let all = within(read_all(&mut resp.into_body())).await.unwrap();
    let events = data_payloads(&all);
    assert!(events[0].contains("p0 "));
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_error", "{last}");
    up.wait_closed(1).await;
}

#[tokio::test]
async fn mock_dialect_streams_the_echo_word_by_word() {
    let yaml = std::fs::read_to_string(repo_root().join("gateway.yaml")).unwrap();
    let gw = TestGateway::start(&yaml).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("mock-echo", "one two three", true).to_string(),
        )
        .await;
    let all = within(read_all(&mut resp.into_body())).await.unwrap();
    let events = data_payloads(&all);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "one two three");
}

#[tokio::test]
async fn every_upstream_event_reaches_the_client_in_order() {
    let up = MockUpstream::with_script(vec![Reply::Stream(pieces(20))]).await;
    let gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    assert!(resp.headers().get("content-length").is_none());
    let all = within(read_all(&mut resp.into_body())).await.unwrap();
    let events = data_payloads(&all);
    assert_eq!(events.len(), 22, "20 pieces, the finish chunk and [DONE]");
    for (i, e) in events[..20].iter().enumerate() {
        assert!(e.contains(&format!("p{i} ")), "{e}");
    }
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish_then_exits_cleanly() {
    let up = MockUpstream::with_script(vec![Reply::StreamHold(pieces(3), 1)]).await;
    let mut gw = TestGateway::start(&config_for(&[("a", &up.base_url(), &["m"])], "")).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let mut body = resp.into_body();
    within(next_data(&mut body)).await.unwrap().unwrap();
    gw.terminate();
    // New connections are refused while the open stream drains…
    let addr = gw.base.trim_start_matches("http://").to_owned();
    within(async {
        while tokio::net::TcpStream::connect(&addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // …and the stream still completes.
    up.release();
    // (Failed once in a full CI run on a loaded machine with "error reading a body from
    // connection"; not reproduced since — the gateway's log says what happened.)
    let rest = within(read_all(&mut body))
        .await
        .unwrap_or_else(|e| panic!("{e}; gateway log:\n{}", gw.logs()));
    assert_eq!(data_payloads(&rest).last().unwrap(), "[DONE]");
    assert_eq!(gw.wait_exit().await, Some(0));
}

/// An upstream that answers every request with exactly these bytes, then closes.
async fn raw_upstream(response: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response).await;
                let _ = s.shutdown().await;
            });
        }
    });
    format!("http://{addr}/v1")
}

/// SSE with CRLF line ends, a comment, a keep-alive, `data:` without a space, in a
/// chunked body whose chunks split events.
const CRLF_SSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
10\r\n: keep-alive\r\n\r\n\r\n\
1f\r\ndata:{\"choices\":[{\"index\":0,\"de\r\n\
26\r\nlta\":{\"content\":\"my secret-1 \"}}]}\r\n\r\n\r\n\
2b\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"cont\r\n\
26\r\nent\":\"is safe\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n\r\n\
0\r\n\r\n";

#[tokio::test]
async fn every_legal_sse_framing_is_relayed_whole() {
    let up = raw_upstream(CRLF_SSE).await;
    let gw = TestGateway::start(&config_for(&[("raw", &up, &["m"])], "")).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let all = within(read_all(&mut resp.into_body())).await.unwrap();
    let events = data_payloads(&all);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[0].contains("my secret-1 "));
    assert_eq!(events[2], "[DONE]");
}

#[tokio::test]
async fn stream_filters_read_crlf_framed_events() {
    let up = raw_upstream(CRLF_SSE).await;
    let extra = "plugins:\n  - {name: content_filter, stage: on_chunk, config: {banned_patterns: ['secret-\\d+'], action: redact, stream_window: 4}}\n";
    let gw = TestGateway::start(&config_for(&[("raw", &up, &["m"])], extra)).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let all = within(read_all(&mut resp.into_body())).await.unwrap();
    let text: String = data_payloads(&all)
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "my [REDACTED] is safe");
}

#[tokio::test]
async fn json_bodies_without_a_length_are_read_to_the_close() {
    let up = raw_upstream(
        b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"until close\"}}]}",
    )
    .await;
    let gw = TestGateway::start(&config_for(&[("raw", &up, &["m"])], "")).await;
    let r = gw
        .http()
        .post("/v1/chat/completions", &chat("m", "x", false))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "until close");
}

/// The gateway's answer to a stream request against a raw upstream.
async fn stream_through(response: &'static [u8]) -> Vec<String> {
    let up = raw_upstream(response).await;
    let gw = TestGateway::start(&config_for(&[("raw", &up, &["m"])], "")).await;
    let resp = gw
        .http()
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            chat("m", "x", true).to_string(),
        )
        .await;
    let all = within(read_all(&mut resp.into_body())).await.unwrap();
    data_payloads(&all)
}

#[tokio::test]
async fn a_cleanly_closed_stream_without_its_end_ends_with_an_error_event() {
    // Chunked, properly terminated, but no finish_reason and no [DONE].
    let chunked = stream_through(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
3f\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"half an\"}}]}\n\n\r\n\
0\r\n\r\n",
    )
    .await;
    assert_eq!(chunked.len(), 2, "{chunked:?}");
    assert!(chunked[0].contains("half an"));
    assert!(
        chunked[1].contains("\"upstream_stream_error\""),
        "{chunked:?}"
    );
    // Close-delimited, cut inside the second event: the half event is never sent.
    let close = stream_through(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"whole\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"cont",
    )
    .await;
    assert_eq!(close.len(), 2, "{close:?}");
    assert!(close[0].contains("whole"));
    assert!(!close
        .iter()
        .any(|e| e.contains("\"cont\"") || e.ends_with("\"cont")));
    assert!(close[1].contains("\"upstream_stream_error\""), "{close:?}");
}

#[tokio::test]
async fn a_stream_that_ends_with_a_finish_reason_or_a_bare_done_is_complete() {
    let finished = stream_through(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"all\"},\"finish_reason\":\"stop\"}]}\n\n",
    )
    .await;
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert!(!finished[0].contains("error"));
    let bare_done = stream_through(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"all\"}}]}\n\ndata: [DONE]",
    )
    .await;
    assert_eq!(bare_done.len(), 2, "{bare_done:?}");
    assert_eq!(bare_done[1], "[DONE]");
}
