//! CEL types of schema nodes, as kube's `SchemaDeclType` declares them.
//!
//! Every type carries the size bounds kube's cost estimator uses: the most
//! elements of a list or map (`maxItems` / `maxProperties`, or as many as fit
//! in a 3 MiB request), the longest string (`maxLength` × 4 bytes, the
//! longest enum value, or the request size), and the smallest serialized size
//! of a value, from which the number of times a node can repeat in a request
//! (its cardinality) is derived.

use crate::schema::{escape_property, Schema, MAX_REQUEST_SIZE_BYTES};
use std::sync::Arc;

/// A CEL type with size bounds.
#[derive(Clone, Debug)]
pub enum Ty {
    /// Any value; `max` bounds its size when it is a string or list.
    Dyn {
        /// Largest size.
        max: u64,
    },
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `uint`.
    Uint,
    /// `double`.
    Double,
    /// `null_type`.
    Null,
    /// `google.protobuf.Timestamp`.
    Timestamp,
    /// `google.protobuf.Duration`.
    Duration,
    /// `type`.
    Type,
    /// `string` of at most `max` bytes.
    String {
        /// Largest size.
        max: u64,
    },
    /// `bytes` of at most `max` bytes.
    Bytes {
        /// Largest size.
        max: u64,
    },
    /// `list(elem)` of at most `max` elements.
    List {
        /// Element type.
        elem: Box<Ty>,
        /// Most elements.
        max: u64,
    },
    /// `map(string, val)` of at most `max` entries.
    Map {
        /// Key type.
        key: Box<Ty>,
        /// Value type.
        val: Box<Ty>,
        /// Most entries.
        max: u64,
    },
    /// An object with declared fields.
    Object(Arc<ObjectType>),
    /// An opaque library type such as `kubernetes.URL`.
    Opaque(&'static str),
    /// `optional_type(inner)`.
    Optional(Box<Ty>),
}

/// The fields of an object type.
#[derive(Debug, Default)]
pub struct ObjectType {
    /// Fields by escaped name.
    pub fields: Vec<(String, Ty)>,
    /// Whether unknown fields may be present (`x-kubernetes-preserve-unknown-fields`);
    /// they are then typed `dyn`.
    pub open: bool,
}

impl ObjectType {
    /// A field by escaped name.
    pub fn field(&self, name: &str) -> Option<&Ty> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, t)| t)
    }
}

/// The largest size of anything in a request.
pub const MAX_SIZE: u64 = MAX_REQUEST_SIZE_BYTES as u64;

impl Ty {
    /// A string of unknown length.
    pub fn any_string() -> Ty {
        Ty::String { max: MAX_SIZE }
    }

    /// A dyn of unknown size.
    pub fn dyn_() -> Ty {
        Ty::Dyn { max: MAX_SIZE }
    }

    /// The size bound used by the cost estimator: string or bytes length,
    /// list or map element count, 1 for scalars.
    pub fn size(&self) -> u64 {
        match self {
            Ty::String { max } | Ty::Bytes { max } | Ty::Dyn { max } => *max,
            Ty::List { max, .. } | Ty::Map { max, .. } => *max,
            Ty::Object(o) => o.fields.len().max(1) as u64,
            Ty::Optional(t) => t.size(),
            _ => 1,
        }
    }

    /// The CEL name of the type, as used in checker messages.
    pub fn name(&self) -> String {
        match self {
            Ty::Dyn { .. } => "dyn".into(),
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Double => "double".into(),
            Ty::Null => "null_type".into(),
            Ty::Timestamp => "google.protobuf.Timestamp".into(),
            Ty::Duration => "google.protobuf.Duration".into(),
            Ty::Type => "type".into(),
            Ty::String { .. } => "string".into(),
            Ty::Bytes { .. } => "bytes".into(),
            Ty::List { elem, .. } => format!("list({})", elem.name()),
            Ty::Map { key, val, .. } => format!("map({}, {})", key.name(), val.name()),
            Ty::Object(_) => "object".into(),
            Ty::Opaque(n) => (*n).into(),
            Ty::Optional(t) => format!("optional_type({})", t.name()),
        }
    }

    /// Whether the type is `dyn`.
    pub fn is_dyn(&self) -> bool {
        matches!(self, Ty::Dyn { .. })
    }
}

