//! The keyed work queue (client-go's `workqueue` with its delaying and rate-limiting
//! layers in one).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::{Metrics, QueueMetrics};
use crate::{Backoff, Key};

/// A keyed work queue shared by its producers and workers (cloning shares it).
///
/// - [`add`](Queue::add): a key already waiting is not queued twice; a key being
///   processed is marked dirty and queued again when its worker calls
///   [`done`](Queue::done), so no key is ever processed by two workers at once.
/// - [`add_after`](Queue::add_after): the key is added once the delay has passed; when the
///   key is already waiting for a time, the earliest time wins, and an immediate `add`
///   replaces a pending delayed one.
/// - [`add_rate_limited`](Queue::add_rate_limited): `add_after` with the key's back-off,
///   which grows with each call until [`forget`](Queue::forget).
/// - [`shutdown`](Queue::shutdown): further adds are ignored and delayed keys dropped;
///   [`get`](Queue::get) keeps handing out what is queued (and what becomes dirty while
///   being processed), then returns `None`: workers drain the queue and stop.
pub struct Queue<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Queue<K> {
    fn clone(&self) -> Self {
        Queue {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<K> {
    name: Arc<str>,
    state: Mutex<State<K>>,
    notify: Notify,
    metrics: QueueMetrics,
    /// Tests move the queue's clock forward instead of waiting (tokio's paused clock
    /// needs its `test-util` feature, which would change every crate's tokio).
    #[cfg(test)]
    skew: Mutex<Duration>,
}

struct State<K> {
    /// Keys ready to be handed out, in order; each is also in `dirty`.
    queue: VecDeque<K>,
    /// Keys added and not yet handed out, with when they were added.
    dirty: HashMap<K, Instant>,
    /// Keys handed out and not yet done, with when they were handed out.
    processing: HashMap<K, Instant>,
    /// Keys to add later: key → (when, sequence number) and the same ordered by time.
    waiting: HashMap<K, (Instant, u64)>,
    timers: BTreeMap<(Instant, u64), K>,
    seq: u64,
    /// Consecutive failures per key ([`Queue::add_rate_limited`]).
    failures: HashMap<K, u32>,
    backoff: Backoff,
    shutting_down: bool,
}

impl<K: Key> Queue<K> {
    /// A queue whose metrics are series `name` of `metrics`.
    pub fn new(name: &str, metrics: &Metrics) -> Queue<K> {
        Queue {
            shared: Arc::new(Shared {
                name: name.into(),
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashMap::new(),
                    processing: HashMap::new(),
                    waiting: HashMap::new(),
                    timers: BTreeMap::new(),
                    seq: 0,
                    failures: HashMap::new(),
                    backoff: Backoff::default(),
                    shutting_down: false,
                }),
                notify: Notify::new(),
                metrics: metrics.queue(name),
                #[cfg(test)]
                skew: Mutex::new(Duration::ZERO),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    fn now(&self) -> Instant {
        #[cfg(test)]
        return Instant::now() + *self.shared.skew.lock();
        #[cfg(not(test))]
        Instant::now()
    }

    /// The real time of queue time `t`.
    fn real(&self, t: Instant) -> Instant {
        #[cfg(test)]
        return t.checked_sub(*self.shared.skew.lock()).unwrap_or(t);
        #[cfg(not(test))]
        t
    }

    /// Moves this queue's clock forward.
    #[cfg(test)]
    fn advance(&self, d: Duration) {
        *self.shared.skew.lock() += d;
    }

    /// Replaces the back-off of [`Queue::add_rate_limited`].
    pub fn set_backoff(&self, backoff: Backoff) {
        self.shared.state.lock().backoff = backoff;
    }

    /// Adds `key` now (see [`Queue`]).
    pub fn add(&self, key: K) {
        let now = self.now();
        let mut st = self.shared.state.lock();
        self.add_locked(&mut st, key, now);
    }

    fn add_locked(&self, st: &mut State<K>, key: K, now: Instant) {
        if st.shutting_down {
            return;
        }
        if let Some(t) = st.waiting.remove(&key) {
            st.timers.remove(&t);
        }
        if st.dirty.contains_key(&key) {
            return;
        }
        self.shared.metrics.adds.increment(1);
        st.dirty.insert(key.clone(), now);
        self.shared.metrics.depth.set(st.dirty.len() as f64);
        if !st.processing.contains_key(&key) {
            st.queue.push_back(key);
            self.shared.notify.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed (at once for a zero delay).
    pub fn add_after(&self, key: K, delay: Duration) {
        let now = self.now();
        let mut st = self.shared.state.lock();
        if delay.is_zero() {
            return self.add_locked(&mut st, key, now);
        }
        if st.shutting_down {
            return;
        }
        let Some(at) = now.checked_add(delay) else {
            return;
        };
        if let Some(&(t, seq)) = st.waiting.get(&key) {
            if t <= at {
                return;
            }
            st.timers.remove(&(t, seq));
        }
        st.seq += 1;
        let seq = st.seq;
        st.waiting.insert(key.clone(), (at, seq));
        let earliest = st.timers.keys().next().is_none_or(|&(t, _)| at < t);
        st.timers.insert((at, seq), key);
        if earliest {
            // waiting workers sleep until the earliest time: let them look again
            self.shared.notify.notify_waiters();
        }
    }

    /// Adds `key` after its back-off, and grows the back-off: one more retry. Returns
    /// the delay.
    pub fn add_rate_limited(&self, key: K) -> Duration {
        let delay = {
            let mut st = self.shared.state.lock();
            let backoff = st.backoff;
            let n = st.failures.entry(key.clone()).or_insert(0);
            let delay = backoff.delay(*n);
            *n = n.saturating_add(1);
            delay
        };
        self.shared.metrics.retries.increment(1);
        self.add_after(key, delay);
        delay
    }

    /// Resets `key`'s back-off (it succeeded).
    pub fn forget(&self, key: &K) {
        self.shared.state.lock().failures.remove(key);
    }

    /// How often `key` was retried since it last succeeded.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.shared
            .state
            .lock()
            .failures
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// Waits for a key to process; `None` once the queue is shut down and drained. The
    /// caller must call [`Queue::done`] with the key when finished with it.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let deadline = {
                let mut st = self.shared.state.lock();
                if let Some(k) = self.pop_locked(&mut st) {
                    return Some(k);
                }
                if st.shutting_down {
                    return None;
                }
                st.timers.keys().next().map(|&(t, _)| t)
            };
            match deadline {
                Some(t) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(self.real(t)) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// A key to process if one is ready now (see [`Queue::get`]).
    pub fn try_get(&self) -> Option<K> {
        let mut st = self.shared.state.lock();
        self.pop_locked(&mut st)
    }

    /// Adds the delayed keys whose time has come.
    fn promote_due(&self, st: &mut State<K>, now: Instant) {
        while let Some(entry) = st.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            st.waiting.remove(&key);
            self.add_locked(st, key, now);
        }
    }

    fn pop_locked(&self, st: &mut State<K>) -> Option<K> {
        let now = self.now();
        self.promote_due(st, now);
        let key = st.queue.pop_front()?;
        let added = st.dirty.remove(&key).unwrap_or(now);
        self.shared.metrics.depth.set(st.dirty.len() as f64);
        self.shared
            .metrics
            .queue_duration
            .record(now.duration_since(added).as_secs_f64());
        st.processing.insert(key.clone(), now);
        Some(key)
    }

    /// The worker that got `key` is finished with it: a key added meanwhile is queued
    /// again.
    pub fn done(&self, key: &K) {
        let mut st = self.shared.state.lock();
        if let Some(started) = st.processing.remove(key) {
            self.shared
                .metrics
                .work_duration
                .record(self.now().duration_since(started).as_secs_f64());
        }
        if st.dirty.contains_key(key) {
            st.queue.push_back(key.clone());
            self.shared.notify.notify_one();
        }
    }

    /// Stops accepting keys; the workers drain what is queued (see [`Queue`]).
    pub fn shutdown(&self) {
        let now = self.now();
        let mut st = self.shared.state.lock();
        // what is due counts as added; later delays are dropped
        self.promote_due(&mut st, now);
        st.shutting_down = true;
        st.waiting.clear();
        st.timers.clear();
        drop(st);
        self.shared.notify.notify_waiters();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shared.state.lock().shutting_down
    }

    /// Keys added and not yet handed out (what `workqueue_depth` reports).
    pub fn len(&self) -> usize {
        self.shared.state.lock().dirty.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys handed out and not yet done.
    pub fn processing(&self) -> usize {
        self.shared.state.lock().processing.len()
    }

    /// Keys waiting for a delayed add.
    pub fn delayed(&self) -> usize {
        self.shared.state.lock().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn queue() -> Queue<String> {
        Queue::new("test", &Metrics::default())
    }

    fn k(s: &str) -> String {
        s.to_string()
    }

    #[tokio::test]
    async fn deduplicates_waiting_keys() {
        let q = queue();
        q.add(k("a"));
        q.add(k("b"));
        q.add(k("a"));
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some(k("a")));
        assert_eq!(q.get().await, Some(k("b")));
        assert_eq!(q.try_get(), None);
    }

    #[tokio::test]
    async fn a_key_being_processed_is_not_handed_out_again_until_done() {
        let q = queue();
        q.add(k("a"));
        assert_eq!(q.get().await, Some(k("a")));
        q.add(k("a"));
        q.add(k("a"));
        assert_eq!(q.try_get(), None, "a is being processed");
        assert_eq!(q.len(), 1);
        q.done(&k("a"));
        assert_eq!(q.try_get(), Some(k("a")), "dirty while processed: again");
        q.done(&k("a"));
        assert_eq!(q.try_get(), None);
    }

    #[tokio::test]
    async fn delayed_adds_wait_and_the_earliest_time_wins() {
        let q = queue();
        let start = Instant::now();
        q.add_after(k("a"), Duration::from_millis(300));
        q.add_after(k("a"), Duration::from_millis(100));
        q.add_after(k("a"), Duration::from_millis(600));
        assert_eq!(q.try_get(), None);
        assert_eq!(q.delayed(), 1);
        assert_eq!(q.get().await, Some(k("a")));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        q.done(&k("a"));
        q.advance(Duration::from_secs(3600));
        assert_eq!(
            q.try_get(),
            None,
            "the later times were replaced, not added"
        );
    }

    #[tokio::test]
    async fn an_immediate_add_replaces_a_delayed_one() {
        let q = queue();
        q.add_after(k("a"), Duration::from_secs(10));
        q.add(k("a"));
        assert_eq!(q.try_get(), Some(k("a")));
        q.done(&k("a"));
        q.advance(Duration::from_secs(11));
        assert_eq!(q.try_get(), None);
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_for_an_earlier_delayed_key() {
        let q = queue();
        q.add_after(k("late"), Duration::from_secs(100));
        let q2 = q.clone();
        let w = tokio::spawn(async move { q2.get().await });
        tokio::task::yield_now().await;
        let start = Instant::now();
        q.add_after(k("soon"), Duration::from_millis(50));
        let got = tokio::time::timeout(Duration::from_secs(20), w).await;
        assert_eq!(got.unwrap().unwrap(), Some(k("soon")));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn back_off_grows_per_key_and_resets_on_forget() {
        let q = queue();
        let delays: Vec<Duration> = (0..5).map(|_| q.add_rate_limited(k("a"))).collect();
        assert_eq!(
            delays,
            [5, 10, 20, 40, 80].map(Duration::from_millis).to_vec()
        );
        assert_eq!(q.num_requeues(&k("a")), 5);
        assert_eq!(q.add_rate_limited(k("b")), Duration::from_millis(5));
        q.forget(&k("a"));
        assert_eq!(q.num_requeues(&k("a")), 0);
        assert_eq!(q.add_rate_limited(k("a")), Duration::from_millis(5));
    }

    #[tokio::test]
    async fn shutdown_drains_then_ends() {
        let q = queue();
        q.add(k("a"));
        q.add(k("b"));
        assert_eq!(q.get().await, Some(k("a")));
        q.add(k("a"));
        q.add_after(k("c"), Duration::from_secs(1));
        q.shutdown();
        q.add(k("d"));
        assert_eq!(q.get().await, Some(k("b")));
        q.done(&k("a"));
        assert_eq!(
            q.get().await,
            Some(k("a")),
            "dirty before shutdown: drained"
        );
        q.done(&k("a"));
        q.done(&k("b"));
        assert_eq!(
            q.get().await,
            None,
            "added after shutdown, or delayed: dropped"
        );
    }

    #[tokio::test]
    async fn shutdown_wakes_waiting_workers() {
        let q = queue();
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.get().await })
            })
            .collect();
        tokio::task::yield_now().await;
        q.shutdown();
        for w in workers {
            assert_eq!(w.await.unwrap(), None);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_workers_never_hold_one_key_twice() {
        let q: Queue<u32> = Queue::new("test", &Metrics::default());
        let held = Arc::new(Mutex::new(HashSet::new()));
        let processed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (q, held, processed) = (q.clone(), held.clone(), processed.clone());
                tokio::spawn(async move {
                    while let Some(key) = q.get().await {
                        assert!(held.lock().insert(key), "{key} processed twice at once");
                        tokio::task::yield_now().await;
                        held.lock().remove(&key);
                        processed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        q.done(&key);
                    }
                })
            })
            .collect();
        for i in 0..20_000u32 {
            q.add(i % 7);
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        // everything added is processed before the workers stop
        while !q.is_empty() || q.processing() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        q.shutdown();
        for w in workers {
            w.await.unwrap();
        }
        let n = processed.load(std::sync::atomic::Ordering::Relaxed);
        assert!((7..=20_000).contains(&n), "{n}");
    }

    #[tokio::test]
    async fn metrics_follow_client_go() {
        let m = Metrics::default();
        let q: Queue<String> = Queue::new("ns", &m);
        q.add(k("a"));
        q.add(k("a"));
        q.add(k("b"));
        let a = q.get().await.unwrap();
        q.done(&a);
        q.add_rate_limited(k("c"));
        let out = m.registry().render();
        for want in [
            "workqueue_adds_total{name=\"ns\"} 2",
            "workqueue_depth{name=\"ns\"} 1",
            "workqueue_retries_total{name=\"ns\"} 1",
            "workqueue_queue_duration_seconds_count{name=\"ns\"} 1",
            "workqueue_work_duration_seconds_count{name=\"ns\"} 1",
        ] {
            assert!(out.contains(want), "{want} missing in\n{out}");
        }
    }

    // --- model-based property test --------------------------------------------------

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8),
        AddAfter(u8, u16),
        RateLimited(u8),
        Forget(u8),
        Get,
        /// done of the n-th key being processed (modulo how many there are)
        Done(usize),
        Advance(u16),
        Shutdown,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u8..6).prop_map(Op::Add),
            2 => (0u8..6, 1u16..500).prop_map(|(k, d)| Op::AddAfter(k, d)),
            2 => (0u8..6).prop_map(Op::RateLimited),
            1 => (0u8..6).prop_map(Op::Forget),
            4 => Just(Op::Get),
            3 => (0usize..8).prop_map(Op::Done),
            2 => (1u16..300).prop_map(Op::Advance),
            1 => Just(Op::Shutdown),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Against a model: a key is never handed out while being processed, never
        /// waits twice, back-off doubles per retry and resets on forget, and every key
        /// added before shutdown (at once or after its delay) is handed out after its
        /// last add — requeues go through the queue and nothing added is lost; after
        /// shutdown everything queued is drained and `get` ends.
        #[test]
        fn queue_matches_its_model(ops in proptest::collection::vec(op(), 1..120)) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async move {
                let q: Queue<u8> = Queue::new("prop", &Metrics::default());
                let mut processing: Vec<u8> = Vec::new();
                // keys owed a hand-out: added (or due) since they were last handed out
                let mut owed: HashSet<u8> = HashSet::new();
                // delayed keys: key → due time (earliest wins)
                let mut delayed: HashMap<u8, Instant> = HashMap::new();
                let mut failures: HashMap<u8, u32> = HashMap::new();
                let mut shut = false;
                let due = |q: &Queue<u8>, delayed: &mut HashMap<u8, Instant>, owed: &mut HashSet<u8>| {
                    let now = q.now();
                    delayed.retain(|k, t| {
                        if *t <= now {
                            owed.insert(*k);
                            false
                        } else {
                            true
                        }
                    });
                };
                for op in ops {
                    match op {
                        Op::Add(k) => {
                            q.add(k);
                            if !shut {
                                owed.insert(k);
                                delayed.remove(&k);
                            }
                        }
                        Op::AddAfter(k, ms) => {
                            q.add_after(k, Duration::from_millis(ms.into()));
                            if !shut {
                                let at = q.now() + Duration::from_millis(ms.into());
                                let e = delayed.entry(k).or_insert(at);
                                *e = (*e).min(at);
                            }
                        }
                        Op::RateLimited(k) => {
                            let n = failures.entry(k).or_insert(0);
                            let want = Backoff::default().delay(*n);
                            *n += 1;
                            let got = q.add_rate_limited(k);
                            proptest::prop_assert_eq!(got, want);
                            proptest::prop_assert_eq!(q.num_requeues(&k), *n);
                            if !shut {
                                let at = q.now() + got;
                                let e = delayed.entry(k).or_insert(at);
                                *e = (*e).min(at);
                            }
                        }
                        Op::Forget(k) => {
                            q.forget(&k);
                            failures.remove(&k);
                        }
                        Op::Get => {
                            due(&q, &mut delayed, &mut owed);
                            match q.try_get() {
                                Some(k) => {
                                    proptest::prop_assert!(!processing.contains(&k), "{} handed out twice", k);
                                    proptest::prop_assert!(owed.remove(&k), "{} handed out but not owed", k);
                                    processing.push(k);
                                }
                                None => {
                                    // nothing owed may be waiting unless it is being processed
                                    for k in &owed {
                                        proptest::prop_assert!(processing.contains(k), "{} owed but not handed out", k);
                                    }
                                }
                            }
                        }
                        Op::Done(i) => {
                            if !processing.is_empty() {
                                let k = processing.remove(i % processing.len());
                                q.done(&k);
                            }
                        }
                        Op::Advance(ms) => {
                            q.advance(Duration::from_millis(ms.into()));
                        }
                        Op::Shutdown => {
                            q.shutdown();
                            shut = true;
                            due(&q, &mut delayed, &mut owed);
                            delayed.clear();
                        }
                    }
                    proptest::prop_assert!(q.len() <= 6, "a key waits at most once");
                }
                // drain: finish everything, let every delay pass, hand out the rest
                for k in processing.drain(..) {
                    q.done(&k);
                }
                if !shut {
                    q.advance(Duration::from_secs(3600));
                    due(&q, &mut delayed, &mut owed);
                }
                q.shutdown();
                while let Some(k) = q.get().await {
                    proptest::prop_assert!(owed.remove(&k), "{} handed out but not owed", k);
                    q.done(&k);
                }
                proptest::prop_assert!(owed.is_empty(), "never handed out: {:?}", owed);
                Ok(())
            })?;
        }
    }
}
