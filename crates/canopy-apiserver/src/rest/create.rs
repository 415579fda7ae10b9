//! Create (POST), and [`create_object`], the create path it shares with applies that
//! create: generateName, system metadata, validation, namespace checks, admission, commit.

use std::sync::Arc;

use canopy_core::{meta, ApiError, Cause, Subject};
use canopy_storage::{Mutation, ObjectKey, StorageError, StoredObject};
use http::Response;
use serde_json::{json, Value};

use super::decode::decode_object;
use super::{
    check_dry_run_size, dry_run, key_for, respond_object, respond_value, storage_error,
    validate_admission, validate_all,
};
use crate::pipeline::Ctx;
use crate::registry::Resource;
use crate::response::{self, Body};
use crate::ApiServer;

pub(super) async fn create(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (mut obj, warnings) = decode_object(api, ctx, res, body)?;
    let ns = ctx.info.namespace.clone();
    if res.desc.namespaced {
        let body_ns = meta::namespace(&obj).to_string();
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta::set_meta(&mut obj, "namespace", json!(ns));
    } else if !meta::namespace(&obj).is_empty() {
        meta::remove_meta(&mut obj, "namespace");
    }
    if !meta::meta_str(&obj, "resourceVersion")
        .unwrap_or("")
        .is_empty()
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    admit(api, ctx, res, &mut obj)?;
    let stored = create_object(api, ctx, res, obj).await?;
    let resp = match stored {
        Created::Stored(o) => respond_object(ctx, res, 201, &o)?,
        Created::DryRun(v) => respond_value(ctx, res, 201, &v, None)?,
    };
    Ok(response::with_warnings(resp, &warnings))
}

/// Runs the admission chain, then the resource's own admission, for a user's create
/// request.
pub(super) fn admit(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    obj: &mut Value,
) -> Result<(), ApiError> {
    validate_admission(api, ctx, res, crate::admission::Operation::Create(obj))?;
    let actx = crate::registry::AdmissionContext {
        user: &ctx.user,
        store: &api.inner.store,
        api,
        cluster: ctx.cluster.as_deref().unwrap_or(""),
    };
    res.strategy.admit(obj, &actx)
}

pub enum Created {
    Stored(Arc<StoredObject>),
    DryRun(Value),
}

/// The create path shared by POST and apply-creates (a PUT of a missing object is 404,
/// as for kube's built-ins without create-on-update): generateName, system
/// metadata, validation, namespace admission, commit.
pub async fn create_object(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    mut obj: Value,
) -> Result<Created, ApiError> {
    let ns = meta::namespace(&obj).to_string();
    prepare_new(res, &mut obj)?;
    let generate = meta::meta_str(&obj, "generateName")
        .unwrap_or("")
        .to_string();
    let explicit = meta::name(&obj).to_string();
    if explicit.is_empty() && !generate.is_empty() {
        meta::set_meta(&mut obj, "name", json!(generate_name(&generate)));
    }
    let obj = crate::fieldmanager::track_update(ctx, res, None, obj)?;
    validate_all(res, &obj, None)?;
    check_namespace(api, ctx, res, &ns)?;
    // what plug-ins reserve for it (quotas), held until the commit below is answered
    let _reserved =
        api.inner
            .plugins
            .admit_write(api, ctx, res, crate::plugin::Write::Create { obj: &obj })?;
    if dry_run(ctx) {
        check_dry_run_size(api, res, &obj)?;
        return Ok(Created::DryRun(obj));
    }
    let cluster = ctx.cluster.clone().unwrap_or_default();
    let retry_names = explicit.is_empty() && !generate.is_empty();
    let mut obj = res.strategy.to_storage(obj);
    for attempt in 0..8 {
        let name = meta::name(&obj).to_string();
        let key = key_for(res, &cluster, &ns, &name);
        // kept for another attempt only when a generated name may collide
        let value = if retry_names {
            obj.clone()
        } else {
            std::mem::take(&mut obj)
        };
        match api.inner.store.apply(Mutation::Create { key, value }).await {
            Ok(o) => return Ok(Created::Stored(o)),
            Err(StorageError::AlreadyExists(_)) if retry_names && attempt < 7 => {
                meta::set_meta(&mut obj, "name", json!(generate_name(&generate)));
            }
            Err(e) => return Err(storage_error(res, &name, e)),
        }
    }
    Err(ApiError::internal("could not generate a unique name"))
}

/// Checks that a namespaced object may be created in its namespace.
fn check_namespace(api: &ApiServer, ctx: &Ctx, res: &Resource, ns: &str) -> Result<(), ApiError> {
    if !res.desc.namespaced {
        return Ok(());
    }
    let cluster = ctx.cluster.as_deref().unwrap_or("");
    match api.inner.store.get(&ObjectKey::new("/namespaces", cluster, "", ns)) {
        None => Err(ApiError::not_found(Subject { group: "", resource: "namespaces", name: ns })),
        Some(n) if meta::is_deleting(&n.value) => Err(ApiError::forbidden_message(format!(
            "{} {:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            res.desc.qualified(),
            ctx.info.name
        ))
        .with_causes(vec![Cause::new("NamespaceTerminating", "metadata.namespace", format!("namespace {ns} is being terminated"))])),
        Some(_) => Ok(()),
    }
}

/// Sets the system-owned metadata of a new object.
pub(super) fn prepare_new(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    let m = meta::metadata_mut(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(meta::now()));
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("resourceVersion");
    m.remove("selfLink");
    if res.strategy.tracks_generation() {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    res.strategy.prepare_for_create(obj)
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// kube's `SimpleNameGenerator`: the base cut to 58 bytes (at a character boundary, so
/// a multi-byte character there is dropped whole; validation then judges the name)
/// and 5 random characters.
fn generate_name(base: &str) -> String {
    use rand::seq::IndexedRandom;
    let mut end = base.len().min(MAX_GENERATED_BASE);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    let base = base.get(..end).unwrap_or_default();
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .filter_map(|_| GENERATE_ALPHABET.choose(&mut rng).map(|b| char::from(*b)))
        .collect();
    format!("{base}{suffix}")
}

const MAX_GENERATED_BASE: usize = 58;
