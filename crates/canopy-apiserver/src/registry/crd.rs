//! CustomResourceDefinitions: their own strategy (validation of the CRD as
//! kube-apiserver does it) and the strategy and descriptors of the custom resources a
//! CRD defines, built per logical cluster by [`crate::apis`].

use std::sync::Arc;

use canopy_core::resource::{NameRule, ResourceDescriptor, STORED_VERBS};
use canopy_core::{ApiError, Cause};
use serde_json::{json, Value};

use super::builtin::typed;
use super::table::{age_column, created_at_column, Column};
use super::{jsonpath, Resource, Strategy};

pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

pub struct CrdStrategy;

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or("")
}

fn is_dns_label(x: &str) -> bool {
    canopy_core::validation::is_dns1123_label(x).is_empty()
}

impl Strategy for CrdStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        typed::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(obj)
    }

    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        canopy_core::meta::object_at(obj, &[])?.insert(
            "status".into(),
            json!({"conditions": [], "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": []}),
        );
        let meta = canopy_core::meta::metadata_mut(obj);
        let fins = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(a) = fins.as_array_mut() {
            if !a.iter().any(|f| f == CLEANUP_FINALIZER) {
                a.push(json!(CLEANUP_FINALIZER));
            }
        }
        Ok(())
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        let group = s(obj, "/spec/group");
        let plural = s(obj, "/spec/names/plural");
        let name = s(obj, "/metadata/name");
        if group.is_empty() {
            causes.push(Cause::required("spec.group", ""));
        } else if !group.contains('.') {
            causes.push(Cause::invalid(
                "spec.group",
                &json!(group),
                "should be a domain with at least one dot",
            ));
        } else if !canopy_core::validation::is_dns1123_subdomain(group).is_empty() {
            causes.push(Cause::invalid("spec.group", &json!(group), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
        }
        if let Some(cause) = protected_group(obj, group) {
            causes.push(cause);
        }
        if plural.is_empty() {
            causes.push(Cause::required("spec.names.plural", ""));
        } else if !is_dns_label(plural) {
            causes.push(Cause::invalid("spec.names.plural", &json!(plural), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        }
        if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
            causes.push(Cause::invalid(
                "metadata.name",
                &json!(name),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        let singular = s(obj, "/spec/names/singular");
        if !singular.is_empty() && !is_dns_label(singular) {
            causes.push(Cause::invalid("spec.names.singular", &json!(singular), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"));
        }
        if s(obj, "/spec/names/kind").is_empty() {
            causes.push(Cause::required("spec.names.kind", ""));
        }
        match s(obj, "/spec/scope") {
            "Namespaced" | "Cluster" => {}
            other => causes.push(Cause::not_supported(
                "spec.scope",
                &json!(other),
                &["Cluster", "Namespaced"],
            )),
        }
        let versions = obj
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if versions.is_empty() {
            causes.push(Cause::invalid(
                "spec.versions",
                &json!(null),
                "must have exactly one version marked as storage version",
            ));
        }
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if !versions.is_empty() && storage != 1 {
            causes.push(Cause::invalid(
                "spec.versions",
                &json!(versions),
                "must have exactly one version marked as storage version",
            ));
        }
        if !versions.is_empty()
            && !versions
                .iter()
                .any(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        {
            causes.push(Cause::invalid(
                "spec.versions",
                &json!(versions),
                "must have at least one version marked as served",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, v) in versions.iter().enumerate() {
            let vn = s(v, "/name");
            if !is_dns_label(vn) {
                causes.push(Cause::invalid(
                    format!("spec.versions[{i}].name"),
                    &json!(vn),
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-'",
                ));
            }
            if !seen.insert(vn.to_string()) {
                causes.push(Cause::duplicate(
                    format!("spec.versions[{i}].name"),
                    &json!(vn),
                ));
            }
            match v.pointer("/schema/openAPIV3Schema") {
                None => causes.push(Cause::required(
                    format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    "schemas are required",
                )),
                Some(schema) => {
                    let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
                    let opts = canopy_schema::CrdSchemaOptions {
                        status_subresource: v.pointer("/subresources/status").is_some(),
                    };
                    let errs = canopy_schema::validate_crd_schema_with(schema, &path, opts);
                    let structural_ok = errs.is_empty();
                    causes.extend(errs.into_iter().map(Cause::from));
                    if structural_ok {
                        if let Err(errs) = canopy_cel::CompiledRules::compile_at(
                            schema,
                            &canopy_cel::FieldPath::new(&path),
                        ) {
                            causes.extend(errs.iter().map(Cause::from));
                        }
                    }
                }
            }
        }
        match s(obj, "/spec/conversion/strategy") {
            "" | "None" => {}
            "Webhook" => causes.push(Cause::forbidden(
                "spec.conversion.strategy",
                "conversion webhooks are not supported by Canopy yet",
            )),
            other => causes.push(Cause::not_supported(
                "spec.conversion.strategy",
                &json!(other),
                &["None", "Webhook"],
            )),
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        if new.pointer("/spec/scope") != old.pointer("/spec/scope") {
            causes.push(Cause::invalid(
                "spec.scope",
                new.pointer("/spec/scope").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
        if new.pointer("/spec/group") != old.pointer("/spec/group") {
            causes.push(Cause::invalid(
                "spec.group",
                new.pointer("/spec/group").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![created_at_column()]
    }
}

/// What a CRD version's schema compiles to: the structural schema (validation, pruning,
/// defaulting) and its CEL rules. Compiled once per CRD version and generation, and
/// shared by every request (kept in [`compiled_version`]'s cache).
#[derive(Clone)]
pub struct CompiledVersion {
    pub schema: Option<canopy_schema::CompiledSchema>,
    pub rules: Option<Arc<canopy_cel::CompiledRules>>,
    /// The structured-merge type for server-side apply.
    pub apply: Option<canopy_apply::Schema>,
}

/// The compiled schema of version `v` of `crd`, from a process-wide cache keyed by the
/// CRD's uid, generation and version name.
pub fn compiled_version(crd: &Value, v: &Value) -> CompiledVersion {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, CompiledVersion>>> = OnceLock::new();
    let key = format!(
        "{}/{}/{}",
        s(crd, "/metadata/uid"),
        crd.pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        s(v, "/name")
    );
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = cache.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return c;
    }
    let compiled = match v.pointer("/schema/openAPIV3Schema") {
        None => CompiledVersion {
            schema: None,
            rules: None,
            apply: None,
        },
        Some(schema) => CompiledVersion {
            schema: canopy_schema::CompiledSchema::compile(schema).ok(),
            rules: canopy_cel::CompiledRules::compile(schema)
                .ok()
                .filter(|r| !r.is_empty())
                .map(Arc::new),
            apply: canopy_apply::Schema::for_custom_resource(schema).ok(),
        },
    };
    if let Ok(mut m) = cache.lock() {
        if m.len() > 4096 {
            m.clear();
        }
        m.insert(key, compiled.clone());
    }
    compiled
}

/// Whether a CRD's condition `type` is True.
pub fn condition_true(crd: &Value, type_: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

/// One served version of a CRD, as a strategy for its custom resources.
pub struct CustomResourceStrategy {
    /// With a status subresource, status is set only through it.
    has_status: bool,
    columns: Vec<(String, String, String, String, u32)>,
    selectable: Vec<String>,
    scale: Option<crate::scale::ScalePaths>,
    /// `group/version` this strategy serves, and the storage version's.
    api_version: String,
    storage_api_version: String,
    compiled: CompiledVersion,
}

impl Strategy for CustomResourceStrategy {
    /// kube's decoding of a custom resource: defaulting, pruning of unknown fields
    /// (reported for `fieldValidation`), removal of nulls the schema does not allow.
    fn canonicalize(&self, mut obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        if !obj.get("metadata").is_some_and(Value::is_object) {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        let Some(schema) = &self.compiled.schema else {
            return Ok((obj, Vec::new()));
        };
        schema.default(&mut obj);
        let pruned = schema.prune(&mut obj);
        schema.prune_non_nullable_nulls(&mut obj);
        Ok((obj, pruned))
    }

    /// The OpenAPI schema, then the CEL rules (with the old object on updates, for
    /// transition rules).
    fn validate_object(&self, obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        if let Some(schema) = &self.compiled.schema {
            causes.extend(schema.validate(obj).into_iter().map(Cause::from));
        }
        if let Some(rules) = &self.compiled.rules {
            causes.extend(rules.validate(obj, old).iter().map(Cause::from));
        }
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        if self.has_status {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        Ok(())
    }

    fn selectable_fields(&self) -> Vec<String> {
        self.selectable.clone()
    }

    fn scale_paths(&self) -> Option<crate::scale::ScalePaths> {
        self.scale.clone()
    }

    fn apply_schema(&self) -> Option<canopy_apply::Schema> {
        self.compiled.apply.clone()
    }

    /// Every version of a CRD shares one storage (conversion `None`): objects are stored
    /// with the storage version's apiVersion and served with the requested one.
    fn to_storage(&self, mut obj: Value) -> Value {
        if obj.get("apiVersion").and_then(Value::as_str) != Some(&self.storage_api_version) {
            // written objects passed `rest::decode::check_type`: objects
            canopy_core::meta::ensure_object(&mut obj)
                .insert("apiVersion".into(), json!(self.storage_api_version));
        }
        obj
    }

    fn from_storage(&self, obj: &Value) -> Option<Value> {
        if obj.get("apiVersion").and_then(Value::as_str) == Some(&self.api_version) {
            return None;
        }
        let mut v = obj.clone();
        canopy_core::meta::ensure_object(&mut v)
            .insert("apiVersion".into(), json!(self.api_version));
        Some(v)
    }

    fn columns(&self) -> Vec<Column> {
        if self.columns.is_empty() {
            return vec![age_column()];
        }
        let mut cols = Vec::new();
        let mut has_age = false;
        for (name, type_, path, description, priority) in &self.columns {
            let path = path.clone();
            let is_date = type_ == "date";
            has_age |= name == "Age";
            let shown_type = if is_date {
                "string".to_string()
            } else {
                type_.clone()
            };
            let mut c = Column::new(name.clone(), shown_type, description.clone(), move |o| {
                let v = jsonpath::eval(o, &path);
                if is_date {
                    super::table::age_of(Some(&v))
                } else {
                    v
                }
            });
            c.priority = *priority;
            cols.push(c);
        }
        if !has_age {
            cols.push(age_column());
        }
        cols
    }
}

/// Served resources of one CRD (one per served version).
/// Why a CRD may not use `group`: a group a built-in API serves (a custom resource there
/// would share the built-in's storage and bypass its strategy and admission), the
/// `kcp.io` and `canopy.dev` domains (the system's own APIs), or a `k8s.io` /
/// `kubernetes.io` group without kube's approval annotation.
fn protected_group(crd: &Value, group: &str) -> Option<Cause> {
    if group.is_empty() {
        return None;
    }
    let in_domain = |d: &str| group == d || group.ends_with(&format!(".{d}"));
    if canopy_core::resource::builtin_resources()
        .iter()
        .any(|r| r.group == group)
        || in_domain("kcp.io")
        || in_domain("canopy.dev")
    {
        return Some(Cause::invalid(
            "spec.group",
            &json!(group),
            "the group is reserved for built-in APIs",
        ));
    }
    if (in_domain("k8s.io") || in_domain("kubernetes.io"))
        && canopy_core::meta::annotation(crd, "api-approved.kubernetes.io")
            .is_none_or(str::is_empty)
    {
        return Some(Cause::required(
            "metadata.annotations[api-approved.kubernetes.io]",
            "protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
        ));
    }
    None
}

/// The resources a CRD serves; none when its group is reserved (a CRD stored before
/// that check existed never shadows a built-in).
pub fn resources_of(crd: &Value) -> Vec<Resource> {
    let group = s(crd, "/spec/group").to_string();
    if protected_group(crd, &group).is_some_and(|c| c.field == "spec.group") {
        return Vec::new();
    }
    let names = crd
        .pointer("/status/acceptedNames")
        .filter(|n| !s(n, "/plural").is_empty())
        .or_else(|| crd.pointer("/spec/names"));
    let Some(names) = names else {
        return Vec::new();
    };
    let strings = |k: &str| -> Vec<String> {
        names
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = s(names, "/kind").to_string();
    let plural = s(names, "/plural").to_string();
    let storage_api_version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| format!("{group}/{}", s(v, "/name")))
        .unwrap_or_default();
    let mut out = Vec::new();
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let mut subresources = Vec::new();
        if v.pointer("/subresources/status").is_some() {
            subresources.push("status".to_string());
        }
        if v.pointer("/subresources/scale").is_some() {
            subresources.push("scale".to_string());
        }
        let desc = ResourceDescriptor {
            group: group.clone(),
            version: s(v, "/name").to_string(),
            kind: kind.clone(),
            list_kind: names
                .get("listKind")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{kind}List")),
            plural: plural.clone(),
            singular: names
                .get("singular")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_ascii_lowercase()),
            namespaced: s(crd, "/spec/scope") != "Cluster",
            short_names: strings("shortNames"),
            categories: strings("categories"),
            verbs: STORED_VERBS.iter().map(|x| x.to_string()).collect(),
            subresources,
            name_rule: NameRule::DnsSubdomain,
            virtual_create_only: false,
            shared_storage: None,
        };
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| {
                        (
                            s(c, "/name").to_string(),
                            s(c, "/type").to_string(),
                            s(c, "/jsonPath").to_string(),
                            s(c, "/description").to_string(),
                            c.get("priority").and_then(Value::as_u64).unwrap_or(0) as u32,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let selectable: Vec<String> = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        let has_status = desc.has_subresource("status");
        out.push(Resource {
            desc: Arc::new(desc),
            strategy: Arc::new(CustomResourceStrategy {
                has_status,
                columns,
                selectable,
                scale: crate::scale::ScalePaths::from_crd_version(v),
                api_version: format!("{group}/{}", s(v, "/name")),
                storage_api_version: storage_api_version.clone(),
                compiled: compiled_version(crd, v),
            }),
        });
    }
    out
}
