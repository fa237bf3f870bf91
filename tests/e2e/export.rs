//! Request-record export, through the binary: the exact wire formats a local collector
//! receives (Elasticsearch `_bulk`, ClickHouse `JSONEachRow`), a collector that is down
//! and comes back (retried, then delivered) or stays down (dropped after the attempts,
//! counted), a collector that refuses a batch (dropped at once, counted), a collector that hangs (requests still answer at once; overflow is dropped
//! and counted), the JSONL file (one line per request with the access-log fields,
//! rotated at `max_bytes`), and the final flush at shutdown.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

const UPSTREAM: &str = "upstreams:\n  - {name: mock, dialect: mock, models: [mock-echo]}\n";

/// Every field of an access-log line, which every exported record carries.
const FIELDS: [&str; 19] = [
    "timestamp",
    "request_id",
    "method",
    "path",
    "endpoint",
    "key",
    "model",
    "served_model",
    "upstream",
    "attempts",
    "status",
    "error_code",
    "latency_ms",
    "ttfb_ms",
    "input_tokens",
    "output_tokens",
    "bytes_out",
    "stream",
    "stream_error",
];

async fn scrape(gw: &TestGateway) -> String {
    let url = gw.metrics.clone().expect("metrics are on");
    let (base, path) = url.split_at(url.rfind("/metrics").unwrap());
    Http::new(base.to_owned()).get(path).await.text()
}

/// The value of one metric series (0 when absent).
fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Scrapes until `series` reaches at least `at_least`; the last scrape.
async fn wait_metric(gw: &TestGateway, series: &str, at_least: u64) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        text = scrape(gw).await;
        if value(&text, series) >= at_least {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{series} never reached {at_least}:\n{text}");
}

/// Sends `n` chat requests; their `x-request-id`s.
async fn chats(gw: &TestGateway, n: usize) -> Vec<String> {
    let http = gw.http();
    let mut ids = Vec::new();
    for _ in 0..n {
        let answer = http
            .post("/v1/chat/completions", &chat("mock-echo", "hi", false))
            .await;
        assert_eq!(answer.status, 200);
        ids.push(answer.headers["x-request-id"].to_str().unwrap().to_owned());
    }
    ids
}

