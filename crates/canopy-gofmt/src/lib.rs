//! Go-compatible rendering of values inside error messages (one place for every
//! crate that prints values as kube-apiserver does).
//!
//! kube-apiserver prints offending values with Go's `fmt` and
//! `encoding/json`, and clients show those strings verbatim. To print the
//! same bytes this module reimplements the few Go formatting rules that show
//! up in validation messages:
//!
//! * `%q` of a string ([`quote`]), which is `strconv.Quote`;
//! * `%v` of a `float64` ([`format_float_v`]), which switches to exponent
//!   notation from `1e+06` on;
//! * `json.Marshal` of an arbitrary JSON value ([`marshal`]), which sorts
//!   object keys, escapes `<`, `>` and `&`, and prints floats in Go's way.

use serde_json::Value;

/// How Go's unstructured JSON decoder (as used by kube-apiserver) would see a
/// JSON number: `int64` when it fits, `float64` otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GoNum {
    Int(i64),
    Float(f64),
}

impl GoNum {
    pub fn of(n: &serde_json::Number) -> GoNum {
        if let Some(i) = n.as_i64() {
            GoNum::Int(i)
        } else {
            GoNum::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            GoNum::Int(i) => i as f64,
            GoNum::Float(f) => f,
        }
    }

    /// `%v` rendering.
    pub fn format_v(self) -> String {
        match self {
            GoNum::Int(i) => i.to_string(),
            GoNum::Float(f) => format_float_v(f),
        }
    }
}

/// Go's `strconv.Quote`: a double-quoted Go string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint`: letters, marks, numbers,
/// punctuation, symbols and the ASCII space.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() {
        return false;
    }
    let u = c as u32;
    // Separators other than ASCII space, format characters, private use
    // areas and non-characters are not printable in Go.
    !(c.is_whitespace()
        || (0x200B..=0x200F).contains(&u)
        || (0x2028..=0x202E).contains(&u)
        || (0x2060..=0x206F).contains(&u)
        || u == 0xFEFF
        || (0xE000..=0xF8FF).contains(&u)
        || (0xFFF9..=0xFFFB).contains(&u)
        || u == 0xFFFE
        || u == 0xFFFF
        || u == 0xAD)
}

/// Splits a finite non-zero `f64` into its shortest decimal digits and the
/// decimal exponent `dp` such that `f = 0.d1d2d3... × 10^dp`.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` prints the shortest round-tripping representation.
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0').to_string();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    (digits, exp + 1)
}

fn format_e(neg: bool, digits: &str, dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let exp = dp - 1;
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
    out
}

