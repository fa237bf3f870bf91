//! Upstreams at run time: each configured upstream with its client, precomputed
//! headers and URLs ([`Upstream`]), all of one config with the policy and the stream
//! limit that sending needs ([`Upstreams`]), and [`Upstreams::send`] (in `send`): one
//! attempt per planned [`Candidate`], with failover. `balance` rotates targets;
//! `health` takes failing ones out for a cool-down; `budget` bounds failovers by
//! recent traffic; `rest` reads how long an upstream asked to be left alone.

pub mod balance;
pub mod budget;
mod dialect;
pub mod health;
pub mod owners;
pub mod recent;
mod rest;
mod send;

pub use send::{AttemptError, Candidate, Outgoing, Served};

use crate::client::h1::{Destination, H1Client, Roots};
use crate::endpoint::Endpoint;
use crate::metrics::{metrics, UpstreamMetrics};
use crate::relay::StreamLimit;
use budget::RetryBudget;
use health::UpstreamHealth;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Uri;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::sync::Arc;
use switchyard_config::{Auth, ConfigError, Routing, Secret, Trust};
use switchyard_dialects::Dialect;

/// Every upstream of one config, in config order, with what sending needs besides them.
#[derive(Debug)]
pub struct Upstreams {
    /// Upstreams, config order ([`Candidate::upstream`] indexes this).
    pub list: Vec<Upstream>,
    /// Attempts, failover and cool-down policy.
    pub routing: Routing,
    /// Open streams and their limit.
    pub streams: StreamLimit,
    /// Failovers allowed by recent traffic (`routing.retry_budget`).
    pub budget: RetryBudget,
}

/// One upstream, ready to use: client, precomputed headers and URLs, health. Its
/// `Debug` shows header names only (auth and configured headers are credentials).
pub struct Upstream {
    /// Config name.
    pub name: Arc<str>,
    /// Its resolved config.
    pub config: switchyard_config::Upstream,
    /// `None` for the in-process mock dialect.
    pub client: Option<Arc<H1Client>>,
    /// Auth and extra headers, sent on every request.
    pub headers: HeaderMap,
    /// Client request headers forwarded to it (`forward_headers`).
    pub forward: Vec<HeaderName>,
    /// Its response headers the client never sees (`strip_response_headers`).
    pub strip: Vec<HeaderName>,
    /// Passive health, of its connections and of each target; shared with the next
    /// snapshot when a reload leaves this upstream's settings unchanged.
    pub health: Arc<UpstreamHealth>,
    /// Its metric handles.
    pub metrics: UpstreamMetrics,
    destinations: Destinations,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(http::HeaderName::as_str).collect();
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("headers", &headers)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// Where each endpoint's requests go (query auth and trust included).
#[derive(Debug)]
struct Destinations {
    chat: Destination,
    completions: Destination,
    embeddings: Destination,
    models: Destination,
    /// The path of the base URL (`/v1beta`, or empty), for paths a dialect builds per
    /// request.
    base_path: String,
    /// Query auth (`name=value`), appended to every path.
    query: Option<String>,
}

/// Query-string bytes left as they are: RFC 3986 unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Upstream {
    /// Whether it is sent the caller's own credentials (`auth: {type: passthrough}`):
    /// then its answers belong to that caller alone.
    pub fn takes_callers_credentials(&self) -> bool {
        matches!(self.config.auth, Auth::Passthrough)
    }

