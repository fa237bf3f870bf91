//! Runtime config types. They can only be built by `resolve`, so a `Config` in hand is
//! valid: URLs have a scheme, durations are positive, every route target names an
//! upstream that exists.

use crate::access::{Budget, Group, KeyValue, Price};
use crate::redact::Redactor;
use crate::secret::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_dialects::Dialect;

/// A complete, validated gateway config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data-plane listener and limits.
    pub server: Server,
    /// Model catalogue behaviour.
    pub catalogue: Catalogue,
    /// Retry and cool-down policy.
    pub routing: Routing,
    /// Upstream APIs, in config order.
    pub upstreams: Vec<Upstream>,
    /// Explicit routes (models and aliases), in config order.
    pub routes: Vec<Route>,
    /// Client API keys; when any is configured, every data-plane request needs one.
    pub keys: Vec<ClientKey>,
    /// Key groups that carry model lists (`groups:`).
    pub groups: Vec<Group>,
    /// Per-model prices, first match wins (`prices:`).
    pub prices: Vec<Price>,
    /// The plugin chain as written (plugin-specific `config` is checked by the daemon).
    pub plugins: Vec<PluginSpec>,
    /// The Prometheus listener.
    pub metrics: Metrics,
    /// Logging beyond the format (`server.log_format`).
    pub log: Log,
    /// Request records exported to a file and/or HTTP collectors; `None` when off.
    pub export: Option<Export>,
    /// The admin API listener (`admin:`); off when the section is absent.
    pub admin: Admin,
    /// Where limits, budgets and the shared cache tier live (`state:`).
    pub state: State,
    /// The response cache (`cache:`); `None` when off.
    pub cache: Option<Cache>,
    /// Hides the values `${VAR}` took from the environment; the daemon passes the errors
    /// of its own config checks (plugin settings, files, TLS) through it.
    pub redactor: Redactor,
    /// What `include:`d files say that Switchyard cannot honour, each with its path
    /// (`include[0] (litellm.yaml) model_list[1].litellm_params.rpm`); `check` prints
    /// them and `serve` logs them.
    pub warnings: Vec<crate::ConfigError>,
}

/// The Prometheus metrics listener: `GET /metrics` on an address of its own, without
/// client keys, so a scraper can reach it while the data plane stays key-protected.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Serve metrics at all (default true).
    pub enabled: bool,
    /// Address to bind (default `0.0.0.0:9464`).
    pub listen: SocketAddr,
}

/// The admin API (`admin:`): its own listener, bearer-token protected. Off unless the
/// config has an `admin:` section.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Serve the admin API (default true when `admin:` is present, else false).
    pub enabled: bool,
    /// Address to bind (default `127.0.0.1:9090`).
    pub listen: SocketAddr,
    /// The bearer token admin calls must carry; `None`: no token (loopback only).
    pub token: Option<Secret>,
    /// Where `/api/plugins` keeps Libre WebUI plugin files (relative to the config
    /// file's directory); `None`: the plugin API is off.
    pub plugins_dir: Option<String>,
}

impl Admin {
    /// The default listen address.
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:9090";

    /// The rule a listen address override must also pass: without a token the admin
    /// API only listens on a loopback address.
    pub fn check(&self) -> Result<(), crate::ConfigError> {
        if self.enabled && self.token.is_none() && !self.listen.ip().is_loopback() {
            return Err(crate::ConfigError {
                path: "admin.listen".to_owned(),
                message: format!(
                    "`{}` is not a loopback address and admin.token is not set; set a token or listen on 127.0.0.1",
                    self.listen
                ),
            });
        }
        Ok(())
    }
}

/// Where state shared by replicas lives (`state:`): in this process (`memory`, the
/// default), or in Redis, so N replicas enforce one limit.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The backend; `None`: memory.
    pub redis: Option<RedisState>,
}

/// `state: {backend: redis, …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisState {
    /// `redis://` or `rediss://` URL (may carry credentials: a secret).
    pub url: Secret,
    /// ACL user name, overriding the URL's.
    pub username: Option<Secret>,
    /// Password, overriding the URL's.
    pub password: Option<Secret>,
    /// An extra trusted root for `rediss://` (PEM).
    pub ca_file: Option<PathBuf>,
    /// Prefix of every key written.
    pub prefix: String,
    /// Multiplexed connections per replica.
    pub pool_size: u32,
    /// Bound on each Redis call.
    pub command_timeout: Duration,
    /// Bound on each connection attempt.
    pub connect_timeout: Duration,
    /// What a limit does while Redis cannot answer.
    pub on_unavailable: OnUnavailable,
}

