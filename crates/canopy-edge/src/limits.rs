//! [`Limits`]: the request-level limits of one server, and the [`Permit`] a request
//! holds while it runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canopy_core::ApiError;
use canopy_metrics::Gauge;
use parking_lot::Mutex;

use crate::pool::{Pool, Refused, Seat};
use crate::ratelimit::{retry_after_seconds, Decision, RateLimiter, TokenBuckets};
use crate::{EdgeMetrics, Identity, RequestKind};

/// kube-apiserver's `--max-requests-inflight`.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;
/// kube-apiserver's `--max-mutating-requests-inflight`.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;
/// Requests one user may have waiting for a seat, per pool (kube APF's default queue
/// length limit).
pub const DEFAULT_MAX_QUEUED_PER_USER: usize = 50;
/// How long a request may wait for a seat (kube APF: a quarter of the 60 s request
/// timeout).
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(15);
/// Watches one user may have open on one server. A kubectl or an operator needs a
/// handful per resource type it follows; 100 leaves room for informers over many
/// workspaces while 100 users cannot exhaust a server.
pub const DEFAULT_MAX_WATCHES_PER_USER: usize = 100;
/// Sustained requests per second per user.
pub const DEFAULT_RATE_LIMIT_QPS: f64 = 50.0;
/// Requests a user may make at once (token bucket size).
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 100;
/// kube's message for 429s of its in-flight limits.
pub const TOO_MANY_REQUESTS: &str = "Too many requests, please try again later.";

/// Every request limit of a server. Each is a flag of the shard, the front-proxy and
/// `canopy start` (see `flags`); `0` turns a limit off.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Read-only requests (get, list) running at once (`--max-requests-inflight`).
    pub max_requests_inflight: usize,
    /// Mutating requests running at once (`--max-mutating-requests-inflight`).
    pub max_mutating_requests_inflight: usize,
    /// Requests one user may have waiting for a seat, per pool (`--max-queued-per-user`).
    pub max_queued_per_user: usize,
    /// How long a request waits for a seat before 429 (`--queue-wait-timeout`).
    pub queue_wait: Duration,
    /// Watches (long-running requests) one user may have open (`--max-watches-per-user`).
    pub max_watches_per_user: usize,
    /// Watches open in this process in total (`--max-watches`); derived from the
    /// file-descriptor limit by default.
    pub max_watches: usize,
    /// Per-user token bucket: requests per second (`--rate-limit-qps`).
    pub rate_limit_qps: f64,
    /// Per-user token bucket size (`--rate-limit-burst`).
    pub rate_limit_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_requests_inflight: DEFAULT_MAX_REQUESTS_INFLIGHT,
            max_mutating_requests_inflight: DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
            max_queued_per_user: DEFAULT_MAX_QUEUED_PER_USER,
            queue_wait: DEFAULT_QUEUE_WAIT,
            max_watches_per_user: DEFAULT_MAX_WATCHES_PER_USER,
            max_watches: canopy_https::default_max_connections(1),
            rate_limit_qps: DEFAULT_RATE_LIMIT_QPS,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
        }
    }
}

impl LimitsConfig {
    /// No limit at all (tests of other things, benchmarks of raw speed).
    pub fn unlimited() -> LimitsConfig {
        LimitsConfig {
            max_requests_inflight: 0,
            max_mutating_requests_inflight: 0,
            max_queued_per_user: 0,
            queue_wait: Duration::ZERO,
            max_watches_per_user: 0,
            max_watches: 0,
            rate_limit_qps: 0.0,
            rate_limit_burst: 0,
        }
    }
}

/// Every limit a server applies: per connection (`canopy_https`) and per request.
/// `Default`: the production defaults of a shard.
#[derive(Debug, Clone, Default)]
pub struct ServerLimits {
    pub connections: canopy_https::ConnectionLimits,
    pub requests: LimitsConfig,
}

impl ServerLimits {
    /// The production defaults for a process whose file descriptors are shared `ways`
    /// ways (a front-proxy: 2, since a proxied watch may need a connection to a shard:
    /// a user's watches share theirs, but in the worst case every watch is a different
    /// user's): the connection and watch caps are divided accordingly.
    pub fn sharing_fds(ways: u64) -> ServerLimits {
        let cap = canopy_https::default_max_connections(ways);
        let mut l = ServerLimits::default();
        l.connections.max_connections = cap;
        l.requests.max_watches = cap;
        l
    }

    /// No limit at all but the timeouts (for tests of other things).
    pub fn unlimited() -> ServerLimits {
        ServerLimits {
            connections: canopy_https::ConnectionLimits {
                max_connections: 0,
                max_connections_per_ip: 0,
                ..Default::default()
            },
            requests: LimitsConfig::unlimited(),
        }
    }
}

/// The request limits of one server: cheap to clone (shared state inside).
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

