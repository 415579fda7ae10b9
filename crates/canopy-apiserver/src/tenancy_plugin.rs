//! kcp tenancy plugged into the generic server ([`crate::plugin`]): workspace paths as
//! the cluster resolver, and the shard-to-shard logical cluster endpoints
//! (`/internal/logicalclusters`, `/internal/usage`, [`crate::internal`]) for shard peers
//! only.

use canopy_auth::UserInfo;

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
