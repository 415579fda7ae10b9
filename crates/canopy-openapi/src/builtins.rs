//! Canopy's built-in kinds (the catalog is canopy-core's `builtin_resources`) and their
//! schemas, taken from `k8s-openapi`'s schemars support, plus the list-type,
//! map-type and patch-strategy extensions kube's generator adds from Go struct tags (which
//! `k8s-openapi`'s schemas do not carry).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::ResourceInfo;

/// `io.k8s.apimachinery.pkg.apis.meta.v1`, the prefix of every meta definition.
pub(crate) const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// Every built-in resource, as discovery serves it: canopy-core's catalog (the one list
/// of built-in kinds, with kube 1.35's verbs and subresources).
pub fn builtin_resources() -> Vec<ResourceInfo> {
    canopy_core::resource::builtin_resources()
        .into_iter()
        .map(|d| ResourceInfo {
            group: d.group,
            version: d.version,
            kind: d.kind,
            plural: d.plural,
            namespaced: d.namespaced,
            verbs: d.verbs,
            subresources: d.subresources,
            strategic_merge_patch: true,
        })
        .collect()
}

fn generator() -> SchemaGenerator {
    SchemaSettings::openapi3().into_generator()
}

/// Definitions of `T` and everything it references, keyed by kube's definition names,
/// with `$ref`s of the form `#/components/schemas/<name>`.
fn defs_of<T: JsonSchema>() -> Map<String, Value> {
    let mut g = generator();
    g.subschema_for::<T>();
    g.take_definitions(true)
}

/// The meta definitions every document needs besides its kinds.
pub(crate) fn meta_defs() -> Map<String, Value> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let mut g = generator();
    g.subschema_for::<meta::Status>();
    g.subschema_for::<meta::DeleteOptions>();
    g.subschema_for::<meta::WatchEvent<k8s_openapi::apimachinery::pkg::runtime::RawExtension>>();
    g.subschema_for::<meta::APIResourceList>();
    g.subschema_for::<meta::ObjectMeta>();
    g.subschema_for::<meta::ListMeta>();
    let mut defs = g.take_definitions(true);
    defs.insert(
        format!("{META}.Patch"),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
    );
    defs
}

/// `autoscaling/v1` Scale and what it references (the scale subresource's body).
pub(crate) fn scale_defs() -> Map<String, Value> {
    defs_of::<k8s_openapi::api::autoscaling::v1::Scale>()
}

/// Definitions of a built-in kind and everything it references; `None` for a kind
/// `k8s-openapi` has no type for.
pub(crate) fn builtin_defs(group: &str, version: &str, kind: &str) -> Option<Map<String, Value>> {
    use k8s_openapi::api::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    let defs = match (group, version, kind) {
        ("", "v1", "Namespace") => defs_of::<core::v1::Namespace>(),
        ("", "v1", "ConfigMap") => defs_of::<core::v1::ConfigMap>(),
        ("", "v1", "Secret") => defs_of::<core::v1::Secret>(),
        ("", "v1", "ServiceAccount") => defs_of::<core::v1::ServiceAccount>(),
        ("", "v1", "Event") => defs_of::<core::v1::Event>(),
        ("events.k8s.io", "v1", "Event") => defs_of::<events::v1::Event>(),
        ("coordination.k8s.io", "v1", "Lease") => defs_of::<coordination::v1::Lease>(),
        ("rbac.authorization.k8s.io", "v1", "Role") => defs_of::<rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => defs_of::<rbac::v1::ClusterRole>(),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => defs_of::<rbac::v1::RoleBinding>(),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            defs_of::<rbac::v1::ClusterRoleBinding>()
        }
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => {
            defs_of::<authentication::v1::SelfSubjectReview>()
        }
        ("authentication.k8s.io", "v1", "TokenReview") => {
            defs_of::<authentication::v1::TokenReview>()
        }
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => {
            defs_of::<authorization::v1::SelfSubjectAccessReview>()
        }
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview") => {
            defs_of::<authorization::v1::SelfSubjectRulesReview>()
        }
        ("authorization.k8s.io", "v1", "SubjectAccessReview") => {
            defs_of::<authorization::v1::SubjectAccessReview>()
        }
        ("authorization.k8s.io", "v1", "LocalSubjectAccessReview") => {
            defs_of::<authorization::v1::LocalSubjectAccessReview>()
        }
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            defs_of::<apiext::CustomResourceDefinition>()
        }
        _ => return None,
    };
    Some(defs)
}

