//! Real-world CRDs (cert-manager, prometheus-operator, Argo CD): every schema
//! passes kube's CRD checks and compiles, and typical objects validate.

mod common;

use canopy_schema::{validate_crd_schema_with, CompiledSchema, CrdSchemaOptions};
use common::{all_crds, schema_of};
use serde_json::{json, Value};

#[test]
fn every_fixture_crd_is_accepted_and_compiles() {
    let crds = all_crds();
    assert!(crds.len() >= 19, "only {} CRDs", crds.len());
    let mut schemas = 0;
    for crd in &crds {
        let name = crd["metadata"]["name"].as_str().unwrap();
        for (i, v) in crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let schema = &v["schema"]["openAPIV3Schema"];
            let status = v
                .get("subresources")
                .and_then(|s| s.get("status"))
                .is_some();
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            let errs = validate_crd_schema_with(
                schema,
                &path,
                CrdSchemaOptions {
                    status_subresource: status,
                },
            );
            assert!(
                errs.is_empty(),
                "{name} {}: {:#?}",
                v["name"],
                errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            );
            CompiledSchema::compile(schema).unwrap_or_else(|e| panic!("{name}: {e}"));
            schemas += 1;
        }
    }
    assert!(schemas >= crds.len());
}

fn check(schema: &Value, mut obj: Value) -> Value {
    let compiled = CompiledSchema::compile(schema).unwrap();
    let pruned = compiled.prune(&mut obj);
    assert!(pruned.is_empty(), "pruned {pruned:?}");
    compiled.default(&mut obj);
    let errs: Vec<String> = compiled
        .validate(&obj)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(errs.is_empty(), "{errs:#?}");
    obj
}

#[test]
fn cert_manager_certificate() {
    let schema = schema_of("cert-manager.crds.yaml", "Certificate");
    let obj = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "secretName": "web-tls",
            "dnsNames": ["example.com", "www.example.com"],
            "duration": "2160h",
            "renewBefore": "360h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "usages": ["server auth", "digital signature"]
        }
    });
    check(&schema, obj.clone());

    let compiled = CompiledSchema::compile(&schema).unwrap();
    let mut bad = obj;
    bad["spec"]["privateKey"]["algorithm"] = json!("DSA");
    bad["spec"].as_object_mut().unwrap().remove("issuerRef");
    let errs: Vec<String> = compiled
        .validate(&bad)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(errs.iter().any(|e| e.starts_with(r#"spec.privateKey.algorithm: Unsupported value: "DSA": supported values: "RSA", "ECDSA", "Ed25519""#)), "{errs:#?}");
    assert!(
        errs.contains(&"spec.issuerRef: Required value".to_string()),
        "{errs:#?}"
    );
}

#[test]
fn prometheus_service_monitor() {
    let schema = schema_of("prometheus-operator.crds.yaml", "ServiceMonitor");
    let obj = json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "app", "namespace": "monitoring", "labels": {"release": "prom"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "namespaceSelector": {"matchNames": ["default"]},
            "endpoints": [
                {"port": "http", "path": "/metrics", "interval": "30s", "scheme": "http",
                 "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod", "action": "replace"}]},
                {"targetPort": 9090, "interval": "1m"}
            ]
        }
    });
    check(&schema, obj.clone());

    let compiled = CompiledSchema::compile(&schema).unwrap();
    let mut bad = obj;
    bad["spec"]["endpoints"][0]["interval"] = json!("30 seconds");
    let errs: Vec<String> = compiled
        .validate(&bad)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with(r#"spec.endpoints[0].interval: Invalid value: "30 seconds": spec.endpoints[0].interval in body should match '^(0|(([0-9]+)y)?"#), "{errs:#?}");
}

#[test]
fn argo_cd_application() {
    let schema = schema_of("argo-cd.crds.yaml", "Application");
    let obj = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "guestbook", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://github.com/argoproj/argocd-example-apps.git", "targetRevision": "HEAD", "path": "guestbook",
                       "helm": {"valueFiles": ["values.yaml"], "parameters": [{"name": "replicas", "value": "2"}]}},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "guestbook"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"],
                           "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}}}
        }
    });
    check(&schema, obj.clone());

    let compiled = CompiledSchema::compile(&schema).unwrap();
    let mut bad = obj;
    bad["spec"]["syncPolicy"]["retry"]["limit"] = json!("five");
    bad["spec"]["unknownField"] = json!(1);
    let pruned = compiled.prune(&mut bad);
    assert_eq!(pruned, vec!["spec.unknownField"]);
    let errs: Vec<String> = compiled
        .validate(&bad)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        errs,
        vec![
            r#"spec.syncPolicy.retry.limit: Invalid value: "string": spec.syncPolicy.retry.limit in body must be of type integer: "string""#
        ]
    );
}
