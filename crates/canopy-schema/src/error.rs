//! Field errors, worded and typed like `k8s.io/apimachinery/pkg/util/validation/field`.
//!
//! Every finding of this crate is a [`FieldError`]: a cause type
//! ([`ErrorType`], which is also the `reason` of a `metav1.StatusCause`), a
//! field path in kube's notation (`spec.containers[0].name`,
//! `spec.labels[foo]`) and a message body (`Invalid value: "x": ...`). Its
//! `Display` is `<field>: <message>`, exactly like Go's `field.Error`.
//!
//! The message bodies follow apimachinery 1.34 and later: bad values are
//! rendered with `%v` for numbers and booleans, `%q` for strings and JSON for
//! anything else, and `Too long` reads `may not be more than N bytes` (kube
//! 1.30 and 1.31 printed `may not be longer than N`).

use std::fmt;

use serde_json::Value;

use crate::gofmt;

/// The type of a field error, Go's `field.ErrorType`. [`ErrorType::as_str`]
/// is the `reason` of a `StatusCause` (`FieldValueInvalid`, ...), `Display`
/// is the human text that starts the message (`Invalid value`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// `FieldValueNotFound`: "Not found".
    NotFound,
    /// `FieldValueRequired`: "Required value".
    Required,
    /// `FieldValueDuplicate`: "Duplicate value".
    Duplicate,
    /// `FieldValueInvalid`: "Invalid value".
    Invalid,
    /// `FieldValueNotSupported`: "Unsupported value".
    NotSupported,
    /// `FieldValueForbidden`: "Forbidden".
    Forbidden,
    /// `FieldValueTooLong`: "Too long".
    TooLong,
    /// `FieldValueTooMany`: "Too many".
    TooMany,
    /// `InternalError`: "Internal error".
    Internal,
    /// `FieldValueTypeInvalid`: "Invalid value".
    TypeInvalid,
}

impl ErrorType {
    /// The cause type as it appears in `status.details.causes[].reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human readable prefix of the message (`ErrorType.String()` in Go).
    pub fn text(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// One validation failure, the equivalent of Go's `*field.Error`.
///
/// ```
/// use canopy_schema::{ErrorType, FieldError};
/// use serde_json::json;
///
/// let e = FieldError::invalid("spec.port", &json!(70000), "must be a port");
/// assert_eq!(e.to_string(), "spec.port: Invalid value: 70000: must be a port");
/// assert_eq!(e.error_type.as_str(), "FieldValueInvalid");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The cause type.
    pub error_type: ErrorType,
    /// The field path in kube's notation (`spec.items[0].name`,
    /// `spec.labels[foo]`), or `<nil>` for errors kube reports without a
    /// path (e.g. `anyOf` failures).
    pub field: String,
    /// The offending value, if the error type shows one.
    pub bad_value: Option<Value>,
    /// The detail text after the value (may be empty).
    pub detail: String,
    /// The whole message body after `<field>: `, i.e. Go's
    /// `field.Error.ErrorBody()`: what a `StatusCause.message` carries.
    pub message: String,
}

/// How the bad value of an error is shown.
#[derive(Debug, Clone)]
pub(crate) enum Shown {
    /// The type has no value (Required, Forbidden, TooLong, Internal).
    None,
    /// The value is omitted (`TooMany` with an unknown count).
    Omit,
    /// The value is shown.
    Value(Value),
}

impl FieldError {
    pub(crate) fn build(
        error_type: ErrorType,
        field: impl Into<String>,
        shown: Shown,
        detail: impl Into<String>,
    ) -> FieldError {
        let detail = detail.into();
        let mut message = error_type.text().to_string();
        let bad_value = match shown {
            Shown::None | Shown::Omit => None,
            Shown::Value(v) => {
                message.push_str(": ");
                message.push_str(&gofmt::render_value(&v));
                Some(v)
            }
        };
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(&detail);
        }
        FieldError {
            error_type,
            field: field.into(),
            bad_value,
            detail,
            message,
        }
    }

