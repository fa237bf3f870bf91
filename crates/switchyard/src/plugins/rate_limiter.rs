//! `rate_limiter`: requests per window with a burst, per caller key, IP, model, header
//! or globally (governor's GCRA, keyed). Over the limit: 429 `rate_limit_exceeded` with
//! `Retry-After` and `x-ratelimit-limit` / `-remaining` / `-reset`; within it the same
//! headers go on the response. Idle keys are evicted as the limiter is used, so memory
//! stays bounded under many distinct keys. With `state.backend: redis` the same GCRA
//! runs in Redis (one script per check), so every replica shares one limit; while Redis
//! does not answer, `state.on_unavailable` decides (the local limiter, allow or deny).

use super::{BuildCtx, Exchange, Plugin, PluginFuture, Rejection, RequestMeta, Verdict};
use crate::state::{Gcra, Shared};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_config::{ConfigError, OnUnavailable};

/// Checks between two evictions of idle keys.
const EVICT_EVERY: u64 = 1024;

/// What a limit is counted per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyBy {
    /// The caller's key (or bearer-token hash when no keys are configured).
    ApiKey,
    /// The peer IP address.
    Ip,
    /// The requested model.
    Model,
    /// A request header's value.
    Header(HeaderName),
    /// One limit for everyone.
    Global,
}

