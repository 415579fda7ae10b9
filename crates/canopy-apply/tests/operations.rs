//! Apply and update, modelled on kube's fieldmanager unit and integration tests.

mod common;

use canopy_apply::{
    upgrade_client_side_apply, ApplyError, FieldManager, LAST_APPLIED_CONFIG_ANNOTATION,
};
use common::*;
use serde_json::{json, Value};

fn nginx_deployment(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "deployment", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    })
}

/// kube's TestApplyManagedFields: an apply, then two merge patches by another manager.
#[test]
fn configmap_apply_then_updates_matches_kube() {
    let fm = configmaps();
    let applied = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "test-cm", "namespace": "default", "labels": {"test-label": "test"}},
        "data": {"key": "value"}
    });
    let obj = fm
        .apply(None, &applied, "apply_test", false, at(0))
        .unwrap();
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{
            "manager": "apply_test",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": "2023-11-14T22:13:20Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}}
        }])
    );
    let live = stored(obj);

    let new = merge_patch(&live, &json!({"data": {"new-key": "value"}}));
    let live = stored(fm.update(Some(&live), &new, "updater", at(1)));
    let new = merge_patch(&live, &json!({"data": {"key": "new value"}}));
    let live = stored(fm.update(Some(&live), &new, "updater", at(2)));

    assert_eq!(
        live["data"],
        json!({"key": "new value", "new-key": "value"})
    );
    assert_eq!(
        live["metadata"]["managedFields"],
        json!([
            {
                "manager": "apply_test",
                "operation": "Apply",
                "apiVersion": "v1",
                "time": "2023-11-14T22:13:20Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:test-label": {}}}}
            },
            {
                "manager": "updater",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2023-11-14T22:13:22Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:key": {}, "f:new-key": {}}}
            }
        ])
    );
}

#[test]
fn configmap_create_is_owned_by_its_creator() {
    let fm = configmaps();
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "labels": {"app": "x"}},
        "data": {"key": "value"}
    });
    let obj = fm.update(None, &cm, "kubectl-create", at(0));
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2023-11-14T22:13:20Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:key": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
        }])
    );
}

/// The FieldsV1 of a Deployment apply, as kube writes it.
#[test]
fn deployment_apply_fields_v1() {
    let obj = deployments()
        .apply(None, &nginx_deployment(3), "apply_test", false, at(0))
        .unwrap();
    assert_eq!(
        owners(&obj),
        [(
            "apply_test".to_string(),
            "Apply".to_string(),
            serde_json::from_str::<Value>(
                r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
            )
            .unwrap()
        )]
    );
    assert_eq!(obj["metadata"]["managedFields"][0]["apiVersion"], "apps/v1");
    assert_eq!(obj["spec"]["replicas"], 3);
}

/// kube's TestApplyConvertsManagedFieldsVersion: managedFields sent on create are kept, and
/// a later apply by that manager replaces its entry.
#[test]
fn deployment_sidecar_apply_matches_kube() {
    let fm = deployments();
    let mut created = nginx_deployment(1);
    created["metadata"]["labels"] = json!({"app": "nginx"});
    created["metadata"]["managedFields"] = json!([{
        "manager": "sidecar_controller",
        "operation": "Apply",
        "apiVersion": "extensions/v1beta1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:sidecar_version": {}}},
            "f:spec": {"f:template": {"f: spec": {"f:containers": {"k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}}}}}}
        }
    }]);
    let live = stored(fm.update(None, &created, "Go-http-client", at(0)));
    assert_eq!(owners(&live).len(), 2);

    let applied = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "deployment", "labels": {"sidecar_version": "release"}},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "sidecar:latest"}]}}}
    });
    let obj = fm
        .apply(Some(&live), &applied, "sidecar_controller", false, at(1))
        .unwrap();
    let entries = obj["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let sidecar = entries
        .iter()
        .find(|e| e["manager"] == "sidecar_controller")
        .unwrap();
    assert_eq!(sidecar["apiVersion"], "apps/v1");
    assert_eq!(
        sidecar["fieldsV1"].to_string(),
        r#"{"f:metadata":{"f:labels":{"f:sidecar_version":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"sidecar\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
    );
    let names: Vec<&str> = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "sidecar"]);
    assert_eq!(
        obj["metadata"]["labels"],
        json!({"app": "nginx", "sidecar_version": "release"})
    );
}

