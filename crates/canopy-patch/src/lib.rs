//! The three patch formats of the Kubernetes API, as pure functions over JSON values,
//! with the semantics and limits of kube-apiserver.
//!
//! - [`apply_json_patch`]: RFC 6902 (`application/json-patch+json`) as kube applies it
//!   (evanphx/json-patch v4: `test` of a missing key against `null` succeeds, negative
//!   indexes, …), see [`json_patch`].
//! - [`apply_merge_patch`]: RFC 7386 (`application/merge-patch+json`), as evanphx's
//!   `MergePatch` (nulls inside new values are dropped; a patch that is not an object
//!   or an array is refused).
//! - [`strategic::apply`]: strategic merge patch (`application/strategic-merge-patch+json`),
//!   kube's own format, where lists merge by a key and directives (`$patch`,
//!   `$retainKeys`, `$deleteFromPrimitiveList/…`, `$setElementOrder/…`) steer the
//!   merge. How each field merges comes from a [`strategic::Schema`]: the built-in kinds'
//!   schemas mirror the `patchStrategy`/`patchMergeKey` tags of their Go types.
//!
//! Every function takes [`Limits`] (the `_with` variants; the others use
//! [`Limits::default`]): the size and nesting of the result, the number of JSON patch
//! operations, the bytes copied by `copy` operations, and the work done. No input can
//! make them recurse deeper than [`Limits::max_nesting`], use memory beyond
//! [`Limits::max_result_bytes`] (plus the inputs), or work beyond
//! [`Limits::max_work`]. Nothing here panics on any input (property-tested and
//! fuzzed: `fuzz/`).

pub mod json_patch;
pub mod measure;
pub mod strategic;

use serde_json::{Map, Value};

/// kube's `maxJSONPatchOperations`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// kube's `JSONPatchMaxCopyBytes` (evanphx's `AccumulatedCopySizeLimit`): 3 MiB.
pub const MAX_COPY_BYTES: u64 = 3 * 1024 * 1024;
/// The default result limit: kube's request body limit (3 MiB). Callers pass their
/// storage limit.
pub const MAX_RESULT_BYTES: u64 = 3 * 1024 * 1024;
/// Containers nested in a patched object: what serde_json (and so a request body)
/// allows, so that a patched object can always be read back.
pub const MAX_NESTING: usize = 127;
/// Units of work (values visited, elements shifted) one patch may take: about a
/// second of CPU in a debug build, far more than any patch of a real client needs.
pub const MAX_WORK: u64 = 50_000_000;

/// Limits of one patch application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Operations of a JSON patch ([`MAX_JSON_PATCH_OPERATIONS`]).
    pub max_operations: usize,
    /// Bytes all `copy` operations of a JSON patch may copy together
    /// ([`MAX_COPY_BYTES`]; 0: no limit).
    pub max_copy_bytes: u64,
    /// Size of the patched document, serialized ([`MAX_RESULT_BYTES`]); checked at
    /// every step of a JSON patch.
    pub max_result_bytes: u64,
    /// Containers nested in the inputs and the result ([`MAX_NESTING`]).
    pub max_nesting: usize,
    /// Work units ([`MAX_WORK`]).
    pub max_work: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: MAX_JSON_PATCH_OPERATIONS,
            max_copy_bytes: MAX_COPY_BYTES,
            max_result_bytes: MAX_RESULT_BYTES,
            max_nesting: MAX_NESTING,
            max_work: MAX_WORK,
        }
    }
}

impl Limits {
    /// The default limits with `max_result_bytes` (a storage limit).
    pub fn with_max_result_bytes(max_result_bytes: u64) -> Self {
        Limits {
            max_result_bytes,
            ..Limits::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch is not a list of operations (kube: 400).
    #[error("{0}")]
    InvalidJsonPatch(String),
    /// More operations than [`Limits::max_operations`] (kube: 413).
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations { max: usize, got: usize },
    /// An operation failed (kube: 422), evanphx's message.
    #[error("{0}")]
    JsonPatch(String),
    /// `copy` operations copied more than [`Limits::max_copy_bytes`] (kube: 422).
    #[error("Unable to complete the copy, the accumulated size increase of copy is {accumulated}, exceeding the limit {limit}")]
    CopySizeExceeded { limit: u64, accumulated: u64 },
    /// A merge patch that is neither an object nor an array (kube: 400).
    #[error("Invalid JSON Patch")]
    InvalidMergePatch,
    /// The patched document would be larger than [`Limits::max_result_bytes`].
    #[error("the patched object would exceed the limit of {limit} bytes")]
    ResultTooLarge { limit: u64 },
    /// An input or the result nests containers deeper than [`Limits::max_nesting`].
    #[error("the object would nest more than {limit} levels of objects and arrays")]
    TooDeep { limit: usize },
    /// Applying would take more than [`Limits::max_work`] units of work.
    #[error("the patch takes more work than the {limit} units allowed")]
    TooComplex { limit: u64 },
    #[error("{0}")]
    Strategic(String),
}

/// Applies an RFC 6902 JSON patch (an array of operations) under the default limits.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    json_patch::apply(doc, patch, &Limits::default())
}

/// Applies an RFC 6902 JSON patch under `limits`.
pub fn apply_json_patch_with(
    doc: &Value,
    patch: &Value,
    limits: &Limits,
) -> Result<Value, PatchError> {
    json_patch::apply(doc, patch, limits)
}

/// Applies an RFC 7386 JSON merge patch under the default limits.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    apply_merge_patch_with(doc, patch, &Limits::default())
}

