//! Kubernetes server-side apply and `metadata.managedFields`, as
//! `sigs.k8s.io/structured-merge-diff` and the apiserver's field manager
//! (`k8s.io/apimachinery/pkg/util/managedfields`) do them. Pure: no I/O, the caller passes
//! the time.
//!
//! - [`Schema`]: how each node of an object merges (scalars, structs, granular or atomic
//!   maps, atomic lists, sets, associative lists keyed by fields, untyped/deduced nodes),
//!   built from OpenAPI v3 (built-in kinds) or a CRD's `openAPIV3Schema`;
//! - [`FieldSet`], [`Path`], [`PathElement`]: field sets, their operations and their
//!   FieldsV1 encoding;
//! - [`FieldManager`] (and the [`apply`] / [`update`] shorthands): server-side apply with
//!   conflicts, and managedFields bookkeeping for every other write;
//! - [`validate_managed_fields`]: the checks kube makes on managedFields a client sends.
//!
//! Where this differs from kube, by necessity of working on JSON rather than Go types:
//! - the live object of a create is `{}`, not a zero-valued Go struct, so a creator (or a
//!   first status writer) also owns the struct fields it brought into existence
//!   (`f:spec: {".": {}, ...}`), as kube records for custom resources;
//! - a map or list emptied by pruning is removed rather than left `null`;
//! - managers recorded in another API version are compared in the current one (no
//!   conversion): field paths are taken to be the same across versions;
//! - `metadata.deletionTimestamp` and `deletionGracePeriodSeconds` are never owned (kube
//!   sets them outside the field manager);
//! - float keys and set values compare after a JSON text round trip, which serde_json's
//!   default float parsing may change in the last bit.
//!
//! ```
//! use canopy_apply::{apply, Schema, TypeDef};
//! use serde_json::json;
//!
//! let schema = Schema::new(&TypeDef::fields([
//!     ("apiVersion", TypeDef::string()),
//!     ("kind", TypeDef::string()),
//!     ("metadata", TypeDef::Deduced),
//!     ("data", TypeDef::map_of(TypeDef::string())),
//! ]));
//! let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
//!                 "metadata": {"name": "c"}, "data": {"key": "value"}});
//! let now = chrono::DateTime::from_timestamp(0, 0).unwrap();
//! let stored = apply(None, &cm, "me", false, &schema, now).unwrap();
//! assert_eq!(stored["metadata"]["managedFields"][0]["fieldsV1"],
//!            json!({"f:data": {"f:key": {}}}));
//! ```

mod conflict;
mod fieldmanager;
mod managed;
mod path;
mod schema;
mod set;
mod typed;
mod value;

pub use conflict::{Conflict, Conflicts};
pub use fieldmanager::{
    apply, stripped_fields, update, upgrade_client_side_apply, FieldManager, ANCIENT_CHANGES,
    BEFORE_FIRST_APPLY, DEFAULT_MAX_UPDATE_MANAGERS, KUBECTL_CLIENT_SIDE_APPLY,
    LAST_APPLIED_CONFIG_ANNOTATION, TOTAL_ANNOTATION_SIZE_LIMIT,
};
pub use managed::{
    decode_managed_fields, encode_managed_fields, format_time, set_managed_fields,
    validate_field_manager, validate_managed_fields, FieldError, Managed, ManagerId, Operation,
    VersionedSet, FIELD_MANAGER_MAX_LENGTH, MAX_SUBRESOURCE_NAME_LENGTH,
};
pub use path::{Path, PathElement};
pub use schema::{ListKind, NodeKind, ScalarType, Schema, TypeDef};
pub use set::FieldSet;
pub use typed::{format_errors, Comparison, ValidationError};
pub use value::{compare as compare_values, equals as values_equal, go_json};

use serde_json::{json, Value};

/// Containers an applied configuration or a live object may nest: request bodies
/// hold at most 127 (serde_json's limit), a live object's
/// managedFields a few more. Deeper inputs are refused by [`FieldManager::apply`]
/// before anything recurses on them; up to this depth, apply and managedFields
/// bookkeeping fit in a 2 MiB stack (`tests/deep.rs`).
pub const MAX_NESTING: usize = 256;

/// Containers nested in `v` (0 for a scalar), measured without recursion.
pub use canopy_patch::measure::nesting;

/// A malformed FieldsV1 document or path element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsError {
    #[error("invalid path element: {0}")]
    PathElement(String),
    #[error("invalid FieldsV1: {0}")]
    Json(String),
}

/// A schema that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("failed to convert models to schema: {0}")]
    Invalid(String),
    #[error("no schema for {0}")]
    UnknownKind(String),
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change: 409.
    #[error("{0}")]
    Conflicts(Conflicts),
    /// Wrong kind or version, managedFields in the configuration: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The configuration (or live object) does not fit the schema; kube answers 500 with
    /// this message.
    #[error("{0}")]
    InvalidObject(String),
    /// Anything else (undecodable live managedFields): 500.
    #[error("{0}")]
    Internal(String),
}

impl ApplyError {
    /// The HTTP status kube answers with.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::InvalidObject(_) | ApplyError::Internal(_) => 500,
        }
    }

    /// The `Status` object kube answers with.
    pub fn to_status(&self) -> Value {
        let (reason, message) = match self {
            ApplyError::Conflicts(c) => return c.to_status(),
            ApplyError::BadRequest(m) => ("BadRequest", m),
            ApplyError::InvalidObject(m) | ApplyError::Internal(m) => ("InternalError", m),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": self.code(),
        });
        if reason == "InternalError" {
            status["details"] = json!({"causes": [{"message": message}]});
        }
        status
    }
}

/// Why managedFields could not be computed for a non-apply write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// An object does not fit the schema.
    #[error("{0}")]
    InvalidObject(String),
}

impl Schema {
    /// Validates `obj` against the schema (duplicate associative-list keys allowed, as for
    /// stored objects).
    pub fn validate(&self, obj: &Value) -> Result<(), Vec<ValidationError>> {
        let errs = typed::Typer {
            schema: &self.inner,
            lenient: false,
        }
        .validate(obj, self.root, true);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// The field set of `obj` under the schema (structured-merge-diff's `ToFieldSet`),
    /// nothing stripped.
    pub fn field_set(&self, obj: &Value) -> Result<FieldSet, Vec<ValidationError>> {
        self.validate(obj)?;
        Ok(self.typer().field_set_of(obj, self.root))
    }

    /// What changed between two objects.
    pub fn compare(&self, old: &Value, new: &Value) -> Comparison {
        self.typer().compare(old, new, self.root)
    }

    /// Merges an applied configuration into an object, as apply does before pruning.
    pub fn merge(&self, live: &Value, config: &Value) -> Result<Value, Vec<ValidationError>> {
        self.typer().merge(live, config, self.root)
    }

    /// `obj` without the fields of `set`.
    pub fn remove_fields(&self, obj: &Value, set: &FieldSet) -> Value {
        self.typer()
            .remove_items(obj, set, self.root)
            .unwrap_or_else(|| json!({}))
    }

    fn typer(&self) -> typed::Typer<'_> {
        typed::Typer {
            schema: &self.inner,
            lenient: false,
        }
    }
}
