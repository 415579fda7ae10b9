//! Per-organization quotas (workspaces, objects, stored bytes): refused with kube's
//! ResourceQuota wording as 403s, freed by deletes, per organization, and counted
//! across shards behind a front-proxy.

use std::time::Duration;

use canopy_tenancy::quota::OrgQuotas;
use canopy_test_harness::{Client, Kubectl, TestProxy, TestShard};
use serde_json::{json, Value};

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";

async fn wait_ready(c: &Client, parent: &str, name: &str) -> Value {
    for _ in 0..400 {
        let (code, ws) = c.get(&format!("/clusters/{parent}/{WS}/{name}")).await;
        if code == 200 && ws["status"]["phase"] == "Ready" {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("workspace {parent}:{name} never became Ready");
}

async fn wait_gone(c: &Client, parent: &str, name: &str) {
    for _ in 0..400 {
        if c.get(&format!("/clusters/{parent}/{WS}/{name}")).await.0 == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("workspace {parent}:{name} was never removed");
}

fn workspace(name: &str, selector: Option<&str>) -> Value {
    let mut w = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
        "metadata": {"name": name}, "spec": {}});
    if let Some(s) = selector {
        w["spec"]["location"] = json!({"selector": {"matchLabels": {"quota-test": s}}});
    }
    w
}

async fn create_ws(c: &Client, parent: &str, w: Value) -> (u16, Value) {
    c.post(&format!("/clusters/{parent}/{WS}"), w).await
}

fn cm(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"d": data}})
}

fn cms(ws: &str) -> String {
    format!("/clusters/{ws}/api/v1/namespaces/default/configmaps")
}

/// Creates ConfigMaps `<prefix>-<i>` until the quota refuses one; returns how many were
/// created and the refusal.
async fn fill(c: &Client, ws: &str, prefix: &str, data: &str, most: usize) -> (usize, Value) {
    for i in 0..most {
        let (code, body) = c.post(&cms(ws), cm(&format!("{prefix}-{i}"), data)).await;
        match code {
            201 => continue,
            403 => return (i, body),
            other => panic!("creating {prefix}-{i} in {ws}: {other} {body}"),
        }
    }
    panic!("{most} ConfigMaps in {ws} and no quota refused one");
}

fn forbidden(body: &Value) -> &str {
    assert_eq!(body["code"], 403, "{body}");
    assert_eq!(body["reason"], "Forbidden", "{body}");
    body["message"].as_str().unwrap_or_default()
}

/// The `used:` number of one quota in a refusal's message.
fn used(message: &str, quota: &str) -> u64 {
    let (_, rest) = message
        .split_once(&format!("used: {quota}="))
        .unwrap_or_else(|| panic!("no used {quota} in {message:?}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {message:?}"))
}

