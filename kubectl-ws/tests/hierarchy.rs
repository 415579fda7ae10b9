//! `kubectl ws` through a four-level hierarchy with real kubectl: create with types and
//! `--enter`, relative and absolute moves, `..` at each level, `tree` from any level,
//! deletion of a middle level, and what a second user sees.

mod common;

use canopy_test_harness::TestShard;
use common::Session;

fn session(env: &TestShard, name: &str, kubeconfig: std::path::PathBuf) -> Session {
    Session::new(env.dir.path(), name, kubeconfig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_levels_tree_and_middle_deletion() {
    let env = TestShard::builder().start().await;
    let kubeconfig = env.dir.path().join("admin-copy.kubeconfig");
    std::fs::copy(&env.kubeconfig, &kubeconfig).unwrap();
    let s = session(&env, "admin", kubeconfig);

    assert_eq!(
        s.ok(&["ws", "create", "acme", "--enter"]).await,
        "Workspace \"acme\" (type root:organization) created.\nCurrent workspace is \"root:acme\" (type \"root:organization\").\n"
    );
    assert_eq!(
        s.ok(&["ws", "create", "team-a", "--type", "team", "--enter"]).await,
        "Workspace \"team-a\" (type root:team) created.\nCurrent workspace is \"root:acme:team-a\" (type \"root:team\").\n"
    );
    s.ok(&["ws", "create", "app"]).await;
    s.ok(&["ws", "create", "db"]).await;
    assert_eq!(
        s.ok(&["ws", "app"]).await,
        "Current workspace is \"root:acme:team-a:app\" (type \"root:universal\").\n"
    );
    s.ok(&["create", "configmap", "deep", "--from-literal=k=v"])
        .await;
    assert_eq!(s.ok(&["ws", "tree"]).await, ".\n└── root:acme:team-a:app\n");
    assert_eq!(
        s.ok(&["ws", ".."]).await,
        "Current workspace is \"root:acme:team-a\" (type \"root:team\").\n"
    );
    assert_eq!(
        s.ok(&["ws", "tree"]).await,
        ".\n└── root:acme:team-a\n    ├── app\n    └── db\n"
    );
    s.ok(&["ws", ":root"]).await;
    // `--ignore-existing` makes creating again a no-op; without it, an error
    let (ok, _, err) = s.run(&["ws", "create", "acme"]).await;
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    s.ok(&["ws", "create", "acme", "--ignore-existing"]).await;
    assert_eq!(
        s.ok(&["ws", "tree"]).await,
        ".\n└── root\n    ├── acme\n    │   └── team-a\n    │       ├── app\n    │       └── db\n    └── users\n"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "configmap",
            "deep",
            "-o",
            "jsonpath={.data.k}",
            "--server",
            &format!("{}/clusters/root:acme:team-a:app", env.url())
        ])
        .await,
        "v"
    );

    // a second user sees none of it
    let bob = session(
        &env,
        "bob",
        env.kubeconfig_for("bob", "root", &env.token("bob", &[])),
    );
    assert_eq!(bob.ok(&["ws", "tree"]).await, ".\n└── root\n");
    let (ok, _, err) = bob.run(&["ws", "use", ":root:acme:team-a"]).await;
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (ok, _, err_missing) = bob.run(&["ws", "use", ":root:acme:nothing"]).await;
    assert!(!ok);
    assert_eq!(
        err.replace("team-a", "X"),
        err_missing.replace("nothing", "X"),
        "an existing and a missing workspace look the same"
    );

    // deleting the middle level removes what is below it
    s.ok(&[
        "delete",
        "workspace",
        "team-a",
        "--server",
        &format!("{}/clusters/root:acme", env.url()),
    ])
    .await;
    let mut tree = String::new();
    for _ in 0..100 {
        tree = s.ok(&["ws", "tree"]).await;
        if !tree.contains("team-a") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(tree, ".\n└── root\n    ├── acme\n    └── users\n");
    let (ok, _, _) = s
        .run(&[
            "get",
            "configmap",
            "deep",
            "--server",
            &format!("{}/clusters/root:acme:team-a:app", env.url()),
        ])
        .await;
    assert!(!ok);
}
