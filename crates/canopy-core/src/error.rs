//! API errors, shaped like kube-apiserver's `metav1.Status` failures.
//!
//! Every failure a client can see is an [`ApiError`]: an HTTP code, a machine-readable
//! `reason`, a human message worded as kube-apiserver words it, and optional details
//! (the object's name, group and kind, field causes, a retry hint). Handlers build
//! them with the constructors here so that the wording stays in one place.

use canopy_field::FieldError;
use serde_json::{json, Value};

/// One field-level cause of an `Invalid` (or other) error, as `metav1.StatusCause`.
///
/// The field-error constructors ([`Cause::invalid`], [`Cause::required`], ...) are Go's
/// `field.Invalid`, `field.Required`, ...: each builds a [`canopy_field::FieldError`] and
/// keeps what `NewInvalid` keeps of it, so their wording is canopy-field's, the one place
/// that words a field error. [`Cause::new`] is for causes that are not field errors
/// (`ResourceVersionTooLarge`, a server-side apply conflict, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueDuplicate`,
    /// `FieldValueTooLong`, `FieldValueForbidden`, `FieldManagerConflict`, ...
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// A field error as the `StatusCause` kube makes of it (`NewInvalid`): its type as the
/// reason, its path as the field and `ErrorBody()` as the message.
impl From<&FieldError> for Cause {
    fn from(e: &FieldError) -> Self {
        Cause::new(e.error_type.as_str(), e.field.clone(), e.body())
    }
}

impl From<FieldError> for Cause {
    fn from(e: FieldError) -> Self {
        let message = e.body();
        Cause::new(e.error_type.as_str(), e.field, message)
    }
}

impl Cause {
    pub fn new(
        reason: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Cause {
            reason: reason.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// `field.Required`: `Required value[: <detail>]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        FieldError::required(field, detail).into()
    }

    /// `field.Invalid`: `Invalid value: <value>[: <detail>]`, the value shown as Go shows
    /// it (see [`canopy_field::BadValue`]).
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        FieldError::invalid(field, value, detail).into()
    }

    /// `field.Forbidden`: `Forbidden[: <detail>]`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError::forbidden(field, detail).into()
    }

    /// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        FieldError::not_supported(field, value, supported).into()
    }

    /// `field.TooLong`: `Too long: may not be more than N bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        FieldError::too_long(field, i64::try_from(max).unwrap_or(i64::MAX)).into()
    }

    /// `field.Duplicate`: `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError::duplicate(field, value).into()
    }

    /// The text of the field error this cause was made from, Go's `field.Error.Error()`:
    /// `<field>: <message>` (the message is its `ErrorBody()`). This is what kube
    /// aggregates into an `Invalid` error's message.
    pub fn render(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// A failed API request, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

/// Identifies the object an error is about: the resource (plural, as kube's qualified
/// resource `configmaps` or `roles.rbac.authorization.k8s.io`) and its name.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub name: &'a str,
}

