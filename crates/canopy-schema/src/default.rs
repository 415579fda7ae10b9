//! Defaulting (apiextensions-apiserver `schema/defaulting/algorithm.go`).
//!
//! Defaults are applied top-down: at every object, each specified property
//! that has a `default` and is absent (or is `null` while the property is
//! not `nullable`) receives a deep copy of the default; then the walk
//! descends into every field, including ones that were just defaulted, so
//! defaults nested inside a parent's default are applied too. Values of
//! `additionalProperties` and array `items` are descended into as well, and
//! a non-nullable `null` there is replaced by the default of the
//! `additionalProperties`/`items` schema.

use serde_json::Value;

use crate::schema::{CompiledSchema, Node};

fn non_nullable_null(x: &Value, s: &Node) -> bool {
    x.is_null() && !s.nullable
}

pub(crate) fn default_value(x: &mut Value, s: &Node) {
    if !s.has_defaults {
        return;
    }
    match x {
        Value::Object(m) => {
            for &i in &s.defaulted {
                let (k, prop) = &s.properties[i];
                let Some(d) = &prop.default else { continue };
                match m.get_mut(k) {
                    None => {
                        m.insert(k.clone(), d.clone());
                    }
                    Some(v) if non_nullable_null(v, prop) => *v = d.clone(),
                    _ => {}
                }
            }
            let addl = s.additional_schema();
            for (k, v) in m.iter_mut() {
                if let Some(prop) = s.property(k) {
                    default_value(v, prop);
                } else if let Some(a) = addl {
                    if non_nullable_null(v, a) {
                        *v = a.default.clone().unwrap_or(Value::Null);
                    }
                    default_value(v, a);
                }
            }
        }
        Value::Array(arr) => {
            if let Some(items) = s.items.as_deref() {
                for v in arr {
                    if non_nullable_null(v, items) {
                        *v = items.default.clone().unwrap_or(Value::Null);
                    }
                    default_value(v, items);
                }
            }
        }
        _ => {}
    }
}

impl CompiledSchema {
    /// Applies the schema's defaults to `obj` in place, like kube-apiserver
    /// does when it decodes a custom resource.
    pub fn default(&self, obj: &mut Value) {
        self.on_stack(|| default_value(obj, &self.root));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> CompiledSchema {
        CompiledSchema::compile(&v).unwrap()
    }

    #[test]
    fn defaults_top_down() {
        let s = schema(json!({"type": "object", "properties": {
            "spec": {"type": "object", "default": {}, "properties": {
                "replicas": {"type": "integer", "default": 1},
                "strategy": {"type": "object", "default": {"type": "Rolling"}, "properties": {
                    "type": {"type": "string"},
                    "maxSurge": {"type": "integer", "default": 25}
                }},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"},
                    "port": {"type": "integer"}
                }}},
                "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                    "v": {"type": "string", "default": "d"}
                }}},
                "opt": {"type": "string", "nullable": true, "default": "x"},
                "req": {"type": "string", "default": "y"}
            }}
        }}));
        let mut obj = json!({"kind": "X"});
        s.default(&mut obj);
        assert_eq!(
            obj,
            json!({"kind": "X", "spec": {"replicas": 1, "strategy": {"type": "Rolling", "maxSurge": 25}, "opt": "x", "req": "y"}})
        );

        let mut obj = json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
            "labels": {"a": {}}, "opt": null, "req": null}});
        s.default(&mut obj);
        assert_eq!(obj["spec"]["replicas"], 3);
        assert_eq!(
            obj["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
        );
        assert_eq!(obj["spec"]["labels"], json!({"a": {"v": "d"}}));
        assert_eq!(obj["spec"]["opt"], Value::Null);
        assert_eq!(obj["spec"]["req"], "y");
    }

    #[test]
    fn null_items_get_item_default() {
        let s = schema(json!({"type": "object", "properties": {
            "l": {"type": "array", "items": {"type": "string", "default": "z"}},
            "m": {"type": "object", "additionalProperties": {"type": "string", "default": "w"}}
        }}));
        let mut obj = json!({"l": ["a", null], "m": {"k": null}});
        s.default(&mut obj);
        assert_eq!(obj, json!({"l": ["a", "z"], "m": {"k": "w"}}));
    }
}
