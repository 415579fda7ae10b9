//! The global view: list + watch of the replicated resources of every shard into an
//! in-memory [`GlobalIndex`].
//!
//! The task lists, then watches from the list's resourceVersion. A broken watch resumes
//! from the last resourceVersion seen; when the cache server answers `410 Gone` (the
//! resourceVersion is no longer retained, or the cache server restarted — a new instance
//! starts its resourceVersions above any old one, so an old one is always too old) it
//! lists again. While the cache server is unreachable the view keeps its last state.
//! After a re-list, objects of shards that have not re-synced yet are retained for
//! [`ReaderOptions::retain_unsynced`] (see [`crate::index`]).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{CacheClient, Query};
use crate::index::GlobalIndex;
use crate::replicator::Backoff;
use crate::wire::{EventType, ReplicatedObject};

/// Tuning of a [`CacheReader`].
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Resources to read (`group/plural`); empty: every resource.
    pub resources: Vec<String>,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A watch that delivers nothing (not even a bookmark) for this long is restarted.
    pub idle_timeout: Duration,
    /// How long objects of shards that have not re-synced after a re-list are kept.
    pub retain_unsynced: Duration,
}

impl ReaderOptions {
    pub fn new(resources: &[&str]) -> ReaderOptions {
        ReaderOptions {
            resources: resources.iter().map(|r| r.to_string()).collect(),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            retain_unsynced: Duration::from_secs(300),
        }
    }
}

/// What a reader is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderStatus {
    /// A list succeeded at least once.
    pub has_synced: bool,
    /// Lists done (the first and every re-list).
    pub lists: u64,
    /// Whether a watch is currently open.
    pub watching: bool,
    pub last_error: Option<String>,
}

struct Shared {
    index: RwLock<GlobalIndex>,
    /// Bumped on every change of the view.
    revision: watch::Sender<u64>,
    status: Mutex<ReaderStatus>,
}

