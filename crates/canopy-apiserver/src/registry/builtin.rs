//! Strategies of the built-in kinds.
//!
//! Built-in objects are type-checked and canonicalized by a round trip through the
//! `k8s-openapi` type of their kind, which drops unknown fields exactly as kube-apiserver's
//! decoding into Go structs does (and tells `fieldValidation` which ones it dropped).

use std::sync::Arc;

use canopy_core::{ApiError, Cause, ResourceDescriptor};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::table::{age_column, age_of, created_at_column, Column};
use super::Strategy;

/// Round-trips `obj` through `T`; returns the canonical JSON and the dropped field paths.
pub fn typed<T: DeserializeOwned + Serialize>(
    obj: Value,
) -> Result<(Value, Vec<String>), ApiError> {
    let t: T = serde_json::from_value(obj.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    let canonical = serde_json::to_value(&t)
        .map_err(|e| ApiError::internal(format!("re-encoding object: {e}")))?;
    let mut dropped = Vec::new();
    dropped_fields(&obj, &canonical, "", &mut dropped);
    Ok((canonical, dropped))
}

/// Paths present (non-null) in `input` but absent from `output`.
fn dropped_fields(input: &Value, output: &Value, prefix: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match o.get(k) {
                    Some(ov) => dropped_fields(v, ov, &path, out),
                    None => {
                        let empty = match v {
                            Value::Null => true,
                            Value::Object(m) => m.is_empty(),
                            Value::Array(a) => a.is_empty(),
                            _ => false,
                        };
                        if !empty {
                            out.push(path)
                        }
                    }
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (idx, (a, b)) in i.iter().zip(o.iter()).enumerate() {
                dropped_fields(a, b, &format!("{prefix}[{idx}]"), out);
            }
        }
        _ => {}
    }
}

fn to_strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn count_keys(o: &Value, fields: &[&str]) -> Value {
    let n: usize = fields
        .iter()
        .map(|f| o.get(*f).and_then(Value::as_object).map_or(0, |m| m.len()))
        .sum();
    json!(n)
}

/// The string at `path` in `o` ("" when missing or not a string).
pub fn str_at<'a>(o: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = o;
    for p in path {
        match cur.get(*p) {
            Some(v) => cur = v,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// Config keys: `[-._a-zA-Z0-9]+`, at most 253 characters (kube's IsConfigMapKey).
fn validate_config_keys(obj: &Value, fields: &[&str], causes: &mut Vec<Cause>) {
    let mut seen = std::collections::HashSet::new();
    for f in fields {
        if let Some(m) = obj.get(*f).and_then(Value::as_object) {
            for k in m.keys() {
                let ok = !k.is_empty()
                    && k.len() <= 253
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
                if !ok {
                    causes.push(Cause::invalid(
                        f.to_string(),
                        &json!(k),
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    ));
                }
                if !seen.insert(k.clone()) {
                    causes.push(Cause::invalid(
                        format!("data[{k}]"),
                        &json!(k),
                        "duplicate of key present in binaryData",
                    ));
                }
            }
        }
    }
}

fn validate_immutable_data(new: &Value, old: &Value, fields: &[&str], causes: &mut Vec<Cause>) {
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            causes.push(Cause::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        for f in fields {
            if new.get(*f) != old.get(*f) {
                causes.push(Cause::forbidden(
                    *f,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
}

struct ConfigMapStrategy;
impl Strategy for ConfigMapStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        typed::<k8s_openapi::api::core::v1::ConfigMap>(obj)
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_config_keys(obj, &["data", "binaryData"], causes);
        let size: usize = ["data", "binaryData"]
            .iter()
            .filter_map(|f| obj.get(*f).and_then(Value::as_object))
            .flat_map(|m| m.iter())
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > 1024 * 1024 {
            // kube reports the size against `field.NewPath("")`, which prints as `[]`
            causes.push(Cause::too_long("[]", 1024 * 1024));
        }
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        validate_immutable_data(new, old, &["data", "binaryData"], causes);
    }
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new(
                "Data",
                "string",
                "Data contains the configuration data.",
                |o| count_keys(o, &["data", "binaryData"]),
            ),
            age_column(),
        ]
    }
}

struct SecretStrategy;
impl Strategy for SecretStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        let (mut v, dropped) = typed::<k8s_openapi::api::core::v1::Secret>(obj)?;
        // stringData is write-only: merged into data (base64) and dropped.
        if let Some(sd) = v.as_object_mut().and_then(|m| m.remove("stringData")) {
            if let Some(sd) = sd.as_object() {
                let data = v
                    .as_object_mut()
                    .map(|m| m.entry("data").or_insert_with(|| json!({})));
                if let Some(Value::Object(data)) = data {
                    for (k, val) in sd {
                        let s = val.as_str().unwrap_or("");
                        data.insert(
                            k.clone(),
                            json!(base64::Engine::encode(
                                &base64::engine::general_purpose::STANDARD,
                                s
                            )),
                        );
                    }
                }
            }
        }
        if v.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            // `v` is the typed Secret re-encoded: an object
            canopy_core::meta::ensure_object(&mut v).insert("type".into(), json!("Opaque"));
        }
        Ok((v, dropped))
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_config_keys(obj, &["data"], causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        if new.get("type") != old.get("type") {
            causes.push(Cause::invalid(
                "type",
                new.get("type").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
        validate_immutable_data(new, old, &["data"], causes);
    }
    fn selectable_fields(&self) -> Vec<String> {
        to_strings(&["type"])
    }
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new(
                "Type",
                "string",
                "Used to facilitate programmatic handling of secret data.",
                |o| json!(str_at(o, &["type"])),
            ),
            Column::new("Data", "string", "Data contains the secret data.", |o| {
                count_keys(o, &["data"])
            }),
            age_column(),
        ]
    }
}

struct ServiceAccountStrategy;
impl Strategy for ServiceAccountStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        typed::<k8s_openapi::api::core::v1::ServiceAccount>(obj)
    }
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.", |o| {
                json!(o.get("secrets").and_then(Value::as_array).map_or(0, |a| a.len()))
            }),
            age_column(),
        ]
    }
}

