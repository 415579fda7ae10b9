//! Validation of names and of `metadata`, worded as k8s.io/apimachinery's validation
//! package words it (clients show these messages to people verbatim).

use serde_json::Value;

use crate::error::Cause;
use crate::resource::NameRule;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric.
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.chars().next().is_some_and(is_alnum_lower)
        && s.chars().last().is_some_and(is_alnum_lower);
    if !ok {
        errs.push("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    errs
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let ok = !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| is_alnum_lower(c) || c == '-')
                && l.chars().next().is_some_and(is_alnum_lower)
                && l.chars().last().is_some_and(is_alnum_lower)
        });
    if !ok {
        errs.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    errs
}

/// kube's `path.IsValidPathSegmentName`.
pub fn is_path_segment_name(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Validates a name by a resource's rule.
pub fn validate_name(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::DnsSubdomain => is_dns1123_subdomain(name),
        NameRule::DnsLabel => is_dns1123_label(name),
        NameRule::PathSegment => is_path_segment_name(name),
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.chars().next().is_some_and(alnum)
        && s.chars().last().is_some_and(alnum)
}

const QUALIFIED_NAME_FMT: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// kube's `IsQualifiedName`: `[prefix/]name`.
pub fn is_qualified_name(s: &str) -> Vec<String> {
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return vec!["prefix part must be non-empty".to_string()];
            }
            let mut errs: Vec<String> = is_dns1123_subdomain(prefix)
                .into_iter()
                .map(|e| format!("prefix part {e}"))
                .collect();
            errs.extend(is_qualified_name_errors(name));
            return errs;
        }
        _ => {
            return vec!["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string()];
        }
    };
    is_qualified_name_errors(name)
}

fn is_qualified_name_errors(name: &str) -> Vec<String> {
    if name.is_empty() {
        return vec!["name part must be non-empty".to_string()];
    }
    let mut errs = Vec::new();
    if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(QUALIFIED_NAME_FMT.to_string());
    }
    errs
}

/// kube's `IsValidLabelValue`.
pub fn is_valid_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let pattern_ok = s.is_empty() || {
        let alnum = |c: char| c.is_ascii_alphanumeric();
        s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
            && s.chars().next().is_some_and(alnum)
            && s.chars().last().is_some_and(alnum)
    };
    if !pattern_ok {
        errs.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    errs
}

