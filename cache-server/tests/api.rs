//! The cache server's HTTP API with raw HTTPS requests: authentication, per-shard
//! authorization, Status errors, list and NDJSON watch, health and metrics.

use std::time::Duration;

use canopy_cache::wire::{EventType, Key, Op, Upsert};
use canopy_cache::{Credentials, Query};
use canopy_test_harness::TestCacheServer;
use futures::StreamExt;
use serde_json::{json, Value};

fn upsert(name: &str, rv: u64) -> Value {
    json!({"ops": [{"op": "upsert", "resource": "tenancy.kcp.io/workspacetypes", "cluster": "root", "name": name, "sourceResourceVersion": rv.to_string(), "object": {"metadata": {"name": name}}}]})
}

fn assert_status(code: u16, body: &Value, want: u16, reason: &str) {
    assert_eq!(code, want, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["code"], want);
    assert_eq!(body["reason"], reason, "{body}");
}

#[tokio::test]
async fn authentication_and_authorization() {
    let cache = TestCacheServer::start().await;
    let anonymous = cache.client(None);
    let alpha = cache.client(Some(&cache.shard_token("alpha")));
    let beta = cache.client(Some(&cache.shard_token("beta")));
    let reader = cache.client(Some(&cache.reader_token("front-proxy")));

    // health needs no credentials
    for p in ["/healthz", "/readyz", "/livez"] {
        let r = anonymous
            .request(reqwest::Method::GET, p)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{p}");
    }

    // no or a bad token: 401
    let (code, body) = anonymous.get("/v1/objects").await;
    assert_status(code, &body, 401, "Unauthorized");
    let (code, body) = anonymous
        .post("/v1/shards/alpha/objects", upsert("x", 1))
        .await;
    assert_status(code, &body, 401, "Unauthorized");
    let forged = cache.client(Some("not.a.token"));
    let (code, body) = forged.get("/v1/objects").await;
    assert_status(code, &body, 401, "Unauthorized");
    // a token signed by someone else (another cache server)
    let other = TestCacheServer::start().await;
    let foreign = cache.client(Some(&other.shard_token("alpha")));
    let (code, body) = foreign
        .post("/v1/shards/alpha/objects", upsert("x", 1))
        .await;
    assert_status(code, &body, 401, "Unauthorized");

    // a shard writes its own objects, not another's
    let (code, body) = alpha.post("/v1/shards/alpha/objects", upsert("x", 1)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["instance"], cache.server.instance());
    let (code, body) = beta.post("/v1/shards/alpha/objects", upsert("y", 1)).await;
    assert_status(code, &body, 403, "Forbidden");
    assert_eq!(
        body["message"],
        "shard \"beta\" may not write objects of shard \"alpha\""
    );
    let (code, body) = beta.put("/v1/shards/alpha/sync", json!({"keys": []})).await;
    assert_status(code, &body, 403, "Forbidden");
    assert_eq!(cache.server.store().len(), 1, "nothing was written");

    // readers read, and only read
    let (code, body) = reader
        .post("/v1/shards/alpha/objects", upsert("z", 1))
        .await;
    assert_status(code, &body, 403, "Forbidden");
    let (code, list) = reader.get("/v1/objects").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["shard"], "alpha");
    assert_eq!(list["items"][0]["name"], "x");
    let (code, _) = beta
        .get("/v1/objects?resource=tenancy.kcp.io%2Fworkspacetypes")
        .await;
    assert_eq!(code, 200);

    // metrics need credentials
    let r = anonymous
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reader
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("cache_server_objects 1"), "{text}");
    assert!(
        text.contains("cache_server_requests_total{verb=\"write\",code=\"403\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn errors_are_status_objects() {
    let cache = TestCacheServer::start().await;
    let alpha = cache.client(Some(&cache.shard_token("alpha")));
    let (code, body) = alpha.get("/v1/nothing-here").await;
    assert_status(code, &body, 404, "NotFound");
    let (code, body) = alpha.delete("/v1/objects").await;
    assert_status(code, &body, 405, "MethodNotAllowed");
    let r = alpha
        .request(reqwest::Method::POST, "/v1/shards/alpha/objects")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_status(400, &body, 400, "BadRequest");
    let (code, body) = alpha
        .post(
            "/v1/shards/alpha/objects",
            json!({"ops": [{"op": "upsert", "resource": "nogroup", "cluster": "root", "name": "x", "sourceResourceVersion": "1", "object": {}}]}),
        )
        .await;
    assert_status(code, &body, 422, "Invalid");
    let (code, body) = alpha.get("/v1/objects?watch=true&resourceVersion=1").await;
    assert_status(code, &body, 410, "Expired");
    let (code, body) = alpha.get("/v1/objects?watch=true").await;
    assert_status(code, &body, 400, "BadRequest");
}

#[tokio::test]
async fn list_watch_sync_and_resume() {
    let cache = TestCacheServer::start().await;
    let alpha = cache.cache_client(Credentials::Token(cache.shard_token("alpha")));
    let beta = cache.cache_client(Credentials::Token(cache.shard_token("beta")));
    let r = "tenancy.kcp.io/workspacetypes";
    let up = |name: &str, rv: u64| {
        Op::Upsert(Upsert {
            key: Key::new(r, "root", "", name),
            source_resource_version: rv,
            object: json!({"metadata": {"name": name}}),
        })
    };
    alpha
        .write("alpha", vec![up("a1", 1), up("a2", 2)])
        .await
        .unwrap();
    beta.write("beta", vec![up("b1", 1)]).await.unwrap();
    // another resource, not watched below
    beta.write(
        "beta",
        vec![Op::Upsert(Upsert {
            key: Key::new("core.kcp.io/shards", "root", "", "beta"),
            source_resource_version: 3,
            object: json!({"metadata": {"name": "beta"}}),
        })],
    )
    .await
    .unwrap();

    let q = Query::resources(&[r.to_string()]);
    let list = alpha.list(&q).await.unwrap();
    assert_eq!(list.items.len(), 3);
    let only_beta = alpha
        .list(&Query {
            shard: Some("beta".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_beta.items.len(), 2);

    let mut w = Box::pin(
        alpha
            .watch(&q, list.resource_version, Some(&list.instance))
            .await
            .unwrap(),
    );
    alpha
        .write(
            "alpha",
            vec![up("a1", 5), Op::Delete(Key::new(r, "root", "", "a2"))],
        )
        .await
        .unwrap();
    let synced = beta.sync("beta", vec![]).await.unwrap();
    assert_eq!(synced.deleted, 2);
    let mut got = Vec::new();
    while got.len() < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event")
            .unwrap()
            .unwrap();
        if ev.kind == EventType::Bookmark {
            continue;
        }
        got.push(ev);
    }
    let summary: Vec<(EventType, String)> = got
        .iter()
        .map(|e| {
            (
                e.kind,
                e.object
                    .as_ref()
                    .map(|o| format!("{}/{}", o.shard, o.key.name))
                    .or(e.shard.clone())
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (EventType::Modified, "alpha/a1".to_string()),
            (EventType::Deleted, "alpha/a2".to_string()),
            // beta's Shard is deleted too, but it is not a watched resource
            (EventType::Deleted, "beta/b1".to_string()),
            (EventType::Synced, "beta".to_string()),
        ]
    );
    // every event's resourceVersion increases
    assert!(got
        .windows(2)
        .all(|p| p[0].resource_version < p[1].resource_version));
    let status = alpha.shard_status("beta").await.unwrap();
    assert!(status.synced);
    assert_eq!(status.objects, 0);

    // resuming from the middle replays exactly what followed
    let mid = got[1].resource_version;
    let mut w2 = Box::pin(alpha.watch(&q, mid, None).await.unwrap());
    let first = tokio::time::timeout(Duration::from_secs(10), w2.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.resource_version, got[2].resource_version);

    // an idle watch gets bookmarks at the current resourceVersion
    let now = alpha.list(&q).await.unwrap().resource_version;
    let mut w3 = Box::pin(alpha.watch(&q, now, None).await.unwrap());
    let bm = tokio::time::timeout(Duration::from_secs(5), w3.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(bm.kind, EventType::Bookmark);
    assert_eq!(bm.resource_version, now);

    // a stopped server ends the watch; the restarted one answers 410 to the old rv
    let cache = cache.restart().await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match w3.next().await {
                Some(Ok(ev)) if ev.kind == EventType::Bookmark => continue,
                other => return other.map(|r| r.is_ok()),
            }
        }
    })
    .await
    .expect("the watch ends when the server stops");
    assert_ne!(end, Some(true));
    let client = cache.cache_client(Credentials::Token(cache.shard_token("alpha")));
    let mut err = None;
    for _ in 0..50 {
        match client.watch(&q, now, None).await {
            Err(e) => {
                err = Some(e);
                if err.as_ref().unwrap().is_gone() {
                    break;
                }
            }
            Ok(_) => panic!("an old resourceVersion must be gone"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(err.unwrap().is_gone());
    let fresh = client.list(&q).await.unwrap();
    assert!(fresh.resource_version > now);
    assert_ne!(fresh.instance, list.instance);
    // a current resourceVersion, but expected from the old instance: gone as well
    let err = client
        .watch(&q, fresh.resource_version, Some(&list.instance))
        .await
        .err()
        .expect("another instance");
    assert!(err.is_gone(), "{err}");
    assert!(client
        .watch(&q, fresh.resource_version, Some(&fresh.instance))
        .await
        .is_ok());
}
