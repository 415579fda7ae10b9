//! The watch cache: current state of every object plus a ring of recent events, in
//! memory, fed only by the writer after each commit.
//!
//! Reads (get, list) and watches never touch PostgreSQL. Because the writer applies a
//! batch here before it answers the requests of that batch, a client always reads its
//! own writes.
//!
//! Live events go to watchers through [`crate::fanout`]: an index of watchers by
//! resource, logical cluster and namespace, each with a bounded queue of its own, so an
//! event wakes only the watchers whose scope contains it. The writer appends a batch to
//! the state and queues it for its watchers while holding the fan-out lock (waking
//! them after releasing it); a watch copies its
//! starting events and registers in the index under that same lock, so there is neither
//! a gap nor a duplicate between the initial events and the live ones. Readers (get,
//! list) take only the state lock, which the writer holds just to append, never while
//! dispatching.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::broadcast;

use crate::fanout::{Index, Next, Pacer, Scope, Slot, Wakes};
use crate::{
    inner_key, EventType, ObjectKey, StorageError, StoreOptions, StoredObject, WatchEvent,
};

#[derive(Clone)]
pub(crate) struct Cache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    state: RwLock<State>,
    fanout: Arc<Fanout>,
    history: usize,
}

impl Drop for CacheInner {
    fn drop(&mut self) {
        // every watcher ends (`Ok(None)`), every `subscribe_all` receiver sees `Closed`
        let mut f = self.fanout.inner.lock();
        f.index.close_all();
        f.all = None;
    }
}

/// The watchers: the index of scoped watchers and the channel of every event (for
/// [`crate::Store::subscribe_all`]). Its lock orders registrations against dispatch.
struct Fanout {
    inner: Mutex<FanoutInner>,
    /// Wakes the watchers of large dispatches in rounds, outside the lock.
    pacer: Pacer,
    /// Most events a watcher's queue holds.
    capacity: usize,
}

struct FanoutInner {
    index: Index,
    all: Option<broadcast::Sender<Arc<WatchEvent>>>,
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
///
/// Dropping it unregisters it.
pub struct Watcher {
    /// The events to deliver before live ones.
    pub initial: Vec<Arc<WatchEvent>>,
    /// The resourceVersion the initial events bring the watcher to.
    pub start_rv: u64,
    scope: Scope,
    slot: Arc<Slot>,
    /// Its id in the index (0: not registered).
    id: u64,
    fanout: Arc<Fanout>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("scope", &self.scope)
            .field("start_rv", &self.start_rv)
            .field("initial", &self.initial.len())
            .finish()
    }
}

impl Watcher {
    /// Limits the watch (and its initial events) to a logical cluster and namespace,
    /// moving it to that place of the index. [`crate::Store::watch_scoped`] registers
    /// there directly (and copies only the scope's initial state).
    pub fn scoped(mut self, cluster: Option<&str>, namespace: Option<&str>) -> Self {
        let scope = Scope::new(&self.scope.resource, cluster, namespace);
        {
            let mut f = self.fanout.inner.lock();
            if self.id != 0 {
                f.index.remove(&self.scope, self.id);
                self.id = f.index.insert(&scope, self.slot.clone());
            }
        }
        // events queued before the move are filtered by `next`
        self.scope = scope;
        let s = &self.scope;
        self.initial.retain(|e| s.contains(&e.object.key));
        self
    }

    /// The next live event in scope. `Err(WatcherBehind)` when the watcher fell so far
    /// behind that its queue overflowed (it carries the resourceVersion to resume from);
    /// `Ok(None)` when the store shut down. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Arc<WatchEvent>>, StorageError> {
        loop {
            match self.slot.next().await {
                Next::Event(ev) => {
                    if self.scope.contains(&ev.object.key) {
                        return Ok(Some(ev));
                    }
                }
                Next::Behind { resume_rv } => {
                    return Err(StorageError::WatcherBehind {
                        resume_rv,
                        capacity: self.fanout.capacity,
                    })
                }
                Next::Closed => return Ok(None),
            }
        }
    }

    /// Live events queued for this watcher and not yet taken by [`Watcher::next`].
    pub fn queued(&self) -> usize {
        self.slot.queued()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.id != 0 {
            self.fanout.inner.lock().index.remove(&self.scope, self.id);
        }
    }
}

