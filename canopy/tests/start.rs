//! `canopy start`: the all-in-one with its embedded PostgreSQL, driven by kubectl; a
//! restart keeps all data; bad flags and unusable databases get one clear line.

use std::process::Stdio;
use std::time::Duration;

use canopy_test_harness::Kubectl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_serves_root_and_restart_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let opts = canopy::StartOptions {
        root_directory: root.clone(),
        secure_port: 0,
        bind_address: "127.0.0.1".parse().unwrap(),
        database_url: None,
        shards: 1,
        limits: Default::default(),
        size_limits: shard::Limits {
            max_request_body_bytes: 256 * 1024,
            max_object_bytes: 64 * 1024,
            ..Default::default()
        },
    };
    let running = canopy::start(opts.clone()).await.expect("canopy start");
    assert_eq!(
        running.kubeconfig,
        std::fs::canonicalize(&root)
            .unwrap()
            .join("admin.kubeconfig")
    );
    let cfg = std::fs::read_to_string(&running.kubeconfig).unwrap();
    assert!(cfg.contains("current-context: root"), "{cfg}");
    assert!(
        cfg.contains(&format!("server: {}/clusters/root", running.shard.url)),
        "{cfg}"
    );
    assert!(
        root.join("postgres").exists(),
        "embedded PostgreSQL lives under the root directory"
    );

    let k = Kubectl::new(&running.kubeconfig, dir.path());
    k.ok(&["create", "configmap", "kept", "--from-literal=a=b"])
        .await;
    assert!(k.ok(&["get", "ns"]).await.contains("default"));
    // the configured object limit
    let big = format!("--from-literal=a={}", "x".repeat(100 * 1024));
    let err = k.fails(&["create", "configmap", "big", &big]).await;
    assert!(err.contains("Request entity too large"), "{err}");
    running.stop().await;

    let running = canopy::start(opts).await.expect("canopy restart");
    let k = Kubectl::new(&running.kubeconfig, dir.path());
    assert_eq!(
        k.ok(&["get", "cm", "kept", "-o", "jsonpath={.data.a}"])
            .await,
        "b"
    );
    running.stop().await;
}

