//! Workspaces: paths to logical clusters, and the controller that turns a `Workspace`
//! in a parent into a ready child logical cluster (and removes it again).
//!
//! A logical cluster's name is an opaque identifier; its path (`root:acme:team-a`) is
//! for people. The `LogicalCluster/cluster` object inside each logical cluster carries
//! its path and workspace type as annotations; a path resolves by following
//! `Workspace.spec.cluster` from `root` one segment at a time.

use canopy_core::meta;
use canopy_storage::{ObjectKey, Store, StoredObject};
use serde_json::{json, Value};

use crate::bootstrap::LOGICAL_CLUSTER_RESOURCE;
use crate::controllers::{set, ReconcileError};
use crate::registry::tenancy::{
    CLUSTER_ANNOTATION, LOGICAL_CLUSTER_FINALIZER, OWNER_ANNOTATION, PATH_ANNOTATION, WORKSPACES,
};
use crate::{rest, ApiServer};
use canopy_runtime::Action;

pub const TYPE_ANNOTATION: &str = "internal.tenancy.kcp.io/type";

fn logical_cluster(store: &Store, cluster: &str) -> Option<std::sync::Arc<StoredObject>> {
    store.get(&ObjectKey::new(
        LOGICAL_CLUSTER_RESOURCE,
        cluster,
        "",
        "cluster",
    ))
}

/// The path of a logical cluster (`root` for root).
pub fn path_of(store: &Store, cluster: &str) -> String {
    logical_cluster(store, cluster)
        .and_then(|o| meta::annotation(&o.value, PATH_ANNOTATION).map(str::to_string))
        .unwrap_or_else(|| cluster.to_string())
}

/// (path, name) of a logical cluster's workspace type.
pub fn type_of(store: &Store, cluster: &str) -> Option<(String, String)> {
    let lc = logical_cluster(store, cluster)?;
    let t = meta::annotation(&lc.value, TYPE_ANNOTATION)?;
    let (p, n) = t.rsplit_once(':')?;
    Some((p.to_string(), n.to_string()))
}

/// Resolves a path (`root:a:b`) or a logical cluster name to the logical cluster name.
pub fn resolve(store: &Store, path_or_name: &str) -> Option<String> {
    if !path_or_name.contains(':') {
        return logical_cluster(store, path_or_name).map(|_| path_or_name.to_string());
    }
    let mut parts = path_or_name.split(':');
    let mut cur = parts.next()?.to_string();
    logical_cluster(store, &cur)?;
    for seg in parts {
        let ws = store.get(&ObjectKey::new(WORKSPACES, &cur, "", seg))?;
        let next = ws.value.pointer("/spec/cluster")?.as_str()?.to_string();
        if next.is_empty()
            || ws.value.pointer("/status/phase").and_then(Value::as_str) != Some("Ready")
        {
            return None;
        }
        cur = next;
    }
    Some(cur)
}

/// Resolves a path or name to a logical cluster held by this shard: by walking from
/// `root` when the path's ancestors are here, else through the index of paths of the
/// logical clusters this shard holds (a workspace whose parent lives on another shard).
pub fn resolve_in(api: &ApiServer, path_or_name: &str) -> Option<String> {
    let store = &api.inner.store;
    if let Some(c) = resolve(store, path_or_name) {
        return Some(c);
    }
    if !path_or_name.contains(':') {
        return None;
    }
    let ready = |c: &str| {
        logical_cluster(store, c).is_some_and(|lc| {
            lc.value.pointer("/status/phase").and_then(Value::as_str) == Some("Ready")
                && path_of(store, c) == path_or_name
        })
    };
    let c = api.inner.paths.read().get(path_or_name).cloned()?;
    ready(&c).then_some(c)
}

