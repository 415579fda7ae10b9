//! Every supported kind survives JSON → protobuf → JSON, and bodies built independently
//! with the `k8s-pb` crate's prost types decode to the JSON a Go client would send.

use canopy_protobuf::{decode, encode, DecodeError, MAGIC};
use prost::Message;
use serde_json::{json, Value};

fn meta(name: &str) -> Value {
    json!({
        "name": name, "namespace": "team", "uid": "3b7f1c2e-aaaa-bbbb-cccc-0123456789ab",
        "resourceVersion": "42", "generation": 3,
        "creationTimestamp": "2024-05-06T07:08:09Z",
        "labels": {"app": "web", "tier": ""},
        "annotations": {"note": "x"},
        "finalizers": ["example.com/f"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u1", "controller": true, "blockOwnerDeletion": false}],
        "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2024-05-06T07:08:09Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}],
    })
}

fn samples() -> Vec<Value> {
    vec![
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": meta("ns"), "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active", "conditions": [{"type": "NamespaceDeletionContentFailure", "status": "False", "lastTransitionTime": "2024-01-01T00:00:00Z", "reason": "R", "message": "m"}]}}),
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("cm"), "data": {"a": "1", "empty": ""}, "binaryData": {"b": "AAEC"}, "immutable": true}),
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": meta("s"), "data": {"password": "czNjcmV0"}, "stringData": {"x": "y"}, "type": "Opaque", "immutable": false}),
        json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": meta("sa"), "secrets": [{"name": "tok", "namespace": "team"}], "imagePullSecrets": [{"name": "pull"}], "automountServiceAccountToken": false}),
        json!({"kind": "Event", "apiVersion": "v1", "metadata": meta("ev"), "involvedObject": {"kind": "ConfigMap", "namespace": "team", "name": "cm", "uid": "u", "apiVersion": "v1", "resourceVersion": "1", "fieldPath": "data"}, "reason": "Created", "message": "hello", "source": {"component": "c", "host": "h"}, "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:01Z", "count": 2, "type": "Normal", "eventTime": "2024-01-01T00:00:00.123456Z", "series": {"count": 3, "lastObservedTime": "2024-01-01T00:00:02.000001Z"}, "action": "Create", "reportingComponent": "rc", "reportingInstance": "ri"}),
        json!({"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": meta("ev2"), "eventTime": "2024-01-01T00:00:00.500000Z", "reportingController": "ctl", "reportingInstance": "i", "action": "A", "reason": "R", "regarding": {"kind": "Secret", "name": "s"}, "note": "n", "type": "Warning", "deprecatedCount": 1}),
        json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": meta("l"), "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15, "acquireTime": "2024-01-01T00:00:00.000000Z", "renewTime": "2024-01-01T00:00:10.250000Z", "leaseTransitions": 4}}),
        json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": meta("r"), "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}]}),
        json!({"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": meta("cr"), "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}], "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}]}}),
        json!({"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": meta("rb"), "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}, {"kind": "ServiceAccount", "name": "bot", "namespace": "team"}], "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
        json!({"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": meta("crb"), "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}], "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}}),
        json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {}, "status": {"userInfo": {"username": "a", "uid": "u", "groups": ["g"], "extra": {"scopes": ["x", "y"]}}}}),
        json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {}, "spec": {"token": "t", "audiences": ["api"]}}),
        json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {}, "spec": {"audiences": ["api"], "expirationSeconds": 3600, "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s", "uid": "u"}}}),
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {}, "spec": {"resourceAttributes": {"namespace": "team", "verb": "list", "group": "apps", "version": "v1", "resource": "deployments", "subresource": "scale", "name": "d"}}}),
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {}, "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}),
        json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {}, "spec": {"namespace": "team"}}),
        json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {}, "spec": {"user": "bob", "groups": ["g"], "uid": "1", "extra": {"k": ["v"]}, "resourceAttributes": {"verb": "get", "resource": "secrets"}}}),
        json!({"kind": "LocalSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {"namespace": "team"}, "spec": {"user": "bob", "resourceAttributes": {"namespace": "team", "verb": "get", "resource": "secrets"}}}),
        json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "gracePeriodSeconds": 0, "preconditions": {"uid": "u", "resourceVersion": "5"}, "propagationPolicy": "Foreground", "dryRun": ["All"]}),
        json!({"kind": "CustomResourceDefinition", "apiVersion": "apiextensions.k8s.io/v1", "metadata": {"name": "widgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "description": "d", "required": ["spec"], "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                        "size": {"type": "integer", "minimum": 1.0, "maximum": 10.0, "default": 3},
                        "mode": {"type": "string", "enum": ["a", "b"], "pattern": "^[ab]$", "maxLength": 1},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "any": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "closed": {"type": "object", "additionalProperties": false}
                    }, "x-kubernetes-validations": [{"rule": "self.size > 0", "message": "m", "messageExpression": "'x'", "reason": "FieldValueInvalid", "fieldPath": ".size", "optionalOldSelf": true}]}
                }}},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size", "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size", "priority": 0, "description": "size", "format": "int32"}],
                "selectableFields": [{"jsonPath": ".spec.mode"}],
                "deprecated": true, "deprecationWarning": "old"}],
            "conversion": {"strategy": "None"}, "preserveUnknownFields": false}}),
    ]
}

