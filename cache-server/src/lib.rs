//! The Canopy cache server: every shard replicates its globally visible objects
//! (`canopy_cache::REPLICATED_RESOURCES`: WorkspaceTypes, Shards, ...) into it, and reads
//! every shard's copies back (kcp's cache server).
//!
//! - [`store`]: the objects, in memory, with one monotonically increasing
//!   resourceVersion and a ring of recent events (why in memory: see there).
//! - [`http`]: the API of `canopy_cache::wire` — batched per-shard upserts/deletes,
//!   per-shard sync, list and NDJSON watch — with bearer-token authentication and
//!   per-shard authorization.
//! - [`metrics`] — `/metrics`.
//!
//! This module starts it: TLS (rustls, the CA and serving certificate of
//! `canopy_auth::Pki` in `<root>/pki`), the token-signing key (`canopy_auth::TokenIssuer`,
//! also in `<root>/pki`), one task per connection, graceful shutdown. [`CacheServer::start`]
//! is what the binary and the tests call.
//!
//! # Identities
//! Clients authenticate with bearer tokens (ES256 JWTs) that this cache server signs
//! ([`issue_token`], `cache-server issue-token`): a shard as `system:shard:<name>` in group
//! `system:cache:shards` — it may write only its own objects and read everything — and a
//! front-proxy as `system:cache-reader:<name>` in group `system:cache:readers` — read
//! only. Anyone else gets 401 (no or a bad token) or 403.

pub mod http;
pub mod metrics;
pub mod store;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use canopy_auth::{Pki, TokenIssuer};
use canopy_cache::wire::{reader_user, shard_user, READER_GROUP, SHARD_GROUP};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use canopy_https::TlsAcceptor;

/// How to run a cache server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where the cache server keeps its PKI and token-signing key (`<dir>/pki`).
    pub root_directory: PathBuf,
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests).
    pub secure_port: u16,
    /// The host name or address clients use; defaults to the bind address (or
    /// 127.0.0.1 when binding to all interfaces).
    pub external_hostname: Option<String>,
    /// Events kept for watches that resume.
    pub history_events: usize,
    /// A watcher further behind than this is cut off (it re-lists).
    pub watch_channel_capacity: usize,
    /// How often idle watches get a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            root_directory: PathBuf::from(".canopy-cache"),
            bind_address: IpAddr::from([127, 0, 0, 1]),
            secure_port: 6444,
            external_hostname: None,
            history_events: 10_000,
            watch_channel_capacity: 8_192,
            bookmark_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] canopy_auth::AuthError),
    #[error("invalid TLS material: {0}")]
    Tls(String),
}

/// Whom a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSubject {
    /// A shard: writes its own objects, reads everything.
    Shard(String),
    /// A read-only client (a front-proxy).
    Reader(String),
}

/// Issues a token for `subject`, signed with the key in `<root_directory>/pki` (created
/// when missing), valid for `ttl`.
pub fn issue_token(
    root_directory: &Path,
    subject: &TokenSubject,
    ttl: Duration,
) -> Result<String, canopy_auth::AuthError> {
    let tokens = TokenIssuer::load_or_create(&root_directory.join("pki"))?;
    issue_with(&tokens, subject, ttl)
}

fn issue_with(
    tokens: &TokenIssuer,
    subject: &TokenSubject,
    ttl: Duration,
) -> Result<String, canopy_auth::AuthError> {
    match subject {
        TokenSubject::Shard(s) => tokens.issue(&shard_user(s), &[SHARD_GROUP.to_string()], ttl),
        TokenSubject::Reader(r) => tokens.issue(&reader_user(r), &[READER_GROUP.to_string()], ttl),
    }
}

/// A running cache server.
pub struct CacheServer {
    pub addr: SocketAddr,
    /// `https://host:port`.
    pub url: String,
    pub ca_cert_pem: String,
    pub tokens: Arc<TokenIssuer>,
    app: Arc<http::App>,
    shutdown: watch::Sender<bool>,
    serve: Option<JoinHandle<()>>,
}