/// Checks the nesting of inputs before anything recurses on them.
pub(crate) fn check_inputs(values: &[&Value], limits: &Limits) -> Result<(), PatchError> {
    let mut work = 0u64;
    for v in values {
        let m = measure::measure(v);
        work = work.saturating_add(m.nodes);
        if m.nesting > limits.max_nesting {
            return Err(PatchError::TooDeep {
                limit: limits.max_nesting,
            });
        }
    }
    if work > limits.max_work {
        return Err(PatchError::TooComplex {
            limit: limits.max_work,
        });
    }
    Ok(())
}

/// Checks the size of a result.
pub(crate) fn check_result(v: &Value, limits: &Limits) -> Result<(), PatchError> {
    let m = measure::measure(v);
    if m.bytes > limits.max_result_bytes {
        return Err(PatchError::ResultTooLarge {
            limit: limits.max_result_bytes,
        });
    }
    if m.nesting > limits.max_nesting {
        return Err(PatchError::TooDeep {
            limit: limits.max_nesting,
        });
    }
    Ok(())
}

/// Applies an RFC 7386 JSON merge patch as evanphx's `MergePatch` (which kube uses):
/// objects merge recursively, `null` deletes, anything else replaces; nulls inside
/// values that replace or add are dropped; a patch that is not an object or array is
/// refused ([`PatchError::InvalidMergePatch`]).
pub fn apply_merge_patch_with(
    doc: &Value,
    patch: &Value,
    limits: &Limits,
) -> Result<Value, PatchError> {
    check_inputs(&[doc, patch], limits)?;
    let out = match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => Value::Object(merge_docs(d.clone(), p)),
        (_, Value::Object(_) | Value::Array(_)) => pruned(patch),
        _ => return Err(PatchError::InvalidMergePatch),
    };
    check_result(&out, limits)?;
    Ok(out)
}

/// evanphx's `mergeDocs`: linear in the sizes of both maps.
fn merge_docs(mut doc: Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut deleted = std::collections::HashSet::new();
    for (k, v) in patch {
        if v.is_null() {
            deleted.insert(k.as_str());
            continue;
        }
        match doc.get_mut(k) {
            None | Some(Value::Null) => {
                doc.insert(k.clone(), pruned(v));
            }
            Some(cur) => {
                let merged = match (std::mem::take(cur), v) {
                    (Value::Object(c), Value::Object(p)) => Value::Object(merge_docs(c, p)),
                    (Value::Object(_), p) => p.clone(),
                    (_, p) => pruned(p),
                };
                *cur = merged;
            }
        }
    }
    if !deleted.is_empty() {
        doc.retain(|k, _| !deleted.contains(k.as_str()));
    }
    doc
}

/// A copy of `v` without null values of objects (evanphx's `pruneNulls`; nulls in
/// arrays stay). Recursion is bounded by the nesting checked beforehand.
fn pruned(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), pruned(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_ops() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
        let out = apply_json_patch(
            &doc,
            &json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "test", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "remove", "path": "/a/b/0"},
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {"b": [2, 3]}, "c": "y", "d": "y"}));
        assert!(matches!(
            apply_json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])),
            Err(PatchError::JsonPatch(_))
        ));
        assert!(matches!(
            apply_json_patch(&doc, &json!([{"op": "test", "path": "/c", "value": "z"}])),
            Err(PatchError::JsonPatch(_))
        ));
        assert!(matches!(
            apply_json_patch(&doc, &json!({"op": "add"})),
            Err(PatchError::InvalidJsonPatch(_))
        ));
        assert_eq!(apply_json_patch(&doc, &json!([])).unwrap(), doc);
    }

    #[test]
    fn merge_patch_rfc7386() {
        let doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        assert_eq!(
            apply_merge_patch(&doc, &json!({"a": "z", "c": {"f": null}})).unwrap(),
            json!({"a": "z", "c": {"d": "e"}})
        );
        assert_eq!(
            apply_merge_patch(&doc, &json!({"c": [1]})).unwrap(),
            json!({"a": "b", "c": [1]})
        );
        // evanphx drops nulls inside new values, keeps them in arrays
        assert_eq!(
            apply_merge_patch(&doc, &json!({"n": {"x": null, "y": [null, {"z": null}]}})).unwrap()
                ["n"],
            json!({"y": [null, {}]})
        );
        // kube refuses patches that are not objects (400 "Invalid JSON Patch")
        assert_eq!(
            apply_merge_patch(&doc, &json!("x")),
            Err(PatchError::InvalidMergePatch)
        );
        assert_eq!(
            apply_merge_patch(&doc, &json!(null)),
            Err(PatchError::InvalidMergePatch)
        );
    }

    #[test]
    fn merge_patch_limits() {
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!({ "a": deep });
        }
        assert_eq!(
            apply_merge_patch(&json!({}), &deep),
            Err(PatchError::TooDeep { limit: MAX_NESTING })
        );
        let big = json!({"x": "y".repeat(4 << 20)});
        assert_eq!(
            apply_merge_patch(&json!({}), &big),
            Err(PatchError::ResultTooLarge { limit: 3 << 20 })
        );
        // deleting many keys of a large object stays linear
        let doc = Value::Object((0..100_000).map(|i| (format!("k{i}"), json!(i))).collect());
        let patch = Value::Object(
            (0..100_000)
                .map(|i| (format!("k{i}"), Value::Null))
                .collect(),
        );
        assert_eq!(apply_merge_patch(&doc, &patch).unwrap(), json!({}));
    }
}