/// Validates the parts of `metadata` common to every object: name (unless
/// generateName will produce one), namespace presence, labels, annotations, finalizers.
pub fn validate_object_meta(
    meta: &Value,
    rule: NameRule,
    namespaced: bool,
    causes: &mut Vec<Cause>,
) {
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let generate = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        if generate.is_empty() {
            causes.push(Cause::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for msg in validate_name(rule, name) {
            causes.push(Cause::invalid(
                "metadata.name",
                &Value::String(name.into()),
                &msg,
            ));
        }
    }
    if !generate.is_empty() {
        // kube validates the prefix as a name whose trailing dash is allowed
        let masked = match generate.strip_suffix('-') {
            Some(head) => format!("{head}a"),
            None => generate.to_string(),
        };
        for msg in validate_name(rule, &masked) {
            causes.push(Cause::invalid(
                "metadata.generateName",
                &Value::String(generate.into()),
                &msg,
            ));
        }
    }
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    if namespaced {
        if ns.is_empty() {
            causes.push(Cause::required("metadata.namespace", ""));
        }
    } else if !ns.is_empty() {
        causes.push(Cause::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    match meta.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                for msg in is_qualified_name(k) {
                    causes.push(Cause::invalid(
                        "metadata.labels",
                        &Value::String(k.clone()),
                        &msg,
                    ));
                }
                match v.as_str() {
                    Some(s) => {
                        for msg in is_valid_label_value(s) {
                            causes.push(Cause::invalid(
                                "metadata.labels",
                                &Value::String(s.into()),
                                &msg,
                            ));
                        }
                    }
                    None => causes.push(Cause::invalid(
                        format!("metadata.labels[{k}]"),
                        v,
                        "must be a string",
                    )),
                }
            }
        }
        Some(other) => causes.push(Cause::invalid(
            "metadata.labels",
            other,
            "must be an object",
        )),
    }
    match meta.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ann)) => {
            let mut total = 0usize;
            for (k, v) in ann {
                let lower = k.to_ascii_lowercase();
                for msg in is_qualified_name(&lower) {
                    causes.push(Cause::invalid(
                        "metadata.annotations",
                        &Value::String(k.clone()),
                        &msg,
                    ));
                }
                total += k.len();
                match v.as_str() {
                    Some(s) => total += s.len(),
                    None => causes.push(Cause::invalid(
                        format!("metadata.annotations[{k}]"),
                        v,
                        "must be a string",
                    )),
                }
            }
            if total > TOTAL_ANNOTATION_SIZE_LIMIT {
                causes.push(Cause::too_long(
                    "metadata.annotations",
                    TOTAL_ANNOTATION_SIZE_LIMIT,
                ));
            }
        }
        Some(other) => causes.push(Cause::invalid(
            "metadata.annotations",
            other,
            "must be an object",
        )),
    }
    if let Some(f) = meta.get("finalizers") {
        match f {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => {
                            for msg in is_qualified_name(s) {
                                causes.push(Cause::invalid(
                                    format!("metadata.finalizers[{i}]"),
                                    item,
                                    &msg,
                                ));
                            }
                        }
                        None => causes.push(Cause::invalid(
                            format!("metadata.finalizers[{i}]"),
                            item,
                            "must be a string",
                        )),
                    }
                }
            }
            other => causes.push(Cause::invalid(
                "metadata.finalizers",
                other,
                "must be a list",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("my-name.example").is_empty());
        assert!(!is_dns1123_subdomain("My-name").is_empty());
        assert!(!is_dns1123_subdomain("-a").is_empty());
        assert!(!is_dns1123_subdomain("a..b").is_empty());
        assert!(!is_dns1123_subdomain(&"a".repeat(254)).is_empty());
        assert!(is_dns1123_label("ns-1").is_empty());
        assert!(!is_dns1123_label("ns.1").is_empty());
        assert!(is_path_segment_name("system:admin").is_empty());
        assert!(!is_path_segment_name("a/b").is_empty());
        assert!(!is_path_segment_name("..").is_empty());
    }

    #[test]
    fn qualified_names() {
        assert!(is_qualified_name("app").is_empty());
        assert!(is_qualified_name("example.com/app_name.x").is_empty());
        assert!(!is_qualified_name("Example.com/app").is_empty());
        assert!(!is_qualified_name("/app").is_empty());
        assert!(!is_qualified_name("a/b/c").is_empty());
        assert!(!is_qualified_name("-app").is_empty());
        assert!(!is_qualified_name(&"a".repeat(64)).is_empty());
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("v1.2_x").is_empty());
        assert!(!is_valid_label_value("v 1").is_empty());
    }

    #[test]
    fn object_meta() {
        let mut causes = vec![];
        validate_object_meta(
            &json!({"namespace": "d"}),
            NameRule::DnsSubdomain,
            true,
            &mut causes,
        );
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "metadata.name");
        assert_eq!(
            causes[0].message,
            "Required value: name or generateName is required"
        );

        let mut causes = vec![];
        validate_object_meta(
            &json!({"name": "x", "labels": {"a b": "c"}, "finalizers": ["ok/x", 3]}),
            NameRule::DnsSubdomain,
            true,
            &mut causes,
        );
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "metadata.namespace",
                "metadata.labels",
                "metadata.finalizers[1]"
            ]
        );

        let mut causes = vec![];
        validate_object_meta(
            &json!({"name": "x", "namespace": "d"}),
            NameRule::DnsLabel,
            false,
            &mut causes,
        );
        assert_eq!(causes[0].message, "Forbidden: not allowed on this type");
    }
}