impl Subject<'_> {
    /// `configmaps` or `roles.rbac.authorization.k8s.io`, as kube's GroupResource prints.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn about(mut self, s: Subject<'_>) -> Self {
        self.name = if s.name.is_empty() {
            None
        } else {
            Some(s.name.to_string())
        };
        self.group = Some(s.group.to_string());
        self.kind = Some(s.resource.to_string());
        self
    }

    pub fn with_causes(mut self, causes: Vec<Cause>) -> Self {
        self.causes = causes;
        self
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// 404 `<resource> "<name>" not found`.
    pub fn not_found(s: Subject<'_>) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {:?} not found", s.qualified(), s.name),
        )
        .about(s)
    }

    /// 409 `<resource> "<name>" already exists`.
    pub fn already_exists(s: Subject<'_>) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {:?} already exists", s.qualified(), s.name),
        )
        .about(s)
    }

    /// 409 `Operation cannot be fulfilled on <resource> "<name>": <detail>`.
    pub fn conflict(s: Subject<'_>, detail: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {:?}: {detail}",
                s.qualified(),
                s.name
            ),
        )
        .about(s)
    }

    /// The conflict kube returns for a stale resourceVersion on update.
    pub fn stale(s: Subject<'_>) -> Self {
        ApiError::conflict(
            s,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 as `apierrors.NewInvalid` words it: `<Kind>[.<group>] "<name>" is invalid:
    /// <aggregate>`, where the aggregate is `ErrorList.ToAggregate()` of the causes' texts
    /// ([`canopy_field::aggregate_texts`]: one as itself, several as `[a, b]` with repeats
    /// left out); with no causes the message stops at `is invalid`. Every cause stays in
    /// `details.causes`, repeats included, as in kube.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut message = format!("{qualified} {} is invalid", canopy_gofmt::quote(name));
        if !causes.is_empty() {
            message.push_str(": ");
            message.push_str(&canopy_field::aggregate_texts(
                causes.iter().map(Cause::render),
            ));
        }
        let mut e = ApiError::new(422, "Invalid", message);
        e.name = Some(name.to_string());
        e.group = Some(group.to_string());
        e.kind = Some(kind.to_string());
        e.causes = causes;
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 as the RBAC authorizer words it.
    pub fn forbidden(
        user: &str,
        verb: &str,
        s: Subject<'_>,
        scope: &str,
        detail: Option<&str>,
    ) -> Self {
        let mut msg = if s.resource.is_empty() {
            format!("forbidden: User {user:?} cannot {verb} path {:?}", s.name)
        } else {
            format!(
                "{} {} is forbidden: User {user:?} cannot {verb} resource {:?} in API group {:?}{scope}",
                s.qualified(),
                if s.name.is_empty() {
                    String::new()
                } else {
                    format!("{:?}", s.name)
                },
                s.resource,
                s.group
            )
            .replace("  is forbidden", " is forbidden")
        };
        if let Some(d) = detail {
            msg.push_str(": ");
            msg.push_str(d);
        }
        let mut e = ApiError::new(403, "Forbidden", msg);
        if !s.resource.is_empty() {
            e = e.about(s);
        }
        e
    }

    /// 403 from an admission plugin: `<resource>.<group> "<name>" is forbidden: <reason>`.
    pub fn admission_forbidden(s: Subject<'_>, reason: &str) -> Self {
        let msg = format!("{} {:?} is forbidden: {reason}", s.qualified(), s.name);
        ApiError::new(403, "Forbidden", msg).about(s)
    }

    pub fn forbidden_message(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    pub fn method_not_supported(s: Subject<'_>, verb: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{verb} is not supported on resources of kind {:?}",
                s.qualified()
            ),
        )
        .about(s)
    }

    /// 410 Expired: `too old resource version: <asked> (<oldest>)`.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Gone", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        let m = message.into();
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {m}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"),
        )
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::new(406, "NotAcceptable", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after: u32) -> Self {
        ApiError::new(429, "TooManyRequests", message).with_retry_after(retry_after)
    }

    pub fn service_unavailable(message: impl Into<String>, retry_after: u32) -> Self {
        ApiError::new(503, "ServiceUnavailable", message).with_retry_after(retry_after)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, "Timeout", message)
    }

    /// The `metav1.Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.group {
            if !g.is_empty() {
                details.insert("group".into(), json!(g));
            }
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| {
                    let mut m = serde_json::Map::new();
                    m.insert("reason".into(), json!(c.reason));
                    m.insert("message".into(), json!(c.message));
                    if !c.field.is_empty() {
                        m.insert("field".into(), json!(c.field));
                    }
                    Value::Object(m)
                })
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        if let Value::Object(m) = &mut status {
            if !details.is_empty() {
                m.insert("details".into(), Value::Object(details));
            }
            if self.reason.is_empty() {
                m.remove("reason");
            }
        }
        status
    }
}