/// The definition name kube gives a built-in kind: `io.k8s.api.<group prefix>.<version>.<Kind>`
/// (`io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.<version>.<Kind>` for CRDs).
pub(crate) fn builtin_def_name(group: &str, version: &str, kind: &str) -> String {
    match group {
        "" => format!("io.k8s.api.core.{version}.{kind}"),
        "apiextensions.k8s.io" => {
            format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}")
        }
        g => {
            let first = g.split('.').next().unwrap_or(g);
            format!("io.k8s.api.{first}.{version}.{kind}")
        }
    }
}

const ATOMIC_LIST: &str = r#"{"x-kubernetes-list-type": "atomic"}"#;
const ATOMIC_MAP: &str = r#"{"x-kubernetes-map-type": "atomic"}"#;
const APIEXT: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1";

/// kube's extensions from Go struct tags: (definition, field or "" for the definition
/// itself, extensions as JSON).
const EXTENSIONS: &[(&str, &str, &str)] = &[
    // meta/v1
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        r#"{"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}"#,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        r#"{"x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"}"#,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "managedFields",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
        "",
        ATOMIC_MAP,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        "",
        ATOMIC_MAP,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        "matchExpressions",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        "values",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails",
        "causes",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "dryRun",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResource",
        "categories",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResource",
        "shortNames",
        ATOMIC_LIST,
    ),
    // core/v1
    (
        "io.k8s.api.core.v1.NamespaceSpec",
        "finalizers",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        r#"{"x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge"}"#,
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        r#"{"x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}"#,
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "imagePullSecrets",
        ATOMIC_LIST,
    ),
    ("io.k8s.api.core.v1.ObjectReference", "", ATOMIC_MAP),
    ("io.k8s.api.core.v1.LocalObjectReference", "", ATOMIC_MAP),
    // rbac/v1
    ("io.k8s.api.rbac.v1.Role", "rules", ATOMIC_LIST),
    ("io.k8s.api.rbac.v1.ClusterRole", "rules", ATOMIC_LIST),
    ("io.k8s.api.rbac.v1.RoleBinding", "subjects", ATOMIC_LIST),
    (
        "io.k8s.api.rbac.v1.ClusterRoleBinding",
        "subjects",
        ATOMIC_LIST,
    ),
    ("io.k8s.api.rbac.v1.RoleRef", "", ATOMIC_MAP),
    ("io.k8s.api.rbac.v1.Subject", "", ATOMIC_MAP),
    (
        "io.k8s.api.rbac.v1.AggregationRule",
        "clusterRoleSelectors",
        ATOMIC_LIST,
    ),
    ("io.k8s.api.rbac.v1.PolicyRule", "apiGroups", ATOMIC_LIST),
    ("io.k8s.api.rbac.v1.PolicyRule", "resources", ATOMIC_LIST),
    (
        "io.k8s.api.rbac.v1.PolicyRule",
        "resourceNames",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.rbac.v1.PolicyRule",
        "nonResourceURLs",
        ATOMIC_LIST,
    ),
    ("io.k8s.api.rbac.v1.PolicyRule", "verbs", ATOMIC_LIST),
    // authentication/v1
    (
        "io.k8s.api.authentication.v1.TokenReviewSpec",
        "audiences",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authentication.v1.TokenReviewStatus",
        "audiences",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authentication.v1.UserInfo",
        "groups",
        ATOMIC_LIST,
    ),
    // authorization/v1
    (
        "io.k8s.api.authorization.v1.SubjectAccessReviewSpec",
        "groups",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.SubjectRulesReviewStatus",
        "resourceRules",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.SubjectRulesReviewStatus",
        "nonResourceRules",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.ResourceRule",
        "verbs",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.ResourceRule",
        "apiGroups",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.ResourceRule",
        "resources",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.ResourceRule",
        "resourceNames",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.NonResourceRule",
        "verbs",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.NonResourceRule",
        "nonResourceURLs",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.FieldSelectorAttributes",
        "requirements",
        ATOMIC_LIST,
    ),
    (
        "io.k8s.api.authorization.v1.LabelSelectorAttributes",
        "requirements",
        ATOMIC_LIST,
    ),
];

