//! A real Prometheus (Debian's `prometheus`, installed by `.ci/run`) scrapes the gateway's
//! metrics listener while real traffic goes through: a chat, a stream, a failover and an
//! upstream 429. The counters and a histogram quantile are then read back through
//! Prometheus' own HTTP API, so the exposition is checked by the consumer it is for.

use crate::support::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// A Prometheus server on a free loopback port, scraping `target` every 250 ms.
struct Prometheus {
    child: Child,
    http: Http,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Prometheus {
    async fn start(target: &str) -> Self {
        let binary = "/usr/bin/prometheus";
        assert!(
            std::path::Path::new(binary).exists(),
            "{binary} is missing: run `bash .ci/run` (it installs Debian's prometheus package)"
        );
        let dir = std::env::temp_dir().join(format!(
            "switchyard-prometheus-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 250ms\n  scrape_timeout: 200ms\nscrape_configs:\n  - job_name: switchyard\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "prometheus did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let prometheus = Self {
            child,
            http: Http::new(format!("http://127.0.0.1:{port}")),
            _dir: TempDir(dir),
        };
        // Ready once it has scraped the gateway at least once.
        prometheus
            .eventually("up{job=\"switchyard\"}", |v| v == 1.0)
            .await;
        prometheus
    }

    /// Runs an instant query; the value of its single sample, if there is one.
    async fn query(&self, q: &str) -> Option<f64> {
        let encoded = percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC);
        let answer = self
            .http
            .get(&format!("/api/v1/query?query={encoded}"))
            .await;
        if answer.status != 200 {
            return None;
        }
        let v: Value = answer.json();
        assert_eq!(v["status"], "success", "{v}");
        let result = v["data"]["result"].as_array()?;
        let [sample] = result.as_slice() else {
            return None;
        };
        sample["value"][1].as_str()?.parse().ok()
    }

    /// Waits (bounded) until the query's value satisfies `ok`; returns it.
    async fn eventually(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(q).await;
            if let Some(v) = last.filter(|v| ok(*v)) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{q}` never held; last value {last:?}");
    }
}

fn status(code: u16) -> Reply {
    Reply::Json(
        code,
        json!({"error": {"message": "no", "type": "server_error", "param": null, "code": null}}),
        vec![("retry-after", "1".to_owned())],
    )
}

#[tokio::test]
async fn a_real_prometheus_scrapes_counters_and_computes_a_quantile() {
    let a = MockUpstream::with_script(vec![status(503), Reply::Chat]).await;
    let b = MockUpstream::start().await;
    let limited = MockUpstream::with_script(vec![status(429)]).await;
    let streamer =
        MockUpstream::with_script(vec![Reply::Stream(vec!["one".into(), "two".into()])]).await;
    let extra = "routes:\n  - {model: m, targets: [{upstream: a, model: m}], fallbacks: [b/m]}\n";
    let gw = TestGateway::start(&config_for(
        &[
            ("a", &a.base_url(), &["m"]),
            ("b", &b.base_url(), &["m"]),
            ("limited", &limited.base_url(), &["busy"]),
            ("streamer", &streamer.base_url(), &["s"]),
        ],
        extra,
    ))
    .await;
    let target = gw
        .metrics
        .clone()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let prometheus = Prometheus::start(&target).await;

    let http = gw.http();
    for _ in 0..3 {
        let answer = http
            .post("/v1/chat/completions", &chat("m", "hi", false))
            .await;
        assert_eq!(answer.status, 200);
    }
    let stream = http
        .post("/v1/chat/completions", &chat("s", "hi", true))
        .await;
    assert_eq!(stream.status, 200);
    // One upstream's 429 reaches the client as that upstream sent it.
    let limited_answer = http
        .post("/v1/chat/completions", &chat("busy", "hi", false))
        .await;
    assert_eq!(limited_answer.status, 429);
    assert_eq!(limited_answer.json()["error"]["message"], "no");
    assert_eq!(limited_answer.headers["retry-after"], "1");

    let ok = prometheus
        .eventually(
            r#"sum(switchyard_requests_total{endpoint="chat",status_class="2xx"})"#,
            |v| v >= 4.0,
        )
        .await;
    assert_eq!(ok, 4.0);
    let failovers = prometheus
        .eventually(
            r#"switchyard_upstream_failovers_total{upstream="a"}"#,
            |v| v >= 1.0,
        )
        .await;
    assert_eq!(failovers, 1.0);
    prometheus
        .eventually(
            r#"switchyard_upstream_attempts_total{upstream="a",outcome="status_5xx"}"#,
            |v| v == 1.0,
        )
        .await;
    prometheus
        .eventually(
            r#"switchyard_upstream_attempts_total{upstream="limited",outcome="status_429"}"#,
            |v| v == 1.0,
        )
        .await;
    prometheus
        .eventually(
            r#"switchyard_requests_total{endpoint="chat",model="busy",status_class="4xx"}"#,
            |v| v == 1.0,
        )
        .await;
    prometheus
        .eventually(
            r#"switchyard_stream_time_to_first_byte_seconds_count{model="s"}"#,
            |v| v == 1.0,
        )
        .await;
    // A quantile Prometheus computes from the histogram's buckets: the median request
    // took more than nothing and far less than a minute.
    let p50 = prometheus
        .eventually(
            r#"histogram_quantile(0.5, sum by (le) (switchyard_request_duration_seconds_bucket{endpoint="chat"}))"#,
            |v| v.is_finite(),
        )
        .await;
    assert!(p50 > 0.0 && p50 < 60.0, "p50 = {p50}");
    let rss = prometheus
        .eventually("process_resident_memory_bytes", |v| v > 0.0)
        .await;
    assert!(rss > 1e6, "rss = {rss}");
}

/// Names in `deploy/metrics.txt`, the list the dashboard and alert rules are checked
/// against (tests/e2e/deploy.rs).
fn contract() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("deploy/metrics.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_may_use_is_exported() {
    let fetched = MockUpstream::with_script(vec![Reply::StreamUsage(vec!["a".into()], 3)]).await;
    fetched.set_models(&["fm"]);
    let limited = MockUpstream::with_script(vec![Reply::Json(
        429,
        json!({"error": {"message": "slow", "type": "rate_limit_error", "param": null, "code": null}}),
        vec![("retry-after", "2".to_owned())],
    )])
    .await;
    let broken =
        MockUpstream::with_script(vec![Reply::StreamDrop(vec!["x".into(), "yy".into()], 1)]).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let yaml = format!(
        "upstreams:\n  - {{name: fetched, base_url: '{}'}}\n  - {{name: limited, base_url: '{}', models: [busy]}}\n  - {{name: broken, base_url: '{}', models: [cut]}}\nroutes:\n  - {{model: busy, targets: [{{upstream: limited, model: busy}}], fallbacks: [fm]}}\nkeys:\n  - {{name: team, key: sk-prometheus-key-1}}\nplugins:\n  - name: content_filter\n    config: {{banned_patterns: [forbidden], action: reject}}\nexport:\n  batch_size: 1\n  max_attempts: 1\n  http:\n    - {{url: 'http://127.0.0.1:{dead_port}/_bulk', format: elasticsearch}}\n",
        fetched.base_url(),
        limited.base_url(),
        broken.base_url(),
    );
    let gw = TestGateway::start(&yaml).await;
    let http = gw.http();
    // A client key, so the per-key usage counters have a series.
    let auth = [
        ("content-type", "application/json"),
        ("authorization", "Bearer sk-prometheus-key-1"),
    ];
    let post = |body: serde_json::Value| {
        let http = http.clone();
        async move {
            http.call("POST", "/v1/chat/completions", &auth, body.to_string())
                .await
        }
    };
    assert_eq!(
        http.call("GET", "/v1/models", &auth, bytes::Bytes::new())
            .await
            .status,
        200
    );
    let answer = post(chat("fm", "hi", true)).await;
    assert_eq!(answer.status, 200);
    let answer = post(chat("busy", "hi", true)).await;
    assert_eq!(answer.status, 200, "failed over after the 429");
    let answer = post(chat("cut", "hi", true)).await;
    assert!(answer.text().contains("upstream_stream_error"));
    post(chat("fm", "forbidden", false))
        .await
        .assert_error(400, "content_filter");

    let url = gw.metrics.clone().unwrap();
    let (base, path) = url.split_at(url.rfind("/metrics").unwrap());
    let expected = contract();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exposition = Http::new(base.to_owned()).get(path).await.text();
        let mut parse = tokio::process::Command::new(python())
            .arg(repo_root().join("tests/python/metric_names.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the Prometheus parser");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = parse.stdin.take().unwrap();
            stdin.write_all(exposition.as_bytes()).await.unwrap();
        }
        let out = parse.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "prometheus_client could not parse the exposition: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        let missing: Vec<&String> = expected.iter().filter(|n| !names.contains(n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "in deploy/metrics.txt but not exported: {missing:?}\n{exposition}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