/// What shared limits do while Redis is down or slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    /// Each replica enforces the limit alone, in memory.
    Local,
    /// Let the request through.
    Allow,
    /// Refuse it (503).
    Deny,
}

/// The response cache (`cache:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    /// Models whose answers are cached (globs over the model asked).
    pub models: Vec<Glob>,
    /// How long an entry lives.
    pub ttl: Duration,
    /// Size of the in-process tier (0: none — Redis alone, when shared).
    pub max_bytes: u64,
    /// Larger answers are not cached.
    pub max_entry_bytes: u64,
    /// Only requests with `temperature: 0` or a `seed` (embeddings always).
    pub only_deterministic: bool,
    /// Entries are namespaced per client key.
    pub per_key: bool,
    /// Redis is the second tier when `state.backend` is redis.
    pub shared: bool,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct Log {
    /// One access-log line per request (default true).
    pub access: bool,
}

/// Request-record export (`export:`): every request's access-log fields, batched to a
/// JSONL file and/or HTTP collectors. Each sink has a queue of its own.
#[derive(Debug, Clone)]
pub struct Export {
    /// Records each sink holds while it is busy; beyond that they are dropped and counted.
    pub queue: usize,
    /// Records per batch (a batch is written when full or after `flush_interval`).
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill.
    pub flush_interval: Duration,
    /// Attempts per batch before it is dropped and counted (at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles with each further retry.
    pub backoff: Duration,
    /// The JSONL file sink.
    pub file: Option<ExportFile>,
    /// HTTP collectors, in config order.
    pub http: Vec<ExportHttp>,
}

/// A JSONL file, rotated by size: `path` → `path.1` → … → `path.{keep}`.
#[derive(Debug, Clone)]
pub struct ExportFile {
    /// The file written to.
    pub path: PathBuf,
    /// Size at which the file is rotated.
    pub max_bytes: u64,
    /// Rotated files kept (0: the full file is removed).
    pub keep: u32,
}

/// An HTTP collector, sent newline-delimited JSON.
#[derive(Debug, Clone)]
pub struct ExportHttp {
    /// The sink's name in metrics (`sink` label): `name`, or the format's name.
    pub name: String,
    /// Where batches are POSTed, query included.
    pub url: String,
    /// The body's shape.
    pub format: ExportFormat,
    /// Extra headers (authorization…), as secrets.
    pub headers: Vec<(String, Secret)>,
    /// Bound on one POST, from connect to the end of the response.
    pub timeout: Duration,
}

/// The body shape an HTTP collector accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportFormat {
    /// Elasticsearch / OpenSearch `_bulk`: an `index` action line before each record.
    /// Without an index the action is `{"index":{}}` (the URL names it: `/idx/_bulk`).
    Elasticsearch {
        /// `_index` of every record.
        index: Option<String>,
    },
    /// ClickHouse `INSERT … FORMAT JSONEachRow`: one JSON object per line.
    ClickHouse,
}

impl ExportFormat {
    /// The format's YAML name (also the default sink name).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Elasticsearch { .. } => "elasticsearch",
            Self::ClickHouse => "clickhouse",
        }
    }
}

/// A client API key and the identity it carries.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// Key name (shown to upstreams by `user_headers`, used by plugin `keys:` selectors).
    pub name: Arc<str>,
    /// The key value clients send as `Authorization: Bearer …`, or its SHA-256.
    pub key: KeyValue,
    /// User the key belongs to.
    pub user: Option<Arc<str>>,
    /// Groups of that user.
    pub groups: Arc<[String]>,
    /// Models the key may use (globs): its own `models` and those of its groups that
    /// list models; `None` when neither does (any model).
    pub models: Option<Arc<[Glob]>>,
    /// Token / spend limits per window.
    pub budget: Option<Budget>,
}

/// A plugin stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Before routing; may modify or reject the request.
    PreRequest,
    /// Every streamed SSE event, in order.
    OnChunk,
    /// After a complete response, or once when a stream ends.
    PostResponse,
    /// When a request fails.
    Error,
}

