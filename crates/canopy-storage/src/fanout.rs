//! Watch fan-out: which watchers an event goes to, and each watcher's bounded queue.
//!
//! Watchers are indexed by what they watch: resource, then logical cluster (or every
//! cluster: controllers, `/clusters/*` watches), then namespace (or every namespace).
//! An event of `(resource, cluster, namespace)` is offered to at most four groups of
//! watchers — exact cluster and namespace, exact cluster and any namespace, any cluster
//! and exact namespace, any cluster and any namespace — so a write wakes only the
//! watchers whose scope contains it; another tenant's watchers never see it, not even
//! to filter it out.
//!
//! Each watcher has its own queue of at most `capacity` events (only pointers to the
//! shared events; it grows as needed and shrinks when drained). The dispatcher never
//! waits: a watcher whose queue is full is taken out of the index, keeps the events
//! already queued, and then reports the resourceVersion it can resume from (the one
//! just before the first event it missed). A slow watcher therefore costs the others
//! nothing and never holds events of its own scope past its capacity.
//!
//! Queuing and waking are separate: the dispatcher queues an event for every watcher in
//! scope under the fan-out lock, and collects the watchers to wake ([`Wakes`]). A few
//! are woken at once; many (one event for 10,000 watches) are woken by a pacer task in
//! rounds of [`PACE_ROUND`], yielding to the runtime between rounds, so the requests of
//! other tenants that arrive meanwhile are served between rounds instead of after all
//! 10,000 deliveries. The order of events per watcher is fixed when they are queued;
//! waking later changes only when a watcher looks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::{ObjectKey, WatchEvent};

/// What a watcher watches: one resource, in one logical cluster or all, in one
/// namespace or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub resource: Arc<str>,
    pub cluster: Option<Arc<str>>,
    pub namespace: Option<String>,
}

impl Scope {
    pub fn new(resource: &str, cluster: Option<&str>, namespace: Option<&str>) -> Scope {
        Scope {
            resource: resource.into(),
            cluster: cluster.map(Arc::from),
            namespace: namespace.map(str::to_string),
        }
    }

    /// Whether an object of `key` is in this scope.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        *key.resource == *self.resource
            && self.cluster.as_deref().is_none_or(|c| *key.cluster == *c)
            && self.namespace.as_deref().is_none_or(|n| key.namespace == n)
    }
}

/// One watcher's queue, shared by the dispatcher (producer) and the watcher (consumer).
pub(crate) struct Slot {
    queue: Mutex<Queue>,
    notify: Notify,
    /// In a [`Wakes`] list not yet woken: a second wake would be wasted.
    wake_pending: AtomicBool,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Arc<WatchEvent>>,
    /// The resourceVersion of the first event this watcher missed (its queue was full).
    missed_from: Option<u64>,
    /// The store shut down.
    closed: bool,
}

/// What a watcher's queue has for it.
#[derive(Debug)]
pub(crate) enum Next {
    Event(Arc<WatchEvent>),
    /// The watcher fell behind: it has every event of its scope up to and including
    /// this resourceVersion, and missed later ones.
    Behind {
        resume_rv: u64,
    },
    Closed,
}

/// A queue that held more than this many slots is shrunk once drained.
const SHRINK_ABOVE: usize = 64;

impl Slot {
    pub fn new() -> Slot {
        Slot {
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            wake_pending: AtomicBool::new(false),
        }
    }

    /// Queues `ev` unless the queue holds `capacity` events already; then the watcher
    /// is marked behind and `false` is returned (the dispatcher drops it from the index).
    /// A watcher that must look at its queue again is added to `wakes`.
    fn offer(self: &Arc<Self>, ev: &Arc<WatchEvent>, capacity: usize, wakes: &mut Wakes) -> bool {
        let mut q = self.queue.lock();
        if q.closed || q.missed_from.is_some() {
            return false;
        }
        let was_empty = q.events.is_empty();
        if q.events.len() >= capacity {
            q.missed_from = Some(ev.rv);
            drop(q);
            wakes.add(self);
            return false;
        }
        q.events.push_back(ev.clone());
        drop(q);
        // the consumer waits only after finding the queue empty: waking it on every
        // event of a backlog would be wasted work
        if was_empty {
            wakes.add(self);
        }
        true
    }