impl Cache {
    pub(crate) fn new(
        objects: Vec<Arc<StoredObject>>,
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
                .insert(inner, o);
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
                fanout: Arc::new(Fanout {
                    inner: Mutex::new(FanoutInner {
                        index: Index::default(),
                        all: Some(tx),
                    }),
                    pacer: Pacer::new(),
                    capacity: options.watcher_queue_capacity.max(1),
                }),
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

    pub(crate) fn watch(
        &self,
        resource: &str,
        cluster: Option<&str>,
        namespace: Option<&str>,
        start: WatchStart,
    ) -> Result<Watcher, StorageError> {
        let scope = Scope::new(resource, cluster, namespace);
        // the fan-out lock first (as the writer takes it): no batch is between being
        // applied and being dispatched while the starting point is copied
        let mut f = self.inner.fanout.inner.lock();
        let st = self.inner.state.read();
        let initial = match start {
            WatchStart::WithInitialState => initial_state(&st, &scope),
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
                    .filter(|e| scope.contains(&e.object.key))
                    .cloned()
                    .collect()
            }
        };
        let start_rv = st.rv;
        drop(st);
        let slot = Arc::new(Slot::new());
        let id = f.index.insert(&scope, slot.clone());
        drop(f);
        Ok(Watcher {
            initial,
            start_rv,
            scope,
            slot,
            id,
            fanout: self.inner.fanout.clone(),
        })
    }

    /// Watchers registered (for metrics and tests).
    pub(crate) fn watchers(&self) -> usize {
        self.inner.fanout.inner.lock().index.len()
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
        let f = self.inner.fanout.inner.lock();
        let rv = self.inner.state.read().rv;
        let rx = match &f.all {
            Some(tx) => tx.subscribe(),
            // the store is going away: a receiver that reports `Closed` at once
            None => broadcast::channel(1).1,
        };
        (rv, rx)
    }

    /// Applies committed events, in order, then hands them to the watchers whose scope
    /// contains them. Called only by the writer.
    pub(crate) fn apply(&self, events: Vec<Arc<WatchEvent>>) {
        let mut f = self.inner.fanout.inner.lock();
        {
            let mut st = self.inner.state.write();
            for ev in &events {
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
            }
        }
        // readers (get, list) go on while the batch is dispatched; watches wait
        let capacity = self.inner.fanout.capacity;
        let mut wakes = Wakes::default();
        for ev in events {
            f.index.dispatch(&ev, capacity, &mut wakes);
            if let Some(tx) = &f.all {
                let _ = tx.send(ev);
            }
        }
        drop(f);
        self.inner.fanout.pacer.wake(wakes);
    }
}

/// Synthetic `ADDED` events for every object in `scope` (a range of the resource's map
/// when the scope names a logical cluster).
fn initial_state(st: &State, scope: &Scope) -> Vec<Arc<WatchEvent>> {
    let Some(map) = st.resources.get(&scope.resource) else {
        return Vec::new();
    };
    let added = |o: &Arc<StoredObject>| {
        Arc::new(WatchEvent {
            rv: o.rv,
            kind: EventType::Added,
            object: o.clone(),
            prev: None,
        })
    };
    match (&scope.cluster, &scope.namespace) {
        (Some(c), ns) => {
            let prefix = match ns {
                Some(n) => format!("{c}\0{n}\0"),
                None => format!("{c}\0"),
            };
            map.range::<String, _>((Bound::Included(prefix.clone()), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, o)| added(o))
                .collect()
        }
        (None, _) => map
            .values()
            .filter(|o| scope.contains(&o.key))
            .map(added)
            .collect(),
    }
}
