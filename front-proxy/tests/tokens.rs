//! Token keys and revocations reach every front-proxy replica: from root's shard
//! (long poll) and, with Redis, from the other replicas — so a replica that cannot
//! reach root's shard at all still refuses a revoked token within 2 s.

use std::time::{Duration, Instant};

use canopy_test_harness::{Client, TestProxy, TestRedis};
use front_proxy::FrontProxy;
use serde_json::json;

const TOKENS: &str = "/services/tokens/apis/tokens.canopy.dev/v1alpha1/tokens";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_root_learns_revocations_through_redis() {
    let redis = TestRedis::start().await;
    let env = TestProxy::builder()
        .shards(2)
        .redis(&redis.url)
        .start()
        .await;
    let admin = env.admin();

    // a replica whose root shard address leads nowhere: it hears of tokens only
    // through Redis
    let mut cut_off = env.options();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://{}", dead.local_addr().unwrap());
    drop(dead);
    for s in cut_off.shards.iter_mut().filter(|s| s.name == "root") {
        s.url = dead_url.clone();
    }
    let replica = FrontProxy::start(cut_off).await.expect("replica");
    let ca = replica.ca_cert_pem.clone().expect("generated CA");

    let (code, issued) = admin
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"user": "alice", "expirationSeconds": 600}}),
        )
        .await;
    assert_eq!(code, 201, "{issued}");
    let token = issued["status"]["token"].as_str().unwrap().to_string();
    let id = issued["metadata"]["name"].as_str().unwrap().to_string();
    let via_replica = Client::new(&replica.url, &ca, Some(&token));
    // authenticated (root's shard is unreachable from there, so routing fails: 503)
    let (code, b) = via_replica.get("/version").await;
    assert_eq!(code, 503, "{b}");

    let (code, b) = admin.delete(&format!("{TOKENS}/{id}")).await;
    assert_eq!(code, 200, "{b}");
    let revoked = Instant::now();
    loop {
        let (code, _) = via_replica.get("/version").await;
        if code == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(2),
            "the cut-off replica still accepts the revoked token ({code})"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(replica.revoked_tokens() >= 1);
    // the replica with a link to root refuses it too
    let (code, _) = env.client(Some(&token)).get("/version").await;
    assert_eq!(code, 401);

    // a rotated key's tokens are accepted by the cut-off replica as well
    let (code, b) = admin.post("/services/tokens/rotate", json!({})).await;
    assert_eq!(code, 200, "{b}");
    let (code, issued) = admin
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"user": "bob", "expirationSeconds": 600}}),
        )
        .await;
    assert_eq!(code, 201, "{issued}");
    let bob = Client::new(&replica.url, &ca, issued["status"]["token"].as_str());
    let start = Instant::now();
    loop {
        let (code, _) = bob.get("/version").await;
        if code != 401 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "new key not learned"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    replica.stop().await;
}
