//! Controllers: a queue, a reconcile function and N workers in a task of their own.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::metrics::ControllerMetrics;
use crate::{Backoff, Key, Metrics, Queue};

/// What to do with a key after a successful reconcile (kube-runtime's `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long (through the queue), even without a change.
    Requeue(Duration),
    /// Nothing more to do until a change brings the key back.
    AwaitChange,
}

impl Action {
    pub fn requeue(after: Duration) -> Action {
        Action::Requeue(after)
    }

    pub fn await_change() -> Action {
        Action::AwaitChange
    }
}

/// What to do with a key whose reconcile failed (the error policy's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Again after the key's exponential back-off (the default).
    Backoff,
    /// Again after this long.
    After(Duration),
    /// Not again until a change brings the key back.
    Never,
}

type Reconcile<K, E> = Arc<dyn Fn(K) -> BoxFuture<'static, Result<Action, E>> + Send + Sync>;
type ErrorPolicy<K, E> = Arc<dyn Fn(&K, &E) -> Retry + Send + Sync>;

/// A controller: its own [`Queue`], a reconcile function and an error policy, run by
/// [`Controller::start`] as a task of its own with `concurrency` workers.
///
/// Each worker takes a key from the queue and reconciles it:
/// - `Ok(action)`: the key's back-off is reset; [`Action::Requeue`] adds it again after
///   the delay.
/// - `Err(e)`: logged as a warning with the controller, the key and the retry count,
///   counted (`controller_runtime_reconcile_errors_total`), and retried as the error
///   policy says (by default after the key's exponential back-off).
/// - a panic: logged as an error with the key, counted
///   (`controller_runtime_reconcile_panics_total`), retried with back-off; it never stops
///   the controller.
///
/// The queue guarantees that no key is reconciled by two workers at once; a key that
/// changes while being reconciled is reconciled again afterwards.
pub struct Controller<K, E> {
    name: Arc<str>,
    queue: Queue<K>,
    reconcile: Reconcile<K, E>,
    error_policy: ErrorPolicy<K, E>,
    concurrency: usize,
    metrics: ControllerMetrics,
}

impl<K: Key, E: Display + Send + 'static> Controller<K, E> {
    /// A controller named `name` (its queue's and metrics' name) with one worker.
    pub fn new<F, Fut>(name: &str, metrics: &Metrics, reconcile: F) -> Controller<K, E>
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
    {
        Controller {
            name: name.into(),
            queue: Queue::new(name, metrics),
            reconcile: Arc::new(move |k| reconcile(k).boxed()),
            error_policy: Arc::new(|_, _| Retry::Backoff),
            concurrency: 1,
            metrics: metrics.controller(name),
        }
    }

    /// How many keys are reconciled at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The back-off of failed keys (default 5 ms doubling to 1000 s).
    pub fn backoff(self, backoff: Backoff) -> Self {
        self.queue.set_backoff(backoff);
        self
    }

    /// Decides how a failed key is retried (default [`Retry::Backoff`] for every error).
    pub fn error_policy(mut self, f: impl Fn(&K, &E) -> Retry + Send + Sync + 'static) -> Self {
        self.error_policy = Arc::new(f);
        self
    }

    /// The queue, to feed keys (also available from [`Running::queue`]).
    pub fn queue(&self) -> &Queue<K> {
        &self.queue
    }

    /// Spawns the controller's task. Dropping the handle aborts it;
    /// [`Running::shutdown`] lets it drain first.
    pub fn start(self) -> Running<K> {
        let queue = self.queue.clone();
        let name = self.name.clone();
        let task = tokio::spawn(async move {
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..self.concurrency {
                workers.spawn(worker(
                    self.name.clone(),
                    self.queue.clone(),
                    self.reconcile.clone(),
                    self.error_policy.clone(),
                    self.metrics.clone(),
                ));
            }
            while let Some(r) = workers.join_next().await {
                if let Err(e) = r {
                    if e.is_panic() {
                        tracing::error!(controller = %self.name, "a controller worker panicked");
                    }
                }
            }
        });
        Running { name, queue, task }
    }
}

