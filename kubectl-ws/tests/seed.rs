//! The kcp-101 article's transcript, run with real kubectl and this `kubectl-ws`
//! against a shard: the `kubectl ws` lines must match character for character.

mod common;

use canopy_test_harness::TestShard;
use common::Session;

fn crd_names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcp_101_transcript() {
    let env = TestShard::builder().start().await;
    let kubeconfig = env.dir.path().join("user.kubeconfig");
    std::fs::copy(&env.kubeconfig, &kubeconfig).unwrap();
    let s = Session::new(env.dir.path(), "seed", kubeconfig);
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/crds/cert-manager.crds.yaml"
    );

    assert_eq!(
        s.ok(&["ws", "current"]).await,
        "Current workspace is \"root\".\n"
    );
    s.ok(&["apply", "-f", fixture]).await;
    let cert_manager = vec![
        "certificaterequests.cert-manager.io",
        "certificates.cert-manager.io",
        "challenges.acme.cert-manager.io",
        "clusterissuers.cert-manager.io",
        "issuers.cert-manager.io",
        "orders.acme.cert-manager.io",
    ];
    let crds = s.ok(&["get", "crd"]).await;
    assert!(crds.starts_with("NAME"), "{crds}");
    assert!(
        crds.lines().next().unwrap().contains("CREATED AT"),
        "{crds}"
    );
    assert_eq!(crd_names(&crds), cert_manager);

    assert_eq!(
        s.ok(&["ws", "create", "blog-example"]).await,
        "Workspace \"blog-example\" (type root:organization) created.\n"
    );
    let ws = s.ok(&["get", "ws"]).await;
    let rows: Vec<Vec<&str>> = ws
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let url = |name: &str| format!("{}/clusters/root:{name}", env.url());
    assert_eq!(rows.len(), 2, "{ws}");
    assert_eq!(rows[0][0], "blog-example");
    assert!(rows[0].contains(&url("blog-example").as_str()), "{ws}");
    assert_eq!(rows[1][0], "users");
    assert!(rows[1].contains(&url("users").as_str()), "{ws}");

    assert_eq!(
        s.ok(&["ws", "use", "blog-example"]).await,
        "Current workspace is \"root:blog-example\" (type \"root:organization\").\n"
    );
    let (ok, out, err) = s.run(&["get", "crd"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "");
    assert_eq!(err, "No resources found\n");

    assert_eq!(
        s.ok(&["ws", ".."]).await,
        "Current workspace is \"root\".\n"
    );
    assert_eq!(crd_names(&s.ok(&["get", "crd"]).await), cert_manager);

    // `-` goes back, `:path` is absolute, and the tree shows both workspaces
    assert_eq!(
        s.ok(&["ws", "-"]).await,
        "Current workspace is \"root:blog-example\" (type \"root:organization\").\n"
    );
    assert_eq!(
        s.ok(&["ws", ":root"]).await,
        "Current workspace is \"root\".\n"
    );
    assert_eq!(
        s.ok(&["ws", "tree"]).await,
        ".\n└── root\n    ├── blog-example\n    └── users\n"
    );

    // home: root:users:<name with a hash of the user name>
    let home = format!(
        "Current workspace is \"root:users:{}\" (type \"root:home\").\n",
        canopy_core::resource::home_workspace_name("admin")
    );
    assert_eq!(s.ok(&["ws", "~"]).await, home);
    assert_eq!(s.ok(&["ws", "current"]).await, home);
    s.ok(&["ws", ":root"]).await;

    // errors are one line
    let (ok, _, err) = s.run(&["ws", "use", "nope"]).await;
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("\"root:nope\""), "{err}");
}