struct NamespaceStrategy;
impl Strategy for NamespaceStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        typed::<k8s_openapi::api::core::v1::Namespace>(obj)
    }
    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        let fins = obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut fins: Vec<Value> = fins;
        if !fins.iter().any(|f| f == "kubernetes") {
            fins.push(json!("kubernetes"));
        }
        let m = canopy_core::meta::object_at(obj, &[])?;
        m.insert("spec".into(), json!({ "finalizers": fins }));
        m.insert("status".into(), json!({ "phase": "Active" }));
        // kube labels every namespace with its name
        let name = canopy_core::meta::name(obj).to_string();
        canopy_core::meta::set_path(
            obj,
            &["metadata", "labels", "kubernetes.io/metadata.name"],
            json!(name),
        )?;
        Ok(())
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) -> Result<(), ApiError> {
        let m = canopy_core::meta::object_at(new, &[])?;
        m.insert(
            "spec".into(),
            old.get("spec").cloned().unwrap_or_else(|| json!({})),
        );
        m.insert(
            "status".into(),
            old.get("status").cloned().unwrap_or_else(|| json!({})),
        );
        let name = canopy_core::meta::name(old).to_string();
        canopy_core::meta::set_path(
            new,
            &["metadata", "labels", "kubernetes.io/metadata.name"],
            json!(name),
        )?;
        Ok(())
    }
    fn selectable_fields(&self) -> Vec<String> {
        to_strings(&["status.phase"])
    }
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("Status", "string", "The status of the namespace", |o| {
                json!(str_at(o, &["status", "phase"]))
            }),
            age_column(),
        ]
    }
}

