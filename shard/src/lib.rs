//! A Canopy shard: one process that serves any number of logical clusters, all stored
//! in one PostgreSQL database, over HTTPS at `/clusters/<name>/...`.
//!
//! [`Shard::start`] is what the `shard` binary, the all-in-one `canopy start` and the
//! integration tests all call, so every server runs in-process in tests exactly as it
//! does in production.
//!
//! With [`ShardOptions::cache_server`] set, the shard replicates its objects of
//! [`REPLICATED_RESOURCES`] to the cache server (a `canopy_cache::Replicator`, never on
//! the request path) and reads every shard's copies into the global view
//! (`ApiServer::global`, a `canopy_cache::CacheReader`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use canopy_apiserver::plugin::Plugins;
use canopy_apiserver::{ApiServer, Config, ServerLimits, TlsConfig, VersionInfo};
use canopy_auth::{Pki, TokenIssuer, TokenVerifier};
use canopy_storage::{Store, StoreOptions};
use canopy_tenancy::quota::OrgQuotas;
use canopy_tenancy::{KcpTenancy, TenancyConfig, TenancyExt};
use canopy_tokens::TokenService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod flags;

pub use canopy_cache::{Credentials as CacheCredentials, REPLICATED_RESOURCES};

/// Where the cache server is and how this shard authenticates to it.
#[derive(Debug, Clone)]
pub struct CacheServerOptions {
    /// `https://host:port`.
    pub url: String,
    /// PEM of the CA of the cache server's serving certificate.
    pub ca_cert_pem: String,
    /// A token the cache server issued for this shard (`cache-server issue-token
    /// --shard <shard name>`).
    pub credentials: CacheCredentials,
    /// How often the replicator checks that an idle cache server still has this shard
    /// synced (notices a restarted cache server).
    pub heartbeat: Duration,
    /// Longest wait between retries while the cache server is unreachable.
    pub max_backoff: Duration,
}

