//! kcp's tenancy API: `Workspace` (a child logical cluster, living in its parent) and
//! `WorkspaceType`. The workspace controller in [`canopy_apiserver::controllers`] schedules a
//! workspace onto this shard, creates its logical cluster and binds its owner as admin.

use canopy_core::{ApiError, Cause};
use canopy_tenancy_api::tenancy::set_annotation;
use canopy_tenancy_api::{
    self as tapi, Phase, Workspace, WorkspaceOwner, WorkspaceState, WorkspaceStatus, WorkspaceType,
    WorkspaceTypeExtension, WorkspaceTypeReference, WorkspaceTypeSelector, WorkspaceTypeSpec,
};
use serde_json::{json, Value};

use canopy_apiserver::registry::builtin::str_at;
use canopy_apiserver::registry::table::{age_column, Column};
use canopy_apiserver::registry::{AdmissionContext, Strategy};

pub(crate) const LOGICAL_CLUSTER_FINALIZER: &str = "core.kcp.io/logicalcluster";
pub(crate) const OWNER_ANNOTATION: &str = "experimental.tenancy.kcp.io/owner";
pub const CLUSTER_ANNOTATION: &str = "internal.tenancy.kcp.io/cluster";
pub const PATH_ANNOTATION: &str = "kcp.io/path";
pub(crate) const WORKSPACES: &str = "tenancy.kcp.io/workspaces";
pub(crate) const WORKSPACE_TYPES: &str = "tenancy.kcp.io/workspacetypes";

/// A workspace type, with the workspace it lives in.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedType {
    /// Path of the workspace holding the type (`root`).
    pub path: String,
    /// Logical cluster name of that workspace.
    pub cluster: String,
    pub name: String,
    pub object: WorkspaceType,
}

impl ResolvedType {
    /// `root:organization`.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.path, self.name)
    }

    /// The initializer this type adds to new workspaces when `spec.initializer` is set:
    /// kcp's `<logical cluster>:<type name>`.
    pub fn initializer(&self) -> Option<String> {
        self.object
            .spec
            .initializer
            .then(|| format!("{}:{}", self.cluster, self.name))
    }
}

/// Where workspace types are looked up: this shard's store, then a mirror of root's
/// types for shards that do not hold `root`.
#[derive(Clone, Copy)]
pub struct Types<'a> {
    pub store: &'a canopy_storage::Store,
    /// `root:<name>` → WorkspaceType, copied from root's shard.
    pub mirror: &'a std::collections::HashMap<String, Value>,
}

/// The WorkspaceType `name` in the workspace at `path` (a path or a logical cluster name).
pub(crate) fn get_type(types: Types<'_>, path: &str, name: &str) -> Option<ResolvedType> {
    let store = types.store;
    let Some(cluster) = crate::workspaces::resolve(store, path) else {
        if path == "root" {
            return types
                .mirror
                .get(&format!("root:{name}"))
                .and_then(|o| tapi::from_value(o).ok())
                .map(|object| ResolvedType {
                    path: "root".into(),
                    cluster: "root".into(),
                    name: name.to_string(),
                    object,
                });
        }
        return None;
    };
    let o = store.get(&canopy_storage::ObjectKey::new(
        WORKSPACE_TYPES,
        &cluster,
        "",
        name,
    ))?;
    Some(ResolvedType {
        path: crate::workspaces::path_of(store, &cluster),
        cluster,
        name: name.to_string(),
        object: tapi::from_value(&o.value).ok()?,
    })
}

/// Resolves a type reference made in workspace `workspace_path`: an explicit path, or else
/// the nearest workspace up the hierarchy holding a type of that name, then `root`.
pub(crate) fn resolve_type_ref(
    store: Types<'_>,
    workspace_path: &str,
    path: &str,
    name: &str,
) -> Result<ResolvedType, String> {
    if !path.is_empty() {
        return get_type(store, path, name)
            .ok_or_else(|| format!("workspace type {path}:{name} does not exist"));
    }
    let mut cur = workspace_path.to_string();
    loop {
        if let Some(t) = get_type(store, &cur, name) {
            return Ok(t);
        }
        let parent = tapi::WorkspacePath::new(cur.as_str())
            .ok()
            .and_then(|p| p.parent());
        match parent {
            Some(parent) => cur = parent.to_string(),
            None if cur != "root" => cur = "root".to_string(),
            None => return Err(format!("workspace type {name:?} cannot be resolved")),
        }
    }
}