struct Inner {
    config: LimitsConfig,
    read_only: Arc<Pool>,
    mutating: Arc<Pool>,
    watches: Mutex<HashMap<String, usize>>,
    watches_total: AtomicUsize,
    rate: Option<Arc<dyn RateLimiter>>,
    metrics: EdgeMetrics,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// Limits with per-user token buckets in this process (when the rate limit is on),
    /// counting in `metrics`.
    pub fn new(config: LimitsConfig, metrics: EdgeMetrics) -> Limits {
        let rate: Option<Arc<dyn RateLimiter>> = (config.rate_limit_qps > 0.0).then(|| {
            Arc::new(TokenBuckets::new(
                config.rate_limit_qps,
                config.rate_limit_burst,
            )) as Arc<dyn RateLimiter>
        });
        Limits::with_rate_limiter(config, rate, metrics)
    }

    /// Limits with the given rate limiter (`None`: no rate limit), e.g. buckets shared
    /// by proxy replicas in Redis.
    pub fn with_rate_limiter(
        config: LimitsConfig,
        rate: Option<Arc<dyn RateLimiter>>,
        metrics: EdgeMetrics,
    ) -> Limits {
        Limits {
            inner: Arc::new(Inner {
                read_only: Pool::new(
                    config.max_requests_inflight,
                    config.max_queued_per_user,
                    config.queue_wait,
                ),
                mutating: Pool::new(
                    config.max_mutating_requests_inflight,
                    config.max_queued_per_user,
                    config.queue_wait,
                ),
                watches: Mutex::new(HashMap::new()),
                watches_total: AtomicUsize::new(0),
                rate,
                metrics,
                config,
            }),
        }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &EdgeMetrics {
        &self.inner.metrics
    }

    /// Watches open now (all users).
    pub fn open_watches(&self) -> usize {
        self.inner.watches_total.load(Ordering::Acquire)
    }

    /// Lets a request of `who` of `kind` through, or answers why not (429 with
    /// `Retry-After`). Hold the permit until the response body ends.
    pub async fn admit(&self, who: &Identity, kind: RequestKind) -> Result<Permit, ApiError> {
        if kind == RequestKind::Exempt || who.is_exempt() {
            return Ok(Permit::default());
        }
        let kind_label = match kind {
            RequestKind::ReadOnly => "readOnly",
            RequestKind::Mutating => "mutating",
            _ => "longRunning",
        };
        let m = &self.inner.metrics;
        if let Some(rate) = &self.inner.rate {
            if let Decision::Deny { retry_after } = rate.check(&who.user).await {
                m.reject("rate_limit", kind_label);
                return Err(ApiError::too_many_requests(
                    TOO_MANY_REQUESTS,
                    retry_after_seconds(retry_after),
                ));
            }
        }
        match kind {
            RequestKind::LongRunning => self.open_watch(who).map(|w| Permit {
                gauge: Some(GaugeGuard::new(m.gauge(kind_label))),
                seat: None,
                watch: Some(w),
            }),
            _ => {
                let pool = if kind == RequestKind::Mutating {
                    &self.inner.mutating
                } else {
                    &self.inner.read_only
                };
                match pool.acquire(&who.user).await {
                    Ok(seat) => Ok(Permit {
                        gauge: Some(GaugeGuard::new(m.gauge(kind_label))),
                        seat: Some(seat),
                        watch: None,
                    }),
                    Err(why) => {
                        m.reject(
                            match why {
                                Refused::QueueFull => "queue_full",
                                Refused::Timeout => "queue_timeout",
                            },
                            kind_label,
                        );
                        Err(ApiError::too_many_requests(TOO_MANY_REQUESTS, 1))
                    }
                }
            }
        }
    }

    // ApiError is the Status every handler returns; boxing it is canopy-core's call
    #[allow(clippy::result_large_err)]
    fn open_watch(&self, who: &Identity) -> Result<WatchSlot, ApiError> {
        let cfg = &self.inner.config;
        let m = &self.inner.metrics;
        let mut per_user = self.inner.watches.lock();
        let n = per_user.get(&who.user).copied().unwrap_or(0);
        if cfg.max_watches_per_user > 0 && n >= cfg.max_watches_per_user {
            m.reject("max_watches_per_user", "longRunning");
            return Err(ApiError::too_many_requests(
                format!(
                    "Too many watches: user {:?} already has {n} open, the most one user may have on this server (--max-watches-per-user={}); close some before opening more.",
                    who.user, cfg.max_watches_per_user
                ),
                5,
            ));
        }
        let total = self.inner.watches_total.load(Ordering::Acquire);
        if cfg.max_watches > 0 && total >= cfg.max_watches {
            m.reject("max_watches", "longRunning");
            return Err(ApiError::too_many_requests(
                format!(
                    "Too many watches on this server ({total}, --max-watches={}); please try again later.",
                    cfg.max_watches
                ),
                5,
            ));
        }
        per_user.insert(who.user.clone(), n + 1);
        self.inner.watches_total.fetch_add(1, Ordering::AcqRel);
        Ok(WatchSlot {
            limits: self.clone(),
            user: who.user.clone(),
        })
    }
}

/// What a request holds while it runs: an in-flight seat or an open-watch slot (nothing
/// for exempt requests). Dropping it gives them back.
#[derive(Default)]
pub struct Permit {
    #[allow(dead_code)] // held for its Drop
    gauge: Option<GaugeGuard>,
    seat: Option<Seat>,
    watch: Option<WatchSlot>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("seat", &self.seat.is_some())
            .field("watch", &self.watch.is_some())
            .finish()
    }
}