/// Like [`EXTENSIONS`], for apiextensions/v1 (whose prefix is [`APIEXT`]).
const APIEXT_EXTENSIONS: &[(&str, &str, &str)] = &[
    ("CustomResourceDefinitionSpec", "versions", ATOMIC_LIST),
    ("CustomResourceDefinitionNames", "shortNames", ATOMIC_LIST),
    ("CustomResourceDefinitionNames", "categories", ATOMIC_LIST),
    (
        "CustomResourceDefinitionStatus",
        "conditions",
        r#"{"x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map"}"#,
    ),
    (
        "CustomResourceDefinitionStatus",
        "storedVersions",
        ATOMIC_LIST,
    ),
    (
        "CustomResourceDefinitionVersion",
        "additionalPrinterColumns",
        ATOMIC_LIST,
    ),
    (
        "CustomResourceDefinitionVersion",
        "selectableFields",
        ATOMIC_LIST,
    ),
];

/// All extension entries with full definition names.
fn extensions() -> impl Iterator<Item = (String, &'static str, &'static str)> {
    EXTENSIONS
        .iter()
        .map(|(d, f, e)| ((*d).to_string(), *f, *e))
        .chain(
            APIEXT_EXTENSIONS
                .iter()
                .map(|(d, f, e)| (format!("{APIEXT}.{d}"), *f, *e)),
        )
}

/// Adds kube's struct-tag extensions to definition `name` (before it is shared).
pub(crate) fn decorate(name: &str, def: &mut Value) {
    // kube publishes apiextensions' "any JSON" types without a type: a CRD's `default`,
    // `example`, `enum` items and the props-or-bool/array unions hold any JSON value
    // (server-side apply must treat them as untyped, not as objects)
    if let Some(short) = name.strip_prefix(&format!("{APIEXT}.")) {
        if matches!(
            short,
            "JSON"
                | "JSONSchemaPropsOrBool"
                | "JSONSchemaPropsOrArray"
                | "JSONSchemaPropsOrStringArray"
        ) {
            if let Some(m) = def.as_object_mut() {
                m.remove("type");
                m.remove("properties");
                m.remove("additionalProperties");
            }
        }
    }
    for (d, field, ext) in extensions() {
        if d != name {
            continue;
        }
        let Ok(Value::Object(ext)) = serde_json::from_str::<Value>(ext) else {
            continue;
        };
        let target = if field.is_empty() {
            Some(&mut *def)
        } else {
            def.get_mut("properties").and_then(|p| p.get_mut(field))
        };
        if let Some(Value::Object(t)) = target {
            t.extend(ext);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_extension_names_an_existing_field() {
        // A typo in the table would silently add nothing: every entry must land.
        let mut all = meta_defs();
        for r in builtin_resources() {
            let defs = builtin_defs(&r.group, &r.version, &r.kind)
                .unwrap_or_else(|| panic!("no schema for {}", r.kind));
            assert!(defs.contains_key(&builtin_def_name(&r.group, &r.version, &r.kind)));
            all.extend(defs);
        }
        let mut n = 0;
        for (d, field, ext) in extensions() {
            let def = all
                .get(&d)
                .unwrap_or_else(|| panic!("no definition {d}"))
                .clone();
            if !field.is_empty() {
                assert!(
                    def["properties"].get(field).is_some(),
                    "{d} has no field {field}"
                );
            }
            assert!(serde_json::from_str::<Value>(ext).is_ok_and(|v| v.is_object()));
            let mut decorated = def.clone();
            decorate(&d, &mut decorated);
            assert_ne!(decorated, def, "{d}.{field} unchanged");
            n += 1;
        }
        assert!(n > 40);
    }
}
