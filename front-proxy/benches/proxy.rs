//! Front-proxy benchmark (issue 5): what the proxy costs and what it holds.
//!
//! Three shards behind a front-proxy, all in this process (`TestProxy`), one PostgreSQL
//! server (child processes). Shards, the measured proxy replica and the load generator
//! each run on their own tokio runtime with named threads (`bench-shards`,
//! `bench-proxy`, `bench-client`), so the CPU each used can be read from
//! `/proc/self/task/*/stat`; PostgreSQL's share is read from its processes.
//!
//! 1. Overhead: GETs of one ConfigMap at a fixed rate (open loop, a few HTTP/1.1
//!    keep-alive HTTPS connections, bearer token), directly from its shard and through
//!    the proxy, alternating in rounds so both see the same machine; latency
//!    percentiles of both and their difference.
//! 2. Scaling: closed-loop GET throughput (N clients as fast as they can) through a
//!    proxy replica in front of 1, 2 and 3 shards (requests spread over a logical
//!    cluster on each), and directly to one shard as the reference.
//! 3. Index: 10,000 logical clusters placed over the 3 shards, then a fresh proxy
//!    replica: time until its index is rebuilt from every shard (`wait_ready`) and its
//!    memory, both in this process (RSS delta) and as a separate `front-proxy` process
//!    (its RSS against one started before the 10,000 existed).
//!
//! `cargo bench -p front-proxy --bench proxy` runs the full sizes and prints markdown
//! tables (what `docs/benchmarks.md` records). Under `cargo test` (no `--bench`
//! argument) it runs tiny sizes that check the same flow works. Environment overrides:
//! `CANOPY_BENCH_RATE` (open-loop req/s), `CANOPY_BENCH_SECONDS` (per phase),
//! `CANOPY_BENCH_CLIENTS` (closed-loop clients), `CANOPY_BENCH_CLUSTERS` (index size).

use canopy_tenancy::TenancyExt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use canopy_tenancy::internal::PlaceRequest;
use canopy_test_harness::TestProxy;
use front_proxy::{FrontProxy, FrontProxyOptions, RunningProxy};
use serde_json::json;
use tokio::runtime::{Handle, Runtime};
use tokio_rustls::rustls;

const CM: &str = "api/v1/namespaces/default/configmaps";

struct Config {
    bench: bool,
    /// Open-loop request rate and connections (overhead).
    rate: f64,
    connections: usize,
    /// Seconds per phase and rounds (overhead).
    phase: Duration,
    rounds: usize,
    /// Closed-loop clients and seconds per configuration (scaling).
    clients: usize,
    closed: Duration,
    warmup: Duration,
    /// Logical clusters for the index measurement.
    clusters: usize,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Config {
    fn new(bench: bool) -> Config {
        if bench {
            let secs: f64 = env_or("CANOPY_BENCH_SECONDS", 6.0);
            Config {
                bench,
                rate: env_or("CANOPY_BENCH_RATE", 200.0),
                connections: 4,
                phase: Duration::from_secs_f64(secs),
                rounds: 3,
                clients: env_or("CANOPY_BENCH_CLIENTS", 8),
                closed: Duration::from_secs_f64(secs * 2.0),
                warmup: Duration::from_secs(1),
                clusters: env_or("CANOPY_BENCH_CLUSTERS", 10_000),
            }
        } else {
            Config {
                bench,
                rate: 50.0,
                connections: 2,
                phase: Duration::from_millis(500),
                rounds: 1,
                clients: 2,
                closed: Duration::from_millis(500),
                warmup: Duration::from_millis(100),
                clusters: 30,
            }
        }
    }
}

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let cfg = Config::new(bench);
    let shards = runtime("bench-shards");
    let proxy = runtime("bench-proxy");
    let client = runtime("bench-client");
    let rts = Runtimes {
        proxy: proxy.handle().clone(),
        client: client.handle().clone(),
    };
    shards.block_on(run(cfg, rts));
    // runtimes are dropped without waiting for the shards' background tasks
    shards.shutdown_background();
    proxy.shutdown_background();
    client.shutdown_background();
}

struct Runtimes {
    proxy: Handle,
    client: Handle,
}

// ---------------------------------------------------------------------------------
// measurements of this process

fn rss_bytes() -> u64 {
    proc_status_kib("/proc/self/status", "VmRSS:") * 1024
}

