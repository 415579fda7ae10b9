//! Property test: validation never panics, whatever the object (and old
//! object) look like, and always respects its cost budget.

use canopy_cel::{CompiledRules, ValidateOptions};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z0-9%:./ -]{0,12}".prop_map(Value::String),
        Just(json!("2020-01-01T00:00:00Z")),
        Just(json!("1h30m")),
        Just(json!("500m")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("spec".to_string()),
                        Just("replicas".to_string()),
                        Just("name".to_string()),
                        Just("items".to_string()),
                        Just("labels".to_string()),
                        Just("ios".to_string()),
                        Just("when".to_string()),
                        Just("ttl".to_string()),
                        Just("ratio".to_string()),
                        Just("metadata".to_string()),
                        "[a-z]{1,4}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn schema() -> Value {
    json!({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "has(self.spec) || self.metadata.name != ''"},
            {"rule": "self == oldSelf", "messageExpression": "'changed ' + self.kind"}
        ],
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.replicas >= oldSelf.replicas", "message": "replicas may not decrease"},
                {"rule": "!has(self.name) || self.name.matches('^[a-z]+$')", "reason": "FieldValueForbidden"},
                {"rule": "self.items.all(i, i.name.size() < 10)", "fieldPath": ".items"},
                {"rule": "self.labels.exists(k, k.startsWith('a')) || size(self.labels) == 0",
                 "messageExpression": "'labels: ' + string(size(self.labels))"},
                {"rule": "type(self.ios) == int ? self.ios > 0 : self.ios.endsWith('%')"},
                {"rule": "self.when < timestamp('2100-01-01T00:00:00Z') && self.ttl > duration('0s')"},
                {"rule": "self.ratio * 2.0 < 10.0 && quantity(self.name).sign() >= 0"},
                {"rule": "!oldSelf.hasValue() || oldSelf.value().replicas <= self.replicas", "optionalOldSelf": true}
            ],
            "properties": {
                "replicas": {"type": "integer"},
                "name": {"type": "string", "maxLength": 20},
                "ios": {"x-kubernetes-int-or-string": true},
                "when": {"type": "string", "format": "date-time"},
                "ttl": {"type": "string", "format": "duration"},
                "ratio": {"type": "number"},
                "items": {
                    "type": "array", "maxItems": 50,
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "replicas": {"type": "integer"}},
                        "x-kubernetes-validations": [{"rule": "self.replicas >= oldSelf.replicas"}]}
                },
                "labels": {"type": "object", "maxProperties": 20, "additionalProperties": {"type": "string", "maxLength": 20,
                    "x-kubernetes-validations": [{"rule": "self.size() > 0 && self == oldSelf"}]}}
            }
        }}
    })
}

fn arb_rule() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "self.a",
        "self.b",
        "self.l",
        "self.m",
        "oldSelf.a",
        "1",
        "2.5",
        "'x'",
        "true",
        "null",
        "+",
        "-",
        "*",
        "/",
        "%",
        "==",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "!",
        "(",
        ")",
        "[",
        "]",
        ",",
        "?",
        ":",
        ".size()",
        ".all(x, x > 0)",
        ".exists(x, x == 'x')",
        ".map(x, x)",
        ".filter(x, true)",
        "has(self.a)",
        "size(self.l)",
        ".startsWith('a')",
        ".matches('^a')",
        "int(",
        "string(",
        "in",
        "self.l[0]",
        "self.m['k']",
        ".lowerAscii()",
        ".sum()",
        "cel.bind(v, self.a, v)",
        "self.?a.orValue(1)",
        "quantity('1')",
        ".isGreaterThan(quantity('2'))",
        "url('https://x')",
        ".getHost()",
    ]);
    prop::collection::vec(tokens, 1..10).prop_map(|t| t.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn validate_never_panics(obj in arb_json(), old in proptest::option::of(arb_json())) {
        let rules = CompiledRules::compile(&schema()).unwrap();
        let _ = rules.validate(&obj, old.as_ref());
        let wrapped = json!({"spec": obj.clone(), "metadata": {"name": "x"}});
        let old_wrapped = old.map(|o| json!({"spec": o}));
        let v = rules.validate_with(&wrapped, old_wrapped.as_ref(), &ValidateOptions { budget: 200, ..Default::default() });
        for e in &v.errors {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn random_rules_never_panic(rule in arb_rule(), obj in arb_json(), old in proptest::option::of(arb_json())) {
        let s = json!({"type": "object", "properties": {
                "a": {"type": "integer"}, "b": {"type": "string", "maxLength": 10},
                "l": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10}},
                "m": {"type": "object", "maxProperties": 5, "additionalProperties": {"type": "integer"}}},
            "x-kubernetes-validations": [{"rule": rule.clone(), "messageExpression": rule}]});
        if let Ok(r) = CompiledRules::compile(&s) {
            let _ = r.validate(&obj, old.as_ref());
            let _ = r.validate(&json!({"a": 1, "b": "x", "l": ["a"], "m": {"k": 1}}), Some(&json!({"a": 2})));
        }
    }

    #[test]
    fn compile_never_panics(schema in arb_json(), rule in "[a-z().<>=!&|' 0-9]{0,30}") {
        let _ = CompiledRules::compile(&schema);
        let s = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": rule}]});
        if let Ok(r) = CompiledRules::compile(&s) {
            let _ = r.validate(&json!({"a": 1, "b": "x"}), None);
        }
    }
}
