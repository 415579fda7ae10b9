//! helm 4 (server-side apply by default, release Secrets sent as protobuf) installs,
//! upgrades, lists and uninstalls a chart.

use std::path::PathBuf;
use std::process::Stdio;

use canopy_test_harness::{Kubectl, TestShard};

fn helm_binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join("helm");
        if p.exists() {
            return p;
        }
    }
    panic!("helm not found: run scripts/install-tools (installs helm 4 into .tools/bin) and put .tools/bin on PATH");
}

async fn helm(env: &TestShard, args: &[&str]) -> String {
    let out = tokio::process::Command::new(helm_binary())
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HELM_CACHE_HOME", env.dir.path().join("helm-cache"))
        .env("HELM_CONFIG_HOME", env.dir.path().join("helm-config"))
        .env("HELM_DATA_HOME", env.dir.path().join("helm-data"))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run helm");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall() {
    let env = TestShard::builder().start().await;
    let chart = env.dir.path().join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "greeting: hello\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    )
    .unwrap();
    let chart = chart.to_str().unwrap();
    assert!(helm(&env, &["install", "demo", chart])
        .await
        .contains("STATUS: deployed"));
    let k = Kubectl::new(&env.kubeconfig, env.dir.path());
    assert_eq!(
        k.ok(&["get", "cm", "demo-cfg", "-o", "jsonpath={.data.greeting}"])
            .await,
        "hello"
    );
    assert!(helm(
        &env,
        &["upgrade", "demo", chart, "--set", "greeting=bonjour"]
    )
    .await
    .contains("REVISION: 2"));
    assert_eq!(
        k.ok(&["get", "cm", "demo-cfg", "-o", "jsonpath={.data.greeting}"])
            .await,
        "bonjour"
    );
    let list = helm(&env, &["list"]).await;
    assert!(list.contains("demo") && list.contains("deployed"), "{list}");
    // helm keeps releases in Secrets
    assert!(k
        .ok(&["get", "secrets", "-o", "name"])
        .await
        .contains("sh.helm.release.v1.demo.v2"));
    helm(&env, &["uninstall", "demo"]).await;
    assert!(k
        .fails(&["get", "cm", "demo-cfg"])
        .await
        .contains("not found"));
}
