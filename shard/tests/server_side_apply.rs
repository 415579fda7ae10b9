//! Server-side apply with real clients: kubectl (`apply --server-side`,
//! `--force-conflicts`, the upgrade from client-side apply) and kube-rs's `Patch::Apply`.
//! Field ownership is checked through `metadata.managedFields`.

use canopy_test_harness::TestShard;
use serde_json::{json, Value};

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["manager"].as_str().unwrap_or("").to_string(),
                        m["operation"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn owned_by<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["manager"] == manager))
        .map(|m| &m["fieldsV1"])
        .unwrap_or(&Value::Null)
}

const PORTS_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gateways.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gateways, singular: gateway, kind: Gateway}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
              hosts:
                type: array
                x-kubernetes-list-type: set
                items: {type: string}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();
    let c = env.admin();
    let cm = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: shared, namespace: default}}\ndata: {data}\n")
    };
    let path = "/clusters/root/api/v1/namespaces/default/configmaps/shared";

    // two managers share one object
    k.apply_stdin(
        &["apply", "--server-side", "--field-manager=alice", "-f", "-"],
        &cm("{a: '1', b: '2'}"),
    )
    .await;
    k.apply_stdin(
        &["apply", "--server-side", "--field-manager=bob", "-f", "-"],
        &cm("{c: '3'}"),
    )
    .await;
    let (_, obj) = c.get(path).await;
    assert_eq!(obj["data"], json!({"a": "1", "b": "2", "c": "3"}));
    assert_eq!(
        managers(&obj),
        vec![
            ("alice".to_string(), "Apply".to_string()),
            ("bob".to_string(), "Apply".to_string())
        ]
    );
    assert_eq!(
        owned_by(&obj, "alice"),
        &json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    assert_eq!(owned_by(&obj, "bob"), &json!({"f:data": {"f:c": {}}}));

    // a conflict, then --force-conflicts takes the field over
    let o = k
        .run_with_stdin(
            &["apply", "--server-side", "--field-manager=bob", "-f", "-"],
            Some(&cm("{a: '9', c: '3'}")),
        )
        .await;
    assert!(!o.success);
    assert!(
        o.stderr
            .contains("Apply failed with 1 conflict: conflict with \"alice\": .data.a"),
        "{}",
        o.stderr
    );
    let (_, obj) = c.get(path).await;
    assert_eq!(obj["data"]["a"], "1", "a refused apply changes nothing");
    k.apply_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=bob",
            "-f",
            "-",
        ],
        &cm("{a: '9', c: '3'}"),
    )
    .await;
    let (_, obj) = c.get(path).await;
    assert_eq!(obj["data"]["a"], "9");
    assert_eq!(owned_by(&obj, "alice"), &json!({"f:data": {"f:b": {}}}));
    assert_eq!(
        owned_by(&obj, "bob"),
        &json!({"f:data": {"f:a": {}, "f:c": {}}})
    );

    // a field its only manager stops applying is removed; a shared one stays
    k.apply_stdin(
        &["apply", "--server-side", "--field-manager=alice", "-f", "-"],
        &cm("{c: '3'}"),
    )
    .await;
    let (_, obj) = c.get(path).await;
    assert_eq!(
        obj["data"],
        json!({"a": "9", "c": "3"}),
        "b went with alice; c is bob's too"
    );
    k.apply_stdin(
        &["apply", "--server-side", "--field-manager=alice", "-f", "-"],
        &cm("{}"),
    )
    .await;
    let (_, obj) = c.get(path).await;
    assert_eq!(obj["data"], json!({"a": "9", "c": "3"}));

    // dry run: the answer shows the result, nothing is stored
    let o = k
        .run_with_stdin(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=carol",
                "-o",
                "json",
                "-f",
                "-",
            ],
            Some(&cm("{d: '4'}")),
        )
        .await;
    assert!(o.success, "{}", o.stderr);
    let dry: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(dry["data"]["d"], "4");
    let (_, obj) = c.get(path).await;
    assert!(obj["data"].get("d").is_none());

    // an Update (kubectl edit/patch) takes fields from appliers without conflict
    k.ok(&[
        "patch",
        "configmap",
        "shared",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"10"}}"#,
    ])
    .await;
    let (_, obj) = c.get(path).await;
    assert!(
        managers(&obj).contains(&("kubectl-patch".to_string(), "Update".to_string())),
        "{:?}",
        managers(&obj)
    );
    assert_eq!(owned_by(&obj, "bob"), &json!({"f:data": {"f:c": {}}}));

    // the upgrade from client-side apply: fields dropped from the configuration go
    let up = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: upgraded, namespace: default}}\ndata: {data}\n")
    };
    k.apply_stdin(&["apply", "-f", "-"], &up("{x: '1', y: '2'}"))
        .await;
    let (_, obj) = c
        .get("/clusters/root/api/v1/namespaces/default/configmaps/upgraded")
        .await;
    assert_eq!(
        managers(&obj),
        vec![(
            "kubectl-client-side-apply".to_string(),
            "Update".to_string()
        )]
    );
    k.apply_stdin(&["apply", "--server-side", "-f", "-"], &up("{x: '1'}"))
        .await;
    let (_, obj) = c
        .get("/clusters/root/api/v1/namespaces/default/configmaps/upgraded")
        .await;
    assert_eq!(obj["data"], json!({"x": "1"}), "{obj}");

    // list-map and set merges on a custom resource: each manager keeps its own items
    k.apply_stdin(&["apply", "-f", "-"], PORTS_CRD).await;
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gateways.example.com",
    ])
    .await;
    let gw = |ports: &str, hosts: &str| {
        format!("apiVersion: example.com/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\nspec:\n  ports: {ports}\n  hosts: {hosts}\n")
    };
    for _ in 0..50 {
        if k.run_with_stdin(
            &["apply", "--server-side", "--field-manager=web", "-f", "-"],
            Some(&gw("[{name: http, port: 80}]", "[a.example]")),
        )
        .await
        .success
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    k.apply_stdin(
        &["apply", "--server-side", "--field-manager=tls", "-f", "-"],
        &gw("[{name: https, port: 443}]", "[b.example]"),
    )
    .await;
    let (_, g) = c
        .get("/clusters/root/apis/example.com/v1/namespaces/default/gateways/gw")
        .await;
    assert_eq!(
        g["spec"]["ports"],
        json!([{"name": "http", "port": 80}, {"name": "https", "port": 443}]),
        "{g}"
    );
    assert_eq!(g["spec"]["hosts"], json!(["a.example", "b.example"]));
    assert_eq!(
        owned_by(&g, "tls"),
        &json!({"f:spec": {"f:hosts": {"v:\"b.example\"": {}}, "f:ports": {"k:{\"name\":\"https\"}": {".": {}, "f:name": {}, "f:port": {}}}}})
    );
    // a conflict inside a list item, by key
    let o = k
        .run_with_stdin(
            &["apply", "--server-side", "--field-manager=tls", "-f", "-"],
            Some(&gw(
                "[{name: http, port: 8080}, {name: https, port: 443}]",
                "[b.example]",
            )),
        )
        .await;
    assert!(!o.success);
    assert!(
        o.stderr.contains(".spec.ports[name=\"http\"].port"),
        "{}",
        o.stderr
    );
    // web drops its port: only tls's remains
    k.apply_stdin(
        &["apply", "--server-side", "--field-manager=web", "-f", "-"],
        &gw("[]", "[a.example]"),
    )
    .await;
    let (_, g) = c
        .get("/clusters/root/apis/example.com/v1/namespaces/default/gateways/gw")
        .await;
    assert_eq!(
        g["spec"]["ports"],
        json!([{"name": "https", "port": 443}]),
        "{g}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_patch_apply() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, Patch, PatchParams};

    let env = TestShard::builder().start().await;
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kube config");
    let client = kube::Client::try_from(config).expect("kube client");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");

    let applied = cms
        .patch(
            "kr",
            &PatchParams::apply("kube-rs-a"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kr"}, "data": {"k": "a"}})),
        )
        .await
        .expect("apply creates");
    assert_eq!(applied.data.unwrap()["k"], "a");
    let mf = applied.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("kube-rs-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    let err = cms
        .patch(
            "kr",
            &PatchParams::apply("kube-rs-b"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kr"}, "data": {"k": "b"}})),
        )
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert!(
                s.message.contains("conflict with \"kube-rs-a\": .data.k"),
                "{}",
                s.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let forced = cms
        .patch(
            "kr",
            &PatchParams::apply("kube-rs-b").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kr"}, "data": {"k": "b"}})),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data.unwrap()["k"], "b");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(
        managers,
        vec!["kube-rs-b".to_string()],
        "kube-rs-a lost its only field"
    );
}
