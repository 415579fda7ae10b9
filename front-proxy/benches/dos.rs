//! Denial-of-service benchmark (issue 13, item 7): can one shard, and the front-proxy
//! in front of it, hold many idle connections and many watches of ordinary users while
//! the admin stays fast and no other tenant's request fails?
//!
//! Three processes, so that each side has its own open-files limit:
//!
//! - this process: one shard (`TestShard`, a private PostgreSQL) with the production
//!   limits (`ServerLimits::default()`: rate limit, in-flight seats, 100 watches per
//!   user, caps on connections), the admin and one other tenant (`carol`) measuring;
//! - a load generator (this binary again, `CANOPY_DOS_ROLE=load`): idle HTTP/2
//!   connections from many loopback addresses (500 per address, below the 1,000 per
//!   address cap), each sending `GET /healthz` when it connects and then once a minute
//!   (the server closes connections without a request for 90 s), and for each of the
//!   tenant users one HTTP/2 connection carrying its watches of ConfigMaps (429 and 503
//!   answers are retried after `Retry-After`, as client-go does);
//! - for the second run, the `front-proxy` binary in front of the shard.
//!
//! Once every connection and watch is up, three phases of `CANOPY_DOS_SECONDS` (30)
//! each, in which the admin GETs a namespace 20 times a second (latency percentiles) and
//! `carol` creates and reads ConfigMaps in her own namespace 10 times a second (every
//! failure counted):
//!
//! - `idle`: nothing else; the watches are idle;
//! - `events`: every `CANOPY_DOS_MARKER_MS` (2,000) the admin writes a marker ConfigMap
//!   into the watched namespace, which every watch must deliver (10,000 deliveries per
//!   marker);
//! - `busy`: the markers go on, and another tenant (workspace `root:busy`, which no
//!   watch watches) writes `CANOPY_DOS_BUSY_QPS` (100) ConfigMaps a second.
//!
//! Each marker's name carries the time it was written; the load generator reports how
//! long each took to reach each watch (delivery p50/p99/max per phase).
//!
//! `cargo bench -p front-proxy --bench dos` runs the full sizes: 10,000 idle connections
//! and 100 users × 100 watches against the shard; through the proxy the defaults are
//! 9,000 + 90 × 100: the proxy's default cap on client connections, derived from its
//! open-files limit (minus a reserve, halved as the proxy also holds connections to
//! shards), is below 10,000 + 100 (watches share HTTP/2 connections to the shard, about
//! one per 100 watches) (overrides:
//! `CANOPY_DOS_IDLE`, `CANOPY_DOS_USERS`, `CANOPY_DOS_PROXY_IDLE`,
//! `CANOPY_DOS_PROXY_USERS`, `CANOPY_DOS_WATCHES_PER_USER`, and extra proxy flags in
//! `CANOPY_DOS_PROXY_FLAGS`). Under `cargo test` a tiny pass checks the same flow.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use canopy_test_harness::{Client, TestShard};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var("CANOPY_DOS_ROLE").as_deref() == Ok("load") {
        rt.block_on(load::main());
    } else {
        let bench = std::env::args().any(|a| a == "--bench");
        rt.block_on(run(bench));
    }
    rt.shutdown_background();
}

struct Sizes {
    idle: usize,
    users: usize,
    watches_per_user: usize,
}

struct Result_ {
    target: &'static str,
    sizes: Sizes,
    ramp: Duration,
    phases: Vec<Phase>,
    markers: usize,
    load: Value,
    server_rss_mib: f64,
}

/// One measured phase of a scenario.
struct Phase {
    name: &'static str,
    admin: Vec<Duration>,
    admin_failures: usize,
    tenant_ok: usize,
    tenant_failures: BTreeMap<String, usize>,
    markers: usize,
    busy_writes: usize,
    busy_failures: usize,
}

