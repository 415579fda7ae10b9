//! Integration-test harness: starts a shard in-process on a fresh database of a real
//! PostgreSQL server, with a temporary root directory, and gives tests a real `kubectl`
//! bound to an admin kubeconfig plus an HTTPS client that trusts the shard's CA.
//! [`TestProxy`] starts N shards behind a front-proxy the same way.
//!
//! ```no_run
//! # async fn t() {
//! let env = canopy_test_harness::TestShard::builder().start().await;
//! let out = env.kubectl().ok(&["get", "ns"]).await;
//! assert!(out.contains("default"));
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Builds a [`TestShard`].
#[derive(Default)]
pub struct TestShardBuilder {
    store: Option<canopy_storage::StoreOptions>,
    proxy_client_ca_pem: Option<String>,
    no_root: bool,
    token_signing_key_pem: Option<String>,
    external_url: Option<String>,
    shard_name: Option<String>,
    cache: Option<CacheServerRef>,
    limits: Option<canopy_apiserver::Limits>,
}

/// What a shard needs to reach a [`TestCacheServer`] (a token is issued for the shard's
/// name when it starts).
#[derive(Clone)]
pub(crate) struct CacheServerRef {
    url: String,
    ca_cert_pem: String,
    tokens: Arc<canopy_auth::TokenIssuer>,
}

impl CacheServerRef {
    pub(crate) fn of(cache: &TestCacheServer) -> CacheServerRef {
        CacheServerRef {
            url: cache.url().to_string(),
            ca_cert_pem: cache.ca_cert_pem().to_string(),
            tokens: cache.server.tokens.clone(),
        }
    }

    fn options(&self, shard_name: &str) -> shard::CacheServerOptions {
        let token = self
            .tokens
            .issue(
                &canopy_cache::wire::shard_user(shard_name),
                &[canopy_cache::wire::SHARD_GROUP.to_string()],
                Duration::from_secs(3600),
            )
            .expect("cache-server token");
        let mut o = shard::CacheServerOptions::new(
            &self.url,
            &self.ca_cert_pem,
            shard::CacheCredentials::Token(token),
        );
        // tests notice a restarted or returning cache server quickly
        o.heartbeat = Duration::from_millis(300);
        o.max_backoff = Duration::from_millis(500);
        o
    }
}

impl TestShardBuilder {
    pub fn store_options(mut self, o: canopy_storage::StoreOptions) -> Self {
        self.store = Some(o);
        self
    }

    /// Request body and object size limits (default: kube's).
    pub fn limits(mut self, limits: canopy_apiserver::Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Trust `X-Remote-*` identity headers from clients whose certificate this CA
    /// (PEM) signed (a front-proxy's).
    pub fn proxy_client_ca(mut self, pem: &str) -> Self {
        self.proxy_client_ca_pem = Some(pem.to_string());
        self
    }

    /// Whether the shard creates the `root` logical cluster (default: yes).
    pub fn root(mut self, root: bool) -> Self {
        self.no_root = !root;
        self
    }

    /// The shard's name (default `root`).
    pub fn shard_name(mut self, name: &str) -> Self {
        self.shard_name = Some(name.to_string());
        self
    }

    /// Replicate to (and read the global view from) `cache`.
    pub fn cache_server(mut self, cache: &TestCacheServer) -> Self {
        self.cache = Some(CacheServerRef::of(cache));
        self
    }

    /// The URL clients reach workspaces at (a front-proxy's), for `spec.URL`.
    pub fn external_url(mut self, url: &str) -> Self {
        self.external_url = Some(url.to_string());
        self
    }

    /// Sign tokens with this key (PEM) instead of a new one, e.g. another shard's
    /// ([`TestShard::token_signing_key_pem`]), so that both accept the same tokens.
    pub fn token_signing_key(mut self, pem: &str) -> Self {
        self.token_signing_key_pem = Some(pem.to_string());
        self
    }

    pub async fn start(self) -> TestShard {
        let db = canopy_pg::testing::test_database()
            .await
            .expect("test database");
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(key) = &self.token_signing_key_pem {
            let pki = dir.path().join("pki");
            std::fs::create_dir_all(&pki).expect("pki dir");
            std::fs::write(pki.join("token-signing.key"), key).expect("write signing key");
        }
        let settings = Settings {
            store: self.store.unwrap_or_default(),
            proxy_client_ca_pem: self.proxy_client_ca_pem,
            root: !self.no_root,
            external_url: self.external_url,
            port: 0,
            shard_name: self.shard_name.unwrap_or_else(|| "root".into()),
            peers: None,
            cache: self.cache,
            limits: self.limits.unwrap_or_default(),
        };
        TestShard::start_in(db, dir, settings).await
    }
}

/// What a restarted shard keeps.
#[derive(Clone)]
struct Settings {
    store: canopy_storage::StoreOptions,
    proxy_client_ca_pem: Option<String>,
    root: bool,
    external_url: Option<String>,
    /// 0 the first time; the same port after that.
    port: u16,
    shard_name: String,
    /// How it reaches the other shards, once set ([`TestShard::set_peers`]).
    peers: Option<canopy_apiserver::peers::PeerConfig>,
    cache: Option<CacheServerRef>,
    limits: canopy_apiserver::Limits,
}

/// A shard running in this process.
pub struct TestShard {
    pub shard: shard::Shard,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub admin_token: String,
    pub db: canopy_pg::testing::TestDatabase,
    settings: Settings,
}

/// A stopped [`TestShard`]: its database and directory, to start it again.
pub struct StoppedShard {
    dir: tempfile::TempDir,
    pub db: canopy_pg::testing::TestDatabase,
    settings: Settings,
}

impl StoppedShard {
    /// Starts the shard again, on the same port, database and directory.
    pub async fn start(self) -> TestShard {
        TestShard::start_in(self.db, self.dir, self.settings).await
    }