impl CacheServer {
    pub async fn start(opts: ServerOptions) -> Result<CacheServer, CacheServerError> {
        let addr = SocketAddr::new(opts.bind_address, opts.secure_port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| CacheServerError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| CacheServerError::Listen { addr, source })?;
        let endpoint =
            canopy_https::Endpoint::at(addr, opts.bind_address, opts.external_hostname.as_deref());
        let url = endpoint.url.clone();
        let pki_dir = opts.root_directory.join("pki");
        let pki = Pki::load_or_create(&pki_dir, &endpoint.cert_hosts)?;
        let tokens = Arc::new(TokenIssuer::load_or_create(&pki_dir)?);
        let acceptor = acceptor(&pki.serving_cert_pem, &pki.serving_key_pem)?;

        // A new instance starts its resourceVersions at the current time in microseconds:
        // above any resourceVersion an earlier instance handed out, so readers resuming
        // an old watch get 410 and re-list.
        let start_rv = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let instance = uuid::Uuid::new_v4().to_string();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = Arc::new(http::App {
            store: store::MemStore::new(
                &instance,
                start_rv,
                opts.history_events,
                opts.watch_channel_capacity,
            ),
            tokens: tokens.clone(),
            metrics: metrics::Metrics::default(),
            bookmark_interval: opts.bookmark_interval,
            shutdown: shutdown_rx.clone(),
        });
        let serve_app = app.clone();
        let serve = tokio::spawn(async move {
            let mut rx = shutdown_rx;
            serve(serve_app, listener, acceptor, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        });
        tracing::info!(%url, %instance, "cache server serving");
        Ok(CacheServer {
            addr,
            url,
            ca_cert_pem: pki.ca_cert_pem,
            tokens,
            app,
            shutdown,
            serve: Some(serve),
        })
    }

    /// Identifies this run: a restarted cache server has another instance.
    pub fn instance(&self) -> &str {
        self.app.store.instance()
    }

    /// The objects (for tests and diagnostics).
    pub fn store(&self) -> &store::MemStore {
        &self.app.store
    }

    /// Issues a token for `subject`.
    pub fn token(
        &self,
        subject: &TokenSubject,
        ttl: Duration,
    ) -> Result<String, canopy_auth::AuthError> {
        issue_with(&self.tokens, subject, ttl)
    }

    /// Stops serving: open watches end, in-flight requests finish (up to 5 s), the port is
    /// released. Everything held is lost.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(h) = self.serve.take() {
            let _ = h.await;
        }
    }
}

impl Drop for CacheServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn acceptor(cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor, CacheServerError> {
    canopy_https::acceptor(&canopy_https::ServerTls {
        cert_pem: cert_pem.to_string(),
        key_pem: key_pem.to_string(),
        client_ca_pem: None,
    })
    .map_err(|e| CacheServerError::Tls(e.to_string()))
}

fn on_panic() -> hyper::Response<http::Body> {
    let s = canopy_cache::Status::failure(
        500,
        "InternalError",
        "the cache server panicked while handling the request",
    );
    let mut r = hyper::Response::new(http_body_util::BodyExt::boxed(http_body_util::Full::new(
        bytes::Bytes::from(serde_json::to_vec(&s).unwrap_or_default()),
    )));
    *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// Accepts connections until `shutdown`, then lets open ones finish (up to 5 s).
async fn serve(
    app: Arc<http::App>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
) {
    let handle = move |req, _conn| http::handle(app.clone(), req);
    canopy_https::serve(
        listener,
        acceptor,
        handle,
        on_panic,
        shutdown,
        || {},
        canopy_https::ServeOptions {
            grace: Duration::from_secs(5),
            upgrades: true,
            ..Default::default()
        },
    )
    .await;
}
