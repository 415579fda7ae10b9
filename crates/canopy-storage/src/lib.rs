//! A shard's object store.
//!
//! Durable state lives in PostgreSQL (schema in the top-level `migrations/`): the current
//! state of every object of every logical cluster of the shard in `canopy_objects`, and a
//! bounded history of changes in `canopy_events`. Reads and watches are served from an
//! in-memory watch cache ([`cache`]) that holds the current state and a ring of recent
//! events.
//!
//! # Why one writer
//! A resourceVersion taken from a sequence is assigned when a transaction starts writing,
//! not when it commits, so watchers reading "everything after N" can skip a change that
//! commits late (see `docs/storage.md`). Canopy avoids the trap by construction: all writes
//! of a shard go through one writer task ([`writer`]) that assigns resourceVersions,
//! writes a whole batch of requests in one transaction (group commit: one fsync for many
//! requests) and only then applies the batch to the cache, in order. ResourceVersions are
//! therefore dense, commit-ordered and gap-free, and every watcher sees every change
//! exactly once, in order. Every transaction also compare-and-sets the counter row, so a
//! second writer on the same database is detected instead of corrupting history.
//!
//! Mutations carry their preconditions (create-if-absent, update-if-resourceVersion)
//! and are checked by the writer against the latest state, so callers use optimistic
//! concurrency exactly like kube's `GuaranteedUpdate` over etcd.

mod backend;
pub mod cache;
mod error;
mod fanout;
mod memory;
mod pg;
mod usage;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use backend::{Backend, Snapshot};
pub use cache::{ListOptions, ListResult, WatchStart, Watcher};
pub use error::StorageError;
pub use memory::MemoryBackend;
pub use pg::PgBackend;
pub use usage::{ClusterUsage, Counts};

/// Where an object lives: resource (`<group>/<plural>`), logical cluster, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub resource: Arc<str>,
    pub cluster: Arc<str>,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: &str, cluster: &str, namespace: &str, name: &str) -> Self {
        ObjectKey {
            resource: resource.into(),
            cluster: cluster.into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The key inside one resource's map: `cluster \0 namespace \0 name` (sorts by
    /// cluster, then namespace, then name; `\0` never occurs in valid names).
    pub(crate) fn inner(&self) -> String {
        inner_key(&self.cluster, &self.namespace, &self.name)
    }
}

pub(crate) fn inner_key(cluster: &str, namespace: &str, name: &str) -> String {
    let mut s = String::with_capacity(cluster.len() + namespace.len() + name.len() + 2);
    s.push_str(cluster);
    s.push('\0');
    s.push_str(namespace);
    s.push('\0');
    s.push_str(name);
    s
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}|{}|{}/{}",
            self.resource, self.cluster, self.namespace, self.name
        )
    }
}

/// An object as stored: its parsed JSON and the serialized bytes (shared by every
/// reader and watcher, so an object is serialized once per write).
#[derive(Debug)]
pub struct StoredObject {
    pub key: ObjectKey,
    pub rv: u64,
    pub value: Value,
    pub json: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
    fn code(self) -> i16 {
        match self {
            EventType::Added => 1,
            EventType::Modified => 2,
            EventType::Deleted => 3,
        }
    }
    fn from_code(c: i16) -> Option<Self> {
        match c {
            1 => Some(EventType::Added),
            2 => Some(EventType::Modified),
            3 => Some(EventType::Deleted),
            _ => None,
        }
    }
}

/// One committed change. For `Deleted`, `object` is the last state with the deletion's
/// resourceVersion. `prev` is the state before the change when known (always for changes
/// made since the process started; not for history loaded from the database).
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: EventType,
    pub object: Arc<StoredObject>,
    pub prev: Option<Arc<StoredObject>>,
}

/// One change of a [`Store::commit`]; all mutations of one commit apply atomically.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Fails with `AlreadyExists` if the key exists.
    Create { key: ObjectKey, value: Value },
    /// Fails with `NotFound` if absent, `Conflict` if `expected_rv` is set and differs.
    Update {
        key: ObjectKey,
        expected_rv: Option<u64>,
        value: Value,
    },
    /// Fails with `NotFound` if absent, `Conflict` if `expected_rv` is set and differs.
    Delete {
        key: ObjectKey,
        expected_rv: Option<u64>,
    },
}