impl Stage {
    /// Every stage with its YAML name.
    pub const ALL: [(Stage, &'static str); 4] = [
        (Self::PreRequest, "pre_request"),
        (Self::OnChunk, "on_chunk"),
        (Self::PostResponse, "post_response"),
        (Self::Error, "error"),
    ];

    /// YAML name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PreRequest => "pre_request",
            Self::OnChunk => "on_chunk",
            Self::PostResponse => "post_response",
            Self::Error => "error",
        }
    }
}

/// What happens when a plugin errors, times out or panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Log, count, and let the request go on.
    FailOpen,
    /// Log, count, and answer 500.
    FailClosed,
}

/// One plugin entry, validated except for its own `config`. Its `Debug` leaves out
/// `config`, which may hold expanded secrets (an `http` plugin's token).
#[derive(Clone)]
pub struct PluginSpec {
    /// Registered plugin name (`rate_limiter`, `http`…).
    pub name: String,
    /// Unique instance id (defaults to the name, or `name#N` when repeated).
    pub id: Arc<str>,
    /// YAML path of the entry, for errors found while building the plugin.
    pub path: String,
    /// Disabled entries are kept (for listing) but never run.
    pub enabled: bool,
    /// Stages as written; empty means the plugin's default.
    pub stages: Vec<Stage>,
    /// Lower runs first.
    pub priority: i32,
    /// May run concurrently with other parallel plugins of the same priority.
    pub parallel: bool,
    /// Failure policy.
    pub on_error: OnError,
    /// Bound on one invocation (default 5 s).
    pub timeout: Duration,
    /// Only for these models (globs); empty: all.
    pub models: Vec<Glob>,
    /// Only for these key names; empty: all callers.
    pub keys: Vec<String>,
    /// The plugin's own settings, as JSON.
    pub config: serde_json::Value,
}

/// Data-plane listener settings.
#[derive(Debug, Clone)]
pub struct Server {
    /// Address to bind (default `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// Largest accepted request body (default 10 MiB).
    pub max_body_bytes: u64,
    /// Most streams open at once; more get 503 (default 10 000).
    pub max_concurrent_streams: u32,
    /// `text` (default) or `json` logs.
    pub log_format: LogFormat,
    /// Worker threads; 0 means one per CPU.
    pub workers: u32,
    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with this certificate.
    pub tls: Option<ServerTls>,
    /// Most client connections open at once; more are refused (default 10 000, lowered
    /// to fit the open-file limit).
    pub max_connections: u32,
    /// Largest request head (request line and headers) read (default 64 KiB); larger
    /// heads get 431.
    pub max_header_bytes: u32,
    /// From accept (or a request's first byte) to the end of its head (default 30 s).
    pub header_timeout: Duration,
    /// How long a connection may sit idle between requests (default 75 s).
    pub idle_timeout: Duration,
    /// Longest wait for the next piece of a request body (default 60 s); then 408.
    pub body_timeout: Duration,
    /// Longest a response write may make no progress, a client that stopped reading
    /// (default 60 s); then the connection and its upstream are closed.
    pub write_timeout: Duration,
    /// How long shutdown waits for in-flight requests (default 30 s).
    pub drain_timeout: Duration,
    /// Reload when the config file changes (polled every second; default false).
    pub watch: bool,
    /// Cross-origin requests from browsers (`server.cors`); `None` when off.
    pub cors: Option<crate::Cors>,
}

/// The data plane's certificate and key (PEM files, read when the gateway starts).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// Certificate chain, leaf first.
    pub cert_file: std::path::PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: std::path::PathBuf,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Model catalogue settings.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// How long a fetched model list counts as fresh (default 5 minutes).
    pub ttl: Duration,
    /// Bound on one `/models` fetch; a slower upstream is served stale (default 3 s).
    pub fetch_timeout: Duration,
    /// Model kinds left out of `/v1/models` (they stay routable).
    pub hide: Vec<ModelKind>,
}

