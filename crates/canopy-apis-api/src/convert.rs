//! APIExport v1alpha1 ⇄ v1alpha2, as kcp converts them, lossless both ways:
//!
//! - `latestResourceSchemas: [<prefix>.<plural>.<group|core>]` ⇄
//!   `resources: [{name: <plural>, group, schema, storage: {crd: {}}}]`; v2 resources
//!   that v1 cannot say (non-CRD storage) ride in annotation [`RESOURCE_SCHEMAS`];
//! - v1 claims (`all`, `resourceSelector`) ⇄ v2 claims with `verbs: ["*"]`; the v1
//!   originals ride in [`V1ALPHA1_PERMISSION_CLAIMS`] on the v2 object, and v2 claims
//!   whose verbs are not `["*"]` in [`PERMISSION_CLAIMS`] on the v1 object.
//!
//! Claims are matched by group, resource and identity hash (kcp's `EqualGRI`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{from_value, to_value, v1alpha1, APIExport, DecodeError, PermissionClaim};
use crate::{ResourceSchema, ResourceSchemaStorage, V1ALPHA1, V1ALPHA2};

pub const RESOURCE_SCHEMAS: &str = "apis.v1alpha2.kcp.io/resource-schemas";
pub const PERMISSION_CLAIMS: &str = "apis.v1alpha2.kcp.io/permission-claims";
pub const V1ALPHA1_PERMISSION_CLAIMS: &str = "apis.v1alpha2.kcp.io/v1alpha1-permission-claims";

/// `<prefix>.<plural>.<group|core>` → (plural, group), `core` meaning the core group;
/// `None` with fewer than three dot-separated segments.
pub fn parse_schema_name(schema: &str) -> Option<(&str, &str)> {
    let mut parts = schema.splitn(3, '.');
    let (_prefix, plural, group) = (parts.next()?, parts.next()?, parts.next()?);
    if plural.is_empty() || group.is_empty() {
        return None;
    }
    Some((plural, if group == "core" { "" } else { group }))
}

fn same_gri(g1: &str, r1: &str, h1: &str, g2: &str, r2: &str, h2: &str) -> bool {
    g1 == g2 && r1 == r2 && h1 == h2
}

fn take_annotation(meta: &mut crate::ObjectMeta, key: &str) -> Option<String> {
    let a = meta.annotations.as_mut()?;
    let v = a.remove(key);
    if a.is_empty() {
        meta.annotations = None;
    }
    v
}

fn put_annotation(meta: &mut crate::ObjectMeta, key: &str, value: String) {
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value);
}

/// A v1alpha1 APIExport as the stored v1alpha2 one. Schema names with fewer than three
/// segments are dropped (the v1alpha1 strategy refuses them before conversion).
pub fn to_v1alpha2(v1: &Value) -> Result<Value, DecodeError> {
    let mut e: v1alpha1::APIExport = from_value(v1)?;
    let overhang_resources = take_annotation(&mut e.metadata, RESOURCE_SCHEMAS);
    let overhang_claims = take_annotation(&mut e.metadata, PERMISSION_CLAIMS);
    let mut resources: Vec<ResourceSchema> = e
        .spec
        .latest_resource_schemas
        .iter()
        .filter_map(|s| {
            let (plural, group) = parse_schema_name(s)?;
            Some(ResourceSchema {
                name: plural.into(),
                group: group.into(),
                schema: s.clone(),
                storage: ResourceSchemaStorage::crd(),
                extra: BTreeMap::new(),
            })
        })
        .collect();
    if let Some(extra) = overhang_resources {
        let more: Vec<ResourceSchema> = serde_json::from_str(&extra)?;
        resources.extend(more);
    }
    let v2_verbs: Vec<PermissionClaim> = match overhang_claims {
        Some(s) => serde_json::from_str(&s)?,
        None => Vec::new(),
    };
    // what v2 cannot say (`all`, `resourceSelector`), kept for a v1alpha1 reader
    if e.spec
        .permission_claims
        .iter()
        .any(|c| c.all || !c.resource_selector.is_empty())
    {
        put_annotation(
            &mut e.metadata,
            V1ALPHA1_PERMISSION_CLAIMS,
            serde_json::to_string(&e.spec.permission_claims)?,
        );
    }
    let claims = e
        .spec
        .permission_claims
        .iter()
        .map(|c| {
            let verbs = v2_verbs
                .iter()
                .find(|o| {
                    same_gri(
                        &o.group,
                        &o.resource,
                        &o.identity_hash,
                        &c.group,
                        &c.resource,
                        &c.identity_hash,
                    )
                })
                .map(|o| o.verbs.clone())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| vec!["*".into()]);
            PermissionClaim {
                group: c.group.clone(),
                resource: c.resource.clone(),
                identity_hash: c.identity_hash.clone(),
                verbs,
                // a v1 claim's own unknown fields, except what v2 models otherwise
                extra: c.extra.clone(),
            }
        })
        .collect();
    let out = APIExport {
        api_version: Some(V1ALPHA2.into()),
        kind: e.kind,
        metadata: e.metadata,
        spec: crate::APIExportSpec {
            resources,
            identity: e.spec.identity,
            maximal_permission_policy: e.spec.maximal_permission_policy,
            permission_claims: claims,
            extra: e.spec.extra,
        },
        status: e.status,
        extra: e.extra,
    };
    Ok(to_value(&out))
}

