//! Where each logical cluster lives: path → (name, shard) and name → (path, shard), in
//! memory.
//!
//! Kept by one task per shard ([`watch_shard`]) that lists and then watches
//! `/clusters/*/apis/core.kcp.io/v1alpha1/logicalclusters` as `system:front-proxy` in
//! `system:masters`. Each `LogicalCluster/cluster` object names its logical cluster
//! (annotation `kcp.io/cluster`) and its path (`kcp.io/path`). A watch that ends is
//! resumed from its last resourceVersion; one that fails (410 Gone, a broken
//! connection, a shard restart) leads to a fresh list after a backoff (100 ms doubling
//! to 3 s). A shard that is down keeps its entries, so its workspaces get 503 rather
//! than 403.
//!
//! A miss is re-checked before it is believed ([`recheck`]): every shard is asked for
//! `/clusters/<path or name>/apis/core.kcp.io/v1alpha1/logicalclusters/cluster`, so a
//! workspace created a moment ago (before its watch event arrived) is routed correctly.
//! Because a miss costs a request to every shard, rechecks are bounded: at most
//! [`MAX_RECHECKS`] run at once (the rest wait), and a key found nowhere is remembered
//! as missing for [`MISS_TTL`] (at most [`MAX_MISSES`] keys; an index update of the key
//! forgets it at once), so polling an unknown workspace costs the shards nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use parking_lot::RwLock;
use serde_json::Value;

use crate::backend::{self, BackendError, Backends};

pub const PATH_ANNOTATION: &str = "kcp.io/path";
pub const CLUSTER_ANNOTATION: &str = "kcp.io/cluster";
/// Who the proxy is when it reads shards for itself.
pub const PROXY_USER: &str = "system:front-proxy";
pub const PROXY_GROUP: &str = "system:masters";

const LIST_PATH: &str = "/clusters/*/apis/core.kcp.io/v1alpha1/logicalclusters";
/// A watch that delivers nothing (not even a bookmark, sent every minute) for this long
/// is assumed dead.
const WATCH_IDLE: Duration = Duration::from_secs(150);
/// Rechecks running at once, over all callers.
pub const MAX_RECHECKS: usize = 16;
/// How long a key found on no shard is answered as unknown without asking again.
pub const MISS_TTL: Duration = Duration::from_millis(500);
/// Most keys remembered as missing (the oldest are dropped first).
pub const MAX_MISSES: usize = 10_000;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The logical cluster's name.
    pub name: String,
    /// Index of its shard.
    pub shard: usize,
}

#[derive(Default)]
struct Maps {
    by_path: HashMap<String, (String, usize)>,
    by_name: HashMap<String, (String, usize)>,
}

impl Maps {
    fn upsert(&mut self, shard: usize, name: &str, path: &str) {
        if let Some((old_path, old_shard)) = self.by_name.get(name) {
            if *old_shard != shard {
                tracing::warn!(name, shard, old_shard, "logical cluster seen on two shards");
            }
            if old_path != path {
                let old_path = old_path.clone();
                if self.by_path.get(&old_path).is_some_and(|(n, _)| n == name) {
                    self.by_path.remove(&old_path);
                }
            }
        }
        self.by_name
            .insert(name.to_string(), (path.to_string(), shard));
        self.by_path
            .insert(path.to_string(), (name.to_string(), shard));
    }

    fn remove(&mut self, shard: usize, name: &str) {
        if let Some((path, s)) = self.by_name.get(name).cloned() {
            if s != shard {
                return;
            }
            self.by_name.remove(name);
            if self.by_path.get(&path).is_some_and(|(n, _)| n == name) {
                self.by_path.remove(&path);
            }
        }
    }
}

/// The index.
pub struct Index {
    maps: RwLock<Maps>,
    synced: Vec<AtomicBool>,
    /// Keys no shard held when last asked, with when.
    misses: parking_lot::Mutex<HashMap<String, std::time::Instant>>,
    rechecks: tokio::sync::Semaphore,
}

impl Index {
    pub fn new(shards: usize) -> Index {
        Index {
            maps: RwLock::new(Maps::default()),
            synced: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            misses: Default::default(),
            rechecks: tokio::sync::Semaphore::new(MAX_RECHECKS),
        }
    }

    /// Whether `key` was found on no shard less than [`MISS_TTL`] ago.
    pub fn recently_missing(&self, key: &str) -> bool {
        let mut m = self.misses.lock();
        match m.get(key) {
            Some(at) if at.elapsed() < MISS_TTL => true,
            Some(_) => {
                m.remove(key);
                false
            }
            None => false,
        }
    }

