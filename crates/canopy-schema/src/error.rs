//! Field errors, worded and typed like `k8s.io/apimachinery/pkg/util/validation/field`.
//!
//! Every finding of this crate is a [`FieldError`] of `canopy-field`, the
//! one field-error type of Canopy: a cause type ([`ErrorType`], which is also
//! the `reason` of a `metav1.StatusCause`), a field path in kube's notation
//! (`spec.containers[0].name`, `spec.labels[foo]`), the bad value as JSON
//! and a detail. Its `Display` is `<field>: <message>`, exactly like Go's
//! `field.Error`.
//!
//! ```
//! use canopy_schema::{ErrorType, FieldError};
//! use serde_json::json;
//!
//! let e = FieldError::invalid("spec.port", &json!(70000), "must be a port");
//! assert_eq!(e.to_string(), "spec.port: Invalid value: 70000: must be a port");
//! assert_eq!(e.error_type.as_str(), "FieldValueInvalid");
//! assert_eq!(e.error_type, ErrorType::Invalid);
//! ```

pub use canopy_field::{aggregate, BadValue, ErrorType, FieldError};

/// Why an openAPIV3Schema could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CompileError {
    /// Where in the schema (kube path notation relative to the schema root,
    /// e.g. `properties[spec].type`; empty for the root).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Kube-style field path builder (`field.Path`): `Child` joins with `.`,
/// `Index` appends `[i]`, `Key` appends `[key]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    pub(crate) fn new(root: &str) -> FieldPath {
        FieldPath(root.to_string())
    }
    pub(crate) fn child(&self, name: &str) -> FieldPath {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{}", self.0, name))
        }
    }
    pub(crate) fn index(&self, i: usize) -> FieldPath {
        FieldPath(format!("{}[{}]", self.0, i))
    }
    pub(crate) fn key(&self, k: &str) -> FieldPath {
        FieldPath(format!("{}[{}]", self.0, k))
    }
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn string(&self) -> String {
        if self.0.is_empty() {
            "<nil>".to_string()
        } else {
            self.0.clone()
        }
    }
}
