//! Prometheus metrics of a shard, named as kube-apiserver names them so existing
//! dashboards work: request counts by verb, resource and code, latency histograms by
//! verb and resource, and watch events sent by group, version and kind. The shard's
//! other parts (connection and request limits, the controller runtime) put theirs in
//! the same [`Registry`], which `/metrics` renders.

use std::time::Duration;

use canopy_metrics::{code_label, Counter, Family, Histogram, Registry};

pub struct Metrics {
    registry: Registry,
    requests: Family<Counter>,
    latency: Family<Histogram>,
    watch_events: Family<Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(Registry::default())
    }
}

impl Metrics {
    pub fn new(registry: Registry) -> Metrics {
        Metrics {
            requests: registry.family(
                "apiserver_request_total",
                "Counter of API requests by verb, resource and HTTP response code",
                &["verb", "resource", "code"],
            ),
            // kube-apiserver's buckets (canopy_metrics::REQUEST_DURATION_BUCKETS)
            latency: registry.family(
                "apiserver_request_duration_seconds",
                "Response latency distribution in seconds by verb and resource",
                &["verb", "resource"],
            ),
            watch_events: registry.family(
                "apiserver_watch_events_total",
                "Number of events sent in watch clients",
                &["group", "version", "kind"],
            ),
            registry,
        }
    }

    /// The shard's registry, for the metrics of its other parts.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts a request; series are cached per label set, so this allocates only for
    /// the first request of a (verb, resource, code).
    /// Counts and times one request. Labels come from the request, so they are cleaned
    /// first: anyone (even unauthenticated) can send any method and path, and every
    /// distinct label set is a series held forever ([`clean_verb`], [`resource_label`]).
    pub fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let (verb, resource) = (clean_verb(verb), resource_label(resource, code));
        let mut buf = [0; 5];
        self.requests
            .with(&[verb, resource, code_label(code, &mut buf)], |c| {
                c.increment(1)
            });
        // Watches last as long as the client wants: only their setup is timed.
        if verb != "watch" {
            self.latency
                .with(&[verb, resource], |h| h.record(elapsed.as_secs_f64()));
        }
    }

    /// The counter of watch events sent for a resource of `group`, `version`, `kind`:
    /// a watch takes it once and counts every event it writes.
    pub fn watch_events(&self, group: &str, version: &str, kind: &str) -> Counter {
        self.watch_events.get(&[group, version, kind])
    }

    pub fn render(&self) -> String {
        self.registry.render()
    }
}

/// kube-apiserver's verbs; any other is counted as `other`, as kube's `CleanVerb` does
/// (RequestInfo takes an unknown HTTP method, lowercased, as the verb).
pub fn clean_verb(verb: &str) -> &str {
    const VERBS: [&str; 11] = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "proxy",
        "connect",
        "options",
    ];
    if VERBS.contains(&verb) {
        verb
    } else {
        "other"
    }
}

/// The resource label of an answer: the resource only when the answer shows it is
/// served (success, or a conflict or validation failure of a real object); for 401, 403,
/// 404, 429 and other refusals the label is empty, because the name came from a path the
/// caller chose and may name nothing. Series then grow only with resources that exist
/// (built-ins and CRDs, which quotas bound), not with what clients type.
pub fn resource_label(resource: &str, code: u16) -> &str {
    match code {
        200..=399 | 409 | 410 | 422 => resource,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::default();
        m.observe("get", "configmaps", 200, Duration::from_millis(2));
        m.observe("get", "configmaps", 200, Duration::from_millis(3));
        m.observe("create", "configmaps", 409, Duration::from_millis(1));
        m.watch_events("apps", "v1", "Deployment").increment(2);
        let text = m.render();
        assert!(
            text.contains(
                "apiserver_request_total{verb=\"get\",resource=\"configmaps\",code=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "apiserver_request_total{verb=\"create\",resource=\"configmaps\",code=\"409\"} 1"
        ));
        assert!(text.contains(
            "apiserver_request_duration_seconds_count{verb=\"get\",resource=\"configmaps\"} 2"
        ));
        assert!(text.contains(
            "apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"configmaps\",le=\"0.005\"} 2"
        ), "{text}");
        assert!(
            text.contains(
                "apiserver_watch_events_total{group=\"apps\",version=\"v1\",kind=\"Deployment\"} 2"
            ),
            "{text}"
        );
    }

    #[test]
    fn labels_a_client_chooses_do_not_mint_series() {
        let m = Metrics::default();
        for i in 0..100 {
            let resource = format!("made-up-{i}");
            m.observe("get", &resource, 404, Duration::from_millis(1));
            m.observe("get", &resource, 403, Duration::from_millis(1));
            m.observe(
                &format!("method{i}"),
                "configmaps",
                200,
                Duration::from_millis(1),
            );
        }
        let text = m.render();
        assert!(!text.contains("made-up-"), "{text}");
        assert!(!text.contains("method1"), "{text}");
        assert!(text.contains(r#"verb="other""#), "{text}");
        assert!(text.contains(r#"resource="""#), "{text}");
        // real answers keep their resource
        m.observe("create", "configmaps", 422, Duration::from_millis(1));
        assert!(m.render().contains(r#"resource="configmaps""#));
    }
}
