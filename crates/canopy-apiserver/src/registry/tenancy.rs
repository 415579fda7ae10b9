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

/// A workspace type, with the workspace it lives in.
#[derive(Clone, Debug)]
pub struct ResolvedType {
    /// Path of the workspace holding the type (`root`).
    pub path: String,
    /// Logical cluster name of that workspace.
    pub cluster: String,
    pub name: String,
    pub object: Value,
}

impl ResolvedType {
    /// `root:organization`.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.path, self.name)
    }

    /// The initializer this type adds to new workspaces when `spec.initializer` is set:
    /// kcp's `<logical cluster>:<type name>`.
    pub fn initializer(&self) -> Option<String> {
        (self.object.pointer("/spec/initializer") == Some(&Value::Bool(true)))
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
pub fn get_type(types: Types<'_>, path: &str, name: &str) -> Option<ResolvedType> {
    let store = types.store;
    let Some(cluster) = crate::workspaces::resolve(store, path) else {
        if path == "root" {
            return types
                .mirror
                .get(&format!("root:{name}"))
                .map(|o| ResolvedType {
                    path: "root".into(),
                    cluster: "root".into(),
                    name: name.to_string(),
                    object: o.clone(),
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
        object: o.value.clone(),
    })
}

/// Resolves a type reference made in workspace `workspace_path`: an explicit path, or else
/// the nearest workspace up the hierarchy holding a type of that name, then `root`.
pub fn resolve_type_ref(
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
        match cur.rsplit_once(':') {
            Some((parent, _)) => cur = parent.to_string(),
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
        for base in t
            .object
            .pointer("/spec/extend/with")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (bp, bn) = (s(base, "/path"), s(base, "/name"));
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

fn ref_names(types: &[Value]) -> impl Iterator<Item = String> + '_ {
    types
        .iter()
        .map(|t| format!("{}:{}", s(t, "/path"), s(t, "/name")))
}

/// kcp's `limitAllowedParents` / `limitAllowedChildren` checks over both sides' aliases.
fn check_limits(
    parent: &[ResolvedType],
    child: &[ResolvedType],
    parent_type: &str,
    child_type: &str,
) -> Result<(), String> {
    let mut errs = Vec::new();
    let implements = |aliases: &[ResolvedType], allowed: &[Value]| {
        let allowed: Vec<String> = ref_names(allowed).collect();
        aliases.iter().any(|a| allowed.contains(&a.qualified()))
    };
    for c in child {
        if c.object.pointer("/spec/limitAllowedParents/none") == Some(&Value::Bool(true)) {
            errs.push(format!(
                "workspace type {child_type} cannot be created as a child of any workspace"
            ));
            continue;
        }
        let Some(allowed) = c
            .object
            .pointer("/spec/limitAllowedParents/types")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        else {
            continue;
        };
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
        return Err(aggregate(errs));
    }
    for p in parent {
        if p.object.pointer("/spec/limitAllowedChildren/none") == Some(&Value::Bool(true)) {
            errs.push(format!(
                "workspace type {parent_type} cannot have any children"
            ));
            continue;
        }
        let Some(allowed) = p
            .object
            .pointer("/spec/limitAllowedChildren/types")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        else {
            continue;
        };
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
        Err(aggregate(errs))
    }
}

/// One error as itself, several as k8s.io/apimachinery's aggregate prints them.
fn aggregate(mut errs: Vec<String>) -> String {
    if errs.len() == 1 {
        errs.remove(0)
    } else {
        format!("[{}]", errs.join(", "))
    }
}

pub struct WorkspaceStrategy;

/// The JSON shape of a Workspace (kcp's Go types): only for refusing wrong types with
/// kube's 400 before any code walks the object; unknown fields are left to the rest.
mod shape {
    use serde::Deserialize;
    use serde_json::{Map, Value};

    #[derive(Deserialize)]
    #[allow(dead_code)]
    pub(super) struct Workspace {
        #[serde(default)]
        pub spec: Option<Spec>,
        #[serde(default)]
        pub status: Option<Map<String, Value>>,
    }

    #[derive(Deserialize)]
    #[allow(non_snake_case, dead_code)]
    pub(super) struct Spec {
        #[serde(default, rename = "type")]
        pub type_: Option<TypeRef>,
        #[serde(default)]
        pub location: Option<Location>,
        #[serde(default)]
        pub cluster: Option<String>,
        #[serde(default)]
        pub URL: Option<String>,
        #[serde(default)]
        pub mount: Option<Map<String, Value>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    pub(super) struct TypeRef {
        #[serde(default)]
        pub name: Option<String>,
        #[serde(default)]
        pub path: Option<String>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    pub(super) struct Location {
        #[serde(default)]
        pub selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    }

    /// The shape of a WorkspaceType's spec.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    pub(super) struct WorkspaceType {
        #[serde(default)]
        pub spec: Option<TypeSpec>,
        #[serde(default)]
        pub status: Option<Map<String, Value>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    pub(super) struct TypeSpec {
        #[serde(default)]
        pub default_child_workspace_type: Option<TypeRef>,
        #[serde(default)]
        pub extend: Option<Extend>,
        #[serde(default)]
        pub limit_allowed_parents: Option<Limit>,
        #[serde(default)]
        pub limit_allowed_children: Option<Limit>,
        #[serde(default)]
        pub initializer: Option<bool>,
        #[serde(default)]
        pub additional_workspace_labels: Option<std::collections::BTreeMap<String, String>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    pub(super) struct Extend {
        #[serde(default)]
        pub with: Option<Vec<TypeRef>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    pub(super) struct Limit {
        #[serde(default)]
        pub types: Option<Vec<TypeRef>>,
        #[serde(default)]
        pub none: Option<bool>,
    }
}

/// Refuses an object whose fields have the wrong JSON types, as kube's decoder does
/// (400 `<Kind> in version "v1alpha1" cannot be handled as a <Kind>: ...`).
fn check_shape<'a, T: serde::Deserialize<'a>>(kind: &str, obj: &'a Value) -> Result<(), ApiError> {
    T::deserialize(obj).map(|_| ()).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"v1alpha1\" cannot be handled as a {kind}: {e}"
        ))
    })
}

impl Strategy for WorkspaceStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        check_shape::<shape::Workspace>("Workspace", &obj)?;
        Ok((obj, Vec::new()))
    }

    /// kcp's `WorkspaceTypeExists` admission: defaults the type from the parent's
    /// `defaultChildWorkspaceType`, resolves it, requires `use` on the type and every type
    /// it extends, and checks both sides' parent/child limits.
    fn admit(&self, obj: &mut Value, ctx: &AdmissionContext<'_>) -> Result<(), ApiError> {
        let ws_name = canopy_core::meta::name(obj).to_string();
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
        let store = Types {
            store: ctx.store,
            mirror: &ctx.type_mirror,
        };
        let (parent_path, parent_name) = ctx
            .parent_type
            .clone()
            .unwrap_or_else(|| ("root".into(), "universal".into()));
        let parent_type = get_type(store, &parent_path, &parent_name).ok_or_else(|| {
            forbidden(&format!(
                "workspace type cannot be resolved: workspace type {parent_path}:{parent_name} does not exist"
            ))
        })?;
        if s(obj, "/spec/type/name").is_empty() {
            let Some(d) = parent_type
                .object
                .pointer("/spec/defaultChildWorkspaceType")
                .filter(|d| !s(d, "/name").is_empty())
            else {
                return Err(forbidden(&format!(
                    "spec.defaultChildWorkspaceType of workspace type {} must be set",
                    parent_type.qualified()
                )));
            };
            let default = json!({"name": s(d, "/name"), "path": s(d, "/path")});
            canopy_core::meta::set_path(obj, &["spec", "type"], default)?;
        }
        let t = resolve_type_ref(
            store,
            &ctx.cluster_path,
            s(obj, "/spec/type/path"),
            s(obj, "/spec/type/name"),
        )
        .map_err(|e| forbidden(&e))?;
        canopy_core::meta::set_path(obj, &["spec", "type", "path"], json!(t.path))?;
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
            let allowed = if crate::bootstrap::logical_cluster_exists(ctx.store, &alias.cluster) {
                crate::authz::allowed(ctx.store, &alias.cluster, &attrs).is_some()
            } else {
                // a type of root mirrored on a shard without root: root's default grant
                // (every authenticated user may use the general-purpose types)
                crate::authz::is_superuser(ctx.user)
                    || (ctx.user.in_group("system:authenticated")
                        && matches!(alias.name.as_str(), "universal" | "organization" | "team"))
            };
            if !allowed {
                // whoever may not enter the workspace holding the type cannot tell it
                // from a type that does not exist
                let visible = alias.cluster == "root"
                    || !crate::bootstrap::logical_cluster_exists(ctx.store, &alias.cluster)
                    || crate::authz::has_access(ctx.store, &alias.cluster, ctx.user);
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
        // additionalWorkspaceLabels of the type, without overriding the user's
        if let Some(extra) = t
            .object
            .pointer("/spec/additionalWorkspaceLabels")
            .and_then(Value::as_object)
        {
            let meta = canopy_core::meta::metadata_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                for (k, v) in extra {
                    l.entry(k.clone()).or_insert_with(|| v.clone());
                }
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

    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        canopy_core::meta::object_at(obj, &[])?
            .insert("status".into(), json!({"phase": "Scheduling"}));
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
        Ok(())
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) -> Result<(), ApiError> {
        // the system owns spec.cluster and spec.URL
        for f in ["cluster", "URL"] {
            match old.pointer(&format!("/spec/{f}")) {
                Some(v) => canopy_core::meta::set_path(new, &["spec", f], v.clone())?,
                None => {
                    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove(f);
                    }
                }
            }
        }
        Ok(())
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

pub struct WorkspaceTypeStrategy;

impl Strategy for WorkspaceTypeStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        check_shape::<shape::WorkspaceType>("WorkspaceType", &obj)?;
        Ok((obj, Vec::new()))
    }

    fn columns(&self) -> Vec<Column> {
        vec![age_column()]
    }
}

/// The built-in workspace types, created in `root` (kcp's, plus Canopy's `homeroot` and
/// `homebucket` for the `users` workspace).
pub fn builtin_workspace_types() -> Vec<Value> {
    let t = |name: &str, spec: Value| json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType", "metadata": {"name": name, "annotations": {PATH_ANNOTATION: "root"}}, "spec": spec});
    let r = |name: &str| json!({"name": name, "path": "root"});
    vec![
        t(
            "root",
            json!({"defaultChildWorkspaceType": r("organization"), "limitAllowedParents": {"none": true}, "extend": {"with": [r("universal")]}}),
        ),
        t(
            "universal",
            json!({"defaultChildWorkspaceType": r("universal")}),
        ),
        t(
            "organization",
            json!({"extend": {"with": [r("universal")]}, "defaultChildWorkspaceType": r("universal"),
                "limitAllowedChildren": {"types": [r("universal")]}, "limitAllowedParents": {"types": [r("root")]}}),
        ),
        t(
            "team",
            json!({"extend": {"with": [r("universal")]}, "defaultChildWorkspaceType": r("universal"),
                "limitAllowedParents": {"types": [r("organization"), r("team")]}}),
        ),
        t(
            "homeroot",
            json!({"limitAllowedChildren": {"types": [r("homebucket"), r("home")]}, "limitAllowedParents": {"types": [r("root")]}}),
        ),
        t(
            "homebucket",
            json!({"limitAllowedParents": {"types": [r("homeroot"), r("homebucket")]}}),
        ),
        t(
            "home",
            json!({"extend": {"with": [r("universal")]}, "defaultChildWorkspaceType": r("universal"), "limitAllowedParents": {"none": true}}),
        ),
    ]
}

/// `use` of the general-purpose workspace types, granted to every authenticated user in
/// `root` (kcp's `system:kcp:universal-workspacetype-use`).
pub fn workspace_type_use_role() -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:kcp:universal-workspacetype-use"},
        "rules": [{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"],
            "resourceNames": ["universal", "organization", "team"], "verbs": ["use"]}]})
}