    fn remember_miss(&self, key: &str) {
        let mut m = self.misses.lock();
        if m.len() >= MAX_MISSES {
            m.retain(|_, at| at.elapsed() < MISS_TTL);
            if m.len() >= MAX_MISSES {
                // all fresh: drop the oldest tenth
                let mut ats: Vec<std::time::Instant> = m.values().copied().collect();
                ats.sort_unstable();
                if let Some(cut) = ats.get(MAX_MISSES / 10).copied() {
                    m.retain(|_, at| *at > cut);
                }
            }
        }
        m.insert(key.to_string(), std::time::Instant::now());
    }

    fn forget_miss(&self, name: &str, path: &str) {
        let mut m = self.misses.lock();
        if !m.is_empty() {
            m.remove(name);
            m.remove(path);
        }
    }

    /// The route of a logical cluster path (`root:a:b`) or name.
    pub fn lookup(&self, path_or_name: &str) -> Option<Route> {
        let m = self.maps.read();
        m.by_path
            .get(path_or_name)
            .map(|(name, shard)| Route {
                name: name.clone(),
                shard: *shard,
            })
            .or_else(|| {
                m.by_name.get(path_or_name).map(|(_, shard)| Route {
                    name: path_or_name.to_string(),
                    shard: *shard,
                })
            })
    }

    /// Logical clusters known.
    pub fn len(&self) -> usize {
        self.maps.read().by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every shard has been listed at least once.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::Acquire))
    }

    pub fn is_shard_synced(&self, shard: usize) -> bool {
        self.synced[shard].load(Ordering::Acquire)
    }

    pub fn upsert(&self, shard: usize, name: &str, path: &str) {
        self.maps.write().upsert(shard, name, path);
        self.forget_miss(name, path);
    }

    pub fn remove(&self, shard: usize, name: &str) {
        self.maps.write().remove(shard, name);
    }

    /// Replaces everything known about `shard` with `entries` (name, path).
    fn replace_shard(&self, shard: usize, entries: &[(String, String)]) {
        let mut m = self.maps.write();
        let stale: Vec<String> = m
            .by_name
            .iter()
            .filter(|(_, (_, s))| *s == shard)
            .map(|(n, _)| n.clone())
            .collect();
        for n in stale {
            m.remove(shard, &n);
        }
        for (name, path) in entries {
            m.upsert(shard, name, path);
        }
        drop(m);
        self.misses.lock().clear();
        self.synced[shard].store(true, Ordering::Release);
    }
}

/// (name, path) of a `LogicalCluster` object.
fn identify(obj: &Value) -> Option<(String, String)> {
    // only a logical cluster's own `LogicalCluster/cluster` speaks for it (shards refuse
    // other LogicalCluster objects and keep these annotations the system's)
    if obj.pointer("/metadata/name").and_then(Value::as_str) != Some("cluster") {
        return None;
    }
    let ann = obj.pointer("/metadata/annotations")?;
    let path = ann.get(PATH_ANNOTATION).and_then(Value::as_str)?;
    let name = ann
        .get(CLUSTER_ANNOTATION)
        .and_then(Value::as_str)
        // objects written before shards set kcp.io/cluster: only root's name is its path
        .or((path == "root").then_some("root"))?;
    Some((name.to_string(), path.to_string()))
}

fn resource_version(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A request the proxy makes for itself, as `system:front-proxy`.
pub(crate) fn own_request(
    backends: &Backends,
    shard: usize,
    path: &str,
) -> Result<Request<backend::ProxyBody>, BackendError> {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(backends.uri(shard, path)?)
        .header(http::header::ACCEPT, "application/json");
    for (k, v) in canopy_auth::requestheader::encode(&proxy_user()) {
        b = b.header(k, v);
    }
    b.body(backend::empty())
        .map_err(|e| BackendError::Failed(backends.shard(shard).name.clone(), e.to_string()))
}

fn proxy_user() -> canopy_auth::UserInfo {
    canopy_auth::UserInfo {
        name: PROXY_USER.into(),
        groups: vec![PROXY_GROUP.into()],
        ..Default::default()
    }
}

#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Protocol(String),
    #[error("resource version too old")]
    Gone,
}