impl Mutation {
    pub fn key(&self) -> &ObjectKey {
        match self {
            Mutation::Create { key, .. }
            | Mutation::Update { key, .. }
            | Mutation::Delete { key, .. } => key,
        }
    }
}

/// Tuning of a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How many recent events are kept (in memory and in `canopy_events`) for watches
    /// that resume from a resourceVersion. Older resourceVersions get `410 Expired`.
    pub history_events: usize,
    /// How often history is compacted in the database.
    pub compaction_interval: Duration,
    /// Most requests one group commit takes.
    pub max_batch: usize,
    /// Capacity of the channel of every event ([`Store::subscribe_all`], for
    /// controllers); a receiver further behind than this gets `Lagged`.
    pub watch_channel_capacity: usize,
    /// Most live events one watcher ([`Store::watch`]) may have queued and not taken:
    /// a watcher further behind is ended with [`StorageError::WatcherBehind`], which
    /// carries the resourceVersion it can resume from. Only events of the watcher's own
    /// scope count, so another tenant's writes never fill it. A queue holds pointers to
    /// shared events and grows only as needed: 10,000 watchers with empty queues cost
    /// nothing here.
    pub watcher_queue_capacity: usize,
    /// Connections in the pool (the writer uses one at a time).
    pub max_connections: u32,
    /// The largest object (serialized JSON, as stored) a create or update may write;
    /// larger ones fail with [`StorageError::TooLarge`] and change nothing. etcd's
    /// default request limit (1.5 MiB) by default; 0: no limit.
    pub max_object_bytes: usize,
}

/// Default of [`StoreOptions::watcher_queue_capacity`]: room for a burst of a few
/// hundred milliseconds at 10,000 writes/s in the watcher's own scope; 32 KiB of
/// pointers for a watcher that far behind.
pub const DEFAULT_WATCHER_QUEUE_CAPACITY: usize = 4096;

/// etcd's default `--max-request-bytes`, the size kube-apiserver's objects are held to.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 1536 * 1024;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            history_events: 20_000,
            compaction_interval: Duration::from_secs(30),
            max_batch: 512,
            watch_channel_capacity: 16_384,
            watcher_queue_capacity: DEFAULT_WATCHER_QUEUE_CAPACITY,
            max_connections: 4,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        }
    }
}

/// The store of one shard. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    cache: cache::Cache,
    usage: usage::Usage,
    writes: mpsc::Sender<writer::WriteRequest>,
    backend: Arc<dyn Backend>,
    options: StoreOptions,
    tasks: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

impl Store {
    /// Opens the store of a shard on its PostgreSQL database ([`PgBackend`]): connects,
    /// runs migrations, takes the writer lock, loads the current state and recent history
    /// into memory, and starts the writer and the compactor.
    pub async fn open(database_url: &str, options: StoreOptions) -> Result<Store, StorageError> {
        let backend = PgBackend::connect(database_url, options.max_connections).await?;
        Store::open_backend(backend, options).await
    }

    /// A store whose state lives only in this process ([`MemoryBackend`]), for tests.
    pub async fn in_memory(options: StoreOptions) -> Store {
        match Store::open_backend(MemoryBackend::default(), options).await {
            Ok(store) => store,
            // loading an empty memory backend cannot fail
            Err(e) => unreachable!("an empty in-memory store failed to open: {e}"),
        }
    }

