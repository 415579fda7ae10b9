#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;

/// Every CRD document of a fixture file.
pub fn crds(file: &str) -> Vec<Value> {
    let path = format!("{}/../../testdata/crds/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|doc| {
            let v = Value::deserialize(doc).expect("yaml");
            (v.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")).then_some(v)
        })
        .collect()
}

pub fn all_crds() -> Vec<Value> {
    [
        "cert-manager.crds.yaml",
        "prometheus-operator.crds.yaml",
        "argo-cd.crds.yaml",
    ]
    .iter()
    .flat_map(|f| crds(f))
    .collect()
}

/// The openAPIV3Schema of `kind` (first version), and its status flag.
pub fn schema_of(file: &str, kind: &str) -> Value {
    crds(file)
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .map(|c| c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}
