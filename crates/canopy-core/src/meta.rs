//! Accessors for the `metadata` of objects held as JSON.
//!
//! Canopy keeps every object as a `serde_json::Value` (custom resources have no Rust
//! type), so these helpers are the one place that knows where metadata fields live.

use serde_json::{Map, Value};

/// Reads `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace").unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or("")
}

/// `metadata.resourceVersion` parsed as a number (0 when absent or empty).
pub fn resource_version(obj: &Value) -> Result<u64, String> {
    match meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(0),
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| format!("invalid resourceVersion {s:?}")),
    }
}

/// `v` as an object, replaced by an empty one if it is anything else.
pub fn ensure_object(v: &mut Value) -> &mut Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => {
            *other = Value::Object(Map::new());
            // an object now: this second call returns at the first arm
            ensure_object(other)
        }
    }
}

/// The `metadata` object, created if missing (and replaced if it is not an object:
/// request bodies with a non-object `metadata` are refused before they get here).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    ensure_object(ensure_object(obj).entry("metadata").or_insert(Value::Null))
}

/// A value of the wrong JSON type where an object was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: expected an object, found {found}")]
pub struct NotAnObject {
    /// The dotted path (`spec.template`), empty for the whole document.
    pub path: String,
    pub found: &'static str,
}

impl From<NotAnObject> for crate::ApiError {
    /// What kube's decoder answers for a wrong JSON type: 400 BadRequest.
    fn from(e: NotAnObject) -> Self {
        crate::ApiError::bad_request(e.to_string())
    }
}

/// The JSON type of `v`, as kube's decoder names it in errors.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The object at `path` inside `obj`, creating absent (or null) levels: the checked form
/// of `obj["a"]["b"]`, which panics when a level holds something else — such as a
/// request's `"spec": "x"`.
pub fn object_at<'a>(
    obj: &'a mut Value,
    path: &[&str],
) -> Result<&'a mut Map<String, Value>, NotAnObject> {
    fn walk<'a>(
        v: &'a mut Value,
        path: &[&str],
        depth: usize,
    ) -> Result<&'a mut Map<String, Value>, NotAnObject> {
        if v.is_null() {
            *v = Value::Object(Map::new());
        }
        let found = json_type(v);
        let Value::Object(m) = v else {
            return Err(NotAnObject {
                path: path
                    .iter()
                    .take(depth)
                    .copied()
                    .collect::<Vec<_>>()
                    .join("."),
                found,
            });
        };
        match path.get(depth) {
            None => Ok(m),
            Some(k) => walk(
                m.entry(k.to_string()).or_insert(Value::Null),
                path,
                depth + 1,
            ),
        }
    }
    walk(obj, path, 0)
}

/// Sets `obj.<path>` (the last element names the field), creating absent levels; fails
/// when a level on the way is not an object.
pub fn set_path(obj: &mut Value, path: &[&str], value: Value) -> Result<(), NotAnObject> {
    match path.split_last() {
        Some((field, parents)) => {
            object_at(obj, parents)?.insert(field.to_string(), value);
            Ok(())
        }
        None => {
            *obj = value;
            Ok(())
        }
    }
}

pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    metadata_mut(obj).insert(field.to_string(), value);
}

pub fn remove_meta(obj: &mut Value, field: &str) -> Option<Value> {
    metadata_mut(obj).remove(field)
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.get("labels")?.as_object()
}

pub fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.get("annotations")?.as_object()
}

/// One annotation's value, if it is set (and a string).
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    annotations(obj)?.get(key)?.as_str()
}

/// The strings of the array at JSON `pointer` (`/status/initializers`); non-strings and
/// anything that is not an array count as nothing.
pub fn strings_at(obj: &Value, pointer: &str) -> Vec<String> {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    strings_at(obj, "/metadata/finalizers")
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

/// `metadata.ownerReferences` as a list of objects.
pub fn owner_references(obj: &Value) -> &[Value] {
    obj.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// RFC 3339 timestamp with second precision, as `metav1.Time` serializes.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 timestamp with microseconds, as `metav1.MicroTime` serializes.
pub fn format_micro_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn now() -> String {
    format_time(chrono::Utc::now())
}

/// Human age as kubectl prints it (`5s`, `3m`, `2d4h`...), matching `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rem = (s % 3600) / 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let d = h / 24;
        let rem = h % 24;
        return if rem == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rem}h")
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    if h < 24 * 365 * 8 {
        let y = h / (24 * 365);
        let d = (h % (24 * 365)) / 24;
        return if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        };
    }
    format!("{}y", h / (24 * 365))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors() {
        let mut o = json!({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "12", "finalizers": ["x"]}});
        assert_eq!(name(&o), "a");
        assert_eq!(namespace(&o), "n");
        assert_eq!(resource_version(&o), Ok(12));
        assert_eq!(finalizers(&o), vec!["x".to_string()]);
        assert!(!is_deleting(&o));
        set_meta(&mut o, "deletionTimestamp", json!("2024-01-01T00:00:00Z"));
        assert!(is_deleting(&o));
        assert!(resource_version(&json!({"metadata": {"resourceVersion": "x"}})).is_err());
        let mut bad = json!("string");
        set_meta(&mut bad, "name", json!("b"));
        assert_eq!(name(&bad), "b");
    }

    #[test]
    fn checked_paths() {
        let mut o = json!({"spec": "x", "status": null});
        let e = set_path(&mut o, &["spec", "URL"], json!("u")).unwrap_err();
        assert_eq!(e.path, "spec");
        assert_eq!(e.found, "string");
        assert_eq!(crate::ApiError::from(e).code, 400);
        set_path(&mut o, &["status", "phase"], json!("Ready")).unwrap();
        set_path(&mut o, &["a", "b", "c"], json!(1)).unwrap();
        assert_eq!(o["status"]["phase"], "Ready");
        assert_eq!(o["a"]["b"]["c"], 1);
        let e = set_path(&mut o, &["a", "b", "c", "d"], json!(1)).unwrap_err();
        assert_eq!(e.to_string(), "a.b.c: expected an object, found number");
        let mut arr = json!([1]);
        assert!(object_at(&mut arr, &[]).is_err());
        let mut m = json!({"metadata": 5});
        metadata_mut(&mut m).insert("x".into(), json!(1));
        assert_eq!(m["metadata"]["x"], 1);
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(700), "11m");
        assert_eq!(human_duration(3 * 3600 + 300), "3h5m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(30 * 86400), "30d");
    }
}
