//! Pruning of unknown fields (apiextensions-apiserver `schema/pruning`) and
//! of non-nullable nulls (`schema/defaulting/prunenulls.go`).
//!
//! Pruning walks the object along `properties`, `additionalProperties` and
//! `items` and deletes every object field the schema does not specify,
//! unless a node has `x-kubernetes-preserve-unknown-fields: true`. The root
//! and every `x-kubernetes-embedded-resource` keep `apiVersion`, `kind` and
//! `metadata` untouched (kube-apiserver later reduces the root `metadata` to
//! `ObjectMeta` on its own). Like kube, an `additionalProperties: true`
//! without a schema keeps the key but prunes everything inside its value.
//!
//! The pruned paths are returned sorted, in kube's notation without a
//! leading dot (`spec.foo`, `spec.items[0].bar`): kube-apiserver answers
//! `fieldValidation=Strict` with `unknown field "spec.foo"` and
//! `fieldValidation=Warn` with that text as a warning.

use serde_json::Value;

use crate::schema::{Additional, CompiledSchema, Node};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn is_meta(k: &str) -> bool {
    META_FIELDS.contains(&k)
}

/// Records the paths of pruned fields, as kube's `UnknownFieldPathOptions`.
#[derive(Default)]
pub(crate) struct Tracker {
    parent: Vec<String>,
    pub(crate) unknown: Vec<String>,
}

impl Tracker {
    fn record(&mut self, field: &str) {
        let l = self.parent.len();
        self.append_key(field);
        self.unknown.push(self.parent.concat());
        self.parent.truncate(l);
    }
    fn append_key(&mut self, k: &str) {
        if !self.parent.is_empty() {
            self.parent.push(".".into());
        }
        self.parent.push(k.to_string());
    }
    fn append_index(&mut self, i: usize) {
        self.parent.push(format!("[{i}]"));
    }
}

fn len(t: &Option<Tracker>) -> usize {
    t.as_ref().map(|t| t.parent.len()).unwrap_or(0)
}
fn truncate(t: &mut Option<Tracker>, l: usize) {
    if let Some(t) = t {
        t.parent.truncate(l);
    }
}
fn append_key(t: &mut Option<Tracker>, k: &str) {
    if let Some(t) = t {
        t.append_key(k);
    }
}
fn append_index(t: &mut Option<Tracker>, i: usize) {
    if let Some(t) = t {
        t.append_index(i);
    }
}
fn record(t: &mut Option<Tracker>, k: &str) {
    if let Some(t) = t {
        t.record(k);
    }
}

fn additional_of(s: &Node) -> Option<Option<&Node>> {
    match &s.additional {
        None => None,
        Some(Additional::Bool(_)) => Some(None),
        Some(Additional::Schema(a)) => Some(Some(a)),
    }
}

/// Prunes `x` against `s`. `embedded` forces the embedded-resource
/// treatment of the top node (kube's `isResourceRoot`).
pub(crate) fn prune_value(
    x: &mut Value,
    s: Option<&Node>,
    embedded: bool,
    t: &mut Option<Tracker>,
) {
    if let Some(s) = s {
        if s.preserve_unknown_fields {
            skip_prune(x, s, embedded, t);
            return;
        }
    }
    let orig = len(t);
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    record(t, &k);
                }
                m.clear();
                return;
            };
            let embedded = embedded || s.embedded_resource;
            let mut remove: Vec<String> = Vec::new();
            for (k, v) in m.iter_mut() {
                if s.embedded_resource && k == "metadata" {
                    append_key(t, k);
                    coerce_object_meta(v, t);
                    truncate(t, orig);
                    continue;
                }
                if embedded && is_meta(k) {
                    continue;
                }
                if let Some(prop) = s.property(k) {
                    append_key(t, k);
                    prune_value(v, Some(prop), false, t);
                    truncate(t, orig);
                } else if let Some(addl) = additional_of(s) {
                    append_key(t, k);
                    prune_value(v, addl, false, t);
                    truncate(t, orig);
                } else {
                    if !is_meta(k) || orig > 0 {
                        record(t, k);
                    }
                    remove.push(k.clone());
                }
            }
            for k in remove {
                m.shift_remove(&k);
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for (i, v) in a.iter_mut().enumerate() {
                append_index(t, i);
                prune_value(v, items, false, t);
                truncate(t, orig);
            }
        }
        _ => {}
    }
}

fn skip_prune(x: &mut Value, s: &Node, embedded: bool, t: &mut Option<Tracker>) {
    let orig = len(t);
    match x {
        Value::Object(m) => {
            let embedded = embedded || s.embedded_resource;
            for (k, v) in m.iter_mut() {
                if s.embedded_resource && k == "metadata" {
                    append_key(t, k);
                    coerce_object_meta(v, t);
                    truncate(t, orig);
                    continue;
                }
                if embedded && is_meta(k) {
                    continue;
                }
                if let Some(prop) = s.property(k) {
                    append_key(t, k);
                    prune_value(v, Some(prop), false, t);
                    truncate(t, orig);
                } else if let Some(addl) = additional_of(s) {
                    append_key(t, k);
                    prune_value(v, addl, false, t);
                    truncate(t, orig);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for (i, v) in a.iter_mut().enumerate() {
                    append_index(t, i);
                    skip_prune(v, items, false, t);
                    truncate(t, orig);
                }
            }
        }
        _ => {}
    }
}

/// The JSON fields of `metav1.ObjectMeta` (all `omitempty`).
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// What kube's `objectmeta.Coerce` does to the `metadata` of an embedded
/// resource: a round trip through `metav1.ObjectMeta`, which drops unknown
/// fields (reported like pruned fields) and empty values.
fn coerce_object_meta(v: &mut Value, t: &mut Option<Tracker>) {
    let Value::Object(m) = v else { return };
    let unknown: Vec<String> = m
        .keys()
        .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in unknown {
        record(t, &k);
        m.shift_remove(&k);
    }
    m.retain(|k, v| {
        let empty = match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Number(n) => k == "generation" && n.as_i64() == Some(0),
            Value::Bool(_) => false,
        };
        !empty
    });
}

