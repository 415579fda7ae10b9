//! Field selectors: a port of `k8s.io/apimachinery/pkg/fields` (the syntax
//! accepted by `?fieldSelector=`).
//!
//! A selector is a comma separated list of `field=value`, `field==value` or
//! `field!=value` terms. In values, `\`, `,` and `=` must be escaped with a
//! backslash; field names are taken verbatim. Terms are sorted as strings,
//! empty terms are skipped, and a term with both an empty field and an
//! empty value (`=`, `!=`) is dropped, all as kube does.

use std::fmt;
use std::str::FromStr;

use crate::error::SelectorError;

/// A field selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `field=value`
    Equals,
    /// `field==value` (same meaning as `=`)
    DoubleEquals,
    /// `field!=value`
    NotEquals,
}

impl Operator {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One term of a field selector. `value` is unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The field path, e.g. `metadata.name`.
    pub field: String,
    /// The comparison.
    pub operator: Operator,
    /// The (unescaped) value to compare with.
    pub value: String,
}

impl Requirement {
    /// Whether the object's field value (`None` when absent, which compares
    /// as `""`) satisfies this term.
    pub fn matches_value(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.operator {
            Operator::Equals | Operator::DoubleEquals => actual == self.value,
            Operator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for Requirement {
    /// `field<op>escaped-value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.field,
            self.operator,
            escape_value(&self.value)
        )
    }
}

/// A field selector: a conjunction of [`Requirement`]s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// A selector from requirements, kept in the given order.
    pub fn from_requirements(requirements: impl IntoIterator<Item = Requirement>) -> Selector {
        Selector {
            requirements: requirements.into_iter().collect(),
        }
    }

    /// The requirements, in the order kube evaluates them (sorted by their
    /// term text when parsed).
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when there are no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object satisfies every term; `get` returns a field's
    /// value, and a field absent from the object compares as `""`.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(get(&r.field).as_deref()))
    }

    /// The first field not in `allowed`, as kube's
    /// `field label not supported: <field>` error.
    pub fn check_supported(&self, allowed: &[&str]) -> Result<(), SelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| !allowed.contains(&r.field.as_str()))
        {
            Some(r) => Err(SelectorError::UnsupportedField(r.field.clone())),
            None => Ok(()),
        }
    }

    /// If a term pins `field` with `=` or `==`, its value (the first such
    /// term; kube's `RequiresExactMatch`). Useful to turn
    /// `metadata.name=x` into a point lookup.
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != Operator::NotEquals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for Selector {
    /// Terms joined by `,`, values escaped; `parse` of it yields an equal
    /// selector for every parsed selector (and for hand-built ones whose
    /// field names contain no `=`, `!=` or unescaped `,`, listed in the
    /// order `parse` sorts terms). Unlike kube, `==` is kept as `==`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        parse(s)
    }
}

/// Escape `\`, `,` and `=` in a value (kube's `fields.EscapeValue`).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undo [`escape_value`] (kube's `fields.UnescapeValue`): only `\\`, `\,`
/// and `\=` are valid escapes, and bare `,` or `=` are errors.
pub fn unescape_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(SelectorError::InvalidEscapeSequence(format!("\\{c}"))),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(SelectorError::UnescapedCharacter(c)),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::InvalidEscapeSequence("\\".to_owned()));
    }
    Ok(out)
}

/// Split on commas not preceded by an escaping backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Split a term at the first `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(&str, Operator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (text, op) in [
            ("!=", Operator::NotEquals),
            ("==", Operator::DoubleEquals),
            ("=", Operator::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(text) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

/// Parse a field selector such as `metadata.name=x,spec.type!=y`, as
/// kube's `fields.ParseSelector` does. The empty string selects everything.
pub fn parse(s: &str) -> Result<Selector, SelectorError> {
    let mut parts = split_terms(s);
    parts.sort_unstable();
    let mut requirements = Vec::with_capacity(parts.len());
    for part in parts {
        if part.is_empty() {
            continue;
        }
        let Some((lhs, operator, rhs)) = split_term(part) else {
            return Err(SelectorError::FieldTerm {
                selector: s.to_owned(),
                term: part.to_owned(),
            });
        };
        let value = unescape_value(rhs)?;
        // kube's identity Transform turns a term with an empty field and an
        // empty value into Everything(), which the conjunction then drops.
        if lhs.is_empty() && value.is_empty() {
            continue;
        }
        requirements.push(Requirement {
            field: lhs.to_owned(),
            operator,
            value,
        });
    }
    Ok(Selector { requirements })
}