    /// Opens a store on any [`Backend`]: loads its state and starts the writer and the
    /// compactor.
    pub async fn open_backend(
        backend: impl Backend,
        options: StoreOptions,
    ) -> Result<Store, StorageError> {
        let backend: Arc<dyn Backend> = Arc::new(backend);
        let Snapshot {
            rv,
            objects,
            history,
        } = backend.load(options.history_events).await?;
        // History may start later than asked if it was compacted; the cache can resume
        // watches from the rv just before the first retained event.
        let oldest = history.first().map(|e| e.rv - 1).unwrap_or(rv);
        let usage = usage::Usage::of(objects.iter().map(|o| &**o));
        let cache = cache::Cache::new(objects, history, rv, oldest, &options);

        let (tx, rx) = mpsc::channel(options.max_batch * 4);
        let inner = Arc::new(Inner {
            cache,
            usage: usage.clone(),
            writes: tx,
            backend: backend.clone(),
            options: options.clone(),
            tasks: parking_lot::Mutex::new(Vec::new()),
        });
        let writer = writer::Writer::new(
            backend.clone(),
            inner.cache.clone(),
            rv,
            options.max_batch,
            options.max_object_bytes,
        )
        .with_usage(usage);
        let tasks = vec![
            tokio::spawn(writer.run(rx)),
            tokio::spawn(compactor(
                backend,
                inner.cache.clone(),
                options.history_events,
                options.compaction_interval,
            )),
        ];
        *inner.tasks.lock() = tasks;
        Ok(Store { inner })
    }

    /// Applies mutations atomically; returns the stored objects (for deletes, the last
    /// state with the deletion's resourceVersion), in the order given.
    pub async fn commit(
        &self,
        mutations: Vec<Mutation>,
    ) -> Result<Vec<Arc<StoredObject>>, StorageError> {
        if mutations.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.inner
            .writes
            .send(writer::WriteRequest { mutations, reply })
            .await
            .map_err(|_| StorageError::Unavailable("the store is shutting down".into()))?;
        rx.await
            .map_err(|_| StorageError::Unavailable("the store's writer stopped".into()))?
    }

    /// One mutation; see [`Store::commit`].
    pub async fn apply(&self, mutation: Mutation) -> Result<Arc<StoredObject>, StorageError> {
        let mut v = self.commit(vec![mutation]).await?;
        v.pop()
            .ok_or_else(|| StorageError::Unavailable("empty commit result".into()))
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        self.inner.cache.get(key)
    }

    pub fn list(&self, opts: &ListOptions<'_>) -> Result<ListResult, StorageError> {
        self.inner.cache.list(opts)
    }

    /// Every object of a resource in a scope (no paging, no filter).
    pub fn list_all(
        &self,
        resource: &str,
        cluster: Option<&str>,
        namespace: Option<&str>,
    ) -> Vec<Arc<StoredObject>> {
        let all = |_: &StoredObject| true;
        let opts = ListOptions {
            resource,
            cluster,
            namespace,
            name: None,
            continue_after: None,
            limit: 0,
            filter: &all,
        };
        self.inner
            .cache
            .list(&opts)
            .map(|l| l.items)
            .unwrap_or_default()
    }

    /// Starts a watch of every logical cluster and namespace; see [`WatchStart`].
    /// [`Watcher::scoped`] narrows it.
    pub fn watch(&self, resource: &str, start: WatchStart) -> Result<Watcher, StorageError> {
        self.inner.cache.watch(resource, None, None, start)
    }

    /// Starts a watch of one resource in one logical cluster (`None`: all) and one
    /// namespace (`None`: all): only events of that scope wake it, and its initial
    /// events are those of the scope.
    pub fn watch_scoped(
        &self,
        resource: &str,
        cluster: Option<&str>,
        namespace: Option<&str>,
        start: WatchStart,
    ) -> Result<Watcher, StorageError> {
        self.inner.cache.watch(resource, cluster, namespace, start)
    }

    /// Watchers currently registered.
    pub fn watchers(&self) -> usize {
        self.inner.cache.watchers()
    }

    /// Keys of every object of one logical cluster (to delete a logical cluster).
    pub fn keys_of_cluster(&self, cluster: &str) -> Vec<ObjectKey> {
        self.inner.cache.keys_of_cluster(cluster)
    }

    /// What one logical cluster stores (objects and serialized bytes, in total and per
    /// resource), as of the last commit.
    pub fn cluster_usage(&self, cluster: &str) -> ClusterUsage {
        self.inner.usage.cluster(cluster)
    }

