//! Field paths, printed exactly as kube-apiserver's
//! `k8s.io/apimachinery/pkg/util/validation/field` package prints them, and
//! the field errors of rules (`canopy-field`'s, the one field-error type of
//! Canopy).
//!
//! A [`FieldPath`] renders as `spec.items[0].name` or `spec.labels[foo]`; the
//! empty path renders as `<nil>`, as kube's nil `*field.Path` does for errors
//! raised by rules on the root of a custom resource. A [`FieldError`] renders
//! as `spec: Invalid value: "object": <detail>`. Rules build errors with a
//! [`FieldPath`]; the error keeps its rendered text (`From<FieldPath> for
//! String`), as Go's `field.Error.Field` does.

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathElement {
    /// A named child: `.name`.
    Child(String),
    /// A list index: `[3]`.
    Index(usize),
    /// A map key: `[key]`.
    Key(String),
}

/// A path to a field of an object, as kube's `field.Path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<PathElement>);

impl FieldPath {
    /// The empty (root) path, rendered `<nil>`.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// A path made of dotted child names, e.g. `FieldPath::new("spec.validation")`.
    /// An empty string gives the root path.
    pub fn new(dotted: &str) -> Self {
        let mut p = FieldPath::root();
        if !dotted.is_empty() {
            p.0.push(PathElement::Child(dotted.to_string()));
        }
        p
    }

    /// This path with a named child appended.
    pub fn child(&self, name: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathElement::Child(name.to_string()));
        p
    }

    /// This path with a list index appended.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathElement::Index(i));
        p
    }

    /// This path with a map key appended.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathElement::Key(k.to_string()));
        p
    }

    /// This path with all elements of `other` appended.
    pub fn join(&self, other: &FieldPath) -> Self {
        let mut p = self.clone();
        p.0.extend(other.0.iter().cloned());
        p
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements of the path.
    pub fn elements(&self) -> &[PathElement] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<nil>");
        }
        for (i, e) in self.0.iter().enumerate() {
            match e {
                PathElement::Child(n) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(n)?;
                }
                PathElement::Index(n) => write!(f, "[{n}]")?,
                PathElement::Key(k) => write!(f, "[{k}]")?,
            }
        }
        Ok(())
    }
}

impl From<FieldPath> for String {
    fn from(p: FieldPath) -> String {
        p.to_string()
    }
}

impl From<&FieldPath> for String {
    fn from(p: &FieldPath) -> String {
        p.to_string()
    }
}

pub use canopy_field::{BadValue, ErrorType, FieldError};

/// An error found while compiling the rules of a schema: a field error whose
/// path points into the CRD (`spec.validation.openAPIV3Schema...`).
pub type RuleError = FieldError;

pub(crate) use canopy_gofmt::quote as go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_kube() {
        assert_eq!(FieldPath::root().to_string(), "<nil>");
        let p = FieldPath::root()
            .child("spec")
            .child("items")
            .index(0)
            .child("name");
        assert_eq!(p.to_string(), "spec.items[0].name");
        assert_eq!(
            FieldPath::root()
                .child("spec")
                .child("labels")
                .key("foo")
                .to_string(),
            "spec.labels[foo]"
        );
        assert_eq!(FieldPath::root().index(2).to_string(), "[2]");
    }

    #[test]
    fn errors_render_like_kube() {
        let p = FieldPath::root().child("spec");
        assert_eq!(
            FieldError::invalid(p.clone(), BadValue::string("object"), "msg").to_string(),
            "spec: Invalid value: \"object\": msg"
        );
        assert_eq!(
            FieldError::forbidden(p.clone(), "no").to_string(),
            "spec: Forbidden: no"
        );
        assert_eq!(
            FieldError::required(p.clone(), "need").to_string(),
            "spec: Required value: need"
        );
        assert_eq!(
            FieldError::duplicate(p.clone(), BadValue::string("object")).to_string(),
            "spec: Duplicate value: \"object\""
        );
        assert_eq!(
            FieldError::not_supported(p, BadValue::string("x"), &["a", "b"]).to_string(),
            "spec: Unsupported value: \"x\": supported values: \"a\", \"b\""
        );
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
