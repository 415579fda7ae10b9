//! Field paths: a [`Path`] is a sequence of [`PathElement`]s, each naming a struct field or
//! map key (`f:`), an associative-list item by its key fields (`k:`), a set item by its
//! value (`v:`), or a list index (`i:`, never produced for typed objects).
//!
//! Path elements are totally ordered as structured-merge-diff orders them (fields, then
//! keys, then values, then indices), which is the order FieldsV1 is written in. They print
//! as structured-merge-diff prints them: `.spec.containers[name="nginx"].image`,
//! `.metadata.finalizers[="foo"]`, `[3]`.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::value::{compare, display, go_json, write_go_string};
use crate::FieldsError;

/// One step of a field path.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A struct field or a map key: `f:<name>`.
    Field(String),
    /// An item of an associative list, by its key fields sorted by name: `k:{"name":"x"}`.
    Key(Vec<(String, Value)>),
    /// An item of a set, by its value: `v:"x"`.
    Value(Value),
    /// An item of a list by position: `i:3`.
    Index(i64),
}

impl PathElement {
    /// A `f:` element.
    pub fn field(name: impl Into<String>) -> Self {
        PathElement::Field(name.into())
    }

    /// A `k:` element; the key fields are sorted by name.
    pub fn key<I, S>(fields: I) -> Self
    where
        I: IntoIterator<Item = (S, Value)>,
        S: Into<String>,
    {
        let mut fields: Vec<(String, Value)> =
            fields.into_iter().map(|(k, v)| (k.into(), v)).collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    fn kind_rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The FieldsV1 key of this element (`f:name`, `k:{...}`, `v:...`, `i:3`).
    pub fn serialize(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let mut out = String::from("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_go_string(&mut out, name);
                    out.push(':');
                    out.push_str(&go_json(value));
                }
                out.push('}');
                out
            }
            PathElement::Value(v) => format!("v:{}", go_json(v)),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a FieldsV1 key. `Ok(None)` for an element type this version does not know
    /// (skipped, as structured-merge-diff skips them).
    pub fn deserialize(s: &str) -> Result<Option<Self>, FieldsError> {
        let b = s.as_bytes();
        if b.len() < 2 {
            return Err(FieldsError::PathElement(format!(
                "key must be 2 characters long: {s}"
            )));
        }
        if b[1] != b':' {
            return Err(FieldsError::PathElement(format!("missing colon: {s}")));
        }
        let rest = &s[2..];
        let bad = |e: serde_json::Error| FieldsError::PathElement(format!("{s}: {e}"));
        match b[0] {
            b'f' => Ok(Some(PathElement::Field(rest.to_string()))),
            b'v' => {
                let v: Value = serde_json::from_str(rest).map_err(bad)?;
                Ok(Some(PathElement::Value(v)))
            }
            b'k' => {
                let v: Value = serde_json::from_str(rest).map_err(bad)?;
                let Value::Object(m) = v else {
                    return Err(FieldsError::PathElement(format!(
                        "{s}: key must be a JSON object"
                    )));
                };
                Ok(Some(PathElement::key(m)))
            }
            b'i' => rest
                .parse::<i64>()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|e| FieldsError::PathElement(format!("{s}: {e}"))),
            _ => Ok(None),
        }
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((na, va), (nb, vb)) in a.iter().zip(b.iter()) {
                    let c = na.cmp(nb).then_with(|| compare(va, vb));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.kind_rank().cmp(&other.kind_rank()),
        }
    }
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", display(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", display(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A field path from the root of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// A path of struct fields / map keys.
    pub fn fields(names: &[&str]) -> Self {
        Path(names.iter().map(|n| PathElement::field(*n)).collect())
    }

    /// The path with `pe` appended.
    pub fn child(&self, pe: PathElement) -> Self {
        let mut p = self.0.clone();
        p.push(pe);
        Path(p)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

impl From<Vec<PathElement>> for Path {
    fn from(v: Vec<PathElement>) -> Self {
        Path(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialize_round_trip() {
        let pes = [
            PathElement::field("spec"),
            PathElement::key([("name", json!("nginx"))]),
            PathElement::key([("protocol", json!("TCP")), ("containerPort", json!(80))]),
            PathElement::Value(json!("a<b")),
            PathElement::Index(3),
        ];
        let texts = [
            "f:spec",
            r#"k:{"name":"nginx"}"#,
            r#"k:{"containerPort":80,"protocol":"TCP"}"#,
            r#"v:"a\u003cb""#,
            "i:3",
        ];
        for (pe, text) in pes.iter().zip(texts) {
            assert_eq!(pe.serialize(), text);
            assert_eq!(PathElement::deserialize(text).unwrap().unwrap(), *pe);
        }
        assert!(PathElement::deserialize("x:whatever").unwrap().is_none());
        assert!(PathElement::deserialize("f").is_err());
        assert!(PathElement::deserialize("fx").is_err());
        assert!(PathElement::deserialize("k:[1]").is_err());
        assert!(PathElement::deserialize("k:{} trailing").is_err());
    }

    #[test]
    fn display_like_smd() {
        let p = Path(vec![
            PathElement::field("spec"),
            PathElement::field("containers"),
            PathElement::key([("name", json!("nginx"))]),
            PathElement::field("image"),
        ]);
        assert_eq!(p.to_string(), r#".spec.containers[name="nginx"].image"#);
        assert_eq!(PathElement::Value(json!("x")).to_string(), r#"[="x"]"#);
    }

    #[test]
    fn order() {
        assert!(PathElement::field("z") < PathElement::key([("a", json!(1))]));
        assert!(PathElement::key([("a", json!(1))]) < PathElement::Value(json!(0)));
        assert!(PathElement::Value(json!(0)) < PathElement::Index(0));
        assert_eq!(PathElement::Value(json!(1)), PathElement::Value(json!(1.0)));
    }
}
