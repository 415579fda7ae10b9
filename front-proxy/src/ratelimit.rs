//! Per-user rate limiting: a token bucket per user (`qps` tokens a second, at most
//! `burst`), behind the [`RateLimiter`] trait so that the buckets can live in this
//! process ([`TokenBuckets`]) or in Redis, shared by every proxy replica
//! ([`RedisRateLimiter`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::ProxyError;

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Allow,
    /// Over the limit: the next token comes in `retry_after`.
    Deny {
        retry_after: Duration,
    },
}

/// Decides whether `key` (the user name) may make one more request now.
pub trait RateLimiter: Send + Sync + 'static {
    fn check<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Decision>;
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets in this process.
pub struct TokenBuckets {
    qps: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    last_sweep: Mutex<Instant>,
}

impl TokenBuckets {
    pub fn new(qps: f64, burst: u32) -> TokenBuckets {
        TokenBuckets {
            qps,
            burst: burst.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Takes a token for `key` at `now`.
    pub fn take(&self, key: &str, now: Instant) -> Decision {
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.qps)
                .min(self.burst)
        };
        let mut buckets = self.buckets.lock();
        // Forget buckets that are full again (they behave as new ones), now and then.
        {
            let mut last = self.last_sweep.lock();
            if now.saturating_duration_since(*last) > Duration::from_secs(60) {
                buckets.retain(|_, b| refill(b) < self.burst);
                *last = now;
            }
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = refill(b);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Decision::Allow
        } else {
            Decision::Deny {
                retry_after: Duration::from_secs_f64((1.0 - b.tokens) / self.qps),
            }
        }
    }
}

impl RateLimiter for TokenBuckets {
    fn check<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Decision> {
        let d = self.take(key, Instant::now());
        Box::pin(async move { d })
    }
}

/// The token bucket as one atomic Redis script, timed by the Redis server's clock so
/// that replicas agree. Returns {allowed, milliseconds until the next token}.
const BUCKET_SCRIPT: &str = r#"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1])
local at = tonumber(v[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
local elapsed = math.max(0, now - at) / 1000000
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait_ms}
"#;

/// Token buckets in Redis (`canopy:front-proxy:ratelimit:<user>`), shared by every
/// replica. When Redis cannot be reached, this replica limits with buckets of its own
/// for the next few seconds (logged), then tries Redis again: the limiter protects the
/// shards from overload, and a Redis outage should neither stop traffic nor slow every
/// request down by a timeout.
pub struct RedisRateLimiter {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    qps: f64,
    burst: u32,
    fallback: TokenBuckets,
    /// While set and in the future, Redis is not asked.
    redis_down_until: Mutex<Option<Instant>>,
}

/// How long a replica limits on its own after Redis failed.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);

impl RedisRateLimiter {
    /// Connects to Redis (see [`crate::redisconn`]: AUTH, TLS, redacted errors).
    pub async fn connect(
        redis: &crate::redisconn::RedisSettings,
        qps: f64,
        burst: u32,
    ) -> Result<RedisRateLimiter, ProxyError> {
        let (_, conn) = crate::redisconn::connect(redis, Duration::from_millis(500))
            .await
            .map_err(ProxyError::RateLimiter)?;
        Ok(RedisRateLimiter {
            conn,
            script: redis::Script::new(BUCKET_SCRIPT),
            qps,
            burst: burst.max(1),
            fallback: TokenBuckets::new(qps, burst),
            redis_down_until: Mutex::new(None),
        })
    }
}

impl RateLimiter for RedisRateLimiter {
    fn check<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            if self
                .redis_down_until
                .lock()
                .is_some_and(|t| Instant::now() < t)
            {
                return self.fallback.take(key, Instant::now());
            }
            let mut conn = self.conn.clone();
            let r: Result<(i64, i64), _> = self
                .script
                .key(format!("canopy:front-proxy:ratelimit:{key}"))
                .arg(self.qps)
                .arg(self.burst)
                .invoke_async(&mut conn)
                .await;
            match r {
                Ok((1, _)) => Decision::Allow,
                Ok((_, wait_ms)) => Decision::Deny {
                    retry_after: Duration::from_millis(wait_ms.max(1) as u64),
                },
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?REDIS_RETRY_AFTER, "rate limiter: Redis unavailable; limiting in this replica meanwhile");
                    *self.redis_down_until.lock() = Some(Instant::now() + REDIS_RETRY_AFTER);
                    self.fallback.take(key, Instant::now())
                }
            }
        })
    }
}

/// Seconds for a `Retry-After` header: whole seconds, at least 1.
pub fn retry_after_seconds(d: Duration) -> u32 {
    (d.as_secs_f64().ceil() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_qps_per_user() {
        let l = TokenBuckets::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take("alice", t0), Decision::Allow);
        }
        let Decision::Deny { retry_after } = l.take("alice", t0) else {
            panic!("fourth request at once is limited");
        };
        assert!(
            (retry_after.as_secs_f64() - 0.5).abs() < 1e-6,
            "{retry_after:?}"
        );
        assert_eq!(retry_after_seconds(retry_after), 1);
        // another user has their own bucket
        assert_eq!(l.take("bob", t0), Decision::Allow);
        // half a second later one token is back
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.take("alice", t1), Decision::Allow);
        assert!(matches!(l.take("alice", t1), Decision::Deny { .. }));
        // never more than the burst
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.take("alice", t2), Decision::Allow);
        }
        assert!(matches!(l.take("alice", t2), Decision::Deny { .. }));
    }
}
