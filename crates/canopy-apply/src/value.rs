//! JSON values as structured-merge-diff sees them.
//!
//! - a total order over values ([`compare`]): numbers < strings < booleans < lists < maps <
//!   null, integers and floats compared numerically, lists and maps lexicographically (maps
//!   as their key-sorted entries);
//! - equality ([`equals`]) where `1` and `1.0` are the same value;
//! - Go's `encoding/json` text of a value ([`go_json`]): map keys sorted, `<`, `>`, `&`,
//!   U+2028 and U+2029 escaped, floats as Go formats them; this is the text inside `k:` and
//!   `v:` path elements and of the `last-applied-configuration` annotation;
//! - Go's `%v` rendering used in field paths (`[name="nginx"]`), see [`display`].

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// Rank of a value's kind in structured-merge-diff's total order.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// An integer if the number is one that fits in an `i64`, else its float value.
enum Num {
    Int(i64),
    Float(f64),
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i)
    } else {
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

fn number_cmp(a: &Number, b: &Number) -> Ordering {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Int(x), Num::Float(y)) => float_cmp(x as f64, y),
        (Num::Float(x), Num::Int(y)) => float_cmp(x, y as f64),
        (Num::Float(x), Num::Float(y)) => float_cmp(x, y),
    }
}

/// structured-merge-diff's total order of values (`value.Compare`).
pub fn compare(a: &Value, b: &Value) -> Ordering {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let c = compare(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((kx, vx), (ky, vy)) in xs.iter().zip(ys.iter()) {
                let c = kx.cmp(ky).then_with(|| compare(vx, vy));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => Ordering::Equal,
    }
}

/// structured-merge-diff's value equality (`value.Equals`): numbers compare numerically.
pub fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equals(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equals(v, w)))
        }
        _ => a == b,
    }
}

pub use canopy_gofmt::marshal as go_json;
pub(crate) use canopy_gofmt::quote as go_quote;
pub(crate) use canopy_gofmt::write_json_string as write_go_string;

fn go_number(n: &Number) -> String {
    canopy_gofmt::json_number(n)
}

/// structured-merge-diff's `value.ToString`: how values appear in field paths
/// (`[name="nginx"]`, `[=5]`).
pub fn display(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(display).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            entries
                .into_iter()
                .map(|(k, x)| format!("{k}={}", display(x)))
                .collect::<Vec<_>>()
                .join("")
        }
    }
}

/// Is `v` a scalar (number, string or boolean)?
pub(crate) fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::Number(_) | Value::String(_) | Value::Bool(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_of_kinds() {
        let ordered = [
            json!(-1),
            json!(1.5),
            json!(2),
            json!("a"),
            json!("b"),
            json!(false),
            json!(true),
            json!([]),
            json!([1]),
            json!([1, 2]),
            json!({}),
            json!({"a": 1}),
            json!({"b": 0}),
            json!(null),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn numbers_compare_across_int_and_float() {
        assert!(equals(&json!(1), &json!(1.0)));
        assert_eq!(compare(&json!(1), &json!(1.0)), Ordering::Equal);
        assert!(!equals(&json!(1), &json!("1")));
        assert!(equals(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
    }

    #[test]
    fn go_json_is_sorted_and_html_safe() {
        assert_eq!(
            go_json(&json!({"b": 1, "a": "<&>", "c": [true, null, 1.5]})),
            r#"{"a":"\u003c\u0026\u003e","b":1,"c":[true,null,1.5]}"#
        );
        assert_eq!(go_number(&Number::from_f64(1e21).unwrap()), "1e+21");
        assert_eq!(go_number(&Number::from_f64(1e-7).unwrap()), "1e-7");
        assert_eq!(go_number(&Number::from_f64(100.0).unwrap()), "100");
        assert_eq!(go_number(&Number::from_f64(0.5).unwrap()), "0.5");
    }

    #[test]
    fn display_like_smd() {
        assert_eq!(display(&json!("nginx")), "\"nginx\"");
        assert_eq!(display(&json!(80)), "80");
        assert_eq!(display(&json!([1, "a"])), "[1,\"a\"]");
    }
}
