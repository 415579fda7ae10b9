//! The parts of an OpenAPI v3 (structural) schema that CEL validation needs,
//! read from the schema's JSON form.
//!
//! Only what matters for `x-kubernetes-validations` is kept: types and
//! formats, the `properties` / `additionalProperties` / `items` spine, the
//! size limits used by the cost estimator, and the Kubernetes extensions that
//! change how values are typed and correlated (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`).

use serde_json::Value;
use std::sync::Arc;

/// One rule of an `x-kubernetes-validations` list, as written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawRule {
    /// The CEL expression.
    pub rule: String,
    /// `message`, if set.
    pub message: Option<String>,
    /// `messageExpression`, if set.
    pub message_expression: Option<String>,
    /// `reason`, if set.
    pub reason: Option<String>,
    /// `fieldPath`, if set.
    pub field_path: Option<String>,
    /// `optionalOldSelf`, if set.
    pub optional_old_self: Option<bool>,
}

impl RawRule {
    /// Renders the rule as kube's `%#v` of `apiextensions.ValidationRule`, the
    /// bad value of a rule compilation error.
    pub fn go_repr(&self) -> String {
        use crate::errors::go_quote;
        let opt = |s: &Option<String>| go_quote(s.as_deref().unwrap_or(""));
        let reason = match &self.reason {
            None => "(*apiextensions.FieldValueErrorReason)(nil)".to_string(),
            Some(_) => "(*apiextensions.FieldValueErrorReason)(0x0)".to_string(),
        };
        let old = match self.optional_old_self {
            None => "(*bool)(nil)".to_string(),
            Some(_) => "(*bool)(0x0)".to_string(),
        };
        format!(
            "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{}, FieldPath:{}, OptionalOldSelf:{}}}",
            go_quote(&self.rule),
            opt(&self.message),
            opt(&self.message_expression),
            reason,
            opt(&self.field_path),
            old
        )
    }
}

