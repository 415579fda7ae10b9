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

use canopy_tenancy::TenancyExt;
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
    token_issuer: Option<Arc<canopy_auth::TokenIssuer>>,
    external_url: Option<String>,
    shard_name: Option<String>,
    cache: Option<CacheServerRef>,
    limits: Option<canopy_apiserver::ServerLimits>,
    size_limits: Option<shard::Limits>,
}

/// The limits test shards and proxies run with unless a test sets its own: the
/// production defaults without the per-user rate limit (tests of other things make
/// bursts of requests as ordinary users).
pub fn test_limits(fd_ways: u64) -> canopy_apiserver::ServerLimits {
    let mut l = canopy_apiserver::ServerLimits::sharing_fds(fd_ways);
    l.requests.rate_limit_qps = 0.0;
    l
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
    pub fn size_limits(mut self, limits: shard::Limits) -> Self {
        self.size_limits = Some(limits);
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

    /// Connection and request limits (default: [`test_limits`]).
    pub fn limits(mut self, limits: canopy_apiserver::ServerLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Sign tokens with this key (PEM) instead of a new one (a shard holding root: it
    /// is written to the shard's `pki/token-signing.key`, 0600).
    pub fn token_signing_key(mut self, pem: &str) -> Self {
        self.token_signing_key_pem = Some(pem.to_string());
        self
    }

    /// For a shard without root, which holds no private key: it verifies tokens with
    /// `issuer`'s public keys (until root's token state arrives), and the test signs
    /// its [`TestShard::token`]s and admin token with `issuer` (held by the test, never
    /// written to the shard's directory).
    pub fn token_issuer(mut self, issuer: Arc<canopy_auth::TokenIssuer>) -> Self {
        self.token_issuer = Some(issuer);
        self
    }

    pub async fn start(self) -> TestShard {
        let db = canopy_pg::testing::test_database()
            .await
            .expect("test database");
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(key) = &self.token_signing_key_pem {
            assert!(
                !self.no_root,
                "only the shard holding root has a signing key; use token_issuer"
            );
            let pki = dir.path().join("pki");
            canopy_auth::files::private_dir(&pki).expect("pki dir");
            canopy_auth::files::write_private(
                &pki.join(canopy_auth::token::ACTIVE_KEY_FILE),
                key.as_bytes(),
            )
            .expect("write signing key");
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
            issuer: self.token_issuer,
            limits: self.limits.unwrap_or_else(|| test_limits(1)),
            size_limits: self.size_limits.unwrap_or_default(),
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
    peers: Option<canopy_tenancy::peers::PeerConfig>,
    cache: Option<CacheServerRef>,
    /// For a shard without root: who signs the test's tokens (the shard gets its
    /// public keys only).
    issuer: Option<Arc<canopy_auth::TokenIssuer>>,
    limits: canopy_apiserver::ServerLimits,
    size_limits: shard::Limits,
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
        opts.limits = settings.limits.clone();
        opts.size_limits = settings.size_limits;
        opts.cache_server = settings
            .cache
            .as_ref()
            .map(|c| c.options(&settings.shard_name));
        if let Some(i) = &settings.issuer {
            opts.token_verifier = i.verifier();
        }
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
        let admin_token = issuer_of(&shard, &settings)
            .issue(
                "admin",
                &["system:masters".to_string()],
                Duration::from_secs(3600),
            )
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
    pub fn set_peers(&mut self, cfg: canopy_tenancy::peers::PeerConfig) {
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

    /// The private key the shard signs tokens with (PEM); only the shard holding root
    /// has one.
    pub fn token_signing_key_pem(&self) -> String {
        std::fs::read_to_string(self.shard.pki_dir.join(canopy_auth::token::ACTIVE_KEY_FILE))
            .expect("token signing key (only the shard holding root has one)")
    }

    /// A token for `user` in `groups` (signed by root's shard's key, or on a shard
    /// without root by the test's issuer, see [`TestShardBuilder::token_issuer`]).
    pub fn token(&self, user: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        issuer_of(&self.shard, &self.settings)
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

/// Who signs a test shard's tokens: its own key on root's shard, else the test's.
fn issuer_of<'a>(shard: &'a shard::Shard, settings: &'a Settings) -> &'a canopy_auth::TokenIssuer {
    shard
        .tokens
        .as_deref()
        .or(settings.issuer.as_deref())
        .expect("a shard without root has no signing key: give it TestShardBuilder::token_issuer")
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

fn tls_client_builder(
    ca_pem: &str,
) -> tokio_rustls::rustls::ConfigBuilder<
    tokio_rustls::rustls::ClientConfig,
    tokio_rustls::rustls::client::WantsClientCert,
> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.expect("CA certificate")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
}

/// A raw TLS connection to `addr` from `local` (default 127.0.0.1), offering `alpn`
/// (e.g. `http/1.1`), for tests that speak HTTP by hand (slow clients, idle
/// connections, connection caps). Fails when the server closes it during the handshake.
pub async fn raw_tls(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    alpn: &str,
    local: Option<std::net::IpAddr>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use tokio_rustls::rustls;
    let tcp = raw_tcp(addr, local).await?;
    let mut cfg = tls_client_builder(ca_pem).with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    connector.connect(name, tcp).await
}

/// A plain TCP connection to `addr` from `local` (default: any).
pub async fn raw_tcp(
    addr: std::net::SocketAddr,
    local: Option<std::net::IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(ip) = local {
        socket.bind(std::net::SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// Whether the server closed `stream` (reads end or fail) within `within`; bytes the
/// server sends first (e.g. a response) are read and discarded.
pub async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    within: Duration,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
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
        Client::build(base, ca_pem, token, None, None)
    }

    /// A client whose connections come from `local` (any 127.x.y.z address works on
    /// Linux loopback: a second "client machine" for per-address limits).
    pub fn from_address(
        base: &str,
        ca_pem: &str,
        token: Option<&str>,
        local: std::net::IpAddr,
    ) -> Client {
        Client::build(base, ca_pem, token, None, Some(local))
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
        Client::build(base, ca_pem, token, Some((cert_pem, key_pem)), None)
    }

    fn build(
        base: &str,
        ca_pem: &str,
        token: Option<&str>,
        identity: Option<(&str, &str)>,
        local: Option<std::net::IpAddr>,
    ) -> Client {
        let builder = tls_client_builder(ca_pem);
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
            .local_address(local)
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

    /// As the admin: lets `users` do anything with ConfigMaps in root (a ClusterRole and
    /// a ClusterRoleBinding named `configmaps`).
    pub async fn grant_configmaps(&self, users: &[&str]) {
        let (code, v) = self
            .post(
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                serde_json::json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "configmaps"},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
                }),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        let subjects: Vec<serde_json::Value> = users
            .iter()
            .map(|u| serde_json::json!({"kind": "User", "name": u, "apiGroup": "rbac.authorization.k8s.io"}))
            .collect();
        let (code, v) = self
            .post(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                serde_json::json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "configmaps"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "configmaps"},
                    "subjects": subjects,
                }),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }

    /// Waits (up to 20 s) until Workspace `name` in workspace `parent` is `Ready`, and
    /// returns it; panics naming the workspace and its last phase otherwise.
    pub async fn wait_workspace_ready(&self, parent: &str, name: &str) -> serde_json::Value {
        let path = format!("/clusters/{parent}/apis/tenancy.kcp.io/v1alpha1/workspaces/{name}");
        let mut last = serde_json::Value::Null;
        for _ in 0..400 {
            let (code, ws) = self.get(&path).await;
            if code == 200 && ws["status"]["phase"] == "Ready" {
                return ws;
            }
            last = ws;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("workspace {parent}:{name} never became Ready; last seen: {last}");
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
    /// `redis://127.0.0.1:<port>/` (with `:<password>@` when started with one).
    pub url: String,
    /// `redis://127.0.0.1:<port>/` (`rediss://` with TLS), without any password.
    pub url_without_password: String,
    /// With TLS: the CA of the server's certificate (PEM).
    pub ca_cert_pem: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestRedis {
    /// Starts one; fails the test with an install hint when `redis-server` is missing.
    pub async fn start() -> TestRedis {
        Self::start_with(None).await
    }

    /// Starts one that requires `password` (`requirepass`, kept in its configuration
    /// file rather than on the command line).
    pub async fn start_with_password(password: &str) -> TestRedis {
        Self::start_with(Some(password)).await
    }

    /// Starts one speaking TLS only (`rediss://`), with a certificate for 127.0.0.1 from
    /// a CA of its own ([`ca_cert_pem`](Self::ca_cert_pem)), optionally with a password.
    pub async fn start_tls(password: Option<&str>) -> TestRedis {
        Self::start_opts(password, true).await
    }

    async fn start_with(password: Option<&str>) -> TestRedis {
        Self::start_opts(password, false).await
    }

    async fn start_opts(password: Option<&str>, tls: bool) -> TestRedis {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("redis.conf");
        let mut text = format!(
            "bind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n",
            dir.path().display()
        );
        let mut ca_cert_pem = None;
        if tls {
            let pki = canopy_auth::Pki::load_or_create(&dir.path().join("pki"), &[])
                .expect("TLS certificates for redis-server");
            let p = dir.path().join("pki");
            text.push_str(&format!(
                "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients no\n",
                p.join("serving.crt").display(),
                p.join("serving.key").display(),
                p.join("ca.crt").display()
            ));
            ca_cert_pem = Some(pki.ca_cert_pem);
        } else {
            text.push_str(&format!("port {port}\n"));
        }
        if let Some(p) = password {
            text.push_str(&format!("requirepass {p}\n"));
        }
        canopy_auth::files::write_private(&conf, text.as_bytes()).unwrap();
        let child = tokio::process::Command::new("redis-server")
            .arg(&conf)
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
                let scheme = if tls { "rediss" } else { "redis" };
                let plain = format!("{scheme}://127.0.0.1:{port}/");
                return TestRedis {
                    child,
                    url: match password {
                        Some(p) => format!("{scheme}://:{p}@127.0.0.1:{port}/"),
                        None => plain.clone(),
                    },
                    url_without_password: plain,
                    ca_cert_pem,
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
