//! The registry: which resources a logical cluster serves and how each behaves.
//!
//! As in k8s.io/apiserver, there is one generic store ([`crate::rest`]) and each resource
//! adds a small [`Strategy`]: how to canonicalize a decoded object, what to reset on
//! create and update, how to validate, which field selectors it supports and how it
//! prints as a table. Built-in strategies live in [`builtin`].

pub mod builtin;
pub mod crd;
pub mod jsonpath;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use canopy_core::{ApiError, Cause, ResourceDescriptor};
use serde_json::Value;

pub use table::Column;

/// What admission of a create request may look at: who asks, and where.
pub struct AdmissionContext<'a> {
    pub user: &'a canopy_auth::UserInfo,
    pub store: &'a canopy_storage::Store,
    /// The server, for what a plug-in's strategy keeps on it.
    pub api: &'a crate::ApiServer,
    /// The logical cluster the object is created in.
    pub cluster: &'a str,
}

/// Per-resource behaviour plugged into the generic store.
pub trait Strategy: Send + Sync {
    /// Admission of a create request made by a user (not by the system): defaults and
    /// checks that depend on the caller or on other objects.
    fn admit(&self, _obj: &mut Value, _ctx: &AdmissionContext<'_>) -> Result<(), ApiError> {
        Ok(())
    }

    /// Type-checks and canonicalizes a decoded object; returns it with the paths of
    /// fields that were dropped because the type has no such field (for
    /// `fieldValidation`).
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        Ok((obj, Vec::new()))
    }

    /// Converts an object of this resource's version into the form it is stored in (for
    /// resources that share another's storage). Identity by default.
    fn to_storage(&self, obj: Value) -> Value {
        obj
    }

    /// Converts a stored object into this resource's version; `None` when it is stored
    /// as served.
    #[allow(clippy::wrong_self_convention)]
    fn from_storage(&self, _obj: &Value) -> Option<Value> {
        None
    }

    /// Resets what a client may not set on create (e.g. status defaults). Fails when a
    /// field it sets sits under a value of the wrong type (see `canopy_core::meta::set_path`).
    fn prepare_for_create(&self, _obj: &mut Value) -> Result<(), ApiError> {
        Ok(())
    }

    /// Carries over what an update of the main resource must not change (e.g. status
    /// when there is a status subresource).
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) -> Result<(), ApiError> {
        Ok(())
    }

    /// Validates an object about to be created.
    fn validate(&self, _obj: &Value, _causes: &mut Vec<Cause>) {}

    /// Validates an update (immutability rules); `validate` runs as well.
    fn validate_update(&self, _new: &Value, _old: &Value, _causes: &mut Vec<Cause>) {}

    /// All validation of an object about to be written (`old` on updates): `validate`,
    /// then `validate_update`. Strategies whose rules need both at once override it.
    fn validate_object(&self, obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        self.validate(obj, causes);
        if let Some(old) = old {
            self.validate_update(obj, old, causes);
        }
    }

    /// Whether `metadata.generation` is maintained (bumped on spec changes).
    fn tracks_generation(&self) -> bool {
        false
    }

    /// The structured-merge type used by server-side apply and managedFields; `None`
    /// looks the kind up among the built-in OpenAPI schemas.
    fn apply_schema(&self) -> Option<canopy_apply::Schema> {
        None
    }

    /// The paths of the `scale` subresource, for resources that have one.
    fn scale_paths(&self) -> Option<crate::scale::ScalePaths> {
        None
    }

    /// Field selector fields beyond `metadata.name` and `metadata.namespace`.
    fn selectable_fields(&self) -> Vec<String> {
        Vec::new()
    }

    /// The value of a selectable field.
    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        lookup_path(obj, field).map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        })
    }

    /// The OpenAPI schema of a kind without a `k8s-openapi` type (`None`: any object).
    fn openapi_schema(&self) -> Option<Value> {
        None
    }

    /// Table columns (after NAME, which is always first).
    fn columns(&self) -> Vec<Column> {
        vec![table::age_column()]
    }
}

/// `a.b.c` path lookup in a JSON object.
pub fn lookup_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// A served resource: descriptor and strategy.
#[derive(Clone)]
pub struct Resource {
    pub desc: Arc<ResourceDescriptor>,
    pub strategy: Arc<dyn Strategy>,
}

/// The resources served in a logical cluster, indexed by (group, version, plural).
#[derive(Clone, Default)]
pub struct Registry {
    by_path: HashMap<(String, String, String), Resource>,
    ordered: Vec<Resource>,
}

impl Registry {
    /// The resources every logical cluster serves: the built-ins (with the strategies
    /// plug-ins give kinds they own, [`crate::plugin::Plugins::with_strategy`]), then
    /// the kinds plug-ins add ([`crate::plugin::Plugins::with_resource`]).
    pub fn builtin(plugins: &crate::plugin::Plugins) -> Registry {
        let mut r = Registry::default();
        for desc in canopy_core::resource::builtin_resources() {
            let strategy = match plugins
                .strategies
                .get(&(desc.group.clone(), desc.plural.clone()))
            {
                Some(s) => s.clone(),
                None => builtin::strategy_for(&desc),
            };
            r.add(Resource {
                desc: Arc::new(desc),
                strategy,
            });
        }
        for res in &plugins.kinds {
            r.add(res.clone());
        }
        r
    }

    pub fn add(&mut self, res: Resource) {
        let k = (
            res.desc.group.clone(),
            res.desc.version.clone(),
            res.desc.plural.clone(),
        );
        self.by_path.insert(k, res.clone());
        self.ordered.push(res);
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    pub fn all(&self) -> &[Resource] {
        &self.ordered
    }

    /// Group-versions in discovery order, as kube-apiserver gives them: groups by
    /// priority (the core group first, built-in groups by kube's priorities, then every
    /// CRD group at the same priority ordered by `<version>.<group>`; see
    /// [`canopy_core::resource::group_order_key`]), the preferred version first within
    /// a group. kubectl resolves a short name shared by two groups to the one listed
    /// first, so this order is observable.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for r in &self.ordered {
            let gv = (r.desc.group.clone(), r.desc.version.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
        // within a group, the preferred (kube-aware highest) version first
        let mut groups: Vec<String> = out.iter().fold(Vec::new(), |mut acc, (g, _)| {
            if !acc.contains(g) {
                acc.push(g.clone());
            }
            acc
        });
        groups.sort_by_cached_key(|g| {
            canopy_core::resource::group_order_key(
                g,
                out.iter().filter(|(x, _)| x == g).map(|(_, v)| v.as_str()),
            )
        });
        let mut sorted = Vec::with_capacity(out.len());
        for g in groups {
            let mut vs: Vec<(String, String)> =
                out.iter().filter(|(x, _)| *x == g).cloned().collect();
            vs.sort_by(|a, b| canopy_core::resource::kube_version_order(&a.1, &b.1));
            sorted.extend(vs);
        }
        sorted
    }
}

/// Validation result helper: 422 when there are causes.
pub fn invalid_if_any(
    desc: &ResourceDescriptor,
    name: &str,
    causes: Vec<Cause>,
) -> Result<(), ApiError> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&desc.kind, &desc.group, name, causes))
    }
}