/// The types `t` extends (`spec.extend.with`, transitively), then `t` itself: kcp's
/// "aliases" of a type. A cycle is an error.
pub fn aliases(store: Types<'_>, t: &ResolvedType) -> Result<Vec<ResolvedType>, String> {
    fn walk(
        store: Types<'_>,
        t: &ResolvedType,
        seen: &mut Vec<String>,
        stack: &mut Vec<String>,
        out: &mut Vec<ResolvedType>,
    ) -> Result<(), String> {
        let q = t.qualified();
        seen.push(q.clone());
        stack.push(q);
        for base in &t.object.spec.extend.with {
            let (bp, bn) = (base.path.as_str(), base.name.as_str());
            let bq = format!("{bp}:{bn}");
            if let Some(i) = stack.iter().position(|x| *x == bq) {
                return Err(format!(
                    "circular dependency detected in workspace type {bq}: {}",
                    stack.get(i..).unwrap_or_default().join(" -> ")
                ));
            }
            if seen.contains(&bq) {
                continue;
            }
            let b = get_type(store, bp, bn)
                .ok_or_else(|| format!("unable to find inherited workspace type {bq}"))?;
            out.push(b.clone());
            walk(store, &b, seen, stack, out)?;
        }
        stack.pop();
        Ok(())
    }
    let mut out = Vec::new();
    walk(store, t, &mut Vec::new(), &mut Vec::new(), &mut out)?;
    out.push(t.clone());
    Ok(out)
}

/// The initializers a workspace of a type with these aliases starts with.
pub fn initializers(aliases: &[ResolvedType]) -> Vec<String> {
    let mut out: Vec<String> = aliases
        .iter()
        .filter_map(ResolvedType::initializer)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn sorted_names(it: impl Iterator<Item = String>) -> String {
    let mut v: Vec<String> = it.collect();
    v.sort();
    v.dedup();
    format!("[{}]", v.join(" "))
}

fn ref_names(types: &[WorkspaceTypeReference]) -> impl Iterator<Item = String> + '_ {
    types.iter().map(|t| format!("{}:{}", t.path, t.name))
}

/// kcp's `limitAllowedParents` / `limitAllowedChildren` checks over both sides' aliases.
fn check_limits(
    parent: &[ResolvedType],
    child: &[ResolvedType],
    parent_type: &str,
    child_type: &str,
) -> Result<(), String> {
    let mut errs = Vec::new();
    let implements = |aliases: &[ResolvedType], allowed: &[WorkspaceTypeReference]| {
        let allowed: Vec<String> = ref_names(allowed).collect();
        aliases.iter().any(|a| allowed.contains(&a.qualified()))
    };
    for c in child {
        let Some(limit) = &c.object.spec.limit_allowed_parents else {
            continue;
        };
        if limit.none {
            errs.push(format!(
                "workspace type {child_type} cannot be created as a child of any workspace"
            ));
            continue;
        }
        let allowed = &limit.types;
        if allowed.is_empty() {
            continue;
        }
        if !implements(parent, allowed) {
            let extending = if c.qualified() != child_type {
                format!(" extends {}, which", c.qualified())
            } else {
                String::new()
            };
            errs.push(format!(
                "workspace type {child_type}{extending} only allows {} parent workspaces, but parent type {parent_type} only implements {}",
                sorted_names(ref_names(allowed)),
                sorted_names(parent.iter().map(ResolvedType::qualified))
            ));
        }
    }
    // kcp reports the parent limits first, and the child limits only when those pass
    if !errs.is_empty() {
        return Err(canopy_field::aggregate_texts(errs));
    }
    for p in parent {
        let Some(limit) = &p.object.spec.limit_allowed_children else {
            continue;
        };
        if limit.none {
            errs.push(format!(
                "workspace type {parent_type} cannot have any children"
            ));
            continue;
        }
        let allowed = &limit.types;
        if allowed.is_empty() {
            continue;
        }
        if !implements(child, allowed) {
            let extending = if p.qualified() != parent_type {
                format!(" extends {}, which", p.qualified())
            } else {
                String::new()
            };
            errs.push(format!(
                "workspace type {parent_type}{extending} only allows {} child workspaces, but child type {child_type} only implements {}",
                sorted_names(ref_names(allowed)),
                sorted_names(child.iter().map(ResolvedType::qualified))
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(canopy_field::aggregate_texts(errs))
    }
}

pub(crate) struct WorkspaceStrategy;

/// A Workspace's spec and status for a table row (an object of the wrong shape shows
/// empty cells).
fn state(o: &Value) -> WorkspaceState {
    tapi::from_value(o).unwrap_or_default()
}

/// Refuses an object whose fields have the wrong JSON types, as kube's decoder does
/// (400 `<Kind> in version "v1alpha1" cannot be handled as a <Kind>: ...`).
fn check_shape<T: serde::de::DeserializeOwned>(kind: &str, obj: &Value) -> Result<T, ApiError> {
    tapi::from_value(obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"v1alpha1\" cannot be handled as a {kind}: {e}"
        ))
    })
}

