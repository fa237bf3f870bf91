//! The model catalogue: which upstream serves which model id, and the `/v1/models`
//! listing. Static lists are known at once; fetched lists come from each upstream's
//! `/models`, are cached in moka for `catalogue.ttl` (concurrent fetches coalesce), and
//! are refreshed in the background. A failed or slow fetch (bounded by
//! `fetch_timeout`) keeps the last known list — stale beats empty — and is retried
//! after a short back-off. Readers see an immutable [`Index`] swapped in whole.

use crate::client::h1::{Destination, H1Error};
use crate::metrics::metrics;
use crate::upstream::balance::Balancer;
use crate::upstream::Upstream;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_config::{Config, ModelKind, Route};
use switchyard_dialects::{anthropic, gemini, ollama, Dialect};
use tokio::time::Instant;

/// Largest `/models` body accepted from an upstream.
const MAX_MODELS_BODY: usize = 8 * 1024 * 1024;
/// Longest wait before retrying a failed fetch.
const MAX_FAILED_BACKOFF: Duration = Duration::from_secs(10);

/// One row of `/v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Model id as clients send it.
    pub id: String,
    /// Upstream name(s) serving it.
    pub owned_by: String,
    /// Unix seconds, as the (first) upstream serving it listed it; 0 when unknown.
    pub created: u64,
}

/// Upstreams serving one bare model id, with their own rotation.
#[derive(Debug)]
pub struct ModelTargets {
    /// Indices into the snapshot's upstreams, config order.
    pub upstreams: Vec<usize>,
    /// Rotation over `upstreams`, weighted by upstream weight.
    pub balancer: Balancer,
}

/// An immutable view of the catalogue.
#[derive(Debug, Default)]
pub struct Index {
    /// Bare model id → upstreams serving it.
    pub models: HashMap<String, ModelTargets>,
    /// `/v1/models` rows, hidden kinds already left out.
    pub listing: Vec<Listed>,
    /// Per upstream: the set of ids it serves (for `upstream/model`).
    pub per_upstream: Vec<Arc<Vec<String>>>,
    /// The list generation this view was built from.
    generation: u64,
}

/// The live catalogue of one config generation.
#[derive(Debug)]
pub struct Catalog {
    fetch_timeout: Duration,
    ttl: Duration,
    hide: Vec<ModelKind>,
    routes: Vec<Route>,
    weights: Vec<u32>,
    names: Vec<Arc<str>>,
    statics: Vec<Vec<String>>,
    fresh: moka::future::Cache<usize, Arc<Vec<String>>>,
    fetched: Vec<ArcSwapOption<Vec<String>>>,
    /// Per upstream: each fetched id's `created`, when its list gave one.
    created: Vec<ArcSwapOption<HashMap<String, u64>>>,
    retry_at: Vec<Mutex<Option<Instant>>>,
    /// When each upstream's list was last fetched.
    fetched_at: Vec<Mutex<Option<Instant>>>,
    /// Bumped after every change to `fetched`.
    generation: AtomicU64,
    /// Serialises rebuilds so an older view never replaces a newer one.
    rebuilding: Mutex<()>,
    index: ArcSwap<Index>,
}

impl Catalog {
    /// A catalogue seeded with the static lists; fetched lists arrive on refresh.
    pub fn new(config: &Config) -> Self {
        let ups = &config.upstreams;
        let statics = ups
            .iter()
            .map(|u| {
                u.models
                    .iter()
                    .flatten()
                    .filter(|m| u.keeps(m))
                    .cloned()
                    .collect()
            })
            .collect();
        let catalog = Self {
            fetch_timeout: config.catalogue.fetch_timeout,
            ttl: config.catalogue.ttl,
            hide: config.catalogue.hide.clone(),
            routes: config.routes.clone(),
            weights: ups.iter().map(|u| u.weight).collect(),
            names: ups.iter().map(|u| u.name.clone()).collect(),
            statics,
            fresh: moka::future::Cache::builder()
                .time_to_live(config.catalogue.ttl)
                .build(),
            fetched: ups.iter().map(|_| ArcSwapOption::empty()).collect(),
            created: ups.iter().map(|_| ArcSwapOption::empty()).collect(),
            retry_at: ups.iter().map(|_| Mutex::new(None)).collect(),
            fetched_at: ups.iter().map(|_| Mutex::new(None)).collect(),
            generation: AtomicU64::new(1),
            rebuilding: Mutex::new(()),
            index: ArcSwap::default(),
        };
        catalog.rebuild_if_stale();
        catalog
    }

