//! The HTTPS serving loop of every Canopy server (shard, front-proxy, cache server).
//!
//! - [`acceptor`]: rustls with the ring provider, ALPN `h2` then `http/1.1`, and, when
//!   given a client CA, *optional* client certificates (a connection may present one;
//!   if it does, the CA must have signed it).
//! - [`serve`]: accepts until shutdown, a task per connection, hands each request with
//!   its [`Conn`] to the handler, answers a handler panic with the handler's own 500
//!   instead of dropping the connection (and every request multiplexed on it), ends just
//!   the one response whose body panics, and on shutdown lets in-flight requests finish
//!   for a grace period before closing what is left.
//! - [`ConnectionLimits`] (module [`limits`]): the connection-level protections, in
//!   this one place for every server — TLS handshake, header-read and idle timeouts,
//!   HTTP/2 keep-alive pings and stream limit, caps on open connections per process and
//!   per client address (over a cap the new connection is closed at once and counted in
//!   [`ConnectionMetrics`]) — and [`raise_fd_limit`], which every binary calls at start.
//!
//! Request-level limits (in-flight requests with fair queuing per user, watches per
//! user, rate limits) need the authenticated user and live in `canopy-edge`.

pub mod body;
pub mod endpoint;
pub mod limits;

pub use body::ServedBody;
pub use endpoint::Endpoint;
pub use limits::{
    default_max_connections, fd_limit, raise_fd_limit, raise_fd_limit_logged, ConnectionLimits,
    ConnectionMetrics, FdLimit, FD_RESERVE,
};

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// The TLS configuration of a server, from [`acceptor`].
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    /// Whether clients may present certificates (a client CA was given).
    client_auth: bool,
}

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
    Ok(TlsAcceptor {
        inner: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
        client_auth: tls.client_ca_pem.is_some(),
    })
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
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long in-flight requests may take after shutdown began.
    pub grace: Duration,
    /// Allow HTTP/1.1 upgrades (SPDY/WebSocket streams).
    pub upgrades: bool,
    /// Timeouts and connection caps.
    pub limits: ConnectionLimits,
    /// Where connection counts go ([`ConnectionMetrics::new`] in the server's registry).
    pub metrics: ConnectionMetrics,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            grace: Duration::from_secs(5),
            upgrades: true,
            limits: ConnectionLimits::default(),
            metrics: ConnectionMetrics::default(),
        }
    }
}

/// The TLS stream of one connection, which counts against the connection caps until it
/// is dropped (also after an upgrade hands it to the handler).
struct CountedIo {
    io: tokio_rustls::server::TlsStream<TcpStream>,
    _slot: limits::Slot,
}

