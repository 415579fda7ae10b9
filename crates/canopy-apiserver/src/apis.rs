//! The APIs a logical cluster serves: the built-in resources plus the custom resources of
//! its Established CRDs, with their discovery and OpenAPI documents. Built once per set of
//! CRDs (keyed by the CRDs' resourceVersions) and shared by every request until a CRD of
//! that logical cluster changes; logical clusters without CRDs share the built-in set.

use std::collections::HashMap;
use std::sync::Arc;

use canopy_storage::{Store, StoredObject};
use parking_lot::RwLock;

use crate::discovery::OpenApi;
use crate::registry::{crd, Registry};

pub const CRD_RESOURCE: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// Resources, discovery and OpenAPI of one logical cluster.
pub struct ClusterApis {
    pub registry: Registry,
    pub openapi: OpenApi,
    /// Which Established CRDs (and their resourceVersions) this was built from.
    fingerprint: u64,
}

pub(crate) struct ApisCache {
    builtin: Arc<ClusterApis>,
    base: canopy_openapi::OpenApiBuilder,
    per_cluster: RwLock<HashMap<String, Arc<ClusterApis>>>,
}

impl ApisCache {
    pub(crate) fn new(registry: Registry) -> ApisCache {
        let base = OpenApi::builder(&registry);
        let openapi = OpenApi::from_builder(base.clone());
        ApisCache {
            builtin: Arc::new(ClusterApis {
                registry,
                openapi,
                fingerprint: 0,
            }),
            base,
            per_cluster: RwLock::new(HashMap::new()),
        }
    }

    /// The APIs of `cluster` (built-ins only for `None`, the wildcard): the built-ins,
    /// the Established CRDs of the cluster, and what plug-ins serve there
    /// ([`crate::plugin::ApiSource`]).
    pub(crate) fn get(&self, api: &crate::ApiServer, cluster: Option<&str>) -> Arc<ClusterApis> {
        let Some(cluster) = cluster else {
            return self.builtin.clone();
        };
        let store: &Store = &api.inner.store;
        let sources = &api.inner.plugins.sources;
        let crds = store.list_all(CRD_RESOURCE, Some(cluster), None);
        let established: Vec<&std::sync::Arc<StoredObject>> = crds
            .iter()
            .filter(|c| crd::condition_true(&c.value, "Established"))
            .collect();
        let sourced: Vec<u64> = sources
            .iter()
            .map(|s| s.fingerprint(api, cluster))
            .collect();
        if established.is_empty() && sourced.iter().all(|f| *f == 0) {
            if self.per_cluster.read().contains_key(cluster) {
                self.per_cluster.write().remove(cluster);
            }
            return self.builtin.clone();
        }
        // every request looks this up: a hash, no allocation
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for c in &established {
                c.key.name.hash(&mut h);
                c.rv.hash(&mut h);
            }
            sourced.hash(&mut h);
            h.finish()
        };
        if let Some(a) = self.per_cluster.read().get(cluster) {
            if a.fingerprint == fingerprint {
                return a.clone();
            }
        }
        let mut registry = self.builtin.registry.clone();
        let mut builder = self.base.clone();
        // a source's definition of a local CRD's resource wins over the CRD
        let from_sources: Vec<crate::plugin::SourcedCrd> =
            sources.iter().flat_map(|s| s.crds(api, cluster)).collect();
        let taken = |group: &str, plural: &str| {
            from_sources.iter().any(|s| {
                s.crd
                    .pointer("/spec/group")
                    .and_then(serde_json::Value::as_str)
                    == Some(group)
                    && s.crd
                        .pointer("/spec/names/plural")
                        .and_then(serde_json::Value::as_str)
                        == Some(plural)
            })
        };
        let mut defs: Vec<(&serde_json::Value, Option<&str>, &str)> = established
            .iter()
            .filter(|c| {
                !taken(
                    c.value
                        .pointer("/spec/group")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or(""),
                    c.value
                        .pointer("/spec/names/plural")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or(""),
                )
            })
            .map(|c| (&c.value, None, c.key.name.as_str()))
            .collect();
        defs.extend(
            from_sources
                .iter()
                .map(|s| (&*s.crd, Some(s.storage_suffix.as_str()), "")),
        );
        for (crd_value, suffix, crd_name) in defs {
            let schemas: HashMap<String, serde_json::Value> = crd_value
                .pointer("/spec/versions")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| {
                    (
                        v.get("name")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        v.pointer("/schema/openAPIV3Schema")
                            .cloned()
                            .unwrap_or_else(|| serde_json::json!({"type": "object"})),
                    )
                })
                .collect();
            for mut r in crd::resources_of(crd_value) {
                if let Some(suffix) = suffix {
                    if registry
                        .get(&r.desc.group, &r.desc.version, &r.desc.plural)
                        .is_some()
                    {
                        // a built-in (or a plug-in kind) is never shadowed
                        continue;
                    }
                    let mut d = (*r.desc).clone();
                    d.shared_storage = Some(format!("{}/{}:{suffix}", d.group, d.plural));
                    r.desc = Arc::new(d);
                }
                let d = &r.desc;
                let info = crate::discovery::openapi_info(d, false);
                let schema = schemas
                    .get(&d.version)
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object"}));
                if let Err(e) = builder.add_resource(info, &schema) {
                    tracing::warn!(error = %e, crd = %crd_name, "no OpenAPI schema for custom resource");
                }
                registry.add(r);
            }
        }
        let apis = Arc::new(ClusterApis {
            registry,
            openapi: OpenApi::from_builder(builder),
            fingerprint,
        });
        self.per_cluster
            .write()
            .insert(cluster.to_string(), apis.clone());
        apis
    }
}
