//! `RedisServer`: Debian's `/usr/bin/redis-server` on a free 127.0.0.1 port with a temp
//! directory of its own and no persistence (`--save "" --appendonly no`), plain or TLS, for
//! tests of the shared `state:` and the response `cache:`. It can be stopped, restarted on
//! the same port (empty, like a real Redis without persistence), paused or frozen to play
//! a slow one, and read through [`RedisServer::cli`], a RESP client over a plain socket (no
//! Redis crate in the tests). `bash .ci/run` installs the package; it is never a service.

use super::TestCerts;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

const BINARY: &str = "/usr/bin/redis-server";

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$…` (None: the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*…` (None: the null array).
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// A simple or bulk string as text; None for anything else.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Simple(s) => Some(s.clone()),
            Self::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// An integer reply; None for anything else.
    pub fn int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The strings of an array reply, sorted (e.g. `KEYS switchyard:*`); panics on anything
    /// but an array.
    pub fn strings(&self) -> Vec<String> {
        let Self::Array(items) = self else {
            panic!("not an array reply: {self:?}");
        };
        let mut out: Vec<String> = items
            .iter()
            .flatten()
            .map(|i| i.text().unwrap_or_else(|| format!("{i:?}")))
            .collect();
        out.sort();
        out
    }
}

/// How to start one [`RedisServer`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Serve TLS only (`rediss://`), with this CA's leaf for `localhost` / `127.0.0.1`.
    pub tls: Option<TestCerts>,
    /// `--requirepass`: clients must `AUTH` (the `default` user) with it.
    pub password: Option<String>,
}

/// A `redis-server` child process. Dropping it kills the process and removes its directory.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    options: RedisOptions,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl RedisServer {
    /// A plain-TCP Redis with no password; ready (it answered PING) when this returns.
    pub async fn start() -> Self {
        Self::start_with(RedisOptions::default()).await
    }

    /// A TLS-only Redis (`--port 0 --tls-port N`, clients not asked for certificates)
    /// serving `certs`' leaf; trust [`RedisServer::ca_file`] to reach it.
    pub async fn start_tls(certs: &TestCerts) -> Self {
        Self::start_with(RedisOptions {
            tls: Some(certs.clone()),
            ..RedisOptions::default()
        })
        .await
    }

    /// A Redis started as `options` say.
    pub async fn start_with(options: RedisOptions) -> Self {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: run `bash .ci/run` from the repository root (as root it \
             installs Debian's `redis-server` package), or `apt-get install redis-server`"
        );
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(certs) = &options.tls {
            std::fs::write(dir.join("ca.pem"), &certs.ca_pem).unwrap();
            std::fs::write(dir.join("cert.pem"), &certs.chain_pem).unwrap();
            std::fs::write(dir.join("key.pem"), &certs.key_pem).unwrap();
        }
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            options,
        };
        // The free port is only free until someone else takes it: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn_and_wait().await {
                return server;
            }
        }
        panic!("redis-server did not start; its log:\n{}", server.log());
    }

    /// `redis://127.0.0.1:PORT/0`, or `rediss://…` for a TLS server (no credentials in it).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on (plain or TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate file a TLS server's leaf is signed by (for `state.ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.options.tls.is_some(), "not a TLS server");
        self.dir.join("ca.pem")
    }

    /// Kills the server and waits for it to exit; the port is closed until
    /// [`RedisServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server (if running) and starts a fresh, empty one on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        // The port was just ours; give a lingering socket a moment if it is not yet free.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn_and_wait().await {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}; its log:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Makes Redis answer nothing for `dur` (`CLIENT PAUSE <ms> ALL`): commands sent
    /// meanwhile wait, connections still open. Returns at once; Redis resumes by itself.
    pub async fn pause(&self, dur: Duration) {
        let ms = dur.as_millis().to_string();
        let reply = self.cli(&["CLIENT", "PAUSE", &ms, "ALL"]).await;
        assert_eq!(reply, Resp::Simple("OK".into()), "CLIENT PAUSE");
    }

    /// Stops the process with SIGSTOP: connections hang (even new ones finish only the TCP
    /// handshake) until [`RedisServer::thaw`].
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Resumes a [`RedisServer::freeze`]d process (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Runs one command and returns its reply, e.g. `cli(&["KEYS", "switchyard:*"])` or
    /// `cli(&["FLUSHALL"])`. An error reply is returned as [`Resp::Error`]; panics when
    /// Redis cannot be reached in 10 s.
    pub async fn cli(&self, args: &[&str]) -> Resp {
        tokio::time::timeout(Duration::from_secs(10), self.command(args))
            .await
            .unwrap_or_else(|_| panic!("redis {args:?}: no answer in 10 s"))
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Whether Redis answers PING within `within`.
    pub async fn answers(&self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.command(&["PING"])).await,
            Ok(Ok(Resp::Simple(pong))) if pong == "PONG"
        )
    }

    /// The server's log so far (its stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("redis-server is not running")
            .id();
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} {pid}");
    }

    /// Spawns on `self.port`; true once it answers PING, false if it exited (port taken).
    async fn spawn_and_wait(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .unwrap();
        let mut cmd = Command::new(BINARY);
        cmd.args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--logfile", "", "--daemonize", "no"]);
        let port = self.port.to_string();
        match &self.options.tls {
            None => {
                cmd.args(["--port", &port]);
            }
            Some(_) => {
                cmd.args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(self.dir.join("cert.pem"))
                    .arg("--tls-key-file")
                    .arg(self.dir.join("key.pem"))
                    .arg("--tls-ca-cert-file")
                    .arg(self.dir.join("ca.pem"))
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        if let Some(password) = &self.options.password {
            cmd.args(["--requirepass", password]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {BINARY}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.answers(Duration::from_millis(500)).await {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if Instant::now() > deadline {
                self.stop();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One command on a fresh connection (AUTH first when there is a password).
    async fn command(&self, args: &[&str]) -> std::io::Result<Resp> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        match &self.options.tls {
            None => self.exchange(tcp, args).await,
            Some(certs) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in
                    rustls::pki_types::CertificateDer::pem_slice_iter(certs.ca_pem.as_bytes())
                {
                    roots.add(cert.unwrap()).unwrap();
                }
                let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                    .connect(name, tcp)
                    .await?;
                self.exchange(tls, args).await
            }
        }
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        args: &[&str],
    ) -> std::io::Result<Resp> {
        let mut stream = BufReader::new(stream);
        if let Some(password) = &self.options.password {
            stream.write_all(&encode(&["AUTH", password])).await?;
            stream.flush().await?;
            let auth = read_reply(&mut stream).await?;
            if auth != Resp::Simple("OK".into()) {
                return Ok(auth);
            }
        }
        stream.write_all(&encode(args)).await?;
        stream.flush().await?;
        read_reply(&mut stream).await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bad(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Reads one RESP2 reply.
async fn read_reply<S: AsyncRead + Unpin>(stream: &mut BufReader<S>) -> std::io::Result<Resp> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || {
        rest.parse::<i64>()
            .map_err(|e| bad(format!("bad RESP line {line:?}: {e}")))
    };
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Int(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Resp::Bulk(None),
            Ok(len) => {
                let mut buf = vec![0; len + 2];
                stream.read_exact(&mut buf).await?;
                buf.truncate(len);
                Resp::Bulk(Some(buf))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Resp::Array(None),
            Ok(len) => {
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(Box::pin(read_reply(stream)).await?);
                }
                Resp::Array(Some(items))
            }
        },
        _ => return Err(bad(format!("bad RESP line {line:?}"))),
    })
}