    /// Lets the watcher look at its queue (it may be waiting in [`Slot::next`]).
    fn wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
        self.notify.notify_one();
    }

    pub fn close(&self) {
        self.queue.lock().closed = true;
        self.notify.notify_one();
    }

    /// The next event, without waiting; `None` when there is none yet.
    pub fn try_next(&self) -> Option<Next> {
        let mut q = self.queue.lock();
        if let Some(ev) = q.events.pop_front() {
            if q.events.is_empty() && q.events.capacity() > SHRINK_ABOVE {
                q.events.shrink_to(SHRINK_ABOVE / 4);
            }
            return Some(Next::Event(ev));
        }
        if let Some(rv) = q.missed_from {
            return Some(Next::Behind {
                resume_rv: rv.saturating_sub(1),
            });
        }
        q.closed.then_some(Next::Closed)
    }

    /// The next event, waiting for one. Cancel-safe: an event is taken out of the queue
    /// only when it is returned.
    pub async fn next(&self) -> Next {
        loop {
            if let Some(n) = self.try_next() {
                return n;
            }
            // a notification sent after `try_next` released the lock is kept as a
            // permit, so none is lost between the check and the wait
            self.notify.notified().await;
        }
    }

    /// Events queued and not yet taken.
    pub fn queued(&self) -> usize {
        self.queue.lock().events.len()
    }
}

type Group = HashMap<u64, Arc<Slot>>;

#[derive(Default)]
struct ByNamespace {
    any: Group,
    namespaces: HashMap<String, Group>,
}

impl ByNamespace {
    fn is_empty(&self) -> bool {
        self.any.is_empty() && self.namespaces.is_empty()
    }
}

#[derive(Default)]
struct ByCluster {
    any: ByNamespace,
    clusters: HashMap<Arc<str>, ByNamespace>,
}

impl ByCluster {
    fn is_empty(&self) -> bool {
        self.any.is_empty() && self.clusters.is_empty()
    }
}

/// Every live watcher, by resource, logical cluster and namespace.
#[derive(Default)]
pub(crate) struct Index {
    resources: HashMap<Arc<str>, ByCluster>,
    next_id: u64,
    len: usize,
}

impl Index {
    /// Adds a watcher; returns its id (to remove it).
    pub fn insert(&mut self, scope: &Scope, slot: Arc<Slot>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let by_cluster = self.resources.entry(scope.resource.clone()).or_default();
        let by_ns = match &scope.cluster {
            None => &mut by_cluster.any,
            Some(c) => by_cluster.clusters.entry(c.clone()).or_default(),
        };
        let group = match &scope.namespace {
            None => &mut by_ns.any,
            Some(n) => by_ns.namespaces.entry(n.clone()).or_default(),
        };
        group.insert(id, slot);
        self.len += 1;
        id
    }

    /// Removes a watcher (no-op if it is gone already: dropped for falling behind).
    /// Empty maps are pruned, so the index holds nothing for scopes nobody watches.
    pub fn remove(&mut self, scope: &Scope, id: u64) {
        let Some(by_cluster) = self.resources.get_mut(&scope.resource) else {
            return;
        };
        let by_ns = match &scope.cluster {
            None => Some(&mut by_cluster.any),
            Some(c) => by_cluster.clusters.get_mut(c),
        };
        if let Some(by_ns) = by_ns {
            let removed = match &scope.namespace {
                None => by_ns.any.remove(&id).is_some(),
                Some(n) => {
                    let removed = by_ns
                        .namespaces
                        .get_mut(n.as_str())
                        .and_then(|g| g.remove(&id))
                        .is_some();
                    if by_ns
                        .namespaces
                        .get(n.as_str())
                        .is_some_and(Group::is_empty)
                    {
                        by_ns.namespaces.remove(n.as_str());
                    }
                    removed
                }
            };
            if removed {
                self.len -= 1;
            }
        }
        if let Some(c) = &scope.cluster {
            if by_cluster
                .clusters
                .get(c)
                .is_some_and(ByNamespace::is_empty)
            {
                by_cluster.clusters.remove(c);
            }
        }
        if by_cluster.is_empty() {
            self.resources.remove(&scope.resource);
        }
    }

