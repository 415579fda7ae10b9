//! The identity controller of APIExports (kcp's `apiexport` controller):
//!
//! - the identity secret: the one `spec.identity.secretRef` names, else
//!   `kcp-system/<export>` in the export's own logical cluster, created with `key` =
//!   256 random bits in base64 (and namespace `kcp-system` when missing);
//! - `status.identityHash` = hex SHA-256 of the key's bytes, set once; condition
//!   `IdentityValid` True, or False (`IdentityVerificationFailed`) while the secret is
//!   missing, has no key, or no longer matches the hash;
//! - the export's APIExportEndpointSlice (same name, `spec.export{path,name}`), unless
//!   the export carries `apiexports.apis.kcp.io/skip-endpointslice`.
//!
//! A secret is looked up in the export's logical cluster only: `secretRef` cannot name
//! another workspace's secret, so no export can take another's identity.

use base64::Engine;
use canopy_apis_api::{
    self as api, APIExport, APIExportEndpointSlice, Condition, IDENTITY_KEY, IDENTITY_NAMESPACE,
    IDENTITY_VALID, IDENTITY_VERIFICATION_FAILED, SKIP_ENDPOINT_SLICE_ANNOTATION,
};
use canopy_apiserver::controllers::{keys_of, Event, ReconcileError, Starter};
use canopy_apiserver::plugin::Background;
use canopy_apiserver::{rest, ApiServer};
use canopy_core::{meta, ApiError};
use canopy_runtime::{Action, Controller};
use canopy_storage::{EventType, ObjectKey};
use serde_json::{json, Value};

use crate::{ENDPOINT_SLICES, EXPORTS};

const SECRETS: &str = "/secrets";
const NAMESPACES: &str = "/namespaces";
const LOGICAL_CLUSTERS: &str = "core.kcp.io/logicalclusters";
const PATH_ANNOTATION: &str = "kcp.io/path";

pub(crate) struct IdentityControllers;

impl Background for IdentityControllers {
    fn start(&self, api: &ApiServer, run: &mut Starter) {
        let a = api.clone();
        let c = Controller::new(
            "apiexport-identity",
            run.metrics(),
            move |key: ObjectKey| {
                let api = a.clone();
                async move { reconcile(&api, &key).await }
            },
        )
        .concurrency(4)
        .start();
        let queue = c.queue().clone();
        let (fa, ra) = (api.clone(), api.clone());
        run.feed(move |f| {
            f.watches(&queue, move |ev: &Event| export_keys(&fa, ev))
                .resync(&queue, move || keys_of(&ra, EXPORTS))
        });
        run.keep(c);
    }
}

/// The identity secret of `e`: (namespace, name).
fn secret_of(e: &APIExport) -> (String, String) {
    match e.spec.identity.as_ref().and_then(|i| i.secret_ref.as_ref()) {
        Some(r) => (r.namespace.clone(), r.name.clone()),
        None => (IDENTITY_NAMESPACE.to_string(), e.name().to_string()),
    }
}

