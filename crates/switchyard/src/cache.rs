//! The response cache (`cache:`): exact-match answers for chat completions and
//! embeddings. The key is the SHA-256 of the request as normalised by
//! `switchyard_dialects::cache::normalize` (key order, whitespace and the members that do
//! not change the output — `stream`, `user`… — don't matter), with the model replaced by
//! the models the request resolves to (so an alias and its target share entries), under
//! the caller's key name when `per_key`. Only models `cache.models` names are cached, and
//! by default only deterministic-enough requests (`temperature: 0` or a `seed`).
//!
//! An entry is the whole non-streamed answer. A stream is stored by assembling what the
//! client received (`StreamAssembler`: kept only when it ended with `[DONE]`, no error
//! event, no cut), and a hit is replayed as a stream when the client asks for one
//! (`replay_stream`), or sent as JSON. Two tiers: moka in the process (bounded by bytes,
//! `ttl`; none with `max_bytes: 0`), then Redis when `state` is redis and `shared` — a Redis miss or failure is a
//! miss, bounded by the store's command timeout. A client's `Cache-Control: no-cache`
//! skips the lookup (the fresh answer is stored), `no-store` skips both.

use crate::endpoint::Endpoint;
use crate::metrics::metrics;
use crate::relay::{BodyStats, Relay, ResponseBody, Tee};
use crate::state::Shared;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use std::sync::{Arc, Mutex, PoisonError};
use switchyard_config::Cache as CacheConfig;
use switchyard_dialects::cache::{deterministic, normalize, replay_stream, StreamAssembler};

/// `x-switchyard-cache` on every cacheable answer: `hit`, `miss` or `bypass`.
pub static X_SWITCHYARD_CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");

/// The process's response cache for one `cache:` setting.
pub struct ResponseCache {
    config: CacheConfig,
    /// `None` with `max_bytes: 0` (Redis alone).
    memory: Option<moka::sync::Cache<[u8; 32], Stored>>,
    /// Exact request bytes (hashed) → the key they normalise to.
    exact: moka::sync::Cache<[u8; 32], [u8; 32]>,
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.memory.as_ref().map(|m| m.entry_count()))
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// What to do with one request.
#[derive(Debug, Clone)]
pub struct Plan {
    key: [u8; 32],
    /// The hash of the request's exact bytes, when the key came from normalising them.
    exact: Option<[u8; 32]>,
    /// Look the answer up (no `Cache-Control: no-cache` / `no-store`).
    pub read: bool,
    /// Store the fresh answer (no `no-store`).
    pub write: bool,
}

/// Which tier answered a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// This process's memory.
    Memory,
    /// Redis.
    Redis,
}

/// Marks an answer served from the cache (it is not charged to the key's budget).
#[derive(Debug, Clone, Copy)]
pub struct CacheHit;

