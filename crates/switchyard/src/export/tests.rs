use super::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use switchyard_config::ExportFile;

fn temp_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchyard-exporter-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _fresh = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("requests.jsonl")
}

fn to_file(path: &Path, queue: usize, batch_size: usize, flush_interval: Duration) -> Export {
    Export {
        queue,
        batch_size,
        flush_interval,
        max_attempts: 3,
        backoff: Duration::from_millis(10),
        file: Some(ExportFile {
            path: path.to_owned(),
            max_bytes: 1 << 30,
            keep: 1,
        }),
        http: Vec::new(),
    }
}

fn record(id: usize) -> RequestRecord {
    RequestRecord {
        request_id: crate::record::RequestId(
            ::http::HeaderValue::from_str(&format!("req-{id}")).unwrap(),
        ),
        endpoint: "chat",
        status: 200,
        ..RequestRecord::default()
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let found = lines(path);
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} lines in {}", path.display());
}

#[test]
fn a_full_queue_drops_and_counts_without_waiting() {
    let path = temp_path();
    let (exporter, _workers) = build(&to_file(&path, 2, 10, Duration::from_secs(1))).unwrap();
    let m = SinkMetrics::new(FILE_SINK);
    let (full, dropped) = (m.queue_full.get(), m.dropped.get());
    for i in 0..5 {
        exporter.send(record(i));
    }
    assert_eq!(m.queue_full.get() - full, 3);
    assert!(m.dropped.get() - dropped >= 3);
}

#[tokio::test]
async fn a_full_batch_is_written_without_waiting_for_the_interval() {
    let path = temp_path();
    let (exporter, workers) = build(&to_file(&path, 100, 2, Duration::from_secs(3600))).unwrap();
    let _running = workers.spawn();
    exporter.send(record(1));
    exporter.send(record(2));
    let found = wait_lines(&path, 2).await;
    assert_eq!(found[0]["request_id"], "req-1");
    assert_eq!(found[1]["request_id"], "req-2");
}

#[tokio::test]
async fn a_partial_batch_is_written_after_the_flush_interval() {
    let path = temp_path();
    let (exporter, workers) = build(&to_file(&path, 100, 500, Duration::from_millis(50))).unwrap();
    let _running = workers.spawn();
    exporter.send(record(1));
    assert_eq!(wait_lines(&path, 1).await.len(), 1);
}

#[tokio::test]
async fn shutdown_writes_what_the_queue_holds() {
    let path = temp_path();
    let (exporter, workers) = build(&to_file(&path, 100, 2, Duration::from_secs(3600))).unwrap();
    let running = workers.spawn();
    for i in 0..5 {
        exporter.send(record(i));
    }
    running.shutdown(Duration::from_secs(5)).await;
    let ids: Vec<_> = lines(&path)
        .iter()
        .map(|l| l["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3", "req-4"]);
}

#[test]
fn an_unopenable_file_is_reported_at_its_path() {
    let path = temp_path()
        .with_file_name("missing-dir")
        .join("requests.jsonl");
    let e = build(&to_file(&path, 1, 1, Duration::from_secs(1))).unwrap_err();
    assert_eq!(e.0[0].path, "export.file.path");
}
