//! The shard's API semantics over raw HTTPS, against real PostgreSQL.

use canopy_tenancy::TenancyExt;
use std::time::Duration;

use canopy_test_harness::TestShard;
use futures::StreamExt;
use serde_json::{json, Value};

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

const CMS: &str = "/clusters/root/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn authentication_is_required() {
    let env = TestShard::builder().start().await;
    let (code, body) = env.client(None).get(CMS).await;
    assert_eq!(code, 401);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    let (code, _) = env.client(Some("not-a-token")).get(CMS).await;
    assert_eq!(code, 401);
    // a token signed by another key is refused
    let other = tempfile_token();
    let (code, _) = env.client(Some(&other)).get(CMS).await;
    assert_eq!(code, 401);
    // health and version are public
    assert_eq!(env.client(None).get("/healthz").await.0, 200);
    let (code, v) = env.client(None).get("/version").await;
    assert_eq!(code, 200);
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1."));
}

fn tempfile_token() -> String {
    let dir = std::env::temp_dir().join(format!("canopy-other-key-{}", std::process::id()));
    let issuer = canopy_auth_issuer(&dir);
    issuer
        .issue("admin", &["system:masters".into()], Duration::from_secs(60))
        .unwrap()
}

fn canopy_auth_issuer(dir: &std::path::Path) -> canopy_auth::TokenIssuer {
    canopy_auth::TokenIssuer::load_or_create(dir).unwrap()
}