/// Kinds of non-chat models recognised by their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `text-embedding-3-small`, `nomic-embed-text`…
    Embedding,
    /// `tts-1`, `gpt-4o-mini-tts`…
    Tts,
    /// `whisper-1`, `gpt-4o-transcribe`…
    Speech,
    /// `dall-e-3`, `gpt-image-1`…
    Image,
    /// `omni-moderation-latest`…
    Moderation,
}

impl ModelKind {
    /// Every kind with its YAML name.
    pub const ALL: [(ModelKind, &'static str); 5] = [
        (Self::Embedding, "embedding"),
        (Self::Tts, "tts"),
        (Self::Speech, "speech"),
        (Self::Image, "image"),
        (Self::Moderation, "moderation"),
    ];

    /// Whether a model id looks like this kind.
    pub fn matches(self, id: &str) -> bool {
        let id = id.to_ascii_lowercase();
        let any = |needles: &[&str]| needles.iter().any(|n| id.contains(n));
        match self {
            Self::Embedding => any(&["embed"]),
            Self::Tts => any(&["tts"]),
            Self::Speech => any(&["whisper", "transcribe", "speech"]),
            Self::Image => any(&["dall-e", "gpt-image", "imagen", "stable-diffusion", "flux"]),
            Self::Moderation => any(&["moderation", "guard"]),
        }
    }
}

/// Retry, failover and cool-down policy.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Most upstream attempts per request, fallbacks included (default 4).
    pub max_attempts: u32,
    /// How long a failing target sits out (default 30 s).
    pub cooldown: Duration,
    /// Consecutive failures that send a target into cool-down (default 3).
    pub failures_before_cooldown: u32,
    /// Bound on a request's time across all its attempts, until an answer starts
    /// (default 5 min); then 504.
    pub request_timeout: Duration,
    /// Whether a timed-out attempt fails over to another target (default true). A
    /// timeout leaves the first generation's outcome unknown: it may still run, and be
    /// billed, beside the second. Routes may override it.
    pub retry_on_timeout: bool,
    /// How many failover attempts recent traffic allows.
    pub retry_budget: RetryBudget,
    /// Where a `/v1/…` request that names no model goes (files, batches…) when it has
    /// no `x-switchyard-upstream` header; `None`: such requests get a 404 that says how.
    pub default_upstream: Option<Arc<str>>,
}

/// Failover attempts (beyond each request's first) are allowed while they stay under
/// `ratio` of the requests of the last `window`, or under `min_per_second` in the
/// current second — so an outage of every upstream does not multiply the load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Failovers per request allowed on average (default 0.2).
    pub ratio: f64,
    /// Failovers per second allowed whatever the traffic (default 10).
    pub min_per_second: u32,
    /// How far back requests and failovers are counted (default 10 s; 1–60 s).
    pub window: Duration,
}

/// One upstream API. Equality compares every setting, secrets included (a reload
/// keeps an upstream's health and model list only while its settings are equal).
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Unique name; also the `upstream/` prefix of its models and `owned_by`.
    pub name: Arc<str>,
    /// Base URL without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Wire format.
    pub dialect: Dialect,
    /// How the gateway authenticates to it.
    pub auth: Auth,
    /// Extra static headers (validated names).
    pub headers: Vec<(String, Secret)>,
    /// TCP + TLS connect bound.
    pub connect_timeout: Duration,
    /// Bound from sending the request to the response headers.
    pub first_byte_timeout: Duration,
    /// Longest silence between two body chunks.
    pub idle_timeout: Duration,
    /// How long a kept-alive connection to it may sit idle before it is closed
    /// (default 30 s; less when the upstream's `Keep-Alive: timeout` says so).
    pub pool_idle_timeout: Duration,
    /// Share of traffic under the `weighted` strategy.
    pub weight: u32,
    /// Static model list, when given.
    pub models: Option<Vec<String>>,
    /// Whether to fetch `{base_url}/models`.
    pub fetch_models: bool,
    /// Only models matching one of these globs (empty: all).
    pub include: Vec<Glob>,
    /// Models matching any of these globs are dropped.
    pub exclude: Vec<Glob>,
    /// Extra CA certificates (PEM) trusted for this upstream, beside the roots `trust`
    /// names.
    pub ca_file: Option<std::path::PathBuf>,
    /// The HTTP proxy its connections go through, `None` for direct: its `proxy:`
    /// setting, else the proxy environment's choice for its base URL (`NO_PROXY`
    /// applied), read once when the config was parsed.
    pub proxy: Option<crate::Proxy>,
    /// Which root certificates verify this upstream's TLS (default both).
    pub trust: Trust,
    /// What the translating dialects read (`max_tokens`, `strict`, `num_ctx`,
    /// `keep_alive`).
    pub translate: switchyard_dialects::translate::Settings,
    /// `azure`: the `api-version` query value, or `v1` for the `/openai/v1/` paths.
    pub api_version: String,
    /// `azure`: model → deployment name (a model not listed is its own deployment).
    pub deployments: Vec<(String, String)>,
    /// Whether it serves the Responses API itself (default: `openai`, `azure` and
    /// `mock` do); when not, `/v1/responses` is translated to chat completions for it.
    pub responses: bool,
    /// Client request headers forwarded to it (lower-case, validated).
    pub forward_headers: Vec<String>,
    /// Its response headers the client never sees (lower-case, validated).
    pub strip_response_headers: Vec<String>,
}

