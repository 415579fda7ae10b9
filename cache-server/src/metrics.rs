//! Prometheus metrics of the cache server (`/metrics`): requests by verb and code, and
//! gauges of what it holds.

use canopy_metrics::{code_label, Counter, Family, Gauge, Registry};

pub struct Metrics {
    registry: Registry,
    requests: Family<Counter>,
    pub objects: Gauge,
    pub resource_version: Gauge,
    pub watchers: Gauge,
    pub synced_shards: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        Metrics {
            requests: registry.family(
                "cache_server_requests_total",
                "Requests by verb (write, sync, status, list, watch, metrics) and HTTP code",
                &["verb", "code"],
            ),
            objects: registry.metric("cache_server_objects", "Replicated objects held"),
            resource_version: registry.metric(
                "cache_server_resource_version",
                "The current resourceVersion",
            ),
            watchers: registry.metric("cache_server_watchers", "Open watches"),
            synced_shards: registry.metric(
                "cache_server_synced_shards",
                "Shards that completed a full sync with this instance",
            ),
            registry,
        }
    }
}

impl Metrics {
    pub fn request(&self, verb: &str, code: u16) {
        let mut buf = [0; 5];
        self.requests
            .with(&[verb, code_label(code, &mut buf)], |c| c.increment(1));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        self.registry.render()
    }
}
