//! `metadata.managedFields`: decoding entries into per-manager field sets, encoding them
//! back (sorted as kube sorts them), and validating entries a client sends.
//!
//! A manager is identified as kube's `BuildManagerIdentifier` does: by its name, operation
//! and subresource, plus the API version for `Update` entries (an applier keeps one entry
//! whatever version it applies in, an updater gets one entry per version).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::set::FieldSet;
use crate::value::write_go_string;
use canopy_field::BadValue;
pub use canopy_field::FieldError;

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who manages a set of fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ManagerId {
    pub manager: String,
    pub operation: Operation,
    /// Part of the identity of `Update` managers only.
    pub api_version: Option<String>,
    /// `""` for the main resource.
    pub subresource: String,
}

impl ManagerId {
    /// An `Apply` manager.
    pub fn apply(manager: &str, subresource: &str) -> Self {
        ManagerId {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: None,
            subresource: subresource.to_string(),
        }
    }

    /// An `Update` manager writing in `api_version`.
    pub fn update(manager: &str, api_version: &str, subresource: &str) -> Self {
        ManagerId {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: Some(api_version.to_string()),
            subresource: subresource.to_string(),
        }
    }

    /// kube's manager identifier: the JSON of the entry without fields, time and (for
    /// appliers) API version.
    pub fn identifier(&self) -> String {
        let mut out = String::from("{");
        let mut first = true;
        let mut field = |out: &mut String, k: &str, v: &str| {
            if v.is_empty() {
                return;
            }
            if !first {
                out.push(',');
            }
            first = false;
            write_go_string(out, k);
            out.push(':');
            write_go_string(out, v);
        };
        field(&mut out, "manager", &self.manager);
        field(&mut out, "operation", self.operation.as_str());
        field(
            &mut out,
            "apiVersion",
            self.api_version.as_deref().unwrap_or(""),
        );
        field(&mut out, "subresource", &self.subresource);
        out.push('}');
        out
    }

    /// How conflict messages name the manager: `"kubectl"`, `"kube-controller-manager"
    /// using apps/v1`, `"x" with subresource "status"`.
    pub fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            s = format!("{s} using {}", self.api_version.as_deref().unwrap_or(""));
        }
        s
    }
}

/// A manager's fields, in the API version it wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedSet {
    pub set: FieldSet,
    pub api_version: String,
    pub applied: bool,
}

/// The decoded `managedFields` of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    pub fields: BTreeMap<ManagerId, VersionedSet>,
    /// The time of each manager's last change, as written (RFC 3339).
    pub times: BTreeMap<ManagerId, String>,
}

impl Managed {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// The `managedFields` array of an object, if any.
pub(crate) fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields")
}

/// Decodes `metadata.managedFields` (kube's `DecodeManagedFields`). Absent or null decodes
/// to nothing.
pub fn decode_managed_fields(obj: &Value) -> Result<Managed, String> {
    match managed_fields_of(obj) {
        None | Some(Value::Null) => Ok(Managed::default()),
        Some(Value::Array(entries)) => decode_entries(entries),
        Some(other) => Err(format!("managedFields is not a list: {other}")),
    }
}

fn str_field<'a>(e: &'a Map<String, Value>, k: &str) -> Result<&'a str, String> {
    match e.get(k) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{k} must be a string, got {other}")),
    }
}

fn decode_entries(entries: &[Value]) -> Result<Managed, String> {
    let mut managed = Managed::default();
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(e) = entry else {
            return Err(format!("managed fields entry {i} is not an object"));
        };
        let operation = match str_field(e, "operation")? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = str_field(e, "apiVersion")?;
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match str_field(e, "fieldsType")? {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ))
            }
        }
        let id = ManagerId {
            manager: str_field(e, "manager")?.to_string(),
            operation,
            api_version: (operation == Operation::Update).then(|| api_version.to_string()),
            subresource: str_field(e, "subresource")?.to_string(),
        };
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(f) => FieldSet::from_fields_v1(f).map_err(|err| {
                format!(
                    "error decoding versioned set from {}: error decoding set: {err}",
                    id.identifier()
                )
            })?,
        };
        match e.get("time") {
            None | Some(Value::Null) => {
                managed.times.remove(&id);
            }
            Some(Value::String(t)) => {
                DateTime::parse_from_rfc3339(t)
                    .map_err(|err| format!("invalid time {t:?}: {err}"))?;
                managed.times.insert(id.clone(), t.clone());
            }
            Some(other) => return Err(format!("invalid time {other}")),
        }
        managed.fields.insert(
            id,
            VersionedSet {
                set,
                api_version: api_version.to_string(),
                applied: operation == Operation::Apply,
            },
        );
    }
    Ok(managed)
}

