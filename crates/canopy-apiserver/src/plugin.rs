//! Extension points of the generic API server: what a capability (kcp tenancy, the token
//! service, API sharing next) plugs in, so that the request pipeline ([`crate::pipeline`])
//! names none of them.
//!
//! - [`PathHandler`]: non-resource paths outside every logical cluster (`/services/...`,
//!   `/internal/...`, `/openid/...`), each with the [`Audience`] the pipeline enforces
//!   *before* the handler runs.
//! - [`ClusterResolver`]: which logical cluster `/clusters/<name>` means (kcp tenancy
//!   resolves workspace paths such as `root:org:team`).
//! - [`ResourceHandler`]: requests for a resource a plug-in answers itself, with its
//!   own authorization (kcp's `workspaces/~`).
//! - validating admission plug-ins ([`crate::admission::Validating`]), run in order on
//!   every user write.
//!
//! Plug-ins are registered once, when the server is built ([`Plugins`]); the pipeline
//! asks them in registration order.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use canopy_auth::UserInfo;
use canopy_core::ApiError;
use http::{Method, Response};

use crate::response::Body;
use crate::ApiServer;

/// Who may reach a [`PathHandler`]'s path. The pipeline enforces it; a caller outside
/// the audience gets the same 404 as for a path nobody serves, so the path's existence
/// is not revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone, without credentials (e.g. the token service's public keys).
    Public,
    /// Authenticated callers, under their identity after impersonation; an identity
    /// confined to one logical cluster (impersonated) is refused with 403.
    Users,
    /// Shard peers only: a connection with a client certificate of the proxy client CA
    /// forwarding a system identity in `system:masters`, with no impersonation; then
    /// [`PathHandler::peer_allowed`] decides on the identity.
    Peers,
}

/// A request for a [`PathHandler`], already authenticated and let through its audience.
pub struct PathRequest<'a> {
    pub method: &'a Method,
    /// The path, without a query.
    pub path: &'a str,
    pub query: &'a HashMap<String, String>,
    /// The caller (`system:anonymous` for [`Audience::Public`] without credentials).
    pub user: &'a UserInfo,
    /// The body, read under the server's body size limit (empty for GET).
    pub body: Bytes,
}

/// A boxed handler future.
pub type HandlerFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send + 'a>>;

/// Serves non-resource paths outside every logical cluster.
pub trait PathHandler: Send + Sync + 'static {
    /// For logs and metrics.
    fn name(&self) -> &'static str;

    /// Whether this handler serves `path` (a path outside `/clusters/...`), and to whom.
    fn route(&self, path: &str) -> Option<Audience>;

    /// For [`Audience::Peers`]: whether this peer identity may call `path` (e.g. only
    /// shards, or the front-proxy for the token state).
    fn peer_allowed(&self, _user: &UserInfo, _path: &str) -> bool {
        true
    }

    fn handle<'a>(&'a self, api: &'a ApiServer, req: PathRequest<'a>) -> HandlerFuture<'a>;
}

/// Answers some requests for a resource itself, instead of the generic store, with its
/// own authorization (kcp's `workspaces/~`: the caller's home, for any authenticated
/// caller). Asked after the caller entered the logical cluster; a claimed request skips
/// the generic RBAC check, so a handler must refuse what it does not allow.
pub trait ResourceHandler: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Whether this handler answers the request (`cluster`: the resolved logical
    /// cluster; `None` across all of them).
    fn claims(&self, info: &canopy_core::RequestInfo, cluster: Option<&str>) -> bool;

    fn handle<'a>(
        &'a self,
        api: &'a ApiServer,
        ctx: &'a crate::pipeline::Ctx,
        res: &'a crate::registry::Resource,
    ) -> HandlerFuture<'a>;
}

/// Resolves the name in `/clusters/<name>` to a logical cluster held by this server.
pub trait ClusterResolver: Send + Sync + 'static {
    /// The logical cluster `name` (a workspace path, or a logical cluster name) means on
    /// this server, or `None` when the resolver does not know it (the name is then taken
    /// as a logical cluster name).
    fn resolve(&self, api: &ApiServer, name: &str) -> Option<String>;
}

/// The plug-ins of one server.
#[derive(Clone, Default)]
pub struct Plugins {
    pub(crate) paths: Vec<Arc<dyn PathHandler>>,
    pub(crate) resources: Vec<Arc<dyn ResourceHandler>>,
    /// The validating admission chain, in order ([`crate::admission`]).
    pub(crate) validating: Vec<Arc<dyn crate::admission::Validating>>,
    pub(crate) resolver: Option<Arc<dyn ClusterResolver>>,
}

impl Plugins {
    pub fn with_path_handler(mut self, h: impl PathHandler) -> Self {
        self.paths.push(Arc::new(h));
        self
    }

    /// Appends a validating admission plug-in to the chain.
    pub fn with_validating(mut self, v: impl crate::admission::Validating + 'static) -> Self {
        self.validating.push(Arc::new(v));
        self
    }

    pub fn with_resource_handler(mut self, h: impl ResourceHandler) -> Self {
        self.resources.push(Arc::new(h));
        self
    }

    /// The first resource handler claiming a request.
    pub(crate) fn claim(
        &self,
        info: &canopy_core::RequestInfo,
        cluster: Option<&str>,
    ) -> Option<Arc<dyn ResourceHandler>> {
        self.resources
            .iter()
            .find(|h| h.claims(info, cluster))
            .cloned()
    }

    pub fn with_resolver(mut self, r: impl ClusterResolver) -> Self {
        self.resolver = Some(Arc::new(r));
        self
    }

    /// The first handler serving `path`, with its audience.
    pub(crate) fn route(&self, path: &str) -> Option<(&Arc<dyn PathHandler>, Audience)> {
        self.paths
            .iter()
            .find_map(|h| h.route(path).map(|a| (h, a)))
    }

    /// Whether some handler serves `path` to anyone without credentials.
    pub(crate) fn is_public(&self, path: &str) -> bool {
        matches!(self.route(path), Some((_, Audience::Public)))
    }
}
