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
//! - [`WriteAdmission`]: a check of every user create and update that may hold a
//!   [`Reservation`] until the write is answered (per-organization quotas).
//! - kinds ([`Plugins::with_resource`]): a resource a plug-in adds to every logical
//!   cluster, with its strategy (create/update hooks, validation, status subresource,
//!   table columns, OpenAPI schema); [`Plugins::with_strategy`] replaces the strategy of
//!   a built-in kind instead.
//! - [`ApiSource`]: CRD-like definitions a plug-in serves in some logical clusters, as if
//!   they were Established CRDs there, with their objects kept apart (kcp's bound APIs).
//! - [`Background`]: controllers and periodic tasks, started with the server's own
//!   ([`crate::controllers`]) on the same event feed and metrics.
//! - plug-in state ([`Plugins::with_state`], [`ApiServer::state`]): one value per type,
//!   for what a plug-in keeps on the server.
//! - [`Plugin`]: a capability registering all of its parts at once.
//!
//! Plug-ins are registered once, when the server is built ([`Plugins`]); the pipeline
//! asks them in registration order.

use std::any::{Any, TypeId};
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

    /// Whether logical cluster `cluster` exists on this server (a request into one that
    /// does not is refused as if it were not allowed).
    fn exists(&self, api: &ApiServer, cluster: &str) -> bool;
}

/// A CRD-like definition an [`ApiSource`] serves in one logical cluster.
#[derive(Clone)]
pub struct SourcedCrd {
    /// A CustomResourceDefinition-shaped object: `spec.group`, `spec.names`, `spec.scope`,
    /// `spec.versions` as a CRD has them. Its `metadata.uid` and `metadata.generation`
    /// key the compiled-schema cache, so they must change when the spec does.
    pub crd: Arc<serde_json::Value>,
    /// Kept apart from every other definition of the same group and resource: objects are
    /// stored under `<group>/<plural>:<storage_suffix>` (kcp: the export's identity
    /// hash), so a local CRD of that resource, or another source's, never reads them.
    pub storage_suffix: String,
}

/// CRD-like definitions a plug-in serves in some logical clusters (kcp's bound APIs):
/// the cluster's discovery, OpenAPI, validation, tables, watch and server-side apply
/// treat them as Established CRDs. When one has the group and resource of a local CRD,
/// the source's wins; one with a built-in's is ignored.
pub trait ApiSource: Send + Sync + 'static {
    /// Asked on every request into `cluster`, so it must be cheap: a value that changes
    /// whenever [`ApiSource::crds`] would answer differently.
    fn fingerprint(&self, api: &ApiServer, cluster: &str) -> u64;

    /// The definitions served in `cluster`.
    fn crds(&self, api: &ApiServer, cluster: &str) -> Vec<SourcedCrd>;
}

/// What a [`WriteAdmission`] is asked about.
#[derive(Clone, Copy)]
pub enum Write<'a> {
    /// A user's create of `obj` (defaulted and validated, not stored yet).
    Create { obj: &'a serde_json::Value },
    /// A user's update from `cur` (as stored) to `new`.
    Update {
        cur: &'a canopy_storage::StoredObject,
        new: &'a serde_json::Value,
    },
}

/// Something a [`WriteAdmission`] holds until the write it admitted is answered (e.g. a
/// quota reservation, released on drop).
pub type Reservation = Box<dyn Any + Send>;

/// A check of every user create and update (not the system's), after validation and
/// before the store; an update that finalizes an object is not asked. The returned
/// reservation is dropped when the write is answered.
pub trait WriteAdmission: Send + Sync + 'static {
    fn admit(
        &self,
        api: &ApiServer,
        ctx: &crate::pipeline::Ctx,
        res: &crate::registry::Resource,
        write: Write<'_>,
    ) -> Result<Option<Reservation>, ApiError>;
}

/// Controllers and tasks a plug-in runs in the background, started with the server's
/// own ([`ApiServer::start_controllers`]) and stopped with them.
pub trait Background: Send + Sync + 'static {
    fn start(&self, api: &ApiServer, run: &mut crate::controllers::Starter);
}

/// A capability that registers all of its parts (handlers, strategies, admission,
/// controllers, state) into [`Plugins`].
pub trait Plugin {
    fn register(self, plugins: Plugins) -> Plugins;
}

