//! The strategies of the `apis.kcp.io` kinds: kcp's validation of APIResourceSchemas and
//! APIExports, the immutability rules, and the v1alpha1 ⇄ v1alpha2 conversion of
//! APIExports (v1alpha2 is stored; the v1alpha1 resource converts on the way in and out).

use canopy_apis_api::{self as api, convert, APIExport, APIExportEndpointSlice, APIResourceSchema};
use canopy_core::{ApiError, Cause};
use serde_json::{json, Value};

use canopy_apiserver::registry::builtin::str_at;
use canopy_apiserver::registry::table::{age_column, Column};
use canopy_apiserver::registry::Strategy;

/// Refuses an object whose fields have the wrong JSON types, as kube's decoder does
/// (400 `<Kind> in version "<v>" cannot be handled as a <Kind>: ...`).
fn check_shape<T: serde::de::DeserializeOwned>(
    kind: &str,
    version: &str,
    obj: &Value,
) -> Result<T, ApiError> {
    api::from_value(obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}"
        ))
    })
}

/// Removes `status` from an object being created: status is the system's.
fn drop_status(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
}

/// kcp's schema-name prefix `^[a-z]([-a-z0-9]*[a-z0-9])?$`.
fn valid_prefix(p: &str) -> bool {
    let b = p.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_lowercase()
                && (l.is_ascii_lowercase() || l.is_ascii_digit())
                && b.iter().all(inner)
        }
        _ => false,
    }
}

// --- APIResourceSchema ----------------------------------------------------------------------

pub struct SchemaStrategy;

/// The causes kcp's `ValidateAPIResourceSchema` reports for `s` (named `name`).
pub fn validate_schema(s: &APIResourceSchema, causes: &mut Vec<Cause>) {
    let name = s.metadata.name.as_deref().unwrap_or_default();
    let spec = &s.spec;
    if spec.group == "core" {
        causes.push(Cause::invalid(
            "spec.group",
            &json!(spec.group),
            "must not be \"core\": use \"\" for the core group",
        ));
    }
    let group = if spec.group.is_empty() {
        "core"
    } else {
        spec.group.as_str()
    };
    if spec.names.plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    }
    if spec.names.kind.is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    let suffix = format!(".{}.{group}", spec.names.plural);
    match name.strip_suffix(&suffix) {
        None => causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            &format!("must end in {suffix}"),
        )),
        Some(prefix) if !valid_prefix(prefix) => causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            &format!("must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ in front of {suffix}"),
        )),
        Some(_) => {}
    }
    if !matches!(spec.scope.as_str(), "Cluster" | "Namespaced") {
        causes.push(Cause::not_supported(
            "spec.scope",
            &json!(spec.scope),
            &["Cluster", "Namespaced"],
        ));
    }
    if spec.versions.is_empty() {
        causes.push(Cause::required(
            "spec.versions",
            "must have at least one version",
        ));
    }
    // a set, not a list: the number of versions is bounded only by the object's size
    let mut seen = std::collections::HashSet::new();
    for (i, v) in spec.versions.iter().enumerate() {
        if v.name.is_empty() {
            causes.push(Cause::required(format!("spec.versions[{i}].name"), ""));
        } else if !seen.insert(v.name.as_str()) {
            causes.push(Cause::duplicate(
                format!("spec.versions[{i}].name"),
                &json!(v.name),
            ));
        }
    }
    let storage = spec.versions.iter().filter(|v| v.storage).count();
    if !spec.versions.is_empty() && storage != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &json!(spec.versions.iter().map(|v| &v.name).collect::<Vec<_>>()),
            "must have exactly one version marked as storage version",
        ));
    }
    match &spec.conversion {
        None if spec.versions.len() > 1 => causes.push(Cause::required(
            "spec.conversion",
            "required when more than one version is defined",
        )),
        Some(c) if !matches!(c.strategy.as_str(), "None" | "Webhook") => {
            causes.push(Cause::not_supported(
                "spec.conversion.strategy",
                &json!(c.strategy),
                &["None", "Webhook"],
            ))
        }
        _ => {}
    }
}

