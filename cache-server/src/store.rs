//! The cache server's state, in memory: every replicated object of every shard, one
//! monotonically increasing resourceVersion, and a ring of recent events for watches
//! that resume.
//!
//! Nothing is persisted. A restarted cache server starts empty and every shard's
//! replicator notices (the `instance` changed, or its heartbeat finds itself not synced)
//! and does a full sync; readers notice too (their watch breaks, and resuming from an
//! old resourceVersion is answered 410, because a new instance starts its
//! resourceVersions at the current time in microseconds, above any resourceVersion a
//! previous instance handed out) and re-list. The shards' databases are the source of
//! truth; the cache is a derived, rebuildable view, so durability would only buy a faster
//! warm-up at the price of a second source of truth that could disagree with the shards.
//!
//! Writers hold the write lock while they append to the ring and broadcast, and a watch
//! copies its starting events and subscribes under the read lock, so a watcher sees every
//! event after its resourceVersion exactly once and in order.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use canopy_cache::wire::{
    rv_string, EventType, Key, ObjectList, Op, ReplicatedObject, ShardStatus,
};
use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::broadcast;

/// (resource, shard, cluster, namespace, name).
type GKey = (String, String, String, String, String);

fn gkey(shard: &str, k: &Key) -> GKey {
    (
        k.resource.clone(),
        shard.to_string(),
        k.cluster.clone(),
        k.namespace.clone(),
        k.name.clone(),
    )
}

/// One change, with its NDJSON line serialized once for every watcher.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    /// ADDED/MODIFIED: the new state; DELETED: the last state.
    pub object: Option<Arc<ReplicatedObject>>,
    /// Whose change (for SYNCED, the shard that synced).
    pub shard: String,
    /// `{"type":..,"resourceVersion":..,..}\n`.
    pub line: Bytes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent<'a> {
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(with = "rv_string")]
    resource_version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a ReplicatedObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<&'a str>,
}

impl Event {
    fn new(rv: u64, kind: EventType, object: Option<Arc<ReplicatedObject>>, shard: &str) -> Event {
        let line = event_line(
            kind,
            rv,
            object.as_deref(),
            (kind == EventType::Synced).then_some(shard),
        );
        Event {
            rv,
            kind,
            object,
            shard: shard.to_string(),
            line,
        }
    }
}

/// An NDJSON line of a watch stream.
pub fn event_line(
    kind: EventType,
    rv: u64,
    object: Option<&ReplicatedObject>,
    shard: Option<&str>,
) -> Bytes {
    let mut v = serde_json::to_vec(&WireEvent {
        kind,
        resource_version: rv,
        object,
        shard,
    })
    .unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// What a list or watch selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Empty: every resource.
    pub resources: Vec<String>,
    pub shard: Option<String>,
    pub cluster: Option<String>,
}

impl Filter {
    pub fn matches_object(&self, o: &ReplicatedObject) -> bool {
        (self.resources.is_empty() || self.resources.contains(&o.key.resource))
            && self.shard.as_ref().is_none_or(|s| *s == o.shard)
            && self.cluster.as_ref().is_none_or(|c| *c == o.key.cluster)
    }

