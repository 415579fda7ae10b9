//! A controller runtime in the shape of kube-runtime's `Controller` and client-go's
//! workqueue, with no knowledge of what it reconciles.
//!
//! - [`Queue`]: a keyed work queue. A key waiting in the queue is there once however
//!   often it is added (de-duplication); a key being processed is never handed out again
//!   until [`Queue::done`], and one added meanwhile is queued again at `done` (dirty and
//!   processing sets, as client-go's). Delayed adds ([`Queue::add_after`]: the earliest
//!   time wins), per-key exponential back-off ([`Queue::add_rate_limited`], 5 ms doubling
//!   up to 1000 s as client-go's `ItemExponentialFailureRateLimiter`, reset by
//!   [`Queue::forget`]), and shutdown that lets the workers drain what is queued.
//! - [`Controller`]: a reconcile function `Fn(K) -> Future<Output = Result<Action, E>>`
//!   run by N workers of its own (its concurrency) in its own task. A reconcile returns
//!   an [`Action`] (requeue after a delay, or wait for a change); an error is logged with
//!   the key, counted, and the key requeued with back-off (or as the error policy says);
//!   a panic is caught, logged and retried the same way. Every requeue goes through the
//!   queue, so a key is never reconciled twice at once.
//! - [`EventFeed`]: feeds controllers' queues from one event stream (a
//!   `tokio::sync::broadcast` channel): mappers from an event to keys ([`EventFeed::watches`],
//!   and [`EventFeed::owns`] for the owners of the event's object through an
//!   [`OwnerIndex`]); after the stream lags, indexes are rebuilt and every key is
//!   enqueued again ([`EventFeed::resync`]).
//! - [`Metrics`]: client-go's `workqueue_*` metrics with a `name` label and
//!   controller-runtime's `controller_runtime_reconcile_*` by `controller`, in a
//!   server's `canopy_metrics::Registry`; [`TaskErrors`] for periodic tasks that are not
//!   controllers.

mod backoff;
mod controller;
mod feed;
mod index;
mod metrics;
mod queue;

pub use backoff::Backoff;
pub use controller::{Action, Controller, Retry, Running};
pub use feed::EventFeed;
pub use index::OwnerIndex;
pub use metrics::{Metrics, TaskErrors};
pub use queue::Queue;

/// What a queue holds: a key naming the object (or group of objects) to reconcile.
/// `Display` is how the key appears in logs.
pub trait Key: Clone + Eq + std::hash::Hash + std::fmt::Display + Send + Sync + 'static {}
impl<T: Clone + Eq + std::hash::Hash + std::fmt::Display + Send + Sync + 'static> Key for T {}
