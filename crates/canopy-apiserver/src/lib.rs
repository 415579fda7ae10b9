//! The generic Kubernetes API server of a shard: it knows no workspace, shard or token
//! service. Capabilities plug into it through the extension points of [`plugin`]
//! (kcp tenancy in `canopy-tenancy`, the token service in `canopy-tokens`; a shard's
//! composition root is `shard::plugins`).
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
//!    running, all through the same store; plug-ins add theirs
//!    ([`plugin::Background`]).

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
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod registry;
pub mod response;
pub mod rest;
pub mod reviews;
pub mod scale;
pub mod server;
pub mod watch;

use std::sync::Arc;

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body_bytes: codec::DEFAULT_MAX_BODY_BYTES,
            max_object_bytes: canopy_storage::DEFAULT_MAX_OBJECT_BYTES,
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

/// Everything a request handler needs. Cheap to clone (`Arc` inside).
#[derive(Clone)]
pub struct ApiServer {
    pub(crate) inner: Arc<Inner>,
}

/// A server held without keeping it alive ([`ApiServer::downgrade`]).
#[derive(Clone)]
pub struct WeakApiServer(std::sync::Weak<Inner>);

impl WeakApiServer {
    /// The server, while it is still alive.
    pub fn upgrade(&self) -> Option<ApiServer> {
        self.0.upgrade().map(|inner| ApiServer { inner })
    }
}

pub(crate) struct Inner {
    pub store: Store,
    /// Verifies bearer tokens (keys and revocations, kept current by a plug-in).
    pub auth: Arc<canopy_auth::Authenticator>,
    pub config: Config,
    pub registry: registry::Registry,
    pub metrics: metrics::Metrics,
    pub apis: apis::ApisCache,
    pub continue_keys: continue_token::ContinueKeys,
    /// Becomes true when the server shuts down; open watches end then.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The global view of replicated objects of every shard, when a cache server is
    /// configured.
    pub global: std::sync::OnceLock<canopy_cache::CacheReader>,
    /// What plug-ins (kcp tenancy, the token service) add to the generic server.
    pub plugins: plugin::Plugins,
}

impl ApiServer {
    /// A server verifying bearer tokens with `verifier` (until a plug-in applies newer
    /// keys and revocations to its [`ApiServer::authenticator`]), extended by `plugins`.
    pub fn new(
        store: Store,
        verifier: canopy_auth::TokenVerifier,
        config: Config,
        plugins: plugin::Plugins,
    ) -> ApiServer {
        let registry = registry::Registry::builtin(&plugins);
        let apis = apis::ApisCache::new(registry.clone());
        ApiServer {
            inner: Arc::new(Inner {
                store,
                auth: Arc::new(canopy_auth::Authenticator::new(verifier)),
                continue_keys: config
                    .continue_keys
                    .clone()
                    .unwrap_or_else(continue_token::ContinueKeys::random),
                config,
                registry,
                metrics: metrics::Metrics::default(),
                apis,
                shutdown: tokio::sync::watch::Sender::new(false),
                global: std::sync::OnceLock::new(),
                plugins,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
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

    /// The state a plug-in keeps on this server ([`plugin::Plugins::with_state`]).
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.plugins.state.get::<T>()
    }

    /// The resources every logical cluster serves (built-ins with their strategies).
    pub fn registry(&self) -> &registry::Registry {
        &self.inner.registry
    }

    /// Changes to true when the server shuts down.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Whether the server is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// A handle that does not keep the server (and its store) alive.
    pub fn downgrade(&self) -> WeakApiServer {
        WeakApiServer(Arc::downgrade(&self.inner))
    }

    /// The logical cluster `name` (a workspace path or a logical cluster name) means on
    /// this server: the plug-in [`plugin::ClusterResolver`]'s answer, else `name`.
    pub fn resolve_cluster(&self, name: &str) -> String {
        self.inner
            .plugins
            .resolver
            .as_ref()
            .and_then(|r| r.resolve(self, name))
            .unwrap_or_else(|| name.to_string())
    }

    /// Whether a logical cluster exists on this server: the plug-in
    /// [`plugin::ClusterResolver`] says, else whether it has its `default` namespace.
    pub fn logical_cluster_exists(&self, name: &str) -> bool {
        match &self.inner.plugins.resolver {
            Some(r) => r.exists(self, name),
            None => self
                .inner
                .store
                .get(&canopy_storage::ObjectKey::new(
                    "/namespaces",
                    name,
                    "",
                    "default",
                ))
                .is_some(),
        }
    }

    /// Starts the background controllers, the server's and the plug-ins'
    /// ([`plugin::Background`]); they stop when the returned handle is dropped.
    pub fn start_controllers(&self) -> controllers::Controllers {
        controllers::Controllers::start(self.clone())
    }
}