    /// Whether a watcher with this filter gets `ev`.
    pub fn matches(&self, ev: &Event) -> bool {
        match &ev.object {
            Some(o) => self.matches_object(o),
            None => self.shard.as_ref().is_none_or(|s| *s == ev.shard),
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
}

struct State {
    rv: u64,
    /// Watches can resume from any resourceVersion >= oldest.
    oldest: u64,
    objects: BTreeMap<GKey, Arc<ReplicatedObject>>,
    ring: VecDeque<Arc<Event>>,
    synced: BTreeSet<String>,
}

impl State {
    fn push(&mut self, tx: &broadcast::Sender<Arc<Event>>, history: usize, ev: Event) {
        debug_assert_eq!(ev.rv, self.rv + 1);
        self.rv = ev.rv;
        let ev = Arc::new(ev);
        self.ring.push_back(ev.clone());
        while self.ring.len() > history {
            if let Some(old) = self.ring.pop_front() {
                self.oldest = old.rv;
            }
        }
        let _ = tx.send(ev);
    }
}

/// The in-memory store of one cache-server instance.
pub struct MemStore {
    state: RwLock<State>,
    tx: broadcast::Sender<Arc<Event>>,
    instance: String,
    history: usize,
}

impl MemStore {
    /// An empty store whose first change gets `start_rv + 1`, keeping `history` events
    /// for resuming watches; a watcher more than `channel` events behind is cut off.
    pub fn new(instance: &str, start_rv: u64, history: usize, channel: usize) -> MemStore {
        let (tx, _) = broadcast::channel(channel.max(16));
        MemStore {
            state: RwLock::new(State {
                rv: start_rv,
                oldest: start_rv,
                objects: BTreeMap::new(),
                ring: VecDeque::new(),
                synced: BTreeSet::new(),
            }),
            tx,
            instance: instance.to_string(),
            history: history.max(1),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn current_rv(&self) -> u64 {
        self.state.read().rv
    }

    pub fn oldest_rv(&self) -> u64 {
        self.state.read().oldest
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.state.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn synced_shards(&self) -> Vec<String> {
        self.state.read().synced.iter().cloned().collect()
    }

    /// Applies `shard`'s operations in order, atomically (all are validated first).
    /// Returns the resourceVersion after them. An upsert of exactly what is stored
    /// changes nothing.
    pub fn write(&self, shard: &str, ops: Vec<Op>) -> Result<u64, StoreError> {
        for op in &ops {
            if let Some(why) = op.key().invalid() {
                return Err(StoreError::Invalid(format!("{}: {why}", op.key())));
            }
            if let Op::Upsert(u) = op {
                if !u.object.is_object() {
                    return Err(StoreError::Invalid(format!(
                        "{}: object must be a JSON object",
                        u.key
                    )));
                }
            }
        }
        let mut st = self.state.write();
        for op in ops {
            match op {
                Op::Upsert(u) => {
                    let k = gkey(shard, &u.key);
                    let existing = st.objects.get(&k);
                    if existing.is_some_and(|e| {
                        e.source_resource_version == u.source_resource_version
                            && e.object == u.object
                    }) {
                        continue;
                    }
                    let kind = if existing.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    let rv = st.rv + 1;
                    let obj = Arc::new(ReplicatedObject {
                        shard: shard.to_string(),
                        key: u.key,
                        source_resource_version: u.source_resource_version,
                        resource_version: rv,
                        object: u.object,
                    });
                    st.objects.insert(k, obj.clone());
                    st.push(
                        &self.tx,
                        self.history,
                        Event::new(rv, kind, Some(obj), shard),
                    );
                }
                Op::Delete(key) => {
                    let k = gkey(shard, &key);
                    if let Some(old) = st.objects.remove(&k) {
                        let rv = st.rv + 1;
                        let last = Arc::new(ReplicatedObject {
                            resource_version: rv,
                            ..(*old).clone()
                        });
                        st.push(
                            &self.tx,
                            self.history,
                            Event::new(rv, EventType::Deleted, Some(last), shard),
                        );
                    }
                }
            }
        }
        Ok(st.rv)
    }

    /// Deletes every object of `shard` whose key is not in `keys` and marks the shard
    /// synced. Returns (resourceVersion, deleted count).
    pub fn sync(&self, shard: &str, keys: Vec<Key>) -> Result<(u64, u64), StoreError> {
        for k in &keys {
            if let Some(why) = k.invalid() {
                return Err(StoreError::Invalid(format!("{k}: {why}")));
            }
        }
        let keep: HashSet<GKey> = keys.iter().map(|k| gkey(shard, k)).collect();
        let mut st = self.state.write();
        let doomed: Vec<GKey> = st
            .objects
            .keys()
            .filter(|k| k.1 == shard && !keep.contains(*k))
            .cloned()
            .collect();
        let deleted = doomed.len() as u64;
        for k in doomed {
            if let Some(old) = st.objects.remove(&k) {
                let rv = st.rv + 1;
                let last = Arc::new(ReplicatedObject {
                    resource_version: rv,
                    ..(*old).clone()
                });
                st.push(
                    &self.tx,
                    self.history,
                    Event::new(rv, EventType::Deleted, Some(last), shard),
                );
            }
        }
        let rv = st.rv + 1;
        st.synced.insert(shard.to_string());
        st.push(
            &self.tx,
            self.history,
            Event::new(rv, EventType::Synced, None, shard),
        );
        Ok((st.rv, deleted))
    }

    /// The objects `f` selects, with the resourceVersion they are consistent with.
    pub fn list(&self, f: &Filter) -> ObjectList {
        let st = self.state.read();
        let mut items = Vec::new();
        let mut add = |o: &Arc<ReplicatedObject>| {
            if f.matches_object(o) {
                items.push((**o).clone());
            }
        };
        if f.resources.is_empty() {
            st.objects.values().for_each(&mut add);
        } else {
            let mut resources = f.resources.clone();
            resources.sort();
            resources.dedup();
            for r in resources {
                let lo = (
                    r.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                );
                st.objects
                    .range(lo..)
                    .take_while(|(k, _)| k.0 == r)
                    .for_each(|(_, o)| add(o));
            }
        }
        ObjectList {
            instance: self.instance.clone(),
            resource_version: st.rv,
            synced_shards: st.synced.iter().cloned().collect(),
            items,
        }
    }

    /// Every event after `from` still retained, and a receiver of every later one.
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &self,
        from: u64,
    ) -> Result<(Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>), StoreError> {
        let st = self.state.read();
        if from < st.oldest || from > st.rv {
            return Err(StoreError::Gone {
                requested: from,
                oldest: st.oldest,
            });
        }
        let skip = st.ring.partition_point(|e| e.rv <= from);
        let initial = st.ring.iter().skip(skip).cloned().collect();
        Ok((initial, self.tx.subscribe()))
    }

    pub fn shard_status(&self, shard: &str) -> ShardStatus {
        let st = self.state.read();
        ShardStatus {
            shard: shard.to_string(),
            instance: self.instance.clone(),
            synced: st.synced.contains(shard),
            objects: st.objects.keys().filter(|k| k.1 == shard).count() as u64,
            resource_version: st.rv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_cache::wire::Upsert;
    use proptest::prelude::*;
    use serde_json::json;

    const R: &str = "g/r";

    fn up(name: &str, rv: u64) -> Op {
        Op::Upsert(Upsert {
            key: Key::new(R, "c", "", name),
            source_resource_version: rv,
            object: json!({"metadata": {"name": name, "resourceVersion": rv.to_string()}}),
        })
    }

    fn del(name: &str) -> Op {
        Op::Delete(Key::new(R, "c", "", name))
    }

    fn names(l: &ObjectList) -> Vec<String> {
        l.items
            .iter()
            .map(|o| format!("{}/{}", o.shard, o.key.name))
            .collect()
    }

    #[test]
    fn write_sync_list_and_events() {
        let s = MemStore::new("i", 100, 100, 100);
        assert_eq!(s.write("a", vec![up("x", 1), up("y", 2)]).unwrap(), 102);
        assert_eq!(s.write("b", vec![up("x", 7)]).unwrap(), 103);
        // an identical upsert is no change
        assert_eq!(s.write("a", vec![up("x", 1)]).unwrap(), 103);
        assert_eq!(s.write("a", vec![up("x", 3), del("nope")]).unwrap(), 104);
        let l = s.list(&Filter::default());
        assert_eq!(names(&l), ["a/x", "a/y", "b/x"]);
        assert_eq!(l.resource_version, 104);
        assert!(l.synced_shards.is_empty());
        // sync a with only y: x goes
        assert_eq!(
            s.sync("a", vec![Key::new(R, "c", "", "y")]).unwrap(),
            (106, 1)
        );
        let l = s.list(&Filter {
            shard: Some("a".into()),
            ..Default::default()
        });
        assert_eq!(names(&l), ["a/y"]);
        assert_eq!(l.synced_shards, ["a"]);
        assert!(s.shard_status("a").synced);
        assert!(!s.shard_status("b").synced);
        assert_eq!(s.shard_status("b").objects, 1);
        let (evs, _) = s.watch(100).unwrap();
        let kinds: Vec<_> = evs.iter().map(|e| (e.rv, e.kind)).collect();
        assert_eq!(
            kinds,
            [
                (101, EventType::Added),
                (102, EventType::Added),
                (103, EventType::Added),
                (104, EventType::Modified),
                (105, EventType::Deleted),
                (106, EventType::Synced),
            ]
        );
        let line: serde_json::Value = serde_json::from_slice(&evs[5].line).unwrap();
        assert_eq!(
            line,
            json!({"type": "SYNCED", "resourceVersion": "106", "shard": "a"})
        );
        let line: serde_json::Value = serde_json::from_slice(&evs[4].line).unwrap();
        assert_eq!(line["object"]["resourceVersion"], "105");
        assert_eq!(line["object"]["name"], "x");
    }

    #[test]
    fn invalid_writes_change_nothing() {
        let s = MemStore::new("i", 0, 10, 10);
        let bad = Op::Upsert(Upsert {
            key: Key::new(R, "c", "", "z"),
            source_resource_version: 1,
            object: json!("not an object"),
        });
        assert!(s.write("a", vec![up("x", 1), bad]).is_err());
        assert!(s
            .write("a", vec![Op::Delete(Key::new("nogroup", "c", "", "x"))])
            .is_err());
        assert!(s.is_empty());
        assert_eq!(s.current_rv(), 0);
    }

    #[test]
    fn watch_from_outside_the_window_is_gone() {
        let s = MemStore::new("i", 1000, 3, 10);
        for i in 0..5 {
            s.write("a", vec![up("x", i + 1)]).unwrap();
        }
        assert_eq!(s.oldest_rv(), 1002);
        assert!(matches!(s.watch(1001), Err(StoreError::Gone { .. })));
        assert_eq!(s.watch(1002).unwrap().0.len(), 3);
        assert_eq!(s.watch(1005).unwrap().0.len(), 0);
        // from a previous instance's resourceVersions (or the future)
        assert!(matches!(s.watch(5), Err(StoreError::Gone { .. })));
        assert!(matches!(s.watch(2000), Err(StoreError::Gone { .. })));
    }

    #[derive(Debug, Clone)]
    enum Action {
        Write(String, Vec<Op>),
        Sync(String, Vec<Key>),
    }

    fn action() -> impl Strategy<Value = Action> {
        let shard = prop::sample::select(vec!["a".to_string(), "b".to_string()]);
        let name = 0..5u8;
        let op = (name.clone(), 1..4u64, any::<bool>()).prop_map(|(n, rv, d)| {
            if d {
                del(&format!("n{n}"))
            } else {
                up(&format!("n{n}"), rv)
            }
        });
        prop_oneof![
            3 => (shard.clone(), prop::collection::vec(op, 1..4)).prop_map(|(s, o)| Action::Write(s, o)),
            1 => (shard, prop::collection::vec(name, 0..4)).prop_map(|(s, ns)| Action::Sync(
                s,
                ns.into_iter().map(|n| Key::new(R, "c", "", &format!("n{n}"))).collect()
            )),
        ]
    }

    type View = BTreeMap<(String, String), (u64, u64)>;

    fn view(items: &[ReplicatedObject]) -> View {
        items
            .iter()
            .map(|o| {
                (
                    (o.shard.clone(), o.key.name.clone()),
                    (o.source_resource_version, o.resource_version),
                )
            })
            .collect()
    }

    proptest! {
        /// Resuming a watch from any retained resourceVersion R and replaying its events
        /// over the list taken at R yields exactly the current list; resourceVersions are
        /// dense and increasing; anything older than the window is 410.
        #[test]
        fn watch_resume_replays_to_the_current_state(actions in prop::collection::vec(action(), 1..40), history in 1..30usize) {
            let s = MemStore::new("i", 50, history, 1000);
            let mut snapshots: Vec<(u64, View)> = vec![(50, View::new())];
            for a in actions {
                match a {
                    Action::Write(shard, ops) => { s.write(&shard, ops).unwrap(); }
                    Action::Sync(shard, keys) => { s.sync(&shard, keys).unwrap(); }
                }
                let l = s.list(&Filter::default());
                snapshots.push((l.resource_version, view(&l.items)));
            }
            let current = view(&s.list(&Filter::default()).items);
            for (rv, snap) in &snapshots {
                match s.watch(*rv) {
                    Ok((evs, _)) => {
                        prop_assert!(*rv >= s.oldest_rv());
                        let mut state = snap.clone();
                        let mut last = *rv;
                        for e in evs {
                            prop_assert_eq!(e.rv, last + 1);
                            last = e.rv;
                            match (e.kind, &e.object) {
                                (EventType::Added | EventType::Modified, Some(o)) => {
                                    state.insert((o.shard.clone(), o.key.name.clone()), (o.source_resource_version, o.resource_version));
                                }
                                (EventType::Deleted, Some(o)) => {
                                    prop_assert!(state.remove(&(o.shard.clone(), o.key.name.clone())).is_some());
                                }
                                (EventType::Synced, None) => {}
                                other => prop_assert!(false, "unexpected event {:?}", other),
                            }
                        }
                        prop_assert_eq!(last, s.current_rv());
                        prop_assert_eq!(&state, &current);
                    }
                    Err(StoreError::Gone { .. }) => prop_assert!(*rv < s.oldest_rv()),
                    Err(e) => prop_assert!(false, "{}", e),
                }
            }
        }
    }

    fn index_view(ix: &canopy_cache::index::GlobalIndex) -> View {
        ix.list(R, None)
            .iter()
            .map(|o| {
                (
                    (o.shard.clone(), o.key.name.clone()),
                    (o.source_resource_version, o.resource_version),
                )
            })
            .collect()
    }

    proptest! {
        /// A reader's index (canopy_cache's GlobalIndex) fed by lists and by resumed
        /// watches (their NDJSON lines, parsed) holds every object of the store at its
        /// version, plus only objects retained for shards that have not synced; once every
        /// shard syncs, exactly the store.
        #[test]
        fn a_reader_index_follows_the_store(
            actions in prop::collection::vec(action(), 1..40),
            relist in prop::collection::vec(any::<bool>(), 40),
            history in 1..8usize,
        ) {
            let s = MemStore::new("i", 50, history, 1000);
            let mut ix = canopy_cache::index::GlobalIndex::new();
            ix.replace(s.list(&Filter::default()));
            let catch_up = |ix: &mut canopy_cache::index::GlobalIndex, relist: bool| {
                if relist {
                    ix.replace(s.list(&Filter::default()));
                    return;
                }
                match s.watch(ix.resource_version()) {
                    Ok((evs, _)) => {
                        for e in evs {
                            let ev: canopy_cache::wire::WatchEvent = serde_json::from_slice(&e.line).unwrap();
                            ix.apply(ev);
                        }
                    }
                    Err(StoreError::Gone { .. }) => ix.replace(s.list(&Filter::default())),
                    Err(e) => panic!("{e}"),
                }
            };
            for (i, a) in actions.into_iter().enumerate() {
                match a {
                    Action::Write(shard, ops) => { s.write(&shard, ops).unwrap(); }
                    Action::Sync(shard, keys) => { s.sync(&shard, keys).unwrap(); }
                }
                catch_up(&mut ix, relist[i]);
                let store = view(&s.list(&Filter::default()).items);
                let index = index_view(&ix);
                let synced = s.synced_shards();
                for (k, v) in &store {
                    prop_assert_eq!(index.get(k), Some(v));
                }
                for k in index.keys().filter(|k| !store.contains_key(*k)) {
                    prop_assert!(!synced.contains(&k.0), "stale {:?} of a synced shard", k);
                }
                prop_assert_eq!(ix.resource_version(), s.current_rv());
            }
            for shard in ["a", "b"] {
                let keys: Vec<Key> = s
                    .list(&Filter { shard: Some(shard.into()), ..Default::default() })
                    .items
                    .into_iter()
                    .map(|o| o.key)
                    .collect();
                s.sync(shard, keys).unwrap();
            }
            catch_up(&mut ix, false);
            prop_assert_eq!(index_view(&ix), view(&s.list(&Filter::default()).items));
            prop_assert_eq!(ix.retained(), 0);
        }
    }
}
