//! The in-memory global view a [`crate::CacheReader`] keeps (pure): every replicated
//! object of every shard, fed by a list and then watch events.
//!
//! # Surviving a cache-server restart
//! A restarted cache server starts empty and is refilled as each shard completes its full
//! sync. A reader that re-lists in between would see a partial world (a WorkspaceType of
//! shard B "missing" only because B has not re-synced yet). So on a re-list the index
//! *retains* the objects it had of every shard that the cache server does not yet report
//! as synced (`syncedShards`), unless the new list has them; when that shard's `SYNCED`
//! event arrives, its retained objects that it did not re-send are dropped (they were
//! deleted while the cache was down). Retained objects also expire after a while
//! ([`GlobalIndex::expire_retained`]), so a shard that never comes back does not live on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::wire::{EventType, ObjectList, ReplicatedObject, WatchEvent};

/// (resource, cluster, namespace, name, shard): sorted so a point lookup or a list of
/// one resource is a range.
type IndexKey = (String, String, String, String, String);

fn index_key(o: &ReplicatedObject) -> IndexKey {
    (
        o.key.resource.clone(),
        o.key.cluster.clone(),
        o.key.namespace.clone(),
        o.key.name.clone(),
        o.shard.clone(),
    )
}

#[derive(Debug, Clone)]
struct Entry {
    obj: Arc<ReplicatedObject>,
    /// Kept from before a re-list, waiting for its shard to sync.
    retained: bool,
}

/// The global view.
#[derive(Debug, Default, Clone)]
pub struct GlobalIndex {
    entries: BTreeMap<IndexKey, Entry>,
    /// The cache server's resourceVersion this view is current with (a watch resumes
    /// after it).
    rv: u64,
    instance: String,
    synced_shards: BTreeSet<String>,
}