fn proc_status_kib(file: &str, field: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// (comm, ppid, utime + stime, cutime + cstime) of a `/proc/.../stat` line.
fn parse_stat(s: &str) -> Option<(String, i32, u64, u64)> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let ppid = f.get(1)?.parse().ok()?;
    Some((comm, ppid, n(11) + n(12), n(13) + n(14)))
}

/// CPU seconds used so far, by part: this process's threads grouped by runtime, and
/// PostgreSQL (every descendant process, including reaped ones' times).
#[derive(Clone, Default, Debug)]
struct Cpu {
    shards: f64,
    proxy: f64,
    client: f64,
    other: f64,
    postgres: f64,
    /// The whole machine's busy CPU seconds (/proc/stat, steal excluded).
    machine: f64,
    /// Of which interrupt and softirq time (loopback networking), not charged to threads.
    irq: f64,
    /// Time the hypervisor gave to others.
    steal: f64,
}

impl Cpu {
    fn now() -> Cpu {
        let mut c = Cpu::default();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for t in tasks.flatten() {
                let Ok(s) = std::fs::read_to_string(t.path().join("stat")) else {
                    continue;
                };
                let Some((comm, _, used, _)) = parse_stat(&s) else {
                    continue;
                };
                let secs = used as f64 / TICKS;
                if comm.starts_with("bench-shards") {
                    c.shards += secs;
                } else if comm.starts_with("bench-proxy") {
                    c.proxy += secs;
                } else if comm.starts_with("bench-client") {
                    c.client += secs;
                } else {
                    c.other += secs;
                }
            }
        }
        // PostgreSQL: the postmaster (a child of this process) and its backends
        let me = std::process::id() as i32;
        let mut procs: HashMap<i32, (i32, u64, u64, bool)> = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                    continue;
                };
                if let Some((comm, ppid, used, children)) =
                    std::fs::read_to_string(e.path().join("stat"))
                        .ok()
                        .as_deref()
                        .and_then(parse_stat)
                {
                    procs.insert(pid, (ppid, used, children, comm == "postgres"));
                }
            }
        }
        for (pid, (_, used, children, postgres)) in &procs {
            if *pid == me || !postgres {
                continue;
            }
            let mut p = *pid;
            let mut hops = 0;
            while let Some((ppid, _, _, _)) = procs.get(&p) {
                if *ppid == me {
                    c.postgres += (*used + *children) as f64 / TICKS;
                    break;
                }
                p = *ppid;
                hops += 1;
                if p <= 1 || hops > 16 {
                    break;
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            if let Some(line) = stat.lines().next() {
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal
                let f = |i: usize| v.get(i).copied().unwrap_or(0) as f64 / TICKS;
                c.machine = f(0) + f(1) + f(2) + f(5) + f(6);
                c.irq = f(5) + f(6);
                c.steal = f(7);
            }
        }
        c
    }

    fn add(&mut self, c: &Cpu) {
        self.shards += c.shards;
        self.proxy += c.proxy;
        self.client += c.client;
        self.other += c.other;
        self.postgres += c.postgres;
        self.machine += c.machine;
        self.irq += c.irq;
        self.steal += c.steal;
    }

    fn since(&self, before: &Cpu) -> Cpu {
        // (clamped: a PostgreSQL backend that exits between two reads takes its ticks
        // away until the postmaster reaps it)
        let d = |a: f64, b: f64| (a - b).max(0.0);
        Cpu {
            shards: d(self.shards, before.shards),
            proxy: d(self.proxy, before.proxy),
            client: d(self.client, before.client),
            other: d(self.other, before.other),
            postgres: d(self.postgres, before.postgres),
            machine: d(self.machine, before.machine),
            irq: d(self.irq, before.irq),
            steal: d(self.steal, before.steal),
        }
    }

    /// Busy CPU seconds of everything else on the machine (other processes).
    fn rest(&self) -> f64 {
        (self.machine
            - self.shards
            - self.proxy
            - self.client
            - self.other
            - self.postgres
            - self.irq)
            .max(0.0)
    }

    /// Every part's share of `wall`, for stderr.
    fn split(&self, wall: Duration) -> String {
        let p = |x: f64| format!("{:.0}%", 100.0 * x / wall.as_secs_f64());
        let rest = self.rest();
        format!(
            "shards {} · proxy {} · client {} · other threads {} · PostgreSQL {} · irq+softirq {} · rest of the machine {} · machine {} (of 200%) · steal {}",
            p(self.shards),
            p(self.proxy),
            p(self.client),
            p(self.other),
            p(self.postgres),
            p(self.irq),
            p(rest),
            p(self.machine),
            p(self.steal)
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn signed_ms(a: Duration, b: Duration) -> String {
    let d = a.as_secs_f64() - b.as_secs_f64();
    format!("{:+.2} ms", d * 1000.0)
}

// ---------------------------------------------------------------------------------
// load generation

/// An HTTPS client holding (at most) one HTTP/1.1 keep-alive connection.
fn connection(ca_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.expect("CA certificate")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
        .expect("http client")
}

/// Where GETs go: a base URL (proxy or shard), its CA, and the paths to cycle through.
#[derive(Clone)]
struct Target {
    base: String,
    ca_pem: String,
    token: String,
    paths: Vec<String>,
}

async fn get(http: &reqwest::Client, t: &Target, path: &str) {
    let resp = http
        .get(format!("{}{}", t.base, path))
        .bearer_auth(&t.token)
        .send()
        .await
        .expect("GET");
    let code = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
}

/// What an open-loop phase measured.
struct OpenLoop {
    latencies: Vec<Duration>,
    /// Requests sent more than 2 ms after their scheduled time.
    late: usize,
    wall: Duration,
    cpu: Cpu,
}

/// `rate` GETs per second for `duration` over `connections` connections; connection `k`
/// sends request `k + j·connections` at `j·connections/rate` (its own schedule, so a
/// slow answer on one connection delays nobody else). Latency is from sending to the
/// last byte of the body.
async fn open_loop(
    rts: &Runtimes,
    t: &Target,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> OpenLoop {
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    // connect (and warm) every connection first
    let https: Vec<reqwest::Client> = (0..connections).map(|_| connection(&t.ca_pem)).collect();
    for h in &https {
        let (h, t) = (h.clone(), t.clone());
        rts.client
            .spawn(async move {
                for _ in 0..5 {
                    get(&h, &t, &t.paths[0]).await;
                }
            })
            .await
            .expect("warm-up");
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let cpu0 = Cpu::now();
    let t_start = Instant::now();
    let mut tasks = Vec::new();
    for (k, h) in https.into_iter().enumerate() {
        let t = t.clone();
        tasks.push(rts.client.spawn(async move {
            let mut lat = Vec::new();
            let mut late = 0;
            let mut i = k;
            while i < total {
                let at = start + period * i as u32;
                tokio::time::sleep_until(at).await;
                let sent = tokio::time::Instant::now();
                if sent.duration_since(at) > Duration::from_millis(2) {
                    late += 1;
                }
                let path = &t.paths[i % t.paths.len()];
                let s = Instant::now();
                get(&h, &t, path).await;
                lat.push(s.elapsed());
                i += connections;
            }
            (lat, late)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut late = 0;
    for task in tasks {
        let (l, n) = task.await.expect("open-loop connection");
        latencies.extend(l);
        late += n;
    }
    let wall = t_start.elapsed();
    let cpu = Cpu::now().since(&cpu0);
    OpenLoop {
        latencies,
        late,
        wall,
        cpu,
    }
}

/// What a closed-loop phase measured.
struct ClosedLoop {
    requests: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    cpu: Cpu,
}

/// `clients` connections each sending GETs back to back for `duration` after a warm-up;
/// client `k` cycles through the paths starting at `k`.
async fn closed_loop(
    rts: &Runtimes,
    t: &Target,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> ClosedLoop {
    let begin = tokio::time::Instant::now();
    let measure_from = begin + warmup;
    let end = measure_from + duration;
    let barrier = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::new();
    for k in 0..clients {
        let t = t.clone();
        let barrier = barrier.clone();
        tasks.push(rts.client.spawn(async move {
            let h = connection(&t.ca_pem);
            let mut lat = Vec::new();
            let mut i = k;
            let mut measured = false;
            loop {
                let now = tokio::time::Instant::now();
                if now >= end {
                    break;
                }
                if !measured && now >= measure_from {
                    measured = true;
                    barrier.wait().await;
                }
                let path = &t.paths[i % t.paths.len()];
                let s = Instant::now();
                get(&h, &t, path).await;
                if measured {
                    lat.push(s.elapsed());
                }
                i += 1;
            }
            if !measured {
                barrier.wait().await;
            }
            lat
        }));
    }
    // CPU from when every client has started measuring
    barrier.wait().await;
    let cpu0 = Cpu::now();
    let t0 = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("closed-loop client"));
    }
    let wall = t0.elapsed();
    let cpu = Cpu::now().since(&cpu0);
    latencies.sort();
    ClosedLoop {
        requests: latencies.len(),
        wall,
        latencies,
        cpu,
    }
}

// ---------------------------------------------------------------------------------
// setup

/// Starts a proxy replica on the proxy runtime.
async fn start_replica(rts: &Runtimes, opts: FrontProxyOptions) -> RunningProxy {
    let proxy = rts
        .proxy
        .spawn(FrontProxy::start(opts))
        .await
        .expect("join")
        .expect("start front-proxy replica");
    assert!(
        proxy.wait_ready(Duration::from_secs(120)).await,
        "replica did not sync its index in 120 s"
    );
    proxy
}

/// Options of a replica in front of the first `n` shards.
fn options_for(env: &TestProxy, n: usize) -> FrontProxyOptions {
    let mut o = env.options();
    o.shards.truncate(n);
    o
}

/// A pseudo-random 16-character base36 logical cluster name, as kcp's.
fn cluster_name(rng: &mut u64) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::with_capacity(16);
    for _ in 0..16 {
        // xorshift64*
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        let x = rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        s.push(ALPHABET[(x >> 33) as usize % 36] as char);
    }
    s
}

// ---------------------------------------------------------------------------------

async fn run(cfg: Config, rts: Runtimes) {
    let t_setup = Instant::now();
    let env = TestProxy::builder().shards(3).start().await;
    // one logical cluster with a ConfigMap (256 bytes of data) on each shard
    for i in 0..3 {
        let name = format!("bench-{i}");
        let s = env.shard(i);
        s.shard
            .api
            .ensure_logical_cluster(&name)
            .await
            .expect("logical cluster");
        let (code, body) = s
            .admin()
            .post(
                &format!("/clusters/{name}/{CM}"),
                json!({"metadata": {"name": "bench"}, "data": {"k": "x".repeat(256)}}),
            )
            .await;
        assert_eq!(code, 201, "{body}");
    }
    let token = env.admin_token.clone();
    let cm = |i: usize| format!("/clusters/bench-{i}/{CM}/bench");
    eprintln!(
        "setup (3 shards, PostgreSQL, logical clusters): {:.1} s",
        t_setup.elapsed().as_secs_f64()
    );

    println!(
        "## Front-proxy benchmark ({})\n",
        if cfg.bench {
            "full"
        } else {
            "smoke pass, tiny sizes"
        }
    );

    // 1. overhead ------------------------------------------------------------------
    let proxy = start_replica(&rts, options_for(&env, 3)).await;
    let via_proxy = Target {
        base: proxy.url.clone(),
        ca_pem: proxy.ca_cert_pem.clone().expect("generated CA"),
        token: token.clone(),
        paths: vec![cm(0)],
    };
    let direct = Target {
        base: env.shard(0).url().to_string(),
        ca_pem: env.shard(0).shard.ca_cert_pem.clone(),
        token: token.clone(),
        paths: vec![cm(0)],
    };
    let mut d_lat = Vec::new();
    let mut p_lat = Vec::new();
    let (mut d_late, mut p_late) = (0, 0);
    let (mut d_cpu, mut p_cpu) = (Cpu::default(), Cpu::default());
    let (mut d_wall, mut p_wall) = (Duration::ZERO, Duration::ZERO);
    for round in 0..cfg.rounds {
        // alternate which goes first
        for which in [round % 2, 1 - round % 2] {
            let t = if which == 0 { &direct } else { &via_proxy };
            let r = open_loop(&rts, t, cfg.rate, cfg.connections, cfg.phase).await;
            if which == 0 {
                d_lat.extend(r.latencies);
                d_late += r.late;
                d_cpu.add(&r.cpu);
                d_wall += r.wall;
            } else {
                p_lat.extend(r.latencies);
                p_late += r.late;
                p_cpu.add(&r.cpu);
                p_wall += r.wall;
            }
        }
    }
    d_lat.sort();
    p_lat.sort();
    println!(
        "### Overhead: GET one ConfigMap at {:.0} req/s, {} keep-alive HTTP/1.1 connections, {} round(s) of {:.1} s per path\n",
        cfg.rate,
        cfg.connections,
        cfg.rounds,
        cfg.phase.as_secs_f64()
    );
    println!("| path | requests | p50 | p90 | p99 | max | sent > 2 ms late |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, lat, late) in [
        ("direct to the shard", &d_lat, d_late),
        ("through the proxy", &p_lat, p_late),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {late} |",
            lat.len(),
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.9)),
            ms(percentile(lat, 0.99)),
            ms(*lat.last().unwrap_or(&Duration::ZERO)),
        );
    }
    println!(
        "| **proxy − direct** | | **{}** | {} | **{}** | | |\n",
        signed_ms(percentile(&p_lat, 0.5), percentile(&d_lat, 0.5)),
        signed_ms(percentile(&p_lat, 0.9), percentile(&d_lat, 0.9)),
        signed_ms(percentile(&p_lat, 0.99), percentile(&d_lat, 0.99)),
    );
    let per_req = |c: f64, n: usize| format!("{:.0} µs", c * 1e6 / n.max(1) as f64);
    println!(
        "CPU per request (all of this process's threads of each part, PostgreSQL's processes):\n"
    );
    println!("| path | shards | proxy | client | PostgreSQL | meanwhile, other processes on the machine |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, c, n, wall) in [
        ("direct", &d_cpu, d_lat.len(), d_wall),
        ("through the proxy", &p_cpu, p_lat.len(), p_wall),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {:.0}% of a core |",
            per_req(c.shards, n),
            per_req(c.proxy, n),
            per_req(c.client, n),
            per_req(c.postgres, n),
            100.0 * c.rest() / wall.as_secs_f64(),
        );
    }
    println!();
    // what authenticating one request costs (done by the shard when called directly, by
    // the proxy otherwise), measured alone on this thread
    let verifier = env.issuer().verifier();
    let rounds = if cfg.bench { 2000 } else { 20 };
    let t = Instant::now();
    for _ in 0..rounds {
        verifier.verify(&token).expect("valid token");
    }
    let jwt_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let ring_us = ring_verify_us(&token, &env.issuer().public_key_pem(), rounds)
        .map_or("n/a".to_string(), |us| format!("{us:.0} µs"));
    println!(
        "Bearer token check alone, on one thread: `TokenVerifier::verify` (jsonwebtoken, ES256) {jwt_us:.0} µs per request; the same signature checked with ring's P-256 (what rustls uses) {ring_us}.\n"
    );
    eprintln!("direct:  {}", d_cpu.split(d_wall));
    eprintln!("proxied: {}", p_cpu.split(p_wall));
    proxy.stop().await;

    // 2. scaling -------------------------------------------------------------------
    println!(
        "### Scaling: closed loop, {} clients (one keep-alive connection each), {:.1} s per row\n",
        cfg.clients,
        cfg.closed.as_secs_f64()
    );
    println!("| target | requests/s | p50 | p99 | CPU (% of one core): shards · proxy · client · PostgreSQL · kernel irq · other processes | CPU per request: shards + proxy |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let row = |name: &str, r: &ClosedLoop| {
        let p = |x: f64| format!("{:.0}%", 100.0 * x / r.wall.as_secs_f64());
        let us = |x: f64| format!("{:.0} µs", x * 1e6 / r.requests.max(1) as f64);
        println!(
            "| {name} | {:.0} | {} | {} | {} · {} · {} · {} · {} · {} | {} + {} |",
            r.requests as f64 / r.wall.as_secs_f64(),
            ms(percentile(&r.latencies, 0.5)),
            ms(percentile(&r.latencies, 0.99)),
            p(r.cpu.shards),
            p(r.cpu.proxy),
            p(r.cpu.client),
            p(r.cpu.postgres),
            p(r.cpu.irq),
            p(r.cpu.rest()),
            us(r.cpu.shards),
            us(r.cpu.proxy),
        );
    };
    let r = closed_loop(&rts, &direct, cfg.clients, cfg.warmup, cfg.closed).await;
    row("direct to one shard", &r);
    eprintln!("direct to one shard: {}", r.cpu.split(r.wall));
    for n in 1..=3 {
        let proxy = start_replica(&rts, options_for(&env, n)).await;
        let t = Target {
            base: proxy.url.clone(),
            ca_pem: proxy.ca_cert_pem.clone().expect("generated CA"),
            token: token.clone(),
            paths: (0..n).map(cm).collect(),
        };
        let r = closed_loop(&rts, &t, cfg.clients, cfg.warmup, cfg.closed).await;
        let name = format!(
            "proxy, {n} shard{}",
            if n == 1 { "" } else { "s, requests spread" }
        );
        row(&name, &r);
        eprintln!("{name}: {}", r.cpu.split(r.wall));
        proxy.stop().await;
    }
    println!();

    // 3. index ---------------------------------------------------------------------
    let bin = env!("CARGO_BIN_EXE_front-proxy");
    let files = ProcessFiles::write(&env);
    let small = files.start(bin, &env).await;
    let small_rss = small.rss_kib();
    let small_ready = small.ready_after;
    let small_entries = env.proxy.index_len();
    drop(small);

    let n = cfg.clusters;
    let before = env.proxy.index_len();
    let t = Instant::now();
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let names: Vec<String> = (0..n).map(|_| cluster_name(&mut rng)).collect();
    let per_shard_concurrency = 8;
    let mut tasks = Vec::new();
    for s in 0..3 {
        for w in 0..per_shard_concurrency {
            let api = env.shard(s).shard.api.clone();
            let mine: Vec<(usize, String)> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 3 == s && (i / 3) % per_shard_concurrency == w)
                .map(|(i, n)| (i, n.clone()))
                .collect();
            tasks.push(tokio::spawn(async move {
                for (i, name) in mine {
                    let req = PlaceRequest {
                        name: name.parse().expect("a logical cluster name"),
                        path: format!("root:org-{:03}:ws-{i:05}", i / 100)
                            .parse()
                            .expect("a workspace path"),
                        type_: "root:universal".into(),
                        initializers: vec![],
                        owner: None,
                        admin: None,
                        organization: None,
                    };
                    canopy_tenancy::internal::place(&api, &req)
                        .await
                        .expect("place a logical cluster");
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("placing");
    }
    let created = t.elapsed();
    // the harness's own proxy follows every shard: wait until it saw them all, then
    // let things settle
    let want = before + n;
    let deadline = Instant::now() + Duration::from_secs(300);
    while env.proxy.index_len() < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.proxy.index_len(), want, "the harness proxy's index");
    // the shards and PostgreSQL keep working on what was just written for a while:
    // wait until they are idle, so that the replica is measured alone
    let t_settle = Instant::now();
    let settle_for = Duration::from_secs(if cfg.bench { 180 } else { 10 });
    let mut idle_windows = 0;
    while idle_windows < 3 && t_settle.elapsed() < settle_for {
        let c0 = Cpu::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = Cpu::now().since(&c0);
        if c.shards + c.postgres < 0.1 {
            idle_windows += 1;
        } else {
            idle_windows = 0;
        }
    }
    let settled = t_settle.elapsed();
    eprintln!(
        "shards and PostgreSQL idle again {:.1} s after the last placement{}",
        settled.as_secs_f64(),
        if idle_windows < 3 {
            " (gave up waiting)"
        } else {
            ""
        }
    );

    // in this process: a fresh replica, its time to ready and the RSS it added
    let cpu0 = Cpu::now();
    let t_restarts = Instant::now();
    let rss0 = rss_bytes();
    let t = Instant::now();
    let replica = start_replica(&rts, options_for(&env, 3)).await;
    let ready_in_process = t.elapsed();
    assert_eq!(replica.index_len(), want);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_delta = rss_bytes().saturating_sub(rss0);
    // restarts: the same again, a few times
    let mut restarts = vec![ready_in_process];
    let mut replica = Some(replica);
    for _ in 0..if cfg.bench { 3 } else { 1 } {
        if let Some(r) = replica.take() {
            r.stop().await;
        }
        let t = Instant::now();
        let r = start_replica(&rts, options_for(&env, 3)).await;
        restarts.push(t.elapsed());
        assert_eq!(r.index_len(), want);
        replica = Some(r);
    }
    if let Some(r) = replica.take() {
        r.stop().await;
    }
    let restarts_cpu = Cpu::now().since(&cpu0);
    let restarts_wall = t_restarts.elapsed();
    eprintln!("index restarts: {}", restarts_cpu.split(restarts_wall));

    // what a replica reads to rebuild: each shard's list of LogicalCluster objects
    let mut list_bytes = 0;
    for i in 0..env.shard_count() {
        let resp = env
            .shard(i)
            .admin()
            .request(
                reqwest::Method::GET,
                "/clusters/*/apis/core.kcp.io/v1alpha1/logicalclusters",
            )
            .send()
            .await
            .expect("list logical clusters");
        assert_eq!(resp.status().as_u16(), 200);
        list_bytes += resp.bytes().await.expect("list body").len();
    }

    // as a separate process: `front-proxy` started now, against one started before
    let mut process_ready = Vec::new();
    let mut big_rss = 0;
    let mut big_hwm = 0;
    for k in 0..if cfg.bench { 3 } else { 1 } {
        let p = files.start(bin, &env).await;
        process_ready.push(p.ready_after);
        if k == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            big_rss = p.rss_kib();
            big_hwm = p.hwm_kib();
        }
    }

    println!("### Index: {n} logical clusters over 3 shards, then a fresh proxy replica\n");
    println!("| measure | value |");
    println!("| --- | --- |");
    println!(
        "| {n} logical clusters placed (in-process `internal::place`, 8 at a time per shard) | {:.1} s ({:.0}/s) |",
        created.as_secs_f64(),
        n as f64 / created.as_secs_f64()
    );
    println!(
        "| after the last placement, shards and PostgreSQL still busy for | {:.0} s (the measurements below start once they are idle) |",
        settled.as_secs_f64()
    );
    let list = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| replica in this process: start → ready (index of {want} from 3 shards) | {} ms |",
        list(&restarts)
    );
    println!(
        "| replica in this process: RSS delta | {:.1} MiB ({:.0} bytes per entry) |",
        rss_delta as f64 / 1048576.0,
        rss_delta as f64 / want as f64
    );
    println!(
        "| meanwhile (replicas in this process): shards · PostgreSQL · other processes on the machine | {:.0}% · {:.0}% · {:.0}% of a core |",
        100.0 * restarts_cpu.shards / restarts_wall.as_secs_f64(),
        100.0 * restarts_cpu.postgres / restarts_wall.as_secs_f64(),
        100.0 * restarts_cpu.rest() / restarts_wall.as_secs_f64()
    );
    println!(
        "| `front-proxy` process: spawn → `/readyz` 200, {want} entries | {} ms |",
        list(&process_ready)
    );
    println!(
        "| `front-proxy` process: spawn → `/readyz` 200, {small_entries} entries | {:.0} ms |",
        small_ready.as_secs_f64() * 1000.0
    );
    let proc_delta = big_rss.saturating_sub(small_rss) * 1024;
    println!(
        "| `front-proxy` process RSS: {small_entries} entries → {want} entries | {:.1} → {:.1} MiB (peak {:.1} MiB); {:.0} bytes per entry |",
        small_rss as f64 / 1024.0,
        big_rss as f64 / 1024.0,
        big_hwm as f64 / 1024.0,
        proc_delta as f64 / (want - small_entries).max(1) as f64
    );
    let est = index_estimate(&names, n);
    println!(
        "| index maps' heap, computed from their sizes | {:.1} MiB ({:.0} bytes per entry) |",
        est as f64 / 1048576.0,
        est as f64 / n as f64
    );
    println!(
        "| what a replica reads to rebuild it (the 3 shards' LogicalCluster lists) | {:.1} MiB of JSON ({:.0} bytes per entry) |",
        list_bytes as f64 / 1048576.0,
        list_bytes as f64 / want as f64
    );
    println!();
    if !cfg.bench {
        eprintln!("(smoke pass: `cargo bench -p front-proxy --bench proxy` measures)");
    }
}

/// Microseconds per check of `token`'s ES256 signature with ring (for comparison with
/// the pure-Rust backend `canopy-auth` uses); `None` if the key or token do not parse.
fn ring_verify_us(token: &str, public_key_pem: &str, rounds: usize) -> Option<f64> {
    use base64::Engine;
    let b64: String = public_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    // a P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point
    let point = &der[der.len().checked_sub(65)?..];
    let (signed, sig) = token.rsplit_once('.')?;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .ok()?;
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    key.verify(signed.as_bytes(), &sig).ok()?;
    let t = Instant::now();
    for _ in 0..rounds {
        key.verify(signed.as_bytes(), &sig).ok()?;
    }
    Some(t.elapsed().as_secs_f64() * 1e6 / rounds as f64)
}

/// What the index's two hash maps (path → (name, shard), name → (path, shard)) hold
/// for these entries: buckets (hashbrown: a power of two ≥ 8/7 of the entries, one
/// control byte each) of `(String, (String, usize))`, and every string's heap block
/// (glibc: size + 8 rounded up to 16, at least 32).
fn index_estimate(names: &[String], n: usize) -> usize {
    let buckets = (n * 8 / 7 + 1).next_power_of_two();
    let bucket = std::mem::size_of::<(String, (String, usize))>() + 1;
    let block = |len: usize| ((len + 8).div_ceil(16) * 16).max(32);
    let strings: usize = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let path = format!("root:org-{:03}:ws-{i:05}", i / 100);
            2 * (block(name.len()) + block(path.len()))
        })
        .sum();
    2 * buckets * bucket + strings
}

// ---------------------------------------------------------------------------------
// the `front-proxy` binary as a separate process

/// Files the `front-proxy` binary is started with.
struct ProcessFiles {
    dir: tempfile::TempDir,
}

struct ProxyProcess {
    child: tokio::process::Child,
    ready_after: Duration,
}

impl ProxyProcess {
    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        proc_status_kib(&format!("/proc/{pid}/status"), "VmRSS:")
    }

    fn hwm_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        proc_status_kib(&format!("/proc/{pid}/status"), "VmHWM:")
    }
}

