//! No CEL rule and no patch body can crash, stall or balloon a shard (issue 13, items
//! 3 and 4): a real shard (in this process, with its PostgreSQL) is sent the rules and
//! patches that used to overflow its stack or grow it by hundreds of megabytes, answers
//! each with kube's 4xx Status, and keeps serving.

use canopy_test_harness::{Client, TestShard};
use serde_json::{json, Value};

/// Resident memory of this process (the shard runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn crd(plural: &str, rule: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": "Thing", "listKind": "ThingList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {
                            "s": {"type": "string", "maxLength": 16},
                            "n": {"type": "integer"},
                            "l": {"type": "array", "maxItems": 4, "items": {"type": "integer"}}
                        },
                        "x-kubernetes-validations": [{"rule": rule}]
                    }}
                }}
            }]
        }
    })
}

async fn still_serving(c: &Client) {
    let (code, body) = c.get("/api/v1/namespaces/default").await;
    assert_eq!(code, 200, "{body}");
}

const RULE_PATH: &str =
    "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_rules_that_overflowed_are_refused() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let chain = |term: &str, op: &str| vec![term; 10_000].join(op);
    let nested = |open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(10_000), close.repeat(10_000))
    };
    let recursion = "ERROR: <input>:-1:0: max recursion depth exceeded";
    let nesting = "ERROR: <input>:-1:0: expression recursion limit exceeded: 250";
    let too_long = "ERROR: <input>:-1:0: expression code point size exceeds limit: size: ";
    // (rule, cel-go's error; rules over 100,000 code points get the size error first)
    let cases: Vec<(&str, String, &str)> = vec![
        ("plus", format!("{} > 0", chain("self.n", " + ")), recursion),
        ("plusshort", format!("{} > 0", chain("1", "+")), recursion),
        (
            "concat",
            format!("self.s + {} != ''", chain("'a'", " + ")),
            recursion,
        ),
        ("or", chain("self.n == 1", " || "), ""),
        ("and", chain("self.n == 1", " && "), ""),
        ("parens", nested("(", "true", ")"), nesting),
        (
            "lists",
            format!("size({}) == 1", nested("[", "1", "]")),
            nesting,
        ),
        (
            "ternaries",
            format!("{}true", "true ? true : ".repeat(10_000)),
            nesting,
        ),
        (
            "ternshort",
            format!("{}true", "1?1:".repeat(10_000)),
            nesting,
        ),
        (
            "selects",
            format!("self.s{} != ''", ".size()".repeat(10_000)),
            recursion,
        ),
    ];
    for (name, rule, message) in cases {
        let message = if rule.chars().count() > 100_000 {
            too_long
        } else {
            message
        };
        assert!(!message.is_empty(), "{name}");
        let plural = format!("{name}s");
        let (code, status) = c
            .post(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                crd(&plural, &rule),
            )
            .await;
        assert_eq!(code, 422, "{name}: {status}");
        assert_eq!(status["reason"], "Invalid", "{name}: {status}");
        let causes = status["details"]["causes"].as_array().expect("causes");
        assert_eq!(causes.len(), 1, "{name}: {status}");
        assert_eq!(causes[0]["field"], RULE_PATH, "{name}");
        assert_eq!(causes[0]["reason"], "FieldValueInvalid", "{name}");
        let m = causes[0]["message"].as_str().unwrap_or("");
        assert!(
            m.contains(&format!("compilation failed: {message}")),
            "{name}: {}",
            &m[m.len().saturating_sub(300)..]
        );
        still_serving(&c).await;
    }

    // what kube accepts, Canopy accepts and evaluates: a balanced || of 6,000 terms
    let rule = vec!["self.n == 1"; 6_000].join(" || ");
    let (code, body) = c
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd("balanceds", &rule),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let k = env.kubectl();
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/balanceds.example.com",
    ])
    .await;
    let thing = |n: i64| {
        json!({"apiVersion": "example.com/v1", "kind": "Thing",
               "metadata": {"name": format!("t{n}")}, "spec": {"n": n}})
    };
    let path = "/apis/example.com/v1/namespaces/default/balanceds";
    let (code, body) = c.post(path, thing(1)).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = c.post(path, thing(2)).await;
    assert_eq!(code, 422, "{body}");
    still_serving(&c).await;

    // within the static estimate, over the runtime limit: kube's error on the write
    let rule = "self.l.all(x, self.l.all(y, x + y >= 0))";
    let mut costly = crd("costlies", rule);
    costly["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["l"]["maxItems"] = json!(1000);
    costly["spec"]["names"]["kind"] = json!("Costly");
    costly["spec"]["names"]["listKind"] = json!("CostlyList");
    let (code, body) = c
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            costly,
        )
        .await;
    assert_eq!(code, 201, "{body}");
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/costlies.example.com",
    ])
    .await;
    let path = "/apis/example.com/v1/namespaces/default/costlies";
    let with = |name: &str, n: i64| {
        json!({"apiVersion": "example.com/v1", "kind": "Costly",
               "metadata": {"name": name}, "spec": {"l": (0..n).collect::<Vec<_>>()}})
    };
    let (code, status) = c.post(path, with("big", 1000)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        format!("Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {rule}")
    );
    let (code, body) = c.post(path, with("small", 20)).await;
    assert_eq!(code, 201, "{body}");
    still_serving(&c).await;
}

