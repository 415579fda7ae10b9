//! Field errors, typed and worded as `k8s.io/apimachinery/pkg/util/validation/field`.
//!
//! kube-apiserver reports every validation failure as a `*field.Error`: a
//! type (`FieldValueInvalid`, ...), the path of the field, the offending
//! value and a detail. Clients show its text verbatim (`kubectl` prints the
//! 422 message, controllers log it, tests of operators compare it), so Canopy
//! must print the same bytes. This crate is the one place that wording lives;
//! object-schema validation (`canopy-schema`), CEL rules (`canopy-cel`),
//! selectors (`canopy-selectors`) and `managedFields` checks (`canopy-apply`)
//! all build their findings with it, and `canopy-core` turns each into the
//! `metav1.StatusCause` of a `Status` (`From<FieldError> for Cause`).
//!
//! * [`ErrorType`]: every kube error type, its `reason` ([`ErrorType::as_str`])
//!   and its text ([`ErrorType::text`]).
//! * [`FieldError`]: `Display` is Go's `Error()` (`<field>: <body>`),
//!   [`FieldError::body`] is Go's `ErrorBody()`; one constructor per Go
//!   constructor (`field.Invalid` is [`FieldError::invalid`], ...).
//! * [`BadValue`]: the offending value, either a JSON value rendered as Go
//!   renders it, or text its producer already rendered (a Go struct's `%#v`,
//!   a Go `json.Marshal` of a nil slice, ...).
//! * [`ErrorList`] and [`aggregate`]: Go's `ErrorList.ToAggregate().Error()`.
//!
//! The wording follows apimachinery 1.34 and later: numbers and booleans
//! are shown with `%v`, strings with `%q`, anything else as JSON, and
//! `Too long` reads `may not be more than N bytes`.
//!
//! ```
//! use canopy_field::{aggregate, FieldError};
//! use serde_json::json;
//!
//! let e = FieldError::invalid("spec.port", json!(70000), "must be a port");
//! assert_eq!(e.to_string(), "spec.port: Invalid value: 70000: must be a port");
//! assert_eq!(e.body(), "Invalid value: 70000: must be a port");
//! assert_eq!(e.error_type.as_str(), "FieldValueInvalid");
//!
//! let r = FieldError::required("spec.name", "");
//! assert_eq!(
//!     aggregate(&[r.clone(), e, r]),
//!     "[spec.name: Required value, spec.port: Invalid value: 70000: must be a port]"
//! );
//! ```

// Runs on request paths: bad input is an error, never a panic.
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::collections::HashSet;
use std::fmt;

use serde_json::Value;

/// The type of a field error, Go's `field.ErrorType`.
///
/// [`ErrorType::as_str`] is the value of the Go constant, which is also the
/// `reason` of a `StatusCause` (`FieldValueInvalid`, ...); `Display` and
/// [`ErrorType::text`] are Go's `ErrorType.String()`, the human text that
/// starts the message (`Invalid value`, ...).
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
    /// Every error type, in the order Go declares them.
    pub const ALL: [ErrorType; 10] = [
        ErrorType::NotFound,
        ErrorType::Required,
        ErrorType::Duplicate,
        ErrorType::Invalid,
        ErrorType::NotSupported,
        ErrorType::Forbidden,
        ErrorType::TooLong,
        ErrorType::TooMany,
        ErrorType::Internal,
        ErrorType::TypeInvalid,
    ];

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

    /// Whether `ErrorBody()` prints the bad value of this type: Go leaves it
    /// out of `Required`, `Forbidden`, `TooLong` and `Internal` errors even
    /// when one was given.
    pub fn shows_value(self) -> bool {
        !matches!(
            self,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
        )
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// The offending value of a [`FieldError`].
///
/// Go keeps the value itself (`interface{}`) and renders it when the message
/// is printed. Canopy's producers hold either a JSON value (schema
/// validation) or text they rendered already, the way Go would have
/// rendered a value Canopy has no type for (cel's `%#v` of an
/// `apiextensions.ValidationRule`, a selector's `json.Marshal` of a nil
/// slice); both print exactly as given to Go's `ErrorBody()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    /// A JSON value: numbers and booleans print with `%v`, strings with
    /// `%q`, anything else (`null`, lists, objects) as Go's `json.Marshal`
    /// ([`canopy_gofmt::render_value`]).
    Json(Value),
    /// Text already rendered as Go renders the value; printed verbatim.
    Rendered(String),
}

