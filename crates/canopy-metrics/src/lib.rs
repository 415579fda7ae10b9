//! The metrics of one server, recorded through the [`metrics`] facade and rendered in
//! Prometheus' text format (by `metrics-exporter-prometheus`) on the server's `/metrics`.
//!
//! Why there is no process-global recorder: tests run several servers (shards, the
//! front-proxy, the cache server) in one process and read one server's `/metrics` and
//! counters, and a process may host more than one server. So each server owns a
//! [`Registry`]: a `PrometheusRecorder` built with `build_recorder` and never installed
//! (no HTTP listener of its own either: the server renders it on its own `/metrics`).
//! Every part of the server (request metrics, connection and request limits, the
//! controller runtime) obtains its handles from that registry explicitly; the facade's
//! macros (`counter!`, …), which go to the global recorder, are not used.
//!
//! Handles are obtained once and kept: a [`Family`] caches one handle per label set,
//! looked up with borrowed label values (no allocation once the series exists), so
//! recording a request costs a hash (foldhash) of its label values, a read lock and an
//! atomic increment.
//!
//! Histograms render as Prometheus histograms (`_bucket`, `_sum`, `_count`) with fixed
//! buckets, never as summaries. The exporter fixes bucket layouts when the recorder is
//! built, so they are all here: [`REQUEST_DURATION_BUCKETS`] for every histogram but
//! client-go's workqueue ones, which have [`WORKQUEUE_DURATION_BUCKETS`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use foldhash::fast::RandomState;
use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use parking_lot::RwLock;

pub use metrics::{Counter, Gauge};

/// kube-apiserver's buckets for `apiserver_request_duration_seconds` (0.5 ms to 60 s):
/// the layout of every histogram without one of its own.
pub const REQUEST_DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// client-go's buckets for `workqueue_queue_duration_seconds` and
/// `workqueue_work_duration_seconds`: 10 ns to 10 s, by powers of ten.
pub const WORKQUEUE_DURATION_BUCKETS: &[f64] =
    &[1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];

/// Histograms whose buckets are not [`REQUEST_DURATION_BUCKETS`].
const BUCKETS_BY_NAME: &[(&str, &[f64])] = &[
    (
        "workqueue_queue_duration_seconds",
        WORKQUEUE_DURATION_BUCKETS,
    ),
    (
        "workqueue_work_duration_seconds",
        WORKQUEUE_DURATION_BUCKETS,
    ),
];

/// Histogram samples are buffered by the exporter until they are folded into their
/// buckets, which rendering does. So that memory stays bounded on a server nobody
/// scrapes, every this many samples the recording thread folds them itself (about
/// 128 KiB of samples at most; a fold costs some microseconds per histogram series).
const FOLD_EVERY: u64 = 1 << 14;

/// What the exporter is told about where a handle was registered (it ignores it).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The metrics of one server: hand out handles ([`Registry::family`],
/// [`Registry::metric`]) and render them ([`Registry::render`]). Cheap to clone (the
/// clones share the recorder). `Default` is a new, empty registry (for parts used
/// without a server, such as in unit tests: nobody renders it).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Histogram samples recorded so far, for [`FOLD_EVERY`].
    samples: AtomicU64,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        let mut builder = PrometheusBuilder::new()
            .set_buckets(REQUEST_DURATION_BUCKETS)
            .expect("the bucket list is not empty");
        for (name, buckets) in BUCKETS_BY_NAME {
            builder = builder
                .set_buckets_for_metric(Matcher::Full((*name).to_string()), buckets)
                .expect("the bucket list is not empty");
        }
        let recorder = builder.build_recorder();
        Registry {
            inner: Arc::new(Inner {
                handle: recorder.handle(),
                recorder,
                samples: AtomicU64::new(0),
            }),
        }
    }

    /// The series of metric `name` (a counter's name ends in `_total`), one per value
    /// of the labels `labels`, described by `help` (the `# HELP` line; the first
    /// description of a name wins).
    pub fn family<M: Metric>(
        &self,
        name: impl Into<KeyName>,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Family<M> {
        let name = name.into();
        M::describe(self, name.clone(), SharedString::const_str(help));
        Family {
            inner: Arc::new(FamilyInner {
                registry: self.clone(),
                name,
                labels,
                hasher: RandomState::default(),
                series: RwLock::new(HashMap::default()),
            }),
        }
    }

    /// The one series of metric `name`, which has no labels.
    pub fn metric<M: Metric>(&self, name: impl Into<KeyName>, help: &'static str) -> M {
        let name = name.into();
        M::describe(self, name.clone(), SharedString::const_str(help));
        M::register(self, &Key::from_name(name))
    }

    /// Every series registered so far, in Prometheus' text exposition format
    /// (version 0.0.4).
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }
}

