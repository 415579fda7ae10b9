use crate::ObjectKey;

/// Why a storage operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    #[error("{0} not found")]
    NotFound(ObjectKey),
    /// The object's resourceVersion is not the expected one.
    #[error("{key} was modified (expected resourceVersion {expected}, found {actual})")]
    Conflict {
        key: ObjectKey,
        expected: u64,
        actual: u64,
    },
    /// A resourceVersion older than the retained history.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    /// A watcher fell so far behind that its queue overflowed and it was ended. It has
    /// received every event of its scope up to and including `resume_rv`: a watch from
    /// that resourceVersion continues without a gap or a duplicate (while it is inside
    /// the retained history).
    #[error("the watch fell behind by more than {capacity} events and was ended; resume from resource version {resume_rv}")]
    WatcherBehind { resume_rv: u64, capacity: usize },
    /// A resourceVersion newer than anything committed.
    #[error("resource version {requested} is newer than the current {current}")]
    TooNew { requested: u64, current: u64 },
    /// The object, serialized, is larger than the store accepts
    /// ([`crate::StoreOptions::max_object_bytes`]).
    #[error("{key}: object is {size} bytes, limit is {limit}")]
    TooLarge {
        key: ObjectKey,
        size: usize,
        limit: usize,
    },
    #[error("invalid object: {0}")]
    InvalidObject(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Config(String),
}
