//! Compiles the CEL rules of real CRDs (cert-manager, prometheus-operator),
//! which kube-apiserver accepts, and evaluates a few of them.

use canopy_cel::{CompiledRules, FieldPath};
use serde::Deserialize;
use serde_json::{json, Value};

fn crds(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!(
        "{}/../../testdata/crds/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| {
            let v = serde_yaml::Value::deserialize(d).ok()?;
            let j: Value = serde_json::to_value(v).ok()?;
            (j.get("kind") == Some(&json!("CustomResourceDefinition"))).then_some(j)
        })
        .collect()
}

/// Compiles every version of every CRD; returns (crd name, version, rules).
fn compile_all(file: &str) -> Vec<(String, String, CompiledRules)> {
    let mut out = Vec::new();
    for crd in crds(file) {
        let name = crd["metadata"]["name"].as_str().unwrap().to_string();
        for (i, v) in crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let schema = &v["schema"]["openAPIV3Schema"];
            let path = FieldPath::new(&format!("spec.versions[{i}].schema.openAPIV3Schema"));
            let rules = CompiledRules::compile_at(schema, &path).unwrap_or_else(|errs| {
                panic!(
                    "{name}: {}",
                    errs.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            });
            out.push((name.clone(), v["name"].as_str().unwrap().to_string(), rules));
        }
    }
    out
}

fn count_rules(file: &str) -> usize {
    let text = std::fs::read_to_string(format!(
        "{}/../../testdata/crds/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    text.lines()
        .filter(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with("rule:")
        })
        .count()
}

#[test]
fn cert_manager_rules_compile() {
    let all = compile_all("cert-manager.crds.yaml");
    let n: usize = all.iter().map(|(_, _, r)| r.rule_count()).sum();
    assert_eq!(n, count_rules("cert-manager.crds.yaml"));
    assert!(n >= 2);
}

#[test]
fn prometheus_operator_rules_compile() {
    let all = compile_all("prometheus-operator.crds.yaml");
    let n: usize = all.iter().map(|(_, _, r)| r.rule_count()).sum();
    assert_eq!(n, count_rules("prometheus-operator.crds.yaml"));
    assert!(n >= 10);
    assert!(all.iter().all(|(_, _, r)| !r.has_transition_rules()));
}

fn rules_of(file: &str, crd: &str) -> CompiledRules {
    compile_all(file)
        .into_iter()
        .find(|(n, _, _)| n == crd)
        .map(|(_, _, r)| r)
        .unwrap()
}

#[test]
fn cert_manager_issuer_rules_evaluate() {
    let rules = rules_of("cert-manager.crds.yaml", "issuers.cert-manager.io");
    let ok = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "x"},
        "spec": {"venafi": {"zone": "z", "tpp": {"url": "https://tpp", "credentialsRef": {"name": "c"}}}}});
    assert_eq!(rules.validate(&ok, None), vec![]);
    let bad = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "x"},
        "spec": {"venafi": {"zone": "z"}}});
    let errs: Vec<String> = rules
        .validate(&bad, None)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        errs,
        vec!["spec.venafi: Invalid value: \"object\": exactly one of tpp, cloud, or ngts must be configured"]
    );
}

#[test]
fn prometheus_daemonset_rules_evaluate() {
    let rules = rules_of(
        "prometheus-operator.crds.yaml",
        "prometheusagents.monitoring.coreos.com",
    );
    let obj = json!({"apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "PrometheusAgent",
        "metadata": {"name": "p"}, "spec": {"mode": "DaemonSet", "replicas": 2}});
    let errs: Vec<String> = rules
        .validate(&obj, None)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        errs.contains(
            &"spec: Invalid value: \"object\": replicas cannot be set when mode is DaemonSet"
                .to_string()
        ),
        "{errs:?}"
    );
    let ok = json!({"apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "PrometheusAgent",
        "metadata": {"name": "p"}, "spec": {"replicas": 2}});
    assert_eq!(rules.validate(&ok, None), vec![]);
}