/// An HTTP status code as a label value, written into `buf` (no allocation on a
/// request's path).
pub fn code_label(code: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = code;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("")
}

mod sealed {
    pub trait Sealed {}
}

/// A kind of metric handle a [`Registry`] hands out.
pub trait Metric: sealed::Sealed + Clone + Send + Sync + 'static {
    #[doc(hidden)]
    fn describe(registry: &Registry, name: KeyName, help: SharedString);
    #[doc(hidden)]
    fn register(registry: &Registry, key: &Key) -> Self;
}

impl sealed::Sealed for Counter {}
impl Metric for Counter {
    fn describe(registry: &Registry, name: KeyName, help: SharedString) {
        registry.inner.recorder.describe_counter(name, None, help);
    }
    fn register(registry: &Registry, key: &Key) -> Self {
        registry.inner.recorder.register_counter(key, &METADATA)
    }
}

impl sealed::Sealed for Gauge {}
impl Metric for Gauge {
    fn describe(registry: &Registry, name: KeyName, help: SharedString) {
        registry.inner.recorder.describe_gauge(name, None, help);
    }
    fn register(registry: &Registry, key: &Key) -> Self {
        registry.inner.recorder.register_gauge(key, &METADATA)
    }
}

/// A histogram series. Unlike the facade's handle it bounds the memory of samples
/// recorded between renders (see [`FOLD_EVERY`]).
#[derive(Clone)]
pub struct Histogram {
    histogram: metrics::Histogram,
    registry: Arc<Inner>,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram").finish_non_exhaustive()
    }
}

impl Histogram {
    pub fn record(&self, value: f64) {
        self.histogram.record(value);
        let n = self.registry.samples.fetch_add(1, Ordering::Relaxed) + 1;
        if n % FOLD_EVERY == 0 {
            self.registry.handle.run_upkeep();
        }
    }
}

impl sealed::Sealed for Histogram {}
impl Metric for Histogram {
    fn describe(registry: &Registry, name: KeyName, help: SharedString) {
        registry.inner.recorder.describe_histogram(name, None, help);
    }
    fn register(registry: &Registry, key: &Key) -> Self {
        Histogram {
            histogram: registry.inner.recorder.register_histogram(key, &METADATA),
            registry: registry.inner.clone(),
        }
    }
}

/// A counter whose value this process can read back (for tests and for status
/// accessors such as a limit's rejections), at the cost of a second atomic increment:
/// the exporter's handles cannot be read.
#[derive(Clone, Debug)]
pub struct ReadableCounter {
    counter: Counter,
    value: Arc<AtomicU64>,
}

