//! The Kubernetes API of one shard.
//!
//! A request passes these stages, in this order, each in its own module:
//!
//! 1. [`server`]: TLS termination, HTTP/1.1 and HTTP/2, graceful shutdown.
//! 2. [`pipeline`]: request parsing (`/clusters/<name>` prefix and kube's RequestInfo),
//!    authentication (Canopy-issued bearer JWTs), impersonation, logical-cluster
//!    resolution, authorization (RBAC inside the logical cluster) and metrics. The order
//!    matters: nothing about a logical cluster (not even whether it exists) is revealed
//!    before the caller is authenticated and authorized for it.
//! 3. Dispatch: non-resource endpoints ([`discovery`], health, `/version`, `/metrics`,
//!    OpenAPI) or the generic REST store ([`rest`]) with the resource's strategy from the
//!    [`registry`]; review resources ([`reviews`]) are answered without storage.
//! 4. Background [`controllers`] keep namespaces, default service accounts and the
//!    `kube-root-ca.crt` ConfigMaps, garbage collection and ClusterRole aggregation
//!    running, all through the same store.

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
// `ApiError` (a kube Status with causes) is the error of every handler; boxing it would
// change every signature for no gain on this path.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod apis;
pub mod authz;
pub mod bootstrap;
pub mod codec;
pub mod continue_token;
pub mod controllers;
pub mod discovery;
pub mod edge;
pub mod fieldmanager;
pub mod internal;
pub mod metrics;
pub mod peers;
pub mod pipeline;
pub mod plugin;
pub mod quota;
pub mod registry;
pub mod response;
pub mod rest;
pub mod reviews;
pub mod scale;
pub mod server;
pub mod tenancy_plugin;
pub mod tokens;
pub mod watch;
pub mod workspaces;

use std::sync::Arc;

use canopy_auth::TokenIssuer;
use canopy_storage::Store;

pub use pipeline::handle;
pub use server::{serve, FrontProxyPeer, ServerLimits, TlsConfig};

/// Static configuration of an API server.
#[derive(Clone)]
pub struct Config {
    /// How clients reach this server, e.g. `https://127.0.0.1:6443` (no trailing slash).
    pub external_url: String,
    /// The CA clients trust (published in every namespace's `kube-root-ca.crt`).
    pub ca_cert_pem: String,
    /// Version reported at `/version`.
    pub version: VersionInfo,
    /// This shard's name (its `Shard` object in `root`); `root` for the shard holding
    /// the root logical cluster in a single-shard setup.
    pub shard_name: String,
    /// This shard's own URL (`https://host:port`), where peers and the front-proxy reach
    /// it; `external_url` is what clients use (the front-proxy's, behind one).
    pub shard_url: String,
    /// Request body and object size limits.
    pub limits: Limits,
    /// The secret list continue tokens are authenticated with ([`continue_token`]);
    /// `None`: a random one for this process.
    pub continue_keys: Option<continue_token::ContinueKeys>,
}

/// Size limits (kube-apiserver's and etcd's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body read (kube: 3 MiB); larger bodies get 413.
    pub max_request_body_bytes: usize,
    /// The largest object stored, as serialized JSON (etcd: 1.5 MiB); larger results of
    /// any write (create, update, every patch type, apply, subresources, writes of the
    /// system) get 413 and change nothing. Enforced by the store
    /// ([`canopy_storage::StoreOptions::max_object_bytes`], set from this).
    pub max_object_bytes: usize,
    /// Per-organization quotas (workspaces, objects, stored bytes) of user writes
    /// ([`quota`]); superusers override them per organization.
    pub quotas: quota::OrgQuotas,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body_bytes: codec::DEFAULT_MAX_BODY_BYTES,
            max_object_bytes: canopy_storage::DEFAULT_MAX_OBJECT_BYTES,
            quotas: quota::OrgQuotas::default(),
        }
    }
}