async fn worker<K: Key, E: Display + Send + 'static>(
    name: Arc<str>,
    queue: Queue<K>,
    reconcile: Reconcile<K, E>,
    error_policy: ErrorPolicy<K, E>,
    metrics: ControllerMetrics,
) {
    while let Some(key) = queue.get().await {
        // a panic while making the future or while polling it
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reconcile(key.clone())));
        let result = match run {
            Ok(fut) => std::panic::AssertUnwindSafe(fut).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        match result {
            Ok(Ok(action)) => {
                queue.forget(&key);
                match action {
                    Action::AwaitChange => {
                        metrics.success.increment(1);
                    }
                    Action::Requeue(after) => {
                        metrics.requeue_after.increment(1);
                        queue.add_after(key.clone(), after);
                    }
                };
            }
            Ok(Err(e)) => {
                metrics.error.increment(1);
                metrics.errors.increment(1);
                let retries = queue.num_requeues(&key);
                let retry = error_policy(&key, &e);
                let delay = match retry {
                    Retry::Backoff => Some(queue.add_rate_limited(key.clone())),
                    Retry::After(d) => {
                        queue.add_after(key.clone(), d);
                        Some(d)
                    }
                    Retry::Never => {
                        queue.forget(&key);
                        None
                    }
                };
                tracing::warn!(controller = %name, key = %key, error = %e, retries, retry_in = ?delay, "reconcile failed");
            }
            Err(panic) => {
                metrics.error.increment(1);
                metrics.panics.increment(1);
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let delay = queue.add_rate_limited(key.clone());
                tracing::error!(controller = %name, key = %key, panic = %message, retry_in = ?delay, "reconcile panicked");
            }
        }
        queue.done(&key);
    }
}

/// A started controller. Dropping it aborts its task.
pub struct Running<K> {
    name: Arc<str>,
    queue: Queue<K>,
    task: tokio::task::JoinHandle<()>,
}

impl<K: Key> Running<K> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The controller's queue: where events and other controllers add keys.
    pub fn queue(&self) -> &Queue<K> {
        &self.queue
    }

    /// Shuts the queue down and waits until the workers have drained it.
    pub async fn shutdown(mut self) {
        self.queue.shutdown();
        if let Err(e) = (&mut self.task).await {
            if e.is_panic() {
                tracing::error!(controller = %self.name, "controller task panicked");
            }
        }
    }
}