/// A schema's CEL type and the smallest size of its JSON form.
#[derive(Clone, Debug)]
pub struct Decl {
    /// The type.
    pub ty: Ty,
    /// Smallest serialized size.
    pub min_size: i64,
}

fn zero_if_negative(v: i64) -> u64 {
    v.max(0) as u64
}

/// The longest string a string schema allows, as kube estimates it.
fn max_string_len(s: &Schema) -> u64 {
    if let Some(m) = s.max_length {
        return zero_if_negative(m).saturating_mul(4);
    }
    if s.int_or_string {
        return (MAX_REQUEST_SIZE_BYTES - 2) as u64;
    }
    match s.format.as_str() {
        "duration" => 32,
        "date" => 12,
        "date-time" => 64,
        _ => {
            if !s.enum_values.is_empty() {
                s.enum_values
                    .iter()
                    .filter_map(|v| v.as_str().map(|x| x.len() as u64))
                    .max()
                    .unwrap_or(0)
            } else {
                (MAX_REQUEST_SIZE_BYTES - 2) as u64
            }
        }
    }
}

/// The CEL type of a schema, or `None` when kube does not expose it to rules.
/// `resource_root` adds `apiVersion`, `kind` and `metadata.name` /
/// `metadata.generateName`, as kube does at the root of a custom resource and
/// of embedded resources.
pub fn decl_type(s: &Schema, resource_root: bool) -> Option<Decl> {
    if s.int_or_string {
        let max = if s.max_length.is_some() {
            max_string_len(s)
        } else {
            (MAX_REQUEST_SIZE_BYTES - 2) as u64
        };
        return Some(Decl {
            ty: Ty::Dyn { max },
            min_size: 1,
        });
    }
    let ty = if s.ty.is_empty() && s.preserve_unknown_fields {
        // kube hides type-less preserve-unknown-fields values; we expose them
        // as `dyn` so rules written against them still compile.
        return Some(Decl {
            ty: Ty::dyn_(),
            min_size: 1,
        });
    } else if s.ty.is_empty() && resource_root {
        "object"
    } else {
        s.ty.as_str()
    };
    match ty {
        "array" => {
            let items = s.items.as_ref()?;
            let it = decl_type(items, items.embedded_resource)?;
            let max = match s.max_items {
                Some(m) => zero_if_negative(m),
                None => ((MAX_REQUEST_SIZE_BYTES - 2) / (it.min_size + 1)) as u64,
            };
            Some(Decl {
                ty: Ty::List {
                    elem: Box::new(it.ty),
                    max,
                },
                min_size: 2,
            })
        }
        "object" => {
            if let Some(ap) = &s.additional_properties {
                let vt = decl_type(ap, ap.embedded_resource)?;
                let max = match s.max_properties {
                    Some(m) => zero_if_negative(m),
                    None => ((MAX_REQUEST_SIZE_BYTES - 2) / (vt.min_size + 6)) as u64,
                };
                return Some(Decl {
                    ty: Ty::Map {
                        key: Box::new(Ty::any_string()),
                        val: Box::new(vt.ty),
                        max,
                    },
                    min_size: 2,
                });
            }
            let mut fields = Vec::new();
            let mut min_size = 2i64;
            for (name, prop) in &s.properties {
                if resource_root && (name == "metadata" || name == "kind" || name == "apiVersion") {
                    continue;
                }
                if let Some(d) = decl_type(prop, prop.embedded_resource) {
                    if s.required.contains(name) && !prop.has_default {
                        min_size += name.len() as i64 + d.min_size + 4;
                    }
                    if let Some(esc) = escape_property(name) {
                        fields.push((esc, d.ty));
                    }
                }
            }
            if resource_root {
                let meta_name = |n: &str| {
                    s.property("metadata")
                        .and_then(|m| m.property(n))
                        .and_then(|p| decl_type(p, false))
                        .map(|d| d.ty)
                        .unwrap_or_else(Ty::any_string)
                };
                let str_prop = |n: &str| {
                    s.property(n)
                        .and_then(|p| decl_type(p, false))
                        .map(|d| d.ty)
                        .unwrap_or_else(Ty::any_string)
                };
                fields.push(("apiVersion".into(), str_prop("apiVersion")));
                fields.push(("kind".into(), str_prop("kind")));
                fields.push((
                    "metadata".into(),
                    Ty::Object(Arc::new(ObjectType {
                        fields: vec![
                            ("name".into(), meta_name("name")),
                            ("generateName".into(), meta_name("generateName")),
                        ],
                        open: false,
                    })),
                ));
            }
            Some(Decl {
                ty: Ty::Object(Arc::new(ObjectType {
                    fields,
                    open: s.preserve_unknown_fields,
                })),
                min_size,
            })
        }
        "string" => {
            let max = max_string_len(s);
            let (ty, min_size) = match s.format.as_str() {
                "byte" => (Ty::Bytes { max }, 2),
                "duration" => (Ty::Duration, 4),
                "date" => (Ty::Timestamp, 12),
                "date-time" => (Ty::Timestamp, 21),
                _ => (Ty::String { max }, 2),
            };
            Some(Decl { ty, min_size })
        }
        "boolean" => Some(Decl {
            ty: Ty::Bool,
            min_size: 4,
        }),
        "number" => Some(Decl {
            ty: Ty::Double,
            min_size: 1,
        }),
        "integer" => Some(Decl {
            ty: Ty::Int,
            min_size: 1,
        }),
        _ => None,
    }
}

