//! A backend that keeps everything in the process: for tests that need the store's exact
//! semantics but no database.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use parking_lot::Mutex;

use crate::backend::{Backend, Snapshot};
use crate::{EventType, ObjectKey, StorageError, StoredObject, WatchEvent};

/// Durable state in memory. Clones share it, so a test can close a store and open
/// another on the same state, as a shard restarting on its database would:
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use canopy_storage::{MemoryBackend, Mutation, ObjectKey, Store, StoreOptions};
/// use serde_json::json;
///
/// let backend = MemoryBackend::default();
/// let store = Store::open_backend(backend.clone(), StoreOptions::default()).await.unwrap();
/// let key = ObjectKey::new("/configmaps", "tenant-a", "default", "one");
/// let value = json!({"metadata": {"name": "one"}});
/// let stored = store.apply(Mutation::Create { key: key.clone(), value }).await.unwrap();
/// store.close().await;
///
/// let reopened = Store::open_backend(backend, StoreOptions::default()).await.unwrap();
/// assert_eq!(reopened.get(&key).unwrap().rv, stored.rv);
/// assert_eq!(reopened.current_rv(), stored.rv);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<ObjectKey, Arc<StoredObject>>,
    history: VecDeque<Arc<WatchEvent>>,
}

impl MemoryBackend {
    /// Events of history currently kept (what compaction has not dropped).
    pub fn history_len(&self) -> usize {
        self.state.lock().history.len()
    }
}

impl Backend for MemoryBackend {
    fn load(&self, history_events: usize) -> BoxFuture<'_, Result<Snapshot, StorageError>> {
        let s = self.state.lock();
        let skip = s.history.len().saturating_sub(history_events);
        let snapshot = Snapshot {
            rv: s.rv,
            objects: s.objects.values().cloned().collect(),
            history: s.history.iter().skip(skip).cloned().collect(),
        };
        futures::future::ready(Ok(snapshot)).boxed()
    }

    fn persist<'a>(
        &'a self,
        prev_rv: u64,
        events: &'a [Arc<WatchEvent>],
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let mut s = self.state.lock();
        let result = if s.rv != prev_rv {
            Err(StorageError::Config(format!(
                "the backend's resourceVersion is {}, expected {prev_rv}: another writer is active",
                s.rv
            )))
        } else {
            for e in events {
                let key = &e.object.key;
                if e.kind == EventType::Deleted {
                    s.objects.remove(key);
                } else {
                    s.objects.insert(key.clone(), e.object.clone());
                }
                // history as a database would give it back: without the previous state
                s.history.push_back(Arc::new(WatchEvent {
                    rv: e.rv,
                    kind: e.kind,
                    object: e.object.clone(),
                    prev: None,
                }));
                s.rv = e.rv;
            }
            Ok(())
        };
        futures::future::ready(result).boxed()
    }

    fn compact(&self, upto: u64) -> BoxFuture<'_, Result<u64, StorageError>> {
        let mut s = self.state.lock();
        let mut dropped = 0;
        while s.history.front().is_some_and(|e| e.rv <= upto) {
            s.history.pop_front();
            dropped += 1;
        }
        futures::future::ready(Ok(dropped)).boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        futures::future::ready(Ok(())).boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        futures::future::ready(()).boxed()
    }
}
