//! What each logical cluster stores: objects and bytes, per resource.
//!
//! Computed from the current state when the store opens and kept exact by the writer
//! after every commit (before the commit's requests are answered, so a client that
//! wrote reads usage that includes its write). Bytes are the serialized JSON the store
//! writes to `canopy_objects` (what [`crate::StoreOptions::max_object_bytes`] limits),
//! not PostgreSQL's on-disk size. Quotas (`canopy-apiserver`'s `quota.rs`) and, later,
//! metering read it; nothing here enforces anything.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::{EventType, StoredObject, WatchEvent};

/// Objects and their serialized bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub objects: u64,
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, bytes: usize) {
        self.objects += 1;
        self.bytes += bytes as u64;
    }
    fn remove(&mut self, bytes: usize) {
        self.objects = self.objects.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes as u64);
    }
    fn resize(&mut self, from: usize, to: usize) {
        self.bytes = (self.bytes + to as u64).saturating_sub(from as u64);
    }
    fn is_empty(&self) -> bool {
        self.objects == 0 && self.bytes == 0
    }
}

/// What one logical cluster stores: in total and per resource (`<group>/<plural>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterUsage {
    pub total: Counts,
    pub resources: HashMap<Arc<str>, Counts>,
}

impl ClusterUsage {
    /// Objects and bytes of one resource.
    pub fn resource(&self, resource: &str) -> Counts {
        self.resources.get(resource).copied().unwrap_or_default()
    }
}

/// Usage of every logical cluster of a shard. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Usage {
    inner: Arc<RwLock<HashMap<Arc<str>, ClusterUsage>>>,
}

impl Usage {
    /// Usage of the objects loaded at open.
    pub(crate) fn of<'a>(objects: impl Iterator<Item = &'a StoredObject>) -> Usage {
        let mut map: HashMap<Arc<str>, ClusterUsage> = HashMap::new();
        for o in objects {
            let c = map.entry(o.key.cluster.clone()).or_default();
            c.total.add(o.json.len());
            c.resources
                .entry(o.key.resource.clone())
                .or_default()
                .add(o.json.len());
        }
        Usage {
            inner: Arc::new(RwLock::new(map)),
        }
    }

    /// Applies committed events, in order (the writer, after each commit).
    pub(crate) fn apply(&self, events: &[Arc<WatchEvent>]) {
        let mut map = self.inner.write();
        for e in events {
            let key = &e.object.key;
            let c = map.entry(key.cluster.clone()).or_default();
            let r = c.resources.entry(key.resource.clone()).or_default();
            // the bytes counted for an object are those of its stored state: `prev`
            // (always known for events of this process) for what is replaced or deleted
            let before = e.prev.as_ref().map(|p| p.json.len());
            match (e.kind, before) {
                (EventType::Added, _) => {
                    c.total.add(e.object.json.len());
                    r.add(e.object.json.len());
                }
                (EventType::Modified, Some(b)) => {
                    c.total.resize(b, e.object.json.len());
                    r.resize(b, e.object.json.len());
                }
                (EventType::Modified, None) => {}
                (EventType::Deleted, b) => {
                    let b = b.unwrap_or(e.object.json.len());
                    c.total.remove(b);
                    r.remove(b);
                }
            }
            if r.is_empty() {
                c.resources.remove(&key.resource);
            }
            if c.total.is_empty() {
                map.remove(&key.cluster);
            }
        }
    }

    pub(crate) fn cluster(&self, cluster: &str) -> ClusterUsage {
        self.inner.read().get(cluster).cloned().unwrap_or_default()
    }

    pub(crate) fn totals(&self, clusters: &mut dyn Iterator<Item = &str>) -> Counts {
        let map = self.inner.read();
        let mut sum = Counts::default();
        for c in clusters {
            if let Some(u) = map.get(c) {
                sum.objects += u.total.objects;
                sum.bytes += u.total.bytes;
            }
        }
        sum
    }

    pub(crate) fn all(&self) -> HashMap<Arc<str>, ClusterUsage> {
        self.inner.read().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectKey;
    use bytes::Bytes;
    use serde_json::json;

    fn obj(cluster: &str, name: &str, size: usize, rv: u64) -> Arc<StoredObject> {
        Arc::new(StoredObject {
            key: ObjectKey::new("/configmaps", cluster, "default", name),
            rv,
            value: json!({}),
            json: Bytes::from(vec![b' '; size]),
        })
    }

    fn ev(
        kind: EventType,
        o: Arc<StoredObject>,
        prev: Option<Arc<StoredObject>>,
    ) -> Arc<WatchEvent> {
        Arc::new(WatchEvent {
            rv: o.rv,
            kind,
            object: o,
            prev,
        })
    }

    #[test]
    fn usage_follows_creates_updates_and_deletes() {
        let a1 = obj("a", "x", 100, 1);
        let u = Usage::of([&*a1].into_iter());
        assert_eq!(
            u.cluster("a").total,
            Counts {
                objects: 1,
                bytes: 100
            }
        );
        let a2 = obj("a", "y", 50, 2);
        let a1b = obj("a", "x", 130, 3);
        let b1 = obj("b", "z", 7, 4);
        u.apply(&[
            ev(EventType::Added, a2.clone(), None),
            ev(EventType::Modified, a1b.clone(), Some(a1.clone())),
            ev(EventType::Added, b1.clone(), None),
        ]);
        assert_eq!(
            u.cluster("a").total,
            Counts {
                objects: 2,
                bytes: 180
            }
        );
        assert_eq!(
            u.cluster("a").resource("/configmaps"),
            Counts {
                objects: 2,
                bytes: 180
            }
        );
        assert_eq!(
            u.cluster("b").total,
            Counts {
                objects: 1,
                bytes: 7
            }
        );
        assert_eq!(
            u.totals(&mut ["a", "b", "c"].into_iter()),
            Counts {
                objects: 3,
                bytes: 187
            }
        );
        // a delete removes what was counted for the object (its last stored state, not
        // the re-stamped copy the event carries)
        u.apply(&[
            ev(EventType::Deleted, obj("a", "x", 131, 5), Some(a1b)),
            ev(EventType::Deleted, obj("b", "z", 8, 6), Some(b1)),
        ]);
        assert_eq!(
            u.cluster("a").total,
            Counts {
                objects: 1,
                bytes: 50
            }
        );
        assert!(!u.all().contains_key("b"), "empty clusters are dropped");
    }
}
