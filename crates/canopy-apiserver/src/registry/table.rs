//! `meta.k8s.io/v1` Table output, as `kubectl get` asks for it.

use std::sync::Arc;

use serde_json::{json, Value};

/// One table column: its definition and how to compute a cell.
#[derive(Clone)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    /// 0: shown by default; 1: only with `-o wide`.
    pub priority: u32,
    pub cell: Arc<dyn Fn(&Value) -> Value + Send + Sync>,
}

impl Column {
    pub fn new(
        name: impl Into<String>,
        type_: impl Into<String>,
        description: impl Into<String>,
        cell: impl Fn(&Value) -> Value + Send + Sync + 'static,
    ) -> Column {
        Column {
            name: name.into(),
            type_: type_.into(),
            format: String::new(),
            description: description.into(),
            priority: 0,
            cell: Arc::new(cell),
        }
    }

    pub fn wide(mut self) -> Column {
        self.priority = 1;
        self
    }

    pub fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// `Age`, computed from creationTimestamp.
pub fn age_column() -> Column {
    Column::new(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        |o| age_of(o.get("metadata").and_then(|m| m.get("creationTimestamp"))),
    )
}

/// `Created At`, as kube's default table convertor shows it.
pub fn created_at_column() -> Column {
    let mut c = Column::new(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        |o| {
            o.get("metadata")
                .and_then(|m| m.get("creationTimestamp"))
                .cloned()
                .unwrap_or(Value::Null)
        },
    );
    c.format = String::new();
    c
}

/// Human age of an RFC 3339 timestamp, or `<unknown>`.
pub fn age_of(ts: Option<&Value>) -> Value {
    let Some(s) = ts.and_then(Value::as_str) else {
        return json!("<unknown>");
    };
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => {
            let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds();
            json!(canopy_core::meta::human_duration(secs))
        }
        Err(_) => json!("<unknown>"),
    }
}

fn name_column() -> Value {
    json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0,
    })
}

/// The column definitions of a table.
pub fn column_definitions(columns: &[Column]) -> Vec<Value> {
    let mut defs = vec![name_column()];
    defs.extend(columns.iter().map(Column::definition));
    defs
}

/// `PartialObjectMetadata` of an object (what Table rows and metadata-only requests carry).
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One row for an object; `include_object` is kube's `includeObject` (None / Metadata / Object).
pub fn row(obj: &Value, columns: &[Column], include_object: &str) -> Value {
    let mut cells = vec![json!(canopy_core::meta::name(obj))];
    cells.extend(columns.iter().map(|c| (c.cell)(obj)));
    let object = match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => partial_metadata(obj),
    };
    let mut r = serde_json::Map::new();
    r.insert("cells".into(), json!(cells));
    if !object.is_null() {
        r.insert("object".into(), object);
    }
    Value::Object(r)
}

/// A whole Table.
pub fn table(
    objects: &[&Value],
    columns: &[Column],
    list_meta: Value,
    include_object: &str,
    with_definitions: bool,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(o, columns, include_object))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if with_definitions { column_definitions(columns) } else { vec![] },
        "rows": rows,
    })
}
