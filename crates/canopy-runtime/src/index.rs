//! A reverse index of ownership, for mapping an object's events to its owners' keys
//! (kube-runtime's `owns`) and an owner's to its dependents' keys (a garbage collector).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use parking_lot::RwLock;

/// For each object (by key): its id and the ids of its owners. Answers which key has an
/// id, and which keys name an id as owner. Updated from events in the order they
/// happened; [`OwnerIndex::replace_all`] swaps in a rebuilt index at once, so readers
/// never see it half empty.
pub struct OwnerIndex<K, Id> {
    inner: RwLock<Inner<K, Id>>,
}

struct Inner<K, Id> {
    objects: HashMap<K, (Option<Id>, Vec<Id>)>,
    by_id: HashMap<Id, K>,
    dependents: HashMap<Id, HashSet<K>>,
}

impl<K, Id> Default for Inner<K, Id> {
    fn default() -> Self {
        Inner {
            objects: HashMap::new(),
            by_id: HashMap::new(),
            dependents: HashMap::new(),
        }
    }
}

impl<K, Id> Default for OwnerIndex<K, Id> {
    fn default() -> Self {
        OwnerIndex {
            inner: RwLock::new(Inner::default()),
        }
    }
}

impl<K: Clone + Eq + Hash, Id: Clone + Eq + Hash> Inner<K, Id> {
    fn remove(&mut self, key: &K) {
        let Some((id, owners)) = self.objects.remove(key) else {
            return;
        };
        if let Some(id) = id {
            if self.by_id.get(&id) == Some(key) {
                self.by_id.remove(&id);
            }
        }
        for o in owners {
            if let Some(set) = self.dependents.get_mut(&o) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&o);
                }
            }
        }
    }

    fn upsert(&mut self, key: K, id: Option<Id>, owners: Vec<Id>) {
        self.remove(&key);
        if let Some(id) = &id {
            self.by_id.insert(id.clone(), key.clone());
        }
        for o in &owners {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert(key.clone());
        }
        if id.is_some() || !owners.is_empty() {
            self.objects.insert(key, (id, owners));
        }
    }
}

impl<K: Clone + Eq + Hash, Id: Clone + Eq + Hash> OwnerIndex<K, Id> {
    /// Records (or replaces) what is known of `key`.
    pub fn upsert(&self, key: K, id: Option<Id>, owners: Vec<Id>) {
        self.inner.write().upsert(key, id, owners);
    }

    /// Forgets `key` (it was deleted).
    pub fn remove(&self, key: &K) {
        self.inner.write().remove(key);
    }

    /// Replaces the whole index by one built from `objects`.
    pub fn replace_all(&self, objects: impl IntoIterator<Item = (K, Option<Id>, Vec<Id>)>) {
        let mut fresh = Inner::default();
        for (k, id, owners) in objects {
            fresh.upsert(k, id, owners);
        }
        *self.inner.write() = fresh;
    }

    /// The key of the object with `id`.
    pub fn key_of(&self, id: &Id) -> Option<K> {
        self.inner.read().by_id.get(id).cloned()
    }

    /// The keys of the objects that name `id` as an owner.
    pub fn dependents(&self, id: &Id) -> Vec<K> {
        self.inner
            .read()
            .dependents
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The keys of the known owners of `key`.
    pub fn owners(&self, key: &K) -> Vec<K> {
        let inner = self.inner.read();
        inner
            .objects
            .get(key)
            .map(|(_, owners)| {
                owners
                    .iter()
                    .filter_map(|o| inner.by_id.get(o).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.inner.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_changes_of_ownership() {
        let ix: OwnerIndex<&str, u32> = OwnerIndex::default();
        ix.upsert("owner", Some(1), vec![]);
        ix.upsert("dep-a", Some(2), vec![1]);
        ix.upsert("dep-b", Some(3), vec![1, 2]);
        let mut deps = ix.dependents(&1);
        deps.sort();
        assert_eq!(deps, ["dep-a", "dep-b"]);
        assert_eq!(ix.owners(&"dep-b").len(), 2);
        assert_eq!(ix.key_of(&2), Some("dep-a"));
        // dep-b drops owner 1
        ix.upsert("dep-b", Some(3), vec![2]);
        assert_eq!(ix.dependents(&1), ["dep-a"]);
        ix.remove(&"dep-a");
        assert!(ix.dependents(&1).is_empty());
        assert_eq!(ix.key_of(&2), None);
        assert!(ix.owners(&"dep-b").is_empty(), "owner 2 is gone");
        ix.replace_all([("x", Some(9), vec![1])]);
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.dependents(&1), ["x"]);
        assert_eq!(ix.key_of(&1), None);
    }

    #[test]
    fn an_id_reused_by_another_key_stays_with_the_newer() {
        let ix: OwnerIndex<&str, u32> = OwnerIndex::default();
        ix.upsert("old", Some(1), vec![]);
        ix.upsert("new", Some(1), vec![]);
        ix.remove(&"old");
        assert_eq!(ix.key_of(&1), Some("new"));
    }
}
