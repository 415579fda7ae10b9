//! Watches to shards over shared HTTP/2 connections.
//!
//! Every other request goes over the pooled HTTP/1.1 connections of
//! [`crate::backend`]: it holds its connection for a moment. A watch holds its
//! connection for as long as the client wants, so with one connection per watch, 10,000
//! watches through the proxy are 10,000 TLS connections to the shards (file descriptors
//! and TLS state on both sides) and one event for all of them is 10,000 socket reads and
//! TLS records in the proxy. Here a user's watches to a shard are multiplexed instead:
//! as many HTTP/2 connections as they need, at most [`STREAMS_PER_CONNECTION`] streams
//! each, so one socket read carries the events of many watches. That must stay below
//! the shard's `--http2-max-concurrent-streams` (250 by default): on a shard set below
//! 100, the watches beyond its limit would wait for a stream, and fail after
//! [`STREAM_WAIT`] with 503.
//!
//! **A connection carries the watches of one user only.** What ends an HTTP/2
//! connection for everyone on it (a GOAWAY for too many resets, for oversized headers,
//! for a flood of tiny frames, a protocol error) can then only be caused by, and only
//! hurt, the user whose requests caused it. Defence in depth on top: watches are
//! forwarded without a request body, and one whose headers are large goes over
//! HTTP/1.1 instead ([`crate::handler`]). A connection is closed when its last watch
//! ends, so users who stopped watching hold nothing.
//!
//! Sharing a connection must not let one slow client stall the user's other watches:
//! HTTP/2 flow control counts unread data against the connection's window as well as
//! the stream's. Each stream's window is small ([`STREAM_WINDOW`]) and the connection's
//! window holds every stream's full window at once ([`CONNECTION_WINDOW`]), so streams
//! whose clients stopped reading can never use up the connection's window; the shard
//! stops sending to such a stream, its watcher's queue fills, and it ends with 410 as
//! it would alone.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio_rustls::rustls;

use crate::backend::{BoxError, ProxyBody};

/// Streams one connection carries at most (the shard allows 250 by default).
pub const STREAMS_PER_CONNECTION: usize = 100;
/// Unread bytes one stream may hold. Larger events arrive in pieces as the window
/// opens; what a tenant can make the proxy buffer is this times its watch cap.
pub const STREAM_WINDOW: u32 = 256 * 1024;
/// Unread bytes one connection may hold: every stream's window, so that streams that
/// stopped reading cannot block the others.
pub const CONNECTION_WINDOW: u32 = STREAM_WINDOW * STREAMS_PER_CONNECTION as u32;

/// How long a watch waits for a stream of its connection and the shard's response
/// headers.
pub const STREAM_WAIT: Duration = Duration::from_secs(30);

/// Why a watch could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// TCP, TLS or the HTTP/2 handshake failed: the shard is unreachable.
    #[error("{0}")]
    Connect(String),
    /// The request failed on an established connection.
    #[error("{0}")]
    Failed(String),
}

struct Connection {
    id: u64,
    send: http2::SendRequest<ProxyBody>,
    /// Streams open on it (requests sent whose response bodies are not dropped yet).
    streams: Arc<AtomicUsize>,
}

/// Each user's connections.
type Groups = HashMap<String, Vec<Connection>>;

/// The HTTP/2 connections to one shard.
pub struct StreamPool {
    host: String,
    port: u16,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    /// Shared with the HTTP/1.1 connector: connections opened at once, at most.
    gate: Arc<tokio::sync::Semaphore>,
    groups: Arc<Mutex<Groups>>,
    next_id: AtomicU64,
}

impl StreamPool {
    /// A pool for the shard at `uri` (`https://host:port`), with the proxy's client TLS
    /// configuration (its ALPN is replaced by `h2`).
    pub fn new(
        uri: &Uri,
        tls: &rustls::ClientConfig,
        connect_timeout: Duration,
        gate: Arc<tokio::sync::Semaphore>,
    ) -> Option<StreamPool> {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Some(StreamPool {
            host: uri
                .host()?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: uri.port_u16().unwrap_or(443),
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            gate,
            groups: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(0),
        })
    }

    /// Connections open, over all users (for tests and metrics).
    pub fn connections(&self) -> usize {
        let mut groups = self.groups.lock();
        groups.retain(|_, conns| {
            conns.retain(|c| !c.send.is_closed());
            !conns.is_empty()
        });
        groups.values().map(Vec::len).sum()
    }

