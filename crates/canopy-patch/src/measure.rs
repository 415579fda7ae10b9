//! Sizes and nesting of JSON values, measured without recursion.

use serde_json::Value;

/// Bytes of `s` as a JSON string literal (quotes and escapes included), as
/// serde_json writes it.
pub fn string_size(s: &str) -> u64 {
    let mut n: u64 = 2;
    for c in s.chars() {
        n += match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8() as u64,
        };
    }
    n
}

fn scalar_size(v: &Value) -> u64 {
    match v {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => n.to_string().len() as u64,
        Value::String(s) => string_size(s),
        Value::Array(_) | Value::Object(_) => 0,
    }
}

/// What [`measure`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Measure {
    /// Length of the compact JSON serialization.
    pub bytes: u64,
    /// Containers nested in the value: 0 for a scalar, 1 for `[]` or `{}`, 2 for
    /// `{"a": []}` (serde_json parses at most 127).
    pub nesting: usize,
    /// Values visited (the work done).
    pub nodes: u64,
}

/// Measures `v` with an explicit stack.
pub fn measure(v: &Value) -> Measure {
    let mut m = Measure::default();
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, depth)) = stack.pop() {
        m.nodes += 1;
        match v {
            Value::Array(a) => {
                m.nesting = m.nesting.max(depth + 1);
                // brackets and commas
                m.bytes += 2 + a.len().saturating_sub(1) as u64;
                stack.extend(a.iter().map(|x| (x, depth + 1)));
            }
            Value::Object(o) => {
                m.nesting = m.nesting.max(depth + 1);
                // braces, commas, and per entry the key and its colon
                m.bytes += 2 + o.len().saturating_sub(1) as u64;
                for (k, x) in o {
                    m.bytes += string_size(k) + 1;
                    stack.push((x, depth + 1));
                }
            }
            other => m.bytes += scalar_size(other),
        }
    }
    m
}

/// Containers nested in `v` (0 for a scalar; see [`Measure::nesting`]), measured
/// without recursion: the one depth check every crate uses on untrusted JSON.
pub fn nesting(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(m) => {
                max = max.max(d + 1);
                stack.extend(m.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_match_serde_json() {
        for v in [
            json!(null),
            json!({}),
            json!([]),
            json!({"a": [1, 2.5, -3, "x\"\\\n\u{1}é"], "b": {"c": true, "d": false, "e": null}}),
            json!([[], {}, [[]], "€"]),
            json!(1e300),
        ] {
            assert_eq!(
                measure(&v).bytes,
                serde_json::to_vec(&v).unwrap().len() as u64,
                "{v}"
            );
        }
        assert_eq!(nesting(&json!(1)), 0);
        assert_eq!(nesting(&json!({"a": [{}]})), 3);
    }

    #[test]
    fn deep_values_do_not_overflow() {
        let mut v = json!(1);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(nesting(&v), 100_000);
        // take it apart without recursion, as the test's own drop would recurse
        let mut cur = v;
        while let Value::Array(mut a) = cur {
            cur = a.pop().unwrap_or(Value::Null);
        }
    }
}

#[cfg(test)]
mod serde_json_limit {
    /// serde_json parses at most `crate::MAX_NESTING` nested containers.
    #[test]
    fn max_nesting_is_what_serde_json_parses() {
        let n = crate::MAX_NESTING;
        let ok = format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<serde_json::Value>(&ok).is_ok());
        let too_deep = format!("{}{}", "[".repeat(n + 1), "]".repeat(n + 1));
        assert!(serde_json::from_str::<serde_json::Value>(&too_deep).is_err());
    }
}
