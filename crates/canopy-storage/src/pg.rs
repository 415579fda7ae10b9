//! The PostgreSQL backend: what a shard's state is durable in (schema in the top-level
//! `migrations/`, layout and reasoning in `docs/storage.md`).
//!
//! - `canopy_objects`: the current state of every object.
//! - `canopy_events`: the retained history, one row per change.
//! - `canopy_state`: one row with the last committed resourceVersion (the fence every
//!   transaction compare-and-sets) and how far history was compacted.
//!
//! One writer per database: [`PgBackend::connect`] takes an advisory lock on a connection
//! of its own and keeps it until the backend closes or is dropped, so a second shard
//! started on the same database refuses to start instead of interleaving writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Row};

use crate::backend::{Backend, Snapshot};
use crate::{parse_stored, EventType, ObjectKey, StorageError, WatchEvent};

/// Lock id the writer holds for its lifetime (an arbitrary constant: "canopy" in ASCII).
const WRITER_LOCK_ID: i64 = 0x63616e6f7079;

fn db(e: sqlx::Error) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

/// A shard's PostgreSQL database, with its writer lock held.
pub struct PgBackend {
    pool: PgPool,
    /// The connection holding the advisory lock; dropped (lock released) on close.
    lock: parking_lot::Mutex<Option<PgConnection>>,
}

impl PgBackend {
    /// Connects with a pool of `max_connections`, runs migrations and takes the writer
    /// lock; fails with [`StorageError::Config`] if another store holds it.
    pub async fn connect(
        database_url: &str,
        max_connections: u32,
    ) -> Result<PgBackend, StorageError> {
        let connect: PgConnectOptions = database_url
            .parse()
            .map_err(|e: sqlx::Error| StorageError::Config(format!("invalid database URL: {e}")))?;
        let pool = PgPoolOptions::new()
            // one for the lock, at least one for the writer
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(|e| StorageError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        sqlx::migrate!("../../migrations")
            .run(&pool)
            .await
            .map_err(|e| StorageError::Unavailable(format!("running migrations: {e}")))?;

        let mut lock_conn = pool.acquire().await.map_err(db)?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(WRITER_LOCK_ID)
            .fetch_one(&mut *lock_conn)
            .await
            .map_err(db)?;
        if !locked {
            return Err(StorageError::Config(
                "another Canopy shard is already serving this database; each shard needs a database of its own".into(),
            ));
        }
        Ok(PgBackend {
            pool,
            lock: parking_lot::Mutex::new(Some(lock_conn.detach())),
        })
    }

    async fn load_snapshot(&self, history_events: usize) -> Result<Snapshot, StorageError> {
        use futures::TryStreamExt;
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let row = sqlx::query("SELECT rv, compacted_rv FROM canopy_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let rv: i64 = row.get(0);
        let compacted: i64 = row.get(1);
        let rv = rv as u64;

        let mut objects = Vec::new();
        {
            let mut rows = sqlx::query(
                "SELECT resource, cluster, namespace, name, rv, value FROM canopy_objects",
            )
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await.map_err(db)? {
                let key = ObjectKey::new(r.get(0), r.get(1), r.get(2), r.get(3));
                let orv: i64 = r.get(4);
                objects.push(Arc::new(parse_stored(key, orv as u64, r.get(5))?));
            }
        }
        let from = (rv.saturating_sub(history_events as u64)).max(compacted as u64);
        let mut history = Vec::new();
        {
            let mut rows = sqlx::query(
                "SELECT rv, type, resource, cluster, namespace, name, value FROM canopy_events WHERE rv > $1 ORDER BY rv",
            )
            .bind(from as i64)
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await.map_err(db)? {
                let erv: i64 = r.get(0);
                let code: i16 = r.get(1);
                let kind = EventType::from_code(code).ok_or_else(|| {
                    StorageError::InvalidObject(format!("event {erv} has unknown type {code}"))
                })?;
                let key = ObjectKey::new(r.get(2), r.get(3), r.get(4), r.get(5));
                let obj = Arc::new(parse_stored(key, erv as u64, r.get(6))?);
                history.push(Arc::new(WatchEvent {
                    rv: erv as u64,
                    kind,
                    object: obj,
                    prev: None,
                }));
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(Snapshot {
            rv,
            objects,
            history,
        })
    }

    /// Writes the events and the resulting current state in one transaction, fenced by a
    /// compare-and-set of the shard's resourceVersion.
    async fn persist_batch(
        &self,
        prev_rv: u64,
        events: &[Arc<WatchEvent>],
    ) -> Result<(), StorageError> {
        let last = events.last().map(|e| e.rv).unwrap_or(prev_rv);

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
                .bind(prev_rv as i64)
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
                    Ok(v) if v as u64 == prev_rv => Err(db(e)),
                    Ok(v) => Err(StorageError::Config(format!(
                        "shard database resourceVersion is {v}, expected {prev_rv} or {last}: another writer is active"
                    ))),
                    Err(_) => Err(db(e)),
                }
            }
        }
    }

    async fn compact_history(&self, upto: u64) -> Result<u64, StorageError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let deleted = sqlx::query("DELETE FROM canopy_events WHERE rv <= $1")
            .bind(upto as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        sqlx::query(
            "UPDATE canopy_state SET compacted_rv = GREATEST(compacted_rv, $1) WHERE id = 1",
        )
        .bind(upto as i64)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(deleted)
    }
}

impl Backend for PgBackend {
    fn load(&self, history_events: usize) -> BoxFuture<'_, Result<Snapshot, StorageError>> {
        self.load_snapshot(history_events).boxed()
    }

    fn persist<'a>(
        &'a self,
        prev_rv: u64,
        events: &'a [Arc<WatchEvent>],
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        self.persist_batch(prev_rv, events).boxed()
    }

    fn compact(&self, upto: u64) -> BoxFuture<'_, Result<u64, StorageError>> {
        self.compact_history(upto).boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(db)
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async {
            // the lock goes with its connection
            drop(self.lock.lock().take());
            self.pool.close().await;
        }
        .boxed()
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
