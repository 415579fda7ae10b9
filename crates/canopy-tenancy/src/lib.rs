//! kcp tenancy, a plug-in of the generic API server (`canopy-apiserver`), plugged in
//! only through its extension points ([`canopy_apiserver::plugin`]; [`KcpTenancy`]
//! registers every part):
//!
//! - kinds and their strategies ([`registry`]): `Workspace`, `WorkspaceType`
//!   (kcp's `WorkspaceTypeExists` admission), `LogicalCluster`, `Shard`;
//! - workspace paths as the cluster resolver ([`WorkspacePaths`], [`workspaces::resolve_in`]);
//! - the home workspace `workspaces/~` ([`HomeWorkspace`]);
//! - admission of the objects routing and placement trust ([`TenancyObjects`]);
//! - per-organization quotas of user writes ([`Quotas`], [`quota`]);
//! - the workspace controller, the path index, the shard's report and the workspace-type
//!   mirror ([`TenancyControllers`], [`workspaces`]);
//! - logical clusters and their `LogicalCluster` objects ([`logicalcluster`]);
//! - the shard-to-shard endpoints (`/internal/logicalclusters`, `/internal/usage`,
//!   [`internal`]) for shard peers only, and the client of the other shards ([`peers`]).
//!
//! What it keeps on the server is [`Tenancy`] ([`tenancy`]); what a server with it can
//! do beyond the generic one is [`TenancyExt`].

// Request-path code: bad input is an ApiError, never a panic (tests may unwrap).
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
#![allow(clippy::result_large_err)]

pub mod internal;
mod logicalcluster;
pub mod peers;
pub mod quota;
mod registry;
mod workspaces;

use canopy_auth::UserInfo;
use canopy_core::{meta, ApiError};
use canopy_tenancy_api::{self as tapi, LogicalCluster, WorkspaceState};
use serde_json::Value;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use canopy_runtime::{Action, Backoff, Controller};
use canopy_storage::{EventType, ObjectKey};
use parking_lot::{Mutex, RwLock};

use canopy_apiserver::admission::{Operation, Request, Validating};

use canopy_apiserver::plugin::{
    Audience, ClusterResolver, HandlerFuture, PathHandler, PathRequest, Plugin, Plugins,
    Reservation, ResourceHandler, Write, WriteAdmission,
};
use canopy_apiserver::ApiServer;

/// What kcp tenancy needs to know about the shard it runs on.
#[derive(Clone, Debug, Default)]
pub struct TenancyConfig {
    /// This shard's name (its `Shard` object in `root`); `root` for the shard holding
    /// the root logical cluster in a single-shard setup.
    pub shard_name: String,
    /// This shard's own URL (`https://host:port`), where peers and the front-proxy reach
    /// it; the server's `external_url` is what clients use (the front-proxy's, behind one).
    pub shard_url: String,
    /// Per-organization quotas (workspaces, objects, stored bytes) of user writes
    /// ([`crate::quota`]); superusers override them per organization.
    pub quotas: crate::quota::OrgQuotas,
}

/// What kcp tenancy keeps on the server ([`ApiServer::state`], read with [`tenancy`]).
#[derive(Default)]
pub struct Tenancy {
    pub config: TenancyConfig,
    /// Other shards, once configured ([`TenancyExt::set_peers`]).
    pub peers: RwLock<Option<crate::peers::Peers>>,
    /// Workspace path → logical cluster name of the logical clusters held here (for
    /// those whose parents live on other shards, resolved without walking from `root`).
    pub(crate) paths: RwLock<HashMap<String, String>>,
    /// Root's WorkspaceTypes (`root:<name>`), copied from root's shard when this shard
    /// does not hold root (refreshed with the shard's load report).
    pub(crate) type_mirror: RwLock<Arc<HashMap<String, Value>>>,
    /// Shards this shard's scheduler chose lately (for loads not reported yet).
    pub(crate) recent_assignments: Mutex<VecDeque<(Instant, String)>>,
    /// Per-organization usage and quotas ([`crate::quota`]).
    pub(crate) quota: crate::quota::QuotaState,
}

