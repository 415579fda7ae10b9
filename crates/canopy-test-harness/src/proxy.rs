//! N shards behind a front-proxy, all in this process.
//!
//! Trust, as in production: the harness makes one token signing key and gives it to
//! root's shard only; the other shards and the proxy get only its public key (and then
//! follow root's token state), each accepting those tokens directly; the proxy
//! authenticates every request itself; a proxy client CA signs the proxy's
//! client certificate, and every shard trusts `X-Remote-*` headers only from
//! connections presenting a certificate that CA signed. Shard 0 holds `root`; the others
//! start without it (logical clusters are created on them directly, e.g. with
//! `shard.api.ensure_logical_cluster(name)`).
//!
//! ```no_run
//! # async fn t() {
//! let env = canopy_test_harness::TestProxy::builder().shards(2).start().await;
//! let out = env.kubectl().ok(&["get", "ns"]).await;
//! assert!(out.contains("default"));
//! # }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use canopy_auth::{ClientCa, TokenIssuer};
use front_proxy::{CertAndKey, FrontProxy, FrontProxyOptions, RunningProxy, ShardTarget};

use crate::{Client, Kubectl, StoppedShard, TestShard};

/// Builds a [`TestProxy`].
pub struct TestProxyBuilder {
    shards: usize,
    limits: canopy_apiserver::ServerLimits,
    shard_limits: Option<canopy_apiserver::ServerLimits>,
    shard_size_limits: Option<shard::Limits>,
    redis_url: Option<String>,
    cache: Option<crate::CacheServerRef>,
}

impl Default for TestProxyBuilder {
    fn default() -> Self {
        TestProxyBuilder {
            shards: 1,
            limits: crate::test_limits(2),
            shard_limits: None,
            shard_size_limits: None,
            redis_url: None,
            cache: None,
        }
    }
}

impl TestProxyBuilder {
    /// How many shards (default 1); shard 0 holds `root`.
    pub fn shards(mut self, n: usize) -> Self {
        assert!(n >= 1, "at least one shard");
        self.shards = n;
        self
    }

    /// Per-user rate limit of the proxy.
    pub fn rate_limit(mut self, qps: f64, burst: u32) -> Self {
        self.limits.requests.rate_limit_qps = qps;
        self.limits.requests.rate_limit_burst = burst;
        self
    }

    /// The proxy's connection and request limits (default: [`crate::test_limits`]).
    pub fn limits(mut self, limits: canopy_apiserver::ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The shards' limits (default: [`crate::test_limits`]).
    pub fn shard_limits(mut self, limits: canopy_apiserver::ServerLimits) -> Self {
        self.shard_limits = Some(limits);
        self
    }

    /// The shards' size limits and organization quotas (default: production's).
    pub fn shard_size_limits(mut self, limits: shard::Limits) -> Self {
        self.shard_size_limits = Some(limits);
        self
    }

    /// Every shard replicates to (and reads its global view from) `cache`.
    pub fn cache_server(mut self, cache: &crate::TestCacheServer) -> Self {
        self.cache = Some(crate::CacheServerRef::of(cache));
        self
    }

    /// Keep the rate-limit buckets in this Redis (`redis://127.0.0.1:port/`).
    pub fn redis(mut self, url: &str) -> Self {
        self.redis_url = Some(url.to_string());
        self
    }

    pub async fn start(self) -> TestProxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let issuer =
            Arc::new(TokenIssuer::load_or_create(&dir.path().join("issuer")).expect("issuer"));
        let signing_key = std::fs::read_to_string(
            dir.path()
                .join("issuer")
                .join(canopy_auth::token::ACTIVE_KEY_FILE),
        )
        .expect("signing key");
        let client_ca = ClientCa::load_or_create(&dir.path().join("client-ca"), "proxy-client-ca")
            .expect("proxy client CA");
        let (cert_pem, key_pem) = client_ca
            .issue_client_cert("system:front-proxy", &[])
            .expect("proxy client certificate");
        let client_cert = CertAndKey { cert_pem, key_pem };

        // the proxy's address first, so that shards hand out its URLs (spec.URL)
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy's port");
        let proxy_url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let cache = self.cache.clone();
        let shard_limits = self.shard_limits.clone();
        let shard_size_limits = self.shard_size_limits;
        let starts = (0..self.shards).map(|i| {
            let mut b = TestShard::builder();
            if let Some(c) = &cache {
                b.cache = Some(c.clone());
            }
            b = if i == 0 {
                b.token_signing_key(&signing_key)
            } else {
                b.token_issuer(issuer.clone())
            };
            if let Some(l) = &shard_limits {
                b = b.limits(l.clone());
            }
            if let Some(l) = shard_size_limits {
                b = b.size_limits(l);
            }
            b.root(i == 0)
                .shard_name(&shard_name(i))
                .external_url(&proxy_url)
                .proxy_client_ca(&client_ca.ca_cert_pem)
                .start()
        });
        let mut shards: Vec<TestShard> = start_sequentially(starts).await;
        // shards reach each other as the proxy reaches them: certificates of the proxy
        // client CA, every shard's serving CA trusted
        let ca_bundle = shards
            .iter()
            .map(|s| s.shard.ca_cert_pem.clone())
            .collect::<Vec<_>>()
            .join("\n");
        let root_url = shards[0].url().to_string();
        for (i, s) in shards.iter_mut().enumerate() {
            let (cert, key) = client_ca
                .issue_client_cert(&format!("system:shard:{}", shard_name(i)), &[])
                .expect("shard client certificate");
            s.set_peers(canopy_tenancy::peers::PeerConfig {
                ca_bundle_pem: ca_bundle.clone(),
                client_cert_pem: cert,
                client_key_pem: key,
                root_shard_url: (i != 0).then(|| root_url.clone()),
            });
        }

        let targets = shards
            .iter()
            .enumerate()
            .map(|(i, s)| ShardTarget {
                name: shard_name(i),
                url: s.url().to_string(),
            })
            .collect();
        let shard_ca_pem = shards
            .iter()
            .map(|s| s.shard.ca_cert_pem.clone())
            .collect::<Vec<_>>()
            .join("\n");
        let mut options = FrontProxyOptions::new(
            dir.path().join("proxy"),
            targets,
            shard_ca_pem,
            issuer.verifier(),
        );
        options.client_cert = Some(client_cert.clone());
        options.limits = self.limits;
        options.redis_url = self.redis_url;
        let proxy = FrontProxy::start_on(listener, options.clone())
            .await
            .expect("start front-proxy");
        assert_eq!(proxy.url, proxy_url);
        assert!(
            proxy.wait_ready(Duration::from_secs(30)).await,
            "the front-proxy did not sync its index with every shard in 30 s"
        );
        let admin_token = issuer
            .issue(
                "admin",
                &["system:masters".to_string()],
                Duration::from_secs(3600),
            )
            .expect("admin token");
        let ca = proxy.ca_cert_pem.clone().expect("generated serving CA");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        std::fs::write(
            &kubeconfig,
            shard::kubeconfig(&proxy.url, &ca, "root", &admin_token),
        )
        .expect("write kubeconfig");
        TestProxy {
            proxy,
            dir,
            kubeconfig,
            admin_token,
            client_ca_pem: client_ca.ca_cert_pem.clone(),
            client_cert,
            issuer,
            shards: shards
                .into_iter()
                .map(|s| Slot::Running(Box::new(s)))
                .collect(),
            options,
        }
    }
}