impl<K> Drop for Running<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::time::Instant;

    fn render(m: &Metrics) -> String {
        m.registry().render()
    }

    /// Waits (at most 30 s) until `f` holds.
    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A failing reconcile is retried with growing back-off, through the queue, until
    /// it succeeds; the failures show in the metrics.
    #[tokio::test]
    async fn failures_are_retried_with_back_off_and_counted() {
        let metrics = Metrics::default();
        let attempts = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let a = attempts.clone();
        let c = Controller::new("flaky", &metrics, move |key: String| {
            let a = a.clone();
            async move {
                let mut a = a.lock();
                a.push(Instant::now());
                if a.len() < 5 {
                    Err(format!("attempt {} of {key} failed", a.len()))
                } else {
                    Ok(Action::await_change())
                }
            }
        })
        .backoff(Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_secs(10),
        })
        .start();
        c.queue().add("obj".to_string());
        until("five attempts", || attempts.lock().len() >= 5).await;
        let gaps: Vec<Duration> = attempts.lock().windows(2).map(|w| w[1] - w[0]).collect();
        // the back-off doubles from 20 ms: each retry waits at least that long
        for (gap, want) in gaps.iter().zip([20, 40, 80, 160]) {
            assert!(*gap >= Duration::from_millis(want), "{gaps:?}");
        }
        // success resets the back-off
        until("the reset", || {
            c.queue().num_requeues(&"obj".to_string()) == 0
        })
        .await;
        until("the success counted", || {
            render(&metrics).contains(
                "controller_runtime_reconcile_total{controller=\"flaky\",result=\"success\"} 1",
            )
        })
        .await;
        let out = render(&metrics);
        for want in [
            "controller_runtime_reconcile_errors_total{controller=\"flaky\"} 4",
            "controller_runtime_reconcile_total{controller=\"flaky\",result=\"error\"} 4",
            "workqueue_retries_total{name=\"flaky\"} 4",
            "workqueue_adds_total{name=\"flaky\"} 5",
        ] {
            assert!(out.contains(want), "{want} missing in\n{out}");
        }
    }

    #[tokio::test]
    async fn requeue_goes_through_the_queue_and_panics_are_retried() {
        let metrics = Metrics::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let c = Controller::new("periodic", &metrics, move |_key: u32| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 1 {
                    panic!("a bug");
                }
                Ok::<_, String>(Action::requeue(Duration::from_millis(300)))
            }
        })
        .start();
        let start = Instant::now();
        c.queue().add(1);
        until("the first run", || runs.load(Ordering::SeqCst) == 1).await;
        // the requeue waits in the queue
        until("the requeue", || c.queue().delayed() == 1).await;
        // run 2 (after 300 ms) panics and is retried after 5 ms: run 3
        until("the retry after the panic", || {
            runs.load(Ordering::SeqCst) >= 3
        })
        .await;
        assert!(start.elapsed() >= Duration::from_millis(300));
        let out = render(&metrics);
        assert!(
            out.contains("controller_runtime_reconcile_panics_total{controller=\"periodic\"} 1"),
            "{out}"
        );
        until("the requeues counted", || {
            render(&metrics).contains(
                "controller_runtime_reconcile_total{controller=\"periodic\",result=\"requeue_after\"} 2",
            )
        })
        .await;
    }

    #[tokio::test]
    async fn error_policy_decides_the_retry() {
        let metrics = Metrics::default();
        let runs = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let r = runs.clone();
        let c = Controller::new("policy", &metrics, move |key: String| {
            *r.lock().entry(key.clone()).or_default() += 1;
            async move { Err::<Action, _>(key) }
        })
        .error_policy(|_, e: &String| {
            if e == "fatal" {
                Retry::Never
            } else {
                Retry::After(Duration::from_millis(50))
            }
        })
        .start();
        c.queue().add("fatal".into());
        c.queue().add("transient".into());
        until("retries", || {
            runs.lock().get("transient").copied().unwrap_or(0) >= 4
        })
        .await;
        assert_eq!(runs.lock()["fatal"], 1, "never retried");
        assert_eq!(c.queue().delayed(), 1, "only the transient one waits");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_run_concurrently_but_never_on_one_key() {
        let metrics = Metrics::default();
        let active = Arc::new(Mutex::new(std::collections::HashSet::<u32>::new()));
        let max_parallel = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let (a, m, d) = (active.clone(), max_parallel.clone(), done.clone());
        let c = Controller::new("parallel", &metrics, move |key: u32| {
            let (a, m, d) = (a.clone(), m.clone(), d.clone());
            async move {
                {
                    let mut a = a.lock();
                    assert!(a.insert(key), "{key} reconciled twice at once");
                    m.fetch_max(a.len(), Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                a.lock().remove(&key);
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(Action::await_change())
            }
        })
        .concurrency(4)
        .start();
        for round in 0..20 {
            for key in 0..8 {
                c.queue().add(key);
            }
            if round % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        c.shutdown().await;
        assert!(done.load(Ordering::SeqCst) >= 8);
        let p = max_parallel.load(Ordering::SeqCst);
        assert!((2..=4).contains(&p), "{p} at once");
    }

    #[tokio::test]
    async fn shutdown_drains_the_queue() {
        let metrics = Metrics::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let c = Controller::new("drain", &metrics, move |key: u32| {
            let s = s.clone();
            async move {
                tokio::task::yield_now().await;
                s.lock().push(key);
                Ok::<_, String>(Action::requeue(Duration::from_secs(60)))
            }
        })
        .concurrency(2);
        for k in 0..50 {
            c.queue().add(k);
        }
        let c = c.start();
        c.shutdown().await;
        let mut seen = seen.lock().clone();
        seen.sort();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }
}