async fn list(
    backends: &Backends,
    shard: usize,
) -> Result<(Vec<(String, String)>, String), WatchError> {
    let resp = backends
        .send(shard, own_request(backends, shard, LIST_PATH)?, true)
        .await?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| WatchError::Protocol(format!("reading the list: {e}")))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(WatchError::Protocol(format!(
            "listing logical clusters: {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| WatchError::Protocol(format!("decoding the list: {e}")))?;
    let rv = v
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_string();
    let entries = v
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(identify).collect())
        .unwrap_or_default();
    Ok((entries, rv))
}

/// Watches from `rv`, applying events, until the watch ends; returns the last
/// resourceVersion seen (to resume from) or why it failed.
async fn watch(
    index: &Index,
    backends: &Backends,
    shard: usize,
    rv: &str,
) -> Result<String, WatchError> {
    let path = format!("{LIST_PATH}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}");
    let resp = backends
        .send(shard, own_request(backends, shard, &path)?, true)
        .await?;
    let status = resp.status();
    if status == StatusCode::GONE {
        return Err(WatchError::Gone);
    }
    if status != StatusCode::OK {
        return Err(WatchError::Protocol(format!(
            "watching logical clusters: {status}"
        )));
    }
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut last_rv = rv.to_string();
    loop {
        let frame = match tokio::time::timeout(WATCH_IDLE, body.frame()).await {
            Err(_) => return Err(WatchError::Protocol("watch idle too long".into())),
            Ok(None) => return Ok(last_rv),
            Ok(Some(Err(e))) => return Err(WatchError::Protocol(format!("watch broken: {e}"))),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(nl + 1);
            let line = &line[..nl];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let ev: Value = serde_json::from_slice(line)
                .map_err(|e| WatchError::Protocol(format!("decoding a watch event: {e}")))?;
            let obj = ev.get("object").cloned().unwrap_or(Value::Null);
            match ev.get("type").and_then(Value::as_str).unwrap_or("") {
                "ADDED" | "MODIFIED" => {
                    if let Some((name, path)) = identify(&obj) {
                        index.upsert(shard, &name, &path);
                    }
                }
                "DELETED" => {
                    if let Some((name, _)) = identify(&obj) {
                        index.remove(shard, &name);
                    }
                }
                "BOOKMARK" => {}
                "ERROR" => {
                    let code = obj.get("code").and_then(Value::as_u64).unwrap_or(0);
                    if code == 410 {
                        return Err(WatchError::Gone);
                    }
                    return Err(WatchError::Protocol(format!("watch error: {obj}")));
                }
                other => {
                    return Err(WatchError::Protocol(format!(
                        "unknown watch event {other:?}"
                    )))
                }
            }
            if let Some(rv) = resource_version(&obj) {
                last_rv = rv;
            }
        }
    }
}

/// Keeps the index of shard `shard` current, forever (aborted when the proxy stops).
pub async fn watch_shard(index: Arc<Index>, backends: Arc<Backends>, shard: usize) {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(3);
    let name = backends.shard(shard).name.clone();
    let mut backoff = FIRST;
    loop {
        match list(&backends, shard).await {
            Ok((entries, mut rv)) => {
                tracing::debug!(shard = %name, logical_clusters = entries.len(), "listed");
                index.replace_shard(shard, &entries);
                backoff = FIRST;
                loop {
                    match watch(&index, &backends, shard, &rv).await {
                        Ok(last) => rv = last,
                        Err(WatchError::Gone) => {
                            tracing::debug!(shard = %name, "watch expired; listing again");
                            break;
                        }
                        Err(e) => {
                            tracing::info!(shard = %name, error = %e, "watch failed; listing again");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::info!(shard = %name, error = %e, retry_in = ?backoff, "cannot list logical clusters");
            }
        }
        let jitter = rand::random::<u64>() % (backoff.as_millis() as u64 / 4 + 1);
        tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
        backoff = (backoff * 2).min(MAX);
    }
}

/// Why a miss could not be settled.
#[derive(Debug, thiserror::Error)]
#[error("shard {0} could not be asked")]
pub struct Unsettled(pub String);

/// Asks every shard whether it holds `path_or_name`; records and returns what it finds.
/// `Err` when it was found nowhere but a shard that has never been listed could not be
/// asked (it might hold it).
pub async fn recheck(
    index: &Index,
    backends: &Backends,
    path_or_name: &str,
) -> Result<Option<Route>, Unsettled> {
    if index.recently_missing(path_or_name) {
        return Ok(None);
    }
    // Bounded: a flood of misses (any number of callers, any keys) keeps at most
    // MAX_RECHECKS rounds of shard requests in flight. The semaphore is never closed.
    let Ok(_permit) = index.rechecks.acquire().await else {
        return Ok(None);
    };
    // Someone else may have settled it while we waited.
    if let Some(r) = index.lookup(path_or_name) {
        return Ok(Some(r));
    }
    if index.recently_missing(path_or_name) {
        return Ok(None);
    }
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b':')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    let enc = percent_encoding::utf8_percent_encode(path_or_name, SEGMENT).to_string();
    let path = format!("/clusters/{enc}/apis/core.kcp.io/v1alpha1/logicalclusters/cluster");
    let asks = (0..backends.len()).map(|i| {
        let path = path.clone();
        async move {
            let req = own_request(backends, i, &path).map_err(|_| i)?;
            let resp = backends.send(i, req, false).await.map_err(|_| i)?;
            if resp.status() != StatusCode::OK {
                return Ok(None);
            }
            let body = resp.into_body().collect().await.map_err(|_| i)?.to_bytes();
            let v: Value = serde_json::from_slice(&body).map_err(|_| i)?;
            Ok::<_, usize>(identify(&v).map(|(name, path)| (i, name, path)))
        }
    });
    let results = futures::future::join_all(asks).await;
    let mut unsettled = None;
    for r in results {
        match r {
            Ok(Some((shard, name, path))) => {
                index.upsert(shard, &name, &path);
                return Ok(Some(Route { name, shard }));
            }
            Ok(None) => {}
            Err(i) if !index.is_shard_synced(i) => unsettled = Some(i),
            Err(_) => {}
        }
    }
    match unsettled {
        Some(i) => Err(Unsettled(backends.shard(i).name.clone())),
        None => {
            index.remember_miss(path_or_name);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn misses_are_remembered_briefly_and_forgotten_on_update() {
        let ix = Index::new(1);
        assert!(!ix.recently_missing("root:nope"));
        ix.remember_miss("root:nope");
        ix.remember_miss("abc");
        assert!(ix.recently_missing("root:nope"));
        // the index learning of it (by path or by name) forgets the miss at once
        ix.upsert(0, "abc", "root:nope");
        assert!(!ix.recently_missing("root:nope"));
        assert!(!ix.recently_missing("abc"));
        ix.remember_miss("gone");
        std::thread::sleep(MISS_TTL + Duration::from_millis(20));
        assert!(!ix.recently_missing("gone"));
        // bounded
        for i in 0..(MAX_MISSES + 50) {
            ix.remember_miss(&format!("k{i}"));
        }
        assert!(ix.misses.lock().len() <= MAX_MISSES);
        assert!(ix.recently_missing(&format!("k{}", MAX_MISSES + 49)));
    }

    #[test]
    fn paths_and_names_route_and_follow_changes() {
        let ix = Index::new(2);
        assert!(!ix.is_synced());
        ix.replace_shard(
            0,
            &[
                ("root".into(), "root".into()),
                ("abc".into(), "root:a".into()),
            ],
        );
        ix.replace_shard(1, &[("def".into(), "root:a:b".into())]);
        assert!(ix.is_synced());
        assert_eq!(
            ix.lookup("root:a"),
            Some(Route {
                name: "abc".into(),
                shard: 0
            })
        );
        assert_eq!(
            ix.lookup("abc"),
            Some(Route {
                name: "abc".into(),
                shard: 0
            })
        );
        assert_eq!(ix.lookup("root:a:b").unwrap().shard, 1);
        assert_eq!(ix.len(), 3);
        // renamed path
        ix.upsert(0, "abc", "root:x");
        assert_eq!(ix.lookup("root:a"), None);
        assert_eq!(ix.lookup("root:x").unwrap().name, "abc");
        // a relist drops what is gone
        ix.replace_shard(0, &[("root".into(), "root".into())]);
        assert_eq!(ix.lookup("abc"), None);
        assert_eq!(ix.lookup("root:x"), None);
        assert_eq!(ix.lookup("def").unwrap().shard, 1);
        ix.remove(1, "def");
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn identifies_logical_clusters() {
        let lc = json!({"metadata": {"name": "cluster", "annotations": {"kcp.io/path": "root:a", "kcp.io/cluster": "abc"}}});
        assert_eq!(identify(&lc), Some(("abc".into(), "root:a".into())));
        let old_root =
            json!({"metadata": {"name": "cluster", "annotations": {"kcp.io/path": "root"}}});
        assert_eq!(identify(&old_root), Some(("root".into(), "root".into())));
        let old =
            json!({"metadata": {"name": "cluster", "annotations": {"kcp.io/path": "root:a"}}});
        assert_eq!(identify(&old), None);
        // a second LogicalCluster object in a workspace speaks for nothing
        let other = json!({"metadata": {"name": "evil", "annotations": {"kcp.io/path": "root", "kcp.io/cluster": "abc"}}});
        assert_eq!(identify(&other), None);
    }
}