impl Limits {
    /// The most a YAML or protobuf body may grow to once decoded (its JSON size): twice
    /// the body limit, enough for any body that decodes to a storable object, and a
    /// bound on YAML alias expansion.
    pub fn max_decoded_bytes(&self) -> usize {
        self.max_request_body_bytes.saturating_mul(2)
    }
}

#[derive(Clone, Debug)]
pub struct VersionInfo {
    pub git_version: String,
    pub major: String,
    pub minor: String,
}

impl Default for VersionInfo {
    fn default() -> Self {
        VersionInfo {
            git_version: format!("v1.35.0+canopy-{}", env!("CARGO_PKG_VERSION")),
            major: "1".into(),
            minor: "35".into(),
        }
    }
}

/// The plug-ins every shard runs: kcp tenancy (workspace paths, the shard-to-shard
/// logical cluster endpoints) and the token service. The composition root, until they
/// move into crates of their own.
fn default_plugins() -> plugin::Plugins {
    plugin::Plugins::default()
        .with_validating(admission::ReservedMetadata)
        .with_validating(tenancy_plugin::TenancyObjects)
        .with_validating(admission::RbacEscalation)
        .with_resolver(tenancy_plugin::WorkspacePaths)
        .with_resource_handler(tenancy_plugin::HomeWorkspace)
        .with_path_handler(tenancy_plugin::LogicalClusterPeers)
        .with_path_handler(tokens::TokenService)
}

/// Everything a request handler needs. Cheap to clone (`Arc` inside).
#[derive(Clone)]
pub struct ApiServer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Store,
    /// The token service's signing key: only on the shard holding root; every other
    /// shard verifies with public keys only (`auth`).
    pub tokens: Option<Arc<TokenIssuer>>,
    /// Verifies bearer tokens: the issuer's keys (as the root shard publishes them) and
    /// revocations ([`tokens`]).
    pub auth: Arc<canopy_auth::Authenticator>,
    /// Identifies this process in token state versions (a restart is a change).
    pub boot_id: String,
    /// Bumped whenever token keys or revocations change (wakes long polls).
    pub token_changes: tokio::sync::watch::Sender<u64>,
    pub config: Config,
    pub registry: registry::Registry,
    pub metrics: metrics::Metrics,
    pub apis: apis::ApisCache,
    pub continue_keys: continue_token::ContinueKeys,
    /// Other shards, once configured ([`ApiServer::set_peers`]).
    pub peers: parking_lot::RwLock<Option<peers::Peers>>,
    /// Workspace path → logical cluster name of the logical clusters held here (for
    /// those whose parents live on other shards, resolved without walking from `root`).
    pub paths: parking_lot::RwLock<std::collections::HashMap<String, String>>,
    /// Root's WorkspaceTypes (`root:<name>`), copied from root's shard when this shard
    /// does not hold root (refreshed with the shard's load report).
    pub type_mirror:
        parking_lot::RwLock<std::sync::Arc<std::collections::HashMap<String, serde_json::Value>>>,
    /// Shards this shard's scheduler chose lately (for loads not reported yet).
    pub recent_assignments:
        parking_lot::Mutex<std::collections::VecDeque<(std::time::Instant, String)>>,
    /// Becomes true when the server shuts down; open watches end then.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The global view of replicated objects of every shard, when a cache server is
    /// configured.
    pub global: std::sync::OnceLock<canopy_cache::CacheReader>,
    /// What kcp tenancy and the token service plug into the generic server.
    pub plugins: plugin::Plugins,
    /// Per-organization usage and quotas ([`quota`]).
    pub quota: quota::QuotaState,
}

impl ApiServer {
    /// An API server that holds the token-signing key (the shard holding root, where
    /// the token service runs).
    pub fn new(store: Store, tokens: Arc<TokenIssuer>, config: Config) -> ApiServer {
        let verifier = tokens.verifier();
        Self::build(store, Some(tokens), verifier, config)
    }

