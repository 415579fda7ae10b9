//! Workspace benchmark (issue 4): create N workspaces in one parent with a few
//! concurrent clients, measure workspaces created per second, the time from each create
//! until its watch event says Ready (p50/p99), listing them, entering one, and the
//! shard's memory per idle workspace.
//!
//! `cargo bench -p shard --bench workspaces` runs N = 1000 and prints the numbers that
//! `docs/benchmarks.md` records. Under `cargo test` (no `--bench` argument) it runs a
//! 20-workspace pass that checks the same flow works.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use canopy_test_harness::TestShard;
use futures::StreamExt;
use serde_json::{json, Value};

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = if bench {
        std::env::var("CANOPY_BENCH_WORKSPACES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000)
    } else {
        20
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n, bench));
}

async fn run(n: usize, bench: bool) {
    let env = TestShard::builder().start().await;
    let c = env.admin();
    let (code, org) = c
        .post(
            &format!("/clusters/root/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "bench"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{org}");
    for _ in 0..200 {
        let (_, w) = c.get(&format!("/clusters/root/{WS}/bench")).await;
        if w["status"]["phase"] == "Ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // settle, then take the baseline memory
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_bytes();

    // a watch on the parent records when each workspace turns Ready
    let (_, list) = c.get(&format!("/clusters/root:bench/{WS}")).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let resp = c
        .request(
            reqwest::Method::GET,
            &format!("/clusters/root:bench/{WS}?watch=1&resourceVersion={rv}"),
        )
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status().as_u16(), 200);
    let watcher = tokio::spawn(async move {
        let mut ready: HashMap<String, Instant> = HashMap::new();
        let mut buf = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                if ev["object"]["status"]["phase"] == "Ready" {
                    let name = ev["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    ready.entry(name).or_insert_with(Instant::now);
                    if ready.len() == n {
                        return ready;
                    }
                }
            }
        }
        ready
    });

    let clients = 4;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut created = Vec::new();
            for i in (k..n).step_by(clients) {
                let name = format!("ws-{i:05}");
                let t = Instant::now();
                let (code, body) = c
                    .post(
                        &format!("/clusters/root:bench/{WS}"),
                        json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name}, "spec": {}}),
                    )
                    .await;
                assert_eq!(code, 201, "{body}");
                created.push((name, t));
            }
            created
        }));
    }
    let mut created = HashMap::new();
    for t in tasks {
        created.extend(t.await.expect("creator"));
    }
    let create_elapsed = start.elapsed();
    let ready = tokio::time::timeout(Duration::from_secs(600), watcher)
        .await
        .expect("all workspaces Ready within 10 minutes")
        .expect("watcher");
    let all_ready = start.elapsed();
    assert_eq!(ready.len(), n, "every workspace became Ready");
    let mut latencies: Vec<Duration> = ready
        .iter()
        .map(|(name, at)| at.duration_since(created[name]))
        .collect();
    latencies.sort();

    // listing them, and entering one (a request inside it by path)
    let t = Instant::now();
    let (code, list) = c.get(&format!("/clusters/root:bench/{WS}")).await;
    let list_time = t.elapsed();
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(n));
    let t = Instant::now();
    let (code, _) = c
        .get(&format!(
            "/clusters/root:bench:ws-{:05}/api/v1/namespaces/default",
            n / 2
        ))
        .await;
    let enter_time = t.elapsed();
    assert_eq!(code, 200);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_bytes();
    let per_ws = rss_after.saturating_sub(rss_before) / n as u64;
    let report = format!(
        "workspaces: {n}\n\
         created: {:.0}/s ({:.2} s for all, 4 clients)\n\
         all Ready after: {:.2} s\n\
         create → Ready: p50 {:.1} ms, p99 {:.1} ms\n\
         list {n} workspaces: {:.1} ms\n\
         first request inside one by path: {:.1} ms\n\
         memory per idle workspace (process RSS delta / {n}): {:.1} KiB\n",
        n as f64 / create_elapsed.as_secs_f64(),
        create_elapsed.as_secs_f64(),
        all_ready.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        list_time.as_secs_f64() * 1000.0,
        enter_time.as_secs_f64() * 1000.0,
        per_ws as f64 / 1024.0,
    );
    print!("{report}");
    if bench {
        eprintln!("(debug-free numbers: this ran with the bench profile)");
    }
}
