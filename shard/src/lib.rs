//! A Canopy shard: one process that serves any number of logical clusters, all stored
//! in one PostgreSQL database, over HTTPS at `/clusters/<name>/...`.
//!
//! [`Shard::start`] is what the `shard` binary, the all-in-one `canopy start` and the
//! integration tests all call, so every server runs in-process in tests exactly as it
//! does in production.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use canopy_apiserver::{ApiServer, Config, TlsConfig, VersionInfo};
use canopy_auth::{Pki, TokenIssuer};
use canopy_storage::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How to run a shard.
#[derive(Debug, Clone)]
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
    /// This shard's name (its `Shard` object in `root`); `root` by convention for the
    /// shard holding root.
    pub shard_name: String,
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
}

/// A running shard.
pub struct Shard {
    pub api: ApiServer,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `https://host:port`.
    pub url: String,
    pub ca_cert_pem: String,
    pub tokens: Arc<TokenIssuer>,
    /// Where the PKI and the token signing key live (`token-signing.pub` is the key
    /// the front-proxy needs).
    pub pki_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    serve: Option<JoinHandle<()>>,
    _controllers: canopy_apiserver::controllers::Controllers,
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
        let host = opts.external_hostname.clone().unwrap_or_else(|| {
            if opts.bind_address.is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                opts.bind_address.to_string()
            }
        });
        let url_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let url = format!("https://{url_host}:{}", addr.port());

        let pki_dir = opts.root_directory.join("pki");
        let pki = Pki::load_or_create(&pki_dir, &[host.clone(), opts.bind_address.to_string()])?;
        let tokens = Arc::new(TokenIssuer::load_or_create(&pki_dir)?);
        let store = Store::open(&opts.database_url, opts.store.clone()).await?;
        let api = ApiServer::new(
            store,
            tokens.clone(),
            Config {
                external_url: opts
                    .external_url
                    .as_deref()
                    .map(|u| u.trim_end_matches('/').to_string())
                    .unwrap_or_else(|| url.clone()),
                ca_cert_pem: pki.ca_cert_pem.clone(),
                version: VersionInfo::default(),
                shard_name: opts.shard_name.clone(),
                shard_url: url.clone(),
            },
        );
        if opts.root {
            api.ensure_logical_cluster("root")
                .await
                .map_err(ShardError::Bootstrap)?;
        }
        api.annotate_logical_clusters()
            .await
            .map_err(ShardError::Bootstrap)?;
        if opts.root {
            // the shard holding root registers itself there; other shards register with
            // root's shard once placement across shards lands
            api.register_shard().await.map_err(ShardError::Bootstrap)?;
        }
        let controllers = api.start_controllers();
        let tls = TlsConfig {
            cert_pem: pki.serving_cert_pem.clone(),
            key_pem: pki.serving_key_pem.clone(),
            proxy_client_ca_pem: opts.proxy_client_ca_pem.clone(),
        };
        // fail early on bad TLS material rather than inside the task
        canopy_apiserver::server::acceptor(&tls)?;
        let (tx, rx) = oneshot::channel::<()>();
        let serve_api = api.clone();
        let serve = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = canopy_apiserver::serve(serve_api, listener, tls, shutdown).await {
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
        })
    }

    /// Issues a token for the built-in admin (member of `system:masters`).
    pub fn admin_token(&self, ttl: Duration) -> Result<String, canopy_auth::AuthError> {
        self.tokens
            .issue("admin", &["system:masters".to_string()], ttl)
    }

    /// Stops serving (in-flight requests finish) and closes the store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.serve.take() {
            let _ = h.await;
        }
        self.api.store().close().await;
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
