//! Prometheus metrics of the proxy: requests by code (and shard), the time until a
//! response's headers (the proxy plus the shard's handling; a watch's lifetime is not
//! counted), the index size and whether each shard is reachable.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ShardTarget;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    code: String,
    /// The shard the request went to; empty when the proxy answered itself.
    shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecheckLabels {
    found: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    /// `malformed` (not a signed state: unsigned JSON, garbage), `unknown_key` (signed
    /// by a key this proxy does not trust), `bad_signature`.
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    index_size: Gauge<i64, AtomicI64>,
    shard_up: Family<ShardLabels, Gauge<i64, AtomicI64>>,
    rechecks: Family<RecheckLabels, Counter>,
    token_states_rejected: Family<RejectLabels, Counter>,
    token_states_merged: Counter,
    shards: Vec<String>,
}

impl Metrics {
    pub fn new(shards: &[ShardTarget]) -> Metrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ]);
        let index_size = Gauge::<i64, AtomicI64>::default();
        let shard_up = Family::<ShardLabels, Gauge<i64, AtomicI64>>::default();
        let rechecks = Family::<RecheckLabels, Counter>::default();
        let token_states_rejected = Family::<RejectLabels, Counter>::default();
        let token_states_merged = Counter::default();
        let mut registry = Registry::default();
        registry.register(
            "canopy_front_proxy_token_states_rejected",
            "Token states received through Redis and dropped, by reason (malformed or unsigned, unknown_key, bad_signature)",
            token_states_rejected.clone(),
        );
        registry.register(
            "canopy_front_proxy_token_states_merged",
            "Signed token states received through Redis whose revocations were merged",
            token_states_merged.clone(),
        );
        registry.register(
            "canopy_front_proxy_index_rechecks",
            "Index misses re-checked with the shards, by whether a shard held the logical cluster",
            rechecks.clone(),
        );
        registry.register(
            "canopy_front_proxy_requests",
            "Requests by HTTP response code and shard",
            requests.clone(),
        );
        registry.register(
            "canopy_front_proxy_request_duration_seconds",
            "Time from receiving a request to sending its response headers",
            latency.clone(),
        );
        registry.register(
            "canopy_front_proxy_index_logical_clusters",
            "Logical clusters in the routing index",
            index_size.clone(),
        );
        registry.register(
            "canopy_front_proxy_shard_up",
            "1 when the shard is reachable, 0 while it is remembered as down",
            shard_up.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            index_size,
            shard_up,
            rechecks,
            token_states_rejected,
            token_states_merged,
            shards: shards.iter().map(|s| s.name.clone()).collect(),
        }
    }

    /// A token state from Redis was dropped for `reason`.
    pub fn token_state_rejected(&self, reason: &str) {
        self.token_states_rejected
            .get_or_create(&RejectLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// A signed token state from Redis was merged.
    pub fn token_state_merged(&self) {
        self.token_states_merged.inc();
    }

    /// Token states from Redis dropped so far (every reason).
    pub fn token_states_rejected(&self) -> u64 {
        ["malformed", "unknown_key", "bad_signature"]
            .iter()
            .map(|r| {
                self.token_states_rejected
                    .get_or_create(&RejectLabels {
                        reason: r.to_string(),
                    })
                    .get()
            })
            .sum()
    }

    pub fn observe(&self, code: u16, shard: Option<&str>, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                code: code.to_string(),
                shard: shard.unwrap_or("").to_string(),
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    pub fn recheck(&self, found: bool) {
        self.rechecks
            .get_or_create(&RecheckLabels {
                found: found.to_string(),
            })
            .inc();
    }

    /// (found, not found) re-checks so far.
    pub fn rechecks(&self) -> (u64, u64) {
        let get = |f: bool| {
            self.rechecks
                .get_or_create(&RecheckLabels {
                    found: f.to_string(),
                })
                .get()
        };
        (get(true), get(false))
    }

    /// The text exposition, with gauges read now.
    /// Adds metrics of other parts (connection and request limits) to this registry.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock());
    }

    pub fn render(&self, index_size: usize, shard_down: impl Fn(usize) -> bool) -> String {
        self.index_size.set(index_size as i64);
        for (i, name) in self.shards.iter().enumerate() {
            self.shard_up
                .get_or_create(&ShardLabels {
                    shard: name.clone(),
                })
                .set(if shard_down(i) { 0 } else { 1 });
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
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