    /// Offers `ev` to every watcher whose scope contains it; watchers whose queue is
    /// full are dropped from the index. Returns how many watchers were offered it; the
    /// watchers to wake are added to `wakes`.
    pub fn dispatch(&mut self, ev: &Arc<WatchEvent>, capacity: usize, wakes: &mut Wakes) -> usize {
        let key = &ev.object.key;
        let Some(by_cluster) = self.resources.get_mut(&key.resource) else {
            return 0;
        };
        let mut offered = 0;
        let mut dropped = 0;
        let mut offer = |group: &mut Group| {
            offered += group.len();
            let before = group.len();
            group.retain(|_, slot| slot.offer(ev, capacity, wakes));
            dropped += before - group.len();
        };
        let mut visit = |by_ns: &mut ByNamespace| {
            offer(&mut by_ns.any);
            if let Some(g) = by_ns.namespaces.get_mut(key.namespace.as_str()) {
                offer(g);
            }
        };
        visit(&mut by_cluster.any);
        if let Some(by_ns) = by_cluster.clusters.get_mut(&key.cluster) {
            visit(by_ns);
        }
        if dropped > 0 {
            self.len -= dropped;
            // prune what the dropped watchers left empty
            let by_cluster = self.resources.get_mut(&key.resource);
            if let Some(by_cluster) = by_cluster {
                let prune = |by_ns: &mut ByNamespace| {
                    if by_ns
                        .namespaces
                        .get(key.namespace.as_str())
                        .is_some_and(Group::is_empty)
                    {
                        by_ns.namespaces.remove(key.namespace.as_str());
                    }
                };
                prune(&mut by_cluster.any);
                if let Some(by_ns) = by_cluster.clusters.get_mut(&key.cluster) {
                    prune(by_ns);
                    if by_ns.is_empty() {
                        by_cluster.clusters.remove(&key.cluster);
                    }
                }
                if by_cluster.is_empty() {
                    self.resources.remove(&key.resource);
                }
            }
        }
        offered
    }

    /// Ends every watcher (the store is going away).
    pub fn close_all(&mut self) {
        for by_cluster in self.resources.values() {
            for by_ns in std::iter::once(&by_cluster.any).chain(by_cluster.clusters.values()) {
                for g in std::iter::once(&by_ns.any).chain(by_ns.namespaces.values()) {
                    for slot in g.values() {
                        slot.close();
                    }
                }
            }
        }
        self.resources.clear();
        self.len = 0;
    }

    /// Watchers in the index.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Watchers woken at once after a dispatch; the rest are left to the pacer, this many
/// a round.
pub(crate) const PACE_ROUND: usize = 128;

/// Watchers to wake after a dispatch, each at most once until woken.
#[derive(Default)]
pub(crate) struct Wakes {
    slots: Vec<Arc<Slot>>,
}

impl Wakes {
    fn add(&mut self, slot: &Arc<Slot>) {
        if !slot.wake_pending.swap(true, Ordering::AcqRel) {
            self.slots.push(slot.clone());
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Wakes every watcher now.
    pub fn wake_all(self) {
        for s in self.slots {
            s.wake();
        }
    }
}

/// Wakes long lists of watchers in rounds of [`PACE_ROUND`], yielding between rounds.
/// One task per store, started by the first list long enough to need it.
pub(crate) struct Pacer {
    tx: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Wakes>>,
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            tx: std::sync::OnceLock::new(),
        }
    }

    /// Wakes the watchers of `wakes`: the first round at once, the rest paced. The
    /// list is bounded (a watcher is in at most one pending list), so the pacer's
    /// backlog never holds more entries than there are watchers.
    pub fn wake(&self, mut wakes: Wakes) {
        if wakes.slots.len() <= PACE_ROUND {
            return wakes.wake_all();
        }
        let rest = Wakes {
            slots: wakes.slots.split_off(PACE_ROUND),
        };
        wakes.wake_all();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return rest.wake_all();
        };
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            handle.spawn(pace(rx));
            tx
        });
        if let Err(unsent) = tx.send(rest) {
            // the pacer's runtime is gone: nobody to defer to
            unsent.0.wake_all();
        }
    }
}

