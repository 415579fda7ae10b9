//! Test fixtures: OpenAPI v3 components shaped as kube publishes them (descriptions left
//! out) for a ConfigMap, a Deployment and a custom resource.

#![allow(dead_code)]

use canopy_apply::{FieldManager, Schema};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

pub fn components() -> Value {
    json!({
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
            "type": "object",
            "properties": {
                "annotations": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                "creationTimestamp": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "deletionTimestamp": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"},
                "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
                "generateName": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                "managedFields": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"}]}, "x-kubernetes-list-type": "atomic"},
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "ownerReferences": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"}]}, "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"},
                "resourceVersion": {"type": "string"},
                "selfLink": {"type": "string"},
                "uid": {"type": "string"}
            }
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": {"type": "object"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "fieldsType": {"type": "string"},
                "fieldsV1": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"}]},
                "manager": {"type": "string"},
                "operation": {"type": "string"},
                "subresource": {"type": "string"},
                "time": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"}]}
            }
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "default": ""},
                "blockOwnerDeletion": {"type": "boolean"},
                "controller": {"type": "boolean"},
                "kind": {"type": "string", "default": ""},
                "name": {"type": "string", "default": ""},
                "uid": {"type": "string", "default": ""}
            },
            "x-kubernetes-map-type": "atomic"
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector": {
            "type": "object",
            "properties": {
                "matchExpressions": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}, "operator": {"type": "string"}, "values": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}}}, "x-kubernetes-list-type": "atomic"},
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
            },
            "x-kubernetes-map-type": "atomic"
        },
        "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
        "io.k8s.api.core.v1.ConfigMap": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "binaryData": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
                "data": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                "immutable": {"type": "boolean"},
                "kind": {"type": "string"},
                "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {}}
            },
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}]
        },
        "io.k8s.api.apps.v1.Deployment": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {}},
                "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}], "default": {}},
                "status": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStatus"}], "default": {}}
            },
            "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}]
        },
        "io.k8s.api.apps.v1.DeploymentSpec": {
            "type": "object",
            "properties": {
                "minReadySeconds": {"type": "integer", "format": "int32"},
                "paused": {"type": "boolean"},
                "replicas": {"type": "integer", "format": "int32"},
                "revisionHistoryLimit": {"type": "integer", "format": "int32"},
                "selector": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"}]},
                "strategy": {"type": "object", "properties": {
                    "rollingUpdate": {"type": "object", "properties": {
                        "maxSurge": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]},
                        "maxUnavailable": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]}
                    }},
                    "type": {"type": "string"}
                }},
                "template": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"}], "default": {}}
            },
            "required": ["selector", "template"]
        },
        "io.k8s.api.apps.v1.DeploymentStatus": {
            "type": "object",
            "properties": {
                "availableReplicas": {"type": "integer", "format": "int32"},
                "conditions": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentCondition"}], "default": {}}, "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge"},
                "observedGeneration": {"type": "integer", "format": "int64"},
                "readyReplicas": {"type": "integer", "format": "int32"},
                "replicas": {"type": "integer", "format": "int32"}
            }
        },
        "io.k8s.api.apps.v1.DeploymentCondition": {
            "type": "object",
            "properties": {
                "lastTransitionTime": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"}]},
                "message": {"type": "string"},
                "reason": {"type": "string"},
                "status": {"type": "string", "default": ""},
                "type": {"type": "string", "default": ""}
            },
            "required": ["type", "status"]
        },
        "io.k8s.api.core.v1.PodTemplateSpec": {
            "type": "object",
            "properties": {
                "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {}},
                "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}], "default": {}}
            }
        },
        "io.k8s.api.core.v1.PodSpec": {
            "type": "object",
            "properties": {
                "containers": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}], "default": {}}, "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
                "nodeSelector": {"type": "object", "additionalProperties": {"type": "string", "default": ""}, "x-kubernetes-map-type": "atomic"},
                "tolerations": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}, "effect": {"type": "string"}}}, "x-kubernetes-list-type": "atomic"},
                "volumes": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string", "default": ""}, "configMap": {"type": "object", "properties": {"name": {"type": "string"}}}}}, "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge,retainKeys"}
            },
            "required": ["containers"]
        },
        "io.k8s.api.core.v1.Container": {
            "type": "object",
            "properties": {
                "args": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "atomic"},
                "command": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "atomic"},
                "env": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string", "default": ""}, "value": {"type": "string"}}}, "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
                "image": {"type": "string"},
                "imagePullPolicy": {"type": "string"},
                "name": {"type": "string", "default": ""},
                "ports": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.ContainerPort"}], "default": {}}, "x-kubernetes-list-map-keys": ["containerPort", "protocol"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "containerPort", "x-kubernetes-patch-strategy": "merge"},
                "resources": {"type": "object", "properties": {
                    "limits": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}},
                    "requests": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}}
                }}
            },
            "required": ["name"]
        },
        "io.k8s.api.core.v1.ContainerPort": {
            "type": "object",
            "properties": {
                "containerPort": {"type": "integer", "format": "int32", "default": 0},
                "hostPort": {"type": "integer", "format": "int32"},
                "name": {"type": "string"},
                "protocol": {"type": "string", "default": "TCP"}
            },
            "required": ["containerPort"]
        }
    })
}

