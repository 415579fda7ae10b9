//! Validation of custom resources against a compiled schema.
//!
//! [`CompiledSchema::validate`] reproduces what kube-apiserver's
//! `customResourceStrategy.Validate` reports for the schema part, in this
//! order:
//!
//! 1. the OpenAPI validation of k8s.io/kube-openapi `pkg/validation/validate`
//!    (type, format, string, number, array, enum, object and `allOf`/`anyOf`/
//!    `oneOf`/`not` checks, with go-openapi's error selection for `anyOf` and
//!    `oneOf`), converted to field errors like apiextensions-apiserver's
//!    `kubeOpenAPIResultToFieldErrors`;
//! 2. the `apiVersion`, `kind` and `metadata` of every
//!    `x-kubernetes-embedded-resource` (`schema/objectmeta/validation.go`);
//! 3. the uniqueness of `x-kubernetes-list-type: set` items and `map` keys
//!    (`schema/listtype/validation.go`).
//!
//! Messages are the ones kube prints, for example
//! `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
//! Errors without a field path in kube (composition failures such as
//! `"spec" must validate at least one schema (anyOf)`) carry the field
//! `<nil>`, as kube shows them. CEL rules (`x-kubernetes-validations`) are
//! not evaluated.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{FieldError, FieldPath};
use crate::gofmt::{self, GoNum};
use crate::schema::{Additional, CompiledSchema, Node};

/// A path as kube-openapi builds it while validating (`spec.items[0].name`,
/// additional properties joined with `.`), kept on the stack and rendered
/// only when an error is reported.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Prop(&'a Seg<'a>, &'a str),
    Addl(&'a Seg<'a>, &'a str),
    Index(&'a Seg<'a>, usize),
}

impl Seg<'_> {
    fn render(&self) -> String {
        match self {
            Seg::Root => String::new(),
            Seg::Prop(p, n) => {
                let s = p.render();
                if s.is_empty() {
                    n.to_string()
                } else {
                    format!("{s}.{n}")
                }
            }
            Seg::Addl(p, k) => format!("{}.{k}", p.render()),
            Seg::Index(p, i) => format!("{}[{i}]", p.render()),
        }
    }
}

/// One go-openapi error: its message (used for de-duplication, as
/// `Result.AddErrors` does) and the converted field error.
struct OErr {
    msg: String,
    fe: FieldError,
}

#[derive(Default)]
struct Res {
    errs: Vec<OErr>,
    count: u64,
}

impl Res {
    fn ok() -> Res {
        Res {
            errs: Vec::new(),
            count: 1,
        }
    }
    fn valid(&self) -> bool {
        self.errs.is_empty()
    }
    fn merge(&mut self, o: Res) {
        self.count += o.count;
        self.errs.extend(o.errs);
    }
    fn add(&mut self, e: OErr) {
        self.errs.push(e);
    }
    fn inc(&mut self) {
        self.count += 1;
    }
    fn err(e: OErr) -> Res {
        Res {
            errs: vec![e],
            count: 0,
        }
    }
}

/// Builds field errors relative to the base path of a validation run
/// (`None` for a whole object, like `ValidateCustomResource(nil, ...)`).
struct Cx<'b> {
    base: Option<&'b str>,
}

impl Cx<'_> {
    /// `errPath` of kubeOpenAPIResultToFieldErrors for an error named `name`.
    fn err_path(&self, name: &str) -> String {
        let n = name.strip_prefix('.').unwrap_or(name);
        match (self.base, name.is_empty() || name == ".") {
            (None, true) => "<nil>".to_string(),
            (Some(b), true) => b.to_string(),
            (None, false) => n.to_string(),
            (Some(b), false) => format!("{b}.{n}"),
        }
    }

    /// A non-`*errors.Validation` error: `field.Invalid(fldPath, "", msg)`.
    fn plain(&self, msg: String) -> OErr {
        let field = self
            .base
            .map(str::to_string)
            .unwrap_or_else(|| "<nil>".to_string());
        OErr {
            fe: FieldError::invalid(field, Value::String(String::new()), msg.clone()),
            msg,
        }
    }

    fn invalid(&self, name: &str, value: Value, msg: String) -> OErr {
        OErr {
            fe: FieldError::invalid(self.err_path(name), &value, msg.clone()),
            msg,
        }
    }

    /// `errors.InvalidType(name, "body", typeName, value)`.
    fn invalid_type(&self, name: &str, type_name: &str, value: &str) -> OErr {
        let msg = format!(
            "{name} in body must be of type {type_name}: {}",
            gofmt::quote(value)
        );
        OErr {
            fe: FieldError::type_invalid(
                self.err_path(name),
                Value::String(value.to_string()),
                msg.clone(),
            ),
            msg,
        }
    }

    fn required(&self, name: &str) -> OErr {
        OErr {
            msg: format!("{name} in body is required"),
            fe: FieldError::required(self.err_path(name), ""),
        }
    }
}

