//! Bad input through a real shard (raw HTTPS, real PostgreSQL): what used to panic is a
//! 4xx `Status` with kube's reason, garbage bodies are 400/422 and never 500, objects
//! and bodies over the size limits are 413 for every verb, and list continue tokens are
//! tamper-evident and bound to the list they came from.

use std::time::Duration;

use canopy_test_harness::{Client, TestShard};
use futures::StreamExt;
use serde_json::{json, Value};

const CMS: &str = "/clusters/root/api/v1/namespaces/default/configmaps";
const WS: &str = "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces";

async fn still_serving(c: &Client) {
    let (code, body) = c.get(CMS).await;
    assert_eq!(code, 200, "the shard stopped serving: {body}");
}

fn status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

async fn send_raw(
    c: &Client,
    method: reqwest::Method,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = c
        .request(method, path)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("request");
    let code = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn known_panics_answer_4xx_and_the_shard_keeps_serving() {
    let env = TestShard::builder().start().await;
    let c = env.admin();

    // generateName with a multi-byte character across the 58-byte cut (the name is
    // generated, and cut, before validation refuses the prefix as kube does)
    for first in ["a", "A"] {
        let base = format!("{}é", first.repeat(57));
        let (code, body) = c
            .post(CMS, json!({"metadata": {"generateName": base}, "data": {}}))
            .await;
        assert_eq!(code, 422, "{body}");
        status(&body, 422, "Invalid");
        assert!(body.to_string().contains("metadata.generateName"), "{body}");
    }
    // a valid prefix longer than the cut is still cut and accepted
    let (code, body) = c
        .post(
            CMS,
            json!({"metadata": {"generateName": "b".repeat(70)}, "data": {}}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["metadata"]["name"].as_str().unwrap().len(), 63);
    still_serving(&c).await;

    // watches with timeoutSeconds at the edges of int64
    let (code, body) = c
        .get(&format!(
            "{CMS}?watch=true&timeoutSeconds=18446744073709551615"
        ))
        .await;
    status(&body, 400, "BadRequest");
    assert_eq!(code, 400);
    let (code, body) = c.get(&format!("{CMS}?watch=true&timeoutSeconds=-1")).await;
    assert_eq!(code, 400, "{body}");
    let resp = c
        .request(
            reqwest::Method::GET,
            &format!("{CMS}?watch=true&resourceVersion=0&timeoutSeconds=9223372036854775807"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the watch streams events")
        .expect("a frame")
        .expect("no stream error");
    let ev: Value = serde_json::from_slice(first.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ADDED", "{ev}");
    drop(stream);
    still_serving(&c).await;

    // a Workspace whose spec is a string: create, update and patch
    let (code, body) = c
        .post(WS, json!({"metadata": {"name": "w1"}, "spec": "x"}))
        .await;
    status(&body, 400, "BadRequest");
    assert_eq!(code, 400);
    let (code, body) = c
        .post(WS, json!({"metadata": {"name": "w1"}, "spec": {}}))
        .await;
    assert_eq!(code, 201, "{body}");
    let mut put = body.clone();
    put["spec"] = json!("x");
    let (code, body) = c.put(&format!("{WS}/w1"), put).await;
    assert_eq!(code, 400, "{body}");
    status(&body, 400, "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot be handled as a Workspace"),
        "{body}"
    );
    for (ct, patch) in [
        ("application/merge-patch+json", r#"{"spec":"x"}"#),
        (
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/spec","value":7}]"#,
        ),
        (
            "application/json-patch+json",
            r#"[{"op":"replace","path":"","value":"x"}]"#,
        ),
        ("application/merge-patch+json", r#"{"status":[1]}"#),
    ] {
        let (code, body) = c.patch(&format!("{WS}/w1"), ct, patch).await;
        assert!(code == 400 || code == 422, "{patch}: {code} {body}");
        assert_eq!(body["kind"], "Status", "{body}");
    }
    // a namespace's finalize and status subresources with a spec/status of the wrong type
    let (code, body) = c
        .put(
            "/clusters/root/api/v1/namespaces/default/finalize",
            json!({"metadata": {"name": "default"}, "spec": "x"}),
        )
        .await;
    assert!(code == 400 || code == 422, "{code} {body}");
    still_serving(&c).await;
    let (code, _) = c.get("/version").await;
    assert_eq!(code, 200);
}

/// (what, path, body) that must be refused with 400 or 422.
fn garbage() -> Vec<(&'static str, String, Value)> {
    let long = "a".repeat(10_000);
    let ns = "/clusters/root/api/v1/namespaces".to_string();
    let crds = "/clusters/root/apis/apiextensions.k8s.io/v1/customresourcedefinitions".to_string();
    let rbs = "/clusters/root/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"
        .to_string();
    let cms = CMS.to_string();
    let ws = WS.to_string();
    let mut t = Vec::new();
    for (kind, path) in [
        ("ConfigMap", &cms),
        ("Namespace", &ns),
        ("Workspace", &ws),
        ("CustomResourceDefinition", &crds),
        ("RoleBinding", &rbs),
    ] {
        t.push((kind, path.clone(), json!({"metadata": "x"})));
        t.push((kind, path.clone(), json!({"metadata": [1, 2]})));
        t.push((kind, path.clone(), json!({"metadata": {"name": 5}})));
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"name": "g1", "labels": ["a", "b"]}}),
        ));
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"name": "g2", "labels": {"a": 1}}}),
        ));
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"name": "g3", "annotations": {"a": {"b": 1}}}}),
        ));
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"name": "g4", "annotations": "x"}}),
        ));
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"name": "g5", "finalizers": "x"}}),
        ));
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"name": "g6", "ownerReferences": [1]}}),
        ));
        t.push((kind, path.clone(), json!({"metadata": {"name": long}})));
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"generateName": long}}),
        ));
        // kinds with a spec and a status (ConfigMap and RoleBinding have neither: such
        // fields are unknown and dropped with a warning, as kube does)
        if matches!(kind, "Namespace" | "Workspace" | "CustomResourceDefinition") {
            for bad in [
                json!({"metadata": {"name": "g7"}, "spec": "x"}),
                json!({"metadata": {"name": "g8"}, "spec": [1]}),
                json!({"metadata": {"name": "g9"}, "status": "x"}),
            ] {
                t.push((kind, path.clone(), bad));
            }
        }
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"name": "g10"}, "kind": 5}),
        ));
        t.push((
            kind,
            path.clone(),
            json!({"metadata": {"name": "g11"}, "apiVersion": ["v1"]}),
        ));
        t.push((kind, path.clone(), json!("just a string")));
        t.push((kind, path.clone(), json!([{"metadata": {"name": "g12"}}])));
    }
    t.push((
        "ConfigMap",
        cms.clone(),
        json!({"metadata": {"name": "g13"}, "data": "x"}),
    ));
    t.push((
        "ConfigMap",
        cms.clone(),
        json!({"metadata": {"name": "g14"}, "data": {"k": 1}}),
    ));
    t.push((
        "ConfigMap",
        cms,
        json!({"metadata": {"name": "g15"}, "binaryData": {"k": "not base64!"}}),
    ));
    t.push((
        "Workspace",
        ws.clone(),
        json!({"metadata": {"name": "g16"}, "spec": {"type": "x"}}),
    ));
    t.push((
        "Workspace",
        ws.clone(),
        json!({"metadata": {"name": "g17"}, "spec": {"type": {"name": 5}}}),
    ));
    t.push((
        "Workspace",
        ws,
        json!({"metadata": {"name": "g18"}, "spec": {"location": {"selector": "x"}}}),
    ));
    t.push((
        "CustomResourceDefinition",
        crds.clone(),
        json!({"metadata": {"name": "a.b.c"}, "spec": {"names": "x"}}),
    ));
    t.push(("CustomResourceDefinition", crds, json!({"metadata": {"name": "things.example.com"}, "spec": {"group": "example.com", "names": {"plural": "things", "kind": "Thing"}, "scope": "Namespaced", "versions": "v1"}})));
    t.push((
        "RoleBinding",
        rbs.clone(),
        json!({"metadata": {"name": "g19"}, "roleRef": "admin", "subjects": []}),
    ));
    t.push(("RoleBinding", rbs, json!({"metadata": {"name": "g20"}, "roleRef": {"kind": "ClusterRole", "name": "admin", "apiGroup": "rbac.authorization.k8s.io"}, "subjects": "alice"})));
    t
}

