//! The single writer of a shard: checks preconditions against the latest state, assigns
//! resourceVersions, commits a batch of requests in one transaction, then publishes the
//! batch to the cache in order.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::cache::Cache;
use crate::{stamp, EventType, Mutation, ObjectKey, StorageError, StoredObject, WatchEvent};

pub(crate) struct WriteRequest {
    pub mutations: Vec<Mutation>,
    pub reply: oneshot::Sender<Result<Vec<Arc<StoredObject>>, StorageError>>,
}

pub(crate) struct Writer {
    backend: Arc<dyn Backend>,
    cache: Cache,
    /// Last committed resourceVersion.
    rv: u64,
    max_batch: usize,
    /// Largest serialized object a create or update may store (0: no limit).
    max_object_bytes: usize,
    /// What each logical cluster stores, kept current after every commit.
    usage: crate::usage::Usage,
}

/// Where a request's committed objects are sent.
type Reply = oneshot::Sender<Result<Vec<Arc<StoredObject>>, StorageError>>;

/// The accepted part of a batch: events in rv order, and which requests they answer.
struct Batch {
    events: Vec<Arc<WatchEvent>>,
    replies: Vec<(Reply, Vec<Arc<StoredObject>>)>,
}

impl Writer {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        cache: Cache,
        rv: u64,
        max_batch: usize,
        max_object_bytes: usize,
    ) -> Writer {
        Writer {
            backend,
            cache,
            rv,
            max_batch: max_batch.max(1),
            max_object_bytes,
            usage: Default::default(),
        }
    }

    /// Keeps `usage` current after every commit.
    pub(crate) fn with_usage(mut self, usage: crate::usage::Usage) -> Writer {
        self.usage = usage;
        self
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<WriteRequest>) {
        let mut pending = Vec::with_capacity(self.max_batch);
        loop {
            pending.clear();
            match rx.recv().await {
                Some(r) => pending.push(r),
                None => return,
            }
            while pending.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(r) => pending.push(r),
                    Err(_) => break,
                }
            }
            let batch = self.prepare(pending.drain(..));
            if batch.events.is_empty() {
                for (reply, objs) in batch.replies {
                    let _ = reply.send(Ok(objs));
                }
                continue;
            }
            match self.backend.persist(self.rv, &batch.events).await {
                Ok(()) => {
                    self.rv = batch.events.last().map(|e| e.rv).unwrap_or(self.rv);
                    self.usage.apply(&batch.events);
                    self.cache.apply(batch.events);
                    for (reply, objs) in batch.replies {
                        let _ = reply.send(Ok(objs));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "commit failed");
                    for (reply, _) in batch.replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                    if matches!(e, StorageError::Config(_)) {
                        // fenced off by another writer: stop accepting writes
                        rx.close();
                    }
                }
            }
        }
    }

    /// Checks each request against the latest state (the cache plus what this batch
    /// already changed); rejected requests are answered at once and change nothing.
    fn prepare(&self, requests: impl Iterator<Item = WriteRequest>) -> Batch {
        let mut overlay: HashMap<ObjectKey, Option<Arc<StoredObject>>> = HashMap::new();
        let mut batch = Batch {
            events: Vec::new(),
            replies: Vec::new(),
        };
        let mut next = self.rv;
        for req in requests {
            let mut local: HashMap<ObjectKey, Option<Arc<StoredObject>>> = HashMap::new();
            let mut events = Vec::new();
            let mut results = Vec::new();
            let mut rv = next;
            let mut failed = None;
            for m in req.mutations {
                let key = m.key().clone();
                let current = match local.get(&key).or_else(|| overlay.get(&key)) {
                    Some(v) => v.clone(),
                    None => self.cache.get(&key),
                };
                let outcome = apply_one(m, current, rv + 1, self.max_object_bytes);
                match outcome {
                    Ok(ev) => {
                        rv += 1;
                        let stored = ev.object.clone();
                        local.insert(
                            key,
                            if ev.kind == EventType::Deleted {
                                None
                            } else {
                                Some(stored.clone())
                            },
                        );
                        results.push(stored);
                        events.push(Arc::new(ev));
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                Some(e) => {
                    let _ = req.reply.send(Err(e));
                }
                None => {
                    next = rv;
                    overlay.extend(local);
                    batch.events.extend(events);
                    batch.replies.push((req.reply, results));
                }
            }
        }
        batch
    }
}

/// `NotFound` when absent; `Conflict` when `expected` is set and differs.
fn check_current(
    key: &ObjectKey,
    current: Option<Arc<StoredObject>>,
    expected: Option<u64>,
) -> Result<Arc<StoredObject>, StorageError> {
    let Some(cur) = current else {
        return Err(StorageError::NotFound(key.clone()));
    };
    match expected {
        Some(exp) if exp != cur.rv => Err(StorageError::Conflict {
            key: key.clone(),
            expected: exp,
            actual: cur.rv,
        }),
        _ => Ok(cur),
    }
}

fn apply_one(
    m: Mutation,
    current: Option<Arc<StoredObject>>,
    rv: u64,
    max_bytes: usize,
) -> Result<WatchEvent, StorageError> {
    match m {
        Mutation::Create { key, value } => {
            if current.is_some() {
                return Err(StorageError::AlreadyExists(key));
            }
            Ok(WatchEvent {
                rv,
                kind: EventType::Added,
                object: Arc::new(stamp(key, value, rv, max_bytes)?),
                prev: None,
            })
        }
        Mutation::Update {
            key,
            expected_rv,
            value,
        } => {
            let cur = check_current(&key, current, expected_rv)?;
            // an object stored before the limit was lowered may still shrink
            let limit = if max_bytes > 0 {
                max_bytes.max(cur.json.len())
            } else {
                0
            };
            Ok(WatchEvent {
                rv,
                kind: EventType::Modified,
                object: Arc::new(stamp(key, value, rv, limit)?),
                prev: Some(cur),
            })
        }
        Mutation::Delete { key, expected_rv } => {
            let cur = check_current(&key, current, expected_rv)?;
            Ok(WatchEvent {
                rv,
                kind: EventType::Deleted,
                // the last state is deleted whatever its size (it may predate a lower
                // limit)
                object: Arc::new(stamp(key, cur.value.clone(), rv, 0)?),
                prev: Some(cur),
            })
        }
    }
}