async fn start_sequentially<F: std::future::Future<Output = TestShard>>(
    fs: impl Iterator<Item = F>,
) -> Vec<TestShard> {
    // sequentially: shards share the machine's two cores with the test
    let mut out = Vec::new();
    for f in fs {
        out.push(f.await);
    }
    out
}

#[allow(clippy::large_enum_variant)] // a handful per test
enum Slot {
    Running(Box<TestShard>),
    Stopped(Box<StoppedShard>),
    Moving,
}

/// Shards behind a front-proxy, all in this process.
pub struct TestProxy {
    pub proxy: RunningProxy,
    pub dir: tempfile::TempDir,
    /// Admin kubeconfig pointing at `<proxy>/clusters/root`.
    pub kubeconfig: PathBuf,
    pub admin_token: String,
    /// The CA shards trust for `X-Remote-*` headers.
    pub client_ca_pem: String,
    /// The proxy's client certificate (what shards trust).
    pub client_cert: CertAndKey,
    issuer: Arc<TokenIssuer>,
    shards: Vec<Slot>,
    options: FrontProxyOptions,
}

impl TestProxy {
    pub fn builder() -> TestProxyBuilder {
        TestProxyBuilder::default()
    }

    /// The proxy's `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.proxy.url
    }

    /// The CA of the proxy's serving certificate.
    pub fn ca_cert_pem(&self) -> &str {
        self.proxy.ca_cert_pem.as_deref().expect("generated CA")
    }

    /// The options the proxy was started with: start more replicas with
    /// `FrontProxy::start(env.options())`.
    pub fn options(&self) -> FrontProxyOptions {
        let mut o = self.options.clone();
        o.root_directory = self.dir.path().join(format!("proxy-{}", rand_suffix()));
        o
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shard `i`; panics when it is stopped.
    pub fn shard(&self, i: usize) -> &TestShard {
        match &self.shards[i] {
            Slot::Running(s) => s,
            _ => panic!("shard {i} is stopped"),
        }
    }

    /// Stops shard `i` (the proxy is not told).
    pub async fn stop_shard(&mut self, i: usize) {
        match std::mem::replace(&mut self.shards[i], Slot::Moving) {
            Slot::Running(s) => self.shards[i] = Slot::Stopped(Box::new(s.stop().await)),
            other => {
                self.shards[i] = other;
                panic!("shard {i} is not running");
            }
        }
    }

    /// Starts shard `i` again on the same port.
    pub async fn start_shard(&mut self, i: usize) {
        match std::mem::replace(&mut self.shards[i], Slot::Moving) {
            Slot::Stopped(s) => self.shards[i] = Slot::Running(Box::new((*s).start().await)),
            other => {
                self.shards[i] = other;
                panic!("shard {i} is not stopped");
            }
        }
    }

    /// A token for `user` in `groups`, accepted by the proxy (and by every shard).
    pub fn token(&self, user: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        self.issuer
            .issue(user, &groups, Duration::from_secs(3600))
            .expect("issue token")
    }

    /// The issuer of the tokens the proxy accepts.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// An HTTPS client of the proxy sending `token`.
    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(self.url(), self.ca_cert_pem(), token)
    }

    pub fn admin(&self) -> Client {
        self.client(Some(&self.admin_token))
    }

    /// kubectl with the admin kubeconfig (through the proxy).
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig, self.dir.path())
    }

    /// Writes a kubeconfig for `token` pointing at `<proxy>/clusters/<cluster>`.
    pub fn kubeconfig_for(&self, name: &str, cluster: &str, token: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(
            &p,
            shard::kubeconfig(self.url(), self.ca_cert_pem(), cluster, token),
        )
        .expect("write kubeconfig");
        p
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The name of the `i`th shard: `root` holds root, then `shard-1`, `shard-2`, ...
pub fn shard_name(i: usize) -> String {
    if i == 0 {
        "root".to_string()
    } else {
        format!("shard-{i}")
    }
}
