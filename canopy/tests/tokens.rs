//! Issued tokens end to end: `canopy token create|list|revoke|rotate-key` and
//! `canopy kubeconfig` against two front-proxy replicas before two shards, with plain
//! kubectl; revocation and expiry reach every replica (and the shards) within 2 s;
//! forged, expired and wrong-key tokens get 401; a user without access gets 403; users
//! manage their own tokens only.

use std::path::Path;
use std::time::{Duration, Instant};

use canopy_test_harness::{Client, Kubectl, TestProxy};
use front_proxy::FrontProxy;
use serde_json::{json, Value};

const TOKENS: &str = "/services/tokens/apis/tokens.canopy.dev/v1alpha1/tokens";
const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";

/// Runs the `canopy` binary with `args`; returns (success, stdout, stderr).
async fn canopy(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run canopy");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn canopy_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = canopy(kubeconfig, args).await;
    assert!(ok, "canopy {args:?} failed: {err}");
    out
}

/// Polls `check` until it is true; returns how long that took, or panics after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn status_of(c: &Client, path: &str) -> u16 {
    c.get(path).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_revocation_expiry_and_rotation_across_replicas() {
    let env = TestProxy::builder().shards(2).start().await;
    let second = FrontProxy::start(env.options())
        .await
        .expect("second replica");
    assert!(second.wait_ready(Duration::from_secs(30)).await);
    let second_ca = second.ca_cert_pem.clone().expect("generated CA");
    let admin_kc = env.kubeconfig.clone();
    let admin = env.admin();

    // a workspace for alice on the non-root shard's side of things: created by the
    // admin, alice bound as admin inside it
    let (code, b) = admin
        .post(
            &format!("/clusters/root/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "acme"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    within(Duration::from_secs(20), "acme Ready", || async {
        admin.get(&format!("/clusters/root/{WS}/acme")).await.1["status"]["phase"] == "Ready"
    })
    .await;
    let (code, b) = admin
        .post(
            "/clusters/root:acme/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            json!({"metadata": {"name": "alice-admin"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");

    // `canopy kubeconfig` writes a kubeconfig that plain kubectl uses through the proxy
    let dir = tempfile::tempdir().unwrap();
    let alice_kc = dir.path().join("alice.kubeconfig");
    canopy_ok(
        &admin_kc,
        &[
            "kubeconfig",
            "--user",
            "alice",
            "--group",
            "team-a",
            "--workspace",
            "root:acme",
            "--ttl",
            "1h",
            "-o",
            alice_kc.to_str().unwrap(),
        ],
    )
    .await;
    let alice = Kubectl::new(&alice_kc, dir.path());
    alice
        .ok(&["create", "configmap", "hello", "--from-literal=a=b"])
        .await;
    let out = alice.ok(&["get", "configmaps", "-o", "name"]).await;
    assert!(out.contains("configmap/hello"), "{out}");
    let me = alice.ok(&["auth", "whoami", "-o", "json"]).await;
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "alice");
    let groups = me["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("team-a"), "{groups}");

    // `canopy token create` prints a token; a user without access gets 403
    let bob_token = canopy_ok(
        &admin_kc,
        &["token", "create", "--user", "bob", "--ttl", "1h"],
    )
    .await
    .trim()
    .to_string();
    let bob_kc = env.kubeconfig_for("bob", "root:acme", &bob_token);
    let bob = Kubectl::new(&bob_kc, dir.path());
    let err = bob.fails(&["get", "configmaps"]).await;
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );

    // forged, expired, wrong-key and garbage tokens: 401, and kubectl says so
    let other_issuer = canopy_auth::TokenIssuer::load_or_create(&dir.path().join("other")).unwrap();
    let wrong_key = other_issuer
        .issue(
            "admin",
            &["system:masters".into()],
            Duration::from_secs(600),
        )
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let expired = env
        .issuer()
        .sign(&canopy_auth::token::Claims {
            iss: "canopy".into(),
            sub: "alice".into(),
            groups: vec![],
            uid: "u".into(),
            iat: now - 600,
            exp: now - 60,
            jti: "expired".into(),
        })
        .unwrap();
    let forged = {
        let mut parts: Vec<String> = bob_token.split('.').map(str::to_string).collect();
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!(
                r#"{{"iss":"canopy","sub":"admin","groups":["system:masters"],"uid":"x","iat":{now},"exp":{},"jti":"x"}}"#,
                now + 600
            ),
        );
        parts.join(".")
    };
    for (what, t) in [
        ("wrong key", wrong_key.as_str()),
        ("expired", expired.as_str()),
        ("forged", forged.as_str()),
        ("garbage", "not-a-token"),
    ] {
        for url_ca in [
            (env.url(), env.ca_cert_pem()),
            (second.url.as_str(), second_ca.as_str()),
        ] {
            let c = Client::new(url_ca.0, url_ca.1, Some(t));
            let (code, body) = c.get("/clusters/root:acme/api/v1/configmaps").await;
            assert_eq!(code, 401, "{what}: {body}");
            assert_eq!(body["reason"], "Unauthorized", "{what}");
        }
    }
    let forged_kc = env.kubeconfig_for("forged", "root:acme", &forged);
    let err = Kubectl::new(&forged_kc, dir.path())
        .fails(&["get", "configmaps"])
        .await;
    assert!(err.contains("Unauthorized"), "{err}");

    // users manage their own tokens only
    let alice_token = {
        let text = std::fs::read_to_string(&alice_kc).unwrap();
        let v: Value = serde_yaml::from_str(&text).unwrap();
        v["users"][0]["user"]["token"].as_str().unwrap().to_string()
    };
    let as_alice = env.client(Some(&alice_token));
    let (code, mine) = as_alice
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"expirationSeconds": 600}}),
        )
        .await;
    assert_eq!(code, 201, "{mine}");
    assert_eq!(mine["spec"]["user"], "alice");
    assert_eq!(
        mine["status"]["issuedWith"],
        jwt_field(&alice_token, 1, "jti")
    );
    // a token issued with a token does not outlive it (alice's expires in 1 h)
    let (code, long) = as_alice
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"expirationSeconds": 86400}}),
        )
        .await;
    assert_eq!(code, 201, "{long}");
    let ts = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["status"]["expirationTimestamp"].as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    let alice_exp: i64 = jwt_field_i64(&alice_token, "exp");
    assert!(ts(&long) <= alice_exp, "{long}");
    // an independent token of alice's (issued by the admin)
    let (code, independent) = admin
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"user": "alice", "expirationSeconds": 3600}}),
        )
        .await;
    assert_eq!(code, 201, "{independent}");
    assert!(independent["status"].get("issuedWith").is_none());
    let (code, b) = as_alice
        .post(TOKENS, json!({"kind": "Token", "spec": {"user": "bob"}}))
        .await;
    assert_eq!(code, 403, "{b}");
    let (code, b) = as_alice
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"groups": ["system:masters"]}}),
        )
        .await;
    assert_eq!(code, 403, "{b}");
    let (code, b) = as_alice
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"expirationSeconds": 99999999}}),
        )
        .await;
    assert_eq!(code, 422, "{b}");
    assert_eq!(
        b["details"]["causes"][0]["field"], "spec.expirationSeconds",
        "{b}"
    );
    let (_, list) = as_alice.get(TOKENS).await;
    let users: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["spec"]["user"].as_str().unwrap())
        .collect();
    assert!(
        !users.is_empty() && users.iter().all(|u| *u == "alice"),
        "{users:?}"
    );
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"].get("token").is_none()));
    // a user holds at most 100 live tokens
    let mut held = list["items"].as_array().unwrap().len();
    while held < 100 {
        let (code, b) = as_alice
            .post(
                TOKENS,
                json!({"kind": "Token", "spec": {"expirationSeconds": 600}}),
            )
            .await;
        assert_eq!(code, 201, "token {held}: {b}");
        held += 1;
    }
    let (code, b) = as_alice
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"expirationSeconds": 600}}),
        )
        .await;
    assert_eq!(code, 403, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("100 live tokens"),
        "{b}"
    );
    let table = canopy_ok(&admin_kc, &["token", "list"]).await;
    let bob_id = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("bob"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("bob's token in {table}"))
        .to_string();
    let (code, b) = as_alice.get(&format!("{TOKENS}/{bob_id}")).await;
    assert_eq!(code, 404, "another user's token is not found: {b}");
    let (code, _) = as_alice.delete(&format!("{TOKENS}/{bob_id}")).await;
    assert_eq!(code, 404);

    // revocation: 401 on both replicas and on both shards directly within 2 s
    let alice_id = jwt_field(&alice_token, 1, "jti");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&alice_id) && l.contains("team-a")),
        "alice's token with her group in {table}"
    );
    let clients = [
        env.client(Some(&alice_token)),
        Client::new(&second.url, &second_ca, Some(&alice_token)),
        Client::new(
            env.shard(0).url(),
            &env.shard(0).shard.ca_cert_pem,
            Some(&alice_token),
        ),
        Client::new(
            env.shard(1).url(),
            &env.shard(1).shard.ca_cert_pem,
            Some(&alice_token),
        ),
    ];
    for c in &clients[..2] {
        assert_eq!(
            status_of(c, "/clusters/root:acme/api/v1/configmaps").await,
            200
        );
    }
    let out = canopy_ok(&admin_kc, &["token", "revoke", &alice_id]).await;
    assert!(out.contains("revoked"), "{out}");
    let revoked_at = Instant::now();
    for (i, c) in clients.iter().enumerate() {
        let limit = Duration::from_secs(2).saturating_sub(revoked_at.elapsed());
        within(
            limit,
            &format!("revoked token refused by endpoint {i}"),
            || async { status_of(c, "/version").await == 401 },
        )
        .await;
    }
    let err = alice.fails(&["get", "configmaps"]).await;
    assert!(err.contains("Unauthorized"), "{err}");
    let (code, _) = admin.get(&format!("{TOKENS}/{alice_id}")).await;
    assert_eq!(code, 404, "a revoked token is gone from the API");
    // the tokens alice issued with it are revoked with it; her independent one is not
    let child = env.client(mine["status"]["token"].as_str());
    within(
        Duration::from_secs(2),
        "a child token revoked with its parent",
        || async { status_of(&child, "/version").await == 401 },
    )
    .await;
    let other_alice = env.client(independent["status"]["token"].as_str());
    assert_eq!(
        status_of(&other_alice, "/clusters/root:acme/api/v1/configmaps").await,
        200
    );

    // expiry: a 2-second token works, then gets 401 everywhere within 2 s of expiring
    let (code, short) = admin
        .post(
            TOKENS,
            json!({"kind": "Token", "spec": {"user": "alice", "expirationSeconds": 2}}),
        )
        .await;
    assert_eq!(code, 201, "{short}");
    let short_token = short["status"]["token"].as_str().unwrap().to_string();
    let expires = chrono::DateTime::parse_from_rfc3339(
        short["status"]["expirationTimestamp"].as_str().unwrap(),
    )
    .unwrap()
    .timestamp();
    let a = env.client(Some(&short_token));
    let b2 = Client::new(&second.url, &second_ca, Some(&short_token));
    assert_eq!(
        status_of(&a, "/clusters/root:acme/api/v1/configmaps").await,
        200
    );
    let until_expiry = (expires - chrono::Utc::now().timestamp()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(until_expiry)).await;
    for c in [&a, &b2] {
        within(
            Duration::from_secs(2) + Duration::from_millis(999),
            "expired token refused",
            || async { status_of(c, "/version").await == 401 },
        )
        .await;
    }

    // key rotation: old tokens keep working, new ones work on every replica, the JWKS
    // names both keys
    let before = env.issuer().key_id();
    let out = canopy_ok(&admin_kc, &["token", "rotate-key"]).await;
    assert!(out.contains("rotated"), "{out}");
    let new_token = canopy_ok(
        &admin_kc,
        &["token", "create", "--user", "alice", "--ttl", "10m"],
    )
    .await
    .trim()
    .to_string();
    let header = jwt_field(&new_token, 0, "kid");
    assert_ne!(header, before, "new tokens are signed by the new key");
    for (url, ca) in [
        (env.url(), env.ca_cert_pem()),
        (second.url.as_str(), second_ca.as_str()),
    ] {
        let c = Client::new(url, ca, Some(&new_token));
        within(Duration::from_secs(2), "new key known", || async {
            status_of(&c, "/clusters/root:acme/api/v1/configmaps").await == 200
        })
        .await;
        let old = Client::new(url, ca, independent["status"]["token"].as_str());
        assert_eq!(
            status_of(&old, "/clusters/root:acme/api/v1/configmaps").await,
            200
        );
        let anon = Client::new(url, ca, None);
        let (code, jwks) = anon.get("/openid/v1/jwks").await;
        assert_eq!(code, 200, "{jwks}");
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, vec![header.as_str(), before.as_str()]);
    }

    // only the admin rotates keys
    let alice2_kc = env.kubeconfig_for(
        "alice2",
        "root:acme",
        independent["status"]["token"].as_str().unwrap(),
    );
    let (ok, _, err) = canopy(&alice2_kc, &["token", "rotate-key"]).await;
    assert!(!ok && err.contains("forbidden"), "{err}");
    second.stop().await;
}

/// A string field of a JWT's header (part 0) or claims (part 1).
fn jwt_field(token: &str, part: usize, field: &str) -> String {
    let p = token.split('.').nth(part).unwrap();
    let bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v[field].as_str().unwrap().to_string()
}

/// A number claim of a JWT.
fn jwt_field_i64(token: &str, field: &str) -> i64 {
    let p = token.split('.').nth(1).unwrap();
    let bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v[field].as_i64().unwrap()
}
