//! The generic API server on its own: no plug-ins (no workspaces, shards or tokens), an
//! in-memory store, requests handed to the pipeline in-process. These run in
//! milliseconds and show the generic crate stands without the tenancy layer.

use std::time::Duration;

use bytes::Bytes;
use canopy_apiserver::{bootstrap, plugin::Plugins, rest, ApiServer, Config, Limits, VersionInfo};
use canopy_auth::TokenIssuer;
use canopy_storage::{MemoryBackend, Store, StoreOptions};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

struct Server {
    api: ApiServer,
    admin: String,
    issuer: TokenIssuer,
    _controllers: canopy_apiserver::controllers::Controllers,
    _keys: tempfile::TempDir,
}

fn config() -> Config {
    Config {
        external_url: "https://127.0.0.1:6443".into(),
        ca_cert_pem: String::new(),
        version: VersionInfo::default(),
        limits: Limits::default(),
        continue_keys: None,
    }
}

impl Server {
    async fn start(backend: MemoryBackend, clusters: &[&str]) -> Server {
        Server::start_with(backend, clusters, Plugins::default()).await
    }

    async fn start_with(backend: MemoryBackend, clusters: &[&str], plugins: Plugins) -> Server {
        let store = Store::open_backend(backend, StoreOptions::default())
            .await
            .expect("open the in-memory store");
        let keys = tempfile::tempdir().expect("temp dir");
        let issuer = TokenIssuer::load_or_create(keys.path()).expect("signing key");
        let api = ApiServer::new(store, issuer.verifier(), config(), plugins);
        for cluster in clusters {
            // what a tenancy plug-in would write for a new logical cluster
            let mut items = bootstrap::rbac_objects(&api).expect("rbac objects");
            items.extend(bootstrap::namespace_objects(&api).expect("namespaces"));
            rest::create_system_batch(&api, cluster, items)
                .await
                .expect("bootstrap the logical cluster");
        }
        let admin = issuer
            .issue(
                "admin",
                &["system:masters".into()],
                Duration::from_secs(600),
            )
            .expect("token");
        Server {
            _controllers: api.start_controllers(),
            api,
            admin,
            issuer,
            _keys: keys,
        }
    }

    fn token(&self, user: &str) -> String {
        self.issuer
            .issue(user, &[], Duration::from_secs(600))
            .expect("token")
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&v).expect("json"))
            }
            None => Bytes::new(),
        };
        let resp = canopy_apiserver::handle(
            self.api.clone(),
            req.body(Full::new(body)).expect("request"),
        )
        .await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(&self.admin.clone(), method, path, body).await
    }
}

fn configmap(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": data}})
}

const CMS: &str = "/clusters/tenant-a/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn crud_with_optimistic_concurrency_on_the_memory_backend() {
    let s = Server::start(MemoryBackend::default(), &["tenant-a"]).await;
    let (code, created) = s
        .admin(Method::POST, CMS, Some(configmap("one", "1")))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    assert!(created["metadata"]["uid"].is_string());

    let (code, again) = s
        .admin(Method::POST, CMS, Some(configmap("one", "1")))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(again["reason"], "AlreadyExists");

    let mut stale = created.clone();
    stale["data"]["k"] = json!("2");
    let (code, updated) = s
        .admin(Method::PUT, &format!("{CMS}/one"), Some(stale.clone()))
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_ne!(
        updated["metadata"]["resourceVersion"].as_str(),
        Some(rv.as_str())
    );
    // the same resourceVersion again is now stale
    let (code, conflict) = s
        .admin(Method::PUT, &format!("{CMS}/one"), Some(stale))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(conflict["reason"], "Conflict");

    let (code, list) = s.admin(Method::GET, CMS, None).await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    // every namespace holds its kube-root-ca.crt, as in kube
    assert_eq!(names, ["kube-root-ca.crt", "one"]);

    let (code, _) = s.admin(Method::DELETE, &format!("{CMS}/one"), None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, gone) = s.admin(Method::GET, &format!("{CMS}/one"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(gone["reason"], "NotFound");
}

#[tokio::test]
async fn logical_clusters_are_separate_and_rbac_applies_inside_each() {
    let s = Server::start(MemoryBackend::default(), &["tenant-a", "tenant-b"]).await;
    let (code, _) = s
        .admin(Method::POST, CMS, Some(configmap("mine", "a")))
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, list) = s
        .admin(
            Method::GET,
            "/clusters/tenant-b/api/v1/namespaces/default/configmaps",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(list["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|i| i["metadata"]["name"] != "mine"));

    // a user with no binding gets 403, and learns nothing of the object
    let mallory = s.token("mallory");
    let (code, denied) = s
        .call(&mallory, Method::GET, &format!("{CMS}/mine"), None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(denied["reason"], "Forbidden");
    // a logical cluster that does not exist looks the same as one the caller may not see
    let (code, _) = s
        .call(
            &mallory,
            Method::GET,
            "/clusters/nowhere/api/v1/namespaces/default/configmaps/mine",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // and unauthenticated requests are 401
    let (code, _) = s.call("not-a-token", Method::GET, CMS, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_plug_ins_discovery_serves_only_kubernetes_groups() {
    let s = Server::start(MemoryBackend::default(), &["tenant-a"]).await;
    let (code, apis) = s.admin(Method::GET, "/clusters/tenant-a/apis", None).await;
    assert_eq!(code, StatusCode::OK);
    let groups: Vec<&str> = apis["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(groups.contains(&"rbac.authorization.k8s.io"), "{groups:?}");
    assert!(groups.contains(&"apiextensions.k8s.io"), "{groups:?}");
    assert!(
        !groups.iter().any(|g| g.contains("kcp.io")),
        "a plug-in group leaked in: {groups:?}"
    );
}

#[tokio::test]
async fn a_custom_resource_definition_serves_its_kind() {
    let s = Server::start(MemoryBackend::default(), &["tenant-a"]).await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer", "maximum": 10}}}}}}}]}
    });
    let (code, body) = s
        .admin(
            Method::POST,
            "/clusters/tenant-a/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some(crd),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let widgets = "/clusters/tenant-a/apis/example.com/v1/namespaces/default/widgets";
    // served once the crd controller has set it Established
    let mut last = (StatusCode::NOT_FOUND, Value::Null);
    for _ in 0..100 {
        last = s
            .admin(Method::POST, widgets, Some(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}})))
            .await;
        if last.0 != StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last.0, StatusCode::CREATED, "{}", last.1);
    let (code, invalid) = s
        .admin(Method::POST, widgets, Some(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "big"}, "spec": {"size": 11}})))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        invalid["details"]["causes"][0]["field"], "spec.size",
        "{invalid}"
    );
}

