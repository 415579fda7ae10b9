//! One user must not be able to take a shard down (issue 13, item 7): connection
//! timeouts and caps (`canopy_https`) and per-user request limits (`canopy_edge`),
//! through a real shard over real TLS. Every test checks that *another* client keeps
//! being served while one misbehaves; the limits are set small so the tests stay quick,
//! and no assertion is on timings beyond generous timeouts.

use std::net::IpAddr;
use std::time::Duration;

use canopy_test_harness::{closed_by_server, raw_tcp, raw_tls, test_limits, Client, TestShard};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The value of a counter in the shard's `/metrics`, summed over the label sets
/// containing `labels`.
async fn metric(admin: &Client, name: &str, labels: &str) -> f64 {
    let text = admin
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_closed_while_others_are_served() {
    let mut limits = test_limits(1);
    limits.connections.header_read_timeout = Duration::from_secs(2);
    limits.connections.tls_handshake_timeout = Duration::from_secs(2);
    let shard = TestShard::builder().limits(limits).start().await;
    let addr = shard.shard.addr;
    let ca = shard.shard.ca_cert_pem.clone();

    // slowloris: headers trickle in, a byte at a time, and never end
    let slow = raw_tls(addr, &ca, "http/1.1", None).await.unwrap();
    let (mut slow_read, mut slow_write) = tokio::io::split(slow);
    slow_write
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        while slow_write.write_all(b"a").await.is_ok() && slow_write.flush().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    // a TLS connection that never sends a request, over HTTP/2 and HTTP/1.1
    let mut silent_h2 = raw_tls(addr, &ca, "h2", None).await.unwrap();
    let mut silent_h1 = raw_tls(addr, &ca, "http/1.1", None).await.unwrap();
    // a TCP connection that never starts TLS
    let mut no_tls = raw_tcp(addr, None).await.unwrap();
    // an HTTP/1.1 keep-alive connection, idle after one request
    let mut idle = raw_tls(addr, &ca, "http/1.1", None).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    // meanwhile everyone else is served, on new connections each time
    let admin_token = shard.admin_token.clone();
    let url = shard.shard.url.clone();
    let ca2 = ca.clone();
    let others = tokio::spawn(async move {
        for i in 0..10 {
            let admin = Client::new(&url, &ca2, Some(&admin_token));
            let (code, v) = admin.get("/api/v1/namespaces/default").await;
            assert_eq!(code, 200, "request {i}: {v}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let within = Duration::from_secs(30);
    assert!(
        closed_by_server(&mut slow_read, within).await,
        "the slowloris connection is closed after the header-read timeout"
    );
    assert!(closed_by_server(&mut silent_h2, within).await);
    assert!(closed_by_server(&mut silent_h1, within).await);
    assert!(closed_by_server(&mut no_tls, within).await);
    assert!(
        closed_by_server(&mut idle, within).await,
        "an idle keep-alive connection is closed"
    );
    trickle.abort();
    others.await.unwrap();

    let admin = shard.admin();
    assert!(
        metric(
            &admin,
            "canopy_shard_connections_closed_total",
            "reason=\"header_read_timeout\""
        )
        .await
            >= 3.0
    );
    assert!(
        metric(
            &admin,
            "canopy_shard_connections_closed_total",
            "reason=\"tls_handshake_timeout\""
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_refused_while_the_admin_is_served() {
    let mut limits = test_limits(1);
    limits.connections.max_connections_per_ip = 5;
    limits.connections.max_connections = 8;
    let shard = TestShard::builder().limits(limits).start().await;
    let addr = shard.shard.addr;
    let ca = shard.shard.ca_cert_pem.clone();

    // one address holds its 5 connections, idle
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(raw_tls(addr, &ca, "http/1.1", None).await.unwrap());
    }
    // a 6th from it is closed at once: the handshake fails, or the connection ends
    let sixth = raw_tls(addr, &ca, "http/1.1", None).await;
    if let Ok(mut s) = sixth {
        assert!(closed_by_server(&mut s, Duration::from_secs(10)).await);
    }
    // the admin, from another address, is served
    let admin = Client::from_address(
        &shard.shard.url,
        &ca,
        Some(&shard.admin_token),
        ip("127.0.0.2"),
    );
    let (code, v) = admin.get("/api/v1/namespaces/default").await;
    assert_eq!(code, 200, "{v}");
    // 5 + the admin's + 2 more from a third address reach the process cap of 8
    for _ in 0..2 {
        held.push(
            raw_tls(addr, &ca, "http/1.1", Some(ip("127.0.0.3")))
                .await
                .unwrap(),
        );
    }
    let over = raw_tls(addr, &ca, "http/1.1", Some(ip("127.0.0.4"))).await;
    if let Ok(mut s) = over {
        assert!(closed_by_server(&mut s, Duration::from_secs(10)).await);
    }
    // the admin's open connection keeps working
    assert_eq!(admin.get("/version").await.0, 200);
    assert!(
        metric(
            &admin,
            "canopy_shard_connections_rejected_total",
            "reason=\"max_connections_per_ip\""
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            &admin,
            "canopy_shard_connections_rejected_total",
            "reason=\"max_connections\""
        )
        .await
            >= 1.0
    );
    // once they close, the first address may connect again
    held.clear();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let c = Client::new(&shard.shard.url, &ca, Some(&shard.admin_token));
    loop {
        match c.request(reqwest::Method::GET, "/version").send().await {
            Ok(r) if r.status() == 200 => break,
            other => {
                assert!(tokio::time::Instant::now() < deadline, "{other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_beyond_the_per_user_cap_get_429_and_others_still_watch() {
    let mut limits = test_limits(1);
    limits.requests.max_watches_per_user = 3;
    let shard = TestShard::builder().limits(limits).start().await;
    let admin = shard.admin();
    admin.grant_configmaps(&["alice", "bob"]).await;
    let alice = shard.client(Some(&shard.token("alice", &[])));
    let bob = shard.client(Some(&shard.token("bob", &[])));
    let watch = "/api/v1/namespaces/default/configmaps?watch=true";

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
    assert!(r.headers().get("retry-after").is_some());
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["reason"], "TooManyRequests", "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("--max-watches-per-user=3") && message.contains("alice"),
        "{message}"
    );

    // bob watches, and sees what happens
    let mut bobs = bob
        .request(reqwest::Method::GET, watch)
        .send()
        .await
        .unwrap();
    assert_eq!(bobs.status(), 200);
    assert_eq!(
        admin
            .post("/api/v1/namespaces/default/configmaps", configmap("seen"))
            .await
            .0,
        201
    );
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
    assert_eq!(seen, Ok(true), "bob's watch sees the new ConfigMap");
    // the admin is not limited
    let mut admins = Vec::new();
    for _ in 0..5 {
        let r = admin
            .request(reqwest::Method::GET, watch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        admins.push(r);
    }

    // closing a watch frees its slot
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = alice
            .request(reqwest::Method::GET, watch)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_flooding_writes_gets_429s_while_another_users_writes_succeed() {
    let mut limits = test_limits(1);
    limits.requests.max_mutating_requests_inflight = 2;
    limits.requests.max_queued_per_user = 2;
    limits.requests.queue_wait = Duration::from_secs(20);
    let shard = TestShard::builder().limits(limits).start().await;
    let admin = shard.admin();
    admin.grant_configmaps(&["alice", "bob"]).await;
    let alice = shard.client(Some(&shard.token("alice", &[])));
    let bob = shard.client(Some(&shard.token("bob", &[])));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut codes = std::collections::BTreeMap::<u16, usize>::new();
            let mut wave = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let results = futures::future::join_all((0..40).map(|i| {
                    let alice = alice.clone();
                    async move {
                        let r = alice
                            .request(
                                reqwest::Method::POST,
                                "/api/v1/namespaces/default/configmaps",
                            )
                            .json(&configmap(&format!("flood-{wave}-{i}")))
                            .send()
                            .await
                            .unwrap();
                        let code = r.status().as_u16();
                        if code == 429 {
                            assert_eq!(r.headers()["retry-after"], "1");
                            let s: Value = r.json().await.unwrap();
                            assert_eq!(s["message"], "Too many requests, please try again later.");
                        }
                        code
                    }
                }))
                .await;
                for c in results {
                    *codes.entry(c).or_default() += 1;
                }
                wave += 1;
            }
            codes
        })
    };
    // bob's writes succeed while alice floods
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..10 {
        let (code, v) = bob
            .post(
                "/api/v1/namespaces/default/configmaps",
                configmap(&format!("bob-{i}")),
            )
            .await;
        assert_eq!(code, 201, "bob's write {i}: {v}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let codes = flood.await.unwrap();
    assert!(codes.get(&429).copied().unwrap_or(0) > 0, "{codes:?}");
    assert!(
        codes.keys().all(|c| *c == 201 || *c == 429),
        "alice gets her writes done or 429: {codes:?}"
    );
    assert!(
        metric(
            &admin,
            "canopy_shard_requests_rejected_total",
            "reason=\"queue_full\""
        )
        .await
            > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_rate_limit_answers_429_with_retry_after() {
    let mut limits = test_limits(1);
    // a token every 5 s: the test never races the refill
    limits.requests.rate_limit_qps = 0.2;
    limits.requests.rate_limit_burst = 5;
    let shard = TestShard::builder().limits(limits).start().await;
    let alice = shard.client(Some(&shard.token("alice", &[])));
    for i in 0..5 {
        assert_eq!(alice.get("/version").await.0, 200, "request {i}");
    }
    let r = alice
        .request(reqwest::Method::GET, "/version")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let secs: u32 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&secs));
    // bob, the admin and health probes are not affected
    let bob = shard.client(Some(&shard.token("bob", &[])));
    assert_eq!(bob.get("/version").await.0, 200);
    for _ in 0..10 {
        assert_eq!(shard.admin().get("/version").await.0, 200);
    }
    let anonymous = shard.client(None);
    assert_eq!(
        anonymous
            .request(reqwest::Method::GET, "/readyz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
