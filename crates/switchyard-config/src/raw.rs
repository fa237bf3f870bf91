//! Serde structs exactly as written in `gateway.yaml`. Every struct denies unknown keys
//! so typos are errors, not silently ignored settings. Validation and defaults that
//! depend on other fields happen in `resolve`. Types that hold expanded values which may
//! be secrets (keys, auth, headers, plugin settings, untyped sections) have no `Debug`.

use serde::Deserialize;
use serde_yaml::Value;
use std::collections::BTreeMap;

/// The document root. Sections stay untyped here so each one (and each list entry) is
/// typed on its own and every broken entry is reported, not just the first.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Top {
    #[serde(default)]
    pub server: Option<Value>,
    #[serde(default)]
    pub catalogue: Option<Value>,
    #[serde(default)]
    pub routing: Option<Value>,
    #[serde(default)]
    pub upstreams: Vec<Value>,
    #[serde(default)]
    pub routes: Vec<Value>,
    #[serde(default)]
    pub keys: Vec<Value>,
    #[serde(default)]
    pub groups: Vec<Value>,
    #[serde(default)]
    pub prices: Vec<Value>,
    #[serde(default)]
    pub plugins: Vec<Value>,
    #[serde(default)]
    pub metrics: Option<Value>,
    #[serde(default)]
    pub log: Option<Value>,
    #[serde(default)]
    pub export: Option<Value>,
    #[serde(default)]
    pub admin: Option<Value>,
    #[serde(default)]
    pub state: Option<Value>,
    #[serde(default)]
    pub cache: Option<Value>,
}

/// `state:`; the URL and credentials may be expanded secrets, so no `Debug`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateSpec {
    pub backend: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<String>,
    pub prefix: Option<String>,
    pub pool_size: Option<u32>,
    pub command_timeout: Option<Value>,
    pub connect_timeout: Option<Value>,
    pub on_unavailable: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheSpec {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub models: Vec<String>,
    pub ttl: Option<Value>,
    pub max_bytes: Option<u64>,
    pub max_entry_bytes: Option<u64>,
    pub only_deterministic: Option<bool>,
    pub per_key: Option<bool>,
    pub shared: Option<bool>,
}

/// `admin:`; the token may be an expanded secret, so no `Debug`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminSpec {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub token: Option<String>,
    pub plugins_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsSpec {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogSpec {
    pub access: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportSpec {
    pub queue: Option<usize>,
    pub batch_size: Option<usize>,
    pub flush_interval: Option<Value>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<Value>,
    pub file: Option<Value>,
    #[serde(default)]
    pub http: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportFileSpec {
    pub path: String,
    pub max_bytes: Option<u64>,
    pub keep: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportHttpSpec {
    pub name: Option<String>,
    pub url: String,
    pub format: Option<String>,
    pub index: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSpec {
    pub listen: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub max_concurrent_streams: Option<u32>,
    pub log_format: Option<String>,
    pub workers: Option<u32>,
    pub tls: Option<TlsSpec>,
    pub max_connections: Option<u32>,
    pub max_header_bytes: Option<u64>,
    pub header_timeout: Option<Value>,
    pub idle_timeout: Option<Value>,
    pub body_timeout: Option<Value>,
    pub write_timeout: Option<Value>,
    pub drain_timeout: Option<Value>,
    pub watch: Option<bool>,
    pub cors: Option<CorsSpec>,
}

/// `server.cors`; absent means off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CorsSpec {
    pub allow_origins: Vec<String>,
    pub allow_methods: Option<Vec<String>>,
    pub allow_headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub max_age: Option<Value>,
    pub allow_credentials: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSpec {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogueSpec {
    pub ttl: Option<Value>,
    pub fetch_timeout: Option<Value>,
    pub hide: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoutingSpec {
    pub max_attempts: Option<u32>,
    pub cooldown: Option<Value>,
    pub failures_before_cooldown: Option<u32>,
    pub request_timeout: Option<Value>,
    pub retry_on_timeout: Option<bool>,
    pub retry_budget: Option<RetryBudgetSpec>,
    pub default_upstream: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryBudgetSpec {
    pub ratio: Option<f64>,
    pub min_per_second: Option<u32>,
    pub window: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamSpec {
    pub name: String,
    pub base_url: Option<String>,
    #[serde(default)]
    pub dialect: Option<String>,
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub connect_timeout: Option<Value>,
    pub first_byte_timeout: Option<Value>,
    pub idle_timeout: Option<Value>,
    pub pool_idle_timeout: Option<Value>,
    pub weight: Option<u32>,
    pub models: Option<Vec<String>>,
    pub fetch_models: Option<bool>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub ca_file: Option<String>,
    pub trust: Option<String>,
    pub proxy: Option<String>,
    /// `anthropic`: `max_tokens` when the client sends none.
    pub max_tokens: Option<u64>,
    /// Translated dialects: refuse (400) a field the upstream cannot carry.
    pub strict: Option<bool>,
    /// `ollama`: `options.num_ctx`.
    pub num_ctx: Option<u64>,
    /// `ollama`: `keep_alive`.
    pub keep_alive: Option<Value>,
    /// `azure`: `api-version` (`v1` for the `/openai/v1/` form).
    pub api_version: Option<String>,
    /// `azure`: model → deployment.
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// Whether it serves OpenAI's Responses API (`/v1/responses`) itself.
    pub responses: Option<bool>,
    /// Client request headers forwarded to it.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// Its response headers removed before the client sees them (default: the
    /// operator's OpenAI account headers).
    pub strip_response_headers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum AuthSpec {
    None,
    Passthrough,
    Bearer {
        key: String,
    },
    Header {
        name: String,
        #[serde(default)]
        prefix: Option<String>,
        key: String,
    },
    Query {
        name: String,
        key: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    pub model: String,
    pub targets: Vec<RouteTargetSpec>,
    pub strategy: Option<String>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    pub retry_on_timeout: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteTargetSpec {
    pub upstream: String,
    pub model: Option<String>,
    pub weight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySpec {
    pub name: String,
    pub key: String,
    pub user: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub models: Option<Vec<String>>,
    pub budget: Option<BudgetSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetSpec {
    pub tokens: Option<u64>,
    pub usd: Option<f64>,
    pub window: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupSpec {
    pub name: String,
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriceSpec {
    pub model: String,
    pub input: f64,
    pub output: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PluginSpec {
    pub name: String,
    pub id: Option<String>,
    pub enabled: Option<bool>,
    pub stage: Option<OneOrMany>,
    pub priority: Option<i32>,
    pub parallel: Option<bool>,
    pub on_error: Option<String>,
    pub timeout: Option<Value>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub config: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}