impl ReadableCounter {
    pub fn increment(&self, n: u64) {
        self.counter.increment(n);
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far (of this handle's series in this registry).
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl sealed::Sealed for ReadableCounter {}
impl Metric for ReadableCounter {
    fn describe(registry: &Registry, name: KeyName, help: SharedString) {
        Counter::describe(registry, name, help);
    }
    fn register(registry: &Registry, key: &Key) -> Self {
        ReadableCounter {
            counter: Counter::register(registry, key),
            value: Arc::default(),
        }
    }
}

/// An integer gauge whose value this process can read back (see [`ReadableCounter`]).
#[derive(Clone, Debug)]
pub struct ReadableGauge {
    gauge: Gauge,
    value: Arc<AtomicI64>,
}

impl ReadableGauge {
    // Both move by a delta (not `set` from the local value, which racing threads could
    // leave stale), so they agree once every change is made.
    pub fn increment(&self) {
        self.gauge.increment(1.0);
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    pub fn decrement(&self) {
        self.gauge.decrement(1.0);
        self.value.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl sealed::Sealed for ReadableGauge {}
impl Metric for ReadableGauge {
    fn describe(registry: &Registry, name: KeyName, help: SharedString) {
        Gauge::describe(registry, name, help);
    }
    fn register(registry: &Registry, key: &Key) -> Self {
        ReadableGauge {
            gauge: Gauge::register(registry, key),
            value: Arc::default(),
        }
    }
}

/// The series of one metric by label values, created on first use and kept. Cheap to
/// clone (the clones share the series).
pub struct Family<M> {
    inner: Arc<FamilyInner<M>>,
}

impl<M> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family {
            inner: self.inner.clone(),
        }
    }
}

impl<M> fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.inner.name.as_str())
            .field("labels", &self.inner.labels)
            .finish_non_exhaustive()
    }
}

/// The label values of one series.
type Values = Box<[Box<str>]>;

/// Series by the hash of their label values (so that a lookup needs no owned key),
/// then the rare collisions side by side.
type Series<M> = HashMap<u64, Vec<(Values, M)>, BuildHasherDefault<Prehashed>>;

struct FamilyInner<M> {
    registry: Registry,
    name: KeyName,
    labels: &'static [&'static str],
    hasher: RandomState,
    series: RwLock<Series<M>>,
}

impl<M: Metric> Family<M> {
    /// The series with label values `values`, in the order of the family's labels
    /// (missing values are empty, extra ones ignored), to keep.
    pub fn get(&self, values: &[&str]) -> M {
        self.with(values, M::clone)
    }

    /// Runs `f` on the series with label values `values` (see [`Family::get`]) without
    /// cloning its handle: what a request's path uses.
    pub fn with<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> R {
        let fam = &*self.inner;
        let hash = fam.hasher.hash_one(values);
        if let Some((_, m)) = fam
            .series
            .read()
            .get(&hash)
            .and_then(|s| s.iter().find(|(v, _)| same(v, values)))
        {
            return f(m);
        }
        f(&self.create(hash, values))
    }

    /// Registers the series of `values` (unless another thread just did).
    #[cold]
    fn create(&self, hash: u64, values: &[&str]) -> M {
        let fam = &*self.inner;
        let mut series = fam.series.write();
        let slot = series.entry(hash).or_default();
        if let Some((_, m)) = slot.iter().find(|(v, _)| same(v, values)) {
            return m.clone();
        }
        let labels: Vec<Label> = fam
            .labels
            .iter()
            .enumerate()
            .map(|(i, k)| Label::new(*k, values.get(i).copied().unwrap_or("").to_string()))
            .collect();
        let m = M::register(&fam.registry, &Key::from_parts(fam.name.clone(), labels));
        slot.push((values.iter().map(|v| Box::from(*v)).collect(), m.clone()));
        m
    }
}

fn same(kept: &Values, values: &[&str]) -> bool {
    kept.len() == values.len() && kept.iter().zip(values).all(|(a, b)| **a == **b)
}

