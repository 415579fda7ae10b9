//! Property tests: pruning and defaulting are idempotent, pruned and
//! defaulted objects have no unknown fields left, and nothing panics on
//! arbitrary JSON values against arbitrary small schemas.

use canopy_schema::{validate_crd_schema, CompiledSchema};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-100i64..100).prop_map(Value::from),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-c0-9:/.@-]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-e]{1,2}|apiVersion|kind|metadata", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn arb_leaf_schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "string"})),
        Just(
            json!({"type": "string", "default": "d", "maxLength": 3, "minLength": 1, "pattern": "^[a-c]*$"})
        ),
        Just(json!({"type": "string", "enum": ["a", "b"], "nullable": true})),
        Just(json!({"type": "string", "format": "date-time"})),
        Just(json!({"type": "string", "format": "ipv4", "default": "10.0.0.1"})),
        Just(json!({"type": "integer", "default": 1, "minimum": 0, "maximum": 10})),
        Just(json!({"type": "integer", "format": "int32", "multipleOf": 2})),
        Just(
            json!({"type": "number", "exclusiveMinimum": true, "minimum": 0, "multipleOf": 0.5, "nullable": true, "default": 1.5})
        ),
        Just(json!({"type": "boolean", "default": false})),
        Just(
            json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]})
        ),
        Just(json!({"x-kubernetes-preserve-unknown-fields": true})),
        Just(
            json!({"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true})
        ),
        Just(json!({"type": "object", "additionalProperties": {"type": "string", "default": "v"}})),
        Just(json!({"type": "object", "additionalProperties": false})),
        Just(json!({"type": "object", "additionalProperties": true})),
    ]
}

fn arb_schema() -> impl Strategy<Value = Value> {
    arb_leaf_schema().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                prop::collection::vec(("[a-e]{1,2}", inner.clone()), 0..5),
                any::<bool>(),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(props, default, preserve, required)| {
                    let mut m = Map::new();
                    m.insert("type".into(), json!("object"));
                    let props: Map<String, Value> = props.into_iter().collect();
                    if required {
                        if let Some(k) = props.keys().next() {
                            m.insert("required".into(), json!([k]));
                        }
                    }
                    m.insert("properties".into(), Value::Object(props));
                    if default {
                        m.insert("default".into(), json!({}));
                    }
                    if preserve {
                        m.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
                    }
                    Value::Object(m)
                }),
            (inner.clone(), 0..4u8, any::<bool>()).prop_map(|(items, lt, bounded)| {
                let mut s = json!({"type": "array", "items": items});
                match lt {
                    1 => s["x-kubernetes-list-type"] = json!("set"),
                    2 => s["x-kubernetes-list-type"] = json!("atomic"),
                    _ => {}
                }
                if bounded {
                    s["maxItems"] = json!(3);
                    s["minItems"] = json!(1);
                }
                s
            }),
            (inner.clone(), any::<bool>()).prop_map(|(v, bounded)| {
                let mut s = json!({"type": "object", "additionalProperties": v});
                if bounded {
                    s["maxProperties"] = json!(2);
                }
                s
            }),
            (inner.clone(), inner).prop_map(|(a, b)| json!({
                "type": "object",
                "properties": {"a": a, "b": b},
                "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
                "not": {"required": ["c"]}
            })),
        ]
    })
}

fn root_schema() -> impl Strategy<Value = Value> {
    prop::collection::vec(("[a-e]{1,2}", arb_schema()), 0..5).prop_map(
        |props| json!({"type": "object", "properties": Value::Object(props.into_iter().collect())}),
    )
}

fn root_object() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(("[a-e]{1,2}", arb_json()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(kv, typed)| {
            let mut m: Map<String, Value> = kv.into_iter().collect();
            if typed {
                m.insert("apiVersion".into(), json!("example.com/v1"));
                m.insert("kind".into(), json!("Thing"));
            }
            Value::Object(m)
        })
}