impl CacheServerOptions {
    pub fn new(url: &str, ca_cert_pem: &str, credentials: CacheCredentials) -> Self {
        CacheServerOptions {
            url: url.to_string(),
            ca_cert_pem: ca_cert_pem.to_string(),
            credentials,
            heartbeat: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// How to run a shard. Its `Debug` never shows the database password.
#[derive(Clone)]
pub struct ShardOptions {
    /// Where the shard keeps its PKI and signing keys.
    pub root_directory: PathBuf,
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests).
    pub secure_port: u16,
    pub database_url: String,
    /// The host name or address clients use; defaults to the bind address (or
    /// 127.0.0.1 when binding to all interfaces).
    pub external_hostname: Option<String>,
    /// The URL clients reach workspaces at, when it is not this shard's own (behind a
    /// front-proxy: the proxy's `https://host:port`); used in Workspace `spec.URL`,
    /// LogicalCluster `status.URL` and discovery's server address.
    pub external_url: Option<String>,
    pub store: StoreOptions,
    /// CA (PEM) of the front-proxy's client certificates: requests on connections
    /// presenting a certificate it signed are authenticated by their `X-Remote-*`
    /// headers. `None`: those headers are always ignored.
    pub proxy_client_ca_pem: Option<String>,
    /// Whether this shard creates (and so holds) the `root` logical cluster. Exactly
    /// one shard behind a front-proxy does.
    pub root: bool,
    /// This shard's name (its `Shard` object in `root`, its identity at the cache
    /// server); `root` by convention for the shard holding root.
    pub shard_name: String,
    /// Replicate to and read from a cache server; `None`: no global view.
    pub cache_server: Option<CacheServerOptions>,
    /// Public keys of the token service (root's shard) a shard without root verifies
    /// tokens with until root's token state (keys and revocations) first arrives; empty:
    /// no token is accepted until then. Ignored on root's shard, which holds the
    /// signing key.
    pub token_verifier: TokenVerifier,
    /// Connection and request limits (timeouts, connection caps, in-flight requests
    /// with fair queuing, watches per user, rate limits); `Default`: production.
    pub limits: ServerLimits,
    /// Request body and object size limits and organization quotas;
    /// `size_limits.max_object_bytes` overrides `store.max_object_bytes`.
    pub size_limits: Limits,
}

/// A shard's size limits (the generic server's) and per-organization quotas (kcp
/// tenancy's), with kube-apiserver's, etcd's and Canopy's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body read (kube: 3 MiB); larger bodies get 413.
    pub max_request_body_bytes: usize,
    /// The largest object stored, as serialized JSON (etcd: 1.5 MiB); larger results of
    /// any write get 413 and change nothing.
    pub max_object_bytes: usize,
    /// Per-organization quotas (workspaces, objects, stored bytes) of user writes;
    /// superusers override them per organization.
    pub quotas: OrgQuotas,
}

impl Default for Limits {
    fn default() -> Self {
        let server = canopy_apiserver::Limits::default();
        Limits {
            max_request_body_bytes: server.max_request_body_bytes,
            max_object_bytes: server.max_object_bytes,
            quotas: OrgQuotas::default(),
        }
    }
}

impl Limits {
    /// The generic server's part.
    pub fn server(&self) -> canopy_apiserver::Limits {
        canopy_apiserver::Limits {
            max_request_body_bytes: self.max_request_body_bytes,
            max_object_bytes: self.max_object_bytes,
        }
    }
}

/// The composition root: the plug-ins every shard runs on the generic API server, in
/// order — kcp's reserved metadata, kcp tenancy (workspace paths, workspaces, logical
/// clusters, shards and their peers, quotas), kube's RBAC escalation checks, and the
/// token service (with the signing key on the shard holding root).
pub fn plugins(tenancy: TenancyConfig, tokens: Option<Arc<TokenIssuer>>) -> Plugins {
    Plugins::default()
        .with_validating(
            canopy_apiserver::admission::ReservedMetadata::default()
                .allow(canopy_apis::USER_ANNOTATIONS),
        )
        .plugin(KcpTenancy(tenancy))
        .plugin(canopy_apis::KcpApis::default())
        .with_validating(canopy_apiserver::admission::RbacEscalation)
        .plugin(TokenService(tokens))
}

impl std::fmt::Debug for ShardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardOptions")
            .field("root_directory", &self.root_directory)
            .field("bind_address", &self.bind_address)
            .field("secure_port", &self.secure_port)
            .field("database_url", &redact_url(&self.database_url))
            .field("external_hostname", &self.external_hostname)
            .field("external_url", &self.external_url)
            .field("root", &self.root)
            .field("shard_name", &self.shard_name)
            .field("cache_server", &self.cache_server)
            .field("token_verifier", &self.token_verifier)
            .field("limits", &self.limits)
            .field("size_limits", &self.size_limits)
            .finish_non_exhaustive()
    }
}

