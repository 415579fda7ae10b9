//! Watch fan-out benchmark (issue 14): 10,000 watchers spread over 100 logical clusters
//! (100 each), one store on a private PostgreSQL. One cluster (the busy tenant) gets a
//! burst of writes as fast as the store takes them (commits of 100 objects from four
//! writers); meanwhile the other clusters (quiet tenants) get one write every 10 ms.
//!
//! Measured: the burst's writes per second; for the quiet writes, the time from the
//! write being sent until each of the 100 watchers of its cluster has it (p50/p99/max);
//! how many watchers were ended (fell behind); and how long after the burst the last
//! busy event reached the busy cluster's watchers.
//!
//! Only the store's public API (`watch`, `Watcher::scoped`, `next`, `commit`) is used,
//! so the same file measures earlier versions of the store.
//!
//! `cargo bench --workspace --bench fanout`; sizes: `CANOPY_FANOUT_CLUSTERS` (100),
//! `CANOPY_FANOUT_WATCHERS` (100 per cluster), `CANOPY_FANOUT_BURST` (20,000). Under
//! `cargo test` a small pass checks the flow.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canopy_storage::{Mutation, ObjectKey, Store, StoreOptions, WatchStart};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn create(cluster: &str, name: &str) -> Mutation {
    Mutation::Create {
        key: ObjectKey::new("/configmaps", cluster, "default", name),
        value: json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"v": "x"}}),
    }
}

fn pct(sorted: &[Duration], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    format!("{:.2} ms", sorted[i].as_secs_f64() * 1000.0)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(bench));
}

async fn run(bench: bool) {
    let (clusters, per_cluster, burst) = if bench {
        (
            env_or("CANOPY_FANOUT_CLUSTERS", 100),
            env_or("CANOPY_FANOUT_WATCHERS", 100),
            env_or("CANOPY_FANOUT_BURST", 20_000),
        )
    } else {
        (4, 5, 800)
    };
    let db = canopy_pg::testing::test_database().await.expect("database");
    let store = Store::open(&db.url, StoreOptions::default())
        .await
        .expect("store");

    // when each quiet write was sent, by resourceVersion (filled in after the write)
    let sent: Arc<parking_lot::Mutex<std::collections::HashMap<u64, Instant>>> = Default::default();
    let quiet_lat = Arc::new(parking_lot::Mutex::new(Vec::<Duration>::new()));
    let ended = Arc::new(AtomicUsize::new(0));
    let busy_seen = Arc::new(AtomicU64::new(0));
    let last_busy_at = Arc::new(parking_lot::Mutex::new(None::<Instant>));
    let start_rv = store.current_rv();
    let mut tasks = Vec::new();
    for c in 0..clusters {
        let cluster = format!("c{c}");
        for _ in 0..per_cluster {
            let mut w = store
                .watch("/configmaps", WatchStart::After(start_rv))
                .expect("watch")
                .scoped(Some(&cluster), None);
            let (sent, quiet_lat, ended, busy_seen, last_busy_at) = (
                sent.clone(),
                quiet_lat.clone(),
                ended.clone(),
                busy_seen.clone(),
                last_busy_at.clone(),
            );
            let busy = c == 0;
            tasks.push(tokio::spawn(async move {
                loop {
                    match w.next().await {
                        Ok(Some(ev)) => {
                            let now = Instant::now();
                            if busy {
                                busy_seen.fetch_add(1, Ordering::Relaxed);
                                *last_busy_at.lock() = Some(now);
                            } else {
                                // the writer may not have recorded it yet: wait for it
                                let at = loop {
                                    if let Some(at) = sent.lock().get(&ev.rv) {
                                        break *at;
                                    }
                                    tokio::task::yield_now().await;
                                };
                                quiet_lat.lock().push(now.saturating_duration_since(at));
                            }
                        }
                        Ok(None) => return,
                        Err(_) => {
                            ended.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }));
        }
    }
    let watchers = clusters * per_cluster;
    eprintln!("{watchers} watchers over {clusters} clusters; burst of {burst} writes into c0");

    let done = Arc::new(AtomicBool::new(false));
    let quiet = {
        let (store, sent, done) = (store.clone(), sent.clone(), done.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                if clusters < 2 {
                    continue;
                }
                let cluster = format!("c{}", 1 + i % (clusters - 1));
                let t = Instant::now();
                let o = store
                    .apply(create(&cluster, &format!("q{i}")))
                    .await
                    .expect("quiet write");
                sent.lock().insert(o.rv, t);
                i += 1;
            }
            i
        })
    };

    let started = Instant::now();
    let writers = 4;
    let per_commit = 100;
    let commits = burst.div_ceil(writers * per_commit);
    let mut ws = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        ws.push(tokio::spawn(async move {
            for c in 0..commits {
                let batch = (0..per_commit)
                    .map(|i| create("c0", &format!("b{w}-{c}-{i}")))
                    .collect();
                store.commit(batch).await.expect("busy write");
            }
        }));
    }
    for w in ws {
        w.await.unwrap();
    }
    let burst_time = started.elapsed();
    let written = writers * commits * per_commit;
    // keep the quiet writes going one more second, then let every watcher catch up
    tokio::time::sleep(Duration::from_secs(1)).await;
    done.store(true, Ordering::Relaxed);
    let quiet_writes = quiet.await.unwrap();
    let want_busy = (written * per_cluster) as u64;
    let catch_up = Instant::now() + Duration::from_secs(if bench { 300 } else { 30 });
    while busy_seen.load(Ordering::Relaxed) + (ended.load(Ordering::Relaxed) as u64) < want_busy
        && Instant::now() < catch_up
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let want_quiet = quiet_writes * per_cluster;
    while quiet_lat.lock().len() < want_quiet && Instant::now() < catch_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed();
    let busy_tail = last_busy_at
        .lock()
        .map(|t| t.saturating_duration_since(started + burst_time));
    let mut lat = quiet_lat.lock().clone();
    lat.sort();
    println!(
        "\n| watchers (clusters × each) | busy writes | busy writes/s | busy events delivered | last busy delivery after the burst | quiet writes | quiet deliveries | quiet write→watch p50 | p99 | max | watchers ended |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {watchers} ({clusters} × {per_cluster}) | {written} in {:.2} s | {:.0} | {} of {} | {} | {quiet_writes} | {} of {want_quiet} | {} | {} | {} | {} |",
        burst_time.as_secs_f64(),
        written as f64 / burst_time.as_secs_f64(),
        busy_seen.load(Ordering::Relaxed),
        want_busy,
        busy_tail.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        ended.load(Ordering::Relaxed),
    );
    println!("(whole run {:.1} s)", total.as_secs_f64());
    for t in tasks {
        t.abort();
    }
    if !bench {
        assert_eq!(ended.load(Ordering::Relaxed), 0, "a watcher was ended");
        assert_eq!(lat.len(), want_quiet, "every quiet event was delivered");
        assert_eq!(busy_seen.load(Ordering::Relaxed), want_busy);
    }
    store.close().await;
}
