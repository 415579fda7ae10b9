//! Prometheus metrics of the limits, registered by each server in its registry.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RejectLabels {
    /// `rate_limit`, `queue_full`, `queue_timeout`, `max_watches_per_user`,
    /// `max_watches`.
    pub reason: String,
    /// `readOnly`, `mutating`, `longRunning`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub kind: String,
}

/// Counts of what the limits did.
#[derive(Clone, Default, Debug)]
pub struct EdgeMetrics {
    pub(crate) rejected: Family<RejectLabels, Counter>,
    pub(crate) inflight: Family<KindLabels, Gauge<i64, AtomicI64>>,
}

impl EdgeMetrics {
    /// `<prefix>_requests_rejected_total{reason,kind}` (429s by the limits) and
    /// `<prefix>_inflight_requests{kind}` (seats taken, watches open).
    pub fn register(&self, registry: &mut Registry, prefix: &str) {
        registry.register(
            format!("{prefix}_requests_rejected"),
            "Requests answered 429 by the request limits, by reason and kind",
            self.rejected.clone(),
        );
        registry.register(
            format!("{prefix}_inflight_requests"),
            "Requests holding an in-flight seat (readOnly, mutating) or open watches (longRunning)",
            self.inflight.clone(),
        );
    }

    pub(crate) fn reject(&self, reason: &str, kind: &str) {
        self.rejected
            .get_or_create(&RejectLabels {
                reason: reason.into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// Requests refused so far for `reason`.
    pub fn rejected_count(&self, reason: &str) -> u64 {
        ["readOnly", "mutating", "longRunning"]
            .iter()
            .map(|k| {
                self.rejected
                    .get_or_create(&RejectLabels {
                        reason: reason.into(),
                        kind: (*k).into(),
                    })
                    .get()
            })
            .sum()
    }

    pub(crate) fn gauge(&self, kind: &str) -> Gauge<i64, AtomicI64> {
        self.inflight
            .get_or_create(&KindLabels { kind: kind.into() })
            .clone()
    }
}
