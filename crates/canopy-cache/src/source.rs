//! Where a [`crate::Replicator`] reads a shard's local objects: a snapshot per resource
//! and a stream of changes, implemented for [`canopy_storage::Store`].
//!
//! The contract that makes replication exact: subscribe first, then list; every change
//! with a resourceVersion at or below the list's resourceVersion is already in the list
//! and is skipped, every later one is applied in order. A subscriber that falls behind
//! gets [`Change::Lagged`] and starts over with a full sync.

use std::pin::Pin;

use futures::Stream;
use serde_json::Value;

use crate::wire::Key;
use crate::CacheError;

/// One local object.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalObject {
    pub key: Key,
    /// Its resourceVersion on the shard.
    pub rv: u64,
    pub object: Value,
}

/// One local change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Created or updated.
    Upsert(LocalObject),
    /// Deleted at resourceVersion `rv`.
    Delete { key: Key, rv: u64 },
    /// Changes were lost (the subscriber fell behind): start over.
    Lagged,
}

impl Change {
    pub fn rv(&self) -> Option<u64> {
        match self {
            Change::Upsert(o) => Some(o.rv),
            Change::Delete { rv, .. } => Some(*rv),
            Change::Lagged => None,
        }
    }

    pub fn resource(&self) -> Option<&str> {
        match self {
            Change::Upsert(o) => Some(&o.key.resource),
            Change::Delete { key, .. } => Some(&key.resource),
            Change::Lagged => None,
        }
    }
}

/// Changes, in resourceVersion order; ends when the source shuts down.
pub type ChangeStream = Pin<Box<dyn Stream<Item = Change> + Send>>;

/// A shard's local objects.
pub trait LocalSource: Send + Sync + 'static {
    /// Changes of `resources` from now on (call before [`LocalSource::list`]).
    fn subscribe(&self, resources: &[String]) -> ChangeStream;
    /// Every object of `resource` and the resourceVersion the list is consistent with.
    fn list(&self, resource: &str) -> Result<(u64, Vec<LocalObject>), CacheError>;
}

fn key_of(k: &canopy_storage::ObjectKey) -> Key {
    Key::new(&k.resource, &k.cluster, &k.namespace, &k.name)
}

impl LocalSource for canopy_storage::Store {
    fn subscribe(&self, resources: &[String]) -> ChangeStream {
        use tokio::sync::broadcast::error::RecvError;
        let (_, rx) = self.subscribe_all();
        let resources: Vec<String> = resources.to_vec();
        Box::pin(futures::stream::unfold(
            (rx, resources),
            |(mut rx, resources)| async move {
                loop {
                    match rx.recv().await {
                        Ok(ev) => {
                            let k = &ev.object.key;
                            if !resources.iter().any(|r| **r == *k.resource) {
                                continue;
                            }
                            let change = match ev.kind {
                                canopy_storage::EventType::Deleted => Change::Delete {
                                    key: key_of(k),
                                    rv: ev.rv,
                                },
                                _ => Change::Upsert(LocalObject {
                                    key: key_of(k),
                                    rv: ev.rv,
                                    object: ev.object.value.clone(),
                                }),
                            };
                            return Some((change, (rx, resources)));
                        }
                        Err(RecvError::Lagged(_)) => {
                            return Some((Change::Lagged, (rx, resources)))
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }

    fn list(&self, resource: &str) -> Result<(u64, Vec<LocalObject>), CacheError> {
        let all = |_: &canopy_storage::StoredObject| true;
        let opts = canopy_storage::ListOptions {
            resource,
            cluster: None,
            namespace: None,
            name: None,
            continue_after: None,
            limit: 0,
            filter: &all,
        };
        let l = canopy_storage::Store::list(self, &opts)
            .map_err(|e| CacheError::Source(e.to_string()))?;
        Ok((
            l.rv,
            l.items
                .iter()
                .map(|o| LocalObject {
                    key: key_of(&o.key),
                    rv: o.rv,
                    object: o.value.clone(),
                })
                .collect(),
        ))
    }
}