async fn canopy_cli(args: &[&str]) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("canopy did not exit")
    .expect("run canopy");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_flags_and_databases_get_one_clear_line() {
    let (ok, err) = canopy_cli(&["start", "--max-object-bytes", "lots"]).await;
    assert!(!ok);
    assert!(
        err.contains("invalid value 'lots' for '--max-object-bytes"),
        "{err}"
    );
    let (ok, err) = canopy_cli(&["start", "--secure-port", "not-a-port"]).await;
    assert!(!ok);
    assert!(
        err.contains("invalid value 'not-a-port' for '--secure-port"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (ok, err) = canopy_cli(&[
        "start",
        "--root-directory",
        dir.path().to_str().unwrap(),
        "--secure-port",
        "0",
        "--database-url",
        "postgres://canopy:hunter2@127.0.0.1:1/nothing",
    ])
    .await;
    assert!(!ok);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("canopy:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("--database-url"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the database password must not be printed: {err}"
    );

    // a root directory anyone may write to (keys and credentials go there) is refused
    let open = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, err) = canopy_cli(&[
        "start",
        "--root-directory",
        open.path().to_str().unwrap(),
        "--secure-port",
        "0",
    ])
    .await;
    assert!(!ok);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("canopy:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("writable by every user"), "{err}");
    assert!(
        std::fs::read_dir(open.path()).unwrap().next().is_none(),
        "nothing written there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_shards_serves_through_a_front_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let opts = canopy::StartOptions {
        root_directory: root.clone(),
        secure_port: 0,
        bind_address: "127.0.0.1".parse().unwrap(),
        database_url: None,
        shards: 3,
        limits: Default::default(),
        size_limits: shard::Limits {
            max_request_body_bytes: 256 * 1024,
            max_object_bytes: 64 * 1024,
            ..Default::default()
        },
    };
    let running = canopy::start(opts.clone())
        .await
        .expect("canopy start --shards 3");
    let proxy_url = running.proxy.as_ref().expect("a front-proxy").url.clone();
    assert_eq!(running.more_shards.len(), 2);
    let cfg = std::fs::read_to_string(&running.kubeconfig).unwrap();
    assert!(
        cfg.contains(&format!("server: {proxy_url}/clusters/root")),
        "{cfg}"
    );

    let k = Kubectl::new(&running.kubeconfig, dir.path());
    // all three shards registered in root
    let mut shards = String::new();
    for _ in 0..100 {
        shards = k.ok(&["get", "shards", "-o", "name"]).await;
        if shards.lines().count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shards.lines().count(), 3, "{shards}");
    // every shard holds the configured object limit, through the front-proxy too
    let big = format!("--from-literal=a={}", "x".repeat(100 * 1024));
    let err = k.fails(&["create", "configmap", "big", &big]).await;
    assert!(err.contains("Request entity too large"), "{err}");
    // every shard sees the global set through the cache server: all three Shards and
    // root's WorkspaceTypes
    assert!(running.cache.is_some(), "--shards runs a cache server");
    for s in std::iter::once(&running.shard).chain(running.more_shards.iter()) {
        let g = s.api.global().expect("replicating to the cache server");
        let mut seen = 0;
        for _ in 0..100 {
            seen = g.list_cluster("core.kcp.io/shards", "root").len();
            if seen == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen, 3, "Shards in {}'s global view", s.url);
        assert!(
            g.list_cluster("tenancy.kcp.io/workspacetypes", "root")
                .iter()
                .any(|t| t.object["metadata"]["name"] == "universal"),
            "root's WorkspaceTypes in the global view"
        );
    }
    // workspaces made through the proxy are usable through it, wherever they live
    for i in 0..6 {
        let ws = format!("apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata: {{name: w{i}}}\nspec: {{}}\n");
        k.apply_stdin(&["create", "-f", "-"], &ws).await;
    }
    let mut placed = std::collections::HashSet::new();
    for i in 0..6 {
        let name = format!("workspace/w{i}");
        k.ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Ready",
            &name,
            "--timeout=30s",
        ])
        .await;
        placed.insert(
            k.ok(&[
                "get",
                &name,
                "-o",
                "jsonpath={.metadata.annotations.internal\\.tenancy\\.kcp\\.io/shard}",
            ])
            .await,
        );
        let inside = Kubectl::new(&running.kubeconfig, dir.path());
        let server = format!("{proxy_url}/clusters/root:w{i}");
        inside
            .ok(&[
                "--server",
                &server,
                "create",
                "configmap",
                "hello",
                "--from-literal=k=v",
            ])
            .await;
        assert_eq!(
            inside
                .ok(&[
                    "--server",
                    &server,
                    "get",
                    "cm",
                    "hello",
                    "-o",
                    "jsonpath={.data.k}"
                ])
                .await,
            "v"
        );
    }
    assert!(
        placed.len() >= 2,
        "workspaces spread over shards: {placed:?}"
    );
    running.stop().await;

    // a restart keeps every shard's data
    let running = canopy::start(opts)
        .await
        .expect("canopy restart --shards 3");
    let proxy_url = running.proxy.as_ref().unwrap().url.clone();
    let k = Kubectl::new(&running.kubeconfig, dir.path());
    for i in 0..6 {
        let server = format!("{proxy_url}/clusters/root:w{i}");
        assert_eq!(
            k.ok(&[
                "--server",
                &server,
                "get",
                "cm",
                "hello",
                "-o",
                "jsonpath={.data.k}"
            ])
            .await,
            "v"
        );
    }
    running.stop().await;
}

/// Whether `text` holds something shaped like a JWT (`eyJ…​.…​.…`).
fn has_jwt(text: &str) -> bool {
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices("eyJ").any(|(i, _)| {
        let parts: Vec<&str> = text[i..]
            .split(|c: char| !(b64(c) || c == '.'))
            .next()
            .unwrap_or("")
            .split('.')
            .collect();
        parts.len() >= 3 && parts[..3].iter().all(|p| p.len() >= 8)
    })
}