impl BadValue {
    /// A string value; prints quoted as Go's `%q`.
    pub fn string(s: &str) -> BadValue {
        BadValue::Json(Value::String(s.to_owned()))
    }

    /// A value rendered by the caller, printed verbatim.
    pub fn rendered(s: impl Into<String>) -> BadValue {
        BadValue::Rendered(s.into())
    }

    /// The JSON value, if this is one.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            BadValue::Json(v) => Some(v),
            BadValue::Rendered(_) => None,
        }
    }
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Json(v) => f.write_str(&canopy_gofmt::render_value(v)),
            BadValue::Rendered(s) => f.write_str(s),
        }
    }
}

impl From<Value> for BadValue {
    fn from(v: Value) -> BadValue {
        BadValue::Json(v)
    }
}

impl From<&Value> for BadValue {
    fn from(v: &Value) -> BadValue {
        BadValue::Json(v.clone())
    }
}

/// One validation failure, Go's `*field.Error`.
///
/// `Display` is Go's `Error()`: `<field>: <body>`, e.g.
/// `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The cause type.
    pub error_type: ErrorType,
    /// The field path in kube's notation (`spec.items[0].name`,
    /// `spec.labels[foo]`), or `<nil>` for errors kube reports without a
    /// path (the string Go's nil `*field.Path` prints).
    pub field: String,
    /// The offending value; `None` when the error shows none (Go's
    /// `omitValue`, or a type that never shows one).
    pub bad_value: Option<BadValue>,
    /// The detail text after the value (may be empty).
    pub detail: String,
}

impl FieldError {
    /// An error of any type; the constructors below are Go's and should be
    /// preferred, this is for producers that choose the type at run time.
    pub fn new(
        error_type: ErrorType,
        field: impl Into<String>,
        bad_value: Option<BadValue>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            error_type,
            field: field.into(),
            bad_value,
            detail: detail.into(),
        }
    }

    /// `field.NotFound(path, value)`: `Not found: "x"`.
    pub fn not_found(field: impl Into<String>, value: impl Into<BadValue>) -> FieldError {
        FieldError::new(ErrorType::NotFound, field, Some(value.into()), "")
    }

    /// `field.Required(path, detail)`: `Required value: <detail>`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::Required, field, None, detail)
    }

    /// `field.Duplicate(path, value)`: `Duplicate value: "x"`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<BadValue>) -> FieldError {
        FieldError::new(ErrorType::Duplicate, field, Some(value.into()), "")
    }

    /// `field.Invalid(path, value, detail)`: `Invalid value: "x": <detail>`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::new(ErrorType::Invalid, field, Some(value.into()), detail)
    }

    /// `field.NotSupported(path, value, validValues)`:
    /// `Unsupported value: "x": supported values: "a", "b"` (no detail when
    /// no values are listed).
    pub fn not_supported<S: AsRef<str>>(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        valid: &[S],
    ) -> FieldError {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid
                .iter()
                .map(|v| canopy_gofmt::quote(v.as_ref()))
                .collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError::new(ErrorType::NotSupported, field, Some(value.into()), detail)
    }

    /// `field.Forbidden(path, detail)`: `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::Forbidden, field, None, detail)
    }

    /// `field.TooLong(path, _, max)`: `Too long: may not be more than 10
    /// bytes` (`value is too long` for a negative max). Go never prints the
    /// value of this type, so none is taken.
    pub fn too_long(field: impl Into<String>, max: i64) -> FieldError {
        let detail = if max >= 0 {
            format!(
                "may not be more than {max} {}",
                if max == 1 { "byte" } else { "bytes" }
            )
        } else {
            "value is too long".to_string()
        };
        FieldError::new(ErrorType::TooLong, field, None, detail)
    }

    /// `field.TooMany(path, actual, max)`: `Too many: 4: must have at most 3
    /// items`; a negative `actual` (unknown) is omitted, a negative `max`
    /// reads `has too many items`.
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> FieldError {
        let detail = if max >= 0 {
            format!(
                "must have at most {max} {}",
                if max == 1 { "item" } else { "items" }
            )
        } else {
            "has too many items".to_string()
        };
        let shown = (actual >= 0).then(|| BadValue::Json(Value::from(actual)));
        FieldError::new(ErrorType::TooMany, field, shown, detail)
    }

    /// `field.InternalError(path, err)`: `Internal error: <err>`.
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::Internal, field, None, detail)
    }

    /// `field.TypeInvalid(path, value, detail)`: `Invalid value: "x": <detail>`
    /// with the reason `FieldValueTypeInvalid`.
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::new(ErrorType::TypeInvalid, field, Some(value.into()), detail)
    }

    /// The message without the field, Go's `ErrorBody()`: what a
    /// `StatusCause.message` carries.
    pub fn body(&self) -> String {
        Body(self).to_string()
    }
}

