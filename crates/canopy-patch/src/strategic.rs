//! Strategic merge patch, as k8s.io/apimachinery's `strategicpatch` applies it.
//!
//! Maps merge key by key (`null` deletes a key). Lists are replaced, unless their field's
//! strategy is `merge`: then lists of primitives become the union (original order first)
//! and lists of objects merge element by element on the field's merge key. Directives:
//!
//! - `$patch: replace` (in a map: the map replaces the original; as a list element: the
//!   list replaces the original), `$patch: delete` (a map is deleted; a list element
//!   deletes the original element with the same merge key), `$patch: merge` (default);
//! - `$retainKeys: [..]`: only these keys of the original map are kept;
//! - `$deleteFromPrimitiveList/<field>: [..]`: removes values from a merged primitive list;
//! - `$setElementOrder/<field>: [..]`: the order of the merged list.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use crate::{Limits, PatchError};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// How the fields of a value merge. The default is "replace" for lists and "merge" for
/// maps, which is what fields without patch tags do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    fields: BTreeMap<String, Schema>,
    items: Option<Box<Schema>>,
    merge: bool,
    retain_keys: bool,
    merge_key: Option<String>,
}

static EMPTY: Schema = Schema {
    fields: BTreeMap::new(),
    items: None,
    merge: false,
    retain_keys: false,
    merge_key: None,
};

impl Schema {
    /// A value whose fields (and lists) use the defaults.
    pub fn object() -> Schema {
        Schema::default()
    }

    /// Adds a field with its own schema.
    pub fn field(mut self, name: &str, schema: Schema) -> Schema {
        self.fields.insert(name.to_string(), schema);
        self
    }

    /// A list merged as a set of primitives (`patchStrategy:"merge"` on `[]string`).
    pub fn merged_primitive_list() -> Schema {
        Schema {
            merge: true,
            ..Schema::default()
        }
    }

    /// A list of objects merged by `key` (`patchStrategy:"merge" patchMergeKey:"key"`).
    pub fn merged_list(key: &str, items: Schema) -> Schema {
        Schema {
            merge: true,
            merge_key: Some(key.to_string()),
            items: Some(Box::new(items)),
            ..Schema::default()
        }
    }

    /// `patchStrategy:"retainKeys"` on an object.
    pub fn retain_keys(mut self) -> Schema {
        self.retain_keys = true;
        self
    }

    fn child(&self, name: &str) -> &Schema {
        self.fields.get(name).unwrap_or(&EMPTY)
    }

    fn item(&self) -> &Schema {
        self.items.as_deref().unwrap_or(&EMPTY)
    }

    /// `metav1.ObjectMeta`: finalizers merge as a set, ownerReferences merge by uid.
    pub fn object_meta() -> Schema {
        Schema::object()
            .field("finalizers", Schema::merged_primitive_list())
            .field(
                "ownerReferences",
                Schema::merged_list("uid", Schema::object()),
            )
    }
}

