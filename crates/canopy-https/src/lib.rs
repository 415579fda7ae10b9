//! The HTTPS serving loop of every Canopy server (shard, front-proxy, cache server).
//!
//! - [`acceptor`]: rustls with the ring provider, ALPN `h2` then `http/1.1`, and, when
//!   given a client CA, *optional* client certificates (a connection may present one;
//!   if it does, the CA must have signed it).
//! - [`serve`]: accepts until shutdown, a task per connection (TLS handshakes time out
//!   after 10 s), hands each request with its [`Conn`] to the handler, answers a
//!   handler panic with the handler's own 500 instead of dropping the connection (and
//!   every request multiplexed on it), and on shutdown lets in-flight requests finish
//!   for a grace period before closing what is left.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
pub use tokio_rustls::TlsAcceptor;

/// Why TLS material was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// A serving certificate (chain) and key, PEM, and optionally the CA whose client
/// certificates are accepted.
#[derive(Clone, Default)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// `None`: no client certificates are asked for.
    pub client_ca_pem: Option<String>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls { .. }")
    }
}

/// Builds the TLS acceptor for `tls`.
pub fn acceptor(tls: &ServerTls) -> Result<TlsAcceptor, TlsError> {
    let err = |what: &str, e: &dyn std::fmt::Display| TlsError(format!("{what}: {e}"));
    let certs: Vec<_> = rustls_pemfile::certs(&mut tls.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| err("serving certificate", &e))?;
    if certs.is_empty() {
        return Err(TlsError("no serving certificate found".into()));
    }
    let key = rustls_pemfile::private_key(&mut tls.key_pem.as_bytes())
        .map_err(|e| err("serving key", &e))?
        .ok_or_else(|| TlsError("no private key found".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", &e))?;
    let builder = match &tls.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
                let c = c.map_err(|e| err("client CA", &e))?;
                roots.add(c).map_err(|e| err("client CA", &e))?;
            }
            if roots.is_empty() {
                return Err(TlsError("client CA: no certificate found".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| err("client CA", &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| err("serving certificate", &e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub peer: SocketAddr,
    /// The client presented a certificate (which the client CA signed: the verifier
    /// accepts no other).
    pub client_certificate: bool,
}

/// How [`serve`] behaves.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// How long in-flight requests may take after shutdown began.
    pub grace: Duration,
    /// Allow HTTP/1.1 upgrades (SPDY/WebSocket streams).
    pub upgrades: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            grace: Duration::from_secs(5),
            upgrades: true,
        }
    }
}

/// Serves on `listener` until `shutdown` completes; then calls `stopping` (to end
/// long-running responses such as watches), waits up to the grace period for open
/// connections, and closes the rest.
///
/// `handle` answers one request; `on_panic` is the response for a request whose
/// handler panicked.
pub async fn serve<H, Fut, B>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handle: H,
    on_panic: fn() -> http::Response<B>,
    shutdown: impl Future<Output = ()>,
    stopping: impl FnOnce(),
    options: ServeOptions,
) where
    H: Fn(http::Request<Incoming>, Conn) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handle = handle.clone();
        let watcher = graceful.watcher();
        conns.spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let conn = Conn {
                peer,
                client_certificate: stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty()),
            };
            let svc = service_fn(move |req| {
                let fut = std::panic::AssertUnwindSafe(handle(req, conn)).catch_unwind();
                async move {
                    Ok::<_, std::convert::Infallible>(match fut.await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::error!(%peer, "a request handler panicked");
                            on_panic()
                        }
                    })
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let result = if options.upgrades {
                let c = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                watcher.watch(c.into_owned()).await
            } else {
                let c = builder.serve_connection(TokioIo::new(stream), svc);
                watcher.watch(c.into_owned()).await
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
    drop(listener);
    stopping();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(options.grace) => {
            tracing::info!(grace = ?options.grace, "connections still open after the grace period; closing them");
        }
    }
    conns.abort_all();
}
