//! Full-sync planning (pure): what a shard must upsert so that the cache server's copy
//! of its objects equals its local state, and what the closing `sync` call will delete.
//!
//! An object is unchanged when both its source resourceVersion and its `metadata.uid`
//! are equal: the uid guards against a shard whose database was recreated and whose
//! resourceVersions started again from 1.

use std::collections::BTreeMap;

use crate::wire::Key;

/// What identifies one version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub rv: u64,
    pub uid: Option<String>,
}

/// What a full sync sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Keys to upsert (absent in the cache, or at another version).
    pub upserts: Vec<Key>,
    /// Keys the cache holds for this shard that are no longer local: the `sync` call
    /// deletes them (it sends the complete local key set; this list is for logging and
    /// tests).
    pub deletes: Vec<Key>,
}

/// Plans a full sync of `local` over `remote` (the cache server's objects of this shard).
pub fn plan(local: &BTreeMap<Key, Version>, remote: &BTreeMap<Key, Version>) -> SyncPlan {
    let upserts = local
        .iter()
        .filter(|(k, v)| remote.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    let deletes = remote
        .keys()
        .filter(|k| !local.contains_key(*k))
        .cloned()
        .collect();
    SyncPlan { upserts, deletes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(rv: u64, uid: &str) -> Version {
        Version {
            rv,
            uid: Some(uid.into()),
        }
    }

    #[test]
    fn upserts_missing_and_changed_deletes_vanished() {
        let k = |n: &str| Key::new("g/r", "c", "", n);
        let local = BTreeMap::from([
            (k("a"), v(1, "a")),
            (k("b"), v(5, "b")),
            (k("c"), v(3, "c")),
        ]);
        let remote = BTreeMap::from([
            (k("a"), v(1, "a")),
            (k("b"), v(4, "b")),
            (k("d"), v(2, "d")),
        ]);
        let p = plan(&local, &remote);
        assert_eq!(p.upserts, vec![k("b"), k("c")]);
        assert_eq!(p.deletes, vec![k("d")]);
    }

    #[test]
    fn same_rv_other_uid_is_a_change() {
        let k = Key::new("g/r", "c", "", "a");
        let local = BTreeMap::from([(k.clone(), v(1, "new"))]);
        let remote = BTreeMap::from([(k.clone(), v(1, "old"))]);
        assert_eq!(plan(&local, &remote).upserts, vec![k]);
    }

    fn key() -> impl Strategy<Value = Key> {
        (0..3u8, 0..3u8, 0..2u8, 0..6u8).prop_map(|(r, c, ns, n)| {
            Key::new(
                &format!("g/r{r}"),
                &format!("c{c}"),
                if ns == 0 { "" } else { "ns" },
                &format!("n{n}"),
            )
        })
    }

    fn state() -> impl Strategy<Value = BTreeMap<Key, Version>> {
        prop::collection::btree_map(key(), (1..4u64, 0..2u8), 0..20).prop_map(|m| {
            m.into_iter()
                .map(|(k, (rv, u))| (k, v(rv, &format!("u{u}"))))
                .collect()
        })
    }

    proptest! {
        /// Applying the plan (upserts, then the sync that deletes every key not local)
        /// makes the remote state equal to the local one, and nothing already equal is
        /// sent again.
        #[test]
        fn applying_a_plan_converges(local in state(), remote in state()) {
            let p = plan(&local, &remote);
            let mut after = remote.clone();
            for k in &p.upserts {
                prop_assert!(remote.get(k) != local.get(k));
                after.insert(k.clone(), local[k].clone());
            }
            for k in &p.deletes {
                prop_assert!(!local.contains_key(k));
            }
            after.retain(|k, _| local.contains_key(k));
            prop_assert_eq!(&after, &local);
            let deleted: Vec<Key> = remote.keys().filter(|k| !local.contains_key(*k)).cloned().collect();
            prop_assert_eq!(p.deletes, deleted);
            prop_assert!(plan(&local, &after).upserts.is_empty());
        }
    }
}
