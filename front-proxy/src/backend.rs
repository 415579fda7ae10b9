//! Connections to shards: HTTP/1.1 over mTLS (the proxy's client certificate), pooled
//! and re-made as needed (a restarted shard is simply connected to again), with a
//! connect timeout covering TCP and TLS. A shard that cannot be reached is remembered as
//! down for a moment, so requests for its workspaces fail fast with 503 instead of each
//! waiting for a timeout; the next request after that moment tries again.
//!
//! At most 64 connections are opened at once (a burst of watches queues for its turn
//! rather than timing out in a pile of concurrent TLS handshakes and getting the shard
//! marked down for everyone).
//!
//! HTTP/1.1 for requests that end: each holds a pooled connection for a moment.
//! Watches, which last as long as the client wants, are multiplexed over HTTP/2
//! connections instead ([`crate::streams`]), as many as they need.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parking_lot::Mutex;
use tokio_rustls::rustls;

use crate::{CertAndKey, ProxyError, ShardTarget};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Bodies of requests to shards and of responses to clients.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> ProxyBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A complete body.
pub fn full(b: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed()
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Connections being opened to shards at once, at most. A burst of new watches (each
/// needs a connection of its own) would otherwise start thousands of TLS handshakes at
/// once, most of which would miss the connect timeout and get the shard marked down
/// for everyone; gated, they queue and complete.
const MAX_CONCURRENT_CONNECTS: usize = 64;

/// How long a request waits for its turn to open a connection before 503.
const CONNECT_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// A connection could not even be started: too many being opened (not the shard's
/// fault: it is not marked down).
#[derive(Debug, thiserror::Error)]
#[error("too many connections to shards being opened at once")]
pub struct ConnectBusy;

/// Wraps the HTTPS connector so that TCP connect and the TLS handshake together take at
/// most `timeout`, with at most [`MAX_CONCURRENT_CONNECTS`] under way at once.
#[derive(Clone)]
pub struct TimeoutConnector {
    inner: Https,
    timeout: Duration,
    gate: Arc<tokio::sync::Semaphore>,
}

impl tower_service::Service<Uri> for TimeoutConnector {
    type Response = <Https as tower_service::Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let timeout = self.timeout;
        let gate = self.gate.clone();
        Box::pin(async move {
            let _turn = match tokio::time::timeout(CONNECT_QUEUE_WAIT, gate.acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => return Err(Box::new(ConnectBusy) as BoxError),
            };
            match tokio::time::timeout(timeout, inner.call(uri)).await {
                Ok(r) => r,
                Err(_) => Err(format!("connecting took longer than {timeout:?}").into()),
            }
        })
    }
}

/// One shard.
pub struct Shard {
    pub name: String,
    pub url: String,
    /// Until when requests are answered 503 without trying.
    down_until: Mutex<Option<Instant>>,
}

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("shard {0} is unavailable (recently unreachable)")]
    Down(String),
    #[error("shard {0} is unreachable: {1}")]
    Connect(String, String),
    #[error("shard {0} failed: {1}")]
    Failed(String, String),
}

/// The shards and the pooled client that reaches them.
pub struct Backends {
    client: Client<TimeoutConnector, ProxyBody>,
    /// Per shard: the HTTP/2 connections watches share.
    streams: Vec<crate::streams::StreamPool>,
    shards: Vec<Shard>,
    down_for: Duration,
}

fn client_config(
    shard_ca_pem: &str,
    cert: &CertAndKey,
) -> Result<rustls::ClientConfig, ProxyError> {
    let tls = |e: &dyn std::fmt::Display| ProxyError::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut shard_ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| tls(&format!("shard CA: {e}")))?)
            .map_err(|e| tls(&format!("shard CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ProxyError::Tls("shard CA: no certificate found".into()));
    }
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls(&format!("client certificate: {e}")))?;
    let key = rustls_pemfile::private_key(&mut cert.key_pem.as_bytes())
        .map_err(|e| tls(&format!("client key: {e}")))?
        .ok_or_else(|| ProxyError::Tls("client key: no private key found".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // (ALPN http/1.1 is set by the connector builder)
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls(&format!("client certificate: {e}")))
}

impl Backends {
    pub fn new(
        shards: &[ShardTarget],
        shard_ca_pem: &str,
        client_cert: &CertAndKey,
        connect_timeout: Duration,
        down_for: Duration,
    ) -> Result<Backends, ProxyError> {
        let tls = client_config(shard_ca_pem, client_cert)?;
        let gate = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CONNECTS));
        let mut streams = Vec::new();
        for s in shards {
            let bad = || {
                ProxyError::Options(format!("shard URL {:?}: expected https://host:port", s.url))
            };
            let uri: Uri = s
                .url
                .parse()
                .map_err(|e| ProxyError::Options(format!("shard URL {:?}: {e}", s.url)))?;
            if uri.scheme_str() != Some("https") || uri.authority().is_none() {
                return Err(bad());
            }
            streams.push(
                crate::streams::StreamPool::new(&uri, &tls, connect_timeout, gate.clone())
                    .ok_or_else(bad)?,
            );
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let connector = TimeoutConnector {
            inner: https,
            timeout: connect_timeout,
            gate,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Backends {
            client,
            streams,
            shards: shards
                .iter()
                .map(|s| Shard {
                    name: s.name.clone(),
                    url: s.url.trim_end_matches('/').to_string(),
                    down_until: Mutex::new(None),
                })
                .collect(),
            down_for,
        })
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    pub fn shard(&self, i: usize) -> &Shard {
        &self.shards[i]
    }

    /// Whether shard `i` is currently remembered as unreachable.
    pub fn is_down(&self, i: usize) -> bool {
        self.shards[i]
            .down_until
            .lock()
            .is_some_and(|t| Instant::now() < t)
    }

    fn mark_down(&self, i: usize) {
        *self.shards[i].down_until.lock() = Some(Instant::now() + self.down_for);
    }

    fn mark_up(&self, i: usize) {
        *self.shards[i].down_until.lock() = None;
    }

    /// The URI of `path_and_query` on shard `i`.
    pub fn uri(&self, i: usize, path_and_query: &str) -> Result<Uri, BackendError> {
        format!("{}{}", self.shards[i].url, path_and_query)
            .parse()
            .map_err(|e| BackendError::Failed(self.shards[i].name.clone(), format!("{e}")))
    }

    /// Sends `req` (whose URI is already the shard's) to shard `i`. Requests for a shard
    /// remembered as down fail at once unless `probe` (the index watches probe).
    pub async fn send(
        &self,
        i: usize,
        req: Request<ProxyBody>,
        probe: bool,
    ) -> Result<Response<Incoming>, BackendError> {
        let name = &self.shards[i].name;
        if !probe && self.is_down(i) {
            return Err(BackendError::Down(name.clone()));
        }
        match self.client.request(req).await {
            Ok(r) => {
                self.mark_up(i);
                Ok(r)
            }
            Err(e) if e.is_connect() && is_busy(&e) => {
                Err(BackendError::Failed(name.clone(), ConnectBusy.to_string()))
            }
            Err(e) if e.is_connect() => {
                self.mark_down(i);
                let detail = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string());
                tracing::debug!(shard = %name, error = %detail, "shard unreachable");
                Err(BackendError::Connect(name.clone(), detail))
            }
            Err(e) => {
                let detail = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string());
                Err(BackendError::Failed(name.clone(), detail))
            }
        }
    }
}

