//! Replication end to end: real shards (real PostgreSQL) and a real cache server, all
//! in-process, talking HTTPS.

use std::collections::BTreeSet;
use std::time::Duration;

use canopy_cache::{CacheReader, Credentials, ReaderOptions, REPLICATED_RESOURCES};
use canopy_test_harness::{Client, TestCacheServer, TestShard};
use serde_json::{json, Value};

const WT: &str = "tenancy.kcp.io/workspacetypes";
const WT_PATH: &str = "apis/tenancy.kcp.io/v1alpha1/workspacetypes";
const WAIT: Duration = Duration::from_secs(30);

/// (resource, cluster, namespace, name, source resourceVersion).
type Set = BTreeSet<(String, String, String, String, u64)>;

/// What the shard has locally of the replicated resources.
fn live_set(s: &TestShard) -> Set {
    let store = s.shard.api.store();
    REPLICATED_RESOURCES
        .iter()
        .flat_map(|r| store.list_all(r, None, None))
        .map(|o| {
            (
                o.key.resource.to_string(),
                o.key.cluster.to_string(),
                o.key.namespace.clone(),
                o.key.name.clone(),
                o.rv,
            )
        })
        .collect()
}

/// What the cache server holds of `shard`.
fn cache_set(cache: &TestCacheServer, shard: &str) -> Set {
    cache
        .server
        .store()
        .list(&cache_server::store::Filter {
            shard: Some(shard.into()),
            ..Default::default()
        })
        .items
        .into_iter()
        .map(|o| {
            (
                o.key.resource,
                o.key.cluster,
                o.key.namespace,
                o.key.name,
                o.source_resource_version,
            )
        })
        .collect()
}

/// What a reader sees of `shard`.
fn global_set(g: &CacheReader, shard: &str) -> Set {
    REPLICATED_RESOURCES
        .iter()
        .flat_map(|r| g.list(r))
        .filter(|o| o.shard == shard)
        .map(|o| {
            (
                o.key.resource.clone(),
                o.key.cluster.clone(),
                o.key.namespace.clone(),
                o.key.name.clone(),
                o.source_resource_version,
            )
        })
        .collect()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Waits until the cache server and `readers` hold exactly the live set of each shard.
async fn converged(cache: &TestCacheServer, shards: &[&TestShard], readers: &[&CacheReader]) {
    let mut last = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let mut ok = true;
        for s in shards {
            let live = live_set(s);
            let cached = cache_set(cache, s.shard_name());
            if cached != live {
                ok = false;
                last = format!(
                    "cache of {}: missing {:?}, stale {:?}",
                    s.shard_name(),
                    live.difference(&cached).collect::<Vec<_>>(),
                    cached.difference(&live).collect::<Vec<_>>()
                );
            }
            for (i, g) in readers.iter().enumerate() {
                let seen = global_set(g, s.shard_name());
                if seen != live {
                    ok = false;
                    last = format!(
                        "reader {i} of {}: missing {:?}, stale {:?}",
                        s.shard_name(),
                        live.difference(&seen).collect::<Vec<_>>(),
                        seen.difference(&live).collect::<Vec<_>>()
                    );
                }
            }
        }
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not converged: {last}");
}

fn wtype(name: &str, label: &str) -> Value {
    json!({
        "apiVersion": "tenancy.kcp.io/v1alpha1",
        "kind": "WorkspaceType",
        "metadata": {"name": name, "labels": {"test": label}},
        "spec": {}
    })
}

async fn create_wt(c: &Client, cluster: &str, name: &str) -> Value {
    let (code, body) = c
        .post(&format!("/clusters/{cluster}/{WT_PATH}"), wtype(name, "v1"))
        .await;
    assert_eq!(code, 201, "{body}");
    body
}

async fn delete_wt(c: &Client, cluster: &str, name: &str) {
    let (code, body) = c
        .delete(&format!("/clusters/{cluster}/{WT_PATH}/{name}"))
        .await;
    assert_eq!(code, 200, "{body}");
}

async fn label_wt(c: &Client, cluster: &str, name: &str, label: &str) -> Value {
    let (code, body) = c
        .patch(
            &format!("/clusters/{cluster}/{WT_PATH}/{name}"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"test": label}}}).to_string(),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    body
}

/// The copy of `name` in `cluster` that `shard` replicated, as `g` sees it.
fn seen(g: &CacheReader, shard: &str, cluster: &str, name: &str) -> Option<Value> {
    g.list_cluster(WT, cluster)
        .into_iter()
        .find(|o| o.shard == shard && o.key.name == name)
        .map(|o| o.object.clone())
}

async fn shard(name: &str, cache: &TestCacheServer) -> TestShard {
    let s = TestShard::builder()
        .shard_name(name)
        .cache_server(cache)
        .start()
        .await;
    assert!(
        s.shard.replicator().unwrap().wait_synced(1, WAIT).await,
        "shard {name} never synced: {:?}",
        s.shard.replicator().unwrap().status()
    );
    s
}

