//! The shard driven by unmodified kubectl (`$CANOPY_KUBECTL`, kubectl 1.35 from
//! `scripts/install-tools`, or `kubectl` on PATH), against real PostgreSQL.

use std::time::Duration;

use canopy_test_harness::TestShard;

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_configmaps_secrets_with_typed_protobuf_clients() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();

    let ns = k.ok(&["get", "ns"]).await;
    for n in ["default", "kube-public", "kube-system"] {
        assert!(
            ns.lines().any(|l| l.starts_with(n) && l.contains("Active")),
            "{ns}"
        );
    }
    assert!(ns.starts_with("NAME"), "table output: {ns}");

    // `kubectl create` sends protobuf bodies
    assert_eq!(
        k.ok(&["create", "ns", "team"]).await.trim(),
        "namespace/team created"
    );
    assert_eq!(
        k.ok(&[
            "create",
            "configmap",
            "app",
            "-n",
            "team",
            "--from-literal=greeting=hello",
            "--from-literal=x=y"
        ])
        .await
        .trim(),
        "configmap/app created"
    );
    let cms = k.ok(&["get", "cm", "-n", "team"]).await;
    let row = cms
        .lines()
        .find(|l| l.starts_with("app "))
        .unwrap_or_else(|| panic!("{cms}"));
    assert!(
        row.split_whitespace().nth(1) == Some("2"),
        "DATA column: {cms}"
    );
    // every namespace gets kube-root-ca.crt and a default service account
    eventually("kube-root-ca.crt", || async {
        k.run(&["get", "cm", "kube-root-ca.crt", "-n", "team"])
            .await
            .success
    })
    .await;
    eventually("default sa", || async {
        k.run(&["get", "sa", "default", "-n", "team"]).await.success
    })
    .await;

    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "app",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.greeting}"
        ])
        .await,
        "hello"
    );

    k.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team",
        "--from-literal=password=s3cret",
    ])
    .await;
    assert_eq!(
        k.ok(&[
            "get",
            "secret",
            "creds",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.password}"
        ])
        .await,
        "czNjcmV0"
    );
    let secrets = k.ok(&["get", "secrets", "-n", "team"]).await;
    assert!(secrets.contains("Opaque"), "{secrets}");

    // errors come back as kube Status messages
    let err = k.fails(&["create", "ns", "team"]).await;
    assert!(err.contains("namespaces \"team\" already exists"), "{err}");
    let err = k.fails(&["get", "cm", "nope", "-n", "team"]).await;
    assert!(err.contains("configmaps \"nope\" not found"), "{err}");
    let err = k.fails(&["create", "cm", "x", "-n", "missing-ns"]).await;
    assert!(err.contains("namespaces \"missing-ns\" not found"), "{err}");
    let err = k.fails(&["create", "cm", "Bad_Name", "-n", "team"]).await;
    assert!(
        err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_patch_edit_and_selectors() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();
    let v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: default\n  labels:\n    tier: web\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], v1)
        .await
        .contains("configmap/cfg created"));
    let v2 = v1.replace("  b: \"2\"\n", "  c: \"3\"\n");
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &v2)
        .await
        .contains("configmap/cfg configured"));
    let data = k.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data}"]).await;
    assert_eq!(
        data, r#"{"a":"1","c":"3"}"#,
        "client-side apply removed b via strategic merge patch"
    );
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &v2)
        .await
        .contains("configmap/cfg unchanged"));

    k.ok(&[
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"m":"merge"}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "cm",
        "cfg",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/j","value":"json"}]"#,
    ])
    .await;
    k.ok(&["patch", "cm", "cfg", "-p", r#"{"data":{"s":"strategic"}}"#])
        .await;
    let data = k.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data}"]).await;
    assert_eq!(
        data,
        r#"{"a":"1","c":"3","j":"json","m":"merge","s":"strategic"}"#
    );
    let err = k
        .fails(&[
            "patch",
            "cm",
            "cfg",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/data/nope"}]"#,
        ])
        .await;
    assert!(!err.is_empty());

    k.ok(&["create", "cm", "other"]).await;
    k.ok(&["label", "cm", "other", "tier=db"]).await;
    let web = k.ok(&["get", "cm", "-l", "tier=web", "-o", "name"]).await;
    assert_eq!(web.trim(), "configmap/cfg");
    let not_web = k
        .ok(&["get", "cm", "-l", "tier!=web,tier", "-o", "name"])
        .await;
    assert_eq!(not_web.trim(), "configmap/other");
    let by_name = k
        .ok(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=other",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(by_name.trim(), "configmap/other");
    let err = k
        .fails(&["get", "cm", "--field-selector", "data.a=1"])
        .await;
    assert!(err.contains("field label not supported"), "{err}");

    // server-side dry run changes nothing
    k.ok(&["delete", "cm", "other", "--dry-run=server"]).await;
    k.ok(&["get", "cm", "other"]).await;
    k.ok(&["delete", "cm", "other"]).await;
    assert!(k.fails(&["get", "cm", "other"]).await.contains("not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_wait() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();
    k.ok(&["create", "cm", "w1"]).await;

    // kubectl wait --for=delete uses watch-list (sendInitialEvents)
    let waiter = {
        let k = env.kubectl();
        tokio::spawn(async move {
            k.run(&["wait", "--for=delete", "cm/w1", "--timeout=30s"])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    k.ok(&["delete", "cm", "w1"]).await;
    let out = waiter.await.unwrap();
    assert!(out.success, "wait failed: {} {}", out.stdout, out.stderr);

    k.ok(&["create", "cm", "cond"]).await;
    let out = k.run(&[
        "wait",
        "--for=jsonpath={.data.ready}=yes",
        "cm/cond",
        "--timeout=20s",
    ]);
    let patcher = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.kubectl()
            .ok(&[
                "patch",
                "cm",
                "cond",
                "--type=merge",
                "-p",
                r#"{"data":{"ready":"yes"}}"#,
            ])
            .await;
    };
    let (out, _) = tokio::join!(out, patcher);
    assert!(out.success, "wait for jsonpath failed: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_table_rows() {
    let env = TestShard::builder().start().await;
    let mut child = tokio::process::Command::new(canopy_test_harness::kubectl_binary())
        .args(["get", "cm", "-w", "--request-timeout=0"])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("KUBECACHEDIR", env.dir.path().join("watch-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.kubectl().ok(&["create", "cm", "streamed"]).await;
    env.kubectl().ok(&["create", "cm", "streamed-2"]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("streamed "),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("streamed-2"), "{stdout}");
}

/// `kubectl auth can-i` answers "yes" (exit 0) or "no" (exit 1).
async fn can_i(k: &canopy_test_harness::Kubectl, args: &[&str]) -> String {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    let o = k.run(&full).await;
    let answer = o.stdout.trim().to_string();
    assert_eq!(
        o.success,
        answer == "yes",
        "can-i {args:?}: {answer} / {}",
        o.stderr
    );
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_inside_the_logical_cluster() {
    let env = TestShard::builder().start().await;
    let admin = env.kubectl();
    let alice_token = env.token("alice", &["devs"]);
    let alice_cfg = env.kubeconfig_for("alice", "root", &alice_token);
    let alice = env.kubectl().kubeconfig(&alice_cfg);

    assert_eq!(can_i(&alice, &["list", "configmaps"]).await, "no");
    let err = alice.fails(&["get", "cm"]).await;
    assert!(
        err.contains("forbidden")
            && err.contains("User \"alice\" cannot list resource \"configmaps\""),
        "{err}"
    );
    let who = alice.ok(&["auth", "whoami"]).await;
    assert!(who.contains("alice") && who.contains("devs"), "{who}");

    admin
        .ok(&[
            "create",
            "role",
            "cm-reader",
            "--verb=get,list,watch",
            "--resource=configmaps",
        ])
        .await;
    admin
        .ok(&[
            "create",
            "rolebinding",
            "alice-reads",
            "--role=cm-reader",
            "--user=alice",
        ])
        .await;
    assert_eq!(can_i(&alice, &["list", "configmaps"]).await, "yes");
    assert_eq!(
        can_i(&alice, &["list", "configmaps", "-n", "kube-system"]).await,
        "no"
    );
    assert_eq!(can_i(&alice, &["create", "configmaps"]).await, "no");
    alice.ok(&["get", "cm"]).await;
    let err = alice.fails(&["create", "cm", "nope"]).await;
    assert!(err.contains("forbidden"), "{err}");

    // the built-in aggregated "view" role works through aggregation
    admin
        .ok(&[
            "create",
            "clusterrolebinding",
            "devs-view",
            "--clusterrole=view",
            "--group=devs",
        ])
        .await;
    assert_eq!(
        can_i(&alice, &["list", "configmaps", "-n", "kube-system"]).await,
        "yes"
    );

    // impersonation needs the impersonate verb
    let err = alice.fails(&["get", "cm", "--as=bob"]).await;
    assert!(err.contains("cannot impersonate"), "{err}");
    assert_eq!(can_i(&admin, &["create", "cm", "--as=alice"]).await, "no");
    admin.ok(&["get", "cm", "--as=alice"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_content() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();
    k.ok(&["create", "ns", "doomed"]).await;
    k.ok(&["create", "cm", "a", "-n", "doomed"]).await;
    k.ok(&["create", "secret", "generic", "b", "-n", "doomed"])
        .await;
    k.ok(&["delete", "ns", "doomed", "--wait=true", "--timeout=30s"])
        .await;
    assert!(k
        .fails(&["get", "ns", "doomed"])
        .await
        .contains("not found"));
    // the name can be reused and starts empty
    k.ok(&["create", "ns", "doomed"]).await;
    let cms = k.ok(&["get", "cm", "-n", "doomed", "-o", "name"]).await;
    assert!(!cms.contains("configmap/a"), "{cms}");

    for protected in ["default", "kube-system", "kube-public"] {
        let err = k.fails(&["delete", "ns", protected]).await;
        assert!(err.contains("may not be deleted"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_explain() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();
    let res = k.ok(&["api-resources"]).await;
    for r in [
        "configmaps",
        "namespaces",
        "secrets",
        "serviceaccounts",
        "leases",
        "roles",
        "clusterrolebindings",
        "selfsubjectaccessreviews",
    ] {
        assert!(res.contains(r), "{r} missing from:\n{res}");
    }
    let v = k.ok(&["version", "-o", "json"]).await;
    assert!(v.contains("\"serverVersion\""), "{v}");
    let explain = k.ok(&["explain", "configmap.data"]).await;
    assert!(
        explain.contains("KIND:") && explain.contains("ConfigMap"),
        "{explain}"
    );
}
