//! Workspaces: a Workspace in a parent becomes a ready child logical cluster at
//! `/clusters/<parent path>:<name>`; deletion removes it and everything below it.

use std::time::Duration;

use canopy_test_harness::{Client, TestShard};
use serde_json::{json, Value};

async fn wait_ready(c: &Client, parent: &str, name: &str) -> Value {
    for _ in 0..100 {
        let (code, ws) = c
            .get(&format!(
                "/clusters/{parent}/apis/tenancy.kcp.io/v1alpha1/workspaces/{name}"
            ))
            .await;
        if code == 200 && ws["status"]["phase"] == "Ready" {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("workspace {parent}:{name} never became Ready");
}

fn ws(name: &str, ty: Option<&str>) -> Value {
    let mut w = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name}, "spec": {}});
    if let Some(t) = ty {
        w["spec"]["type"] = json!({"name": t, "path": "root"});
    }
    w
}

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";

#[tokio::test]
async fn nested_workspaces_resolve_by_path_and_delete_in_cascade() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    // root starts with the users workspace and the built-in types
    let users = wait_ready(&c, "root", "users").await;
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
    let acme = wait_ready(&c, "root", "acme").await;
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
    assert_eq!(
        c.post(
            &format!("/clusters/root:acme/{WS}"),
            ws("team-a", Some("team"))
        )
        .await
        .0,
        201
    );
    wait_ready(&c, "root:acme", "team-a").await;
    let (code, bad) = c
        .post(&format!("/clusters/root/{WS}"), ws("t", Some("team")))
        .await;
    assert_eq!(code, 422, "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("only allows parents of types"),
        "{bad}"
    );
    let (code, bad) = c
        .post(&format!("/clusters/root/{WS}"), ws("t", Some("nope")))
        .await;
    assert_eq!(code, 422, "{bad}");

    // four levels deep
    assert_eq!(
        c.post(&format!("/clusters/root:acme:team-a/{WS}"), ws("app", None))
            .await
            .0,
        201
    );
    wait_ready(&c, "root:acme:team-a", "app").await;
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
    wait_ready(&c, "root:acme", "team-a").await;
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
    wait_ready(&env.admin(), "root", "users").await;
    let alice = env.client(Some(&env.token("alice", &["devs"])));
    let bob = env.client(Some(&env.token("bob", &[])));

    let (code, home) = alice.get(&format!("/clusters/root/{WS}/~")).await;
    assert_eq!(code, 200, "{home}");
    assert_eq!(
        home["spec"]["URL"],
        format!("{}/clusters/root:users:alice", env.url())
    );
    assert_eq!(home["spec"]["type"]["name"], "home");
    // the same workspace the second time
    let (_, again) = alice.get(&format!("/clusters/root/{WS}/~")).await;
    assert_eq!(again["spec"]["cluster"], home["spec"]["cluster"]);

    // alice owns her home; bob cannot enter it, and cannot tell it from nothing
    assert_eq!(
        alice
            .post(
                "/clusters/root:users:alice/api/v1/namespaces/default/configmaps",
                json!({"metadata": {"name": "mine"}})
            )
            .await
            .0,
        201
    );
    let (c1, e1) = bob
        .get("/clusters/root:users:alice/api/v1/namespaces/default/configmaps")
        .await;
    let (c2, e2) = bob
        .get("/clusters/root:users:nobody/api/v1/namespaces/default/configmaps")
        .await;
    assert_eq!((c1, c2), (403, 403));
    assert_eq!(e1["message"], e2["message"]);
    // both may enter root, where RBAC shows them nothing
    assert_eq!(bob.get("/clusters/root/version").await.0, 200);
    assert_eq!(bob.get(&format!("/clusters/root/{WS}")).await.0, 403);
    assert_eq!(bob.get(&format!("/clusters/root/{WS}/users")).await.0, 403);
    let (_, bob_home) = bob.get(&format!("/clusters/root/{WS}/~")).await;
    assert_eq!(
        bob_home["spec"]["URL"],
        format!("{}/clusters/root:users:bob", env.url())
    );

    // access is RBAC inside the workspace: alice grants bob access and a role
    let grant = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "bob-access"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kcp:workspace:access"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]});
    assert_eq!(
        alice
            .post(
                "/clusters/root:users:alice/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                grant
            )
            .await
            .0,
        201
    );
    let (code, _) = bob
        .get("/clusters/root:users:alice/api/v1/namespaces/default/configmaps")
        .await;
    assert_eq!(code, 403, "access alone grants no resources");
    let (code, err) = bob
        .get("/clusters/root:users:alice/api/v1/namespaces/default/configmaps/mine")
        .await;
    assert_eq!(code, 403);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cannot get resource \"configmaps\""),
        "{err}"
    );
}
