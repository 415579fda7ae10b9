//! Checks of a CRD's `openAPIV3Schema`, as kube-apiserver runs them when a
//! `CustomResourceDefinition` (apiextensions.k8s.io/v1) is created.
//!
//! This is `validateCustomResourceDefinitionValidation` of
//! apiextensions-apiserver with the options of a new v1 CRD: the schema must
//! be structural (`schema/validation.go`: every specified node has a `type`
//! unless `x-kubernetes-int-or-string` or
//! `x-kubernetes-preserve-unknown-fields`, value validations under
//! `allOf`/`anyOf`/`oneOf`/`not` only restrict what is specified outside,
//! root `metadata` only restricts `name` and `generateName`), must not use
//! keywords kube does not support (`$ref`, `definitions`, `dependencies`,
//! `additionalItems`, `patternProperties`, `id`, `uniqueItems: true`, ...),
//! must use the list/map extensions consistently, and its defaults must
//! validate against their schema and be pruned.
//!
//! The errors are worded and addressed exactly as kube words them, e.g.
//! `spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields`.
//! `x-kubernetes-validations` rules are checked for well-formedness only:
//! CEL expressions are not compiled.

use serde_json::{Map, Value};

use crate::error::{FieldError, FieldPath};
use crate::schema::CompiledSchema;

/// Options of [`validate_crd_schema_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CrdSchemaOptions {
    /// The version enables the status subresource: only some keywords are
    /// allowed at the root of the schema and its type must be `object`.
    pub status_subresource: bool,
}

/// Checks an `openAPIV3Schema` like kube-apiserver does on CRD creation.
/// `path` is the field path of the schema, e.g.
/// `spec.versions[0].schema.openAPIV3Schema`. An empty list means the
/// schema is accepted.
pub fn validate_crd_schema(schema: &Value, path: &str) -> Vec<FieldError> {
    validate_crd_schema_with(schema, path, CrdSchemaOptions::default())
}

/// [`validate_crd_schema`] with options.
pub fn validate_crd_schema_with(
    schema: &Value,
    path: &str,
    opts: CrdSchemaOptions,
) -> Vec<FieldError> {
    crate::schema::with_stack(crate::schema::nesting(schema), || {
        validate_crd_schema_on_stack(schema, path, opts)
    })
}

fn validate_crd_schema_on_stack(
    schema: &Value,
    path: &str,
    opts: CrdSchemaOptions,
) -> Vec<FieldError> {
    let fld = FieldPath::new(path);
    let mut all = Vec::new();
    let Value::Object(root) = schema else {
        all.push(FieldError::invalid(
            fld.string(),
            schema,
            "must be an object",
        ));
        return all;
    };

    if opts.status_subresource {
        status_root_checks(root, &fld, &mut all);
    }
    if get_bool(root, "nullable") {
        all.push(FieldError::forbidden(
            fld.child("nullable").string(),
            "nullable cannot be true at the root",
        ));
    }

    let mut init_errs = Vec::new();
    match new_structural_error(schema) {
        Some(e) => init_errs.push(FieldError::invalid(
            fld.string(),
            Value::String(String::new()),
            e,
        )),
        None => {
            let mut errs = Vec::new();
            structural_invariants(schema, Level::Root, &fld, &mut errs);
            structural_completeness(schema, &fld, &mut errs);
            errs.sort_by_key(|e| e.to_string());
            if !errs.is_empty() {
                all.extend(errs);
            } else {
                let mut derrs = Vec::new();
                validate_defaults(schema, &fld, false, true, &mut derrs);
                all.extend(derrs);
            }
        }
    }

    let ssv = Ssv::default();
    openapi_schema_checks(schema, &fld, &ssv, true, &mut all);

    if all.is_empty() {
        all.extend(init_errs);
    }
    all
}

// ---------------------------------------------------------------------------
// helpers on raw schema JSON

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

fn get_bool(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn props(m: &Map<String, Value>) -> Option<&Map<String, Value>> {
    m.get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
}

fn list<'a>(m: &'a Map<String, Value>, k: &str) -> &'a [Value] {
    m.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn present(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).map(|v| !v.is_null()).unwrap_or(false)
}

fn non_empty_collection(m: &Map<String, Value>, k: &str) -> bool {
    match m.get(k) {
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    }
}

fn str_value(s: &str) -> Value {
    Value::String(s.to_string())
}

/// The schema of `items` when it is a single schema.
fn items_schema(m: &Map<String, Value>) -> Option<&Map<String, Value>> {
    m.get("items").and_then(Value::as_object)
}

