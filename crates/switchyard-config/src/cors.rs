//! `server.cors` as resolved: which browser origins may call the data plane, and what
//! the gateway tells browsers in its CORS headers. Type only; `resolve::cors` builds
//! it (names lower-cased, methods upper-cased, every entry checked).

use std::time::Duration;

/// Request headers allowed by default: what the OpenAI and Anthropic SDKs send from a
/// browser (the `x-stainless-*` family by name, since CORS has no prefix patterns).
pub(crate) const DEFAULT_ALLOW_HEADERS: [&str; 19] = [
    "authorization",
    "content-type",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "x-request-id",
    "x-stainless-arch",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
    "x-stainless-helper-method",
];

/// Response headers exposed to scripts by default: the request id, retry hints,
/// OpenAI's rate-limit headers, the `rate_limiter`'s own and the cache's verdict.
pub(crate) const DEFAULT_EXPOSE_HEADERS: [&str; 13] = [
    "x-request-id",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-switchyard-cache",
];

/// Cross-origin requests from browsers (`server.cors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Origins allowed, exactly (`https://app.example.com`, lower-case, no path).
    pub allow_origins: Vec<String>,
    /// `*` was listed: any origin is allowed.
    pub any_origin: bool,
    /// Methods a preflight allows (default `GET, POST, OPTIONS`), upper-case.
    pub allow_methods: Vec<String>,
    /// Request headers a preflight allows, lower-case; `None` (`*`) answers each
    /// preflight with the headers it asked for.
    pub allow_headers: Option<Vec<String>>,
    /// Response headers scripts may read (`Access-Control-Expose-Headers`).
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight's answer (default 10 minutes).
    pub max_age: Duration,
    /// Send `Access-Control-Allow-Credentials: true` (default false); the allowed
    /// origin is then echoed even when `*` is listed, as the Fetch standard requires.
    pub allow_credentials: bool,
}

impl Cors {
    /// Whether a request's `Origin` is allowed (compared without regard to case).
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.any_origin
            || self
                .allow_origins
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
    }
}
