//! A CRD of our own with two versions (conversion `None`), status and scale
//! subresources: objects are stored once and served in either version, `kubectl scale`
//! works through `/scale`, and generation follows spec changes only.

use std::time::Duration;

use canopy_test_harness::TestShard;
use serde_json::json;

const DB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: databases.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: databases, singular: database, kind: Database, shortNames: [db]}
  versions:
  - name: v1alpha1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "!has(self.replicas) || self.replicas <= 10"
              messageExpression: "'at most 10 replicas, not ' + string(self.replicas)"
            properties:
              replicas: {type: integer, minimum: 0}
              engine:
                type: string
                default: pg
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: engine is immutable, reason: FieldValueForbidden}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "!has(self.replicas) || self.replicas <= 10"
              messageExpression: "'at most 10 replicas, not ' + string(self.replicas)"
            properties:
              replicas: {type: integer, minimum: 0}
              engine:
                type: string
                default: pg
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: engine is immutable, reason: FieldValueForbidden}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
"#;

const BASE: &str = "/clusters/root/apis/example.com";

async fn wait_served(c: &canopy_test_harness::Client) {
    for _ in 0..100 {
        if c.get(&format!("{BASE}/v1/namespaces/default/databases"))
            .await
            .0
            == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("databases never served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_versions_status_and_scale() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();
    k.apply_stdin(&["apply", "-f", "-"], DB_CRD).await;
    let c = env.admin();
    wait_served(&c).await;

    // written as v1alpha1, read as either version
    let (code, created) = c
        .post(
            &format!("{BASE}/v1alpha1/namespaces/default/databases"),
            json!({"apiVersion": "example.com/v1alpha1", "kind": "Database", "metadata": {"name": "orders"}, "spec": {"replicas": 1, "engine": "pg"}}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["apiVersion"], "example.com/v1alpha1");
    let (_, v1) = c
        .get(&format!("{BASE}/v1/namespaces/default/databases/orders"))
        .await;
    assert_eq!(v1["apiVersion"], "example.com/v1");
    assert_eq!(v1["spec"]["engine"], "pg");
    let (_, old) = c
        .get(&format!(
            "{BASE}/v1alpha1/namespaces/default/databases/orders"
        ))
        .await;
    assert_eq!(old["apiVersion"], "example.com/v1alpha1");
    assert_eq!(
        old["metadata"]["resourceVersion"],
        v1["metadata"]["resourceVersion"]
    );
    c.post(
        &format!("{BASE}/v1/namespaces/default/databases"),
        json!({"apiVersion": "example.com/v1", "kind": "Database", "metadata": {"name": "users"}, "spec": {"replicas": 2}}),
    )
    .await;
    for v in ["v1", "v1alpha1"] {
        let (_, list) = c
            .get(&format!("{BASE}/{v}/namespaces/default/databases"))
            .await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{list}");
        assert!(
            items
                .iter()
                .all(|i| i["apiVersion"] == format!("example.com/{v}")),
            "{list}"
        );
    }
    let gen1 = v1["metadata"]["generation"].as_i64().unwrap();

    // kubectl scale goes through /scale; generation moves with spec.replicas
    let out = k.ok(&["scale", "database/orders", "--replicas=4"]).await;
    assert!(out.contains("scaled"), "{out}");
    let (code, scale) = c
        .get(&format!(
            "{BASE}/v1/namespaces/default/databases/orders/scale"
        ))
        .await;
    assert_eq!(code, 200, "{scale}");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"]["replicas"], 0);
    let (_, v1) = c
        .get(&format!("{BASE}/v1/namespaces/default/databases/orders"))
        .await;
    assert_eq!(v1["spec"]["replicas"], 4);
    assert_eq!(v1["metadata"]["generation"].as_i64().unwrap(), gen1 + 1);

    // status (through its subresource) shows in the Scale; it does not bump generation
    let mut st = v1.clone();
    st["status"] = json!({"replicas": 3, "selector": "app=orders"});
    let (code, body) = c
        .put(
            &format!("{BASE}/v1/namespaces/default/databases/orders/status"),
            st,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["generation"].as_i64().unwrap(), gen1 + 1);
    let (_, scale) = c
        .get(&format!(
            "{BASE}/v1alpha1/namespaces/default/databases/orders/scale"
        ))
        .await;
    assert_eq!(
        scale["status"],
        json!({"replicas": 3, "selector": "app=orders"})
    );

    // PUT /scale with a stale resourceVersion is a conflict; a negative count is invalid
    let mut stale = scale.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["spec"]["replicas"] = json!(9);
    let (code, err) = c
        .put(
            &format!("{BASE}/v1/namespaces/default/databases/orders/scale"),
            stale,
        )
        .await;
    assert_eq!(code, 409, "{err}");
    let mut neg = scale.clone();
    neg["spec"]["replicas"] = json!(-1);
    let (code, err) = c
        .put(
            &format!("{BASE}/v1/namespaces/default/databases/orders/scale"),
            neg,
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["details"]["causes"][0]["field"], "spec.replicas");
    let (code, patched) = c
        .patch(
            &format!("{BASE}/v1/namespaces/default/databases/orders/scale"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":2}}"#,
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["replicas"], 2);
    let table = k.ok(&["get", "databases"]).await;
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("orders"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "2", "{table}");

    // CEL rules: a plain rule with messageExpression, and a transition rule
    let (code, err) = c
        .post(
            &format!("{BASE}/v1/namespaces/default/databases"),
            json!({"apiVersion": "example.com/v1", "kind": "Database", "metadata": {"name": "big"}, "spec": {"replicas": 11}}),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(
        err["message"],
        "Database.example.com \"big\" is invalid: spec: Invalid value: \"object\": at most 10 replicas, not 11"
    );
    assert_eq!(err["details"]["causes"][0]["field"], "spec");
    let (code, err) = c
        .patch(
            &format!("{BASE}/v1/namespaces/default/databases/orders"),
            "application/merge-patch+json",
            r#"{"spec":{"engine":"mysql"}}"#,
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["details"]["causes"][0]["reason"], "FieldValueForbidden");
    assert_eq!(err["details"]["causes"][0]["field"], "spec.engine");
    assert_eq!(
        err["details"]["causes"][0]["message"],
        "Forbidden: engine is immutable"
    );
    // defaulted on create; kubectl scale past the rule is refused by it
    assert_eq!(v1["spec"]["engine"], "pg");
    let (_, users) = c
        .get(&format!("{BASE}/v1/namespaces/default/databases/users"))
        .await;
    assert_eq!(users["spec"]["engine"], "pg");
    let o = k.run(&["scale", "database/orders", "--replicas=20"]).await;
    assert!(!o.success);
    assert!(
        o.stderr.contains("at most 10 replicas, not 20"),
        "{}",
        o.stderr
    );
}

const FRUIT_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: fruits.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: fruits, singular: fruit, kind: Fruit}
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields:
    - jsonPath: .spec.color
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              color: {type: string}
              size: {type: integer}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectable_fields_filter_lists() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();
    k.apply_stdin(&["apply", "-f", "-"], FRUIT_CRD).await;
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/fruits.example.com",
    ])
    .await;
    for (name, color) in [("apple", "red"), ("banana", "yellow"), ("cherry", "red")] {
        let y = format!("apiVersion: example.com/v1\nkind: Fruit\nmetadata: {{name: {name}, namespace: default}}\nspec: {{color: {color}, size: 1}}\n");
        for _ in 0..50 {
            if k.run_with_stdin(&["apply", "-f", "-"], Some(&y))
                .await
                .success
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let out = k
        .ok(&[
            "get",
            "fruits",
            "--field-selector",
            "spec.color=red",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out, "fruit.example.com/apple\nfruit.example.com/cherry\n");
    let out = k
        .ok(&[
            "get",
            "fruits",
            "--field-selector",
            "spec.color!=red,metadata.name!=x",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out, "fruit.example.com/banana\n");
    // a field that is not selectable is refused, as kube refuses it
    let o = k
        .run(&["get", "fruits", "--field-selector", "spec.size=1"])
        .await;
    assert!(!o.success);
    assert!(
        o.stderr.contains("field label not supported: spec.size"),
        "{}",
        o.stderr
    );
}