/// Tenancy's state on `api` (an empty one on a server without the plug-in).
pub fn tenancy(api: &ApiServer) -> &Tenancy {
    static NONE: LazyLock<Tenancy> = LazyLock::new(Tenancy::default);
    api.state::<Tenancy>().unwrap_or(&NONE)
}

/// The kcp tenancy plug-in: workspaces, logical clusters, workspace types, shards and
/// their peers, quotas.
pub struct KcpTenancy(pub TenancyConfig);

impl Plugin for KcpTenancy {
    fn register(self, plugins: Plugins) -> Plugins {
        use crate::registry as reg;
        use canopy_core::resource::{stored, NameRule::*, KCP_CORE_GROUP, TENANCY_GROUP};
        // kcp's kinds: cluster-scoped `v1alpha1` with a status subresource
        let kind = |group, kind, plural, short: &[&str], names| {
            stored(
                group,
                "v1alpha1",
                kind,
                plural,
                false,
                short,
                &["status"],
                names,
            )
        };
        plugins
            .with_state(Tenancy {
                config: self.0,
                ..Default::default()
            })
            .with_validating(TenancyObjects)
            .with_resolver(WorkspacePaths)
            .with_resource_handler(HomeWorkspace)
            .with_path_handler(LogicalClusterPeers)
            .with_write_admission(Quotas)
            .with_resource(
                kind(
                    KCP_CORE_GROUP,
                    "LogicalCluster",
                    "logicalclusters",
                    &[],
                    DnsSubdomain,
                ),
                reg::LogicalClusterStrategy,
            )
            .with_resource(
                kind(KCP_CORE_GROUP, "Shard", "shards", &[], DnsSubdomain),
                reg::ShardStrategy,
            )
            .with_resource(
                kind(TENANCY_GROUP, "Workspace", "workspaces", &["ws"], DnsLabel),
                reg::WorkspaceStrategy,
            )
            .with_resource(
                kind(
                    TENANCY_GROUP,
                    "WorkspaceType",
                    "workspacetypes",
                    &[],
                    DnsLabel,
                ),
                reg::WorkspaceTypeStrategy,
            )
            .with_background(TenancyControllers)
    }
}

/// What a server with kcp tenancy can do beyond the generic one.
pub trait TenancyExt {
    /// Creates a logical cluster with its default namespaces and RBAC, if it does not
    /// exist yet. Idempotent.
    fn ensure_logical_cluster(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<(), ApiError>> + Send;

    /// Configures how this shard reaches the other shards (and root's shard), then
    /// registers it there.
    fn set_peers(&self, cfg: &crate::peers::PeerConfig) -> Result<(), crate::peers::PeerError>;

    /// Creates or updates this shard's `Shard` object in `root` (held by this shard).
    fn register_shard(&self) -> impl std::future::Future<Output = Result<(), ApiError>> + Send;

    /// Adds `kcp.io/cluster` to `LogicalCluster` objects written before it was set.
    fn annotate_logical_clusters(
        &self,
    ) -> impl std::future::Future<Output = Result<usize, ApiError>> + Send;
}

impl TenancyExt for ApiServer {
    async fn ensure_logical_cluster(&self, name: &str) -> Result<(), ApiError> {
        crate::logicalcluster::ensure_logical_cluster(self, name).await
    }

    fn set_peers(&self, cfg: &crate::peers::PeerConfig) -> Result<(), crate::peers::PeerError> {
        let p = crate::peers::Peers::new(cfg, &tenancy(self).config.shard_name)?;
        *tenancy(self).peers.write() = Some(p);
        let api = self.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::workspaces::register_shard(&api).await {
                tracing::warn!(error = %e, "registering the shard");
            }
            if let Err(e) = crate::workspaces::refresh_type_mirror(&api).await {
                tracing::warn!(error = %e, "mirroring root's workspace types");
            }
        });
        Ok(())
    }

    async fn register_shard(&self) -> Result<(), ApiError> {
        crate::workspaces::register_shard(self).await
    }

    async fn annotate_logical_clusters(&self) -> Result<usize, ApiError> {
        crate::logicalcluster::annotate_logical_clusters(self).await
    }
}