/// Edits a Workspace being written (`f` sees it typed; only what it changes is written).
fn edit_workspace<R>(obj: &mut Value, f: impl FnOnce(&mut Workspace) -> R) -> Result<R, ApiError> {
    let (new, r) = tapi::edit(obj, f).map_err(|e| {
        ApiError::bad_request(format!(
            "Workspace in version \"v1alpha1\" cannot be handled as a Workspace: {e}"
        ))
    })?;
    *obj = new;
    Ok(r)
}

impl Strategy for WorkspaceStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        check_shape::<Workspace>("Workspace", &obj)?;
        Ok((obj, Vec::new()))
    }

    /// kcp's `WorkspaceTypeExists` admission: defaults the type from the parent's
    /// `defaultChildWorkspaceType`, resolves it, requires `use` on the type and every type
    /// it extends, and checks both sides' parent/child limits.
    fn admit(&self, obj: &mut Value, ctx: &AdmissionContext<'_>) -> Result<(), ApiError> {
        let ws: Workspace = check_shape("Workspace", obj)?;
        let ws_name = ws.name().to_string();
        let forbidden = |reason: &str| {
            ApiError::admission_forbidden(
                canopy_core::Subject {
                    group: canopy_core::resource::TENANCY_GROUP,
                    resource: "workspaces",
                    name: &ws_name,
                },
                reason,
            )
        };
        // this logical cluster's path and type, and root's types mirrored on shards
        // without root
        let cluster_path = crate::workspaces::path_of(ctx.store, ctx.cluster);
        let type_mirror = crate::tenancy(ctx.api).type_mirror.read().clone();
        let store = Types {
            store: ctx.store,
            mirror: &type_mirror,
        };
        let (parent_path, parent_name) = crate::workspaces::type_of(ctx.store, ctx.cluster)
            .unwrap_or_else(|| ("root".into(), "universal".into()));
        let parent_type = get_type(store, &parent_path, &parent_name).ok_or_else(|| {
            forbidden(&format!(
                "workspace type cannot be resolved: workspace type {parent_path}:{parent_name} does not exist"
            ))
        })?;
        let mut type_ref = ws.spec.type_.clone().unwrap_or_default();
        if type_ref.name.is_empty() {
            let Some(d) = parent_type
                .object
                .spec
                .default_child_workspace_type
                .as_ref()
                .filter(|d| !d.name.is_empty())
            else {
                return Err(forbidden(&format!(
                    "spec.defaultChildWorkspaceType of workspace type {} must be set",
                    parent_type.qualified()
                )));
            };
            type_ref = WorkspaceTypeReference::new(d.path.clone(), d.name.clone());
        }
        let t = resolve_type_ref(store, &cluster_path, &type_ref.path, &type_ref.name)
            .map_err(|e| forbidden(&e))?;
        type_ref.path = t.path.clone();
        let child_aliases = aliases(store, &t).map_err(|e| forbidden(&e))?;
        for alias in &child_aliases {
            let attrs = canopy_auth::rbac::Attributes {
                user: ctx.user,
                verb: "use",
                is_resource_request: true,
                namespace: "",
                api_group: canopy_core::resource::TENANCY_GROUP,
                resource: "workspacetypes",
                subresource: "",
                name: &alias.name,
                path: "",
            };
            let allowed =
                if crate::logicalcluster::logical_cluster_exists(ctx.store, &alias.cluster) {
                    canopy_apiserver::authz::allowed(ctx.store, &alias.cluster, &attrs).is_some()
                } else {
                    // a type of root mirrored on a shard without root: root's default grant
                    // (every authenticated user may use the general-purpose types)
                    canopy_apiserver::authz::is_superuser(ctx.user)
                        || (ctx.user.in_group("system:authenticated")
                            && matches!(alias.name.as_str(), "universal" | "organization" | "team"))
                };
            if !allowed {
                // whoever may not enter the workspace holding the type cannot tell it
                // from a type that does not exist
                let visible = alias.cluster == "root"
                    || !crate::logicalcluster::logical_cluster_exists(ctx.store, &alias.cluster)
                    || canopy_apiserver::authz::has_access(ctx.store, &alias.cluster, ctx.user);
                if !visible {
                    return Err(forbidden(&format!(
                        "workspace type {} does not exist",
                        alias.qualified()
                    )));
                }
                return Err(forbidden(&format!(
                    "unable to use cluster workspace type {}: missing verb='use' permission on workspacetype",
                    alias.qualified()
                )));
            }
        }
        let parent_aliases = aliases(store, &parent_type).map_err(|e| forbidden(&e))?;
        check_limits(
            &parent_aliases,
            &child_aliases,
            &parent_type.qualified(),
            &t.qualified(),
        )
        .map_err(|e| forbidden(&e))?;
        let owner = WorkspaceOwner {
            username: ctx.user.name.clone(),
            uid: ctx.user.uid.clone(),
            groups: ctx.user.groups.clone(),
            ..Default::default()
        };
        let extra_labels = &t.object.spec.additional_workspace_labels;
        edit_workspace(obj, |w| {
            // the type, defaulted and resolved to its workspace's path
            let tr = w.spec.type_.get_or_insert_with(Default::default);
            tr.name = type_ref.name.clone();
            tr.path = type_ref.path.clone();
            // additionalWorkspaceLabels of the type, without overriding the user's
            if !extra_labels.is_empty() {
                let labels = w.metadata.labels.get_or_insert_with(Default::default);
                for (k, v) in extra_labels {
                    labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            set_annotation(&mut w.metadata, OWNER_ANNOTATION, owner.to_annotation());
        })
    }

    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        edit_workspace(obj, |w| {
            w.status = WorkspaceStatus {
                phase: Some(Phase::Scheduling),
                ..Default::default()
            };
            // the system sets these
            w.spec.cluster = None;
            w.spec.url = None;
            let fins = w.metadata.finalizers.get_or_insert_with(Vec::new);
            if !fins.iter().any(|f| f == LOGICAL_CLUSTER_FINALIZER) {
                fins.push(LOGICAL_CLUSTER_FINALIZER.into());
            }
        })
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) -> Result<(), ApiError> {
        // the system owns spec.cluster and spec.URL
        let old: WorkspaceState = check_shape("Workspace", old)?;
        edit_workspace(new, |w| {
            w.spec.cluster = old.spec.cluster.clone();
            w.spec.url = old.spec.url.clone();
        })
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        let type_of = |v: &Value| {
            tapi::from_value::<WorkspaceState>(v)
                .ok()
                .and_then(|w| w.spec.type_)
        };
        let new_type = type_of(new);
        if new_type != type_of(old) {
            let shown = new_type.as_ref().map(tapi::to_value).unwrap_or(Value::Null);
            causes.push(Cause::invalid("spec.type", &shown, "field is immutable"));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("Type", "string", "Type of the workspace", |o| {
                json!(state(o).spec.type_.map(|t| t.name).unwrap_or_default())
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
                |o| {
                    json!(state(o)
                        .status
                        .phase
                        .map(|p| p.to_string())
                        .unwrap_or_default())
                },
            ),
            Column::new("URL", "string", "URL to access the workspace", |o| {
                json!(state(o).spec.url.unwrap_or_default())
            }),
            age_column(),
        ]
    }
}

pub(crate) struct WorkspaceTypeStrategy;

impl Strategy for WorkspaceTypeStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        check_shape::<WorkspaceType>("WorkspaceType", &obj)?;
        Ok((obj, Vec::new()))
    }

    fn columns(&self) -> Vec<Column> {
        vec![age_column()]
    }
}

