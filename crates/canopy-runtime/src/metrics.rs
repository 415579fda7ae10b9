//! The runtime's metrics, named as client-go's workqueue and controller-runtime name
//! theirs, so that existing dashboards work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// client-go's buckets for queue and work durations: 10 ns to 10 s, by powers of ten.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-8, 10.0, 10))
}

/// The metric families of every queue and controller of a process; each queue or
/// controller has its own series (label `name`, or `controller`). Cloning shares them.
/// [`Metrics::register`] adds them to a registry (once per registry).
#[derive(Clone)]
pub struct Metrics {
    adds: Family<NameLabel, Counter>,
    depth: Family<NameLabel, Gauge>,
    queue_duration: HistogramFamily<NameLabel>,
    work_duration: HistogramFamily<NameLabel>,
    retries: Family<NameLabel, Counter>,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabel, Counter>,
    reconcile_panics: Family<ControllerLabel, Counter>,
    task_errors: Family<NameLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            adds: Family::default(),
            depth: Family::default(),
            queue_duration: Family::new_with_constructor(duration_histogram),
            work_duration: Family::new_with_constructor(duration_histogram),
            retries: Family::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_panics: Family::default(),
            task_errors: Family::default(),
        }
    }
}

impl Metrics {
    /// Adds every family to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            self.adds.clone(),
        );
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue",
            self.depth.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            self.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            self.work_duration.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            self.retries.clone(),
        );
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            self.reconciles.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_panics",
            "Total number of reconciliation panics per controller",
            self.reconcile_panics.clone(),
        );
        registry.register(
            "canopy_background_task_errors",
            "Total number of failed runs of periodic background tasks",
            self.task_errors.clone(),
        );
    }

    pub(crate) fn queue(&self, name: &str) -> QueueMetrics {
        let l = NameLabel {
            name: name.to_string(),
        };
        QueueMetrics {
            adds: self.adds.get_or_create_owned(&l),
            depth: self.depth.get_or_create_owned(&l),
            queue_duration: self.queue_duration.get_or_create_owned(&l),
            work_duration: self.work_duration.get_or_create_owned(&l),
            retries: self.retries.get_or_create_owned(&l),
        }
    }

    pub(crate) fn controller(&self, name: &str) -> ControllerMetrics {
        let l = ControllerLabel {
            controller: name.to_string(),
        };
        let result = |r: &str| {
            self.reconciles.get_or_create_owned(&ResultLabels {
                controller: name.to_string(),
                result: r.to_string(),
            })
        };
        ControllerMetrics {
            success: result("success"),
            requeue_after: result("requeue_after"),
            error: result("error"),
            errors: self.reconcile_errors.get_or_create_owned(&l),
            panics: self.reconcile_panics.get_or_create_owned(&l),
        }
    }

    /// The error reporter of a periodic task named `name` (see [`TaskErrors`]).
    pub fn task(&self, name: &str) -> TaskErrors {
        TaskErrors {
            name: name.into(),
            errors: self.task_errors.get_or_create_owned(&NameLabel {
                name: name.to_string(),
            }),
            failing: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[derive(Clone)]
pub(crate) struct QueueMetrics {
    pub adds: Counter,
    pub depth: Gauge,
    pub queue_duration: Histogram,
    pub work_duration: Histogram,
    pub retries: Counter,
}

#[derive(Clone)]
pub(crate) struct ControllerMetrics {
    pub success: Counter,
    pub requeue_after: Counter,
    pub error: Counter,
    pub errors: Counter,
    pub panics: Counter,
}

/// How a periodic task that is not a controller (a report every few seconds, a long
/// poll) reports failures without flooding the log or hiding them: every failure is
/// counted (`canopy_background_task_errors_total{name}`); the first of a run of
/// failures is logged as a warning, the following ones at debug, and the recovery once.
#[derive(Clone)]
pub struct TaskErrors {
    name: Arc<str>,
    errors: Counter,
    failing: Arc<AtomicBool>,
}

impl TaskErrors {
    /// A run of the task failed.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.errors.inc();
        if self.failing.swap(true, Ordering::Relaxed) {
            tracing::debug!(task = %self.name, error = %error, "background task still failing");
        } else {
            tracing::warn!(task = %self.name, error = %error, "background task failed");
        }
    }

    /// A run of the task succeeded.
    pub fn ok(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(task = %self.name, "background task recovered");
        }
    }

    /// Records the outcome of a run.
    pub fn report<T, E: std::fmt::Display>(&self, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => {
                self.ok();
                Some(v)
            }
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    /// How many runs failed so far.
    pub fn count(&self) -> u64 {
        self.errors.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_kube_names() {
        let m = Metrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        let q = m.queue("namespace");
        q.adds.inc();
        q.retries.inc();
        m.controller("namespace").errors.inc();
        let t = m.task("shard-report");
        t.failed(&"boom");
        t.failed(&"boom");
        t.ok();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        for want in [
            "workqueue_adds_total{name=\"namespace\"} 1",
            "workqueue_retries_total{name=\"namespace\"} 1",
            "workqueue_depth{name=\"namespace\"} 0",
            "workqueue_queue_duration_seconds_count{name=\"namespace\"} 0",
            "workqueue_work_duration_seconds_count{name=\"namespace\"} 0",
            "controller_runtime_reconcile_errors_total{controller=\"namespace\"} 1",
            "canopy_background_task_errors_total{name=\"shard-report\"} 2",
        ] {
            assert!(out.contains(want), "{want} missing in\n{out}");
        }
        assert_eq!(t.count(), 2);
    }
}
