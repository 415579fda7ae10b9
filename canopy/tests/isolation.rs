//! Tenant isolation, as an attacker tries it (issue 13): three shards behind the
//! front-proxy, ordinary users with issued tokens, plain HTTPS and kubectl.
//!
//! - impersonation cannot raise privileges (privileged groups, system users, reserved
//!   extras) and an impersonated identity is confined to the workspace it was
//!   authorized in;
//! - shard-internal endpoints and whole-shard metrics are out of every tenant's reach,
//!   through the proxy and directly on a shard;
//! - system metadata of LogicalCluster, Workspace and Shard objects is immutable to
//!   tenants, so nobody can redirect another workspace's path;
//! - RBAC escalation through Roles and bindings is refused;
//! - distinct users get distinct home workspaces;
//! - a matrix of users × workspaces × verbs × impersonation: no cross-tenant access.

use std::time::{Duration, Instant};

use canopy_test_harness::{Client, TestProxy};
use serde_json::{json, Value};

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";
const LC: &str = "apis/core.kcp.io/v1alpha1/logicalclusters";
const RBAC: &str = "apis/rbac.authorization.k8s.io/v1";

async fn send(
    c: &Client,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut r = c.request(method, path);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("request");
    let code = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The path of `c`'s home workspace (created on first use).
async fn home(c: &Client) -> String {
    let start = Instant::now();
    let (code, ws) = loop {
        let (code, ws) = c.get(&format!("/clusters/root/{WS}/~")).await;
        // 503 while root:users is still being made
        if code != 503 || start.elapsed() > Duration::from_secs(30) {
            break (code, ws);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, 200, "{ws}");
    let url = ws["spec"]["URL"].as_str().expect("home URL");
    url.rsplit_once("/clusters/").expect("URL").1.to_string()
}

async fn workspace(admin: &Client, parent: &str, name: &str, ty: &str) -> String {
    let (code, b) = admin
        .post(
            &format!("/clusters/{parent}/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name},
                   "spec": {"type": {"name": ty, "path": "root"}}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    wait_for(&format!("{parent}:{name} Ready"), || async {
        admin
            .get(&format!("/clusters/{parent}/{WS}/{name}"))
            .await
            .1["status"]["phase"]
            == "Ready"
    })
    .await;
    format!("{parent}:{name}")
}

/// Binds `user` as cluster-admin of workspace `path` (as `admin`, an admin there).
async fn make_admin(admin: &Client, path: &str, user: &str) {
    let (code, b) = admin
        .post(
            &format!("/clusters/{path}/{RBAC}/clusterrolebindings"),
            json!({"metadata": {"name": format!("{user}-admin")},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_is_gated_and_scoped() {
    let env = TestProxy::builder().shards(3).start().await;
    let admin = env.admin();
    let alice = env.client(Some(&env.token("alice", &[])));
    let a_home = home(&alice).await;
    let imp = reqwest::Method::GET;

    // alice is admin of her home, so RBAC there allows her to impersonate anyone; the
    // gatekeeper still refuses every privileged identity
    let secrets_in_home = format!("/clusters/{a_home}/api/v1/secrets");
    for headers in [
        vec![
            ("Impersonate-User", "x"),
            ("Impersonate-Group", "system:masters"),
        ],
        vec![
            ("Impersonate-User", "x"),
            ("Impersonate-Group", "system:kcp:admin"),
        ],
        vec![
            ("Impersonate-User", "x"),
            ("Impersonate-Group", "system:kcp:logical-cluster-admin"),
        ],
        vec![("Impersonate-User", "system:shard:root")],
        vec![("Impersonate-User", "system:front-proxy")],
        vec![
            ("Impersonate-User", "x"),
            (
                "Impersonate-Extra-authentication.kcp.io%2fscopes",
                "cluster:root",
            ),
        ],
        vec![
            ("Impersonate-User", "x"),
            ("Impersonate-Extra-authorization.kcp.io%2fwarrant", "{}"),
        ],
    ] {
        let (code, b) = send(&alice, imp.clone(), &secrets_in_home, None, &headers).await;
        assert_eq!(code, 403, "{headers:?}: {b}");
        assert_eq!(b["kind"], "Status", "{b}");
    }
    // ... and so does kubectl's --as-group
    let kc = env.kubeconfig_for("alice", &a_home, &env.token("alice", &[]));
    let kubectl = canopy_test_harness::Kubectl::new(&kc, env.dir.path());
    let err = kubectl
        .fails(&[
            "--as=x",
            "--as-group=system:masters",
            "get",
            "secrets",
            "-A",
        ])
        .await;
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );
    // nothing of root leaks either way
    let (code, _) = send(
        &alice,
        imp.clone(),
        "/clusters/root/api/v1/secrets",
        None,
        &[
            ("Impersonate-User", "x"),
            ("Impersonate-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(code, 403);

    // plain impersonation inside her own workspace works, confined to it (bob is given
    // a role there first, so that he may ask who he is)
    make_admin(&alice, &a_home, "bob").await;
    let (code, who) = send(
        &alice,
        reqwest::Method::POST,
        &format!("/clusters/{a_home}/apis/authentication.k8s.io/v1/selfsubjectreviews"),
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
        &[("Impersonate-User", "bob")],
    )
    .await;
    assert_eq!(code, 201, "{who}");
    assert_eq!(who["status"]["userInfo"]["username"], "bob");
    assert_eq!(
        who["status"]["userInfo"]["extra"]["authentication.kcp.io/scopes"],
        json!([format!("cluster:{}", who_cluster(&admin, &a_home).await)])
    );
}

/// The scope matters where a request consults another workspace: a private workspace
/// type in corp that only bob may use. (One shard: workspace types of workspaces other
/// than root are looked up on the shard of the workspace being created.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonated_identity_is_refused_in_other_workspaces() {
    let env = canopy_test_harness::TestShard::builder().start().await;
    let admin = env.admin();
    let alice = env.client(Some(&env.token("alice", &[])));
    let a_home = home(&alice).await;
    // the scope matters where a request consults another workspace: a private
    // workspace type in corp that only bob may use
    let corp = workspace(&admin, "root", "corp", "organization").await;
    let (code, b) = admin
        .post(
            &format!("/clusters/{corp}/apis/tenancy.kcp.io/v1alpha1/workspacetypes"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType", "metadata": {"name": "private"},
                   "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let (code, b) = admin
        .post(
            &format!("/clusters/{corp}/{RBAC}/clusterroles"),
            json!({"metadata": {"name": "use-private"},
                   "rules": [{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"], "resourceNames": ["private"], "verbs": ["use"]}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let (code, b) = admin
        .post(
            &format!("/clusters/{corp}/{RBAC}/clusterrolebindings"),
            json!({"metadata": {"name": "bob-uses-private"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "use-private"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let private_ws = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "stolen"},
        "spec": {"type": {"name": "private", "path": corp}}});
    let (code, b) = alice
        .post(&format!("/clusters/{a_home}/{WS}"), private_ws.clone())
        .await;
    assert_eq!(code, 403, "alice herself may not use corp's type: {b}");
    // ... and cannot tell it from a type that does not exist
    let (_, missing) = alice
        .post(
            &format!("/clusters/{a_home}/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "stolen"},
                   "spec": {"type": {"name": "nosuchtype", "path": corp}}}),
        )
        .await;
    assert_eq!(
        b["message"].as_str().map(|m| m.replace("private", "T")),
        missing["message"]
            .as_str()
            .map(|m| m.replace("nosuchtype", "T")),
    );
    // bob may create workspaces in alice's home, and use the type in corp: but not as
    // an identity alice made up inside her home
    make_admin(&alice, &a_home, "bob").await;
    let (code, b) = send(
        &alice,
        reqwest::Method::POST,
        &format!("/clusters/{a_home}/{WS}"),
        Some(private_ws),
        &[("Impersonate-User", "bob")],
    )
    .await;
    assert_eq!(code, 403, "bob's identity is confined to alice's home: {b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap_or("")
            .contains("root:corp:private"),
        "{b}"
    );
    // the real bob may (so the refusal above is the scope's doing)
    let bob = env.client(Some(&env.token("bob", &[])));
    let (code, b) = bob
        .post(
            &format!("/clusters/{a_home}/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "legit"},
                   "spec": {"type": {"name": "private", "path": corp}}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
}

/// The logical cluster name behind a workspace path.
async fn who_cluster(admin: &Client, path: &str) -> String {
    let (code, lc) = admin.get(&format!("/clusters/{path}/{LC}/cluster")).await;
    assert_eq!(code, 200, "{lc}");
    lc["metadata"]["annotations"]["kcp.io/cluster"]
        .as_str()
        .expect("kcp.io/cluster")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_endpoints_and_metrics_are_out_of_reach() {
    let env = TestProxy::builder().shards(3).start().await;
    let admin = env.admin();
    let alice_token = env.token("alice", &[]);
    let alice = env.client(Some(&alice_token));
    let a_home = home(&alice).await;
    let place =
        json!({"name": "stolenroot", "path": "root", "type": "root:root", "admin": "alice"});
    let masters = [
        ("Impersonate-User", "x"),
        ("Impersonate-Group", "system:masters"),
    ];
    let as_shard = [("Impersonate-User", "system:shard:root")];
    // through the proxy: inside her workspace, at the top, with and without
    // impersonation, and as the admin too (nobody but peers reaches them)
    for (who, c) in [("alice", &alice), ("admin", &admin)] {
        for path in [
            format!("/clusters/{a_home}/internal/logicalclusters"),
            "/internal/logicalclusters".to_string(),
            "/clusters/root/internal/logicalclusters".to_string(),
        ] {
            for headers in [&[][..], &masters[..], &as_shard[..]] {
                let (code, b) = send(
                    c,
                    reqwest::Method::POST,
                    &path,
                    Some(place.clone()),
                    headers,
                )
                .await;
                assert!(
                    code == 404 || code == 403,
                    "{who} POST {path} {headers:?}: {code} {b}"
                );
            }
        }
        let (code, _) = c.get("/internal/tokens/state").await;
        assert_eq!(code, 404, "{who}: token state through the proxy");
    }
    // directly on each shard, with a bearer token (no proxy client certificate)
    for i in 0..env.shard_count() {
        let shard = env.shard(i);
        for token in [&alice_token, &env.admin_token] {
            let direct = shard.client(Some(token));
            let (code, b) = send(
                &direct,
                reqwest::Method::POST,
                "/internal/logicalclusters",
                Some(place.clone()),
                &masters,
            )
            .await;
            assert_eq!(code, 404, "shard {i}: {b}");
            assert_eq!(direct.get("/internal/tokens/state").await.0, 404);
        }
    }
    // nothing was placed: root is still root
    let (code, lc) = admin.get(&format!("/clusters/root/{LC}/cluster")).await;
    assert_eq!(code, 200);
    assert_eq!(lc["metadata"]["annotations"]["kcp.io/path"], "root");
    assert_eq!(
        admin.get("/clusters/stolenroot/api/v1/namespaces").await.0,
        403
    );

    // whole-shard metrics: never inside a workspace, only superusers at the top
    let (code, _) = alice.get(&format!("/clusters/{a_home}/metrics")).await;
    assert_eq!(code, 404);
    let (code, _) = admin.get(&format!("/clusters/{a_home}/metrics")).await;
    assert_eq!(code, 404);
    assert_eq!(alice.get("/metrics").await.0, 403);
    for i in 0..env.shard_count() {
        let direct = env.shard(i).client(Some(&alice_token));
        assert_eq!(direct.get("/metrics").await.0, 403, "shard {i}");
        assert_eq!(
            direct.get(&format!("/clusters/{a_home}/metrics")).await.0 / 100,
            4,
            "shard {i}"
        );
    }
    let metrics = env
        .shard(0)
        .admin()
        .request(reqwest::Method::GET, "/metrics");
    assert_eq!(
        metrics.send().await.expect("metrics").status().as_u16(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_metadata_cannot_redirect_paths() {
    let env = TestProxy::builder().shards(3).start().await;
    let admin = env.admin();
    let alice = env.client(Some(&env.token("alice", &[])));
    let a_home = home(&alice).await;
    let root_lc = who_cluster(&admin, "root").await;
    let lc_path = format!("/clusters/{a_home}/{LC}/cluster");

    // editing her own LogicalCluster's system annotations (kubectl edit's patch)
    for patch in [
        json!({"metadata": {"annotations": {"kcp.io/path": "root"}}}),
        json!({"metadata": {"annotations": {"kcp.io/cluster": root_lc}}}),
        json!({"metadata": {"annotations": {"internal.tenancy.kcp.io/type": "root:root"}}}),
        json!({"metadata": {"annotations": {"kcp.io/path": null}}}),
        json!({"spec": {"owner": null}}),
        json!({"metadata": {"labels": {"tenancy.kcp.io/x": "y"}}}),
    ] {
        let (code, b) = alice
            .patch(&lc_path, "application/merge-patch+json", &patch.to_string())
            .await;
        assert_eq!(code, 403, "{patch}: {b}");
        assert_eq!(b["reason"], "Forbidden", "{b}");
    }
    let (code, b) = alice
        .patch(
            &format!("{lc_path}/status"),
            "application/merge-patch+json",
            r#"{"status": {"phase": "Initializing", "URL": "https://evil.example"}}"#,
        )
        .await;
    assert_eq!(code, 403, "{b}");
    // a second LogicalCluster object, and deleting her own
    let (code, b) = alice
        .post(
            &format!("/clusters/{a_home}/{LC}"),
            json!({"apiVersion": "core.kcp.io/v1alpha1", "kind": "LogicalCluster",
                   "metadata": {"name": "evil", "annotations": {"kcp.io/path": "root", "kcp.io/cluster": root_lc}}}),
        )
        .await;
    assert_eq!(code, 403, "{b}");
    assert_eq!(alice.delete(&lc_path).await.0, 403);
    // a Workspace that names its own shard or logical cluster, a Shard object
    let (code, b) = alice
        .post(
            &format!("/clusters/{a_home}/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                   "metadata": {"name": "w", "annotations": {"internal.tenancy.kcp.io/shard": "x", "internal.tenancy.kcp.io/cluster": root_lc}},
                   "spec": {}}),
        )
        .await;
    assert_eq!(code, 403, "{b}");
    let (code, b) = alice
        .post(
            &format!("/clusters/{a_home}/apis/core.kcp.io/v1alpha1/shards"),
            json!({"apiVersion": "core.kcp.io/v1alpha1", "kind": "Shard", "metadata": {"name": "evil"},
                   "spec": {"baseURL": "https://evil.example"}}),
        )
        .await;
    assert_eq!(code, 403, "{b}");
    // reserved labels on ordinary objects are refused too; ordinary ones are fine
    let mut labelled = cm("labelled");
    labelled["metadata"]["labels"] = json!({"kcp.io/cluster": root_lc});
    let cms = format!("/clusters/{a_home}/api/v1/namespaces/default/configmaps");
    assert_eq!(alice.post(&cms, labelled).await.0, 403);
    let mut fine = cm("fine");
    fine["metadata"]["labels"] = json!({"app": "x"});
    assert_eq!(alice.post(&cms, fine).await.0, 201);

    // a workspace she creates and its status: the system's
    let (code, b) = alice
        .post(
            &format!("/clusters/{a_home}/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "child"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    wait_for("child Ready", || async {
        alice.get(&format!("/clusters/{a_home}/{WS}/child")).await.1["status"]["phase"] == "Ready"
    })
    .await;
    let (code, b) = alice
        .patch(
            &format!("/clusters/{a_home}/{WS}/child/status"),
            "application/merge-patch+json",
            r#"{"status": {"phase": "Scheduling"}}"#,
        )
        .await;
    assert_eq!(code, 403, "{b}");
    let (code, b) = alice
        .patch(
            &format!("/clusters/{a_home}/{WS}/child"),
            "application/merge-patch+json",
            &json!({"metadata": {"annotations": {"internal.tenancy.kcp.io/cluster": root_lc}}})
                .to_string(),
        )
        .await;
    assert_eq!(code, 403, "{b}");

    // every path still leads where it did, through the proxy and on every shard
    assert_eq!(who_cluster(&admin, "root").await, root_lc);
    let (code, lc) = admin.get(&format!("/clusters/root/{LC}/cluster")).await;
    assert_eq!(code, 200);
    assert_eq!(lc["metadata"]["annotations"]["kcp.io/path"], "root");
    let (code, _) = alice
        .get(&format!("/clusters/{a_home}:child/api/v1/namespaces"))
        .await;
    assert_eq!(code, 200);
    let (code, roots) = admin.get("/clusters/root/api/v1/namespaces").await;
    assert_eq!(code, 200, "{roots}");
    assert_eq!(alice.get("/clusters/root/api/v1/secrets").await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_escalation_is_refused() {
    let env = TestProxy::builder().shards(3).start().await;
    let admin = env.admin();
    let org = workspace(&admin, "root", "esc", "organization").await;
    // dave may write RBAC objects and read configmaps, nothing else
    let (code, b) = admin
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterroles"),
            json!({"metadata": {"name": "rbac-writer"}, "rules": [
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"], "verbs": ["create", "update", "patch", "get", "list"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
                {"nonResourceURLs": ["/"], "verbs": ["access"]}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let (code, b) = admin
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterrolebindings"),
            json!({"metadata": {"name": "dave-rbac-writer"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rbac-writer"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let dave = env.client(Some(&env.token("dave", &[])));
    let binding = |name: &str, role: &str| {
        json!({"metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}]})
    };
    // binding himself cluster-admin: refused with kube's message
    let (code, b) = dave
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterrolebindings"),
            binding("dave-admin", "cluster-admin"),
        )
        .await;
    assert_eq!(code, 403, "{b}");
    let msg = b["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("is attempting to grant RBAC permissions not currently held"),
        "{msg}"
    );
    // ... also in a namespace
    let (code, _) = dave
        .post(
            &format!("/clusters/{org}/{RBAC}/namespaces/default/rolebindings"),
            binding("dave-admin", "cluster-admin"),
        )
        .await;
    assert_eq!(code, 403);
    // a role granting what he lacks: refused; one within what he holds: allowed
    let (code, b) = dave
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterroles"),
            json!({"metadata": {"name": "secrets"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
        )
        .await;
    assert_eq!(code, 403, "{b}");
    assert!(b["message"]
        .as_str()
        .unwrap_or("")
        .contains(r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#));
    let (code, b) = dave
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterroles"),
            json!({"metadata": {"name": "cm-reader"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    // widening it afterwards: refused
    let (code, b) = dave
        .patch(
            &format!("/clusters/{org}/{RBAC}/clusterroles/cm-reader"),
            "application/merge-patch+json",
            r#"{"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}"#,
        )
        .await;
    assert_eq!(code, 403, "{b}");
    // binding a role he holds entirely: allowed
    let (code, b) = dave
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterrolebindings"),
            binding("dave-cm", "cm-reader"),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    // the `bind` verb on a role, and `escalate` on roles, lift the checks as in kube
    let (code, b) = admin
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterroles"),
            json!({"metadata": {"name": "bind-view"}, "rules": [
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["view"], "verbs": ["bind"]}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let (code, _) = admin
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterrolebindings"),
            binding("dave-bind-view", "bind-view"),
        )
        .await;
    assert_eq!(code, 201);
    let (code, b) = dave
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterrolebindings"),
            binding("dave-view", "view"),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    // still no cluster-admin
    let (code, _) = dave
        .post(
            &format!("/clusters/{org}/{RBAC}/clusterrolebindings"),
            binding("dave-admin-2", "cluster-admin"),
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        dave.get(&format!(
            "/clusters/{org}/api/v1/namespaces/default/secrets"
        ))
        .await
        .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_users_get_distinct_homes() {
    let env = TestProxy::builder().shards(3).start().await;
    let one = env.client(Some(&env.token("bob.smith", &[])));
    let two = env.client(Some(&env.token("Bob-Smith", &[])));
    let (h1, h2) = (home(&one).await, home(&two).await);
    assert_ne!(h1, h2);
    // stable: asked again, the same
    assert_eq!(home(&one).await, h1);
    let cms = |h: &str| format!("/clusters/{h}/api/v1/namespaces/default/configmaps");
    assert_eq!(one.post(&cms(&h1), cm("mine")).await.0, 201);
    assert_eq!(two.get(&cms(&h1)).await.0, 403);
    assert_eq!(one.get(&cms(&h2)).await.0, 403);
    assert_eq!(two.get(&cms(&h2)).await.0, 200);
}

/// Users × workspaces × verbs × impersonation: each user reaches only its own
/// workspaces, whatever it tries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_has_no_cross_tenant_access() {
    let env = TestProxy::builder().shards(3).start().await;
    let admin = env.admin();
    let users = ["alice", "bob", "eve"];
    let clients: Vec<Client> = users
        .iter()
        .map(|u| env.client(Some(&env.token(u, &[]))))
        .collect();
    // alice and bob each own an organization and a home; eve owns only a home
    let mut owned: Vec<(String, &str)> = Vec::new();
    for (u, c) in users.iter().zip(&clients) {
        owned.push((home(c).await, u));
    }
    for u in ["alice", "bob"] {
        let org = workspace(&admin, "root", &format!("{u}-org"), "organization").await;
        make_admin(&admin, &org, u).await;
        owned.push((org, u));
    }
    owned.push(("root".to_string(), "admin"));
    // a secret and a configmap in every workspace, written by the admin
    for (ws, _) in &owned {
        for (kind, body) in [
            ("configmaps", cm("data")),
            (
                "secrets",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "data"}, "stringData": {"k": "v"}}),
            ),
        ] {
            let (code, b) = admin
                .post(
                    &format!("/clusters/{ws}/api/v1/namespaces/default/{kind}"),
                    body,
                )
                .await;
            assert_eq!(code, 201, "{ws} {kind}: {b}");
        }
    }
    let impersonations: [&[(&str, &str)]; 4] = [
        &[],
        &[("Impersonate-User", "admin")],
        &[
            ("Impersonate-User", "x"),
            ("Impersonate-Group", "system:masters"),
        ],
        &[("Impersonate-User", "system:serviceaccount:default:default")],
    ];
    let mut checked = 0;
    for (u, c) in users.iter().zip(&clients) {
        for (ws, owner) in &owned {
            let own = owner == u;
            let base = format!("/clusters/{ws}/api/v1/namespaces/default");
            for imp in impersonations {
                let requests: Vec<(reqwest::Method, String, Option<Value>)> = vec![
                    (reqwest::Method::GET, format!("{base}/secrets/data"), None),
                    (reqwest::Method::GET, format!("{base}/configmaps"), None),
                    (
                        reqwest::Method::GET,
                        format!("{base}/configmaps?watch=1&timeoutSeconds=1"),
                        None,
                    ),
                    (
                        reqwest::Method::POST,
                        format!("{base}/configmaps"),
                        Some(cm(&format!("by-{u}"))),
                    ),
                    (
                        reqwest::Method::DELETE,
                        format!("{base}/secrets/data"),
                        None,
                    ),
                    (reqwest::Method::GET, format!("/clusters/{ws}/{WS}"), None),
                    (
                        reqwest::Method::GET,
                        format!("/clusters/{ws}/{RBAC}/clusterrolebindings"),
                        None,
                    ),
                ];
                for (method, path, body) in requests {
                    let is_delete = method == reqwest::Method::DELETE;
                    let (code, b) = send(c, method.clone(), &path, body, imp).await;
                    checked += 1;
                    if !own || imp.len() > 1 && imp[1].1 == "system:masters" {
                        assert_eq!(code, 403, "{u} {method} {path} {imp:?}: {b}");
                        continue;
                    }
                    if is_delete {
                        // the owner may do anything in its own workspace; keep the
                        // secret for the other rows
                        continue;
                    }
                    // the owner (possibly impersonating someone inside its own
                    // workspace, where it is admin) is served or refused by RBAC for
                    // the impersonated identity, never by another tenant's data
                    assert!(code < 500, "{u} {method} {path} {imp:?}: {code} {b}");
                }
            }
        }
    }
    assert!(checked > 300, "{checked}");
    // every admin-written secret is still there and no cross-tenant configmap was made
    for (ws, owner) in &owned {
        let (code, list) = admin
            .get(&format!(
                "/clusters/{ws}/api/v1/namespaces/default/configmaps"
            ))
            .await;
        assert_eq!(code, 200);
        for item in list["items"].as_array().expect("items") {
            let name = item["metadata"]["name"].as_str().unwrap_or("");
            if let Some(writer) = name.strip_prefix("by-") {
                assert_eq!(writer, *owner, "{writer} wrote into {ws}");
            }
        }
    }
}

/// A custom resource may never share a built-in's storage (that would bypass the
/// built-in's strategy and admission: a Workspace pointed at root's logical cluster), and
/// the system's finalizers and home lookups are not a tenant's to bend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_apis_cannot_be_shadowed() {
    let env = canopy_test_harness::TestShard::builder().start().await;
    let admin = env.admin();
    let mallory = env.client(Some(&env.token("mallory", &[])));
    let m_home = home(&mallory).await;
    let crds = format!("/clusters/{m_home}/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
    let crd = |group: &str, plural: &str, kind: &str, version: &str| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": format!("{plural}.{group}")},
               "spec": {"group": group, "scope": "Cluster",
                        "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                        "versions": [{"name": version, "served": true, "storage": true,
                                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
    };
    for (group, plural, kind, version) in [
        ("tenancy.kcp.io", "workspaces", "Workspace", "v1"),
        (
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            "v9",
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
            "v2",
        ),
        ("core.kcp.io", "logicalclusters", "LogicalCluster", "v1"),
        ("apis.kcp.io", "apibindings", "APIBinding", "v1alpha1"),
        ("tokens.canopy.dev", "tokens", "Token", "v1"),
    ] {
        let (code, b) = mallory.post(&crds, crd(group, plural, kind, version)).await;
        assert_eq!(code, 422, "{group}/{plural}: {b}");
        assert_eq!(b["details"]["causes"][0]["field"], "spec.group", "{b}");
    }
    // kube's protected groups need the approval annotation
    let (code, b) = mallory
        .post(&crds, crd("widgets.k8s.io", "gadgets", "Gadget", "v1"))
        .await;
    assert_eq!(code, 422, "{b}");
    let mut approved = crd("widgets.k8s.io", "gadgets", "Gadget", "v1");
    approved["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "https://github.com/kubernetes/enhancements/pull/1111"});
    assert_eq!(mallory.post(&crds, approved).await.0, 201);

    // the finalizer that takes a workspace's logical cluster with it stays
    let (code, b) = mallory
        .post(
            &format!("/clusters/{m_home}/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "w"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let (code, b) = mallory
        .patch(
            &format!("/clusters/{m_home}/{WS}/w"),
            "application/merge-patch+json",
            r#"{"metadata": {"finalizers": []}}"#,
        )
        .await;
    assert_eq!(code, 403, "{b}");

    // homes: only in root, only for oneself
    let (code, b) = mallory.get(&format!("/clusters/{m_home}/{WS}/~")).await;
    assert_eq!(code, 403, "{b}");
    make_admin(&mallory, &m_home, "carol").await;
    let (code, b) = send(
        &mallory,
        reqwest::Method::GET,
        &format!("/clusters/{m_home}/{WS}/~"),
        None,
        &[("Impersonate-User", "carol")],
    )
    .await;
    assert_eq!(code, 403, "{b}");
    // no home was made for carol
    let (code, list) = admin.get(&format!("/clusters/root:users/{WS}")).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|w| w["metadata"]["name"].as_str())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("carol")), "{names:?}");
}
