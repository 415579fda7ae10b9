//! Merge patch and strategic merge patch under limits, on 2 MiB stacks: deep inputs
//! are refused before anything recurses, large lists merge in linear time.

use canopy_patch::strategic::{self, builtin_schema};
use canopy_patch::{apply_merge_patch, PatchError};
use serde_json::{json, Value};

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// An object nested `n` deep, built and later taken apart without recursion.
fn deep(n: usize) -> Value {
    let mut v = json!({});
    for _ in 0..n {
        let mut m = serde_json::Map::new();
        m.insert("a".into(), v);
        v = Value::Object(m);
    }
    v
}

fn dismantle(mut v: Value) {
    while let Value::Object(mut m) = v {
        v = m.remove("a").unwrap_or(Value::Null);
    }
}

#[test]
fn deep_inputs_are_refused() {
    let (merge, smp, smp_orig) = on_small_stack(|| {
        let d = deep(100_000);
        let merge = apply_merge_patch(&json!({}), &d);
        let schema = builtin_schema("", "v1", "ConfigMap").unwrap();
        let smp = strategic::apply(&json!({}), &d, &schema);
        let smp_orig = strategic::apply(&d, &json!({"a": null}), &schema);
        dismantle(d);
        (merge, smp, smp_orig)
    });
    assert_eq!(
        merge,
        Err(PatchError::TooDeep {
            limit: canopy_patch::MAX_NESTING
        })
    );
    assert_eq!(
        smp,
        Err(PatchError::TooDeep {
            limit: canopy_patch::MAX_NESTING
        })
    );
    assert_eq!(
        smp_orig,
        Err(PatchError::TooDeep {
            limit: canopy_patch::MAX_NESTING
        })
    );
    // at the limit, both work
    let ok = on_small_stack(|| {
        let d = deep(126);
        let schema = builtin_schema("", "v1", "ConfigMap").unwrap();
        (
            apply_merge_patch(&d, &d).is_ok(),
            strategic::apply(&d, &d, &schema).is_ok(),
        )
    });
    assert_eq!(ok, (true, true));
}

#[test]
fn large_merged_lists_merge() {
    // finalizers merge as a set; ownerReferences by uid: hashed, not quadratic
    let n = 100_000;
    let fins: Vec<Value> = (0..n).map(|i| json!(format!("f{i}"))).collect();
    let refs: Vec<Value> = (0..n).map(|i| json!({"uid": format!("u{i}")})).collect();
    let orig = json!({"metadata": {"finalizers": fins, "ownerReferences": refs}});
    let patch_fins: Vec<Value> = (n / 2..n + n / 2).map(|i| json!(format!("f{i}"))).collect();
    let patch_refs: Vec<Value> = (0..n)
        .map(|i| json!({"uid": format!("u{i}"), "$patch": "delete"}))
        .collect();
    let order: Vec<Value> = (0..n).rev().map(|i| json!(format!("f{i}"))).collect();
    let patch = json!({"metadata": {
        "finalizers": patch_fins,
        "ownerReferences": patch_refs,
        "$setElementOrder/finalizers": order,
        "$deleteFromPrimitiveList/finalizers": ["f0"]
    }});
    let schema = builtin_schema("", "v1", "ConfigMap").unwrap();
    let limits = canopy_patch::Limits::with_max_result_bytes(64 << 20);
    let out = strategic::apply_with(&orig, &patch, &schema, &limits).unwrap();
    let f = out["metadata"]["finalizers"].as_array().unwrap();
    assert_eq!(f.len(), n + n / 2 - 1);
    assert_eq!(f[0], json!(format!("f{}", n - 1)));
    assert_eq!(out["metadata"]["ownerReferences"], json!([]));
}

#[test]
fn results_over_the_limit_are_refused() {
    let schema = builtin_schema("", "v1", "ConfigMap").unwrap();
    let big = json!({"data": {"x": "y".repeat(4 << 20)}});
    assert_eq!(
        strategic::apply(&json!({}), &big, &schema),
        Err(PatchError::ResultTooLarge { limit: 3 << 20 })
    );
}
