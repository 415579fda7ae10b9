//! `canopy start`: the all-in-one with its embedded PostgreSQL, driven by kubectl; a
//! restart keeps all data; bad flags and unusable databases get one clear line.

use std::process::Stdio;
use std::time::Duration;

use canopy_test_harness::Kubectl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_serves_root_and_restart_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let opts = canopy::StartOptions {
        root_directory: root.clone(),
        secure_port: 0,
        bind_address: "127.0.0.1".parse().unwrap(),
        database_url: None,
    };
    let running = canopy::start(opts.clone()).await.expect("canopy start");
    assert_eq!(
        running.kubeconfig,
        std::fs::canonicalize(&root)
            .unwrap()
            .join("admin.kubeconfig")
    );
    let cfg = std::fs::read_to_string(&running.kubeconfig).unwrap();
    assert!(cfg.contains("current-context: root"), "{cfg}");
    assert!(
        cfg.contains(&format!("server: {}/clusters/root", running.shard.url)),
        "{cfg}"
    );
    assert!(
        root.join("postgres").exists(),
        "embedded PostgreSQL lives under the root directory"
    );

    let k = Kubectl::new(&running.kubeconfig, dir.path());
    k.ok(&["create", "configmap", "kept", "--from-literal=a=b"])
        .await;
    assert!(k.ok(&["get", "ns"]).await.contains("default"));
    running.stop().await;

    let running = canopy::start(opts).await.expect("canopy restart");
    let k = Kubectl::new(&running.kubeconfig, dir.path());
    assert_eq!(
        k.ok(&["get", "cm", "kept", "-o", "jsonpath={.data.a}"])
            .await,
        "b"
    );
    running.stop().await;
}

async fn canopy_cli(args: &[&str]) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("canopy did not exit")
    .expect("run canopy");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_flags_and_databases_get_one_clear_line() {
    let (ok, err) = canopy_cli(&["start", "--secure-port", "not-a-port"]).await;
    assert!(!ok);
    assert!(
        err.contains("invalid value 'not-a-port' for '--secure-port"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (ok, err) = canopy_cli(&[
        "start",
        "--root-directory",
        dir.path().to_str().unwrap(),
        "--secure-port",
        "0",
        "--database-url",
        "postgres://canopy:hunter2@127.0.0.1:1/nothing",
    ])
    .await;
    assert!(!ok);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("canopy:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("--database-url"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the database password must not be printed: {err}"
    );
}