/// Which exports an event concerns: an export's own events, and the exports of the
/// same logical cluster whose identity secret changed.
fn export_keys(api: &ApiServer, ev: &Event) -> Vec<ObjectKey> {
    let key = &ev.object.key;
    match &*key.resource {
        EXPORTS if ev.kind != EventType::Deleted => vec![key.clone()],
        SECRETS => api
            .store()
            .list_all(EXPORTS, Some(&key.cluster), None)
            .into_iter()
            .filter(|o| {
                api::from_value::<APIExport>(&o.value)
                    .is_ok_and(|e| secret_of(&e) == (key.namespace.to_string(), key.name.clone()))
            })
            .map(|o| o.key.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// Hex SHA-256 of the identity key's bytes (kcp's `IdentityHash`).
pub fn identity_hash(key: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh identity: 256 random bits, in base64 (the secret's `key` holds this text).
pub fn generate_identity() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The hash of a secret's `key`, or why there is none.
fn hash_of_secret(secret: &Value, ns: &str, name: &str) -> Result<String, String> {
    let data = secret
        .pointer(&format!("/data/{IDENTITY_KEY}"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("secret {ns}/{name} has no {IDENTITY_KEY:?} key"))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("secret {ns}/{name}: {e}"))?;
    Ok(identity_hash(&key))
}

fn resource(
    api: &ApiServer,
    group: &str,
    version: &str,
    plural: &str,
) -> Result<canopy_apiserver::registry::Resource, ApiError> {
    api.registry()
        .get(group, version, plural)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("{plural}.{group} is not served")))
}

/// The workspace path of logical cluster `cluster` (its LogicalCluster's `kcp.io/path`),
/// else the cluster's name.
pub(crate) fn path_of(api: &ApiServer, cluster: &str) -> String {
    api.store()
        .get(&ObjectKey::new(LOGICAL_CLUSTERS, cluster, "", "cluster"))
        .and_then(|o| meta::annotation(&o.value, PATH_ANNOTATION).map(str::to_string))
        .unwrap_or_else(|| cluster.to_string())
}

/// Creates the generated identity secret `kcp-system/<export>` (and its namespace).
async fn generate_secret(api: &ApiServer, cluster: &str, name: &str) -> Result<(), ApiError> {
    let store = api.store();
    if store
        .get(&ObjectKey::new(NAMESPACES, cluster, "", IDENTITY_NAMESPACE))
        .is_none()
    {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": IDENTITY_NAMESPACE}});
        rest::create_system(api, cluster, &resource(api, "", "v1", "namespaces")?, ns).await?;
    }
    let key = generate_identity();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": IDENTITY_NAMESPACE},
        "data": {IDENTITY_KEY: base64::engine::general_purpose::STANDARD.encode(key.as_bytes())}});
    // one created meanwhile is kept (`Ok(None)`)
    rest::create_system(api, cluster, &resource(api, "", "v1", "secrets")?, secret).await?;
    Ok(())
}

async fn reconcile(api: &ApiServer, key: &ObjectKey) -> Result<Action, ReconcileError> {
    let store = api.store();
    let Some(obj) = store.get(key) else {
        return Ok(Action::await_change());
    };
    if meta::is_deleting(&obj.value) {
        return Ok(Action::await_change());
    }
    let e: APIExport = match api::from_value(&obj.value) {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(%key, error = %err, "an APIExport of an unexpected shape");
            return Ok(Action::await_change());
        }
    };
    let cluster = &*key.cluster;
    let (ns, name) = secret_of(&e);
    let generated = e
        .spec
        .identity
        .as_ref()
        .and_then(|i| i.secret_ref.as_ref())
        .is_none();
    let secret_key = ObjectKey::new(SECRETS, cluster, &ns, &name);
    if store.get(&secret_key).is_none() && generated {
        generate_secret(api, cluster, &name).await?;
    }
    let hash = match store.get(&secret_key) {
        Some(s) => hash_of_secret(&s.value, &ns, &name),
        None => Err(format!("secret {ns}/{name} not found")),
    };
    let now = meta::now();
    rest::update_system(api, key, |cur| {
        let (new, changed) = api::edit(cur, |x: &mut APIExport| {
            let before = x.status.clone();
            let cond = match &hash {
                Ok(h) if x.status.identity_hash.is_empty() || x.status.identity_hash == *h => {
                    x.status.identity_hash = h.clone();
                    Condition {
                        type_: IDENTITY_VALID.into(),
                        status: "True".into(),
                        ..Default::default()
                    }
                }
                Ok(h) => failed(format!(
                    "hash mismatch: identity secret hash {h:?} must match status.identityHash {:?}",
                    x.status.identity_hash
                )),
                Err(why) => failed(why.clone()),
            };
            api::set_condition(&mut x.status.conditions, cond, &now);
            x.status != before
        })
        .ok()?;
        changed.then_some(new)
    })
    .await?;
    if !e.has_annotation(SKIP_ENDPOINT_SLICE_ANNOTATION)
        && store
            .get(&ObjectKey::new(ENDPOINT_SLICES, cluster, "", e.name()))
            .is_none()
    {
        let slice = APIExportEndpointSlice::for_export(&path_of(api, cluster), e.name());
        let res = resource(api, api::GROUP, "v1alpha1", "apiexportendpointslices")?;
        rest::create_system(api, cluster, &res, api::to_value(&slice)).await?;
    }
    Ok(Action::await_change())
}

fn failed(message: String) -> Condition {
    Condition {
        type_: IDENTITY_VALID.into(),
        status: "False".into(),
        severity: "Error".into(),
        reason: IDENTITY_VERIFICATION_FAILED.into(),
        message,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_random_and_hashed_as_kcp_does() {
        let (a, b) = (generate_identity(), generate_identity());
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 32);
        // sha256("abc")
        assert_eq!(
            identity_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let secret =
            json!({"data": {"key": base64::engine::general_purpose::STANDARD.encode("abc")}});
        assert_eq!(
            hash_of_secret(&secret, "n", "s").unwrap(),
            identity_hash(b"abc")
        );
        assert!(hash_of_secret(&json!({"data": {}}), "n", "s").is_err());
    }
}
