//! Writes by the system itself (bootstrap, controllers): no request, no authorization.

use std::sync::Arc;

use canopy_core::{meta, ApiError};
use canopy_storage::{Mutation, ObjectKey, StorageError, StoredObject};
use serde_json::{json, Value};

use super::create::prepare_new;
use super::decode::check_type;
use super::{has_spec_finalizers, key_for, storage_error, validate_all, MAX_CONFLICT_RETRIES};
use crate::registry::Resource;
use crate::ApiServer;

/// Creates an object as the system; `Ok(None)` if it already exists.
pub async fn create_system(
    api: &ApiServer,
    cluster: &str,
    res: &Resource,
    mut obj: Value,
) -> Result<Option<Arc<StoredObject>>, ApiError> {
    check_type(res, &mut obj)?;
    let (mut obj, _) = res.strategy.canonicalize(obj)?;
    prepare_new(res, &mut obj)?;
    validate_all(res, &obj, None)?;
    let key = key_for(res, cluster, meta::namespace(&obj), meta::name(&obj));
    match api
        .inner
        .store
        .apply(Mutation::Create { key, value: obj })
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(StorageError::AlreadyExists(_)) => Ok(None),
        Err(e) => Err(storage_error(res, "", e)),
    }
}

/// Creates several objects as the system in one atomic commit, skipping those that
/// already exist; if another writer creates one meanwhile, falls back to one commit per
/// object.
pub async fn create_system_batch(
    api: &ApiServer,
    cluster: &str,
    items: Vec<(Resource, Value)>,
) -> Result<(), ApiError> {
    let store = &api.inner.store;
    let mut muts = Vec::with_capacity(items.len());
    let mut prepared = Vec::with_capacity(items.len());
    for (res, mut obj) in items {
        check_type(&res, &mut obj)?;
        let (mut obj, _) = res.strategy.canonicalize(obj)?;
        prepare_new(&res, &mut obj)?;
        validate_all(&res, &obj, None)?;
        let key = key_for(&res, cluster, meta::namespace(&obj), meta::name(&obj));
        if store.get(&key).is_some() {
            continue;
        }
        muts.push(Mutation::Create {
            key,
            value: obj.clone(),
        });
        prepared.push((res, obj));
    }
    match store.commit(muts).await {
        Ok(_) => Ok(()),
        Err(StorageError::AlreadyExists(_)) => {
            for (res, obj) in prepared {
                create_system(api, cluster, &res, obj).await?;
            }
            Ok(())
        }
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// Updates an object as the system with `f` (None: leave unchanged), retrying on
/// conflicts; `Ok(None)` if the object is gone. Removing the last finalizer of an
/// object being deleted deletes it.
pub async fn update_system(
    api: &ApiServer,
    key: &ObjectKey,
    mut f: impl FnMut(&Value) -> Option<Value>,
) -> Result<Option<Arc<StoredObject>>, StorageError> {
    let store = &api.inner.store;
    for _ in 0..MAX_CONFLICT_RETRIES {
        let Some(cur) = store.get(key) else {
            return Ok(None);
        };
        let Some(new) = f(&cur.value) else {
            return Ok(Some(cur));
        };
        let m = if meta::is_deleting(&new)
            && meta::finalizers(&new).is_empty()
            && !has_spec_finalizers(&new)
        {
            Mutation::Delete {
                key: key.clone(),
                expected_rv: Some(cur.rv),
            }
        } else {
            Mutation::Update {
                key: key.clone(),
                expected_rv: Some(cur.rv),
                value: new,
            }
        };
        match store.apply(m).await {
            Ok(o) => return Ok(Some(o)),
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Unavailable(format!(
        "{key}: too many conflicts"
    )))
}

/// Deletes an object as the system, honouring finalizers (sets deletionTimestamp when
/// there are any). `Ok(false)` if it was already gone.
pub async fn delete_system(
    api: &ApiServer,
    key: &ObjectKey,
    propagation: &str,
) -> Result<bool, StorageError> {
    let store = &api.inner.store;
    for _ in 0..MAX_CONFLICT_RETRIES {
        let Some(cur) = store.get(key) else {
            return Ok(false);
        };
        let mut fins = meta::finalizers(&cur.value);
        if propagation == "Foreground" && !fins.iter().any(|f| f == "foregroundDeletion") {
            fins.push("foregroundDeletion".into());
        }
        let m = if fins.is_empty() && !has_spec_finalizers(&cur.value) {
            Mutation::Delete {
                key: key.clone(),
                expected_rv: Some(cur.rv),
            }
        } else if meta::is_deleting(&cur.value) && fins == meta::finalizers(&cur.value) {
            return Ok(true);
        } else {
            let mut new = cur.value.clone();
            if !meta::is_deleting(&new) {
                meta::set_meta(&mut new, "deletionTimestamp", json!(meta::now()));
                meta::set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
            }
            meta::set_meta(&mut new, "finalizers", json!(fins));
            if new.get("kind").and_then(Value::as_str) == Some("Namespace") {
                meta::set_path(&mut new, &["status", "phase"], json!("Terminating"))
                    .map_err(|e| StorageError::InvalidObject(format!("{key}: {e}")))?;
            }
            Mutation::Update {
                key: key.clone(),
                expected_rv: Some(cur.rv),
                value: new,
            }
        };
        match store.apply(m).await {
            Ok(_) => return Ok(true),
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Unavailable(format!(
        "{key}: too many conflicts"
    )))
}
