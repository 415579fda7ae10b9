//! Tests of the store's semantics, each run on both backends: a real PostgreSQL server
//! (a private cluster started by `canopy-pg`'s test support, or
//! `CANOPY_TEST_DATABASE_URL`) and the in-memory backend, which must behave the same.

use std::time::Duration;

use canopy_storage::{
    EventType, ListOptions, MemoryBackend, Mutation, ObjectKey, StorageError, Store, StoreOptions,
    WatchStart,
};
use serde_json::{json, Value};

fn cm(ns: &str, name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"v": data}})
}

fn key(cluster: &str, ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new("/configmaps", cluster, ns, name)
}

async fn open(url: &str, options: StoreOptions) -> Store {
    Store::open(url, options).await.expect("open store")
}

/// Where a test's store keeps its state. Opening twice opens the same state, as a shard
/// restarting on its database does.
enum Backing {
    Postgres(canopy_pg::testing::TestDatabase),
    Memory(MemoryBackend),
}

impl Backing {
    async fn postgres() -> Backing {
        Backing::Postgres(canopy_pg::testing::test_database().await.unwrap())
    }

    async fn open(&self, options: StoreOptions) -> Store {
        match self {
            Backing::Postgres(db) => open(&db.url, options).await,
            Backing::Memory(m) => Store::open_backend(m.clone(), options)
                .await
                .expect("open store"),
        }
    }
}

/// Runs each named test on both backends (`<test>::postgres`, `<test>::memory`).
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$test(super::Backing::postgres().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$test(super::Backing::Memory(Default::default())).await
            }
        }
    )*};
}

on_both_backends!(
    create_update_delete_with_preconditions,
    list_scopes_and_pages,
    watch_order_is_gap_free_under_concurrent_writers,
    initial_state_watch_then_live,
    restart_keeps_state_and_history_and_compaction_expires_old_rvs,
    objects_over_the_size_limit_are_refused_and_change_nothing,
);

async fn create_update_delete_with_preconditions(b: Backing) {
    let store = b.open(StoreOptions::default()).await;

    let a = store
        .apply(Mutation::Create {
            key: key("c1", "d", "a"),
            value: cm("d", "a", "1"),
        })
        .await
        .unwrap();
    assert_eq!(a.rv, 1);
    assert_eq!(a.value["metadata"]["resourceVersion"], "1");

    let dup = store
        .apply(Mutation::Create {
            key: key("c1", "d", "a"),
            value: cm("d", "a", "2"),
        })
        .await;
    assert!(matches!(dup, Err(StorageError::AlreadyExists(_))));

    // the same name in another logical cluster is another object
    let other = store
        .apply(Mutation::Create {
            key: key("c2", "d", "a"),
            value: cm("d", "a", "x"),
        })
        .await
        .unwrap();
    assert_eq!(other.rv, 2);

    let stale = store
        .apply(Mutation::Update {
            key: key("c1", "d", "a"),
            expected_rv: Some(99),
            value: cm("d", "a", "3"),
        })
        .await;
    assert!(matches!(
        stale,
        Err(StorageError::Conflict {
            expected: 99,
            actual: 1,
            ..
        })
    ));

    let b = store
        .apply(Mutation::Update {
            key: key("c1", "d", "a"),
            expected_rv: Some(1),
            value: cm("d", "a", "3"),
        })
        .await
        .unwrap();
    assert_eq!(b.rv, 3);
    assert_eq!(
        store.get(&key("c1", "d", "a")).unwrap().value["data"]["v"],
        "3"
    );
    assert_eq!(
        store.get(&key("c2", "d", "a")).unwrap().value["data"]["v"],
        "x"
    );

    let missing = store
        .apply(Mutation::Update {
            key: key("c1", "d", "zz"),
            expected_rv: None,
            value: cm("d", "zz", "3"),
        })
        .await;
    assert!(matches!(missing, Err(StorageError::NotFound(_))));

    // a failing mutation makes the whole commit fail, with nothing written
    let res = store
        .commit(vec![
            Mutation::Create {
                key: key("c1", "d", "new"),
                value: cm("d", "new", "1"),
            },
            Mutation::Delete {
                key: key("c1", "d", "absent"),
                expected_rv: None,
            },
        ])
        .await;
    assert!(matches!(res, Err(StorageError::NotFound(_))));
    assert!(store.get(&key("c1", "d", "new")).is_none());
    assert_eq!(store.current_rv(), 3);

    let gone = store
        .apply(Mutation::Delete {
            key: key("c1", "d", "a"),
            expected_rv: Some(3),
        })
        .await
        .unwrap();
    assert_eq!(gone.rv, 4);
    assert_eq!(
        gone.value["data"]["v"], "3",
        "a delete returns the last state"
    );
    assert!(store.get(&key("c1", "d", "a")).is_none());
    store.close().await;
}