#[test]
fn every_kind_round_trips() {
    let samples = samples();
    let kinds: std::collections::HashSet<(String, String)> = samples
        .iter()
        .map(|s| {
            (
                s["apiVersion"].as_str().unwrap().to_string(),
                s["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (av, k) in canopy_protobuf::supported_kinds() {
        if (av, k) == ("v1", "DeleteOptions") {
            continue; // same message as meta.k8s.io/v1
        }
        assert!(
            kinds.contains(&(av.to_string(), k.to_string())),
            "no sample for {av} {k}"
        );
    }
    for s in samples {
        let bytes = encode(&s).unwrap_or_else(|e| panic!("encode {}: {e}", s["kind"]));
        assert!(bytes.starts_with(&MAGIC));
        let back = decode(&bytes).unwrap_or_else(|e| panic!("decode {}: {e}", s["kind"]));
        assert_eq!(back, s, "{}", s["kind"]);
    }
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    let u = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(u.encode_to_vec());
    out
}

#[test]
fn bodies_built_with_prost_types_decode_like_go_json() {
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    // What client-go sends for `kubectl create configmap app --from-literal=greeting=hello`:
    // Go writes every non-pointer string, so empty ones are present on the wire.
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some("app".into()),
            namespace: Some("team".into()),
            generate_name: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time {
                seconds: Some(-62_135_596_800),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        data: [("greeting".to_string(), "hello".to_string())].into(),
        binary_data: [("bin".to_string(), vec![0u8, 1, 2])].into(),
        immutable: None,
    };
    let got = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
    assert_eq!(
        got,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "app", "namespace": "team"}, "data": {"greeting": "hello"}, "binaryData": {"bin": "AAEC"}})
    );

    use k8s_pb::api::authorization::v1 as authz;
    let ssar = authz::SelfSubjectAccessReview {
        metadata: Some(meta::ObjectMeta::default()),
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: Some("default".into()),
                verb: Some("create".into()),
                group: Some(String::new()),
                resource: Some("configmaps".into()),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            ..Default::default()
        }),
    };
    let got = decode(&envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        ssar.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(
        got["spec"],
        json!({"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "configmaps"}})
    );

    use k8s_pb::api::coordination::v1 as coord;
    let lease = coord::Lease {
        metadata: Some(meta::ObjectMeta {
            name: Some("l".into()),
            ..Default::default()
        }),
        spec: Some(coord::LeaseSpec {
            holder_identity: Some("me".into()),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_000),
            }),
            ..Default::default()
        }),
    };
    let got = decode(&envelope(
        "coordination.k8s.io/v1",
        "Lease",
        lease.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(got["spec"]["renewTime"], "2023-11-14T22:13:20.123456Z");

    let rule = k8s_pb::api::rbac::v1::PolicyRule {
        verbs: vec!["get".into()],
        non_resource_ur_ls: vec!["/healthz".into()],
        ..Default::default()
    };
    let cr = k8s_pb::api::rbac::v1::ClusterRole {
        metadata: Some(meta::ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        }),
        rules: vec![rule],
        aggregation_rule: None,
    };
    let got = decode(&envelope(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        cr.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(
        got["rules"],
        json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}])
    );
}

#[test]
fn bad_bodies_are_errors() {
    assert_eq!(decode(b"{\"a\":1}"), Err(DecodeError::NotProtobuf));
    assert!(matches!(
        decode(&envelope("apps/v1", "Deployment", vec![])),
        Err(DecodeError::Unsupported { .. })
    ));
    let good = encode(&samples()[1]).unwrap();
    for cut in [5, good.len() / 2, good.len() - 1] {
        assert!(
            matches!(
                decode(&good[..cut]),
                Err(DecodeError::Malformed(_)) | Err(DecodeError::Unsupported { .. })
            ),
            "cut at {cut}"
        );
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let mut body = MAGIC.to_vec();
        body.extend(tail);
        let _ = decode(&body);
    }

    #[test]
    fn corrupted_valid_bodies_never_panic(idx in 0usize..20, pos in 0usize..4096, byte in proptest::num::u8::ANY) {
        let samples = samples();
        let mut body = encode(&samples[idx % samples.len()]).unwrap();
        let p = 4 + pos % (body.len() - 4);
        body[p] = byte;
        let _ = decode(&body);
    }
}
