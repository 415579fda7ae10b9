//! `cargo bench -p canopy-schema`: compile the prometheus-operator
//! `Prometheus` schema once, then default, prune and validate a large
//! object many times. Plain timing loop, no external harness.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use canopy_schema::CompiledSchema;
use serde_json::json;

fn main() {
    let schema = common::schema_of("prometheus-operator.crds.yaml", "Prometheus");
    let t = Instant::now();
    let compiled = CompiledSchema::compile(&schema).unwrap();
    println!(
        "compile: {:?} ({} bytes of schema)",
        t.elapsed(),
        schema.to_string().len()
    );

    let containers: Vec<_> = (0..50)
        .map(|i| {
            json!({"name": format!("c{i}"), "image": "busybox",
                   "env": (0..20).map(|j| json!({"name": format!("E{j}"), "value": "v"})).collect::<Vec<_>>(),
                   "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}})
        })
        .collect();
    let obj = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": {"name": "p"},
                     "spec": {"replicas": 2, "containers": containers}});
    let n = 1000;
    let t = Instant::now();
    for _ in 0..n {
        assert!(compiled.validate(&obj).is_empty());
    }
    println!(
        "validate: {:?} per object of {} bytes",
        t.elapsed() / n,
        obj.to_string().len()
    );
    let t = Instant::now();
    for _ in 0..n {
        let mut o = obj.clone();
        compiled.default(&mut o);
        compiled.prune(&mut o);
    }
    println!("clone+default+prune: {:?} per object", t.elapsed() / n);
}
