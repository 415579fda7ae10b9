//! What every logical cluster starts with: the default namespaces (with their default
//! objects) and the default RBAC roles and bindings, as a fresh kube-apiserver has them.
//! A plug-in that creates logical clusters writes these with its own objects
//! ([`rbac_objects`], [`namespace_objects`]).

use canopy_core::{meta, ApiError};
use serde_json::{json, Value};

use crate::registry::Resource;
use crate::ApiServer;

/// Namespaces every logical cluster has, which cannot be deleted.
pub const DEFAULT_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// A built-in resource of the registry (an internal error when missing).
pub fn resource(
    api: &ApiServer,
    group: &str,
    version: &str,
    plural: &str,
) -> Result<Resource, ApiError> {
    api.registry()
        .get(group, version, plural)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("built-in resource {plural} missing")))
}

pub const RBAC: &str = "rbac.authorization.k8s.io";

fn bootstrap_meta(name: &str) -> Value {
    json!({"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": bootstrap_meta(name), "rules": rules})
}

fn aggregated_role(name: &str, selector_label: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": bootstrap_meta(name),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]},
        "rules": [],
    })
}

fn labelled_role(name: &str, labels: &[&str], rules: Value) -> Value {
    let mut r = cluster_role(name, rules);
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|l| (l.to_string(), json!("true")))
        .collect();
    meta::metadata_mut(&mut r).insert("labels".into(), Value::Object(labels));
    r
}

/// A bootstrap ClusterRoleBinding of `role` to `groups`.
pub fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"kind": "Group", "apiGroup": RBAC, "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": bootstrap_meta(name),
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The default ClusterRoles of a logical cluster.
pub fn default_cluster_roles() -> Vec<Value> {
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    vec![
        cluster_role(
            "cluster-admin",
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        aggregated_role("admin", "rbac.authorization.k8s.io/aggregate-to-admin"),
        aggregated_role("edit", "rbac.authorization.k8s.io/aggregate-to-edit"),
        aggregated_role("view", "rbac.authorization.k8s.io/aggregate-to-view"),
        labelled_role(
            "system:aggregate-to-admin",
            &["rbac.authorization.k8s.io/aggregate-to-admin"],
            json!([
                {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
            ]),
        ),
        labelled_role(
            "system:aggregate-to-edit",
            &[
                "rbac.authorization.k8s.io/aggregate-to-admin",
                "rbac.authorization.k8s.io/aggregate-to-edit",
            ],
            json!([
                {"apiGroups": [""], "resources": ["configmaps", "secrets", "serviceaccounts", "events"], "verbs": write},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": write},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": write},
                {"apiGroups": [""], "resources": ["secrets"], "verbs": read},
                {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
            ]),
        ),
        labelled_role(
            "system:aggregate-to-view",
            &[
                "rbac.authorization.k8s.io/aggregate-to-admin",
                "rbac.authorization.k8s.io/aggregate-to-edit",
                "rbac.authorization.k8s.io/aggregate-to-view",
            ],
            json!([
                {"apiGroups": [""], "resources": ["configmaps", "serviceaccounts", "events", "namespaces", "namespaces/status"], "verbs": read},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": read},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": read},
            ]),
        ),
        cluster_role(
            "system:discovery",
            json!([
                {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]},
            ]),
        ),
        cluster_role(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ]),
        ),
        cluster_role(
            "system:kcp:workspace:access",
            json!([{"nonResourceURLs": ["/"], "verbs": ["access"]}]),
        ),
        cluster_role(
            "system:public-info-viewer",
            json!([
                {"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]},
            ]),
        ),
    ]
}

pub fn default_cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

/// The default RBAC objects of a new logical cluster: [`default_cluster_roles`] and
/// [`default_cluster_role_bindings`].
pub fn rbac_objects(api: &ApiServer) -> Result<Vec<(Resource, Value)>, ApiError> {
    let mut items: Vec<(Resource, Value)> = Vec::new();
    let cr = resource(api, RBAC, "v1", "clusterroles")?;
    for role in default_cluster_roles() {
        items.push((cr.clone(), role));
    }
    let crb = resource(api, RBAC, "v1", "clusterrolebindings")?;
    for b in default_cluster_role_bindings() {
        items.push((crb.clone(), b));
    }
    Ok(items)
}

/// The default namespaces of a new logical cluster with what each holds
/// ([`crate::controllers::default_namespace_objects`]).
pub fn namespace_objects(api: &ApiServer) -> Result<Vec<(Resource, Value)>, ApiError> {
    let mut items: Vec<(Resource, Value)> = Vec::new();
    let ns = resource(api, "", "v1", "namespaces")?;
    for n in DEFAULT_NAMESPACES {
        items.push((
            ns.clone(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}),
        ));
        items.extend(crate::controllers::default_namespace_objects(api, n));
    }
    Ok(items)
}