    /// An API server without any private key (every shard but root's): it verifies
    /// tokens with `verifier`'s public keys until root's token state arrives, then with
    /// the keys root's shard publishes.
    pub fn verify_only(
        store: Store,
        verifier: canopy_auth::TokenVerifier,
        config: Config,
    ) -> ApiServer {
        Self::build(store, None, verifier, config)
    }

    fn build(
        store: Store,
        tokens: Option<Arc<TokenIssuer>>,
        verifier: canopy_auth::TokenVerifier,
        config: Config,
    ) -> ApiServer {
        let registry = registry::Registry::builtin();
        let apis = apis::ApisCache::new(registry.clone());
        ApiServer {
            inner: Arc::new(Inner {
                store,
                auth: Arc::new(canopy_auth::Authenticator::new(verifier)),
                boot_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
                token_changes: tokio::sync::watch::Sender::new(0),
                tokens,
                continue_keys: config
                    .continue_keys
                    .clone()
                    .unwrap_or_else(continue_token::ContinueKeys::random),
                config,
                registry,
                metrics: metrics::Metrics::default(),
                apis,
                shutdown: tokio::sync::watch::Sender::new(false),
                peers: Default::default(),
                paths: Default::default(),
                type_mirror: Default::default(),
                recent_assignments: Default::default(),
                global: std::sync::OnceLock::new(),
                plugins: default_plugins(),
                quota: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The token-signing key, on the shard holding root only.
    pub fn tokens(&self) -> Option<&Arc<TokenIssuer>> {
        self.inner.tokens.as_ref()
    }

    /// What authenticates bearer tokens here (keys and revocations).
    pub fn authenticator(&self) -> &Arc<canopy_auth::Authenticator> {
        &self.inner.auth
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Ends every open watch (their clients re-list elsewhere or after a restart);
    /// called when serving stops.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// The global view (every shard's replicated objects, from the cache server), if
    /// this shard replicates.
    pub fn global(&self) -> Option<&canopy_cache::CacheReader> {
        self.inner.global.get()
    }

    /// Sets the global view once; false if it was already set.
    pub fn set_global(&self, reader: canopy_cache::CacheReader) -> bool {
        self.inner.global.set(reader).is_ok()
    }

    /// Creates a logical cluster with its default namespaces and RBAC, if it does not
    /// exist yet. Idempotent.
    pub async fn ensure_logical_cluster(&self, name: &str) -> Result<(), canopy_core::ApiError> {
        bootstrap::ensure_logical_cluster(self, name).await
    }

    /// Configures how this shard reaches the other shards (and root's shard), then
    /// registers it there.
    pub fn set_peers(&self, cfg: &peers::PeerConfig) -> Result<(), peers::PeerError> {
        let p = peers::Peers::new(cfg, &self.inner.config.shard_name)?;
        *self.inner.peers.write() = Some(p);
        let api = self.clone();
        tokio::spawn(async move {
            if let Err(e) = workspaces::register_shard(&api).await {
                tracing::warn!(error = %e, "registering the shard");
            }
            if let Err(e) = workspaces::refresh_type_mirror(&api).await {
                tracing::warn!(error = %e, "mirroring root's workspace types");
            }
        });
        Ok(())
    }

    /// Creates or updates this shard's `Shard` object in `root` (held by this shard).
    pub async fn register_shard(&self) -> Result<(), canopy_core::ApiError> {
        workspaces::register_shard(self).await
    }

    /// Adds `kcp.io/cluster` to `LogicalCluster` objects written before it was set.
    pub async fn annotate_logical_clusters(&self) -> Result<usize, canopy_core::ApiError> {
        bootstrap::annotate_logical_clusters(self).await
    }

    /// Whether a logical cluster exists on this shard.
    pub fn logical_cluster_exists(&self, name: &str) -> bool {
        bootstrap::logical_cluster_exists(&self.inner.store, name)
    }

    /// Starts the background controllers; they stop when the returned handle is dropped
    /// or aborted.
    pub fn start_controllers(&self) -> controllers::Controllers {
        quota::spawn(self);
        controllers::Controllers::start(self.clone())
    }
}