/// `NewStructural`'s refusal of unsupported fields, anywhere in the tree.
fn new_structural_error(v: &Value) -> Option<String> {
    let m = obj(v)?;
    if !get_str(m, "id").is_empty() {
        return Some("OpenAPIV3Schema 'id' is not supported".into());
    }
    if !get_str(m, "$schema").is_empty() {
        return Some("OpenAPIV3Schema 'schema' is not supported".into());
    }
    if !get_str(m, "$ref").is_empty() {
        return Some("OpenAPIV3Schema '$ref' is not supported".into());
    }
    if non_empty_collection(m, "patternProperties") {
        return Some("OpenAPIV3Schema 'patternProperties' is not supported".into());
    }
    if non_empty_collection(m, "dependencies") {
        return Some("OpenAPIV3Schema 'dependencies' is not supported".into());
    }
    if present(m, "additionalItems") {
        return Some("OpenAPIV3Schema 'additionalItems' is not supported".into());
    }
    if non_empty_collection(m, "definitions") {
        return Some("OpenAPIV3Schema 'definitions' is not supported".into());
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        return Some(
            "internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined"
                .into(),
        );
    }
    match m.get("items") {
        Some(Value::Array(a)) if !a.is_empty() => {
            return Some("OpenAPIV3Schema 'items' must be a schema, but is an array".into())
        }
        Some(i @ Value::Object(_)) => {
            if let Some(e) = new_structural_error(i) {
                return Some(e);
            }
        }
        _ => {}
    }
    if let Some(p) = m.get("properties").and_then(Value::as_object) {
        for s in p.values() {
            if let Some(e) = new_structural_error(s) {
                return Some(e);
            }
        }
    }
    if let Some(a @ Value::Object(_)) = m.get("additionalProperties") {
        if let Some(e) = new_structural_error(a) {
            return Some(e);
        }
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for s in list(m, k) {
            if let Some(e) = new_structural_error(s) {
                return Some(e);
            }
        }
    }
    if let Some(n) = m.get("not").filter(|v| !v.is_null()) {
        return new_structural_error(n);
    }
    None
}

// ---------------------------------------------------------------------------
// status subresource root checks

const ALLOWED_AT_ROOT: &[(&str, &str)] = &[
    ("description", "Description"),
    ("type", "Type"),
    ("format", "Format"),
    ("title", "Title"),
    ("maximum", "Maximum"),
    ("exclusiveMaximum", "ExclusiveMaximum"),
    ("minimum", "Minimum"),
    ("exclusiveMinimum", "ExclusiveMinimum"),
    ("maxLength", "MaxLength"),
    ("minLength", "MinLength"),
    ("pattern", "Pattern"),
    ("maxItems", "MaxItems"),
    ("minItems", "MinItems"),
    ("uniqueItems", "UniqueItems"),
    ("multipleOf", "MultipleOf"),
    ("required", "Required"),
    ("items", "Items"),
    ("properties", "Properties"),
    ("externalDocs", "ExternalDocs"),
    ("example", "Example"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "XPreserveUnknownFields",
    ),
    ("x-kubernetes-validations", "XValidations"),
];

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

