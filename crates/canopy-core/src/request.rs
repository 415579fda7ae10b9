//! Parsing a request path into what it asks for (kube's `RequestInfo`), with Canopy's
//! logical-cluster prefix.
//!
//! Every request Canopy serves has the shape `/clusters/<cluster>/<kube path>`; the
//! `<kube path>` is parsed exactly as k8s.io/apiserver's `RequestInfoFactory` parses it:
//! resource requests (`/api/v1/namespaces/ns/configmaps/name/status`) yield the verb,
//! group, version, namespace, resource, name and subresource that authorization and
//! the registry use; everything else (`/version`, `/openapi/v3`, `/api`) is a
//! non-resource request. Parsing is pure and total: any string gives a result or an
//! error, never a panic (see the fuzz target).

use std::collections::HashMap;

use crate::error::ApiError;

/// The logical-cluster part of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSelector {
    /// No `/clusters/` prefix at all.
    None,
    /// `/clusters/*`: every logical cluster (privileged identities only).
    Wildcard,
    /// `/clusters/<name-or-path>`.
    Named(String),
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub cluster: ClusterSelector,
    /// The path with the cluster prefix removed (always starts with `/`).
    pub path: String,
    pub is_resource_request: bool,
    /// get, list, watch, create, update, patch, delete, deletecollection; for
    /// non-resource requests the lower-cased HTTP method (get, post, put, ...).
    pub verb: String,
    /// `api` or `apis` for resource requests.
    pub api_prefix: String,
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// Namespace subresources that must not be read as a namespaced resource type.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request(format!("invalid path segment {segment:?}")))
}

/// Parses the query string into a map (last value wins, like url.Values.Get).
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.split_once('=') {
                Some((k, v)) => (k, v),
                None => (pair, ""),
            };
            let k = form_decode(k);
            let v = form_decode(v);
            out.entry(k).or_insert(v);
        }
    }
    out
}

fn form_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Splits `/clusters/<cluster>/rest` into the cluster selector and the rest.
pub fn split_cluster(path: &str) -> Result<(ClusterSelector, String), ApiError> {
    if let Some(rest) = path.strip_prefix("/clusters/") {
        let (cluster, inner) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let cluster = decode(cluster)?;
        if cluster.is_empty() {
            return Err(ApiError::bad_request("empty logical cluster name in path"));
        }
        let sel = if cluster == "*" {
            ClusterSelector::Wildcard
        } else {
            ClusterSelector::Named(cluster)
        };
        Ok((sel, inner.to_string()))
    } else {
        Ok((ClusterSelector::None, path.to_string()))
    }
}

impl RequestInfo {
    /// The 403 kube's RBAC authorizer returns when `user` may not make this request.
    /// Also the answer for a logical cluster that does not exist, so that existence is
    /// revealed only to those who may enter (shards and the front-proxy both use it).
    pub fn forbidden(&self, user: &str) -> ApiError {
        if !self.is_resource_request {
            return ApiError::forbidden_message(format!(
                "forbidden: User {:?} cannot {} path {:?}",
                user, self.verb, self.path
            ));
        }
        let group = if self.api_prefix == "api" {
            ""
        } else {
            self.group.as_str()
        };
        let scope = if self.namespace.is_empty() || self.resource == "namespaces" {
            " at the cluster scope".to_string()
        } else {
            format!(" in the namespace {:?}", self.namespace)
        };
        let resource = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        ApiError::forbidden(
            user,
            &self.verb,
            crate::Subject {
                group,
                resource: &resource,
                name: &self.name,
            },
            &scope,
            None,
        )
    }

