//! Kubernetes label selectors and field selectors.
//!
//! Canopy serves `?labelSelector=` and `?fieldSelector=` on list and watch
//! requests and evaluates `metav1.LabelSelector`s found inside objects, so
//! it must accept, reject, print and evaluate selectors exactly as
//! kube-apiserver does. This crate is a pure (no I/O) port of
//! `k8s.io/apimachinery`'s `pkg/labels` and `pkg/fields`, including the
//! lexer's whitespace rules, the validation of label keys (qualified names)
//! and values, and the wording of kube's error messages, so that clients
//! see the same errors from Canopy as from Kubernetes.
//!
//! ```
//! use std::collections::BTreeMap;
//! use canopy_selectors::{field, label};
//!
//! let sel = label::parse("tier in (web,api),env!=prod,!legacy").unwrap();
//! let labels = BTreeMap::from([("tier".to_owned(), "web".to_owned())]);
//! assert!(sel.matches(&labels));
//! assert_eq!(sel.to_string(), "env!=prod,!legacy,tier in (api,web)");
//!
//! let fs = field::parse("metadata.name=x,spec.type!=y").unwrap();
//! assert_eq!(fs.exact_match("metadata.name"), Some("x"));
//! assert!(fs.matches(|f| (f == "metadata.name").then(|| "x".to_owned())));
//! ```

// Parses request query strings: bad input is an error, never a panic.
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

mod error;
pub mod field;
pub mod label;
pub mod validation;

pub use error::{BadValue, ErrorList, FieldError, SelectorError};