#[tokio::test]
async fn garbage_bodies_get_400_or_422_never_500() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    for (kind, path, body) in garbage() {
        let (code, resp) = c.post(&path, body.clone()).await;
        let shown: String = body.to_string().chars().take(200).collect();
        assert!(
            code == 400 || code == 422,
            "{kind} POST {shown}: {code} {}",
            resp.to_string().chars().take(300).collect::<String>()
        );
        assert_eq!(resp["kind"], "Status", "{kind} {shown}");
    }
    // the same shapes as updates and merge patches of existing objects
    let (code, b) = c
        .post(CMS, json!({"metadata": {"name": "ok"}, "data": {"k": "v"}}))
        .await;
    assert_eq!(code, 201, "{b}");
    let (code, b) = c
        .post(WS, json!({"metadata": {"name": "okws"}, "spec": {}}))
        .await;
    assert_eq!(code, 201, "{b}");
    for (path, name) in [(CMS, "ok"), (WS, "okws")] {
        for bad in [
            json!({"metadata": {"name": name, "labels": ["a"]}}),
            json!({"metadata": {"name": name, "annotations": {"a": 1}}}),
            json!({"metadata": {"name": name}, "spec": "x", "data": "x"}),
            json!({"metadata": {"name": name}, "data": "x", "status": 3, "spec": 3}),
            json!(7),
        ] {
            let (code, resp) = c.put(&format!("{path}/{name}"), bad.clone()).await;
            assert!(
                code == 400 || code == 422 || code == 409,
                "PUT {bad}: {code} {resp}"
            );
            let (code, resp) = c
                .patch(
                    &format!("{path}/{name}"),
                    "application/merge-patch+json",
                    &bad.to_string(),
                )
                .await;
            assert!(code == 400 || code == 422, "PATCH {bad}: {code} {resp}");
        }
    }
    still_serving(&c).await;
}