    /// The URL it had (and will have again).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.settings.port)
    }
}

impl TestShard {
    pub fn builder() -> TestShardBuilder {
        TestShardBuilder::default()
    }

    async fn start_in(
        db: canopy_pg::testing::TestDatabase,
        dir: tempfile::TempDir,
        mut settings: Settings,
    ) -> TestShard {
        let mut opts = shard::ShardOptions::new(dir.path().to_path_buf(), db.url.clone());
        opts.secure_port = settings.port;
        opts.store = settings.store.clone();
        opts.proxy_client_ca_pem = settings.proxy_client_ca_pem.clone();
        opts.root = settings.root;
        opts.external_url = settings.external_url.clone();
        opts.shard_name = settings.shard_name.clone();
        opts.limits = settings.limits;
        opts.cache_server = settings
            .cache
            .as_ref()
            .map(|c| c.options(&settings.shard_name));
        // the port was just released by the stopped shard: retry briefly
        let mut tries = 0;
        let shard = loop {
            match shard::Shard::start(opts.clone()).await {
                Ok(s) => break s,
                Err(shard::ShardError::Listen { .. }) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("start shard: {e}"),
            }
        };
        settings.port = shard.addr.port();
        if let Some(p) = &settings.peers {
            shard.api.set_peers(p).expect("peer configuration");
        }
        let admin_token = shard
            .admin_token(Duration::from_secs(3600))
            .expect("admin token");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        std::fs::write(
            &kubeconfig,
            shard::kubeconfig(&shard.url, &shard.ca_cert_pem, "root", &admin_token),
        )
        .expect("write kubeconfig");
        TestShard {
            shard,
            dir,
            kubeconfig,
            admin_token,
            db,
            settings,
        }
    }

    /// The shard's name.
    pub fn shard_name(&self) -> &str {
        &self.settings.shard_name
    }

    /// The global view (panics when the shard has no cache server).
    pub fn global(&self) -> &canopy_cache::CacheReader {
        self.shard
            .api
            .global()
            .expect("the shard was started without a cache server")
    }

    /// How this shard reaches the other shards (kept across restarts).
    pub fn set_peers(&mut self, cfg: canopy_apiserver::peers::PeerConfig) {
        self.shard.api.set_peers(&cfg).expect("peer configuration");
        self.settings.peers = Some(cfg);
    }

    /// Stops the shard (its port stays reserved for [`StoppedShard::start`] by nobody
    /// else in this test, as long as nothing else binds it).
    pub async fn stop(self) -> StoppedShard {
        let TestShard {
            shard,
            dir,
            db,
            settings,
            ..
        } = self;
        shard.stop().await;
        StoppedShard { dir, db, settings }
    }