/// The go-openapi (JSON type, format) of a decoded value.
fn schema_info(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::Number(n) => match GoNum::of(n) {
            GoNum::Int(_) => ("integer", "int64"),
            GoNum::Float(_) => ("number", "float64"),
        },
        Value::String(_) => ("string", ""),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

/// `swag.IsFloat64AJSONInteger`.
pub(crate) fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9007199254740991.0;
    if !f.is_finite() || !(-MAX..=MAX).contains(&f) {
        return false;
    }
    let g = f.trunc();
    if f == g {
        return true;
    }
    let diff = (f - g).abs();
    if g == 0.0 || diff < f64::MIN_POSITIVE {
        return diff < 1e-9 * f64::MIN_POSITIVE;
    }
    diff / (f.abs() + g.abs()).min(f64::MAX) < 1e-9
}

fn join_types(n: &Node) -> String {
    n.types.join(",")
}

fn type_validate(cx: &Cx, n: &Node, data: &Value, path: &Seg) -> Res {
    if data.is_null() {
        if !n.types.is_empty() && !n.has_type("null") && !n.nullable {
            return Res::err(cx.invalid_type(&path.render(), &join_types(n), "null"));
        }
        return Res::ok();
    }
    let (sch_type, fmt) = schema_info(data);
    let is_str_or_slice = matches!(data, Value::String(_) | Value::Array(_));
    let is_float_int = sch_type == "number"
        && is_json_integer(data.as_f64().unwrap_or(f64::NAN))
        && n.has_type("integer");
    let is_int_float = sch_type == "integer" && n.has_type("number");
    if let Some(f) = &n.format {
        if !(is_str_or_slice || n.has_type(sch_type) || fmt == f || is_float_int || is_int_float) {
            return Res::err(cx.invalid_type(&path.render(), f, fmt));
        }
        if !(n.has_type("number") || n.has_type("integer")) && is_str_or_slice {
            return Res::ok();
        }
    }
    if !(n.has_type(sch_type) || is_float_int || is_int_float) {
        return Res::err(cx.invalid_type(&path.render(), &join_types(n), sch_type));
    }
    Res::ok()
}

fn string_validate(cx: &Cx, n: &Node, s: &str, path: &Seg) -> Res {
    if n.max_length.is_some() || n.min_length.is_some() {
        let len = s.chars().count() as i64;
        if let Some(max) = n.max_length {
            if len > max {
                let name = path.render();
                return Res::err(OErr {
                    msg: format!("{name} in body should be at most {max} chars long"),
                    fe: FieldError::too_long(cx.err_path(&name), max),
                });
            }
        }
        if let Some(min) = n.min_length {
            if len < min {
                let name = path.render();
                let msg = format!("{name} in body should be at least {min} chars long");
                return Res::err(cx.invalid(&name, Value::String(s.to_string()), msg));
            }
        }
    }
    if let Some((p, re)) = &n.pattern {
        match re {
            Err(e) => {
                let name = path.render();
                let msg = format!("{name} in body should match '{p}, but pattern is invalid: {e}'");
                return Res::err(cx.invalid(&name, Value::String(s.to_string()), msg));
            }
            Ok(re) => {
                if !re.is_match(s) {
                    let name = path.render();
                    let msg = format!("{name} in body should match '{p}'");
                    return Res::err(cx.invalid(&name, Value::String(s.to_string()), msg));
                }
            }
        }
    }
    Res::default()
}

fn format_validate(cx: &Cx, n: &Node, s: &str, path: &Seg) -> Res {
    if let (Some(sf), Some(f)) = (n.string_format, &n.format) {
        if !sf.is_valid(s) {
            return Res::err(cx.invalid_type(&path.render(), f, s));
        }
    }
    Res::default()
}

/// `IsValueValidAgainstRange`; the path is rendered only on failure.
fn range_error(
    val: GoNum,
    type_name: &str,
    format: &str,
    prefix: &str,
    path: &Seg,
) -> Option<String> {
    let bad = match (type_name, format, val) {
        ("integer", "int32", GoNum::Int(i)) => i32::try_from(i).is_err(),
        ("integer", _, GoNum::Int(_)) => false,
        ("integer", "int32", GoNum::Float(f)) => gofmt::format_float_f(f).parse::<i32>().is_err(),
        ("integer", _, GoNum::Float(f)) => gofmt::format_float_f(f).parse::<i64>().is_err(),
        (_, "float" | "float32", v) => {
            let x = v.as_f64();
            x.is_finite() && (x as f32).is_infinite()
        }
        _ => false,
    };
    if !bad {
        return None;
    }
    let path = path.render();
    Some(if format.is_empty() {
        format!("{prefix} value must be of type {type_name} (default format) in {path}")
    } else {
        format!("{prefix} value must be of type {type_name} with format {format} in {path}")
    })
}