/// The phases, each with the letter its markers carry.
const PHASES: [(&str, char); 3] = [("idle", 'i'), ("events", 'e'), ("busy", 'b')];

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn run(bench: bool) {
    canopy_https::raise_fd_limit().expect("raise the open-files limit");
    let hold = Duration::from_secs(if bench {
        env_or("CANOPY_DOS_SECONDS", 30)
    } else {
        3
    });
    let per_user = if bench {
        env_or("CANOPY_DOS_WATCHES_PER_USER", 100)
    } else {
        2
    };
    let direct = Sizes {
        idle: if bench {
            env_or("CANOPY_DOS_IDLE", 10_000)
        } else {
            20
        },
        users: if bench {
            env_or("CANOPY_DOS_USERS", 100)
        } else {
            3
        },
        watches_per_user: per_user,
    };
    let proxied = Sizes {
        idle: if bench {
            env_or("CANOPY_DOS_PROXY_IDLE", 9_000)
        } else {
            20
        },
        users: if bench {
            env_or("CANOPY_DOS_PROXY_USERS", 90)
        } else {
            3
        },
        watches_per_user: per_user,
    };

    let dir = tempfile::tempdir().unwrap();
    let client_ca =
        canopy_auth::ClientCa::load_or_create(&dir.path().join("client-ca"), "proxy-client-ca")
            .unwrap();
    let shard = TestShard::builder()
        .proxy_client_ca(&client_ca.ca_cert_pem)
        .limits(canopy_edge::ServerLimits::default())
        .start()
        .await;
    let admin = shard.admin();
    setup(&admin).await;
    let users = direct.users.max(proxied.users);
    let tokens: Vec<String> = (0..users)
        .map(|i| shard.token(&format!("tenant-{i}"), &["bench:tenants"]))
        .collect();
    let tokens_file = dir.path().join("tokens");
    std::fs::write(&tokens_file, tokens.join("\n")).unwrap();
    let shard_ca_file = dir.path().join("shard-ca.crt");
    std::fs::write(&shard_ca_file, &shard.shard.ca_cert_pem).unwrap();
    let carol_token = shard.token("carol", &[]);

    let mut results = Vec::new();
    let r = scenario(
        "shard",
        &shard.shard.url,
        &shard_ca_file,
        &tokens_file,
        &shard.admin_token,
        &carol_token,
        direct,
        hold,
        std::process::id(),
        bench,
    )
    .await;
    results.push(r);

    // the front-proxy binary in front of the same shard
    let (cert, key) = client_ca
        .issue_client_cert("system:front-proxy", &[])
        .unwrap();
    let cert_file = dir.path().join("proxy-client.crt");
    let key_file = dir.path().join("proxy-client.key");
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy_dir = dir.path().join("proxy");
    let extra = std::env::var("CANOPY_DOS_PROXY_FLAGS").unwrap_or_default();
    let mut proxy = tokio::process::Command::new(env!("CARGO_BIN_EXE_front-proxy"))
        .arg("--shard")
        .arg(format!("root={}", shard.shard.url))
        .arg("--shard-ca-file")
        .arg(&shard_ca_file)
        .arg("--token-public-key-file")
        .arg(shard.shard.pki_dir.join("token-signing.pub"))
        .arg("--proxy-client-cert-file")
        .arg(&cert_file)
        .arg("--proxy-client-key-file")
        .arg(&key_file)
        .arg("--root-directory")
        .arg(&proxy_dir)
        .arg("--secure-port")
        .arg(port.to_string())
        .args(extra.split_whitespace())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start front-proxy");
    let proxy_url = format!("https://127.0.0.1:{port}");
    let proxy_ca_file = proxy_dir.join("pki/ca.crt");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(ca) = std::fs::read_to_string(&proxy_ca_file) {
            let c = Client::new(&proxy_url, &ca, None);
            if let Ok(r) = c.request(reqwest::Method::GET, "/readyz").send().await {
                if r.status() == 200 {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the front-proxy did not get ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = scenario(
        "front-proxy",
        &proxy_url,
        &proxy_ca_file,
        &tokens_file,
        &shard.admin_token,
        &carol_token,
        proxied,
        hold,
        proxy.id().unwrap(),
        bench,
    )
    .await;
    results.push(r);
    proxy.kill().await.ok();

    report(&results, hold);
    for r in &results {
        for p in &r.phases {
            assert_eq!(
                p.admin_failures, 0,
                "{} ({}): the admin's requests failed",
                r.target, p.name
            );
            assert!(
                p.tenant_failures.is_empty(),
                "{} ({}): another tenant's requests failed: {:?}",
                r.target,
                p.name,
                p.tenant_failures
            );
        }
    }
    drop(shard);
}

/// Namespaces, and who may do what: the tenant users may watch ConfigMaps in
/// `watched`, carol may do anything with ConfigMaps in `tenant`; and the workspace
/// `root:busy` of the busy tenant.
async fn setup(admin: &Client) {
    let ws = "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces";
    let (code, v) = admin
        .post(
            ws,
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                "metadata": {"name": "busy"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, v) = admin.get(&format!("{ws}/busy")).await;
        if code == 200 && v["status"]["phase"] == "Ready" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workspace busy never became Ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for ns in ["watched", "tenant"] {
        let (code, v) = admin
            .post(
                "/api/v1/namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    let (code, v) = admin
        .post(
            &format!("{rbac}/clusterroles"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "bench-configmaps"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    for (ns, kind, name) in [
        ("watched", "Group", "bench:tenants"),
        ("tenant", "User", "carol"),
    ] {
        let (code, v) = admin
            .post(
                &format!("{rbac}/namespaces/{ns}/rolebindings"),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "bench"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-configmaps"},
                    "subjects": [{"kind": kind, "name": name, "apiGroup": "rbac.authorization.k8s.io"}]}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

#[allow(clippy::too_many_arguments)]
async fn scenario(
    target: &'static str,
    url: &str,
    ca_file: &Path,
    tokens_file: &Path,
    admin_token: &str,
    carol_token: &str,
    sizes: Sizes,
    hold: Duration,
    server_pid: u32,
    bench: bool,
) -> Result_ {
    let ca = std::fs::read_to_string(ca_file).unwrap();
    eprintln!(
        "[{target}] ramping up: {} idle connections, {} users × {} watches",
        sizes.idle, sizes.users, sizes.watches_per_user
    );
    let started = Instant::now();
    let mut load = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env("CANOPY_DOS_ROLE", "load")
        .env("CANOPY_DOS_TARGET", url)
        .env("CANOPY_DOS_CA", ca_file)
        .env("CANOPY_DOS_TOKENS", tokens_file)
        .env("CANOPY_DOS_IDLE", sizes.idle.to_string())
        .env("CANOPY_DOS_USERS", sizes.users.to_string())
        .env(
            "CANOPY_DOS_WATCHES_PER_USER",
            sizes.watches_per_user.to_string(),
        )
        .env("CANOPY_DOS_KEEPALIVE", if bench { "60" } else { "1" })
        .env(
            "CANOPY_DOS_MARKER",
            format!("\"name\":\"marker-{}-", url_tag(target)),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the load generator");
    let mut stdin = load.stdin.take().unwrap();
    let mut lines = BufReader::new(load.stdout.take().unwrap()).lines();
    let ramp_limit = Duration::from_secs(if bench { 900 } else { 60 });
    tokio::time::timeout(ramp_limit, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            eprintln!("[{target}] load: {l}");
            if l.starts_with("ready") {
                return;
            }
        }
        panic!("the load generator ended before it was ready");
    })
    .await
    .expect("every connection and watch is up");
    let ramp = started.elapsed();

    // the measured phases
    let admin = Client::new(url, &ca, Some(admin_token));
    let carol = Client::new(url, &ca, Some(carol_token));
    let busy_client = Client::new(url, &ca, Some(admin_token));
    let mut markers = 0;
    let mut phases = Vec::new();
    let marker_every = Duration::from_millis(env_or("CANOPY_DOS_MARKER_MS", 2000));
    let busy_qps: f64 = env_or("CANOPY_DOS_BUSY_QPS", 100.0);
    for (phase, letter) in PHASES {
        eprintln!("[{target}] phase {phase}: {} s", hold.as_secs());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let admin_task = {
            let stop = stop.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut failures = 0;
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let t = Instant::now();
                    let (code, _) = admin.get("/clusters/root/api/v1/namespaces/default").await;
                    lat.push(t.elapsed());
                    if code != 200 {
                        failures += 1;
                    }
                }
                (lat, failures)
            })
        };
        let tenant_task = {
            let stop = stop.clone();
            let carol = carol.clone();
            tokio::spawn(async move {
                let mut ok = 0usize;
                let mut failures = BTreeMap::<String, usize>::new();
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let mut i = 0;
                let base = "/clusters/root/api/v1/namespaces/tenant/configmaps";
                let run = std::process::id();
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let name = format!("carol-{run}-{}-{letter}-{i}", url_tag(target));
                    let (code, v) = if i % 2 == 0 {
                        carol
                            .post(
                                base,
                                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
                            )
                            .await
                    } else {
                        carol
                            .get(&format!(
                                "{base}/carol-{run}-{}-{letter}-{}",
                                url_tag(target),
                                i - 1
                            ))
                            .await
                    };
                    if code == 200 || code == 201 {
                        ok += 1;
                    } else {
                        *failures
                            .entry(format!("{code} {}", v["message"].as_str().unwrap_or("")))
                            .or_default() += 1;
                    }
                    i += 1;
                }
                (ok, failures)
            })
        };
        // the busy tenant: writes at a steady rate into a workspace no watch watches
        let busy_task = (phase == "busy" && busy_qps > 0.0).then(|| {
            let stop = stop.clone();
            let c = busy_client.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0usize, 0usize);
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / busy_qps));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let (code, _) = c
                        .post(
                            "/clusters/root:busy/api/v1/namespaces/default/configmaps",
                            json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": format!("busy-{}-{i}", url_tag(target))}}),
                        )
                        .await;
                    if code == 201 {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                    i += 1;
                }
                (ok, failed)
            })
        });
        let end = Instant::now() + hold;
        let mut phase_markers = 0;
        if phase == "idle" {
            tokio::time::sleep(hold).await;
        } else {
            while Instant::now() < end {
                let (code, v) = admin
                    .post(
                        "/clusters/root/api/v1/namespaces/watched/configmaps",
                        json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": format!("marker-{}-{letter}-{markers}-{}", url_tag(target), unix_ms())}}),
                    )
                    .await;
                assert_eq!(code, 201, "{v}");
                markers += 1;
                phase_markers += 1;
                tokio::time::sleep(marker_every.min(hold / 2)).await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let (mut admin_lat, admin_failures) = admin_task.await.unwrap();
        let (tenant_ok, tenant_failures) = tenant_task.await.unwrap();
        let (busy_writes, busy_failures) = match busy_task {
            Some(t) => t.await.unwrap(),
            None => (0, 0),
        };
        admin_lat.sort();
        phases.push(Phase {
            name: phase,
            admin: admin_lat,
            admin_failures,
            tenant_ok,
            tenant_failures,
            markers: phase_markers,
            busy_writes,
            busy_failures,
        });
    }
    let server_rss_mib = rss_mib(server_pid);
    // let the last marker reach every watch, then ask for the load generator's summary
    tokio::time::sleep(Duration::from_secs(2)).await;
    stdin.shutdown().await.ok();
    drop(stdin);
    let load_summary = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(s) = l.strip_prefix("summary ") {
                return serde_json::from_str::<Value>(s).unwrap();
            }
            eprintln!("[{target}] load: {l}");
        }
        panic!("no summary from the load generator");
    })
    .await
    .expect("summary");
    let _ = load.wait().await;
    Result_ {
        target,
        sizes,
        ramp,
        phases,
        markers,
        load: load_summary,
        server_rss_mib,
    }
}

