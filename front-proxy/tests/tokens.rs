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

    // keys never come through Redis: after a rotation the replica with a link to root
    // accepts the new key's tokens, the cut-off replica does not (it would have to
    // trust Redis for keys) — until it reaches root's shard again
    let (code, b) = admin.post("/services/tokens/rotate", json!({})).await;
    assert_eq!(code, 200, "{b}");
    let new_kid = b["kid"].as_str().unwrap().to_string();
    let (code, issued) = admin
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"user": "bob", "expirationSeconds": 600}}),
        )
        .await;
    assert_eq!(code, 201, "{issued}");
    let bob_token = issued["status"]["token"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let (code, _) = env.client(Some(&bob_token)).get("/version").await;
        if code == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "new key not learned from root's shard ({code})"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bob = Client::new(&replica.url, &ca, Some(&bob_token));
    let (code, _) = bob.get("/version").await;
    assert_eq!(code, 401, "the cut-off replica learned a key through Redis");
    assert!(!replica.token_key_ids().contains(&new_kid));
    // states signed with the new key are not verifiable there: dropped and counted
    assert!(replica.token_states_rejected() >= 1);
    replica.stop().await;
}

/// Publishes `payload` on the token channel and as the shared last state, as anyone
/// with access to Redis could (`redis-cli PUBLISH`/`SET`).
async fn publish_raw(redis_url: &str, payload: &str) {
    let client = redis::Client::open(redis_url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(front_proxy::tokens::STATE_KEY)
        .arg(payload)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(front_proxy::tokens::CHANNEL)
        .arg(payload)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// `jws` with its header's `kid` replaced by `kid`.
fn with_kid(jws: &str, kid: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = jws.split('.').map(str::to_string).collect();
    let mut header: serde_json::Value =
        serde_json::from_slice(&b64.decode(&parts[0]).unwrap()).unwrap();
    header["kid"] = json!(kid);
    parts[0] = b64.encode(header.to_string());
    parts.join(".")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_keys_and_revocations_published_on_redis_are_ignored() {
    let redis = TestRedis::start().await;
    let env = TestProxy::builder()
        .shards(2)
        .redis(&redis.url)
        .start()
        .await;
    let admin = env.admin();
    // a second replica with a link to root, and one cut off from root's shard
    let second = FrontProxy::start(env.options()).await.expect("replica");
    let mut cut_off = env.options();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://{}", dead.local_addr().unwrap());
    drop(dead);
    for s in cut_off.shards.iter_mut().filter(|s| s.name == "root") {
        s.url = dead_url.clone();
    }
    let cut_off = FrontProxy::start(cut_off).await.expect("replica");
    assert!(second.wait_ready(Duration::from_secs(10)).await);

    // alice holds a genuine token
    let (code, issued) = admin
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"user": "alice", "expirationSeconds": 600}}),
        )
        .await;
    assert_eq!(code, 201, "{issued}");
    let alice = issued["status"]["token"].as_str().unwrap().to_string();
    let alice_id = issued["metadata"]["name"].as_str().unwrap().to_string();

    // the attacker: a key of their own and an admin token it signs
    let dir = tempfile::tempdir().unwrap();
    let attacker = canopy_auth::TokenIssuer::load_or_create(dir.path()).unwrap();
    let mallory = attacker
        .issue(
            "mallory",
            &["system:masters".to_string()],
            Duration::from_secs(600),
        )
        .unwrap();
    let forged_state = canopy_auth::TokenState {
        resource_version: "ffffffff.999999".into(),
        jwks: attacker.jwks(),
        revoked: vec![canopy_auth::Revoked {
            jti: alice_id.clone(),
            exp: i64::MAX,
        }],
        signed: None,
    };
    // 1. an unsigned state carrying the attacker's key and revoking alice's token
    publish_raw(&redis.url, &serde_json::to_string(&forged_state).unwrap()).await;
    // 2. the same signed with the attacker's key
    let signed_by_attacker = canopy_auth::revocation::sign_state(&attacker, &forged_state).unwrap();
    publish_raw(&redis.url, &signed_by_attacker).await;
    // 3. signed with the attacker's key but naming root's key id (a bad signature)
    publish_raw(
        &redis.url,
        &with_kid(&signed_by_attacker, &env.issuer().key_id()),
    )
    .await;
    // 4. the attacker's admin token itself, as if it were a state
    publish_raw(&redis.url, &mallory).await;

    // every replica heard and dropped all four
    let replicas = [
        ("first", &env.proxy),
        ("second", &second),
        ("cut off", &cut_off),
    ];
    for (name, r) in replicas {
        let start = Instant::now();
        while r.token_states_rejected() < 4 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the {name} replica dropped {} of 4 forged states",
                r.token_states_rejected()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            !r.token_key_ids().contains(&attacker.key_id()),
            "the {name} replica took the attacker's key"
        );
    }
    let ca = |r: &front_proxy::RunningProxy| r.ca_cert_pem.clone().expect("generated CA");
    for (name, r) in replicas {
        // the attacker's token is refused everywhere
        let (code, b) = Client::new(&r.url, &ca(r), Some(&mallory))
            .get("/api/v1/namespaces")
            .await;
        assert_eq!(code, 401, "{name}: {b}");
        let (code, _) = Client::new(&r.url, &ca(r), Some(&mallory))
            .get("/clusters/root/api/v1/secrets")
            .await;
        assert_eq!(code, 401, "{name}");
        // and alice's token was not revoked by the forgery (the cut-off replica cannot
        // route, but it authenticated her: 503, not 401)
        let (code, b) = Client::new(&r.url, &ca(r), Some(&alice))
            .get("/version")
            .await;
        let want = if name == "cut off" { 503 } else { 200 };
        assert_eq!(code, want, "{name}: alice's token must still work: {b}");
    }
    // the metric is exported
    let resp = env
        .admin()
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let metrics = resp.text().await.unwrap();
    assert!(
        metrics.contains("canopy_front_proxy_token_states_rejected_total{reason=\"unknown_key\"}"),
        "{metrics}"
    );
    second.stop().await;
    cut_off.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_a_password_and_over_tls() {
    let password = "correct-horse-battery-staple";
    let redis = TestRedis::start_with_password(password).await;
    // with the password in the URL: rate limits and token states go through it
    let env = TestProxy::builder()
        .shards(1)
        .rate_limit(100.0, 100)
        .redis(&redis.url)
        .start()
        .await;
    let (code, _) = env.admin().get("/version").await;
    assert_eq!(code, 200);
    let settings = front_proxy::redisconn::RedisSettings {
        url: redis.url.clone(),
        ca_pem: None,
    };
    let (_, mut conn) = front_proxy::redisconn::connect(&settings, Duration::from_secs(1))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let shared: Option<String> = redis::cmd("GET")
            .arg(front_proxy::tokens::STATE_KEY)
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Some(s) = shared {
            // what is shared is a signed document, no keys in clear
            assert_eq!(s.split('.').count(), 3, "{s}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "nothing shared");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // without the password, or with a wrong one: the proxy does not start, says why,
    // and never prints the password
    for (url, want) in [
        (redis.url_without_password.clone(), "wants a password"),
        (
            redis.url.replace(password, "wrong-password"),
            "refused the password",
        ),
    ] {
        for qps in [0.0, 10.0] {
            let mut o = env.options();
            o.redis_url = Some(url.clone());
            o.limits.requests.rate_limit_qps = qps;
            let e = FrontProxy::start(o)
                .await
                .err()
                .expect("a proxy without the right Redis password must not start")
                .to_string();
            assert!(e.contains(want), "{e}");
            assert!(
                !e.contains("wrong-password") && !e.contains(password),
                "{e}"
            );
        }
    }

    // nor does the binary: not in --help (the URL may come from CANOPY_REDIS_URL),
    // not when it fails to start
    let dir = tempfile::tempdir().unwrap();
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_front-proxy"))
        .arg("--help")
        .env("CANOPY_REDIS_URL", &redis.url)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(help.contains("CANOPY_REDIS_URL"), "{help}");
    assert!(!help.contains(password), "{help}");
    let ca_file = dir.path().join("shard-ca.crt");
    std::fs::write(&ca_file, &env.options().shard_ca_pem).unwrap();
    let key_file = dir.path().join("token.pub");
    std::fs::write(&key_file, env.issuer().public_key_pem()).unwrap();
    let wrong = redis.url.replace(password, "wrong-password");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_front-proxy"))
            .args(["--shard", &format!("root={}", env.shard(0).url())])
            .arg("--shard-ca-file")
            .arg(&ca_file)
            .arg("--token-public-key-file")
            .arg(&key_file)
            .arg("--root-directory")
            .arg(dir.path().join("fp"))
            .args(["--secure-port", "0"])
            .env("CANOPY_REDIS_URL", &wrong)
            .env("RUST_LOG", "debug")
            .output(),
    )
    .await
    .expect("the proxy exits")
    .unwrap();
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("refused the password"), "{said}");
    assert!(!said.contains("wrong-password"), "{said}");

    // TLS: rediss:// with the server's CA works; without it the certificate is refused
    let tls = TestRedis::start_tls(Some(password)).await;
    let mut o = env.options();
    o.redis_url = Some(tls.url.clone());
    o.redis_ca_pem = tls.ca_cert_pem.clone();
    o.limits.requests.rate_limit_qps = 10.0;
    let p = FrontProxy::start(o.clone())
        .await
        .expect("a proxy with rediss:// and the server's CA");
    assert!(p.wait_ready(Duration::from_secs(10)).await);
    let c = Client::new(
        &p.url,
        p.ca_cert_pem.as_deref().unwrap(),
        Some(&env.admin_token),
    );
    let (code, _) = c.get("/version").await;
    assert_eq!(code, 200);
    p.stop().await;
    o.redis_ca_pem = None;
    let e = FrontProxy::start(o)
        .await
        .err()
        .expect("a certificate of an unknown CA must be refused")
        .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert!(!e.contains(password), "{e}");
}
