//! The shard side of replication: keeps the cache server's copy of this shard's objects
//! of the replicated resources equal to local state.
//!
//! One task runs *sessions*. A session:
//!
//! 1. subscribes to local changes, then lists the replicated resources (each list's
//!    resourceVersion tells which later changes are already in it);
//! 2. **full sync**: lists what the cache server holds for this shard, upserts what is
//!    missing or at another version ([`crate::sync::plan`]), in batches, then calls `sync`
//!    with the complete local key set, which deletes everything else of this shard and
//!    marks the shard synced on that cache-server instance;
//! 3. **incremental**: sends every later change, in order, batching what is ready; a
//!    heartbeat asks the cache server whether it still knows this shard as synced.
//!
//! Any failure (cache server down, an error answer, local changes lost because the
//! subscriber fell behind, a cache server that restarted and so forgot everything) ends
//! the session; the next one starts after an exponential backoff with jitter, and starts
//! with a full sync again. Replication is never on the shard's request path: a shard
//! serves its own workspaces whether or not the cache server is reachable.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{CacheClient, Query};
use crate::source::{Change, LocalObject, LocalSource};
use crate::sync::{plan, Version};
use crate::wire::{object_uid, Key, Op, Upsert};
use crate::CacheError;

/// Tuning of a [`Replicator`].
#[derive(Debug, Clone)]
pub struct ReplicatorOptions {
    /// Replicated resources (`group/plural`).
    pub resources: Vec<String>,
    /// Most operations per write request.
    pub batch_size: usize,
    /// How often an idle replicator checks that the cache server still has this shard
    /// synced (a restarted cache server is empty).
    pub heartbeat: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl ReplicatorOptions {
    pub fn new(resources: &[&str]) -> ReplicatorOptions {
        ReplicatorOptions {
            resources: resources.iter().map(|r| r.to_string()).collect(),
            batch_size: 500,
            heartbeat: Duration::from_secs(2),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// What a replicator is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicatorStatus {
    /// The cache server holds exactly this shard's objects (as of the last change sent).
    pub synced: bool,
    /// Completed full syncs.
    pub full_syncs: u64,
    /// The cache-server instance of the current session.
    pub instance: Option<String>,
    pub last_error: Option<String>,
}

/// A running replicator; stops when dropped.
pub struct Replicator {
    status: watch::Receiver<ReplicatorStatus>,
    task: JoinHandle<()>,
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Replicator {
    /// Starts replicating `source`'s objects of `options.resources` as shard `shard`.
    pub fn start<S: LocalSource>(
        shard: &str,
        client: CacheClient,
        source: S,
        options: ReplicatorOptions,
    ) -> Replicator {
        let (tx, rx) = watch::channel(ReplicatorStatus::default());
        let ctx = Ctx {
            shard: shard.to_string(),
            client,
            source,
            options,
        };
        let task = tokio::spawn(ctx.run(tx));
        Replicator { status: rx, task }
    }

    pub fn status(&self) -> ReplicatorStatus {
        self.status.borrow().clone()
    }

    /// Changes of [`Replicator::status`].
    pub fn status_changes(&self) -> watch::Receiver<ReplicatorStatus> {
        self.status.clone()
    }

    /// Waits until at least `n` full syncs completed and the replicator is synced.
    pub async fn wait_synced(&self, n: u64, timeout: Duration) -> bool {
        let mut rx = self.status.clone();
        tokio::time::timeout(timeout, rx.wait_for(|s| s.synced && s.full_syncs >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the replicator.
    pub fn stop(&self) {
        self.task.abort();
    }
}

struct Ctx<S> {
    shard: String,
    client: CacheClient,
    source: S,
    options: ReplicatorOptions,
}

/// Exponential backoff with jitter.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay: a random point in [½, 1] of the current step, which doubles.
    pub(crate) fn step(&mut self) -> Duration {
        let d = self.next.mul_f64(0.5 + rand::random::<f64>() * 0.5);
        self.next = (self.next * 2).min(self.max);
        d
    }
}

impl<S: LocalSource> Ctx<S> {
    async fn run(self, status: watch::Sender<ReplicatorStatus>) {
        let mut backoff = Backoff::new(self.options.min_backoff, self.options.max_backoff);
        // consecutive failed sessions: the first and every 30th are logged as warnings
        let mut failures: u64 = 0;
        loop {
            let Err(e) = self.session(&status, &mut backoff).await;
            let was_synced = status.borrow().synced;
            status.send_modify(|s| {
                s.synced = false;
                s.last_error = Some(e.to_string());
            });
            failures = if was_synced { 1 } else { failures + 1 };
            if was_synced {
                tracing::warn!(shard = %self.shard, cache = self.client.url(), error = %e, "replication to the cache server interrupted; resyncing");
            } else if failures % 30 == 1 {
                tracing::warn!(shard = %self.shard, cache = self.client.url(), error = %e, failures, "replication to the cache server failing; retrying");
            } else {
                tracing::debug!(shard = %self.shard, cache = self.client.url(), error = %e, "replication to the cache server failed; retrying");
            }
            tokio::time::sleep(backoff.step()).await;
        }
    }

    async fn session(
        &self,
        status: &watch::Sender<ReplicatorStatus>,
        backoff: &mut Backoff,
    ) -> Result<Infallible, CacheError> {
        let resources = &self.options.resources;
        let mut changes = self.source.subscribe(resources);
        let mut listed_rv: HashMap<&str, u64> = HashMap::new();
        let mut local: BTreeMap<Key, LocalObject> = BTreeMap::new();
        for r in resources {
            let (rv, objs) = self.source.list(r)?;
            listed_rv.insert(r, rv);
            local.extend(objs.into_iter().map(|o| (o.key.clone(), o)));
        }

        // full sync
        let remote = self
            .client
            .list(&Query {
                shard: Some(self.shard.clone()),
                ..Default::default()
            })
            .await?;
        let remote: BTreeMap<Key, Version> = remote
            .items
            .into_iter()
            .map(|o| {
                let v = Version {
                    rv: o.source_resource_version,
                    uid: o.uid().map(str::to_string),
                };
                (o.key, v)
            })
            .collect();
        let local_versions: BTreeMap<Key, Version> = local
            .iter()
            .map(|(k, o)| {
                let v = Version {
                    rv: o.rv,
                    uid: object_uid(&o.object).map(str::to_string),
                };
                (k.clone(), v)
            })
            .collect();
        let p = plan(&local_versions, &remote);
        for chunk in p.upserts.chunks(self.options.batch_size.max(1)) {
            let ops = chunk.iter().map(|k| upsert(&local[k])).collect::<Vec<_>>();
            self.client.write(&self.shard, ops).await?;
        }
        let keys: Vec<Key> = local.into_keys().collect();
        let synced = self.client.sync(&self.shard, keys).await?;
        let instance = synced.instance;
        tracing::info!(
            shard = %self.shard,
            cache = self.client.url(),
            upserted = p.upserts.len(),
            deleted = synced.deleted,
            "full sync with the cache server done"
        );
        backoff.reset();
        status.send_modify(|s| {
            s.synced = true;
            s.full_syncs += 1;
            s.instance = Some(instance.clone());
            s.last_error = None;
        });

        // incremental
        let mut heartbeat = tokio::time::interval(self.options.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let push = |c: Change, ops: &mut Vec<Op>| -> Result<(), CacheError> {
            let resource = match c.resource() {
                Some(r) => r,
                None => return Err(CacheError::Lagged),
            };
            let rv = c.rv().unwrap_or(0);
            if listed_rv.get(resource).is_some_and(|l| rv <= *l) {
                return Ok(()); // already in the snapshot
            }
            ops.push(match c {
                Change::Upsert(o) => upsert(&o),
                Change::Delete { key, .. } => Op::Delete(key),
                Change::Lagged => return Err(CacheError::Lagged),
            });
            Ok(())
        };
        loop {
            tokio::select! {
                c = changes.next() => {
                    let Some(c) = c else {
                        return Err(CacheError::Source("the local change stream ended".into()));
                    };
                    let mut ops = Vec::new();
                    push(c, &mut ops)?;
                    while ops.len() < self.options.batch_size {
                        match changes.next().now_or_never() {
                            Some(Some(c)) => push(c, &mut ops)?,
                            _ => break,
                        }
                    }
                    if ops.is_empty() {
                        continue;
                    }
                    let resp = self.client.write(&self.shard, ops).await?;
                    if resp.instance != instance {
                        return Err(CacheError::Restarted);
                    }
                }
                _ = heartbeat.tick() => {
                    let st = self.client.shard_status(&self.shard).await?;
                    if st.instance != instance || !st.synced {
                        return Err(CacheError::Restarted);
                    }
                }
            }
        }
    }
}

fn upsert(o: &LocalObject) -> Op {
    Op::Upsert(Upsert {
        key: o.key.clone(),
        source_resource_version: o.rv,
        object: o.object.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let steps: Vec<Duration> = (0..6).map(|_| b.step()).collect();
        for (i, d) in steps.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << i.min(3)));
            assert!(*d >= full / 2 && *d <= full, "step {i}: {d:?} vs {full:?}");
        }
        b.reset();
        assert!(b.step() <= Duration::from_millis(100));
    }
}
