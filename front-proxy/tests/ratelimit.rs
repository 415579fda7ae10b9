//! Per-user rate limits: 429 `Status` with `Retry-After` past the burst, per user, in
//! the proxy's memory and shared by two proxy replicas through a real Redis
//! (`redis-server`, installed by `scripts/install-tools`), falling back to each
//! replica's own buckets while Redis is gone. The users are ordinary ones (superusers
//! are exempt from every request limit, as kube's API Priority and Fairness exempts
//! `system:masters`); `/version` answers any authenticated user.

use std::time::Duration;

use canopy_test_harness::{TestProxy, TestRedis};
use front_proxy::FrontProxy;
use serde_json::Value;

async fn get(c: &canopy_test_harness::Client, path: &str) -> (u16, Option<String>, Value) {
    let resp = c.request(reqwest::Method::GET, path).send().await.unwrap();
    let code = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (code, retry, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_gets_429_with_retry_after_per_user() {
    // 0.2 qps: a token every 5 s, so the test never races the refill
    let env = TestProxy::builder().rate_limit(0.2, 3).start().await;
    let alice = env.client(Some(&env.token("alice", &[])));
    for i in 0..3 {
        let (code, _, _) = get(&alice, "/version").await;
        assert_eq!(code, 200, "request {i} is within the burst");
    }
    let (code, retry, status) = get(&alice, "/version").await;
    assert_eq!(code, 429);
    let secs: u32 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=5).contains(&secs), "Retry-After {secs}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    assert_eq!(status["details"]["retryAfterSeconds"], secs);
    // another user has a bucket of their own
    let bob = env.client(Some(&env.token("bob", &[])));
    let (code, _, _) = get(&bob, "/version").await;
    assert_eq!(code, 200);
    // health endpoints are not limited, nor is the admin
    let (code, _, _) = get(&alice, "/readyz").await;
    assert_eq!(code, 200);
    let admin = env.client(Some(&env.token("admin", &["system:masters"])));
    for _ in 0..5 {
        assert_eq!(get(&admin, "/version").await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_limit_through_redis() {
    let redis = TestRedis::start().await;
    let env = TestProxy::builder()
        .rate_limit(0.2, 3)
        .redis(&redis.url)
        .start()
        .await;
    // a second replica with the same options (and so the same Redis)
    let replica = FrontProxy::start(env.options())
        .await
        .expect("second replica");
    assert!(replica.wait_ready(Duration::from_secs(30)).await);
    let token = env.token("alice", &[]);
    let a = env.client(Some(&token));
    let b = canopy_test_harness::Client::new(
        &replica.url,
        replica.ca_cert_pem.as_deref().unwrap(),
        Some(&token),
    );
    assert_eq!(get(&a, "/version").await.0, 200);
    assert_eq!(get(&b, "/version").await.0, 200);
    assert_eq!(get(&a, "/version").await.0, 200);
    // the burst of 3 is spent across both replicas
    let (code, retry, status) = get(&b, "/version").await;
    assert_eq!(code, 429, "{status}");
    assert!(retry.is_some());
    let (code, _, _) = get(&a, "/version").await;
    assert_eq!(code, 429);

    // without Redis the proxies keep serving, each limiting on its own, without
    // waiting for Redis on every request
    drop(redis);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bob = env.client(Some(&env.token("bob", &[])));
    for i in 0..3 {
        let (code, _, _) = get(&bob, "/version").await;
        assert_eq!(code, 200, "request {i}");
    }
    let started = std::time::Instant::now();
    let (code, retry, _) = get(&bob, "/version").await;
    assert_eq!(code, 429);
    assert!(retry.is_some());
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    replica.stop().await;
}