/// State of plug-ins on a server, one value per type.
#[derive(Clone, Default)]
pub struct Extensions(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl Extensions {
    pub fn insert<T: Send + Sync + 'static>(&mut self, v: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(v));
    }

    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

/// The plug-ins of one server.
#[derive(Clone, Default)]
pub struct Plugins {
    pub(crate) paths: Vec<Arc<dyn PathHandler>>,
    pub(crate) resources: Vec<Arc<dyn ResourceHandler>>,
    /// The validating admission chain, in order ([`crate::admission`]).
    pub(crate) validating: Vec<Arc<dyn crate::admission::Validating>>,
    pub(crate) resolver: Option<Arc<dyn ClusterResolver>>,
    pub(crate) writes: Vec<Arc<dyn WriteAdmission>>,
    pub(crate) background: Vec<Arc<dyn Background>>,
    pub(crate) sources: Vec<Arc<dyn ApiSource>>,
    /// Strategies plug-ins give built-in kinds, by (group, plural).
    pub(crate) strategies: HashMap<(String, String), Arc<dyn crate::registry::Strategy>>,
    /// Kinds plug-ins add, in registration order.
    pub(crate) kinds: Vec<crate::registry::Resource>,
    pub(crate) state: Extensions,
}

impl Plugins {
    /// Registers a whole capability ([`Plugin`]).
    pub fn plugin(self, p: impl Plugin) -> Self {
        p.register(self)
    }

    /// Adds a write check ([`WriteAdmission`]), asked in registration order.
    pub fn with_write_admission(mut self, w: impl WriteAdmission) -> Self {
        self.writes.push(Arc::new(w));
        self
    }

    /// Adds CRD-like definitions served per logical cluster ([`ApiSource`]).
    pub fn with_api_source(mut self, s: impl ApiSource) -> Self {
        self.sources.push(Arc::new(s));
        self
    }

    /// Adds controllers or tasks run in the background ([`Background`]).
    pub fn with_background(mut self, b: impl Background) -> Self {
        self.background.push(Arc::new(b));
        self
    }

    /// Adds a kind every logical cluster serves, with its strategy.
    pub fn with_resource(
        mut self,
        desc: canopy_core::ResourceDescriptor,
        s: impl crate::registry::Strategy + 'static,
    ) -> Self {
        self.kinds.push(crate::registry::Resource {
            desc: Arc::new(desc),
            strategy: Arc::new(s),
        });
        self
    }

    /// The strategy of the built-in resource `group`/`plural` (every version), in place
    /// of the default one.
    pub fn with_strategy(
        mut self,
        group: &str,
        plural: &str,
        s: impl crate::registry::Strategy + 'static,
    ) -> Self {
        self.strategies
            .insert((group.to_string(), plural.to_string()), Arc::new(s));
        self
    }

    /// Keeps `v` on the server for the plug-in ([`ApiServer::state`]); one per type.
    pub fn with_state<T: Send + Sync + 'static>(mut self, v: T) -> Self {
        self.state.insert(v);
        self
    }

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

    /// Asks every [`WriteAdmission`] about a user's write; what they reserve is held
    /// until the result is dropped.
    pub(crate) fn admit_write(
        &self,
        api: &ApiServer,
        ctx: &crate::pipeline::Ctx,
        res: &crate::registry::Resource,
        write: Write<'_>,
    ) -> Result<Vec<Reservation>, ApiError> {
        let mut held = Vec::new();
        for w in &self.writes {
            held.extend(w.admit(api, ctx, res, write)?);
        }
        Ok(held)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_one_value_per_type() {
        struct A(u32);
        struct B;
        let p = Plugins::default().with_state(A(1)).with_state(A(2));
        assert_eq!(p.state.get::<A>().map(|a| a.0), Some(2));
        assert!(p.state.get::<B>().is_none());
    }

    #[test]
    fn a_plugin_kind_is_served_after_the_built_ins() {
        use canopy_core::resource::{stored, NameRule};
        let desc = stored(
            "example.dev",
            "v1",
            "Widget",
            "widgets",
            true,
            &["wd"],
            &["status"],
            NameRule::DnsSubdomain,
        );
        let p = Plugins::default().with_resource(desc, crate::registry::builtin::DefaultStrategy);
        let r = crate::registry::Registry::builtin(&p);
        let plain = crate::registry::Registry::builtin(&Plugins::default());
        assert_eq!(r.all().len(), plain.all().len() + 1);
        assert_eq!(r.all().last().map(|w| w.desc.kind.as_str()), Some("Widget"));
        assert!(r.get("example.dev", "v1", "widgets").is_some());
        assert!(r
            .group_versions()
            .contains(&("example.dev".into(), "v1".into())));
    }

    #[test]
    fn a_plugin_strategy_replaces_the_default_of_its_kind_only() {
        struct NoColumns;
        impl crate::registry::Strategy for NoColumns {
            fn columns(&self) -> Vec<crate::registry::Column> {
                Vec::new()
            }
        }
        let p = Plugins::default().with_strategy("", "configmaps", NoColumns);
        let r = crate::registry::Registry::builtin(&p);
        let columns = |plural: &str| {
            r.get("", "v1", plural)
                .map(|r| r.strategy.columns().len())
                .unwrap()
        };
        assert_eq!(columns("configmaps"), 0);
        assert!(columns("secrets") > 0);
        let plain = crate::registry::Registry::builtin(&Plugins::default());
        assert_eq!(r.all().len(), plain.all().len());
    }
}