/// kube's TestApplyUpdateApplyConflictForced, with kube's conflict message.
#[test]
fn conflict_then_force() {
    let fm = deployments();
    let live = stored(
        fm.apply(None, &nginx_deployment(3), "apply_test", false, at(0))
            .unwrap(),
    );
    let new = merge_patch(&live, &json!({"spec": {"replicas": 5}}));
    let live = stored(fm.update(Some(&live), &new, "kubectl-client-side-apply", at(1)));
    assert_eq!(
        fields_of(&live, "kubectl-client-side-apply"),
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );

    let err = fm
        .apply(
            Some(&live),
            &nginx_deployment(3),
            "apply_test",
            false,
            at(2),
        )
        .unwrap_err();
    let ApplyError::Conflicts(conflicts) = &err else {
        panic!("expected conflicts, got {err:?}")
    };
    assert_eq!(
        conflicts.message(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    assert_eq!(err.code(), 409);
    assert_eq!(
        err.to_status(),
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas",
            "reason": "Conflict",
            "details": {"causes": [{
                "reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
                "field": ".spec.replicas"
            }]},
            "code": 409
        })
    );

    let obj = fm
        .apply(Some(&live), &nginx_deployment(3), "apply_test", true, at(3))
        .unwrap();
    assert_eq!(obj["spec"]["replicas"], 3);
    // The updater owned nothing else: its entry is gone.
    assert_eq!(fields_of(&obj, "kubectl-client-side-apply"), None);
    assert!(fields_of(&obj, "apply_test").unwrap()["f:spec"]["f:replicas"].is_object());
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let fm = deployments();
    let live = stored(
        fm.apply(None, &nginx_deployment(3), "a", false, at(0))
            .unwrap(),
    );
    let mut other = nginx_deployment(4);
    other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let err = fm
        .apply(Some(&live), &other, "b", false, at(1))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn two_appliers_share_a_field() {
    let fm = deployments();
    let live = stored(
        fm.apply(None, &nginx_deployment(3), "a", false, at(0))
            .unwrap(),
    );
    let b_config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "deployment"}, "spec": {"replicas": 3}
    });
    // Same value: no conflict, shared ownership, object unchanged (so no time for b).
    let live = stored(fm.apply(Some(&live), &b_config, "b", false, at(1)).unwrap());
    assert_eq!(
        fields_of(&live, "b"),
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );
    let b_entry = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "b")
        .unwrap();
    assert!(b_entry.get("time").is_none());

    // a stops applying replicas: b still owns it, so it stays.
    let mut a_config = nginx_deployment(3);
    a_config["spec"].as_object_mut().unwrap().remove("replicas");
    let live = stored(fm.apply(Some(&live), &a_config, "a", false, at(2)).unwrap());
    assert_eq!(live["spec"]["replicas"], 3);
    assert!(fields_of(&live, "a").unwrap()["f:spec"]
        .get("f:replicas")
        .is_none());

    // b stops applying it too: nobody owns it, it is removed, and b's entry is gone.
    let b_config =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deployment"}});
    let live = fm.apply(Some(&live), &b_config, "b", false, at(3)).unwrap();
    assert!(live["spec"].get("replicas").is_none());
    assert_eq!(fields_of(&live, "b"), None);
}

/// kube's TestApplyRemoveContainerPort.
#[test]
fn field_dropped_by_its_only_manager_is_removed() {
    let fm = deployments();
    let mut with_port = nginx_deployment(3);
    with_port["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80, "protocol": "TCP"}]);
    let live = stored(
        fm.apply(None, &with_port, "apply_test", false, at(0))
            .unwrap(),
    );
    assert_eq!(
        fields_of(&live, "apply_test").unwrap()["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"nginx\"}"]["f:ports"],
        json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}})
    );
    let obj = fm
        .apply(
            Some(&live),
            &nginx_deployment(3),
            "apply_test",
            false,
            at(1),
        )
        .unwrap();
    let container = &obj["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container,
        &json!({"name": "nginx", "image": "nginx:latest"})
    );
}

