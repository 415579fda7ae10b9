//! Where a store keeps its state durable: the one seam between the store's own logic
//! (preconditions, resourceVersions, the watch cache and fan-out, all in this crate and
//! the same for every backend) and the database.
//!
//! A backend does only three things: hand back what it holds when the store opens
//! ([`Backend::load`]), make one batch of already-checked changes durable atomically
//! ([`Backend::persist`]), and forget old history ([`Backend::compact`]). It never
//! decides anything: the writer has assigned every resourceVersion and checked every
//! precondition before a batch reaches it. Two backends exist:
//!
//! - [`crate::PgBackend`], PostgreSQL: what every shard runs on;
//! - [`crate::MemoryBackend`]: nothing survives the process; for unit tests of the API
//!   server and of this crate that need no database (same semantics, milliseconds to
//!   start).

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::{StorageError, StoredObject, WatchEvent};

/// What a backend holds when a store opens.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The resourceVersion of the last committed change (0: nothing ever written).
    pub rv: u64,
    /// The current state of every object.
    pub objects: Vec<Arc<StoredObject>>,
    /// The retained history in resourceVersion order, dense up to `rv` (events carry no
    /// `prev`). May be empty, or start later than asked when it was compacted.
    pub history: Vec<Arc<WatchEvent>>,
}

/// Durable state of one shard's store. See the module documentation.
pub trait Backend: Send + Sync + 'static {
    /// The current state and at most `history_events` of the most recent events.
    fn load(&self, history_events: usize) -> BoxFuture<'_, Result<Snapshot, StorageError>>;

    /// Makes `events` (resourceVersions `prev_rv + 1 ..` without gaps, in order) and the
    /// state they leave durable, all or nothing; answers only once they are. Fails with
    /// [`StorageError::Config`] if the durable resourceVersion is no longer `prev_rv`
    /// (another writer got in): the store then stops taking writes.
    fn persist<'a>(
        &'a self,
        prev_rv: u64,
        events: &'a [Arc<WatchEvent>],
    ) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Forgets the history up to and including `upto`; returns how many events went.
    fn compact(&self, upto: u64) -> BoxFuture<'_, Result<u64, StorageError>>;

    /// Whether the backend answers (readiness).
    fn ping(&self) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Releases connections and locks; the store calls it once, when it closes.
    fn close(&self) -> BoxFuture<'_, ()>;
}
