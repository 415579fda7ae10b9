//! kcp tenancy plugged into the generic server ([`crate::plugin`]): workspace paths as
//! the cluster resolver, the home workspace (`workspaces/~`), the admission of the
//! objects routing trusts, and the shard-to-shard logical cluster endpoints
//! (`/internal/logicalclusters`, `/internal/usage`, [`crate::internal`]) for shard peers
//! only.

use canopy_auth::UserInfo;
use canopy_core::{meta, ApiError};
use canopy_tenancy_api::{self as tapi, LogicalCluster, WorkspaceState};
use serde_json::Value;

use crate::admission::{Operation, Request, Validating};

use crate::plugin::{
    Audience, ClusterResolver, HandlerFuture, PathHandler, PathRequest, ResourceHandler,
};
use crate::ApiServer;

/// `/clusters/root:a:b`: workspace paths, resolved by walking from `root` or through
/// this shard's index of the paths it holds ([`crate::workspaces::resolve_in`]).
pub struct WorkspacePaths;

impl ClusterResolver for WorkspacePaths {
    fn resolve(&self, api: &ApiServer, name: &str) -> Option<String> {
        crate::workspaces::resolve_in(api, name)
    }
}

/// `/internal/logicalclusters[/<name>]`: placing, reading and deleting logical clusters
/// on this shard; `/internal/usage`: organizations' usage reported to root's shard
/// ([`crate::quota`]). For other shards (`system:shard:*`) only.
pub struct LogicalClusterPeers;

impl PathHandler for LogicalClusterPeers {
    fn name(&self) -> &'static str {
        "logicalclusters"
    }

    fn route(&self, path: &str) -> Option<Audience> {
        (path == "/internal/logicalclusters"
            || path.starts_with("/internal/logicalclusters/")
            || path == "/internal/usage")
            .then_some(Audience::Peers)
    }

    fn peer_allowed(&self, user: &UserInfo, _path: &str) -> bool {
        user.name.starts_with("system:shard:")
    }

    fn handle<'a>(&'a self, api: &'a ApiServer, req: PathRequest<'a>) -> HandlerFuture<'a> {
        Box::pin(crate::internal::serve(
            api, req.method, req.path, req.query, req.body,
        ))
    }
}

/// `GET .../workspaces/~`: the caller's home workspace (created on first use), for any
/// authenticated caller, in root only, never for an impersonated identity (which would
/// reveal or create homes of made-up users).
pub struct HomeWorkspace;

impl ResourceHandler for HomeWorkspace {
    fn name(&self) -> &'static str {
        "home-workspace"
    }

    fn claims(&self, info: &canopy_core::RequestInfo, _cluster: Option<&str>) -> bool {
        info.verb == "get"
            && info.group == canopy_core::resource::TENANCY_GROUP
            && info.resource == "workspaces"
            && info.subresource.is_empty()
            && info.name == "~"
    }

    fn handle<'a>(
        &'a self,
        api: &'a ApiServer,
        ctx: &'a crate::pipeline::Ctx,
        res: &'a crate::registry::Resource,
    ) -> HandlerFuture<'a> {
        Box::pin(async move {
            if ctx.cluster.as_deref() != Some("root")
                || ctx
                    .user
                    .extra
                    .contains_key(canopy_auth::impersonation::SCOPES_EXTRA)
            {
                return Err(canopy_core::ApiError::forbidden_message(
                    "workspaces.tenancy.kcp.io \"~\" is forbidden: the home workspace is only served in root, to the user itself",
                ));
            }
            let ws = crate::workspaces::home(api, &ctx.user).await?;
            crate::rest::respond_object(ctx, res, 200, &ws)
        })
    }
}

/// Admission: the objects routing and placement trust (see `admission.rs` for the chain).
pub struct TenancyObjects;

const CORE: &str = canopy_core::resource::KCP_CORE_GROUP;
const TENANCY: &str = canopy_core::resource::TENANCY_GROUP;

impl Validating for TenancyObjects {
    fn validate(&self, req: &Request<'_>) -> Result<(), ApiError> {
        let refuse = |why: &str| Err(ApiError::admission_forbidden(req.subject(), why));
        if req.is(CORE, "shards") {
            return refuse("shards can only be written by the system");
        }
        if req.is(CORE, "logicalclusters") {
            return match req.op {
                Operation::Create(_) => {
                    refuse("logical clusters are created by the system for workspaces")
                }
                Operation::Delete(_) => {
                    refuse("a logical cluster is deleted by deleting its workspace")
                }
                Operation::Update { new, old } => logical_cluster_update(req, new, old),
            };
        }
        if req.is(TENANCY, "workspaces") {
            if let Operation::Update { new, old } = req.op {
                if req.subresource == "status" {
                    let status = |v: &Value| {
                        tapi::from_value::<WorkspaceState>(v)
                            .map(|w| w.status)
                            .map_err(|e| e.to_string())
                    };
                    if status(new) != status(old) {
                        return refuse("the status of a workspace is set by the system");
                    }
                }
                // the finalizer that deletes the workspace's logical cluster with it
                let held = |v: &Value| {
                    meta::finalizers(v)
                        .iter()
                        .any(|f| f == crate::registry::tenancy::LOGICAL_CLUSTER_FINALIZER)
                };
                if held(old) && !held(new) {
                    return refuse(&format!(
                        "the finalizer {:?} is removed by the system",
                        crate::registry::tenancy::LOGICAL_CLUSTER_FINALIZER
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A user may only remove initializers from a LogicalCluster's status; spec, the rest of
/// the status and the reserved metadata (checked before) stay as they are.
fn logical_cluster_update(req: &Request<'_>, new: &Value, old: &Value) -> Result<(), ApiError> {
    let refuse = |why: &str| Err(ApiError::admission_forbidden(req.subject(), why));
    let (new_lc, old_lc) = match (
        tapi::from_value::<LogicalCluster>(new),
        tapi::from_value::<LogicalCluster>(old),
    ) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => {
            return refuse(&format!("not a LogicalCluster: {e}"));
        }
    };
    if new_lc.spec != old_lc.spec {
        return refuse("the spec of a logical cluster is set by the system");
    }
    let strip = |lc: &LogicalCluster| {
        let mut s = lc.status.clone();
        s.initializers.clear();
        s
    };
    if strip(&new_lc) != strip(&old_lc) {
        return refuse("only status.initializers of a logical cluster may be changed");
    }
    let (before, after) = (&old_lc.status.initializers, &new_lc.status.initializers);
    if after.iter().any(|i| !before.contains(i)) {
        return refuse("initializers can only be removed from a logical cluster");
    }
    let fins = meta::finalizers;
    if fins(new) != fins(old) {
        return refuse("the finalizers of a logical cluster are set by the system");
    }
    Ok(())
}
