//! `token_limiter`: tokens per window from real usage (prompt + completion, streams
//! included), keyed like `rate_limiter`. Checked before the request (a key whose
//! budget is spent gets 429 until it refills), charged when the usage is known at
//! `post_response`. A token bucket per key, refilled continuously; buckets idle for two
//! windows are evicted, and at most `max_keys` are kept. With `state.backend: redis`
//! the bucket lives in Redis (one script per check and per charge), shared by every
//! replica; while Redis does not answer, `state.on_unavailable` decides.

use super::rate_limiter::{state_unavailable, KeyBy};
use super::{BuildCtx, Exchange, Plugin, PluginFuture, Rejection, ResponseExchange, Verdict};
use crate::state::Shared;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_config::{ConfigError, OnUnavailable};
use tokio::time::Instant;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    limit: u64,
    #[serde(deserialize_with = "super::de_duration")]
    window: Duration,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default = "default_max_keys")]
    max_keys: u64,
}

fn default_key() -> String {
    "api_key".to_owned()
}

fn default_max_keys() -> u64 {
    100_000
}

#[derive(Debug)]
struct Bucket {
    available: f64,
    updated: Instant,
}

struct TokenLimit {
    limit: f64,
    window: Duration,
    key: KeyBy,
    buckets: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
    /// The shared store, and this limiter's key prefix in it.
    shared: Option<(Arc<Shared>, String)>,
}

pub(super) fn build(ctx: &BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>> {
    let s: Settings = ctx.config()?;
    let key = KeyBy::parse(&s.key).map_err(|e| ctx.error("key", e))?;
    if s.limit == 0 {
        return Err(ctx.error("limit", "must be at least 1"));
    }
    let mut limiter = TokenLimit::new(s.limit, s.window, key, s.max_keys);
    limiter.shared = ctx
        .state
        .map(|shared| (shared.clone(), shared.key(&["tl", &ctx.spec.id, ""])));
    Ok(Arc::new(limiter))
}

impl TokenLimit {
    fn new(limit: u64, window: Duration, key: KeyBy, max_keys: u64) -> Self {
        Self {
            limit: limit as f64,
            window,
            key,
            buckets: moka::sync::Cache::builder()
                .max_capacity(max_keys)
                .expire_after(UntilRefilled {
                    limit: limit as f64,
                    window,
                })
                .build(),
            shared: None,
        }
    }

    fn bucket(&self, key: String) -> Arc<Mutex<Bucket>> {
        let limit = self.limit;
        self.buckets.get_with(key, || {
            Arc::new(Mutex::new(Bucket {
                available: limit,
                updated: Instant::now(),
            }))
        })
    }

    /// Refills by elapsed time; returns the tokens now available.
    fn refill(&self, b: &mut Bucket, now: Instant) -> f64 {
        let rate = self.limit / self.window.as_secs_f64();
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.available = (b.available + elapsed * rate).min(self.limit);
        b.updated = now;
        b.available
    }

    fn check(&self, key: String) -> Verdict {
        let bucket = self.bucket(key);
        let Ok(mut b) = bucket.lock() else {
            return Verdict::pass();
        };
        let available = self.refill(&mut b, Instant::now());
        drop(b);
        self.verdict(available)
    }

    /// The answer for a bucket holding `available` tokens.
    fn verdict(&self, available: f64) -> Verdict {
        let remaining = (available.max(0.0)) as u64;
        let header =
            |name: &'static str, v: u64| (HeaderName::from_static(name), HeaderValue::from(v));
        if available > 0.0 {
            return Verdict::Continue(super::Effects {
                response_headers: vec![
                    header("x-ratelimit-limit-tokens", self.limit as u64),
                    header("x-ratelimit-remaining-tokens", remaining),
                ],
                ..Default::default()
            });
        }
        let rate = self.limit / self.window.as_secs_f64();
        let wait = ((-available + 1.0) / rate).ceil().max(1.0) as u64;
        let mut r = Rejection::new(
            StatusCode::TOO_MANY_REQUESTS,
            "tokens",
            "rate_limit_exceeded",
            format!(
                "Token limit reached: {} tokens per {:?}. Try again in {wait}s.",
                self.limit, self.window
            ),
        );
        r.headers = vec![
            header("retry-after", wait),
            header("x-ratelimit-limit-tokens", self.limit as u64),
            header("x-ratelimit-remaining-tokens", 0),
            header("x-ratelimit-reset-tokens", wait),
        ];
        Verdict::Reject(r)
    }

    fn charge(&self, key: String, tokens: u64) {
        let bucket = self.bucket(key.clone());
        if let Ok(mut b) = bucket.lock() {
            self.refill(&mut b, Instant::now());
            b.available -= tokens as f64;
        };
        // Re-inserting recomputes the entry's lifetime from the new debt.
        self.buckets.insert(key, bucket);
    }
}

/// A bucket is kept until it would have refilled completely, plus one window idle:
/// evicting it earlier would forgive a debt.
struct UntilRefilled {
    limit: f64,
    window: Duration,
}

impl UntilRefilled {
    fn keep_for(&self, bucket: &Mutex<Bucket>) -> Duration {
        let missing = bucket
            .lock()
            .map_or(0.0, |b| (self.limit - b.available).max(0.0));
        let rate = self.limit / self.window.as_secs_f64();
        let refill =
            Duration::try_from_secs_f64(missing / rate).unwrap_or(switchyard_config::MAX_DURATION);
        self.window + refill.min(switchyard_config::MAX_DURATION)
    }
}

#[expect(
    clippy::disallowed_types,
    reason = "moka's Expiry trait is written with std::time::Instant"
)]
impl moka::Expiry<String, Arc<Mutex<Bucket>>> for UntilRefilled {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Mutex<Bucket>>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(self.keep_for(value))
    }

    fn expire_after_read(
        &self,
        _key: &String,
        value: &Arc<Mutex<Bucket>>,
        _read_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
        _last_modified_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(self.keep_for(value))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Mutex<Bucket>>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.keep_for(value))
    }
}

