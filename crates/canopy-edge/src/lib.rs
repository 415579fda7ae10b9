//! Request-level limits at the edge of every Canopy server that serves tenants (the
//! front-proxy and the shard), in one place so both enforce the same rules.
//!
//! Connection-level protections (timeouts, connection caps) need no user and live in
//! `canopy-https`; everything here needs the **authenticated** user, so it runs right
//! after authentication and before any routing, storage or authorization work:
//!
//! ```text
//! TLS + connection caps (canopy-https) → authenticate → [Identity] → Limits → route / authorize → handler
//!                                                                    │
//!                                     1. exempt? (superusers, health probes) → through
//!                                     2. rate limit, per user (token bucket)  → 429 + Retry-After
//!                                     3. long-running (watch)?  → watch cap per user and in total → 429
//!                                        else in-flight seats (read-only | mutating), fair queuing
//!                                        per user, bounded wait                → 429 + Retry-After
//! ```
//!
//! The [`Permit`] from [`Limits::admit`] is held until the response *body* ends (for a
//! watch: until the stream ends), wrapped around the body by [`PermitBody`].
//!
//! One way in: both servers stack [`LimitsLayer`] (a `tower::Layer`) behind their
//! authentication layer, which inserts an [`Identity`] extension (the front-proxy's
//! handler; the shard's `canopy-apiserver` `edge.rs`).
//!
//! Panic rescue is not here: `canopy-https` answers a panicking handler with 500 and
//! ends just the one response whose body panics, for every server.

mod identity;
mod kind;
mod layer;
mod limits;
mod metrics;
mod pool;
pub mod ratelimit;
mod response;

#[cfg(feature = "clap")]
pub mod flags;

pub use identity::{strip_identity_headers, Identity, EXEMPT_GROUPS};
pub use kind::RequestKind;
pub use layer::{LimitsLayer, LimitsService, PermitBody};
pub use limits::{
    Limits, LimitsConfig, Permit, ServerLimits, DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
    DEFAULT_MAX_QUEUED_PER_USER, DEFAULT_MAX_REQUESTS_INFLIGHT, DEFAULT_MAX_WATCHES_PER_USER,
    DEFAULT_QUEUE_WAIT, DEFAULT_RATE_LIMIT_BURST, DEFAULT_RATE_LIMIT_QPS, TOO_MANY_REQUESTS,
};
pub use metrics::EdgeMetrics;
pub use ratelimit::{Decision, RateLimiter, TokenBuckets};
pub use response::error_response;