/// Every file under `dir` (not following links), but not inside `skip`.
fn files_under(dir: &std::path::Path, skip: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let t = e.file_type().unwrap();
        if p == skip {
            continue;
        }
        if t.is_dir() {
            files_under(&p, skip, out);
        } else if t.is_file() {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_shards_keeps_keys_and_tokens_private_and_signs_in_one_place() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let running = canopy::start(canopy::StartOptions {
        root_directory: root.clone(),
        secure_port: 0,
        bind_address: "127.0.0.1".parse().unwrap(),
        database_url: None,
        shards: 3,
        limits: Default::default(),
        size_limits: Default::default(),
    })
    .await
    .expect("canopy start --shards 3");
    let root = std::fs::canonicalize(&root).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&root), 0o700, "the root directory");

    // every file holding a private key or a token is readable by its owner only, in a
    // directory others cannot write to
    let pg = root.join("postgres");
    assert_eq!(mode(&pg) & 0o077, 0, "PostgreSQL's data directory");
    let mut files = Vec::new();
    files_under(&root, &pg, &mut files);
    let signing_pem =
        std::fs::read_to_string(root.join("pki").join(canopy_auth::token::ACTIVE_KEY_FILE))
            .expect("root's shard holds the token-signing key");
    let mut secrets = 0;
    let mut signing_copies = Vec::new();
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        let parent = f.parent().unwrap();
        assert_eq!(
            mode(parent) & 0o002,
            0,
            "{} is world-writable",
            parent.display()
        );
        if text.contains("PRIVATE KEY") || has_jwt(&text) || f.ends_with("postgres.password") {
            secrets += 1;
            assert_eq!(
                mode(f) & 0o077,
                0,
                "{} holds a secret but is mode {:o}",
                f.display(),
                mode(f)
            );
        }
        if text.contains(signing_pem.trim()) {
            signing_copies.push(f.clone());
        }
    }
    assert!(
        secrets >= 8,
        "keys, tokens and kubeconfigs found: {secrets}"
    );
    assert_eq!(
        signing_copies,
        vec![root.join("pki").join(canopy_auth::token::ACTIVE_KEY_FILE)],
        "exactly one copy of the token-signing key, on root's shard"
    );
    for name in ["shard-1", "shard-2"] {
        let mut theirs = Vec::new();
        files_under(&root.join("shards").join(name), &pg, &mut theirs);
        assert!(!theirs.is_empty());
        assert!(
            !theirs
                .iter()
                .any(|f| f.file_name().unwrap() == canopy_auth::token::ACTIVE_KEY_FILE),
            "{name} holds a token-signing key: {theirs:?}"
        );
    }
    for f in ["admin.kubeconfig", "admin.token", "postgres.password"] {
        assert_eq!(mode(&root.join(f)), 0o600, "{f}");
    }

    // tokens issued before and after a key rotation work through the proxy and directly
    // on a shard without root (which verifies with root's public keys only)
    let proxy = running.proxy.as_ref().unwrap();
    let admin_token = std::fs::read_to_string(root.join("admin.token")).unwrap();
    let admin = canopy_test_harness::Client::new(
        &proxy.url,
        proxy.ca_cert_pem.as_deref().unwrap(),
        Some(admin_token.trim()),
    );
    const TOKENS: &str = "/services/tokens/apis/tokens.canopy.dev/v1alpha1/tokens";
    let issue = || async {
        let (code, b) = admin
            .post(
                TOKENS,
                serde_json::json!({"kind": "Token", "spec": {"user": "ops", "groups": ["system:masters"], "expirationSeconds": 600}}),
            )
            .await;
        assert_eq!(code, 201, "{b}");
        b["status"]["token"].as_str().unwrap().to_string()
    };
    let before = issue().await;
    let (code, b) = admin
        .post("/services/tokens/rotate", serde_json::json!({}))
        .await;
    assert_eq!(code, 200, "{b}");
    let after = issue().await;
    assert_ne!(
        jwt_kid(&before),
        jwt_kid(&after),
        "the new token names the new key"
    );
    let other = &running.more_shards[0];
    let forger = canopy_auth::TokenIssuer::load_or_create(&dir.path().join("forger")).unwrap();
    let forged = forger
        .issue("ops", &["system:masters".into()], Duration::from_secs(600))
        .unwrap();
    let path = "/clusters/root/api/v1/namespaces";
    for (what, token, want) in [
        ("before", &before, true),
        ("after", &after, true),
        ("forged", &forged, false),
    ] {
        let via_proxy = canopy_test_harness::Client::new(
            &proxy.url,
            proxy.ca_cert_pem.as_deref().unwrap(),
            Some(token),
        );
        let direct = canopy_test_harness::Client::new(&other.url, &other.ca_cert_pem, Some(token));
        let start = std::time::Instant::now();
        loop {
            let (p, _) = via_proxy.get(path).await;
            let (d, _) = direct.get("/api").await;
            let ok = (p == 200) == want && (d != 401) == want;
            if ok {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the token {what} the rotation: proxy {p}, shard without root {d}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    running.stop().await;
}

fn jwt_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let h: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    h["kid"].as_str().unwrap().to_string()
}