#[test]
fn field_dropped_but_co_owned_is_kept() {
    let fm = deployments();
    let mut with_port = nginx_deployment(3);
    with_port["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80}]);
    let live = stored(fm.apply(None, &with_port, "a", false, at(0)).unwrap());
    // b applies the same port (protocol defaulted by the key's default: same item).
    let b = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deployment"},
        "spec": {"template": {"spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": 80}]}]}}}
    });
    let live = stored(fm.apply(Some(&live), &b, "b", false, at(1)).unwrap());
    let obj = fm
        .apply(Some(&live), &nginx_deployment(3), "a", false, at(2))
        .unwrap();
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80}])
    );
    // a no longer owns the port, b does.
    let a = fields_of(&obj, "a").unwrap();
    assert!(
        a["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]
            .get("f:ports")
            .is_none()
    );
}

#[test]
fn containers_merge_by_name() {
    let fm = deployments();
    let live = stored(
        fm.apply(None, &nginx_deployment(3), "a", false, at(0))
            .unwrap(),
    );
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deployment"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "busybox", "args": ["sleep", "1d"]}
        ]}}}
    });
    let live = stored(fm.apply(Some(&live), &sidecar, "b", false, at(1)).unwrap());
    let mut a2 = nginx_deployment(3);
    a2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    let obj = fm.apply(Some(&live), &a2, "a", false, at(2)).unwrap();
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"],
        json!([
            {"name": "nginx", "image": "nginx:1.27"},
            {"name": "sidecar", "image": "busybox", "args": ["sleep", "1d"]}
        ])
    );
    assert_eq!(
        fields_of(&obj, "b").unwrap()["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"sidecar\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}})
    );
}

#[test]
fn conditions_merge_by_type_on_the_status_subresource() {
    let main = deployments_with_status();
    let status = deployment_status();
    let live = stored(
        main.apply(None, &nginx_deployment(1), "a", false, at(0))
            .unwrap(),
    );

    // A controller updates status through the subresource.
    let new = merge_patch(
        &live,
        &json!({"status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}}),
    );
    let live = stored(status.update(Some(&live), &new, "controller", at(1)));
    let entry = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "controller")
        .unwrap()
        .clone();
    assert_eq!(entry["subresource"], "status");
    // `status` was absent (JSON objects have no zero-valued structs), so it was added too,
    // as for custom resources in kube.
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {".": {}, "f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
    );

    // Another manager applies a different condition: merged by type.
    let cond = |ty: &str, st: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deployment"},
               "status": {"conditions": [{"type": ty, "status": st}]}})
    };
    let live = stored(
        status
            .apply(
                Some(&live),
                &cond("Progressing", "True"),
                "other",
                false,
                at(2),
            )
            .unwrap(),
    );
    assert_eq!(
        live["status"]["conditions"],
        json!([{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}])
    );

    // Changing the controller's condition conflicts.
    let err = status
        .apply(
            Some(&live),
            &cond("Available", "False"),
            "other",
            false,
            at(3),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "controller" with subresource "status" using apps/v1: .status.conditions[type="Available"].status"#
    );

    // The main resource ignores status: an apply there neither owns nor conflicts on it.
    let mut with_status = nginx_deployment(1);
    with_status["status"] = json!({"replicas": 7});
    let obj = main
        .apply(Some(&live), &with_status, "a", false, at(4))
        .unwrap();
    assert!(fields_of(&obj, "a").unwrap().get("f:status").is_none());
}