#[tokio::test]
async fn objects_and_bodies_over_the_limits_are_413_for_every_verb() {
    let env = TestShard::builder()
        .size_limits(shard::Limits {
            max_request_body_bytes: 64 * 1024,
            max_object_bytes: 16 * 1024,
            ..Default::default()
        })
        .start()
        .await;
    let c = env.admin();
    let too_large = |body: &Value| {
        status(body, 413, "RequestEntityTooLarge");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Request entity too large: "),
            "{body}"
        );
    };

    // a body over the request limit, with kube's message
    let big_body = json!({"metadata": {"name": "huge"}, "data": {"k": "x".repeat(70 * 1024)}});
    let (code, body) = c.post(CMS, big_body).await;
    assert_eq!(code, 413);
    assert_eq!(body["message"], "Request entity too large: limit is 65536");

    // create over the object limit: nothing stored; dry run too
    let cm =
        |name: &str, n: usize| json!({"metadata": {"name": name}, "data": {"k": "x".repeat(n)}});
    let (code, body) = c.post(CMS, cm("big", 20 * 1024)).await;
    assert_eq!(code, 413);
    too_large(&body);
    assert_eq!(c.get(&format!("{CMS}/big")).await.0, 404);
    let (code, body) = c
        .post(&format!("{CMS}?dryRun=All"), cm("big", 20 * 1024))
        .await;
    assert_eq!(code, 413, "{body}");

    // grow a small object with every kind of write
    let (code, small) = c.post(CMS, cm("small", 10)).await;
    assert_eq!(code, 201, "{small}");
    let rv = small["metadata"]["resourceVersion"].clone();
    let path = format!("{CMS}/small");
    let mut put = small.clone();
    put["data"]["k"] = json!("y".repeat(20 * 1024));
    let (code, body) = c.put(&path, put).await;
    assert_eq!(code, 413, "PUT: {body}");
    let merge = json!({"data": {"m": "z".repeat(20 * 1024)}}).to_string();
    for ct in [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        let (code, body) = c.patch(&path, ct, &merge).await;
        assert_eq!(code, 413, "{ct}: {body}");
        too_large(&body);
    }
    // a small JSON patch that doubles a value until it is far over the limit
    let mut ops = vec![json!({"op": "add", "path": "/data/d0", "value": "w".repeat(1024)})];
    for i in 0..6 {
        ops.push(json!({"op": "copy", "from": format!("/data/d{i}"), "path": format!("/data/d{}", i + 1)}));
    }
    ops.push(json!({"op": "add", "path": "/data/big", "value": "v".repeat(40 * 1024)}));
    let (code, body) = c
        .patch(
            &path,
            "application/json-patch+json",
            &json!(ops).to_string(),
        )
        .await;
    assert_eq!(code, 413, "json patch: {body}");
    let apply = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: small\ndata:\n  a: {}\n",
        "q".repeat(20 * 1024)
    );
    let (code, body) = c
        .patch(
            &format!("{path}?fieldManager=test&force=true"),
            "application/apply-patch+yaml",
            &apply,
        )
        .await;
    assert_eq!(code, 413, "apply: {body}");
    let (code, body) = c
        .patch(
            &format!("{CMS}/applied?fieldManager=test"),
            "application/apply-patch+yaml",
            &apply.replace("name: small", "name: applied"),
        )
        .await;
    assert_eq!(code, 413, "apply-create: {body}");
    let (_, now) = c.get(&path).await;
    assert_eq!(
        now["metadata"]["resourceVersion"], rv,
        "nothing was written"
    );
    assert_eq!(now["data"], json!({"k": "x".repeat(10)}));

    // the status subresource
    let ns = "/clusters/root/api/v1/namespaces/default";
    let (_, mut nsobj) = c.get(ns).await;
    nsobj["status"]["conditions"] =
        json!([{"type": "X", "status": "True", "message": "m".repeat(20 * 1024)}]);
    let (code, body) = c.put(&format!("{ns}/status"), nsobj).await;
    assert_eq!(code, 413, "status: {body}");

    // YAML that expands past the decoded-size budget (a large anchor, many aliases)
    let mut y = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: laughs\n  annotations:\n    a: x\nbase: &b\n");
    for i in 0..1500 {
        y.push_str(&format!("  - item{i}\n"));
    }
    y.push_str("copies:\n");
    for _ in 0..1500 {
        y.push_str("  - *b\n");
    }
    assert!(y.len() < 64 * 1024);
    let (code, body) = send_raw(
        &c,
        reqwest::Method::POST,
        CMS,
        "application/yaml",
        y.into_bytes(),
    )
    .await;
    assert_eq!(code, 413, "yaml: {body}");
    too_large(&body);
    still_serving(&c).await;
}