/// A schema node.
#[derive(Debug, Default)]
pub struct Schema {
    /// `type`, empty when absent.
    pub ty: String,
    /// `format`, empty when absent.
    pub format: String,
    /// `properties`, in schema order.
    pub properties: Vec<(String, Arc<Schema>)>,
    /// `additionalProperties` when it is a schema.
    pub additional_properties: Option<Arc<Schema>>,
    /// `items` when it is a schema.
    pub items: Option<Arc<Schema>>,
    /// `maxItems`.
    pub max_items: Option<i64>,
    /// `maxLength`.
    pub max_length: Option<i64>,
    /// `maxProperties`.
    pub max_properties: Option<i64>,
    /// `enum`.
    pub enum_values: Vec<Value>,
    /// `required`.
    pub required: Vec<String>,
    /// Whether `default` is set.
    pub has_default: bool,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`.
    pub map_type: Option<String>,
    /// `x-kubernetes-embedded-resource`.
    pub embedded_resource: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown_fields: bool,
    /// `x-kubernetes-validations`.
    pub rules: Vec<RawRule>,
    /// `x-kubernetes-validations` of the `allOf` branches (kube evaluates them
    /// on the same node).
    pub all_of_rules: Vec<Vec<RawRule>>,
}

/// A problem with the shape of an `x-kubernetes-validations` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeError {
    /// Index of the rule in its list.
    pub index: usize,
    /// What is wrong.
    pub detail: String,
}

impl Schema {
    /// Reads a schema from its JSON form. Unknown keywords are ignored.
    pub fn from_json(v: &Value) -> Arc<Schema> {
        Arc::new(Self::read(v))
    }

    fn read(v: &Value) -> Schema {
        let Some(o) = v.as_object() else {
            return Schema::default();
        };
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let i = |k: &str| o.get(k).and_then(Value::as_i64);
        let b = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut properties = Vec::new();
        if let Some(p) = o.get("properties").and_then(Value::as_object) {
            for (k, v) in p {
                properties.push((k.clone(), Arc::new(Self::read(v))));
            }
        }
        let additional_properties = match o.get("additionalProperties") {
            Some(v @ Value::Object(_)) => Some(Arc::new(Self::read(v))),
            _ => None,
        };
        let items = match o.get("items") {
            Some(v @ Value::Object(_)) => Some(Arc::new(Self::read(v))),
            _ => None,
        };
        let all_of_rules = o
            .get("allOf")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| read_rules(x.get("x-kubernetes-validations")))
                    .filter(|r| !r.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Schema {
            ty: s("type"),
            format: s("format"),
            properties,
            additional_properties,
            items,
            max_items: i("maxItems"),
            max_length: i("maxLength"),
            max_properties: i("maxProperties"),
            enum_values: o
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            required: o
                .get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            has_default: o.contains_key("default"),
            list_type: o
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(String::from),
            list_map_keys: o
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            map_type: o
                .get("x-kubernetes-map-type")
                .and_then(Value::as_str)
                .map(String::from),
            embedded_resource: b("x-kubernetes-embedded-resource"),
            int_or_string: b("x-kubernetes-int-or-string"),
            preserve_unknown_fields: b("x-kubernetes-preserve-unknown-fields"),
            rules: read_rules(o.get("x-kubernetes-validations")),
            all_of_rules,
        }
    }

    /// The named property.
    pub fn property(&self, name: &str) -> Option<&Arc<Schema>> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Whether any rule exists in this node or below.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
            || !self.all_of_rules.is_empty()
            || self.properties.iter().any(|(_, p)| p.has_rules())
            || self
                .additional_properties
                .as_ref()
                .is_some_and(|p| p.has_rules())
            || self.items.as_ref().is_some_and(|p| p.has_rules())
    }

    /// Whether a map (object) node correlates old and new values by key:
    /// kube's `MapIsCorrelatable` (`granular`, `atomic` or unset).
    pub fn map_is_correlatable(&self) -> bool {
        matches!(
            self.map_type.as_deref(),
            None | Some("granular") | Some("atomic")
        )
    }

    /// Whether this is a `x-kubernetes-list-type: map` list with keys.
    pub fn is_list_map(&self) -> bool {
        self.list_type.as_deref() == Some("map") && !self.list_map_keys.is_empty()
    }
}

fn read_rules(v: Option<&Value>) -> Vec<RawRule> {
    let Some(list) = v.and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).map(String::from);
            RawRule {
                rule: s("rule").unwrap_or_default(),
                message: s("message"),
                message_expression: s("messageExpression"),
                reason: s("reason"),
                field_path: s("fieldPath"),
                optional_old_self: r.get("optionalOldSelf").and_then(Value::as_bool),
            }
        })
        .collect()
}

/// The largest request kube-apiserver accepts (3 MiB); the bound of every
/// unbounded list, map and string for cost estimation.
pub const MAX_REQUEST_SIZE_BYTES: i64 = 3 * 1024 * 1024;

/// Reserved CEL words that kube escapes as `__word__` in property names.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Escapes a property name to the identifier CEL rules use for it, as kube's
/// `cel.Escape`: `__` → `__underscores__`, `.` → `__dot__`, `-` → `__dash__`,
/// `/` → `__slash__`, reserved words → `__word__`. `None` when the name
/// cannot be escaped (the property is then invisible to rules).
pub fn escape_property(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let bytes: Vec<char> = name.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '_' && i + 1 < bytes.len() && bytes[i + 1] == '_' {
            out.push_str("__underscores__");
            i += 2;
            continue;
        }
        match c {
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_kube() {
        assert_eq!(escape_property("foo").as_deref(), Some("foo"));
        assert_eq!(escape_property("x-y").as_deref(), Some("x__dash__y"));
        assert_eq!(
            escape_property("a.b/c").as_deref(),
            Some("a__dot__b__slash__c")
        );
        assert_eq!(
            escape_property("a__b").as_deref(),
            Some("a__underscores__b")
        );
        assert_eq!(
            escape_property("namespace").as_deref(),
            Some("__namespace__")
        );
        assert_eq!(escape_property("1a"), None);
        assert_eq!(escape_property("a b"), None);
        assert_eq!(escape_property(""), None);
    }

    #[test]
    fn reads_schema() {
        let s = Schema::from_json(&serde_json::json!({
            "type": "object",
            "properties": {"a": {"type": "array", "maxItems": 3, "items": {"type": "string"},
                "x-kubernetes-list-type": "set"}},
            "x-kubernetes-validations": [{"rule": "true", "message": "m"}]
        }));
        assert_eq!(s.ty, "object");
        assert_eq!(s.property("a").unwrap().max_items, Some(3));
        assert_eq!(s.rules[0].message.as_deref(), Some("m"));
        assert!(s.has_rules());
    }
}