impl Plugin for TokenLimit {
    fn needs_usage(&self) -> bool {
        true
    }

    fn pre_request<'a>(&'a self, ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        let key = self.key.of(ex.meta);
        let Some((shared, prefix)) = &self.shared else {
            return Box::pin(std::future::ready(Ok(self.check(key))));
        };
        Box::pin(async move {
            let at = format!("{prefix}{key}");
            let limit = self.limit as u64;
            match shared.tokens(&at, limit, self.window, 0).await {
                Ok(bucket) => Ok(self.verdict(bucket.available)),
                Err(_unavailable) => {
                    shared.fell_back("token_limiter");
                    Ok(match shared.on_unavailable() {
                        OnUnavailable::Local => self.check(key),
                        OnUnavailable::Allow => Verdict::pass(),
                        OnUnavailable::Deny => Verdict::Reject(state_unavailable("token limit")),
                    })
                }
            }
        })
    }

    fn post_response<'a>(&'a self, ex: ResponseExchange<'a>) -> PluginFuture<'a, Verdict> {
        let Some(usage) = ex.usage else {
            return Box::pin(std::future::ready(Ok(Verdict::pass())));
        };
        let key = self.key.of(ex.meta);
        let Some((shared, prefix)) = &self.shared else {
            self.charge(key, usage.total());
            return Box::pin(std::future::ready(Ok(Verdict::pass())));
        };
        Box::pin(async move {
            let at = format!("{prefix}{key}");
            let limit = self.limit as u64;
            if shared
                .tokens(&at, limit, self.window, usage.total())
                .await
                .is_err()
            {
                // Kept locally, so a replica that falls back still counts it.
                shared.fell_back("token_limiter");
                self.charge(key, usage.total());
            }
            Ok(Verdict::pass())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spent_budget_rejects_until_it_refills() {
        let tl = TokenLimit::new(100, Duration::from_secs(60), KeyBy::Global, 10);
        assert!(matches!(tl.check("k".into()), Verdict::Continue(_)));
        tl.charge("k".into(), 150); // one big answer overdraws the budget
        let Verdict::Reject(r) = tl.check("k".into()) else {
            panic!("over budget but allowed")
        };
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        // 51 tokens owed at 100 tokens/min: about 31 s.
        tokio::time::advance(Duration::from_secs(32)).await;
        assert!(matches!(tl.check("k".into()), Verdict::Continue(_)));
    }

    // Real time, not paused: moka expires entries on its own clock, so only a real
    // wait can show an early eviction. The debt takes hours to repay, so no scheduling
    // delay can pay it off before the check.
    #[tokio::test]
    async fn a_debt_is_not_forgiven_by_evicting_the_bucket() {
        let tl = TokenLimit::new(10, Duration::from_millis(100), KeyBy::Global, 10);
        tl.charge("k".into(), 1_000_000); // ~10,000 s to pay back
        tokio::time::sleep(Duration::from_millis(300)).await; // > 2 windows idle
        tl.buckets.run_pending_tasks();
        assert!(matches!(tl.check("k".into()), Verdict::Reject(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_separate_budgets() {
        let tl = TokenLimit::new(10, Duration::from_secs(60), KeyBy::Global, 10);
        tl.charge("a".into(), 50);
        assert!(matches!(tl.check("a".into()), Verdict::Reject(_)));
        assert!(matches!(tl.check("b".into()), Verdict::Continue(_)));
    }
}