impl ResponseCache {
    /// The cache for `config`: the process's existing one when the settings and the
    /// store are the same (entries survive reloads), else a new, empty one.
    pub fn for_config(config: &CacheConfig, shared: Option<&Arc<Shared>>) -> Arc<Self> {
        static CURRENT: Mutex<Option<Arc<ResponseCache>>> = Mutex::new(None);
        let shared = shared.filter(|_| config.shared).cloned();
        let mut current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cache) = current.as_ref().filter(|c| {
            c.config == *config
                && match (&c.shared, &shared) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        }) {
            return cache.clone();
        }
        let memory = (config.max_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.max_bytes)
                .weigher(|_key: &[u8; 32], value: &Stored| {
                    u32::try_from(value.bytes.len() + 64).unwrap_or(u32::MAX)
                })
                .expire_after(Lives)
                .build()
        });
        let cache = Arc::new(Self {
            config: config.clone(),
            memory,
            exact: moka::sync::Cache::builder()
                .max_capacity(EXACT_KEYS)
                .time_to_live(config.ttl)
                .build(),
            shared,
        });
        *current = Some(cache.clone());
        cache
    }

    /// Whether entries are namespaced per client key (`per_key`).
    pub fn per_key(&self) -> bool {
        self.config.per_key
    }

    /// Whether `endpoint` answers can be cached at all.
    pub fn serves(endpoint: Endpoint) -> bool {
        matches!(endpoint, Endpoint::Chat | Endpoint::Embeddings)
    }

    /// The plan for a request, or `None` to bypass the cache: `asked` is the model the
    /// client named (what `cache.models` opts in), `body` the request as it goes
    /// upstream, `model` the span of its `model` value (quotes included) and `canonical`
    /// what stands there in the key (every model the request may be served by), and
    /// `scope` what else the answer depends on (the caller, when entries are per key or
    /// the upstream takes the caller's credentials; headers that change the answer).
    ///
    /// The key is the SHA-256 of the normalised request; normalising costs a parse, so a
    /// request whose exact bytes were seen before (the usual case: one client, one SDK,
    /// one serialisation) finds its key through a hash of its bytes instead.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, each argument distinct"
    )]
    pub fn plan(
        &self,
        endpoint: Endpoint,
        asked: &str,
        body: &[u8],
        model: std::ops::Range<usize>,
        canonical: &str,
        scope: &[u8],
        headers: &HeaderMap,
    ) -> Option<Plan> {
        if !Self::serves(endpoint) || !self.config.models.iter().any(|g| g.matches(asked)) {
            return None;
        }
        let (no_cache, no_store) = cache_control(headers);
        if no_store {
            return None;
        }
        let (before, after) = (body.get(..model.start)?, body.get(model.end..)?);
        let quoted = serde_json::Value::String(canonical.to_owned()).to_string();
        let digest = |kind: &[u8], parts: &[&[u8]]| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            ctx.update(kind);
            ctx.update(if endpoint == Endpoint::Chat {
                b"chat\0"
            } else {
                b"embeddings\0"
            });
            ctx.update(scope);
            ctx.update(b"\0");
            for part in parts {
                ctx.update(part);
            }
            let mut key = [0u8; 32];
            key.copy_from_slice(ctx.finish().as_ref());
            key
        };
        let exact = digest(
            b"switchyard-cache-exact-v1\0",
            &[before, quoted.as_bytes(), after],
        );
        if let Some(key) = self.exact.get(&exact) {
            return Some(Plan {
                key,
                exact: None,
                read: !no_cache,
                write: true,
            });
        }
        let keyed = [before, quoted.as_bytes(), after].concat();
        if endpoint == Endpoint::Chat && self.config.only_deterministic && !deterministic(&keyed) {
            return None;
        }
        let normalized = normalize(&keyed).ok()?;
        Some(Plan {
            key: digest(b"switchyard-cache-v1\0", &[&normalized]),
            exact: Some(exact),
            read: !no_cache,
            write: true,
        })
    }

    /// Remembers which key the exact bytes of a request normalise to.
    fn learn(&self, plan: &Plan) {
        if let Some(exact) = plan.exact {
            self.exact.insert(exact, plan.key);
        }
    }

    fn redis_key(shared: &Shared, key: &[u8; 32]) -> String {
        let mut hex = String::with_capacity(64);
        for b in key {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 15)]));
        }
        shared.key(&["cache", &hex])
    }

    /// The stored answer, from memory, else Redis (which then fills memory).
    pub async fn get(&self, plan: &Plan) -> Option<(Bytes, Tier)> {
        if let Some(entry) = self.memory.as_ref().and_then(|m| m.get(&plan.key)) {
            self.learn(plan);
            return Some((entry.bytes, Tier::Memory));
        }
        let shared = self.shared.as_ref()?;
        match shared
            .get_with_ttl(&Self::redis_key(shared, &plan.key))
            .await
        {
            Ok(Some((entry, left))) => {
                let entry = Bytes::from(entry);
                // Kept in memory only as long as it has left in Redis.
                if let Some(memory) = &self.memory {
                    let lives = left.min(self.config.ttl);
                    memory.insert(plan.key, Stored::new(entry.clone(), lives));
                }
                self.learn(plan);
                Some((entry, Tier::Redis))
            }
            Ok(None) => None,
            Err(_unavailable) => {
                shared.fell_back("cache");
                None
            }
        }
    }

    /// Counts one lookup.
    pub fn count(result: &str, tier: Option<Tier>) {
        let tier = match tier {
            Some(Tier::Memory) => "memory",
            Some(Tier::Redis) => "redis",
            None => "none",
        };
        metrics()
            .cache_lookups
            .with_label_values(&[result, tier])
            .inc();
    }

    /// Stores a whole answer in both tiers (Redis off the request path).
    pub fn put(&self, plan: &Plan, entry: Bytes) {
        if entry.len() as u64 > self.config.max_entry_bytes {
            stored("too_large");
            return;
        }
        stored("stored");
        if let Some(memory) = &self.memory {
            memory.insert(plan.key, Stored::new(entry.clone(), self.config.ttl));
        }
        self.learn(plan);
        if let (Some(shared), Ok(runtime)) = (&self.shared, tokio::runtime::Handle::try_current()) {
            let (shared, key, ttl) = (
                shared.clone(),
                Self::redis_key(shared, &plan.key),
                self.config.ttl,
            );
            runtime.spawn(async move {
                if shared.set(&key, &entry, ttl).await.is_err() {
                    shared.fell_back("cache");
                }
            });
        }
    }

    /// Keeps a fresh answer once its body ended whole: `resp` is the answer about to be
    /// sent (a full body is stored at once; a relayed one through a [`Tee`]).
    pub fn keep(self: &Arc<Self>, plan: Plan, resp: &mut Response<ResponseBody>) {
        if !resp.status().is_success() {
            return;
        }
        match resp.body_mut() {
            ResponseBody::Full(Some(bytes)) => self.put(&plan, bytes.clone()),
            ResponseBody::Relay(relay) => {
                let sse = relay.is_sse();
                relay.tee(Box::new(Keeper {
                    cache: self.clone(),
                    plan,
                    body: if sse {
                        Kept::Stream(Box::default())
                    } else {
                        Kept::Json(BytesMut::new())
                    },
                    seen: 0,
                    too_large: false,
                }));
            }
            ResponseBody::Full(None) | ResponseBody::Ingress(_) => {}
        }
    }
}