    /// Objects and bytes of several logical clusters together.
    pub fn usage_of_clusters<'a>(&self, clusters: impl IntoIterator<Item = &'a str>) -> Counts {
        self.inner.usage.totals(&mut clusters.into_iter())
    }

    /// What every logical cluster of this shard stores (clusters storing nothing are
    /// absent).
    pub fn usage(&self) -> std::collections::HashMap<Arc<str>, ClusterUsage> {
        self.inner.usage.all()
    }

    /// The resourceVersion of the last committed change.
    pub fn current_rv(&self) -> u64 {
        self.inner.cache.current_rv()
    }

    /// The oldest resourceVersion a watch can still resume from.
    pub fn oldest_rv(&self) -> u64 {
        self.inner.cache.oldest_rv()
    }

    /// A receiver of every committed event of every resource (for controllers).
    pub fn subscribe_all(&self) -> (u64, broadcast::Receiver<Arc<WatchEvent>>) {
        self.inner.cache.subscribe_all()
    }

    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Checks that the database answers (for readiness).
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.inner.backend.ping().await
    }

    /// Stops the writer and compactor and closes the backend (connections, writer lock).
    pub async fn close(&self) {
        let tasks: Vec<_> = self.inner.tasks.lock().drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        // the writer may be inside a commit: let it stop before the backend goes
        for t in tasks {
            let _cancelled_or_done = t.await;
        }
        self.inner.backend.close().await;
    }
}

/// Serializes `value` with `metadata.resourceVersion` set to `rv`; fails with
/// [`StorageError::TooLarge`] when the serialized object exceeds `max_bytes` (0: no
/// limit). Every create and update of the store passes here, so no writer can store an
/// object over the limit.
pub(crate) fn stamp(
    key: ObjectKey,
    mut value: Value,
    rv: u64,
    max_bytes: usize,
) -> Result<StoredObject, StorageError> {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    } else {
        return Err(StorageError::InvalidObject(format!(
            "{key}: object has no metadata"
        )));
    }
    let json = serde_json::to_vec(&value)
        .map_err(|e| StorageError::InvalidObject(format!("{key}: {e}")))?;
    if max_bytes > 0 && json.len() > max_bytes {
        return Err(StorageError::TooLarge {
            key,
            size: json.len(),
            limit: max_bytes,
        });
    }
    if json_nesting(&json) > MAX_STORED_NESTING {
        // it would be stored but never read back: loading the store would fail
        return Err(StorageError::InvalidObject(format!(
            "{key}: the object nests more than {MAX_STORED_NESTING} levels of objects and arrays"
        )));
    }
    Ok(StoredObject {
        key,
        rv,
        value,
        json: Bytes::from(json),
    })
}

/// Containers a stored object may nest: what serde_json parses when the store is
/// loaded.
pub const MAX_STORED_NESTING: usize = 127;

/// Containers nested in serialized JSON, by a scan of its bytes.
fn json_nesting(json: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in json {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

pub(crate) fn parse_stored(
    key: ObjectKey,
    rv: u64,
    raw: Vec<u8>,
) -> Result<StoredObject, StorageError> {
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| StorageError::InvalidObject(format!("{key}: stored JSON is corrupt: {e}")))?;
    Ok(StoredObject {
        key,
        rv,
        value,
        json: Bytes::from(raw),
    })
}

/// Forgets history older than the retained window, periodically.
async fn compactor(backend: Arc<dyn Backend>, cache: cache::Cache, keep: usize, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let upto = cache.current_rv().saturating_sub(keep as u64);
        if upto == 0 {
            continue;
        }
        match backend.compact(upto).await {
            Ok(n) if n > 0 => {
                tracing::debug!(compacted_up_to = upto, deleted = n, "compacted history")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "history compaction failed; will retry"),
        }
    }
}

#[cfg(test)]
mod nesting_tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings() {
        assert_eq!(json_nesting(br#"{"a":[1,{"b":"[[{\"]]"}]}"#), 3);
        assert_eq!(json_nesting(b"1"), 0);
        // what the store refuses is exactly what serde_json would not read back
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_STORED_NESTING),
            "]".repeat(MAX_STORED_NESTING)
        );
        assert!(serde_json::from_str::<Value>(&ok).is_ok());
        assert_eq!(json_nesting(ok.as_bytes()), MAX_STORED_NESTING);
        let deep = format!("[{ok}]");
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert_eq!(json_nesting(deep.as_bytes()), MAX_STORED_NESTING + 1);
    }
}
