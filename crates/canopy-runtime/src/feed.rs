//! Feeding controllers' queues from one stream of events.

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::{Key, OwnerIndex, Queue};

type Hook<Ev> = Box<dyn Fn(&Ev) + Send + Sync>;
type Resync = Box<dyn Fn() + Send + Sync>;

/// Routes events of one broadcast stream to the queues of controllers.
///
/// For every event, in this order: the indexes registered with [`EventFeed::index`] are
/// updated, then every mapper ([`EventFeed::watches`], [`EventFeed::owns`]) adds the keys
/// it maps the event to. Mappers run on the feed's task for every event, so they must be
/// cheap (lookups, not scans) — the work belongs in the reconcile.
///
/// When the stream lags (the feed fell behind and events were dropped), the feed
/// subscribes again, rebuilds the indexes, and adds every key of every controller
/// ([`EventFeed::resync`]): reconciles read current state, so a missed event costs a
/// redundant reconcile and nothing else. The same happens when the feed starts.
pub struct EventFeed<Ev> {
    indexers: Vec<(Hook<Ev>, Resync)>,
    routes: Vec<Hook<Ev>>,
    resyncs: Vec<Resync>,
}

impl<Ev> Default for EventFeed<Ev> {
    fn default() -> Self {
        EventFeed {
            indexers: Vec::new(),
            routes: Vec::new(),
            resyncs: Vec::new(),
        }
    }
}

impl<Ev: Clone + Send + Sync + 'static> EventFeed<Ev> {
    pub fn new() -> Self {
        Self::default()
    }

    /// An index kept current from the events (`on_event`, before any mapper sees the
    /// event) and rebuilt on (re)subscription (`rebuild`).
    pub fn index(
        mut self,
        on_event: impl Fn(&Ev) + Send + Sync + 'static,
        rebuild: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        self.indexers.push((Box::new(on_event), Box::new(rebuild)));
        self
    }

    /// Adds to `queue` the keys `map` gives for each event (kube's `watches`; the keys
    /// of the event's own object are the common case).
    pub fn watches<K: Key, I>(
        mut self,
        queue: &Queue<K>,
        map: impl Fn(&Ev) -> I + Send + Sync + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = K>,
    {
        let queue = queue.clone();
        self.routes.push(Box::new(move |ev| {
            for k in map(ev) {
                queue.add(k);
            }
        }));
        self
    }

    /// Adds to `queue` the keys of the owners of each event's object (kube's `owns`):
    /// `owners` gives the owner ids the event's object names, `index` which key has
    /// each id. Owners not in the index (gone, or unknown) are skipped.
    pub fn owns<K: Key, Id, I>(
        mut self,
        queue: &Queue<K>,
        index: &Arc<OwnerIndex<K, Id>>,
        owners: impl Fn(&Ev) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Id: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
        I: IntoIterator<Item = Id>,
    {
        let queue = queue.clone();
        let index = index.clone();
        self.routes.push(Box::new(move |ev| {
            for id in owners(ev) {
                if let Some(k) = index.key_of(&id) {
                    queue.add(k);
                }
            }
        }));
        self
    }

    /// On (re)subscription, adds every key `all` gives to `queue`.
    pub fn resync<K: Key, I>(
        mut self,
        queue: &Queue<K>,
        all: impl Fn() -> I + Send + Sync + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = K>,
    {
        let queue = queue.clone();
        self.resyncs.push(Box::new(move || {
            for k in all() {
                queue.add(k);
            }
        }));
        self
    }

    /// Delivers one event to the indexes and mappers (what [`EventFeed::run`] does for
    /// each event received).
    pub fn deliver(&self, ev: &Ev) {
        for (on_event, _) in &self.indexers {
            on_event(ev);
        }
        for route in &self.routes {
            route(ev);
        }
    }

    /// Rebuilds the indexes and adds every key (what [`EventFeed::run`] does on each
    /// (re)subscription).
    pub fn resync_all(&self) {
        for (_, rebuild) in &self.indexers {
            rebuild();
        }
        for resync in &self.resyncs {
            resync();
        }
    }

    /// Runs until the stream closes: subscribes (`subscribe` is called again after the
    /// stream lagged), resyncs, then delivers every event.
    pub async fn run(self, mut subscribe: impl FnMut() -> broadcast::Receiver<Ev>) {
        loop {
            let mut rx = subscribe();
            self.resync_all();
            loop {
                match rx.recv().await {
                    Ok(ev) => self.deliver(&ev),
                    Err(RecvError::Lagged(n)) => {
                        tracing::info!(
                            missed = n,
                            "controllers fell behind the event stream; resyncing"
                        );
                        break;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Debug)]
    struct Ev {
        key: u32,
        owner: Option<u32>,
    }

    #[tokio::test]
    async fn maps_events_to_keys_and_owners_and_resyncs_after_lag() {
        let m = Metrics::default();
        let objects: Queue<u32> = Queue::new("objects", &m);
        let owners: Queue<u32> = Queue::new("owners", &m);
        let index: Arc<OwnerIndex<u32, u32>> = Arc::default();
        let rebuilt = Arc::new(AtomicUsize::new(0));
        let (tx, _) = broadcast::channel::<Ev>(4);
        let ix = index.clone();
        let r = rebuilt.clone();
        let feed = EventFeed::new()
            .index(
                move |ev: &Ev| ix.upsert(ev.key, Some(ev.key), ev.owner.into_iter().collect()),
                move || {
                    r.fetch_add(1, Ordering::SeqCst);
                },
            )
            .watches(&objects, |ev: &Ev| [ev.key])
            .owns(&owners, &index, |ev: &Ev| ev.owner)
            .resync(&objects, || [100, 101]);
        let subscribe_tx = tx.clone();
        let task = tokio::spawn(feed.run(move || subscribe_tx.subscribe()));
        while rebuilt.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let mut got = vec![objects.try_get(), objects.try_get()];
        got.sort();
        assert_eq!(got, [Some(100), Some(101)], "the initial resync");
        objects.done(&100);
        objects.done(&101);
        tx.send(Ev {
            key: 1,
            owner: None,
        })
        .unwrap();
        tx.send(Ev {
            key: 2,
            owner: Some(1),
        })
        .unwrap();
        while objects.len() < 2 || owners.is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(owners.try_get(), Some(1), "2's owner");
        // flood the stream: the feed lags, resubscribes and resyncs
        for i in 0..64 {
            tx.send(Ev {
                key: 10 + i,
                owner: None,
            })
            .unwrap();
        }
        while rebuilt.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        task.abort();
        let mut keys = Vec::new();
        while let Some(k) = objects.try_get() {
            keys.push(k);
        }
        assert!(keys.contains(&100) && keys.contains(&101), "{keys:?}");
    }
}