/// A URL with the password of its user info replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl ShardOptions {
    /// Options with defaults for everything but the directory and database.
    pub fn new(root_directory: PathBuf, database_url: String) -> ShardOptions {
        ShardOptions {
            root_directory,
            bind_address: IpAddr::from([127, 0, 0, 1]),
            secure_port: 0,
            database_url,
            external_hostname: None,
            external_url: None,
            store: StoreOptions::default(),
            proxy_client_ca_pem: None,
            root: true,
            shard_name: "root".into(),
            cache_server: None,
            token_verifier: TokenVerifier::default(),
            limits: ServerLimits::default(),
            size_limits: Limits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] canopy_storage::StorageError),
    #[error(transparent)]
    Auth(#[from] canopy_auth::AuthError),
    #[error("bootstrapping logical clusters: {0}")]
    Bootstrap(canopy_core::ApiError),
    #[error(transparent)]
    Serve(#[from] canopy_apiserver::server::ServeError),
    #[error(transparent)]
    Cache(#[from] canopy_cache::CacheError),
    #[error("continue-token secret: {0}")]
    Secret(#[from] canopy_apiserver::continue_token::SecretError),
}

/// A running shard.
pub struct Shard {
    pub api: ApiServer,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `https://host:port`.
    pub url: String,
    pub ca_cert_pem: String,
    /// The token-signing key: on the shard holding root only (`None` elsewhere: other
    /// shards verify tokens with root's public keys).
    pub tokens: Option<Arc<TokenIssuer>>,
    /// Where the PKI (and, on root's shard, the token signing key) live
    /// (`token-signing.pub` is the key the front-proxy needs).
    pub pki_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    serve: Option<JoinHandle<()>>,
    _controllers: canopy_apiserver::controllers::Controllers,
    replicator: Option<canopy_cache::Replicator>,
}

impl Shard {
    pub async fn start(opts: ShardOptions) -> Result<Shard, ShardError> {
        let addr = SocketAddr::new(opts.bind_address, opts.secure_port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ShardError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ShardError::Listen { addr, source })?;
        let endpoint =
            canopy_https::Endpoint::at(addr, opts.bind_address, opts.external_hostname.as_deref());
        let url = endpoint.url.clone();

        let pki_dir = opts.root_directory.join("pki");
        let pki = Pki::load_or_create(&pki_dir, &endpoint.cert_hosts)?;
        // Only root's shard holds the token-signing key; the others verify with public
        // keys (root's token state) and must not hold a copy of it.
        let tokens = if opts.root {
            Some(Arc::new(TokenIssuer::load_or_create(&pki_dir)?))
        } else {
            remove_signing_key_copy(&pki_dir)?;
            None
        };
        let continue_keys = canopy_apiserver::continue_token::ContinueKeys::load_or_create(
            &pki_dir.join("continue-token.key"),
        )?;
        let mut store_options = opts.store.clone();
        store_options.max_object_bytes = opts.size_limits.max_object_bytes;
        let store = Store::open(&opts.database_url, store_options).await?;
        let config = Config {
            external_url: opts
                .external_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_else(|| url.clone()),
            ca_cert_pem: pki.ca_cert_pem.clone(),
            version: VersionInfo::default(),
            limits: opts.size_limits.server(),
            continue_keys: Some(continue_keys),
        };
        let tenancy = TenancyConfig {
            shard_name: opts.shard_name.clone(),
            shard_url: url.clone(),
            quotas: opts.size_limits.quotas,
        };
        // root's shard verifies with its own signing key's public keys; the others with
        // root's, until root's token state arrives
        let verifier = match &tokens {
            Some(t) => t.verifier(),
            None => opts.token_verifier.clone(),
        };
        let api = ApiServer::new(store, verifier, config, plugins(tenancy, tokens.clone()));
        if opts.root {
            api.ensure_logical_cluster("root")
                .await
                .map_err(ShardError::Bootstrap)?;
        }
        api.annotate_logical_clusters()
            .await
            .map_err(ShardError::Bootstrap)?;
        if opts.root {
            canopy_tokens::load(&api);
            // the shard holding root registers itself there; other shards register with
            // root's shard once placement across shards lands
            api.register_shard().await.map_err(ShardError::Bootstrap)?;
        }
        let controllers = api.start_controllers();
        let replicator = match &opts.cache_server {
            Some(c) => Some(start_replication(&api, &opts.shard_name, c)?),
            None => None,
        };
        let tls = TlsConfig {
            cert_pem: pki.serving_cert_pem.clone(),
            key_pem: pki.serving_key_pem.clone(),
            proxy_client_ca_pem: opts.proxy_client_ca_pem.clone(),
        };
        // fail early on bad TLS material rather than inside the task
        canopy_apiserver::server::acceptor(&tls)?;
        let (tx, rx) = oneshot::channel::<()>();
        let serve_api = api.clone();
        let limits = opts.limits.clone();
        let serve = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) =
                canopy_apiserver::serve(serve_api, listener, tls, limits, shutdown).await
            {
                tracing::error!(error = %e, "server stopped");
            }
        });
        tracing::info!(%url, "shard serving");
        Ok(Shard {
            api,
            addr,
            url,
            ca_cert_pem: pki.ca_cert_pem,
            tokens,
            pki_dir,
            shutdown: Some(tx),
            serve: Some(serve),
            _controllers: controllers,
            replicator,
        })
    }

    /// The replicator to the cache server, if one is configured.
    pub fn replicator(&self) -> Option<&canopy_cache::Replicator> {
        self.replicator.as_ref()
    }

    /// Issues a token through the token service (recorded, so it can be listed and
    /// revoked); only on the shard holding root.
    pub async fn issue_token(
        &self,
        user: &str,
        groups: &[String],
        ttl: Duration,
    ) -> Result<String, canopy_core::ApiError> {
        canopy_tokens::issue(&self.api, user, groups, ttl, "canopy")
            .await
            .map(|(_, t)| t)
    }

    /// Issues a token for the built-in admin (member of `system:masters`); only on the
    /// shard holding root (the others have no signing key).
    pub fn admin_token(&self, ttl: Duration) -> Result<String, canopy_auth::AuthError> {
        self.tokens
            .as_ref()
            .ok_or(canopy_auth::AuthError::NoSigningKey)?
            .issue("admin", &["system:masters".to_string()], ttl)
    }

    /// Stops serving (in-flight requests finish) and closes the store.
    pub async fn stop(mut self) {
        if let Some(r) = self.replicator.take() {
            r.stop();
        }
        if let Some(g) = self.api.global() {
            g.stop();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.serve.take() {
            let _ = h.await;
        }
        self.api.store().close().await;
    }
}

/// A shard without root must not hold the token-signing key. Older versions (and
/// `canopy start --shards N` before) copied root's key into every shard's directory:
/// such a copy is deleted (only root's shard needs it; tokens are verified here with
/// root's public keys).
fn remove_signing_key_copy(pki_dir: &std::path::Path) -> Result<(), canopy_auth::AuthError> {
    let copy = pki_dir.join(canopy_auth::token::ACTIVE_KEY_FILE);
    match std::fs::remove_file(&copy) {
        Ok(()) => {
            tracing::warn!(file = %copy.display(), "removed a copy of the token-signing key from a shard without root (only root's shard signs tokens; others verify with its public keys)");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(canopy_auth::AuthError::Io {
            path: copy.display().to_string(),
            source: e,
        }),
    }
}

/// A kubeconfig (YAML) for `user` with `token`, whose current context `context` points at
/// `<url>/clusters/<cluster>`.
pub fn kubeconfig(url: &str, ca_pem: &str, cluster: &str, token: &str) -> String {
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {cluster}
  cluster:
    certificate-authority-data: {ca}
    server: {url}/clusters/{cluster}
- name: base
  cluster:
    certificate-authority-data: {ca}
    server: {url}
contexts:
- name: {cluster}
  context:
    cluster: {cluster}
    user: admin
- name: base
  context:
    cluster: base
    user: admin
current-context: {cluster}
preferences: {{}}
users:
- name: admin
  user:
    token: {token}
"
    )
}

/// Starts replicating this shard's objects of [`REPLICATED_RESOURCES`] and the global
/// view of everyone's.
#[allow(clippy::result_large_err)] // ShardError carries an ApiError from bootstrap
fn start_replication(
    api: &ApiServer,
    shard_name: &str,
    c: &CacheServerOptions,
) -> Result<canopy_cache::Replicator, canopy_cache::CacheError> {
    let client = canopy_cache::CacheClient::new(&canopy_cache::CacheClientConfig {
        url: c.url.clone(),
        ca_cert_pem: c.ca_cert_pem.clone(),
        credentials: c.credentials.clone(),
    })?;
    let mut ropts = canopy_cache::ReplicatorOptions::new(REPLICATED_RESOURCES);
    ropts.heartbeat = c.heartbeat;
    ropts.max_backoff = c.max_backoff;
    let replicator =
        canopy_cache::Replicator::start(shard_name, client.clone(), api.store().clone(), ropts);
    let mut gopts = canopy_cache::ReaderOptions::new(REPLICATED_RESOURCES);
    gopts.max_backoff = c.max_backoff;
    api.set_global(canopy_cache::CacheReader::start(client, gopts));
    tracing::info!(shard = shard_name, cache = %c.url, "replicating to the cache server");
    Ok(replicator)
}