fn format_f(neg: bool, digits: &str, dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(digits);
    } else if dp as usize >= digits.len() {
        out.push_str(digits);
        for _ in 0..(dp as usize - digits.len()) {
            out.push('0');
        }
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

/// Go's `fmt.Sprintf("%v", f)` for a `float64` (`strconv.FormatFloat(f,
/// 'g', -1, 64)`): `65535`, `1.5`, `1e+06`, `1e-05`.
pub fn format_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, dp) = shortest_digits(f);
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        format_e(f < 0.0, &digits, dp)
    } else {
        format_f(f < 0.0, &digits, dp)
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)` (used by go-openapi's range
/// checks): never an exponent.
pub fn format_float_f(f: f64) -> String {
    if !f.is_finite() {
        return format_float_v(f);
    }
    if f == 0.0 {
        return "0".into();
    }
    let (digits, dp) = shortest_digits(f);
    format_f(f < 0.0, &digits, dp)
}

/// Go's `encoding/json` rendering of a JSON number as Go's unstructured decoder holds
/// it (`int64` when it fits, else `float64`).
pub fn json_number(n: &serde_json::Number) -> String {
    match GoNum::of(n) {
        GoNum::Int(i) => i.to_string(),
        GoNum::Float(f) => json_float(f),
    }
}

/// Go's `encoding/json` rendering of a float64: the shortest representation, exponent
/// form below 1e-6 and from 1e21 on (`1e-7`, `1e+21`).
pub fn json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let a = f.abs();
    let (digits, dp) = shortest_digits(f);
    if !(1e-6..1e21).contains(&a) {
        let s = format_e(f < 0.0, &digits, dp);
        // Go cleans up e-09 to e-9 (but keeps e+21).
        if let Some(pos) = s.find("e-0") {
            let mut t = s[..pos + 2].to_string();
            t.push_str(&s[pos + 3..]);
            return t;
        }
        s
    } else {
        format_f(f < 0.0, &digits, dp)
    }
}

/// Appends `s` as Go's `encoding/json` writes a string (HTML-safe escapes).
pub fn write_json_string(out: &mut String, s: &str) {
    json_string(s, out)
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn marshal_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match GoNum::of(n) {
            GoNum::Int(i) => out.push_str(&i.to_string()),
            GoNum::Float(f) => out.push_str(&json_float(f)),
        },
        Value::String(s) => json_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                marshal_into(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                marshal_into(&m[k], out);
            }
            out.push('}');
        }
    }
}

/// Go's `json.Marshal` of an unstructured JSON value.
pub fn marshal(v: &Value) -> String {
    let mut out = String::new();
    marshal_into(v, &mut out);
    out
}

/// The way `field.Error.ErrorBody` (apimachinery 1.34+) renders a bad value:
/// numbers and booleans with `%v`, strings with `%q`, anything else as JSON.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => GoNum::of(n).format_v(),
        Value::String(s) => quote(s),
        other => marshal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_like_go() {
        assert_eq!(format_float_v(65535.0), "65535");
        assert_eq!(format_float_v(1.5), "1.5");
        assert_eq!(format_float_v(1e6), "1e+06");
        assert_eq!(format_float_v(123456.0), "123456");
        assert_eq!(format_float_v(1234567.0), "1.234567e+06");
        assert_eq!(format_float_v(0.0001), "0.0001");
        assert_eq!(format_float_v(0.00001), "1e-05");
        assert_eq!(format_float_v(-2.5), "-2.5");
        assert_eq!(format_float_f(3e9), "3000000000");
        assert_eq!(format_float_f(0.5), "0.5");
    }

    #[test]
    fn json_like_go() {
        assert_eq!(
            marshal(&json!({"b": 1, "a": "<x>"})),
            r#"{"a":"\u003cx\u003e","b":1}"#
        );
        assert_eq!(marshal(&json!(1.0)), "1");
        assert_eq!(marshal(&json!(1e21)), "1e+21");
        assert_eq!(marshal(&json!(1e-7)), "1e-7");
        assert_eq!(marshal(&json!([1.5, null, true])), "[1.5,null,true]");
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(quote("héllo"), "\"héllo\"");
        assert_eq!(quote("\u{1}"), r#""\x01""#);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|i| json!(i)),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| json!(f)),
                ".*".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(".*", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn same(a: &Value, b: &Value) -> bool {
            match (a, b) {
                // serde_json's float parsing is not always correctly rounded: compare
                // floats to within the last digits
                (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
                    (Some(p), Some(q)) => p == q || (p - q).abs() <= 1e-13 * p.abs().max(q.abs()),
                    _ => false,
                },
                (Value::Array(x), Value::Array(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
                }
                (Value::Object(x), Value::Object(y)) => {
                    x.len() == y.len()
                        && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
                }
                _ => a == b,
            }
        }

        proptest! {
            /// What `marshal` writes is JSON that reads back as the same value, with
            /// no raw `<`, `>` or `&` and keys in sorted order.
            #[test]
            fn marshal_round_trips(v in json_value()) {
                let text = marshal(&v);
                let back: Value = serde_json::from_str(&text).unwrap();
                prop_assert!(same(&v, &back), "{} -> {}", v, text);
                prop_assert!(!text.contains(['<', '>', '&']));
            }

            /// `quote` always gives one double-quoted literal with no raw control
            /// characters, and leaves plain printable ASCII as it is.
            #[test]
            fn quote_is_a_literal(s in ".*") {
                let q = quote(&s);
                prop_assert!(q.starts_with('"') && q.ends_with('"') && q.len() >= 2);
                prop_assert!(!q.chars().any(char::is_control));
                if s.chars().all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\') {
                    prop_assert_eq!(q, format!("\"{s}\""));
                }
            }
        }
    }
}
