//! The runtime's metrics, named as client-go's workqueue and controller-runtime name
//! theirs, so that existing dashboards work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use canopy_metrics::{Counter, Family, Gauge, Histogram, ReadableCounter, Registry};

/// The metrics of every queue and controller of a server, in its [`Registry`]; each
/// queue or controller has its own series (label `name`, or `controller`). Cloning
/// shares them. `Default`: in a registry of their own (tests).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    adds: Family<Counter>,
    depth: Family<Gauge>,
    queue_duration: Family<Histogram>,
    work_duration: Family<Histogram>,
    retries: Family<Counter>,
    reconciles: Family<Counter>,
    reconcile_errors: Family<Counter>,
    reconcile_panics: Family<Counter>,
    task_errors: Family<ReadableCounter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&Registry::default())
    }
}

impl Metrics {
    /// The families in `registry` (client-go's buckets for the durations: see
    /// [`canopy_metrics::WORKQUEUE_DURATION_BUCKETS`]).
    pub fn new(registry: &Registry) -> Metrics {
        const NAME: &[&str] = &["name"];
        const CONTROLLER: &[&str] = &["controller"];
        Metrics {
            registry: registry.clone(),
            adds: registry.family(
                "workqueue_adds_total",
                "Total number of adds handled by workqueue",
                NAME,
            ),
            depth: registry.family("workqueue_depth", "Current depth of workqueue", NAME),
            queue_duration: registry.family(
                "workqueue_queue_duration_seconds",
                "How long in seconds an item stays in workqueue before being requested",
                NAME,
            ),
            work_duration: registry.family(
                "workqueue_work_duration_seconds",
                "How long in seconds processing an item from workqueue takes",
                NAME,
            ),
            retries: registry.family(
                "workqueue_retries_total",
                "Total number of retries handled by workqueue",
                NAME,
            ),
            reconciles: registry.family(
                "controller_runtime_reconcile_total",
                "Total number of reconciliations per controller",
                &["controller", "result"],
            ),
            reconcile_errors: registry.family(
                "controller_runtime_reconcile_errors_total",
                "Total number of reconciliation errors per controller",
                CONTROLLER,
            ),
            reconcile_panics: registry.family(
                "controller_runtime_reconcile_panics_total",
                "Total number of reconciliation panics per controller",
                CONTROLLER,
            ),
            task_errors: registry.family(
                "canopy_background_task_errors_total",
                "Total number of failed runs of periodic background tasks",
                NAME,
            ),
        }
    }

    /// The registry the metrics are in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn queue(&self, name: &str) -> QueueMetrics {
        let l = &[name];
        QueueMetrics {
            adds: self.adds.get(l),
            depth: self.depth.get(l),
            queue_duration: self.queue_duration.get(l),
            work_duration: self.work_duration.get(l),
            retries: self.retries.get(l),
        }
    }

    pub(crate) fn controller(&self, name: &str) -> ControllerMetrics {
        let l = &[name];
        let result = |r: &str| self.reconciles.get(&[name, r]);
        ControllerMetrics {
            success: result("success"),
            requeue_after: result("requeue_after"),
            error: result("error"),
            errors: self.reconcile_errors.get(l),
            panics: self.reconcile_panics.get(l),
        }
    }

    /// The error reporter of a periodic task named `name` (see [`TaskErrors`]).
    pub fn task(&self, name: &str) -> TaskErrors {
        TaskErrors {
            name: name.into(),
            errors: self.task_errors.get(&[name]),
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
    errors: ReadableCounter,
    failing: Arc<AtomicBool>,
}

impl TaskErrors {
    /// A run of the task failed.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.errors.increment(1);
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
        let q = m.queue("namespace");
        q.adds.increment(1);
        q.retries.increment(1);
        m.controller("namespace").errors.increment(1);
        let t = m.task("shard-report");
        t.failed(&"boom");
        t.failed(&"boom");
        t.ok();
        let out = m.registry().render();
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
