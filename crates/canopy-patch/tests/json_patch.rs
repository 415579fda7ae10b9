//! JSON patch as kube-apiserver (evanphx/json-patch v4) applies it, and the limits
//! that keep any patch from crashing, stalling or ballooning the process.

use canopy_patch::{apply_json_patch, apply_json_patch_with, Limits, PatchError};
use serde_json::{json, Value};

fn ok(doc: Value, patch: Value) -> Value {
    apply_json_patch(&doc, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"))
}

fn fails(doc: Value, patch: Value) -> String {
    match apply_json_patch(&doc, &patch) {
        Err(PatchError::JsonPatch(m)) => m,
        other => panic!("{patch}: {other:?}"),
    }
}

/// Runs `f` on a thread with the default 2 MiB stack.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

#[test]
fn kube_rs_finalizer_patch() {
    // kube-rs' finalizer(): test that there are no finalizers, then add the first
    let patch = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]}
    ]);
    let doc = json!({"metadata": {"name": "x"}});
    assert_eq!(
        ok(doc, patch.clone())["metadata"]["finalizers"],
        json!(["example.com/cleanup"])
    );
    // an explicit null is the same as missing
    let doc = json!({"metadata": {"name": "x", "finalizers": null}});
    assert_eq!(
        ok(doc, patch.clone())["metadata"]["finalizers"],
        json!(["example.com/cleanup"])
    );
    // but not an existing list
    let doc = json!({"metadata": {"finalizers": ["a"]}});
    assert_eq!(
        fails(doc, patch),
        "testing value /metadata/finalizers failed: test failed"
    );
    // and then its removal: test the index, remove it
    let doc = json!({"metadata": {"finalizers": ["a", "example.com/cleanup"]}});
    let out = ok(
        doc,
        json!([
            {"op": "test", "path": "/metadata/finalizers/1", "value": "example.com/cleanup"},
            {"op": "remove", "path": "/metadata/finalizers/1"}
        ]),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a"]));
}

#[test]
fn evanphx_semantics() {
    let doc = json!({"a": [1, 2, 3], "o": {"k": "v"}});
    // negative indexes: from the end; for add, -1 appends
    assert_eq!(
        ok(doc.clone(), json!([{"op": "remove", "path": "/a/-1"}]))["a"],
        json!([1, 2])
    );
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "add", "path": "/a/-1", "value": 9}])
        )["a"],
        json!([1, 2, 3, 9])
    );
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "add", "path": "/a/-4", "value": 0}])
        )["a"],
        json!([0, 1, 2, 3])
    );
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "replace", "path": "/a/-3", "value": 0}])
        )["a"],
        json!([0, 2, 3])
    );
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "test", "path": "/a/-1", "value": 3}])
        ),
        doc
    );
    assert!(fails(
        doc.clone(),
        json!([{"op": "add", "path": "/a/-5", "value": 0}])
    )
    .contains("invalid index"));
    assert!(
        fails(doc.clone(), json!([{"op": "remove", "path": "/a/-4"}])).contains("invalid index")
    );
    // add at len appends, past it fails
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "add", "path": "/a/3", "value": 4}])
        )["a"],
        json!([1, 2, 3, 4])
    );
    assert!(fails(
        doc.clone(),
        json!([{"op": "add", "path": "/a/5", "value": 4}])
    )
    .contains("invalid index"));
    // Atoi: a plus sign and leading zeros
    assert_eq!(
        ok(doc.clone(), json!([{"op": "remove", "path": "/a/+01"}]))["a"],
        json!([1, 3])
    );
    // remove of a missing key fails
    assert_eq!(
        fails(doc.clone(), json!([{"op": "remove", "path": "/o/nope"}])),
        "error in remove for path: '/o/nope': Unable to remove nonexistent key: nope: missing value"
    );
    // replace of a missing object key adds it; of a missing index fails
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "replace", "path": "/o/new", "value": 1}])
        )["o"]["new"],
        1
    );
    assert!(fails(
        doc.clone(),
        json!([{"op": "replace", "path": "/a/3", "value": 1}])
    )
    .contains("missing key"));
    // replace of the whole document
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "replace", "path": "", "value": {"z": 1}}])
        ),
        json!({"z": 1})
    );
    // add to "" fails; test of "" compares the document
    assert!(
        fails(doc.clone(), json!([{"op": "add", "path": "", "value": {}}]))
            .contains("missing path")
    );
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "test", "path": "", "value": doc.clone()}])
        ),
        doc
    );
    // copy of a missing key copies null; add without a value adds null
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "copy", "from": "/nope", "path": "/c"}])
        )["c"],
        Value::Null
    );
    assert_eq!(
        ok(doc.clone(), json!([{"op": "add", "path": "/n"}]))["n"],
        Value::Null
    );
    // test of a missing key against a value fails; of a missing parent fails
    assert!(fails(
        doc.clone(),
        json!([{"op": "test", "path": "/nope", "value": 1}])
    )
    .contains("test failed"));
    assert!(fails(
        doc.clone(),
        json!([{"op": "test", "path": "/x/y", "value": null}])
    )
    .contains("missing path"));
    // ~1 and ~0
    let d = json!({"a/b": {"c~d": 1}});
    assert_eq!(
        ok(
            d.clone(),
            json!([{"op": "test", "path": "/a~1b/c~0d", "value": 1}])
        ),
        d
    );
    // move, including into an array
    assert_eq!(
        ok(
            doc.clone(),
            json!([{"op": "move", "from": "/o/k", "path": "/a/0"}])
        ),
        json!({"a": ["v", 1, 2, 3], "o": {}})
    );
    assert!(fails(
        doc.clone(),
        json!([{"op": "move", "from": "/o/nope", "path": "/p"}])
    )
    .contains("nonexistent"));
    // unknown operations
    assert_eq!(
        fails(doc.clone(), json!([{"op": "frob", "path": "/a"}])),
        "Unexpected kind: frob"
    );
    assert_eq!(
        fails(doc.clone(), json!([{"path": "/a"}])),
        "Unexpected kind: unknown"
    );
    // not a list of operations (kube: 400)
    assert_eq!(
        apply_json_patch(&doc, &json!({"op": "add"})),
        Err(PatchError::InvalidJsonPatch(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into()
        ))
    );
    assert_eq!(
        apply_json_patch(&doc, &json!([1])),
        Err(PatchError::InvalidJsonPatch(
            "json: cannot unmarshal number into Go value of type jsonpatch.Operation".into()
        ))
    );
}