/// The type `t` with every size bound set to zero (for absent values).
pub fn zero_sized(t: &Ty) -> Ty {
    match t {
        Ty::Dyn { .. } => Ty::Dyn { max: 0 },
        Ty::String { .. } => Ty::String { max: 0 },
        Ty::Bytes { .. } => Ty::Bytes { max: 0 },
        Ty::List { elem, .. } => Ty::List {
            elem: Box::new(zero_sized(elem)),
            max: 0,
        },
        Ty::Map { key, val, .. } => Ty::Map {
            key: Box::new(zero_sized(key)),
            val: Box::new(zero_sized(val)),
            max: 0,
        },
        Ty::Object(o) => Ty::Object(Arc::new(ObjectType {
            fields: o
                .fields
                .iter()
                .map(|(k, t)| (k.clone(), zero_sized(t)))
                .collect(),
            open: o.open,
        })),
        other => other.clone(),
    }
}

/// The larger bounds of two types of the same shape.
pub fn merge(a: &Ty, b: &Ty) -> Ty {
    match (a, b) {
        (Ty::Dyn { max: x }, Ty::Dyn { max: y }) => Ty::Dyn { max: (*x).max(*y) },
        (Ty::String { max: x }, Ty::String { max: y }) => Ty::String { max: (*x).max(*y) },
        (Ty::Bytes { max: x }, Ty::Bytes { max: y }) => Ty::Bytes { max: (*x).max(*y) },
        (Ty::List { elem: e1, max: x }, Ty::List { elem: e2, max: y }) => Ty::List {
            elem: Box::new(merge(e1, e2)),
            max: (*x).max(*y),
        },
        (
            Ty::Map {
                key: k1,
                val: v1,
                max: x,
            },
            Ty::Map {
                key: k2,
                val: v2,
                max: y,
            },
        ) => Ty::Map {
            key: Box::new(merge(k1, k2)),
            val: Box::new(merge(v1, v2)),
            max: (*x).max(*y),
        },
        (Ty::Object(o1), Ty::Object(o2)) => Ty::Object(Arc::new(ObjectType {
            fields: o1
                .fields
                .iter()
                .map(|(k, t)| match o2.field(k) {
                    Some(t2) => (k.clone(), merge(t, t2)),
                    None => (k.clone(), t.clone()),
                })
                .collect(),
            open: o1.open,
        })),
        (a, _) => a.clone(),
    }
}

/// The largest string length, list length or map size anywhere in `v`.
fn largest(v: &serde_json::Value) -> u64 {
    use serde_json::Value;
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(largest).fold(a.len() as u64, u64::max),
        Value::Object(o) => o
            .iter()
            .map(|(k, x)| largest(x).max(k.len() as u64))
            .fold(o.len() as u64, u64::max),
        _ => 1,
    }
}