fn unix_seconds(t: Option<&String>) -> i64 {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// The `managedFields` entries of `managed`, sorted as kube sorts them (operation, time,
/// manager, API version, subresource).
pub fn encode_managed_fields(managed: &Managed) -> Vec<Value> {
    let mut entries: Vec<(&ManagerId, &VersionedSet, Option<&String>)> = managed
        .fields
        .iter()
        .map(|(id, vs)| (id, vs, managed.times.get(id)))
        .collect();
    let op = |id: &ManagerId, vs: &VersionedSet| {
        if vs.applied {
            Operation::Apply
        } else {
            id.operation
        }
    };
    entries.sort_by(|a, b| {
        op(a.0, a.1)
            .as_str()
            .cmp(op(b.0, b.1).as_str())
            .then_with(|| unix_seconds(a.2).cmp(&unix_seconds(b.2)))
            .then_with(|| a.0.manager.cmp(&b.0.manager))
            .then_with(|| a.1.api_version.cmp(&b.1.api_version))
            .then_with(|| a.0.subresource.cmp(&b.0.subresource))
    });
    entries
        .into_iter()
        .map(|(id, vs, time)| {
            let mut e = Map::new();
            if !id.manager.is_empty() {
                e.insert("manager".into(), Value::String(id.manager.clone()));
            }
            e.insert("operation".into(), op(id, vs).as_str().into());
            e.insert("apiVersion".into(), Value::String(vs.api_version.clone()));
            if let Some(t) = time {
                e.insert("time".into(), Value::String(t.clone()));
            }
            e.insert("fieldsType".into(), "FieldsV1".into());
            e.insert("fieldsV1".into(), vs.set.to_fields_v1());
            if !id.subresource.is_empty() {
                e.insert("subresource".into(), Value::String(id.subresource.clone()));
            }
            Value::Object(e)
        })
        .collect()
}

/// Writes `managed` into `obj.metadata.managedFields` (removing the key when empty).
pub fn set_managed_fields(obj: &mut Value, managed: &Managed) {
    let entries = encode_managed_fields(managed);
    let Value::Object(o) = obj else { return };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = o.get_mut("metadata") {
            meta.remove("managedFields");
        }
        return;
    }
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Removes `metadata.managedFields`.
pub(crate) fn remove_managed_fields(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.remove("managedFields");
    }
}

/// Is the client asking to reset managedFields (`[]`, or a single empty entry)?
pub(crate) fn is_reset_managed_fields(obj: &Value) -> bool {
    match managed_fields_of(obj) {
        Some(Value::Array(a)) if a.is_empty() => true,
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_object().is_some_and(|e| {
            e.iter().all(|(_, v)| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                _ => false,
            })
        }),
        _ => false,
    }
}

/// The RFC 3339 (seconds, UTC) form of a time, as `metav1.Time` writes it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The longest field manager name kube accepts.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// The longest subresource name in a managedFields entry.
pub const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;

fn is_go_printable(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace() || ('\u{e000}'..='\u{f8ff}').contains(&c))
}

fn invalid(field: &str, value: &str, detail: &str) -> FieldError {
    FieldError::invalid(field, BadValue::string(value), detail)
}

fn too_long(field: &str, max: usize) -> FieldError {
    FieldError::too_long(field, i64::try_from(max).unwrap_or(i64::MAX))
}