pub fn document() -> Value {
    json!({"openapi": "3.0.0", "components": {"schemas": components()}})
}

pub fn configmap_schema() -> Schema {
    Schema::from_openapi_v3_document(&document(), "", "v1", "ConfigMap").unwrap()
}

pub fn deployment_schema() -> Schema {
    Schema::from_openapi_v3_document(&document(), "apps", "v1", "Deployment").unwrap()
}

pub fn configmaps() -> FieldManager {
    FieldManager::new(configmap_schema(), "v1", "ConfigMap")
}

pub fn deployments() -> FieldManager {
    FieldManager::new(deployment_schema(), "apps/v1", "Deployment")
}

/// Deployments with a status subresource: the main resource ignores status.
pub fn deployments_with_status() -> FieldManager {
    deployments().with_status_subresource()
}

/// The status subresource of deployments.
pub fn deployment_status() -> FieldManager {
    deployments()
        .with_status_subresource()
        .with_subresource("status")
}

pub fn widget_schema() -> Schema {
    Schema::for_custom_resource(&json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "color": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "params": {"type": "object", "additionalProperties": {"type": "string"}},
                    "selector": {"type": "object", "additionalProperties": {"type": "string"}, "x-kubernetes-map-type": "atomic"},
                    "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                              "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "phase": {"type": "string"},
                    "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                                   "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}}
                }
            }
        }
    }))
    .unwrap()
}

pub fn widgets() -> FieldManager {
    FieldManager::new(widget_schema(), "example.com/v1", "Widget")
}

/// The managedFields of an object, times removed, as (manager, operation, fieldsV1).
pub fn owners(obj: &Value) -> Vec<(String, String, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The fieldsV1 of `manager`'s entry.
pub fn fields_of(obj: &Value, manager: &str) -> Option<Value> {
    owners(obj)
        .into_iter()
        .find(|(m, _, _)| m == manager)
        .map(|(_, _, f)| f)
}

/// JSON merge patch (RFC 7386), for update tests.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match target {
                Value::Object(t) => t.clone(),
                _ => serde_json::Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let cur = out.get(k).cloned().unwrap_or(Value::Null);
                    out.insert(k.clone(), merge_patch(&cur, v));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Simulates what the server stores after a write: uid, resourceVersion, etc.
pub fn stored(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("uid")
            .or_insert_with(|| json!("0b9b3f86-1111-2222-3333-444455556666"));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!("2023-11-14T22:13:20Z"));
        meta.insert("resourceVersion".into(), json!("1"));
    }
    obj
}