    /// Stops the shard and starts a new one on the same port, database and directory.
    pub async fn restart(self) -> TestShard {
        self.stop().await.start().await
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.shard.url
    }

    /// The private key the shard signs tokens with (PEM).
    pub fn token_signing_key_pem(&self) -> String {
        std::fs::read_to_string(self.shard.pki_dir.join("token-signing.key"))
            .expect("token signing key")
    }

    /// A token for `user` in `groups`.
    pub fn token(&self, user: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        self.shard
            .tokens
            .issue(user, &groups, Duration::from_secs(3600))
            .expect("issue token")
    }

    /// Writes a kubeconfig for `token` pointing at logical cluster `cluster`.
    pub fn kubeconfig_for(&self, name: &str, cluster: &str, token: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(
            &p,
            shard::kubeconfig(&self.shard.url, &self.shard.ca_cert_pem, cluster, token),
        )
        .expect("write kubeconfig");
        p
    }

    /// kubectl with the admin kubeconfig.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig, self.dir.path())
    }

    /// An HTTPS client trusting the shard's CA, sending `token`.
    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.shard.url, &self.shard.ca_cert_pem, token)
    }

    pub fn admin(&self) -> Client {
        self.client(Some(&self.admin_token))
    }
}

/// The kubectl binary under test: `$CANOPY_KUBECTL`, else `kubectl` on PATH. Fails with
/// instructions when there is none (tests never skip silently).
pub fn kubectl_binary() -> PathBuf {
    if let Ok(p) = std::env::var("CANOPY_KUBECTL") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "CANOPY_KUBECTL={} does not exist; run scripts/install-tools",
            p.display()
        );
        return p;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("kubectl");
        if p.exists() {
            return p;
        }
    }
    panic!("kubectl not found: run scripts/install-tools (installs kubectl 1.35 into .tools/bin) or set CANOPY_KUBECTL");
}

/// A kubectl invocation helper with its own discovery cache directory.
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

/// What kubectl printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path, scratch: &Path) -> Kubectl {
        Kubectl::with_binary(kubectl_binary(), kubeconfig, scratch)
    }

    pub fn with_binary(bin: PathBuf, kubeconfig: &Path, scratch: &Path) -> Kubectl {
        let cache = scratch.join(format!("kube-cache-{}", std::process::id()));
        Kubectl {
            bin,
            kubeconfig: kubeconfig.to_path_buf(),
            cache,
        }
    }

    pub fn kubeconfig(mut self, k: &Path) -> Kubectl {
        self.kubeconfig = k.to_path_buf();
        self
    }

    /// A kubectl command with this kubeconfig and cache, to run as the caller likes
    /// (e.g. `get --watch`, read line by line).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .env("HOME", self.cache.parent().unwrap_or(Path::new("/tmp")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl with `args` and optional stdin.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .env("HOME", self.cache.parent().unwrap_or(Path::new("/tmp")))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()));
        if let Some(input) = stdin {
            let mut s = child.stdin.take().expect("stdin");
            s.write_all(input.as_bytes()).await.expect("write stdin");
            drop(s);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in 60 s"))
            .expect("kubectl output");
        Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None).await
    }

    /// Runs kubectl and returns stdout; panics with stderr if it failed.
    pub async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            o.success,
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o.stdout
    }

    /// Runs kubectl and returns stderr; panics if it succeeded.
    pub async fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            !o.success,
            "kubectl {args:?} unexpectedly succeeded:\n{}",
            o.stdout
        );
        o.stderr
    }

    pub async fn apply_stdin(&self, args: &[&str], yaml: &str) -> String {
        let o = self.run_with_stdin(args, Some(yaml)).await;
        assert!(
            o.success,
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o.stdout
    }
}