    /// `field.Required(path, detail)`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::build(ErrorType::Required, field, Shown::None, detail)
    }

    /// `field.Forbidden(path, detail)`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::build(ErrorType::Forbidden, field, Shown::None, detail)
    }

    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(
        field: impl Into<String>,
        value: &Value,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::build(
            ErrorType::Invalid,
            field,
            Shown::Value(value.clone()),
            detail,
        )
    }

    /// `field.TypeInvalid(path, value, detail)`.
    pub fn type_invalid(
        field: impl Into<String>,
        value: &Value,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::build(
            ErrorType::TypeInvalid,
            field,
            Shown::Value(value.clone()),
            detail,
        )
    }

    /// `field.Duplicate(path, value)`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> FieldError {
        FieldError::build(ErrorType::Duplicate, field, Shown::Value(value.clone()), "")
    }

    /// `field.NotSupported(path, value, validValues)`:
    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported<S: AsRef<str>>(
        field: impl Into<String>,
        value: &Value,
        valid: &[S],
    ) -> FieldError {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| gofmt::quote(v.as_ref())).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError::build(
            ErrorType::NotSupported,
            field,
            Shown::Value(value.clone()),
            detail,
        )
    }

    /// `field.TooLong(path, _, max)`: `Too long: may not be more than 10 bytes`.
    pub fn too_long(field: impl Into<String>, max: i64) -> FieldError {
        let detail = if max >= 0 {
            format!(
                "may not be more than {max} {}",
                if max == 1 { "byte" } else { "bytes" }
            )
        } else {
            "value is too long".to_string()
        };
        FieldError::build(ErrorType::TooLong, field, Shown::None, detail)
    }

    /// `field.TooMany(path, actual, max)`: `Too many: 4: must have at most 3 items`.
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> FieldError {
        let detail = if max >= 0 {
            format!(
                "must have at most {max} {}",
                if max == 1 { "item" } else { "items" }
            )
        } else {
            "has too many items".to_string()
        };
        let shown = if actual >= 0 {
            Shown::Value(Value::from(actual))
        } else {
            Shown::Omit
        };
        FieldError::build(ErrorType::TooMany, field, shown, detail)
    }

    /// `field.InternalError(path, err)`.
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::build(ErrorType::Internal, field, Shown::None, detail)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Renders a list of errors like Go's `ErrorList.ToAggregate().Error()`:
/// one error verbatim, several as `[e1, e2]`, duplicates removed.
///
/// kube-apiserver's 422 message is
/// `<Kind>.<group> "<name>" is invalid: <aggregate>`.
pub fn aggregate(errors: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let s = e.to_string();
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen.pop().unwrap_or_default(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages() {
        assert_eq!(
            FieldError::required("spec.name", "").to_string(),
            "spec.name: Required value"
        );
        assert_eq!(
            FieldError::not_supported("spec.mode", &json!("x"), &["a", "b"]).to_string(),
            r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#
        );
        assert_eq!(
            FieldError::too_long("spec.name", 10).to_string(),
            "spec.name: Too long: may not be more than 10 bytes"
        );
        assert_eq!(
            FieldError::too_long("a", 1).to_string(),
            "a: Too long: may not be more than 1 byte"
        );
        assert_eq!(
            FieldError::too_many("spec.items", 4, 3).to_string(),
            "spec.items: Too many: 4: must have at most 3 items"
        );
        assert_eq!(
            FieldError::too_many("x", -1, 1).to_string(),
            "x: Too many: must have at most 1 item"
        );
        assert_eq!(
            FieldError::duplicate("spec.l[1]", &json!({"name": "a"})).to_string(),
            r#"spec.l[1]: Duplicate value: {"name":"a"}"#
        );
        assert_eq!(
            FieldError::invalid("x", &json!(null), "d").to_string(),
            "x: Invalid value: null: d"
        );
        assert_eq!(ErrorType::TypeInvalid.as_str(), "FieldValueTypeInvalid");
    }

    #[test]
    fn aggregates() {
        let a = FieldError::required("a", "");
        let b = FieldError::required("b", "");
        assert_eq!(aggregate(std::slice::from_ref(&a)), "a: Required value");
        assert_eq!(
            aggregate(&[a.clone(), b, a]),
            "[a: Required value, b: Required value]"
        );
    }
}