fn num_value(v: GoNum) -> Value {
    match v {
        GoNum::Int(i) => Value::from(i),
        GoNum::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    }
}

fn bound_error(
    cx: &Cx,
    path: &Seg,
    data: GoNum,
    bound: &str,
    is_max: bool,
    exclusive: bool,
) -> OErr {
    let rel = match (is_max, exclusive) {
        (true, false) => "less than or equal to",
        (true, true) => "less than",
        (false, false) => "greater than or equal to",
        (false, true) => "greater than",
    };
    let name = path.render();
    let msg = format!("{name} in body should be {rel} {bound}");
    cx.invalid(&name, num_value(data), msg)
}

/// `MaximumNativeType` / `MinimumNativeType` and their float fallbacks.
fn check_bound(
    cx: &Cx,
    path: &Seg,
    data: GoNum,
    bound: f64,
    exclusive: bool,
    is_max: bool,
    native: bool,
) -> Option<OErr> {
    match (data, native) {
        (GoNum::Int(i), true) => {
            let b = bound as i64;
            let fail = if is_max {
                (!exclusive && i > b) || (exclusive && i >= b)
            } else {
                (!exclusive && i < b) || (exclusive && i <= b)
            };
            fail.then(|| bound_error(cx, path, data, &b.to_string(), is_max, exclusive))
        }
        _ => {
            let f = data.as_f64();
            let fail = if is_max {
                (!exclusive && f > bound) || (exclusive && f >= bound)
            } else {
                (!exclusive && f < bound) || (exclusive && f <= bound)
            };
            // the fallback reports the value converted to float64
            let shown = if native { data } else { GoNum::Float(f) };
            fail.then(|| {
                bound_error(
                    cx,
                    path,
                    shown,
                    &gofmt::format_float_v(bound),
                    is_max,
                    exclusive,
                )
            })
        }
    }
}

fn multiple_of_error(cx: &Cx, path: &Seg, data: GoNum, factor: GoNum) -> Option<OErr> {
    let positive = |f: GoNum| -> Option<OErr> {
        let name = path.render();
        let msg = format!(
            "factor MultipleOf declared for {name} must be positive: {}",
            f.format_v()
        );
        Some(cx.invalid(&name, num_value(f), msg))
    };
    match (data, factor) {
        (GoNum::Int(i), GoNum::Int(k)) => {
            if k <= 0 {
                return positive(factor);
            }
            if i.wrapping_div(k).wrapping_mul(k) != i {
                let name = path.render();
                let msg = format!("{name} in body should be a multiple of {k}");
                return Some(cx.invalid(&name, num_value(data), msg));
            }
            None
        }
        _ => {
            let (d, f) = (data.as_f64(), factor.as_f64());
            if f <= 0.0 {
                return positive(GoNum::Float(f));
            }
            let mult = if f < 1.0 { 1.0 / f * d } else { d / f };
            if !is_json_integer(mult) {
                let name = path.render();
                let msg = format!(
                    "{name} in body should be a multiple of {}",
                    gofmt::format_float_v(f)
                );
                return Some(cx.invalid(&name, num_value(GoNum::Float(d)), msg));
            }
            None
        }
    }
}

fn number_validate(cx: &Cx, n: &Node, num: GoNum, path: &Seg) -> Res {
    let mut res = Res::default();
    if let Some(e) = range_error(num, n.num_type, n.num_format, "Checked", path) {
        res.add(cx.plain(e));
    }
    let mut r_mult = Res::default();
    let mut r_min = Res::default();
    let mut r_max = Res::default();
    if let Some(m) = n.multiple_of {
        let range = range_error(
            GoNum::Float(m),
            n.num_type,
            n.num_format,
            "MultipleOf",
            path,
        );
        let native = range.is_none();
        if let Some(e) = range {
            r_mult.add(cx.plain(e));
        }
        let e = if native {
            let factor = match num {
                GoNum::Int(_) => GoNum::Int(m as i64),
                GoNum::Float(_) => GoNum::Float(m),
            };
            multiple_of_error(cx, path, num, factor)
        } else {
            multiple_of_error(cx, path, GoNum::Float(num.as_f64()), GoNum::Float(m))
        };
        if let Some(e) = e {
            r_mult.add(e);
        }
    }
    if let Some(max) = n.maximum {
        let range = range_error(
            GoNum::Float(max),
            n.num_type,
            n.num_format,
            "Maximum boundary",
            path,
        );
        let native = range.is_none();
        if let Some(e) = range {
            r_max.add(cx.plain(e));
        }
        if let Some(e) = check_bound(cx, path, num, max, n.exclusive_maximum, true, native) {
            r_max.add(e);
        }
    }
    if let Some(min) = n.minimum {
        let range = range_error(
            GoNum::Float(min),
            n.num_type,
            n.num_format,
            "Minimum boundary",
            path,
        );
        let native = range.is_none();
        if let Some(e) = range {
            r_min.add(cx.plain(e));
        }
        if let Some(e) = check_bound(cx, path, num, min, n.exclusive_minimum, false, native) {
            r_min.add(e);
        }
    }
    res.merge(r_mult);
    res.merge(r_min);
    res.merge(r_max);
    res.inc();
    res
}