/// The declared type `t` with its size bounds replaced by the sizes of the
/// actual value `v`: the cost estimator then bounds the work of evaluating a
/// rule on this very value.
pub fn actual(t: &Ty, v: &serde_json::Value) -> Ty {
    use serde_json::Value;
    match (t, v) {
        (Ty::Dyn { .. }, v) => Ty::Dyn { max: largest(v) },
        (Ty::String { .. }, Value::String(s)) => Ty::String {
            max: s.len() as u64,
        },
        (Ty::Bytes { .. }, Value::String(s)) => Ty::Bytes {
            max: s.len() as u64,
        },
        (Ty::List { elem, .. }, Value::Array(a)) => Ty::List {
            elem: Box::new(
                a.iter()
                    .map(|x| actual(elem, x))
                    .reduce(|x, y| merge(&x, &y))
                    .unwrap_or_else(|| zero_sized(elem)),
            ),
            max: a.len() as u64,
        },
        (Ty::Map { key, val, .. }, Value::Object(o)) => Ty::Map {
            key: Box::new(match **key {
                Ty::String { .. } => Ty::String {
                    max: o.keys().map(|k| k.len() as u64).max().unwrap_or(0),
                },
                ref k => k.clone(),
            }),
            val: Box::new(
                o.values()
                    .map(|x| actual(val, x))
                    .reduce(|x, y| merge(&x, &y))
                    .unwrap_or_else(|| zero_sized(val)),
            ),
            max: o.len() as u64,
        },
        (Ty::Object(ot), Value::Object(o)) => {
            let unknown = if ot.open {
                o.iter()
                    .filter(|(k, _)| ot.field(k).is_none())
                    .map(|(_, x)| largest(x))
                    .max()
                    .unwrap_or(0)
            } else {
                0
            };
            let mut fields: Vec<(String, Ty)> = Vec::with_capacity(ot.fields.len());
            for (k, ft) in &ot.fields {
                // fields are declared by escaped name; look the value up by the
                // raw name it escapes
                let value = o
                    .iter()
                    .find(|(raw, _)| {
                        crate::schema::escape_property(raw).as_deref() == Some(k.as_str())
                    })
                    .map(|(_, x)| x);
                fields.push((
                    k.clone(),
                    match value {
                        Some(x) => actual(ft, x),
                        None => zero_sized(ft),
                    },
                ));
            }
            if ot.open {
                fields.push(("@unknown".into(), Ty::Dyn { max: unknown }));
            }
            Ty::Object(Arc::new(ObjectType {
                fields,
                open: ot.open,
            }))
        }
        (t, _) => zero_sized(t),
    }
}

/// How many times data of `min_size` bytes can repeat in one request: kube's
/// `MaxCardinality`.
pub fn max_cardinality(min_size: i64) -> u64 {
    (MAX_REQUEST_SIZE_BYTES / (min_size + 1)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declares_like_kube() {
        let s = Schema::from_json(&json!({
            "type": "object",
            "required": ["n"],
            "properties": {
                "n": {"type": "integer"},
                "l": {"type": "array", "items": {"type": "string", "maxLength": 5}},
                "m": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 4},
                "t": {"type": "string", "format": "date-time"},
                "x-y": {"x-kubernetes-int-or-string": true}
            }
        }));
        let d = decl_type(&s, false).unwrap();
        assert_eq!(d.min_size, 2 + 1 + 1 + 4);
        let Ty::Object(o) = d.ty else { panic!() };
        assert!(matches!(o.field("n"), Some(Ty::Int)));
        match o.field("l") {
            Some(Ty::List { elem, max }) => {
                assert_eq!(*max, (MAX_REQUEST_SIZE_BYTES as u64 - 2) / 3);
                assert!(matches!(**elem, Ty::String { max: 20 }));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(o.field("m"), Some(Ty::Map { max: 4, .. })));
        assert!(matches!(o.field("t"), Some(Ty::Timestamp)));
        assert!(matches!(o.field("x__dash__y"), Some(Ty::Dyn { .. })));
    }

    #[test]
    fn resource_root_sees_meta() {
        let s = Schema::from_json(
            &json!({"type": "object", "properties": {"spec": {"type": "object"}}}),
        );
        let Ty::Object(o) = decl_type(&s, true).unwrap().ty else {
            panic!()
        };
        assert!(o.field("apiVersion").is_some());
        let Some(Ty::Object(m)) = o.field("metadata") else {
            panic!()
        };
        assert!(m.field("name").is_some() && m.field("generateName").is_some());
        assert!(m.field("labels").is_none());
    }
}