/// Per-organization quotas of user creates and updates ([`crate::quota`]).
pub struct Quotas;

impl WriteAdmission for Quotas {
    fn admit(
        &self,
        api: &ApiServer,
        ctx: &canopy_apiserver::pipeline::Ctx,
        res: &canopy_apiserver::registry::Resource,
        write: Write<'_>,
    ) -> Result<Option<Reservation>, ApiError> {
        let r = match write {
            Write::Create { obj } => crate::quota::admit_create(api, ctx, res, obj)?,
            Write::Update { cur, new } => crate::quota::admit_update(api, ctx, res, cur, new)?,
        };
        Ok(r.map(|r| Box::new(r) as Reservation))
    }
}

/// The workspace controller, the path index, the shard's report and the workspace-type
/// mirror, and the organizations' usage ([`crate::quota`]).
pub(crate) struct TenancyControllers;

impl canopy_apiserver::plugin::Background for TenancyControllers {
    fn start(&self, api: &ApiServer, run: &mut canopy_apiserver::controllers::Starter) {
        crate::quota::start(api, run);
        // Its writes share the store's group commits. A workspace waits on other
        // shards without events to bring it back: its back-off stays short.
        let ws_api = api.clone();
        let workspace = Controller::new("workspace", run.metrics(), move |key: ObjectKey| {
            let api = ws_api.clone();
            async move { workspace(&api, &key).await }
        })
        .concurrency(16)
        .backoff(Backoff {
            max: Duration::from_secs(10),
            ..Backoff::default()
        })
        .start();
        let (ws_api, ws_all) = (api.clone(), api.clone());
        let queue = workspace.queue().clone();
        run.feed(move |f| {
            f.watches(&queue, move |ev: &canopy_apiserver::controllers::Event| {
                workspace_keys(&ws_api, ev)
            })
            .resync(&queue, move || {
                canopy_apiserver::controllers::keys_of(&ws_all, crate::registry::WORKSPACES)
            })
        });
        run.keep(workspace);
        let paths =
            crate::workspaces::maintain_paths(api.clone(), run.metrics().task("path-index"));
        run.spawn(paths);
        // The shard's load (logical clusters held) on its Shard object, for the
        // scheduler; written only when it changed.
        let report = run.metrics().task("shard-report");
        let mirror = run.metrics().task("workspace-type-mirror");
        let api = api.clone();
        run.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                report.report(crate::workspaces::register_shard(&api).await);
                mirror.report(crate::workspaces::refresh_type_mirror(&api).await);
            }
        });
    }
}

/// Which workspaces an event concerns: a Workspace's own events, its parent's when a
/// child went away, Scheduling ones when a Shard changed, a workspace whose logical
/// cluster's initializers changed.
fn workspace_keys(api: &ApiServer, ev: &canopy_storage::WatchEvent) -> Vec<ObjectKey> {
    use crate::registry::WORKSPACES;
    let store = api.store();
    let key = &ev.object.key;
    let resource = &*key.resource;
    if resource == WORKSPACES {
        if ev.kind != EventType::Deleted {
            return vec![key.clone()];
        }
        // a child workspace went away: its deleting parent may continue
        return crate::workspaces::parent_workspace(store, &key.cluster)
            .filter(|p| meta::is_deleting(&p.value))
            .map(|p| p.key.clone())
            .into_iter()
            .collect();
    }
    if resource == crate::workspaces::SHARDS && ev.kind != EventType::Deleted {
        // a shard appeared or changed labels: unschedulable workspaces may now fit
        return store
            .list_all(WORKSPACES, None, None)
            .into_iter()
            .filter(|w| {
                w.value.pointer("/status/phase").and_then(Value::as_str) == Some("Scheduling")
            })
            .map(|w| w.key.clone())
            .collect();
    }
    if resource == crate::logicalcluster::LOGICAL_CLUSTER_RESOURCE
        && ev.kind == EventType::Modified
        && ev
            .object
            .value
            .pointer("/status/phase")
            .and_then(Value::as_str)
            == Some("Initializing")
    {
        // an initializer may have finished
        return crate::workspaces::parent_workspace(store, &key.cluster)
            .map(|p| p.key.clone())
            .into_iter()
            .collect();
    }
    Vec::new()
}