impl AsyncRead for CountedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// How long a connection closed for being idle may take to finish closing.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let counters = limits::Counters::new(options.metrics.clone());
    let limits = Arc::new(options.limits.clone());
    let client_ca = acceptor.client_auth;
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // typically out of file descriptors: wait for some to be freed
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over a cap: close at once (answering would need a TLS handshake first).
        let (slot, must_be_peer) = match counters.take(peer.ip(), &limits) {
            Ok(slot) => (slot, false),
            Err(limits::Over::Process) => {
                options.metrics.rejected("max_connections");
                tracing::debug!(%peer, "connection refused: --max-connections reached");
                continue;
            }
            Err(limits::Over::Ip(slot)) if client_ca => (slot, true),
            Err(limits::Over::Ip(_)) => {
                options.metrics.rejected("max_connections_per_ip");
                tracing::debug!(%peer, "connection refused: --max-connections-per-ip reached");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.inner.clone();
        let handle = handle.clone();
        let limits = limits.clone();
        let upgrades = options.upgrades;
        let mut stop_rx = stop_rx.clone();
        conns.spawn(async move {
            let mut slot = slot;
            let stream = match tokio::time::timeout(
                limits.tls_handshake_timeout,
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    slot.metrics().closed("tls_handshake_timeout");
                    return;
                }
            };
            let conn = Conn {
                peer,
                client_certificate: stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty()),
            };
            if conn.client_certificate {
                // the front-proxy or a shard peer (the verifier accepts only the
                // client CA's certificates): not limited by its address
                slot.exempt_from_ip_cap();
            } else if must_be_peer {
                slot.metrics().rejected("max_connections_per_ip");
                tracing::debug!(%peer, "connection refused: --max-connections-per-ip reached");
                return;
            }
            let metrics = slot.metrics().clone();
            let activity = body::Activity::new();
            let svc_activity = activity.clone();
            let svc = service_fn(move |req| {
                let active = svc_activity.begin();
                let fut = std::panic::AssertUnwindSafe(handle(req, conn)).catch_unwind();
                async move {
                    let resp = match fut.await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::error!(%peer, "a request handler panicked");
                            on_panic()
                        }
                    };
                    Ok::<_, std::convert::Infallible>(
                        resp.map(|b| body::ServedBody::new(b, active)),
                    )
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.http2_max_concurrent_streams)
                .keep_alive_interval(limits.http2_keepalive_interval)
                .keep_alive_timeout(Duration::from_secs(20));
            let io = TokioIo::new(CountedIo {
                io: stream,
                _slot: slot,
            });
            let (result, closed_for_time) = if upgrades {
                let c = builder.serve_connection_with_upgrades(io, svc);
                tokio::pin!(c);
                drive(c, &activity, &limits, &mut stop_rx, &metrics, |c| {
                    c.graceful_shutdown()
                })
                .await
            } else {
                let c = builder.serve_connection(io, svc);
                tokio::pin!(c);
                drive(c, &activity, &limits, &mut stop_rx, &metrics, |c| {
                    c.graceful_shutdown()
                })
                .await
            };
            if let Err(e) = result {
                if !closed_for_time
                    && e.downcast_ref::<hyper::Error>()
                        .is_some_and(|e| e.is_timeout())
                {
                    metrics.closed("header_read_timeout");
                }
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
    drop(listener);
    stopping();
    let _ = stop_tx.send(true);
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(options.grace, drained).await.is_err() {
        tracing::info!(grace = ?options.grace, "connections still open after the grace period; closing them");
    }
    conns.abort_all();
}

/// Drives one connection: closes it gracefully when it has been idle too long (no open
/// request for the idle timeout; no first request within the header-read timeout) or
/// when the server stops; a connection asked to close for idleness that has not within
/// a few seconds is dropped. Returns the connection's result and whether this closed it
/// for a timeout (already counted).
async fn drive<C>(
    mut c: Pin<&mut C>,
    activity: &body::Activity,
    limits: &ConnectionLimits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    metrics: &ConnectionMetrics,
    graceful: fn(Pin<&mut C>),
) -> (Result<(), body::BoxError>, bool)
where
    C: Future<Output = Result<(), body::BoxError>>,
{
    let mut closing: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let now = Instant::now();
        let wake = match closing {
            Some(t) => t + CLOSE_GRACE,
            None => match activity.idle_since() {
                // a request is open: look again later
                None => now + limits.idle_timeout,
                Some(since) if activity.served_any() => since + limits.idle_timeout,
                Some(since) => since + limits.header_read_timeout,
            },
        };
        tokio::select! {
            r = c.as_mut() => return (r, closing.is_some()),
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                graceful(c.as_mut());
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if closing.is_some() {
                    return (Ok(()), true);
                }
                let limit = if activity.served_any() {
                    limits.idle_timeout
                } else {
                    limits.header_read_timeout
                };
                if activity
                    .idle_since()
                    .is_some_and(|since| since.elapsed() >= limit)
                {
                    metrics.closed(if activity.served_any() {
                        "idle"
                    } else {
                        "header_read_timeout"
                    });
                    closing = Some(Instant::now());
                    graceful(c.as_mut());
                }
            }
        }
    }
}

/// Sets up a server process's logs: to stderr (stdout is for what a command prints),
/// filtered by `RUST_LOG`, `info` when unset. Call once, first thing in `main`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
