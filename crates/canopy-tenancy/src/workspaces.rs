//! Workspaces: paths to logical clusters, and the controller that turns a `Workspace`
//! in a parent into a ready child logical cluster (and removes it again).
//!
//! A logical cluster's name is an opaque identifier; its path (`root:acme:team-a`) is
//! for people. The `LogicalCluster/cluster` object inside each logical cluster carries
//! its path and workspace type as annotations; a path resolves by following
//! `Workspace.spec.cluster` from `root` one segment at a time.

use canopy_core::meta;
use canopy_storage::{ObjectKey, Store, StoredObject};
use canopy_tenancy_api::tenancy::set_annotation;
use canopy_tenancy_api::{
    self as tapi, Condition, ConditionReason, ConditionStatus, ConditionType, LogicalCluster,
    LogicalClusterOwner, Phase, Shard, ShardSpec, Workspace, WorkspaceOwner, WorkspacePath,
    WorkspaceState, WorkspaceTypeReference,
};
use serde_json::Value;

use crate::logicalcluster::LOGICAL_CLUSTER_RESOURCE;
use crate::registry::{
    CLUSTER_ANNOTATION, LOGICAL_CLUSTER_FINALIZER, OWNER_ANNOTATION, PATH_ANNOTATION, WORKSPACES,
};
use canopy_apiserver::{rest, ApiServer};
use canopy_runtime::Action;

pub(crate) const TYPE_ANNOTATION: &str = "internal.tenancy.kcp.io/type";

/// Why a workspace's reconcile failed; the runtime logs it with the key and retries with
/// back-off.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] canopy_core::ApiError),
    #[error(transparent)]
    Storage(#[from] canopy_storage::StorageError),
    #[error(transparent)]
    Peer(#[from] crate::peers::PeerError),
}

/// A system write of a typed object: `f` edits it and says whether to write; only
/// what `f` changed is written back ([`tapi::edit`]), and nothing when nothing changed.
async fn update_typed<T>(
    api: &ApiServer,
    key: &ObjectKey,
    mut f: impl FnMut(&mut T) -> bool,
) -> Result<Option<std::sync::Arc<StoredObject>>, canopy_storage::StorageError>
where
    T: serde::de::DeserializeOwned + serde::Serialize + Clone,
{
    rest::update_system(api, key, |cur| match tapi::edit(cur, &mut f) {
        Ok((new, true)) if new != *cur => Some(new),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, %key, "not updating an object of an unexpected shape");
            None
        }
    })
    .await
}

/// The typed `LogicalCluster/cluster` of `cluster` held here.
fn typed_logical_cluster(store: &Store, cluster: &str) -> Option<LogicalCluster> {
    tapi::from_value(&logical_cluster(store, cluster)?.value).ok()
}

fn logical_cluster(store: &Store, cluster: &str) -> Option<std::sync::Arc<StoredObject>> {
    store.get(&ObjectKey::new(
        LOGICAL_CLUSTER_RESOURCE,
        cluster,
        "",
        "cluster",
    ))
}

/// The path of a logical cluster (`root` for root).
pub(crate) fn path_of(store: &Store, cluster: &str) -> String {
    logical_cluster(store, cluster)
        .and_then(|o| meta::annotation(&o.value, PATH_ANNOTATION).map(str::to_string))
        .unwrap_or_else(|| cluster.to_string())
}

/// (path, name) of a logical cluster's workspace type.
pub fn type_of(store: &Store, cluster: &str) -> Option<(String, String)> {
    let lc = logical_cluster(store, cluster)?;
    let t = meta::annotation(&lc.value, TYPE_ANNOTATION)?;
    t.contains(':').then(|| {
        let r = WorkspaceTypeReference::parse_qualified(t);
        (r.path, r.name)
    })
}

/// Resolves a path (`root:a:b`) or a logical cluster name to the logical cluster name.
pub fn resolve(store: &Store, path_or_name: &str) -> Option<String> {
    if !path_or_name.contains(':') {
        return logical_cluster(store, path_or_name).map(|_| path_or_name.to_string());
    }
    let path = WorkspacePath::new(path_or_name).ok()?;
    let mut parts = path.segments();
    let mut cur = parts.next()?.to_string();
    logical_cluster(store, &cur)?;
    for seg in parts {
        let ws = store.get(&ObjectKey::new(WORKSPACES, &cur, "", seg))?;
        let ws: WorkspaceState = tapi::from_value(&ws.value).ok()?;
        if !ws.is_phase(Phase::Ready) {
            return None;
        }
        cur = ws.cluster()?.to_string();
    }
    Some(cur)
}

