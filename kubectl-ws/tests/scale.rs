//! One service across many shards, at the scale the sharding issue asks for: three
//! shards and a cache server behind a front-proxy; 300 workspaces in a 3-level tree
//! (6 organizations × 7 teams × 6 leaves). Every shard gets some; every workspace works
//! through the proxy with kubectl; watches and `kubectl ws` up and down across shard
//! boundaries; a deletion cascade across shards. Then failures: a killed shard makes
//! only its own workspaces answer 503 (within 2 s), and recovers by itself when it is
//! back; a killed cache server leaves every shard serving, and the global view comes
//! back whole when the cache server does.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use canopy_test_harness::{shard_name, TestCacheServer, TestProxy};
use common::Session;
use futures::StreamExt;
use serde_json::{json, Value};

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";
const ORGS: usize = 6;
const TEAMS: usize = 7;
const LEAVES: usize = 6;

fn ws(name: &str) -> Value {
    json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name}, "spec": {}})
}

/// Creates `names` under `parent`s and waits until all are Ready; returns each new
/// path with the shard hash it was scheduled to.
async fn create_level(
    c: &canopy_test_harness::Client,
    children: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let created: Vec<_> = futures::stream::iter(children.iter().cloned())
        .map(|(parent, name)| async move {
            let (code, b) = c.post(&format!("/clusters/{parent}/{WS}"), ws(&name)).await;
            assert_eq!(code, 201, "{parent}:{name}: {b}");
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(created.len(), children.len());
    let parents: HashSet<&String> = children.iter().map(|(p, _)| p).collect();
    let mut out = Vec::new();
    for parent in parents {
        let names: HashSet<&str> = children
            .iter()
            .filter(|(p, _)| p == parent)
            .map(|(_, n)| n.as_str())
            .collect();
        let want = names.len();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, list) = c.get(&format!("/clusters/{parent}/{WS}")).await;
            assert_eq!(code, 200, "{list}");
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let ready: Vec<&Value> = items
                .iter()
                .filter(|w| names.contains(w["metadata"]["name"].as_str().unwrap_or("")))
                .filter(|w| w["status"]["phase"] == "Ready")
                .collect();
            if ready.len() == want {
                for w in ready {
                    out.push((
                        format!("{parent}:{}", w["metadata"]["name"].as_str().unwrap()),
                        w["metadata"]["annotations"]["internal.tenancy.kcp.io/shard"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    ));
                }
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{parent}: {} of {want} Ready",
                ready.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_workspaces_over_three_shards_and_failures() {
    let cache = TestCacheServer::start().await;
    let mut env = TestProxy::builder()
        .shards(3)
        .cache_server(&cache)
        .start()
        .await;
    let c = env.admin();
    let hashes: HashMap<String, usize> = (0..3)
        .map(|i| (canopy_core::resource::shard_hash(&shard_name(i)), i))
        .collect();
    // every shard's Shard object, seen through the global view by every shard
    for i in 0..3 {
        let g = env.shard(i).global();
        let deadline = Instant::now() + Duration::from_secs(20);
        while g.list_cluster("core.kcp.io/shards", "root").len() < 3 {
            assert!(Instant::now() < deadline, "shard {i}'s global view");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // the tree, level by level
    let start = Instant::now();
    let orgs = create_level(
        &c,
        (0..ORGS)
            .map(|o| ("root".to_string(), format!("o{o}")))
            .collect(),
    )
    .await;
    let teams = create_level(
        &c,
        orgs.iter()
            .flat_map(|(p, _)| (0..TEAMS).map(move |t| (p.clone(), format!("t{t}"))))
            .collect(),
    )
    .await;
    let leaves = create_level(
        &c,
        teams
            .iter()
            .flat_map(|(p, _)| (0..LEAVES).map(move |l| (p.clone(), format!("l{l}"))))
            .collect(),
    )
    .await;
    let all: Vec<(String, String)> = orgs
        .iter()
        .chain(teams.iter())
        .chain(leaves.iter())
        .cloned()
        .collect();
    assert_eq!(all.len(), 300);
    eprintln!("300 workspaces Ready in {:?}", start.elapsed());
    let shard_of: HashMap<String, usize> = all
        .iter()
        .map(|(path, hash)| {
            (
                path.clone(),
                *hashes
                    .get(hash)
                    .unwrap_or_else(|| panic!("{path} scheduled to unknown shard {hash:?}")),
            )
        })
        .collect();
    for i in 0..3 {
        let n = shard_of.values().filter(|s| **s == i).count();
        assert!(n > 0, "shard {i} got no workspace");
        eprintln!("shard {i} holds {n} workspaces");
    }

    // every workspace works through the proxy with kubectl
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Session::new(dir.path(), "admin", env.kubeconfig.clone());
    let kubectl = &kubectl;
    let proxy = env.url().to_string();
    let start = Instant::now();
    futures::stream::iter(all.iter())
        .map(|(path, _)| {
            let server = format!("{proxy}/clusters/{path}");
            async move {
                kubectl
                    .ok(&[
                        "--server",
                        &server,
                        "create",
                        "configmap",
                        "here",
                        "--from-literal=path=x",
                    ])
                    .await;
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    eprintln!("kubectl create in 300 workspaces: {:?}", start.elapsed());
    for (path, _) in all.iter().step_by(7) {
        let (code, cm) = c
            .get(&format!(
                "/clusters/{path}/api/v1/namespaces/default/configmaps/here"
            ))
            .await;
        assert_eq!(code, 200, "{path}: {cm}");
    }

    // a watch on a leaf of each shard sees a change made there
    for i in 0..3 {
        let (path, _) = leaves
            .iter()
            .find(|(p, _)| shard_of[p] == i)
            .unwrap_or_else(|| panic!("a leaf on shard {i}"));
        let server = format!("{proxy}/clusters/{path}");
        let mut cmd = tokio::process::Command::new(canopy_test_harness::kubectl_binary());
        cmd.args([
            "--server",
            &server,
            "get",
            "configmaps",
            "--watch",
            "-o",
            "name",
        ])
        .env("KUBECONFIG", &kubectl.kubeconfig)
        .env("KUBECACHEDIR", &kubectl.cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl --watch");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().unwrap(),
        ));
        let mut seen = Vec::new();
        let mut created = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|l: &String| l.contains("watched")) {
            let line = tokio::time::timeout(Duration::from_secs(3), lines.next_line()).await;
            if let Ok(Ok(Some(l))) = line {
                seen.push(l);
            }
            if !created && seen.iter().any(|l| l.contains("here")) {
                let (code, b) = c
                    .post(
                        &format!("/clusters/{path}/api/v1/namespaces/default/configmaps"),
                        json!({"metadata": {"name": "watched"}}),
                    )
                    .await;
                assert_eq!(code, 201, "{b}");
                created = true;
            }
            assert!(Instant::now() < deadline, "watch in {path}: {seen:?}");
        }
    }

    // `kubectl ws` down and up a branch whose three levels sit on different shards
    let branch = leaves
        .iter()
        .map(|(p, _)| p)
        .find(|p| {
            let team = p.rsplit_once(':').unwrap().0;
            let org = team.rsplit_once(':').unwrap().0;
            let s: HashSet<usize> = [shard_of[*p], shard_of[team], shard_of[org]].into();
            s.len() >= 2
        })
        .expect("a leaf on another shard than its team or organization")
        .clone();
    let kc = dir.path().join("ws.kubeconfig");
    std::fs::copy(&env.kubeconfig, &kc).unwrap();
    let ws = Session::new(dir.path(), "ws", kc);
    let parts: Vec<&str> = branch.split(':').collect();
    let mut here = "root".to_string();
    for p in &parts[1..] {
        let out = ws.ok(&["ws", p]).await;
        here = format!("{here}:{p}");
        assert!(
            out.contains(&format!("Current workspace is \"{here}\"")),
            "{out}"
        );
        let cms = ws.ok(&["get", "configmaps", "-o", "name"]).await;
        assert!(cms.contains("configmap/here"), "{here}: {cms}");
    }
    for _ in 1..parts.len() {
        let out = ws.ok(&["ws", ".."]).await;
        here = here.rsplit_once(':').unwrap().0.to_string();
        assert!(
            out.contains(&format!("Current workspace is \"{here}\"")),
            "{out}"
        );
    }
    let tree = ws.ok(&["ws", "tree"]).await;
    for o in 0..ORGS {
        assert!(tree.contains(&format!("o{o}")), "{tree}");
    }

    // a deletion cascade across shards: an organization with its 7 teams and 42 leaves
    let doomed: Vec<&String> = all
        .iter()
        .map(|(p, _)| p)
        .filter(|p| *p == "root:o5" || p.starts_with("root:o5:"))
        .collect();
    assert_eq!(doomed.len(), 1 + TEAMS + TEAMS * LEAVES);
    let spread: HashSet<usize> = doomed.iter().map(|p| shard_of[*p]).collect();
    assert!(spread.len() >= 2, "the organization's subtree spans shards");
    let (code, b) = c.delete(&format!("/clusters/root/{WS}/o5")).await;
    assert!(code == 200 || code == 202, "{b}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left: usize = (0..3)
            .map(|i| {
                env.shard(i)
                    .shard
                    .api
                    .store()
                    .list_all("core.kcp.io/logicalclusters", None, None)
                    .iter()
                    .filter(|lc| {
                        let p = lc.value["metadata"]["annotations"]["kcp.io/path"]
                            .as_str()
                            .unwrap_or("");
                        p == "root:o5" || p.starts_with("root:o5:")
                    })
                    .count()
            })
            .sum();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} logical clusters of root:o5 left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, _) = c.get("/clusters/root:o5:t0:l0/api/v1/namespaces").await;
    assert_eq!(code, 403);

    // kill shard-1: its workspaces answer 503 within 2 s, the others are unaffected
    let live: Vec<&String> = all
        .iter()
        .map(|(p, _)| p)
        .filter(|p| !p.starts_with("root:o5"))
        .collect();
    let on =
        |i: usize| -> Vec<&String> { live.iter().copied().filter(|p| shard_of[*p] == i).collect() };
    let (victims, others): (Vec<&String>, Vec<&String>) = (
        on(1),
        live.iter().copied().filter(|p| shard_of[*p] != 1).collect(),
    );
    assert!(!victims.is_empty() && !others.is_empty());
    env.stop_shard(1).await;
    let killed = Instant::now();
    let path = format!(
        "/clusters/{}/api/v1/namespaces/default/configmaps",
        victims[0]
    );
    let resp = c.request(reqwest::Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503, "a workspace on the dead shard");
    assert!(resp.headers().get("retry-after").is_some());
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "503 took {:?}",
        killed.elapsed()
    );
    for p in victims.iter().take(5) {
        let t = Instant::now();
        let (code, _) = c.get(&format!("/clusters/{p}/api/v1/namespaces")).await;
        assert_eq!(code, 503, "{p}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
    for p in others.iter().step_by(5) {
        let (code, b) = c
            .get(&format!(
                "/clusters/{p}/api/v1/namespaces/default/configmaps/here"
            ))
            .await;
        assert_eq!(code, 200, "{p} (not on the dead shard): {b}");
    }
    // back: its workspaces recover by themselves, nothing else restarted
    env.start_shard(1).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    for p in &victims {
        loop {
            let (code, _) = c
                .get(&format!(
                    "/clusters/{p}/api/v1/namespaces/default/configmaps/here"
                ))
                .await;
            if code == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{p} did not recover: {code}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // kill the cache server: every shard keeps serving its own workspaces, and new
    // workspaces are still made
    let stopped = cache.stop().await;
    for i in 0..3 {
        let p = live.iter().find(|p| shard_of[**p] == i).unwrap();
        let (code, b) = c
            .post(
                &format!("/clusters/{p}/api/v1/namespaces/default/configmaps"),
                json!({"metadata": {"name": "while-cache-down"}}),
            )
            .await;
        assert_eq!(code, 201, "{p} with the cache server down: {b}");
    }
    let extra = create_level(&c, vec![("root:o0".to_string(), "late".to_string())]).await;
    assert_eq!(extra.len(), 1);
    // back (empty, as after any restart): the shards re-replicate, every global view is
    // whole again
    let _cache = stopped.start().await;
    for i in 0..3 {
        let g = env.shard(i).global();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shards = g.list_cluster("core.kcp.io/shards", "root").len();
            let types = g
                .list_cluster("tenancy.kcp.io/workspacetypes", "root")
                .len();
            if shards == 3 && types > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "shard {i}'s global view after the cache server's restart: {shards} shards, {types} types"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
