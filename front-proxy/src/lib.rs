//! Canopy's front-proxy: the one address clients use in front of many shards.
//!
//! A request passes these layers, in this order, each in its own module:
//!
//! 1. [`server`]: TLS for clients (rustls, ALPN h2 and http/1.1), a task per connection,
//!    graceful shutdown.
//! 2. [`handler`]: the proxy's own endpoints (`/healthz`, `/livez`, `/readyz`,
//!    `/metrics`), then **authentication** of the bearer JWT with the issuer's public
//!    keys ([`canopy_auth::TokenVerifier`], 401 `Status` when bad or expired), then the
//!    per-user **rate limit** ([`ratelimit`], 429 with `Retry-After`), then **routing**
//!    by the [`index`] (`/clusters/<path or name>/…` to the shard holding that logical
//!    cluster; requests without `/clusters/` and `/clusters/*` to root's shard), then
//!    **forwarding** ([`backend`]).
//! 3. [`backend`]: HTTP/1.1 connections to shards over mTLS with the proxy's client
//!    certificate; the caller travels as `X-Remote-User`/`-Uid`/`-Group`/`-Extra-*`
//!    headers (clients' own `X-Remote-*` and `Authorization` headers are dropped).
//!    Responses stream back unbuffered. A shard that cannot be reached within the
//!    connect timeout is remembered as down for a moment: its workspaces get 503 with
//!    `Retry-After: 1` at once, the others keep working, and it is retried by itself.
//! 4. [`tokens`]: token keys and revocations, long-polled from root's shard into the
//!    authenticator step 2 uses (no shared state between replicas is needed for it).
//! 5. [`index`]: logical cluster path → (name, shard) and name → shard, kept by a
//!    list+watch of `/clusters/*/apis/core.kcp.io/v1alpha1/logicalclusters` on every
//!    shard (as `system:front-proxy` in `system:masters`); a miss is re-checked with the
//!    shards before the answer, so a workspace created a moment ago is found.
//!
//! Why this order: nothing is revealed (not even whether a workspace exists) and no
//! shard or index work is done for a caller who has not authenticated; the limiter keys
//! on the authenticated user and runs before routing, whose misses cost requests to
//! every shard. An unknown workspace is answered by root's shard exactly as a shard
//! answers for a workspace the caller may not enter (403), so existence never leaks.
//!
//! [`FrontProxy::start`] is what the `front-proxy` binary and the tests call.

pub mod backend;
pub mod handler;
pub mod index;
pub mod metrics;
pub mod ratelimit;
pub mod redisconn;
pub mod server;
pub mod streams;
pub mod tokens;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use canopy_auth::{ClientCa, Pki, TokenVerifier};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A shard behind the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardTarget {
    /// A name for logs and metrics (`shard-0`, `alpha`).
    pub name: String,
    /// `https://host:port`, no trailing slash.
    pub url: String,
}

/// A PEM certificate (chain) and its private key.
#[derive(Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertAndKey { .. }")
    }
}

/// How to run a front-proxy.
#[derive(Clone)]
pub struct FrontProxyOptions {
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests).
    pub secure_port: u16,
    /// Where generated certificates are kept (`<dir>/pki`): the serving certificate
    /// when `serving_cert` is not given, the proxy client CA and client certificate
    /// when `client_cert` is not given.
    pub root_directory: PathBuf,
    /// Host name clients use (for the generated serving certificate and the URL).
    pub external_hostname: Option<String>,
    /// The serving certificate; `None`: generated under `root_directory`.
    pub serving_cert: Option<CertAndKey>,
    pub shards: Vec<ShardTarget>,
    /// CA certificates (PEM bundle) that sign the shards' serving certificates.
    pub shard_ca_pem: String,
    /// The proxy's client certificate towards shards (signed by the CA shards are given
    /// as `--proxy-client-ca-file`); `None`: issued from `<root>/pki/proxy-client-ca`.
    pub client_cert: Option<CertAndKey>,
    /// Verifies bearer tokens (the token issuer's public keys).
    pub token_verifier: TokenVerifier,
    /// Connection limits (timeouts, caps per process and per address) and request
    /// limits (in-flight requests with fair queuing per user, watches per user, the
    /// per-user rate limit) — the same as a shard's (`canopy_edge`).
    pub limits: canopy_edge::ServerLimits,
    /// `redis://[user][:password@]host:port/[db]` or `rediss://…` (TLS): share the
    /// rate-limit buckets between proxy replicas in Redis instead of keeping them in
    /// this process; replicas then also share signed revocations (see [`tokens`]).
    /// Never printed unredacted ([`redisconn::redact`]).
    pub redis_url: Option<String>,
    /// CA certificate(s) (PEM) of the Redis server's certificate (`rediss://`); `None`:
    /// the system's roots.
    pub redis_ca_pem: Option<String>,
    /// How long connecting (TCP + TLS) to a shard may take.
    pub connect_timeout: Duration,
    /// How long a shard that could not be reached is answered for with 503 without
    /// trying again.
    pub shard_down_for: Duration,
}