/// reflect.DeepEqual after Go's ConvertibleTo/Convert, as
/// `basicCommonValidator` compares a value with an enum member.
fn enum_equal(data: &Value, e: &Value) -> bool {
    match (data, e) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(a), Value::Number(b)) => match (GoNum::of(a), GoNum::of(b)) {
            (GoNum::Int(x), GoNum::Int(y)) => x == y,
            (GoNum::Float(x), GoNum::Int(y)) => x as i64 == y,
            (GoNum::Int(x), GoNum::Float(y)) => x as f64 == y,
            (GoNum::Float(x), GoNum::Float(y)) => x == y,
        },
        (Value::Number(a), Value::String(s)) => match GoNum::of(a) {
            // Go converts an integer to a string as a rune
            GoNum::Int(x) => {
                let c = u32::try_from(x)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                s == c.encode_utf8(&mut buf)
            }
            GoNum::Float(_) => false,
        },
        (a, b) => a == b,
    }
}

fn common_validate(cx: &Cx, n: &Node, data: &Value, path: &Seg) -> Res {
    let Some(values) = &n.enum_values else {
        return Res::default();
    };
    if values.iter().any(|e| enum_equal(data, e)) {
        return Res::default();
    }
    let name = path.render();
    let shown: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => gofmt::marshal(other),
        })
        .collect();
    let go_list: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => gofmt::render_value(other).trim_matches('"').to_string(),
        })
        .collect();
    let msg = format!("{name} in body should be one of [{}]", go_list.join(" "));
    Res::err(OErr {
        msg,
        fe: FieldError::not_supported(cx.err_path(&name), data, &shown),
    })
}

/// Validates `data` against one schema node: go-openapi's `SchemaValidator`.
fn validate_node(cx: &Cx, n: &Node, data: &Value, path: &Seg) -> Res {
    let mut r = Res::default();
    if data.is_null() {
        r.merge(type_validate(cx, n, data, path));
        r.merge(common_validate(cx, n, data, path));
        return r;
    }
    if !n.types.is_empty() || n.format.is_some() {
        r.merge(type_validate(cx, n, data, path));
        r.inc();
    }
    r.merge(schema_props_validate(cx, n, data, path));
    r.inc();
    match data {
        Value::String(s) => {
            r.merge(string_validate(cx, n, s, path));
            r.inc();
            if n.string_format.is_some() {
                r.merge(format_validate(cx, n, s, path));
                r.inc();
            }
        }
        Value::Number(num) => {
            r.merge(number_validate(cx, n, GoNum::of(num), path));
            r.inc();
        }
        Value::Array(a) => {
            r.merge(slice_validate(cx, n, a, path));
            r.inc();
        }
        _ => {}
    }
    r.merge(common_validate(cx, n, data, path));
    r.inc();
    if let Value::Object(m) = data {
        r.merge(object_validate(cx, n, m, path));
        r.inc();
    }
    r.inc();
    r
}