    /// One of `user`'s connections with a free stream, the stream taken.
    fn checkout(&self, user: &str) -> Option<(http2::SendRequest<ProxyBody>, StreamGuard)> {
        let mut groups = self.groups.lock();
        let conns = groups.get_mut(user)?;
        conns.retain(|c| !c.send.is_closed());
        let found = conns
            .iter()
            .find(|c| c.streams.load(Ordering::Acquire) < STREAMS_PER_CONNECTION)
            .map(|c| {
                c.streams.fetch_add(1, Ordering::AcqRel);
                (c.send.clone(), self.guard(user, c))
            });
        if conns.is_empty() {
            groups.remove(user);
        }
        found
    }

    fn guard(&self, user: &str, c: &Connection) -> StreamGuard {
        StreamGuard {
            streams: c.streams.clone(),
            groups: Arc::downgrade(&self.groups),
            user: user.to_string(),
            id: c.id,
        }
    }

    async fn connect(
        &self,
        user: &str,
    ) -> Result<(http2::SendRequest<ProxyBody>, StreamGuard), StreamError> {
        let _turn =
            tokio::time::timeout(Duration::from_secs(30), self.gate.clone().acquire_owned())
                .await
                .map_err(|_| {
                    StreamError::Failed(
                        "too many connections to shards being opened at once".into(),
                    )
                })?
                .map_err(|_| StreamError::Failed("the proxy is stopping".into()))?;
        // another request may have opened one while this one waited for its turn
        if let Some(found) = self.checkout(user) {
            return Ok(found);
        }
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| StreamError::Connect(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                .map_err(|e| StreamError::Connect(format!("server name {:?}: {e}", self.host)))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| StreamError::Connect(e.to_string()))?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(StreamError::Connect(
                    "the shard did not negotiate HTTP/2".into(),
                ));
            }
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(20))
                .keep_alive_while_idle(true)
                .handshake(TokioIo::new(tls))
                .await
                .map_err(|e| StreamError::Connect(e.to_string()))
        };
        let (send, conn) = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| {
                StreamError::Connect(format!(
                    "connecting took longer than {:?}",
                    self.connect_timeout
                ))
            })??;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP/2 connection to a shard ended");
            }
        });
        let conn = Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            send: send.clone(),
            streams: Arc::new(AtomicUsize::new(1)),
        };
        let guard = self.guard(user, &conn);
        self.groups
            .lock()
            .entry(user.to_string())
            .or_default()
            .push(conn);
        Ok((send, guard))
    }

    /// Sends a watch of `user` (`req`'s URI is the shard's, absolute) over one of that
    /// user's connections and returns its response; the stream counts against its
    /// connection until the response body is dropped.
    pub async fn send(
        &self,
        user: &str,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, StreamError> {
        let (mut send, guard) = match self.checkout(user) {
            Some(found) => found,
            None => self.connect(user).await?,
        };
        *req.version_mut() = Version::HTTP_2;
        // a watch's response headers come at once; waiting longer means the connection
        // has no free stream (a shard allowing fewer than STREAMS_PER_CONNECTION) or the
        // shard is stuck: fail instead of waiting without end
        let resp = tokio::time::timeout(STREAM_WAIT, async {
            send.ready().await?;
            send.send_request(req).await
        })
        .await
        .map_err(|_| StreamError::Failed("the shard did not answer the watch in time".into()))?
        .map_err(|e| StreamError::Failed(e.to_string()))?;
        Ok(resp.map(|b| {
            Guarded {
                inner: b.map_err(|e| Box::new(e) as BoxError).boxed(),
                _guard: guard,
            }
            .boxed()
        }))
    }
}

/// One stream of a connection, given back when dropped; the connection is closed when
/// its last stream is given back.
struct StreamGuard {
    streams: Arc<AtomicUsize>,
    groups: std::sync::Weak<Mutex<Groups>>,
    user: String,
    id: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.streams.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(groups) = self.groups.upgrade() else {
            return;
        };
        let mut groups = groups.lock();
        if let Some(conns) = groups.get_mut(&self.user) {
            // checked again under the lock: a checkout may have taken a stream since
            conns.retain(|c| c.id != self.id || c.streams.load(Ordering::Acquire) > 0);
            if conns.is_empty() {
                groups.remove(&self.user);
            }
        }
    }
}

/// A response body that holds its stream.
struct Guarded {
    inner: ProxyBody,
    _guard: StreamGuard,
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
