use super::*;

const ALL: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn custom(group: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        verbs: ALL.map(String::from).to_vec(),
        subresources: vec!["status".into(), "scale".into()],
        // add_custom_resource must ignore this
        strategic_merge_patch: true,
    }
}

fn certificate_schema() -> Value {
    json!({
        "type": "object",
        "description": "A Certificate resource.",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["secretName"],
                "properties": {
                    "secretName": {"type": "string", "pattern": "^[a-z]+$", "description": "Name of the Secret."},
                    "duration": {"type": "string", "nullable": true},
                    "usages": {"type": "array", "items": {"type": "string", "enum": ["server auth", "client auth"]}},
                    "issuerRef": {"type": "object", "oneOf": [{"required": ["name"]}], "x-kubernetes-validations": [{"rule": "self.name != ''"}], "properties": {"name": {"type": "string"}}}
                }
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    })
}

fn with_certificate() -> OpenApiDocs {
    let mut b = OpenApiBuilder::with_builtins();
    b.add_custom_resource(
        custom("cert-manager.io", "Certificate", "certificates", true),
        &certificate_schema(),
    )
    .unwrap();
    b.build()
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a document is valid JSON")
}

/// Every `$ref` in `doc` starts with `prefix` and names a key of `defs`; returns how many.
fn check_refs(doc: &Value, prefix: &str, defs: &Value) -> usize {
    match doc {
        Value::Object(m) => {
            let mut n = 0;
            // (a property named "$ref", as in JSONSchemaProps, is an object)
            if let Some(Value::String(r)) = m.get("$ref") {
                let name = r
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("{r} lacks {prefix}"));
                assert!(defs.get(name).is_some(), "{r} does not resolve");
                n += 1;
            }
            n + m
                .values()
                .map(|v| check_refs(v, prefix, defs))
                .sum::<usize>()
        }
        Value::Array(a) => a.iter().map(|v| check_refs(v, prefix, defs)).sum(),
        _ => 0,
    }
}

fn v3(docs: &OpenApiDocs, key: &str) -> Value {
    let (bytes, _) = docs
        .v3_document(key)
        .unwrap_or_else(|| panic!("no document {key}"));
    parse(&bytes)
}

/// The operation on `path` with `method`.
fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "no {method} {path}");
    op
}