fn schema_props_validate(cx: &Cx, n: &Node, data: &Value, path: &Seg) -> Res {
    let mut main = Res::default();
    if !n.any_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_success: Option<Res> = None;
        let mut succeeded = false;
        for s in &n.any_of {
            let res = validate_node(cx, s, data, path);
            if res.valid() {
                best = None;
                succeeded = true;
                first_success = Some(res);
                break;
            }
            if best.as_ref().map(|b| res.count > b.count).unwrap_or(true) {
                best = Some(res);
            }
        }
        if !succeeded {
            main.add(cx.plain(format!(
                "{} must validate at least one schema (anyOf)",
                gofmt::quote(&path.render())
            )));
        }
        if let Some(b) = best {
            main.merge(b);
        } else if let Some(f) = first_success {
            main.merge(f);
        }
    }
    if !n.one_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_success: Option<Res> = None;
        let mut validated = 0;
        for s in &n.one_of {
            let res = validate_node(cx, s, data, path);
            if res.valid() {
                validated += 1;
                best = None;
                if first_success.is_none() {
                    first_success = Some(res);
                }
                continue;
            }
            if validated == 0 && best.as_ref().map(|b| res.count > b.count).unwrap_or(true) {
                best = Some(res);
            }
        }
        if validated != 1 {
            let additional = if validated == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {validated} valid alternatives")
            };
            main.add(cx.plain(format!(
                "{} must validate one and only one schema (oneOf). {additional}",
                gofmt::quote(&path.render())
            )));
            if let Some(b) = best {
                main.merge(b);
            }
        } else if let Some(f) = first_success {
            main.merge(f);
        }
    }
    if !n.all_of.is_empty() {
        let mut validated = 0;
        for s in &n.all_of {
            let res = validate_node(cx, s, data, path);
            if res.valid() {
                validated += 1;
            }
            main.merge(res);
        }
        if validated != n.all_of.len() {
            let additional = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            main.add(cx.plain(format!(
                "{} must validate all the schemas (allOf){additional}",
                gofmt::quote(&path.render())
            )));
        }
    }
    if let Some(not) = &n.not {
        if validate_node(cx, not, data, path).valid() {
            main.add(cx.plain(format!(
                "{} must not validate the schema (not)",
                gofmt::quote(&path.render())
            )));
        }
    }
    main.inc();
    main
}

fn slice_validate(cx: &Cx, n: &Node, a: &[Value], path: &Seg) -> Res {
    let mut r = Res::default();
    if let Some(items) = n.items.as_deref() {
        for (i, v) in a.iter().enumerate() {
            r.merge(validate_node(cx, items, v, &Seg::Index(path, i)));
        }
    }
    let size = a.len() as i64;
    if let Some(min) = n.min_items {
        if size < min {
            let name = path.render();
            let msg = format!("{name} in body should have at least {min} items");
            r.add(cx.invalid(&name, Value::from(size), msg));
        }
    }
    if let Some(max) = n.max_items {
        if size > max {
            let name = path.render();
            r.add(OErr {
                msg: format!("{name} in body should have at most {max} items"),
                fe: FieldError::too_many(cx.err_path(&name), size, max),
            });
        }
    }
    if n.unique_items && a.len() > 1 {
        let mut dup = false;
        'outer: for i in 1..a.len() {
            for j in 0..i {
                if a[i] == a[j] {
                    dup = true;
                    break 'outer;
                }
            }
        }
        if dup {
            let name = path.render();
            let msg = format!("{name} in body shouldn't contain duplicates");
            r.add(cx.invalid(&name, Value::String(String::new()), msg));
        }
    }
    r.inc();
    r
}

fn object_validate(cx: &Cx, n: &Node, m: &Map<String, Value>, path: &Seg) -> Res {
    let mut r = Res::default();
    let num_keys = m.len() as i64;
    if let Some(min) = n.min_properties {
        if num_keys < min {
            let name = path.render();
            let msg = format!("{name} in body should have at least {min} properties");
            r.add(cx.invalid(&name, Value::from(num_keys), msg));
        }
    }
    if let Some(max) = n.max_properties {
        if num_keys > max {
            let name = path.render();
            r.add(OErr {
                msg: format!("{name} in body should have at most {max} properties"),
                fe: FieldError::too_many(cx.err_path(&name), num_keys, max),
            });
        }
    }
    match &n.additional {
        Some(Additional::Bool(false)) => {
            for k in m.keys() {
                if n.property(k).is_none() {
                    let name = path.render();
                    let msg = format!("{name}.{k} in body is a forbidden property");
                    r.add(cx.invalid(&name, Value::String(k.clone()), msg));
                }
            }
        }
        Some(Additional::Schema(s)) => {
            for (k, v) in m {
                if n.property(k).is_none() {
                    r.merge(validate_node(cx, s, v, &Seg::Addl(path, k)));
                }
            }
        }
        _ => {}
    }
    if !n.properties.is_empty() {
        for (k, v) in m {
            if let Some(p) = n.property(k) {
                r.merge(validate_node(cx, p, v, &Seg::Prop(path, k)));
            }
        }
    }
    for k in &n.required {
        if !m.contains_key(k) {
            r.add(cx.required(&format!("{}.{k}", path.render())));
        }
    }
    r
}

// ---------------------------------------------------------------------------
// embedded resources (schema/objectmeta/validation.go)

