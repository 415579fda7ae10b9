//! Per-user rate limiting shared by proxy replicas: token buckets in Redis
//! ([`RedisRateLimiter`]). The limiter trait, the in-process buckets and where the limit
//! runs (with every other request limit) are `canopy_edge`'s.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;

pub use canopy_edge::ratelimit::{retry_after_seconds, Decision, RateLimiter, TokenBuckets};

use crate::ProxyError;

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