/// The path a `LogicalCluster` object vouches for: only the one object named `cluster`
/// counts, and only when it names the logical cluster it is stored in (its annotations
/// are written by the system alone, see [`crate::admission`]; anything else is ignored).
fn trusted_path(o: &StoredObject) -> Option<&str> {
    if o.key.name != "cluster" {
        return None;
    }
    let named = meta::annotation(&o.value, crate::bootstrap::CLUSTER_NAME_ANNOTATION);
    if named.is_some_and(|n| n != &*o.key.cluster) {
        return None;
    }
    meta::annotation(&o.value, PATH_ANNOTATION)
}

/// Keeps [`crate::Inner::paths`] — the workspace path of every logical cluster held
/// here — current from the store's watch (filled from the initial state at start and
/// after a lagging watcher is cut off), so resolving never scans logical clusters.
pub async fn maintain_paths(api: ApiServer, errors: canopy_runtime::TaskErrors) {
    use canopy_storage::{EventType, WatchStart};
    loop {
        let mut w = match api.inner.store.watch(
            crate::bootstrap::LOGICAL_CLUSTER_RESOURCE,
            WatchStart::WithInitialState,
        ) {
            Ok(w) => {
                errors.ok();
                w
            }
            Err(e) => {
                errors.failed(&e);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let initial: std::collections::HashMap<String, String> = w
            .initial
            .iter()
            .filter_map(|e| {
                let p = trusted_path(&e.object)?;
                Some((p.to_string(), e.object.key.cluster.to_string()))
            })
            .collect();
        api.inner.paths.write().extend(initial);
        loop {
            match w.next().await {
                Ok(Some(ev)) => {
                    let Some(p) = trusted_path(&ev.object) else {
                        continue;
                    };
                    let cluster = ev.object.key.cluster.to_string();
                    let mut paths = api.inner.paths.write();
                    match ev.kind {
                        EventType::Deleted => {
                            if paths.get(p) == Some(&cluster) {
                                paths.remove(p);
                            }
                        }
                        _ => {
                            paths.insert(p.to_string(), cluster);
                        }
                    }
                }
                Ok(None) => return,
                Err(_) => break,
            }
        }
    }
}

/// Where kcp records a workspace's shard: the shard name's [`shard_hash`].
///
/// [`shard_hash`]: canopy_core::resource::shard_hash
pub const SHARD_ANNOTATION: &str = "internal.tenancy.kcp.io/shard";
pub const SHARDS: &str = "core.kcp.io/shards";
/// How many logical clusters a shard holds, reported on its `Shard` object for the
/// scheduler's spreading.
pub const LOGICAL_CLUSTERS_ANNOTATION: &str = "canopy.dev/logical-clusters";

/// Chooses a shard for a new workspace: among the `Shard`s matching the workspace's
/// `spec.location.selector` (all when it has none), the one holding the fewest logical
/// clusters (ties broken at random). With no `Shard` registered at all, this shard.
pub async fn schedule(api: &ApiServer, ws: &Value) -> Result<String, String> {
    let shards = shard_objects(api).await;
    if shards.is_empty() {
        return Ok(api.inner.config.shard_name.clone());
    }
    let selector = match ws.pointer("/spec/location/selector") {
        Some(sel) if !sel.is_null() => Some(
            canopy_selectors::label::Selector::from_label_selector_json(sel)
                .map_err(|e| format!("invalid spec.location.selector: {e}"))?,
        ),
        _ => None,
    };
    // The loads on the Shard objects are reported every few seconds: assignments this
    // shard made since then count at once (kept for twice the report interval).
    let now = std::time::Instant::now();
    let mut pending: std::collections::HashMap<String, u64> = Default::default();
    {
        let mut recent = api.inner.recent_assignments.lock();
        while recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RECENT_ASSIGNMENTS)
        {
            recent.pop_front();
        }
        for (_, name) in recent.iter() {
            *pending.entry(name.clone()).or_default() += 1;
        }
    }
    let mut candidates: Vec<(u64, String)> = shards
        .iter()
        .filter(|s| !meta::is_deleting(s))
        .filter(|s| {
            selector
                .as_ref()
                .is_none_or(|sel| sel.matches(meta::labels(s)))
        })
        .map(|s| {
            let load = meta::annotation(s, LOGICAL_CLUSTERS_ANNOTATION)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0u64);
            let name = meta::name(s).to_string();
            (load + pending.get(&name).copied().unwrap_or(0), name)
        })
        .collect();
    if candidates.is_empty() {
        return Err("No available shards to schedule the workspace".into());
    }
    use rand::seq::SliceRandom;
    candidates.shuffle(&mut rand::rng());
    candidates.sort_by_key(|(load, _)| *load);
    let chosen = candidates.remove(0).1;
    api.inner
        .recent_assignments
        .lock()
        .push_back((now, chosen.clone()));
    Ok(chosen)
}

