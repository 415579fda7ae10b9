//! Prometheus metrics of the limits, in each server's registry.

use canopy_metrics::{Family, Gauge, ReadableCounter, Registry};

/// Counts of what the limits did. `Default`: in a registry of their own (tests).
#[derive(Clone, Debug)]
pub struct EdgeMetrics {
    /// Labels `reason` (`rate_limit`, `queue_full`, `queue_timeout`,
    /// `max_watches_per_user`, `max_watches`) and `kind` (`readOnly`, `mutating`,
    /// `longRunning`).
    rejected: Family<ReadableCounter>,
    /// One per kind, made once: every admitted request moves one.
    inflight: [Gauge; 3],
}

/// The values of label `kind`, in the order of [`EdgeMetrics::inflight`].
const KINDS: [&str; 3] = ["readOnly", "mutating", "longRunning"];

impl Default for EdgeMetrics {
    fn default() -> Self {
        EdgeMetrics::new(&Registry::default(), "canopy")
    }
}

impl EdgeMetrics {
    /// `<prefix>_requests_rejected_total{reason,kind}` (429s by the limits) and
    /// `<prefix>_inflight_requests{kind}` (seats taken, watches open), in `registry`.
    pub fn new(registry: &Registry, prefix: &str) -> EdgeMetrics {
        let inflight = registry.family(
            format!("{prefix}_inflight_requests"),
            "Requests holding an in-flight seat (readOnly, mutating) or open watches (longRunning)",
            &["kind"],
        );
        EdgeMetrics {
            rejected: registry.family(
                format!("{prefix}_requests_rejected_total"),
                "Requests answered 429 by the request limits, by reason and kind",
                &["reason", "kind"],
            ),
            inflight: KINDS.map(|k| inflight.get(&[k])),
        }
    }

    pub(crate) fn reject(&self, reason: &str, kind: &str) {
        self.rejected.with(&[reason, kind], |c| c.increment(1));
    }

    /// Requests refused so far for `reason`.
    pub fn rejected_count(&self, reason: &str) -> u64 {
        KINDS
            .iter()
            .map(|k| self.rejected.with(&[reason, k], |c| c.get()))
            .sum()
    }

    /// The in-flight gauge of `kind` (one of `readOnly`, `mutating`, `longRunning`).
    pub(crate) fn gauge(&self, kind: &str) -> Gauge {
        let i = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        self.inflight[i].clone()
    }
}