impl Backends {
    /// Sends a watch of `user` to shard `i` over one of that user's HTTP/2 connections
    /// ([`crate::streams`]); a shard remembered as down fails at once.
    pub async fn send_watch(
        &self,
        i: usize,
        user: &str,
        req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, BackendError> {
        let name = &self.shards[i].name;
        if self.is_down(i) {
            return Err(BackendError::Down(name.clone()));
        }
        match self.streams[i].send(user, req).await {
            Ok(r) => {
                self.mark_up(i);
                Ok(r)
            }
            Err(crate::streams::StreamError::Connect(detail)) => {
                self.mark_down(i);
                tracing::debug!(shard = %name, error = %detail, "shard unreachable");
                Err(BackendError::Connect(name.clone(), detail))
            }
            Err(crate::streams::StreamError::Failed(detail)) => {
                Err(BackendError::Failed(name.clone(), detail))
            }
        }
    }

    /// HTTP/2 connections open to shard `i` for watches.
    pub fn watch_connections(&self, i: usize) -> usize {
        self.streams[i].connections()
    }
}

/// Whether `e` (or what caused it) is [`ConnectBusy`].
fn is_busy(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<ConnectBusy>() {
            return true;
        }
        cur = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(url: &str, timeout: Duration, down_for: Duration) -> Backends {
        let dir = tempfile::tempdir().unwrap();
        let pki = canopy_auth::Pki::load_or_create(dir.path(), &[]).unwrap();
        let ca = canopy_auth::ClientCa::load_or_create(dir.path(), "client-ca").unwrap();
        let (cert_pem, key_pem) = ca.issue_client_cert("front-proxy", &[]).unwrap();
        Backends::new(
            &[ShardTarget {
                name: "s".into(),
                url: url.into(),
            }],
            &pki.ca_cert_pem,
            &CertAndKey { cert_pem, key_pem },
            timeout,
            down_for,
        )
        .unwrap()
    }

    fn get(b: &Backends) -> Request<ProxyBody> {
        let mut r = Request::new(empty());
        *r.uri_mut() = b.uri(0, "/version").unwrap();
        r
    }

    #[tokio::test]
    async fn a_silent_shard_times_out_and_is_remembered_as_down() {
        // accepts TCP connections and never speaks TLS
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", l.local_addr().unwrap().port());
        let hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                conns.push(c);
            }
        });
        let b = backends(&url, Duration::from_millis(300), Duration::from_millis(500));
        let t = Instant::now();
        let e = b.send(0, get(&b), false).await.unwrap_err();
        assert!(matches!(e, BackendError::Connect(..)), "{e}");
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(b.is_down(0));
        // remembered: the next request fails at once
        let t = Instant::now();
        let e = b.send(0, get(&b), false).await.unwrap_err();
        assert!(matches!(e, BackendError::Down(..)), "{e}");
        assert!(t.elapsed() < Duration::from_millis(50));
        // then it is tried again
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!b.is_down(0));
        let e = b.send(0, get(&b), false).await.unwrap_err();
        assert!(matches!(e, BackendError::Connect(..)), "{e}");
        hold.abort();
    }

    #[test]
    fn shard_urls_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pki = canopy_auth::Pki::load_or_create(dir.path(), &[]).unwrap();
        let ca = canopy_auth::ClientCa::load_or_create(dir.path(), "client-ca").unwrap();
        let (cert_pem, key_pem) = ca.issue_client_cert("front-proxy", &[]).unwrap();
        for bad in ["http://127.0.0.1:1", "127.0.0.1:1", "https://"] {
            let r = Backends::new(
                &[ShardTarget {
                    name: "s".into(),
                    url: bad.into(),
                }],
                &pki.ca_cert_pem,
                &CertAndKey {
                    cert_pem: cert_pem.clone(),
                    key_pem: key_pem.clone(),
                },
                Duration::from_secs(1),
                Duration::from_secs(1),
            );
            assert!(matches!(r, Err(ProxyError::Options(_))), "{bad}");
        }
    }
}
