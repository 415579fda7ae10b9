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
        shards: 1,
        limits: canopy_apiserver::Limits {
            max_request_body_bytes: 256 * 1024,
            max_object_bytes: 64 * 1024,
        },
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
    // the configured object limit
    let big = format!("--from-literal=a={}", "x".repeat(100 * 1024));
    let err = k.fails(&["create", "configmap", "big", &big]).await;
    assert!(err.contains("Request entity too large"), "{err}");
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
    let (ok, err) = canopy_cli(&["start", "--max-object-bytes", "lots"]).await;
    assert!(!ok);
    assert!(
        err.contains("invalid value 'lots' for '--max-object-bytes"),
        "{err}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_shards_serves_through_a_front_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let opts = canopy::StartOptions {
        root_directory: root.clone(),
        secure_port: 0,
        bind_address: "127.0.0.1".parse().unwrap(),
        database_url: None,
        shards: 3,
        limits: canopy_apiserver::Limits {
            max_request_body_bytes: 256 * 1024,
            max_object_bytes: 64 * 1024,
        },
    };
    let running = canopy::start(opts.clone())
        .await
        .expect("canopy start --shards 3");
    let proxy_url = running.proxy.as_ref().expect("a front-proxy").url.clone();
    assert_eq!(running.more_shards.len(), 2);
    let cfg = std::fs::read_to_string(&running.kubeconfig).unwrap();
    assert!(
        cfg.contains(&format!("server: {proxy_url}/clusters/root")),
        "{cfg}"
    );

    let k = Kubectl::new(&running.kubeconfig, dir.path());
    // all three shards registered in root
    let mut shards = String::new();
    for _ in 0..100 {
        shards = k.ok(&["get", "shards", "-o", "name"]).await;
        if shards.lines().count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shards.lines().count(), 3, "{shards}");
    // every shard holds the configured object limit, through the front-proxy too
    let big = format!("--from-literal=a={}", "x".repeat(100 * 1024));
    let err = k.fails(&["create", "configmap", "big", &big]).await;
    assert!(err.contains("Request entity too large"), "{err}");
    // every shard sees the global set through the cache server: all three Shards and
    // root's WorkspaceTypes
    assert!(running.cache.is_some(), "--shards runs a cache server");
    for s in std::iter::once(&running.shard).chain(running.more_shards.iter()) {
        let g = s.api.global().expect("replicating to the cache server");
        let mut seen = 0;
        for _ in 0..100 {
            seen = g.list_cluster("core.kcp.io/shards", "root").len();
            if seen == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen, 3, "Shards in {}'s global view", s.url);
        assert!(
            g.list_cluster("tenancy.kcp.io/workspacetypes", "root")
                .iter()
                .any(|t| t.object["metadata"]["name"] == "universal"),
            "root's WorkspaceTypes in the global view"
        );
    }
    // workspaces made through the proxy are usable through it, wherever they live
    for i in 0..6 {
        let ws = format!("apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata: {{name: w{i}}}\nspec: {{}}\n");
        k.apply_stdin(&["create", "-f", "-"], &ws).await;
    }
    let mut placed = std::collections::HashSet::new();
    for i in 0..6 {
        let name = format!("workspace/w{i}");
        k.ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Ready",
            &name,
            "--timeout=30s",
        ])
        .await;
        placed.insert(
            k.ok(&[
                "get",
                &name,
                "-o",
                "jsonpath={.metadata.annotations.internal\\.tenancy\\.kcp\\.io/shard}",
            ])
            .await,
        );
        let inside = Kubectl::new(&running.kubeconfig, dir.path());
        let server = format!("{proxy_url}/clusters/root:w{i}");
        inside
            .ok(&[
                "--server",
                &server,
                "create",
                "configmap",
                "hello",
                "--from-literal=k=v",
            ])
            .await;
        assert_eq!(
            inside
                .ok(&[
                    "--server",
                    &server,
                    "get",
                    "cm",
                    "hello",
                    "-o",
                    "jsonpath={.data.k}"
                ])
                .await,
            "v"
        );
    }
    assert!(
        placed.len() >= 2,
        "workspaces spread over shards: {placed:?}"
    );
    running.stop().await;

    // a restart keeps every shard's data
    let running = canopy::start(opts)
        .await
        .expect("canopy restart --shards 3");
    let proxy_url = running.proxy.as_ref().unwrap().url.clone();
    let k = Kubectl::new(&running.kubeconfig, dir.path());
    for i in 0..6 {
        let server = format!("{proxy_url}/clusters/root:w{i}");
        assert_eq!(
            k.ok(&[
                "--server",
                &server,
                "get",
                "cm",
                "hello",
                "-o",
                "jsonpath={.data.k}"
            ])
            .await,
            "v"
        );
    }
    running.stop().await;
}
