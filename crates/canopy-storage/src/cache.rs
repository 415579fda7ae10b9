//! The watch cache: current state of every object plus a ring of recent events, in
//! memory, fed only by the writer after each commit.
//!
//! Reads (get, list) and watches never touch PostgreSQL. Because the writer applies a
//! batch here before it answers the requests of that batch, a client always reads its
//! own writes. A watch registers with the live channel and copies its starting events
//! under the same lock the writer holds while appending, so there is neither a gap nor a
//! duplicate between the initial events and the live ones.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::{
    inner_key, EventType, ObjectKey, StorageError, StoreOptions, StoredObject, WatchEvent,
};

#[derive(Clone)]
pub(crate) struct Cache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    state: RwLock<State>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    history: usize,
}

struct State {
    rv: u64,
    /// Watches can resume from any rv >= oldest.
    oldest: u64,
    resources: HashMap<Arc<str>, BTreeMap<String, Arc<StoredObject>>>,
    ring: VecDeque<Arc<WatchEvent>>,
}

/// What to list.
pub struct ListOptions<'a> {
    /// `<group>/<plural>`.
    pub resource: &'a str,
    /// `None`: every logical cluster.
    pub cluster: Option<&'a str>,
    /// `None`: every namespace.
    pub namespace: Option<&'a str>,
    /// Only this name (a point lookup).
    pub name: Option<&'a str>,
    /// Resume after this key (from a previous page's `continue_key`).
    pub continue_after: Option<&'a str>,
    /// Most items to return; 0 means all.
    pub limit: usize,
    /// Keep only objects for which this returns true.
    pub filter: &'a dyn Fn(&StoredObject) -> bool,
}

pub struct ListResult {
    pub items: Vec<Arc<StoredObject>>,
    /// The resourceVersion the list is consistent with.
    pub rv: u64,
    /// Set when more items remain: pass as `continue_after` for the next page.
    pub continue_key: Option<String>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Synthetic `ADDED` events for every current object in scope, then live events.
    WithInitialState,
    /// Every event after this resourceVersion (must be inside the retained history).
    After(u64),
}

/// A watch on one resource, scoped to a logical cluster and namespace.
pub struct Watcher {
    /// The events to deliver before live ones.
    pub initial: Vec<Arc<WatchEvent>>,
    /// The resourceVersion the initial events bring the watcher to.
    pub start_rv: u64,
    resource: Arc<str>,
    cluster: Option<String>,
    namespace: Option<String>,
    rx: broadcast::Receiver<Arc<WatchEvent>>,
}

impl Watcher {
    /// Limits the watch (and its initial events) to a logical cluster and namespace.
    pub fn scoped(mut self, cluster: Option<&str>, namespace: Option<&str>) -> Self {
        self.cluster = cluster.map(str::to_string);
        self.namespace = namespace.map(str::to_string);
        let (c, n) = (self.cluster.clone(), self.namespace.clone());
        self.initial
            .retain(|e| in_scope(&e.object.key, c.as_deref(), n.as_deref()));
        self
    }

