//! What the gateway asks of Redis, each in one round trip: a GCRA check and a token
//! bucket as server-side Lua scripts (atomic, timed by the server's clock, so replicas
//! with skewed clocks agree), budget windows as hash counters, and cache entries.
//! Scripts go by `EVALSHA`, loaded on the first `NOSCRIPT`. Numbers are written with
//! `string.format` (Lua's own conversion keeps 14 digits: a µs clock needs 16).

use super::{Shared, Unavailable};
use std::sync::LazyLock;
use std::time::Duration;

/// GCRA (the generic cell rate algorithm, as governor computes it in memory): the key
/// holds the theoretical arrival time in microseconds of the server's clock. A request
/// is admitted when `tat - now <= tau - T`; then `tat = max(tat, now) + T`.
/// ARGV: T (µs per request), tau (µs: T × burst). Returns {admitted, wait µs, backlog µs}.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + period
if new_tat - now > tau then
  return {0, new_tat - tau - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, new_tat - now}
",
    )
});

/// A token bucket refilled continuously: the hash holds the tokens available (`a`,
/// may be negative: a debt) and when it was computed (`t`, µs). Subtracts `cost` (0: a
/// check) and keeps the key until the bucket would be full again, plus one window.
/// ARGV: limit, refill per µs, cost, window ms. Returns the tokens available after.
static TOKENS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'a', 't')
local a = tonumber(h[1]) or limit
local at = tonumber(h[2]) or now
a = math.min(limit, a + math.max(0, now - at) * rate) - cost
if cost > 0 then
  redis.call('HSET', KEYS[1], 'a', string.format('%.17g', a), 't', string.format('%d', now))
  local refill_ms = math.ceil(math.max(0, limit - a) / rate / 1000)
  redis.call('PEXPIRE', KEYS[1], refill_ms + tonumber(ARGV[4]))
end
return string.format('%.17g', a)
",
    )
});

/// A GCRA decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Admitted.
    pub admitted: bool,
    /// When refused: how long until a request would be admitted.
    pub wait: Duration,
    /// How far ahead of now the key's arrival time is (after this request, if admitted):
    /// used slots × the period.
    pub backlog: Duration,
}

/// A token bucket's state after a check or a charge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    /// Tokens available (negative: owed).
    pub available: f64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Shared {
    /// One GCRA check of `key`: `period` per request, `burst` at once.
    pub async fn gcra(&self, key: &str, period: Duration, burst: u32) -> Result<Gcra, Unavailable> {
        let period = micros(period).max(1);
        let tau = period.saturating_mul(u64::from(burst));
        let (admitted, wait, backlog): (i64, i64, i64) = self
            .run(|mut conn| async move {
                GCRA.key(key)
                    .arg(period)
                    .arg(tau)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Gcra {
            admitted: admitted == 1,
            wait: us(wait),
            backlog: us(backlog),
        })
    }

    /// Checks (`cost` 0) or charges a token bucket of `limit` tokens per `window`.
    pub async fn tokens(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        cost: u64,
    ) -> Result<TokenBucket, Unavailable> {
        let rate = limit as f64 / micros(window).max(1) as f64;
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let available: String = self
            .run(|mut conn| async move {
                TOKENS
                    .key(key)
                    .arg(limit)
                    .arg(rate)
                    .arg(cost)
                    .arg(window_ms)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        available
            .parse()
            .map(|available| TokenBucket { available })
            .map_err(|_discarded| Unavailable::Failed(format!("bad script answer `{available}`")))
    }

    /// A budget window's usage so far: tokens and dollars.
    pub async fn window_usage(&self, key: &str) -> Result<(u64, f64), Unavailable> {
        let (tokens, usd): (Option<u64>, Option<f64>) = self
            .run(|mut conn| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("tokens")
                    .arg("usd")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok((tokens.unwrap_or(0), usd.unwrap_or(0.0)))
    }

    /// Adds to a budget window's usage; the window's key expires `ttl` after.
    pub async fn add_window_usage(
        &self,
        key: &str,
        tokens: u64,
        usd: f64,
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.run(|mut conn| async move {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("HINCRBY")
                .arg(key)
                .arg("tokens")
                .arg(tokens)
                .ignore()
                .cmd("HINCRBYFLOAT")
                .arg(key)
                .arg("usd")
                .arg(usd)
                .ignore()
                .cmd("PEXPIRE")
                .arg(key)
                .arg(ttl_ms)
                .ignore();
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// A stored value.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        self.run(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
            .await
    }

    /// A stored value and how long it has left (one round trip: `GET` and `PTTL`).
    pub async fn get_with_ttl(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Duration)>, Unavailable> {
        let (value, ttl_ms): (Option<Vec<u8>>, i64) = self
            .run(|mut conn| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(key)
                    .cmd("PTTL")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        // PTTL: -1 no expiry, -2 gone since the GET.
        let left = Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0));
        Ok(value.filter(|_| ttl_ms != -2).map(|v| (v, left)))
    }

    /// Stores a value for `ttl`.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Unavailable> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(|mut conn| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }
}
