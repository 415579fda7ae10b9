//! Error types, worded like the Go errors of k8s.io/apimachinery.

pub use canopy_field::{BadValue, ErrorList, FieldError};

/// Everything that can go wrong when parsing or building a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A failure inside one requirement of a label selector string; kube
    /// wraps these as `unable to parse requirement: <cause>`.
    #[error("unable to parse requirement: {0}")]
    Requirement(Box<SelectorError>),

    /// The label selector lexer/parser met an unexpected token:
    /// `found '<found>', expected: <expected>`.
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        /// The literal text of the token found (empty at end of string).
        found: String,
        /// What the parser wanted instead.
        expected: &'static str,
    },

    /// `in`/`notin` not followed by `(`. (kube's message has no comma.)
    #[error("found '{found}' expected: '('")]
    ExpectedOpenParen {
        /// The literal text of the token found.
        found: String,
    },

    /// Validation of a key, operator or value failed: `FieldValueInvalid`
    /// errors (paths `key`, `values`, `values[0]`, `values[0][<key>]`, or
    /// `<nil>` for keys rejected while parsing a selector string), shown as
    /// Go's `utilerrors.Aggregate`.
    #[error("{0}")]
    Invalid(ErrorList),

    /// A `matchExpressions[].operator` outside In, NotIn, Exists, DoesNotExist.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    InvalidLabelSelectorOperator(String),

    /// The structured (`metav1.LabelSelector`) JSON had the wrong shape.
    #[error("invalid label selector: {0}")]
    MalformedLabelSelector(String),

    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector string.
        selector: String,
        /// The term that could not be split.
        term: String,
    },

    /// A backslash in a field selector value not followed by `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),

    /// A `,` or `=` in a field selector value that is not escaped. Go prints
    /// the rune as its code point (e.g. `61` for `=`).
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedCharacter(char),

    /// The field selector uses a field the resource does not support.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

pub(crate) use canopy_gofmt::quote as go_quote;

/// Render a list of strings like Go's `json.Marshal` (which escapes HTML
/// characters); `None` renders as `null` (a nil slice).
pub(crate) fn go_json_strings(values: Option<&[String]>) -> String {
    match values {
        None => "null".to_owned(),
        Some(v) => canopy_gofmt::marshal(&serde_json::Value::Array(
            v.iter().cloned().map(serde_json::Value::String).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{1}\n"), r#""\x01\n""#);
        assert_eq!(go_quote("함"), "\"함\"");
        assert_eq!(go_quote("\u{85}"), r#""\u0085""#);
    }

    #[test]
    fn json_lists_escape_html() {
        assert_eq!(go_json_strings(None), "null");
        assert_eq!(go_json_strings(Some(&[])), "[]");
        assert_eq!(
            go_json_strings(Some(&["<a>".to_owned(), "&".to_owned()])),
            r#"["\u003ca\u003e","\u0026"]"#
        );
    }

    #[test]
    fn aggregate_dedups_and_brackets() {
        let e = |f: &str| FieldError::invalid(f, BadValue::string("v"), "bad");
        assert_eq!(
            ErrorList(vec![e("a")]).to_string(),
            "a: Invalid value: \"v\": bad"
        );
        assert_eq!(
            ErrorList(vec![e("a"), e("a")]).to_string(),
            "a: Invalid value: \"v\": bad"
        );
        assert_eq!(
            ErrorList(vec![e("a"), e("b")]).to_string(),
            "[a: Invalid value: \"v\": bad, b: Invalid value: \"v\": bad]"
        );
    }
}