/// `Status` for a successful delete that returns a status (kube's `status: Success`).
pub fn success_status(s: Subject<'_>, uid: Option<&str>) -> Value {
    let mut details = serde_json::Map::new();
    details.insert("name".into(), json!(s.name));
    details.insert("kind".into(), json!(s.resource));
    if !s.group.is_empty() {
        details.insert("group".into(), json!(s.group));
    }
    if let Some(uid) = uid {
        details.insert("uid".into(), json!(uid));
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CM: Subject<'static> = Subject {
        group: "",
        resource: "configmaps",
        name: "x",
    };

    #[test]
    fn not_found_matches_kube_wording() {
        let e = ApiError::not_found(CM);
        assert_eq!(e.message, "configmaps \"x\" not found");
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["kind"], "configmaps");
        assert_eq!(s["details"]["name"], "x");
        assert!(s["details"].get("group").is_none());
    }

    #[test]
    fn grouped_resources_are_qualified() {
        let e = ApiError::already_exists(Subject {
            group: "rbac.authorization.k8s.io",
            resource: "roles",
            name: "r",
        });
        assert_eq!(
            e.message,
            "roles.rbac.authorization.k8s.io \"r\" already exists"
        );
        assert_eq!(
            e.to_status()["details"]["group"],
            "rbac.authorization.k8s.io"
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let one = ApiError::invalid(
            "ConfigMap",
            "",
            "x",
            vec![Cause::required(
                "metadata.name",
                "name or generateName is required",
            )],
        );
        assert_eq!(
            one.message,
            "ConfigMap \"x\" is invalid: metadata.name: Required value: name or generateName is required"
        );
        let two = ApiError::invalid(
            "Role",
            "rbac.authorization.k8s.io",
            "r",
            vec![
                Cause::required("rules[0].verbs", ""),
                Cause::invalid("metadata.name", &json!("A"), "bad"),
            ],
        );
        assert_eq!(
            two.message,
            "Role.rbac.authorization.k8s.io \"r\" is invalid: [rules[0].verbs: Required value, metadata.name: Invalid value: \"A\": bad]"
        );
        let status = two.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["causes"][0]["field"], "rules[0].verbs");
        assert_eq!(
            status["details"]["causes"][1]["reason"],
            "FieldValueInvalid"
        );
    }

    #[test]
    fn invalid_aggregates_as_go() {
        // ToAggregate drops repeated texts from the message; every cause stays
        let dup = Cause::required("spec.x", "");
        let e = ApiError::invalid("Widget", "", "w", vec![dup.clone(), dup.clone()]);
        assert_eq!(e.message, "Widget \"w\" is invalid: spec.x: Required value");
        assert_eq!(e.causes.len(), 2);
        let other = Cause::forbidden("spec.y", "no");
        let e = ApiError::invalid(
            "Widget",
            "",
            "w",
            vec![dup.clone(), other.clone(), dup, other],
        );
        assert_eq!(
            e.message,
            "Widget \"w\" is invalid: [spec.x: Required value, spec.y: Forbidden: no]"
        );
        // NewInvalid with no errors stops at "is invalid"; the name is Go's %q
        let e = ApiError::invalid("Widget", "example.com", "a\u{1}b", vec![]);
        assert_eq!(e.message, r#"Widget.example.com "a\x01b" is invalid"#);
        // ConfigMap's size error is on field.NewPath(""), which prints as "[]"
        let e = ApiError::invalid("ConfigMap", "", "big", vec![Cause::too_long("[]", 1048576)]);
        assert_eq!(
            e.message,
            "ConfigMap \"big\" is invalid: []: Too long: may not be more than 1048576 bytes"
        );
    }

    #[test]
    fn cause_constructors_word_as_go() {
        let cases = [
            (
                Cause::invalid("x", &json!("a\u{1}\"b"), "d"),
                "FieldValueInvalid",
                r#"Invalid value: "a\x01\"b": d"#,
            ),
            (
                Cause::invalid("x", &json!(1.0), "d"),
                "FieldValueInvalid",
                "Invalid value: 1: d",
            ),
            (
                Cause::invalid("x", &json!(-1), ""),
                "FieldValueInvalid",
                "Invalid value: -1",
            ),
            (
                Cause::invalid("x", &json!({"b": 1, "a": "<&>"}), "d"),
                "FieldValueInvalid",
                r#"Invalid value: {"a":"\u003c\u0026\u003e","b":1}: d"#,
            ),
            (
                Cause::invalid("x", &Value::Null, "d"),
                "FieldValueInvalid",
                "Invalid value: null: d",
            ),
            (
                Cause::required("x", ""),
                "FieldValueRequired",
                "Required value",
            ),
            (
                Cause::required("x", "d"),
                "FieldValueRequired",
                "Required value: d",
            ),
            (
                Cause::forbidden("x", ""),
                "FieldValueForbidden",
                "Forbidden",
            ),
            (
                Cause::forbidden("x", "d"),
                "FieldValueForbidden",
                "Forbidden: d",
            ),
            (
                Cause::not_supported("x", &json!("m"), &["a", "b\u{1}"]),
                "FieldValueNotSupported",
                r#"Unsupported value: "m": supported values: "a", "b\x01""#,
            ),
            (
                Cause::not_supported("x", &json!("m"), &[]),
                "FieldValueNotSupported",
                r#"Unsupported value: "m""#,
            ),
            (
                Cause::too_long("x", 1),
                "FieldValueTooLong",
                "Too long: may not be more than 1 byte",
            ),
            (
                Cause::too_long("x", 128),
                "FieldValueTooLong",
                "Too long: may not be more than 128 bytes",
            ),
            (
                Cause::duplicate("x", &json!("a\u{7f}")),
                "FieldValueDuplicate",
                r#"Duplicate value: "a\x7f""#,
            ),
            (
                Cause::duplicate("x", &json!({"name": "a"})),
                "FieldValueDuplicate",
                r#"Duplicate value: {"name":"a"}"#,
            ),
        ];
        for (c, reason, message) in cases {
            assert_eq!((c.reason.as_str(), c.message.as_str()), (reason, message));
            assert_eq!(c.field, "x");
            assert_eq!(c.render(), format!("x: {message}"));
        }
    }

    #[test]
    fn field_errors_become_causes() {
        let e = canopy_field::FieldError::invalid("spec.port", json!(70000), "must be a port");
        let c = Cause::from(&e);
        assert_eq!(c.reason, "FieldValueInvalid");
        assert_eq!(c.field, "spec.port");
        assert_eq!(c.message, "Invalid value: 70000: must be a port");
        assert_eq!(c.render(), e.to_string());
        assert_eq!(Cause::from(e), c);
        let r: Cause = canopy_field::FieldError::required("<nil>", "").into();
        assert_eq!(
            (r.reason.as_str(), r.field.as_str(), r.message.as_str()),
            ("FieldValueRequired", "<nil>", "Required value")
        );
    }

    #[test]
    fn conflict_message() {
        assert_eq!(
            ApiError::stale(CM).message,
            "Operation cannot be fulfilled on configmaps \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }

    #[test]
    fn forbidden_message_like_rbac() {
        let e = ApiError::forbidden(
            "alice",
            "list",
            Subject {
                group: "",
                resource: "configmaps",
                name: "",
            },
            " in the namespace \"default\"",
            None,
        );
        assert_eq!(e.message, "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\"");
        let e = ApiError::forbidden("alice", "get", CM, " in the namespace \"default\"", None);
        assert_eq!(e.message, "configmaps \"x\" is forbidden: User \"alice\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\"");
    }

    #[test]
    fn retry_after_in_details() {
        let s = ApiError::too_many_requests("slow down", 3).to_status();
        assert_eq!(s["details"]["retryAfterSeconds"], 3);
        assert_eq!(s["code"], 429);
    }
}