impl GlobalIndex {
    pub fn new() -> GlobalIndex {
        GlobalIndex::default()
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The cache-server instance the view was last listed from.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many objects are retained from before the last re-list.
    pub fn retained(&self) -> usize {
        self.entries.values().filter(|e| e.retained).count()
    }

    /// Replaces the view with a fresh list, retaining the objects of shards the cache
    /// server does not report as synced (see the module docs).
    pub fn replace(&mut self, list: ObjectList) {
        let synced: BTreeSet<String> = list.synced_shards.into_iter().collect();
        let mut entries: BTreeMap<IndexKey, Entry> = list
            .items
            .into_iter()
            .map(|o| {
                (
                    index_key(&o),
                    Entry {
                        obj: Arc::new(o),
                        retained: false,
                    },
                )
            })
            .collect();
        for (k, e) in std::mem::take(&mut self.entries) {
            if !synced.contains(&e.obj.shard) && !entries.contains_key(&k) {
                entries.insert(
                    k,
                    Entry {
                        obj: e.obj,
                        retained: true,
                    },
                );
            }
        }
        self.entries = entries;
        self.rv = list.resource_version;
        self.instance = list.instance;
        self.synced_shards = synced;
    }

    /// Applies one watch event; returns whether the view changed.
    pub fn apply(&mut self, ev: WatchEvent) -> bool {
        if ev.resource_version > self.rv {
            self.rv = ev.resource_version;
        }
        match ev.kind {
            EventType::Added | EventType::Modified => match ev.object {
                Some(o) => {
                    self.entries.insert(
                        index_key(&o),
                        Entry {
                            obj: Arc::new(o),
                            retained: false,
                        },
                    );
                    true
                }
                None => false,
            },
            EventType::Deleted => match ev.object {
                Some(o) => self.entries.remove(&index_key(&o)).is_some(),
                None => false,
            },
            EventType::Synced => {
                let Some(shard) = ev.shard else { return false };
                let before = self.entries.len();
                self.entries
                    .retain(|_, e| !(e.retained && e.obj.shard == shard));
                self.synced_shards.insert(shard);
                before != self.entries.len()
            }
            EventType::Bookmark | EventType::Error => false,
        }
    }

    /// Drops every retained object; returns whether any was dropped.
    pub fn expire_retained(&mut self) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, e| !e.retained);
        before != self.entries.len()
    }

    /// Every copy of `resource` `cluster`/`namespace`/`name` (normally one: a logical
    /// cluster lives on one shard), ordered by shard; current copies before retained
    /// ones.
    pub fn get_all(
        &self,
        resource: &str,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Vec<Arc<ReplicatedObject>> {
        let lo = (
            resource.to_string(),
            cluster.to_string(),
            namespace.to_string(),
            name.to_string(),
            String::new(),
        );
        let mut v: Vec<&Entry> = self
            .entries
            .range(lo..)
            .take_while(|(k, _)| {
                k.0 == resource && k.1 == cluster && k.2 == namespace && k.3 == name
            })
            .map(|(_, e)| e)
            .collect();
        v.sort_by_key(|e| e.retained);
        v.into_iter().map(|e| e.obj.clone()).collect()
    }

    /// The copy of an object (see [`GlobalIndex::get_all`]).
    pub fn get(
        &self,
        resource: &str,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<ReplicatedObject>> {
        self.get_all(resource, cluster, namespace, name)
            .into_iter()
            .next()
    }

    /// Every object of `resource` (every shard), optionally of one logical cluster.
    pub fn list(&self, resource: &str, cluster: Option<&str>) -> Vec<Arc<ReplicatedObject>> {
        let lo = (
            resource.to_string(),
            cluster.unwrap_or("").to_string(),
            String::new(),
            String::new(),
            String::new(),
        );
        self.entries
            .range(lo..)
            .take_while(|(k, _)| k.0 == resource && cluster.is_none_or(|c| k.1 == c))
            .map(|(_, e)| e.obj.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Key;
    use serde_json::json;

    const R: &str = "tenancy.kcp.io/workspacetypes";

    fn obj(shard: &str, cluster: &str, name: &str, rv: u64) -> ReplicatedObject {
        ReplicatedObject {
            shard: shard.into(),
            key: Key::new(R, cluster, "", name),
            source_resource_version: rv,
            resource_version: rv,
            object: json!({"metadata": {"name": name}}),
        }
    }

    fn list(rv: u64, synced: &[&str], items: Vec<ReplicatedObject>) -> ObjectList {
        ObjectList {
            instance: "i".into(),
            resource_version: rv,
            synced_shards: synced.iter().map(|s| s.to_string()).collect(),
            items,
        }
    }

    fn ev(
        kind: EventType,
        rv: u64,
        o: Option<ReplicatedObject>,
        shard: Option<&str>,
    ) -> WatchEvent {
        WatchEvent {
            kind,
            resource_version: rv,
            object: o,
            shard: shard.map(str::to_string),
            status: None,
        }
    }

    fn names(ix: &GlobalIndex) -> Vec<String> {
        ix.list(R, None)
            .iter()
            .map(|o| format!("{}/{}/{}", o.shard, o.key.cluster, o.key.name))
            .collect()
    }

    #[test]
    fn list_then_events() {
        let mut ix = GlobalIndex::new();
        ix.replace(list(
            10,
            &["a", "b"],
            vec![obj("a", "c1", "x", 1), obj("b", "c2", "y", 2)],
        ));
        assert_eq!(names(&ix), ["a/c1/x", "b/c2/y"]);
        assert!(ix.apply(ev(
            EventType::Added,
            11,
            Some(obj("b", "c2", "z", 11)),
            None
        )));
        assert!(ix.apply(ev(
            EventType::Deleted,
            12,
            Some(obj("a", "c1", "x", 12)),
            None
        )));
        assert!(!ix.apply(ev(EventType::Bookmark, 15, None, None)));
        assert_eq!(names(&ix), ["b/c2/y", "b/c2/z"]);
        assert_eq!(ix.resource_version(), 15);
        assert_eq!(ix.get(R, "c2", "", "z").unwrap().resource_version, 11);
        assert!(ix.get(R, "c2", "", "nope").is_none());
        assert_eq!(ix.list(R, Some("c2")).len(), 2);
        assert_eq!(ix.list(R, Some("c1")).len(), 0);
        assert_eq!(ix.list("other/r", None).len(), 0);
    }

    #[test]
    fn relist_after_restart_retains_unsynced_shards_until_they_sync() {
        let mut ix = GlobalIndex::new();
        ix.replace(list(
            10,
            &["a", "b"],
            vec![
                obj("a", "c1", "x", 1),
                obj("b", "c2", "y", 2),
                obj("b", "c2", "gone", 3),
            ],
        ));
        // the cache server restarted; only a has synced again, b has sent one object
        ix.replace(list(
            100,
            &["a"],
            vec![obj("a", "c1", "x", 100), obj("b", "c2", "y", 101)],
        ));
        assert_eq!(names(&ix), ["a/c1/x", "b/c2/gone", "b/c2/y"]);
        assert_eq!(ix.retained(), 1);
        // b finishes its sync: "gone" was deleted while the cache was down
        assert!(ix.apply(ev(EventType::Synced, 102, None, Some("b"))));
        assert_eq!(names(&ix), ["a/c1/x", "b/c2/y"]);
        assert_eq!(ix.retained(), 0);
    }

    #[test]
    fn synced_shards_are_not_retained_and_retention_expires() {
        let mut ix = GlobalIndex::new();
        ix.replace(list(
            10,
            &["a", "b"],
            vec![obj("a", "c1", "x", 1), obj("b", "c2", "y", 2)],
        ));
        ix.replace(list(20, &["a"], vec![]));
        assert_eq!(names(&ix), ["b/c2/y"]);
        // a re-sent upsert turns a retained object current again
        ix.apply(ev(
            EventType::Modified,
            21,
            Some(obj("b", "c2", "y", 21)),
            None,
        ));
        assert_eq!(ix.retained(), 0);
        ix.replace(list(30, &[], vec![]));
        assert_eq!(ix.retained(), 1);
        assert!(ix.expire_retained());
        assert!(ix.is_empty());
    }

    #[test]
    fn current_copies_come_before_retained_ones() {
        let mut ix = GlobalIndex::new();
        ix.replace(list(10, &[], vec![obj("a", "root", "t", 1)]));
        ix.replace(list(20, &[], vec![obj("b", "root", "t", 2)]));
        let all = ix.get_all(R, "root", "", "t");
        assert_eq!(all.len(), 2);
        assert_eq!(ix.get(R, "root", "", "t").unwrap().shard, "b");
    }
}