impl std::fmt::Debug for FrontProxyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontProxyOptions")
            .field("bind_address", &self.bind_address)
            .field("secure_port", &self.secure_port)
            .field("root_directory", &self.root_directory)
            .field("external_hostname", &self.external_hostname)
            .field("shards", &self.shards)
            .field("limits", &self.limits)
            .field("redis", &self.redis_url.as_deref().map(redisconn::redact))
            .field("connect_timeout", &self.connect_timeout)
            .field("shard_down_for", &self.shard_down_for)
            .finish_non_exhaustive()
    }
}

impl FrontProxyOptions {
    /// How to reach Redis, when one is configured.
    pub fn redis(&self) -> Option<redisconn::RedisSettings> {
        self.redis_url.as_ref().map(|u| redisconn::RedisSettings {
            url: u.clone(),
            ca_pem: self.redis_ca_pem.clone(),
        })
    }

    /// Options with defaults (127.0.0.1, a free port, the production limits with the
    /// connection and watch caps halved — each proxied watch holds a connection to a
    /// shard too —, 1 s connect timeout, shards remembered as down for 1 s).
    pub fn new(
        root_directory: PathBuf,
        shards: Vec<ShardTarget>,
        shard_ca_pem: String,
        token_verifier: TokenVerifier,
    ) -> FrontProxyOptions {
        FrontProxyOptions {
            bind_address: IpAddr::from([127, 0, 0, 1]),
            secure_port: 0,
            root_directory,
            external_hostname: None,
            serving_cert: None,
            shards,
            shard_ca_pem,
            client_cert: None,
            token_verifier,
            limits: canopy_edge::ServerLimits::sharing_fds(2),
            redis_url: None,
            redis_ca_pem: None,
            connect_timeout: Duration::from_secs(1),
            shard_down_for: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] canopy_auth::AuthError),
    #[error("invalid TLS material: {0}")]
    Tls(String),
    #[error("invalid options: {0}")]
    Options(String),
    #[error("rate limiter: {0}")]
    RateLimiter(String),
    #[error("redis: {0}")]
    Redis(String),
}

/// Everything requests share.
pub(crate) struct State {
    pub auth: Arc<canopy_auth::Authenticator>,
    /// Whether root's token state (keys, revocations) has arrived once.
    pub tokens_synced: Arc<std::sync::atomic::AtomicBool>,
    /// Request limits (rate, in-flight with fair queuing, watches), as a tower layer
    /// after authentication (`handler.rs`).
    pub limits: canopy_edge::Limits,
    pub index: Arc<index::Index>,
    pub backends: Arc<backend::Backends>,
    pub metrics: metrics::Metrics,
}

/// Starts front-proxies.
pub struct FrontProxy;

impl FrontProxy {
    /// Binds, starts watching every shard and serves until [`RunningProxy::stop`].
    pub async fn start(opts: FrontProxyOptions) -> Result<RunningProxy, ProxyError> {
        let addr = SocketAddr::new(opts.bind_address, opts.secure_port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Listen { addr, source })?;
        FrontProxy::start_on(listener, opts).await
    }

