//! Schemas of built-in kinds as canopy-openapi publishes them (OpenAPI v3, kube's
//! extensions), and applies against them.

mod common;

use canopy_apply::{FieldManager, ListKind, NodeKind, ScalarType, Schema};
use canopy_openapi::{OpenApiBuilder, ResourceInfo};
use common::{at, fields_of, stored};
use serde_json::{json, Value};

fn document(key: &str) -> Value {
    let docs = OpenApiBuilder::with_builtins().build();
    let (bytes, _) = docs.v3_document(key).expect("document");
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn every_builtin_kind_converts() {
    let docs = OpenApiBuilder::with_builtins().build();
    let keys: Vec<String> = docs.v3_keys().map(String::from).collect();
    let mut n = 0;
    for info in canopy_openapi::builtin_resources() {
        let key = info.gv_key();
        assert!(keys.contains(&key), "{key}");
        let doc = document(&key);
        Schema::from_openapi_v3_document(&doc, &info.group, &info.version, &info.kind)
            .unwrap_or_else(|e| panic!("{}: {e}", info.kind));
        n += 1;
    }
    assert!(n > 10);
}

#[test]
fn configmap_and_object_meta_from_the_published_document() {
    let doc = document("api/v1");
    let s = Schema::from_openapi_v3_document(&doc, "", "v1", "ConfigMap").unwrap();
    assert_eq!(s.kind_at(&["data"]), Some(NodeKind::Map { atomic: false }));
    assert_eq!(
        s.kind_at(&["data", "k"]),
        Some(NodeKind::Scalar(ScalarType::String))
    );
    assert_eq!(
        s.kind_at(&["metadata", "ownerReferences"]),
        Some(NodeKind::List(ListKind::Map(vec!["uid".into()])))
    );
    assert_eq!(
        s.kind_at(&["metadata", "ownerReferences", "[]"]),
        Some(NodeKind::Struct { atomic: true })
    );
    assert_eq!(
        s.kind_at(&["metadata", "finalizers"]),
        Some(NodeKind::List(ListKind::Set))
    );
    assert_eq!(
        s.kind_at(&["metadata", "managedFields"]),
        Some(NodeKind::List(ListKind::Atomic))
    );

    let fm = FieldManager::new(s, "v1", "ConfigMap");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "labels": {"app": "x"}, "finalizers": ["f"]},
        "data": {"key": "value"}
    });
    let obj = fm.apply(None, &cm, "kubectl", false, at(0)).unwrap();
    assert_eq!(
        fields_of(&obj, "kubectl"),
        Some(
            json!({"f:data": {"f:key": {}}, "f:metadata": {"f:finalizers": {"v:\"f\"": {}}, "f:labels": {"f:app": {}}}})
        )
    );
}

#[test]
fn namespace_conditions_and_rbac_lists() {
    let doc = document("api/v1");
    let ns = Schema::from_openapi_v3_document(&doc, "", "v1", "Namespace").unwrap();
    assert_eq!(
        ns.kind_at(&["status", "conditions"]),
        Some(NodeKind::List(ListKind::Map(vec!["type".into()])))
    );
    let doc = document("apis/rbac.authorization.k8s.io/v1");
    let role =
        Schema::from_openapi_v3_document(&doc, "rbac.authorization.k8s.io", "v1", "Role").unwrap();
    assert_eq!(
        role.kind_at(&["rules"]),
        Some(NodeKind::List(ListKind::Atomic))
    );
    let fm = FieldManager::new(role, "rbac.authorization.k8s.io/v1", "Role");
    let r = |verbs: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]})
    };
    let live = stored(
        fm.apply(None, &r(json!(["get"])), "a", false, at(0))
            .unwrap(),
    );
    let err = fm
        .apply(Some(&live), &r(json!(["list"])), "b", false, at(1))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .rules"#
    );
}

#[test]
fn custom_resource_definitions_convert_despite_recursion() {
    let doc = document("apis/apiextensions.k8s.io/v1");
    let crd = Schema::from_openapi_v3_document(
        &doc,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
    )
    .unwrap();
    assert!(crd
        .kind_at(&[
            "spec",
            "versions",
            "[]",
            "schema",
            "openAPIV3Schema",
            "properties",
            "x",
            "properties",
            "y"
        ])
        .is_some());
    assert_eq!(
        crd.kind_at(&["spec", "versions"]),
        Some(NodeKind::List(ListKind::Atomic))
    );
}

#[test]
fn custom_resources_as_published() {
    let mut b = OpenApiBuilder::with_builtins();
    b.add_custom_resource(
        ResourceInfo {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Widget".into(),
            plural: "widgets".into(),
            namespaced: true,
            verbs: vec!["get".into(), "patch".into()],
            subresources: vec!["status".into()],
            strategic_merge_patch: false,
        },
        &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        }}}}),
    )
    .unwrap();
    let docs = b.build();
    let (bytes, _) = docs.v3_document("apis/example.com/v1").unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let s = Schema::from_openapi_v3_document(&doc, "example.com", "v1", "Widget").unwrap();
    assert_eq!(
        s.kind_at(&["spec", "tags"]),
        Some(NodeKind::List(ListKind::Set))
    );
    assert_eq!(s.kind_at(&["spec", "port"]), Some(NodeKind::Untyped));
    assert_eq!(
        s.kind_at(&["metadata", "labels"]),
        Some(NodeKind::Map { atomic: false })
    );
}