    /// The current view.
    pub fn index(&self) -> Arc<Index> {
        self.index.load_full()
    }

    /// Per upstream: how long ago its list was fetched (`None`: static, or never).
    pub fn list_ages(&self) -> impl Iterator<Item = (&Arc<str>, Option<Duration>)> {
        let now = Instant::now();
        self.names
            .iter()
            .zip(&self.fetched_at)
            .map(move |(name, at)| {
                let at = at.lock().ok().and_then(|at| *at);
                (name, at.map(|t| now.saturating_duration_since(t)))
            })
    }

    /// Takes over the lists the previous generation fetched, for each `(new, old)`
    /// pair of upstream indices whose settings are unchanged, with their fetch times.
    pub fn adopt(&self, old: &Catalog, pairs: &[(usize, usize)]) {
        for &(new, was) in pairs {
            let (Some(slot), Some(list)) = (self.fetched.get(new), old.fetched.get(was)) else {
                continue;
            };
            slot.store(list.load_full());
            if let (Some(slot), Some(created)) = (self.created.get(new), old.created.get(was)) {
                slot.store(created.load_full());
            }
            let at = old.fetched_at[was].lock().ok().and_then(|at| *at);
            if let Ok(mut slot) = self.fetched_at[new].lock() {
                *slot = at;
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.rebuild_if_stale();
    }

    /// Per upstream: whether its list is fetched (else static) and how many ids it has.
    pub fn sources(&self) -> Vec<(bool, usize)> {
        let index = self.index();
        self.fetched
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let count = index.per_upstream.get(i).map_or(0, |l| l.len());
                (f.load().is_some(), count)
            })
            .collect()
    }

    /// How often the background task refreshes.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Brings the catalogue up to date, each fetch bounded by `fetch_timeout`:
    /// upstreams never heard from are fetched now (concurrent callers share one fetch);
    /// upstreams with a known list are served stale until the background refresh
    /// (`force`) fetches them again, so readers never wait on a slow upstream twice.
    pub async fn refresh(&self, upstreams: &[Upstream], force: bool) {
        let fetches = upstreams
            .iter()
            .enumerate()
            .filter(|(_, up)| up.config.fetch_models)
            .map(|(i, up)| self.refresh_one(i, up, force));
        futures_util::future::join_all(fetches).await;
        // Another caller may have published a list and not rebuilt yet.
        self.rebuild_if_stale();
    }

    async fn refresh_one(&self, i: usize, up: &Upstream, force: bool) {
        if force {
            self.fresh.invalidate(&i).await;
        } else if self.fresh.contains_key(&i) || self.fetched[i].load().is_some() {
            return;
        }
        let now = Instant::now();
        if self.retry_at[i]
            .lock()
            .is_ok_and(|at| at.is_some_and(|t| now < t))
        {
            return;
        }
        let timeout = self.fetch_timeout;
        let fetched = self
            .fresh
            .try_get_with(i, async move {
                let (list, created) = match tokio::time::timeout(timeout, fetch_models(up)).await {
                    Ok(result) => result?,
                    Err(_elapsed) => return Err(FetchError::TimedOut(timeout)),
                };
                let list = Arc::new(list);
                self.created[i].store(Some(Arc::new(created)));
                // Published before the entry counts as fresh, so a reader that sees
                // it fresh also sees the list.
                self.fetched[i].store(Some(list.clone()));
                if let Ok(mut at) = self.fetched_at[i].lock() {
                    *at = Some(Instant::now());
                }
                self.generation.fetch_add(1, Ordering::AcqRel);
                Ok::<_, FetchError>(list)
            })
            .await;
        let outcome = if fetched.is_ok() { "ok" } else { "error" };
        metrics()
            .catalog_refreshes
            .with_label_values(&[&up.name, outcome])
            .inc();
        if let Err(e) = fetched {
            tracing::warn!(upstream = %up.name, error = %e, "model list fetch failed; serving the last known list");
            if let Ok(mut at) = self.retry_at[i].lock() {
                // Counted from the failure, so a fetch that hung for fetch_timeout still
                // earns a real back-off.
                *at = Some(Instant::now() + self.ttl.min(MAX_FAILED_BACKOFF));
            }
        }
        self.rebuild_if_stale();
    }