/// How long a shard's own assignments count on top of the reported loads (twice the
/// 5 s report interval of `controllers.rs`).
const RECENT_ASSIGNMENTS: std::time::Duration = std::time::Duration::from_secs(10);

/// Root's objects of `resource` from the cache server's global view, once it has
/// synced (`None`: no cache server, or not synced yet).
fn from_global(api: &ApiServer, resource: &str) -> Option<Vec<Value>> {
    let g = api.global()?;
    if !g.status().has_synced {
        return None;
    }
    Some(
        g.list_cluster(resource, "root")
            .iter()
            .map(|o| o.object.clone())
            .collect(),
    )
}

/// The `Shard` objects: from the local store when this shard holds root, else from the
/// cache server's global view, else (no cache server) from root's shard.
pub async fn shard_objects(api: &ApiServer) -> Vec<Value> {
    let store = &api.inner.store;
    if crate::bootstrap::logical_cluster_exists(store, "root") {
        return store
            .list_all(SHARDS, Some("root"), None)
            .into_iter()
            .map(|o| o.value.clone())
            .collect();
    }
    if let Some(shards) = from_global(api, SHARDS) {
        return shards;
    }
    let peers = api.inner.peers.read().clone();
    match peers {
        Some(p) => p.shards().await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "listing shards");
            Vec::new()
        }),
        None => Vec::new(),
    }
}