/// Counts the request in `<prefix>_inflight_requests` while it runs.
struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(g: Gauge) -> GaugeGuard {
        g.increment(1.0);
        GaugeGuard(g)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

struct WatchSlot {
    limits: Limits,
    user: String,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let inner = &self.limits.inner;
        let mut per_user = inner.watches.lock();
        if let Some(n) = per_user.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_user.remove(&self.user);
            }
        }
        inner.watches_total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Identity {
        Identity::new(name, &["system:authenticated".to_string()])
    }

    #[tokio::test]
    async fn watch_cap_is_per_user_and_freed_on_drop() {
        let l = Limits::new(
            LimitsConfig {
                max_watches_per_user: 2,
                max_watches: 3,
                ..LimitsConfig::unlimited()
            },
            EdgeMetrics::default(),
        );
        let a1 = l.admit(&user("a"), RequestKind::LongRunning).await.unwrap();
        let _a2 = l.admit(&user("a"), RequestKind::LongRunning).await.unwrap();
        let e = l
            .admit(&user("a"), RequestKind::LongRunning)
            .await
            .unwrap_err();
        assert_eq!(e.code, 429);
        assert!(
            e.message.contains("--max-watches-per-user=2"),
            "{}",
            e.message
        );
        // another user is not affected, up to the process-wide cap
        let _b1 = l.admit(&user("b"), RequestKind::LongRunning).await.unwrap();
        let e = l
            .admit(&user("b"), RequestKind::LongRunning)
            .await
            .unwrap_err();
        assert!(e.message.contains("--max-watches=3"), "{}", e.message);
        // superusers are exempt
        let admin = Identity::new("admin", &["system:masters".to_string()]);
        l.admit(&admin, RequestKind::LongRunning).await.unwrap();
        drop(a1);
        let _a3 = l.admit(&user("a"), RequestKind::LongRunning).await.unwrap();
        assert_eq!(l.open_watches(), 3);
        assert_eq!(l.metrics().rejected_count("max_watches_per_user"), 1);
    }

    #[tokio::test]
    async fn flooding_one_pool_does_not_starve_another_user() {
        let l = Limits::new(
            LimitsConfig {
                max_mutating_requests_inflight: 2,
                max_queued_per_user: 3,
                queue_wait: Duration::from_secs(30),
                ..LimitsConfig::unlimited()
            },
            EdgeMetrics::default(),
        );
        // the flooder holds both seats and fills its queue
        let flooder = user("flooder");
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(l.admit(&flooder, RequestKind::Mutating).await.unwrap());
        }
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.admit(&user("flooder"), RequestKind::Mutating).await })
            })
            .collect();
        while l.inner.mutating.waiting() < 3 {
            tokio::task::yield_now().await;
        }
        let e = l
            .admit(&user("flooder"), RequestKind::Mutating)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (429, TOO_MANY_REQUESTS));
        assert_eq!(e.retry_after_seconds, Some(1));
        // another user waits in its own queue and is served at the next free seat
        let l2 = l.clone();
        let other =
            tokio::spawn(async move { l2.admit(&user("other"), RequestKind::Mutating).await });
        while l.inner.mutating.waiting() < 4 {
            tokio::task::yield_now().await;
        }
        // reads are a separate pool
        l.admit(&user("other"), RequestKind::ReadOnly)
            .await
            .unwrap();
        drop(held.pop());
        // first freed seat: the flooder was first in line, so it gets it…
        let first = queued.into_iter().next().unwrap();
        let _p = first.await.unwrap().unwrap();
        drop(held.pop());
        // …the next goes to the other user, not to the flooder's second waiter
        let _o = tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("the other user gets the next seat")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn rate_limit_per_user() {
        let l = Limits::new(
            LimitsConfig {
                rate_limit_qps: 1.0,
                rate_limit_burst: 2,
                ..LimitsConfig::unlimited()
            },
            EdgeMetrics::default(),
        );
        for _ in 0..2 {
            l.admit(&user("a"), RequestKind::ReadOnly).await.unwrap();
        }
        let e = l
            .admit(&user("a"), RequestKind::ReadOnly)
            .await
            .unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(e.retry_after_seconds, Some(1));
        l.admit(&user("b"), RequestKind::ReadOnly).await.unwrap();
        // health probes are exempt
        l.admit(&user("a"), RequestKind::Exempt).await.unwrap();
    }
}
