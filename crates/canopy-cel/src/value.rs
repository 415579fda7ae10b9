//! Conversion of JSON objects to CEL values, typed by their schema as kube's
//! `UnstructuredToVal` types them.
//!
//! * `integer` → `int`, `number` → `double` (JSON integers included);
//! * strings with `format: date-time` / `date` → `timestamp`,
//!   `format: duration` → `duration` (Go duration syntax), `format: byte` →
//!   `bytes`; a value that does not parse stays a string;
//! * `x-kubernetes-int-or-string` → `int` or `string`;
//! * objects with `properties` → maps keyed by the escaped property names
//!   (so `has(self.x)` tests presence); unknown fields are dropped unless
//!   `x-kubernetes-preserve-unknown-fields` is set;
//! * objects with `additionalProperties` → maps keyed by the raw keys;
//! * at a resource root (the custom resource, or an
//!   `x-kubernetes-embedded-resource`), `apiVersion`, `kind` and
//!   `metadata.name` / `metadata.generateName` only.

use crate::schema::{escape_property, Schema};
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelString, CelTimestamp, CelUInt,
};
use cel::common::value::Val;
use serde_json::Value;
use std::collections::HashMap;

/// Converts `v` to a CEL value typed by `schema`.
pub fn to_val(v: &Value, schema: Option<&Schema>, resource_root: bool) -> Box<dyn Val> {
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => {
            let is_number = schema.is_some_and(|s| s.ty == "number" && !s.int_or_string);
            if is_number {
                return Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0)));
            }
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0)))
            }
        }
        Value::String(s) => {
            if let Some(sc) = schema.filter(|s| s.ty == "string") {
                match sc.format.as_str() {
                    "date-time" => {
                        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                            return Box::new(CelTimestamp::from(t));
                        }
                    }
                    "date" => {
                        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                                let t = t.and_utc().fixed_offset();
                                return Box::new(CelTimestamp::from(t));
                            }
                        }
                    }
                    "duration" => {
                        if let Some(d) = parse_go_duration(s) {
                            return Box::new(CelDuration::from(d));
                        }
                    }
                    "byte" => {
                        if let Some(b) = decode_base64(s) {
                            return Box::new(CelBytes::from(b));
                        }
                    }
                    _ => {}
                }
            }
            Box::new(CelString::from(s.clone()))
        }
        Value::Array(a) => {
            let items = schema.and_then(|s| s.items.as_deref());
            let embedded = items.is_some_and(|s| s.embedded_resource);
            let v: Vec<Box<dyn Val>> = a.iter().map(|x| to_val(x, items, embedded)).collect();
            Box::new(CelList::from(v))
        }
        Value::Object(o) => {
            let mut m: HashMap<CelMapKey, Box<dyn Val>> = HashMap::with_capacity(o.len());
            match schema {
                Some(s) if s.additional_properties.is_some() => {
                    let ap = s.additional_properties.as_deref();
                    let embedded = ap.is_some_and(|s| s.embedded_resource);
                    for (k, x) in o {
                        m.insert(CelMapKey::from(k.clone()), to_val(x, ap, embedded));
                    }
                }
                Some(s)
                    if !s.properties.is_empty() || !s.preserve_unknown_fields || resource_root =>
                {
                    for (k, x) in o {
                        if resource_root && (k == "apiVersion" || k == "kind") {
                            if let Value::String(_) = x {
                                m.insert(CelMapKey::from(k.clone()), to_val(x, None, false));
                            }
                            continue;
                        }
                        if resource_root && k == "metadata" {
                            let mut meta: HashMap<CelMapKey, Box<dyn Val>> = HashMap::new();
                            if let Value::Object(mo) = x {
                                for f in ["name", "generateName"] {
                                    if let Some(Value::String(v)) = mo.get(f) {
                                        meta.insert(
                                            CelMapKey::from(f.to_string()),
                                            Box::new(CelString::from(v.clone())),
                                        );
                                    }
                                }
                            }
                            m.insert(CelMapKey::from(k.clone()), Box::new(CelMap::from(meta)));
                            continue;
                        }
                        let Some(esc) = escape_property(k) else {
                            continue;
                        };
                        if let Some(p) = s.property(k) {
                            m.insert(
                                CelMapKey::from(esc),
                                to_val(x, Some(p), p.embedded_resource),
                            );
                        } else if s.preserve_unknown_fields {
                            m.insert(CelMapKey::from(esc), to_val(x, None, false));
                        }
                    }
                }
                _ => {
                    // no schema, or preserve-unknown-fields without properties
                    for (k, x) in o {
                        m.insert(CelMapKey::from(k.clone()), to_val(x, None, false));
                    }
                }
            }
            Box::new(CelMap::from(m))
        }
    }
}

/// Parses a Go duration (`1h30m`, `1.5s`, `-300ms`, `0`).
pub fn parse_go_duration(s: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * nanos;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let d = chrono::Duration::nanoseconds(total.round() as i64);
    Some(if neg { -d } else { d })
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = T.iter().position(|&x| x == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::Value as CelValue;
    use serde_json::json;

    fn conv(v: serde_json::Value, s: serde_json::Value) -> CelValue {
        let s = Schema::from_json(&s);
        let b = to_val(&v, Some(&s), false);
        CelValue::try_from(b.as_ref()).unwrap()
    }

    #[test]
    fn numbers_follow_schema() {
        assert_eq!(
            conv(json!(3), json!({"type": "number"})),
            CelValue::Float(3.0)
        );
        assert_eq!(conv(json!(3), json!({"type": "integer"})), CelValue::Int(3));
        assert_eq!(
            conv(json!("50%"), json!({"x-kubernetes-int-or-string": true})),
            CelValue::String("50%".to_string().into())
        );
    }

    #[test]
    fn formats() {
        assert!(matches!(
            conv(
                json!("2020-01-01T00:00:00Z"),
                json!({"type": "string", "format": "date-time"})
            ),
            CelValue::Timestamp(_)
        ));
        assert!(matches!(
            conv(
                json!("2020-01-01"),
                json!({"type": "string", "format": "date"})
            ),
            CelValue::Timestamp(_)
        ));
        assert_eq!(
            conv(
                json!("1h30m"),
                json!({"type": "string", "format": "duration"})
            ),
            CelValue::Duration(chrono::Duration::minutes(90))
        );
        assert_eq!(
            conv(json!("aGk="), json!({"type": "string", "format": "byte"})),
            CelValue::Bytes(b"hi".to_vec().into())
        );
        assert!(matches!(
            conv(
                json!("nope"),
                json!({"type": "string", "format": "date-time"})
            ),
            CelValue::String(_)
        ));
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("1.5s"),
            Some(chrono::Duration::milliseconds(1500))
        );
        assert_eq!(
            parse_go_duration("-2m"),
            Some(chrono::Duration::minutes(-2))
        );
        assert_eq!(parse_go_duration("0"), Some(chrono::Duration::zero()));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("1x"), None);
    }

    #[test]
    fn objects_escape_and_prune() {
        let v = conv(
            json!({"a-b": 1, "unknown": 2}),
            json!({"type": "object", "properties": {"a-b": {"type": "integer"}}}),
        );
        let CelValue::Map(m) = v else { panic!() };
        assert_eq!(m.map.len(), 1);
        assert!(m
            .map
            .keys()
            .any(|k| format!("{k:?}").contains("a__dash__b")));
    }
}
