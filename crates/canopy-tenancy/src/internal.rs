//! Shard-to-shard endpoints, for superusers only (other shards' system identity): a
//! workspace's parent shard places the workspace's logical cluster on the shard the
//! scheduler chose, reads its state, and deletes it again.
//!
//! - `POST /internal/logicalclusters` with a [`PlaceRequest`] creates the logical
//!   cluster (everything in one atomic commit, see `bootstrap.rs`); idempotent.
//! - `GET /internal/logicalclusters/<name>` returns its `LogicalCluster` object.
//! - `DELETE /internal/logicalclusters/<name>` deletes its child workspaces (each
//!   cascading on its own shard), then everything inside; `202` while that is under
//!   way (call again), `200` once nothing is left, `404` if it never existed.
//! - `POST /internal/usage` (root's shard) with a `quota::UsageReport`: a shard's usage
//!   per organization; answers the other shards' (`crate::quota`).

use bytes::Bytes;
use canopy_core::ApiError;
use canopy_storage::Mutation;
use canopy_tenancy_api::{LogicalClusterName, LogicalClusterOwner, WorkspacePath};
use http::{Method, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::logicalcluster;
use crate::registry::WORKSPACES;
use canopy_apiserver::response::{self, Body};
use canopy_apiserver::{rest, ApiServer};

/// What a parent shard asks a shard to create.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlaceRequest {
    /// The logical cluster name (16 characters of base36).
    pub name: LogicalClusterName,
    /// Its workspace path, `root:a:b`.
    pub path: WorkspacePath,
    /// Its workspace type, `root:universal`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub initializers: Vec<String>,
    /// The Workspace that owns it (kcp's `spec.owner`).
    #[serde(default)]
    pub owner: Option<LogicalClusterOwner>,
    /// The user bound as cluster-admin inside.
    #[serde(default)]
    pub admin: Option<String>,
    /// The logical cluster name of its organization (`crate::quota`); none for
    /// logical clusters outside every organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
}

pub async fn serve(
    api: &ApiServer,
    method: &Method,
    path: &str,
    query: &std::collections::HashMap<String, String>,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    if path == "/internal/usage" && *method == Method::POST {
        return crate::quota::serve_report(api, &body);
    }
    let rest_path = path.trim_start_matches("/internal/logicalclusters");
    let name = rest_path.trim_start_matches('/');
    match (method, name.is_empty()) {
        (&Method::POST, true) => {
            let req: PlaceRequest = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("invalid placement request: {e}")))?;
            place(api, &req).await?;
            let lc = lc_of(api, req.name.as_str())
                .ok_or_else(|| ApiError::internal("logical cluster vanished"))?;
            Ok(response::json(201, &lc))
        }
        (&Method::GET, false) => match lc_of(api, name) {
            Some(lc) => Ok(response::json(200, &lc)),
            None => Err(not_found(name)),
        },
        (&Method::DELETE, false) => {
            let lc = lc_of(api, name);
            if lc.is_none() && api.store().keys_of_cluster(name).is_empty() {
                return Err(not_found(name));
            }
            // The caller names the Workspace it deletes for (`ownerCluster`, `ownerUID`):
            // a logical cluster owned by another workspace is refused, so that no
            // confusion of names on the calling shard deletes someone else's.
            if let (Some(lc), Some(uid)) = (&lc, query.get("ownerUID")) {
                let owner =
                    canopy_tenancy_api::from_value::<canopy_tenancy_api::LogicalCluster>(lc)
                        .ok()
                        .and_then(|l| l.spec.owner);
                let matches = owner.is_some_and(|o| {
                    !o.uid.is_empty()
                        && o.uid == *uid
                        && query.get("ownerCluster").is_some_and(|c| *c == o.cluster)
                });
                if !matches {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!(
                            "logical cluster {name:?} is not owned by the workspace deleting it"
                        ),
                    ));
                }
            }
            if delete_cluster(api, name).await? {
                Ok(response::json(
                    200,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ))
            } else {
                Ok(response::json(
                    202,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "message": "deletion in progress"}),
                ))
            }
        }
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("logicalclusters.core.kcp.io {name:?} not found"),
    )
}

fn lc_of(api: &ApiServer, name: &str) -> Option<Value> {
    api.store()
        .get(&canopy_storage::ObjectKey::new(
            logicalcluster::LOGICAL_CLUSTER_RESOURCE,
            name,
            "",
            "cluster",
        ))
        .map(|o| o.value.clone())
}

/// Creates a logical cluster placed on this shard (idempotent).
pub async fn place(api: &ApiServer, req: &PlaceRequest) -> Result<(), ApiError> {
    crate::tenancy(api)
        .paths
        .write()
        .insert(req.path.to_string(), req.name.to_string());
    logicalcluster::ensure_logical_cluster_at(
        api,
        req.name.as_str(),
        req.path.as_str(),
        &req.type_,
        &req.initializers,
        req.owner.clone(),
        req.admin.as_deref(),
        req.organization.as_deref(),
    )
    .await
}

/// Deletes a logical cluster held here: its child workspaces first (each deletes its
/// own logical cluster, wherever that lives), then everything inside. `Ok(true)` once
/// nothing is left.
pub(crate) async fn delete_cluster(api: &ApiServer, cluster: &str) -> Result<bool, ApiError> {
    let store = api.store();
    let children = store.list_all(WORKSPACES, Some(cluster), None);
    if !children.is_empty() {
        for c in children {
            if !canopy_core::meta::is_deleting(&c.value) {
                rest::delete_system(api, &c.key, "Background")
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
            }
        }
        return Ok(false);
    }
    let keys = store.keys_of_cluster(cluster);
    for chunk in keys.chunks(256) {
        let muts: Vec<Mutation> = chunk
            .iter()
            .map(|k| Mutation::Delete {
                key: k.clone(),
                expected_rv: None,
            })
            .collect();
        store
            .commit(muts)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    crate::tenancy(api)
        .paths
        .write()
        .retain(|_, c| c != cluster);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_request_wire_form() {
        let r: PlaceRequest = serde_json::from_value(json!({
            "name": "abc", "path": "root:a", "type": "root:universal"
        }))
        .unwrap();
        assert_eq!(r.type_, "root:universal");
        assert!(r.initializers.is_empty() && r.owner.is_none() && r.admin.is_none());
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["type"], "root:universal");
        // names and paths are validated at the edge (a 400 from `serve`)
        for bad in [
            json!({"name": "ABC", "path": "root:a", "type": "root:universal"}),
            json!({"name": "abc", "path": "root::a", "type": "root:universal"}),
        ] {
            assert!(serde_json::from_value::<PlaceRequest>(bad).is_err());
        }
        let owned: PlaceRequest = serde_json::from_value(json!({
            "name": "abc", "path": "root:a", "type": "root:universal",
            "owner": {"apiVersion": "tenancy.kcp.io/v1alpha1", "resource": "workspaces", "name": "a", "cluster": "root", "uid": null}
        }))
        .unwrap();
        assert_eq!(owned.owner.unwrap().name, "a");
    }
}
