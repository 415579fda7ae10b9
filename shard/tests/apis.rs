//! API sharing, the publishing side (`apis.kcp.io`): APIResourceSchemas, APIExports
//! served as v1alpha1 and v1alpha2, their identities and endpoint slices, applied by a
//! workspace admin through the API and kubectl.

use std::time::Duration;

use base64::Engine;
use canopy_test_harness::{Client, TestShard};
use serde_json::{json, Value};

const APIS: &str = "apis/apis.kcp.io";

const SCHEMA: &str = r#"
apiVersion: apis.kcp.io/v1alpha1
kind: APIResourceSchema
metadata:
  name: today.cowboys.wildwest.dev
spec:
  group: wildwest.dev
  names:
    kind: Cowboy
    listKind: CowboyList
    plural: cowboys
    singular: cowboy
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      type: object
      properties:
        spec:
          type: object
          properties:
            intent:
              type: string
    subresources:
      status: {}
"#;

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// As the admin, creates workspace `name` under root and makes `user` its admin
/// (cluster-admin); returns `user`'s client.
async fn workspace_for(env: &TestShard, name: &str, user: &str) -> Client {
    let c = env.admin();
    let (code, b) = c
        .post(
            "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces",
            json!({"metadata": {"name": name}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    c.wait_workspace_ready("root", name).await;
    let (code, b) = c
        .post(
            &format!("/clusters/root:{name}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
            json!({"metadata": {"name": format!("{user}-admin")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    env.client(Some(&env.token(user, &["system:authenticated"])))
}

/// Waits (up to 10 s) until `f` holds of the object at `path`; returns it.
async fn wait_for(c: &Client, path: &str, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (code, v) = c.get(path).await;
        if code == 200 && f(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never reached the expected state; last seen: {last}");
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test]
async fn publish_schemas_and_exports_with_identities() {
    let env = TestShard::builder().start().await;
    let alice = workspace_for(&env, "provider", "alice").await;
    let ws = "/clusters/root:provider";

    // discovery: both versions of the group, v1alpha2 preferred
    let (code, group) = alice.get(&format!("{ws}/apis/apis.kcp.io")).await;
    assert_eq!(code, 200, "{group}");
    assert_eq!(group["preferredVersion"]["version"], "v1alpha2");
    let (_, v1) = alice.get(&format!("{ws}/{APIS}/v1alpha1")).await;
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for r in [
        "apiresourceschemas",
        "apiexports",
        "apiexportendpointslices",
    ] {
        assert!(names.contains(&r), "{r} in {names:?}");
    }

    // a schema; its spec never changes
    let schemas = format!("{ws}/{APIS}/v1alpha1/apiresourceschemas");
    let (code, s) = alice.post(&schemas, yaml(SCHEMA)).await;
    assert_eq!(code, 201, "{s}");
    let mut changed = s.clone();
    changed["spec"]["scope"] = json!("Cluster");
    let (code, b) = alice
        .put(&format!("{schemas}/today.cowboys.wildwest.dev"), changed)
        .await;
    assert_eq!(code, 422, "{b}");
    assert_eq!(b["reason"], "Invalid");
    assert_eq!(b["details"]["causes"][0]["field"], "spec");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("field is immutable"),
        "{b}"
    );
    // metadata may change
    let mut labelled = s.clone();
    labelled["metadata"]["labels"] = json!({"a": "b"});
    assert_eq!(
        alice
            .put(&format!("{schemas}/today.cowboys.wildwest.dev"), labelled)
            .await
            .0,
        200
    );

    // bad names and groups
    for (name, group) in [
        ("cowboys.wildwest.dev", "wildwest.dev"),
        ("Today.cowboys.wildwest.dev", "wildwest.dev"),
        ("today-.cowboys.wildwest.dev", "wildwest.dev"),
        ("today.horses.wildwest.dev", "wildwest.dev"),
        ("today.cowboys.core", "core"),
    ] {
        let mut bad = yaml(SCHEMA);
        bad["metadata"]["name"] = json!(name);
        bad["spec"]["group"] = json!(group);
        let (code, b) = alice.post(&schemas, bad).await;
        assert_eq!(code, 422, "{name}: {b}");
    }
    // two storage versions; several versions without conversion
    let mut bad = yaml(SCHEMA);
    bad["metadata"]["name"] = json!("two.cowboys.wildwest.dev");
    let v = bad["spec"]["versions"][0].clone();
    let mut v2 = v.clone();
    v2["name"] = json!("v1");
    bad["spec"]["versions"] = json!([v, v2]);
    let (code, b) = alice.post(&schemas, bad).await;
    assert_eq!(code, 422, "{b}");
    let fields: Vec<&str> = b["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"spec.versions"), "{b}");
    assert!(fields.contains(&"spec.conversion"), "{b}");

    // an export, written as v1alpha1 with a status that is not the client's to set
    let exports_v1 = format!("{ws}/{APIS}/v1alpha1/apiexports");
    let exports_v2 = format!("{ws}/{APIS}/v1alpha2/apiexports");
    let (code, e) = alice
        .post(
            &exports_v1,
            json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport",
                "metadata": {"name": "cowboys"},
                "spec": {"latestResourceSchemas": ["today.cowboys.wildwest.dev"],
                    "permissionClaims": [{"group": "", "resource": "configmaps", "all": true}]},
                "status": {"identityHash": "0000"}}),
        )
        .await;
    assert_eq!(code, 201, "{e}");
    assert_eq!(e["apiVersion"], "apis.kcp.io/v1alpha1");
    assert_ne!(e["status"]["identityHash"], "0000", "{e}");

    // the identity secret and hash
    let stored = wait_for(&alice, &format!("{exports_v2}/cowboys"), |o| {
        o["status"]["identityHash"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    })
    .await;
    let hash = stored["status"]["identityHash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hash.len(), 64);
    let (code, secret) = alice
        .get(&format!(
            "{ws}/api/v1/namespaces/kcp-system/secrets/cowboys"
        ))
        .await;
    assert_eq!(code, 200, "{secret}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["key"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap()
            .len(),
        32,
        "256 random bits, in base64"
    );
    assert_eq!(sha256_hex(&key), hash);
    assert_eq!(
        condition(&stored, "IdentityValid").unwrap()["status"],
        "True"
    );

    // both versions, each in its own shape
    assert_eq!(stored["apiVersion"], "apis.kcp.io/v1alpha2");
    assert_eq!(
        stored["spec"]["resources"],
        json!([{"name": "cowboys", "group": "wildwest.dev", "schema": "today.cowboys.wildwest.dev", "storage": {"crd": {}}}])
    );
    assert_eq!(
        stored["spec"]["permissionClaims"],
        json!([{"group": "", "resource": "configmaps", "verbs": ["*"]}])
    );
    let (code, as_v1) = alice.get(&format!("{exports_v1}/cowboys")).await;
    assert_eq!(code, 200, "{as_v1}");
    assert_eq!(as_v1["apiVersion"], "apis.kcp.io/v1alpha1");
    assert_eq!(
        as_v1["spec"]["latestResourceSchemas"],
        json!(["today.cowboys.wildwest.dev"])
    );
    assert_eq!(
        as_v1["spec"]["permissionClaims"],
        json!([{"group": "", "resource": "configmaps", "all": true}])
    );
    assert_eq!(as_v1["status"]["identityHash"], hash);
    assert!(as_v1["spec"].get("resources").is_none());
    // a v1alpha1 round trip changes nothing stored
    let (code, put) = alice
        .put(&format!("{exports_v1}/cowboys"), as_v1.clone())
        .await;
    assert_eq!(code, 200, "{put}");
    assert_eq!(
        put["metadata"]["resourceVersion"],
        as_v1["metadata"]["resourceVersion"]
    );
    // nor does a v1alpha2 one
    let (code, put) = alice
        .put(&format!("{exports_v2}/cowboys"), stored.clone())
        .await;
    assert_eq!(code, 200, "{put}");
    assert_eq!(
        put["metadata"]["resourceVersion"],
        stored["metadata"]["resourceVersion"]
    );
    // a list as v1alpha1 converts every item
    let (_, list) = alice.get(&exports_v1).await;
    assert_eq!(
        list["items"][0]["spec"]["latestResourceSchemas"],
        json!(["today.cowboys.wildwest.dev"])
    );

    // the identity hash is the system's, through the main resource and status alike
    let mut forged = stored.clone();
    forged["status"]["identityHash"] = json!("f".repeat(64));
    let (code, b) = alice
        .put(&format!("{exports_v2}/cowboys/status"), forged.clone())
        .await;
    assert_eq!(code, 422, "{b}");
    assert_eq!(b["details"]["causes"][0]["field"], "status.identityHash");
    let (code, kept) = alice.put(&format!("{exports_v2}/cowboys"), forged).await;
    assert_eq!(code, 200, "{kept}");
    assert_eq!(kept["status"]["identityHash"], hash);

    // the endpoint slice
    let slice = wait_for(
        &alice,
        &format!("{ws}/{APIS}/v1alpha1/apiexportendpointslices/cowboys"),
        |_| true,
    )
    .await;
    assert_eq!(
        slice["spec"]["export"],
        json!({"path": "root:provider", "name": "cowboys"})
    );

    // no slice when asked not to
    let (code, b) = alice
        .post(
            &exports_v2,
            json!({"metadata": {"name": "quiet", "annotations": {"apiexports.apis.kcp.io/skip-endpointslice": "true"}},
                "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    wait_for(&alice, &format!("{exports_v2}/quiet"), |o| {
        o["status"]["identityHash"].as_str().is_some()
    })
    .await;
    assert_eq!(
        alice
            .get(&format!(
                "{ws}/{APIS}/v1alpha1/apiexportendpointslices/quiet"
            ))
            .await
            .0,
        404
    );

    // an identity of one's own: invalid until its secret exists
    let (code, b) = alice
        .post(
            &exports_v2,
            json!({"metadata": {"name": "mine"},
                "spec": {"identity": {"secretRef": {"namespace": "default", "name": "my-identity"}}}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let pending = wait_for(&alice, &format!("{exports_v2}/mine"), |o| {
        condition(o, "IdentityValid").is_some()
    })
    .await;
    let c = condition(&pending, "IdentityValid").unwrap();
    assert_eq!(c["status"], "False", "{pending}");
    assert_eq!(c["reason"], "IdentityVerificationFailed");
    assert!(pending["status"].get("identityHash").is_none(), "{pending}");
    let (code, b) = alice
        .post(
            &format!("{ws}/api/v1/namespaces/default/secrets"),
            json!({"metadata": {"name": "my-identity"}, "stringData": {"key": "my secret identity"}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let valid = wait_for(&alice, &format!("{exports_v2}/mine"), |o| {
        condition(o, "IdentityValid").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(
        valid["status"]["identityHash"],
        sha256_hex(b"my secret identity")
    );

    // list limits
    let many: Vec<String> = (0..101)
        .map(|i| format!("v{i}.cowboys.wildwest.dev"))
        .collect();
    let (code, b) = alice
        .post(
            &exports_v1,
            json!({"metadata": {"name": "big"}, "spec": {"latestResourceSchemas": many}}),
        )
        .await;
    assert_eq!(code, 422, "{b}");
    let (code, b) = alice
        .post(
            &exports_v1,
            json!({"metadata": {"name": "bad"}, "spec": {"latestResourceSchemas": ["cowboys"]}}),
        )
        .await;
    assert_eq!(code, 400, "{b}");
}

/// A tenant cannot read another workspace's identity, nor take it for an export of its
/// own: a `secretRef` only ever names a secret of the export's own workspace.
#[tokio::test]
async fn an_identity_stays_in_its_workspace() {
    let env = TestShard::builder().start().await;
    let alice = workspace_for(&env, "provider", "alice").await;
    let bob = workspace_for(&env, "tenant", "bob").await;
    let (code, b) = alice
        .post(
            "/clusters/root:provider/apis/apis.kcp.io/v1alpha2/apiexports",
            json!({"metadata": {"name": "cowboys"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    wait_for(
        &alice,
        "/clusters/root:provider/apis/apis.kcp.io/v1alpha2/apiexports/cowboys",
        |o| o["status"]["identityHash"].as_str().is_some(),
    )
    .await;
    let (code, _) = bob
        .get("/clusters/root:provider/api/v1/namespaces/kcp-system/secrets/cowboys")
        .await;
    assert_eq!(code, 403);
    let (code, _) = bob
        .get("/clusters/root:provider/apis/apis.kcp.io/v1alpha2/apiexports/cowboys")
        .await;
    assert_eq!(code, 403);
    // bob's export naming alice's secret finds no such secret in bob's workspace
    let (code, b) = bob
        .post(
            "/clusters/root:tenant/apis/apis.kcp.io/v1alpha2/apiexports",
            json!({"metadata": {"name": "stolen"},
                "spec": {"identity": {"secretRef": {"namespace": "kcp-system", "name": "cowboys"}}}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let stolen = wait_for(
        &bob,
        "/clusters/root:tenant/apis/apis.kcp.io/v1alpha2/apiexports/stolen",
        |o| condition(o, "IdentityValid").is_some(),
    )
    .await;
    assert_eq!(
        condition(&stolen, "IdentityValid").unwrap()["status"],
        "False"
    );
    assert!(stolen["status"].get("identityHash").is_none(), "{stolen}");
}

/// kcp's own YAML, applied with kubectl by the workspace's admin.
#[tokio::test]
async fn kubectl_applies_kcp_yaml() {
    let env = TestShard::builder().start().await;
    workspace_for(&env, "provider", "alice").await;
    let token = env.token("alice", &["system:authenticated"]);
    let kc = env.kubeconfig_for("alice", "root:provider", &token);
    let k = env.kubectl().kubeconfig(&kc);
    let export = r#"
apiVersion: apis.kcp.io/v1alpha2
kind: APIExport
metadata:
  name: cowboys
spec:
  resources:
  - group: wildwest.dev
    name: cowboys
    schema: today.cowboys.wildwest.dev
    storage:
      crd: {}
"#;
    let all = format!("{SCHEMA}---{export}");
    let out = k.apply_stdin(&["apply", "-f", "-"], &all).await;
    assert!(
        out.contains("apiresourceschema.apis.kcp.io/today.cowboys.wildwest.dev created"),
        "{out}"
    );
    assert!(
        out.contains("apiexport.apis.kcp.io/cowboys created"),
        "{out}"
    );
    let out = k.apply_stdin(&["apply", "-f", "-"], &all).await;
    assert!(
        out.contains("apiexport.apis.kcp.io/cowboys unchanged"),
        "{out}"
    );
    let names = k
        .ok(&[
            "get",
            "apiexports",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .await;
    assert_eq!(names, "cowboys");
    let v1 = k
        .ok(&[
            "get",
            "apiexports.v1alpha1.apis.kcp.io",
            "cowboys",
            "-o",
            "jsonpath={.spec.latestResourceSchemas}",
        ])
        .await;
    assert!(v1.contains("today.cowboys.wildwest.dev"), "{v1}");
    // changing a published schema is refused
    let changed = SCHEMA.replace("scope: Namespaced", "scope: Cluster");
    let o = k
        .run_with_stdin(&["apply", "-f", "-"], Some(&changed))
        .await;
    assert!(!o.success, "{}", o.stdout);
    assert!(o.stderr.contains("field is immutable"), "{}", o.stderr);
}

const EXPORT: &str = r#"
apiVersion: apis.kcp.io/v1alpha2
kind: APIExport
metadata:
  name: cowboys
spec:
  resources:
  - group: wildwest.dev
    name: cowboys
    schema: today.cowboys.wildwest.dev
    storage:
      crd: {}
"#;

/// Publishes the cowboys schema and exports `names` of it in `ws` (as its admin `c`);
/// waits for their identities.
async fn publish(c: &Client, ws: &str, names: &[&str]) {
    let (code, b) = c
        .post(
            &format!("{ws}/{APIS}/v1alpha1/apiresourceschemas"),
            yaml(SCHEMA),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    for name in names {
        let mut e = yaml(EXPORT);
        e["metadata"]["name"] = json!(name);
        let (code, b) = c.post(&format!("{ws}/{APIS}/v1alpha2/apiexports"), e).await;
        assert_eq!(code, 201, "{b}");
        wait_for(c, &format!("{ws}/{APIS}/v1alpha2/apiexports/{name}"), |e| {
            e["status"]["identityHash"].is_string()
        })
        .await;
    }
}

/// As the provider's admin `c`, lets `user` bind exports `names` of `ws`.
async fn grant_bind(c: &Client, ws: &str, user: &str, names: &[&str]) {
    let (code, b) = c
        .post(
            &format!("{ws}/apis/rbac.authorization.k8s.io/v1/clusterroles"),
            json!({"metadata": {"name": format!("bind-{user}")},
                "rules": [{"apiGroups": ["apis.kcp.io"], "resources": ["apiexports"],
                    "resourceNames": names, "verbs": ["bind"]}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    let (code, b) = c
        .post(
            &format!("{ws}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
            json!({"metadata": {"name": format!("bind-{user}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("bind-{user}")},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
}

fn binding(name: &str, path: &str, export: &str) -> Value {
    json!({"apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
        "metadata": {"name": name},
        "spec": {"reference": {"export": {"path": path, "name": export}}}})
}

fn bound(b: &Value) -> bool {
    b["status"]["phase"] == "Bound"
}

/// kcp's bind flow on one shard: the bind check, Bound with kcp's status, the bound
/// resource served as a CRD would be (discovery, validation, kubectl get/apply/explain),
/// conflicts first-come-first-served and re-checked, unbind, and tenant isolation.
#[tokio::test]
async fn bind_an_export_in_another_workspace() {
    let env = TestShard::builder().start().await;
    let alice = workspace_for(&env, "provider", "alice").await;
    let bob = workspace_for(&env, "consumer", "bob").await;
    let carol = workspace_for(&env, "other", "carol").await;
    let provider = "/clusters/root:provider";
    let consumer = "/clusters/root:consumer";
    let other = "/clusters/root:other";
    publish(&alice, provider, &["cowboys", "cowboys2"]).await;
    let (_, export) = alice
        .get(&format!("{provider}/{APIS}/v1alpha2/apiexports/cowboys"))
        .await;
    let hash = export["status"]["identityHash"]
        .as_str()
        .unwrap()
        .to_string();
    let bindings = format!("{consumer}/{APIS}/v1alpha2/apibindings");

    // without `bind` on the export, and for an export that does not exist: kcp's 403
    for (export, shown) in [
        ("cowboys", "root:provider:cowboys"),
        ("nothere", "root:provider:nothere"),
    ] {
        let (code, b) = bob
            .post(&bindings, binding("cowboys", "root:provider", export))
            .await;
        assert_eq!(code, 403, "{b}");
        assert_eq!(
            b["message"],
            format!("apibindings.apis.kcp.io \"cowboys\" is forbidden: unable to create APIBinding: no permission to bind to export {shown}"),
        );
    }
    grant_bind(&alice, provider, "bob", &["cowboys", "cowboys2"]).await;
    let (code, b) = bob
        .post(&bindings, binding("cowboys", "root:provider", "nothere"))
        .await;
    assert_eq!(code, 403, "{b}");

    // with it: Binding → Bound
    let (code, b) = bob
        .post(&bindings, binding("cowboys", "root:provider", "cowboys"))
        .await;
    assert_eq!(code, 201, "{b}");
    assert!(b["metadata"]["finalizers"]
        .as_array()
        .unwrap()
        .contains(&json!("apis.kcp.io/apibinding-finalizer")));
    assert!(
        b["metadata"]["labels"]["internal.apis.kcp.io/export"].is_string(),
        "{b}"
    );
    let b = wait_for(&bob, &format!("{bindings}/cowboys"), bound).await;
    for c in [
        "APIExportValid",
        "InitialBindingCompleted",
        "BindingUpToDate",
        "Ready",
    ] {
        assert_eq!(condition(&b, c).unwrap()["status"], "True", "{c}: {b}");
    }
    let br = &b["status"]["boundResources"][0];
    assert_eq!(br["group"], "wildwest.dev");
    assert_eq!(br["resource"], "cowboys");
    assert_eq!(br["schema"]["name"], "today.cowboys.wildwest.dev");
    assert_eq!(br["schema"]["identityHash"], hash);
    assert_eq!(br["storageVersions"], json!(["v1alpha1"]));
    assert!(b["status"]["apiExportClusterName"].is_string(), "{b}");
    // the v1alpha1 view of it
    let (code, v1) = bob
        .get(&format!("{consumer}/{APIS}/v1alpha1/apibindings/cowboys"))
        .await;
    assert_eq!(code, 200, "{v1}");
    assert_eq!(v1["apiVersion"], "apis.kcp.io/v1alpha1");
    // what it serves is the system's to say
    let mut forged = b.clone();
    forged["status"]["boundResources"][0]["schema"]["identityHash"] = json!("0".repeat(64));
    let (code, e) = bob.put(&format!("{bindings}/cowboys/status"), forged).await;
    assert_eq!(code, 403, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .ends_with("status.boundResources is set by the system only"),
        "{e}"
    );
    // the reference never changes
    let mut moved = b.clone();
    moved["spec"]["reference"]["export"]["name"] = json!("cowboys2");
    let (code, e) = bob.put(&format!("{bindings}/cowboys"), moved).await;
    assert_eq!(code, 422, "{e}");

    // served: discovery, create, validation by the schema
    let (code, d) = bob
        .get(&format!("{consumer}/apis/wildwest.dev/v1alpha1"))
        .await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["resources"][0]["name"], "cowboys", "{d}");
    let cowboys = format!("{consumer}/apis/wildwest.dev/v1alpha1/namespaces/default/cowboys");
    let (code, c) = bob
        .post(
            &cowboys,
            json!({"apiVersion": "wildwest.dev/v1alpha1", "kind": "Cowboy",
                "metadata": {"name": "woody"}, "spec": {"intent": "ride"}}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let (code, c) = bob
        .post(
            &cowboys,
            json!({"apiVersion": "wildwest.dev/v1alpha1", "kind": "Cowboy",
                "metadata": {"name": "bad"}, "spec": {"intent": 7}}),
        )
        .await;
    assert_eq!(code, 422, "{c}");

    // kubectl: apply, get, explain
    let token = env.token("bob", &["system:authenticated"]);
    let kc = env.kubeconfig_for("bob", "root:consumer", &token);
    let k = env.kubectl().kubeconfig(&kc);
    let out = k
        .apply_stdin(
            &["apply", "-f", "-"],
            "apiVersion: wildwest.dev/v1alpha1\nkind: Cowboy\nmetadata:\n  name: buzz\n  namespace: default\nspec:\n  intent: fly\n",
        )
        .await;
    assert!(out.contains("cowboy.wildwest.dev/buzz created"), "{out}");
    let names = k
        .ok(&["get", "cowboys", "-o", "jsonpath={.items[*].metadata.name}"])
        .await;
    assert_eq!(names, "buzz woody");
    let out = k
        .apply_stdin(
            &["apply", "--server-side", "-f", "-"],
            "apiVersion: wildwest.dev/v1alpha1\nkind: Cowboy\nmetadata:\n  name: rex\n  namespace: default\nspec:\n  intent: roar\n",
        )
        .await;
    assert!(
        out.contains("cowboy.wildwest.dev/rex serverside-applied"),
        "{out}"
    );
    let (_, rex) = bob.get(&format!("{cowboys}/rex")).await;
    assert_eq!(
        rex["metadata"]["managedFields"][0]["manager"], "kubectl",
        "{rex}"
    );
    let explained = k.ok(&["explain", "cowboys.spec"]).await;
    assert!(explained.contains("intent"), "{explained}");

    // a namespace being deleted loses its bound objects, as it loses custom resources
    let (code, e) = bob
        .post(
            &format!("{consumer}/api/v1/namespaces"),
            json!({"metadata": {"name": "ranch"}}),
        )
        .await;
    assert_eq!(code, 201, "{e}");
    let ranch = format!("{consumer}/apis/wildwest.dev/v1alpha1/namespaces/ranch/cowboys");
    let (code, e) = bob
        .post(
            &ranch,
            json!({"apiVersion": "wildwest.dev/v1alpha1", "kind": "Cowboy",
                "metadata": {"name": "jessie"}}),
        )
        .await;
    assert_eq!(code, 201, "{e}");
    let (code, e) = bob
        .delete(&format!("{consumer}/api/v1/namespaces/ranch"))
        .await;
    assert!(code == 200 || code == 202, "{code} {e}");
    for _ in 0..200 {
        if bob
            .get(&format!("{consumer}/api/v1/namespaces/ranch"))
            .await
            .0
            == 404
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        bob.get(&format!("{consumer}/api/v1/namespaces/ranch"))
            .await
            .0,
        404
    );

    // another tenant reads nothing of it
    let (code, _) = carol.get(&cowboys).await;
    assert_eq!(code, 403);

    // a local CRD of the bound resource is refused
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "cowboys.wildwest.dev"},
        "spec": {"group": "wildwest.dev", "scope": "Namespaced",
            "names": {"plural": "cowboys", "singular": "cowboy", "kind": "Cowboy"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
    let crds = "apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, e) = bob.post(&format!("{consumer}/{crds}"), crd.clone()).await;
    assert_eq!(code, 403, "{e}");
    assert_eq!(
        e["message"],
        "customresourcedefinitions.apiextensions.k8s.io \"cowboys.wildwest.dev\" is forbidden: cannot create because resource is bound by APIBinding \"cowboys\""
    );

    // a second export of the same resource: first come wins
    let (code, e) = bob
        .post(&bindings, binding("cowboys-2", "root:provider", "cowboys2"))
        .await;
    assert_eq!(code, 201, "{e}");
    let late = wait_for(&bob, &format!("{bindings}/cowboys-2"), |b| {
        condition(b, "BindingUpToDate").is_some_and(|c| c["reason"] == "NamingConflicts")
    })
    .await;
    assert_eq!(late["status"]["phase"], "Binding");
    assert_eq!(
        condition(&late, "InitialBindingCompleted").unwrap()["message"],
        "naming conflict with APIBinding \"cowboys\" bound to APIExport root:provider:cowboys: spec.names.plural=cowboys is forbidden"
    );

    // unbind: the instances go, then the binding; the loser is bound, with nothing of
    // the first export's objects
    let (code, e) = bob.delete(&format!("{bindings}/cowboys")).await;
    assert!(code == 200 || code == 202, "{code} {e}");
    for _ in 0..200 {
        if bob.get(&format!("{bindings}/cowboys")).await.0 == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(bob.get(&format!("{bindings}/cowboys")).await.0, 404);
    let b2 = wait_for(&bob, &format!("{bindings}/cowboys-2"), bound).await;
    assert_ne!(
        b2["status"]["boundResources"][0]["schema"]["identityHash"],
        hash
    );
    let (code, l) = bob.get(&cowboys).await;
    assert_eq!(code, 200, "{l}");
    assert_eq!(l["items"], json!([]), "{l}");

    // a binding losing to a local CRD is bound once the CRD goes (kcp #1822)
    grant_bind(&alice, provider, "carol", &["cowboys"]).await;
    let (code, e) = carol.post(&format!("{other}/{crds}"), crd).await;
    assert_eq!(code, 201, "{e}");
    let other_bindings = format!("{other}/{APIS}/v1alpha2/apibindings");
    let (code, e) = carol
        .post(
            &other_bindings,
            binding("cowboys", "root:provider", "cowboys"),
        )
        .await;
    assert_eq!(code, 201, "{e}");
    let lost = wait_for(&carol, &format!("{other_bindings}/cowboys"), |b| {
        condition(b, "InitialBindingCompleted").is_some_and(|c| c["reason"] == "NamingConflicts")
    })
    .await;
    assert_eq!(
        condition(&lost, "InitialBindingCompleted").unwrap()["message"],
        "naming conflict with CustomResourceDefinition \"cowboys.wildwest.dev\": spec.names.plural=cowboys is forbidden"
    );
    let (code, e) = carol
        .delete(&format!("{other}/{crds}/cowboys.wildwest.dev"))
        .await;
    assert!(code == 200 || code == 202, "{code} {e}");
    wait_for(&carol, &format!("{other_bindings}/cowboys"), bound).await;
    // carol's cowboys are hers: bob's are not among them
    let (code, l) = carol
        .get(&format!("{other}/apis/wildwest.dev/v1alpha1/cowboys"))
        .await;
    assert_eq!(code, 200, "{l}");
    assert_eq!(l["items"], json!([]), "{l}");
}