/// The hasher of a map whose keys are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // only u64 keys are hashed; fold anything else in all the same
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_with_help() {
        let r = Registry::new();
        let requests: Family<Counter> = r.family(
            "x_requests_total",
            "Requests by verb and code",
            &["verb", "code"],
        );
        requests.get(&["get", "200"]).increment(1);
        requests.get(&["get", "200"]).increment(1);
        requests.get(&["create", "409"]).increment(1);
        let depth: Gauge = r.metric("x_depth", "Depth");
        depth.set(7.0);
        let latency: Family<Histogram> = r.family("x_duration_seconds", "Latency", &["verb"]);
        latency.get(&["get"]).record(0.003);
        let queue: Family<Histogram> =
            r.family("workqueue_queue_duration_seconds", "Queue time", &["name"]);
        queue.get(&["q"]);
        let t = r.render();
        for want in [
            "# HELP x_requests_total Requests by verb and code",
            "# TYPE x_requests_total counter",
            "x_requests_total{verb=\"get\",code=\"200\"} 2",
            "x_requests_total{verb=\"create\",code=\"409\"} 1",
            "# HELP x_depth Depth",
            "x_depth 7\n",
            "# TYPE x_duration_seconds histogram",
            "x_duration_seconds_bucket{verb=\"get\",le=\"0.0025\"} 0",
            "x_duration_seconds_bucket{verb=\"get\",le=\"0.005\"} 1",
            "x_duration_seconds_bucket{verb=\"get\",le=\"60\"} 1",
            "x_duration_seconds_bucket{verb=\"get\",le=\"+Inf\"} 1",
            "x_duration_seconds_sum{verb=\"get\"} 0.003",
            "x_duration_seconds_count{verb=\"get\"} 1",
            // client-go's buckets, and a series nobody observed yet is there
            "workqueue_queue_duration_seconds_bucket{name=\"q\",le=\"0.00000001\"} 0",
            "workqueue_queue_duration_seconds_bucket{name=\"q\",le=\"10\"} 0",
            "workqueue_queue_duration_seconds_count{name=\"q\"} 0",
        ] {
            assert!(t.contains(want), "{want} missing in\n{t}");
        }
        assert!(!t.contains("quantile"), "{t}");
    }

    #[test]
    fn code_labels() {
        let mut b = [0; 5];
        assert_eq!(code_label(200, &mut b), "200");
        assert_eq!(code_label(0, &mut b), "0");
        assert_eq!(code_label(u16::MAX, &mut b), "65535");
    }

    #[test]
    fn registries_are_separate() {
        let (a, b) = (Registry::new(), Registry::new());
        let ca: Counter = a.metric("only_in_a_total", "A");
        ca.increment(3);
        let _: Counter = b.metric("only_in_b_total", "B");
        assert!(a.render().contains("only_in_a_total 3"));
        assert!(!a.render().contains("only_in_b_total"));
        assert!(!b.render().contains("only_in_a_total"));
    }

    #[test]
    fn a_family_hands_out_one_series_per_label_set() {
        let r = Registry::new();
        let f: Family<ReadableCounter> = r.family("c_total", "C", &["a", "b"]);
        f.get(&["x", "y"]).increment(2);
        f.get(&["x", "y"]).increment(1);
        f.get(&["xy", ""]).increment(5);
        assert_eq!(f.get(&["x", "y"]).get(), 3);
        assert_eq!(f.get(&["xy", ""]).get(), 5);
        let t = r.render();
        assert!(t.contains("c_total{a=\"x\",b=\"y\"} 3"), "{t}");
        assert!(t.contains("c_total{a=\"xy\",b=\"\"} 5"), "{t}");
        let g: ReadableGauge = r.metric("g", "G");
        g.increment();
        g.increment();
        g.decrement();
        assert_eq!(g.get(), 1);
        assert!(r.render().contains("g 1\n"));
    }

    #[test]
    fn histogram_samples_are_folded_without_a_render() {
        let r = Registry::new();
        let h: Histogram = r.metric("h_duration_seconds", "H");
        for _ in 0..FOLD_EVERY + 5 {
            h.record(0.001);
        }
        // folded samples are in the buckets; the rest are at the next render
        let t = r.render();
        assert!(
            t.contains(&format!("h_duration_seconds_count {}", FOLD_EVERY + 5)),
            "{t}"
        );
    }
}