/// Writes Go's `ErrorBody()` without an intermediate string.
struct Body<'a>(&'a FieldError);

impl fmt::Display for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        f.write_str(e.error_type.text())?;
        if e.error_type.shows_value() {
            if let Some(v) = &e.bad_value {
                write!(f, ": {v}")?;
            }
        }
        if !e.detail.is_empty() {
            write!(f, ": {}", e.detail)?;
        }
        Ok(())
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, Body(self))
    }
}

impl std::error::Error for FieldError {}

/// Renders errors like Go's `ErrorList.ToAggregate().Error()`: none as the
/// empty string, one verbatim, several as `[e1, e2]` in order with repeated
/// texts removed.
///
/// kube-apiserver's 422 message is `<Kind>.<group> "<name>" is invalid:
/// <aggregate>`.
pub fn aggregate(errors: &[FieldError]) -> String {
    aggregate_texts(errors.iter().map(ToString::to_string))
}

/// Go's `utilerrors.Aggregate.Error()` over error texts: one verbatim,
/// several as `[e1, e2]` in order with repeated texts removed, none as the
/// empty string.
pub fn aggregate_texts<I: IntoIterator<Item = String>>(texts: I) -> String {
    let mut seen = HashSet::new();
    let unique: Vec<String> = texts
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect();
    match <[String; 1]>::try_from(unique) {
        Ok([one]) => one,
        Err(unique) if unique.is_empty() => String::new(),
        Err(unique) => format!("[{}]", unique.join(", ")),
    }
}

/// A list of field errors, Go's `field.ErrorList`; `Display` is its
/// aggregate ([`aggregate`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorList(pub Vec<FieldError>);

impl ErrorList {
    /// The errors, in the order they were found.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether there are no errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<FieldError>> for ErrorList {
    fn from(errors: Vec<FieldError>) -> ErrorList {
        ErrorList(errors)
    }
}

impl IntoIterator for ErrorList {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for ErrorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&aggregate(&self.0))
    }
}

impl std::error::Error for ErrorList {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_and_texts_are_kubes() {
        let table = [
            (ErrorType::NotFound, "FieldValueNotFound", "Not found"),
            (ErrorType::Required, "FieldValueRequired", "Required value"),
            (
                ErrorType::Duplicate,
                "FieldValueDuplicate",
                "Duplicate value",
            ),
            (ErrorType::Invalid, "FieldValueInvalid", "Invalid value"),
            (
                ErrorType::NotSupported,
                "FieldValueNotSupported",
                "Unsupported value",
            ),
            (ErrorType::Forbidden, "FieldValueForbidden", "Forbidden"),
            (ErrorType::TooLong, "FieldValueTooLong", "Too long"),
            (ErrorType::TooMany, "FieldValueTooMany", "Too many"),
            (ErrorType::Internal, "InternalError", "Internal error"),
            (
                ErrorType::TypeInvalid,
                "FieldValueTypeInvalid",
                "Invalid value",
            ),
        ];
        assert_eq!(table.len(), ErrorType::ALL.len());
        for ((t, reason, text), all) in table.into_iter().zip(ErrorType::ALL) {
            assert_eq!(t, all);
            assert_eq!(t.as_str(), reason);
            assert_eq!(t.text(), text);
            assert_eq!(t.to_string(), text);
        }
    }