fn ops_body(ops: &[Value]) -> String {
    serde_json::to_string(ops).expect("json")
}

/// ~33 KB of `copy` operations, each nesting `/metadata/annotations` into itself.
fn nesting_copies() -> String {
    let mut ops = vec![json!({"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}})];
    let mut path = "/metadata/annotations".to_string();
    let mut len = ops_body(&ops).len();
    while len < 33_000 {
        let op =
            json!({"op": "copy", "from": "/metadata/annotations", "path": format!("{path}/x")});
        len += op.to_string().len() + 1;
        ops.push(op);
        path.push_str("/x");
        if path.len() > 400 {
            path = "/metadata/annotations".to_string();
        }
    }
    ops_body(&ops)
}

/// `copy` operations each doubling `/metadata/labels`, padded to `bytes`.
fn doubling_copies(bytes: usize, pad: usize) -> String {
    let mut ops =
        vec![json!({"op": "add", "path": "/metadata/labels", "value": {"a": "0123456789"}})];
    let mut i = 0;
    let mut len = ops_body(&ops).len();
    while len < bytes {
        let op = json!({
            "op": "copy",
            "from": "/metadata/labels",
            "path": format!("/metadata/labels/k{i}"),
            "pad": "p".repeat(pad)
        });
        len += op.to_string().len() + 1;
        ops.push(op);
        i += 1;
    }
    ops_body(&ops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patches_that_crashed_or_ballooned_are_refused() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, body) = c
        .post(
            cms,
            json!({"metadata": {"name": "target"}, "data": {"k": "v"}}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let target = format!("{cms}/target");
    let rss_before = rss_bytes();
    let json_patch = "application/json-patch+json";

    // the 33 KB body that overflowed the stack: the nesting limit answers
    let (code, status) = c.patch(&target, json_patch, &nesting_copies()).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("nest more than 127 levels")),
        "{status}"
    );

    // a 1 MiB body of doubling copies: kube's copy limit (3 MiB, 422) or the size
    // limit (3 MiB, 413) answers, whichever the doubling reaches first
    let body = doubling_copies(1 << 20, 60);
    assert!(body.len() >= 1 << 20);
    let (code, status) = c.patch(&target, json_patch, &body).await;
    match code {
        422 => assert_eq!(
            status["message"],
            "the server rejected our request due to an error in our request"
        ),
        413 => assert_eq!(
            status["message"],
            "Request entity too large: limit is 3145728"
        ),
        _ => panic!("{code}: {status}"),
    }

    // the same with more than 10,000 operations: 413 before anything applies
    let body = doubling_copies(1 << 20, 0);
    let (code, status) = c.patch(&target, json_patch, &body).await;
    assert_eq!(code, 413, "{status}");
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    let got = serde_json::from_str::<Vec<Value>>(&body)
        .expect("ops")
        .len();
    assert_eq!(
        status["message"],
        format!(
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got {got}"
        )
    );

    // merge patches nested 10,000 deep: serde_json's recursion limit (128) refuses
    // them while parsing, 400
    let deep = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    for ct in [
        json_patch,
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        let (code, status) = c.patch(&target, ct, &deep).await;
        assert_eq!(code, 400, "{ct}: {status}");
    }

    // RSS is the whole test process's: the other tests of this file run at the same
    // time and take memory of their own, so the bound is loose; the bug this guards
    // against grew the process by ~600 MB for one 1 MiB patch
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(grown < 300 << 20, "the process grew by {grown} bytes");
    let (code, cm) = c.get(&target).await;
    assert_eq!(code, 200, "{cm}");
    assert_eq!(cm["data"], json!({"k": "v"}));
    assert!(cm["metadata"].get("labels").is_none(), "{cm}");
    still_serving(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_finalizer_patches() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, body) = c.post(cms, json!({"metadata": {"name": "f"}})).await;
    assert_eq!(code, 201, "{body}");
    let target = format!("{cms}/f");
    let json_patch = "application/json-patch+json";
    // kube-rs' finalizer(): the first finalizer, after testing that there is none
    let add_first = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]}
    ]);
    let (code, cm) = c.patch(&target, json_patch, &add_first.to_string()).await;
    assert_eq!(code, 200, "{cm}");
    assert_eq!(cm["metadata"]["finalizers"], json!(["example.com/cleanup"]));
    // a second finalizer() with the list it saw
    let add_next = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/other"}
    ]);
    let (code, cm) = c.patch(&target, json_patch, &add_next.to_string()).await;
    assert_eq!(code, 200, "{cm}");
    // the first one again now fails its test: 422 as kube answers
    let (code, status) = c.patch(&target, json_patch, &add_first.to_string()).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    // and the removal kube-rs sends: test the index, remove it
    let remove = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "example.com/cleanup"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]);
    let (code, cm) = c.patch(&target, json_patch, &remove.to_string()).await;
    assert_eq!(code, 200, "{cm}");
    assert_eq!(cm["metadata"]["finalizers"], json!(["example.com/other"]));
}

