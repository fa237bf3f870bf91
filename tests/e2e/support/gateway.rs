//! `TestGateway`: the real `switchyard` binary with a config written for the test,
//! listening on a port the OS picked. Its stderr is kept so tests can check the logs
//! (no secrets). Killed on drop.

use super::Http;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Path of the binary under test.
///
/// `SWITCHYARD_E2E_BIN` points the tests at another build (to show a test fails on
/// the binary from before a fix).
pub fn binary() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("SWITCHYARD_E2E_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchyard").to_owned())
    })
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes `text` to a fresh temp file and returns its path.
pub fn temp_file(name: &str, text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchyard-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A running gateway process.
#[derive(Debug)]
pub struct TestGateway {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT/metrics`, when metrics are on.
    pub metrics: Option<String>,
    /// `http://127.0.0.1:PORT` of the admin API, when the config turns it on.
    pub admin: Option<String>,
    /// The config file it was started with (rewrite it, then reload).
    pub config: PathBuf,
    logs: Arc<Mutex<String>>,
}

impl TestGateway {
    /// Starts the binary with this config (its `server.listen` is overridden).
    pub async fn start(yaml: &str) -> Self {
        Self::start_with_env(yaml, &[]).await
    }

    /// Starts with extra environment variables.
    pub async fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with(yaml, env, None).await
    }

    /// Starts with the open-file limit (`ulimit -n`) set to `nofile`.
    pub async fn start_with_nofile(yaml: &str, nofile: u32) -> Self {
        Self::start_with(yaml, &[], Some(nofile)).await
    }

    /// Starts with no config file (zero-file mode): in an empty directory, no `-c`, no
    /// `SWITCHYARD_CONFIG`, the listen address from `SWITCHYARD_LISTEN=127.0.0.1:0`.
    pub async fn start_zero_file(env: &[(&str, &str)]) -> Self {
        let dir = temp_file("empty", "");
        let mut cmd = Command::new(binary());
        cmd.current_dir(dir.parent().unwrap())
            .arg("serve")
            .env_remove("SWITCHYARD_CONFIG")
            .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
            .env("SWITCHYARD_METRICS_LISTEN", "127.0.0.1:0");
        // No file is read; `config` names the empty directory's placeholder.
        Self::spawn(cmd, env, dir).await
    }

    /// Starts a new process on an existing config file (a restart).
    pub async fn start_on_file(config: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "-c"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"]);
        Self::spawn(cmd, env, config.to_path_buf()).await
    }

    async fn start_with(yaml: &str, env: &[(&str, &str)], nofile: Option<u32>) -> Self {
        let config = temp_file("gateway.yaml", yaml);
        let mut cmd = match nofile {
            None => Command::new(binary()),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args([
                    "-c",
                    &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                    binary(),
                ]);
                sh
            }
        };
        cmd.args(["serve", "-c"])
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"]);
        Self::spawn(cmd, env, config).await
    }

    async fn spawn(mut cmd: Command, env: &[(&str, &str)], config: PathBuf) -> Self {
        cmd.env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start switchyard");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Kept before the start is signalled, so a test sees the line it woke on.
                {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                if line.contains("switchyard listening") {
                    if let Some(tx) = tx.take() {
                        let field = |name: &str| {
                            line.split(name)
                                .nth(1)
                                .and_then(|s| s.split_whitespace().next())
                                .map(str::to_owned)
                        };
                        let _ = tx.send(
                            field(" addr=")
                                .zip(field(" metrics="))
                                .zip(field(" admin=")),
                        );
                    }
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
            .await
            .unwrap();
        let ((addr, metrics), admin) = match addr {
            Ok(Some(a)) => a,
            other => panic!(
                "gateway did not start ({other:?}); logs:\n{}",
                logs.lock().unwrap()
            ),
        };
        Self {
            child,
            base: format!("http://{addr}"),
            metrics: (metrics != "off").then(|| format!("http://{metrics}/metrics")),
            admin: (admin != "off").then(|| format!("http://{admin}")),
            config,
            logs,
        }
    }

    /// One scrape of its `/metrics` (metrics must be on).
    pub async fn scrape(&self) -> String {
        let url = self.metrics.clone().expect("metrics are on");
        let (base, path) = url.split_at(url.rfind("/metrics").unwrap());
        let answer = Http::new(base.to_owned()).get(path).await;
        assert_eq!(answer.status, 200);
        answer.text()
    }

    /// Scrapes until every line is present (bodies are counted when they end, a moment
    /// after the client has read them), or fails after 10 s with the last scrape.
    pub async fn scrape_until(&self, lines: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut text = String::new();
        while tokio::time::Instant::now() < deadline {
            text = self.scrape().await;
            if lines.iter().all(|l| text.lines().any(|t| t == *l)) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let missing: Vec<_> = lines
            .iter()
            .filter(|l| !text.lines().any(|t| t == **l))
            .collect();
        panic!("missing {missing:?} in:\n{text}");
    }

    /// A client for this gateway.
    pub fn http(&self) -> Http {
        Http::new(self.base.clone())
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The logs once they contain `needle` (waits up to 10 s; panics with the logs).
    pub async fn logs_with(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {needle:?} in the logs:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The logs once nothing new arrived for 300 ms (the log writer writes in batches,
    /// every 10 ms at most), for checks that something is *not* logged.
    pub async fn settled_logs(&self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut last = self.logs();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.logs();
            if now == last || tokio::time::Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// A client for its admin API (the config must have `admin:`).
    pub fn admin_http(&self) -> Http {
        Http::new(self.admin.clone().expect("the admin API is on"))
    }

    /// Replaces its config file (atomically, by rename, as editors and config
    /// management tools do).
    pub fn rewrite_config(&self, yaml: &str) {
        let tmp = self.config.with_extension("yaml.new");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    /// Sends SIGHUP: reload the config file.
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM, as a process supervisor would.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (up to 10 s) for the process to exit; its exit code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config with one `openai` upstream per `(name, base_url)` and static models.
pub fn config_for(upstreams: &[(&str, &str, &[&str])], extra: &str) -> String {
    let mut y = String::from("upstreams:\n");
    for (name, url, models) in upstreams {
        y.push_str(&format!(
            "  - {{name: {name}, base_url: '{url}', models: [{}]}}\n",
            models.join(", ")
        ));
    }
    y.push_str(extra);
    y
}

/// The value of the series `name` (labels included, as exposed) in a scrape; 0 when
/// absent.
pub fn series(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}