impl Strategy for SchemaStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        check_shape::<APIResourceSchema>("APIResourceSchema", "v1alpha1", &obj)?;
        Ok((obj, Vec::new()))
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        match api::from_value::<APIResourceSchema>(obj) {
            Ok(s) => validate_schema(&s, causes),
            Err(e) => causes.push(Cause::invalid("spec", &Value::Null, &e.to_string())),
        }
    }

    /// A published schema never changes (bindings and their CRDs are built from it): a
    /// provider publishes a new one instead.
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        let spec = |v: &Value| v.get("spec").cloned().unwrap_or(Value::Null);
        if spec(new) != spec(old) {
            causes.push(Cause::invalid("spec", &spec(new), "field is immutable"));
        }
    }

    fn openapi_schema(&self) -> Option<Value> {
        Some(json!({
            "description": "APIResourceSchema describes a resource, identified by (group, version, resource, schema). A APIResourceSchema is immutable and cannot be deleted if they are referenced by an APIExport in the same workspace.",
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "description": "Spec holds the desired state."},
            },
        }))
    }

    fn columns(&self) -> Vec<Column> {
        vec![age_column()]
    }
}

// --- APIExport ------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportVersion {
    V1alpha1,
    V1alpha2,
}

/// Both served versions of APIExport; v1alpha2 is stored.
pub struct ExportStrategy {
    pub version: ExportVersion,
    pub limits: crate::ApisConfig,
}

impl ExportStrategy {
    /// The object as v1alpha2 (what is validated and stored).
    fn as_v2(&self, obj: &Value) -> Result<Value, api::DecodeError> {
        match self.version {
            ExportVersion::V1alpha2 => Ok(obj.clone()),
            ExportVersion::V1alpha1 => convert::to_v1alpha2(obj),
        }
    }

    fn version_name(&self) -> &'static str {
        match self.version {
            ExportVersion::V1alpha1 => "v1alpha1",
            ExportVersion::V1alpha2 => "v1alpha2",
        }
    }
}

/// `Too many: <n>: must have at most <max> items` (field.TooMany).
pub(crate) fn too_many(field: &str, n: usize, max: usize) -> Cause {
    Cause::new(
        "FieldValueTooMany",
        field,
        format!("Too many: {n}: must have at most {max} items"),
    )
}

/// kcp's validation of an APIExport (as v1alpha2), with Canopy's list limits.
pub fn validate_export(e: &APIExport, limits: crate::ApisConfig, causes: &mut Vec<Cause>) {
    let res = &e.spec.resources;
    if res.len() > limits.max_export_resources {
        causes.push(too_many(
            "spec.resources",
            res.len(),
            limits.max_export_resources,
        ));
    }
    // each item is looked at once (a set for duplicates): the list is bounded only by
    // the object's size
    let mut seen = std::collections::HashSet::new();
    for (i, r) in res.iter().enumerate() {
        let path = format!("spec.resources[{i}]");
        if r.name.is_empty() {
            causes.push(Cause::required(format!("{path}.name"), ""));
        }
        if r.schema.is_empty() {
            causes.push(Cause::required(format!("{path}.schema"), ""));
        } else {
            let group = if r.group.is_empty() { "core" } else { &r.group };
            let suffix = format!(".{}.{group}", r.name);
            if !r.schema.ends_with(&suffix) {
                causes.push(Cause::invalid(
                    format!("{path}.schema"),
                    &json!(r.schema),
                    &format!("must end in {suffix}"),
                ));
            }
        }
        if r.storage.crd.is_some() == r.storage.virtual_.is_some() {
            causes.push(Cause::invalid(
                format!("{path}.storage"),
                &api::to_value(&r.storage),
                "exactly one of crd or virtual must be set",
            ));
        }
        if !seen.insert((r.group.as_str(), r.name.as_str())) {
            causes.push(Cause::duplicate(
                path.clone(),
                &json!({"group": r.group, "name": r.name}),
            ));
        }
    }
    let claims = &e.spec.permission_claims;
    if claims.len() > limits.max_permission_claims {
        causes.push(too_many(
            "spec.permissionClaims",
            claims.len(),
            limits.max_permission_claims,
        ));
    }
    for (i, c) in claims.iter().enumerate() {
        let path = format!("spec.permissionClaims[{i}]");
        if c.resource.is_empty() {
            causes.push(Cause::required(format!("{path}.resource"), ""));
        }
        if c.verbs.is_empty() {
            causes.push(Cause::required(
                format!("{path}.verbs"),
                "must have at least one verb",
            ));
        }
    }
    if let Some(r) = e.spec.identity.as_ref().and_then(|i| i.secret_ref.as_ref()) {
        if r.name.is_empty() {
            causes.push(Cause::required("spec.identity.secretRef.name", ""));
        }
        if r.namespace.is_empty() {
            causes.push(Cause::required("spec.identity.secretRef.namespace", ""));
        }
    }
}