#[tokio::test]
async fn a_restart_on_the_same_backend_keeps_objects_and_resource_versions() {
    let backend = MemoryBackend::default();
    let s = Server::start(backend.clone(), &["tenant-a"]).await;
    let (_, created) = s
        .admin(Method::POST, CMS, Some(configmap("kept", "1")))
        .await;
    s.api.store().close().await;
    drop(s);

    let s = Server::start(backend, &[]).await;
    let (code, got) = s.admin(Method::GET, &format!("{CMS}/kept"), None).await;
    assert_eq!(code, StatusCode::OK, "{got}");
    assert_eq!(
        got["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
}

#[tokio::test]
async fn a_watch_from_a_resource_version_replays_then_follows() {
    let s = Server::start(MemoryBackend::default(), &["tenant-a"]).await;
    let (_, first) = s
        .admin(Method::POST, CMS, Some(configmap("first", "1")))
        .await;
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let (_, _) = s
        .admin(Method::POST, CMS, Some(configmap("second", "2")))
        .await;

    let req = Request::builder()
        .uri(format!("{CMS}?watch=true&resourceVersion={rv}"))
        .header("authorization", format!("Bearer {}", s.admin))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = canopy_apiserver::handle(s.api.clone(), req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let api = s.api.clone();
    let admin = s.admin.clone();
    // a write after the watch started arrives after the replay
    tokio::spawn(async move {
        let req = Request::builder()
            .method(Method::POST)
            .uri(CMS)
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                serde_json::to_vec(&configmap("third", "3")).expect("json"),
            )))
            .expect("request");
        canopy_apiserver::handle(api, req).await
    });
    let mut seen = Vec::new();
    let mut buf = Vec::new();
    while seen.len() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10 s")
            .expect("the watch stays open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let ev: Value = serde_json::from_slice(&line).expect("one JSON event per line");
            seen.push((
                ev["type"].as_str().unwrap_or_default().to_string(),
                ev["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    assert_eq!(
        seen,
        [
            ("ADDED".to_string(), "second".to_string()),
            ("ADDED".to_string(), "third".to_string())
        ]
    );
}

/// A plug-in's CRD-like definition ([`canopy_apiserver::plugin::ApiSource`]) is served
/// in the logical clusters it names, validated by its schema, with its objects stored
/// apart from a CRD's of the same resource.
#[tokio::test]
async fn a_plugin_source_serves_a_resource_per_logical_cluster() {
    use canopy_apiserver::plugin::{ApiSource, SourcedCrd};
    struct OnlyTenantA;
    impl ApiSource for OnlyTenantA {
        fn fingerprint(&self, _api: &ApiServer, cluster: &str) -> u64 {
            u64::from(cluster == "tenant-a")
        }
        fn crds(&self, _api: &ApiServer, cluster: &str) -> Vec<SourcedCrd> {
            if cluster != "tenant-a" {
                return Vec::new();
            }
            vec![SourcedCrd {
                crd: std::sync::Arc::new(json!({
                    "metadata": {"name": "widgets.example.com", "uid": "source-1", "generation": 1},
                    "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "kind": "Widget"},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer", "maximum": 5}}}}}}}]}
                })),
                storage_suffix: "id1".into(),
            }]
        }
    }
    let s = Server::start_with(
        MemoryBackend::default(),
        &["tenant-a", "tenant-b"],
        Plugins::default().with_api_source(OnlyTenantA),
    )
    .await;
    let widgets = |c: &str| format!("/clusters/{c}/apis/example.com/v1/namespaces/default/widgets");
    let w = |size: u32| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": format!("w{size}")}, "spec": {"size": size}});
    let (code, body) = s
        .admin(Method::POST, &widgets("tenant-a"), Some(w(3)))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = s
        .admin(Method::POST, &widgets("tenant-a"), Some(w(6)))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let stored = |resource: &str| {
        s.api
            .store()
            .get(&canopy_storage::ObjectKey::new(
                resource, "tenant-a", "default", "w3",
            ))
            .is_some()
    };
    assert!(stored("example.com/widgets:id1"));
    assert!(!stored("example.com/widgets"));
    let (code, d) = s
        .admin(Method::GET, "/clusters/tenant-a/apis/example.com/v1", None)
        .await;
    assert_eq!(code, StatusCode::OK, "{d}");
    assert_eq!(d["resources"][0]["name"], "widgets");
    // nowhere else
    let (code, _) = s
        .admin(Method::POST, &widgets("tenant-b"), Some(w(3)))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