/// An entry of the in-process tier and how long it lives from its insertion (its `ttl`,
/// or what it had left in Redis).
#[derive(Clone)]
struct Stored {
    bytes: Bytes,
    lives: std::time::Duration,
}

impl Stored {
    fn new(bytes: Bytes, lives: std::time::Duration) -> Self {
        Self { bytes, lives }
    }
}

/// Expires each in-process entry when its own lifetime ends.
struct Lives;

#[expect(
    clippy::disallowed_types,
    reason = "moka's Expiry trait is written with std::time::Instant"
)]
impl moka::Expiry<[u8; 32], Stored> for Lives {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Stored,
        _created_at: std::time::Instant,
    ) -> Option<std::time::Duration> {
        Some(value.lives)
    }

    fn expire_after_update(
        &self,
        _key: &[u8; 32],
        value: &Stored,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        Some(value.lives)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Exact-bytes hashes remembered (64 bytes each).
const EXACT_KEYS: u64 = 100_000;

fn stored(outcome: &str) {
    metrics().cache_stores.with_label_values(&[outcome]).inc();
}

/// `(no-cache, no-store)` from the client's `Cache-Control` (and `Pragma: no-cache`).
fn cache_control(headers: &HeaderMap) -> (bool, bool) {
    let mut no_cache = false;
    let mut no_store = false;
    for value in headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .chain(headers.get_all(header::PRAGMA).iter())
    {
        for directive in value.to_str().unwrap_or_default().split(',') {
            let d = directive.trim();
            no_cache |= d.eq_ignore_ascii_case("no-cache");
            no_store |= d.eq_ignore_ascii_case("no-store");
        }
    }
    (no_cache, no_store)
}

/// A hit as the client asked for it: the stored JSON, or (chat with `stream: true`) its
/// replay as SSE events, usage included when the client asked for it. `None` when a
/// stream was asked for and the entry cannot be replayed as one (then it is a miss).
pub fn hit_response(
    entry: Bytes,
    stream: bool,
    include_usage: bool,
) -> Option<Response<ResponseBody>> {
    let events = match stream {
        true => Some(replay_stream(&entry, include_usage)?),
        false => None,
    };
    let (body, content_type) = match events {
        Some(events) => {
            let mut relay = Relay::events(events, Arc::from("cache"));
            relay.read_usage(false);
            (
                ResponseBody::Relay(Box::new(relay)),
                HeaderValue::from_static("text/event-stream"),
            )
        }
        None => (
            ResponseBody::full(entry),
            HeaderValue::from_static("application/json"),
        ),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    if stream {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    resp.extensions_mut().insert(CacheHit);
    Some(resp)
}

/// What a [`Keeper`] gathers.
enum Kept {
    Json(BytesMut),
    Stream(Box<StreamAssembler>),
}

/// Gathers an answer as the client receives it, and stores it if it ended whole.
struct Keeper {
    cache: Arc<ResponseCache>,
    plan: Plan,
    body: Kept,
    /// Bytes seen so far.
    seen: u64,
    too_large: bool,
}

/// A JSON answer's top level, as far as the cache looks.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

impl Tee for Keeper {
    fn frame(&mut self, data: &Bytes) {
        if self.too_large {
            return;
        }
        // A stream's events carry their answer several times over in framing; past
        // this many bytes its answer cannot fit an entry either, and nothing more is
        // held for it.
        self.seen = self.seen.saturating_add(data.len() as u64);
        let bound = match self.body {
            Kept::Json(_) => self.cache.config.max_entry_bytes,
            Kept::Stream(_) => self.cache.config.max_entry_bytes.saturating_mul(8),
        };
        if self.seen > bound {
            self.too_large = true;
            self.body = Kept::Json(BytesMut::new());
            return;
        }
        match &mut self.body {
            Kept::Json(buf) => buf.extend_from_slice(data),
            Kept::Stream(assembler) => assembler.feed(data),
        }
    }

    fn end(self: Box<Self>, stats: &BodyStats) {
        if self.too_large {
            stored("too_large");
            return;
        }
        if stats.failure.is_some() {
            stored("incomplete");
            return;
        }
        let entry = match self.body {
            // hyper stops reading a body once its `content-length` is written, so the
            // relay may not see its end: whole JSON is what tells a complete answer
            // from one the client walked away from.
            // Some servers answer an error with 200: only an answer is kept.
            Kept::Json(buf) => serde_json::from_slice::<Answer>(&buf)
                .is_ok_and(|a| a.error.is_none())
                .then(|| buf.freeze()),
            Kept::Stream(assembler) => assembler
                .finish_with_usage(
                    stats
                        .usage
                        .map(|u| (u.prompt_tokens, u.completion_tokens.unwrap_or(0))),
                )
                .map(Bytes::from),
        };
        match entry {
            Some(entry) if !entry.is_empty() => self.cache.put(&self.plan, entry),
            _ => stored("incomplete"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_directives_are_read_case_insensitively_from_lists() {
        let mut h = HeaderMap::new();
        assert_eq!(cache_control(&h), (false, false));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, No-Cache"),
        );
        assert_eq!(cache_control(&h), (true, false));
        h.append(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert_eq!(cache_control(&h), (true, true));
        let mut p = HeaderMap::new();
        p.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        assert_eq!(cache_control(&p), (true, false));
    }
}
