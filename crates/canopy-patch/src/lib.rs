//! The three patch formats of the Kubernetes API, as pure functions over JSON values.
//!
//! - [`apply_json_patch`]: RFC 6902 (`application/json-patch+json`), via the `json-patch`
//!   crate.
//! - [`apply_merge_patch`]: RFC 7386 (`application/merge-patch+json`).
//! - [`strategic::apply`]: strategic merge patch (`application/strategic-merge-patch+json`),
//!   kube's own format, where lists merge by a key and directives (`$patch`,
//!   `$retainKeys`, `$deleteFromPrimitiveList/…`, `$setElementOrder/…`) steer the
//!   merge. How each field merges comes from a [`strategic::Schema`]: the built-in kinds'
//!   schemas mirror the `patchStrategy`/`patchMergeKey` tags of their Go types.
//!
//! Nothing here panics on any input (property-tested and fuzzed).

pub mod strategic;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    #[error("{0}")]
    JsonPatch(String),
    #[error("{0}")]
    Strategic(String),
}

/// Applies an RFC 6902 JSON patch (an array of operations).
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| PatchError::JsonPatch(e.to_string()))?;
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes,
/// anything else replaces.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
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
        assert_eq!(apply_merge_patch(&doc, &json!("x")).unwrap(), json!("x"));
    }
}
