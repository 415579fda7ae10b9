//! Prometheus metrics: request counts and latency histograms by verb, resource and code,
//! named as kube-apiserver names them so existing dashboards work.

use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ])
        });
        let mut registry = Registry::default();
        registry.register(
            "apiserver_request",
            "Counter of API requests by verb, resource and HTTP response code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds by verb and resource",
            latency.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
        }
    }
}

impl Metrics {
    pub fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
                code: code.to_string(),
            })
            .inc();
        // Watches last as long as the client wants: only their setup is timed.
        if verb != "watch" {
            self.latency
                .get_or_create(&LatencyLabels {
                    verb: verb.to_string(),
                    resource: resource.to_string(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Adds metrics of other parts (connection and request limits) to this registry.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::default();
        m.observe("get", "configmaps", 200, Duration::from_millis(2));
        m.observe("get", "configmaps", 200, Duration::from_millis(3));
        m.observe("create", "configmaps", 409, Duration::from_millis(1));
        let text = m.render();
        assert!(
            text.contains(
                "apiserver_request_total{verb=\"get\",resource=\"configmaps\",code=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "apiserver_request_total{verb=\"create\",resource=\"configmaps\",code=\"409\"} 1"
        ));
        assert!(text.contains(
            "apiserver_request_duration_seconds_count{verb=\"get\",resource=\"configmaps\"} 2"
        ));
    }
}
