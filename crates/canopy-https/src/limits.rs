//! Connection-level limits: timeouts, caps on open connections (per process and per
//! client address), HTTP/2 stream limits, and the process's file-descriptor limit.
//!
//! Why: every connection costs a file descriptor and some memory, and an open sign-up
//! service is reachable by anyone. Without these, 20,000 idle TCP connections (or
//! connections that never finish their headers) exhaust the process's descriptors and
//! every tenant gets errors. The defaults follow kube-apiserver where it has one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canopy_metrics::{Family, ReadableCounter, ReadableGauge, Registry};
use parking_lot::Mutex;

/// File descriptors kept free for everything that is not a client connection
/// (database connections, files, connections to peers and shards, the listener).
pub const FD_RESERVE: u64 = 1024;

/// Timeouts and caps of [`serve`](crate::serve). `Default` gives the production
/// defaults; every server exposes each as a flag.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// A TLS handshake must complete within this (`--tls-handshake-timeout`, 10 s as
    /// Go's `http.Transport`). A client that connects and says nothing is closed then.
    pub tls_handshake_timeout: Duration,
    /// The headers of an HTTP/1 request, and the first request of any connection,
    /// must arrive within this (`--header-read-timeout`, 32 s as kube-apiserver's
    /// `ReadHeaderTimeout`). hyper also starts it when an HTTP/1 connection waits for
    /// its next request, so an idle HTTP/1 keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// A connection with no open request for this long is closed (`--idle-timeout`,
    /// 90 s as kube-apiserver's `IdleTimeout` for HTTP/1 and HTTP/2). Watches are open
    /// requests: a connection holding one is never idle.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive pings on connections (`--http2-keepalive-interval`, 60 s; 0:
    /// none): a peer that does not answer within 20 s is gone and its connection (and
    /// the watches on it) closed.
    pub http2_keepalive_interval: Option<Duration>,
    /// Streams a client may open at once on one HTTP/2 connection
    /// (`--http2-max-streams-per-connection`, 250 as Go's HTTP/2 server, which
    /// kube-apiserver uses when its flag is 0).
    pub http2_max_concurrent_streams: u32,
    /// Open client connections in this process (`--max-connections`); a new one beyond
    /// it is closed at once. Default: [`default_max_connections`], derived from the
    /// file-descriptor limit. 0: no cap.
    pub max_connections: usize,
    /// Open connections from one client IP address (`--max-connections-per-ip`, 1,000);
    /// beyond it a new one is closed at once. Connections presenting a client
    /// certificate the server trusts (the front-proxy, shard peers) do not count: on a
    /// server with a client CA an over-the-cap connection is let through its handshake
    /// and kept only if it presents one. 0: no cap.
    pub max_connections_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(32),
            idle_timeout: Duration::from_secs(90),
            http2_keepalive_interval: Some(Duration::from_secs(60)),
            http2_max_concurrent_streams: 250,
            max_connections: default_max_connections(1),
            max_connections_per_ip: 1000,
        }
    }
}

/// The process's open-files limit after [`raise_fd_limit`]: (soft, hard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft limit of open files (RLIMIT_NOFILE) to the hard limit. Every binary
/// calls this first: the default soft limit (often 1,024) is far below what a server
/// with thousands of connections and watches needs, while the hard limit is what the
/// administrator allows.
pub fn raise_fd_limit() -> std::io::Result<FdLimit> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    rlimit::increase_nofile_limit(hard)?;
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    Ok(FdLimit { soft, hard })
}

/// [`raise_fd_limit`], logging the result (a failure is a warning: the server still
/// runs, with fewer connections).
pub fn raise_fd_limit_logged() -> Option<FdLimit> {
    match raise_fd_limit() {
        Ok(l) => {
            tracing::info!(soft = l.soft, hard = l.hard, "open-files limit");
            Some(l)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            None
        }
    }
}

/// The current open-files limit.
pub fn fd_limit() -> std::io::Result<FdLimit> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    Ok(FdLimit { soft, hard })
}

/// The default connection cap when the process's descriptors are shared `ways` ways
/// (the front-proxy needs one descriptor towards a shard for each client watch, so it
/// divides by 2): (soft limit − [`FD_RESERVE`]) / `ways`, at least 64.
pub fn default_max_connections(ways: u64) -> usize {
    let soft = fd_limit().map(|l| l.soft).unwrap_or(1024);
    let budget = soft.saturating_sub(FD_RESERVE) / ways.max(1);
    usize::try_from(budget.max(64)).unwrap_or(usize::MAX)
}

/// Prometheus metrics of the serving loop, in the server's registry. `Default`: in a
/// registry of their own (a server that shows no metrics, tests).
#[derive(Clone, Debug)]
pub struct ConnectionMetrics {
    open: ReadableGauge,
    rejected: Family<ReadableCounter>,
    closed: Family<ReadableCounter>,
}

impl Default for ConnectionMetrics {
    fn default() -> Self {
        ConnectionMetrics::new(&Registry::default(), "canopy")
    }
}