impl Shared {
    fn bump(&self) {
        self.revision.send_modify(|r| *r += 1);
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The global view of the replicated resources. Cheap to clone; the background task
/// stops when the last clone is dropped (or on [`CacheReader::stop`]).
#[derive(Clone)]
pub struct CacheReader {
    shared: Arc<Shared>,
    task: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for CacheReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheReader")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl CacheReader {
    pub fn start(client: CacheClient, options: ReaderOptions) -> CacheReader {
        let (revision, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            index: RwLock::new(GlobalIndex::new()),
            revision,
            status: Mutex::new(ReaderStatus::default()),
        });
        let task = tokio::spawn(run(shared.clone(), client, options));
        CacheReader {
            shared,
            task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// The copy of a cluster-scoped object `name` of `resource` in logical cluster
    /// `cluster`, from whichever shard holds it.
    pub fn get(&self, resource: &str, cluster: &str, name: &str) -> Option<Arc<ReplicatedObject>> {
        self.shared.index.read().get(resource, cluster, "", name)
    }

    /// The copy of a namespaced object.
    pub fn get_namespaced(
        &self,
        resource: &str,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<ReplicatedObject>> {
        self.shared
            .index
            .read()
            .get(resource, cluster, namespace, name)
    }

    /// Every object of `resource`, of every shard.
    pub fn list(&self, resource: &str) -> Vec<Arc<ReplicatedObject>> {
        self.shared.index.read().list(resource, None)
    }

    /// Every object of `resource` in logical cluster `cluster`.
    pub fn list_cluster(&self, resource: &str, cluster: &str) -> Vec<Arc<ReplicatedObject>> {
        self.shared.index.read().list(resource, Some(cluster))
    }

    /// A receiver notified on every change of the view (its value is a revision
    /// counter).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.revision.subscribe()
    }

    /// Waits until `f` holds for the view, or `timeout` passes; returns whether it held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&CacheReader) -> bool,
    ) -> bool {
        let mut rx = self.changes();
        tokio::time::timeout(timeout, async {
            loop {
                rx.borrow_and_update();
                if f(self) {
                    return;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok()
    }

    pub fn status(&self) -> ReaderStatus {
        self.shared.status.lock().clone()
    }

    /// The cache server's resourceVersion the view is current with.
    pub fn resource_version(&self) -> u64 {
        self.shared.index.read().resource_version()
    }

    /// Stops the background task (the view keeps its last state).
    pub fn stop(&self) {
        self.task.0.abort();
    }
}

/// Why a watch ended.
enum WatchEnd {
    /// List again.
    Relist,
    /// Resume the watch.
    Reconnect,
}

async fn run(shared: Arc<Shared>, client: CacheClient, options: ReaderOptions) {
    let mut backoff = Backoff::new(options.min_backoff, options.max_backoff);
    let query = Query::resources(&options.resources);
    loop {
        // list
        let list = match client.list(&query).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(cache = client.url(), error = %e, "listing from the cache server failed; retrying");
                shared.status.lock().last_error = Some(e.to_string());
                tokio::time::sleep(backoff.step()).await;
                continue;
            }
        };
        let retain_until = {
            let mut ix = shared.index.write();
            ix.replace(list);
            (ix.retained() > 0).then(|| Instant::now() + options.retain_unsynced)
        };
        shared.bump();
        {
            let mut st = shared.status.lock();
            st.has_synced = true;
            st.lists += 1;
            st.last_error = None;
        }
        backoff.reset();
        let mut retain_until = retain_until;

        // watch, resuming as long as the cache server can
        loop {
            let (from, instance) = {
                let ix = shared.index.read();
                (ix.resource_version(), ix.instance().to_string())
            };
            let stream = match client.watch(&query, from, Some(&instance)).await {
                Ok(s) => s,
                Err(e) if e.is_gone() => break,
                Err(e) => {
                    tracing::debug!(cache = client.url(), error = %e, "watching the cache server failed; retrying");
                    shared.status.lock().last_error = Some(e.to_string());
                    tokio::time::sleep(backoff.step()).await;
                    continue;
                }
            };
            shared.status.lock().watching = true;
            backoff.reset();
            let end = watch_stream(&shared, stream, &options, &mut retain_until).await;
            shared.status.lock().watching = false;
            match end {
                WatchEnd::Relist => break,
                WatchEnd::Reconnect => {
                    tokio::time::sleep(backoff.step()).await;
                }
            }
        }
    }
}

async fn watch_stream(
    shared: &Shared,
    stream: impl futures::Stream<Item = Result<crate::wire::WatchEvent, crate::CacheError>>,
    options: &ReaderOptions,
    retain_until: &mut Option<Instant>,
) -> WatchEnd {
    tokio::pin!(stream);
    loop {
        let expire = async {
            match *retain_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = expire => {
                *retain_until = None;
                if shared.index.write().expire_retained() {
                    shared.bump();
                }
            }
            next = tokio::time::timeout(options.idle_timeout, stream.next()) => match next {
                Err(_) | Ok(None) => return WatchEnd::Reconnect,
                Ok(Some(Err(e))) => {
                    shared.status.lock().last_error = Some(e.to_string());
                    return WatchEnd::Reconnect;
                }
                Ok(Some(Ok(ev))) => {
                    if ev.kind == EventType::Error {
                        let gone = ev.status.as_ref().is_some_and(|s| s.code == 410);
                        shared.status.lock().last_error =
                            ev.status.as_ref().map(|s| s.to_string());
                        return if gone { WatchEnd::Relist } else { WatchEnd::Reconnect };
                    }
                    let changed = {
                        let mut ix = shared.index.write();
                        let changed = ix.apply(ev);
                        if retain_until.is_some() && ix.retained() == 0 {
                            *retain_until = None;
                        }
                        changed
                    };
                    if changed {
                        shared.bump();
                    }
                }
            }
        }
    }
}