#[test]
fn sets_union_and_remove_by_value() {
    let fm = widgets();
    let w = |tags: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"tags": tags}})
    };
    let live = stored(
        fm.apply(None, &w(json!(["a", "shared"])), "a", false, at(0))
            .unwrap(),
    );
    let live = stored(
        fm.apply(Some(&live), &w(json!(["b", "shared"])), "b", false, at(1))
            .unwrap(),
    );
    // Items new to the set go before the next item shared with the configuration.
    assert_eq!(live["spec"]["tags"], json!(["a", "b", "shared"]));
    assert_eq!(
        fields_of(&live, "b"),
        Some(json!({"f:spec": {"f:tags": {"v:\"b\"": {}, "v:\"shared\"": {}}}}))
    );
    // a drops its tags: "a" goes, "shared" stays (b owns it).
    let a = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}});
    let obj = fm.apply(Some(&live), &a, "a", false, at(2)).unwrap();
    assert_eq!(obj["spec"]["tags"], json!(["b", "shared"]));
}

#[test]
fn atomic_lists_are_replaced_whole() {
    let fm = widgets();
    let w = |args: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"args": args}})
    };
    let live = stored(
        fm.apply(None, &w(json!(["x", "y"])), "a", false, at(0))
            .unwrap(),
    );
    assert_eq!(
        fields_of(&live, "a"),
        Some(json!({"f:spec": {"f:args": {}}}))
    );
    let err = fm
        .apply(Some(&live), &w(json!(["z"])), "b", false, at(1))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.args"#
    );
    let obj = fm
        .apply(Some(&live), &w(json!(["z"])), "b", true, at(1))
        .unwrap();
    assert_eq!(obj["spec"]["args"], json!(["z"]));
    assert_eq!(fields_of(&obj, "a"), None);
}

#[test]
fn granular_and_atomic_maps() {
    let fm = widgets();
    let w = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
    let live = stored(
        fm.apply(
            None,
            &w(json!({"params": {"p1": "1"}, "selector": {"a": "1"}})),
            "a",
            false,
            at(0),
        )
        .unwrap(),
    );
    assert_eq!(
        fields_of(&live, "a"),
        Some(json!({"f:spec": {"f:params": {"f:p1": {}}, "f:selector": {}}}))
    );
    // Granular: keys merge.
    let live = stored(
        fm.apply(
            Some(&live),
            &w(json!({"params": {"p2": "2"}})),
            "b",
            false,
            at(1),
        )
        .unwrap(),
    );
    assert_eq!(live["spec"]["params"], json!({"p1": "1", "p2": "2"}));
    // Atomic: a different value conflicts; forced, it replaces the whole map.
    let b = w(json!({"selector": {"b": "2"}}));
    assert!(matches!(
        fm.apply(Some(&live), &b, "b", false, at(2)),
        Err(ApplyError::Conflicts(_))
    ));
    let obj = fm.apply(Some(&live), &b, "b", true, at(2)).unwrap();
    assert_eq!(obj["spec"]["selector"], json!({"b": "2"}));
}

#[test]
fn preserve_unknown_fields_are_deduced() {
    let fm = widgets();
    let w = |extra: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"extra": extra}})
    };
    let live = stored(
        fm.apply(
            None,
            &w(json!({"m": {"x": 1}, "l": [1, 2]})),
            "a",
            false,
            at(0),
        )
        .unwrap(),
    );
    assert_eq!(
        fields_of(&live, "a"),
        Some(json!({"f:spec": {"f:extra": {"f:l": {}, "f:m": {".": {}, "f:x": {}}}}}))
    );
    let obj = fm
        .apply(Some(&live), &w(json!({"m": {"y": 2}})), "b", false, at(1))
        .unwrap();
    assert_eq!(
        obj["spec"]["extra"],
        json!({"m": {"x": 1, "y": 2}, "l": [1, 2]})
    );
}

