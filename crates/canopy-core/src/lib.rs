//! Canopy's pure API machinery.
//!
//! Everything here is free of I/O so that it can be unit-, property- and fuzz-tested in
//! isolation: kube `Status` errors ([`error`]), request-path parsing with the
//! `/clusters/<name>` prefix ([`request`]), descriptors of served resources
//! ([`resource`]), name and metadata validation ([`validation`]) and metadata accessors
//! for objects held as JSON ([`meta`]).

pub mod error;
pub mod meta;
pub mod request;
pub mod resource;
pub mod validation;

pub use error::{ApiError, Cause, Subject};
pub use request::{ClusterSelector, RequestInfo};
pub use resource::ResourceDescriptor;