impl Strategy for ExportStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        let v = self.version_name();
        match self.version {
            ExportVersion::V1alpha2 => {
                check_shape::<APIExport>("APIExport", v, &obj)?;
            }
            ExportVersion::V1alpha1 => {
                let e: api::v1alpha1::APIExport = check_shape("APIExport", v, &obj)?;
                if let Some(bad) = e
                    .spec
                    .latest_resource_schemas
                    .iter()
                    .find(|s| convert::parse_schema_name(s).is_none())
                {
                    return Err(ApiError::bad_request(format!(
                        "APIExport in version \"v1alpha1\" cannot be handled as a APIExport: invalid schema {bad:?}: must have at least 3 dot-separated segments"
                    )));
                }
                // the conversion must work before anything is stored
                convert::to_v1alpha2(&obj).map_err(|e| {
                    ApiError::bad_request(format!(
                        "APIExport in version \"v1alpha1\" cannot be handled as a APIExport: {e}"
                    ))
                })?;
            }
        }
        Ok((obj, Vec::new()))
    }

    fn to_storage(&self, obj: Value) -> Value {
        match self.version {
            ExportVersion::V1alpha2 => obj,
            // canonicalize checked that this converts
            ExportVersion::V1alpha1 => convert::to_v1alpha2(&obj).unwrap_or(obj),
        }
    }

    fn from_storage(&self, obj: &Value) -> Option<Value> {
        match self.version {
            ExportVersion::V1alpha2 => None,
            ExportVersion::V1alpha1 => match convert::to_v1alpha1(obj) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "an stored APIExport does not convert to v1alpha1");
                    None
                }
            },
        }
    }

    /// Status (the identity hash above all) is the system's: a client cannot create an
    /// export already claiming an identity.
    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        drop_status(obj);
        Ok(())
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        match self
            .as_v2(obj)
            .and_then(|v| api::from_value::<APIExport>(&v))
        {
            Ok(e) => validate_export(&e, self.limits, causes),
            Err(e) => causes.push(Cause::invalid("spec", &Value::Null, &e.to_string())),
        }
    }

    /// `status.identityHash` is written by the identity controller only (a system write,
    /// which no strategy sees): no client write may set or change it, not even through
    /// `status`, or an export could claim another export's identity.
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        let hash = |v: &Value| {
            v.pointer("/status/identityHash")
                .cloned()
                .unwrap_or(Value::Null)
        };
        let (n, o) = (hash(new), hash(old));
        if n != o {
            let detail = if o.as_str().is_some_and(|s| !s.is_empty()) {
                "field is immutable"
            } else {
                "may only be set by the system"
            };
            causes.push(Cause::invalid("status.identityHash", &n, detail));
        }
    }

    fn openapi_schema(&self) -> Option<Value> {
        Some(json!({
            "description": "APIExport registers an API and implementation to allow consumption by others through APIBindings.",
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "description": "Spec holds the desired state."},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "description": "Status communicates the observed state.",
                    "properties": {"identityHash": {"type": "string",
                        "description": "IdentityHash is the hash of the API identity."}}},
            },
        }))
    }

    fn columns(&self) -> Vec<Column> {
        vec![age_column()]
    }
}

// --- APIExportEndpointSlice -----------------------------------------------------------------

pub struct SliceStrategy;