    /// Rebuilds the view if a list changed since it was built.
    fn rebuild_if_stale(&self) {
        let Ok(_one_at_a_time) = self.rebuilding.lock() else {
            return;
        };
        let generation = self.generation.load(Ordering::Acquire);
        if self.index.load().generation != generation {
            self.rebuild(generation);
        }
    }

    fn rebuild(&self, generation: u64) {
        let per_upstream: Vec<Arc<Vec<String>>> = (0..self.names.len())
            .map(|i| {
                let mut ids = self.statics[i].clone();
                if let Some(f) = self.fetched[i].load_full() {
                    for id in f.iter() {
                        if !ids.contains(id) {
                            ids.push(id.clone());
                        }
                    }
                }
                Arc::new(ids)
            })
            .collect();
        let mut order: Vec<&str> = Vec::new();
        let mut served: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, ids) in per_upstream.iter().enumerate() {
            for id in ids.iter() {
                let entry = served.entry(id.as_str()).or_default();
                if entry.is_empty() {
                    order.push(id);
                }
                entry.push(i);
            }
        }
        let visible = |id: &str| !self.hide.iter().any(|k| k.matches(id));
        let created_maps: Vec<_> = self.created.iter().map(ArcSwapOption::load_full).collect();
        let created_by =
            |u: usize, id: &str| -> Option<u64> { created_maps.get(u)?.as_ref()?.get(id).copied() };
        let mut listing = Vec::new();
        for route in &self.routes {
            let mut owners: Vec<&str> = Vec::new();
            for t in &route.targets {
                let name = &*self.names[t.upstream];
                if !owners.contains(&name) {
                    owners.push(name);
                }
            }
            listing.push(Listed {
                id: route.model.clone(),
                owned_by: owners.join(","),
                created: 0,
            });
        }
        for id in &order {
            let ups = &served[id];
            if !visible(id) {
                continue;
            }
            if !self.routes.iter().any(|r| r.model == *id) {
                let owners: Vec<&str> = ups.iter().map(|&u| &*self.names[u]).collect();
                listing.push(Listed {
                    id: (*id).to_owned(),
                    owned_by: owners.join(","),
                    created: ups.iter().find_map(|&u| created_by(u, id)).unwrap_or(0),
                });
            }
            if ups.len() > 1 {
                for &u in ups {
                    listing.push(Listed {
                        id: format!("{}/{id}", self.names[u]),
                        owned_by: self.names[u].to_string(),
                        created: created_by(u, id).unwrap_or(0),
                    });
                }
            }
        }
        let models = served
            .into_iter()
            .map(|(id, ups)| {
                let weights: Vec<u32> = ups.iter().map(|&u| self.weights[u]).collect();
                let targets = ModelTargets {
                    balancer: Balancer::new(&weights),
                    upstreams: ups,
                };
                (id.to_owned(), targets)
            })
            .collect();
        self.index.store(Arc::new(Index {
            models,
            listing,
            per_upstream,
            generation,
        }));
    }
}