fn validate_embedded(pth: &FieldPath, x: &Value, s: Option<&Node>, out: &mut Vec<FieldError>) {
    let Some(s) = s else { return };
    if !s.has_embedded {
        return;
    }
    match x {
        Value::Object(m) => {
            if s.embedded_resource {
                validate_embedded_resource(pth, m, out);
            }
            for (k, v) in m {
                if let Some(p) = s.property(k) {
                    validate_embedded(&pth.child(k), v, Some(p), out);
                } else if let Some(Additional::Schema(a)) = &s.additional {
                    validate_embedded(&pth.key(k), v, Some(a), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                validate_embedded(&pth.index(i), v, s.items.as_deref(), out);
            }
        }
        _ => {}
    }
}

fn dns1035_label_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = v.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit());
    if !ok {
        errs.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    errs
}

fn dns1123_label_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let label_ok = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    if !label_ok(v) {
        if v.split('.').all(label_ok) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string());
        }
    }
    errs
}

/// `apimachinery/pkg/runtime/schema.ParseGroupVersion` errors.
fn parse_group_version_error(gv: &str) -> Option<String> {
    if gv.is_empty() || gv == "/" {
        return None;
    }
    match gv.matches('/').count() {
        0 | 1 => None,
        _ => Some(format!("unexpected GroupVersion string: {gv}")),
    }
}

fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `json.Unmarshal` into `metav1.ObjectMeta`: the first type error.
fn object_meta_decode_error(meta: &Value) -> Option<String> {
    let m = match meta {
        Value::Null => return None,
        Value::Object(m) => m,
        other => {
            return Some(format!(
                "json: cannot unmarshal {} into Go value of type v1.ObjectMeta",
                go_type_name(other)
            ))
        }
    };
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        let (ok, go_ty, fld) = match k.as_str() {
            "name" => (v.is_string(), "string", "name"),
            "generateName" => (v.is_string(), "string", "generateName"),
            "namespace" => (v.is_string(), "string", "namespace"),
            "selfLink" => (v.is_string(), "string", "selfLink"),
            "uid" => (v.is_string(), "types.UID", "uid"),
            "resourceVersion" => (v.is_string(), "string", "resourceVersion"),
            "generation" => (v.is_i64(), "int64", "generation"),
            "deletionGracePeriodSeconds" => (v.is_i64(), "int64", "deletionGracePeriodSeconds"),
            "creationTimestamp" | "deletionTimestamp" => (v.is_string(), "Time", k.as_str()),
            "labels" | "annotations" => {
                let ok = v
                    .as_object()
                    .map(|o| o.values().all(|x| x.is_string() || x.is_null()))
                    .unwrap_or(false);
                (ok, "map[string]string", k.as_str())
            }
            "finalizers" => {
                let ok = v
                    .as_array()
                    .map(|a| a.iter().all(|x| x.is_string()))
                    .unwrap_or(false);
                (ok, "[]string", "finalizers")
            }
            "ownerReferences" | "managedFields" => {
                let ok = v
                    .as_array()
                    .map(|a| a.iter().all(|x| x.is_object() || x.is_null()))
                    .unwrap_or(false);
                (
                    ok,
                    if k == "ownerReferences" {
                        "[]v1.OwnerReference"
                    } else {
                        "[]v1.ManagedFieldsEntry"
                    },
                    k.as_str(),
                )
            }
            _ => continue,
        };
        if !ok {
            return Some(format!(
                "json: cannot unmarshal {} into Go struct field ObjectMeta.{fld} of type {go_ty}",
                go_type_name(v)
            ));
        }
    }
    None
}

fn validate_path_segment(name: &str, prefix: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if !prefix {
        for illegal in [".", ".."] {
            if name == illegal {
                errs.push(format!("may not be '{illegal}'"));
            }
        }
    }
    for illegal in ["/", "%"] {
        if name.contains(illegal) {
            errs.push(format!("may not contain '{illegal}'"));
        }
    }
    errs
}

