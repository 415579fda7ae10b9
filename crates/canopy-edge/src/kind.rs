//! What kind of request, for the limits: kube-apiserver's classification.

use canopy_core::RequestInfo;

/// How a request is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Health probes (`/healthz`, `/livez`, `/readyz`): never limited, so load
    /// balancers see the truth under load.
    Exempt,
    /// get, list (and non-resource GETs): the read-only in-flight pool.
    ReadOnly,
    /// Everything else that is not long-running: the mutating in-flight pool.
    Mutating,
    /// Watches (`verb=watch`, `?watch=true` lists) and streams (`exec`, `attach`,
    /// `log`, `portforward`, `proxy`): they may last for hours, so — as in kube — they
    /// take no in-flight seat; the per-user watch cap bounds them instead.
    LongRunning,
}

const LONG_RUNNING_SUBRESOURCES: [&str; 5] = ["attach", "exec", "log", "portforward", "proxy"];

fn is_health(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

impl RequestKind {
    /// The kind of a parsed request (kube: `LongRunningRequestCheck` with the watch and
    /// proxy verbs and the streaming subresources; mutating = not get/list/watch).
    pub fn of(info: &RequestInfo) -> RequestKind {
        if !info.is_resource_request {
            if is_health(&info.path) {
                return RequestKind::Exempt;
            }
            return match info.verb.as_str() {
                "get" | "head" | "options" => RequestKind::ReadOnly,
                _ => RequestKind::Mutating,
            };
        }
        if info.verb == "watch"
            || info.verb == "proxy"
            || LONG_RUNNING_SUBRESOURCES.contains(&info.subresource.as_str())
        {
            return RequestKind::LongRunning;
        }
        match info.verb.as_str() {
            "get" | "list" => RequestKind::ReadOnly,
            _ => RequestKind::Mutating,
        }
    }

    /// The kind of a request from its method, path and query (what a proxy sees). A
    /// path that does not parse is read-only or mutating by its method (the server
    /// behind answers it with an error).
    pub fn of_request(method: &str, path: &str, query: Option<&str>) -> RequestKind {
        match RequestInfo::parse(method, path, query) {
            Ok(info) => RequestKind::of(&info),
            Err(_) if is_health(path) => RequestKind::Exempt,
            Err(_) => match method {
                "GET" | "HEAD" | "OPTIONS" => RequestKind::ReadOnly,
                _ => RequestKind::Mutating,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RequestKind::{self, *};

    fn k(method: &str, path_query: &str) -> RequestKind {
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_query, None),
        };
        RequestKind::of_request(method, path, query)
    }

    #[test]
    fn classifies_as_kube_does() {
        assert_eq!(k("GET", "/healthz"), Exempt);
        assert_eq!(k("GET", "/readyz/ping"), Exempt);
        assert_eq!(
            k("GET", "/clusters/root/api/v1/namespaces/d/configmaps"),
            ReadOnly
        );
        assert_eq!(k("GET", "/api/v1/namespaces/d/configmaps/x"), ReadOnly);
        assert_eq!(k("GET", "/version"), ReadOnly);
        assert_eq!(
            k("GET", "/clusters/root:a/api/v1/configmaps?watch=true"),
            LongRunning
        );
        assert_eq!(
            k("GET", "/api/v1/watch/namespaces/d/configmaps"),
            LongRunning
        );
        assert_eq!(k("GET", "/api/v1/namespaces/d/pods/p/log"), LongRunning);
        assert_eq!(k("POST", "/api/v1/namespaces/d/pods/p/exec"), LongRunning);
        assert_eq!(k("POST", "/api/v1/namespaces/d/configmaps"), Mutating);
        assert_eq!(k("PATCH", "/api/v1/namespaces/d/configmaps/x"), Mutating);
        assert_eq!(k("DELETE", "/api/v1/namespaces/d/configmaps"), Mutating);
        assert_eq!(k("POST", "/services/tokens/apis/x/v1/tokens"), Mutating);
    }
}
