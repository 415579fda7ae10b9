//! Prometheus metrics of the proxy: requests by code (and shard), the time until a
//! response's headers (the proxy plus the shard's handling; a watch's lifetime is not
//! counted), the index size and whether each shard is reachable.

use std::time::Duration;

use canopy_metrics::{code_label, Counter, Family, Gauge, Histogram, ReadableCounter, Registry};

use crate::ShardTarget;

/// The proxy's metrics, in its [`Registry`] (which its connection and request limits
/// share, and `/metrics` renders).
pub struct Metrics {
    registry: Registry,
    /// Labels `code` and `shard` (the shard the request went to; empty when the proxy
    /// answered itself).
    requests: Family<Counter>,
    latency: Histogram,
    index_size: Gauge,
    /// One per shard, in the order of the shards.
    shard_up: Vec<Gauge>,
    /// Found, not found.
    rechecks: [ReadableCounter; 2],
    /// Label `reason`: `malformed` (not a signed state: unsigned JSON, garbage),
    /// `unknown_key` (signed by a key this proxy does not trust), `bad_signature`.
    token_states_rejected: Family<ReadableCounter>,
    token_states_merged: Counter,
}

/// The reasons a token state is rejected for.
const REJECT_REASONS: [&str; 3] = ["malformed", "unknown_key", "bad_signature"];

impl Metrics {
    pub fn new(shards: &[ShardTarget]) -> Metrics {
        let registry = Registry::new();
        let rechecks: Family<ReadableCounter> = registry.family(
            "canopy_front_proxy_index_rechecks_total",
            "Index misses re-checked with the shards, by whether a shard held the logical cluster",
            &["found"],
        );
        let shard_up: Family<Gauge> = registry.family(
            "canopy_front_proxy_shard_up",
            "1 when the shard is reachable, 0 while it is remembered as down",
            &["shard"],
        );
        Metrics {
            token_states_rejected: registry.family(
                "canopy_front_proxy_token_states_rejected_total",
                "Token states received through Redis and dropped, by reason (malformed or unsigned, unknown_key, bad_signature)",
                &["reason"],
            ),
            token_states_merged: registry.metric(
                "canopy_front_proxy_token_states_merged_total",
                "Signed token states received through Redis whose revocations were merged",
            ),
            rechecks: [rechecks.get(&["true"]), rechecks.get(&["false"])],
            requests: registry.family(
                "canopy_front_proxy_requests_total",
                "Requests by HTTP response code and shard",
                &["code", "shard"],
            ),
            // kube-apiserver's request buckets (canopy_metrics::REQUEST_DURATION_BUCKETS)
            latency: registry.metric(
                "canopy_front_proxy_request_duration_seconds",
                "Time from receiving a request to sending its response headers",
            ),
            index_size: registry.metric(
                "canopy_front_proxy_index_logical_clusters",
                "Logical clusters in the routing index",
            ),
            shard_up: shards.iter().map(|s| shard_up.get(&[&s.name])).collect(),
            registry,
        }
    }

    /// The proxy's registry, for the metrics of its other parts (connection and
    /// request limits).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A token state from Redis was dropped for `reason`.
    pub fn token_state_rejected(&self, reason: &str) {
        self.token_states_rejected
            .with(&[reason], |c| c.increment(1));
    }

    /// A signed token state from Redis was merged.
    pub fn token_state_merged(&self) {
        self.token_states_merged.increment(1);
    }

    /// Token states from Redis dropped so far (every reason).
    pub fn token_states_rejected(&self) -> u64 {
        REJECT_REASONS
            .iter()
            .map(|r| self.token_states_rejected.with(&[r], |c| c.get()))
            .sum()
    }

    /// Counts a request; series are cached per label set, so this allocates only for
    /// the first request of a (code, shard).
    pub fn observe(&self, code: u16, shard: Option<&str>, elapsed: Duration) {
        let mut buf = [0; 5];
        self.requests
            .with(&[code_label(code, &mut buf), shard.unwrap_or("")], |c| {
                c.increment(1)
            });
        self.latency.record(elapsed.as_secs_f64());
    }

    pub fn recheck(&self, found: bool) {
        self.rechecks[usize::from(!found)].increment(1);
    }

    /// (found, not found) re-checks so far.
    pub fn rechecks(&self) -> (u64, u64) {
        (self.rechecks[0].get(), self.rechecks[1].get())
    }

    /// The text exposition, with gauges read now.
    pub fn render(&self, index_size: usize, shard_down: impl Fn(usize) -> bool) -> String {
        self.index_size.set(index_size as f64);
        for (i, up) in self.shard_up.iter().enumerate() {
            up.set(if shard_down(i) { 0.0 } else { 1.0 });
        }
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let m = Metrics::new(&[ShardTarget {
            name: "s0".into(),
            url: "https://127.0.0.1:1".into(),
        }]);
        m.observe(200, Some("s0"), Duration::from_millis(3));
        m.observe(429, None, Duration::from_millis(1));
        let t = m.render(7, |_| false);
        assert!(
            t.contains("canopy_front_proxy_requests_total{code=\"200\",shard=\"s0\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("canopy_front_proxy_requests_total{code=\"429\",shard=\"\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("canopy_front_proxy_request_duration_seconds_count 2"),
            "{t}"
        );
        assert!(
            t.contains("canopy_front_proxy_index_logical_clusters 7"),
            "{t}"
        );
        assert!(
            t.contains("canopy_front_proxy_shard_up{shard=\"s0\"} 1"),
            "{t}"
        );
    }
}
