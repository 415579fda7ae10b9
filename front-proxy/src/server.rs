//! Client-facing HTTPS: the shared serving loop (`canopy_https`: TLS with ALPN h2 and
//! http/1.1, a task per connection, panics answered as 500, connection timeouts and
//! caps) and graceful shutdown (in-flight requests get up to 5 s; watches are cut then).

use std::future::Future;
use std::sync::Arc;

use canopy_https::TlsAcceptor;
use tokio::net::TcpListener;

use crate::{CertAndKey, ProxyError, State};

pub(crate) fn acceptor(tls: &CertAndKey) -> Result<TlsAcceptor, ProxyError> {
    canopy_https::acceptor(&canopy_https::ServerTls {
        cert_pem: tls.cert_pem.clone(),
        key_pem: tls.key_pem.clone(),
        client_ca_pem: None,
    })
    .map_err(|e| ProxyError::Tls(e.to_string()))
}

fn on_panic() -> http::Response<crate::backend::ProxyBody> {
    crate::handler::status(&canopy_core::ApiError::internal(
        "the front-proxy panicked while handling the request",
    ))
}

pub(crate) async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    options: canopy_https::ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let handle = move |req, _conn| crate::handler::handle(state.clone(), req);
    canopy_https::serve(
        listener,
        acceptor,
        handle,
        on_panic,
        shutdown,
        || {},
        options,
    )
    .await;
}