/// Root certificates an upstream's TLS is verified against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trust {
    /// The Mozilla roots built into the binary.
    Bundled,
    /// The system's store (with `SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
    System,
    /// Both (default): the system store adds a corporate CA, the bundle covers a
    /// minimal container without one.
    #[default]
    Both,
}

impl Upstream {
    /// Whether the include/exclude filters keep a model id.
    pub fn keeps(&self, id: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(id)))
            && !self.exclude.iter().any(|g| g.matches(id))
    }
}

/// Upstream authentication.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// No credentials.
    None,
    /// Forward the client's own `Authorization` header (bring your own key).
    Passthrough,
    /// `Authorization: Bearer <key>`.
    Bearer(Secret),
    /// `<name>: <prefix><key>`, e.g. `x-api-key`, `api-key`, `Authorization: Token …`.
    Header {
        /// Header name.
        name: String,
        /// Text before the key (`"Token "`), may be empty.
        prefix: String,
        /// The key.
        key: Secret,
    },
    /// `?<name>=<key>` on every request URL.
    Query {
        /// Query parameter name.
        name: String,
        /// The key.
        key: Secret,
    },
}

/// A model or alias and where it goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// The name clients send as `model`.
    pub model: String,
    /// Where it can be served.
    pub targets: Vec<RouteTarget>,
    /// How a target is picked.
    pub strategy: Strategy,
    /// Models tried, in order, after every target failed.
    pub fallbacks: Vec<String>,
    /// Overrides `routing.retry_on_timeout` for this model.
    pub retry_on_timeout: Option<bool>,
}

/// One place a route can be served: an upstream, the model name sent there, and its
/// share. (Named apart from the daemon's connection-level `h1::Target`.)
#[derive(Debug, Clone)]
pub struct RouteTarget {
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// Model name sent upstream.
    pub model: String,
    /// Share under `weighted`.
    pub weight: u32,
}

/// Target selection strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Each target in turn.
    RoundRobin,
    /// In proportion to weights (smooth weighted round-robin).
    Weighted,
}

/// A `*`-wildcard pattern over model ids (upstream `include`/`exclude`, plugin `models`).
///
/// Only `*` is special: it matches any run of characters, including none, and the
/// pattern must match the whole id. Every other character, `?`, `[` and `\` included,
/// matches only itself, and matching is case-sensitive. That covers model-family filters
/// (`gpt-4o*`, `*-preview`, `claude-*-sonnet*`) without a glob library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Builds a glob; `*` matches any run of characters, nothing else is special.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        glob_match(self.0.as_bytes(), text.as_bytes())
    }

    /// Whether `text` matches `pattern`, read as a glob (no glob built).
    pub fn match_pattern(pattern: &str, text: &str) -> bool {
        glob_match(pattern.as_bytes(), text.as_bytes())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn glob_match(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pat.len() && pat[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

impl std::fmt::Debug for PluginSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSpec")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("path", &self.path)
            .field("enabled", &self.enabled)
            .field("stages", &self.stages)
            .field("priority", &self.priority)
            .field("parallel", &self.parallel)
            .field("on_error", &self.on_error)
            .field("timeout", &self.timeout)
            .field("models", &self.models)
            .field("keys", &self.keys)
            .field("config", &"<not shown>")
            .finish()
    }
}
