//! The deepest schemas and objects a request can carry (serde_json stops parsing at
//! 127 nested containers) are checked, compiled, defaulted, pruned and validated on
//! threads with the default 2 MiB stack; anything deeper never parses.

use canopy_schema::{validate_crd_schema, CompiledSchema};
use serde_json::Value;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// JSON text nesting `levels` schemas through `properties` (two containers each).
fn nested_properties(levels: usize) -> String {
    let mut s = String::new();
    for _ in 0..levels {
        s.push_str(r#"{"type":"object","x-kubernetes-preserve-unknown-fields":true,"default":{},"properties":{"p":"#);
    }
    s.push_str(r#"{"type":"string","default":"d","maxLength":3}"#);
    for _ in 0..levels {
        s.push_str("}}");
    }
    s
}

/// Text of a schema nesting `levels` `items` (one container each).
fn nested_items(levels: usize) -> String {
    let mut s = String::new();
    for _ in 0..levels {
        s.push_str(r#"{"type":"array","items":"#);
    }
    s.push_str(r#"{"type":"integer","minimum":0}"#);
    s.push_str(&"}".repeat(levels));
    s
}

/// Text of a schema nesting `levels` `allOf` (four containers each).
fn nested_all_of(levels: usize) -> String {
    let mut s = String::new();
    for _ in 0..levels {
        s.push_str(r#"{"type":"object","allOf":[{"properties":{"p":"#);
    }
    s.push_str(r#"{"type":"integer"}"#);
    s.push_str(&"}}]}".repeat(levels));
    s
}

fn object_for_properties(levels: usize) -> String {
    format!(
        "{}\"toolong\"{}",
        "{\"p\":".repeat(levels),
        "}".repeat(levels)
    )
}

#[test]
fn deepest_parsable_schemas_and_objects() {
    let (errs, out) = on_small_stack(|| {
        // 63 levels of properties: 127 containers, what serde_json still parses
        let schema: Value = serde_json::from_str(&nested_properties(63)).expect("parses");
        let crd_errs = validate_crd_schema(&schema, "spec.validation.openAPIV3Schema");
        let compiled = CompiledSchema::compile(&schema).expect("compiles");
        let mut obj: Value = serde_json::from_str(&object_for_properties(63)).expect("parses");
        compiled.default(&mut obj);
        compiled.prune(&mut obj);
        let errs = compiled.validate(&obj);
        for text in [nested_items(126), nested_all_of(31)] {
            let s: Value = serde_json::from_str(&text).expect("parses");
            let _ = validate_crd_schema(&s, "spec.validation.openAPIV3Schema");
            if let Ok(c) = CompiledSchema::compile(&s) {
                // as deep as the schema allows (within serde_json's limit)
                let mut v: Value =
                    serde_json::from_str(&format!("{}-1{}", "[".repeat(120), "]".repeat(120)))
                        .expect("parses");
                c.default(&mut v);
                c.prune(&mut v);
                let _ = c.validate(&v);
            }
        }
        (
            (crd_errs.len(), errs.len()),
            obj.pointer(&"/p".repeat(62)).cloned(),
        )
    });
    assert_eq!(errs.0, 0, "the schema is valid");
    assert_eq!(errs.1, 1, "maxLength is checked at the bottom");
    assert!(out.is_some());
}

#[test]
fn deeper_text_never_parses() {
    for text in [
        nested_properties(10_000),
        nested_items(10_000),
        nested_all_of(10_000),
        object_for_properties(10_000),
    ] {
        let err = on_small_stack(move || {
            serde_json::from_str::<Value>(&text)
                .unwrap_err()
                .to_string()
        });
        assert!(err.starts_with("recursion limit exceeded"), "{err}");
    }
}
