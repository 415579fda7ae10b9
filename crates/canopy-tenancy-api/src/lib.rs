//! kcp's tenancy kinds as typed structs, free of I/O (as `k8s-openapi` is for kube's).
//!
//! - [`tenancy`]: `tenancy.kcp.io/v1alpha1` [`Workspace`] and [`WorkspaceType`].
//! - [`core`]: `core.kcp.io/v1alpha1` [`LogicalCluster`] and [`Shard`].
//! - [`conditions`]: [`Phase`], [`Condition`] and its type, status and reason, as enums
//!   that keep values they do not know (`Other`).
//! - [`name`]: the validated [`LogicalClusterName`] and [`WorkspacePath`].
//!
//! Every struct keeps the fields it does not model (`extra`), and [`edit`] writes back
//! only what a change touched, so a read-modify-write never drops or reformats what a
//! newer client (or kcp) wrote.

pub mod conditions;
pub mod core;
pub mod name;
pub mod tenancy;

pub use crate::conditions::{
    Condition, ConditionReason, ConditionSeverity, ConditionStatus, ConditionType, Phase,
};
pub use crate::core::{
    LogicalCluster, LogicalClusterOwner, LogicalClusterSpec, LogicalClusterStatus, Shard,
    ShardSpec, ShardStatus,
};
pub use crate::name::{LogicalClusterName, NameError, WorkspacePath};
pub use crate::tenancy::{
    APIExportReference, Workspace, WorkspaceLocation, WorkspaceOwner, WorkspaceSpec,
    WorkspaceState, WorkspaceStatus, WorkspaceType, WorkspaceTypeExtension, WorkspaceTypeReference,
    WorkspaceTypeSelector, WorkspaceTypeSpec,
};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An object that is not of the kind it was read as (a field of the wrong JSON type).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(#[from] serde_json::Error);

/// Reads `v` as `T`.
pub fn from_value<T: DeserializeOwned>(v: &Value) -> Result<T, DecodeError> {
    Ok(T::deserialize(v)?)
}

/// Writes `t` as JSON.
pub fn to_value<T: Serialize>(t: &T) -> Value {
    // the kinds here serialize to JSON objects only (string keys, no floats that fail)
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// Applies `f` to `original` read as `T`, and returns `original` with exactly the
/// fields `f` changed written back (all else, unknown fields and formatting included,
/// stays as it was), with `f`'s result.
pub fn edit<T, R>(original: &Value, f: impl FnOnce(&mut T) -> R) -> Result<(Value, R), DecodeError>
where
    T: DeserializeOwned + Serialize + Clone,
{
    let before: T = from_value(original)?;
    let mut after = before.clone();
    let r = f(&mut after);
    let mut out = original.clone();
    merge_changes(&mut out, &to_value(&before), &to_value(&after));
    Ok((out, r))
}

/// Writes the difference between `before` and `after` into `target` (which `before`
/// was read from), object key by object key.
fn merge_changes(target: &mut Value, before: &Value, after: &Value) {
    if before == after {
        return;
    }
    let (Value::Object(b), Value::Object(a), Value::Object(t)) = (before, after, &mut *target)
    else {
        *target = after.clone();
        return;
    };
    for (k, bv) in b {
        match a.get(k) {
            None => {
                t.remove(k);
            }
            Some(av) if av == bv => {}
            Some(av) => match t.get_mut(k) {
                Some(tv) => merge_changes(tv, bv, av),
                None => {
                    t.insert(k.clone(), av.clone());
                }
            },
        }
    }
    for (k, av) in a {
        if !b.contains_key(k) {
            t.insert(k.clone(), av.clone());
        }
    }
}

/// Deserializes `null` (and absence, with `#[serde(default)]`) as the default; for the
/// fields of every kcp kind's typed struct (here and in `canopy-apis-api`).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn workspace() -> Value {
        json!({
            "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "a", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00.123456Z",
                "annotations": {"x": "1"}, "futureMeta": {"k": 1}},
            "spec": {"type": {"name": "universal", "path": "root", "future": true},
                "cluster": "abc", "URL": "https://x/clusters/root:a", "mount": {"ref": {"kind": "K"}}},
            "status": {"phase": "Initializing", "initializers": ["root:t"],
                "conditions": [{"type": "WorkspaceScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z", "severity": "Info"}],
                "newerField": [1, 2]},
            "topLevelFuture": "kept",
        })
    }

    #[test]
    fn workspace_reads_every_field() {
        let ws: Workspace = from_value(&workspace()).unwrap();
        assert_eq!(ws.name(), "a");
        assert_eq!(ws.cluster(), Some("abc"));
        assert!(ws.is_phase(Phase::Initializing));
        assert_eq!(ws.type_or_default().qualified(), "root:universal");
        assert_eq!(ws.status.initializers, vec!["root:t"]);
        assert_eq!(
            ws.status.conditions[0].type_,
            ConditionType::WorkspaceScheduled
        );
        assert_eq!(ws.spec.extra["mount"], json!({"ref": {"kind": "K"}}));
        assert_eq!(ws.extra["topLevelFuture"], json!("kept"));
    }

    #[test]
    fn untouched_edit_is_identity() {
        let v = workspace();
        let (out, ()) = edit(&v, |_: &mut Workspace| {}).unwrap();
        assert_eq!(out, v);
        // a plain serde round trip keeps every field too (the time's fraction aside,
        // which metav1.Time does not keep)
        let ws: Workspace = from_value(&v).unwrap();
        let back = to_value(&ws);
        assert_eq!(back["spec"], v["spec"]);
        assert_eq!(back["status"], v["status"]);
        assert_eq!(back["topLevelFuture"], v["topLevelFuture"]);
    }

    #[test]
    fn edit_writes_only_the_change() {
        let v = workspace();
        let (out, ()) = edit(&v, |ws: &mut Workspace| {
            ws.status.phase = Some(Phase::Ready);
            ws.status.initializers.clear();
            tenancy::set_annotation(&mut ws.metadata, "y", "2");
        })
        .unwrap();
        let mut want = v.clone();
        want["status"]["phase"] = json!("Ready");
        want["status"]
            .as_object_mut()
            .unwrap()
            .remove("initializers");
        want["metadata"]["annotations"]["y"] = json!("2");
        assert_eq!(out, want);
        // the creation time keeps its fraction, the unknown metadata field stays
        assert_eq!(
            out["metadata"]["creationTimestamp"],
            json!("2026-01-01T00:00:00.123456Z")
        );
        assert_eq!(out["metadata"]["futureMeta"], json!({"k": 1}));
    }

    #[test]
    fn wrong_types_are_errors_and_nulls_are_defaults() {
        assert!(from_value::<Workspace>(&json!({"spec": {"cluster": 5}})).is_err());
        assert!(from_value::<Workspace>(&json!({"spec": {"type": "x"}})).is_err());
        assert!(
            from_value::<WorkspaceType>(&json!({"spec": {"extend": {"with": [{"name": 1}]}}}))
                .is_err()
        );
        let ws: Workspace =
            from_value(&json!({"spec": null, "status": null, "metadata": null})).unwrap();
        assert_eq!(ws.spec, WorkspaceSpec::default());
        let t: WorkspaceType = from_value(
            &json!({"spec": {"extend": {"with": null}, "limitAllowedParents": {"types": null}}}),
        )
        .unwrap();
        assert!(t.spec.extend.with.is_empty());
    }

    #[test]
    fn logical_cluster_and_shard() {
        let lc = json!({"apiVersion": "core.kcp.io/v1alpha1", "kind": "LogicalCluster",
            "metadata": {"name": "cluster", "annotations": {"kcp.io/path": "root:a"}},
            "spec": {"owner": {"apiVersion": "tenancy.kcp.io/v1alpha1", "resource": "workspaces", "name": "a", "cluster": "root", "uid": "u"},
                "initializers": ["root:t"], "directlyDeletable": true},
            "status": {"phase": "Ready", "URL": "https://x", "initializers": []}});
        let l: LogicalCluster = from_value(&lc).unwrap();
        assert_eq!(l.spec.owner.as_ref().unwrap().uid, "u");
        assert!(l.spec.directly_deletable && l.is_phase(Phase::Ready));
        assert_eq!(l.annotation("kcp.io/path"), Some("root:a"));
        let (out, ()) = edit(&lc, |_: &mut LogicalCluster| {}).unwrap();
        assert_eq!(out, lc);
        let s: Shard = from_value(&json!({"metadata": {"name": "s1", "labels": {"region": "eu"}},
            "spec": {"baseURL": "https://s1", "externalURL": "https://p", "virtualWorkspaceURL": "https://v"}})).unwrap();
        assert_eq!(
            (
                s.name(),
                s.spec.base_url.as_str(),
                s.spec.virtual_workspace_url.as_str()
            ),
            ("s1", "https://s1", "https://v")
        );
    }

    #[test]
    fn workspace_type_fields() {
        let v = json!({"metadata": {"name": "org"}, "spec": {"initializer": true,
            "extend": {"with": [{"name": "universal", "path": "root"}]},
            "defaultChildWorkspaceType": {"name": "universal", "path": "root"},
            "limitAllowedChildren": {"types": [{"name": "team", "path": "root"}]},
            "limitAllowedParents": {"none": true},
            "additionalWorkspaceLabels": {"a": "b"},
            "defaultAPIBindings": [{"path": "root", "export": "e"}]}});
        let t: WorkspaceType = from_value(&v).unwrap();
        assert!(t.spec.initializer);
        assert_eq!(t.spec.extend.with[0].qualified(), "root:universal");
        assert!(t.spec.limit_allowed_parents.as_ref().unwrap().none);
        assert_eq!(t.spec.default_api_bindings[0].export, "e");
        assert_eq!(to_value(&t)["spec"], v["spec"]);
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("[a-z]{1,5}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever unknown fields a Workspace carries (anywhere kcp's types have none),
        /// an edit that changes nothing gives the object back unchanged, and one that
        /// sets the phase changes only the phase.
        #[test]
        fn edits_never_lose_unknown_fields(
            top in proptest::collection::btree_map("x[a-z]{1,5}", json_value(), 0..3),
            spec in proptest::collection::btree_map("x[a-z]{1,5}", json_value(), 0..3),
            status in proptest::collection::btree_map("x[a-z]{1,5}", json_value(), 0..3),
            meta in proptest::collection::btree_map("x[a-z]{1,5}", json_value(), 0..3),
        ) {
            let mut v = workspace();
            for (k, x) in top { v[k] = x; }
            for (k, x) in spec { v["spec"][k] = x; }
            for (k, x) in status { v["status"][k] = x; }
            for (k, x) in meta { v["metadata"][k] = x; }
            let (same, ()) = edit(&v, |_: &mut Workspace| {}).unwrap();
            prop_assert_eq!(&same, &v);
            let (out, ()) = edit(&v, |ws: &mut Workspace| ws.status.phase = Some(Phase::Ready)).unwrap();
            let mut want = v.clone();
            want["status"]["phase"] = json!("Ready");
            prop_assert_eq!(out, want);
        }
    }
}
