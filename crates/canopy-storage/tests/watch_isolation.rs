//! Watch isolation between tenants, against a real PostgreSQL server: one logical
//! cluster's write burst must not reach, slow or end another logical cluster's watch,
//! and a watcher that falls behind is ended with the resourceVersion it can resume
//! from, from which a new watch continues without a gap or a duplicate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canopy_storage::{Mutation, ObjectKey, StorageError, Store, StoreOptions, WatchStart};
use serde_json::{json, Value};

fn cm(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"v": "x"}})
}

fn create(cluster: &str, name: &str) -> Mutation {
    Mutation::Create {
        key: ObjectKey::new("/configmaps", cluster, "default", name),
        value: cm("default", name),
    }
}

async fn open(url: &str, options: StoreOptions) -> Store {
    Store::open(url, options).await.expect("open store")
}

/// A busy tenant writes as fast as the store takes it (commits of 100 objects from four
/// writers) while 500 of its own watchers never read; a quiet tenant writes once every
/// 20 ms and watches. The quiet watcher gets each of its events promptly, is never
/// offered one of the busy tenant's, and is never ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_tenant_does_not_delay_or_end_a_quiet_tenants_watch() {
    let db = canopy_pg::testing::test_database().await.unwrap();
    let store = open(&db.url, StoreOptions::default()).await;

    // the busy tenant's watchers: a few keep up, most never read (they fall behind and
    // are dropped from the index without costing anyone anything)
    let mut stalled = Vec::new();
    for _ in 0..500 {
        stalled.push(
            store
                .watch_scoped("/configmaps", Some("busy"), None, WatchStart::After(0))
                .unwrap(),
        );
    }
    let mut readers = Vec::new();
    for _ in 0..4 {
        let mut w = store
            .watch_scoped(
                "/configmaps",
                Some("busy"),
                Some("default"),
                WatchStart::After(0),
            )
            .unwrap();
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                match w.next().await {
                    Ok(Some(_)) => n += 1,
                    Ok(None) | Err(_) => return n,
                }
            }
        }));
    }
    assert_eq!(store.watchers(), 504);

    let quiet_w = store
        .watch_scoped(
            "/configmaps",
            Some("quiet"),
            Some("default"),
            WatchStart::After(store.current_rv()),
        )
        .unwrap();

    let burst_done = Arc::new(AtomicBool::new(false));
    const BUSY_COMMITS: usize = 40; // per writer, 100 objects each: 16,000 writes
    let busy_started = Instant::now();
    let mut busy = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        busy.push(tokio::spawn(async move {
            for c in 0..BUSY_COMMITS {
                let batch = (0..100)
                    .map(|i| create("busy", &format!("w{w}-{c}-{i}")))
                    .collect();
                store.commit(batch).await.unwrap();
            }
        }));
    }

    // the quiet tenant: one write every 20 ms for as long as the burst lasts
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let quiet_writer = {
        let store = store.clone();
        let done = burst_done.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let o = store
                    .apply(create("quiet", &format!("q{i}")))
                    .await
                    .unwrap();
                sent_tx.send((o.rv, Instant::now())).unwrap();
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            i
        })
    };
    let quiet_reader = tokio::spawn(async move {
        let mut w = quiet_w;
        let mut got = Vec::new();
        let mut most_queued = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(2), w.next()).await {
                Ok(Ok(Some(ev))) => {
                    most_queued = most_queued.max(w.queued());
                    assert_eq!(&*ev.object.key.cluster, "quiet", "another tenant's event");
                    got.push((ev.rv, Instant::now()));
                }
                Ok(Ok(None)) => panic!("the quiet watch ended"),
                Ok(Err(e)) => panic!("the quiet watch was ended: {e}"),
                Err(_) => return (got, most_queued), // nothing more is coming
            }
        }
    });

    for b in busy {
        b.await.unwrap();
    }
    let burst = busy_started.elapsed();
    burst_done.store(true, Ordering::Relaxed);
    let burst_end = Instant::now();
    let quiet_writes = quiet_writer.await.unwrap();
    let (got, most_queued) = quiet_reader.await.unwrap();

    let busy_writes = 4 * BUSY_COMMITS * 100;
    let mut sent = Vec::new();
    while let Ok(s) = sent_rx.try_recv() {
        sent.push(s);
    }
    assert_eq!(sent.len(), quiet_writes);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        sent.iter().map(|s| s.0).collect::<Vec<_>>(),
        "the quiet watch saw each of its events once, in order"
    );
    let mut lat: Vec<Duration> = got
        .iter()
        .zip(&sent)
        .map(|((_, at), (_, written))| at.saturating_duration_since(*written))
        .collect();
    assert!(
        !lat.is_empty(),
        "the quiet tenant wrote nothing during the burst"
    );
    lat.sort();
    let p99 = lat[((lat.len() - 1) as f64 * 0.99).round() as usize];
    eprintln!(
        "busy tenant: {busy_writes} writes in {:.2} s ({:.0}/s); quiet tenant: {} events, delivery p50 {:?} p99 {:?} max {:?}; most queued {most_queued}",
        burst.as_secs_f64(),
        busy_writes as f64 / burst.as_secs_f64(),
        lat.len(),
        lat[lat.len() / 2],
        p99,
        lat.last().unwrap(),
    );
    // correctness, not timing: every quiet event written during the burst was delivered
    // before the burst ended (the burst takes seconds; one delivery takes microseconds
    // when nothing stands in front of it), and the quiet watcher never had a backlog
    let during: Vec<_> = sent
        .iter()
        .zip(&got)
        .filter(|((_, written), _)| *written + Duration::from_secs(1) < burst_end)
        .collect();
    for ((rv, _), (_, at)) in &during {
        assert!(
            *at < burst_end,
            "quiet event {rv} arrived only after the busy burst ended"
        );
    }
    assert!(
        most_queued <= 2,
        "the quiet watcher had {most_queued} events waiting"
    );

    // the stalled busy watchers fell behind and left the index; the readers kept up
    assert!(store.watchers() < 504, "{} watchers left", store.watchers());
    for w in stalled.iter_mut().take(3) {
        let mut n = 0;
        let err = loop {
            match w.next().await {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("ended without an error"),
                Err(e) => break e,
            }
        };
        let StorageError::WatcherBehind {
            resume_rv,
            capacity,
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(n, capacity, "it keeps what fit in its queue");
        assert!(resume_rv > 0 && resume_rv < store.current_rv());
    }
    drop(stalled);
    for r in readers {
        r.abort();
    }
    store.close().await;
}