/// The built-in workspace types, created in `root` (kcp's, plus Canopy's `homeroot` and
/// `homebucket` for the `users` workspace).
pub(crate) fn builtin_workspace_types() -> Vec<Value> {
    let r = |name: &str| WorkspaceTypeReference::new("root", name);
    let with = |names: &[&str]| WorkspaceTypeExtension {
        with: names.iter().map(|n| r(n)).collect(),
        ..Default::default()
    };
    let only = |names: &[&str]| {
        Some(WorkspaceTypeSelector::types(
            names.iter().map(|n| r(n)).collect(),
        ))
    };
    let t = |name: &str, spec: WorkspaceTypeSpec| {
        let mut t = WorkspaceType::new(name, spec);
        set_annotation(&mut t.metadata, PATH_ANNOTATION, "root");
        tapi::to_value(&t)
    };
    vec![
        t(
            "root",
            WorkspaceTypeSpec {
                default_child_workspace_type: Some(r("organization")),
                limit_allowed_parents: Some(WorkspaceTypeSelector::none()),
                extend: with(&["universal"]),
                ..Default::default()
            },
        ),
        t(
            "universal",
            WorkspaceTypeSpec {
                default_child_workspace_type: Some(r("universal")),
                ..Default::default()
            },
        ),
        t(
            "organization",
            WorkspaceTypeSpec {
                extend: with(&["universal"]),
                default_child_workspace_type: Some(r("universal")),
                limit_allowed_children: only(&["universal"]),
                limit_allowed_parents: only(&["root"]),
                ..Default::default()
            },
        ),
        t(
            "team",
            WorkspaceTypeSpec {
                extend: with(&["universal"]),
                default_child_workspace_type: Some(r("universal")),
                limit_allowed_parents: only(&["organization", "team"]),
                ..Default::default()
            },
        ),
        t(
            "homeroot",
            WorkspaceTypeSpec {
                limit_allowed_children: only(&["homebucket", "home"]),
                limit_allowed_parents: only(&["root"]),
                ..Default::default()
            },
        ),
        t(
            "homebucket",
            WorkspaceTypeSpec {
                limit_allowed_parents: only(&["homeroot", "homebucket"]),
                ..Default::default()
            },
        ),
        t(
            "home",
            WorkspaceTypeSpec {
                extend: with(&["universal"]),
                default_child_workspace_type: Some(r("universal")),
                limit_allowed_parents: Some(WorkspaceTypeSelector::none()),
                ..Default::default()
            },
        ),
    ]
}