fn event_columns() -> Vec<Column> {
    vec![
        Column::new(
            "Last Seen",
            "string",
            "Time when this Event was last observed.",
            |o| {
                let ts = o
                    .get("lastTimestamp")
                    .filter(|v| !v.is_null())
                    .or_else(|| o.get("eventTime").filter(|v| !v.is_null()))
                    .or_else(|| o.get("deprecatedLastTimestamp").filter(|v| !v.is_null()))
                    .or_else(|| o.pointer("/metadata/creationTimestamp"));
                age_of(ts)
            },
        ),
        Column::new(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future.",
            |o| json!(str_at(o, &["type"])),
        ),
        Column::new("Reason", "string", "The reason for the event.", |o| {
            json!(str_at(o, &["reason"]))
        }),
        Column::new(
            "Object",
            "string",
            "The object that this event is about.",
            |o| {
                let r = o.get("involvedObject").or_else(|| o.get("regarding"));
                let kind = r
                    .and_then(|r| r.get("kind"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let name = r
                    .and_then(|r| r.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                json!(format!("{}/{}", kind.to_ascii_lowercase(), name))
            },
        ),
        Column::new(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
            |o| {
                json!(o
                    .get("message")
                    .or_else(|| o.get("note"))
                    .and_then(Value::as_str)
                    .unwrap_or(""))
            },
        ),
    ]
}

struct CoreEventStrategy;
impl Strategy for CoreEventStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        typed::<k8s_openapi::api::core::v1::Event>(obj)
    }
    fn selectable_fields(&self) -> Vec<String> {
        to_strings(&[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ])
    }
    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        if field == "source" {
            return Some(str_at(obj, &["source", "component"]).to_string());
        }
        super::lookup_path(obj, field)
            .and_then(Value::as_str)
            .map(str::to_string)
    }
    fn columns(&self) -> Vec<Column> {
        event_columns()
    }
}

/// core/v1 Event field ↔ events.k8s.io/v1 Event field, as kube converts them.
const EVENT_FIELDS: [(&str, &str); 13] = [
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
];

fn convert_event(obj: &Value, to_core: bool) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert(
        "apiVersion".into(),
        json!(if to_core { "v1" } else { "events.k8s.io/v1" }),
    );
    if let Some(m) = obj.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    let mut fields: Vec<(&str, &str)> = EVENT_FIELDS.to_vec();
    fields.push(("count", "deprecatedCount"));
    for (core, v1) in fields {
        let (from, to) = if to_core { (v1, core) } else { (core, v1) };
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            out.insert(to.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

struct EventsV1Strategy;
impl Strategy for EventsV1Strategy {
    fn to_storage(&self, obj: Value) -> Value {
        convert_event(&obj, true)
    }
    fn from_storage(&self, obj: &Value) -> Option<Value> {
        Some(convert_event(obj, false))
    }
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        typed::<k8s_openapi::api::events::v1::Event>(obj)
    }
    fn selectable_fields(&self) -> Vec<String> {
        to_strings(&[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "reportingController",
            "type",
        ])
    }
    fn columns(&self) -> Vec<Column> {
        event_columns()
    }
}

struct LeaseStrategy;
impl Strategy for LeaseStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        typed::<k8s_openapi::api::coordination::v1::Lease>(obj)
    }
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new(
                "Holder",
                "string",
                "holderIdentity contains the identity of the holder of a current lease.",
                |o| json!(str_at(o, &["spec", "holderIdentity"])),
            ),
            age_column(),
        ]
    }
}