/// What kubectl does (`gvkSupportsPatchOpenAPIV3`): find the PATCH operation of the GVK and
/// read its request body's media types.
fn patch_types(doc: &Value, group: &str, kind: &str) -> Vec<String> {
    let mut found = None;
    for item in doc["paths"].as_object().unwrap().values() {
        let op = &item["patch"];
        let g = &op["x-kubernetes-group-version-kind"];
        if g["group"] == group && g["kind"] == kind {
            found = Some(
                op["requestBody"]["content"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            break;
        }
    }
    let mut t = found.unwrap_or_else(|| panic!("no PATCH of {kind}"));
    t.sort();
    t
}

#[test]
fn index_lists_every_group_version_with_its_hash() {
    let docs = with_certificate();
    let index = docs.v3_index("/clusters/root");
    let paths = index["paths"].as_object().unwrap();
    let mut expected: Vec<String> = builtin_resources().iter().map(|r| r.gv_key()).collect();
    expected.push("apis/cert-manager.io/v1".into());
    expected.sort();
    expected.dedup();
    assert_eq!(paths.keys().cloned().collect::<Vec<_>>(), expected);
    for key in [
        "api/v1",
        "apis/rbac.authorization.k8s.io/v1",
        "apis/apiextensions.k8s.io/v1",
        "apis/authorization.k8s.io/v1",
    ] {
        assert!(paths.contains_key(key), "{key}");
    }
    for (key, entry) in paths {
        let (bytes, hash) = docs.v3_document(key).unwrap();
        assert_eq!(
            entry["serverRelativeURL"],
            format!("/clusters/root/openapi/v3/{key}?hash={hash}")
        );
        let digest: String = Sha512::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(hash, digest);
    }
    assert_eq!(
        docs.v3_index("")["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .split('?')
            .next(),
        Some("/openapi/v3/api/v1")
    );
    assert!(docs.v3_document("apis/nope/v1").is_none());
}

#[test]
fn every_ref_resolves_in_every_document() {
    let docs = with_certificate();
    let keys: Vec<String> = docs.v3_keys().map(String::from).collect();
    for key in &keys {
        let doc = v3(&docs, key);
        assert_eq!(doc["openapi"], "3.0.0");
        let n = check_refs(&doc, "#/components/schemas/", &doc["components"]["schemas"]);
        assert!(n > 0, "{key} has no refs at all");
    }
    let (bytes, _) = docs.v2_document();
    let v2 = parse(&bytes);
    assert_eq!(v2["swagger"], "2.0");
    assert!(check_refs(&v2, "#/definitions/", &v2["definitions"]) > 0);
    // Swagger 2.0 has neither allOf wrappers of refs nor nullable.
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("#/components/schemas/"));
    assert!(!text.contains("\"nullable\""));
}

#[test]
fn configmap_schema_as_kubectl_explain_reads_it() {
    let doc = v3(&with_certificate(), "api/v1");
    let schemas = &doc["components"]["schemas"];
    let cm = &schemas["io.k8s.api.core.v1.ConfigMap"];
    assert!(cm["properties"]["data"]["description"]
        .as_str()
        .unwrap()
        .contains("configuration data"));
    assert_eq!(
        cm["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "ConfigMap", "version": "v1"}])
    );
    assert!(cm["properties"]["metadata"]["allOf"][0]["$ref"]
        .as_str()
        .unwrap()
        .ends_with("meta.v1.ObjectMeta"));
    // kube does not require metadata (k8s-openapi's Rust type does)
    assert!(cm.get("required").is_none());
    assert_eq!(
        schemas["io.k8s.api.core.v1.ConfigMapList"]["x-kubernetes-group-version-kind"][0]["kind"],
        "ConfigMapList"
    );
    // Every kind of the document carries its GVK.
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Event",
    ] {
        let def = &schemas[format!("io.k8s.api.core.v1.{kind}")];
        assert_eq!(def["x-kubernetes-group-version-kind"][0]["kind"], kind);
        assert!(def["description"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

#[test]
fn patch_extensions_for_strategic_merge() {
    let docs = with_certificate();
    let core = v3(&docs, "api/v1");
    let s = &core["components"]["schemas"];
    let meta = &s["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"];
    assert_eq!(
        meta["ownerReferences"]["x-kubernetes-patch-strategy"],
        "merge"
    );
    assert_eq!(
        meta["ownerReferences"]["x-kubernetes-patch-merge-key"],
        "uid"
    );
    assert_eq!(
        meta["ownerReferences"]["x-kubernetes-list-map-keys"],
        json!(["uid"])
    );
    assert_eq!(meta["finalizers"]["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(meta["finalizers"]["x-kubernetes-list-type"], "set");
    let sa = &s["io.k8s.api.core.v1.ServiceAccount"]["properties"]["secrets"];
    assert_eq!(sa["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(sa["x-kubernetes-patch-strategy"], "merge");
    let cond = &s["io.k8s.api.core.v1.NamespaceStatus"]["properties"]["conditions"];
    assert_eq!(cond["x-kubernetes-patch-merge-key"], "type");
    assert_eq!(cond["x-kubernetes-list-type"], "map");
    assert_eq!(
        s["io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"]["x-kubernetes-map-type"],
        "atomic"
    );
    let rbac = v3(&docs, "apis/rbac.authorization.k8s.io/v1");
    assert_eq!(
        rbac["components"]["schemas"]["io.k8s.api.rbac.v1.Role"]["properties"]["rules"]
            ["x-kubernetes-list-type"],
        "atomic"
    );
    // The same in v2, where the extensions must survive conversion.
    let v2 = parse(&docs.v2_document().0);
    assert_eq!(
        v2["definitions"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
            ["ownerReferences"]["x-kubernetes-patch-merge-key"],
        "uid"
    );
}

#[test]
fn patch_media_types_decide_strategic_merge() {
    let docs = with_certificate();
    let core = v3(&docs, "api/v1");
    let all = [APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH];
    assert_eq!(patch_types(&core, "", "ConfigMap"), all);
    let op = operation(
        &core,
        "/api/v1/namespaces/{namespace}/configmaps/{name}",
        "patch",
    );
    assert_eq!(op["operationId"], "patchCoreV1NamespacedConfigMap");
    assert_eq!(op["x-kubernetes-action"], "patch");
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    // kubectl checks these on the PATCH operation before using them
    for p in ["dryRun", "fieldManager", "fieldValidation", "force"] {
        assert!(params.contains(&p), "{p}");
    }
    let cr = v3(&docs, "apis/cert-manager.io/v1");
    assert_eq!(
        patch_types(&cr, "cert-manager.io", "Certificate"),
        [APPLY_PATCH, JSON_PATCH, MERGE_PATCH]
    );
    // status and scale of a custom resource: no strategic merge patch either
    let status = operation(
        &cr,
        "/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}/status",
        "patch",
    );
    assert!(status["requestBody"]["content"]
        .get(STRATEGIC_MERGE_PATCH)
        .is_none());
    // v2: consumes lists the patch types
    let v2 = parse(&docs.v2_document().0);
    let consumes =
        &v2["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]["consumes"];
    assert!(consumes
        .as_array()
        .unwrap()
        .contains(&json!(STRATEGIC_MERGE_PATCH)));
    let consumes = &v2["paths"]
        ["/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}"]["patch"]
        ["consumes"];
    assert!(!consumes
        .as_array()
        .unwrap()
        .contains(&json!(STRATEGIC_MERGE_PATCH)));
}

#[test]
fn paths_and_operations_as_kube_publishes_them() {
    let docs = with_certificate();
    let core = v3(&docs, "api/v1");
    let expect = |doc: &Value, path: &str, method: &str, id: &str, action: &str, kind: &str| {
        let op = operation(doc, path, method);
        assert_eq!(op["operationId"], id, "{method} {path}");
        assert_eq!(op["x-kubernetes-action"], action, "{method} {path}");
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], kind);
    };
    let ns = "/api/v1/namespaces/{namespace}/configmaps";
    expect(
        &core,
        ns,
        "get",
        "listCoreV1NamespacedConfigMap",
        "list",
        "ConfigMap",
    );
    expect(
        &core,
        ns,
        "post",
        "createCoreV1NamespacedConfigMap",
        "post",
        "ConfigMap",
    );
    expect(
        &core,
        ns,
        "delete",
        "deleteCoreV1CollectionNamespacedConfigMap",
        "deletecollection",
        "ConfigMap",
    );
    let item = "/api/v1/namespaces/{namespace}/configmaps/{name}";
    expect(
        &core,
        item,
        "get",
        "readCoreV1NamespacedConfigMap",
        "get",
        "ConfigMap",
    );
    expect(
        &core,
        item,
        "put",
        "replaceCoreV1NamespacedConfigMap",
        "put",
        "ConfigMap",
    );
    expect(
        &core,
        item,
        "delete",
        "deleteCoreV1NamespacedConfigMap",
        "delete",
        "ConfigMap",
    );
    expect(
        &core,
        "/api/v1/configmaps",
        "get",
        "listCoreV1ConfigMapForAllNamespaces",
        "list",
        "ConfigMap",
    );
    expect(
        &core,
        "/api/v1/watch/namespaces/{namespace}/configmaps",
        "get",
        "watchCoreV1NamespacedConfigMapList",
        "watchlist",
        "ConfigMap",
    );
    expect(
        &core,
        "/api/v1/watch/namespaces/{namespace}/configmaps/{name}",
        "get",
        "watchCoreV1NamespacedConfigMap",
        "watch",
        "ConfigMap",
    );
    // Namespace: cluster-scoped, no deletecollection, status and finalize
    assert!(core["paths"]["/api/v1/namespaces"]["delete"].is_null());
    expect(
        &core,
        "/api/v1/namespaces/{name}/status",
        "patch",
        "patchCoreV1NamespaceStatus",
        "patch",
        "Namespace",
    );
    expect(
        &core,
        "/api/v1/namespaces/{name}/finalize",
        "put",
        "replaceCoreV1NamespaceFinalize",
        "put",
        "Namespace",
    );
    assert!(core["paths"]["/api/v1/namespaces/{name}/finalize"]["get"].is_null());
    // the namespace path parameter is declared where it is used
    let params = core["paths"][ns]["parameters"].to_string();
    assert!(params.contains("\"namespace\"") && params.contains("\"path\""));
    // responses name the right schemas
    assert_eq!(
        operation(&core, ns, "get")["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.ConfigMapList"
    );
    assert!(core["paths"]["/api/v1/"]["get"]["operationId"] == "getCoreV1APIResources");

    let rbac = v3(&docs, "apis/rbac.authorization.k8s.io/v1");
    expect(
        &rbac,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
        "patch",
        "patchRbacAuthorizationV1ClusterRole",
        "patch",
        "ClusterRole",
    );
    assert_eq!(
        operation(
            &rbac,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "get"
        )["tags"],
        json!(["rbacAuthorization_v1"])
    );
    // Review kinds are create-only.
    let authz = v3(&docs, "apis/authorization.k8s.io/v1");
    let ssar = &authz["paths"]["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"];
    expect(
        &authz,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "post",
        "createAuthorizationV1SelfSubjectAccessReview",
        "post",
        "SelfSubjectAccessReview",
    );
    assert_eq!(
        ssar.as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
            .count(),
        1
    );
    expect(
        &authz,
        "/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews",
        "post",
        "createAuthorizationV1NamespacedLocalSubjectAccessReview",
        "post",
        "LocalSubjectAccessReview",
    );
    assert!(authz["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| !p.contains("{name}")));
    let crd = v3(&docs, "apis/apiextensions.k8s.io/v1");
    expect(
        &crd,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}/status",
        "get",
        "readApiextensionsV1CustomResourceDefinitionStatus",
        "get",
        "CustomResourceDefinition",
    );
    // the custom resource's scale subresource speaks autoscaling/v1 Scale
    let cr = v3(&docs, "apis/cert-manager.io/v1");
    let scale = operation(
        &cr,
        "/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}/scale",
        "get",
    );
    assert_eq!(
        scale["operationId"],
        "readCertManagerIoV1NamespacedCertificateScale"
    );
    assert_eq!(
        scale["x-kubernetes-group-version-kind"]["group"],
        "autoscaling"
    );
    assert!(cr["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"].is_object());
    // custom resources are not served as protobuf
    let read = operation(
        &cr,
        "/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}",
        "get",
    );
    let media: Vec<&String> = read["responses"]["200"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(media, ["application/json", "application/yaml"]);
    let read = operation(
        &core,
        "/api/v1/namespaces/{namespace}/configmaps/{name}",
        "get",
    );
    assert!(read["responses"]["200"]["content"]
        .get("application/vnd.kubernetes.protobuf")
        .is_some());
}

#[test]
fn custom_resource_schema_v3_and_v2() {
    let docs = with_certificate();
    let cr = v3(&docs, "apis/cert-manager.io/v1");
    let def = &cr["components"]["schemas"]["io.cert-manager.v1.Certificate"];
    assert_eq!(
        def["x-kubernetes-group-version-kind"],
        json!([{"group": "cert-manager.io", "kind": "Certificate", "version": "v1"}])
    );
    assert_eq!(def["properties"]["apiVersion"]["type"], "string");
    assert_eq!(def["properties"]["kind"]["type"], "string");
    assert!(def["properties"]["metadata"]["allOf"][0]["$ref"]
        .as_str()
        .unwrap()
        .ends_with("meta.v1.ObjectMeta"));
    // v3 keeps the validations
    let spec = &def["properties"]["spec"]["properties"];
    assert_eq!(spec["secretName"]["pattern"], "^[a-z]+$");
    assert!(spec["issuerRef"]["oneOf"].is_array());
    assert!(cr["components"]["schemas"]["io.cert-manager.v1.CertificateList"].is_object());

    let v2 = parse(&docs.v2_document().0);
    let def = &v2["definitions"]["io.cert-manager.v1.Certificate"];
    assert_eq!(
        def["x-kubernetes-group-version-kind"][0]["kind"],
        "Certificate"
    );
    assert_eq!(
        def["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    let spec = &def["properties"]["spec"];
    assert!(spec.get("required").is_none());
    assert!(spec["properties"]["secretName"].get("pattern").is_none());
    assert_eq!(
        spec["properties"]["secretName"]["description"],
        "Name of the Secret."
    );
    assert!(spec["properties"]["duration"].get("type").is_none());
    assert!(spec["properties"]["usages"]["items"].get("enum").is_none());
    assert!(spec["properties"]["issuerRef"].get("oneOf").is_none());
    assert!(spec["properties"]["issuerRef"]
        .get("x-kubernetes-validations")
        .is_none());
    assert_eq!(
        def["properties"]["status"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(
        v2["definitions"]["io.cert-manager.v1.CertificateList"]["x-kubernetes-group-version-kind"]
            [0]["kind"],
        "CertificateList"
    );
    // built-ins are in v2 too, with their paths
    assert_eq!(
        v2["definitions"]["io.k8s.api.core.v1.ConfigMap"]["x-kubernetes-group-version-kind"][0]
            ["kind"],
        "ConfigMap"
    );
    assert_eq!(
        v2["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["get"]["operationId"],
        "listCoreV1NamespacedConfigMap"
    );
    // the caller's schema is left alone
    assert_eq!(
        certificate_schema()["properties"]["spec"]["required"],
        json!(["secretName"])
    );
}

#[test]
fn hashes_are_stable_and_follow_content() {
    let a = with_certificate();
    let b = with_certificate();
    for key in a.v3_keys() {
        assert_eq!(
            a.v3_document(key).unwrap().1,
            b.v3_document(key).unwrap().1,
            "{key}"
        );
        assert_eq!(a.v3_document(key).unwrap().0, b.v3_document(key).unwrap().0);
    }
    assert_eq!(a.v2_document().1, b.v2_document().1);
    assert_eq!(a.v2_document().1.len(), 128);

    let base = OpenApiBuilder::with_builtins().build();
    assert_ne!(base.v2_document().1, a.v2_document().1);
    assert!(base.v3_document("apis/cert-manager.io/v1").is_none());
    // adding a custom resource changes its group-version only
    assert_eq!(
        base.v3_document("api/v1").unwrap().1,
        a.v3_document("api/v1").unwrap().1
    );

    // a changed schema changes the hash of its group-version
    let mut changed = certificate_schema();
    changed["properties"]["spec"]["properties"]["secretName"]["description"] = json!("Another.");
    let mut builder = OpenApiBuilder::with_builtins();
    builder
        .add_custom_resource(
            custom("cert-manager.io", "Certificate", "certificates", true),
            &changed,
        )
        .unwrap();
    let c = builder.build();
    assert_ne!(
        c.v3_document("apis/cert-manager.io/v1").unwrap().1,
        a.v3_document("apis/cert-manager.io/v1").unwrap().1
    );
    assert_ne!(c.v2_document().1, a.v2_document().1);
    // repeated calls hand out the same shared bytes
    let (x, _) = a.v2_document();
    let (y, _) = a.v2_document();
    assert!(Arc::ptr_eq(&x, &y));
    assert!(!a.v2_protobuf().0.is_empty());
    assert_eq!(a.v2_protobuf().1, b.v2_protobuf().1);
}

#[test]
fn clones_are_independent_and_share_rendered_documents() {
    let base = OpenApiBuilder::with_builtins();
    let mut one = base.clone();
    one.add_custom_resource(
        custom("example.com", "Widget", "widgets", false),
        &json!({"type": "object"}),
    )
    .unwrap();
    let base_docs = base.clone().build();
    let one_docs = one.build();
    assert!(base_docs.v3_document("apis/example.com/v1").is_none());
    assert!(one_docs.v3_document("apis/example.com/v1").is_some());
    // the unchanged group-version was rendered once and shared
    let (x, _) = base_docs.v3_document("api/v1").unwrap();
    let (y, _) = one_docs.v3_document("api/v1").unwrap();
    assert!(Arc::ptr_eq(&x, &y));
    let cr = v3(&one_docs, "apis/example.com/v1");
    assert_eq!(
        operation(&cr, "/apis/example.com/v1/widgets/{name}", "get")["operationId"],
        "readExampleComV1Widget"
    );
}

#[test]
fn replacing_a_custom_resource() {
    let mut b = OpenApiBuilder::with_builtins();
    let info = custom("example.com", "Widget", "widgets", true);
    b.add_custom_resource(
        info.clone(),
        &json!({"type": "object", "properties": {"a": {"type": "string"}}}),
    )
    .unwrap();
    b.add_custom_resource(
        info,
        &json!({"type": "object", "properties": {"b": {"type": "string"}}}),
    )
    .unwrap();
    assert_eq!(
        b.resources().filter(|r| r.group == "example.com").count(),
        1
    );
    let doc = v3(&b.build(), "apis/example.com/v1");
    let props = &doc["components"]["schemas"]["com.example.v1.Widget"]["properties"];
    assert!(props.get("a").is_none());
    assert_eq!(props["b"]["type"], "string");
    // replacing with another kind under the same plural frees the old name
    let mut b = OpenApiBuilder::with_builtins();
    b.add_custom_resource(custom("example.com", "Widget", "widgets", true), &json!({}))
        .unwrap();
    b.add_custom_resource(custom("example.com", "Gadget", "widgets", true), &json!({}))
        .unwrap();
    b.add_custom_resource(custom("example.com", "Widget", "widgetz", true), &json!({}))
        .unwrap();
    let doc = v3(&b.build(), "apis/example.com/v1");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("com.example.v1.Gadget"));
    assert!(schemas.contains_key("com.example.v1.Widget"));
}

#[test]
fn bad_input_is_an_error() {
    let mut b = OpenApiBuilder::with_builtins();
    let info = custom("example.com", "Widget", "widgets", true);
    for schema in [
        json!("a string"),
        json!([1, 2]),
        json!(null),
        json!({"properties": []}),
        json!({"properties": {"x": {"$ref": "#/definitions/elsewhere"}}}),
    ] {
        assert!(matches!(
            b.add_custom_resource(info.clone(), &schema),
            Err(OpenApiError::InvalidSchema { .. })
        ));
    }
    // a custom resource whose definition name would be a built-in's
    let err = b
        .add_custom_resource(
            custom("core.api.k8s.io", "ConfigMap", "configmaps", true),
            &json!({}),
        )
        .unwrap_err();
    assert!(matches!(err, OpenApiError::Conflict { .. }), "{err}");
    let err = b
        .add_custom_resource(
            custom(
                "meta.apis.pkg.apimachinery.k8s.io",
                "ObjectMeta",
                "objectmetas",
                true,
            ),
            &json!({}),
        )
        .unwrap_err();
    assert!(matches!(err, OpenApiError::Conflict { .. }), "{err}");
    // a kind named like another's list
    b.add_custom_resource(info, &json!({})).unwrap();
    let err = b
        .add_custom_resource(
            custom("example.com", "WidgetList", "widgetlists", true),
            &json!({}),
        )
        .unwrap_err();
    assert!(matches!(err, OpenApiError::Conflict { .. }), "{err}");
    for (kind, plural) in [
        ("", "xs"),
        ("X", ""),
        ("X/Y", "xs"),
        ("X", "a/b"),
        ("X", "{name}"),
    ] {
        assert!(matches!(
            b.add_custom_resource(custom("example.com", kind, plural, true), &json!({})),
            Err(OpenApiError::InvalidResource(_))
        ));
    }
    assert!(matches!(
        b.add_builtin(custom("example.com", "Widget", "widgets", true)),
        Err(OpenApiError::UnknownKind(_))
    ));
    // the failures left the builder usable and its documents consistent
    let docs = b.build();
    for key in docs.v3_keys() {
        let doc = v3(&docs, key);
        check_refs(&doc, "#/components/schemas/", &doc["components"]["schemas"]);
    }
}

#[test]
fn builtins_cover_the_served_kinds() {
    let docs = OpenApiBuilder::with_builtins().build();
    let v2 = parse(&docs.v2_document().0);
    for r in builtin_resources() {
        let name = builtins::builtin_def_name(&r.group, &r.version, &r.kind);
        let def = &v2["definitions"][&name];
        assert_eq!(
            def["x-kubernetes-group-version-kind"][0],
            json!({"group": r.group, "kind": r.kind, "version": r.version}),
            "{name}"
        );
        let doc = v3(&docs, &r.gv_key());
        assert!(doc["components"]["schemas"][&name].is_object(), "{name}");
        assert!(r.strategic_merge_patch);
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z$/#]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("properties".to_string()),
                        Just("items".to_string()),
                        Just("additionalProperties".to_string()),
                        Just("nullable".to_string()),
                        Just("type".to_string()),
                        Just("allOf".to_string()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any schema is either rejected or yields documents whose refs all resolve.
        #[test]
        fn any_schema_is_handled(schema in json_value()) {
            let mut b = OpenApiBuilder::new();
            let info = custom("example.com", "Widget", "widgets", true);
            if b.add_custom_resource(info, &schema).is_ok() {
                let docs = b.build();
                let doc = v3(&docs, "apis/example.com/v1");
                check_refs(&doc, "#/components/schemas/", &doc["components"]["schemas"]);
                let v2 = parse(&docs.v2_document().0);
                check_refs(&v2, "#/definitions/", &v2["definitions"]);
                let _ = docs.v2_protobuf();
            }
        }
    }
}