/// An object that lost its managedFields is owned by `before-first-apply` at its first apply.
#[test]
fn before_first_apply() {
    let fm = deployments();
    let live = stored(fm.update(None, &nginx_deployment(3), "creator", at(0)));
    // A client clears managedFields (kube's TestClearManagedFieldsWithMergePatch).
    let new = merge_patch(&live, &json!({"metadata": {"managedFields": [{}]}}));
    let live = stored(fm.update(Some(&live), &new, "clearer", at(1)));
    assert!(live["metadata"].get("managedFields").is_none());
    // Still untracked after another update.
    let new = merge_patch(&live, &json!({"spec": {"paused": true}}));
    let live = stored(fm.update(Some(&live), &new, "pauser", at(2)));
    assert!(live["metadata"].get("managedFields").is_none());

    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deployment"},
                         "spec": {"replicas": 3}});
    let obj = fm
        .apply(Some(&live), &applied, "applier", false, at(3))
        .unwrap();
    let before = fields_of(&obj, "before-first-apply").unwrap();
    assert!(before["f:spec"]["f:paused"].is_object());
    assert!(before["f:spec"]["f:replicas"].is_object());
    assert_eq!(
        fields_of(&obj, "applier"),
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );
    let entry = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "before-first-apply")
        .unwrap();
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["time"], "2023-11-14T22:13:23Z");

    // Changing a field it owns conflicts with it.
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deployment"},
                         "spec": {"paused": false}});
    let err = fm
        .apply(Some(&obj), &applied, "applier", false, at(4))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.paused"#
    );
}

/// kube's TestCapManagersManagerMergesEntries (cap of 3).
#[test]
fn ancient_changes_with_a_cap_of_three() {
    let fm = configmaps().with_max_update_managers(3);
    let cm = |labels: &[&str]| {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|l| (l.to_string(), json!("true")))
            .collect();
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}})
    };
    let mut live: Option<Value> = None;
    let steps: [&[&str]; 4] = [
        &["one"],
        &["one", "two"],
        &["one", "two", "three"],
        &["one", "two", "three", "four"],
    ];
    for (i, labels) in steps.iter().enumerate() {
        let mut new = cm(labels);
        if let Some(l) = &live {
            new["metadata"]["managedFields"] = l["metadata"]["managedFields"].clone();
        }
        let obj = stored(fm.update(
            live.as_ref(),
            &new,
            &format!("fieldmanager_test_update_{}", i + 1),
            at(i as i64 + 1),
        ));
        // A no-op update changes nothing.
        let again = fm.update(Some(&obj), &obj, "no-op-update", at(100));
        assert_eq!(
            again["metadata"]["managedFields"],
            obj["metadata"]["managedFields"]
        );
        live = Some(obj);
    }
    let live = live.unwrap();
    let managers: Vec<String> = owners(&live).into_iter().map(|(m, _, _)| m).collect();
    assert_eq!(
        managers,
        [
            "ancient-changes",
            "fieldmanager_test_update_3",
            "fieldmanager_test_update_4"
        ]
    );
    assert_eq!(
        fields_of(&live, "ancient-changes"),
        Some(json!({"f:metadata": {"f:labels": {".": {}, "f:one": {}, "f:two": {}}}}))
    );
    assert_eq!(
        live["metadata"]["managedFields"][0]["time"],
        "2023-11-14T22:13:22Z"
    );
}

#[test]
fn ancient_changes_past_ten_update_managers() {
    let fm = configmaps();
    let mut live = stored(fm.update(
        None,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k0": "v"}}),
        "m0",
        at(0),
    ));
    for i in 1..=11 {
        let new = merge_patch(&live, &json!({"data": {format!("k{i}"): "v"}}));
        live = stored(fm.update(Some(&live), &new, &format!("m{i}"), at(i)));
    }
    let managers: Vec<String> = owners(&live).into_iter().map(|(m, _, _)| m).collect();
    assert_eq!(managers.len(), 10);
    assert_eq!(managers[0], "ancient-changes");
    assert_eq!(managers[1], "m3");
    let ancient = fields_of(&live, "ancient-changes").unwrap();
    for k in ["f:k0", "f:k1", "f:k2"] {
        assert!(ancient["f:data"][k].is_object(), "{ancient}");
    }
}

