//! The single writer of a shard: checks preconditions against the latest state, assigns
//! resourceVersions, commits a batch of requests in one transaction, then publishes the
//! batch to the cache in order.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::cache::Cache;
use crate::{stamp, EventType, Mutation, ObjectKey, StorageError, StoredObject, WatchEvent};

pub(crate) struct WriteRequest {
    pub mutations: Vec<Mutation>,
    pub reply: oneshot::Sender<Result<Vec<Arc<StoredObject>>, StorageError>>,
}

pub(crate) struct Writer {
    pool: PgPool,
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
        pool: PgPool,
        cache: Cache,
        rv: u64,
        max_batch: usize,
        max_object_bytes: usize,
    ) -> Writer {
        Writer {
            pool,
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
            match self.persist(&batch.events).await {
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

    /// Writes the events and the resulting current state in one transaction, fenced by a
    /// compare-and-set of the shard's resourceVersion.
    async fn persist(&self, events: &[Arc<WatchEvent>]) -> Result<(), StorageError> {
        let first = events.first().map(|e| e.rv).unwrap_or(self.rv + 1);
        let last = events.last().map(|e| e.rv).unwrap_or(self.rv);
        debug_assert_eq!(first, self.rv + 1);

        // Final state per key (a batch may touch a key several times).
        let mut finals: HashMap<&ObjectKey, &Arc<WatchEvent>> = HashMap::new();
        for e in events {
            finals.insert(&e.object.key, e);
        }
        let mut up = Columns::default();
        let mut del = Columns::default();
        for (key, e) in &finals {
            let cols = if e.kind == EventType::Deleted {
                &mut del
            } else {
                &mut up
            };
            cols.push(key, e);
        }
        let mut ev = Columns::default();
        let mut types = Vec::with_capacity(events.len());
        for e in events {
            ev.push(&e.object.key, e);
            types.push(e.kind.code());
        }

        let result = async {
            let mut tx = self.pool.begin().await?;
            let fenced = sqlx::query("UPDATE canopy_state SET rv = $1 WHERE id = 1 AND rv = $2")
                .bind(last as i64)
                .bind(self.rv as i64)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if fenced != 1 {
                return Ok(false);
            }
            if !up.resource.is_empty() {
                sqlx::query(
                    "INSERT INTO canopy_objects (resource, cluster, namespace, name, rv, value)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::bytea[])
                     ON CONFLICT (resource, cluster, namespace, name)
                     DO UPDATE SET rv = EXCLUDED.rv, value = EXCLUDED.value",
                )
                .bind(&up.resource)
                .bind(&up.cluster)
                .bind(&up.namespace)
                .bind(&up.name)
                .bind(&up.rv)
                .bind(&up.value)
                .execute(&mut *tx)
                .await?;
            }
            if !del.resource.is_empty() {
                sqlx::query(
                    "DELETE FROM canopy_objects o
                     USING UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS d(resource, cluster, namespace, name)
                     WHERE o.resource = d.resource AND o.cluster = d.cluster
                       AND o.namespace = d.namespace AND o.name = d.name",
                )
                .bind(&del.resource)
                .bind(&del.cluster)
                .bind(&del.namespace)
                .bind(&del.name)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO canopy_events (rv, type, resource, cluster, namespace, name, value)
                 SELECT * FROM UNNEST($1::int8[], $2::int2[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[])",
            )
            .bind(&ev.rv)
            .bind(&types)
            .bind(&ev.resource)
            .bind(&ev.cluster)
            .bind(&ev.namespace)
            .bind(&ev.name)
            .bind(&ev.value)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(true)
        }
        .await;

        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(StorageError::Config(
                "another writer changed this shard's database; refusing further writes".into(),
            )),
            Err(e) => {
                // The commit may or may not have happened (e.g. the connection broke
                // during COMMIT). Find out from the counter before answering.
                match sqlx::query_scalar::<_, i64>("SELECT rv FROM canopy_state WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                {
                    Ok(v) if v as u64 == last => Ok(()),
                    Ok(v) if v as u64 == self.rv => Err(StorageError::db(e)),
                    Ok(v) => Err(StorageError::Config(format!(
                        "shard database resourceVersion is {v}, expected {} or {last}: another writer is active",
                        self.rv
                    ))),
                    Err(_) => Err(StorageError::db(e)),
                }
            }
        }
    }
}

#[derive(Default)]
struct Columns {
    resource: Vec<String>,
    cluster: Vec<String>,
    namespace: Vec<String>,
    name: Vec<String>,
    rv: Vec<i64>,
    value: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, key: &ObjectKey, e: &WatchEvent) {
        self.resource.push(key.resource.to_string());
        self.cluster.push(key.cluster.to_string());
        self.namespace.push(key.namespace.clone());
        self.name.push(key.name.clone());
        self.rv.push(e.rv as i64);
        self.value.push(e.object.json.to_vec());
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