/// `use` of the general-purpose workspace types, granted to every authenticated user in
/// `root` (kcp's `system:kcp:universal-workspacetype-use`).
pub(crate) fn workspace_type_use_role() -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:kcp:universal-workspacetype-use"},
        "rules": [{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"],
            "resourceNames": ["universal", "organization", "team"], "verbs": ["use"]}]})
}

pub(crate) struct LogicalClusterStrategy;
impl Strategy for LogicalClusterStrategy {
    /// Initializers are only ever removed (by the controllers that did their part), as in
    /// kcp; the workspace controller turns an Initializing cluster without initializers
    /// Ready.
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        let list = |v: &Value| -> Vec<Value> {
            v.pointer("/status/initializers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let old_inits = list(old);
        for (i, init) in list(new).iter().enumerate() {
            if !old_inits.contains(init) {
                causes.push(Cause::invalid(
                    format!("status.initializers[{i}]"),
                    init,
                    "initializers may only be removed",
                ));
            }
        }
        if new.pointer("/spec/initializers") != old.pointer("/spec/initializers") {
            causes.push(Cause::invalid(
                "spec.initializers",
                new.pointer("/spec/initializers").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }

    fn openapi_schema(&self) -> Option<Value> {
        Some(json!({
            "description": "LogicalCluster describes the current logical cluster. It is created by the system and named \"cluster\".",
            "type": "object",
            "properties": {
                "spec": {"type": "object", "description": "LogicalClusterSpec is the specification of the LogicalCluster resource.", "properties": {
                    "directlyDeletable": {"type": "boolean"},
                    "owner": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "initializers": {"type": "array", "items": {"type": "string"}},
                }},
                "status": {"type": "object", "description": "LogicalClusterStatus communicates the observed state of the logical cluster.", "properties": {
                    "URL": {"type": "string", "description": "url is the address under which the Kubernetes-cluster-like endpoint can be found."},
                    "phase": {"type": "string", "description": "Phase of the logical cluster (Scheduling, Initializing, Ready)."},
                    "initializers": {"type": "array", "items": {"type": "string"}},
                    "conditions": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }},
            },
        }))
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) -> Result<(), ApiError> {
        if let Some(s) = old.get("status") {
            canopy_core::meta::object_at(new, &[])?.insert("status".into(), s.clone());
        }
        Ok(())
    }
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new(
                "Phase",
                "string",
                "The current phase (e.g. Scheduling, Initializing, Ready)",
                |o| json!(str_at(o, &["status", "phase"])),
            ),
            Column::new("URL", "string", "URL to access the logical cluster", |o| {
                json!(str_at(o, &["status", "URL"]))
            }),
            age_column(),
        ]
    }
}

/// kcp's `Shard`: `kubectl get shards` shows where each shard is reached.
pub(crate) struct ShardStrategy;
impl Strategy for ShardStrategy {
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("Region", "string", "The region this shard is in", |o| {
                json!(o
                    .pointer("/metadata/labels/region")
                    .and_then(Value::as_str)
                    .unwrap_or(""))
            }),
            Column::new(
                "URL",
                "string",
                "Type URL to directly connect to the shard",
                |o| json!(str_at(o, &["spec", "baseURL"])),
            ),
            Column::new(
                "External URL",
                "string",
                "The URL clients should use to reach the shard",
                |o| json!(str_at(o, &["spec", "externalURL"])),
            ),
            age_column(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(name: &str, parents: Option<WorkspaceTypeSelector>) -> ResolvedType {
        let mut object = WorkspaceType::default();
        object.spec.limit_allowed_parents = parents;
        ResolvedType {
            path: "root".into(),
            cluster: "root".into(),
            name: name.into(),
            object,
        }
    }

    fn none() -> Option<WorkspaceTypeSelector> {
        Some(WorkspaceTypeSelector {
            none: true,
            ..Default::default()
        })
    }

    #[test]
    fn limits_aggregate_as_kcp() {
        let parent = [resolved("root", None)];
        // two aliases refusing every parent word the same error: kcp's aggregate prints it once
        let child = [resolved("leaf", none()), resolved("base", none())];
        assert_eq!(
            check_limits(&parent, &child, "root:root", "root:leaf"),
            Err("workspace type root:leaf cannot be created as a child of any workspace".into())
        );
        let only = WorkspaceTypeSelector {
            types: vec![WorkspaceTypeReference {
                name: "org".into(),
                path: "root".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let child = [resolved("leaf", none()), resolved("base", Some(only))];
        assert_eq!(
            check_limits(&parent, &child, "root:root", "root:leaf"),
            Err(
                "[workspace type root:leaf cannot be created as a child of any workspace, \
                 workspace type root:leaf extends root:base, which only allows [root:org] parent \
                 workspaces, but parent type root:root only implements [root:root]]"
                    .into()
            )
        );
        assert_eq!(
            check_limits(&parent, &parent, "root:root", "root:root"),
            Ok(())
        );
    }
}