/// Why an upstream's model list could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The upstream is served in-process (no HTTP client).
    #[error("the upstream has no HTTP client")]
    NoClient,
    /// The request failed.
    #[error(transparent)]
    Request(#[from] H1Error),
    /// No complete answer within `fetch_timeout`.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The upstream answered with a non-success status.
    #[error("answered {0}")]
    Status(http::StatusCode),
    /// The body broke off.
    #[error("body: {0}")]
    Body(#[source] std::io::Error),
    /// Larger than [`MAX_MODELS_BODY`].
    #[error("the model list is too large")]
    TooLarge,
    /// Not an OpenAI model list.
    #[error("{0}")]
    NotAList(String),
}

/// Most pages of a paged model list (Gemini's) read.
const MAX_PAGES: usize = 20;

/// GET the upstream's model list (`{base_url}/models`, or its dialect's own) with the
/// upstream's auth, every page; the ids it lists, filtered, and their `created` where
/// the list gives one (OpenAI-format lists).
async fn fetch_models(up: &Upstream) -> Result<(Vec<String>, HashMap<String, u64>), FetchError> {
    let mut ids = Vec::new();
    let mut created = HashMap::new();
    let mut page: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let body = match &page {
            None => fetch_list(up, up.models_destination()).await?,
            Some(token) => {
                let at = up.destination_at(&gemini::models_path(Some(token)));
                fetch_list(up, &at).await?
            }
        };
        let not_a_list =
            |e: switchyard_dialects::translate::DecodeError| FetchError::NotAList(e.message);
        let (mut got, next) = match up.config.dialect {
            Dialect::Anthropic => {
                created.extend(parse_created(&body));
                (anthropic::parse_models(&body).map_err(not_a_list)?, None)
            }
            Dialect::Gemini => gemini::parse_models(&body).map_err(not_a_list)?,
            Dialect::Ollama => (ollama::parse_models(&body).map_err(not_a_list)?, None),
            Dialect::OpenAi | Dialect::Mock | Dialect::Azure => {
                created.extend(parse_created(&body));
                (parse_model_ids(&body)?, None)
            }
        };
        ids.append(&mut got);
        match next {
            Some(token) if !token.is_empty() => page = Some(token),
            _ => break,
        }
    }
    let ids: Vec<String> = ids.into_iter().filter(|id| up.config.keeps(id)).collect();
    created.retain(|id, _| ids.contains(id));
    Ok((ids, created))
}

/// `created` of each entry of an OpenAI list that has one.
fn parse_created(body: &[u8]) -> HashMap<String, u64> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return HashMap::new();
    };
    value
        .get("data")
        .or(Some(&value))
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let created = m
                .get("created")
                .and_then(serde_json::Value::as_u64)
                .or_else(|| {
                    // Anthropic's list: `created_at` in RFC 3339.
                    m.get("created_at")?.as_str().and_then(utc_seconds)
                })?;
            Some((m.get("id")?.as_str()?.to_owned(), created))
        })
        .collect()
}

/// Unix seconds of a UTC RFC 3339 time (`2025-08-05T00:00:00Z`, fractions allowed).
fn utc_seconds(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(b.get(range)?).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let utc = text.ends_with('Z') || text.ends_with("+00:00");
    if !utc || b.get(4) != Some(&b'-') || b.get(10).is_none_or(|c| !matches!(c, b'T' | b't' | b' '))
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// One GET of a model list page; its body.
async fn fetch_list(up: &Upstream, at: &Destination) -> Result<Vec<u8>, FetchError> {
    let client = up.client.as_ref().ok_or(FetchError::NoClient)?;
    let accept = (
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    let headers = up
        .headers
        .iter()
        .filter(|(name, _)| **name != http::header::ACCEPT)
        .chain(std::iter::once((&accept.0, &accept.1)));
    let mut resp = client
        .request(at, headers, None, up.config.connect_timeout)
        .await?;
    if !resp.status.is_success() {
        return Err(FetchError::Status(resp.status));
    }
    let mut body = Vec::new();
    while let Some(piece) = std::future::poll_fn(|cx| resp.body.poll_data(cx)).await {
        body.extend_from_slice(&piece.map_err(FetchError::Body)?);
        if body.len() > MAX_MODELS_BODY {
            return Err(FetchError::TooLarge);
        }
    }
    Ok(body)
}

/// Ids from an OpenAI list (`{"data":[{"id":…}]}`) or a bare array.
pub fn parse_model_ids(body: &[u8]) -> Result<Vec<String>, FetchError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| FetchError::NotAList(format!("not JSON: {e}")))?;
    let items = value
        .get("data")
        .or(Some(&value))
        .and_then(|v| v.as_array())
        .ok_or_else(|| FetchError::NotAList("no `data` array".to_owned()))?;
    Ok(items
        .iter()
        .filter_map(|m| m.get("id").and_then(|id| id.as_str()).map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests;