    /// As [`start`](Self::start), on a listener bound already (`bind_address` and
    /// `secure_port` are ignored): who starts the shards can tell them the proxy's URL
    /// before the proxy runs.
    pub async fn start_on(
        listener: TcpListener,
        opts: FrontProxyOptions,
    ) -> Result<RunningProxy, ProxyError> {
        if opts.shards.is_empty() {
            return Err(ProxyError::Options("at least one shard is needed".into()));
        }
        let addr = SocketAddr::new(opts.bind_address, opts.secure_port);
        let addr = listener
            .local_addr()
            .map_err(|source| ProxyError::Listen { addr, source })?;
        let endpoint =
            canopy_https::Endpoint::at(addr, opts.bind_address, opts.external_hostname.as_deref());
        let url = endpoint.url.clone();

        let pki_dir = opts.root_directory.join("pki");
        let (serving, ca_cert_pem) = match &opts.serving_cert {
            Some(c) => (c.clone(), None),
            None => {
                let pki = Pki::load_or_create(&pki_dir, &endpoint.cert_hosts)?;
                (
                    CertAndKey {
                        cert_pem: pki.serving_cert_pem,
                        key_pem: pki.serving_key_pem,
                    },
                    Some(pki.ca_cert_pem),
                )
            }
        };
        let (client_cert, client_ca_pem) = match &opts.client_cert {
            Some(c) => (c.clone(), None),
            None => {
                let ca = ClientCa::load_or_create(&pki_dir, "proxy-client-ca")?;
                let (cert_pem, key_pem) = ca.load_or_issue_client_cert(
                    &pki_dir,
                    "front-proxy-client",
                    "system:front-proxy",
                    &[],
                )?;
                (CertAndKey { cert_pem, key_pem }, Some(ca.ca_cert_pem))
            }
        };
        let acceptor = server::acceptor(&serving)?;
        let backends = Arc::new(backend::Backends::new(
            &opts.shards,
            &opts.shard_ca_pem,
            &client_cert,
            opts.connect_timeout,
            opts.shard_down_for,
        )?);
        let requests = &opts.limits.requests;
        let limiter: Option<Arc<dyn ratelimit::RateLimiter>> = if requests.rate_limit_qps > 0.0 {
            let (qps, burst) = (requests.rate_limit_qps, requests.rate_limit_burst.max(1));
            Some(match &opts.redis() {
                Some(r) => Arc::new(ratelimit::RedisRateLimiter::connect(r, qps, burst).await?),
                None => Arc::new(ratelimit::TokenBuckets::new(qps, burst)),
            })
        } else {
            None
        };
        let metrics = metrics::Metrics::new(&opts.shards);
        let limits = canopy_edge::Limits::with_rate_limiter(
            requests.clone(),
            limiter,
            canopy_edge::EdgeMetrics::new(metrics.registry(), "canopy_front_proxy"),
        );
        let conn_metrics =
            canopy_https::ConnectionMetrics::new(metrics.registry(), "canopy_front_proxy");
        let index = Arc::new(index::Index::new(opts.shards.len()));
        let auth = Arc::new(canopy_auth::Authenticator::new(opts.token_verifier.clone()));
        let tokens_synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = Arc::new(State {
            auth: auth.clone(),
            tokens_synced: tokens_synced.clone(),
            limits,
            index: index.clone(),
            backends: backends.clone(),
            metrics,
        });
        let share = match &opts.redis() {
            Some(r) => Some(tokens::RedisShare::connect(r).await?),
            None => None,
        };
        let mut tasks = vec![tokio::spawn(tokens::follow(
            auth.clone(),
            backends.clone(),
            tokens_synced.clone(),
            share.clone(),
        ))];
        if let Some(s) = share {
            tasks.push(tokio::spawn(s.follow(state.clone())));
        }
        for i in 0..opts.shards.len() {
            tasks.push(tokio::spawn(index::watch_shard(
                index.clone(),
                backends.clone(),
                i,
            )));
        }
        let (tx, rx) = oneshot::channel::<()>();
        let serve_state = state.clone();
        let connections = canopy_https::ServeOptions {
            grace: Duration::from_secs(5),
            upgrades: false,
            limits: opts.limits.connections.clone(),
            metrics: conn_metrics,
        };
        let serve = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            server::serve(serve_state, listener, acceptor, connections, shutdown).await;
        });
        tracing::info!(%url, shards = opts.shards.len(), "front-proxy serving");
        Ok(RunningProxy {
            addr,
            url,
            ca_cert_pem,
            client_ca_pem,
            state,
            shutdown: Some(tx),
            serve: Some(serve),
            tasks,
        })
    }
}

/// A front-proxy serving in this process. Dropping it stops it (without waiting).
pub struct RunningProxy {
    pub addr: SocketAddr,
    /// `https://host:port`.
    pub url: String,
    /// The CA of the generated serving certificate (`None` when one was given).
    pub ca_cert_pem: Option<String>,
    /// The CA of the generated client certificate, for the shards'
    /// `--proxy-client-ca-file` (`None` when a client certificate was given).
    pub client_ca_pem: Option<String>,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    serve: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningProxy {
    /// Whether the index has listed every shard at least once and root's token state
    /// has arrived.
    pub fn is_ready(&self) -> bool {
        self.state.index.is_synced()
            && self
                .state
                .tokens_synced
                .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Revoked token ids this proxy knows of.
    pub fn revoked_tokens(&self) -> usize {
        self.state.auth.revoked_len()
    }

    /// Token states received through Redis and dropped (unsigned, or not signed by a
    /// key this proxy trusts).
    pub fn token_states_rejected(&self) -> u64 {
        self.state.metrics.token_states_rejected()
    }

    /// Key ids this proxy accepts tokens of.
    pub fn token_key_ids(&self) -> Vec<String> {
        self.state
            .auth
            .verifier()
            .key_ids()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Waits until [`is_ready`](Self::is_ready), up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Logical clusters in the index.
    pub fn index_len(&self) -> usize {
        self.state.index.len()
    }

    /// Where the index routes a path or logical cluster name: (name, shard name).
    pub fn route(&self, path_or_name: &str) -> Option<(String, String)> {
        self.state
            .index
            .lookup(path_or_name)
            .map(|r| (r.name, self.state.backends.shard(r.shard).name.clone()))
    }

    /// Drops an index entry, as if its watch event had not arrived yet: the next request
    /// for it re-checks with the shards. For tests and debugging.
    pub fn evict(&self, path_or_name: &str) {
        if let Some(r) = self.state.index.lookup(path_or_name) {
            self.state.index.remove(r.shard, &r.name);
        }
    }

    /// Per shard, the HTTP/2 connections open for watches ([`streams`]).
    pub fn watch_connections(&self) -> Vec<usize> {
        (0..self.state.backends.len())
            .map(|i| self.state.backends.watch_connections(i))
            .collect()
    }

    /// Index misses re-checked with the shards so far: (found, not found).
    pub fn rechecks(&self) -> (u64, u64) {
        self.state.metrics.rechecks()
    }

    /// Stops serving (in-flight requests get up to 5 s) and the shard watches.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.serve.take() {
            let _ = h.await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}