#[tokio::test]
async fn crud_conflicts_and_status_errors() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let (code, created) = c.post(CMS, cm("a", json!({}))).await;
    assert_eq!(code, 201, "{created}");
    assert!(created["metadata"]["uid"].as_str().unwrap().len() > 10);
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, dup) = c.post(CMS, cm("a", json!({}))).await;
    assert_eq!((code, dup["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(dup["details"]["name"], "a");
    assert_eq!(dup["details"]["kind"], "configmaps");

    // update with a stale resourceVersion is a conflict
    let mut upd = created.clone();
    upd["data"]["k"] = json!("v2");
    let (code, ok) = c.put(&format!("{CMS}/a"), upd.clone()).await;
    assert_eq!(code, 200, "{ok}");
    assert_ne!(ok["metadata"]["resourceVersion"], json!(rv));
    let (code, stale) = c.put(&format!("{CMS}/a"), upd).await;
    assert_eq!(code, 409);
    assert_eq!(stale["reason"], "Conflict");
    assert!(stale["message"]
        .as_str()
        .unwrap()
        .contains("the object has been modified"));

    // a no-op update writes nothing
    let (_, cur) = c.get(&format!("{CMS}/a")).await;
    let (code, same) = c.put(&format!("{CMS}/a"), cur.clone()).await;
    assert_eq!(code, 200);
    assert_eq!(
        same["metadata"]["resourceVersion"],
        cur["metadata"]["resourceVersion"]
    );

    // generateName
    let (code, gen) = c
        .post(
            CMS,
            json!({"metadata": {"generateName": "gen-"}, "data": {}}),
        )
        .await;
    assert_eq!(code, 201);
    let name = gen["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // invalid objects: 422 with field causes
    let (code, inv) = c
        .post(
            CMS,
            json!({"metadata": {"name": "UPPER"}, "data": {"bad key": "x"}}),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(inv["reason"], "Invalid");
    let fields: Vec<&str> = inv["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["metadata.name", "data"]);

    // wrong types: 400
    let (code, _) = c
        .post(CMS, json!({"metadata": {"name": "t"}, "data": {"k": 1}}))
        .await;
    assert_eq!(code, 400);

    // fieldValidation
    let (code, strict) = c
        .post(
            &format!("{CMS}?fieldValidation=Strict"),
            json!({"metadata": {"name": "s"}, "bogus": 1}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        strict["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"bogus\""),
        "{strict}"
    );
    let resp = c
        .request(reqwest::Method::POST, CMS)
        .json(&json!({"metadata": {"name": "w"}, "bogus": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let warning = resp
        .headers()
        .get("warning")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(warning.contains("unknown field"), "{warning}");

    // delete returns a Success status; then 404
    let (code, st) = c.delete(&format!("{CMS}/a")).await;
    assert_eq!((code, st["status"].as_str()), (200, Some("Success")));
    let (code, nf) = c.get(&format!("{CMS}/a")).await;
    assert_eq!((code, nf["reason"].as_str()), (404, Some("NotFound")));

    // unknown resources and group versions
    assert_eq!(
        c.get("/clusters/root/api/v1/namespaces/default/pods")
            .await
            .0,
        404
    );
    assert_eq!(c.get("/clusters/root/apis/apps/v1").await.0, 404);
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let mut obj = cm("held", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    assert_eq!(c.post(CMS, obj).await.0, 201);
    let (code, pending) = c.delete(&format!("{CMS}/held")).await;
    assert_eq!(code, 202);
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    let (code, still) = c.get(&format!("{CMS}/held")).await;
    assert_eq!(code, 200);
    assert!(still["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = c
        .patch(
            &format!("{CMS}/held"),
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(c.get(&format!("{CMS}/held")).await.0, 404);
}

async fn wait_gone(c: &canopy_test_harness::Client, path: &str) {
    for _ in 0..100 {
        if c.get(path).await.0 == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} was not deleted");
}

#[tokio::test]
async fn garbage_collection_background_foreground_orphan() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let owned = |name: &str, owner: &Value| {
        let mut o = cm(name, json!({}));
        o["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]);
        o
    };
    // background
    let (_, owner) = c.post(CMS, cm("owner-bg", json!({}))).await;
    assert_eq!(c.post(CMS, owned("dep-bg", &owner)).await.0, 201);
    c.delete(&format!("{CMS}/owner-bg")).await;
    wait_gone(&c, &format!("{CMS}/dep-bg")).await;

    // foreground: the owner waits for its dependents
    let (_, owner) = c.post(CMS, cm("owner-fg", json!({}))).await;
    c.post(CMS, owned("dep-fg", &owner)).await;
    let (code, _) = c
        .send(
            reqwest::Method::DELETE,
            &format!("{CMS}/owner-fg"),
            Some(json!({"propagationPolicy": "Foreground"})),
        )
        .await;
    assert_eq!(code, 202);
    wait_gone(&c, &format!("{CMS}/dep-fg")).await;
    wait_gone(&c, &format!("{CMS}/owner-fg")).await;

    // orphan: dependents stay, without the owner reference
    let (_, owner) = c.post(CMS, cm("owner-or", json!({}))).await;
    c.post(CMS, owned("dep-or", &owner)).await;
    c.send(
        reqwest::Method::DELETE,
        &format!("{CMS}/owner-or"),
        Some(json!({"propagationPolicy": "Orphan"})),
    )
    .await;
    wait_gone(&c, &format!("{CMS}/owner-or")).await;
    let (code, dep) = c.get(&format!("{CMS}/dep-or")).await;
    assert_eq!(code, 200);
    assert!(dep["metadata"].get("ownerReferences").is_none(), "{dep}");

    // every controller has its own queue in the shard's metrics (client-go's names);
    // the garbage collector's did the work above
    let r = c
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let metrics = r.text().await.unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in\n{metrics}"))
    };
    for name in [
        "namespace",
        "garbagecollector",
        "clusterrole-aggregation",
        "crd",
        "workspace",
    ] {
        value(&format!("workqueue_depth{{name=\"{name}\"}}"));
        value(&format!("workqueue_retries_total{{name=\"{name}\"}}"));
        value(&format!(
            "workqueue_queue_duration_seconds_count{{name=\"{name}\"}}"
        ));
        value(&format!(
            "controller_runtime_reconcile_errors_total{{controller=\"{name}\"}}"
        ));
    }
    assert!(value("workqueue_adds_total{name=\"garbagecollector\"}") >= 3.0);
    assert!(value("workqueue_work_duration_seconds_count{name=\"garbagecollector\"}") >= 3.0);
    assert!(
        value("controller_runtime_reconcile_total{controller=\"garbagecollector\",result=\"success\"}")
            >= 3.0
    );
}

#[tokio::test]
async fn list_pagination_and_table() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    for i in 0..7 {
        c.post(CMS, cm(&format!("p{i}"), json!({"page": "yes"})))
            .await;
    }
    let mut names = Vec::new();
    let mut path = format!("{CMS}?limit=3&labelSelector=page%3Dyes");
    loop {
        let (code, list) = c.get(&path).await;
        assert_eq!(code, 200, "{list}");
        assert_eq!(list["kind"], "ConfigMapList");
        names.extend(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match list["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => {
                path = format!("{CMS}?limit=3&labelSelector=page%3Dyes&continue={t}")
            }
            _ => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());

    let resp = c
        .request(reqwest::Method::GET, CMS)
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Data", "Age"]);
    assert!(t["rows"][0]["object"]["kind"] == "PartialObjectMetadata");
}

async fn read_events(resp: reqwest::Response, n: usize) -> Vec<Value> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("watch stalled")
            .expect("stream ended")
            .unwrap();
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.push(serde_json::from_slice(&line).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn watch_semantics() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let (_, a) = c.post(CMS, cm("wa", json!({"app": "x"}))).await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // watch-list: initial ADDED events, then the initial-events-end bookmark
    let resp = c
        .request(reqwest::Method::GET, &format!("{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=app%3Dx"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let evs = read_events(resp, 2).await;
    assert_eq!(evs[0]["type"], "ADDED");
    assert_eq!(evs[0]["object"]["metadata"]["name"], "wa");
    assert_eq!(evs[1]["type"], "BOOKMARK");
    assert_eq!(
        evs[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // sendInitialEvents without NotOlderThan is rejected (clients fall back to list+watch)
    let (code, inv) = c
        .get(&format!("{CMS}?watch=true&sendInitialEvents=true"))
        .await;
    assert_eq!(code, 422, "{inv}");

    // resume from a resourceVersion; an object leaving the selector is DELETED for the watcher
    let resp = c
        .request(
            reqwest::Method::GET,
            &format!("{CMS}?watch=true&resourceVersion={rv}&labelSelector=app%3Dx"),
        )
        .send()
        .await
        .unwrap();
    c.post(CMS, cm("wb", json!({"app": "x"}))).await;
    c.patch(
        &format!("{CMS}/wa"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"app":"y"}}}"#,
    )
    .await;
    c.post(CMS, cm("wc", json!({"app": "other"}))).await;
    c.patch(
        &format!("{CMS}/wc"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"app":"x"}}}"#,
    )
    .await;
    let evs = read_events(resp, 3).await;
    let got: Vec<(String, String)> = evs
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["object"]["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("ADDED".into(), "wb".into()),
            ("DELETED".into(), "wa".into()),
            ("ADDED".into(), "wc".into())
        ]
    );
    // every event written to a watcher is counted, as kube-apiserver counts them
    let sent = |metrics: String| -> f64 {
        let series = "apiserver_watch_events_total{group=\"\",version=\"v1\",kind=\"ConfigMap\"} ";
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in\n{metrics}"))
    };
    let metrics = |c: &canopy_test_harness::Client| {
        let r = c.request(reqwest::Method::GET, "/metrics").send();
        async move { r.await.unwrap().text().await.unwrap() }
    };
    assert!(sent(metrics(&c).await) >= 5.0);

    // a resourceVersion older than history: 410 Expired as an ERROR event
    let env2 = TestShard::builder()
        .store_options(canopy_storage::StoreOptions {
            history_events: 5,
            ..Default::default()
        })
        .start()
        .await;
    let c2 = env2.admin();
    for i in 0..10 {
        c2.post(CMS, cm(&format!("h{i}"), json!({}))).await;
    }
    let resp = c2
        .request(
            reqwest::Method::GET,
            &format!("{CMS}?watch=true&resourceVersion=1"),
        )
        .send()
        .await
        .unwrap();
    let evs = read_events(resp, 1).await;
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");
    // each shard counts its own
    assert_eq!(sent(metrics(&c2).await), 1.0);
}

#[tokio::test]
async fn discovery_documents() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let (_, api) = c.get("/clusters/root/api").await;
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, v1) = c.get("/clusters/root/api/v1").await;
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "configmaps",
        "namespaces",
        "namespaces/status",
        "namespaces/finalize",
        "secrets",
        "serviceaccounts",
        "events",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let resp = c
        .request(reqwest::Method::GET, "/clusters/root/apis")
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let agg: Value = resp.json().await.unwrap();
    let groups: Vec<&str> = agg["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["metadata"]["name"].as_str().unwrap())
        .collect();
    for g in [
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "authorization.k8s.io",
        "authentication.k8s.io",
        "events.k8s.io",
    ] {
        assert!(groups.contains(&g), "{g} in {groups:?}");
    }
    let (code, metrics) = {
        let r = c
            .request(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(code, 200);
    // the whole shard's metrics are not served inside any workspace, root included
    assert_eq!(c.get("/clusters/root/metrics").await.0, 404);
    assert!(metrics.contains("apiserver_request_total{"), "{metrics}");
}

#[tokio::test]
async fn logical_clusters_are_isolated_and_wildcards_are_privileged() {
    let env = TestShard::builder().start().await;
    env.shard
        .api
        .ensure_logical_cluster("tenant-a")
        .await
        .unwrap();
    env.shard
        .api
        .ensure_logical_cluster("tenant-b")
        .await
        .unwrap();
    let c = env.admin();
    let path = |lc: &str| format!("/clusters/{lc}/api/v1/namespaces/default/configmaps");
    assert_eq!(
        c.post(&path("tenant-a"), cm("same", json!({}))).await.0,
        201
    );
    assert_eq!(
        c.post(&path("tenant-b"), cm("same", json!({}))).await.0,
        201
    );
    let (_, a) = c.get(&format!("{}/same", path("tenant-a"))).await;
    let (_, b) = c.get(&format!("{}/same", path("tenant-b"))).await;
    assert_ne!(a["metadata"]["uid"], b["metadata"]["uid"]);

    // the admin may list across logical clusters; a tenant may not
    let (code, all) = c.get("/clusters/*/api/v1/configmaps?labelSelector=").await;
    assert_eq!(code, 200);
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["metadata"]["name"] == "same")
            .count()
            >= 2
    );
    let alice = env.client(Some(&env.token("alice", &[])));
    assert_eq!(alice.get("/clusters/*/api/v1/configmaps").await.0, 403);

    // an unknown logical cluster looks exactly like one without access
    let (code1, e1) = alice.get(&path("tenant-a")).await;
    let (code2, e2) = alice.get(&path("does-not-exist")).await;
    assert_eq!((code1, code2), (403, 403));
    assert_eq!(e1["reason"], e2["reason"]);
}

#[tokio::test]
async fn restart_keeps_everything() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let (_, a) = c.post(CMS, cm("survivor", json!({}))).await;
    let rv: u64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let env = env.restart().await;
    let c = env.admin();
    let (code, again) = c.get(&format!("{CMS}/survivor")).await;
    assert_eq!(code, 200);
    assert_eq!(again["metadata"]["uid"], a["metadata"]["uid"]);
    // watches resume from resourceVersions issued before the restart
    let resp = c
        .request(
            reqwest::Method::GET,
            &format!("{CMS}?watch=true&resourceVersion={}", rv - 1),
        )
        .send()
        .await
        .unwrap();
    let evs = read_events(resp, 1).await;
    assert_eq!(evs[0]["object"]["metadata"]["name"], "survivor");
    let (_, b) = c.post(CMS, cm("after", json!({}))).await;
    let rv2: u64 = b["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv);
}

#[tokio::test]
async fn events_are_one_resource_in_two_versions() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let v1_path = "/clusters/root/apis/events.k8s.io/v1/namespaces/default/events";
    let core_path = "/clusters/root/api/v1/namespaces/default/events";
    let (code, created) = c
        .post(v1_path, json!({"metadata": {"name": "e1"}, "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "ctl", "reportingInstance": "ctl-1", "action": "Sync", "reason": "Synced", "regarding": {"kind": "ConfigMap", "name": "x", "namespace": "default"}, "note": "all good", "type": "Normal"}))
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["note"], "all good");
    // the same event through core/v1, fields converted
    let (code, core) = c.get(&format!("{core_path}/e1")).await;
    assert_eq!(code, 200);
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "all good");
    assert_eq!(core["involvedObject"]["name"], "x");
    assert_eq!(core["reportingComponent"], "ctl");
    // and the other way round, with lists and field selectors on each version's fields
    c.post(core_path, json!({"metadata": {"name": "e2"}, "involvedObject": {"kind": "Secret", "name": "s"}, "reason": "Made", "message": "core", "type": "Warning"})).await;
    let (_, list) = c
        .get(&format!("{v1_path}?fieldSelector=regarding.kind%3DSecret"))
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["note"], "core");
    let (_, list) = c
        .get(&format!(
            "{core_path}?fieldSelector=involvedObject.kind%3DConfigMap"
        ))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    // updates through events.k8s.io keep the stored form consistent
    let (code, patched) = c
        .patch(
            &format!("{v1_path}/e1"),
            "application/merge-patch+json",
            r#"{"note":"changed"}"#,
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["note"], "changed");
    assert_eq!(
        c.get(&format!("{core_path}/e1")).await.1["message"],
        "changed"
    );
}

/// Namespaces have no deletecollection, as in kube: discovery does not list it and the
/// request is 405, so `DELETE /api/v1/namespaces` cannot empty a workspace in one call.
#[tokio::test]
async fn namespaces_have_no_deletecollection() {
    let env = TestShard::builder().start().await;
    let admin = env.admin();
    let (code, list) = admin.get("/clusters/root/api/v1").await;
    assert_eq!(code, 200);
    let ns = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "namespaces")
        .unwrap();
    assert_eq!(
        ns["verbs"],
        json!(["create", "delete", "get", "list", "patch", "update", "watch"])
    );
    let (code, status) = admin.delete("/clusters/root/api/v1/namespaces").await;
    assert_eq!(code, 405, "{status}");
    assert_eq!(status["reason"], "MethodNotAllowed");
    assert_eq!(
        admin
            .get("/clusters/root/api/v1/namespaces/default")
            .await
            .0,
        200
    );
}