/// Resolves a path or name to a logical cluster held by this shard: by walking from
/// `root` when the path's ancestors are here, else through the index of paths of the
/// logical clusters this shard holds (a workspace whose parent lives on another shard).
pub(crate) fn resolve_in(api: &ApiServer, path_or_name: &str) -> Option<String> {
    let store = api.store();
    if let Some(c) = resolve(store, path_or_name) {
        return Some(c);
    }
    if !path_or_name.contains(':') {
        return None;
    }
    let ready = |c: &str| {
        typed_logical_cluster(store, c)
            .is_some_and(|lc| lc.is_phase(Phase::Ready) && path_of(store, c) == path_or_name)
    };
    let c = crate::tenancy(api)
        .paths
        .read()
        .get(path_or_name)
        .cloned()?;
    ready(&c).then_some(c)
}

/// The path a `LogicalCluster` object vouches for: only the one object named `cluster`
/// counts, and only when it names the logical cluster it is stored in (its annotations
/// are written by the system alone, see [`canopy_apiserver::admission`]; anything else is ignored).
fn trusted_path(o: &StoredObject) -> Option<&str> {
    if o.key.name != "cluster" {
        return None;
    }
    let named = meta::annotation(&o.value, crate::logicalcluster::CLUSTER_NAME_ANNOTATION);
    if named.is_some_and(|n| n != &*o.key.cluster) {
        return None;
    }
    meta::annotation(&o.value, PATH_ANNOTATION)
}