impl Strategy for SliceStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        check_shape::<APIExportEndpointSlice>("APIExportEndpointSlice", "v1alpha1", &obj)?;
        Ok((obj, Vec::new()))
    }

    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        drop_status(obj);
        Ok(())
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        if str_at(obj, &["spec", "export", "name"]).is_empty() {
            causes.push(Cause::required("spec.export.name", ""));
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        let export = |v: &Value| v.pointer("/spec/export").cloned().unwrap_or(Value::Null);
        if export(new) != export(old) {
            causes.push(Cause::invalid(
                "spec.export",
                &export(new),
                "field is immutable",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("Export", "string", "The export", |o| {
                json!(str_at(o, &["spec", "export", "name"]))
            }),
            age_column(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str, group: &str, versions: Value) -> Value {
        json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema",
            "metadata": {"name": name},
            "spec": {"group": group, "names": {"plural": "cowboys", "kind": "Cowboy"},
                "scope": "Namespaced", "versions": versions}})
    }

    fn causes(v: &Value) -> Vec<String> {
        let mut c = Vec::new();
        SchemaStrategy.validate(v, &mut c);
        c.iter().map(|c| c.render()).collect()
    }

    #[test]
    fn schema_names_and_versions() {
        let one =
            json!([{"name": "v1", "served": true, "storage": true, "schema": {"type": "object"}}]);
        assert!(causes(&schema(
            "today.cowboys.wildwest.dev",
            "wildwest.dev",
            one.clone()
        ))
        .is_empty());
        assert!(causes(&schema("v1.cowboys.core", "", one.clone())).is_empty());
        assert_eq!(
            causes(&schema("v1.cowboys.core", "core", one.clone())).len(),
            1
        );
        assert_eq!(
            causes(&schema(
                "Bad.cowboys.wildwest.dev",
                "wildwest.dev",
                one.clone()
            ))
            .len(),
            1
        );
        assert_eq!(
            causes(&schema("cowboys.wildwest.dev", "wildwest.dev", one.clone())).len(),
            1
        );
        assert_eq!(
            causes(&schema("v1.horses.wildwest.dev", "wildwest.dev", one)).len(),
            1
        );
        let two = json!([{"name": "v1", "served": true, "storage": true}, {"name": "v2", "served": true, "storage": true}]);
        // two storage versions, and no conversion
        assert_eq!(
            causes(&schema("v1.cowboys.wildwest.dev", "wildwest.dev", two)).len(),
            2
        );
        assert!(
            valid_prefix("a-1") && !valid_prefix("1a") && !valid_prefix("a-") && !valid_prefix("")
        );
    }

    #[test]
    fn identity_hash_is_the_systems() {
        let s = ExportStrategy {
            version: ExportVersion::V1alpha2,
            limits: Default::default(),
        };
        let old = json!({"metadata": {"name": "e"}, "spec": {}, "status": {"identityHash": "a"}});
        let mut c = Vec::new();
        s.validate_update(
            &json!({"metadata": {"name": "e"}, "spec": {}, "status": {"identityHash": "b"}}),
            &old,
            &mut c,
        );
        assert_eq!(c.len(), 1);
        let mut c = Vec::new();
        s.validate_update(
            &json!({"status": {"identityHash": "b"}}),
            &json!({}),
            &mut c,
        );
        assert_eq!(c.len(), 1);
        let mut c = Vec::new();
        s.validate_update(&old, &old, &mut c);
        assert!(c.is_empty());
    }

    #[test]
    fn export_lists_are_limited() {
        let s = ExportStrategy {
            version: ExportVersion::V1alpha1,
            limits: crate::ApisConfig {
                max_export_resources: 1,
                max_permission_claims: 1,
            },
        };
        let e = json!({"metadata": {"name": "e"}, "spec": {
            "latestResourceSchemas": ["v1.a.x.dev", "v1.b.x.dev"],
            "permissionClaims": [{"resource": "configmaps", "all": true}, {"resource": "secrets", "all": true}]}});
        let mut c = Vec::new();
        s.validate(&e, &mut c);
        assert_eq!(c.len(), 2, "{c:?}");
    }
}