/// kube's lastappliedmanager: `kubectl` upgrading from client-side apply does not conflict
/// with fields the last-applied configuration set; other managers do.
#[test]
fn last_applied_allows_kubectl_to_take_over() {
    let fm = deployments();
    let mut csa = nginx_deployment(3);
    let last_applied = canopy_apply::go_json(&csa);
    csa["metadata"]["annotations"] = json!({LAST_APPLIED_CONFIG_ANNOTATION: last_applied});
    let live = stored(fm.update(None, &csa, "kubectl-client-side-apply", at(0)));

    let mut config = nginx_deployment(4);
    config["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    let err = fm
        .apply(Some(&live), &config, "controller", false, at(1))
        .unwrap_err();
    assert_eq!(err.code(), 409);

    let obj = fm
        .apply(Some(&live), &config, "kubectl", false, at(1))
        .unwrap();
    assert_eq!(obj["spec"]["replicas"], 4);
    // The annotation follows the applied configuration.
    let ann = obj["metadata"]["annotations"][LAST_APPLIED_CONFIG_ANNOTATION]
        .as_str()
        .unwrap();
    assert_eq!(ann, format!("{}\n", canopy_apply::go_json(&config)));
    assert!(ann.contains("\"replicas\":4"));

    // A field changed since the last client-side apply is still a conflict.
    let new = merge_patch(&live, &json!({"spec": {"paused": true}}));
    let live = stored(fm.update(Some(&live), &new, "kubectl-edit", at(2)));
    let mut config = nginx_deployment(3);
    config["spec"]["paused"] = json!(false);
    let err = fm
        .apply(Some(&live), &config, "kubectl", false, at(3))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.paused"#
    );
}

/// Opt-in: the applier takes over the client-side applier's fields, so fields dropped from
/// the configuration are removed.
#[test]
fn last_applied_upgrade_removes_dropped_fields() {
    let cm = |labels: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}, "data": {"k": "v"}});
    let mut csa = cm(json!({"a": "1", "b": "2"}));
    csa["metadata"]["annotations"] = json!({LAST_APPLIED_CONFIG_ANNOTATION: canopy_apply::go_json(&cm(json!({"a": "1", "b": "2"})))});
    let fm = configmaps();
    let live = stored(fm.update(None, &csa, "kubectl-client-side-apply", at(0)));

    // Without the upgrade, b stays (kubectl-client-side-apply still owns it).
    let kept = fm
        .apply(Some(&live), &cm(json!({"a": "1"})), "kubectl", false, at(1))
        .unwrap();
    assert_eq!(kept["metadata"]["labels"], json!({"a": "1", "b": "2"}));

    let upgraded = fm.clone().with_last_applied_upgrade(true);
    let obj = upgraded
        .apply(Some(&live), &cm(json!({"a": "1"})), "kubectl", false, at(1))
        .unwrap();
    assert_eq!(obj["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(fields_of(&obj, "kubectl-client-side-apply"), None);
    assert_eq!(
        fields_of(&obj, "kubectl"),
        Some(json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}))
    );
}

#[test]
fn client_side_apply_upgrade_helper() {
    let mut obj = json!({"metadata": {"managedFields": [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}},
        {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:b": {}}}}
    ]}});
    assert!(upgrade_client_side_apply(
        &mut obj,
        "kubectl-client-side-apply",
        "kubectl"
    ));
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}}}])
    );
    assert!(!upgrade_client_side_apply(
        &mut obj,
        "kubectl-client-side-apply",
        "kubectl"
    ));
    // Without an Apply entry, the CSA entry itself becomes one.
    let mut obj = json!({"metadata": {"managedFields": [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}
    ]}});
    assert!(upgrade_client_side_apply(
        &mut obj,
        "kubectl-client-side-apply",
        "kubectl"
    ));
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(obj["metadata"]["managedFields"][0]["operation"], "Apply");
}

#[test]
fn metadata_is_never_owned() {
    let fm = configmaps();
    let applied = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "c", "namespace": "default", "uid": "u", "resourceVersion": "5",
            "generation": 2, "creationTimestamp": "2020-01-01T00:00:00Z", "selfLink": "/x",
            "deletionTimestamp": "2020-01-01T00:00:00Z", "annotations": {"a": "b"}
        },
        "data": {"k": "v"}
    });
    let obj = fm.apply(None, &applied, "m", false, at(0)).unwrap();
    assert_eq!(
        fields_of(&obj, "m"),
        Some(json!({"f:data": {"f:k": {}}, "f:metadata": {"f:annotations": {"f:a": {}}}}))
    );
    // An apply of nothing but identity leaves no entry (kube's TestApplyRemovesEmptyManagedFields).
    let empty = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}});
    let obj = fm.apply(None, &empty, "m", false, at(0)).unwrap();
    let obj = fm
        .apply(Some(&stored(obj)), &empty, "m", false, at(1))
        .unwrap();
    assert!(obj["metadata"].get("managedFields").is_none());
}