/// Keeps [`crate::Tenancy::paths`] — the workspace path of every logical cluster held
/// here — current from the store's watch (filled from the initial state at start and
/// after a lagging watcher is cut off), so resolving never scans logical clusters.
pub(crate) async fn maintain_paths(api: ApiServer, errors: canopy_runtime::TaskErrors) {
    use canopy_storage::{EventType, WatchStart};
    loop {
        let mut w = match api.store().watch(
            crate::logicalcluster::LOGICAL_CLUSTER_RESOURCE,
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
        crate::tenancy(&api).paths.write().extend(initial);
        loop {
            match w.next().await {
                Ok(Some(ev)) => {
                    let Some(p) = trusted_path(&ev.object) else {
                        continue;
                    };
                    let cluster = ev.object.key.cluster.to_string();
                    let mut paths = crate::tenancy(&api).paths.write();
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
pub(crate) const SHARD_ANNOTATION: &str = "internal.tenancy.kcp.io/shard";
pub(crate) const SHARDS: &str = "core.kcp.io/shards";
/// How many logical clusters a shard holds, reported on its `Shard` object for the
/// scheduler's spreading.
pub(crate) const LOGICAL_CLUSTERS_ANNOTATION: &str = "canopy.dev/logical-clusters";

/// Chooses a shard for a new workspace: among the `Shard`s matching the workspace's
/// `spec.location.selector` (all when it has none), the one holding the fewest logical
/// clusters (ties broken at random). With no `Shard` registered at all, this shard.
pub async fn schedule(api: &ApiServer, ws: &Workspace) -> Result<String, String> {
    let shards = shard_objects(api).await;
    if shards.is_empty() {
        return Ok(crate::tenancy(api).config.shard_name.clone());
    }
    let selector = match ws.spec.location.as_ref().and_then(|l| l.selector.as_ref()) {
        Some(sel) => Some(
            canopy_selectors::label::Selector::from_label_selector_json(&tapi::to_value(sel))
                .map_err(|e| format!("invalid spec.location.selector: {e}"))?,
        ),
        None => None,
    };
    // The loads on the Shard objects are reported every few seconds: assignments this
    // shard made since then count at once (kept for twice the report interval).
    let now = std::time::Instant::now();
    let mut pending: std::collections::HashMap<String, u64> = Default::default();
    {
        let mut recent = crate::tenancy(api).recent_assignments.lock();
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
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| {
            selector
                .as_ref()
                .is_none_or(|sel| sel.matches(&s.metadata.labels))
        })
        .map(|s| {
            let load = s
                .annotation(LOGICAL_CLUSTERS_ANNOTATION)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0u64);
            let name = s.name().to_string();
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
    crate::tenancy(api)
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
/// cache server's global view, else (no cache server) from root's shard. Objects that
/// are not Shards (of the wrong shape) are left out.
pub(crate) async fn shard_objects(api: &ApiServer) -> Vec<Shard> {
    let store = api.store();
    let typed = |v: &Value| tapi::from_value::<Shard>(v).ok();
    if crate::logicalcluster::logical_cluster_exists(store, "root") {
        return store
            .list_all(SHARDS, Some("root"), None)
            .into_iter()
            .filter_map(|o| typed(&o.value))
            .collect();
    }
    if let Some(shards) = from_global(api, SHARDS) {
        return shards.iter().filter_map(typed).collect();
    }
    let peers = crate::tenancy(api).peers.read().clone();
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
        .find(|s| canopy_core::resource::shard_hash(s.name()) == hash)
        .map(|s| s.spec.base_url)
}

/// On a shard without root: copies root's WorkspaceTypes into
/// [`crate::Tenancy::type_mirror`], from the cache server's global view or (no cache
/// server) from root's shard.
pub(crate) async fn refresh_type_mirror(api: &ApiServer) -> Result<(), crate::peers::PeerError> {
    if crate::logicalcluster::logical_cluster_exists(api.store(), "root") {
        return Ok(());
    }
    let types = match from_global(api, "tenancy.kcp.io/workspacetypes") {
        Some(t) => Ok(t),
        None => {
            let peers = crate::tenancy(api).peers.read().clone();
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
    *crate::tenancy(api).type_mirror.write() = std::sync::Arc::new(m);
    Ok(())
}

/// Creates or updates this shard's `Shard` object in `root`, with its URL and load.
pub async fn register_shard(api: &ApiServer) -> Result<(), canopy_core::ApiError> {
    let name = crate::tenancy(api).config.shard_name.clone();
    let url = crate::tenancy(api).config.shard_url.clone();
    let external = api.config().external_url.clone();
    let load = api
        .store()
        .list_all(crate::logicalcluster::LOGICAL_CLUSTER_RESOURCE, None, None)
        .len()
        .to_string();
    let mut shard = Shard::new(
        &name,
        ShardSpec {
            base_url: url.clone(),
            external_url: external.clone(),
            ..Default::default()
        },
    );
    set_annotation(
        &mut shard.metadata,
        LOGICAL_CLUSTERS_ANNOTATION,
        load.clone(),
    );
    if !crate::logicalcluster::logical_cluster_exists(api.store(), "root") {
        let peers = crate::tenancy(api).peers.read().clone();
        if let Some(p) = peers {
            p.register(&shard)
                .await
                .map_err(|e| canopy_core::ApiError::internal(e.to_string()))?;
        }
        return Ok(());
    }
    let key = ObjectKey::new(SHARDS, "root", "", &name);
    if api.store().get(&key).is_none() {
        let res = api
            .registry()
            .get(canopy_core::resource::KCP_CORE_GROUP, "v1alpha1", "shards")
            .cloned()
            .ok_or_else(|| canopy_core::ApiError::internal("shards resource missing"))?;
        rest::create_system(api, "root", &res, tapi::to_value(&shard)).await?;
        return Ok(());
    }
    update_typed(api, &key, |s: &mut Shard| {
        s.spec.base_url = url.clone();
        s.spec.external_url = external.clone();
        set_annotation(&mut s.metadata, LOGICAL_CLUSTERS_ANNOTATION, load.clone());
        true
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
    let store = api.store();
    // work from the current state, not from a (possibly stale) event's
    let Some(current) = store.get(&ws.key) else {
        return Ok(Action::await_change());
    };
    let ws: &StoredObject = &current;
    let parent = ws.key.cluster.to_string();
    let name = ws.key.name.clone();
    let typed: Workspace = match tapi::from_value(&ws.value) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, workspace = %ws.key, "not reconciling a workspace of an unexpected shape");
            return Ok(Action::await_change());
        }
    };
    if typed.metadata.deletion_timestamp.is_some() {
        return delete_child(api, ws).await;
    }
    match typed.phase() {
        Some(Phase::Ready) => return Ok(Action::await_change()),
        Some(Phase::Initializing) => return sync_phase(api, ws).await,
        _ => {}
    }
    // Scheduling: a shard (recorded as kcp does, by hash) and a logical cluster name,
    // in one write.
    let scheduled = typed.annotation(SHARD_ANNOTATION).zip(typed.cluster());
    let (shard, child) = match scheduled {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => {
            let shard = match schedule(api, &typed).await {
                Ok(shard) => shard,
                Err(message) => {
                    update_typed(api, &ws.key, |w: &mut Workspace| {
                        let first = w.status.conditions.first();
                        let changed = first.and_then(|c| c.message.as_deref()) != Some(&*message);
                        w.status.conditions = vec![Condition::new(
                            ConditionType::WorkspaceScheduled,
                            ConditionStatus::False,
                            meta::now(),
                        )
                        .with_reason(ConditionReason::Unschedulable, message.clone())];
                        changed
                    })
                    .await?;
                    // a Shard that appears or changes brings it back
                    return Ok(Action::await_change());
                }
            };
            let hash = canopy_core::resource::shard_hash(&shard);
            let child = new_cluster_name();
            let res = update_typed(api, &ws.key, |w: &mut Workspace| {
                let has_cluster = w.cluster().is_some();
                let has_shard = w.annotation(SHARD_ANNOTATION).is_some();
                if has_shard && has_cluster {
                    return false;
                }
                if !has_shard {
                    set_annotation(&mut w.metadata, SHARD_ANNOTATION, hash.clone());
                }
                if !has_cluster {
                    set_annotation(&mut w.metadata, CLUSTER_ANNOTATION, child.clone());
                    w.spec.cluster = Some(child.clone());
                }
                true
            })
            .await;
            let Some(o) = res? else {
                return Ok(Action::await_change());
            };
            let Ok(o) = tapi::from_value::<Workspace>(&o.value) else {
                return Ok(Action::await_change());
            };
            match o
                .annotation(SHARD_ANNOTATION)
                .zip(o.spec.cluster.as_deref())
            {
                Some((h, c)) => (h.to_string(), c.to_string()),
                None => return Ok(Action::await_change()),
            }
        }
    };
    let remote = shard != canopy_core::resource::shard_hash(&crate::tenancy(api).config.shard_name);
    let path = match WorkspacePath::new(path_of(store, &parent)).and_then(|p| p.join(&name)) {
        Ok(p) => p.to_string(),
        Err(e) => {
            tracing::warn!(error = %e, workspace = %ws.key, "a workspace at an invalid path");
            return Ok(Action::await_change());
        }
    };
    let type_ref = typed.type_or_default();
    let ty = type_ref.qualified();
    // Initializing: the type and every type it extends may name an initializer.
    let mirror = crate::tenancy(api).type_mirror.read().clone();
    let types = crate::registry::Types {
        store,
        mirror: &mirror,
    };
    let inits = crate::registry::get_type(types, &type_ref.path, &type_ref.name)
        .and_then(|t| crate::registry::aliases(types, &t).ok())
        .map(|a| crate::registry::initializers(&a))
        .unwrap_or_default();
    let owner = LogicalClusterOwner {
        api_version: tapi::tenancy::API_VERSION.into(),
        resource: "workspaces".into(),
        name: name.clone(),
        cluster: parent.clone(),
        uid: typed.metadata.uid.clone().unwrap_or_default(),
        ..Default::default()
    };
    // The creator becomes admin inside the new workspace.
    let owner_user: Option<String> = typed
        .annotation(OWNER_ANNOTATION)
        .and_then(WorkspaceOwner::from_annotation)
        .map(|o| o.username)
        .filter(|u| !u.is_empty());
    let organization = crate::quota::organization_for_child(api, &parent, &ty, &child);
    if remote {
        // the chosen shard creates the logical cluster; this shard asks it to
        let peers = crate::tenancy(api).peers.read().clone();
        let (Some(peers), Some(base)) = (peers, shard_url_by_hash(api, &shard).await) else {
            tracing::warn!(workspace = %path, "scheduled onto an unknown shard; waiting");
            return Ok(Action::requeue(std::time::Duration::from_secs(1)));
        };
        let placement = tapi::LogicalClusterName::new(child.clone())
            .and_then(|n| Ok((n, WorkspacePath::new(path.clone())?)));
        let (lc_name, wpath) = match placement {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, workspace = %path, "not placing a logical cluster");
                return Ok(Action::await_change());
            }
        };
        let req = crate::internal::PlaceRequest {
            name: lc_name,
            path: wpath,
            type_: ty.clone(),
            initializers: inits.clone(),
            owner: Some(owner),
            admin: owner_user.clone(),
            organization: organization.clone(),
        };
        peers.place(&base, &req).await?;
    } else {
        crate::logicalcluster::ensure_logical_cluster_at(
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
    let url = format!("{}/clusters/{path}", api.config().external_url);
    update_typed(api, &ws.key, |w: &mut Workspace| {
        // phases only move forward: a stale event must not take a workspace back
        if !w.is_phase(Phase::Scheduling) {
            return false;
        }
        w.spec.url = Some(url.clone());
        if inits.is_empty() {
            w.status.phase = Some(Phase::Ready);
        } else {
            w.status.phase = Some(Phase::Initializing);
            w.status.initializers = inits.clone();
        }
        w.status.conditions = vec![Condition::new(
            ConditionType::WorkspaceScheduled,
            ConditionStatus::True,
            meta::now(),
        )];
        true
    })
    .await?;
    match store.get(&ws.key) {
        Some(cur) => sync_phase(api, &cur).await,
        None => Ok(Action::await_change()),
    }
}

/// Carries the remaining initializers of an Initializing workspace's logical cluster
/// over to the Workspace, and makes it Ready once none is left.
async fn carry_initializers(
    api: &ApiServer,
    key: &ObjectKey,
    inits: &[String],
) -> Result<(), ReconcileError> {
    let done = inits.is_empty();
    update_typed(api, key, |w: &mut Workspace| {
        if !w.is_phase(Phase::Initializing) {
            return false;
        }
        w.status.initializers = inits.to_vec();
        if done {
            w.status.phase = Some(Phase::Ready);
        }
        true
    })
    .await?;
    Ok(())
}

/// Carries an Initializing workspace's logical cluster state over to the Workspace: its
/// remaining initializers, and Ready once none is left.
async fn sync_phase(api: &ApiServer, ws: &StoredObject) -> Result<Action, ReconcileError> {
    let store = api.store();
    let Ok(typed) = tapi::from_value::<Workspace>(&ws.value) else {
        return Ok(Action::await_change());
    };
    let Some(child) = typed.cluster() else {
        return Ok(Action::await_change());
    };
    let Some(lc) = logical_cluster(store, child) else {
        // held by another shard: follow its LogicalCluster there
        let hash = typed.annotation(SHARD_ANNOTATION).unwrap_or("").to_string();
        let peers = crate::tenancy(api).peers.read().clone();
        if let (Some(p), Some(base)) = (peers, shard_url_by_hash(api, &hash).await) {
            if let Some(lc) = p.logical_cluster(&base, child).await? {
                let inits = lc.status.initializers;
                carry_initializers(api, &ws.key, &inits).await?;
                if inits.is_empty() {
                    return Ok(Action::await_change());
                }
            }
        }
        // following the LogicalCluster on another shard
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    };
    let Ok(lc_typed) = tapi::from_value::<LogicalCluster>(&lc.value) else {
        return Ok(Action::await_change());
    };
    let inits = lc_typed.status.initializers.clone();
    if inits.is_empty() && !lc_typed.is_phase(Phase::Ready) {
        update_typed(api, &lc.key, |l: &mut LogicalCluster| {
            l.status.phase = Some(Phase::Ready);
            true
        })
        .await?;
    }
    carry_initializers(api, &ws.key, &inits).await?;
    // the LogicalCluster's changes bring it back
    Ok(Action::await_change())
}

/// Deletes everything inside a workspace's logical cluster, then lets the Workspace go.
/// Child workspaces inside it are Workspaces too: deleting them recurses.
/// Whether logical cluster `child` (on this shard) belongs to Workspace `ws`: its
/// `LogicalCluster.spec.owner` names the workspace's uid (or it has no LogicalCluster at
/// all, e.g. a placement that never completed, but still has content of its own).
fn owned_by(api: &ApiServer, child: &str, ws: &StoredObject) -> bool {
    match logical_cluster(api.store(), child) {
        Some(lc) => {
            let Ok(lc) = tapi::from_value::<LogicalCluster>(&lc.value) else {
                return false;
            };
            let ws_uid = tapi::from_value::<Workspace>(&ws.value)
                .ok()
                .and_then(|w| w.metadata.uid);
            lc.spec.owner.is_some_and(|o| {
                !o.uid.is_empty() && Some(&o.uid) == ws_uid.as_ref() && o.cluster == *ws.key.cluster
            })
        }
        None => child != "root",
    }
}

async fn delete_child(api: &ApiServer, ws: &StoredObject) -> Result<Action, ReconcileError> {
    update_typed(api, &ws.key, |w: &mut Workspace| {
        if w.is_phase(Phase::Deleting) {
            return false;
        }
        w.status.phase = Some(Phase::Deleting);
        true
    })
    .await?;
    let typed = tapi::from_value::<Workspace>(&ws.value).ok();
    if let Some(child) = typed.as_ref().and_then(Workspace::cluster) {
        // child workspaces first (their deletion events bring us back), then the content;
        // on the shard that holds the logical cluster
        let hash = typed
            .as_ref()
            .and_then(|w| w.annotation(SHARD_ANNOTATION))
            .unwrap_or("")
            .to_string();
        let remote = !hash.is_empty()
            && hash != canopy_core::resource::shard_hash(&crate::tenancy(api).config.shard_name)
            && !crate::logicalcluster::logical_cluster_exists(api.store(), child);
        let result = if remote {
            let peers = crate::tenancy(api).peers.read().clone();
            match (peers, shard_url_by_hash(api, &hash).await) {
                (Some(p), Some(base)) => p
                    .delete_logical_cluster(
                        &base,
                        child,
                        (
                            &ws.key.cluster,
                            typed
                                .as_ref()
                                .and_then(|w| w.metadata.uid.as_deref())
                                .unwrap_or(""),
                        ),
                    )
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
    update_typed(api, &ws.key, |w: &mut Workspace| {
        let Some(fins) = w.metadata.finalizers.as_mut() else {
            return false;
        };
        if !fins.iter().any(|f| f == LOGICAL_CLUSTER_FINALIZER) {
            return false;
        }
        fins.retain(|f| f != LOGICAL_CLUSTER_FINALIZER);
        true
    })
    .await?;
    Ok(Action::await_change())
}

/// The Workspace object (in the parent) of logical cluster `cluster`, whatever its phase.
pub(crate) fn parent_workspace(
    store: &Store,
    cluster: &str,
) -> Option<std::sync::Arc<StoredObject>> {
    // the owner recorded on the LogicalCluster, when the Workspace is on this shard
    if let Some(owner) = typed_logical_cluster(store, cluster).and_then(|lc| lc.spec.owner) {
        if let Some(ws) = store.get(&ObjectKey::new(WORKSPACES, &owner.cluster, "", &owner.name)) {
            return Some(ws);
        }
    }
    let path = WorkspacePath::new(path_of(store, cluster)).ok()?;
    let (parent_path, name) = path.split()?;
    // walk from root ignoring phases (the parent may itself be deleting)
    let mut parts = parent_path.segments();
    let mut cur = parts.next()?.to_string();
    for seg in parts {
        let ws = store.get(&ObjectKey::new(WORKSPACES, &cur, "", seg))?;
        let ws: WorkspaceState = tapi::from_value(&ws.value).ok()?;
        cur = ws.spec.cluster?;
    }
    store.get(&ObjectKey::new(WORKSPACES, &cur, "", name))
}

/// The caller's home workspace, `root:users:<user>`, created on first use.
pub async fn home(
    api: &ApiServer,
    user: &canopy_auth::UserInfo,
) -> Result<std::sync::Arc<StoredObject>, canopy_core::ApiError> {
    use canopy_core::ApiError;
    let store = api.store();
    let users = resolve(store, "root:users")
        .ok_or_else(|| ApiError::service_unavailable("the users workspace is not ready yet", 1))?;
    // Homes are named by a hash of the exact user name (distinct users, distinct homes);
    // a home made before that under the old readable-only name is kept for the user it
    // names as owner, and never handed to anyone else.
    let owned_by_user = |ws: &StoredObject| {
        tapi::from_value::<Workspace>(&ws.value)
            .ok()
            .and_then(|w| {
                w.annotation(OWNER_ANNOTATION)
                    .and_then(WorkspaceOwner::from_annotation)
            })
            .is_some_and(|o| o.username == user.name)
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
            .registry()
            .get("tenancy.kcp.io", "v1alpha1", "workspaces")
            .ok_or_else(|| ApiError::internal("workspaces resource missing"))?;
        let owner = WorkspaceOwner {
            username: user.name.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            ..Default::default()
        };
        let mut ws = Workspace::new(&name, Some(WorkspaceTypeReference::new("root", "home")));
        set_annotation(&mut ws.metadata, OWNER_ANNOTATION, owner.to_annotation());
        rest::create_system(api, &users, ws_res, tapi::to_value(&ws)).await?;
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
        let ready =
            tapi::from_value::<WorkspaceState>(&ws.value).is_ok_and(|w| w.is_phase(Phase::Ready));
        if ready {
            return Ok(ws);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        match api.store().get(&key) {
            Some(w) => ws = w,
            None => break,
        }
    }
    Err(canopy_core::ApiError::service_unavailable(
        "the home workspace is not ready yet",
        1,
    ))
}