async fn list_scopes_and_pages(b: Backing) {
    let store = b.open(StoreOptions::default()).await;
    let mut muts = Vec::new();
    for c in ["c1", "c2"] {
        for ns in ["a", "b"] {
            for i in 0..5 {
                let name = format!("o{i}");
                muts.push(Mutation::Create {
                    key: key(c, ns, &name),
                    value: cm(ns, &name, c),
                });
            }
        }
    }
    store.commit(muts).await.unwrap();
    let all = |_: &canopy_storage::StoredObject| true;
    let list = |cluster, namespace, limit, after: Option<String>| {
        let opts = ListOptions {
            resource: "/configmaps",
            cluster,
            namespace,
            name: None,
            continue_after: after.as_deref(),
            limit,
            filter: &all,
        };
        store.list(&opts).unwrap()
    };
    assert_eq!(list(Some("c1"), None, 0, None).items.len(), 10);
    assert_eq!(list(Some("c1"), Some("b"), 0, None).items.len(), 5);
    assert_eq!(list(None, Some("b"), 0, None).items.len(), 10);
    assert_eq!(list(None, None, 0, None).items.len(), 20);
    assert_eq!(list(Some("c3"), None, 0, None).items.len(), 0);

    // pages of 3 over one cluster visit every object once, in order
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(Some("c2"), None, 3, after.clone());
        assert!(page.items.len() <= 3);
        seen.extend(
            page.items
                .iter()
                .map(|o| format!("{}/{}", o.key.namespace, o.key.name)),
        );
        match page.continue_key {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    let expected: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|ns| (0..5).map(move |i| format!("{ns}/o{i}")))
        .collect();
    assert_eq!(seen, expected);
    store.close().await;
}

/// Many concurrent writers, watchers starting at different points: every watcher sees
/// every event after its start exactly once, in commit order, with no gap.
async fn watch_order_is_gap_free_under_concurrent_writers(b: Backing) {
    let store = b
        .open(StoreOptions {
            max_batch: 64,
            ..StoreOptions::default()
        })
        .await;
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 60;
    // every writer creates PER_WRITER objects and updates+deletes every third one
    let total =
        (WRITERS * PER_WRITER) as u64 + 2 * (WRITERS as u64) * (PER_WRITER as u64).div_ceil(3);

    let collect = |mut w: canopy_storage::Watcher, until: u64| {
        tokio::spawn(async move {
            let mut rvs: Vec<u64> = w.initial.iter().map(|e| e.rv).collect();
            let start = w.start_rv;
            while rvs.last().copied().unwrap_or(start) < until {
                let ev = tokio::time::timeout(Duration::from_secs(30), w.next())
                    .await
                    .expect("watch stalled")
                    .expect("watch error")
                    .expect("store closed");
                rvs.push(ev.rv);
            }
            (start, rvs)
        })
    };

    let from_start = collect(
        store.watch("/configmaps", WatchStart::After(0)).unwrap(),
        total,
    );
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let s = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let name = format!("w{w}-{i}");
                let k = key("c", "ns", &name);
                s.apply(Mutation::Create {
                    key: k.clone(),
                    value: cm("ns", &name, "0"),
                })
                .await
                .unwrap();
                // updates and deletes interleave with other writers' creates
                if i % 3 == 0 {
                    s.apply(Mutation::Update {
                        key: k.clone(),
                        expected_rv: None,
                        value: cm("ns", &name, "1"),
                    })
                    .await
                    .unwrap();
                    s.apply(Mutation::Delete {
                        key: k,
                        expected_rv: None,
                    })
                    .await
                    .unwrap();
                }
            }
        }));
    }
    // watchers that join mid-stream, resuming from whatever rv is current then
    let mut late = Vec::new();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let rv = store.current_rv();
        late.push((
            rv,
            store.watch("/configmaps", WatchStart::After(rv)).unwrap(),
        ));
    }
    for w in writers {
        w.await.unwrap();
    }
    let final_rv = store.current_rv();
    assert_eq!(final_rv, total);

    let (_, rvs) = from_start.await.unwrap();
    assert_dense(&rvs, 1, final_rv, "watcher from 0");
    for (from, w) in late {
        let (_, rvs) = collect(w, final_rv).await.unwrap();
        assert_dense(&rvs, from + 1, final_rv, &format!("watcher from {from}"));
    }
    store.close().await;
}

/// `rvs` must be exactly `first..=last`: no gap, no duplicate, in order.
fn assert_dense(rvs: &[u64], first: u64, last: u64, what: &str) {
    let expected: Vec<u64> = (first..=last).collect();
    if rvs != expected.as_slice() {
        let at = rvs
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(rvs.len().min(expected.len()));
        panic!(
            "{what}: saw {} events, expected {}; first difference at index {at}: saw {:?}, expected {:?}",
            rvs.len(),
            expected.len(),
            rvs.get(at),
            expected.get(at)
        );
    }
}

