//! Canopy's pure API machinery.
//!
//! Everything here is free of I/O so that it can be unit-, property- and fuzz-tested in
//! isolation: kube `Status` errors ([`error`]), request-path parsing with the
//! `/clusters/<name>` prefix ([`request`]), descriptors of served resources
//! ([`resource`]), name and metadata validation ([`validation`]) and metadata accessors
//! for objects held as JSON ([`meta`]).

// Request-path code: bad input is an ApiError, never a panic (tests may unwrap).
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
// `ApiError` (a kube Status with causes) is the error of every handler; boxing it would
// change every signature for no gain on this path.
#![allow(clippy::result_large_err)]

pub mod error;
pub mod meta;
pub mod request;
pub mod resource;
pub mod validation;

pub use error::{ApiError, Cause, Subject};
pub use request::{ClusterSelector, RequestInfo};
pub use resource::ResourceDescriptor;