    /// Parses a request. `query` is the raw query string (used for `watch=true`).
    pub fn parse(method: &str, path: &str, query: Option<&str>) -> Result<RequestInfo, ApiError> {
        let (cluster, inner) = split_cluster(path)?;
        let method_lc = method.to_ascii_lowercase();
        let mut info = RequestInfo {
            cluster,
            path: inner.clone(),
            is_resource_request: false,
            verb: method_lc.clone(),
            api_prefix: String::new(),
            group: String::new(),
            version: String::new(),
            namespace: String::new(),
            resource: String::new(),
            subresource: String::new(),
            name: String::new(),
        };
        let trimmed = inner.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(info);
        }
        let raw_parts: Vec<&str> = trimmed.split('/').collect();
        let mut parts = Vec::with_capacity(raw_parts.len());
        for p in raw_parts {
            parts.push(decode(p)?);
        }
        let Some((prefix, mut rest)) = parts.split_first() else {
            return Ok(info);
        };
        let prefix = prefix.as_str();
        if prefix != "api" && prefix != "apis" {
            return Ok(info);
        }
        if parts.iter().any(String::is_empty) {
            // `/api/v1//x`: no resource has an empty name; answered as an unknown path
            return Ok(info);
        }
        info.api_prefix = prefix.to_string();
        if prefix == "apis" {
            // /apis and /apis/<group> are discovery.
            match rest {
                [group, tail @ ..] if !tail.is_empty() => {
                    info.group = group.clone();
                    rest = tail;
                }
                [group] => {
                    info.group = group.clone();
                    return Ok(info);
                }
                _ => return Ok(info),
            }
        }
        let [version, tail @ ..] = rest else {
            return Ok(info);
        };
        info.version = version.clone();
        rest = tail;
        if rest.is_empty() {
            // /api/v1 or /apis/g/v: discovery of a group-version.
            return Ok(info);
        }
        info.is_resource_request = true;

        let mut watch_prefix = false;
        match rest {
            // deprecated /watch/ path prefix
            [first, tail @ ..] if first == "watch" => {
                watch_prefix = true;
                rest = tail;
            }
            [first, tail @ ..] if first == "proxy" => rest = tail,
            _ => {}
        }
        info.verb = match method_lc.as_str() {
            "post" => "create",
            "get" | "head" => "get",
            "put" => "update",
            "patch" => "patch",
            "delete" => "delete",
            _ => method_lc.as_str(),
        }
        .to_string();
        if watch_prefix {
            info.verb = "watch".into();
        }

        let mut current: &[String] = rest;
        if let [first, ns, tail @ ..] = current {
            if first == "namespaces" {
                info.namespace = ns.clone();
                if tail
                    .first()
                    .is_some_and(|t| !NAMESPACE_SUBRESOURCES.contains(&t.as_str()))
                {
                    current = tail;
                }
            }
        }
        match current {
            [] => {
                info.is_resource_request = false;
                return Ok(info);
            }
            [resource] => info.resource = resource.clone(),
            [resource, name] => {
                info.resource = resource.clone();
                info.name = name.clone();
            }
            [resource, name, sub @ ..] => {
                info.resource = resource.clone();
                info.name = name.clone();
                // deeper paths only exist for proxy/connect subresources
                info.subresource = sub.join("/");
            }
        }

