//! The front-proxy in front of a shard, driven by real kubectl and raw HTTPS: routing of
//! root and of workspaces created through it, watches streamed through it,
//! authentication (forged, expired, missing tokens; injected identity headers), the
//! shards' trust in the proxy's identity headers and nobody else's, unknown workspaces
//! answered exactly like inaccessible ones, health and metrics.

use std::time::Duration;

use canopy_test_harness::{Client, TestProxy};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";

fn workspace(name: &str) -> Value {
    json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name}, "spec": {}})
}

fn unauthorized() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
}

async fn raw(
    c: &Client,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = c.request(method, path);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.expect("request");
    let code = resp.status().as_u16();
    let h = resp.headers().clone();
    let body = resp.bytes().await.expect("body");
    (
        code,
        h,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_through_the_proxy_in_root_and_a_new_workspace() {
    let env = TestProxy::builder().start().await;
    let k = env.kubectl();

    // root, no /clusters/ prefix needed for discovery
    k.ok(&["create", "configmap", "in-root", "--from-literal=a=1"])
        .await;
    let got = k
        .ok(&["get", "configmap", "in-root", "-o", "jsonpath={.data.a}"])
        .await;
    assert_eq!(got, "1");
    let list = k.ok(&["get", "configmaps", "-o", "name"]).await;
    assert!(list.contains("configmap/in-root"), "{list}");
    assert!(k
        .ok(&["version", "-o", "json"])
        .await
        .contains("serverVersion"));
    assert!(k.ok(&["api-resources"]).await.contains("configmaps"));

    // a workspace created through the proxy, used at once
    let admin = env.admin();
    let (code, created) = admin
        .post(&format!("/clusters/root/{WS}"), workspace("team"))
        .await;
    assert_eq!(code, 201, "{created}");
    let ws = admin.wait_workspace_ready("root", "team").await;
    assert_eq!(
        ws["spec"]["URL"],
        format!("{}/clusters/root:team", env.url()),
        "workspace URLs point at the proxy"
    );
    let (code, nss) = admin.get("/clusters/root:team/api/v1/namespaces").await;
    assert_eq!(code, 200, "the first request after Ready routes: {nss}");
    // also when the index has not heard of it yet
    env.proxy.evict("root:team");
    let (code, _) = admin.get("/clusters/root:team/api/v1/namespaces").await;
    assert_eq!(code, 200);

    let team = env.kubeconfig_for("team", "root:team", &env.admin_token);
    let kt = env.kubectl().kubeconfig(&team);
    kt.ok(&["create", "configmap", "in-team", "--from-literal=b=2"])
        .await;
    let list = kt.ok(&["get", "configmaps", "-o", "name"]).await;
    assert!(list.contains("configmap/in-team"), "{list}");
    assert!(!list.contains("in-root"), "workspaces are isolated: {list}");
    kt.ok(&["delete", "configmap", "in-team"]).await;
    let err = kt.fails(&["get", "configmap", "in-team"]).await;
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    k.ok(&["delete", "configmap", "in-root"]).await;

    // by logical cluster name, too
    let (_, ws) = admin.get(&format!("/clusters/root/{WS}/team")).await;
    let name = ws["spec"]["cluster"].as_str().unwrap().to_string();
    let (code, _) = admin
        .get(&format!("/clusters/{name}/api/v1/namespaces/default"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        env.proxy.route("root:team").map(|r| r.0),
        Some(name.clone()),
        "the index learnt the workspace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_route_the_moment_they_are_ready() {
    let env = TestProxy::builder().start().await;
    let admin = env.admin();
    for i in 0..5 {
        let name = format!("quick-{i}");
        let (code, _) = admin
            .post(&format!("/clusters/root/{WS}"), workspace(&name))
            .await;
        assert_eq!(code, 201);
        // poll as fast as possible: the first Ready answer must be followed by a
        // routable workspace, whether or not the index's watch has caught up
        admin.wait_workspace_ready("root", &name).await;
        let (code, body) = admin
            .post(
                &format!("/clusters/root:{name}/api/v1/namespaces/default/configmaps"),
                json!({"metadata": {"name": "first"}}),
            )
            .await;
        assert_eq!(code, 201, "root:{name}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_streams_through_the_proxy() {
    let env = TestProxy::builder().start().await;
    let (code, _) = env
        .admin()
        .post(
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "before"}}),
        )
        .await;
    assert_eq!(code, 201);
    let mut child = env
        .kubectl()
        .command(&[
            "get",
            "configmaps",
            "--watch",
            "--request-timeout=0",
            "-o",
            "name",
        ])
        .spawn()
        .expect("kubectl get --watch");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // the initial list: the watch is established
    wait_for(&mut lines, "configmap/before").await;
    for name in ["streamed-1", "streamed-2"] {
        let (code, _) = env
            .admin()
            .post(
                "/api/v1/namespaces/default/configmaps",
                json!({"metadata": {"name": name}}),
            )
            .await;
        assert_eq!(code, 201);
        // each event arrives while the watch stays open (nothing is buffered)
        wait_for(&mut lines, &format!("configmap/{name}")).await;
    }
    child.start_kill().unwrap();
}

/// A user's watches share HTTP/2 connections to the shard (100 streams each), never with
/// another user's; a watch whose client stopped reading holds up no other watch on its
/// connection; and no watch request can end the connection it would share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_share_connections_per_user_and_nothing_one_sends_ends_them() {
    let mut limits = canopy_test_harness::test_limits(2);
    limits.requests.max_watches_per_user = 0;
    let mut shard_limits = canopy_test_harness::test_limits(1);
    shard_limits.requests.max_watches_per_user = 0;
    let env = TestProxy::builder()
        .limits(limits)
        .shard_limits(shard_limits)
        .start()
        .await;
    let admin = env.admin();
    admin.grant_configmaps(&["alice", "bob"]).await;
    let alice = env.client(Some(&env.token("alice", &[])));
    let bob = env.client(Some(&env.token("bob", &[])));
    let watch = "/clusters/root/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0";
    assert_eq!(env.proxy.watch_connections(), vec![0]);

    // 149 of alice's watches whose client stopped reading, then one that reads (on the
    // second connection, with 49 stalled ones)
    let mut stalled = Vec::new();
    for i in 0..149 {
        let r = alice
            .request(reqwest::Method::GET, watch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "watch {i}");
        stalled.push(r);
    }
    // another client of alice's (the stalled ones fill their own client connection's
    // window; that is between alice and the proxy)
    let alice_reader = env.client(Some(&env.token("alice", &[])));
    let mut reader = alice_reader
        .request(reqwest::Method::GET, watch)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    assert_eq!(env.proxy.watch_connections(), vec![2]);
    // bob's watch gets a connection of its own
    let mut bobs = bob
        .request(reqwest::Method::GET, watch)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    assert_eq!(env.proxy.watch_connections(), vec![3]);

    // what would end a shared HTTP/2 connection at the shard if forwarded as sent, over
    // HTTP/1.1 (which takes both): headers over the shard's 16 KiB, and a body of
    // thousands of one-byte chunks
    let alice_token = env.token("alice", &[]);
    let pad: String = (0..9)
        .map(|i| format!("x-pad-{i}: {}\r\n", "p".repeat(8 * 1024)))
        .collect();
    let chunks = "1\r\nx\r\n".repeat(3000);
    for (what, extra, body) in [
        ("large headers", pad.as_str(), ""),
        (
            "a body of tiny chunks",
            "transfer-encoding: chunked\r\n",
            chunks.as_str(),
        ),
    ] {
        let status = raw_watch(&env, &alice_token, watch, extra, body).await;
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "a watch with {what}: {status}"
        );
    }

    // 40 objects of 800 KB: far more than a stream's window and every buffer between the
    // proxy and a client that does not read, for each of the stalled watches
    let data = "x".repeat(800 * 1024);
    let writes = tokio::spawn({
        let admin = env.admin();
        async move {
            for i in 0..40 {
                let (code, body) = admin
                    .post(
                        "/clusters/root/api/v1/namespaces/default/configmaps",
                        json!({"metadata": {"name": format!("big-{i}")}, "data": {"d": data}}),
                    )
                    .await;
                assert_eq!(code, 201, "{body}");
            }
        }
    });
    for (who, stream) in [("alice's reader", &mut reader), ("bob", &mut bobs)] {
        let seen = tokio::time::timeout(Duration::from_secs(60), async {
            let mut tail = Vec::new();
            while let Some(chunk) = futures::StreamExt::next(stream).await {
                tail.extend_from_slice(&chunk.unwrap());
                if tail.windows(8).any(|w| w == b"\"big-39\"") {
                    return true;
                }
                // keep only what may hold a split name
                if tail.len() > 64 {
                    tail.drain(..tail.len() - 64);
                }
            }
            false
        })
        .await;
        assert_eq!(seen, Ok(true), "{who}'s watch got every event");
    }
    writes.await.unwrap();

    // connections close with their last watch
    drop(stalled);
    drop(reader);
    drop(bobs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.proxy.watch_connections() != vec![0] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections left: {:?}",
            env.proxy.watch_connections()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a watch by hand over HTTP/1.1 (extra header lines, a raw body) and returns the
/// status line.
async fn raw_watch(env: &TestProxy, token: &str, path: &str, extra: &str, body: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let addr: std::net::SocketAddr = env.url().trim_start_matches("https://").parse().unwrap();
    let mut tls = canopy_test_harness::raw_tls(addr, env.ca_cert_pem(), "http/1.1", None)
        .await
        .unwrap();
    let end = if body.is_empty() { "" } else { "0\r\n\r\n" };
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n{extra}\r\n{body}{end}"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut lines = tokio::io::BufReader::new(tls).lines();
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a status line")
        .unwrap()
        .unwrap_or_default()
}

/// Reads lines until `want`, for at most 20 s.
async fn wait_for<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut tokio::io::Lines<R>, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{want} was not streamed"))
            .unwrap()
            .expect("kubectl ended");
        if line == want {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_and_injected_identity_headers_are_ignored() {
    let env = TestProxy::builder().start().await;

    // a token from another issuer
    let other = tempfile::tempdir().unwrap();
    let forger = canopy_auth::TokenIssuer::load_or_create(other.path()).unwrap();
    let forged = forger
        .issue("admin", &["system:masters".into()], Duration::from_secs(60))
        .unwrap();
    let (code, h, body) = raw(
        &env.client(Some(&forged)),
        reqwest::Method::GET,
        "/api/v1/namespaces",
        &[],
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(body, unauthorized());
    assert_eq!(h["www-authenticate"], "Bearer realm=\"canopy\"");

    // an expired token of the right issuer
    let now = chrono_now();
    let expired = env
        .issuer()
        .sign(&canopy_auth::token::Claims {
            iss: canopy_auth::token::ISSUER.into(),
            sub: "admin".into(),
            groups: vec!["system:masters".into()],
            uid: "u".into(),
            iat: now - 3600,
            exp: now - 60,
            jti: "j".into(),
        })
        .unwrap();
    let (code, _, body) = raw(
        &env.client(Some(&expired)),
        reqwest::Method::GET,
        "/clusters/root/api/v1/namespaces",
        &[],
    )
    .await;
    assert_eq!((code, body), (401, unauthorized()));
    // garbage, and no token at all
    for t in [Some("not-a-jwt"), None] {
        let (code, _, body) = raw(&env.client(t), reqwest::Method::GET, "/api", &[]).await;
        assert_eq!((code, body), (401, unauthorized()), "token {t:?}");
    }
    // /version needs no token (forwarded anonymously, as a shard serves it)
    let (code, _, v) = raw(&env.client(None), reqwest::Method::GET, "/version", &[]).await;
    assert_eq!(code, 200);
    assert_eq!(v["major"], "1");

    // identity headers from a client are dropped: eve stays eve
    let eve = env.token("eve", &["dev"]);
    let spoof = [
        ("X-Remote-User", "admin"),
        ("X-Remote-Group", "system:masters"),
        ("X-Remote-Extra-Scopes", "all"),
    ];
    let resp = env
        .client(Some(&eve))
        .request(
            reqwest::Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        )
        .header(spoof[0].0, spoof[0].1)
        .header(spoof[1].0, spoof[1].1)
        .header(spoof[2].0, spoof[2].1)
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let review: Value = resp.json().await.unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "eve", "{review}");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        json!(["dev", "system:authenticated"])
    );
    // the only extras are the token's own (its id and expiry), none injected
    let extra = review["status"]["userInfo"]["extra"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let keys: Vec<&str> = extra.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "authentication.canopy.dev/credential-expires-at",
            "authentication.kubernetes.io/credential-id"
        ],
        "{review}"
    );
    assert!(extra["authentication.kubernetes.io/credential-id"][0]
        .as_str()
        .unwrap()
        .starts_with("JTI="));
    let (code, _, _) = raw(
        &env.client(Some(&eve)),
        reqwest::Method::GET,
        "/api/v1/namespaces/kube-system/secrets",
        &spoof,
    )
    .await;
    assert_eq!(code, 403, "eve cannot read secrets, whatever she claims");
    // impersonation passes through, checked by the shard for the authenticated caller
    let ssr = |c: Client, as_user: &'static str| async move {
        let resp = c
            .request(
                reqwest::Method::POST,
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            )
            .header("Impersonate-User", as_user)
            .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (code, r) = ssr(env.admin(), "eve").await;
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["status"]["userInfo"]["username"], "eve");
    let (code, r) = ssr(env.client(Some(&eve)), "admin").await;
    assert_eq!(code, 403, "{r}");
    // and without a token the headers do not make anyone
    let (code, _, _) = raw(
        &env.client(None),
        reqwest::Method::GET,
        "/api/v1/namespaces",
        &spoof,
    )
    .await;
    assert_eq!(code, 401);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What a shard believes about `X-Remote-*` headers, asked directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_trust_identity_headers_only_from_the_proxy_certificate() {
    let env = TestProxy::builder().start().await;
    let shard = env.shard(0);
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let whoami = |c: Client, headers: Vec<(&'static str, &'static str)>| {
        let review = review.clone();
        async move {
            let mut r = c.request(
                reqwest::Method::POST,
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            );
            for (k, v) in headers {
                r = r.header(k, v);
            }
            let resp = r.json(&review).send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let alice_headers = vec![
        ("X-Remote-User", "alice"),
        ("X-Remote-Uid", "a-1"),
        ("X-Remote-Group", "dev"),
        ("X-Remote-Group", "ops"),
        ("X-Remote-Extra-Example.com%2Fscopes", "read"),
    ];

    // the proxy's certificate: the headers are the caller
    let as_proxy = Client::with_client_cert(
        shard.url(),
        &shard.shard.ca_cert_pem,
        None,
        &env.client_cert.cert_pem,
        &env.client_cert.key_pem,
    );
    let (code, r) = whoami(as_proxy.clone(), alice_headers.clone()).await;
    assert_eq!(code, 201, "{r}");
    assert_eq!(
        r["status"]["userInfo"],
        json!({"username": "alice", "uid": "a-1", "groups": ["dev", "ops", "system:authenticated"], "extra": {"example.com/scopes": ["read"]}})
    );
    // the proxy's certificate without headers: nobody (401), as without a token
    let (code, _) = whoami(as_proxy, vec![]).await;
    assert_eq!(code, 401);

    // no certificate: the headers are ignored
    let plain = Client::new(shard.url(), &shard.shard.ca_cert_pem, None);
    let (code, _) = whoami(plain, alice_headers.clone()).await;
    assert_eq!(code, 401, "headers alone authenticate nobody");
    let bob = env.token("bob", &[]);
    let with_token = Client::new(shard.url(), &shard.shard.ca_cert_pem, Some(&bob));
    let (code, r) = whoami(with_token, alice_headers.clone()).await;
    assert_eq!(code, 201);
    assert_eq!(r["status"]["userInfo"]["username"], "bob", "{r}");

    // a certificate from another CA is refused outright
    let other = tempfile::tempdir().unwrap();
    let rogue_ca = canopy_auth::ClientCa::load_or_create(other.path(), "rogue").unwrap();
    let (cert, key) = rogue_ca
        .issue_client_cert("system:front-proxy", &[])
        .unwrap();
    let rogue = Client::with_client_cert(shard.url(), &shard.shard.ca_cert_pem, None, &cert, &key);
    let sent = rogue
        .request(
            reqwest::Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        )
        .header("X-Remote-User", "admin")
        .header("X-Remote-Group", "system:masters")
        .json(&review)
        .send()
        .await;
    assert!(sent.is_err(), "TLS handshake must fail: {sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workspaces_get_the_same_403_as_inaccessible_ones() {
    let env = TestProxy::builder().start().await;
    let admin = env.admin();
    let (code, _) = admin
        .post(&format!("/clusters/root/{WS}"), workspace("secret"))
        .await;
    assert_eq!(code, 201);
    admin.wait_workspace_ready("root", "secret").await;
    let eve = env.token("eve", &[]);
    let through_proxy = env.client(Some(&eve));
    let direct = env.shard(0).client(Some(&eve));
    let paths = |ws: &str| {
        vec![
            format!("/clusters/{ws}/api/v1/namespaces/default/configmaps"),
            format!("/clusters/{ws}/apis/rbac.authorization.k8s.io/v1/clusterroles/admin"),
            format!("/clusters/{ws}/api"),
        ]
    };
    for (existing, missing) in paths("root:secret").into_iter().zip(paths("root:nope")) {
        let (c1, exists) = through_proxy.get(&existing).await;
        let (c2, unknown) = through_proxy.get(&missing).await;
        let (c3, shard_says) = direct.get(&missing).await;
        assert_eq!((c1, c2, c3), (403, 403, 403), "{existing}");
        assert_eq!(exists, unknown, "{existing} vs {missing}");
        assert_eq!(unknown, shard_says, "{missing}");
    }
    let (_, not_found) = env.proxy.rechecks();
    assert!(not_found >= 1, "misses were re-checked with the shard");
    // a miss is remembered briefly: polling an unknown workspace does not ask the
    // shards again each time
    for _ in 0..20 {
        let (code, _) = through_proxy
            .get("/clusters/root:nope/api/v1/namespaces/default/configmaps")
            .await;
        assert_eq!(code, 403);
    }
    assert!(
        env.proxy.rechecks().1 <= not_found + 10,
        "{:?} after {not_found}",
        env.proxy.rechecks()
    );
    // an unknown 16-character logical cluster name, too
    let (code, body) = through_proxy
        .get("/clusters/0123456789abcdef/api/v1/namespaces")
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "namespaces is forbidden: User \"eve\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let env = TestProxy::builder().start().await;
    for p in ["/healthz", "/livez", "/readyz"] {
        let resp = env
            .client(None)
            .request(reqwest::Method::GET, p)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{p}");
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    let (code, _) = env.admin().get("/api/v1/namespaces").await;
    assert_eq!(code, 200);
    let (code, _, _) = raw(&env.client(None), reqwest::Method::GET, "/metrics", &[]).await;
    assert_eq!(code, 401);
    let eve = env.token("eve", &[]);
    let (code, _, _) = raw(
        &env.client(Some(&eve)),
        reqwest::Method::GET,
        "/metrics",
        &[],
    )
    .await;
    assert_eq!(code, 403);
    let resp = env
        .admin()
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("canopy_front_proxy_requests_total{code=\"200\",shard=\"root\"}"),
        "{text}"
    );
    assert!(
        text.contains("canopy_front_proxy_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("canopy_front_proxy_shard_up{shard=\"root\"} 1"),
        "{text}"
    );
    let size: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("canopy_front_proxy_index_logical_clusters "))
        .expect("index size")
        .parse()
        .unwrap();
    // root, and root:users once its workspace controller is done
    assert!(size >= 1, "{text}");
    assert!(env.proxy.index_len() >= size);
}