#[tokio::test]
async fn objects_workspaces_and_bytes_per_organization() {
    let env = TestShard::builder()
        .size_limits(shard::Limits {
            quotas: OrgQuotas {
                workspaces: 2,
                objects: 200,
                bytes: 0,
            },
            ..Default::default()
        })
        .start()
        .await;
    let c = env.admin();
    for org in ["acme", "globex", "initech"] {
        assert_eq!(create_ws(&c, "root", workspace(org, None)).await.0, 201);
        wait_ready(&c, "root", org).await;
    }
    // workspaces: two inside acme (at any depth), the third refused, naming the quota
    assert_eq!(
        create_ws(&c, "root:acme", workspace("a", None)).await.0,
        201
    );
    wait_ready(&c, "root:acme", "a").await;
    assert_eq!(
        create_ws(&c, "root:acme:a", workspace("deep", None))
            .await
            .0,
        201
    );
    wait_ready(&c, "root:acme:a", "deep").await;
    let (code, body) = create_ws(&c, "root:acme", workspace("c", None)).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        forbidden(&body),
        "workspaces.tenancy.kcp.io \"c\" is forbidden: exceeded quota: organization \"root:acme\", \
         requested: count/workspaces.tenancy.kcp.io=1, used: count/workspaces.tenancy.kcp.io=2, \
         limited: count/workspaces.tenancy.kcp.io=2"
    );
    // deleting one frees its place
    let (code, body) = c.delete(&format!("/clusters/root:acme:a/{WS}/deep")).await;
    assert!(code == 200 || code == 202, "{code} {body}");
    wait_gone(&c, "root:acme:a", "deep").await;
    assert_eq!(
        create_ws(&c, "root:acme", workspace("c", None)).await.0,
        201
    );
    wait_ready(&c, "root:acme", "c").await;

    // objects: the organization's bootstrap objects and the ConfigMaps of all its
    // workspaces count; the refusal is exact on one shard
    let (made, body) = fill(&c, "root:acme:c", "cm", "x", 300).await;
    assert!(made > 10, "only {made} ConfigMaps fit");
    let msg = forbidden(&body);
    assert_eq!(
        msg,
        format!(
            "configmaps \"cm-{made}\" is forbidden: exceeded quota: organization \"root:acme\", \
             requested: count/objects=1, used: count/objects=200, limited: count/objects=200"
        )
    );
    // also in another workspace of the organization, and through kubectl
    let kubectl = Kubectl::new(
        &env.kubeconfig_for(
            "acme",
            "root:acme",
            &env.token("admin", &["system:masters"]),
        ),
        env.dir.path(),
    );
    let err = kubectl
        .fails(&["create", "configmap", "one-more", "--from-literal=a=b"])
        .await;
    assert!(
        err.contains(
            "configmaps \"one-more\" is forbidden: exceeded quota: organization \"root:acme\", \
             requested: count/objects=1, used: count/objects=200, limited: count/objects=200"
        ),
        "{err}"
    );
    eprintln!("kubectl create configmap over the quota:\n{err}");
    // a dry run is held to the quota too; updates that do not grow pass
    let (code, _) = c
        .post(&format!("{}?dryRun=All", cms("root:acme")), cm("dry", "x"))
        .await;
    assert_eq!(code, 403);
    let (code, body) = c
        .put(&format!("{}/cm-0", cms("root:acme:c")), {
            let (_, mut cur) = c.get(&format!("{}/cm-0", cms("root:acme:c"))).await;
            cur["data"]["d"] = json!("");
            cur
        })
        .await;
    assert_eq!(code, 200, "{body}");
    // another organization is not affected
    assert_eq!(c.post(&cms("root:globex"), cm("fine", "x")).await.0, 201);
    assert_eq!(
        create_ws(&c, "root:globex", workspace("w", None)).await.0,
        201
    );
    // deletes free the quota
    assert_eq!(
        c.delete(&format!("{}/cm-1", cms("root:acme:c"))).await.0,
        200
    );
    assert_eq!(c.post(&cms("root:acme"), cm("freed", "x")).await.0, 201);
    assert_eq!(c.post(&cms("root:acme"), cm("not-again", "x")).await.0, 403);

    // bytes, with limits a superuser set on the organization's Workspace
    let (code, body) = c
        .patch(
            &format!("/clusters/root/{WS}/initech"),
            "application/merge-patch+json",
            r#"{"metadata":{"annotations":{"quota.canopy.dev/bytes":"120000","quota.canopy.dev/objects":"0"}}}"#,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let big = "b".repeat(20_000);
    let (made, body) = fill(&c, "root:initech", "big", &big, 20).await;
    assert!(made >= 1, "not even one 20 kB ConfigMap fit: {body}");
    let msg = forbidden(&body).to_string();
    assert!(
        msg.starts_with(&format!(
            "configmaps \"big-{made}\" is forbidden: exceeded quota: organization \"root:initech\", \
             requested: canopy.dev/stored-bytes="
        )),
        "{msg}"
    );
    assert!(
        msg.ends_with(", limited: canopy.dev/stored-bytes=120000"),
        "{msg}"
    );
    let used_bytes = used(&msg, "canopy.dev/stored-bytes");
    assert!(
        used_bytes > 100_000 - 20_000 && used_bytes <= 120_000,
        "{msg}"
    );
    // shrinking is allowed (and frees bytes)
    let (code, body) = c
        .patch(
            &format!("{}/big-0", cms("root:initech")),
            "application/merge-patch+json",
            r#"{"data":{"d":"short"}}"#,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // the objects quota was lifted for initech (0: none): more small objects fit
    assert_eq!(c.post(&cms("root:initech"), cm("small", "x")).await.0, 201);
    // an update growing an object past the limit is refused
    let path = format!("{}/small", cms("root:initech"));
    let (_, mut cur) = c.get(&path).await;
    cur["data"]["d"] = json!(big.repeat(2));
    let (code, body) = c.put(&path, cur).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        forbidden(&body).contains(
            "exceeded quota: organization \"root:initech\", requested: canopy.dev/stored-bytes="
        ),
        "{body}"
    );
    // a workspace whose bootstrap would not fit is refused before it is created
    let (_, body) = fill(&c, "root:initech", "more", &"m".repeat(5_000), 10).await;
    forbidden(&body);
    let (code, body) = create_ws(&c, "root:initech", workspace("nope", None)).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        forbidden(&body).starts_with(
            "workspaces.tenancy.kcp.io \"nope\" is forbidden: exceeded quota: organization \"root:initech\", requested: canopy.dev/stored-bytes="
        ),
        "{body}"
    );

    // tenants cannot set the limits: the quota annotations are reserved
    let alice = env.client(Some(&env.token("alice", &[])));
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "alice-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]});
    let (code, body) = c
        .post(
            "/clusters/root:globex/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            binding,
        )
        .await;
    assert_eq!(code, 201, "{body}");
    wait_ready(&c, "root:globex", "w").await;
    let (code, body) = alice
        .patch(
            &format!("/clusters/root:globex/{WS}/w"),
            "application/merge-patch+json",
            r#"{"metadata":{"annotations":{"quota.canopy.dev/objects":"999999"}}}"#,
        )
        .await;
    assert_eq!(code, 403, "{body}");
    // nor the organization a logical cluster belongs to
    let (code, body) = alice
        .patch(
            "/clusters/root:globex/apis/core.kcp.io/v1alpha1/logicalclusters/cluster",
            "application/merge-patch+json",
            r#"{"metadata":{"annotations":{"canopy.dev/organization":"root"}}}"#,
        )
        .await;
    assert_eq!(code, 403, "{body}");
    let (_, lc) = c
        .get("/clusters/root:globex:w/apis/core.kcp.io/v1alpha1/logicalclusters/cluster")
        .await;
    let (_, globex) = c.get(&format!("/clusters/root/{WS}/globex")).await;
    assert_eq!(
        lc["metadata"]["annotations"]["canopy.dev/organization"], globex["spec"]["cluster"],
        "a nested workspace belongs to the organization of its parent"
    );
    // root and the users workspace belong to no organization
    let (_, root_lc) = c
        .get("/clusters/root/apis/core.kcp.io/v1alpha1/logicalclusters/cluster")
        .await;
    assert!(
        root_lc["metadata"]["annotations"]
            .get("canopy.dev/organization")
            .is_none(),
        "{root_lc}"
    );

    // usage is computed again from the database at start: the same answer after a restart
    let env = env.restart().await;
    let (code, body) = env.admin().post(&cms("root:acme"), cm("after", "x")).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        forbidden(&body).ends_with(
            "requested: count/objects=1, used: count/objects=200, limited: count/objects=200"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn usage_on_other_shards_counts() {
    let env = TestProxy::builder()
        .shards(3)
        .shard_size_limits(shard::Limits {
            quotas: OrgQuotas {
                workspaces: 10,
                objects: 150,
                bytes: 0,
            },
            ..Default::default()
        })
        .start()
        .await;
    let c = env.admin();
    // label shard-1 and shard-2, so workspaces can be placed on each
    for (shard, label) in [("shard-1", "one"), ("shard-2", "two")] {
        let mut labelled = false;
        for _ in 0..100 {
            let (code, _) = c
                .patch(
                    &format!("/clusters/root/apis/core.kcp.io/v1alpha1/shards/{shard}"),
                    "application/merge-patch+json",
                    &format!(r#"{{"metadata":{{"labels":{{"quota-test":"{label}"}}}}}}"#),
                )
                .await;
            if code == 200 {
                labelled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(labelled, "{shard} never registered");
    }
    for (org, sel) in [("acme", "one"), ("globex", "one")] {
        assert_eq!(
            create_ws(&c, "root", workspace(org, Some(sel))).await.0,
            201
        );
        wait_ready(&c, "root", org).await;
    }
    assert_eq!(
        create_ws(&c, "root:acme", workspace("b", Some("two")))
            .await
            .0,
        201
    );
    let b = wait_ready(&c, "root:acme", "b").await;
    let (_, acme) = c.get(&format!("/clusters/root/{WS}/acme")).await;
    let (org_lc, b_lc) = (
        acme["spec"]["cluster"].as_str().unwrap().to_string(),
        b["spec"]["cluster"].as_str().unwrap().to_string(),
    );
    assert!(env.shard(1).shard.api.logical_cluster_exists(&org_lc));
    assert!(env.shard(2).shard.api.logical_cluster_exists(&b_lc));
    // the organization was carried to the remote placement
    let (_, lc) = c
        .get("/clusters/root:acme:b/apis/core.kcp.io/v1alpha1/logicalclusters/cluster")
        .await;
    assert_eq!(
        lc["metadata"]["annotations"]["canopy.dev/organization"],
        org_lc
    );

    // let every shard report the bootstraps, then fill the organization from shard-2
    tokio::time::sleep(canopy_tenancy::quota::REPORT_INTERVAL * 2 + Duration::from_secs(1)).await;
    let (made, body) = fill(&c, "root:acme:b", "cm", "x", 200).await;
    let msg = forbidden(&body);
    assert!(
        msg.ends_with("used: count/objects=150, limited: count/objects=150"),
        "{msg}"
    );
    assert!(made > 10, "{made}");
    // once shard-2 reported, shard-1 refuses too (dry runs: they change nothing)
    let dry = format!("{}?dryRun=All", cms("root:acme"));
    let mut refused = None;
    for _ in 0..60 {
        let (code, body) = c.post(&dry, cm("probe", "x")).await;
        if code == 403 {
            refused = Some(body);
            break;
        }
        assert_eq!(code, 201, "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let body = refused.expect("shard-1 never learnt of shard-2's usage");
    let msg = forbidden(&body);
    assert!(
        msg.starts_with(
            "configmaps \"probe\" is forbidden: exceeded quota: organization \"root:acme\", requested: count/objects=1, used: count/objects="
        ),
        "{msg}"
    );
    assert!(used(msg, "count/objects") >= 150, "{msg}");
    // another organization on the same shard is not affected
    assert_eq!(c.post(&cms("root:globex"), cm("fine", "x")).await.0, 201);
    // deletes on shard-2 free the quota on shard-1 after the next reports
    for i in 0..5 {
        assert_eq!(
            c.delete(&format!("{}/cm-{i}", cms("root:acme:b"))).await.0,
            200
        );
    }
    let mut freed = false;
    for _ in 0..60 {
        if c.post(&dry, cm("probe", "x")).await.0 == 201 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(freed, "shard-1 never learnt that shard-2 freed objects");
    // the usage endpoint is for shard peers only
    let (code, _) = env
        .client(Some(&env.token("mallory", &[])))
        .post("/internal/usage", json!({"shard": "x"}))
        .await;
    assert_eq!(code, 404);
}
