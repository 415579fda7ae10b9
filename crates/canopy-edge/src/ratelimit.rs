//! Per-user rate limiting: a token bucket per user (`qps` tokens a second, at most
//! `burst`), behind the [`RateLimiter`] trait so that the buckets can live in this
//! process ([`TokenBuckets`]) or elsewhere (the front-proxy's Redis limiter, shared by
//! every replica).
//!
//! Why: in-flight limits bound how much work runs at once; a rate limit bounds how
//! much one user can ask for over time (every request costs authentication, parsing
//! and a log line even when it is refused later), so a tenant's runaway loop cannot
//! take a large share of a shard.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;

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