fn validate_rules(obj: &Value, causes: &mut Vec<Cause>) {
    if let Some(rules) = obj.get("rules").and_then(Value::as_array) {
        for (i, r) in rules.iter().enumerate() {
            let verbs = r
                .get("verbs")
                .and_then(Value::as_array)
                .map_or(0, |a| a.len());
            if verbs == 0 {
                causes.push(Cause::required(
                    format!("rules[{i}].verbs"),
                    "verbs must contain at least one value",
                ));
            }
            let has_urls = r
                .get("nonResourceURLs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            let has_res = r
                .get("resources")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            let has_groups = r
                .get("apiGroups")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if has_urls && (has_res || has_groups) {
                causes.push(Cause::invalid(
                    format!("rules[{i}].nonResourceURLs"),
                    r.get("nonResourceURLs").unwrap_or(&Value::Null),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            if !has_urls {
                if !has_groups {
                    causes.push(Cause::required(
                        format!("rules[{i}].apiGroups"),
                        "resource rules must supply at least one api group",
                    ));
                }
                if !has_res {
                    causes.push(Cause::required(
                        format!("rules[{i}].resources"),
                        "resource rules must supply at least one resource",
                    ));
                }
            }
        }
    }
}

struct RoleStrategy {
    cluster: bool,
}
impl Strategy for RoleStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        if self.cluster {
            typed::<k8s_openapi::api::rbac::v1::ClusterRole>(obj)
        } else {
            typed::<k8s_openapi::api::rbac::v1::Role>(obj)
        }
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        // Aggregated ClusterRoles get their rules from the aggregation controller.
        if obj.get("aggregationRule").is_none() || !self.cluster {
            validate_rules(obj, causes);
        }
        if !self.cluster
            && obj
                .get("rules")
                .and_then(Value::as_array)
                .is_some_and(|rs| {
                    rs.iter().any(|r| {
                        r.get("nonResourceURLs")
                            .is_some_and(|u| u.as_array().is_some_and(|a| !a.is_empty()))
                    })
                })
        {
            causes.push(Cause::invalid(
                "rules[0].nonResourceURLs",
                &Value::Null,
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
    }
    fn columns(&self) -> Vec<Column> {
        vec![created_at_column()]
    }
}

struct BindingStrategy {
    cluster: bool,
}
impl Strategy for BindingStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        if self.cluster {
            typed::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(obj)
        } else {
            typed::<k8s_openapi::api::rbac::v1::RoleBinding>(obj)
        }
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        let kind = str_at(obj, &["roleRef", "kind"]);
        let allowed: &[&str] = if self.cluster {
            &["ClusterRole"]
        } else {
            &["Role", "ClusterRole"]
        };
        if !allowed.contains(&kind) {
            causes.push(Cause::not_supported("roleRef.kind", &json!(kind), allowed));
        }
        if str_at(obj, &["roleRef", "name"]).is_empty() {
            causes.push(Cause::required("roleRef.name", ""));
        }
        if str_at(obj, &["roleRef", "apiGroup"]) != "rbac.authorization.k8s.io" {
            causes.push(Cause::not_supported(
                "roleRef.apiGroup",
                &json!(str_at(obj, &["roleRef", "apiGroup"])),
                &["rbac.authorization.k8s.io"],
            ));
        }
        if let Some(subjects) = obj.get("subjects").and_then(Value::as_array) {
            for (i, s) in subjects.iter().enumerate() {
                let k = str_at(s, &["kind"]);
                if !["User", "Group", "ServiceAccount"].contains(&k) {
                    causes.push(Cause::not_supported(
                        format!("subjects[{i}].kind"),
                        &json!(k),
                        &["ServiceAccount", "User", "Group"],
                    ));
                }
                if str_at(s, &["name"]).is_empty() {
                    causes.push(Cause::required(format!("subjects[{i}].name"), ""));
                }
                if k == "ServiceAccount" && self.cluster && str_at(s, &["namespace"]).is_empty() {
                    causes.push(Cause::required(format!("subjects[{i}].namespace"), ""));
                }
            }
        }
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        if new.get("roleRef") != old.get("roleRef") {
            causes.push(Cause::invalid(
                "roleRef",
                new.get("roleRef").unwrap_or(&Value::Null),
                "cannot change roleRef",
            ));
        }
    }
    fn columns(&self) -> Vec<Column> {
        let subjects = |kind: &'static str| {
            move |o: &Value| {
                let names: Vec<String> = o
                    .get("subjects")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter(|s| str_at(s, &["kind"]) == kind)
                            .map(|s| {
                                if kind == "ServiceAccount" {
                                    format!(
                                        "{}/{}",
                                        str_at(s, &["namespace"]),
                                        str_at(s, &["name"])
                                    )
                                } else {
                                    str_at(s, &["name"]).to_string()
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!(names.join(", "))
            }
        };
        vec![
            Column::new("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.", |o| {
                json!(format!("{}/{}", str_at(o, &["roleRef", "kind"]), str_at(o, &["roleRef", "name"])))
            }),
            age_column(),
            Column::new("Users", "string", "Users in the binding", subjects("User")).wide(),
            Column::new("Groups", "string", "Groups in the binding", subjects("Group")).wide(),
            Column::new("ServiceAccounts", "string", "ServiceAccounts in the binding", subjects("ServiceAccount")).wide(),
        ]
    }
}

/// Review resources are never stored: the strategy only type-checks.
struct ReviewStrategy;
impl Strategy for ReviewStrategy {}

/// Default strategy for resources without their own.
pub struct DefaultStrategy;
impl Strategy for DefaultStrategy {
    fn columns(&self) -> Vec<Column> {
        vec![created_at_column()]
    }
}

pub fn strategy_for(desc: &ResourceDescriptor) -> Arc<dyn Strategy> {
    match (desc.group.as_str(), desc.plural.as_str()) {
        ("", "configmaps") => Arc::new(ConfigMapStrategy),
        ("", "secrets") => Arc::new(SecretStrategy),
        ("", "serviceaccounts") => Arc::new(ServiceAccountStrategy),
        ("", "namespaces") => Arc::new(NamespaceStrategy),
        ("", "events") => Arc::new(CoreEventStrategy),
        ("events.k8s.io", "events") => Arc::new(EventsV1Strategy),
        ("coordination.k8s.io", "leases") => Arc::new(LeaseStrategy),
        (canopy_core::resource::RBAC_GROUP, "roles") => Arc::new(RoleStrategy { cluster: false }),
        (canopy_core::resource::RBAC_GROUP, "clusterroles") => {
            Arc::new(RoleStrategy { cluster: true })
        }
        (canopy_core::resource::RBAC_GROUP, "rolebindings") => {
            Arc::new(BindingStrategy { cluster: false })
        }
        (canopy_core::resource::RBAC_GROUP, "clusterrolebindings") => {
            Arc::new(BindingStrategy { cluster: true })
        }
        (canopy_core::resource::APIEXTENSIONS_GROUP, "customresourcedefinitions") => {
            Arc::new(super::crd::CrdStrategy)
        }
        _ if desc.virtual_create_only => Arc::new(ReviewStrategy),
        _ => Arc::new(DefaultStrategy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_convert_both_ways() {
        let v1 = json!({"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "e", "namespace": "d"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "R", "type": "Normal",
            "reportingController": "c", "reportingInstance": "i", "action": "A", "eventTime": "2024-01-01T00:00:00.000000Z", "deprecatedCount": 3});
        let core = EventsV1Strategy.to_storage(v1.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["reportingComponent"], "c");
        assert_eq!(core["count"], 3);
        assert_eq!(EventsV1Strategy.from_storage(&core).unwrap(), v1);
    }

    #[test]
    fn typed_round_trip_drops_unknown_fields() {
        let (v, dropped) = typed::<k8s_openapi::api::core::v1::ConfigMap>(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "bogus": 1},
            "data": {"a": "b"}, "extra": {"x": 1}, "nothing": null,
        }))
        .unwrap();
        assert_eq!(v["data"]["a"], "b");
        assert!(v.get("extra").is_none());
        assert_eq!(
            dropped,
            vec!["metadata.bogus".to_string(), "extra".to_string()]
        );
        let err = typed::<k8s_openapi::api::core::v1::ConfigMap>(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": 1}})).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn secret_string_data_is_merged() {
        let (v, _) = SecretStrategy
            .canonicalize(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "hello"}}))
            .unwrap();
        assert_eq!(v["data"]["k"], "aGVsbG8=");
        assert_eq!(v["type"], "Opaque");
        assert!(v.get("stringData").is_none());
    }

    #[test]
    fn configmap_keys_and_immutability() {
        let mut causes = vec![];
        ConfigMapStrategy.validate(&json!({"data": {"ok.key": "", "bad/key": ""}}), &mut causes);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "data");
        let mut causes = vec![];
        ConfigMapStrategy.validate_update(
            &json!({"immutable": true, "data": {"a": "2"}}),
            &json!({"immutable": true, "data": {"a": "1"}}),
            &mut causes,
        );
        assert_eq!(causes[0].field, "data");
    }

    #[test]
    fn bindings_validate_role_refs() {
        let s = BindingStrategy { cluster: true };
        let mut causes = vec![];
        s.validate(&json!({"roleRef": {"kind": "Role", "name": "x", "apiGroup": "rbac.authorization.k8s.io"}, "subjects": [{"kind": "ServiceAccount", "name": "a"}]}), &mut causes);
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["roleRef.kind", "subjects[0].namespace"]);
    }
}
