//! HTTPS serving: TLS (rustls) with ALPN for HTTP/2 and HTTP/1.1, one task per
//! connection, graceful shutdown that lets in-flight requests finish (watches are ended);
//! the connection limits of `canopy_https`, then per request the edge stack of
//! [`crate::edge`] (authentication, then the limits of `canopy_edge`, whose permit is
//! held until the response body — a watch: its stream — ends), then the pipeline.
//!
//! With a proxy client CA configured, clients may present a certificate (optional client
//! auth); a connection whose certificate that CA signed is the front-proxy's, and its
//! requests carry the [`FrontProxyPeer`] extension, which lets the pipeline take the
//! caller's identity from `X-Remote-*` headers.

use std::future::Future;
use std::time::Duration;

use canopy_https::TlsAcceptor;
use tokio::net::TcpListener;
use tower::Layer;

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
    canopy_https::acceptor(&canopy_https::ServerTls {
        cert_pem: tls.cert_pem.clone(),
        key_pem: tls.key_pem.clone(),
        client_ca_pem: tls.proxy_client_ca_pem.clone(),
    })
    .map_err(|e| ServeError::Tls(e.to_string()))
}

/// The limits a shard serves with: per connection (`canopy_https`) and per request
/// (`canopy_edge`). `Default`: the production defaults.
pub use canopy_edge::ServerLimits;

type Served = canopy_edge::PermitBody<crate::response::Body>;

/// Serves `api` on `listener` until `shutdown` completes, then ends open watches and
/// waits (up to 10 s) for open connections to finish their current requests.
pub async fn serve(
    api: ApiServer,
    listener: TcpListener,
    tls: TlsConfig,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let acceptor = acceptor(&tls)?;
    let registry = api.inner.metrics.registry();
    let requests = canopy_edge::Limits::new(
        limits.requests.clone(),
        canopy_edge::EdgeMetrics::new(registry, "canopy_shard"),
    );
    let conn_metrics = canopy_https::ConnectionMetrics::new(registry, "canopy_shard");
    let handler_api = api.clone();
    let handle = move |mut req: hyper::Request<hyper::body::Incoming>, conn: canopy_https::Conn| {
        // The verifier accepts only certificates the proxy client CA signed: any
        // certificate here is the front-proxy's.
        if conn.client_certificate {
            req.extensions_mut().insert(FrontProxyPeer);
        }
        // The edge stack (`edge.rs`): authenticate → limits → pipeline. Every layer is
        // always ready, so the future needs no `poll_ready`.
        let stack = crate::edge::AuthenticateLayer::new(handler_api.clone(), |e| {
            crate::response::error(&e).map(|b| Served::new(b, None))
        })
        .layer(
            canopy_edge::LimitsLayer::new(requests.clone(), |e| crate::response::error(&e))
                .layer(crate::edge::Pipeline(handler_api.clone())),
        );
        let fut = tower::Service::call(&mut { stack }, req);
        async move {
            match fut.await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
    };
    fn on_panic() -> hyper::Response<Served> {
        crate::response::error(&canopy_core::ApiError::internal(
            "the server panicked while handling the request",
        ))
        .map(|b| Served::new(b, None))
    }
    canopy_https::serve(
        listener,
        acceptor,
        handle,
        on_panic,
        shutdown,
        // watches would otherwise keep their connections (and this shutdown) open
        move || api.begin_shutdown(),
        canopy_https::ServeOptions {
            grace: Duration::from_secs(10),
            upgrades: true,
            limits: limits.connections,
            metrics: conn_metrics,
        },
    )
    .await;
    Ok(())
}