/// Validates a field manager name (`ValidateFieldManager`): at most 128 bytes, printable.
/// Errors are `FieldValueTooLong` or `FieldValueInvalid` at `field`.
pub fn validate_field_manager(manager: &str, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(too_long(field, FIELD_MANAGER_MAX_LENGTH));
    }
    for (i, c) in manager.char_indices() {
        if !is_go_printable(c) {
            errs.push(invalid(
                field,
                manager,
                &format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs
}

/// Validates the `metadata.managedFields` a client sent (kube's object-meta
/// `ValidateManagedFields`): operation `Apply` or `Update`, fieldsType `FieldsV1` when
/// set, valid manager name, subresource at most 256 bytes. Entries that pass but do not
/// decode are not an error: the live object's managedFields are kept instead (see
/// [`crate::FieldManager::update`]).
pub fn validate_managed_fields(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(Value::Array(entries)) = managed_fields_of(obj) else {
        return errs;
    };
    for (i, entry) in entries.iter().enumerate() {
        let base = format!("metadata.managedFields[{i}]");
        let get = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("");
        let op = get("operation");
        if op != "Apply" && op != "Update" {
            errs.push(invalid(
                &format!("{base}.operation"),
                op,
                "must be `Apply` or `Update`",
            ));
        }
        let ft = get("fieldsType");
        if !ft.is_empty() && ft != "FieldsV1" {
            errs.push(invalid(
                &format!("{base}.fieldsType"),
                ft,
                "must be `FieldsV1`",
            ));
        }
        errs.extend(validate_field_manager(
            get("manager"),
            &format!("{base}.manager"),
        ));
        if get("subresource").len() > MAX_SUBRESOURCE_NAME_LENGTH {
            errs.push(too_long(
                &format!("{base}.subresource"),
                MAX_SUBRESOURCE_NAME_LENGTH,
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_like_kube() {
        assert_eq!(
            ManagerId::update("kubectl-edit", "v1", "").identifier(),
            r#"{"manager":"kubectl-edit","operation":"Update","apiVersion":"v1"}"#
        );
        assert_eq!(
            ManagerId::apply("kubectl", "status").identifier(),
            r#"{"manager":"kubectl","operation":"Apply","subresource":"status"}"#
        );
        assert_eq!(
            ManagerId::update("kubectl-client-side-apply", "v1", "").display(),
            r#""kubectl-client-side-apply" using v1"#
        );
        assert_eq!(ManagerId::apply("kubectl", "").display(), r#""kubectl""#);
    }

    #[test]
    fn decode_encode_round_trip_and_sort() {
        let obj = json!({"metadata": {"managedFields": [
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:02Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:b": {}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:01Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}},
            {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-01T00:00:09Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:z": {}}}, "subresource": "status"}
        ]}});
        let m = decode_managed_fields(&obj).unwrap();
        let names: Vec<String> = encode_managed_fields(&m)
            .iter()
            .map(|e| e["manager"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["z", "a", "b"]);
        let mut again = json!({});
        set_managed_fields(&mut again, &m);
        assert_eq!(decode_managed_fields(&again).unwrap(), m);
    }

    #[test]
    fn decode_errors() {
        for bad in [
            json!([{"manager": "a", "operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
            json!([{"manager": "a", "operation": "Update", "fieldsType": "FieldsV1"}]),
            json!([{"manager": "a", "operation": "Update", "apiVersion": "v1"}]),
            json!([{"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV2"}]),
            json!([{"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"bad": {}}}]),
        ] {
            assert!(decode_managed_fields(&json!({"metadata": {"managedFields": bad}})).is_err());
        }
    }

    #[test]
    fn validation_like_kube() {
        let obj = json!({"metadata": {"managedFields": [
            {"manager": "ok", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1"},
            {"manager": "bad\u{7}", "operation": "Patch", "fieldsType": "FieldsV2"}
        ]}});
        let found = validate_managed_fields(&obj);
        assert!(found
            .iter()
            .all(|e| e.error_type.as_str() == "FieldValueInvalid"));
        let errs: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            [
                "metadata.managedFields[1].operation: Invalid value: \"Patch\": must be `Apply` or `Update`",
                "metadata.managedFields[1].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`",
                "metadata.managedFields[1].manager: Invalid value: \"bad\\a\": invalid character U+0007 (at position 3)",
            ]
        );
        let long = validate_field_manager(&"x".repeat(129), "fieldManager");
        assert_eq!(
            long[0].to_string(),
            "fieldManager: Too long: may not be more than 128 bytes"
        );
        assert_eq!(long[0].error_type.as_str(), "FieldValueTooLong");
    }

    #[test]
    fn reset_requests() {
        assert!(is_reset_managed_fields(
            &json!({"metadata": {"managedFields": []}})
        ));
        assert!(is_reset_managed_fields(
            &json!({"metadata": {"managedFields": [{}]}})
        ));
        assert!(!is_reset_managed_fields(&json!({"metadata": {}})));
        assert!(!is_reset_managed_fields(
            &json!({"metadata": {"managedFields": [{"manager": "a"}]}})
        ));
    }
}
