//! Compile the ~400 KB prometheus-operator `Prometheus` schema once and
//! validate many large objects with it.

mod common;

use std::time::Instant;

use canopy_schema::CompiledSchema;
use serde_json::{json, Value};

/// A large, valid `Prometheus` object: many containers, env vars, volumes.
pub fn big_prometheus(containers: usize) -> Value {
    let container = |i: usize| {
        json!({
            "name": format!("sidecar-{i}"),
            "image": "quay.io/prometheus/prometheus:v2.50.0",
            "args": ["--config.file=/etc/prometheus/prometheus.yml", "--web.enable-lifecycle"],
            "env": (0..20).map(|j| json!({"name": format!("VAR_{j}"), "value": format!("value-{j}")})).collect::<Vec<_>>(),
            "ports": [{"name": "web", "containerPort": 9090 + i as i64, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "250m", "memory": "256Mi"}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/prometheus", "readOnly": true}],
            "livenessProbe": {"httpGet": {"path": "/-/healthy", "port": "web"}, "initialDelaySeconds": 10, "periodSeconds": 5},
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "capabilities": {"drop": ["ALL"]}}
        })
    };
    json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "k8s", "namespace": "monitoring"},
        "spec": {
            "replicas": 2,
            "version": "v2.50.0",
            "serviceAccountName": "prometheus-k8s",
            "retention": "15d",
            "scrapeInterval": "30s",
            "evaluationInterval": "30s",
            "serviceMonitorSelector": {"matchLabels": {"team": "frontend"}},
            "ruleSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["alert-rules"]}]},
            "resources": {"requests": {"memory": "400Mi"}},
            "alerting": {"alertmanagers": [{"namespace": "monitoring", "name": "alertmanager-main", "port": "web"}]},
            "externalLabels": {"cluster": "prod"},
            "containers": (0..containers).map(container).collect::<Vec<_>>(),
            "volumes": (0..20).map(|i| json!({"name": format!("v{i}"), "configMap": {"name": format!("cm-{i}")}})).collect::<Vec<_>>(),
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "monitoring", "effect": "NoSchedule"}],
            "storage": {"volumeClaimTemplate": {"spec": {"storageClassName": "ssd", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "40Gi"}}}}}
        }
    })
}

#[test]
fn prometheus_schema_compiles_once_and_validates_fast() {
    let schema = common::schema_of("prometheus-operator.crds.yaml", "Prometheus");
    let size = schema.to_string().len();
    assert!(size > 300_000, "schema is {size} bytes");

    let t = Instant::now();
    let compiled = CompiledSchema::compile(&schema).unwrap();
    let compile_time = t.elapsed();

    let obj = big_prometheus(30);
    let obj_size = obj.to_string().len();
    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        let mut o = obj.clone();
        compiled.default(&mut o);
        assert!(compiled.prune(&mut o).is_empty());
        let errs = compiled.validate(&o);
        assert!(
            errs.is_empty(),
            "{:#?}",
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        );
    }
    let per = t.elapsed() / n;
    eprintln!("schema {size} bytes compiled in {compile_time:?}; object of {obj_size} bytes defaulted+pruned+validated in {per:?}");
    // generous even for unoptimized test builds on a loaded 2-core machine
    assert!(per.as_millis() < 500, "validation took {per:?}");

    // the compiled schema is shared across threads
    let shared = std::sync::Arc::new(compiled);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let s = shared.clone();
            let o = obj.clone();
            std::thread::spawn(move || s.validate(&o).len())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 0);
    }
}