async fn initial_state_watch_then_live(b: Backing) {
    let store = b.open(StoreOptions::default()).await;
    for n in ["a", "b"] {
        store
            .apply(Mutation::Create {
                key: key("c1", "d", n),
                value: cm("d", n, "1"),
            })
            .await
            .unwrap();
    }
    store
        .apply(Mutation::Create {
            key: key("c2", "d", "x"),
            value: cm("d", "x", "1"),
        })
        .await
        .unwrap();
    let mut w = store
        .watch("/configmaps", WatchStart::WithInitialState)
        .unwrap()
        .scoped(Some("c1"), None);
    let names: Vec<_> = w
        .initial
        .iter()
        .map(|e| (e.kind, e.object.key.name.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            (EventType::Added, "a".into()),
            (EventType::Added, "b".into())
        ]
    );
    store
        .apply(Mutation::Create {
            key: key("c2", "d", "y"),
            value: cm("d", "y", "1"),
        })
        .await
        .unwrap();
    store
        .apply(Mutation::Update {
            key: key("c1", "d", "a"),
            expected_rv: None,
            value: cm("d", "a", "2"),
        })
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ev.kind, EventType::Modified);
    assert_eq!(
        ev.object.key.name, "a",
        "events of other clusters are not delivered"
    );
    assert_eq!(ev.prev.as_ref().unwrap().value["data"]["v"], "1");
    store.close().await;
}

async fn restart_keeps_state_and_history_and_compaction_expires_old_rvs(b: Backing) {
    let opts = StoreOptions {
        history_events: 10,
        compaction_interval: Duration::from_millis(100),
        ..StoreOptions::default()
    };
    {
        let store = b.open(opts.clone()).await;
        for i in 0..5 {
            let n = format!("o{i}");
            store
                .apply(Mutation::Create {
                    key: key("c", "d", &n),
                    value: cm("d", &n, "1"),
                })
                .await
                .unwrap();
        }
        store
            .apply(Mutation::Delete {
                key: key("c", "d", "o0"),
                expected_rv: None,
            })
            .await
            .unwrap();
        store.close().await;
    }
    let store = b.open(opts.clone()).await;
    assert_eq!(store.current_rv(), 6);
    assert!(store.get(&key("c", "d", "o0")).is_none());
    assert_eq!(store.get(&key("c", "d", "o4")).unwrap().rv, 5);
    // resume from history written before the restart
    let w = store.watch("/configmaps", WatchStart::After(3)).unwrap();
    let got: Vec<_> = w.initial.iter().map(|e| (e.rv, e.kind)).collect();
    assert_eq!(
        got,
        vec![
            (4, EventType::Added),
            (5, EventType::Added),
            (6, EventType::Deleted)
        ]
    );
    // rvs keep counting from where they were
    let o = store
        .apply(Mutation::Create {
            key: key("c", "d", "o9"),
            value: cm("d", "o9", "1"),
        })
        .await
        .unwrap();
    assert_eq!(o.rv, 7);

    // push history past the window: old rvs expire, in memory and after a restart
    for i in 0..15 {
        store
            .apply(Mutation::Update {
                key: key("c", "d", "o9"),
                expected_rv: None,
                value: cm("d", "o9", &i.to_string()),
            })
            .await
            .unwrap();
    }
    assert!(matches!(
        store.watch("/configmaps", WatchStart::After(3)),
        Err(StorageError::Expired { .. })
    ));
    tokio::time::sleep(Duration::from_millis(400)).await; // let the compactor run
    store.close().await;
    let store = b.open(opts).await;
    assert!(matches!(
        store.watch("/configmaps", WatchStart::After(3)),
        Err(StorageError::Expired { .. })
    ));
    let recent = store.current_rv() - 5;
    let w = store
        .watch("/configmaps", WatchStart::After(recent))
        .unwrap();
    assert_eq!(w.initial.len(), 5);
    store.close().await;
}

#[tokio::test]
async fn a_second_store_on_the_same_database_is_refused() {
    let db = canopy_pg::testing::test_database().await.unwrap();
    let store = open(&db.url, StoreOptions::default()).await;
    let second = Store::open(&db.url, StoreOptions::default()).await;
    match second {
        Err(StorageError::Config(msg)) => assert!(msg.contains("already serving"), "{msg}"),
        other => panic!("expected refusal, got {:?}", other.map(|_| ())),
    }
    store.close().await;
}