#[test]
fn additional_properties_false_is_validated_not_pruned() {
    let s = CompiledSchema::compile(&json!({"type": "object", "properties": {"closed": {"type": "object", "additionalProperties": false}}})).unwrap();
    let mut o = json!({"closed": {"k": {"x": 1}}});
    assert_eq!(s.prune(&mut o), vec!["closed.k.x"]);
    assert_eq!(o, json!({"closed": {"k": {}}}));
    assert_eq!(
        s.validate(&o)[0].to_string(),
        r#"closed: Invalid value: "k": closed.k in body is a forbidden property"#
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn pruning_is_idempotent(schema in root_schema(), obj in root_object()) {
        let s = CompiledSchema::compile(&schema).unwrap();
        let mut once = obj.clone();
        s.prune(&mut once);
        let mut twice = once.clone();
        let again = s.prune(&mut twice);
        prop_assert!(again.is_empty(), "second prune removed {:?}", again);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn pruned_paths_are_sorted_and_unique(schema in root_schema(), obj in root_object()) {
        let s = CompiledSchema::compile(&schema).unwrap();
        let mut o = obj;
        let paths = s.prune(&mut o);
        let mut sorted = paths.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(paths, sorted);
    }

    #[test]
    fn defaulting_is_idempotent(schema in root_schema(), obj in root_object()) {
        let s = CompiledSchema::compile(&schema).unwrap();
        let mut once = obj;
        s.default(&mut once);
        let mut twice = once.clone();
        s.default(&mut twice);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn no_unknown_fields_after_default_and_prune(schema in root_schema(), obj in root_object()) {
        // `additionalProperties: false` keeps the keys (kube prunes only
        // their content) and lets validation forbid them.
        prop_assume!(!schema.to_string().contains(r#""additionalProperties":false"#));
        let s = CompiledSchema::compile(&schema).unwrap();
        let mut o = obj;
        s.default(&mut o);
        s.prune(&mut o);
        s.prune_non_nullable_nulls(&mut o);
        let mut again = o.clone();
        prop_assert!(s.prune(&mut again).is_empty());
        for e in s.validate(&o) {
            prop_assert!(!e.body().contains("is a forbidden property"), "{}", e);
        }
        // defaulting a pruned object adds nothing that pruning would remove
        let mut d = o.clone();
        s.default(&mut d);
        prop_assert!(s.prune(&mut d).is_empty());
    }

    #[test]
    fn never_panics_on_arbitrary_values(schema in arb_schema(), value in arb_json()) {
        let _ = validate_crd_schema(&schema, "spec.versions[0].schema.openAPIV3Schema");
        let s = CompiledSchema::compile(&schema).unwrap();
        let mut v = value;
        for e in s.validate(&v) {
            prop_assert!(!e.to_string().is_empty());
        }
        s.default(&mut v);
        s.prune(&mut v);
        s.prune_non_nullable_nulls(&mut v);
        let _ = s.validate(&v);
        let _ = s.validate_at(&v, "status");
    }

    #[test]
    fn never_panics_on_arbitrary_schema_json(schema in arb_json(), value in arb_json()) {
        let _ = validate_crd_schema(&schema, "x");
        if let Ok(s) = CompiledSchema::compile(&schema) {
            let mut v = value;
            let _ = s.validate(&v);
            s.default(&mut v);
            s.prune(&mut v);
        }
    }

    #[test]
    fn valid_defaults_validate(schema in root_schema()) {
        // a schema kube accepts has defaults that validate on an empty object
        prop_assume!(validate_crd_schema(&schema, "x").is_empty());
        let s = CompiledSchema::compile(&schema).unwrap();
        let mut o = json!({});
        s.default(&mut o);
        let errs: Vec<String> = s.validate(&o).iter().map(|e| e.to_string()).collect();
        // only `required` fields without defaults and composition failures may remain
        for e in errs {
            prop_assert!(e.contains("Required value") || e.contains("must validate") || e.contains("must not validate"), "{}", e);
        }
    }
}
