//! The command line: `serve`, `check`, `models`, `hash-key`, `import`. Parses arguments,
//! loads the config (a file, or with none the environment: zero-file mode), and maps
//! every failure to a one-line message and an exit code (64 for a bad config or usage,
//! 1 for runtime failures). Printing to stdout is this module's job.

use crate::log_writer::LogWriter;
use crate::reload::Overrides;
use crate::server::Drained;
use crate::{build_snapshot, Gateway};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use switchyard_config::{Config, LogFormat};

/// `EX_USAGE`: bad arguments or config.
const EXIT_CONFIG: u8 = 64;

/// Shutdown cut requests still running when `server.drain_timeout` ended.
const EXIT_DRAIN_CUT: u8 = 3;

/// A second SIGTERM / SIGINT during the drain: exit at once.
const EXIT_FORCED: u8 = 130;

/// Switchyard — an OpenAI-compatible gateway for many LLM upstreams.
#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about,
    after_help = "Examples:\n  \
      switchyard serve                         # gateway.yaml in the current directory\n  \
      switchyard serve -c /etc/switchyard.yaml --listen 127.0.0.1:9000\n  \
      SWITCHYARD_CONFIG=prod.yaml switchyard check\n  \
      OPENAI_API_BASE_URLS='http://vllm:8000/v1' switchyard serve   # no file: zero-file mode\n  \
      switchyard models --json | jq '.[].id'\n  \
      printf %s \"$KEY\" | switchyard hash-key    # sha256:… for keys[].key\n  \
      switchyard import litellm-config.yaml > gateway.yaml"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file, else $SWITCHYARD_CONFIG (empty = unset), else ./gateway.yaml;
        /// with none of them, Open WebUI's OPENAI_API_BASE_URLS / OPENAI_API_KEYS /
        /// OLLAMA_BASE_URLS (zero-file mode).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Listen address, overriding `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Metrics listen address, overriding `metrics.listen`.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Admin API listen address, overriding `admin.listen` (the API is on only when
        /// the config has an `admin:` section).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
    /// Validate a config: prints every problem with its YAML path; exit 0 if valid.
    Check {
        /// Config file, else $SWITCHYARD_CONFIG (empty = unset), else ./gateway.yaml;
        /// with none of them, Open WebUI's OPENAI_API_BASE_URLS / OPENAI_API_KEYS /
        /// OLLAMA_BASE_URLS (zero-file mode).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Print the aggregated model catalogue (fetches each upstream's list).
    Models {
        /// Config file, else $SWITCHYARD_CONFIG (empty = unset), else ./gateway.yaml;
        /// with none of them, Open WebUI's OPENAI_API_BASE_URLS / OPENAI_API_KEYS /
        /// OLLAMA_BASE_URLS (zero-file mode).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print `sha256:<hex>` of a client key, for `keys[].key`: the key is read from
    /// standard input (one line; the line break is not part of it), or from the argument.
    HashKey {
        /// The key (prefer standard input: arguments end up in shell history).
        key: Option<String>,
    },
    /// Print a LiteLLM config.yaml, a LibreChat librechat.yaml or a Libre WebUI plugin
    /// JSON as native gateway.yaml (stdout; what cannot be honoured goes to stderr).
    Import {
        /// The foreign file (format detected from its contents), or a directory / glob
        /// of Libre WebUI plugin JSON files.
        file: PathBuf,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&Source::choose(config)),
        Command::Import { file } => import(&file),
        Command::Serve {
            config: path,
            listen,
            metrics_listen,
            admin_listen,
        } => {
            let source = Source::choose(path);
            let Some(mut config) = load_one_line(&source) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            let overrides = Overrides {
                metrics_listen,
                admin_listen,
            };
            overrides.apply(&mut config);
            if let Err(e) = config.admin.check() {
                eprintln!("error: invalid config {source}: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            let writer = init_logging(config.server.log_format);
            if let Some(note) = source.ignored_variables() {
                tracing::warn!("{note}");
            }
            for w in &config.warnings {
                tracing::warn!(path = %w.path, "config: {}", w.message);
            }
            let path = match source {
                Source::File(path) => Some(path),
                Source::Environment => None,
            };
            let code = serve(config, listen, path, overrides);
            if let Some(writer) = writer {
                writer.flush(Duration::from_secs(2));
            }
            code
        }
        Command::Models { config, json } => {
            let Some(config) = load_one_line(&Source::choose(config)) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            run_async(models(config, json))
        }
        Command::HashKey { key } => hash_key(key),
    }
}

#[expect(clippy::print_stdout, reason = "hash-key prints the hash on stdout")]
fn hash_key(key: Option<String>) -> ExitCode {
    let key = match key {
        Some(key) => key,
        None => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut line) {
                eprintln!("error: cannot read the key from standard input: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            let trimmed = line.strip_suffix('\n').unwrap_or(&line);
            trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
        }
    };
    if key.len() < 8 {
        eprintln!("error: a client key must be at least 8 characters");
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{}", crate::auth::hash_key(&key));
    ExitCode::SUCCESS
}

fn run_async(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The file used when neither `-c` nor `SWITCHYARD_CONFIG` names one.
const DEFAULT_CONFIG: &str = "gateway.yaml";

/// Where the config comes from.
enum Source {
    /// A YAML file.
    File(PathBuf),
    /// Zero-file mode: Open WebUI's variables (`switchyard_config::parse_env`).
    Environment,
}

impl Source {
    /// A file named by `-c` or a non-empty `SWITCHYARD_CONFIG` always wins, then
    /// `./gateway.yaml`; with neither, the environment when one of its upstream
    /// variables is set, else `gateway.yaml` anyway (so the error says it cannot be
    /// read, as before). An empty `SWITCHYARD_CONFIG` counts as unset, so a container
    /// image that sets it can still be run in zero-file mode.
    fn choose(given: Option<PathBuf>) -> Self {
        let given = given.or_else(|| {
            std::env::var_os("SWITCHYARD_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        match given {
            Some(path) => Self::File(path),
            None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
                Self::File(PathBuf::from(DEFAULT_CONFIG))
            }
            None if switchyard_config::zero_file_requested(&|n| std::env::var(n).ok()) => {
                Self::Environment
            }
            None => Self::File(PathBuf::from(DEFAULT_CONFIG)),
        }
    }

    /// When a file is used while zero-file variables are set (an image's default
    /// config, say), a note saying they are ignored.
    fn ignored_variables(&self) -> Option<String> {
        let Self::File(path) = self else {
            return None;
        };
        let set: Vec<&str> = switchyard_config::ZERO_FILE_VARIABLES
            .iter()
            .copied()
            .filter(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
            .collect();
        (!set.is_empty()).then(|| {
            format!(
                "{} ignored: the config file {} is used (no -c, an empty SWITCHYARD_CONFIG and no ./gateway.yaml select zero-file mode)",
                set.join(", "),
                path.display()
            )
        })
    }

    fn load(&self) -> Result<Config, switchyard_config::ConfigErrors> {
        match self {
            Self::File(path) => switchyard_config::load(path),
            Self::Environment => switchyard_config::parse_env(&|n| std::env::var(n).ok()),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Environment => write!(
                f,
                "environment ({})",
                switchyard_config::ZERO_FILE_VARIABLES.join(", ")
            ),
        }
    }
}

/// Loads a config and builds everything the daemon would from it (plugin settings,
/// CA files…), so what passes here also starts.
fn load_checked(source: &Source) -> Result<Config, switchyard_config::ConfigErrors> {
    let config = source.load()?;
    if let Some(tls) = &config.server.tls {
        crate::tls::acceptor(tls).map_err(|e| config.redactor.errors(e))?;
    }
    build_snapshot(config.clone())?;
    Ok(config)
}

/// Loads a config; on failure prints one line (all problems joined) to stderr.
fn load_one_line(source: &Source) -> Option<Config> {
    match load_checked(source) {
        Ok(c) => Some(c),
        Err(errors) => {
            let all: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            eprintln!("error: invalid config {source}: {}", all.join("; "));
            None
        }
    }
}

#[expect(
    clippy::print_stdout,
    reason = "check reports to the operator on stdout"
)]
fn check(source: &Source) -> ExitCode {
    if let Some(note) = source.ignored_variables() {
        eprintln!("  warning: {note}");
    }
    match load_checked(source) {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("  warning: {w}");
            }
            let unpriced = crate::auth::unpriced_models(&config);
            if !unpriced.is_empty() {
                eprintln!(
                    "warning: a key has a `usd` budget, but these models have no price in `prices:` (they count $0): {}",
                    unpriced.join(", ")
                );
            }
            println!(
                "{source}: OK ({} upstreams, {} routes, {} plugins)",
                config.upstreams.len(),
                config.routes.len(),
                config.plugins.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{source}: {} problem(s)", errors.0.len());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

#[expect(
    clippy::print_stdout,
    reason = "import prints the native config on stdout"
)]
fn import(file: &std::path::Path) -> ExitCode {
    let shown = file.display().to_string();
    let converted = if file.is_dir() || shown.contains('*') {
        switchyard_config::read_included(std::path::Path::new("."), &shown)
            .map_err(|msg| switchyard_config::ConfigErrors::single("", msg))
            .and_then(|files| switchyard_config::import_files_to_yaml(&files))
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| {
                switchyard_config::ConfigErrors::single("", format!("cannot read it: {e}"))
            })
            .and_then(|text| switchyard_config::import_to_yaml(&text))
            .map(|(_, yaml, warnings)| (yaml, warnings))
    };
    match converted {
        Ok((yaml, warnings)) => {
            print!("{yaml}");
            if !warnings.is_empty() {
                eprintln!("{shown}: {} setting(s) not carried over:", warnings.len());
            }
            for w in &warnings {
                eprintln!("  warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{shown}: {} problem(s)", errors.0.len());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn serve(
    config: Config,
    listen: Option<SocketAddr>,
    path: Option<PathBuf>,
    overrides: Overrides,
) -> ExitCode {
    let gateway = match Gateway::bind(config, listen) {
        Ok(g) => g.reloading_from(path, overrides),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(gateway.workers())
        .thread_name("switchyard-worker")
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGHUP's default action ends the process: take it over before anyone is told the
    // gateway is up, so a reload signal sent early is ignored rather than fatal (tokio
    // never unregisters a handler; `Gateway::run` listens for it).
    #[cfg(unix)]
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        if let Err(e) = signal(SignalKind::hangup()) {
            tracing::warn!(error = %e, "cannot take over SIGHUP");
        }
    });
    if let Some(addr) = gateway.local_addr() {
        let metrics = gateway
            .metrics_addr()
            .map_or_else(|| "off".to_owned(), |a| a.to_string());
        let admin = gateway
            .admin_addr()
            .map_or_else(|| "off".to_owned(), |a| a.to_string());
        tracing::info!(%addr, %metrics, %admin, workers = gateway.workers(), version = env!("CARGO_PKG_VERSION"), "switchyard listening");
    }
    match runtime.block_on(gateway.run(shutdown_signal())) {
        Ok(Drained::Clean) => ExitCode::SUCCESS,
        Ok(Drained::Cut) => ExitCode::from(EXIT_DRAIN_CUT),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[expect(clippy::print_stdout, reason = "models prints the catalogue on stdout")]
async fn models(config: Config, json: bool) -> ExitCode {
    let snap = match build_snapshot(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: {}",
                e.0.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    snap.catalog.refresh(&snap.upstreams.list, true).await;
    // An upstream whose list could not be fetched is missing from what follows: say so.
    for ((name, age), up) in snap.catalog.list_ages().zip(&snap.upstreams.list) {
        if up.config.fetch_models && age.is_none() {
            eprintln!("warning: upstream {name}: its model list could not be fetched; its models are not listed");
        }
    }
    let index = snap.catalog.index();
    if json {
        let rows: Vec<_> = index
            .listing
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "object": "model", "owned_by": m.owned_by}))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let width = index
            .listing
            .iter()
            .map(|m| m.id.len())
            .max()
            .unwrap_or(2)
            .max(2);
        println!("{:<width$}  OWNED_BY", "ID");
        for m in &index.listing {
            println!("{:<width$}  {}", m.id, m.owned_by);
        }
    }
    ExitCode::SUCCESS
}

/// Logs go to stderr through the non-blocking writer (a slow stderr drops lines, never
/// requests); returns the writer so the last lines can be flushed before exit.
fn init_logging(format: LogFormat) -> Option<LogWriter> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = match LogWriter::spawn(std::io::stderr()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot start the log writer: {e}");
            return None;
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer.clone());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    crate::log_writer::install(writer.clone());
    Some(writer)
}

/// Resolves at the first SIGTERM or SIGINT (SIGHUP reloads, see `reload`); a second one during the drain exits the
/// process at once (exit code 130).
async fn shutdown_signal() {
    let mut signals = Signals::new();
    signals.next().await;
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second shutdown signal; exiting without finishing the drain");
        std::process::exit(i32::from(EXIT_FORCED));
    });
}

/// SIGTERM and SIGINT (Ctrl-C), as one stream.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            let term = async {
                match self.term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match self.int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = term => {},
                () = int => {},
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