async fn pace(mut rx: tokio::sync::mpsc::UnboundedReceiver<Wakes>) {
    while let Some(wakes) = rx.recv().await {
        let mut slots = wakes.slots.into_iter().peekable();
        while slots.peek().is_some() {
            // let what the last round woke (and anything else queued meanwhile) run
            // before the next round
            tokio::task::yield_now().await;
            for s in slots.by_ref().take(PACE_ROUND) {
                s.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, StoredObject};

    fn ev(rv: u64, resource: &str, cluster: &str, ns: &str) -> Arc<WatchEvent> {
        Arc::new(WatchEvent {
            rv,
            kind: EventType::Added,
            object: Arc::new(StoredObject {
                key: ObjectKey::new(resource, cluster, ns, &format!("o{rv}")),
                rv,
                value: serde_json::json!({}),
                json: bytes::Bytes::new(),
            }),
            prev: None,
        })
    }

    /// Dispatches and wakes at once.
    fn dispatch(ix: &mut Index, ev: &Arc<WatchEvent>, capacity: usize) -> usize {
        let mut wakes = Wakes::default();
        let n = ix.dispatch(ev, capacity, &mut wakes);
        wakes.wake_all();
        n
    }

    fn drain(slot: &Slot) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(Next::Event(e)) = slot.try_next() {
            out.push(e.rv);
        }
        out
    }

    #[test]
    fn an_event_reaches_exactly_the_scopes_that_contain_it() {
        let mut ix = Index::default();
        let scopes = [
            ("exact", Scope::new("/configmaps", Some("a"), Some("ns"))),
            ("cluster", Scope::new("/configmaps", Some("a"), None)),
            (
                "namespace-everywhere",
                Scope::new("/configmaps", None, Some("ns")),
            ),
            ("everything", Scope::new("/configmaps", None, None)),
            ("other-cluster", Scope::new("/configmaps", Some("b"), None)),
            (
                "other-namespace",
                Scope::new("/configmaps", Some("a"), Some("x")),
            ),
            ("other-resource", Scope::new("/secrets", Some("a"), None)),
        ];
        let slots: Vec<(&str, Arc<Slot>)> = scopes
            .iter()
            .map(|(n, s)| {
                let slot = Arc::new(Slot::new());
                ix.insert(s, slot.clone());
                (*n, slot)
            })
            .collect();
        assert_eq!(ix.len(), 7);
        let e = ev(1, "/configmaps", "a", "ns");
        assert_eq!(dispatch(&mut ix, &e, 16), 4);
        for ((name, slot), (_, scope)) in slots.iter().zip(&scopes) {
            let got = drain(slot);
            assert_eq!(
                got == vec![1],
                scope.contains(&e.object.key),
                "{name} got {got:?}"
            );
            assert_eq!(got == vec![1], !name.starts_with("other"), "{name}");
        }
        // a cluster nobody watches: only the all-cluster watchers are offered it
        assert_eq!(dispatch(&mut ix, &ev(2, "/configmaps", "zzz", "ns"), 16), 2);
        assert_eq!(dispatch(&mut ix, &ev(3, "/pods", "a", "ns"), 16), 0);
    }

    #[test]
    fn a_full_queue_marks_the_watcher_behind_and_drops_it() {
        let mut ix = Index::default();
        let scope = Scope::new("/configmaps", Some("a"), None);
        let slow = Arc::new(Slot::new());
        let fast = Arc::new(Slot::new());
        ix.insert(&scope, slow.clone());
        ix.insert(&scope, fast.clone());
        for rv in 1..=3 {
            dispatch(&mut ix, &ev(rv, "/configmaps", "a", ""), 3);
            assert_eq!(drain(&fast), vec![rv]);
        }
        // rv 4 does not fit the slow watcher's queue: it keeps 1..=3 and is dropped
        assert_eq!(dispatch(&mut ix, &ev(4, "/configmaps", "a", ""), 3), 2);
        assert_eq!(ix.len(), 1);
        assert_eq!(dispatch(&mut ix, &ev(5, "/configmaps", "a", ""), 3), 1);
        assert_eq!(drain(&fast), vec![4, 5]);
        assert_eq!(drain(&slow), vec![1, 2, 3]);
        // it has everything up to 3: it resumes from 3, whatever else happened since
        assert!(matches!(
            slow.try_next(),
            Some(Next::Behind { resume_rv: 3 })
        ));
        assert!(matches!(
            slow.try_next(),
            Some(Next::Behind { resume_rv: 3 })
        ));
    }

    #[test]
    fn removing_watchers_prunes_the_index() {
        let mut ix = Index::default();
        let mut ids = Vec::new();
        for c in 0..100 {
            for ns in [None, Some("n")] {
                let s = Scope::new("/configmaps", Some(&format!("c{c}")), ns);
                ids.push((s.clone(), ix.insert(&s, Arc::new(Slot::new()))));
            }
        }
        let all = Scope::new("/configmaps", None, None);
        ids.push((all.clone(), ix.insert(&all, Arc::new(Slot::new()))));
        assert_eq!(ix.len(), 201);
        for (s, id) in &ids {
            ix.remove(s, *id);
            ix.remove(s, *id); // twice: harmless
        }
        assert_eq!(ix.len(), 0);
        assert!(ix.resources.is_empty());
        // dropping overflowing watchers prunes too
        let s = Scope::new("/configmaps", Some("c"), Some("n"));
        ix.insert(&s, Arc::new(Slot::new()));
        dispatch(&mut ix, &ev(1, "/configmaps", "c", "n"), 1);
        dispatch(&mut ix, &ev(2, "/configmaps", "c", "n"), 1);
        assert_eq!(ix.len(), 0);
        assert!(ix.resources.is_empty());
    }

    #[test]
    fn close_ends_waiting_watchers() {
        let mut ix = Index::default();
        let slot = Arc::new(Slot::new());
        ix.insert(&Scope::new("/configmaps", None, None), slot.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let waiter = {
                let slot = slot.clone();
                tokio::spawn(async move { slot.next().await })
            };
            tokio::task::yield_now().await;
            dispatch(&mut ix, &ev(1, "/configmaps", "a", ""), 4);
            assert!(matches!(waiter.await.unwrap(), Next::Event(e) if e.rv == 1));
            let waiter = {
                let slot = slot.clone();
                tokio::spawn(async move { slot.next().await })
            };
            tokio::task::yield_now().await;
            ix.close_all();
            assert!(matches!(waiter.await.unwrap(), Next::Closed));
        });
    }

    #[test]
    fn a_drained_queue_gives_its_memory_back() {
        let slot = Arc::new(Slot::new());
        let mut wakes = Wakes::default();
        for rv in 1..=1000 {
            assert!(slot.offer(&ev(rv, "/configmaps", "a", ""), 4096, &mut wakes));
        }
        // woken once: only the first event found the queue empty
        assert_eq!(wakes.len(), 1);
        assert_eq!(slot.queued(), 1000);
        assert_eq!(drain(&slot).len(), 1000);
        assert!(slot.queue.lock().events.capacity() <= SHRINK_ABOVE);
    }

    #[test]
    fn many_wakes_are_paced_so_other_tasks_run_between_rounds() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut ix = Index::default();
            let scope = Scope::new("/configmaps", Some("a"), None);
            let order = Arc::new(Mutex::new(Vec::new()));
            let parked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut waiters = Vec::new();
            for i in 0..1000usize {
                let slot = Arc::new(Slot::new());
                ix.insert(&scope, slot.clone());
                let order = order.clone();
                let parked = parked.clone();
                waiters.push(tokio::spawn(async move {
                    // one thread: nothing runs between this and parking in `next`
                    parked.fetch_add(1, Ordering::Relaxed);
                    let n = slot.next().await;
                    order.lock().push(i);
                    n
                }));
            }
            // every waiter is parked in `next`
            while parked.load(Ordering::Relaxed) < 1000 {
                tokio::task::yield_now().await;
            }
            let mut wakes = Wakes::default();
            assert_eq!(
                ix.dispatch(&ev(1, "/configmaps", "a", ""), 16, &mut wakes),
                1000
            );
            assert_eq!(wakes.len(), 1000);
            let pacer = Pacer::new();
            pacer.wake(wakes);
            // another request, made runnable after the event
            let probe = {
                let order = order.clone();
                tokio::spawn(async move { order.lock().push(usize::MAX) })
            };
            probe.await.unwrap();
            for w in waiters {
                assert!(matches!(w.await.unwrap(), Next::Event(e) if e.rv == 1));
            }
            let order = order.lock();
            assert_eq!(order.len(), 1001);
            let probe_at = order.iter().position(|&i| i == usize::MAX).unwrap();
            // it ran after the first round, long before the last
            assert!(
                (PACE_ROUND..=2 * PACE_ROUND).contains(&probe_at),
                "the probe ran at {probe_at} of 1001"
            );
        });
    }

    #[test]
    fn a_watcher_is_in_at_most_one_pending_wake_list() {
        let slot = Arc::new(Slot::new());
        let mut first = Wakes::default();
        assert!(slot.offer(&ev(1, "/configmaps", "a", ""), 16, &mut first));
        assert_eq!(
            slot.try_next().map(|n| matches!(n, Next::Event(_))),
            Some(true)
        );
        // empty again before the first wake ran: a second list does not take it
        let mut second = Wakes::default();
        assert!(slot.offer(&ev(2, "/configmaps", "a", ""), 16, &mut second));
        assert_eq!((first.len(), second.len()), (1, 0));
        first.wake_all();
        assert!(slot.try_next().is_some());
        let mut third = Wakes::default();
        assert!(slot.offer(&ev(3, "/configmaps", "a", ""), 16, &mut third));
        assert_eq!(third.len(), 1);
    }
}
