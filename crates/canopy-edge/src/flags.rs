//! The flags of every limit, shared by `shard`, `front-proxy` and `canopy start`
//! (`#[command(flatten)]`), so the three name and default them the same way.

use std::time::Duration;

use canopy_https::ConnectionLimits;

use crate::LimitsConfig;

/// Connection and request limits (see `canopy_https::ConnectionLimits` and
/// [`LimitsConfig`] for why each exists). 0 turns a limit off unless said otherwise.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Limits")]
pub struct LimitFlags {
    /// Seconds a client has to complete its TLS handshake.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub tls_handshake_timeout_seconds: u64,
    /// Seconds a client has to send a request's headers (HTTP/1), and the first request
    /// of a connection (also closes HTTP/1 keep-alive connections idle that long).
    #[arg(long, value_name = "SECONDS", default_value_t = 32)]
    pub header_read_timeout_seconds: u64,
    /// Seconds a connection may stay without any open request before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    pub idle_timeout_seconds: u64,
    /// Seconds between HTTP/2 keep-alive pings (a peer silent 20 s after one is gone;
    /// 0: no pings).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub http2_keepalive_interval_seconds: u64,
    /// Streams a client may open at once on one HTTP/2 connection.
    #[arg(long, default_value_t = 250)]
    pub http2_max_streams_per_connection: u32,
    /// Open client connections in this process; more are closed at once. Default:
    /// derived from the open-files limit (raised to its hard limit at start) minus
    /// 1,024 kept for everything else, halved in a front-proxy (a proxied watch may
    /// need a connection to a shard: a user's watches share theirs, but in the worst case
    /// every watch is a different user's).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Open connections from one client IP address; more are closed at once
    /// (connections with a trusted client certificate — the front-proxy, shard peers —
    /// do not count).
    #[arg(long, default_value_t = 1000)]
    pub max_connections_per_ip: usize,
    /// Read-only requests (get, list) running at once; watches do not count. Beyond
    /// it requests queue per user (fairly, round-robin between users), then get 429.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_REQUESTS_INFLIGHT)]
    pub max_requests_inflight: usize,
    /// Mutating requests (create, update, patch, delete) running at once.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT)]
    pub max_mutating_requests_inflight: usize,
    /// Requests one user may have waiting for an in-flight seat (per kind); more get
    /// 429 at once.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_QUEUED_PER_USER)]
    pub max_queued_per_user: usize,
    /// Seconds a request may wait for an in-flight seat before 429.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::DEFAULT_QUEUE_WAIT.as_secs())]
    pub queue_wait_timeout_seconds: u64,
    /// Watches (and other long-running requests) one user may have open here; more get
    /// 429. Superusers (system:masters) are exempt from every request limit.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_WATCHES_PER_USER)]
    pub max_watches_per_user: usize,
    /// Watches open in this process in total. Default: as --max-connections.
    #[arg(long)]
    pub max_watches: Option<usize>,
    /// Requests per second each user may make (token bucket); 0 turns the rate limit
    /// off.
    #[arg(long, default_value_t = crate::DEFAULT_RATE_LIMIT_QPS)]
    pub rate_limit_qps: f64,
    /// Requests a user may make at once (bucket size).
    #[arg(long, default_value_t = crate::DEFAULT_RATE_LIMIT_BURST)]
    pub rate_limit_burst: u32,
}

/// Why flags were refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(String);

impl LimitFlags {
    /// The connection limits; `ways`: how many ways the process's file descriptors
    /// are shared by default (1 for a shard, 2 for a front-proxy).
    pub fn connection_limits(&self, ways: u64) -> Result<ConnectionLimits, FlagError> {
        if self.tls_handshake_timeout_seconds == 0
            || self.header_read_timeout_seconds == 0
            || self.idle_timeout_seconds == 0
        {
            return Err(FlagError(
                "--tls-handshake-timeout-seconds, --header-read-timeout-seconds and --idle-timeout-seconds must be positive".into(),
            ));
        }
        if self.http2_max_streams_per_connection == 0 {
            return Err(FlagError(
                "--http2-max-streams-per-connection must be positive".into(),
            ));
        }
        Ok(ConnectionLimits {
            tls_handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_seconds),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            http2_keepalive_interval: (self.http2_keepalive_interval_seconds > 0)
                .then(|| Duration::from_secs(self.http2_keepalive_interval_seconds)),
            http2_max_concurrent_streams: self.http2_max_streams_per_connection,
            max_connections: self
                .max_connections
                .unwrap_or_else(|| canopy_https::default_max_connections(ways)),
            max_connections_per_ip: self.max_connections_per_ip,
        })
    }

    /// The request limits; `ways` as for [`connection_limits`](Self::connection_limits).
    pub fn request_limits(&self, ways: u64) -> Result<LimitsConfig, FlagError> {
        if self.rate_limit_qps < 0.0 || !self.rate_limit_qps.is_finite() {
            return Err(FlagError(
                "--rate-limit-qps must be 0 (off) or positive".into(),
            ));
        }
        Ok(LimitsConfig {
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            max_queued_per_user: self.max_queued_per_user,
            queue_wait: Duration::from_secs(self.queue_wait_timeout_seconds),
            max_watches_per_user: self.max_watches_per_user,
            max_watches: self
                .max_watches
                .unwrap_or_else(|| canopy_https::default_max_connections(ways)),
            rate_limit_qps: self.rate_limit_qps,
            rate_limit_burst: self.rate_limit_burst.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitFlags,
    }

    #[test]
    fn defaults_and_overrides() {
        let d = Cli::parse_from(["x"]).limits;
        let c = d.connection_limits(1).unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(32));
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.max_connections_per_ip, 1000);
        assert_eq!(c.http2_max_concurrent_streams, 250);
        let r = d.request_limits(1).unwrap();
        assert_eq!(
            (r.max_requests_inflight, r.max_mutating_requests_inflight),
            (400, 200)
        );
        assert_eq!(r.max_watches_per_user, 100);
        assert_eq!(r.rate_limit_qps, 50.0);
        assert!(r.max_watches >= 64);
        let o = Cli::parse_from([
            "x",
            "--max-connections",
            "7",
            "--max-watches-per-user",
            "3",
            "--rate-limit-qps",
            "0",
            "--header-read-timeout-seconds",
            "2",
        ])
        .limits;
        assert_eq!(o.connection_limits(2).unwrap().max_connections, 7);
        assert_eq!(
            o.connection_limits(2).unwrap().header_read_timeout,
            Duration::from_secs(2)
        );
        assert_eq!(o.request_limits(2).unwrap().max_watches_per_user, 3);
        assert_eq!(o.request_limits(2).unwrap().rate_limit_qps, 0.0);
        let bad = Cli::parse_from(["x", "--rate-limit-qps=-1"]).limits;
        assert!(bad.request_limits(1).is_err());
        let bad = Cli::parse_from(["x", "--idle-timeout-seconds", "0"]).limits;
        assert!(bad.connection_limits(1).is_err());
    }
}