impl KeyBy {
    /// Parses `api_key`, `ip`, `model`, `global` or `header:<name>`.
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "api_key" => Ok(Self::ApiKey),
            "ip" => Ok(Self::Ip),
            "model" => Ok(Self::Model),
            "global" => Ok(Self::Global),
            other => match other.strip_prefix("header:") {
                Some(name) => HeaderName::from_bytes(name.trim().as_bytes())
                    .map(Self::Header)
                    .map_err(|_discarded| format!("`{name}` is not a header name")),
                None => Err(format!(
                    "unknown key `{other}` (expected api_key, ip, model, global or header:<name>)"
                )),
            },
        }
    }

    /// The limit key of a request.
    pub(super) fn of(&self, meta: &RequestMeta) -> String {
        match self {
            Self::ApiKey => meta.caller.limit_key(),
            Self::Ip => meta.caller.ip.to_string(),
            Self::Model => meta.model.clone(),
            Self::Header(name) => meta
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
            Self::Global => String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    limit: u32,
    #[serde(deserialize_with = "super::de_duration")]
    window: Duration,
    burst: Option<u32>,
    #[serde(default = "default_key")]
    key: String,
}

fn default_key() -> String {
    "api_key".to_owned()
}

type Limiter<C> = RateLimiter<String, DashMapStateStore<String>, C, StateInformationMiddleware>;

/// The limiter reads time from `C`: the real clock in production, a fake one in tests.
struct RateLimit<C: Clock = DefaultClock> {
    limiter: Limiter<C>,
    clock: C,
    /// Requests per window.
    limit: u32,
    /// Requests that may come at once.
    burst: u32,
    window: Duration,
    key: KeyBy,
    checks: AtomicU64,
    /// The shared store, and this limiter's key prefix in it.
    shared: Option<(Arc<Shared>, String)>,
}

pub(super) fn build(ctx: &BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>> {
    let s: Settings = ctx.config()?;
    let key = KeyBy::parse(&s.key).map_err(|e| ctx.error("key", e))?;
    let limit = NonZeroU32::new(s.limit).ok_or_else(|| ctx.error("limit", "must be at least 1"))?;
    let burst = NonZeroU32::new(s.burst.unwrap_or(s.limit))
        .ok_or_else(|| ctx.error("burst", "must be at least 1"))?;
    let period = s.window / limit.get();
    let quota = Quota::with_period(period)
        .ok_or_else(|| ctx.error("window", "is too short for this limit"))?
        .allow_burst(burst);
    let mut limiter = RateLimit::new(quota, limit, s.window, key, DefaultClock::default());
    limiter.shared = ctx
        .state
        .map(|shared| (shared.clone(), shared.key(&["rl", &ctx.spec.id, ""])));
    Ok(Arc::new(limiter))
}

fn header(name: &'static str, value: u64) -> (HeaderName, HeaderValue) {
    (HeaderName::from_static(name), HeaderValue::from(value))
}

impl<C: Clock + Clone> RateLimit<C> {
    fn new(quota: Quota, limit: NonZeroU32, window: Duration, key: KeyBy, clock: C) -> Self {
        Self {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
            clock,
            limit: limit.get(),
            burst: quota.burst_size().get(),
            window,
            key,
            checks: AtomicU64::new(0),
            shared: None,
        }
    }

    /// The answer to an admitted request: the limit, what is left, and when it is all
    /// back.
    fn admitted(&self, remaining: u64, reset: u64) -> Verdict {
        Verdict::Continue(super::Effects {
            response_headers: vec![
                header("x-ratelimit-limit", u64::from(self.limit)),
                header("x-ratelimit-remaining", remaining),
                header("x-ratelimit-reset", reset),
            ],
            ..Default::default()
        })
    }

    /// The answer to a refused request: 429 with the wait.
    fn refused(&self, wait: Duration) -> Verdict {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut r = Rejection::new(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            "rate_limit_exceeded",
            format!(
                "Rate limit reached: {} requests per {:?}. Try again in {secs}s.",
                self.limit, self.window
            ),
        );
        r.headers = vec![
            header("retry-after", secs.max(1)),
            header("x-ratelimit-limit", u64::from(self.limit)),
            header("x-ratelimit-remaining", 0),
            header("x-ratelimit-reset", secs.max(1)),
        ];
        Verdict::Reject(r)
    }

    /// A decision of the shared GCRA, in the same headers as the local one.
    fn shared_verdict(&self, g: Gcra) -> Verdict {
        if !g.admitted {
            return self.refused(g.wait);
        }
        let period = self.window.as_secs_f64() / f64::from(self.limit);
        let used = (g.backlog.as_secs_f64() / period).round();
        let remaining = (f64::from(self.burst) - used).max(0.0) as u64;
        self.admitted(remaining, g.backlog.as_secs_f64().ceil() as u64)
    }

    fn check(&self, key: String) -> Verdict {
        if self.checks.fetch_add(1, Ordering::Relaxed) % EVICT_EVERY == EVICT_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        match self.limiter.check_key(&key) {
            Ok(state) => {
                let remaining = u64::from(state.remaining_burst_capacity());
                // Each used slot comes back after window / limit.
                let used = u64::from(self.burst).saturating_sub(remaining);
                let reset =
                    (self.window.as_secs_f64() * used as f64 / f64::from(self.limit)).ceil() as u64;
                self.admitted(remaining, reset)
            }
            Err(not_until) => self.refused(not_until.wait_time_from(self.clock.now())),
        }
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }
}

impl Plugin for RateLimit {
    fn pre_request<'a>(&'a self, ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        let key = self.key.of(ex.meta);
        let Some((shared, prefix)) = &self.shared else {
            return Box::pin(std::future::ready(Ok(self.check(key))));
        };
        Box::pin(async move {
            let period = self.window / self.limit;
            let at = format!("{prefix}{key}");
            match shared.gcra(&at, period, self.burst).await {
                Ok(g) => Ok(self.shared_verdict(g)),
                Err(_unavailable) => {
                    shared.fell_back("rate_limiter");
                    Ok(match shared.on_unavailable() {
                        OnUnavailable::Local => self.check(key),
                        OnUnavailable::Allow => Verdict::pass(),
                        OnUnavailable::Deny => Verdict::Reject(state_unavailable("rate limit")),
                    })
                }
            }
        })
    }
}

/// 503 for a limited request while the shared store cannot say whether it is within
/// its limit (`state.on_unavailable: deny`).
pub(super) fn state_unavailable(what: &str) -> Rejection {
    let mut r = Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "state_unavailable",
        format!("The shared {what} state cannot be reached; try again shortly."),
    );
    r.headers = vec![header("retry-after", 1)];
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    /// A limiter on a fake clock, and the clock: time moves only when the test says.
    fn limiter(limit: u32, window: Duration) -> (RateLimit<FakeRelativeClock>, FakeRelativeClock) {
        with_burst(limit, limit, window)
    }

    fn with_burst(
        limit: u32,
        burst: u32,
        window: Duration,
    ) -> (RateLimit<FakeRelativeClock>, FakeRelativeClock) {
        let quota = Quota::with_period(window / limit)
            .unwrap()
            .allow_burst(NonZeroU32::new(burst).unwrap());
        let clock = FakeRelativeClock::default();
        let rl = RateLimit::new(
            quota,
            NonZeroU32::new(limit).unwrap(),
            window,
            KeyBy::Global,
            clock.clone(),
        );
        (rl, clock)
    }

    fn retry_after(v: &Verdict) -> u64 {
        let Verdict::Reject(r) = v else {
            panic!("request allowed")
        };
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        r.headers
            .iter()
            .find(|(n, _)| n == "retry-after")
            .map(|(_, v)| v.to_str().unwrap().parse().unwrap())
            .unwrap()
    }

    #[test]
    fn allows_the_burst_then_rejects_with_the_time_until_the_next_slot() {
        let (rl, _clock) = limiter(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(matches!(rl.check("k".into()), Verdict::Continue(_)));
        }
        // One slot comes back every 60 s / 3.
        assert_eq!(retry_after(&rl.check("k".into())), 20);
    }

    #[test]
    fn another_key_has_its_own_budget() {
        let (rl, _clock) = limiter(1, Duration::from_secs(60));
        assert!(matches!(rl.check("k".into()), Verdict::Continue(_)));
        assert!(matches!(rl.check("k".into()), Verdict::Reject(_)));
        assert!(matches!(rl.check("other".into()), Verdict::Continue(_)));
    }

    #[test]
    fn a_rejected_key_is_allowed_again_exactly_when_a_slot_refills() {
        let (rl, clock) = limiter(3, Duration::from_secs(60));
        for _ in 0..3 {
            rl.check("k".into());
        }
        clock.advance(Duration::from_millis(19_999));
        assert_eq!(retry_after(&rl.check("k".into())), 1);
        clock.advance(Duration::from_millis(1));
        assert!(matches!(rl.check("k".into()), Verdict::Continue(_)));
    }

    #[test]
    fn headers_report_the_limit_and_the_time_to_refill_not_the_burst() {
        let (rl, _clock) = with_burst(100, 10, Duration::from_secs(60));
        let mut last = None;
        for _ in 0..5 {
            last = Some(rl.check("k".into()));
        }
        let Some(Verdict::Continue(effects)) = last else {
            panic!("allowed requests expected")
        };
        let h = |name: &str| {
            effects
                .response_headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
                .unwrap()
        };
        assert_eq!(h("x-ratelimit-limit"), "100");
        assert_eq!(h("x-ratelimit-remaining"), "5");
        assert_eq!(h("x-ratelimit-reset"), "3"); // 5 slots × 0.6 s
    }

    #[test]
    fn idle_keys_are_evicted() {
        let (rl, clock) = limiter(1000, Duration::from_millis(10));
        for i in 0..5000 {
            rl.check(format!("key-{i}"));
        }
        clock.advance(Duration::from_millis(30)); // every key's window has passed
        for i in 0..EVICT_EVERY {
            rl.check(format!("fresh-{}", i % 4));
        }
        assert!(rl.tracked_keys() < 100, "{} keys kept", rl.tracked_keys());
    }

    #[test]
    fn key_specs_parse() {
        assert_eq!(KeyBy::parse("ip").unwrap(), KeyBy::Ip);
        assert!(matches!(
            KeyBy::parse("header:x-user").unwrap(),
            KeyBy::Header(_)
        ));
        assert!(KeyBy::parse("user").is_err());
    }
}