#[test]
fn apply_errors() {
    let fm = deployments();
    let mut wrong = nginx_deployment(3);
    wrong["apiVersion"] = json!("apps/v2");
    let err = fm.apply(None, &wrong, "m", false, at(0)).unwrap_err();
    assert_eq!(
        err,
        ApplyError::BadRequest("invalid object type: apps/v2, Kind=Deployment".into())
    );
    assert_eq!(err.code(), 400);

    let mut with_mf = nginx_deployment(3);
    with_mf["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        fm.apply(None, &with_mf, "m", false, at(0)).unwrap_err(),
        ApplyError::BadRequest("metadata.managedFields must be nil".into())
    );

    let mut bad = nginx_deployment(3);
    bad["spec"]["replicas"] = json!("three");
    bad["spec"]["bogus"] = json!(1);
    let ApplyError::InvalidObject(msg) = fm.apply(None, &bad, "m", false, at(0)).unwrap_err()
    else {
        panic!()
    };
    assert!(
        msg.starts_with(
            "failed to create typed patch object (/deployment; apps/v1, Kind=Deployment): errors:"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(".spec.replicas: expected numeric (int or float), got \"three\""),
        "{msg}"
    );
    assert!(
        msg.contains(".spec.bogus: field not declared in schema"),
        "{msg}"
    );

    let mut dup = nginx_deployment(3);
    dup["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]);
    let ApplyError::InvalidObject(msg) = fm.apply(None, &dup, "m", false, at(0)).unwrap_err()
    else {
        panic!()
    };
    assert!(
        msg.contains("duplicate entries for key [name=\"a\"]"),
        "{msg}"
    );

    // Lenient managers take undeclared fields as deduced.
    let lenient = deployments().lenient(true);
    let mut extra = nginx_deployment(3);
    extra["spec"]["bogus"] = json!({"x": 1});
    assert!(lenient.apply(None, &extra, "m", false, at(0)).is_ok());
}

#[test]
fn updates_transfer_ownership_without_conflicts() {
    let fm = deployments();
    let live = stored(
        fm.apply(None, &nginx_deployment(3), "applier", false, at(0))
            .unwrap(),
    );
    let new = merge_patch(
        &live,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}}),
    );
    let obj = stored(fm.update(Some(&live), &new, "kubectl-edit", at(1)));
    assert_eq!(
        fields_of(&obj, "kubectl-edit"),
        Some(
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}})
        )
    );
    let applier = fields_of(&obj, "applier").unwrap();
    assert_eq!(
        applier["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"],
        json!({".": {}, "f:name": {}})
    );
    // A no-op update by someone else adds no entry.
    let same = fm.update(Some(&obj), &obj, "nobody", at(2));
    assert_eq!(
        same["metadata"]["managedFields"],
        obj["metadata"]["managedFields"]
    );
    // Removing a field takes it from its owners.
    let new = merge_patch(&obj, &json!({"metadata": {"labels": null}}));
    let obj = fm.update(Some(&obj), &new, "remover", at(3));
    assert!(fields_of(&obj, "applier").unwrap()["f:metadata"].is_null());
    assert_eq!(fields_of(&obj, "remover"), None);
}