    #[test]
    fn each_constructor_words_as_go() {
        let cases = [
            (
                FieldError::not_found("spec.x", BadValue::string("a")),
                r#"spec.x: Not found: "a""#,
            ),
            (
                FieldError::required("spec.name", ""),
                "spec.name: Required value",
            ),
            (
                FieldError::required("spec.name", "name or generateName is required"),
                "spec.name: Required value: name or generateName is required",
            ),
            (
                FieldError::duplicate("spec.l[1]", json!({"name": "a"})),
                r#"spec.l[1]: Duplicate value: {"name":"a"}"#,
            ),
            (
                FieldError::invalid("x", &json!(null), "d"),
                "x: Invalid value: null: d",
            ),
            (
                FieldError::invalid("x", json!(1.5), ""),
                "x: Invalid value: 1.5",
            ),
            (
                FieldError::invalid("x", json!(1e6), "big"),
                "x: Invalid value: 1e+06: big",
            ),
            (
                FieldError::invalid("x", json!(true), "d"),
                "x: Invalid value: true: d",
            ),
            (
                FieldError::invalid("x", json!("a\"b\u{1}"), "d"),
                r#"x: Invalid value: "a\"b\x01": d"#,
            ),
            (
                FieldError::invalid("x", json!(["<a>", "b"]), "d"),
                r#"x: Invalid value: ["\u003ca\u003e","b"]: d"#,
            ),
            (
                FieldError::invalid("<nil>", BadValue::rendered("null"), "d"),
                "<nil>: Invalid value: null: d",
            ),
            (
                FieldError::not_supported("spec.mode", json!("x"), &["a", "b"]),
                r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#,
            ),
            (
                FieldError::not_supported::<&str>("spec.mode", &json!("x"), &[]),
                r#"spec.mode: Unsupported value: "x""#,
            ),
            (
                FieldError::forbidden("spec.x", "may not be set"),
                "spec.x: Forbidden: may not be set",
            ),
            (FieldError::forbidden("spec.x", ""), "spec.x: Forbidden"),
            (
                FieldError::too_long("spec.name", 10),
                "spec.name: Too long: may not be more than 10 bytes",
            ),
            (
                FieldError::too_long("a", 1),
                "a: Too long: may not be more than 1 byte",
            ),
            (
                FieldError::too_long("a", -1),
                "a: Too long: value is too long",
            ),
            (
                FieldError::too_many("spec.items", 4, 3),
                "spec.items: Too many: 4: must have at most 3 items",
            ),
            (
                FieldError::too_many("x", -1, 1),
                "x: Too many: must have at most 1 item",
            ),
            (
                FieldError::too_many("x", 2, -1),
                "x: Too many: 2: has too many items",
            ),
            (
                FieldError::internal("spec", "boom"),
                "spec: Internal error: boom",
            ),
            (
                FieldError::type_invalid("spec.n", json!("s"), "must be integer"),
                r#"spec.n: Invalid value: "s": must be integer"#,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
            assert_eq!(format!("{}: {}", e.field, e.body()), want);
        }
    }

    #[test]
    fn types_without_values_hide_a_given_value() {
        for t in [
            ErrorType::Required,
            ErrorType::Forbidden,
            ErrorType::TooLong,
            ErrorType::Internal,
        ] {
            let e = FieldError::new(t, "f", Some(BadValue::string("v")), "d");
            assert_eq!(e.body(), format!("{}: d", t.text()));
        }
        let e = FieldError::new(ErrorType::Invalid, "f", None, "d");
        assert_eq!(e.body(), "Invalid value: d");
    }

    #[test]
    fn aggregates_dedup_in_order() {
        let a = FieldError::required("a", "");
        let b = FieldError::required("b", "");
        assert_eq!(aggregate(&[]), "");
        assert_eq!(aggregate(std::slice::from_ref(&a)), "a: Required value");
        assert_eq!(aggregate(&[a.clone(), a.clone()]), "a: Required value");
        assert_eq!(
            aggregate(&[b.clone(), a.clone(), b.clone(), a.clone()]),
            "[b: Required value, a: Required value]"
        );
        assert_eq!(
            ErrorList(vec![a.clone(), b, a]).to_string(),
            "[a: Required value, b: Required value]"
        );
        assert_eq!(ErrorList::default().to_string(), "");
    }

    #[test]
    fn bad_values() {
        assert_eq!(BadValue::string("x").as_json(), Some(&json!("x")));
        assert_eq!(BadValue::rendered("x").as_json(), None);
        assert_eq!(BadValue::from(json!(3)).to_string(), "3");
        assert_eq!(BadValue::rendered("x").to_string(), "x");
    }
}