#[test]
fn too_many_operations() {
    let ops: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/a", "value": 1}))
        .collect();
    let err = apply_json_patch(&json!({"a": 1}), &Value::Array(ops.clone())).unwrap_err();
    assert_eq!(
        err,
        PatchError::TooManyOperations {
            max: 10_000,
            got: 10_001
        }
    );
    assert_eq!(
        err.to_string(),
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
    assert!(apply_json_patch(&json!({"a": 1}), &Value::Array(ops[..10_000].to_vec())).is_ok());
}

/// `copy` operations each doubling `/a`.
fn doubling(n: usize) -> Value {
    let mut ops = vec![json!({"op": "add", "path": "/a", "value": {"x": "0123456789"}})];
    for _ in 0..n {
        ops.push(json!({"op": "copy", "from": "/a", "path": "/a/y"}));
        ops.push(json!({"op": "copy", "from": "/a", "path": "/a/z"}));
    }
    Value::Array(ops)
}

#[test]
fn doubling_copies_stop_at_the_copy_limit() {
    let err = on_small_stack(|| apply_json_patch(&json!({}), &doubling(500)).unwrap_err());
    match err {
        PatchError::CopySizeExceeded { limit, accumulated } => {
            assert_eq!(limit, 3 << 20);
            assert!(
                accumulated > limit && accumulated < 3 * limit,
                "{accumulated}"
            );
        }
        other => panic!("{other:?}"),
    }
    // without a copy limit, the result limit stops it before it is allocated
    let limits = Limits {
        max_copy_bytes: 0,
        ..Limits::with_max_result_bytes(1 << 20)
    };
    let err = on_small_stack(move || {
        apply_json_patch_with(&json!({}), &doubling(500), &limits).unwrap_err()
    });
    assert_eq!(err, PatchError::ResultTooLarge { limit: 1 << 20 });
}

#[test]
fn nesting_is_bounded() {
    // each copy nests /a inside itself: the nesting doubles
    let mut ops = vec![json!({"op": "add", "path": "/a", "value": {"b": {}}})];
    let mut path = "/a/b".to_string();
    for _ in 0..200 {
        ops.push(json!({"op": "copy", "from": "/a", "path": format!("{path}/c")}));
        path.push_str("/c/b");
    }
    let err = on_small_stack(move || apply_json_patch(&json!({}), &Value::Array(ops)).unwrap_err());
    assert_eq!(
        err,
        PatchError::TooDeep {
            limit: canopy_patch::MAX_NESTING
        }
    );
    // moving a value deeper than allowed
    let mut deep = json!({});
    for _ in 0..100 {
        deep = json!({ "d": deep });
    }
    let doc = json!({"a": deep, "b": {"c": {"e": {}}}});
    let patch = json!([{"op": "move", "from": "/a", "path": "/b/c/e/f"}]);
    // 100 + the root and 4 levels on the way: fits in 127 with room
    assert!(apply_json_patch(&doc, &patch).is_ok());
    let mut deeper = json!({});
    for _ in 0..125 {
        deeper = json!({ "d": deeper });
    }
    let doc = json!({"a": deeper, "b": {"c": {"e": {}}}});
    assert_eq!(
        apply_json_patch(&doc, &patch),
        Err(PatchError::TooDeep {
            limit: canopy_patch::MAX_NESTING
        })
    );
}

#[test]
fn array_shifting_work_is_bounded() {
    // 10,000 inserts at the front of a 200,000 element array: 2e9 element moves
    let doc = json!({"a": vec![0; 200_000]});
    let ops: Vec<Value> = (0..10_000)
        .map(|_| json!({"op": "add", "path": "/a/0", "value": 1}))
        .collect();
    assert_eq!(
        apply_json_patch(&doc, &Value::Array(ops)),
        Err(PatchError::TooComplex {
            limit: canopy_patch::MAX_WORK
        })
    );
    // appends cost nothing to shift
    let ops: Vec<Value> = (0..10_000)
        .map(|_| json!({"op": "add", "path": "/a/-", "value": 1}))
        .collect();
    assert_eq!(
        apply_json_patch(&doc, &Value::Array(ops)).unwrap()["a"]
            .as_array()
            .map(Vec::len),
        Some(210_000)
    );
}

#[test]
fn deep_documents_are_refused_before_recursion() {
    let err = on_small_stack(|| {
        let mut v = json!(1);
        for _ in 0..50_000 {
            v = Value::Array(vec![v]);
        }
        let doc = json!({"a": 1});
        let patch = json!([{"op": "add", "path": "/b", "value": 1}]);
        // the patch value is deep: measured without recursion, refused
        // (json! would serialize `v`, recursively)
        let mut op = serde_json::Map::new();
        op.insert("op".into(), json!("add"));
        op.insert("path".into(), json!("/b"));
        op.insert("value".into(), v);
        let deep_patch = Value::Array(vec![Value::Object(op)]);
        let r1 = apply_json_patch(&doc, &deep_patch);
        // take the deep value apart without recursion
        let mut cur = deep_patch;
        while let Some(next) = match &mut cur {
            Value::Array(a) => a.pop(),
            Value::Object(m) => m.remove("value"),
            _ => None,
        } {
            cur = next;
        }
        let r2 = apply_json_patch(&doc, &patch);
        (r1, r2)
    });
    assert_eq!(
        err.0,
        Err(PatchError::TooDeep {
            limit: canopy_patch::MAX_NESTING
        })
    );
    assert!(err.1.is_ok());
}

#[test]
fn sizes_are_tracked_exactly() {
    // the tracked size must match the result's; a limit equal to it passes
    let doc = json!({"a": [1, 2, {"b": "c"}], "d": {"e": null}});
    let patch = json!([
        {"op": "add", "path": "/a/1", "value": {"x": [true, false]}},
        {"op": "remove", "path": "/d/e"},
        {"op": "copy", "from": "/a", "path": "/d/f"},
        {"op": "move", "from": "/a/0", "path": "/g"},
        {"op": "replace", "path": "/a/0", "value": "long string"},
        {"op": "add", "path": "/d/f/-", "value": "é\"\n"}
    ]);
    let out = apply_json_patch(&doc, &patch).unwrap();
    let exact = serde_json::to_vec(&out).unwrap().len() as u64;
    assert!(apply_json_patch_with(&doc, &patch, &Limits::with_max_result_bytes(exact)).is_ok());
    assert_eq!(
        apply_json_patch_with(&doc, &patch, &Limits::with_max_result_bytes(exact - 1)),
        Err(PatchError::ResultTooLarge { limit: exact - 1 })
    );
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        "[a-c~/]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-c]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn op() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let path =
        proptest::collection::vec(prop_oneof!["[a-c]", "-?[0-3]", Just("-".to_string())], 0..4)
            .prop_map(|p| p.iter().map(|s| format!("/{s}")).collect::<String>());
    (
        prop_oneof![
            Just("add"),
            Just("remove"),
            Just("replace"),
            Just("move"),
            Just("copy"),
            Just("test")
        ],
        path.clone(),
        path,
        json_value(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        )
}

proptest::proptest! {
    #[test]
    fn never_panics_and_tracks_size(doc in json_value(), ops in proptest::collection::vec(op(), 0..8)) {
        let doc = json!({"r": doc});
        if let Ok(out) = apply_json_patch(&doc, &Value::Array(ops.clone())) {
            // sizes are tracked exactly: a document that ends larger than it started
            // crossed any smaller limit on the way
            let exact = serde_json::to_vec(&out).unwrap().len() as u64;
            let initial = serde_json::to_vec(&doc).unwrap().len() as u64;
            let r = apply_json_patch_with(&doc, &Value::Array(ops.clone()), &Limits::with_max_result_bytes(exact));
            let too_large = Err(PatchError::ResultTooLarge { limit: exact });
            proptest::prop_assert!(r.is_ok() || r == too_large, "{:?}", r);
            if exact > initial {
                let r = apply_json_patch_with(&doc, &Value::Array(ops), &Limits::with_max_result_bytes(exact - 1));
                proptest::prop_assert_eq!(r, Err(PatchError::ResultTooLarge { limit: exact - 1 }));
            }
        }
    }

    #[test]
    fn test_then_add_is_add_when_missing(key in "[a-z]{1,5}", value in json_value()) {
        let doc = json!({"m": {}});
        let path = format!("/m/{key}");
        let out = apply_json_patch(&doc, &json!([
            {"op": "test", "path": path, "value": null},
            {"op": "add", "path": path, "value": value},
        ])).unwrap();
        proptest::prop_assert_eq!(&out["m"][&key], &value);
    }
}