    /// The next live event in scope. `Err(Expired)` when the watcher fell too far behind
    /// (the client must re-list); `Ok(None)` when the store shut down.
    pub async fn next(&mut self) -> Result<Option<Arc<WatchEvent>>, StorageError> {
        loop {
            match self.rx.recv().await {
                Ok(ev) => {
                    if ev.object.key.resource == self.resource
                        && in_scope(
                            &ev.object.key,
                            self.cluster.as_deref(),
                            self.namespace.as_deref(),
                        )
                    {
                        return Ok(Some(ev));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Err(StorageError::Expired {
                        requested: 0,
                        oldest: n,
                    })
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }
}

fn in_scope(key: &ObjectKey, cluster: Option<&str>, namespace: Option<&str>) -> bool {
    cluster.is_none_or(|c| *key.cluster == *c) && namespace.is_none_or(|n| key.namespace == n)
}

impl Cache {
    pub(crate) fn new(
        objects: Vec<StoredObject>,
        history: Vec<Arc<WatchEvent>>,
        rv: u64,
        oldest: u64,
        options: &StoreOptions,
    ) -> Cache {
        let mut resources: HashMap<Arc<str>, BTreeMap<String, Arc<StoredObject>>> = HashMap::new();
        for o in objects {
            let inner = o.key.inner();
            resources
                .entry(o.key.resource.clone())
                .or_default()
                .insert(inner, Arc::new(o));
        }
        let (tx, _) = broadcast::channel(options.watch_channel_capacity.max(16));
        Cache {
            inner: Arc::new(CacheInner {
                state: RwLock::new(State {
                    rv,
                    oldest,
                    resources,
                    ring: history.into_iter().collect(),
                }),
                tx,
                history: options.history_events.max(1),
            }),
        }
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        let st = self.inner.state.read();
        st.resources.get(&key.resource)?.get(&key.inner()).cloned()
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.inner.state.read().rv
    }

    pub(crate) fn oldest_rv(&self) -> u64 {
        self.inner.state.read().oldest
    }

    pub(crate) fn list(&self, o: &ListOptions<'_>) -> Result<ListResult, StorageError> {
        let st = self.inner.state.read();
        let rv = st.rv;
        let Some(map) = st.resources.get(o.resource) else {
            return Ok(ListResult {
                items: Vec::new(),
                rv,
                continue_key: None,
            });
        };
        let mut items = Vec::new();
        if let (Some(c), Some(n), Some(name)) = (o.cluster, o.namespace, o.name) {
            if let Some(obj) = map.get(&inner_key(c, n, name)) {
                if (o.filter)(obj) {
                    items.push(obj.clone());
                }
            }
            return Ok(ListResult {
                items,
                rv,
                continue_key: None,
            });
        }
        let prefix = match (o.cluster, o.namespace) {
            (Some(c), Some(n)) => format!("{c}\0{n}\0"),
            (Some(c), None) => format!("{c}\0"),
            _ => String::new(),
        };
        let lower = match o.continue_after {
            Some(k) if k.as_bytes() >= prefix.as_bytes() => Bound::Excluded(k.to_string()),
            _ => Bound::Included(prefix.clone()),
        };
        let mut continue_key = None;
        for (k, obj) in map.range::<String, _>((lower, Bound::Unbounded)) {
            if !k.starts_with(&prefix) {
                break;
            }
            if o.cluster.is_none() {
                if let Some(n) = o.namespace {
                    if obj.key.namespace != n {
                        continue;
                    }
                }
            }
            if let Some(name) = o.name {
                if obj.key.name != name {
                    continue;
                }
            }
            if !(o.filter)(obj) {
                continue;
            }
            if o.limit > 0 && items.len() == o.limit {
                // there is at least one more matching item
                continue_key = items
                    .last()
                    .map(|last: &Arc<StoredObject>| last.key.inner());
                break;
            }
            items.push(obj.clone());
        }
        Ok(ListResult {
            items,
            rv,
            continue_key,
        })
    }

    pub(crate) fn watch(&self, resource: &str, start: WatchStart) -> Result<Watcher, StorageError> {
        let st = self.inner.state.read();
        let rx = self.inner.tx.subscribe();
        let resource: Arc<str> = resource.into();
        let initial = match start {
            WatchStart::WithInitialState => st
                .resources
                .get(&resource)
                .map(|m| {
                    m.values()
                        .map(|o| {
                            Arc::new(WatchEvent {
                                rv: o.rv,
                                kind: EventType::Added,
                                object: o.clone(),
                                prev: None,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            WatchStart::After(rv) => {
                if rv < st.oldest {
                    return Err(StorageError::Expired {
                        requested: rv,
                        oldest: st.oldest,
                    });
                }
                if rv > st.rv {
                    return Err(StorageError::TooNew {
                        requested: rv,
                        current: st.rv,
                    });
                }
                // ring is sorted by rv: skip what the watcher has seen
                let skip = st.ring.partition_point(|e| e.rv <= rv);
                st.ring
                    .iter()
                    .skip(skip)
                    .filter(|e| e.object.key.resource == resource)
                    .cloned()
                    .collect()
            }
        };
        Ok(Watcher {
            initial,
            start_rv: st.rv,
            resource,
            cluster: None,
            namespace: None,
            rx,
        })
    }

    /// Keys of every object of one logical cluster.
    pub(crate) fn keys_of_cluster(&self, cluster: &str) -> Vec<ObjectKey> {
        let st = self.inner.state.read();
        let prefix = format!("{cluster}\0");
        let mut out = Vec::new();
        for map in st.resources.values() {
            for (k, o) in
                map.range::<String, _>((Bound::Included(prefix.clone()), Bound::Unbounded))
            {
                if !k.starts_with(&prefix) {
                    break;
                }
                out.push(o.key.clone());
            }
        }
        out
    }

    pub(crate) fn subscribe_all(&self) -> (u64, broadcast::Receiver<Arc<WatchEvent>>) {
        let st = self.inner.state.read();
        (st.rv, self.inner.tx.subscribe())
    }

    /// Applies committed events, in order. Called only by the writer.
    pub(crate) fn apply(&self, events: Vec<Arc<WatchEvent>>) {
        let mut st = self.inner.state.write();
        for ev in events {
            debug_assert_eq!(ev.rv, st.rv + 1, "events must be dense and in order");
            let key = &ev.object.key;
            let map = st.resources.entry(key.resource.clone()).or_default();
            match ev.kind {
                EventType::Deleted => {
                    map.remove(&key.inner());
                }
                _ => {
                    map.insert(key.inner(), ev.object.clone());
                }
            }
            st.rv = ev.rv;
            st.ring.push_back(ev.clone());
            while st.ring.len() > self.inner.history {
                if let Some(old) = st.ring.pop_front() {
                    st.oldest = old.rv;
                }
            }
            let _ = self.inner.tx.send(ev);
        }
    }
}
