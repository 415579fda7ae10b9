//! The official Python `kubernetes` client against the shard (from scripts/install-tools'
//! virtualenv, or `$CANOPY_PYTHON`).

use canopy_test_harness::TestShard;

const SCRIPT: &str = r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
names = sorted(n.metadata.name for n in v1.list_namespace().items)
assert {"default", "kube-system", "kube-public"} <= set(names), names
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"k": "v"})
created = v1.create_namespaced_config_map("default", cm)
assert created.metadata.resource_version
v1.patch_namespaced_config_map("py", "default", {"data": {"k2": "v2"}})
got = v1.read_namespaced_config_map("py", "default")
assert got.data == {"k": "v", "k2": "v2"}, got.data
try:
    v1.read_namespaced_config_map("missing", "default")
    raise SystemExit("expected 404")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
w = watch.Watch()
seen = []
for ev in w.stream(v1.list_namespaced_config_map, "default", label_selector="from=python", timeout_seconds=5):
    seen.append((ev["type"], ev["object"].metadata.name))
    w.stop()
assert seen == [("ADDED", "py")], seen
v1.delete_namespaced_config_map("py", "default")
rbac = client.RbacAuthorizationV1Api()
assert any(r.metadata.name == "cluster-admin" for r in rbac.list_cluster_role().items)
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_kubernetes_client() {
    let python = std::env::var("CANOPY_PYTHON").unwrap_or_else(|_| {
        panic!("set CANOPY_PYTHON to a Python with the `kubernetes` package (scripts/install-tools creates .tools/venv)")
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} missing: run scripts/install-tools"
    );
    let env = TestShard::builder().start().await;
    let script = env.dir.path().join("client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&env.kubeconfig)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
