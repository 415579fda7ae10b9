//! Two shards behind one front-proxy: logical clusters on either are routed by the
//! index; a stopped shard's workspaces get 503 with `Retry-After` quickly while the
//! other shard's keep working (an open watch through the proxy included), and they
//! work again once it is back, without restarting the proxy.

use canopy_tenancy::TenancyExt;
use std::time::{Duration, Instant};

use canopy_test_harness::TestProxy;
use futures::StreamExt;
use serde_json::{json, Value};

const CM: &str = "api/v1/namespaces/default/configmaps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_shard_gets_503_quickly_others_keep_working_and_it_recovers() {
    let mut env = TestProxy::builder().shards(2).start().await;
    // a logical cluster on the second shard (which has no root of its own)
    env.shard(1)
        .shard
        .api
        .ensure_logical_cluster("beta")
        .await
        .unwrap();
    let admin = env.admin();
    let (code, body) = admin
        .post(
            &format!("/clusters/beta/{CM}"),
            json!({"metadata": {"name": "b"}}),
        )
        .await;
    assert_eq!(
        code, 201,
        "routed to the shard that holds it at once: {body}"
    );
    assert_eq!(
        env.proxy.route("beta"),
        Some(("beta".to_string(), "shard-1".to_string()))
    );
    assert_eq!(
        env.proxy.route("root"),
        Some(("root".to_string(), "root".to_string()))
    );
    // an index that lags behind (the watch event not there yet) re-checks with the
    // shards before answering
    env.proxy.evict("beta");
    assert_eq!(env.proxy.route("beta"), None);
    let (found, _) = env.proxy.rechecks();
    let (code, body) = admin.get(&format!("/clusters/beta/{CM}/b")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(env.proxy.rechecks().0, found + 1);
    assert_eq!(env.proxy.route("beta").unwrap().1, "shard-1");

    // kubectl through the proxy to the second shard's logical cluster
    let beta = env.kubeconfig_for("beta", "beta", &env.admin_token);
    let k = env.kubectl().kubeconfig(&beta);
    let cms = k.ok(&["get", "configmaps", "-o", "name"]).await;
    assert!(cms.contains("configmap/b"), "{cms}");
    k.ok(&["create", "configmap", "via-kubectl"]).await;

    // root (and anything without /clusters/) is shard 0's
    let (code, _) = admin.get(&format!("/clusters/root/{CM}")).await;
    assert_eq!(code, 200);
    let (code, list) = admin.get(&format!("/{CM}")).await;
    assert_eq!(code, 200);
    assert!(
        !list.to_string().contains("\"b\""),
        "beta's configmap is not root's"
    );

    // a watch on root through the proxy, kept open across the other shard's outage
    let watch = admin
        .request(
            reqwest::Method::GET,
            &format!("/clusters/root/{CM}?watch=true&resourceVersion=0"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status().as_u16(), 200);
    let mut events = watch.bytes_stream();

    env.stop_shard(1).await;
    for attempt in 0..3 {
        let started = Instant::now();
        let resp = admin
            .request(reqwest::Method::GET, &format!("/clusters/beta/{CM}/b"))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(resp.status().as_u16(), 503, "attempt {attempt}");
        assert_eq!(resp.headers()["retry-after"], "1");
        let status: Value = resp.json().await.unwrap();
        assert_eq!(status["reason"], "ServiceUnavailable", "{status}");
        assert_eq!(status["details"]["retryAfterSeconds"], 1);
        assert!(took < Duration::from_secs(2), "503 took {took:?}");
        // the other shard's logical clusters still answer
        let (code, _) = admin.get(&format!("/clusters/root/{CM}")).await;
        assert_eq!(code, 200);
    }
    let (code, _) = admin
        .post(
            &format!("/clusters/root/{CM}"),
            json!({"metadata": {"name": "during-outage"}}),
        )
        .await;
    assert_eq!(code, 201);

    env.start_shard(1).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, cm) = admin.get(&format!("/clusters/beta/{CM}/b")).await;
        if code == 200 {
            assert_eq!(cm["metadata"]["name"], "b");
            break;
        }
        assert_eq!(code, 503);
        assert!(
            Instant::now() < deadline,
            "shard 1 never came back through the proxy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _) = admin
        .post(
            &format!("/clusters/beta/{CM}"),
            json!({"metadata": {"name": "after"}}),
        )
        .await;
    assert_eq!(code, 201);

    // the watch on shard 0 saw the configmap created during the outage
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("during-outage") {
        let chunk = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("watch event in time")
            .expect("the watch is still open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }

    // the index follows the restarted shard again
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.proxy.is_ready() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_clusters_appear_and_disappear_in_the_index() {
    let env = TestProxy::builder().shards(2).start().await;
    let before = env.proxy.index_len();
    env.shard(1)
        .shard
        .api
        .ensure_logical_cluster("gamma")
        .await
        .unwrap();
    // the watch delivers it without any request asking for it
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.proxy.route("gamma").is_none() {
        assert!(Instant::now() < deadline, "the index never learnt gamma");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.proxy.index_len(), before + 1);
    assert_eq!(env.proxy.route("gamma").unwrap().1, "shard-1");

    // workspaces created through the proxy land on the shard the scheduler chose
    let admin = env.admin();
    let (code, _) = admin
        .post(
            "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces",
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "w"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.proxy.route("root:w").is_none() {
        assert!(Instant::now() < deadline, "the index never learnt root:w");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, w) = admin
        .get("/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/w")
        .await;
    let hash = w["metadata"]["annotations"]["internal.tenancy.kcp.io/shard"]
        .as_str()
        .unwrap()
        .to_string();
    let routed = env.proxy.route("root:w").unwrap().1;
    assert_eq!(canopy_core::resource::shard_hash(&routed), hash);
    let (code, _) = admin
        .delete("/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/w")
        .await;
    assert!(code == 200 || code == 202, "{code}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.proxy.route("root:w").is_some() {
        assert!(
            Instant::now() < deadline,
            "the index kept root:w after deletion"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A shard asked by a peer to delete a logical cluster for a Workspace refuses when the
/// logical cluster names another owner (409), and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_delete_only_logical_clusters_of_the_named_owner() {
    let env = TestProxy::builder().shards(2).start().await;
    env.shard(1)
        .shard
        .api
        .ensure_logical_cluster("beta")
        .await
        .unwrap();
    let ca =
        canopy_auth::ClientCa::load_or_create(&env.dir.path().join("client-ca"), "proxy-client-ca")
            .unwrap();
    let (cert, key) = ca.issue_client_cert("system:shard:root", &[]).unwrap();
    let peers = canopy_tenancy::peers::Peers::new(
        &canopy_tenancy::peers::PeerConfig {
            ca_bundle_pem: env.shard(1).shard.ca_cert_pem.clone(),
            client_cert_pem: cert,
            client_key_pem: key,
            root_shard_url: None,
        },
        "root",
    )
    .unwrap();
    let base = env.shard(1).url().to_string();
    let refused = peers
        .delete_logical_cluster(&base, "beta", ("root", "some-other-workspace-uid"))
        .await;
    let err = refused.expect_err("another owner's logical cluster is not deleted");
    assert!(err.to_string().contains("409"), "{err}");
    assert!(
        env.shard(1).shard.api.logical_cluster_exists("beta"),
        "nothing was deleted"
    );
    // a tenant reaching the same path through the proxy gets 404, as always
    let (code, _) = env
        .admin()
        .delete("/internal/logicalclusters/beta?ownerUID=x&ownerCluster=root")
        .await;
    assert_eq!(code, 404);
}
