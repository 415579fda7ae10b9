//! Prometheus metrics of the cache server (`/metrics`): requests by verb and code, and
//! gauges of what it holds.

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    code: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    pub objects: Gauge,
    pub resource_version: Gauge,
    pub watchers: Gauge,
    pub synced_shards: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let objects = Gauge::default();
        let resource_version = Gauge::default();
        let watchers = Gauge::default();
        let synced_shards = Gauge::default();
        let mut registry = Registry::with_prefix("cache_server");
        registry.register(
            "requests",
            "Requests by verb (write, sync, status, list, watch, metrics) and HTTP code",
            requests.clone(),
        );
        registry.register("objects", "Replicated objects held", objects.clone());
        registry.register(
            "resource_version",
            "The current resourceVersion",
            resource_version.clone(),
        );
        registry.register("watchers", "Open watches", watchers.clone());
        registry.register(
            "synced_shards",
            "Shards that completed a full sync with this instance",
            synced_shards.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            objects,
            resource_version,
            watchers,
            synced_shards,
        }
    }
}

impl Metrics {
    pub fn request(&self, verb: &str, code: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                code: code.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry.lock());
        s
    }
}