fn url_tag(target: &str) -> &str {
    if target == "shard" {
        "s"
    } else {
        "p"
    }
}

fn pct(sorted: &[Duration], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    format!("{:.1} ms", sorted[i].as_secs_f64() * 1000.0)
}

fn report(results: &[Result_], hold: Duration) {
    println!(
        "\n| target | phase | idle conns | watches (users × each) | ramp-up | admin GETs | admin p50 | p99 | max | other tenant ok / failed | busy tenant writes (failed) | watches lost | markers delivered (min/max of {}) | marker delivery p50 / p99 / max | server RSS |",
        results.first().map_or(0, |r| r.markers)
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in results {
        let l = &r.load;
        for (p, (_, letter)) in r.phases.iter().zip(PHASES) {
            let d = &l["delivery"][letter.to_string()];
            let delivery = if d.is_null() {
                "-".to_string()
            } else {
                format!("{} / {} / {} ms", d["p50_ms"], d["p99_ms"], d["max_ms"])
            };
            println!(
                "| {} | {} | {} held ({} lost) | {} ({} × {}) | {:.0} s | {} ({} failed) | {} | {} | {} | {} / {} | {} ({}) | {} | {} / {} (of {}) | {} | {:.0} MiB |",
                r.target,
                p.name,
                l["idle_open"],
                l["idle_lost"],
                l["watches_open"],
                r.sizes.users,
                r.sizes.watches_per_user,
                r.ramp.as_secs_f64(),
                p.admin.len(),
                p.admin_failures,
                pct(&p.admin, 0.5),
                pct(&p.admin, 0.99),
                pct(&p.admin, 1.0),
                p.tenant_ok,
                p.tenant_failures.values().sum::<usize>(),
                p.busy_writes,
                p.busy_failures,
                l["watches_lost"],
                l["markers_min"],
                l["markers_max"],
                r.markers,
                delivery,
                r.server_rss_mib,
            );
        }
    }
    println!(
        "\n(each phase held for {} s; markers per phase: {})",
        hold.as_secs(),
        results
            .first()
            .map(|r| r
                .phases
                .iter()
                .map(|p| format!("{} {}", p.name, p.markers))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    for r in results {
        for p in &r.phases {
            if !p.tenant_failures.is_empty() {
                println!(
                    "{} ({}): tenant failures {:?}",
                    r.target, p.name, p.tenant_failures
                );
            }
        }
        println!("{}: load generator {}", r.target, r.load);
    }
}

/// The load generator (a child process with its own open-files limit).
mod load {
    use super::*;

    struct Counters {
        idle_open: AtomicUsize,
        idle_lost: AtomicUsize,
        healthz_failed: AtomicUsize,
        watches_open: AtomicUsize,
        watches_lost: AtomicUsize,
        retries_429: AtomicUsize,
        retries_503: AtomicUsize,
        errors: parking_lot::Mutex<BTreeMap<String, usize>>,
    }

    impl Counters {
        fn error(&self, e: impl std::fmt::Display) {
            let mut s = e.to_string();
            s.truncate(120);
            *self.errors.lock().entry(s).or_default() += 1;
        }
    }

    /// Marker delivery latencies (ms) by phase letter.
    type Delivery = Arc<parking_lot::Mutex<BTreeMap<char, Vec<u64>>>>;

    /// Records, for each marker in `text` that ends after `old` bytes (earlier ones were
    /// seen with the previous chunk), how long ago it was written (its name ends in
    /// `<phase>-<n>-<unix ms>`).
    fn record_delivery(delivery: &Delivery, text: &str, old: usize, marker: &str) {
        let now = unix_ms();
        let mut d = delivery.lock();
        for (at, _) in text.match_indices(marker) {
            if at + marker.len() <= old {
                continue;
            }
            let rest = &text[at + marker.len()..];
            let Some(name) = rest.split('"').next().filter(|_| rest.contains('"')) else {
                continue;
            };
            let mut parts = name.split('-');
            let (Some(letter), Some(_), Some(ms)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Some(letter), Ok(ms)) = (letter.chars().next(), ms.parse::<u64>()) else {
                continue;
            };
            d.entry(letter).or_default().push(now.saturating_sub(ms));
        }
    }

    fn delivery_summary(delivery: &Delivery) -> Value {
        let mut out = serde_json::Map::new();
        for (letter, v) in delivery.lock().iter_mut() {
            v.sort_unstable();
            let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            out.insert(
                letter.to_string(),
                json!({"n": v.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}),
            );
        }
        Value::Object(out)
    }

    fn var(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
    }

    /// The `n`th address of a block of 127.0.0.0/8: 127.<block>.<x>.<y>.
    fn addr(block: u8, n: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            127,
            block,
            (n / 250) as u8,
            (n % 250 + 1) as u8,
        ))
    }

    type Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

    async fn connect(target: SocketAddr, ca: &str, from: IpAddr) -> Result<Sender, String> {
        let tls = canopy_test_harness::raw_tls(target, ca, "h2", Some(from))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    fn request(path: &str, token: Option<&str>) -> http::Request<Empty<Bytes>> {
        let mut b = http::Request::get(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Empty::new()).unwrap()
    }

    pub async fn main() {
        canopy_https::raise_fd_limit().expect("raise the open-files limit");
        let base = var("CANOPY_DOS_TARGET");
        let target: SocketAddr = base.trim_start_matches("https://").parse().unwrap();
        let ca = std::fs::read_to_string(var("CANOPY_DOS_CA")).unwrap();
        let tokens: Vec<String> = std::fs::read_to_string(var("CANOPY_DOS_TOKENS"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let idle: usize = var("CANOPY_DOS_IDLE").parse().unwrap();
        let users: usize = var("CANOPY_DOS_USERS").parse().unwrap();
        let per_user: usize = var("CANOPY_DOS_WATCHES_PER_USER").parse().unwrap();
        let keepalive = Duration::from_secs(var("CANOPY_DOS_KEEPALIVE").parse().unwrap());
        let marker: &'static str = Box::leak(var("CANOPY_DOS_MARKER").into_boxed_str());
        let c = Arc::new(Counters {
            idle_open: AtomicUsize::new(0),
            idle_lost: AtomicUsize::new(0),
            healthz_failed: AtomicUsize::new(0),
            watches_open: AtomicUsize::new(0),
            watches_lost: AtomicUsize::new(0),
            retries_429: AtomicUsize::new(0),
            retries_503: AtomicUsize::new(0),
            errors: Default::default(),
        });
        let markers: Arc<Vec<AtomicU64>> =
            Arc::new((0..users * per_user).map(|_| AtomicU64::new(0)).collect());
        let delivery: Delivery = Default::default();
        // at most this many handshakes at once
        let gate = Arc::new(tokio::sync::Semaphore::new(64));

        // idle connections: 500 per address
        let mut tasks = Vec::new();
        for i in 0..idle {
            let (c, ca, gate) = (c.clone(), ca.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let from = addr(1, i / 500);
                let mut send = loop {
                    let permit = gate.acquire().await.unwrap();
                    match connect(target, &ca, from).await {
                        Ok(s) => break s,
                        Err(e) => {
                            c.error(e);
                            drop(permit);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                };
                c.idle_open.fetch_add(1, Ordering::Relaxed);
                // a client connects to send a request: the first one at once, then one
                // a keep-alive interval (spread over the interval) to stay connected
                let offset = keepalive.mul_f64((i % 1000) as f64 / 1000.0);
                let mut first = true;
                loop {
                    let ok = match send.ready().await {
                        Ok(()) => match send.send_request(request("/healthz", None)).await {
                            Ok(r) => {
                                let ok = r.status() == 200;
                                let _ = r.into_body().collect().await;
                                ok
                            }
                            Err(e) => {
                                c.error(format!("healthz: {e}"));
                                false
                            }
                        },
                        Err(e) => {
                            c.error(format!("idle connection: {e}"));
                            false
                        }
                    };
                    if !ok {
                        c.healthz_failed.fetch_add(1, Ordering::Relaxed);
                        c.idle_open.fetch_sub(1, Ordering::Relaxed);
                        c.idle_lost.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    if first {
                        first = false;
                        tokio::time::sleep(offset).await;
                    } else {
                        tokio::time::sleep(keepalive).await;
                    }
                }
            }));
        }

        // watches: one HTTP/2 connection per user, `per_user` streams on it
        for (u, token) in tokens.iter().take(users).enumerate() {
            let (c, ca, gate, token, markers, delivery) = (
                c.clone(),
                ca.clone(),
                gate.clone(),
                token.clone(),
                markers.clone(),
                delivery.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let send = loop {
                    let permit = gate.acquire().await.unwrap();
                    match connect(target, &ca, addr(2, u)).await {
                        Ok(s) => break s,
                        Err(e) => {
                            c.error(e);
                            drop(permit);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                };
                let mut streams = Vec::new();
                for w in 0..per_user {
                    let (c, token, markers, delivery) =
                        (c.clone(), token.clone(), markers.clone(), delivery.clone());
                    let mut send = send.clone();
                    streams.push(tokio::spawn(async move {
                        let path = "/clusters/root/api/v1/namespaces/watched/configmaps?watch=true&allowWatchBookmarks=true";
                        let resp = loop {
                            if send.ready().await.is_err() {
                                c.error("watch connection closed");
                                c.watches_lost.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            match send.send_request(request(path, Some(&token))).await {
                                Ok(r) if r.status() == 200 => break r,
                                // as client-go does: 429 and 503 with Retry-After are retried
                                Ok(r) if r.status() == 429 || r.status() == 503 => {
                                    if r.status() == 429 {
                                        c.retries_429.fetch_add(1, Ordering::Relaxed);
                                    } else {
                                        c.retries_503.fetch_add(1, Ordering::Relaxed);
                                    }
                                    let secs: u64 = r
                                        .headers()
                                        .get("retry-after")
                                        .and_then(|v| v.to_str().ok()?.parse().ok())
                                        .unwrap_or(1);
                                    tokio::time::sleep(Duration::from_secs(secs)).await;
                                }
                                Ok(r) => {
                                    c.error(format!("watch: {}", r.status()));
                                    c.watches_lost.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                                Err(e) => {
                                    c.error(format!("watch: {e}"));
                                    c.watches_lost.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                            }
                        };
                        c.watches_open.fetch_add(1, Ordering::Relaxed);
                        let mut body = resp.into_body();
                        let mut tail = String::new();
                        let slot = &markers[u * per_user + w];
                        loop {
                            match body.frame().await {
                                Some(Ok(f)) => {
                                    if let Some(d) = f.data_ref() {
                                        let text = format!("{tail}{}", String::from_utf8_lossy(d));
                                        let n = text.matches(marker).count()
                                            - tail.matches(marker).count();
                                        slot.fetch_add(n as u64, Ordering::Relaxed);
                                        if n > 0 {
                                            record_delivery(&delivery, &text, tail.len(), marker);
                                        }
                                        if let Some(at) = text.find("\"type\":\"ERROR\"") {
                                            let end = (at + 160).min(text.len());
                                            let end = (end..=text.len())
                                                .find(|i| text.is_char_boundary(*i))
                                                .unwrap_or(text.len());
                                            c.error(format!("watch ERROR event: {}", &text[at..end]));
                                        }
                                        let keep = text.len().saturating_sub(32);
                                        let keep = (keep..text.len())
                                            .find(|i| text.is_char_boundary(*i))
                                            .unwrap_or(text.len());
                                        tail = text[keep..].to_string();
                                    }
                                }
                                other => {
                                    if let Some(Err(e)) = other {
                                        c.error(format!("watch stream: {e}"));
                                    } else {
                                        c.error("watch stream ended");
                                    }
                                    c.watches_open.fetch_sub(1, Ordering::Relaxed);
                                    c.watches_lost.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                            }
                        }
                    }));
                }
                for s in streams {
                    let _ = s.await;
                }
            }));
        }

        // progress until everything is up, then wait for the parent to close stdin
        let want_watches = users * per_user;
        let started = Instant::now();
        loop {
            let (i, w) = (
                c.idle_open.load(Ordering::Relaxed),
                c.watches_open.load(Ordering::Relaxed),
            );
            let (il, wl) = (
                c.idle_lost.load(Ordering::Relaxed),
                c.watches_lost.load(Ordering::Relaxed),
            );
            if i + il >= idle && w + wl >= want_watches {
                println!(
                    "ready idle={i} watches={w} (lost {il}/{wl}) after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                break;
            }
            println!(
                "progress idle={i}/{idle} watches={w}/{want_watches} lost={}/{} errors={:?}",
                c.idle_lost.load(Ordering::Relaxed),
                c.watches_lost.load(Ordering::Relaxed),
                c.errors.lock()
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = stdin.next_line().await {}
        let counts: Vec<u64> = markers.iter().map(|m| m.load(Ordering::Relaxed)).collect();
        let summary = json!({
            "idle_open": c.idle_open.load(Ordering::Relaxed),
            "idle_lost": c.idle_lost.load(Ordering::Relaxed),
            "healthz_failed": c.healthz_failed.load(Ordering::Relaxed),
            "watches_open": c.watches_open.load(Ordering::Relaxed),
            "watches_lost": c.watches_lost.load(Ordering::Relaxed),
            "watch_retries_429": c.retries_429.load(Ordering::Relaxed),
            "watch_retries_503": c.retries_503.load(Ordering::Relaxed),
            "markers_min": counts.iter().min().copied().unwrap_or(0),
            "markers_max": counts.iter().max().copied().unwrap_or(0),
            "delivery": delivery_summary(&delivery),
            "errors": *c.errors.lock(),
        });
        println!("summary {summary}");
        for t in tasks {
            t.abort();
        }
    }
}
