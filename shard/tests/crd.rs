//! CustomResourceDefinitions: served once Established, per logical cluster, with printer
//! columns and the status subresource; deleting a CRD deletes its custom resources.

use canopy_tenancy::TenancyExt;
use std::time::Duration;

use canopy_test_harness::TestShard;

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [gadgets]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Ready
      type: string
      jsonPath: .status.conditions[?(@.type=="Ready")].status
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_are_served_per_logical_cluster() {
    let env = TestShard::builder().start().await;
    env.shard.api.ensure_logical_cluster("other").await.unwrap();
    let k = env.kubectl();
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], WIDGET_CRD)
        .await
        .contains("created"));
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ])
    .await;
    let crds = k.ok(&["get", "crd"]).await;
    assert!(crds.contains("widgets.example.com"), "{crds}");

    let res = k.ok(&["api-resources", "--api-group=example.com"]).await;
    assert!(
        res.contains("widgets") && res.contains("wd") && res.contains("Widget"),
        "{res}"
    );
    assert!(k.ok(&["get", "widgets"]).await.is_empty());

    k.apply_stdin(&["apply", "-f", "-"], "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\nstatus:\n  ignored: true\n").await;
    let got = k.ok(&["get", "wd", "w1", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(v["spec"]["size"], 3);
    assert_eq!(v["metadata"]["generation"], 1);
    assert!(
        v.get("status").is_none(),
        "status is set only through /status: {got}"
    );

    // the status subresource, then printer columns
    let admin = env.admin();
    let (code, _) = admin
        .patch(
            "/clusters/root/apis/example.com/v1/namespaces/default/widgets/w1/status",
            "application/merge-patch+json",
            r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        )
        .await;
    assert_eq!(code, 200);
    let table = k.ok(&["get", "widgets"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "SIZE", "READY", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], &["w1", "3", "True"], "{table}");
    // spec changes bump generation, status changes do not
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":4}}"#,
    ])
    .await;
    assert_eq!(
        k.ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.generation}"
        ])
        .await,
        "2"
    );
    assert!(k.ok(&["get", "gadgets"]).await.contains("w1"), "categories");

    // another logical cluster knows nothing of it
    let (code, _) = admin
        .get("/clusters/other/apis/example.com/v1/namespaces/default/widgets")
        .await;
    assert_eq!(code, 404);
    let (_, crds) = admin
        .get("/clusters/other/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        .await;
    assert_eq!(crds["items"].as_array().unwrap().len(), 0);

    // deleting the CRD deletes its custom resources first
    k.ok(&["delete", "crd", "widgets.example.com", "--timeout=30s"])
        .await;
    for _ in 0..100 {
        if admin
            .get("/clusters/root/apis/example.com/v1/namespaces/default/widgets/w1")
            .await
            .0
            == 404
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(admin.get("/clusters/root/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com").await.0, 404);
    assert!(
        admin
            .get("/clusters/root/apis/example.com/v1/namespaces/default/widgets")
            .await
            .0
            == 404
    );
}

#[tokio::test]
async fn invalid_crds_are_rejected_with_field_causes() {
    let env = TestShard::builder().start().await;
    let admin = env.admin();
    let (code, body) = admin
        .post(
            "/clusters/root/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            serde_json::json!({
                "metadata": {"name": "things.example.com"},
                "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "stuff", "kind": "Thing"},
                    "versions": [{"name": "v1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}}]}
            }),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"metadata.name"), "{body}");
    assert!(fields.contains(&"spec.versions"), "{body}");
}

fn short_name_crd(group: &str, plural: &str, kind: &str) -> String {
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    plural: {plural}
    singular: {singular}
    kind: {kind}
    shortNames: [exmp]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#,
        singular = plural.trim_end_matches('s')
    )
}

/// kube lists every CRD group at the same priority, ordered by `<version>.<group>`, and
/// kubectl gives a short name shared by two groups to the one listed first: with
/// `examples.test.com` registered before `foos.bar.com`, `kubectl get exmp` still means
/// bar.com's foos, as on kube-apiserver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_short_names_resolve_in_kube_discovery_order() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();
    for (group, plural, kind) in [
        ("test.com", "examples", "Example"),
        ("bar.com", "foos", "Foo"),
    ] {
        k.apply_stdin(&["apply", "-f", "-"], &short_name_crd(group, plural, kind))
            .await;
        k.ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{plural}.{group}"),
            "--timeout=30s",
        ])
        .await;
    }
    k.apply_stdin(
        &["apply", "-f", "-"],
        "apiVersion: test.com/v1\nkind: Example\nmetadata: {name: from-test, namespace: default}\n",
    )
    .await;
    k.apply_stdin(
        &["apply", "-f", "-"],
        "apiVersion: bar.com/v1\nkind: Foo\nmetadata: {name: from-bar, namespace: default}\n",
    )
    .await;

    // discovery order: built-in groups first, then bar.com before test.com
    let groups = k.ok(&["api-versions"]).await;
    let lines: Vec<&str> = groups.lines().collect();
    let pos = |gv: &str| lines.iter().position(|l| *l == gv).unwrap_or(usize::MAX);
    assert!(pos("bar.com/v1") < pos("test.com/v1"), "{groups}");
    let raw = k.ok(&["get", "--raw", "/apis"]).await;
    let list: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let names: Vec<&str> = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    let at = |n: &str| names.iter().position(|g| *g == n).unwrap();
    assert!(
        at("rbac.authorization.k8s.io") < at("apiextensions.k8s.io"),
        "{names:?}"
    );
    assert!(at("apiextensions.k8s.io") < at("bar.com"), "{names:?}");
    assert!(at("bar.com") < at("test.com"), "{names:?}");

    let out = k.ok(&["get", "exmp", "-n", "default", "-o", "name"]).await;
    assert_eq!(out.trim(), "foo.bar.com/from-bar", "{out}");
}
