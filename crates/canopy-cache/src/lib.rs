//! Global replication through the cache server (kcp's "cache server").
//!
//! Some objects must be visible to every shard (WorkspaceTypes, Shards, and later
//! APIExports, APIResourceSchemas, SyncTargets, Locations). Each shard replicates its own
//! objects of those resources to the cache server, and reads everyone's copies back.
//!
//! - [`wire`]: the cache server's HTTP API as types (shared with the `cache-server`
//!   crate): keys, replicated objects, write/sync requests, lists, watch events, `Status`.
//! - [`client`]: an HTTPS client of it (CA PEM, bearer-token credentials).
//! - [`source`]: where a shard's local objects come from ([`LocalSource`], implemented
//!   for [`canopy_storage::Store`]).
//! - [`sync`]: full-sync planning (pure).
//! - [`replicator`]: [`Replicator`], the shard side: full sync, then incremental changes,
//!   resync after any failure or cache-server restart.
//! - [`index`] and [`reader`]: [`CacheReader`], the global view (list + watch into an
//!   in-memory [`index::GlobalIndex`]).

pub mod client;
pub mod index;
pub mod reader;
pub mod replicator;
pub mod source;
pub mod sync;
pub mod wire;

pub use client::{CacheClient, CacheClientConfig, Credentials, Query};
pub use reader::{CacheReader, ReaderOptions, ReaderStatus};
pub use replicator::{Replicator, ReplicatorOptions, ReplicatorStatus};
pub use source::{Change, ChangeStream, LocalObject, LocalSource};
pub use wire::{Key, ReplicatedObject, Status};

/// The resources shards replicate to the cache server. Later issues add APIExports,
/// APIResourceSchemas, SyncTargets and Locations here.
pub const REPLICATED_RESOURCES: &[&str] = &["tenancy.kcp.io/workspacetypes", "core.kcp.io/shards"];

/// Why a cache-server operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error("invalid cache-server configuration: {0}")]
    Config(String),
    #[error("cache server unreachable: {0}")]
    Unavailable(String),
    /// The cache server answered with an error.
    #[error("cache server: {0}")]
    Status(Box<Status>),
    #[error("unexpected answer from the cache server: {0}")]
    Decode(String),
    #[error("local objects: {0}")]
    Source(String),
    #[error("local changes were lost (the replicator fell behind)")]
    Lagged,
    #[error("the cache server restarted")]
    Restarted,
}

impl CacheError {
    /// The HTTP code of an error answer.
    pub fn code(&self) -> Option<u16> {
        match self {
            CacheError::Status(s) => Some(s.code),
            _ => None,
        }
    }

    /// `410 Gone`: the resourceVersion is no longer retained; list again.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }
}
