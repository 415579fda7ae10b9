//! The same basic flows with every kubectl this machine has (1.27 … 1.33 from the
//! google-cloud-cli, 1.35 from scripts/install-tools): real clients of every supported
//! minor version must work unmodified.

use std::path::PathBuf;

use canopy_test_harness::{Kubectl, TestShard};

/// kubectl binaries to test: `kubectl.1.NN` next to the `kubectl` on PATH, plus
/// `$CANOPY_KUBECTL`.
fn kubectls() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let main = canopy_test_harness::kubectl_binary();
    if let Ok(real) = std::fs::canonicalize(&main) {
        if let Some(dir) = real.parent() {
            for minor in 27..=34 {
                let p = dir.join(format!("kubectl.1.{minor}"));
                if p.exists() {
                    out.push((format!("1.{minor}"), p));
                }
            }
        }
    }
    if let Ok(p) = std::env::var("CANOPY_KUBECTL") {
        out.push(("CANOPY_KUBECTL".into(), PathBuf::from(p)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kubectl_version_creates_lists_patches_and_deletes() {
    let versions = kubectls();
    assert!(
        !versions.is_empty(),
        "no kubectl found: run scripts/install-tools (kubectl 1.35) or install google-cloud-cli's kubectl"
    );
    let env = TestShard::builder().start().await;
    for (i, (version, bin)) in versions.iter().enumerate() {
        let k = Kubectl::with_binary(
            bin.clone(),
            &env.kubeconfig,
            &env.dir.path().join(format!("k{i}")),
        );
        let ns = format!("v{i}");
        let ctx = format!("kubectl {version}");
        let out = k.ok(&["create", "ns", &ns]).await;
        assert!(out.contains("created"), "{ctx}: {out}");
        k.ok(&["create", "cm", "c", "-n", &ns, "--from-literal=a=b"])
            .await;
        let list = k.ok(&["get", "cm", "-n", &ns]).await;
        assert!(list.contains("c "), "{ctx}: {list}");
        k.ok(&["patch", "cm", "c", "-n", &ns, "-p", r#"{"data":{"x":"y"}}"#])
            .await;
        assert_eq!(
            k.ok(&["get", "cm", "c", "-n", &ns, "-o", "jsonpath={.data.x}"])
                .await,
            "y",
            "{ctx}"
        );
        let yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: {ns}\ndata:\n  k: v\n");
        k.apply_stdin(&["apply", "-f", "-"], &yaml).await;
        assert_eq!(
            k.run(&["auth", "can-i", "delete", "cm", "-n", &ns])
                .await
                .stdout
                .trim(),
            "yes",
            "{ctx}"
        );
        k.ok(&["delete", "cm", "c", "applied", "-n", &ns]).await;
        k.ok(&["delete", "ns", &ns, "--timeout=30s"]).await;
    }
}