/// A small HTTPS client for raw API requests.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, ca_pem: &str, token: Option<&str>) -> Client {
        Client::build(base, ca_pem, token, None)
    }

    /// A client presenting a TLS client certificate (PEM certificate and key), e.g. the
    /// front-proxy's.
    pub fn with_client_cert(
        base: &str,
        ca_pem: &str,
        token: Option<&str>,
        cert_pem: &str,
        key_pem: &str,
    ) -> Client {
        Client::build(base, ca_pem, token, Some((cert_pem, key_pem)))
    }

    fn build(
        base: &str,
        ca_pem: &str,
        token: Option<&str>,
        identity: Option<(&str, &str)>,
    ) -> Client {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(c.expect("CA certificate")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_root_certificates(roots);
        let mut cfg = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain: Vec<_> = rustls_pemfile::certs(&mut cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .expect("client certificate");
                let key = rustls_pemfile::private_key(&mut key.as_bytes())
                    .expect("client key")
                    .expect("a private key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client identity")
            }
        };
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(cfg)
            .build()
            .expect("http client");
        Client {
            base: base.to_string(),
            token: token.map(str::to_string),
            http,
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends a request and returns (status, JSON body or Null).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self.request(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (
            code,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn patch(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .request(reqwest::Method::PATCH, path)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (
            code,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }
}

mod proxy;
pub use proxy::{shard_name, TestProxy, TestProxyBuilder};

/// A cache server running in this process, with a temporary root directory.
pub struct TestCacheServer {
    pub server: cache_server::CacheServer,
    pub dir: tempfile::TempDir,
}

/// A stopped [`TestCacheServer`]: its directory (CA, token key) and port, to start a new
/// one (empty, as after any restart) where it was.
pub struct StoppedCacheServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl StoppedCacheServer {
    /// Starts a new cache server on the same port with the same CA and token key.
    pub async fn start(self) -> TestCacheServer {
        // the old listener is closed, but give a lingering accept a moment
        for attempt in 0..50 {
            match TestCacheServer::start_in(&self.dir, self.port).await {
                Ok(server) => {
                    return TestCacheServer {
                        server,
                        dir: self.dir,
                    }
                }
                Err(e) if attempt < 49 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restart cache server on port {}: {e}", self.port),
            }
        }
        unreachable!()
    }
}

impl TestCacheServer {
    pub async fn start() -> TestCacheServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TestCacheServer::start_in(&dir, 0)
            .await
            .expect("start cache server");
        TestCacheServer { server, dir }
    }

    async fn start_in(
        dir: &tempfile::TempDir,
        port: u16,
    ) -> Result<cache_server::CacheServer, cache_server::CacheServerError> {
        cache_server::CacheServer::start(cache_server::ServerOptions {
            root_directory: dir.path().to_path_buf(),
            secure_port: port,
            bookmark_interval: Duration::from_secs(1),
            ..Default::default()
        })
        .await
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    pub fn ca_cert_pem(&self) -> &str {
        &self.server.ca_cert_pem
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    /// A token for shard `name`.
    pub fn shard_token(&self, name: &str) -> String {
        self.server
            .token(
                &cache_server::TokenSubject::Shard(name.into()),
                Duration::from_secs(3600),
            )
            .expect("token")
    }

    /// A token for a read-only client `name`.
    pub fn reader_token(&self, name: &str) -> String {
        self.server
            .token(
                &cache_server::TokenSubject::Reader(name.into()),
                Duration::from_secs(3600),
            )
            .expect("token")
    }

    /// A raw HTTPS client trusting the cache server's CA, sending `token`.
    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(self.url(), self.ca_cert_pem(), token)
    }

    /// A `canopy_cache` client with `credentials`.
    pub fn cache_client(
        &self,
        credentials: canopy_cache::Credentials,
    ) -> canopy_cache::CacheClient {
        canopy_cache::CacheClient::new(&canopy_cache::CacheClientConfig {
            url: self.url().to_string(),
            ca_cert_pem: self.ca_cert_pem().to_string(),
            credentials,
        })
        .expect("cache client")
    }

    /// Stops it (everything it held is lost), keeping directory and port.
    pub async fn stop(self) -> StoppedCacheServer {
        let port = self.port();
        self.server.stop().await;
        StoppedCacheServer {
            dir: self.dir,
            port,
        }
    }

    /// Stops it and starts a new, empty one on the same port.
    pub async fn restart(self) -> TestCacheServer {
        self.stop().await.start().await
    }
}

/// A private redis-server on a free port, killed when dropped.
pub struct TestRedis {
    child: tokio::process::Child,
    /// `redis://127.0.0.1:<port>/`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl TestRedis {
    /// Starts one; fails the test with an install hint when `redis-server` is missing.
    pub async fn start() -> TestRedis {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server is needed for this test ({e}): run scripts/install-tools (apt-get install redis-server)")
            });
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return TestRedis {
                    child,
                    url: format!("redis://127.0.0.1:{port}/"),
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
