//! Server-side apply and managedFields of the deepest objects a request body can
//! hold (serde_json stops at 127 nested containers), on threads with
//! the default 2 MiB stack; deeper inputs are refused without recursing on them.

use canopy_apply::{apply, update, ApplyError, Schema, TypeDef};
use serde_json::{json, Value};

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// A ConfigMap-like object whose `data` nests `n` containers (alternating maps and
/// lists), built without recursion.
fn deep(n: usize, leaf: &str) -> Value {
    let mut v = json!(leaf);
    for i in 0..n {
        v = if i % 2 == 0 {
            Value::Array(vec![v])
        } else {
            let mut m = serde_json::Map::new();
            m.insert("k".into(), v);
            Value::Object(m)
        };
    }
    let mut obj = serde_json::Map::new();
    obj.insert("apiVersion".into(), json!("v1"));
    obj.insert("kind".into(), json!("Thing"));
    obj.insert("metadata".into(), json!({"name": "t"}));
    obj.insert("data".into(), v);
    Value::Object(obj)
}

fn dismantle(mut v: Value) {
    let mut stack = vec![];
    loop {
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, x)| x)),
            _ => {}
        }
        match stack.pop() {
            Some(x) => v = x,
            None => break,
        }
    }
}

#[test]
fn deep_objects_apply_on_a_small_stack() {
    let ok = on_small_stack(|| {
        let schema = Schema::new(&TypeDef::Deduced);
        let now = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let first = deep(250, "a");
        let stored = apply(None, &first, "m1", false, &schema, now).unwrap();
        let second = deep(250, "b");
        let applied = apply(Some(&stored), &second, "m2", true, &schema, now).unwrap();
        let updated = update(Some(&applied), &deep(250, "c"), "m3", None, &schema, now);
        let ok = updated["data"].is_object();
        for v in [first, stored, second, applied, updated] {
            dismantle(v);
        }
        ok
    });
    assert!(ok);
}

#[test]
fn deeper_inputs_are_refused() {
    let err = on_small_stack(|| {
        let schema = Schema::new(&TypeDef::Deduced);
        let now = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let d = deep(100_000, "a");
        let r = apply(None, &d, "m1", false, &schema, now).map(dismantle);
        dismantle(d);
        r
    });
    assert!(
        matches!(&err, Err(ApplyError::BadRequest(m)) if m.contains("nest")),
        "{err:?}"
    );
}