#[tokio::test]
async fn workspace_types_replicate_between_two_shards() {
    let cache = TestCacheServer::start().await;
    let a = shard("alpha", &cache).await;
    let b = shard("beta", &cache).await;
    let (ca, cb) = (a.admin(), b.admin());

    // the built-in types of each shard's root are there, from both shards
    converged(&cache, &[&a, &b], &[a.global(), b.global()]).await;
    assert!(seen(b.global(), "alpha", "root", "organization").is_some());
    assert!(seen(a.global(), "beta", "root", "organization").is_some());

    // created on A → in B's view
    create_wt(&ca, "root", "widget").await;
    eventually("B sees alpha's widget", || {
        seen(b.global(), "alpha", "root", "widget").is_some()
    })
    .await;
    let r = b.global().get(WT, "root", "widget").unwrap();
    assert_eq!(r.shard, "alpha");
    assert_eq!(r.object["metadata"]["labels"]["test"], "v1");
    assert_eq!(r.object["kind"], "WorkspaceType");

    // updated on A → updated in B's view
    let updated = label_wt(&ca, "root", "widget", "v2").await;
    eventually("B sees the update", || {
        seen(b.global(), "alpha", "root", "widget")
            .is_some_and(|o| o["metadata"]["labels"]["test"] == "v2")
    })
    .await;
    let r = b.global().get(WT, "root", "widget").unwrap();
    assert_eq!(
        r.source_resource_version.to_string(),
        updated["metadata"]["resourceVersion"].as_str().unwrap()
    );

    // deleted on A → gone from B's view
    delete_wt(&ca, "root", "widget").await;
    eventually("B no longer sees widget", || {
        b.global().get(WT, "root", "widget").is_none()
    })
    .await;

    // and the other way: a type in a child workspace of B, seen by A under B's logical
    // cluster name
    let (code, ws) = cb
        .post(
            "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces",
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "acme"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{ws}");
    let ws = cb.wait_workspace_ready("root", "acme").await;
    let cluster = ws["spec"]["cluster"].as_str().unwrap().to_string();
    create_wt(&cb, "root:acme", "special").await;
    eventually("A sees beta's special", || {
        seen(a.global(), "beta", &cluster, "special").is_some()
    })
    .await;
    assert!(a.global().get(WT, &cluster, "special").is_some());
    label_wt(&cb, "root:acme", "special", "v9").await;
    eventually("A sees the update of special", || {
        seen(a.global(), "beta", &cluster, "special")
            .is_some_and(|o| o["metadata"]["labels"]["test"] == "v9")
    })
    .await;
    delete_wt(&cb, "root:acme", "special").await;
    eventually("A no longer sees special", || {
        a.global().get(WT, &cluster, "special").is_none()
    })
    .await;

    converged(&cache, &[&a, &b], &[a.global(), b.global()]).await;
    // a reader whose change notification fires
    let mut changes = a.global().changes();
    changes.borrow_and_update();
    create_wt(&cb, "root", "notify").await;
    tokio::time::timeout(WAIT, changes.changed())
        .await
        .expect("change notification")
        .unwrap();
    assert!(
        a.global()
            .wait_for(WAIT, |g| g.get(WT, "root", "notify").is_some())
            .await
    );
}

#[tokio::test]
async fn cache_server_restart_leaves_exactly_the_live_set() {
    let cache = TestCacheServer::start().await;
    let a = shard("alpha", &cache).await;
    let b = shard("beta", &cache).await;
    let (ca, cb) = (a.admin(), b.admin());
    for n in ["keep", "gone-during-outage", "changed-during-outage"] {
        create_wt(&ca, "root", n).await;
    }
    create_wt(&cb, "root", "b-keep").await;
    create_wt(&cb, "root", "b-gone").await;
    converged(&cache, &[&a, &b], &[a.global(), b.global()]).await;
    let instance = cache.server.instance().to_string();

    let stopped = cache.stop().await;
    // changes while the cache server is down
    delete_wt(&ca, "root", "gone-during-outage").await;
    label_wt(&ca, "root", "changed-during-outage", "v2").await;
    create_wt(&ca, "root", "new-during-outage").await;
    delete_wt(&cb, "root", "b-gone").await;
    create_wt(&cb, "root", "b-new").await;
    // readers keep their last view meanwhile
    assert!(seen(b.global(), "alpha", "root", "gone-during-outage").is_some());

    let cache = stopped.start().await;
    assert_ne!(cache.server.instance(), instance);
    for s in [&a, &b] {
        assert!(
            s.shard.replicator().unwrap().wait_synced(2, WAIT).await,
            "{} did not resync: {:?}",
            s.shard_name(),
            s.shard.replicator().unwrap().status()
        );
    }
    converged(&cache, &[&a, &b], &[a.global(), b.global()]).await;
    assert!(b.global().get(WT, "root", "gone-during-outage").is_none());
    assert!(seen(b.global(), "alpha", "root", "new-during-outage").is_some());
    assert_eq!(
        seen(b.global(), "alpha", "root", "changed-during-outage").unwrap()["metadata"]["labels"]
            ["test"],
        "v2"
    );
    assert!(seen(a.global(), "beta", "root", "b-gone").is_none());
    assert!(a.global().status().lists >= 2, "{:?}", a.global().status());

    // incremental replication works again after the restart
    create_wt(&ca, "root", "after-restart").await;
    delete_wt(&cb, "root", "b-keep").await;
    converged(&cache, &[&a, &b], &[a.global(), b.global()]).await;
    assert!(seen(b.global(), "alpha", "root", "after-restart").is_some());

    // a second restart while nothing changes: found by the heartbeat alone
    let cache = cache.restart().await;
    for s in [&a, &b] {
        assert!(s.shard.replicator().unwrap().wait_synced(3, WAIT).await);
    }
    converged(&cache, &[&a, &b], &[a.global(), b.global()]).await;
}

#[tokio::test]
async fn a_restarted_shard_full_syncs_what_changed_while_it_was_down() {
    let cache = TestCacheServer::start().await;
    let reader = CacheReader::start(
        cache.cache_client(Credentials::Token(cache.reader_token("front-proxy"))),
        ReaderOptions::new(REPLICATED_RESOURCES),
    );
    let a = shard("alpha", &cache).await;
    let ca = a.admin();
    create_wt(&ca, "root", "keep").await;
    create_wt(&ca, "root", "vanish").await;
    converged(&cache, &[&a], &[&reader]).await;

    let stopped = a.stop().await;
    // the shard's objects stay in the cache while it is down
    assert!(reader.get(WT, "root", "vanish").is_some());
    assert!(cache_set(&cache, "alpha").iter().any(|k| k.3 == "vanish"));
    // its database changes behind its back (e.g. restored from a backup)
    let store = open_store(&stopped.db.url).await;
    store
        .apply(canopy_storage::Mutation::Delete {
            key: canopy_storage::ObjectKey::new(WT, "root", "", "vanish"),
            expected_rv: None,
        })
        .await
        .unwrap();
    let mut keep = store
        .get(&canopy_storage::ObjectKey::new(WT, "root", "", "keep"))
        .unwrap()
        .value
        .clone();
    keep["metadata"]["labels"]["test"] = json!("edited-offline");
    store
        .apply(canopy_storage::Mutation::Update {
            key: canopy_storage::ObjectKey::new(WT, "root", "", "keep"),
            expected_rv: None,
            value: keep,
        })
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let a = stopped.start().await;
    assert!(a.shard.replicator().unwrap().wait_synced(1, WAIT).await);
    converged(&cache, &[&a], &[&reader, a.global()]).await;
    assert!(reader.get(WT, "root", "vanish").is_none());
    assert_eq!(
        reader.get(WT, "root", "keep").unwrap().object["metadata"]["labels"]["test"],
        "edited-offline"
    );
}

async fn open_store(url: &str) -> canopy_storage::Store {
    // the stopped shard's connection (and its writer lock) may take a moment to go
    for _ in 0..100 {
        match canopy_storage::Store::open(url, Default::default()).await {
            Ok(s) => return s,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("cannot open the stopped shard's store");
}

#[tokio::test]
async fn a_shard_serves_while_the_cache_server_is_down() {
    let cache = TestCacheServer::start().await;
    let a = shard("alpha", &cache).await;
    let ca = a.admin();
    let stopped = cache.stop().await;

    let started = std::time::Instant::now();
    let (code, cm) = ca
        .post(
            "/clusters/root/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "during-outage"}, "data": {"k": "v"}}),
        )
        .await;
    assert_eq!(code, 201, "{cm}");
    let (code, cm) = ca
        .get("/clusters/root/api/v1/namespaces/default/configmaps/during-outage")
        .await;
    assert_eq!(code, 200);
    assert_eq!(cm["data"]["k"], "v");
    create_wt(&ca, "root", "during-outage").await;
    let (code, wt) = ca
        .get(&format!("/clusters/root/{WT_PATH}/during-outage"))
        .await;
    assert_eq!(code, 200, "{wt}");
    let (code, list) = ca.get(&format!("/clusters/root/{WT_PATH}")).await;
    assert_eq!(code, 200);
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["metadata"]["name"] == "during-outage"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests during the outage took {:?}",
        started.elapsed()
    );
    assert!(!a.shard.replicator().unwrap().status().synced);

    let cache = stopped.start().await;
    converged(&cache, &[&a], &[a.global()]).await;
    assert!(a.global().get(WT, "root", "during-outage").is_some());
}
