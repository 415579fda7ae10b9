//! Logical clusters as kcp has them: each has a `LogicalCluster/cluster` object (its
//! path, type, owner, organization and phase); creating one writes it together with
//! the generic defaults of [`canopy_apiserver::bootstrap`] in one atomic commit.

use canopy_apiserver::bootstrap::{self, binding, resource, RBAC};
use canopy_apiserver::registry::Resource;
use canopy_apiserver::{rest, ApiServer};
use canopy_core::{meta, ApiError};
use canopy_storage::{ObjectKey, Store};
use canopy_tenancy_api::tenancy::set_annotation;
use canopy_tenancy_api::{
    self as tapi, LogicalCluster, LogicalClusterOwner, LogicalClusterSpec, LogicalClusterStatus,
    Phase, Workspace, WorkspaceTypeReference,
};
use serde_json::{json, Value};

pub(crate) const LOGICAL_CLUSTER_RESOURCE: &str = "core.kcp.io/logicalclusters";
/// The annotation naming the logical cluster an object lives in, as kcp sets it; on
/// `LogicalCluster/cluster` objects it lets wildcard readers (the front-proxy's index)
/// tell logical clusters apart.
pub(crate) const CLUSTER_NAME_ANNOTATION: &str = "kcp.io/cluster";
pub fn logical_cluster_exists(store: &Store, name: &str) -> bool {
    store
        .get(&ObjectKey::new(
            LOGICAL_CLUSTER_RESOURCE,
            name,
            "",
            "cluster",
        ))
        .is_some()
}

/// Creates what a new logical cluster needs; objects that already exist are kept. A
/// logical cluster made this way (not through a Workspace) has its name as its path;
/// `root` also gets the built-in workspace types and the `users` workspace.
pub async fn ensure_logical_cluster(api: &ApiServer, name: &str) -> Result<(), ApiError> {
    let ty = if name == "root" {
        "root:root"
    } else {
        "root:universal"
    };
    // a logical cluster made directly is its own organization; root has none
    let org = (name != "root").then_some(name);
    ensure_logical_cluster_at(api, name, name, ty, &[], None, None, org).await?;
    if name == "root" {
        // every authenticated user may enter root (RBAC still decides what they see);
        // other workspaces are entered only by those granted access inside them
        let crb = resource(api, RBAC, "v1", "clusterrolebindings")?;
        rest::create_system(
            api,
            name,
            &crb,
            binding(
                "system:kcp:authenticated:access",
                "system:kcp:workspace:access",
                &["system:authenticated"],
            ),
        )
        .await?;
        let cr = resource(api, RBAC, "v1", "clusterroles")?;
        rest::create_system(api, name, &cr, crate::registry::workspace_type_use_role()).await?;
        rest::create_system(
            api,
            name,
            &crb,
            binding(
                "system:kcp:authenticated:universal-workspacetype-use",
                "system:kcp:universal-workspacetype-use",
                &["system:authenticated"],
            ),
        )
        .await?;
        let wt = resource(api, "tenancy.kcp.io", "v1alpha1", "workspacetypes")?;
        for t in crate::registry::builtin_workspace_types() {
            rest::create_system(api, name, &wt, t).await?;
        }
        let ws = resource(api, "tenancy.kcp.io", "v1alpha1", "workspaces")?;
        let users = Workspace::new(
            "users",
            Some(WorkspaceTypeReference::new("root", "homeroot")),
        );
        rest::create_system(api, name, &ws, tapi::to_value(&users)).await?;
    }
    Ok(())
}

/// Creates logical cluster `name` at workspace `path` of workspace type `ty` (`path:name`)
/// in `organization` (recorded for quotas, `crate::quota`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn ensure_logical_cluster_at(
    api: &ApiServer,
    name: &str,
    path: &str,
    ty: &str,
    initializers: &[String],
    owner: Option<LogicalClusterOwner>,
    admin: Option<&str>,
    organization: Option<&str>,
) -> Result<(), ApiError> {
    // Placing is idempotent for the same owner only: never adopt (and bind an admin in)
    // a logical cluster that exists for someone else, root included.
    if let Some(existing) = api.store().get(&canopy_storage::ObjectKey::new(
        LOGICAL_CLUSTER_RESOURCE,
        name,
        "",
        "cluster",
    )) {
        let existing: LogicalCluster = tapi::from_value(&existing.value)
            .map_err(|e| ApiError::internal(format!("logical cluster {name:?}: {e}")))?;
        let uid = |o: Option<&LogicalClusterOwner>| o.map(|o| o.uid.clone());
        if uid(existing.spec.owner.as_ref()) != uid(owner.as_ref()) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("logical cluster {name:?} already exists for another owner"),
            ));
        }
    }
    // Everything in one atomic commit: the logical cluster appears complete or not at all.
    let mut items: Vec<(Resource, Value)> = bootstrap::rbac_objects(api)?;
    let crb = resource(api, RBAC, "v1", "clusterrolebindings")?;
    if let Some(user) = admin {
        // the creator of a workspace is its admin
        items.push((crb.clone(), json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "workspace-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        })));
    }
    items.extend(bootstrap::namespace_objects(api)?);
    let lc = resource(api, "core.kcp.io", "v1alpha1", "logicalclusters")?;
    let url = format!("{}/clusters/{path}", api.config().external_url);
    let phase = if initializers.is_empty() {
        Phase::Ready
    } else {
        Phase::Initializing
    };
    let mut object = LogicalCluster::new(
        LogicalClusterSpec {
            owner,
            initializers: initializers.to_vec(),
            ..Default::default()
        },
        LogicalClusterStatus {
            phase: Some(phase),
            url: Some(url),
            initializers: initializers.to_vec(),
            ..Default::default()
        },
    );
    set_annotation(&mut object.metadata, crate::registry::PATH_ANNOTATION, path);
    set_annotation(&mut object.metadata, CLUSTER_NAME_ANNOTATION, name);
    set_annotation(&mut object.metadata, crate::workspaces::TYPE_ANNOTATION, ty);
    if let Some(org) = organization {
        set_annotation(
            &mut object.metadata,
            crate::quota::ORGANIZATION_ANNOTATION,
            org,
        );
    }
    items.push((lc, tapi::to_value(&object)));
    rest::create_system_batch(api, name, items).await?;
    // known to path resolution at once (the store watch in `workspaces::maintain_paths`
    // would add it a moment later)
    crate::tenancy(api)
        .paths
        .write()
        .insert(path.to_string(), name.to_string());
    Ok(())
}

/// Adds the `kcp.io/cluster` annotation to `LogicalCluster` objects created before it
/// was set (run at start). Returns how many were updated.
pub async fn annotate_logical_clusters(api: &ApiServer) -> Result<usize, ApiError> {
    let mut n = 0;
    for lc in api.store().list_all(LOGICAL_CLUSTER_RESOURCE, None, None) {
        let has = lc
            .value
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CLUSTER_NAME_ANNOTATION))
            .is_some();
        if has {
            continue;
        }
        let cluster = lc.key.cluster.to_string();
        rest::update_system(api, &lc.key, |cur| {
            let mut new = cur.clone();
            let ann = canopy_core::meta::metadata_mut(&mut new)
                .entry("annotations")
                .or_insert_with(|| json!({}));
            meta::ensure_object(ann).insert(CLUSTER_NAME_ANNOTATION.into(), json!(cluster));
            Some(new)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        n += 1;
    }
    Ok(n)
}