/// A subset of `ValidateObjectMeta` for embedded resources: name,
/// generateName, namespace, labels and annotations.
fn validate_embedded_meta(pth: &FieldPath, meta: &Map<String, Value>, out: &mut Vec<FieldError>) {
    let s = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or("");
    let gen = s("generateName");
    if !gen.is_empty() {
        for msg in validate_path_segment(gen, true) {
            out.push(FieldError::invalid(
                pth.child("generateName").as_str(),
                Value::String(gen.into()),
                msg,
            ));
        }
    }
    let name = s("name");
    if !name.is_empty() {
        for msg in validate_path_segment(name, false) {
            out.push(FieldError::invalid(
                pth.child("name").as_str(),
                Value::String(name.into()),
                msg,
            ));
        }
    }
    let ns = s("namespace");
    if !ns.is_empty() {
        for msg in dns1123_label_errors(ns) {
            out.push(FieldError::invalid(
                pth.child("namespace").as_str(),
                Value::String(ns.into()),
                msg,
            ));
        }
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        let lp = pth.child("labels");
        for (k, v) in labels {
            for msg in canopy_selectors::validation::is_qualified_name(k) {
                out.push(FieldError::invalid(
                    lp.as_str(),
                    Value::String(k.clone()),
                    msg,
                ));
            }
            let v = v.as_str().unwrap_or("");
            for msg in canopy_selectors::validation::is_valid_label_value(v) {
                out.push(FieldError::invalid(
                    lp.key(k).as_str(),
                    Value::String(v.to_string()),
                    msg,
                ));
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let ap = pth.child("annotations");
        let mut total = 0usize;
        for (k, v) in ann {
            for msg in canopy_selectors::validation::is_qualified_name(&k.to_lowercase()) {
                out.push(FieldError::invalid(
                    ap.as_str(),
                    Value::String(k.clone()),
                    msg,
                ));
            }
            total += k.len() + v.as_str().map(str::len).unwrap_or(0);
        }
        if total > 256 * 1024 {
            out.push(FieldError::too_long(ap.as_str(), 256 * 1024));
        }
    }
}

fn validate_embedded_resource(pth: &FieldPath, x: &Map<String, Value>, out: &mut Vec<FieldError>) {
    if !x.contains_key("apiVersion") {
        out.push(FieldError::required(pth.child("apiVersion").string(), ""));
    }
    if !x.contains_key("kind") {
        out.push(FieldError::required(pth.child("kind").string(), ""));
    }
    for (k, v) in x {
        match k.as_str() {
            "apiVersion" => {
                let p = pth.child("apiVersion").string();
                match v.as_str() {
                    None => out.push(FieldError::invalid(p, v, "must be a string")),
                    Some("") => out.push(FieldError::invalid(p, v, "must not be empty")),
                    Some(gv) => {
                        if let Some(e) = parse_group_version_error(gv) {
                            out.push(FieldError::invalid(p, v, e));
                        }
                    }
                }
            }
            "kind" => {
                let p = pth.child("kind").string();
                match v.as_str() {
                    None => out.push(FieldError::invalid(p, v, "must be a string")),
                    Some("") => out.push(FieldError::invalid(p, v, "must not be empty")),
                    Some(kind) => {
                        let errs = dns1035_label_errors(&kind.to_lowercase());
                        if !errs.is_empty() {
                            out.push(FieldError::invalid(
                                p,
                                v,
                                format!(
                                    "may have mixed case, but should otherwise match: {}",
                                    errs.join(",")
                                ),
                            ));
                        }
                    }
                }
            }
            "metadata" => {
                let mp = pth.child("metadata");
                if let Some(e) = object_meta_decode_error(v) {
                    out.push(FieldError::invalid(mp.string(), v, e));
                } else if let Some(m) = v.as_object() {
                    validate_embedded_meta(&mp, m, out);
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// x-kubernetes-list-type (schema/listtype/validation.go)

fn validate_lists_object(
    pth: &FieldPath,
    s: &Node,
    obj: &Map<String, Value>,
    out: &mut Vec<FieldError>,
) {
    if !s.has_list_semantics {
        return;
    }
    if let Some(Additional::Schema(a)) = &s.additional {
        for (k, v) in obj {
            validate_lists(&pth.key(k), a, v, out);
        }
    }
    if !s.properties.is_empty() {
        for (k, v) in obj {
            if let Some(p) = s.property(k) {
                validate_lists(&pth.child(k), p, v, out);
            }
        }
    }
}

fn validate_lists(pth: &FieldPath, s: &Node, x: &Value, out: &mut Vec<FieldError>) {
    match x {
        Value::Array(a) => validate_lists_array(pth, s, a, out),
        Value::Object(m) => validate_lists_object(pth, s, m, out),
        _ => {}
    }
}

/// Identity of a list element for duplicate detection: scalars by Go
/// `==` on their decoded type, compounds by their JSON encoding.
#[derive(PartialEq, Eq, Hash)]
enum Ident {
    Null,
    Unspecified,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(String),
    Json(String),
}

fn ident(v: &Value) -> Ident {
    match v {
        Value::Null => Ident::Null,
        Value::Bool(b) => Ident::Bool(*b),
        Value::Number(n) => match GoNum::of(n) {
            GoNum::Int(i) => Ident::Int(i),
            GoNum::Float(f) => Ident::Float(if f == 0.0 { 0 } else { f.to_bits() }),
        },
        Value::String(s) => Ident::Str(s.clone()),
        other => Ident::Json(gofmt::marshal(other)),
    }
}

/// `validateListSet`: indices of the second occurrence of each duplicate.
fn non_unique(keys: Vec<Ident>) -> Vec<usize> {
    let mut seen: HashMap<Ident, usize> = HashMap::with_capacity(keys.len());
    let mut out = Vec::new();
    for (i, k) in keys.into_iter().enumerate() {
        let times = seen.entry(k).or_insert(0);
        *times += 1;
        if *times == 2 {
            out.push(i);
        }
    }
    out
}

fn validate_lists_array(pth: &FieldPath, s: &Node, a: &[Value], out: &mut Vec<FieldError>) {
    match s.list_type.as_deref() {
        Some("set") if a.len() > 1 => {
            for i in non_unique(a.iter().map(ident).collect()) {
                out.push(FieldError::duplicate(pth.index(i).string(), &a[i]));
            }
        }
        Some("map") => validate_list_map(pth, s, a, out),
        _ => {}
    }
    if let Some(items) = s.items.as_deref() {
        if items.has_list_semantics {
            for (i, v) in a.iter().enumerate() {
                validate_lists(&pth.index(i), items, v, out);
            }
        }
    }
}

fn validate_list_map(pth: &FieldPath, s: &Node, a: &[Value], out: &mut Vec<FieldError>) {
    for (i, x) in a.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            out.push(FieldError::invalid(
                pth.index(i).string(),
                x,
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if a.len() <= 1 {
        return;
    }
    if s.list_map_keys.len() == 1 {
        let kf = &s.list_map_keys[0];
        let keys: Vec<Option<&Value>> = a
            .iter()
            .map(|x| x.as_object().and_then(|m| m.get(kf)))
            .collect();
        let idents = keys
            .iter()
            .map(|k| k.map(ident).unwrap_or(Ident::Unspecified))
            .collect();
        for i in non_unique(idents) {
            let shown = match keys[i] {
                None => Value::Object(Map::new()),
                Some(k) => {
                    let mut m = Map::new();
                    m.insert(kf.clone(), k.clone());
                    Value::Object(m)
                }
            };
            out.push(FieldError::duplicate(pth.index(i).string(), &shown));
        }
        return;
    }
    let keys: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut key = Map::new();
            if let Some(m) = x.as_object() {
                for kf in &s.list_map_keys {
                    if let Some(k) = m.get(kf) {
                        key.insert(kf.clone(), k.clone());
                    }
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in non_unique(keys.iter().map(ident).collect()) {
        out.push(FieldError::duplicate(pth.index(i).string(), &keys[i]));
    }
}

// ---------------------------------------------------------------------------

/// Runs the OpenAPI part of the validation against `node` with kube's base
/// field path `base`.
pub(crate) fn openapi_errors(node: &Node, obj: &Value, base: Option<&str>) -> Vec<FieldError> {
    let cx = Cx { base };
    let res = validate_node(&cx, node, obj, &Seg::Root);
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    res.errs
        .into_iter()
        .filter(|e| seen.insert(e.msg.clone()))
        .map(|e| e.fe)
        .collect()
}

pub(crate) fn embedded_errors(
    node: &Node,
    obj: &Value,
    base: &FieldPath,
    is_resource_root: bool,
) -> Vec<FieldError> {
    let mut out = Vec::new();
    if is_resource_root && !node.embedded_resource {
        if let Value::Object(m) = obj {
            validate_embedded_resource(base, m, &mut out);
        }
    }
    validate_embedded(base, obj, Some(node), &mut out);
    out
}

impl CompiledSchema {
    /// Validates a custom resource (after pruning and defaulting) and
    /// returns kube's field errors; empty means valid.
    ///
    /// The root `metadata` is validated only against what the schema says
    /// about it; kube-apiserver validates it as `ObjectMeta` separately.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        self.on_stack(|| {
            let mut errs = openapi_errors(&self.root, obj, None);
            validate_embedded(&FieldPath::default(), obj, Some(&self.root), &mut errs);
            if let Value::Object(m) = obj {
                validate_lists_object(&FieldPath::default(), &self.root, m, &mut errs);
            }
            errs
        })
    }

    /// Validates `value` against this schema with every field path prefixed
    /// by `base`, like kube validates the status subresource
    /// (`ValidateCustomResourceUpdate(field.NewPath("status"), ...)` with the
    /// schema of `properties.status`; see [`CompiledSchema::property`]).
    /// Only the OpenAPI part runs, as in kube.
    pub fn validate_at(&self, value: &Value, base: &str) -> Vec<FieldError> {
        self.on_stack(|| {
            openapi_errors(
                &self.root,
                value,
                if base.is_empty() { None } else { Some(base) },
            )
        })
    }
}