/// A namespaced CRD for `things` whose `spec.l` nests `levels` arrays, as JSON text.
fn deep_items_crd(levels: usize) -> String {
    let items = format!(
        "{}{{\"type\":\"integer\"}}{}",
        "{\"type\":\"array\",\"items\":".repeat(levels),
        "}".repeat(levels)
    );
    format!(
        r#"{{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
        "metadata":{{"name":"deeps.example.com"}},
        "spec":{{"group":"example.com","scope":"Namespaced",
        "names":{{"plural":"deeps","singular":"deep","kind":"Deep","listKind":"DeepList"}},
        "versions":[{{"name":"v1","served":true,"storage":true,"schema":{{"openAPIV3Schema":
        {{"type":"object","properties":{{"spec":{{"type":"object","properties":{{"l":{items}}}}}}}}}}}}}]}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepest_bodies_are_stored_and_read_back() {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let post = |path: String, body: String| {
        let c = &c;
        async move {
            let resp = c
                .request(reqwest::Method::POST, &path)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("request");
            let code = resp.status().as_u16();
            let v: Value =
                serde_json::from_slice(&resp.bytes().await.expect("body")).unwrap_or(Value::Null);
            (code, v)
        }
    };
    // 10,000 levels never parse: 400
    let (code, status) = post(crds.to_string(), deep_items_crd(10_000)).await;
    assert_eq!(code, 400, "{status}");
    // the deepest CRD a body may hold (100 containers) is created; its schema is
    // compiled and used on a 2 MiB worker stack
    let (code, status) = post(crds.to_string(), deep_items_crd(90)).await;
    assert_eq!(code, 201, "{status}");
    env.kubectl()
        .ok(&[
            "wait",
            "--for=condition=Established",
            "crd/deeps.example.com",
        ])
        .await;
    let l = format!("{}1{}", "[".repeat(90), "]".repeat(90));
    let body = format!(
        r#"{{"apiVersion":"example.com/v1","kind":"Deep","metadata":{{"name":"d"}},"spec":{{"l":{l}}}}}"#
    );
    let (code, status) = post(
        "/apis/example.com/v1/namespaces/default/deeps".to_string(),
        body,
    )
    .await;
    assert_eq!(code, 201, "{status}");
    // an object nesting maps as deep as a body can: its managedFields nest deeper
    let open = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
        "metadata":{"name":"opens.example.com"},
        "spec":{"group":"example.com","scope":"Namespaced",
        "names":{"plural":"opens","singular":"open","kind":"Open","listKind":"OpenList"},
        "versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":
        {"type":"object","properties":{"spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}}"#;
    let (code, status) = post(crds.to_string(), open.to_string()).await;
    assert_eq!(code, 201, "{status}");
    env.kubectl()
        .ok(&[
            "wait",
            "--for=condition=Established",
            "crd/opens.example.com",
        ])
        .await;
    let open_body = |levels: usize| {
        let spec = format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels));
        format!(
            r#"{{"apiVersion":"example.com/v1","kind":"Open","metadata":{{"name":"o"}},"spec":{spec}}}"#
        )
    };
    let opens = "/apis/example.com/v1/namespaces/default/opens";
    // 125 levels parse, but with managedFields the stored object would not: 400
    let (code, status) = post(opens.to_string(), open_body(124)).await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("nests more than 100 levels")),
        "{status}"
    );
    let (code, status) = post(opens.to_string(), open_body(95)).await;
    assert_eq!(code, 201, "{status}");
    // a JSON patch may not nest it deeper either: 422
    let deeper = format!("/spec{}", "/a".repeat(94));
    let value: Value =
        serde_json::from_str(&format!("{}1{}", "[".repeat(20), "]".repeat(20))).expect("json");
    let patch = json!([{"op": "replace", "path": deeper, "value": value}]);
    let (code, status) = c
        .patch(
            &format!("{opens}/o"),
            "application/json-patch+json",
            &patch.to_string(),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    // what was stored (with managedFields) is read back after a restart
    let env = env.restart().await;
    let c = env.admin();
    let (code, crd) = c.get(&format!("{crds}/deeps.example.com")).await;
    assert_eq!(code, 200, "{crd}");
    let (code, d) = c
        .get("/apis/example.com/v1/namespaces/default/deeps/d")
        .await;
    assert_eq!(code, 200, "{d}");
    let (code, o) = c
        .get("/apis/example.com/v1/namespaces/default/opens/o")
        .await;
    assert_eq!(code, 200, "{o}");
    still_serving(&c).await;
}