impl ProcessFiles {
    fn write(env: &TestProxy) -> ProcessFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path();
        let cas: Vec<String> = (0..env.shard_count())
            .map(|i| env.shard(i).shard.ca_cert_pem.clone())
            .collect();
        std::fs::write(p.join("shards-ca.crt"), cas.join("\n")).unwrap();
        std::fs::write(p.join("token.pub"), env.issuer().public_key_pem()).unwrap();
        std::fs::write(p.join("client.crt"), &env.client_cert.cert_pem).unwrap();
        std::fs::write(p.join("client.key"), &env.client_cert.key_pem).unwrap();
        ProcessFiles { dir }
    }

    async fn start(&self, bin: &str, env: &TestProxy) -> ProxyProcess {
        let p = self.dir.path();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().unwrap().port()
        };
        let root = p.join(format!("root-{port}"));
        let mut cmd = tokio::process::Command::new(bin);
        for i in 0..env.shard_count() {
            cmd.arg("--shard").arg(format!(
                "{}={}",
                env.shard(i).shard_name(),
                env.shard(i).url()
            ));
        }
        cmd.arg("--shard-ca-file")
            .arg(p.join("shards-ca.crt"))
            .arg("--token-public-key-file")
            .arg(p.join("token.pub"))
            .arg("--proxy-client-cert-file")
            .arg(p.join("client.crt"))
            .arg("--proxy-client-key-file")
            .arg(p.join("client.key"))
            .arg("--root-directory")
            .arg(&root)
            .arg("--secure-port")
            .arg(port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let t = Instant::now();
        let child = cmd.spawn().expect("start front-proxy");
        let ready_after = wait_readyz(&root, port, t).await;
        ProxyProcess { child, ready_after }
    }
}

/// Polls `/readyz` every 5 ms until 200; returns the time since `t`.
async fn wait_readyz(root: &Path, port: u16, t: Instant) -> Duration {
    let ca_file = root.join("pki/ca.crt");
    let deadline = t + Duration::from_secs(120);
    let mut http = None;
    loop {
        assert!(Instant::now() < deadline, "front-proxy not ready in 120 s");
        if http.is_none() {
            if let Ok(ca) = std::fs::read_to_string(&ca_file) {
                if ca.contains("END CERTIFICATE") {
                    http = Some(connection(&ca));
                }
            }
        }
        if let Some(h) = &http {
            if let Ok(r) = h
                .get(format!("https://127.0.0.1:{port}/readyz"))
                .send()
                .await
            {
                if r.status().as_u16() == 200 {
                    return t.elapsed();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