/// A watcher that does not read while its own scope changes is ended once its queue is
/// full; the error carries the resourceVersion up to which it has every event, and a
/// watch from there continues exactly where it stopped.
#[tokio::test]
async fn a_slow_watcher_is_ended_with_a_resourceversion_it_can_resume_from() {
    let db = canopy_pg::testing::test_database().await.unwrap();
    let store = open(
        &db.url,
        StoreOptions {
            watcher_queue_capacity: 8,
            ..StoreOptions::default()
        },
    )
    .await;
    // another tenant's writes come first and in between: they never fill the queue
    store
        .commit((0..50).map(|i| create("other", &format!("o{i}"))).collect())
        .await
        .unwrap();
    let mut slow = store
        .watch_scoped("/configmaps", Some("t"), None, WatchStart::After(0))
        .unwrap();
    assert!(
        slow.initial.is_empty(),
        "another cluster's history is not in scope"
    );
    let mut written = Vec::new();
    for i in 0..30 {
        let o = store.apply(create("t", &format!("s{i}"))).await.unwrap();
        written.push(o.rv);
        store
            .commit(
                (0..20)
                    .map(|j| create("other", &format!("x{i}-{j}")))
                    .collect(),
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let resume = loop {
        match slow.next().await {
            Ok(Some(ev)) => seen.push(ev.rv),
            Ok(None) => panic!("ended without an error"),
            Err(StorageError::WatcherBehind {
                resume_rv,
                capacity,
            }) => {
                assert_eq!(capacity, 8);
                break resume_rv;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(seen, written[..8].to_vec());
    // the resourceVersion to resume from is a resourceVersion, not a count: everything
    // of the scope up to it was delivered, the next event of the scope comes after it
    assert!(resume >= written[7] && resume < written[8], "{resume}");
    drop(slow);
    let mut again = store
        .watch_scoped("/configmaps", Some("t"), None, WatchStart::After(resume))
        .unwrap();
    let mut rest: Vec<u64> = again.initial.iter().map(|e| e.rv).collect();
    assert_eq!(rest, written[8..].to_vec(), "no gap, no duplicate");
    let o = store.apply(create("t", "live")).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), again.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    rest.push(ev.rv);
    assert_eq!(ev.rv, o.rv);
    store.close().await;
}

/// The index keeps `subscribe_all` (controllers) and unscoped watches working, moves a
/// watcher that is narrowed with `scoped` without losing or repeating an event, and
/// forgets dropped watchers.
#[tokio::test]
async fn unscoped_watchers_and_subscribe_all_see_every_cluster() {
    let db = canopy_pg::testing::test_database().await.unwrap();
    let store = open(&db.url, StoreOptions::default()).await;
    let (rv0, mut all) = store.subscribe_all();
    let mut everywhere = store.watch("/configmaps", WatchStart::After(rv0)).unwrap();
    let narrowed = store.watch("/configmaps", WatchStart::After(rv0)).unwrap();
    store.apply(create("a", "1")).await.unwrap();
    // narrowing after an event of another cluster was queued: it is not delivered
    let mut narrowed = narrowed.scoped(Some("b"), None);
    store.apply(create("b", "2")).await.unwrap();
    store
        .apply(Mutation::Create {
            key: ObjectKey::new("/secrets", "b", "default", "s"),
            value: cm("default", "s"),
        })
        .await
        .unwrap();
    for expect in ["a", "b"] {
        let ev = everywhere.next().await.unwrap().unwrap();
        assert_eq!(&*ev.object.key.cluster, expect);
    }
    let ev = narrowed.next().await.unwrap().unwrap();
    assert_eq!((&*ev.object.key.cluster, ev.rv), ("b", rv0 + 2));
    let rvs: Vec<u64> = [
        all.recv().await.unwrap().rv,
        all.recv().await.unwrap().rv,
        all.recv().await.unwrap().rv,
    ]
    .to_vec();
    assert_eq!(rvs, vec![rv0 + 1, rv0 + 2, rv0 + 3]);
    assert_eq!(store.watchers(), 2);
    drop(everywhere);
    drop(narrowed);
    assert_eq!(store.watchers(), 0);
    store.close().await;
}
