//! kcp tenancy plugged into the generic server ([`crate::plugin`]): workspace paths as
//! the cluster resolver, and the shard-to-shard logical cluster endpoints
//! (`/internal/logicalclusters`, `/internal/usage`, [`crate::internal`]) for shard peers
//! only.

use canopy_auth::UserInfo;

use crate::plugin::{Audience, ClusterResolver, HandlerFuture, PathHandler, PathRequest};
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