#[test]
fn managed_fields_sent_by_clients() {
    let fm = configmaps();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let live = stored(fm.update(None, &cm, "creator", at(0)));

    // Valid managedFields are taken as sent.
    let mut new = live.clone();
    new["metadata"]["managedFields"] = json!([{
        "manager": "someone", "operation": "Apply", "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}
    }]);
    let obj = fm.update(Some(&live), &new, "editor", at(1));
    assert_eq!(
        owners(&obj),
        [(
            "someone".into(),
            "Apply".into(),
            json!({"f:data": {"f:a": {}}})
        )]
    );

    // Invalid ones are ignored: the live object's are kept.
    let mut new = live.clone();
    new["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV2"}]);
    let obj = fm.update(Some(&live), &new, "editor", at(1));
    assert_eq!(
        obj["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );

    // The status subresource never takes managedFields from the request.
    let status = configmaps().with_subresource("status");
    let mut new = live.clone();
    new["metadata"]["managedFields"] = json!([]);
    let obj = status.update(Some(&live), &new, "editor", at(1));
    assert_eq!(
        obj["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );

    // An object that does not fit the schema keeps the live managedFields.
    let mut bad = live.clone();
    bad["data"]["a"] = json!(5);
    let obj = fm.update(Some(&live), &bad, "editor", at(1));
    assert_eq!(
        obj["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );
    assert!(fm.try_update(Some(&live), &bad, "editor", at(1)).is_err());
}

#[test]
fn apply_is_idempotent() {
    let fm = deployments();
    let live = stored(
        fm.apply(None, &nginx_deployment(3), "a", false, at(0))
            .unwrap(),
    );
    let again = fm
        .apply(Some(&live), &nginx_deployment(3), "a", false, at(5))
        .unwrap();
    assert_eq!(again, live);
}

#[test]
fn free_functions() {
    let schema = configmap_schema();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    let obj = canopy_apply::apply(None, &cm, "m", false, &schema, at(0)).unwrap();
    assert_eq!(fields_of(&obj, "m"), Some(json!({"f:data": {"f:k": {}}})));
    let new = merge_patch(&obj, &json!({"data": {"k": "w"}}));
    let obj = canopy_apply::update(
        Some(&stored(obj)),
        &new,
        "u",
        Some("status"),
        &schema,
        at(1),
    );
    let entry = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "u")
        .unwrap();
    assert_eq!(entry["subresource"], "status");
    assert!(matches!(
        canopy_apply::apply(None, &json!({"data": {}}), "m", false, &schema, at(0)),
        Err(ApplyError::BadRequest(_))
    ));
    let fm: FieldManager = configmaps();
    assert_eq!(
        fm.field_set(&cm).unwrap().to_fields_v1(),
        json!({"f:data": {"f:k": {}}})
    );
}

/// Ownership recorded while a map was granular is collapsed once the schema makes it
/// atomic (`reconcileManagedFieldsWithSchemaChanges`).
#[test]
fn managed_fields_follow_schema_changes() {
    let fm = widgets();
    let mut live = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w",
        "uid": "u",
        "managedFields": [{"manager": "a", "operation": "Apply", "apiVersion": "example.com/v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:selector": {"f:x": {}}}}}]},
        "spec": {"selector": {"x": "1"}}});
    let b = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                   "spec": {"selector": {"y": "2"}}});
    let err = fm.apply(Some(&live), &b, "b", false, at(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.selector"#
    );
    // An unchanged update rewrites the entry in its reconciled form.
    live = fm.update(Some(&live), &live, "nobody", at(2));
    assert_eq!(
        fields_of(&live, "a"),
        Some(json!({"f:spec": {"f:selector": {}}}))
    );
}

#[test]
fn unnamed_updaters_are_unknown() {
    let fm = configmaps();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    let obj = fm.update(None, &cm, "", at(0));
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "unknown");
}

/// Skipping the typed checks of valid objects (`trusted_updates`) records the same
/// ownership for creates and updates.
#[test]
fn trusted_updates_record_the_same_ownership() {
    let plain = deployments();
    let trusted = deployments().trusted_updates(true);
    let v1 = nginx_deployment(1);
    let a = plain.update(None, &v1, "creator", at(0));
    let b = trusted.update(None, &v1, "creator", at(0));
    assert_eq!(a, b);
    let mut v2 = a.clone();
    v2["spec"]["replicas"] = json!(3);
    v2["metadata"]["labels"] = json!({"tier": "web"});
    assert_eq!(
        plain.update(Some(&a), &v2, "scaler", at(1)),
        trusted.update(Some(&b), &v2, "scaler", at(1))
    );
}