/// A stored v1alpha2 APIExport as v1alpha1.
pub fn to_v1alpha1(v2: &Value) -> Result<Value, DecodeError> {
    let mut e: APIExport = from_value(v2)?;
    let (crd, other): (Vec<ResourceSchema>, Vec<ResourceSchema>) = e
        .spec
        .resources
        .into_iter()
        .partition(|r| r.storage.crd.is_some());
    if !other.is_empty() {
        put_annotation(
            &mut e.metadata,
            RESOURCE_SCHEMAS,
            serde_json::to_string(&other)?,
        );
    }
    let not_wildcard: Vec<&PermissionClaim> = e
        .spec
        .permission_claims
        .iter()
        .filter(|c| c.verbs != ["*"])
        .collect();
    if !not_wildcard.is_empty() {
        put_annotation(
            &mut e.metadata,
            PERMISSION_CLAIMS,
            serde_json::to_string(&not_wildcard)?,
        );
    }
    let originals: Vec<v1alpha1::PermissionClaim> =
        match take_annotation(&mut e.metadata, V1ALPHA1_PERMISSION_CLAIMS) {
            Some(s) => serde_json::from_str(&s)?,
            None => Vec::new(),
        };
    let claims = e
        .spec
        .permission_claims
        .iter()
        .map(|c| {
            let orig = originals.iter().find(|o| {
                same_gri(
                    &o.group,
                    &o.resource,
                    &o.identity_hash,
                    &c.group,
                    &c.resource,
                    &c.identity_hash,
                )
            });
            v1alpha1::PermissionClaim {
                group: c.group.clone(),
                resource: c.resource.clone(),
                identity_hash: c.identity_hash.clone(),
                all: orig.is_some_and(|o| o.all),
                resource_selector: orig
                    .map(|o| o.resource_selector.clone())
                    .unwrap_or_default(),
                extra: c.extra.clone(),
            }
        })
        .collect();
    let out = v1alpha1::APIExport {
        api_version: Some(V1ALPHA1.into()),
        kind: e.kind,
        metadata: e.metadata,
        spec: v1alpha1::APIExportSpec {
            latest_resource_schemas: crd.into_iter().map(|r| r.schema).collect(),
            identity: e.spec.identity,
            maximal_permission_policy: e.spec.maximal_permission_policy,
            permission_claims: claims,
            extra: e.spec.extra,
        },
        status: e.status,
        extra: e.extra,
    };
    Ok(to_value(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v1() -> Value {
        json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport",
            "metadata": {"name": "cowboys"},
            "spec": {"latestResourceSchemas": ["today.cowboys.wildwest.dev", "v1.widgets.core"],
                "permissionClaims": [{"group": "", "resource": "configmaps", "all": true},
                    {"group": "", "resource": "secrets", "resourceSelector": [{"name": "a", "namespace": "b"}]}],
                "identity": {"secretRef": {"name": "s", "namespace": "n"}}},
            "status": {"identityHash": "abc"}})
    }

    #[test]
    fn v1alpha1_becomes_resources_and_wildcard_claims() {
        let v2 = to_v1alpha2(&v1()).unwrap();
        assert_eq!(v2["apiVersion"], "apis.kcp.io/v1alpha2");
        assert_eq!(
            v2["spec"]["resources"],
            json!([
                {"name": "cowboys", "group": "wildwest.dev", "schema": "today.cowboys.wildwest.dev", "storage": {"crd": {}}},
                {"name": "widgets", "group": "", "schema": "v1.widgets.core", "storage": {"crd": {}}},
            ])
        );
        assert_eq!(
            v2["spec"]["permissionClaims"],
            json!([{"group": "", "resource": "configmaps", "verbs": ["*"]},
                {"group": "", "resource": "secrets", "verbs": ["*"]}])
        );
        assert_eq!(v2["spec"]["identity"], v1()["spec"]["identity"]);
        assert_eq!(v2["status"]["identityHash"], "abc");
        assert!(v2["spec"].get("latestResourceSchemas").is_none());
    }

    #[test]
    fn round_trips_are_lossless_both_ways() {
        let back = to_v1alpha1(&to_v1alpha2(&v1()).unwrap()).unwrap();
        assert_eq!(back, v1());
        let v2 = json!({"apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIExport",
            "metadata": {"name": "e", "annotations": {"x": "y"}},
            "spec": {"resources": [
                    {"name": "things", "group": "a.dev", "schema": "v1.things.a.dev", "storage": {"crd": {}}},
                    {"name": "views", "group": "a.dev", "schema": "v1.views.a.dev", "storage": {"virtual": {"reference": {"kind": "K"}, "identityHash": "h"}}}],
                "permissionClaims": [{"group": "", "resource": "configmaps", "verbs": ["get", "list"]},
                    {"group": "", "resource": "secrets", "verbs": ["*"]}],
                "futureField": 1}});
        let v1 = to_v1alpha1(&v2).unwrap();
        assert_eq!(
            v1["spec"]["latestResourceSchemas"],
            json!(["v1.things.a.dev"])
        );
        assert_eq!(v1["spec"]["futureField"], 1);
        assert!(v1["metadata"]["annotations"][RESOURCE_SCHEMAS].is_string());
        assert_eq!(to_v1alpha2(&v1).unwrap(), v2);
    }

    #[test]
    fn schema_names() {
        assert_eq!(
            parse_schema_name("v1.cowboys.wildwest.dev"),
            Some(("cowboys", "wildwest.dev"))
        );
        assert_eq!(
            parse_schema_name("v1.configmaps.core"),
            Some(("configmaps", ""))
        );
        assert_eq!(parse_schema_name("v1.cowboys"), None);
    }
}