fn status_root_checks(root: &Map<String, Value>, fld: &FieldPath, all: &mut Vec<FieldError>) {
    for (k, v) in root {
        if is_zero(v) && k != "type" {
            continue;
        }
        if k == "type" {
            if v.as_str() != Some("object") {
                all.push(FieldError::invalid(
                    fld.child("type").string(),
                    v,
                    r#"only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#,
                ));
                break;
            }
            continue;
        }
        if !ALLOWED_AT_ROOT.iter().any(|(j, _)| j == k) {
            let names: Vec<&str> = ALLOWED_AT_ROOT.iter().map(|(_, g)| *g).collect();
            all.push(FieldError::invalid(
                fld.string(),
                Value::Object(root.clone()),
                format!("only [{}] fields are allowed at the root of the schema if the status subresource is enabled", names.join(" ")),
            ));
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// structural invariants (schema/validation.go)

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// `{type: integer}` and `{type: string}` with nothing else.
fn is_only_type(v: &Value, t: &str) -> bool {
    obj(v)
        .map(|m| {
            m.iter().all(|(k, v)| {
                if k == "type" {
                    v.as_str() == Some(t)
                } else {
                    is_zero(v)
                }
            }) && get_str(m, "type") == t
        })
        .unwrap_or(false)
}

fn is_int_or_string_any_of(m: &Map<String, Value>) -> bool {
    let a = list(m, "anyOf");
    a.len() == 2 && is_only_type(&a[0], "integer") && is_only_type(&a[1], "string")
}

fn is_int_or_string_all_of(m: &Map<String, Value>) -> bool {
    list(m, "allOf")
        .first()
        .and_then(obj)
        .map(is_int_or_string_any_of)
        .unwrap_or(false)
}

fn structural_invariants(v: &Value, lvl: Level, fld: &FieldPath, out: &mut Vec<FieldError>) {
    let Some(m) = obj(v) else { return };
    let ty = get_str(m, "type");
    let embedded = get_bool(m, "x-kubernetes-embedded-resource");
    let preserve = get_bool(m, "x-kubernetes-preserve-unknown-fields");
    let int_or_string = get_bool(m, "x-kubernetes-int-or-string");

    if ty == "array" && items_schema(m).is_none() {
        out.push(FieldError::required(
            fld.child("items").string(),
            "must be specified",
        ));
    }
    if let Some(items) = m.get("items").filter(|i| i.is_object()) {
        structural_invariants(items, Level::Item, &fld.child("items"), out);
    }
    if let Some(p) = m.get("properties").and_then(Value::as_object) {
        for (k, s) in p {
            structural_invariants(s, Level::Field, &fld.child("properties").key(k), out);
        }
    }
    let has_addl = present(m, "additionalProperties");
    if has_addl {
        if lvl == Level::Root {
            out.push(FieldError::forbidden(
                fld.child("additionalProperties").string(),
                "must not be used at the root",
            ));
        }
        if let Some(a) = m.get("additionalProperties").filter(|a| a.is_object()) {
            structural_invariants(a, Level::Field, &fld.child("additionalProperties"), out);
        }
    }

    if int_or_string && preserve {
        out.push(FieldError::invalid(
            fld.child("x-kubernetes-preserve-unknown-fields").string(),
            Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        out.push(FieldError::invalid(
            fld.child("x-kubernetes-embedded-resource").string(),
            Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }

    value_validation(
        m,
        is_int_or_string_any_of(m),
        is_int_or_string_all_of(m),
        lvl,
        fld,
        out,
    );

    let check_metadata = lvl == Level::Root || embedded;
    if embedded && ty != "object" {
        if ty.is_empty() {
            out.push(FieldError::required(
                fld.child("type").string(),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            out.push(FieldError::invalid(
                fld.child("type").string(),
                str_value(ty),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(FieldError::required(fld.child("type").string(), detail));
    }
    if embedded && has_addl {
        out.push(FieldError::forbidden(
            fld.child("additionalProperties").string(),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        out.push(FieldError::invalid(
            fld.child("type").string(),
            str_value(ty),
            "must be object at the root",
        ));
    }
    let p = m.get("properties").and_then(Value::as_object);
    if check_metadata {
        for k in ["kind", "apiVersion"] {
            if let Some(s) = p.and_then(|p| p.get(k)).and_then(obj) {
                let t = get_str(s, "type");
                if t != "string" {
                    out.push(FieldError::invalid(
                        fld.child("properties").key(k).child("type").string(),
                        str_value(t),
                        "must be string",
                    ));
                }
            }
        }
    }
    if let Some(md) = p.and_then(|p| p.get("metadata")).and_then(obj) {
        metadata_invariants(
            md,
            check_metadata,
            lvl,
            &fld.child("properties").key("metadata"),
            out,
        );
    }
    if embedded && !preserve && props(m).is_none() {
        out.push(FieldError::required(
            fld.child("properties").string(),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

fn metadata_invariants(
    m: &Map<String, Value>,
    check_metadata: bool,
    lvl: Level,
    fld: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    let ty = get_str(m, "type");
    if check_metadata && ty != "object" {
        out.push(FieldError::invalid(
            fld.child("type").string(),
            str_value(ty),
            "must be object",
        ));
    }
    if lvl == Level::Root {
        let p = m.get("properties").and_then(Value::as_object);
        let only_names = p
            .map(|p| p.keys().all(|k| k == "name" || k == "generateName"))
            .unwrap_or(true);
        let anything_else = m.iter().any(|(k, v)| match k.as_str() {
            "type" | "default" => false,
            "properties" => !only_names && !is_zero(v),
            _ => !is_zero(v),
        });
        if anything_else {
            out.push(FieldError::forbidden(
                fld.string(),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
}

fn value_validation(
    m: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    lvl: Level,
    fld: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, s) in list(m, "anyOf").iter().enumerate() {
            nested_value_validation(s, false, false, lvl, &fld.child("anyOf").index(i), out);
        }
    }
    for (i, s) in list(m, "allOf").iter().enumerate() {
        nested_value_validation(
            s,
            skip_first_all_of_any_of && i == 0,
            false,
            lvl,
            &fld.child("allOf").index(i),
            out,
        );
    }
    for (i, s) in list(m, "oneOf").iter().enumerate() {
        nested_value_validation(s, false, false, lvl, &fld.child("oneOf").index(i), out);
    }
    if let Some(n) = m.get("not").filter(|v| !v.is_null()) {
        nested_value_validation(n, false, false, lvl, &fld.child("not"), out);
    }
    let pattern = get_str(m, "pattern");
    if !pattern.is_empty() {
        if let Err(e) = crate::goregex::compile(pattern) {
            out.push(FieldError::invalid(
                fld.child("pattern").string(),
                str_value(pattern),
                format!(
                    "must be a valid regular expression, but isn't: {}",
                    e.lines().last().unwrap_or(&e).trim()
                ),
            ));
        }
    }
}

fn nested_value_validation(
    v: &Value,
    skip_any_of: bool,
    skip_all_of_any_of: bool,
    lvl: Level,
    fld: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    let Some(m) = obj(v) else { return };
    value_validation(m, skip_any_of, skip_all_of_any_of, lvl, fld, out);
    if let Some(i) = m.get("items").filter(|i| i.is_object()) {
        nested_value_validation(i, false, false, lvl, &fld.child("items"), out);
    }
    if let Some(p) = m.get("properties").and_then(Value::as_object) {
        for (k, s) in p {
            nested_value_validation(
                s,
                false,
                false,
                Level::Field,
                &fld.child("properties").key(k),
                out,
            );
        }
    }
    let f = |name: &str| fld.child(name).string();
    if !get_str(m, "type").is_empty() {
        out.push(FieldError::forbidden(
            f("type"),
            "must be empty to be structural",
        ));
    }
    match m.get("additionalProperties") {
        Some(Value::Object(_)) | Some(Value::Bool(true)) => {
            out.push(FieldError::forbidden(
                f("additionalProperties"),
                "must be undefined to be structural",
            ));
        }
        _ => {}
    }
    if present(m, "default") {
        out.push(FieldError::forbidden(
            f("default"),
            "must be undefined to be structural",
        ));
    }
    if !get_str(m, "title").is_empty() {
        out.push(FieldError::forbidden(
            f("title"),
            "must be empty to be structural",
        ));
    }
    if !get_str(m, "description").is_empty() {
        out.push(FieldError::forbidden(
            f("description"),
            "must be empty to be structural",
        ));
    }
    if get_bool(m, "nullable") {
        out.push(FieldError::forbidden(
            f("nullable"),
            "must be false to be structural",
        ));
    }
    for k in [
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if get_bool(m, k) {
            out.push(FieldError::forbidden(
                f(k),
                "must be false to be structural",
            ));
        }
    }
    if !list(m, "x-kubernetes-list-map-keys").is_empty() {
        out.push(FieldError::forbidden(
            f("x-kubernetes-list-map-keys"),
            "must be empty to be structural",
        ));
    }
    if present(m, "x-kubernetes-list-type") {
        out.push(FieldError::forbidden(
            f("x-kubernetes-list-type"),
            "must be undefined to be structural",
        ));
    }
    if present(m, "x-kubernetes-map-type") {
        out.push(FieldError::forbidden(
            f("x-kubernetes-map-type"),
            "must be undefined to be structural",
        ));
    }
    if !list(m, "x-kubernetes-validations").is_empty() {
        out.push(FieldError::forbidden(
            f("x-kubernetes-validations"),
            "must be empty to be structural",
        ));
    }
    if m.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.contains_key("metadata"))
        .unwrap_or(false)
    {
        out.push(FieldError::forbidden(
            fld.child("properties").key("metadata").string(),
            "must not be specified in a nested context",
        ));
    }
}

// ---------------------------------------------------------------------------
// structural completeness (schema/complete.go)

fn structural_completeness(s: &Value, fld: &FieldPath, out: &mut Vec<FieldError>) {
    if let Some(m) = obj(s) {
        value_validation_completeness(m, Some(m), fld, fld, out);
    }
}

fn value_validation_completeness(
    v: &Map<String, Value>,
    s: Option<&Map<String, Value>>,
    s_path: &FieldPath,
    v_path: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        out.push(FieldError::required(
            s_path.string(),
            format!("because it is defined in {}", v_path.string()),
        ));
        return;
    };
    if let Some(n) = v.get("not").and_then(obj) {
        nested_completeness(n, Some(s), s_path, &v_path.child("not"), out);
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for (i, x) in list(v, k).iter().enumerate() {
            if let Some(x) = obj(x) {
                nested_completeness(x, Some(s), s_path, &v_path.child(k).index(i), out);
            }
        }
    }
}

fn nested_completeness(
    v: &Map<String, Value>,
    s: Option<&Map<String, Value>>,
    s_path: &FieldPath,
    v_path: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        out.push(FieldError::required(
            s_path.string(),
            format!("because it is defined in {}", v_path.string()),
        ));
        return;
    };
    value_validation_completeness(v, Some(s), s_path, v_path, out);
    if let Some(vi) = v.get("items").and_then(obj) {
        nested_completeness(
            vi,
            items_schema(s),
            &s_path.child("items"),
            &v_path.child("items"),
            out,
        );
    }
    if let Some(vp) = v.get("properties").and_then(Value::as_object) {
        let sp = s.get("properties").and_then(Value::as_object);
        for (k, vf) in vp {
            let Some(vf) = obj(vf) else { continue };
            match sp.and_then(|p| p.get(k)).and_then(obj) {
                None => out.push(FieldError::required(
                    s_path.child("properties").key(k).string(),
                    format!(
                        "because it is defined in {}",
                        v_path.child("properties").key(k).string()
                    ),
                )),
                Some(sf) => nested_completeness(
                    vf,
                    Some(sf),
                    &s_path.child("properties").key(k),
                    &v_path.child("properties").key(k),
                    out,
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// defaults (schema/defaulting/validation.go)

fn validate_defaults(
    v: &Value,
    fld: &FieldPath,
    inside_meta: bool,
    is_root: bool,
    out: &mut Vec<FieldError>,
) {
    let Some(m) = obj(v) else { return };
    // the resource root is treated as an embedded resource
    let embedded = get_bool(m, "x-kubernetes-embedded-resource") || is_root;
    let inside_meta = if embedded { false } else { inside_meta };

    if let Some(d) = m.get("default").filter(|d| !d.is_null()) {
        match CompiledSchema::compile(v) {
            Err(e) => out.push(FieldError::invalid(
                fld.child("default").string(),
                d,
                e.to_string(),
            )),
            Ok(compiled) => {
                let dpath = fld.child("default");
                let mut errs = Vec::new();
                if !inside_meta {
                    let mut pruned = d.clone();
                    crate::prune::prune_value(
                        &mut pruned,
                        Some(&compiled.root),
                        compiled.root.embedded_resource,
                        &mut None,
                    );
                    if &pruned != d {
                        errs.push(FieldError::invalid(
                            dpath.string(),
                            d,
                            "must not have unknown fields",
                        ));
                    }
                }
                let meta = crate::validate::embedded_errors(
                    &compiled.root,
                    d,
                    &dpath,
                    compiled.root.embedded_resource,
                );
                if !meta.is_empty() {
                    errs.extend(meta);
                } else {
                    errs.extend(crate::validate::openapi_errors(
                        &compiled.root,
                        d,
                        Some(dpath.as_str()),
                    ));
                }
                out.extend(errs);
            }
        }
    }
    // additionalProperties are not followed: defaults are forbidden there
    if let Some(i) = m.get("items").filter(|i| i.is_object()) {
        validate_defaults(i, &fld.child("items"), inside_meta, false, out);
    }
    if let Some(p) = m.get("properties").and_then(Value::as_object) {
        for (k, s) in p {
            let sub_meta = inside_meta
                || (embedded && matches!(k.as_str(), "metadata" | "apiVersion" | "kind"));
            validate_defaults(s, &fld.child("properties").key(k), sub_meta, false, out);
        }
    }
}

// ---------------------------------------------------------------------------
// OpenAPI schema checks (ValidateCustomResourceDefinitionOpenAPISchema)

#[derive(Clone, Default)]
struct Ssv {
    /// `Some(reason)` when defaults are forbidden.
    forbid_defaults: Option<String>,
    inside_resource_meta: bool,
}

const OPENAPI_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

fn ssv_validate(m: &Map<String, Value>, fld: &FieldPath, ssv: &Ssv, out: &mut Vec<FieldError>) {
    let ty = get_str(m, "type");
    if !ty.is_empty() && !OPENAPI_TYPES.contains(&ty) {
        out.push(FieldError::not_supported(
            fld.child("type").string(),
            str_value(ty),
            &OPENAPI_TYPES,
        ));
    }
    if present(m, "default") {
        if let Some(reason) = &ssv.forbid_defaults {
            let mut detail = "must not be set".to_string();
            if !reason.is_empty() {
                detail.push(' ');
                detail.push_str(reason);
            }
            out.push(FieldError::forbidden(fld.child("default").string(), detail));
        }
    }
    if !get_str(m, "id").is_empty() {
        out.push(FieldError::forbidden(
            fld.child("id").string(),
            "id is not supported",
        ));
    }
    if present(m, "additionalItems") {
        out.push(FieldError::forbidden(
            fld.child("additionalItems").string(),
            "additionalItems is not supported",
        ));
    }
    if non_empty_collection(m, "patternProperties") {
        out.push(FieldError::forbidden(
            fld.child("patternProperties").string(),
            "patternProperties is not supported",
        ));
    }
    if non_empty_collection(m, "definitions") {
        out.push(FieldError::forbidden(
            fld.child("definitions").string(),
            "definitions is not supported",
        ));
    }
    if present(m, "dependencies") {
        out.push(FieldError::forbidden(
            fld.child("dependencies").string(),
            "dependencies is not supported",
        ));
    }
    if present(m, "$ref") {
        out.push(FieldError::forbidden(
            fld.child("$ref").string(),
            "$ref is not supported",
        ));
    }
    if ty == "null" {
        out.push(FieldError::forbidden(
            fld.child("type").string(),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if matches!(m.get("items"), Some(Value::Array(a)) if !a.is_empty()) {
        out.push(FieldError::forbidden(
            fld.child("items").string(),
            "items must be a schema object and not an array",
        ));
    }
    if ssv.inside_resource_meta && get_bool(m, "x-kubernetes-embedded-resource") {
        out.push(FieldError::forbidden(
            fld.child("x-kubernetes-embedded-resource").string(),
            "must not be used inside of resource meta",
        ));
    }
}

fn openapi_schema_checks(
    v: &Value,
    fld: &FieldPath,
    ssv: &Ssv,
    is_root: bool,
    out: &mut Vec<FieldError>,
) {
    let Some(m) = obj(v) else {
        if !v.is_null() {
            out.push(FieldError::invalid(
                fld.string(),
                v,
                "must be a schema object",
            ));
        }
        return;
    };
    ssv_validate(m, fld, ssv, out);

    if get_bool(m, "uniqueItems") {
        out.push(FieldError::forbidden(
            fld.child("uniqueItems").string(),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }

    let embedded = get_bool(m, "x-kubernetes-embedded-resource");
    if let Some(a) = m.get("additionalProperties").filter(|a| !a.is_null()) {
        if props(m).is_some() && (a == &Value::Bool(false) || a.is_object()) {
            out.push(FieldError::forbidden(
                fld.child("additionalProperties").string(),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        let mut sub = ssv.clone();
        if ssv.inside_resource_meta {
            sub.forbid_defaults =
                Some("inside additionalProperties applying to object metadata".into());
        }
        if a.is_object() {
            openapi_schema_checks(a, &fld.child("additionalProperties"), &sub, false, out);
        }
    }

    if let Some(p) = m.get("properties").and_then(Value::as_object) {
        for (k, s) in p {
            let mut sub = ssv.clone();
            if (is_root || embedded) && matches!(k.as_str(), "metadata" | "kind" | "apiVersion") {
                sub.inside_resource_meta = true;
                if is_root {
                    sub.forbid_defaults = Some(format!("in top-level {k}"));
                }
            }
            openapi_schema_checks(s, &fld.child("properties").key(k), &sub, false, out);
        }
    }

    if let Some(n) = m.get("not").filter(|n| !n.is_null()) {
        openapi_schema_checks(n, &fld.child("not"), ssv, false, out);
    }
    for k in ["allOf", "oneOf", "anyOf"] {
        for (i, s) in list(m, k).iter().enumerate() {
            openapi_schema_checks(s, &fld.child(k).index(i), ssv, false, out);
        }
    }
    if let Some(d) = m.get("definitions").and_then(Value::as_object) {
        for (k, s) in d {
            openapi_schema_checks(s, &fld.child("definitions").key(k), ssv, false, out);
        }
    }
    match m.get("items") {
        Some(i @ Value::Object(_)) => {
            openapi_schema_checks(i, &fld.child("items"), ssv, false, out)
        }
        Some(Value::Array(a)) => {
            for (i, s) in a.iter().enumerate() {
                openapi_schema_checks(s, &fld.child("items").index(i), ssv, false, out);
            }
        }
        _ => {}
    }
    if let Some(d) = m.get("dependencies").and_then(Value::as_object) {
        for (k, s) in d {
            if s.is_object() {
                openapi_schema_checks(s, &fld.child("dependencies").key(k), ssv, false, out);
            }
        }
    }

    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        out.push(FieldError::invalid(
            fld.child("x-kubernetes-preserve-unknown-fields").string(),
            Value::Bool(false),
            "must be true or undefined",
        ));
    }

    let ty = get_str(m, "type");
    let map_type = m.get("x-kubernetes-map-type").and_then(Value::as_str);
    if map_type.is_some() && ty != "object" {
        if ty.is_empty() {
            out.push(FieldError::required(
                fld.child("type").string(),
                "must be object if x-kubernetes-map-type is specified",
            ));
        } else {
            out.push(FieldError::invalid(
                fld.child("type").string(),
                str_value(ty),
                "must be object if x-kubernetes-map-type is specified",
            ));
        }
    }
    if let Some(mt) = map_type {
        if mt != "atomic" && mt != "granular" {
            out.push(FieldError::not_supported(
                fld.child("x-kubernetes-map-type").string(),
                str_value(mt),
                &["atomic", "granular"],
            ));
        }
    }

    let list_type = m.get("x-kubernetes-list-type").and_then(Value::as_str);
    if list_type.is_some() && ty != "array" {
        if ty.is_empty() {
            out.push(FieldError::required(
                fld.child("type").string(),
                "must be array if x-kubernetes-list-type is specified",
            ));
        } else {
            out.push(FieldError::invalid(
                fld.child("type").string(),
                str_value(ty),
                "must be array if x-kubernetes-list-type is specified",
            ));
        }
    } else if list_type == Some("set") {
        if let Some(is) = items_schema(m) {
            let item_list_type = is.get("x-kubernetes-list-type").and_then(Value::as_str);
            match get_str(is, "type") {
                "array" => {
                    if let Some(lt) = item_list_type.filter(|lt| *lt != "atomic") {
                        out.push(FieldError::invalid(
                            fld.child("items").child("x-kubernetes-list-type").string(),
                            str_value(lt),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ));
                    }
                }
                "object"
                    if is.get("x-kubernetes-map-type").and_then(Value::as_str)
                        != Some("atomic") =>
                {
                    out.push(FieldError::invalid(
                        fld.child("items").child("x-kubernetes-map-type").string(),
                        item_list_type.map(str_value).unwrap_or(Value::Null),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(lt) = list_type {
        if !matches!(lt, "atomic" | "set" | "map") {
            out.push(FieldError::not_supported(
                fld.child("x-kubernetes-list-type").string(),
                str_value(lt),
                &["atomic", "set", "map"],
            ));
        }
    }
    let keys: Vec<&str> = list(m, "x-kubernetes-list-map-keys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let keys_value = m
        .get("x-kubernetes-list-map-keys")
        .cloned()
        .unwrap_or(Value::Null);
    if !keys.is_empty() {
        match list_type {
            None => out.push(FieldError::required(
                fld.child("x-kubernetes-list-type").string(),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some("map") => {}
            Some(lt) => out.push(FieldError::invalid(
                fld.child("x-kubernetes-list-type").string(),
                str_value(lt),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
        }
    }
    if list_type == Some("map") {
        if keys.is_empty() {
            out.push(FieldError::required(
                fld.child("x-kubernetes-list-map-keys").string(),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match m.get("items") {
            None | Some(Value::Null) => out.push(FieldError::required(
                fld.child("items").string(),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(i @ Value::Array(_)) => out.push(FieldError::invalid(
                fld.child("items").string(),
                i,
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
            Some(Value::Object(is)) => {
                let ity = get_str(is, "type");
                if ity != "object" {
                    out.push(FieldError::invalid(
                        fld.child("items").child("type").string(),
                        str_value(ity),
                        "must be object if parent array's x-kubernetes-list-type is map",
                    ));
                } else {
                    let ip = is.get("properties").and_then(Value::as_object);
                    let mut seen: Vec<&str> = Vec::new();
                    for k in &keys {
                        match ip.and_then(|p| p.get(*k)).and_then(obj) {
                            Some(ks) => {
                                let kt = get_str(ks, "type");
                                if kt == "array" || kt == "object" {
                                    out.push(FieldError::invalid(
                                        fld.child("items").child("properties").key(k).child("type").string(),
                                        str_value(ity),
                                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                    ));
                                }
                            }
                            None => out.push(FieldError::invalid(
                                fld.child("x-kubernetes-list-map-keys").string(),
                                &keys_value,
                                "entries must all be names of item properties",
                            )),
                        }
                        if seen.contains(k) {
                            out.push(FieldError::invalid(
                                fld.child("x-kubernetes-list-map-keys").string(),
                                &keys_value,
                                "must not contain duplicate entries",
                            ));
                        }
                        seen.push(k);
                    }
                }
            }
            Some(_) => {}
        }
    }

    map_list_keys_map_set(m, fld, out);
    x_validations(m, fld, out);
}

fn map_list_keys_map_set(m: &Map<String, Value>, fld: &FieldPath, out: &mut Vec<FieldError>) {
    let Some(is) = items_schema(m) else { return };
    let Some(lt) = m.get("x-kubernetes-list-type").and_then(Value::as_str) else {
        return;
    };
    if lt != "set" && lt != "map" {
        return;
    }
    if get_bool(is, "nullable") {
        out.push(FieldError::forbidden(
            fld.child("items").child("nullable").string(),
            format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
        ));
    }
    if lt == "map" {
        let required: Vec<&str> = list(is, "required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let ip = is.get("properties").and_then(Value::as_object);
        for k in list(m, "x-kubernetes-list-map-keys")
            .iter()
            .filter_map(Value::as_str)
        {
            let Some(ks) = ip.and_then(|p| p.get(k)).and_then(obj) else {
                continue;
            };
            if !required.contains(&k) && !present(ks, "default") {
                out.push(FieldError::required(
                    fld.child("items").child("properties").key(k).child("default").string(),
                    "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                ));
            }
            if get_bool(ks, "nullable") {
                out.push(FieldError::forbidden(
                    fld.child("items")
                        .child("properties")
                        .key(k)
                        .child("nullable")
                        .string(),
                    "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                ));
            }
        }
    }
}

fn has_newlines(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

fn x_validations(m: &Map<String, Value>, fld: &FieldPath, out: &mut Vec<FieldError>) {
    for (i, rule) in list(m, "x-kubernetes-validations").iter().enumerate() {
        let Some(r) = obj(rule) else { continue };
        let p = fld.child("x-kubernetes-validations").index(i);
        let rule_s = get_str(r, "rule");
        let msg = get_str(r, "message");
        let msg_expr = get_str(r, "messageExpression");
        let (tr, tm) = (rule_s.trim(), msg.trim());
        if tr.is_empty() {
            out.push(FieldError::required(
                p.child("rule").string(),
                "rule is not specified",
            ));
        } else if !msg.is_empty() && tm.is_empty() {
            out.push(FieldError::invalid(
                p.child("message").string(),
                str_value(msg),
                "must be non-empty if specified",
            ));
        } else if has_newlines(tm) {
            out.push(FieldError::invalid(
                p.child("message").string(),
                str_value(msg),
                "must not contain line breaks",
            ));
        } else if has_newlines(tr) && tm.is_empty() {
            out.push(FieldError::required(
                p.child("message").string(),
                "message must be specified if rule contains line breaks",
            ));
        }
        if !msg_expr.is_empty() && msg_expr.trim().is_empty() {
            out.push(FieldError::required(
                p.child("messageExpression").string(),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = r.get("reason").and_then(Value::as_str) {
            const REASONS: [&str; 4] = [
                "FieldValueDuplicate",
                "FieldValueForbidden",
                "FieldValueInvalid",
                "FieldValueRequired",
            ];
            if !REASONS.contains(&reason) {
                out.push(FieldError::not_supported(
                    p.child("reason").string(),
                    str_value(reason),
                    &REASONS,
                ));
            }
        }
        let fp = get_str(r, "fieldPath");
        if !fp.is_empty() && fp.trim().is_empty() {
            out.push(FieldError::invalid(
                p.child("fieldPath").string(),
                str_value(fp),
                "must be non-empty if specified",
            ));
        }
        if has_newlines(fp) {
            out.push(FieldError::invalid(
                p.child("fieldPath").string(),
                str_value(fp),
                "must not contain line breaks",
            ));
        }
    }
}