fn schema_for_field<'a>(s: Option<&'a Node>, k: &str) -> Option<&'a Node> {
    let s = s?;
    s.property(k).or_else(|| s.additional_schema())
}

fn prune_nulls(x: &mut Value, s: Option<&Node>) {
    match x {
        Value::Object(m) => {
            m.retain(|k, v| {
                let sch = schema_for_field(s, k);
                if v.is_null() {
                    if let Some(sch) = sch {
                        if !sch.nullable && sch.default.is_none() {
                            return false;
                        }
                    }
                    return true;
                }
                prune_nulls(v, sch);
                true
            });
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for v in a {
                prune_nulls(v, items);
            }
        }
        _ => {}
    }
}

impl CompiledSchema {
    /// Removes the fields of `obj` that the schema does not specify and
    /// returns their paths, sorted (`spec.foo`, `spec.list[1].bar`).
    ///
    /// The root is treated as a resource: `apiVersion`, `kind` and
    /// `metadata` are never pruned here.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut t = Some(Tracker::default());
        self.on_stack(|| prune_value(obj, Some(&self.root), true, &mut t));
        let mut paths = t.map(|t| t.unknown).unwrap_or_default();
        paths.sort();
        paths
    }

    /// Like [`CompiledSchema::prune`] without collecting the paths.
    pub fn prune_silently(&self, obj: &mut Value) {
        self.on_stack(|| prune_value(obj, Some(&self.root), true, &mut None));
    }

    /// Deletes `null` object fields whose schema is neither `nullable` nor
    /// has a default (`PruneNonNullableNullsWithoutDefaults`; kube-apiserver
    /// runs it right after pruning). Nulls with a default are left for
    /// [`CompiledSchema::default`].
    pub fn prune_non_nullable_nulls(&self, obj: &mut Value) {
        self.on_stack(|| prune_nulls(obj, Some(&self.root)));
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
    fn prunes_unknown_fields() {
        let s = schema(json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "a": {"type": "string"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "loose": {"type": "object", "additionalProperties": true}
            }}
        }}));
        let mut obj = json!({
            "apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n", "foo": 1},
            "top": 1,
            "spec": {"a": "x", "b": 1, "list": [{"x": 1, "y": 2}, {"z": 3}],
                     "labels": {"k": "v"}, "free": {"anything": {"deep": 1}},
                     "loose": {"k": {"inner": 1}, "s": "v"}}
        });
        let pruned = s.prune(&mut obj);
        assert_eq!(
            pruned,
            vec![
                "spec.b",
                "spec.list[0].y",
                "spec.list[1].z",
                "spec.loose.k.inner",
                "top"
            ]
        );
        assert_eq!(
            obj,
            json!({
                "apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n", "foo": 1},
                "spec": {"a": "x", "list": [{"x": 1}, {}], "labels": {"k": "v"},
                         "free": {"anything": {"deep": 1}}, "loose": {"k": {}, "s": "v"}}
            })
        );
    }

    #[test]
    fn embedded_resources_keep_meta() {
        let s = schema(json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {
                    "spec": {"type": "object"}
                }}
            }}
        }}));
        let mut obj = json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": {}, "bogus": 1}, "spec": {"a": 1}, "extra": 1}}});
        assert_eq!(
            s.prune(&mut obj),
            vec![
                "spec.template.extra",
                "spec.template.metadata.bogus",
                "spec.template.spec.a"
            ]
        );
        assert_eq!(
            obj,
            json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}}}})
        );
    }

    #[test]
    fn preserve_unknown_fields_still_prunes_specified_children() {
        let s = schema(
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                "spec": {"type": "object", "properties": {"a": {"type": "string"}}}
            }}),
        );
        let mut obj = json!({"other": 1, "spec": {"a": "x", "b": 2}});
        assert_eq!(s.prune(&mut obj), vec!["spec.b"]);
        assert_eq!(obj, json!({"other": 1, "spec": {"a": "x"}}));
    }

    #[test]
    fn prunes_non_nullable_nulls() {
        let s = schema(json!({"type": "object", "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "nullable": true},
            "c": {"type": "string", "default": "x"},
            "m": {"type": "object", "additionalProperties": {"type": "string"}}
        }}));
        let mut obj = json!({"a": null, "b": null, "c": null, "d": null, "m": {"k": null}});
        s.prune_non_nullable_nulls(&mut obj);
        assert_eq!(obj, json!({"b": null, "c": null, "d": null, "m": {}}));
    }
}