/// The base URL of the shard whose name hashes to `hash`.
async fn shard_url_by_hash(api: &ApiServer, hash: &str) -> Option<String> {
    shard_objects(api)
        .await
        .into_iter()
        .find(|s| canopy_core::resource::shard_hash(meta::name(s)) == hash)
        .and_then(|s| {
            s.pointer("/spec/baseURL")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

/// On a shard without root: copies root's WorkspaceTypes into
/// [`crate::Inner::type_mirror`], from the cache server's global view or (no cache
/// server) from root's shard.
pub async fn refresh_type_mirror(api: &ApiServer) -> Result<(), crate::peers::PeerError> {
    if crate::bootstrap::logical_cluster_exists(&api.inner.store, "root") {
        return Ok(());
    }
    let types = match from_global(api, "tenancy.kcp.io/workspacetypes") {
        Some(t) => Ok(t),
        None => {
            let peers = api.inner.peers.read().clone();
            let Some(p) = peers else {
                return Ok(());
            };
            p.workspace_types().await
        }
    };
    let m: std::collections::HashMap<String, Value> = types?
        .into_iter()
        .map(|t| (format!("root:{}", meta::name(&t)), t))
        .collect();
    *api.inner.type_mirror.write() = std::sync::Arc::new(m);
    Ok(())
}

/// Creates or updates this shard's `Shard` object in `root`, with its URL and load.
pub async fn register_shard(api: &ApiServer) -> Result<(), canopy_core::ApiError> {
    let name = api.inner.config.shard_name.clone();
    let url = api.inner.config.shard_url.clone();
    let external = api.inner.config.external_url.clone();
    let load = api
        .inner
        .store
        .list_all(crate::bootstrap::LOGICAL_CLUSTER_RESOURCE, None, None)
        .len()
        .to_string();
    if !crate::bootstrap::logical_cluster_exists(&api.inner.store, "root") {
        let peers = api.inner.peers.read().clone();
        if let Some(p) = peers {
            let obj = json!({"apiVersion": "core.kcp.io/v1alpha1", "kind": "Shard",
                "metadata": {"name": name, "annotations": {LOGICAL_CLUSTERS_ANNOTATION: load}},
                "spec": {"baseURL": url, "externalURL": external}});
            p.register(&obj)
                .await
                .map_err(|e| canopy_core::ApiError::internal(e.to_string()))?;
        }
        return Ok(());
    }
    let key = ObjectKey::new(SHARDS, "root", "", &name);
    if api.inner.store.get(&key).is_none() {
        let res = api
            .inner
            .registry
            .get(canopy_core::resource::KCP_CORE_GROUP, "v1alpha1", "shards")
            .cloned()
            .ok_or_else(|| canopy_core::ApiError::internal("shards resource missing"))?;
        rest::create_system(
            api,
            "root",
            &res,
            json!({"apiVersion": "core.kcp.io/v1alpha1", "kind": "Shard",
                "metadata": {"name": name, "annotations": {LOGICAL_CLUSTERS_ANNOTATION: load}},
                "spec": {"baseURL": url, "externalURL": external}}),
        )
        .await?;
        return Ok(());
    }
    rest::update_system(api, &key, |cur| {
        let mut new = cur.clone();
        set(&mut new, &["spec", "baseURL"], json!(url))?;
        set(&mut new, &["spec", "externalURL"], json!(external))?;
        let ann = meta::metadata_mut(&mut new)
            .entry("annotations")
            .or_insert_with(|| json!({}));
        meta::ensure_object(ann).insert(LOGICAL_CLUSTERS_ANNOTATION.into(), json!(load));
        (new != *cur).then_some(new)
    })
    .await
    .map_err(|e| canopy_core::ApiError::internal(e.to_string()))?;
    Ok(())
}

/// A new logical cluster name: 16 characters of base36, like kcp's.
fn new_cluster_name() -> String {
    use rand::seq::IndexedRandom;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..16)
        .filter_map(|_| ALPHABET.choose(&mut rng).map(|b| char::from(*b)))
        .collect()
}

/// Reconciles one Workspace (the workspace controller of `controllers.rs`; a requeue is
/// an [`Action`], never a task of its own).
pub async fn reconcile(api: &ApiServer, ws: &StoredObject) -> Result<Action, ReconcileError> {
    let store = &api.inner.store;
    // work from the current state, not from a (possibly stale) event's
    let Some(current) = store.get(&ws.key) else {
        return Ok(Action::await_change());
    };
    let ws: &StoredObject = &current;
    let parent = ws.key.cluster.to_string();
    let name = ws.key.name.clone();
    if meta::is_deleting(&ws.value) {
        return delete_child(api, ws).await;
    }
    match ws.value.pointer("/status/phase").and_then(Value::as_str) {
        Some("Ready") => return Ok(Action::await_change()),
        Some("Initializing") => return sync_phase(api, ws).await,
        _ => {}
    }
    // Scheduling: a shard (recorded as kcp does, by hash) and a logical cluster name,
    // in one write.
    let scheduled = meta::annotation(&ws.value, SHARD_ANNOTATION).zip(
        ws.value
            .pointer("/spec/cluster")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty()),
    );
    let (shard, child) = match scheduled {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => {
            let shard = match schedule(api, &ws.value).await {
                Ok(shard) => shard,
                Err(message) => {
                    rest::update_system(api, &ws.key, |cur| {
                        let mut new = cur.clone();
                        set(&mut new, &["status", "conditions"], json!([{"type": "WorkspaceScheduled", "status": "False",
                            "reason": "Unschedulable", "message": message, "lastTransitionTime": meta::now()}]))?;
                        (cur.pointer("/status/conditions/0/message") != Some(&json!(message)))
                            .then_some(new)
                    })
                    .await?;
                    // a Shard that appears or changes brings it back
                    return Ok(Action::await_change());
                }
            };
            let hash = canopy_core::resource::shard_hash(&shard);
            let child = new_cluster_name();
            let res = rest::update_system(api, &ws.key, |cur| {
                let mut new = cur.clone();
                let has_cluster = cur
                    .pointer("/spec/cluster")
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.is_empty());
                let ann = meta::metadata_mut(&mut new)
                    .entry("annotations")
                    .or_insert_with(|| json!({}));
                if ann.get(SHARD_ANNOTATION).is_some() && has_cluster {
                    return None;
                }
                if ann.get(SHARD_ANNOTATION).is_none() {
                    meta::ensure_object(ann).insert(SHARD_ANNOTATION.into(), json!(hash));
                }
                if !has_cluster {
                    meta::ensure_object(ann).insert(CLUSTER_ANNOTATION.into(), json!(child));
                    set(&mut new, &["spec", "cluster"], json!(child))?;
                }
                Some(new)
            })
            .await;
            let Some(o) = res? else {
                return Ok(Action::await_change());
            };
            match meta::annotation(&o.value, SHARD_ANNOTATION)
                .zip(o.value.pointer("/spec/cluster").and_then(Value::as_str))
            {
                Some((h, c)) => (h.to_string(), c.to_string()),
                None => return Ok(Action::await_change()),
            }
        }
    };
    let remote = shard != canopy_core::resource::shard_hash(&api.inner.config.shard_name);
    let path = format!("{}:{}", path_of(store, &parent), name);
    let ty = format!(
        "{}:{}",
        ws.value
            .pointer("/spec/type/path")
            .and_then(Value::as_str)
            .unwrap_or("root"),
        ws.value
            .pointer("/spec/type/name")
            .and_then(Value::as_str)
            .unwrap_or("universal")
    );
    // Initializing: the type and every type it extends may name an initializer.
    let mirror = api.inner.type_mirror.read().clone();
    let types = crate::registry::tenancy::Types {
        store,
        mirror: &mirror,
    };
    let inits = crate::registry::tenancy::get_type(
        types,
        ws.value
            .pointer("/spec/type/path")
            .and_then(Value::as_str)
            .unwrap_or("root"),
        ws.value
            .pointer("/spec/type/name")
            .and_then(Value::as_str)
            .unwrap_or("universal"),
    )
    .and_then(|t| crate::registry::tenancy::aliases(types, &t).ok())
    .map(|a| crate::registry::tenancy::initializers(&a))
    .unwrap_or_default();
    let owner = json!({
        "apiVersion": "tenancy.kcp.io/v1alpha1", "resource": "workspaces",
        "name": name, "cluster": parent, "uid": ws.value.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
    });
    // The creator becomes admin inside the new workspace.
    let owner_user: Option<String> = meta::annotation(&ws.value, OWNER_ANNOTATION)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|o| {
            o.get("username")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let organization = crate::quota::organization_for_child(api, &parent, &ty, &child);
    if remote {
        // the chosen shard creates the logical cluster; this shard asks it to
        let peers = api.inner.peers.read().clone();
        let (Some(peers), Some(base)) = (peers, shard_url_by_hash(api, &shard).await) else {
            tracing::warn!(workspace = %path, "scheduled onto an unknown shard; waiting");
            return Ok(Action::requeue(std::time::Duration::from_secs(1)));
        };
        let req = crate::internal::PlaceRequest {
            name: child.clone(),
            path: path.clone(),
            type_: ty.clone(),
            initializers: inits.clone(),
            owner: Some(owner),
            admin: owner_user.clone(),
            organization: organization.clone(),
        };
        peers.place(&base, &req).await?;
    } else {
        crate::bootstrap::ensure_logical_cluster_at(
            api,
            &child,
            &path,
            &ty,
            &inits,
            Some(owner),
            owner_user.as_deref(),
            organization.as_deref(),
        )
        .await?;
    }
    let url = format!("{}/clusters/{path}", api.inner.config.external_url);
    rest::update_system(api, &ws.key, |cur| {
        // phases only move forward: a stale event must not take a workspace back
        if cur.pointer("/status/phase").and_then(Value::as_str) != Some("Scheduling") {
            return None;
        }
        let mut new = cur.clone();
        set(&mut new, &["spec", "URL"], json!(url))?;
        if inits.is_empty() {
            set(&mut new, &["status", "phase"], json!("Ready"))?;
        } else {
            set(&mut new, &["status", "phase"], json!("Initializing"))?;
            set(&mut new, &["status", "initializers"], json!(inits))?;
        }
        set(&mut new, &["status", "conditions"], json!([{"type": "WorkspaceScheduled", "status": "True", "lastTransitionTime": meta::now()}]))?;
        (new != *cur).then_some(new)
    })
    .await?;
    match store.get(&ws.key) {
        Some(cur) => sync_phase(api, &cur).await,
        None => Ok(Action::await_change()),
    }
}

/// Carries an Initializing workspace's logical cluster state over to the Workspace: its
/// remaining initializers, and Ready once none is left.
async fn sync_phase(api: &ApiServer, ws: &StoredObject) -> Result<Action, ReconcileError> {
    let store = &api.inner.store;
    let Some(child) = ws
        .value
        .pointer("/spec/cluster")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    else {
        return Ok(Action::await_change());
    };
    let Some(lc) = logical_cluster(store, child) else {
        // held by another shard: follow its LogicalCluster there
        let hash = meta::annotation(&ws.value, SHARD_ANNOTATION)
            .unwrap_or("")
            .to_string();
        let peers = api.inner.peers.read().clone();
        if let (Some(p), Some(base)) = (peers, shard_url_by_hash(api, &hash).await) {
            if let Some(lc) = p.logical_cluster(&base, child).await? {
                let inits = lc
                    .pointer("/status/initializers")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                let done = inits.as_array().is_none_or(Vec::is_empty);
                rest::update_system(api, &ws.key, |cur| {
                    if cur.pointer("/status/phase").and_then(Value::as_str) != Some("Initializing")
                    {
                        return None;
                    }
                    let mut new = cur.clone();
                    set(&mut new, &["status", "initializers"], inits.clone())?;
                    if done {
                        set(&mut new, &["status", "phase"], json!("Ready"))?;
                        if let Some(st) = new.pointer_mut("/status").and_then(Value::as_object_mut)
                        {
                            st.remove("initializers");
                        }
                    }
                    (new != *cur).then_some(new)
                })
                .await?;
                if done {
                    return Ok(Action::await_change());
                }
            }
        }
        // following the LogicalCluster on another shard
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    };
    let inits = lc
        .value
        .pointer("/status/initializers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let done = inits.as_array().is_none_or(Vec::is_empty);
    if done && lc.value.pointer("/status/phase").and_then(Value::as_str) != Some("Ready") {
        rest::update_system(api, &lc.key, |cur| {
            let mut new = cur.clone();
            set(&mut new, &["status", "phase"], json!("Ready"))?;
            (new != *cur).then_some(new)
        })
        .await?;
    }
    rest::update_system(api, &ws.key, |cur| {
        if cur.pointer("/status/phase").and_then(Value::as_str) != Some("Initializing") {
            return None;
        }
        let mut new = cur.clone();
        set(&mut new, &["status", "initializers"], inits.clone())?;
        if done {
            set(&mut new, &["status", "phase"], json!("Ready"))?;
            if let Some(st) = new.pointer_mut("/status").and_then(Value::as_object_mut) {
                st.remove("initializers");
            }
        }
        (new != *cur).then_some(new)
    })
    .await?;
    // the LogicalCluster's changes bring it back
    Ok(Action::await_change())
}

/// Deletes everything inside a workspace's logical cluster, then lets the Workspace go.
/// Child workspaces inside it are Workspaces too: deleting them recurses.
/// Whether logical cluster `child` (on this shard) belongs to Workspace `ws`: its
/// `LogicalCluster.spec.owner` names the workspace's uid (or it has no LogicalCluster at
/// all, e.g. a placement that never completed, but still has content of its own).
fn owned_by(api: &ApiServer, child: &str, ws: &StoredObject) -> bool {
    match logical_cluster(&api.inner.store, child) {
        Some(lc) => {
            let owner_uid = lc.value.pointer("/spec/owner/uid").and_then(Value::as_str);
            let owner_cluster = lc
                .value
                .pointer("/spec/owner/cluster")
                .and_then(Value::as_str);
            owner_uid.is_some()
                && owner_uid == ws.value.pointer("/metadata/uid").and_then(Value::as_str)
                && owner_cluster == Some(&*ws.key.cluster)
        }
        None => child != "root",
    }
}

async fn delete_child(api: &ApiServer, ws: &StoredObject) -> Result<Action, ReconcileError> {
    rest::update_system(api, &ws.key, |cur| {
        if cur.pointer("/status/phase").and_then(Value::as_str) == Some("Deleting") {
            return None;
        }
        let mut new = cur.clone();
        set(&mut new, &["status", "phase"], json!("Deleting"))?;
        Some(new)
    })
    .await?;
    if let Some(child) = ws
        .value
        .pointer("/spec/cluster")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        // child workspaces first (their deletion events bring us back), then the content;
        // on the shard that holds the logical cluster
        let hash = meta::annotation(&ws.value, SHARD_ANNOTATION)
            .unwrap_or("")
            .to_string();
        let remote = !hash.is_empty()
            && hash != canopy_core::resource::shard_hash(&api.inner.config.shard_name)
            && !crate::bootstrap::logical_cluster_exists(&api.inner.store, child);
        let result = if remote {
            let peers = api.inner.peers.read().clone();
            match (peers, shard_url_by_hash(api, &hash).await) {
                (Some(p), Some(base)) => p
                    .delete_logical_cluster(&base, child)
                    .await
                    .map_err(|e| canopy_core::ApiError::internal(e.to_string())),
                _ => Err(canopy_core::ApiError::internal(
                    "the workspace's shard is unknown",
                )),
            }
        } else if owned_by(api, child, ws) {
            crate::internal::delete_cluster(api, child).await
        } else {
            // a logical cluster that is not this workspace's (never placed, or someone
            // else's): nothing of it is deleted
            tracing::warn!(workspace = %ws.key.name, cluster = %ws.key.cluster, child, "not deleting a logical cluster this workspace does not own");
            Ok(true)
        };
        match result {
            Ok(true) => {}
            // waiting on the other shard: look again soon
            Ok(false) if remote => {
                return Ok(Action::requeue(std::time::Duration::from_millis(300)))
            }
            // the deletion of the child workspaces brings it back
            Ok(false) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    rest::update_system(api, &ws.key, |cur| {
        let fins = meta::finalizers(cur);
        if !fins.iter().any(|f| f == LOGICAL_CLUSTER_FINALIZER) {
            return None;
        }
        let mut new = cur.clone();
        meta::set_meta(
            &mut new,
            "finalizers",
            json!(fins
                .into_iter()
                .filter(|f| f != LOGICAL_CLUSTER_FINALIZER)
                .collect::<Vec<_>>()),
        );
        Some(new)
    })
    .await?;
    Ok(Action::await_change())
}

/// The Workspace object (in the parent) of logical cluster `cluster`, whatever its phase.
pub fn parent_workspace(store: &Store, cluster: &str) -> Option<std::sync::Arc<StoredObject>> {
    // the owner recorded on the LogicalCluster, when the Workspace is on this shard
    if let Some(owner) =
        logical_cluster(store, cluster).and_then(|lc| lc.value.pointer("/spec/owner").cloned())
    {
        let (c, n) = (
            owner.get("cluster").and_then(Value::as_str).unwrap_or(""),
            owner.get("name").and_then(Value::as_str).unwrap_or(""),
        );
        if let Some(ws) = store.get(&ObjectKey::new(WORKSPACES, c, "", n)) {
            return Some(ws);
        }
    }
    let path = path_of(store, cluster);
    let (parent_path, name) = path.rsplit_once(':')?;
    // walk from root ignoring phases (the parent may itself be deleting)
    let mut parts = parent_path.split(':');
    let mut cur = parts.next()?.to_string();
    for seg in parts {
        let ws = store.get(&ObjectKey::new(WORKSPACES, &cur, "", seg))?;
        cur = ws.value.pointer("/spec/cluster")?.as_str()?.to_string();
    }
    store.get(&ObjectKey::new(WORKSPACES, &cur, "", name))
}

/// The caller's home workspace, `root:users:<user>`, created on first use.
pub async fn home(
    api: &ApiServer,
    user: &canopy_auth::UserInfo,
) -> Result<std::sync::Arc<StoredObject>, canopy_core::ApiError> {
    use canopy_core::ApiError;
    let store = &api.inner.store;
    let users = resolve(store, "root:users")
        .ok_or_else(|| ApiError::service_unavailable("the users workspace is not ready yet", 1))?;
    // Homes are named by a hash of the exact user name (distinct users, distinct homes);
    // a home made before that under the old readable-only name is kept for the user it
    // names as owner, and never handed to anyone else.
    let owned_by_user = |ws: &StoredObject| {
        meta::annotation(&ws.value, OWNER_ANNOTATION)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|o| {
                o.get("username")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .is_some_and(|u| u == user.name)
    };
    let legacy = legacy_home_name(&user.name);
    if !legacy.is_empty() {
        let key = ObjectKey::new(WORKSPACES, &users, "", &legacy);
        if let Some(ws) = store.get(&key).filter(|ws| owned_by_user(ws)) {
            return wait_ready(api, key, ws).await;
        }
    }
    let name = canopy_core::resource::home_workspace_name(&user.name);
    let key = ObjectKey::new(WORKSPACES, &users, "", &name);
    if store.get(&key).is_none() {
        let ws_res = api
            .inner
            .registry
            .get("tenancy.kcp.io", "v1alpha1", "workspaces")
            .ok_or_else(|| ApiError::internal("workspaces resource missing"))?;
        let owner = json!({"username": user.name, "uid": user.uid, "groups": user.groups});
        let ws = json!({
            "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": name, "annotations": {OWNER_ANNOTATION: owner.to_string()}},
            "spec": {"type": {"name": "home", "path": "root"}},
        });
        rest::create_system(api, &users, ws_res, ws).await?;
    }
    match store.get(&key) {
        Some(ws) if owned_by_user(&ws) => wait_ready(api, key, ws).await,
        Some(_) => Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "the home workspace name for user {:?} is held by another user",
                user.name
            ),
        )),
        None => Err(ApiError::service_unavailable(
            "the home workspace is not ready yet",
            1,
        )),
    }
}

/// The readable-only home name older versions used (`Bob.Smith` → `bob-smith`).
fn legacy_home_name(user: &str) -> String {
    user.to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(63)
        .collect()
}

/// Waits (up to 10 s) until the home workspace is Ready.
async fn wait_ready(
    api: &ApiServer,
    key: ObjectKey,
    mut ws: std::sync::Arc<StoredObject>,
) -> Result<std::sync::Arc<StoredObject>, canopy_core::ApiError> {
    for _ in 0..200 {
        if ws.value.pointer("/status/phase").and_then(Value::as_str) == Some("Ready") {
            return Ok(ws);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        match api.inner.store.get(&key) {
            Some(w) => ws = w,
            None => break,
        }
    }
    Err(canopy_core::ApiError::service_unavailable(
        "the home workspace is not ready yet",
        1,
    ))
}