impl ConnectionMetrics {
    /// `<prefix>_connections` (open now), `<prefix>_connections_rejected_total{reason}`
    /// (`max_connections`, `max_connections_per_ip`),
    /// `<prefix>_connections_closed_total{reason}` (`tls_handshake_timeout`,
    /// `header_read_timeout`, `idle`), in `registry`.
    pub fn new(registry: &Registry, prefix: &str) -> ConnectionMetrics {
        ConnectionMetrics {
            open: registry.metric(format!("{prefix}_connections"), "Open client connections"),
            rejected: registry.family(
                format!("{prefix}_connections_rejected_total"),
                "Client connections closed at once because a connection cap was reached",
                &["reason"],
            ),
            closed: registry.family(
                format!("{prefix}_connections_closed_total"),
                "Client connections closed by the server for a timeout",
                &["reason"],
            ),
        }
    }

    pub(crate) fn rejected(&self, reason: &str) {
        self.rejected.with(&[reason], |c| c.increment(1));
    }

    pub(crate) fn closed(&self, reason: &str) {
        self.closed.with(&[reason], |c| c.increment(1));
    }

    /// Connections rejected so far for `reason`.
    pub fn rejected_count(&self, reason: &str) -> u64 {
        self.rejected.with(&[reason], |c| c.get())
    }

    /// Connections closed so far for `reason`.
    pub fn closed_count(&self, reason: &str) -> u64 {
        self.closed.with(&[reason], |c| c.get())
    }

    /// Connections open now.
    pub fn open_count(&self) -> i64 {
        self.open.get()
    }
}

/// Counts open connections, in total and per address.
pub(crate) struct Counters {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    metrics: ConnectionMetrics,
}

/// Why a connection may not be kept.
pub(crate) enum Over {
    Process,
    /// Over the per-address cap: kept only if it turns out to be a trusted peer.
    Ip(Slot),
}

impl Counters {
    pub(crate) fn new(metrics: ConnectionMetrics) -> Arc<Counters> {
        Arc::new(Counters {
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Takes a slot for a connection from `ip`.
    pub(crate) fn take(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &ConnectionLimits,
    ) -> Result<Slot, Over> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= limits.max_connections
            && limits.max_connections > 0
        {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Over::Process);
        }
        let over_ip = {
            let mut m = self.per_ip.lock();
            let n = m.entry(ip).or_insert(0);
            *n += 1;
            limits.max_connections_per_ip > 0 && *n > limits.max_connections_per_ip
        };
        self.metrics.open.increment();
        let slot = Slot {
            counters: self.clone(),
            ip: Some(ip),
        };
        if over_ip {
            Err(Over::Ip(slot))
        } else {
            Ok(slot)
        }
    }
}

/// One open connection, counted until dropped (it lives in the connection's I/O, so
/// an upgraded connection stays counted).
pub(crate) struct Slot {
    counters: Arc<Counters>,
    /// `None` once the connection no longer counts against its address.
    ip: Option<IpAddr>,
}

impl Slot {
    /// The connection is a trusted peer's: it no longer counts against its address.
    pub(crate) fn exempt_from_ip_cap(&mut self) {
        if let Some(ip) = self.ip.take() {
            self.counters.release_ip(ip);
        }
    }

    pub(crate) fn metrics(&self) -> &ConnectionMetrics {
        &self.counters.metrics
    }
}

impl Counters {
    fn release_ip(&self, ip: IpAddr) {
        let mut m = self.per_ip.lock();
        if let Some(n) = m.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip.take() {
            self.counters.release_ip(ip);
        }
        self.counters.total.fetch_sub(1, Ordering::AcqRel);
        self.counters.metrics.open.decrement();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_process_and_per_address() {
        let c = Counters::new(ConnectionMetrics::default());
        let limits = ConnectionLimits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..ConnectionLimits::default()
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = c.take(a, &limits).ok().unwrap();
        let _s2 = c.take(a, &limits).ok().unwrap();
        let Err(Over::Ip(mut third)) = c.take(a, &limits) else {
            panic!("a third connection from one address is over its cap");
        };
        // a trusted peer over the address cap is kept and frees its address slot
        third.exempt_from_ip_cap();
        assert!(matches!(c.take(b, &limits), Err(Over::Process)));
        drop(third);
        let _s3 = c.take(b, &limits).ok().unwrap();
        drop(s1);
        let _s4 = c.take(b, &limits).ok().unwrap();
        assert_eq!(c.metrics.open_count(), 3);
        // 0 turns the caps off
        let off = ConnectionLimits {
            max_connections: 0,
            max_connections_per_ip: 0,
            ..ConnectionLimits::default()
        };
        let many: Vec<_> = (0..10).map(|_| c.take(a, &off).ok().unwrap()).collect();
        assert_eq!(many.len(), 10);
    }

    #[test]
    fn fd_limit_is_raised_to_the_hard_limit() {
        let l = raise_fd_limit().unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(l.soft, l.hard);
        assert_eq!(fd_limit().unwrap(), l);
        assert!(default_max_connections(1) >= default_max_connections(2));
    }
}
