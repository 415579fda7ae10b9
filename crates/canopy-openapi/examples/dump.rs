fn main() {
    use canopy_openapi::*;
    let mut b = OpenApiBuilder::new();
    let i = |g: &str, k: &str, p: &str, ns: bool| ResourceInfo { group: g.into(), version: "v1".into(), kind: k.into(), plural: p.into(), namespaced: ns, verbs: ["create","delete","deletecollection","get","list","patch","update","watch"].map(String::from).to_vec(), subresources: vec!["status".into()], strategic_merge_patch: true };
    b.add_builtin(i("", "ConfigMap", "configmaps", true)).unwrap();
    b.add_builtin(i("", "Namespace", "namespaces", false)).unwrap();
    b.add_builtin(i("apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions", false)).unwrap();
    let d = b.build();
    let (v3, _) = d.v3_document("api/v1").unwrap();
    std::fs::write("/tmp/v3core.json", serde_json::to_string_pretty(&serde_json::from_slice::<serde_json::Value>(&v3).unwrap()).unwrap()).unwrap();
    let (v3, _) = d.v3_document("apis/apiextensions.k8s.io/v1").unwrap();
    std::fs::write("/tmp/v3crd.json", serde_json::to_string_pretty(&serde_json::from_slice::<serde_json::Value>(&v3).unwrap()).unwrap()).unwrap();
    let (v2, _) = d.v2_document();
    std::fs::write("/tmp/v2.json", serde_json::to_string_pretty(&serde_json::from_slice::<serde_json::Value>(&v2).unwrap()).unwrap()).unwrap();
}