#[tokio::test]
async fn unreachable_database_is_a_clear_error() {
    let res = Store::open(
        "postgres://nobody@127.0.0.1:1/none",
        StoreOptions::default(),
    )
    .await;
    match res {
        Err(StorageError::Unavailable(msg)) => {
            assert!(msg.contains("cannot connect to PostgreSQL"), "{msg}")
        }
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
    let res = Store::open("not a url", StoreOptions::default()).await;
    assert!(matches!(res, Err(StorageError::Config(_))));
}

async fn objects_over_the_size_limit_are_refused_and_change_nothing(b: Backing) {
    let options = StoreOptions {
        max_object_bytes: 2048,
        ..Default::default()
    };
    let store = b.open(options.clone()).await;
    let big = "x".repeat(4096);

    // create over the limit: refused, nothing stored, no resourceVersion used
    let r = store
        .apply(Mutation::Create {
            key: key("c1", "d", "big"),
            value: cm("d", "big", &big),
        })
        .await;
    match r {
        Err(StorageError::TooLarge { size, limit, .. }) => {
            assert!(size > 4096, "{size}");
            assert_eq!(limit, 2048);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(store.get(&key("c1", "d", "big")).is_none());
    assert_eq!(store.current_rv(), 0);

    // an update growing a small object over the limit: refused, the object unchanged
    let small = store
        .apply(Mutation::Create {
            key: key("c1", "d", "a"),
            value: cm("d", "a", "1"),
        })
        .await
        .unwrap();
    let r = store
        .apply(Mutation::Update {
            key: key("c1", "d", "a"),
            expected_rv: None,
            value: cm("d", "a", &big),
        })
        .await;
    assert!(matches!(r, Err(StorageError::TooLarge { .. })), "{r:?}");
    let now = store.get(&key("c1", "d", "a")).unwrap();
    assert_eq!(now.rv, small.rv);
    assert_eq!(now.value["data"]["v"], "1");

    // one mutation over the limit fails the whole commit
    let r = store
        .commit(vec![
            Mutation::Create {
                key: key("c1", "d", "b"),
                value: cm("d", "b", "1"),
            },
            Mutation::Create {
                key: key("c1", "d", "c"),
                value: cm("d", "c", &big),
            },
        ])
        .await;
    assert!(matches!(r, Err(StorageError::TooLarge { .. })), "{r:?}");
    assert!(store.get(&key("c1", "d", "b")).is_none());

    // exactly at the limit is fine
    let base = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e", "namespace": "d", "resourceVersion": "3"}, "data": {"v": ""}})).unwrap().len();
    let exact = cm("d", "e", &"y".repeat(2048 - base));
    store
        .apply(Mutation::Create {
            key: key("c1", "d", "e"),
            value: exact,
        })
        .await
        .expect("an object of exactly the limit is stored");

    // an object stored under a higher limit may still shrink and be deleted after the
    // limit was lowered
    let big_key = key("c1", "d", "legacy");
    store.close().await;
    drop(store);
    let store = b
        .open(StoreOptions {
            max_object_bytes: 0,
            ..options.clone()
        })
        .await;
    store
        .apply(Mutation::Create {
            key: big_key.clone(),
            value: cm("d", "legacy", &big),
        })
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let store = b.open(options).await;
    let mut smaller = cm("d", "legacy", &"z".repeat(3000));
    smaller["metadata"]["labels"] = json!({"a": "b"});
    store
        .apply(Mutation::Update {
            key: big_key.clone(),
            expected_rv: None,
            value: smaller,
        })
        .await
        .expect("shrinking an oversized object is allowed");
    store
        .apply(Mutation::Delete {
            key: big_key.clone(),
            expected_rv: None,
        })
        .await
        .expect("deleting an oversized object is allowed");
}

/// Two stores on one memory backend: the second writer to commit finds the state moved
/// and stops taking writes, as a second shard on one database would.
#[tokio::test]
async fn a_second_writer_on_one_memory_backend_is_fenced() {
    let backend = MemoryBackend::default();
    let first = Store::open_backend(backend.clone(), StoreOptions::default())
        .await
        .unwrap();
    let second = Store::open_backend(backend.clone(), StoreOptions::default())
        .await
        .unwrap();
    first
        .apply(Mutation::Create {
            key: key("c", "d", "a"),
            value: cm("d", "a", "1"),
        })
        .await
        .unwrap();
    let stale = second
        .apply(Mutation::Create {
            key: key("c", "d", "b"),
            value: cm("d", "b", "1"),
        })
        .await;
    assert!(
        matches!(stale, Err(StorageError::Config(ref m)) if m.contains("another writer")),
        "{stale:?}"
    );
    // nothing of the refused write reached the backend
    let reopened = Store::open_backend(backend, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(reopened.current_rv(), 1);
    assert!(reopened.get(&key("c", "d", "b")).is_none());
}