/// The schema of a built-in kind Canopy serves, from the patch tags of its Go type.
pub fn builtin_schema(group: &str, version: &str, kind: &str) -> Option<Schema> {
    let base = Schema::object().field("metadata", Schema::object_meta());
    let s = match (group, version, kind) {
        ("", "v1", "ServiceAccount") => {
            base.field("secrets", Schema::merged_list("name", Schema::object()))
        }
        ("", "v1", "Namespace") => base.field(
            "status",
            Schema::object().field("conditions", Schema::merged_list("type", Schema::object())),
        ),
        ("", "v1", "ConfigMap" | "Secret" | "Event")
        | ("events.k8s.io", "v1", "Event")
        | ("coordination.k8s.io", "v1", "Lease")
        | (
            "rbac.authorization.k8s.io",
            "v1",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => base,
        _ => return None,
    };
    Some(s)
}

fn err(m: impl Into<String>) -> PatchError {
    PatchError::Strategic(m.into())
}

/// Applies a strategic merge patch to `original` under the default [`Limits`].
pub fn apply(original: &Value, patch: &Value, schema: &Schema) -> Result<Value, PatchError> {
    apply_with(original, patch, schema, &Limits::default())
}

/// Applies a strategic merge patch to `original` under `limits`: inputs nested deeper
/// than [`Limits::max_nesting`] are refused before anything recurses on them, and
/// a result larger than [`Limits::max_result_bytes`] is refused. Lookups of keys,
/// merge keys and list values are hashed, so the work is linear in the inputs.
pub fn apply_with(
    original: &Value,
    patch: &Value,
    schema: &Schema,
    limits: &Limits,
) -> Result<Value, PatchError> {
    let Value::Object(p) = patch else {
        return Err(err("a strategic merge patch must be a JSON object"));
    };
    crate::check_inputs(&[original, patch], limits)?;
    let o = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let out = merge_map(o, p, schema)?
        .map(Value::Object)
        .unwrap_or_else(|| Value::Object(Map::new()));
    crate::check_result(&out, limits)?;
    Ok(out)
}

/// A hashable identity of a value (its JSON).
fn id(v: &Value) -> String {
    v.to_string()
}

/// Merges a patch map into an original map; `None` means "delete this map".
fn merge_map(
    original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: &Schema,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get(DIRECTIVE) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "delete" => return Ok(None),
        Some(Value::String(d)) if d == "replace" => {
            let mut rest = patch.clone();
            rest.remove(DIRECTIVE);
            return merge_map(Map::new(), &rest, schema);
        }
        Some(other) => return Err(err(format!("Unknown patch type: {other}"))),
    }
    let mut out = original;
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys = retain
            .as_array()
            .ok_or_else(|| err("$retainKeys must be a list of strings"))?
            .iter()
            .map(|k| {
                k.as_str()
                    .ok_or_else(|| err("$retainKeys must be a list of strings"))
            })
            .collect::<Result<HashSet<&str>, _>>()?;
        out.retain(|k, _| keys.contains(k.as_str()));
    }
    let mut orders: Vec<(String, &Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove: HashSet<String> = v
                .as_array()
                .ok_or_else(|| err(format!("{k} must be a list")))?
                .iter()
                .map(id)
                .collect();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|x| !remove.contains(&id(x)));
            }
        } else if let Some(field) = k.strip_prefix(SET_ELEMENT_ORDER) {
            let order = v
                .as_array()
                .ok_or_else(|| err(format!("{k} must be a list")))?;
            orders.push((field.to_string(), order));
        } else if k.starts_with('$') && k != DIRECTIVE && k != RETAIN_KEYS {
            return Err(err(format!("unknown directive {k:?}")));
        }
    }
    let mut deleted: HashSet<&str> = HashSet::new();
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            deleted.insert(k.as_str());
            continue;
        }
        let child = schema.child(k);
        let cur = out.get_mut(k).map(std::mem::take).unwrap_or(Value::Null);
        match merge_value(cur, v, child)? {
            Some(m) => {
                deleted.remove(k.as_str());
                out.insert(k.clone(), m);
            }
            None => {
                deleted.insert(k.as_str());
            }
        }
    }
    if !deleted.is_empty() {
        out.retain(|k, _| !deleted.contains(k.as_str()));
    }
    for (field, order) in orders {
        let key = schema.child(&field).merge_key.clone();
        if let Some(Value::Array(list)) = out.get_mut(&field) {
            reorder(list, order, key.as_deref());
        }
    }
    Ok(Some(out))
}

fn merge_value(
    original: Value,
    patch: &Value,
    schema: &Schema,
) -> Result<Option<Value>, PatchError> {
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => Ok(merge_map(o, p, schema)?.map(Value::Object)),
        (_, Value::Object(p)) => Ok(merge_map(Map::new(), p, schema)?.map(Value::Object)),
        (Value::Array(o), Value::Array(p)) => {
            merge_list(o, p, schema).map(|l| Some(Value::Array(l)))
        }
        (_, Value::Array(p)) => merge_list(Vec::new(), p, schema).map(|l| Some(Value::Array(l))),
        (_, other) => Ok(Some(other.clone())),
    }
}

fn directive_of(v: &Value) -> Option<&str> {
    v.as_object()
        .and_then(|m| m.get(DIRECTIVE))
        .and_then(Value::as_str)
}

/// Strips directives from new list elements (merging them into nothing).
fn fresh(items: &[Value], schema: &Schema) -> Result<Vec<Value>, PatchError> {
    let mut out = Vec::with_capacity(items.len());
    for v in items {
        if let Some(m) = merge_value(Value::Null, v, schema)? {
            out.push(m);
        }
    }
    Ok(out)
}

fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    schema: &Schema,
) -> Result<Vec<Value>, PatchError> {
    let item = schema.item();
    let is_list_replace = |v: &Value| {
        directive_of(v) == Some("replace") && v.as_object().is_some_and(|m| m.len() == 1)
    };
    if patch.iter().any(is_list_replace) {
        let rest: Vec<Value> = patch
            .iter()
            .filter(|v| !is_list_replace(v))
            .cloned()
            .collect();
        return fresh(&rest, item);
    }
    if !schema.merge {
        return fresh(patch, item);
    }
    let Some(key) = &schema.merge_key else {
        // a merged list of primitives: the union, original order first
        let mut seen: HashSet<String> = original.iter().map(id).collect();
        let mut out = original;
        for v in patch {
            if v.is_object() {
                return Err(err("a merged list of primitives cannot hold objects"));
            }
            if seen.insert(id(v)) {
                out.push(v.clone());
            }
        }
        return Ok(out);
    };
    // elements by position (None once deleted), and the positions of each merge key
    let mut out: Vec<Option<Value>> = original.into_iter().map(Some).collect();
    let mut by_key: HashMap<String, VecDeque<usize>> = HashMap::new();
    for (i, o) in out.iter().enumerate() {
        if let Some(kv) = o.as_ref().and_then(|o| o.get(key.as_str())) {
            by_key.entry(id(kv)).or_default().push_back(i);
        }
    }
    for p in patch {
        let Value::Object(pm) = p else {
            return Err(err(format!(
                "list merged by {key:?} holds a non-object element"
            )));
        };
        let Some(kv) = pm.get(key.as_str()) else {
            return Err(err(format!(
                "map: {p} does not contain declared merge key: {key}"
            )));
        };
        let k = id(kv);
        let pos = by_key.get(&k).and_then(|v| v.front().copied());
        match directive_of(p) {
            Some("delete") => {
                for i in by_key.remove(&k).unwrap_or_default() {
                    out[i] = None;
                }
            }
            Some("replace") => {
                let mut rest = pm.clone();
                rest.remove(DIRECTIVE);
                let v = merge_map(Map::new(), &rest, item)?.map(Value::Object);
                match (pos, v) {
                    (Some(i), Some(v)) => out[i] = Some(v),
                    (None, Some(v)) => {
                        by_key.entry(k).or_default().push_back(out.len());
                        out.push(Some(v));
                    }
                    (Some(i), None) => {
                        out[i] = None;
                        if let Some(q) = by_key.get_mut(&k) {
                            q.pop_front();
                        }
                    }
                    (None, None) => {}
                }
            }
            Some("merge") | None => match pos {
                Some(i) => {
                    let cur = match out[i].take() {
                        Some(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    match merge_map(cur, pm, item)? {
                        Some(m) => out[i] = Some(Value::Object(m)),
                        None => {
                            if let Some(q) = by_key.get_mut(&k) {
                                q.pop_front();
                            }
                        }
                    }
                }
                None => {
                    if let Some(m) = merge_map(Map::new(), pm, item)? {
                        by_key.entry(k).or_default().push_back(out.len());
                        out.push(Some(Value::Object(m)));
                    }
                }
            },
            Some(other) => return Err(err(format!("Unknown patch type: {other}"))),
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Orders `list` by `order` (merge-key values, or the values themselves for primitives);
/// elements not named keep their relative order after the named ones.
fn reorder(list: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let mut rank_of: HashMap<String, usize> = HashMap::new();
    for (i, o) in order.iter().enumerate() {
        let ident = match key {
            Some(k) => match o.get(k) {
                Some(v) => id(v),
                None => continue,
            },
            None => id(o),
        };
        rank_of.entry(ident).or_insert(i);
    }
    let rank = |v: &Value| -> usize {
        let ident = match key {
            Some(k) => id(v.get(k).unwrap_or(&Value::Null)),
            None => id(v),
        };
        rank_of.get(&ident).copied().unwrap_or(usize::MAX)
    };
    let mut ranked: Vec<(usize, usize, Value)> = list
        .drain(..)
        .enumerate()
        .map(|(i, v)| (rank(&v), i, v))
        .collect();
    ranked.sort_by_key(|(r, i, _)| (*r, *i));
    list.extend(ranked.into_iter().map(|(_, _, v)| v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sa() -> Schema {
        builtin_schema("", "v1", "ServiceAccount").unwrap()
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let cm = builtin_schema("", "v1", "ConfigMap").unwrap();
        let out = apply(
            &json!({"data": {"a": "1", "b": "2"}}),
            &json!({"data": {"b": null, "c": "3"}}),
            &cm,
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"a": "1", "c": "3"}}));
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let role = builtin_schema("rbac.authorization.k8s.io", "v1", "Role").unwrap();
        let out = apply(
            &json!({"rules": [{"verbs": ["get"]}, {"verbs": ["list"]}]}),
            &json!({"rules": [{"verbs": ["watch"]}]}),
            &role,
        )
        .unwrap();
        assert_eq!(out["rules"], json!([{"verbs": ["watch"]}]));
    }

    #[test]
    fn lists_merge_by_key_with_delete_and_replace() {
        let orig =
            json!({"secrets": [{"name": "a", "x": 1}, {"name": "b", "x": 2}, {"name": "c"}]});
        let out = apply(&orig, &json!({"secrets": [{"name": "b", "y": 3}, {"name": "d"}, {"name": "c", "$patch": "delete"}]}), &sa()).unwrap();
        assert_eq!(
            out["secrets"],
            json!([{"name": "a", "x": 1}, {"name": "b", "x": 2, "y": 3}, {"name": "d"}])
        );
        let out = apply(
            &orig,
            &json!({"secrets": [{"name": "a", "$patch": "replace", "z": 9}]}),
            &sa(),
        )
        .unwrap();
        assert_eq!(out["secrets"][0], json!({"name": "a", "z": 9}));
        // a list-level replace directive
        let out = apply(
            &orig,
            &json!({"secrets": [{"$patch": "replace"}, {"name": "only"}]}),
            &sa(),
        )
        .unwrap();
        assert_eq!(out["secrets"], json!([{"name": "only"}]));
        // missing merge key
        assert!(apply(&orig, &json!({"secrets": [{"x": 1}]}), &sa()).is_err());
    }

    #[test]
    fn owner_references_and_finalizers() {
        let cm = builtin_schema("", "v1", "ConfigMap").unwrap();
        let orig = json!({"metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "1", "name": "x"}]}});
        let out = apply(&orig, &json!({"metadata": {"finalizers": ["c", "a"], "ownerReferences": [{"uid": "2", "name": "y"}]}}), &cm).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "x"}, {"uid": "2", "name": "y"}])
        );
        let out = apply(
            &orig,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            &cm,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn set_element_order_and_retain_keys() {
        let orig = json!({"secrets": [{"name": "a"}, {"name": "b"}, {"name": "c"}]});
        let out = apply(&orig, &json!({"$setElementOrder/secrets": [{"name": "c"}, {"name": "a"}], "secrets": [{"name": "c", "v": 1}]}), &sa()).unwrap();
        assert_eq!(
            out["secrets"],
            json!([{"name": "c", "v": 1}, {"name": "a"}, {"name": "b"}])
        );
        let out = apply(
            &json!({"spec": {"a": 1, "b": 2, "c": 3}}),
            &json!({"spec": {"$retainKeys": ["a", "d"], "d": 4}}),
            &Schema::object(),
        )
        .unwrap();
        assert_eq!(out["spec"], json!({"a": 1, "d": 4}));
    }

    #[test]
    fn map_directives() {
        let orig = json!({"data": {"a": "1"}, "other": {"x": 1}});
        let s = Schema::object();
        assert_eq!(
            apply(&orig, &json!({"data": {"$patch": "replace", "b": "2"}}), &s).unwrap()["data"],
            json!({"b": "2"})
        );
        assert!(apply(&orig, &json!({"data": {"$patch": "delete"}}), &s)
            .unwrap()
            .get("data")
            .is_none());
        assert!(apply(&orig, &json!({"data": {"$patch": "explode"}}), &s).is_err());
        assert!(apply(&orig, &json!({"$bogus": 1}), &s).is_err());
        assert!(apply(&orig, &json!([1]), &s).is_err());
    }

    fn strip_nulls(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip_nulls(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
            other => other.clone(),
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Without merge strategies or directives, strategic merge is JSON merge patch.
        #[test]
        fn without_strategies_it_is_a_merge_patch(orig in json_value(), patch in json_value()) {
            if let (Value::Object(_), Value::Object(_)) = (&orig, &patch) {
                let smp = apply(&orig, &patch, &Schema::object()).unwrap();
                let mp = crate::apply_merge_patch(&orig, &patch).unwrap();
                // merge patch keeps nulls nested in new values; strategic merge drops them like kube
                proptest::prop_assert_eq!(strip_nulls(&smp), strip_nulls(&mp));
            }
        }

        #[test]
        fn empty_patch_is_identity_and_patches_are_idempotent(orig in json_value(), patch in json_value()) {
            if let (Value::Object(_), Value::Object(_)) = (&orig, &patch) {
                let s = builtin_schema("", "v1", "ServiceAccount").unwrap();
                proptest::prop_assert_eq!(apply(&orig, &serde_json::json!({}), &s).unwrap(), orig.clone());
                if let Ok(once) = apply(&orig, &patch, &s) {
                    proptest::prop_assert_eq!(apply(&once, &patch, &s).unwrap(), once);
                }
                let m1 = crate::apply_merge_patch(&orig, &patch).unwrap();
                proptest::prop_assert_eq!(crate::apply_merge_patch(&m1, &patch).unwrap(), m1);
            }
        }

        #[test]
        fn never_panics(orig in json_value(), patch in json_value()) {
            let s = builtin_schema("", "v1", "Namespace").unwrap();
            let _ = apply(&orig, &patch, &s);
            let _ = crate::apply_json_patch(&orig, &patch);
        }
    }
}
