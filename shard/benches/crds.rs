//! CRD benchmark (issue 3).
//!
//! 1. The 19 CRDs of `testdata/crds` created through the API and waited for until every
//!    one is Established and served — end to end.
//! 2. Creating custom resources of prometheus-operator's `Prometheus` (a schema of over
//!    400 KB: validation, pruning, defaulting and CEL compiled once per CRD version)
//!    against creating ConfigMaps whose JSON has the same size, sequentially from one
//!    client, p50 and mean per create.
//!
//! `cargo bench -p shard --bench crds` runs 300 creates of each; under `cargo test` it
//! runs 10 of each as a check that the flow works.

use std::time::{Duration, Instant};

use canopy_test_harness::{Client, TestShard};
use serde::Deserialize;
use serde_json::{json, Value};

fn crds() -> Vec<Value> {
    let mut out = Vec::new();
    for f in ["cert-manager", "argo-cd", "prometheus-operator"] {
        let path = format!(
            "{}/../testdata/crds/{f}.crds.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("testdata");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(doc).expect("yaml");
            let j: Value = serde_json::to_value(v).expect("json");
            if j["kind"] == "CustomResourceDefinition" {
                out.push(j);
            }
        }
    }
    out
}

fn prometheus(i: usize) -> Value {
    let relabel: Vec<Value> = (0..5)
        .map(|j| json!({"sourceLabels": ["__name__", format!("label_{j}")], "regex": format!("metric_{j}_.*"), "targetLabel": format!("t{j}"), "replacement": "$1"}))
        .collect();
    let remote: Vec<Value> = (0..20)
        .map(|j| json!({"url": format!("https://remote-{j}.example.com/api/v1/write"), "name": format!("remote-{j}"), "remoteTimeout": "30s", "writeRelabelConfigs": relabel}))
        .collect();
    let labels: serde_json::Map<String, Value> = (0..100)
        .map(|j| (format!("label_{j}"), json!(format!("value-{j}"))))
        .collect();
    json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": format!("prom-{i}"), "namespace": "default"},
        "spec": {
            "replicas": 2, "serviceAccountName": "prometheus", "scrapeInterval": "30s",
            "serviceMonitorSelector": {"matchLabels": {"team": "platform"}},
            "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
            "externalLabels": labels, "remoteWrite": remote,
            "retention": "15d", "walCompression": true, "logLevel": "info",
        }
    })
}

/// A ConfigMap holding a real configuration file of `size` bytes of JSON: the
/// Prometheus object's own YAML (as `prometheus.yaml`), repeated or cut to size.
fn configmap_text(i: usize, size: usize) -> Value {
    let yaml = serde_yaml::to_string(&prometheus(i)).expect("yaml");
    let mut text = String::new();
    while text.len() < size {
        text.push_str(&yaml);
    }
    // cut so that the JSON (with escaped newlines and quotes) has the wanted size
    let mut cut = text.len();
    loop {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cmt-{i}"), "namespace": "default"}, "data": {"prometheus.yaml": &text[..cut]}});
        let len = v.to_string().len();
        if len <= size || cut == 0 {
            return v;
        }
        let over = len - size;
        cut = cut.saturating_sub(over.max(1));
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
    }
}

/// A ConfigMap of `size` bytes of JSON whose one value is a run of `x` (the cheapest
/// possible: it compresses to almost nothing).
fn configmap_like(i: usize, size: usize) -> Value {
    let base = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": "default"}, "data": {"blob": ""}});
    let pad = size.saturating_sub(base.to_string().len());
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": "default"}, "data": {"blob": "x".repeat(pad)}})
}

async fn time_creates(c: &Client, path: &str, objs: Vec<Value>) -> Vec<Duration> {
    let mut out = Vec::with_capacity(objs.len());
    for o in objs {
        let t = Instant::now();
        let (code, body) = c.post(path, o).await;
        out.push(t.elapsed());
        assert_eq!(code, 201, "{body}");
    }
    out.sort();
    out
}

fn stats(d: &[Duration]) -> (f64, f64) {
    let p50 = d[d.len() / 2].as_secs_f64() * 1000.0;
    let mean = d.iter().map(Duration::as_secs_f64).sum::<f64>() / d.len() as f64 * 1000.0;
    (p50, mean)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 300 } else { 10 };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(n));
}

async fn run(n: usize) {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let all = crds();
    assert_eq!(all.len(), 19);

    // 1. all 19 CRDs, end to end
    let t = Instant::now();
    for crd in &all {
        let (code, body) = c
            .post(
                "/clusters/root/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                crd.clone(),
            )
            .await;
        assert_eq!(code, 201, "{}", body["message"]);
    }
    loop {
        let (_, list) = c
            .get("/clusters/root/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            .await;
        let established = list["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|crd| {
                        crd["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Established" && c["status"] == "True")
                        })
                    })
                    .count()
            })
            .unwrap_or(0);
        if established == 19
            && c.get("/clusters/root/apis/monitoring.coreos.com/v1/namespaces/default/prometheuses")
                .await
                .0
                == 200
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "CRDs not Established in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let crds_time = t.elapsed();

    // 2. Prometheus objects against same-sized ConfigMaps
    let size = prometheus(0).to_string().len();
    // warm every path once
    c.post(
        "/clusters/root/api/v1/namespaces/default/configmaps",
        configmap_like(999_999, size),
    )
    .await;
    c.post(
        "/clusters/root/api/v1/namespaces/default/configmaps",
        configmap_text(999_999, size),
    )
    .await;
    c.post(
        "/clusters/root/apis/monitoring.coreos.com/v1/namespaces/default/prometheuses",
        prometheus(999_999),
    )
    .await;
    // interleaved, so that whatever the machine does meanwhile (checkpoints, vacuum)
    // weighs on all three alike
    let (mut cm_times, mut text_times, mut prom_times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        cm_times.extend(
            time_creates(
                &c,
                "/clusters/root/api/v1/namespaces/default/configmaps",
                vec![configmap_like(i, size)],
            )
            .await,
        );
        text_times.extend(
            time_creates(
                &c,
                "/clusters/root/api/v1/namespaces/default/configmaps",
                vec![configmap_text(i, size)],
            )
            .await,
        );
        prom_times.extend(
            time_creates(
                &c,
                "/clusters/root/apis/monitoring.coreos.com/v1/namespaces/default/prometheuses",
                vec![prometheus(i)],
            )
            .await,
        );
    }
    let (cm50, cm_mean) = stats(&cm_times);
    let (t50, t_mean) = stats(&text_times);
    let (p50, p_mean) = stats(&prom_times);
    println!(
        "19 CRDs created and Established (served): {:.2} s",
        crds_time.as_secs_f64()
    );
    println!("object size: {size} bytes of JSON; {n} sequential creates each");
    println!("ConfigMap create (a run of x): p50 {cm50:.2} ms, mean {cm_mean:.2} ms");
    println!("ConfigMap create (a YAML file): p50 {t50:.2} ms, mean {t_mean:.2} ms");
    println!("Prometheus create: p50 {p50:.2} ms, mean {p_mean:.2} ms");
    println!(
        "ratio Prometheus / ConfigMap (a YAML file): p50 {:.2}x, mean {:.2}x",
        p50 / t50,
        p_mean / t_mean
    );
    println!(
        "ratio Prometheus / ConfigMap (a run of x): p50 {:.2}x, mean {:.2}x",
        p50 / cm50,
        p_mean / cm_mean
    );
}
