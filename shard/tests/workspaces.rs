//! Workspaces: a Workspace in a parent becomes a ready child logical cluster at
//! `/clusters/<parent path>:<name>`; deletion removes it and everything below it.

use std::time::Duration;

use canopy_test_harness::{Client, TestShard};
use serde_json::{json, Value};

fn ws(name: &str, ty: Option<&str>) -> Value {
    let mut w = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name}, "spec": {}});
    if let Some(t) = ty {
        w["spec"]["type"] = json!({"name": t, "path": "root"});
    }
    w
}

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";

/// As `by`, in workspace `cluster`: creates the ClusterRole `role` (name, rules) when
/// given, and binds `role_ref` to `user` as ClusterRoleBinding `binding`; each 201.
async fn grant_role(
    by: &Client,
    cluster: &str,
    role: Option<(&str, Value)>,
    role_ref: &str,
    binding: &str,
    user: &str,
) {
    let rbac = format!("/clusters/{cluster}/apis/rbac.authorization.k8s.io/v1");
    if let Some((name, rules)) = role {
        let (code, b) = by
            .post(
                &format!("{rbac}/clusterroles"),
                json!({"metadata": {"name": name}, "rules": rules}),
            )
            .await;
        assert_eq!(code, 201, "{b}");
    }
    let (code, b) = by
        .post(
            &format!("{rbac}/clusterrolebindings"),
            json!({"metadata": {"name": binding}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_ref},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
}

#[tokio::test]
async fn nested_workspaces_resolve_by_path_and_delete_in_cascade() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    // root starts with the users workspace and the built-in types
    let users = c.wait_workspace_ready("root", "users").await;
    assert_eq!(users["spec"]["type"]["name"], "homeroot");
    let (_, types) = c
        .get("/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspacetypes")
        .await;
    let names: Vec<&str> = types["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["metadata"]["name"].as_str().unwrap())
        .collect();
    for t in ["organization", "team", "universal", "home"] {
        assert!(names.contains(&t), "{t} in {names:?}");
    }

    let (code, created) = c
        .post(&format!("/clusters/root/{WS}"), ws("acme", None))
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["type"],
        json!({"name": "organization", "path": "root"})
    );
    let acme = c.wait_workspace_ready("root", "acme").await;
    let id = acme["spec"]["cluster"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(
        acme["spec"]["URL"],
        format!("{}/clusters/root:acme", env.url())
    );

    // the workspace is a fresh cluster, by path and by logical cluster name
    let (code, nss) = c.get("/clusters/root:acme/api/v1/namespaces").await;
    assert_eq!(code, 200);
    assert!(nss["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["metadata"]["name"] == "default"));
    assert_eq!(
        c.post(
            "/clusters/root:acme/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "x"}})
        )
        .await
        .0,
        201
    );
    assert_eq!(
        c.get(&format!(
            "/clusters/{id}/api/v1/namespaces/default/configmaps/x"
        ))
        .await
        .0,
        200
    );
    assert_eq!(
        c.get("/clusters/root/api/v1/namespaces/default/configmaps/x")
            .await
            .0,
        404
    );

    // types: team under an organization, not under root
    let (code, team) = c
        .post(
            &format!("/clusters/root:acme/{WS}"),
            ws("team-a", Some("team")),
        )
        .await;
    assert_eq!(code, 201, "{team}");
    c.wait_workspace_ready("root:acme", "team-a").await;
    let (code, bad) = c
        .post(&format!("/clusters/root/{WS}"), ws("t", Some("team")))
        .await;
    assert_eq!(code, 403, "{bad}");
    assert_eq!(
        bad["message"],
        "workspaces.tenancy.kcp.io \"t\" is forbidden: workspace type root:team only allows [root:organization root:team] parent workspaces, but parent type root:root only implements [root:root root:universal]",
    );
    let (code, bad) = c
        .post(&format!("/clusters/root/{WS}"), ws("t", Some("nope")))
        .await;
    assert_eq!(code, 403, "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .ends_with("workspace type root:nope does not exist"),
        "{bad}"
    );

    // four levels deep
    assert_eq!(
        c.post(&format!("/clusters/root:acme:team-a/{WS}"), ws("app", None))
            .await
            .0,
        201
    );
    c.wait_workspace_ready("root:acme:team-a", "app").await;
    assert_eq!(
        c.post(
            "/clusters/root:acme:team-a:app/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "deep"}})
        )
        .await
        .0,
        201
    );

    // the creator is admin inside; another user has no access there
    let alice = env.client(Some(&env.token("alice", &[])));
    assert_eq!(
        alice.get("/clusters/root:acme/api/v1/namespaces").await.0,
        403
    );

    // deleting a middle level removes everything below, and the name can be reused
    assert_eq!(
        c.delete(&format!("/clusters/root:acme/{WS}/team-a"))
            .await
            .0,
        202
    );
    for _ in 0..200 {
        if c.get(&format!("/clusters/root:acme/{WS}/team-a")).await.0 == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        c.get(&format!("/clusters/root:acme/{WS}/team-a")).await.0,
        404
    );
    assert_eq!(
        c.get("/clusters/root:acme:team-a:app/api/v1/namespaces/default/configmaps/deep")
            .await
            .0,
        403
    );
    assert_eq!(
        c.get("/clusters/root:acme/api/v1/namespaces/default/configmaps/x")
            .await
            .0,
        200,
        "the parent is untouched"
    );
    assert_eq!(
        c.post(
            &format!("/clusters/root:acme/{WS}"),
            ws("team-a", Some("team"))
        )
        .await
        .0,
        201
    );
    c.wait_workspace_ready("root:acme", "team-a").await;
    let (_, cms) = c
        .get("/clusters/root:acme:team-a/api/v1/namespaces/default/configmaps")
        .await;
    assert!(cms["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["metadata"]["name"] != "deep"));
}

#[tokio::test]
async fn home_workspaces_and_access() {
    let env = TestShard::builder().start().await;
    env.admin().wait_workspace_ready("root", "users").await;
    let alice = env.client(Some(&env.token("alice", &["devs"])));
    let bob = env.client(Some(&env.token("bob", &[])));

    let ah = format!(
        "root:users:{}",
        canopy_core::resource::home_workspace_name("alice")
    );
    let bh = format!(
        "root:users:{}",
        canopy_core::resource::home_workspace_name("bob")
    );
    let (code, home) = alice.get(&format!("/clusters/root/{WS}/~")).await;
    assert_eq!(code, 200, "{home}");
    assert_eq!(home["spec"]["URL"], format!("{}/clusters/{ah}", env.url()));
    assert_eq!(home["spec"]["type"]["name"], "home");
    // the same workspace the second time
    let (_, again) = alice.get(&format!("/clusters/root/{WS}/~")).await;
    assert_eq!(again["spec"]["cluster"], home["spec"]["cluster"]);

    // alice owns her home; bob cannot enter it, and cannot tell it from nothing
    assert_eq!(
        alice
            .post(
                &format!("/clusters/{ah}/api/v1/namespaces/default/configmaps"),
                json!({"metadata": {"name": "mine"}})
            )
            .await
            .0,
        201
    );
    let (c1, e1) = bob
        .get(&format!(
            "/clusters/{ah}/api/v1/namespaces/default/configmaps"
        ))
        .await;
    let (c2, e2) = bob
        .get("/clusters/root:users:nobody/api/v1/namespaces/default/configmaps")
        .await;
    assert_eq!((c1, c2), (403, 403));
    assert_eq!(e1["message"], e2["message"]);
    // the same for watch, discovery and OpenAPI, and for wildcard requests
    for path in [
        "/api/v1/namespaces/default/configmaps?watch=1",
        "/api",
        "/apis",
        "/api/v1",
        "/apis/rbac.authorization.k8s.io/v1",
        "/openapi/v3",
        "/openapi/v2",
    ] {
        let (a, ea) = bob.get(&format!("/clusters/{ah}{path}")).await;
        let (b, eb) = bob.get(&format!("/clusters/root:users:nobody{path}")).await;
        assert_eq!((a, b), (403, 403), "{path}: {ea} {eb}");
        assert_eq!(ea["message"], eb["message"], "{path}");
    }
    for path in [
        "/clusters/*/api/v1/configmaps",
        "/clusters/*/apis/tenancy.kcp.io/v1alpha1/workspaces",
    ] {
        assert_eq!(alice.get(path).await.0, 403, "{path}");
    }
    // both may enter root, where RBAC shows them nothing
    assert_eq!(bob.get("/clusters/root/version").await.0, 200);
    assert_eq!(bob.get(&format!("/clusters/root/{WS}")).await.0, 403);
    assert_eq!(bob.get(&format!("/clusters/root/{WS}/users")).await.0, 403);
    let (_, bob_home) = bob.get(&format!("/clusters/root/{WS}/~")).await;
    assert_eq!(
        bob_home["spec"]["URL"],
        format!("{}/clusters/{bh}", env.url())
    );

    // access is RBAC inside the workspace: alice grants bob access and a role
    let grant = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "bob-access"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kcp:workspace:access"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]});
    assert_eq!(
        alice
            .post(
                &format!("/clusters/{ah}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
                grant
            )
            .await
            .0,
        201
    );
    let (code, _) = bob
        .get(&format!(
            "/clusters/{ah}/api/v1/namespaces/default/configmaps"
        ))
        .await;
    assert_eq!(code, 403, "access alone grants no resources");
    let (code, err) = bob
        .get(&format!(
            "/clusters/{ah}/api/v1/namespaces/default/configmaps/mine"
        ))
        .await;
    assert_eq!(code, 403);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cannot get resource \"configmaps\""),
        "{err}"
    );

    // being cluster-admin of a parent does not make one admin of a child someone else
    // created: alice lets bob create workspaces in her home; bob's child is his alone
    grant_role(
        &alice,
        &ah,
        Some(("ws-creator", json!([{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspaces"], "verbs": ["create", "get"]}]))),
        "ws-creator",
        "bob-ws",
        "bob",
    )
    .await;
    let (code, b) = bob
        .post(&format!("/clusters/{ah}/{WS}"), ws("bobs", None))
        .await;
    assert_eq!(code, 201, "{b}");
    bob.wait_workspace_ready(&ah, "bobs").await;
    assert_eq!(
        bob.get(&format!("/clusters/{ah}:bobs/api/v1/namespaces"))
            .await
            .0,
        200
    );
    assert_eq!(
        alice
            .get(&format!("/clusters/{ah}:bobs/api/v1/namespaces"))
            .await
            .0,
        403,
        "the parent's admin is not admin of the child"
    );
}

async fn wait_phase(c: &Client, parent: &str, name: &str, phase: &str) -> Value {
    for _ in 0..100 {
        let (code, ws) = c.get(&format!("/clusters/{parent}/{WS}/{name}")).await;
        if code == 200 && ws["status"]["phase"] == phase {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("workspace {parent}:{name} never reached phase {phase}");
}

fn wst(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType", "metadata": {"name": name}, "spec": spec})
}

fn forbidden_reason(v: &Value) -> String {
    let m = v["message"].as_str().unwrap_or_default();
    m.split_once(" is forbidden: ")
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|| panic!("not a forbidden message: {v}"))
}

#[tokio::test]
async fn workspace_types_need_use_extend_and_initialize() {
    let env = TestShard::builder().start().await;
    let admin = env.admin();
    admin.wait_workspace_ready("root", "users").await;
    assert_eq!(
        admin
            .post(&format!("/clusters/root/{WS}"), ws("acme", None))
            .await
            .0,
        201
    );
    let acme = admin.wait_workspace_ready("root", "acme").await;
    let acme_cluster = acme["spec"]["cluster"].as_str().unwrap().to_string();
    let wt = "apis/tenancy.kcp.io/v1alpha1/workspacetypes";
    // a type of acme's own, with an initializer, extending root:universal
    assert_eq!(
        admin
            .post(
                &format!("/clusters/root:acme/{wt}"),
                wst("custom", json!({"initializer": true, "extend": {"with": [{"name": "universal", "path": "root"}]},
                    "defaultChildWorkspaceType": {"name": "universal", "path": "root"}}))
            )
            .await
            .0,
        201
    );
    // alice may create workspaces in acme, but may not use acme's type yet
    grant_role(
        &admin,
        "root:acme",
        Some(("ws-creator", json!([{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspaces"], "verbs": ["create", "get", "list"]}]))),
        "ws-creator",
        "alice-ws",
        "alice",
    )
    .await;
    grant_role(
        &admin,
        "root:acme",
        None,
        "system:kcp:workspace:access",
        "alice-access",
        "alice",
    )
    .await;
    let alice = env.client(Some(&env.token("alice", &[])));
    let mut custom = wst("w1", json!({"type": {"name": "custom"}}));
    custom["kind"] = json!("Workspace");
    let (code, err) = alice
        .post(&format!("/clusters/root:acme/{WS}"), custom.clone())
        .await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        forbidden_reason(&err),
        "unable to use cluster workspace type root:acme:custom: missing verb='use' permission on workspacetype"
    );
    assert_eq!(err["details"]["kind"], "workspaces");
    // without a type, acme's type (organization) picks its defaultChildWorkspaceType
    let (code, w2) = alice
        .post(&format!("/clusters/root:acme/{WS}"), ws("w2", None))
        .await;
    assert_eq!(code, 201, "{w2}");
    assert_eq!(
        w2["spec"]["type"],
        json!({"name": "universal", "path": "root"})
    );
    // granted `use` in the type's workspace, alice may; the type's path is filled in
    grant_role(
        &admin,
        "root:acme",
        Some(("use-custom", json!([{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"], "resourceNames": ["custom"], "verbs": ["use"]}]))),
        "use-custom",
        "alice-use",
        "alice",
    )
    .await;
    let (code, w1) = alice
        .post(&format!("/clusters/root:acme/{WS}"), custom)
        .await;
    assert_eq!(code, 201, "{w1}");
    assert_eq!(
        w1["spec"]["type"],
        json!({"name": "custom", "path": "root:acme"})
    );

    // the type's initializer holds the workspace in Initializing until it is removed
    let initializer = format!("{acme_cluster}:custom");
    let w1 = wait_phase(&alice, "root:acme", "w1", "Initializing").await;
    assert_eq!(w1["status"]["initializers"], json!([initializer]));
    let id = w1["spec"]["cluster"].as_str().unwrap().to_string();
    assert_eq!(
        alice
            .get("/clusters/root:acme:w1/api/v1/namespaces")
            .await
            .0,
        403,
        "not enterable by path before it is Ready"
    );
    let lc_path = format!("/clusters/{id}/apis/core.kcp.io/v1alpha1/logicalclusters/cluster");
    let (code, mut lc) = admin.get(&lc_path).await;
    assert_eq!(code, 200, "{lc}");
    assert_eq!(lc["status"]["phase"], "Initializing");
    assert_eq!(lc["spec"]["initializers"], json!([initializer]));
    assert_eq!(lc["spec"]["owner"]["name"], "w1");
    assert_eq!(lc["spec"]["owner"]["cluster"], acme_cluster);
    // adding an initializer is refused; removing the last one makes the workspace Ready
    lc["status"]["initializers"] = json!([initializer, "x:y"]);
    let (code, bad) = admin.put(&format!("{lc_path}/status"), lc.clone()).await;
    assert_eq!(code, 422, "{bad}");
    // alice created w1 and administers it, but removing its type's initializer takes
    // kcp's `initialize` verb on that type, in the type's workspace
    lc["status"]["initializers"] = json!([]);
    let (code, refused) = alice.put(&format!("{lc_path}/status"), lc.clone()).await;
    assert_eq!(code, 403, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains(&format!(
            "removing the initializer \"{initializer}\" needs the \"initialize\" verb on workspacetypes.tenancy.kcp.io \"custom\""
        )),
        "{refused}"
    );
    grant_role(
        &admin,
        "root:acme",
        Some(("initialize-custom", json!([{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"], "resourceNames": ["custom"], "verbs": ["initialize"]}]))),
        "initialize-custom",
        "alice-initialize",
        "alice",
    )
    .await;
    let (code, done) = alice.put(&format!("{lc_path}/status"), lc).await;
    assert_eq!(code, 200, "{done}");
    let w1 = alice.wait_workspace_ready("root:acme", "w1").await;
    assert!(w1["status"].get("initializers").is_none(), "{w1}");
    assert_eq!(
        alice
            .get("/clusters/root:acme:w1/api/v1/namespaces")
            .await
            .0,
        200
    );
    let (_, lc) = admin.get(&lc_path).await;
    assert_eq!(lc["status"]["phase"], "Ready");

    // limits see through extension: leaf only allows custom parents; custom extends universal
    assert_eq!(
        admin
            .post(
                &format!("/clusters/root:acme/{wt}"),
                wst("leaf", json!({"limitAllowedParents": {"types": [{"name": "custom", "path": "root:acme"}]}}))
            )
            .await
            .0,
        201
    );
    let mut leaf = wst("l1", json!({"type": {"name": "leaf", "path": "root:acme"}}));
    leaf["kind"] = json!("Workspace");
    let (code, err) = admin
        .post(&format!("/clusters/root:acme/{WS}"), leaf.clone())
        .await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        forbidden_reason(&err),
        "workspace type root:acme:leaf only allows [root:acme:custom] parent workspaces, but parent type root:organization only implements [root:organization root:universal]"
    );
    let (code, err) = admin
        .post(&format!("/clusters/root:acme:w1/{WS}"), leaf)
        .await;
    assert_eq!(code, 201, "{err}");
    admin.wait_workspace_ready("root:acme:w1", "l1").await;

    // a type that allows no children of a kind it does not know
    assert_eq!(
        admin
            .post(
                &format!("/clusters/root:acme/{wt}"),
                wst("closed", json!({"extend": {"with": [{"name": "universal", "path": "root"}]}, "limitAllowedChildren": {"types": [{"name": "leaf", "path": "root:acme"}]},
                    "defaultChildWorkspaceType": {"name": "universal", "path": "root"}}))
            )
            .await
            .0,
        201
    );
    let mut closed = wst(
        "c1",
        json!({"type": {"name": "closed", "path": "root:acme"}}),
    );
    closed["kind"] = json!("Workspace");
    assert_eq!(
        admin
            .post(&format!("/clusters/root:acme/{WS}"), closed)
            .await
            .0,
        201
    );
    admin.wait_workspace_ready("root:acme", "c1").await;
    let (code, err) = admin
        .post(&format!("/clusters/root:acme:c1/{WS}"), ws("u", None))
        .await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        forbidden_reason(&err),
        "workspace type root:acme:closed only allows [root:acme:leaf] child workspaces, but child type root:universal only implements [root:universal]"
    );

    // extension cycles are refused
    for (a, b) in [("a", "b"), ("b", "a")] {
        assert_eq!(
            admin
                .post(
                    &format!("/clusters/root:acme/{wt}"),
                    wst(
                        a,
                        json!({"extend": {"with": [{"name": b, "path": "root:acme"}]}})
                    )
                )
                .await
                .0,
            201
        );
    }
    let mut cyc = wst("cy", json!({"type": {"name": "a", "path": "root:acme"}}));
    cyc["kind"] = json!("Workspace");
    let (code, err) = admin.post(&format!("/clusters/root:acme/{WS}"), cyc).await;
    assert_eq!(code, 403, "{err}");
    assert!(
        forbidden_reason(&err)
            .starts_with("circular dependency detected in workspace type root:acme:"),
        "{err}"
    );
}

#[tokio::test]
async fn workspaces_are_scheduled_onto_shards() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    c.wait_workspace_ready("root", "users").await;
    // the shard registered itself in root
    let (code, shard) = c
        .get("/clusters/root/apis/core.kcp.io/v1alpha1/shards/root")
        .await;
    assert_eq!(code, 200, "{shard}");
    assert_eq!(shard["spec"]["baseURL"], env.url());
    let out = env.kubectl().ok(&["get", "shards"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "REGION", "URL", "EXTERNAL", "URL", "AGE"],
        "{out}"
    );

    // kcp's shard annotation: base36(sha224(shard name))[:8]
    c.post(&format!("/clusters/root/{WS}"), ws("placed", None))
        .await;
    let placed = c.wait_workspace_ready("root", "placed").await;
    assert_eq!(
        placed["metadata"]["annotations"]["internal.tenancy.kcp.io/shard"],
        "1pfxsevk"
    );

    // a location selector no shard matches leaves the workspace Scheduling, and says why
    let mut picky = ws("picky", None);
    picky["spec"]["location"] = json!({"selector": {"matchLabels": {"region": "mars"}}});
    assert_eq!(c.post(&format!("/clusters/root/{WS}"), picky).await.0, 201);
    let mut status = Value::Null;
    for _ in 0..100 {
        let (_, w) = c.get(&format!("/clusters/root/{WS}/picky")).await;
        if w["status"]["conditions"][0]["reason"] == "Unschedulable" {
            status = w["status"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["phase"], "Scheduling", "{status}");
    assert_eq!(
        status["conditions"][0]["message"],
        "No available shards to schedule the workspace"
    );
    // once a shard carries the label, the next workspace asking for it is placed
    let (code, _) = c
        .patch(
            "/clusters/root/apis/core.kcp.io/v1alpha1/shards/root",
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"region":"mars"}}}"#,
        )
        .await;
    assert_eq!(code, 200);
    let mut martian = ws("martian", None);
    martian["spec"]["location"] = json!({"selector": {"matchLabels": {"region": "mars"}}});
    assert_eq!(
        c.post(&format!("/clusters/root/{WS}"), martian).await.0,
        201
    );
    c.wait_workspace_ready("root", "martian").await;
    // and the one that waited is placed too
    c.wait_workspace_ready("root", "picky").await;
}