    /// Builds the runtime form of an upstream (reads `ca_file`, if set; its destinations
    /// go through its `proxy`, if it has one). An error names
    /// the field it is about, under `path` (`upstreams[i]`).
    pub fn build(
        config: switchyard_config::Upstream,
        client: Option<Arc<H1Client>>,
        path: &str,
    ) -> Result<Self, ConfigError> {
        let error = |field: &str, message: String| ConfigError {
            path: format!("{path}.{field}"),
            message,
        };
        let ca =
            match &config.ca_file {
                Some(file) => Some(std::fs::read(file).map_err(|e| {
                    error("ca_file", format!("cannot read {}: {e}", file.display()))
                })?),
                None => None,
            };
        let mut headers = HeaderMap::new();
        let mut query = None;
        let secret_value = |v: &str| {
            HeaderValue::from_str(v)
                .map(|mut h| {
                    h.set_sensitive(true);
                    h
                })
                .map_err(|_discarded| {
                    error(
                        "headers",
                        format!("upstream {}: a header value is not valid", config.name),
                    )
                })
        };
        let header_name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|_discarded| {
                error(
                    "headers",
                    format!("upstream {}: `{n}` is not a header name", config.name),
                )
            })
        };
        for (name, value) in &config.headers {
            if !value.expose().is_empty() {
                headers.insert(header_name(name)?, secret_value(value.expose())?);
            }
        }
        match &config.auth {
            Auth::None | Auth::Passthrough => {}
            Auth::Bearer(key) => {
                headers.insert(
                    header::AUTHORIZATION,
                    secret_value(&format!("Bearer {}", key.expose()))?,
                );
            }
            Auth::Header { name, prefix, key } => {
                headers.insert(
                    header_name(name)?,
                    secret_value(&format!("{prefix}{}", key.expose()))?,
                );
            }
            Auth::Query { name, key } => {
                query = Some(format!(
                    "{}={}",
                    utf8_percent_encode(name, QUERY_VALUE),
                    utf8_percent_encode(key.expose(), QUERY_VALUE)
                ));
            }
        }
        let destination = |endpoint_path: &str| -> Result<Destination, ConfigError> {
            let mut s = format!("{}/{endpoint_path}", config.base_url);
            if let Some(q) = &query {
                s.push(if s.contains('?') { '&' } else { '?' });
                s.push_str(q);
            }
            if config.dialect == Dialect::Mock {
                s = format!("http://mock.invalid/{endpoint_path}");
            }
            let uri: Uri = s
                .parse()
                .map_err(|_discarded| error("base_url", "is not a valid URL".to_owned()))?;
            let mut destination = Destination::from_uri(&uri)
                .map_err(|e| error("base_url", e.to_string()))?
                .keeping_idle(config.pool_idle_timeout);
            if let Some(proxy) = &config.proxy {
                destination = destination
                    .via_proxy(
                        &proxy.host,
                        proxy.port,
                        proxy.authorization.as_ref().map(Secret::expose),
                    )
                    .map_err(|e| error("proxy", e.to_string()))?;
            }
            let roots = match config.trust {
                Trust::Bundled => Roots::Bundled,
                Trust::System => Roots::System,
                Trust::Both => Roots::Both,
            };
            destination
                .trusting(roots, ca.as_deref())
                .map_err(|e| error("ca_file", e.to_string()))
        };
        let destinations = Destinations {
            chat: destination(Endpoint::Chat.path())?,
            completions: destination(Endpoint::Completions.path())?,
            embeddings: destination(Endpoint::Embeddings.path())?,
            models: destination(models_path(config.dialect))?,
            base_path: config
                .base_url
                .parse::<Uri>()
                .ok()
                .map(|u| u.path().trim_end_matches('/').to_owned())
                .unwrap_or_default(),
            query,
        };
        let names = |field: &str, list: &[String]| {
            list.iter()
                .map(|n| {
                    HeaderName::from_bytes(n.as_bytes())
                        .map_err(|_discarded| error(field, format!("`{n}` is not a header name")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            name: config.name.clone(),
            metrics: metrics().upstream(&config.name),
            forward: names("forward_headers", &config.forward_headers)?,
            strip: names("strip_response_headers", &config.strip_response_headers)?,
            config,
            client,
            headers,
            health: Arc::default(),
            destinations,
        })
    }

    /// Where an endpoint's requests go.
    pub fn destination(&self, endpoint: Endpoint) -> &Destination {
        match endpoint {
            // `Other` paths are built per request (`destination_at`); not asked here.
            Endpoint::Chat | Endpoint::Other => &self.destinations.chat,
            Endpoint::Completions => &self.destinations.completions,
            Endpoint::Embeddings => &self.destinations.embeddings,
        }
    }

    /// Where the model list is fetched from.
    pub fn models_destination(&self) -> &Destination {
        &self.destinations.models
    }

    /// A destination at `rel` (starting with `/`, query allowed) under the base URL,
    /// with the upstream's query auth: for paths a dialect builds per request.
    pub fn destination_at(&self, rel: &str) -> Destination {
        let d = &self.destinations;
        let mut path = format!("{}{rel}", d.base_path);
        if let Some(q) = &d.query {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(q);
        }
        d.models.with_path(path)
    }
}

/// The model list's path under the base URL, per dialect (no leading slash).
fn models_path(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Anthropic => "v1/models?limit=1000",
        Dialect::Gemini => "models?pageSize=1000",
        Dialect::Ollama => "api/tags",
        Dialect::OpenAi | Dialect::Mock | Dialect::Azure => "models",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_auth_is_percent_encoded() {
        let config = switchyard_config::parse(
            "upstreams:\n  - {name: q, base_url: 'http://up:9/v1', models: [m], auth: {type: query, name: 'api key', key: 'a b&c'}}\n",
            &|_| None,
        )
        .unwrap();
        let up = Upstream::build(config.upstreams[0].clone(), None, "upstreams[0]").unwrap();
        let dest = format!("{:?}", up.destination(Endpoint::Chat));
        assert!(!dest.contains("a b"), "the Debug form hides the path");
        assert_eq!(
            up.destination(Endpoint::Chat).path(),
            "/v1/chat/completions?api%20key=a%20b%26c"
        );
    }
}