        let q = parse_query(query);
        if info.name.is_empty() && info.verb == "get" {
            info.verb = "list".into();
        }
        if matches!(info.verb.as_str(), "list" | "get") {
            if let Some(w) = q.get("watch") {
                if w == "true" || w == "1" {
                    info.verb = "watch".into();
                }
            }
        }
        if watch_prefix && info.verb == "watch" {
            // a /watch/ request on a single name stays watch with a name filter
        }
        if info.verb == "delete" && info.name.is_empty() {
            info.verb = "deletecollection".into();
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(method: &str, path: &str) -> RequestInfo {
        let (path, query) = match path.split_once('?') {
            Some((a, b)) => (a, Some(b)),
            None => (path, None),
        };
        RequestInfo::parse(method, path, query).unwrap()
    }

    #[test]
    fn namespaced_resource_with_cluster() {
        let r = p(
            "GET",
            "/clusters/root:org/api/v1/namespaces/default/configmaps/x",
        );
        assert_eq!(r.cluster, ClusterSelector::Named("root:org".into()));
        assert!(r.is_resource_request);
        assert_eq!(
            (
                r.verb.as_str(),
                r.group.as_str(),
                r.version.as_str(),
                r.namespace.as_str(),
                r.resource.as_str(),
                r.name.as_str()
            ),
            ("get", "", "v1", "default", "configmaps", "x")
        );
    }

    #[test]
    fn list_watch_and_deletecollection() {
        assert_eq!(p("GET", "/api/v1/namespaces/d/configmaps").verb, "list");
        assert_eq!(
            p("GET", "/api/v1/namespaces/d/configmaps?watch=true").verb,
            "watch"
        );
        assert_eq!(
            p("GET", "/api/v1/namespaces/d/configmaps?watch=1").verb,
            "watch"
        );
        assert_eq!(
            p("GET", "/api/v1/watch/namespaces/d/configmaps").verb,
            "watch"
        );
        assert_eq!(
            p("DELETE", "/api/v1/namespaces/d/configmaps").verb,
            "deletecollection"
        );
        assert_eq!(
            p("DELETE", "/api/v1/namespaces/d/configmaps/x").verb,
            "delete"
        );
        assert_eq!(p("POST", "/api/v1/namespaces/d/configmaps").verb, "create");
        assert_eq!(p("PUT", "/api/v1/namespaces/d/configmaps/x").verb, "update");
        assert_eq!(
            p("PATCH", "/api/v1/namespaces/d/configmaps/x").verb,
            "patch"
        );
    }

    #[test]
    fn namespace_object_and_subresources() {
        let r = p("GET", "/api/v1/namespaces/foo");
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.namespace.as_str()),
            ("namespaces", "foo", "foo")
        );
        let r = p("PUT", "/api/v1/namespaces/foo/finalize");
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.subresource.as_str()),
            ("namespaces", "foo", "finalize")
        );
        let r = p("GET", "/api/v1/namespaces");
        assert_eq!(
            (r.verb.as_str(), r.resource.as_str()),
            ("list", "namespaces")
        );
    }

    #[test]
    fn groups_and_discovery() {
        let r = p(
            "GET",
            "/clusters/root/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
        );
        assert_eq!(
            (r.group.as_str(), r.resource.as_str(), r.name.as_str()),
            ("rbac.authorization.k8s.io", "clusterroles", "admin")
        );
        let r = p("GET", "/clusters/root/apis/rbac.authorization.k8s.io/v1");
        assert!(!r.is_resource_request);
        assert_eq!(r.version, "v1");
        let r = p("GET", "/clusters/root/apis");
        assert!(!r.is_resource_request);
        assert_eq!(r.path, "/apis");
        let r = p("GET", "/clusters/root");
        assert_eq!(r.path, "/");
        let r = p("GET", "/version");
        assert_eq!(r.cluster, ClusterSelector::None);
        assert!(!r.is_resource_request);
        assert_eq!(r.verb, "get");
    }

    #[test]
    fn wildcard_and_status_subresource() {
        let r = p("GET", "/clusters/*/api/v1/configmaps");
        assert_eq!(r.cluster, ClusterSelector::Wildcard);
        assert_eq!(r.verb, "list");
        let r = p(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/n/leases/l/status",
        );
        assert_eq!(r.subresource, "status");
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(RequestInfo::parse("GET", "/clusters//api", None).is_err());
        assert!(RequestInfo::parse("GET", "/api/v1/namespaces/%ff/configmaps", None).is_err());
        let r = RequestInfo::parse("GET", "/api/v1//x", None).unwrap();
        assert!(!r.is_resource_request);
    }

    #[test]
    fn query_parsing() {
        let q = parse_query(Some("labelSelector=a%3Db%2Cc+in+(x)&limit=5&watch"));
        assert_eq!(q["labelSelector"], "a=b,c in (x)");
        assert_eq!(q["limit"], "5");
        assert_eq!(q["watch"], "");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(method in "[A-Z]{3,6}", path in "(/[a-z:*%0-9]{0,6}){0,9}", q in proptest::option::of("[a-z=&%0-9]{0,20}")) {
            let _ = RequestInfo::parse(&method, &path, q.as_deref());
        }
    }
}
