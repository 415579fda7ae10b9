//! kcp's tenancy API: `Workspace` (a child logical cluster, living in its parent) and
//! `WorkspaceType`. The workspace controller in [`crate::controllers`] schedules a
//! workspace onto this shard, creates its logical cluster and binds its owner as admin.

use canopy_core::{ApiError, Cause};
use serde_json::{json, Value};

use super::table::{age_column, Column};
use super::{AdmissionContext, Strategy};

pub const LOGICAL_CLUSTER_FINALIZER: &str = "core.kcp.io/logicalcluster";
pub const OWNER_ANNOTATION: &str = "experimental.tenancy.kcp.io/owner";
pub const CLUSTER_ANNOTATION: &str = "internal.tenancy.kcp.io/cluster";
pub const PATH_ANNOTATION: &str = "kcp.io/path";
pub const WORKSPACES: &str = "tenancy.kcp.io/workspaces";
pub const WORKSPACE_TYPES: &str = "tenancy.kcp.io/workspacetypes";

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

pub struct WorkspaceStrategy;

impl Strategy for WorkspaceStrategy {
    fn admit(&self, obj: &mut Value, ctx: &AdmissionContext<'_>) -> Result<(), ApiError> {
        // the type defaults to the parent's default child type
        if s(obj, "/spec/type/name").is_empty() {
            let default = if ctx.cluster_path == "root" {
                "organization"
            } else {
                "universal"
            };
            obj["spec"]["type"] = json!({"name": default, "path": "root"});
        }
        if s(obj, "/spec/type/path").is_empty() {
            obj["spec"]["type"]["path"] = json!("root");
        }
        let type_name = s(obj, "/spec/type/name").to_string();
        let type_path = s(obj, "/spec/type/path").to_string();
        let Some(wt) = ctx.workspace_type(&type_path, &type_name) else {
            return Err(ApiError::invalid(
                "Workspace",
                "tenancy.kcp.io",
                canopy_core::meta::name(obj),
                vec![Cause::invalid(
                    "spec.type",
                    &json!(format!("{type_path}:{type_name}")),
                    "workspace type does not exist",
                )],
            ));
        };
        // limitAllowedParents of the child's type, limitAllowedChildren of the parent's
        if let Some(parents) = wt
            .pointer("/spec/limitAllowedParents/types")
            .and_then(Value::as_array)
        {
            let parent = ctx
                .parent_type
                .clone()
                .unwrap_or_else(|| ("root".into(), "root".into()));
            if !parents.iter().any(|p| {
                s(p, "/name") == parent.1 && (s(p, "/path").is_empty() || s(p, "/path") == parent.0)
            }) {
                return Err(ApiError::invalid(
                    "Workspace",
                    "tenancy.kcp.io",
                    canopy_core::meta::name(obj),
                    vec![Cause::invalid(
                        "spec.type",
                        &json!(format!("{type_path}:{type_name}")),
                        &format!("workspace type {type_path}:{type_name} only allows parents of types {}", type_list(parents)),
                    )],
                ));
            }
        }
        if let Some(children) = ctx
            .parent_type_object
            .as_ref()
            .and_then(|p| p.pointer("/spec/limitAllowedChildren/types"))
            .and_then(Value::as_array)
        {
            if !children.iter().any(|c| {
                s(c, "/name") == type_name
                    && (s(c, "/path").is_empty() || s(c, "/path") == type_path)
            }) {
                return Err(ApiError::invalid(
                    "Workspace",
                    "tenancy.kcp.io",
                    canopy_core::meta::name(obj),
                    vec![Cause::invalid(
                        "spec.type",
                        &json!(format!("{type_path}:{type_name}")),
                        &format!(
                            "parent workspace only allows children of types {}",
                            type_list(children)
                        ),
                    )],
                ));
            }
        }
        let owner =
            json!({"username": ctx.user.name, "uid": ctx.user.uid, "groups": ctx.user.groups});
        let meta = canopy_core::meta::metadata_mut(obj);
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = ann.as_object_mut() {
            a.insert(OWNER_ANNOTATION.into(), json!(owner.to_string()));
        }
        Ok(())
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Scheduling"});
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("cluster");
            spec.remove("URL");
        }
        let meta = canopy_core::meta::metadata_mut(obj);
        let fins = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(a) = fins.as_array_mut() {
            if !a.iter().any(|f| f == LOGICAL_CLUSTER_FINALIZER) {
                a.push(json!(LOGICAL_CLUSTER_FINALIZER));
            }
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // the system owns spec.cluster and spec.URL
        for f in ["cluster", "URL"] {
            match old.pointer(&format!("/spec/{f}")) {
                Some(v) => new["spec"][f] = v.clone(),
                None => {
                    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove(f);
                    }
                }
            }
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        if new.pointer("/spec/type") != old.pointer("/spec/type") {
            causes.push(Cause::invalid(
                "spec.type",
                new.pointer("/spec/type").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("Type", "string", "Type of the workspace", |o| {
                json!(s(o, "/spec/type/name"))
            }),
            Column::new("Region", "string", "The region this workspace is in", |o| {
                json!(o
                    .pointer("/metadata/labels/region")
                    .and_then(Value::as_str)
                    .unwrap_or(""))
            }),
            Column::new(
                "Phase",
                "string",
                "The current phase (e.g. Scheduling, Initializing, Ready, Deleting)",
                |o| json!(s(o, "/status/phase")),
            ),
            Column::new("URL", "string", "URL to access the workspace", |o| {
                json!(s(o, "/spec/URL"))
            }),
            age_column(),
        ]
    }
}

fn type_list(types: &[Value]) -> String {
    types
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                if s(t, "/path").is_empty() {
                    "root"
                } else {
                    s(t, "/path")
                },
                s(t, "/name")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub struct WorkspaceTypeStrategy;

impl Strategy for WorkspaceTypeStrategy {
    fn columns(&self) -> Vec<Column> {
        vec![age_column()]
    }
}

/// The built-in workspace types, created in `root`.
pub fn builtin_workspace_types() -> Vec<Value> {
    let t = |name: &str, spec: Value| json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType", "metadata": {"name": name}, "spec": spec});
    let r = |name: &str| json!({"name": name, "path": "root"});
    vec![
        t(
            "root",
            json!({"defaultChildWorkspaceType": r("organization")}),
        ),
        t(
            "universal",
            json!({"defaultChildWorkspaceType": r("universal")}),
        ),
        t(
            "organization",
            json!({"defaultChildWorkspaceType": r("universal"), "limitAllowedParents": {"types": [r("root")]}}),
        ),
        t(
            "team",
            json!({"defaultChildWorkspaceType": r("universal"), "limitAllowedParents": {"types": [r("organization"), r("team")]}}),
        ),
        t(
            "homeroot",
            json!({"limitAllowedChildren": {"types": [r("homebucket"), r("home")]}, "limitAllowedParents": {"types": [r("root")]}}),
        ),
        t(
            "homebucket",
            json!({"limitAllowedParents": {"types": [r("homeroot"), r("homebucket")]}}),
        ),
        t("home", json!({"defaultChildWorkspaceType": r("universal")})),
    ]
}
