//! Field paths and field errors, printed exactly as kube-apiserver's
//! `k8s.io/apimachinery/pkg/util/validation/field` package prints them.
//!
//! A [`FieldPath`] renders as `spec.items[0].name` or `spec.labels[foo]`; the
//! empty path renders as `<nil>`, as kube's nil `*field.Path` does for errors
//! raised by rules on the root of a custom resource. A [`FieldError`] renders
//! as `spec: Invalid value: "object": <detail>`.

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

/// The kind of a field error, as kube's `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// `FieldValueInvalid`: "Invalid value".
    Invalid,
    /// `FieldValueForbidden`: "Forbidden".
    Forbidden,
    /// `FieldValueRequired`: "Required value".
    Required,
    /// `FieldValueDuplicate`: "Duplicate value".
    Duplicate,
    /// `FieldValueNotSupported`: "Unsupported value".
    NotSupported,
    /// `InternalError`: "Internal error".
    Internal,
}

impl ErrorType {
    /// The machine readable reason (`FieldValueInvalid`, ...), as used in a
    /// `Status` cause's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Internal => "InternalError",
        }
    }

    /// The human readable form (`Invalid value`, ...).
    pub fn message(&self) -> &'static str {
        match self {
            ErrorType::Invalid => "Invalid value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Internal => "Internal error",
        }
    }
}

/// The bad value of a field error, already rendered the way kube renders it
/// (`"object"` for a string, `5` for a number, `apiextensions.ValidationRule{...}`
/// for a rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadValue(pub String);

impl BadValue {
    /// A string value, rendered quoted as Go's `%q`.
    pub fn string(s: &str) -> Self {
        BadValue(go_quote(s))
    }

    /// A value rendered verbatim.
    pub fn raw(s: impl Into<String>) -> Self {
        BadValue(s.into())
    }
}

/// A field error, as kube's `*field.Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The kind of error.
    pub error_type: ErrorType,
    /// The field the error is about.
    pub field: FieldPath,
    /// The offending value, for the kinds that print one.
    pub bad_value: Option<BadValue>,
    /// The human readable detail.
    pub detail: String,
}

/// An error found while compiling the rules of a schema: a field error whose
/// path points into the CRD (`spec.validation.openAPIV3Schema...`).
pub type RuleError = FieldError;

impl FieldError {
    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: FieldPath, value: BadValue, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: ErrorType::Invalid,
            field,
            bad_value: Some(value),
            detail: detail.into(),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: FieldPath, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: ErrorType::Forbidden,
            field,
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// `Required value: <detail>`.
    pub fn required(field: FieldPath, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: ErrorType::Required,
            field,
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// `Duplicate value: <value>` (kube drops the detail).
    pub fn duplicate(field: FieldPath, value: BadValue) -> Self {
        FieldError {
            error_type: ErrorType::Duplicate,
            field,
            bad_value: Some(value),
            detail: String::new(),
        }
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: FieldPath, value: BadValue, valid: &[&str]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError {
            error_type: ErrorType::NotSupported,
            field,
            bad_value: Some(value),
            detail,
        }
    }

    /// `Internal error: <detail>`.
    pub fn internal(field: FieldPath, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: ErrorType::Internal,
            field,
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// The error without the field name, as kube's `ErrorBody()`.
    pub fn body(&self) -> String {
        let mut s = match (self.error_type, &self.bad_value) {
            (ErrorType::Required | ErrorType::Forbidden | ErrorType::Internal, _) | (_, None) => {
                self.error_type.message().to_string()
            }
            (t, Some(v)) => format!("{}: {}", t.message(), v.0),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

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