#[tokio::test]
async fn continue_tokens_page_and_cannot_be_tampered_with_or_replayed() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    for i in 0..7 {
        let (code, b) = c
            .post(
                CMS,
                json!({"metadata": {"name": format!("cm-{i}")}, "data": {}}),
            )
            .await;
        assert_eq!(code, 201, "{b}");
    }
    // kubectl pages through all of them two at a time
    let out = env
        .kubectl()
        .ok(&[
            "get",
            "configmaps",
            "-n",
            "default",
            "--chunk-size=2",
            "-o",
            "name",
        ])
        .await;
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 8, "{out}"); // 7 + kube-root-ca.crt
    for i in 0..7 {
        assert!(
            names.contains(&format!("configmap/cm-{i}").as_str()),
            "{out}"
        );
    }

    // raw paging
    let (code, page) = c.get(&format!("{CMS}?limit=2")).await;
    assert_eq!(code, 200);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    assert!(
        !token.contains("root"),
        "the token names no cluster: {token}"
    );
    let (code, next) = c.get(&format!("{CMS}?limit=2&continue={token}")).await;
    assert_eq!(code, 200, "{next}");
    assert_eq!(next["items"].as_array().unwrap().len(), 2);
    assert_ne!(
        next["items"][0]["metadata"]["name"],
        page["items"][0]["metadata"]["name"]
    );

    // tampered: every byte flipped in turn, and the old unauthenticated form
    let bytes: Vec<char> = token.chars().collect();
    for i in (0..bytes.len()).step_by(7) {
        let mut t = bytes.clone();
        t[i] = if t[i] == 'A' { 'B' } else { 'A' };
        let t: String = t.into_iter().collect();
        let (code, body) = c.get(&format!("{CMS}?limit=2&continue={t}")).await;
        assert_eq!(code, 400, "{t}: {body}");
        status(&body, 400, "BadRequest");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("continue key is not valid"),
            "{body}"
        );
    }
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"v":"canopy/v1","rv":1,"start":"root\u0000default\u0000a"}"#);
    let (code, _) = c.get(&format!("{CMS}?limit=2&continue={forged}")).await;
    assert_eq!(code, 400);
    // with a resourceVersion: kube's 400
    let (code, body) = c
        .get(&format!("{CMS}?limit=2&continue={token}&resourceVersion=5"))
        .await;
    assert_eq!(code, 400, "{body}");

    // another namespace and another resource of the same cluster
    let (code, _) = c
        .get(&format!(
            "/clusters/root/api/v1/namespaces/kube-system/configmaps?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(code, 400);
    let (code, _) = c
        .get(&format!(
            "/clusters/root/api/v1/namespaces/default/secrets?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(code, 400);

    // another logical cluster: a workspace with configmaps of its own
    let (code, b) = c
        .post(WS, json!({"metadata": {"name": "other"}, "spec": {}}))
        .await;
    assert_eq!(code, 201, "{b}");
    let other = "/clusters/root:other/api/v1/namespaces/default/configmaps";
    let mut ready = false;
    for _ in 0..200 {
        if c.get(other).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "workspace root:other never served");
    for i in 0..3 {
        let (code, b) = c
            .post(
                other,
                json!({"metadata": {"name": format!("secret-row-{i}")}, "data": {}}),
            )
            .await;
        assert_eq!(code, 201, "{b}");
    }
    let (code, body) = c.get(&format!("{other}?limit=2&continue={token}")).await;
    assert_eq!(code, 400, "{body}");
    assert!(!body.to_string().contains("secret-row"), "{body}");
    // and B's own tokens work in B only
    let (code, page) = c.get(&format!("{other}?limit=1")).await;
    assert_eq!(code, 200);
    let btok = page["metadata"]["continue"].as_str().unwrap().to_string();
    assert_eq!(
        c.get(&format!("{other}?limit=1&continue={btok}")).await.0,
        200
    );
    let (code, body) = c.get(&format!("{CMS}?limit=1&continue={btok}")).await;
    assert_eq!(code, 400, "{body}");
    assert!(!body.to_string().contains("cm-"), "{body}");

    // tokens survive a restart of the shard (the secret is kept, mode 0600)
    let key = env.dir.path().join("pki").join("continue-token.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let env = env.restart().await;
    let c = env.admin();
    let (code, body) = c.get(&format!("{CMS}?limit=2&continue={token}")).await;
    assert_eq!(code, 200, "{body}");
}