fn assert_is_record(line: &str) -> Value {
    let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let keys: BTreeSet<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, FIELDS.into_iter().collect(), "{line}");
    assert!(line.starts_with("{\"timestamp\":\""), "{line}");
    record
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn an_elasticsearch_collector_gets_the_exact_bulk_format() {
    let es = Collector::start(Collect::Ok).await;
    let yaml = format!(
        "{UPSTREAM}export:\n  batch_size: 3\n  flush_interval: 5s\n  http:\n    - {{url: '{}', format: elasticsearch, index: switchyard-requests, headers: {{authorization: 'Bearer ${{ES_TOKEN}}'}}}}\n",
        es.url("/_bulk")
    );
    let gw = TestGateway::start_with_env(&yaml, &[("ES_TOKEN", "es-token-7")]).await;
    let ids = chats(&gw, 3).await;
    let batches = es.wait_lines(6).await;
    assert_eq!(batches.len(), 1, "three records, batch_size 3: one POST");
    let batch = &batches[0];
    assert_eq!(batch.method, "POST");
    assert_eq!(batch.uri, "/_bulk");
    assert_eq!(batch.headers["content-type"], "application/x-ndjson");
    assert_eq!(batch.headers["authorization"], "Bearer es-token-7");
    assert!(
        batch.body.ends_with('\n'),
        "a _bulk body ends with a newline"
    );
    let lines: Vec<&str> = batch.body.split_terminator('\n').collect();
    assert_eq!(lines.len(), 6);
    for (i, pair) in lines.chunks(2).enumerate() {
        assert_eq!(pair[0], r#"{"index":{"_index":"switchyard-requests"}}"#);
        let record = assert_is_record(pair[1]);
        assert_eq!(record["request_id"], ids[i]);
        assert_eq!(record["method"], "POST");
        assert_eq!(record["path"], "/v1/chat/completions");
        assert_eq!(record["endpoint"], "chat");
        assert_eq!(record["model"], "mock-echo");
        assert_eq!(record["upstream"], "mock");
        assert_eq!(record["status"], 200);
        assert_eq!(record["stream"], false);
    }
    let text = wait_metric(
        &gw,
        r#"switchyard_export_records_total{outcome="sent",sink="elasticsearch"}"#,
        3,
    )
    .await;
    assert_eq!(
        value(
            &text,
            r#"switchyard_export_batches_total{outcome="sent",sink="elasticsearch"}"#
        ),
        1
    );
    assert!(
        !gw.settled_logs().await.contains("es-token-7"),
        "header secrets are never logged"
    );
}

#[tokio::test]
async fn a_clickhouse_collector_gets_one_json_object_per_line() {
    let ch = Collector::start(Collect::Ok).await;
    let query = "/?query=INSERT%20INTO%20requests%20FORMAT%20JSONEachRow";
    let yaml = format!(
        "{UPSTREAM}export:\n  batch_size: 2\n  flush_interval: 5s\n  http:\n    - {{url: '{}', format: clickhouse}}\n",
        ch.url(query)
    );
    let gw = TestGateway::start(&yaml).await;
    let ids = chats(&gw, 4).await;
    let batches = ch.wait_lines(4).await;
    assert_eq!(batches.len(), 2, "four records, batch_size 2: two POSTs");
    let mut seen = Vec::new();
    for batch in &batches {
        assert_eq!(batch.method, "POST");
        assert_eq!(batch.uri, query, "the query goes as written");
        assert_eq!(batch.headers["content-type"], "application/x-ndjson");
        assert!(batch.body.ends_with("}\n"));
        for line in batch.body.split_terminator('\n') {
            seen.push(
                assert_is_record(line)["request_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn records_from_an_outage_are_retried_and_delivered_when_the_collector_comes_back() {
    let addr = closed_port();
    let yaml = format!(
        "{UPSTREAM}export:\n  batch_size: 10\n  flush_interval: 50ms\n  max_attempts: 20\n  backoff: 100ms\n  http:\n    - {{url: 'http://{addr}/', format: clickhouse, timeout: 2s}}\n"
    );
    let gw = TestGateway::start(&yaml).await;
    let ids = chats(&gw, 3).await;
    wait_metric(
        &gw,
        r#"switchyard_export_batches_total{outcome="retried",sink="clickhouse"}"#,
        2,
    )
    .await;
    let ch = Collector::start_at(addr, Collect::Ok).await;
    let batches = ch.wait_lines(3).await;
    let delivered: Vec<String> = batches
        .iter()
        .flat_map(|b| b.body.lines().map(str::to_owned).collect::<Vec<_>>())
        .map(|l| {
            assert_is_record(&l)["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(delivered, ids, "every record of the outage, once, in order");
    let text = wait_metric(
        &gw,
        r#"switchyard_export_records_total{outcome="sent",sink="clickhouse"}"#,
        3,
    )
    .await;
    assert_eq!(
        value(
            &text,
            r#"switchyard_export_dropped_total{sink="clickhouse"}"#
        ),
        0
    );
}

#[tokio::test]
async fn a_collector_that_stays_down_gets_its_batches_dropped_and_counted() {
    let addr = closed_port();
    let yaml = format!(
        "{UPSTREAM}export:\n  batch_size: 10\n  flush_interval: 50ms\n  max_attempts: 2\n  backoff: 50ms\n  http:\n    - {{name: down, url: 'http://{addr}/_bulk', format: elasticsearch}}\n"
    );
    let gw = TestGateway::start(&yaml).await;
    chats(&gw, 3).await;
    let text = wait_metric(&gw, r#"switchyard_export_dropped_total{sink="down"}"#, 3).await;
    assert_eq!(
        value(&text, r#"switchyard_export_dropped_total{sink="down"}"#),
        3
    );
    assert_eq!(
        value(
            &text,
            r#"switchyard_export_records_total{outcome="failed",sink="down"}"#
        ),
        3
    );
    let failed = value(
        &text,
        r#"switchyard_export_batches_total{outcome="failed",sink="down"}"#,
    );
    let retried = value(
        &text,
        r#"switchyard_export_batches_total{outcome="retried",sink="down"}"#,
    );
    assert!(
        failed >= 1 && retried == failed,
        "one retry per failed batch: {text}"
    );
    assert_eq!(
        value(
            &text,
            r#"switchyard_export_records_total{outcome="sent",sink="down"}"#
        ),
        0
    );
}

#[tokio::test]
async fn a_batch_the_collector_refuses_with_a_4xx_is_dropped_without_retrying() {
    let refusing = Collector::start(Collect::Status(400)).await;
    let yaml = format!(
        "{UPSTREAM}export:\n  batch_size: 10\n  flush_interval: 50ms\n  max_attempts: 5\n  backoff: 50ms\n  http:\n    - {{name: refusing, url: '{}', format: clickhouse}}\n",
        refusing.url("/")
    );
    let gw = TestGateway::start(&yaml).await;
    chats(&gw, 2).await;
    let text = wait_metric(
        &gw,
        r#"switchyard_export_dropped_total{sink="refusing"}"#,
        2,
    )
    .await;
    let failed = value(
        &text,
        r#"switchyard_export_batches_total{outcome="failed",sink="refusing"}"#,
    );
    assert!(failed >= 1);
    assert_eq!(
        value(
            &text,
            r#"switchyard_export_batches_total{outcome="retried",sink="refusing"}"#
        ),
        0
    );
    assert_eq!(
        refusing.batches().len() as u64,
        failed,
        "one POST per batch"
    );
}

#[tokio::test]
async fn a_hanging_collector_never_slows_requests_and_its_overflow_is_counted() {
    let hang = Collector::start(Collect::Hang).await;
    let yaml = format!(
        "{UPSTREAM}export:\n  queue: 4\n  batch_size: 2\n  flush_interval: 10ms\n  http:\n    - {{name: hang, url: '{}', format: clickhouse, timeout: 60s}}\n",
        hang.url("/")
    );
    let gw = TestGateway::start(&yaml).await;
    let http = gw.http();
    let started = Instant::now();
    for _ in 0..40 {
        let one = Instant::now();
        let answer = http
            .post("/v1/chat/completions", &chat("mock-echo", "hi", false))
            .await;
        assert_eq!(answer.status, 200);
        assert!(
            one.elapsed() < Duration::from_secs(1),
            "a request waited on export"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // The sink holds one batch (≤ 2) in the hanging POST and 4 in its queue.
    let text = wait_metric(
        &gw,
        r#"switchyard_export_records_total{outcome="queue_full",sink="hang"}"#,
        34,
    )
    .await;
    assert!(value(&text, r#"switchyard_export_dropped_total{sink="hang"}"#) >= 34);
    assert_eq!(hang.batches().len(), 1, "the one POST still hangs");
}

#[tokio::test]
async fn the_jsonl_file_gets_one_line_per_request_with_the_access_log_fields() {
    let path = temp_file("requests.jsonl", "");
    let yaml = format!(
        "keys:\n  - {{name: team-a, key: sk-export-secret-3}}\n{UPSTREAM}export:\n  flush_interval: 50ms\n  file: {{path: '{}'}}\n",
        path.display()
    );
    let gw = TestGateway::start(&yaml).await;
    let http = gw.http();
    let mut ids = Vec::new();
    for (model, stream) in [
        ("mock-echo", false),
        ("mock-echo", true),
        ("missing", false),
    ] {
        let answer = http
            .call(
                "POST",
                "/v1/chat/completions",
                &[
                    ("authorization", "Bearer sk-export-secret-3"),
                    ("content-type", "application/json"),
                ],
                chat(model, "hello", stream).to_string(),
            )
            .await;
        ids.push(answer.headers["x-request-id"].to_str().unwrap().to_owned());
    }
    let lines = wait_file_lines(&path, 3).await;
    assert_eq!(lines.len(), 3);
    let records: Vec<Value> = lines.iter().map(|l| assert_is_record(l)).collect();
    for (record, id) in records.iter().zip(&ids) {
        assert_eq!(record["request_id"], *id);
        assert_eq!(record["key"], "team-a");
    }
    assert_eq!(records[0]["status"], 200);
    assert_eq!(records[1]["stream"], true);
    assert!(records[1]["ttfb_ms"].is_number());
    assert_eq!(records[2]["status"], 404);
    assert_eq!(records[2]["error_code"], "model_not_found");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("sk-export-secret-3"), "never a key's value");
    assert!(!text.contains("hello"), "never message content");
}

#[tokio::test]
async fn the_jsonl_file_rotates_at_max_bytes_keeping_the_newest_files() {
    let path = temp_file("requests.jsonl", "");
    let yaml = format!(
        "{UPSTREAM}export:\n  batch_size: 1\n  flush_interval: 10ms\n  file: {{path: '{}', max_bytes: 1000, keep: 2}}\n",
        path.display()
    );
    let gw = TestGateway::start(&yaml).await;
    let ids = chats(&gw, 10).await;
    wait_metric(
        &gw,
        r#"switchyard_export_records_total{outcome="sent",sink="file"}"#,
        10,
    )
    .await;
    let numbered = |n: u32| path.with_file_name(format!("requests.jsonl.{n}"));
    assert!(!numbered(3).exists(), "keep: 2");
    let mut kept = Vec::new();
    for file in [numbered(2), numbered(1), path.clone()] {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.len() <= 1000,
            "{} has {} bytes",
            file.display(),
            text.len()
        );
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            kept.push(
                assert_is_record(line)["request_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert!(kept.len() < ids.len(), "older files were removed");
    assert_eq!(
        kept,
        ids[ids.len() - kept.len()..],
        "the newest records, in order"
    );
}

#[tokio::test]
async fn records_still_queued_at_shutdown_are_written_before_exit() {
    let path = temp_file("requests.jsonl", "");
    let yaml = format!(
        "{UPSTREAM}export:\n  flush_interval: 1h\n  file: {{path: '{}'}}\n",
        path.display()
    );
    let mut gw = TestGateway::start(&yaml).await;
    let ids = chats(&gw, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "",
        "not flushed yet"
    );
    gw.terminate();
    assert_eq!(gw.wait_exit().await, Some(0));
    let text = std::fs::read_to_string(&path).unwrap();
    let written: Vec<String> = text
        .lines()
        .map(|l| {
            assert_is_record(l)["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(written, ids);
}

/// Waits (up to 10 s) for `n` whole lines in the file.
async fn wait_file_lines(path: &Path, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let whole: Vec<String> = text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| l.trim_end().to_owned())
            .collect();
        if whole.len() >= n {
            return whole;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never got {n} lines", path.display());
}
