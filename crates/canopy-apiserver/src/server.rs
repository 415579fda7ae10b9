//! HTTPS serving: TLS (rustls) with ALPN for HTTP/2 and HTTP/1.1, one task per
//! connection, graceful shutdown that lets in-flight requests finish (watches are ended).
//!
//! With a proxy client CA configured, clients may present a certificate (optional client
//! auth); a connection whose certificate that CA signed is the front-proxy's, and its
//! requests carry the [`FrontProxyPeer`] extension, which lets the pipeline take the
//! caller's identity from `X-Remote-*` headers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::ApiServer;

/// PEM serving certificate chain and key.
#[derive(Clone)]
pub struct TlsConfig {
    pub cert_pem: String,
    pub key_pem: String,
    /// CA (PEM) of the front-proxy's client certificates; `None`: no client auth.
    pub proxy_client_ca_pem: Option<String>,
}

/// Request extension: the connection presented a client certificate signed by the proxy
/// client CA, so `X-Remote-*` identity headers are trusted.
#[derive(Debug, Clone, Copy)]
pub struct FrontProxyPeer;

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid TLS material: {0}")]
    Tls(String),
}

pub fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, ServeError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut tls.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut tls.key_pem.as_bytes())
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .ok_or_else(|| ServeError::Tls("no private key found".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let builder = match &tls.proxy_client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
                let c = c.map_err(|e| ServeError::Tls(format!("proxy client CA: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| ServeError::Tls(format!("proxy client CA: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ServeError::Tls(
                    "proxy client CA: no certificate found".into(),
                ));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| ServeError::Tls(format!("proxy client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Serves `api` on `listener` until `shutdown` completes, then waits (up to 10 s) for
/// open connections to finish their current requests.
pub async fn serve(
    api: ApiServer,
    listener: TcpListener,
    tls: TlsConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let acceptor = acceptor(&tls)?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
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
        let api = api.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            // The verifier accepts only certificates the proxy client CA signed: any
            // certificate here is the front-proxy's.
            let from_proxy = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let api = api.clone();
                if from_proxy {
                    req.extensions_mut().insert(FrontProxyPeer);
                }
                async move {
                    // Last line of defence: a bug that panics answers 500, it does not
                    // kill the connection (and every other request multiplexed on it).
                    let resp = match std::panic::AssertUnwindSafe(crate::pipeline::handle(api, req))
                        .catch_unwind()
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => crate::response::error(&canopy_core::ApiError::internal(
                            "the server panicked while handling the request",
                        )),
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            let conn = watcher.watch(conn.into_owned());
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
    drop(listener);
    // Watches would otherwise keep their connections (and this shutdown) open.
    api.begin_shutdown();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; closing them");
        }
    }
    Ok(())
}
