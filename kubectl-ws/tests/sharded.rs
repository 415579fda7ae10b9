//! Workspaces across three shards behind the front-proxy (here, beside `kubectl-ws`, so
//! that the plugin binary is built for the test): the root shard schedules new
//! workspaces onto every shard, a child lives on another shard than its parent, and
//! everything works through the proxy with kubectl and `kubectl ws`, including a
//! deletion cascade that crosses shards.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use canopy_test_harness::{shard_name, TestProxy};
use serde_json::{json, Value};

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";

fn ws(name: &str) -> Value {
    json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name}, "spec": {}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_spread_over_shards_and_work_through_the_proxy() {
    let env = TestProxy::builder().shards(3).start().await;
    let c = env.admin();
    // every shard registered itself in root
    let hashes: HashMap<String, String> = (0..3)
        .map(|i| {
            (
                canopy_core::resource::shard_hash(&shard_name(i)),
                shard_name(i),
            )
        })
        .collect();
    for _ in 0..100 {
        let (_, shards) = c
            .get("/clusters/root/apis/core.kcp.io/v1alpha1/shards")
            .await;
        if shards["items"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, shards) = c
        .get("/clusters/root/apis/core.kcp.io/v1alpha1/shards")
        .await;
    assert_eq!(
        shards["items"].as_array().map(Vec::len),
        Some(3),
        "{shards}"
    );

    // 12 organizations: the scheduler spreads them over the three shards
    for i in 0..12 {
        let (code, b) = c
            .post(&format!("/clusters/root/{WS}"), ws(&format!("org-{i}")))
            .await;
        assert_eq!(code, 201, "{b}");
    }
    let mut per_shard: HashMap<String, usize> = HashMap::new();
    for i in 0..12 {
        let w = c.wait_workspace_ready("root", &format!("org-{i}")).await;
        let h = w["metadata"]["annotations"]["internal.tenancy.kcp.io/shard"]
            .as_str()
            .unwrap();
        *per_shard.entry(hashes[h].clone()).or_default() += 1;
    }
    assert_eq!(per_shard.len(), 3, "every shard holds some: {per_shard:?}");

    // a workspace on another shard than root works through the proxy by path
    let mut remote_org = None;
    for i in 0..12 {
        let (_, w) = c.get(&format!("/clusters/root/{WS}/org-{i}")).await;
        if w["metadata"]["annotations"]["internal.tenancy.kcp.io/shard"]
            != canopy_core::resource::shard_hash("root")
        {
            remote_org = Some(format!("org-{i}"));
            break;
        }
    }
    let org = remote_org.expect("an organization on another shard than root");
    let p = format!("/clusters/root:{org}");
    let (code, b) = c
        .post(
            &format!("{p}/api/v1/namespaces/default/configmaps"),
            json!({"metadata": {"name": "hello"}, "data": {"k": "v"}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let (code, cm) = c
        .get(&format!("{p}/api/v1/namespaces/default/configmaps/hello"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(cm["data"]["k"], "v");
    // nested: team under the remote organization, and a grandchild
    let (code, b) = c
        .post(&format!("{p}/{WS}"), json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "team"}, "spec": {"type": {"name": "team", "path": "root"}}}))
        .await;
    assert_eq!(code, 201, "{b}");
    c.wait_workspace_ready(&format!("root:{org}"), "team").await;
    let (code, b) = c.post(&format!("{p}:team/{WS}"), ws("app")).await;
    assert_eq!(code, 201, "{b}");
    c.wait_workspace_ready(&format!("root:{org}:team"), "app")
        .await;
    let (code, b) = c
        .post(
            &format!("{p}:team:app/api/v1/namespaces/default/configmaps"),
            json!({"metadata": {"name": "deep"}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");

    // kubectl and kubectl ws through the proxy, across shard boundaries
    let plugin = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-ws"));
    {
        let k = env.kubectl();
        let path = format!(
            "{}:{}",
            plugin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let run = |args: Vec<String>| {
            let mut cmd = k.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
            cmd.env("PATH", &path);
            cmd
        };
        let out = run(vec![
            "ws".into(),
            "use".into(),
            format!(":root:{org}:team:app"),
        ])
        .output()
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Current workspace is \"root:{org}:team:app\" (type \"root:universal\").\n")
        );
        let out = run(vec![
            "get".into(),
            "configmap".into(),
            "deep".into(),
            "-o".into(),
            "name".into(),
        ])
        .output()
        .await
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "configmap/deep\n");
        let out = run(vec!["ws".into(), "..".into()]).output().await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Current workspace is \"root:{org}:team\" (type \"root:team\").\n")
        );
    }

    // deleting the organization removes everything below it, on whichever shard
    let (code, _) = c.delete(&format!("/clusters/root/{WS}/{org}")).await;
    assert_eq!(code, 202);
    let mut gone = false;
    for _ in 0..200 {
        if c.get(&format!("/clusters/root/{WS}/{org}")).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !gone {
        let (_, w) = c.get(&format!("/clusters/root/{WS}/{org}")).await;
        let (_, t) = c.get(&format!("{p}/{WS}/team")).await;
        let mut lcs = Vec::new();
        for i in 0..3 {
            let (_, l) = env
                .shard(i)
                .admin()
                .get("/clusters/*/apis/core.kcp.io/v1alpha1/logicalclusters")
                .await;
            lcs.push(
                l["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| {
                        (
                            x["metadata"]["annotations"]["kcp.io/path"].clone(),
                            x["status"]["phase"].clone(),
                        )
                    })
                    .collect::<Vec<_>>(),
            );
        }
        panic!("the organization's deletion did not finish: {w}\nteam: {t}\nLCs: {lcs:?}");
    }
    assert_eq!(
        c.get(&format!(
            "{p}:team:app/api/v1/namespaces/default/configmaps/deep"
        ))
        .await
        .0,
        403
    );
    assert_eq!(
        c.get(&format!("{p}/api/v1/namespaces/default/configmaps/hello"))
            .await
            .0,
        403
    );
    // the logical clusters are gone from every shard
    for i in 0..3 {
        let direct = env.shard(i);
        let (_, lcs) = direct
            .admin()
            .get("/clusters/*/apis/core.kcp.io/v1alpha1/logicalclusters")
            .await;
        let paths: Vec<&str> = lcs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["metadata"]["annotations"]["kcp.io/path"].as_str())
            .collect();
        assert!(
            paths.iter().all(|p| !p.starts_with(&format!("root:{org}"))),
            "shard {i} still holds {paths:?}"
        );
    }
}
