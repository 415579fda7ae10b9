//! The JSONPath subset CRD printer columns and selectable fields use: `.a.b`, `.a[0]`,
//! `.a[*].b`, `.a[?(@.type=="Ready")].status`, with kube's `{…}` braces optional.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter { key: String, value: String },
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '.' => {
                i += 1;
                let start = i;
                while chars.get(i).is_some_and(|c| *c != '.' && *c != '[') {
                    i += 1;
                }
                let name: String = chars.get(start..i)?.iter().collect();
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = chars.get(i..)?.iter().position(|c| *c == ']')? + i;
                let inner: String = chars.get(i + 1..end)?.iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
                {
                    let (k, v) = f.split_once("==")?;
                    let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
                    steps.push(Step::Filter {
                        key: k.trim().to_string(),
                        value: v,
                    });
                } else {
                    let name = inner.trim_matches('\'').trim_matches('"');
                    steps.push(Step::Field(name.to_string()));
                }
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn walk<'a>(cur: Vec<&'a Value>, step: &Step) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for v in cur {
        match step {
            Step::Field(f) => out.extend(v.get(f.as_str())),
            Step::Index(n) => out.extend(v.get(*n)),
            Step::All => out.extend(v.as_array().into_iter().flatten()),
            Step::Filter { key, value } => {
                out.extend(v.as_array().into_iter().flatten().filter(|x| {
                    x.get(key.as_str()).is_some_and(|k| {
                        k.as_str()
                            .map(|s| s == value)
                            .unwrap_or_else(|| k.to_string().eq(value))
                    })
                }))
            }
        }
    }
    out
}

/// Evaluates `path` against `obj`: the single match, several matches joined as kube
/// prints them (comma-separated), or null.
pub fn eval(obj: &Value, path: &str) -> Value {
    let Some(steps) = parse(path) else {
        return Value::Null;
    };
    let mut cur = vec![obj];
    for s in &steps {
        cur = walk(cur, s);
    }
    match cur.as_slice() {
        [] => Value::Null,
        [one] => (*one).clone(),
        _ => Value::String(
            cur.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::eval;
    use serde_json::json;

    #[test]
    fn paths() {
        let o = json!({"spec": {"n": 3, "items": [{"a": "x"}, {"a": "y"}]}, "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]}});
        assert_eq!(eval(&o, ".spec.n"), json!(3));
        assert_eq!(eval(&o, "{.spec.n}"), json!(3));
        assert_eq!(eval(&o, ".spec.items[1].a"), json!("y"));
        assert_eq!(eval(&o, ".spec.items[*].a"), json!("x,y"));
        assert_eq!(
            eval(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            json!("True")
        );
        assert_eq!(eval(&o, ".spec.missing"), json!(null));
        assert_eq!(eval(&o, "garbage"), json!(null));
        assert_eq!(eval(&o, ".spec.items[9"), json!(null));
    }
}
