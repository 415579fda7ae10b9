//! One user must not be able to take the service down, through the front-proxy
//! (issue 13, item 7): the proxy applies the same connection caps and request limits as
//! a shard (`canopy_https`, `canopy_edge`), shards do not count the proxy's connections
//! against its address, and the `front-proxy` binary raises its open-files limit.

use std::net::IpAddr;
use std::time::Duration;

use canopy_test_harness::{closed_by_server, raw_tls, test_limits, Client, TestProxy};
use serde_json::{json, Value};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cap_per_user_at_the_proxy_and_proxied_watches_pass_the_shards_address_cap() {
    let mut proxy_limits = test_limits(2);
    proxy_limits.requests.max_watches_per_user = 3;
    // every proxied watch is a connection from the proxy's address to the shard: the
    // shard must not count them against that address
    let mut shard_limits = test_limits(1);
    shard_limits.connections.max_connections_per_ip = 2;
    let env = TestProxy::builder()
        .limits(proxy_limits)
        .shard_limits(shard_limits)
        .start()
        .await;
    let admin = env.admin();
    admin.grant_configmaps(&["alice", "bob"]).await;
    let alice = env.client(Some(&env.token("alice", &[])));
    let bob = env.client(Some(&env.token("bob", &[])));
    let watch = "/clusters/root/api/v1/namespaces/default/configmaps?watch=true";

    let mut open = Vec::new();
    for i in 0..3 {
        let r = alice
            .request(reqwest::Method::GET, watch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "watch {i}");
        open.push(r);
    }
    let r = alice
        .request(reqwest::Method::GET, watch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("--max-watches-per-user=3"),
        "{status}"
    );
    let mut bobs = bob
        .request(reqwest::Method::GET, watch)
        .send()
        .await
        .unwrap();
    assert_eq!(bobs.status(), 200);
    // bob's watch works end to end
    let (code, _) = admin
        .post(
            "/clusters/root/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seen"}}),
        )
        .await;
    assert_eq!(code, 201);
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        let mut text = String::new();
        while let Some(chunk) = bobs.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\"seen\"") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true));
    // and ordinary requests of everyone keep working
    assert_eq!(
        alice
            .get("/clusters/root/api/v1/namespaces/default/configmaps")
            .await
            .0,
        200
    );
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_proxys_address_cap_are_refused_while_the_admin_is_served() {
    let mut proxy_limits = test_limits(2);
    proxy_limits.connections.max_connections_per_ip = 4;
    let env = TestProxy::builder().limits(proxy_limits).start().await;
    let addr: std::net::SocketAddr = env.url().trim_start_matches("https://").parse().unwrap();
    let ca = env.ca_cert_pem().to_string();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(raw_tls(addr, &ca, "http/1.1", None).await.unwrap());
    }
    if let Ok(mut s) = raw_tls(addr, &ca, "http/1.1", None).await {
        assert!(closed_by_server(&mut s, Duration::from_secs(10)).await);
    }
    let admin = Client::from_address(
        env.url(),
        &ca,
        Some(&env.token("admin", &["system:masters"])),
        ip("127.0.0.2"),
    );
    let (code, v) = admin.get("/clusters/root/api/v1/namespaces/default").await;
    assert_eq!(code, 200, "{v}");
    let text = admin
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l.starts_with(
            "canopy_front_proxy_connections_rejected_total{reason=\"max_connections_per_ip\"}"
        ) && !l.ends_with(" 0")),
        "{text}"
    );
}

/// The soft limit of open files in `/proc/<pid>/limits`: (soft, hard).
fn open_files(pid: u32) -> Option<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line["Max open files".len()..].split_whitespace();
    Some((f.next()?.to_string(), f.next()?.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_raises_its_open_files_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = canopy_auth::TokenIssuer::load_or_create(&dir.path().join("issuer")).unwrap();
    let key = dir.path().join("token.pub");
    std::fs::write(&key, issuer.public_key_pem()).unwrap();
    let pki =
        canopy_auth::Pki::load_or_create(&dir.path().join("pki"), &["127.0.0.1".into()]).unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &pki.ca_cert_pem).unwrap();
    // started with a low soft limit, as many service managers do
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 256 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_front-proxy"))
        .args(["--shard", "root=https://127.0.0.1:1", "--secure-port", "0"])
        .arg("--shard-ca-file")
        .arg(&ca)
        .arg("--token-public-key-file")
        .arg(&key)
        .arg("--root-directory")
        .arg(dir.path().join("proxy"))
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let hard = open_files(std::process::id()).unwrap().1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let limits = open_files(pid);
        if limits.as_ref().is_some_and(|(soft, _)| *soft == hard) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "soft limit not raised to {hard}: {limits:?}"
        );
        assert!(child.try_wait().unwrap().is_none(), "front-proxy exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await.unwrap();
}