async fn workspace(
    api: &ApiServer,
    key: &ObjectKey,
) -> Result<Action, crate::workspaces::ReconcileError> {
    match api.store().get(key) {
        Some(ws) => crate::workspaces::reconcile(api, &ws).await,
        None => Ok(Action::await_change()),
    }
}

/// `/clusters/root:a:b`: workspace paths, resolved by walking from `root` or through
/// this shard's index of the paths it holds ([`crate::workspaces::resolve_in`]).
pub(crate) struct WorkspacePaths;

impl ClusterResolver for WorkspacePaths {
    fn resolve(&self, api: &ApiServer, name: &str) -> Option<String> {
        crate::workspaces::resolve_in(api, name)
    }

    /// A logical cluster exists once its `LogicalCluster` object does.
    fn exists(&self, api: &ApiServer, cluster: &str) -> bool {
        crate::logicalcluster::logical_cluster_exists(api.store(), cluster)
    }
}

/// `/internal/logicalclusters[/<name>]`: placing, reading and deleting logical clusters
/// on this shard; `/internal/usage`: organizations' usage reported to root's shard
/// ([`crate::quota`]). For other shards (`system:shard:*`) only.
pub(crate) struct LogicalClusterPeers;

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
pub(crate) struct HomeWorkspace;

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
        ctx: &'a canopy_apiserver::pipeline::Ctx,
        res: &'a canopy_apiserver::registry::Resource,
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
            canopy_apiserver::rest::respond_object(ctx, res, 200, &ws)
        })
    }
}

/// Admission: the objects routing and placement trust (see `admission.rs` for the chain).
pub(crate) struct TenancyObjects;

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
                        .any(|f| f == crate::registry::LOGICAL_CLUSTER_FINALIZER)
                };
                if held(old) && !held(new) {
                    return refuse(&format!(
                        "the finalizer {:?} is removed by the system",
                        crate::registry::LOGICAL_CLUSTER_FINALIZER
                    ));
                }
            }
        }
        Ok(())
    }
}

/// kcp: removing an initializer (`<logical cluster>:<type name>`) takes the `initialize`
/// verb on that WorkspaceType (`workspacetypes.tenancy.kcp.io`, by name) in the logical
/// cluster the type lives in, so that a workspace's own admins cannot skip the setup
/// its type's provider does. An identity impersonated elsewhere is out of scope there.
/// The check reads that cluster's RBAC, so it can be made only on the shard holding the
/// type; for a type elsewhere only superusers may remove the initializer (they pass the
/// whole chain).
fn may_initialize(req: &Request<'_>, initializer: &str) -> Result<(), ApiError> {
    let refuse = |why: &str| Err(ApiError::admission_forbidden(req.subject(), why));
    let Some((cluster, name)) = initializer.rsplit_once(':') else {
        return refuse(&format!("{initializer:?} is not an initializer"));
    };
    let needs = format!(
        "removing the initializer {initializer:?} needs the \"initialize\" verb on workspacetypes.tenancy.kcp.io {name:?} in logical cluster {cluster:?}"
    );
    if !crate::logicalcluster::logical_cluster_exists(req.store, cluster) {
        return refuse(&format!(
            "{needs}, which is on another shard and cannot be checked here"
        ));
    }
    let attrs = canopy_auth::rbac::Attributes {
        user: req.user,
        verb: "initialize",
        is_resource_request: true,
        namespace: "",
        api_group: TENANCY,
        resource: "workspacetypes",
        subresource: "",
        name,
        path: "",
    };
    match canopy_apiserver::authz::allowed(req.store, cluster, &attrs) {
        Some(_) => Ok(()),
        None => refuse(&needs),
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
    for removed in before.iter().filter(|i| !after.contains(i)) {
        may_initialize(req, removed)?;
    }
    let fins = meta::finalizers;
    if fins(new) != fins(old) {
        return refuse("the finalizers of a logical cluster are set by the system");
    }
    Ok(())
}
