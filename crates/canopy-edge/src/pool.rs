//! A pool of in-flight seats with fair queuing per user — kube's API Priority and
//! Fairness in spirit, one priority level per pool.
//!
//! A request takes a free seat at once. When none is free it waits in its user's queue
//! (at most `max_queued` waiting per user; more → rejected at once). A freed seat goes
//! to the head of the *next user's* queue in round-robin order, so a user with many
//! waiting requests gets one seat per round like everyone else: flooding fills only
//! the flooder's own queue. A request waiting longer than the wait limit gives up.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Why no seat was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The user already has `max_queued` requests waiting.
    QueueFull,
    /// No seat within the wait limit.
    Timeout,
}

pub(crate) struct Pool {
    /// Seats; 0: unlimited.
    capacity: usize,
    max_queued: usize,
    wait: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_use: usize,
    /// Waiters per user. A user has an entry exactly while it is in `ring`.
    queues: HashMap<String, VecDeque<oneshot::Sender<Seat>>>,
    /// Users with waiters, in the order their next waiter is served.
    ring: VecDeque<String>,
}

/// One seat, given back when dropped.
pub(crate) struct Seat {
    pool: Option<Arc<Pool>>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(p) = self.pool.take() {
            p.release();
        }
    }
}

impl Pool {
    pub(crate) fn new(capacity: usize, max_queued: usize, wait: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            capacity,
            max_queued,
            wait,
            state: Mutex::new(State::default()),
        })
    }

    /// Seats taken now.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.state.lock().in_use
    }

    /// Requests waiting now.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.state
            .lock()
            .queues
            .values()
            .map(|q| q.iter().filter(|t| !t.is_closed()).count())
            .sum()
    }

    /// A seat for `user`, at once or after waiting in its queue.
    pub(crate) async fn acquire(self: &Arc<Self>, user: &str) -> Result<Seat, Refused> {
        let rx = {
            let mut st = self.state.lock();
            if self.capacity == 0 || st.in_use < self.capacity {
                st.in_use += 1;
                return Ok(Seat {
                    pool: Some(self.clone()),
                });
            }
            let present = st.queues.contains_key(user);
            let q = st.queues.entry(user.to_string()).or_default();
            // waiters that gave up still sit here until a release passes them
            q.retain(|t| !t.is_closed());
            if q.len() >= self.max_queued {
                if !present {
                    st.queues.remove(user);
                }
                return Err(Refused::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            q.push_back(tx);
            if !present {
                st.ring.push_back(user.to_string());
            }
            rx
        };
        match tokio::time::timeout(self.wait, rx).await {
            Ok(Ok(seat)) => Ok(seat),
            // the sender is only dropped unsent when the pool is gone
            Ok(Err(_)) | Err(_) => Err(Refused::Timeout),
        }
    }

    /// Gives a freed seat to the next waiting user in round-robin order, or back. The
    /// seat is sent outside the lock: a waiter that gave up at that moment drops it
    /// (which releases it again) without deadlocking.
    fn release(self: Arc<Self>) {
        loop {
            let tx = {
                let mut st = self.state.lock();
                match next_waiter(&mut st) {
                    Some(tx) => tx,
                    None => {
                        st.in_use = st.in_use.saturating_sub(1);
                        return;
                    }
                }
            };
            let seat = Seat {
                pool: Some(self.clone()),
            };
            match tx.send(seat) {
                Ok(()) => return,
                // it gave up waiting: try the next
                Err(mut seat) => seat.pool = None,
            }
        }
    }
}

/// The head of the next user's queue (the user goes to the back of the ring if it has
/// more), skipping waiters that gave up.
fn next_waiter(st: &mut State) -> Option<oneshot::Sender<Seat>> {
    while let Some(user) = st.ring.pop_front() {
        let Some(q) = st.queues.get_mut(&user) else {
            continue;
        };
        let mut found = None;
        while let Some(tx) = q.pop_front() {
            if !tx.is_closed() {
                found = Some(tx);
                break;
            }
        }
        if q.is_empty() {
            st.queues.remove(&user);
        } else {
            st.ring.push_back(user);
        }
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seats_go_round_robin_among_waiting_users() {
        let pool = Pool::new(1, 10, Duration::from_secs(10));
        let first = pool.acquire("flooder").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // the flooder queues five, then another user one
        for (i, user) in ["flooder"; 5].iter().chain(["other"].iter()).enumerate() {
            let p = pool.clone();
            let order = order.clone();
            let user = user.to_string();
            tasks.push(tokio::spawn(async move {
                let seat = p.acquire(&user).await.unwrap();
                order.lock().push(user);
                tokio::task::yield_now().await;
                drop(seat);
            }));
            // let it enqueue before the next
            while pool.waiting() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().clone();
        assert_eq!(order.len(), 6);
        assert_eq!(order[0], "flooder");
        assert_eq!(
            order[1], "other",
            "the other user is served second: {order:?}"
        );
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_waiting_times_out() {
        let pool = Pool::new(1, 1, Duration::from_millis(50));
        let held = pool.acquire("a").await.unwrap();
        let p = pool.clone();
        let waiter = tokio::spawn(async move { p.acquire("a").await.map(|_| ()) });
        while pool.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.acquire("a").await.err(), Some(Refused::QueueFull));
        assert_eq!(waiter.await.unwrap(), Err(Refused::Timeout));
        // the one that gave up holds nothing: the seat returns when the holder ends
        drop(held);
        assert_eq!(pool.in_use(), 0);
        let _again = pool.acquire("b").await.unwrap();
        assert_eq!(pool.in_use(), 1);
    }

    #[tokio::test]
    async fn unlimited_pool_never_waits() {
        let pool = Pool::new(0, 0, Duration::from_millis(1));
        let seats: Vec<_> = futures::future::join_all((0..100).map(|_| pool.acquire("a")))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(seats.len(), 100);
    }
}
