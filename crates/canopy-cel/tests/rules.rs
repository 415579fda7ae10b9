//! Behaviour of compiled rules, checked against kube-apiserver's wording.

use canopy_cel::{CompiledRules, ErrorType, FieldPath, ValidateOptions};
use serde_json::{json, Value};

/// A CR schema whose `spec` has `props` and `rules`.
fn spec_schema(props: Value, rules: Value) -> Value {
    json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": props, "x-kubernetes-validations": rules}}
    })
}

fn compile(schema: &Value) -> CompiledRules {
    CompiledRules::compile(schema).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn compile_err(schema: &Value) -> Vec<String> {
    match CompiledRules::compile(schema) {
        Ok(_) => panic!("compiled"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

fn errs(rules: &CompiledRules, obj: Value, old: Option<Value>) -> Vec<String> {
    rules
        .validate(&obj, old.as_ref())
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn replicas_schema() -> Value {
    spec_schema(
        json!({"replicas": {"type": "integer"}}),
        json!([{"rule": "self.replicas >= oldSelf.replicas", "message": "replicas may not decrease"}]),
    )
}

#[test]
fn transition_rule() {
    let r = compile(&replicas_schema());
    assert!(r.has_transition_rules());
    assert_eq!(
        errs(
            &r,
            json!({"spec": {"replicas": 2}}),
            Some(json!({"spec": {"replicas": 3}}))
        ),
        vec!["spec: Invalid value: \"object\": replicas may not decrease"]
    );
    assert!(errs(
        &r,
        json!({"spec": {"replicas": 4}}),
        Some(json!({"spec": {"replicas": 3}}))
    )
    .is_empty());
    // no old value: transition rules are skipped
    assert!(errs(&r, json!({"spec": {"replicas": 1}}), None).is_empty());
    // old object without spec: nothing to correlate
    assert!(errs(&r, json!({"spec": {"replicas": 1}}), Some(json!({}))).is_empty());
}

#[test]
fn default_message_and_root_path() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "integer"}}}},
        "x-kubernetes-validations": [{"rule": "self.spec.a < 10"}]
    });
    let r = compile(&schema);
    assert_eq!(
        errs(&r, json!({"spec": {"a": 11}}), None),
        vec!["<nil>: Invalid value: \"object\": failed rule: self.spec.a < 10"]
    );
}

#[test]
fn message_expression() {
    let s = spec_schema(
        json!({"replicas": {"type": "integer"}}),
        json!([{"rule": "self.replicas < 5", "message": "too many",
                "messageExpression": "'replicas ' + string(self.replicas) + ' exceeds 4'"}]),
    );
    let r = compile(&s);
    assert_eq!(
        errs(&r, json!({"spec": {"replicas": 7}}), None),
        vec!["spec: Invalid value: \"object\": replicas 7 exceeds 4"]
    );
    // a failing messageExpression falls back to the message
    let s = spec_schema(
        json!({"replicas": {"type": "integer"}, "name": {"type": "string"}}),
        json!([{"rule": "self.replicas < 5", "message": "too many", "messageExpression": "self.name"}]),
    );
    let r = compile(&s);
    assert_eq!(
        errs(&r, json!({"spec": {"replicas": 7}}), None),
        vec!["spec: Invalid value: \"object\": too many"]
    );
    // an empty message expression result falls back to the default message
    let s = spec_schema(
        json!({"replicas": {"type": "integer"}}),
        json!([{"rule": "self.replicas < 5", "messageExpression": "'  '"}]),
    );
    assert_eq!(
        errs(&compile(&s), json!({"spec": {"replicas": 7}}), None),
        vec!["spec: Invalid value: \"object\": failed rule: self.replicas < 5"]
    );
}

#[test]
fn reasons() {
    let mk = |reason: &str| {
        compile(&spec_schema(
            json!({"a": {"type": "integer"}}),
            json!([{"rule": "self.a == 1", "message": "must be one", "reason": reason}]),
        ))
    };
    let obj = json!({"spec": {"a": 2}});
    assert_eq!(
        errs(&mk("FieldValueForbidden"), obj.clone(), None),
        vec!["spec: Forbidden: must be one"]
    );
    assert_eq!(
        errs(&mk("FieldValueRequired"), obj.clone(), None),
        vec!["spec: Required value: must be one"]
    );
    assert_eq!(
        errs(&mk("FieldValueDuplicate"), obj.clone(), None),
        vec!["spec: Duplicate value: \"object\""]
    );
    assert_eq!(
        errs(&mk("FieldValueInvalid"), obj.clone(), None),
        vec!["spec: Invalid value: \"object\": must be one"]
    );
    let e = mk("FieldValueForbidden").validate(&obj, None);
    assert_eq!(e[0].error_type, ErrorType::Forbidden);
    assert_eq!(
        compile_err(&spec_schema(json!({}), json!([{"rule": "true", "reason": "Nope"}]))),
        vec!["spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].reason: Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""]
    );
}

#[test]
fn field_path() {
    let s = spec_schema(
        json!({"replicas": {"type": "integer"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}),
        json!([
            {"rule": "self.replicas >= 0", "message": "negative", "fieldPath": ".replicas"},
            {"rule": "!('bad' in self.labels)", "message": "bad label", "fieldPath": ".labels['bad']"}
        ]),
    );
    let r = compile(&s);
    assert_eq!(
        errs(
            &r,
            json!({"spec": {"replicas": -1, "labels": {"bad": "x"}}}),
            None
        ),
        vec![
            "spec.replicas: Invalid value: \"object\": negative",
            "spec.labels[bad]: Invalid value: \"object\": bad label"
        ]
    );
    assert_eq!(
        compile_err(&spec_schema(json!({"a": {"type": "integer"}}), json!([{"rule": "true", "fieldPath": ".b"}]))),
        vec!["spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].fieldPath: Invalid value: \".b\": fieldPath must be a valid path"]
    );
}

fn list_map_schema() -> Value {
    spec_schema(
        json!({"ports": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.port >= oldSelf.port", "message": "port may not decrease"}]
            }
        }}),
        json!([]),
    )
}

#[test]
fn list_map_correlation() {
    let r = compile(&list_map_schema());
    let old = json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 90}]}});
    // reordered, b decreased, c new
    let new = json!({"spec": {"ports": [{"name": "b", "port": 85}, {"name": "a", "port": 80}, {"name": "c", "port": 1}]}});
    assert_eq!(
        errs(&r, new, Some(old)),
        vec!["spec.ports[0]: Invalid value: \"object\": port may not decrease"]
    );
}

#[test]
fn atomic_lists_are_not_correlated() {
    let s = spec_schema(
        json!({"items": {"type": "array", "items": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self >= oldSelf"}]}}}),
        json!([]),
    );
    assert_eq!(
        compile_err(&s),
        vec!["spec.validation.openAPIV3Schema.properties[spec].properties[items].items.x-kubernetes-validations[0].rule: Invalid value: \"self >= oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within spec.validation.openAPIV3Schema.properties[spec].properties[items]"]
    );
}

#[test]
fn maps_correlate_by_key() {
    let s = spec_schema(
        json!({"limits": {"type": "object", "additionalProperties": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "may not decrease"}]}}}),
        json!([]),
    );
    let r = compile(&s);
    assert_eq!(
        errs(
            &r,
            json!({"spec": {"limits": {"cpu": 1, "mem": 5, "new": 0}}}),
            Some(json!({"spec": {"limits": {"cpu": 2, "mem": 5}}}))
        ),
        vec!["spec.limits[cpu]: Invalid value: \"integer\": may not decrease"]
    );
}

#[test]
fn item_and_key_paths() {
    let s = spec_schema(
        json!({
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.name.size() > 1", "message": "short"}]}},
            "labels": {"type": "object", "additionalProperties": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self != ''", "message": "empty"}]}}
        }),
        json!([]),
    );
    let r = compile(&s);
    assert_eq!(
        errs(
            &r,
            json!({"spec": {"items": [{"name": "ok"}, {"name": "x"}], "labels": {"foo": ""}}}),
            None
        ),
        vec![
            "spec.items[1]: Invalid value: \"object\": short",
            "spec.labels[foo]: Invalid value: \"string\": empty"
        ]
    );
}

#[test]
fn compile_errors_are_reported_like_kube() {
    let e = compile_err(&spec_schema(
        json!({"a": {"type": "integer"}}),
        json!([{"rule": "self.a =="}]),
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.a ==\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:10: Syntax error:"),
        "{}",
        e[0]
    );
    let e = compile_err(&spec_schema(
        json!({"a": {"type": "integer"}}),
        json!([{"rule": "self.b == 1"}]),
    ));
    assert!(
        e[0].ends_with(
            "compilation failed: ERROR: <input>:1:5: undefined field 'b'\n | self.b == 1\n | ....^"
        ),
        "{}",
        e[0]
    );
    let e = compile_err(&spec_schema(
        json!({"a": {"type": "integer"}}),
        json!([{"rule": "self.a + 1"}]),
    ));
    assert!(
        e[0].ends_with(": cel expression must evaluate to a bool"),
        "{}",
        e[0]
    );
    let e = compile_err(&spec_schema(
        json!({"a": {"type": "integer"}}),
        json!([{"rule": "self.a == 'x'"}]),
    ));
    assert!(
        e[0].contains("found no matching overload for '_==_' applied to '(int, string)'"),
        "{}",
        e[0]
    );
    let e = compile_err(&spec_schema(
        json!({"a": {"type": "integer"}}),
        json!([{"rule": "foo(self.a)"}]),
    ));
    assert!(
        e[0].contains("undeclared reference to 'foo' (in container '')"),
        "{}",
        e[0]
    );
    let e = compile_err(&spec_schema(json!({}), json!([{"rule": " "}])));
    assert_eq!(
        e,
        vec!["spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Required value: rule is not specified"]
    );
    let e = compile_err(&spec_schema(
        json!({}),
        json!([{"rule": "true", "message": " "}]),
    ));
    assert!(
        e[0].ends_with("message: Invalid value: \" \": message must be non-empty if specified"),
        "{}",
        e[0]
    );
    let e = compile_err(&spec_schema(json!({}), json!([{"rule": "true &&\ntrue"}])));
    assert!(e[0].ends_with(
        "message: Required value: message must be specified if rule contains line breaks"
    ));
    let e = compile_err(&spec_schema(
        json!({"a": {"type": "integer"}}),
        json!([{"rule": "true", "messageExpression": "self.a"}]),
    ));
    assert!(e[0].ends_with("messageExpression: Invalid value: apiextensions.ValidationRule{Rule:\"true\", Message:\"\", MessageExpression:\"self.a\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: messageExpression must evaluate to a string"), "{}", e[0]);
    let e = compile_err(&spec_schema(
        json!({}),
        json!([{"rule": "true", "optionalOldSelf": true}]),
    ));
    assert!(
        e[0].ends_with(
            "optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"
        ),
        "{}",
        e[0]
    );
    // errors are collected over the whole schema, with the CRD version path given
    let s = json!({"type": "object", "properties": {
        "a": {"type": "integer", "x-kubernetes-validations": [{"rule": "self.x"}]},
        "b": {"type": "string", "x-kubernetes-validations": [{"rule": "self > 1"}]}
    }});
    let e = CompiledRules::compile_at(
        &s,
        &FieldPath::new("spec.versions[0].schema.openAPIV3Schema"),
    )
    .unwrap_err();
    assert_eq!(e.len(), 2);
    assert!(e[0].to_string().starts_with("spec.versions[0].schema.openAPIV3Schema.properties[a].x-kubernetes-validations[0].rule: Invalid value"));
    assert!(
        e[1].to_string()
            .contains("found no matching overload for '_>_' applied to '(string, int)'"),
        "{}",
        e[1]
    );
}

#[test]
fn estimated_cost_refusal() {
    let rules = json!([{"rule": "self.l.all(x, self.l.exists(y, x == y))"}]);
    let unbounded = spec_schema(
        json!({"l": {"type": "array", "items": {"type": "string"}}}),
        rules.clone(),
    );
    let e = compile_err(&unbounded);
    assert!(e.contains(&"spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)".to_string()), "{e:?}");
    assert!(e.iter().any(|x| x.starts_with("spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of")), "{e:?}");
    let bounded = spec_schema(
        json!({"l": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10}}}),
        rules,
    );
    let r = compile(&bounded);
    assert!(r.estimated_cost() < 10_000);
    // a rule on the items of an unbounded list of unbounded strings is refused,
    // the same rule under maxItems/maxLength is accepted
    let per_item = |bound: bool| {
        let mut items =
            json!({"type": "string", "x-kubernetes-validations": [{"rule": "self.contains('x')"}]});
        let mut l = json!({"type": "array"});
        if bound {
            items["maxLength"] = json!(64);
            l["maxItems"] = json!(100);
        }
        l["items"] = items;
        spec_schema(json!({"l": l}), json!([]))
    };
    assert!(CompiledRules::compile(&per_item(false)).is_err());
    assert!(CompiledRules::compile(&per_item(true)).is_ok());
}

#[test]
fn runtime_cost_limits() {
    // statically fine (bounded), but quadratic in the actual number of items
    let s = spec_schema(
        json!({"l": {"type": "array", "maxItems": 1000, "items": {"type": "integer"}}}),
        json!([{"rule": "self.l.all(x, self.l.all(y, x + y >= 0))"}]),
    );
    let r = compile(&s);
    let big: Vec<i64> = (0..1000).collect();
    let e = errs(&r, json!({"spec": {"l": big}}), None);
    assert_eq!(
        e,
        vec!["spec: Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.l.all(x, self.l.all(y, x + y >= 0))"]
    );
    let small: Vec<i64> = (0..20).collect();
    assert!(errs(&r, json!({"spec": {"l": small}}), None).is_empty());

    // the whole-object budget: many cheap rule evaluations
    let s = spec_schema(
        json!({"items": {"type": "array", "maxItems": 100, "items": {"type": "object",
            "properties": {"v": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.v >= 0"}]}}}),
        json!([]),
    );
    let r = compile(&s);
    let obj = json!({"spec": {"items": (0..100).map(|i| json!({"v": i})).collect::<Vec<_>>()}});
    assert!(r.validate(&obj, None).is_empty());
    let opts = ValidateOptions {
        budget: 50,
        ..Default::default()
    };
    let v = r.validate_with(&obj, None, &opts);
    assert!(v.remaining_budget < 0);
    let last = v.errors.last().unwrap().to_string();
    assert!(
        last.ends_with(": Invalid value: \"object\": validation failed due to running out of cost budget, no further validation rules will be run"),
        "{last}"
    );
    assert_eq!(v.errors.len(), 1);
}

#[test]
fn evaluation_errors_use_kube_wording() {
    let s = spec_schema(
        json!({"a": {"type": "integer"}, "b": {"type": "integer"}, "ios": {"x-kubernetes-int-or-string": true}}),
        json!([
            {"rule": "self.b > 0"},
            {"rule": "self.ios > 5", "message": "ios too small"},
            {"rule": "self.a / 0 == 1"}
        ]),
    );
    let r = compile(&s);
    assert_eq!(
        errs(&r, json!({"spec": {"a": 1, "ios": "x"}}), None),
        vec![
            "spec: Invalid value: \"object\": no such key: b evaluating rule: self.b > 0",
            "spec: Invalid value: \"object\": 'no such overload': call arguments did not match a supported operator, function or macro signature for rule: ios too small",
            "spec: Invalid value: \"object\": division by zero evaluating rule: self.a / 0 == 1"
        ]
    );
}

#[test]
fn type_mapping() {
    let s = spec_schema(
        json!({
            "n": {"type": "number"},
            "i": {"type": "integer"},
            "t": {"type": "string", "format": "date-time"},
            "d": {"type": "string", "format": "duration"},
            "ios": {"x-kubernetes-int-or-string": true},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "raw": {"x-kubernetes-preserve-unknown-fields": true},
            "x-y": {"type": "string"}
        }),
        json!([
            {"rule": "type(self.n) == double && self.n == 3.0", "message": "n"},
            {"rule": "type(self.i) == int", "message": "i"},
            {"rule": "self.t < timestamp('2030-01-01T00:00:00Z')", "message": "t"},
            {"rule": "self.d > duration('1m')", "message": "d"},
            {"rule": "type(self.ios) == string ? self.ios.endsWith('%') : self.ios < 10", "message": "ios"},
            {"rule": "self.free.anything == 1", "message": "free"},
            {"rule": "self.raw.deep.x == 'y'", "message": "raw"},
            {"rule": "self.x__dash__y == 'z'", "message": "escaped"},
            {"rule": "has(self.i) && !has(self.missing_is_fine_in_has)", "message": "has"}
        ]),
    );
    // `missing_is_fine_in_has` is not declared: kube refuses it
    let e = compile_err(&s);
    assert!(
        e[0].contains("undefined field 'missing_is_fine_in_has'"),
        "{e:?}"
    );
    let s = spec_schema(
        s["properties"]["spec"]["properties"].clone(),
        json!([
            {"rule": "type(self.n) == double && self.n == 3.0", "message": "n"},
            {"rule": "type(self.i) == int", "message": "i"},
            {"rule": "self.t < timestamp('2030-01-01T00:00:00Z')", "message": "t"},
            {"rule": "self.d > duration('1m')", "message": "d"},
            {"rule": "type(self.ios) == string ? self.ios.endsWith('%') : self.ios < 10", "message": "ios"},
            {"rule": "self.free.anything == 1", "message": "free"},
            {"rule": "self.raw.deep.x == 'y'", "message": "raw"},
            {"rule": "self.x__dash__y == 'z'", "message": "escaped"},
            {"rule": "has(self.i) && !has(self.n)", "message": "has"}
        ]),
    );
    let r = compile(&s);
    let good = json!({"spec": {"n": 3, "i": 1, "t": "2020-01-01T00:00:00Z", "d": "1h", "ios": "50%",
        "free": {"anything": 1}, "raw": {"deep": {"x": "y"}}, "x-y": "z"}});
    assert_eq!(
        errs(&r, good, None),
        vec!["spec: Invalid value: \"object\": has"]
    );
    let other = json!({"spec": {"n": 3.0, "i": 1, "t": "2040-01-01T00:00:00Z", "d": "30s", "ios": 50,
        "free": {"anything": 1}, "raw": {"deep": {"x": "y"}}, "x-y": "z"}});
    assert_eq!(
        errs(&r, other, None),
        vec![
            "spec: Invalid value: \"object\": t",
            "spec: Invalid value: \"object\": d",
            "spec: Invalid value: \"object\": ios",
            "spec: Invalid value: \"object\": has"
        ]
    );
}

#[test]
fn resource_roots_see_type_and_object_meta() {
    let s = json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "x-kubernetes-preserve-unknown-fields": true,
                    "x-kubernetes-validations": [{"rule": "self.kind == 'Pod' && self.metadata.name.startsWith('p')", "message": "pod"}]}
            }}
        },
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.size() <= 5", "message": "name too long"},
            {"rule": "self.apiVersion == 'x.io/v1' && self.kind == 'Thing'", "message": "type"}
        ]
    });
    let r = compile(&s);
    let obj = json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "toolong", "labels": {"a": "b"}},
        "spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"}}}});
    assert_eq!(
        errs(&r, obj, None),
        vec![
            "<nil>: Invalid value: \"object\": name too long",
            "spec.template: Invalid value: \"object\": pod"
        ]
    );
    let bad = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.metadata.labels.size() > 0"}]});
    assert!(compile_err(&bad)[0].contains("undefined field 'labels'"));
}

#[test]
fn ratcheting_unchanged_values() {
    let s = spec_schema(
        json!({"a": {"type": "integer"}, "b": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self < 10", "message": "b too big"}]}}),
        json!([{"rule": "self.a < 10", "message": "a too big"}]),
    );
    let r = compile(&s);
    let old = json!({"spec": {"a": 50, "b": 50}});
    // unchanged: both errors ratcheted into warnings
    let v = r.validate_with(&old, Some(&old), &ValidateOptions::default());
    assert!(v.errors.is_empty());
    assert_eq!(v.warnings.len(), 2);
    // spec changed (a), b unchanged: only the spec rule fails
    let new = json!({"spec": {"a": 51, "b": 50}});
    assert_eq!(
        errs(&r, new.clone(), Some(old.clone())),
        vec!["spec: Invalid value: \"object\": a too big"]
    );
    // without ratcheting both fail
    let opts = ValidateOptions {
        ratcheting: false,
        ..Default::default()
    };
    assert_eq!(r.validate_with(&new, Some(&old), &opts).errors.len(), 2);
}

#[test]
fn optional_old_self() {
    let s = spec_schema(
        json!({"v": {"type": "integer"}}),
        json!([{"rule": "!oldSelf.hasValue() || self.v >= oldSelf.value().v", "message": "v may not decrease",
                "optionalOldSelf": true},
               {"rule": "oldSelf.orValue(self).v < 100", "message": "created too big", "optionalOldSelf": true}]),
    );
    let r = compile(&s);
    assert_eq!(
        errs(&r, json!({"spec": {"v": 100}}), None),
        vec!["spec: Invalid value: \"object\": created too big"]
    );
    assert_eq!(
        errs(
            &r,
            json!({"spec": {"v": 1}}),
            Some(json!({"spec": {"v": 2}}))
        ),
        vec!["spec: Invalid value: \"object\": v may not decrease"]
    );
}

#[test]
fn library_functions_in_rules() {
    let s = spec_schema(
        json!({
            "name": {"type": "string", "maxLength": 63},
            "tags": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 20}},
            "nums": {"type": "array", "maxItems": 10, "items": {"type": "integer"}},
            "endpoint": {"type": "string", "maxLength": 200},
            "memory": {"type": "string", "maxLength": 20}
        }),
        json!([
            {"rule": "self.name.matches('^[a-z]+$') && self.name.lowerAscii() == self.name", "message": "name"},
            {"rule": "self.tags.all(t, t.startsWith('x-')) && self.tags.exists_one(t, t.endsWith('!'))", "message": "tags"},
            {"rule": "self.tags.map(t, t.size()).sum() < 30 && self.tags.filter(t, t.contains('a')).size() == 1", "message": "tag sizes"},
            {"rule": "self.nums.isSorted() && self.nums.min() >= 0 && self.nums.max() < 10 && self.nums.indexOf(3) == 1", "message": "nums"},
            {"rule": "isURL(self.endpoint) && url(self.endpoint).getScheme() == 'https'", "message": "endpoint"},
            {"rule": "quantity(self.memory).isLessThan(quantity('1Gi')) && quantity(self.memory).compareTo(quantity('1Mi')) > 0", "message": "memory"},
            {"rule": "self.name.split('a').join('a') == self.name && self.name.substring(0, 1) != 'z' && self.name.trim() == self.name", "message": "strings"},
            {"rule": "self.name.replace('a', 'b').indexOf('a') == -1", "message": "replace"}
        ]),
    );
    let r = compile(&s);
    let good = json!({"spec": {"name": "abc", "tags": ["x-a!", "x-b"], "nums": [1, 3, 5],
        "endpoint": "https://example.com/x", "memory": "512Mi"}});
    assert_eq!(errs(&r, good, None), Vec::<String>::new());
    let bad = json!({"spec": {"name": "Abc", "tags": ["y-a", "x-b"], "nums": [3, 1],
        "endpoint": "http://example.com", "memory": "2Gi"}});
    assert_eq!(
        errs(&r, bad, None),
        vec![
            "spec: Invalid value: \"object\": name",
            "spec: Invalid value: \"object\": tags",
            "spec: Invalid value: \"object\": nums",
            "spec: Invalid value: \"object\": endpoint",
            "spec: Invalid value: \"object\": memory"
        ]
    );
}

#[test]
fn all_of_rules_apply_to_the_node() {
    let s = json!({"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"a": {"type": "integer"}},
        "allOf": [{"x-kubernetes-validations": [{"rule": "self.a > 0", "message": "positive"}]}]
    }}});
    let r = compile(&s);
    assert_eq!(
        errs(&r, json!({"spec": {"a": 0}}), None),
        vec!["spec: Invalid value: \"object\": positive"]
    );
}

#[test]
fn schemas_without_rules_compile_empty() {
    let r = compile(&json!({"type": "object", "properties": {"spec": {"type": "object"}}}));
    assert!(r.is_empty());
    assert!(r.validate(&json!({"spec": {}}), None).is_empty());
    assert!(r.validate(&json!(null), None).is_empty());
}

#[test]
fn oversized_values_are_not_evaluated() {
    // the schema bounds the list, but the object (which schema validation
    // would refuse) is far larger: copying it on every iteration is refused
    // up front instead of keeping the evaluator busy
    let s = spec_schema(
        json!({"l": {"type": "array", "maxItems": 100, "items": {"type": "integer"}}}),
        json!([{"rule": "self.l.map(x, self.l).size() >= 0"}]),
    );
    let r = compile(&s);
    let big: Vec<i64> = (0..20_000).collect();
    let start = std::time::Instant::now();
    let e = errs(&r, json!({"spec": {"l": big}}), None);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains("call cost exceeds limit for rule: self.l.map(x, self.l).size() >= 0"),
        "{e:?}"
    );
    assert!(errs(&r, json!({"spec": {"l": [1, 2, 3]}}), None).is_empty());
}

#[test]
fn bind_in_rules() {
    let s = spec_schema(
        json!({"name": {"type": "string", "maxLength": 20}}),
        json!([{"rule": "cel.bind(n, self.name.lowerAscii(), n == self.name && n.size() > 2)", "message": "lower"}]),
    );
    let r = compile(&s);
    assert!(errs(&r, json!({"spec": {"name": "abc"}}), None).is_empty());
    assert_eq!(
        errs(&r, json!({"spec": {"name": "Abc"}}), None),
        vec!["spec: Invalid value: \"object\": lower"]
    );
}

#[test]
fn compiled_rules_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledRules>();
}

#[test]
fn common_idioms() {
    let s = spec_schema(
        json!({
            "mode": {"type": "string", "enum": ["a", "b"]},
            "timeout": {"type": "string", "maxLength": 10},
            "labels": {"type": "object", "maxProperties": 10,
                "additionalProperties": {"type": "string", "maxLength": 20}},
            "opt": {"type": "object", "properties": {"x": {"type": "integer"}}},
            "count": {"type": "integer"},
            "items": {"type": "array", "maxItems": 10, "items": {"type": "object",
                "properties": {"name": {"type": "string", "maxLength": 20}, "port": {"type": "integer"}}}}
        }),
        json!([
            {"rule": "self.mode in ['a', 'b']", "message": "mode"},
            {"rule": "duration(self.timeout) <= duration('1h')", "message": "timeout"},
            {"rule": "self.labels.all(k, k.size() < 10 && self.labels[k] != '')", "message": "labels"},
            {"rule": "!has(self.opt) || !has(self.opt.x) || self.opt.x > 0", "message": "opt"},
            {"rule": "self.?opt.?x.orValue(1) > 0", "message": "optional"},
            {"rule": "has(self.count) ? self.count == self.items.size() : true", "message": "count"},
            {"rule": "self.items.all(i, self.items.exists_one(j, j.name == i.name))", "message": "unique names"},
            {"rule": "self.items.map(i, i.port).all(p, p > 0 && p < 65536)", "message": "ports"},
            {"rule": "int(string(self.count)) == self.count && string(self.count).size() >= 1", "message": "conv"}
        ]),
    );
    let r = compile(&s);
    let good = json!({"spec": {"mode": "a", "timeout": "30m", "labels": {"app": "x"}, "opt": {"x": 1}, "count": 2,
        "items": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]}});
    assert_eq!(errs(&r, good, None), Vec::<String>::new());
    let bad = json!({"spec": {"mode": "c", "timeout": "2h", "labels": {"averyverylongkey": "x"}, "opt": {"x": 0}, "count": 3,
        "items": [{"name": "a", "port": 80}, {"name": "a", "port": 0}]}});
    assert_eq!(
        errs(&r, bad, None),
        [
            "mode",
            "timeout",
            "labels",
            "opt",
            "optional",
            "count",
            "unique names",
            "ports"
        ]
        .iter()
        .map(|m| format!("spec: Invalid value: \"object\": {m}"))
        .collect::<Vec<_>>()
    );
}

#[test]
fn two_variable_comprehensions() {
    let s = spec_schema(
        json!({"labels": {"type": "object", "maxProperties": 10,
                "additionalProperties": {"type": "string", "maxLength": 20}},
               "ports": {"type": "array", "maxItems": 10, "items": {"type": "integer"}}}),
        json!([
            {"rule": "self.labels.all(k, v, v.size() <= 5 && k != v)", "message": "labels"},
            {"rule": "self.ports.all(i, p, i == 0 || p > self.ports[i - 1])", "message": "ports ascending"}
        ]),
    );
    let r = compile(&s);
    assert!(errs(
        &r,
        json!({"spec": {"labels": {"a": "b"}, "ports": [1, 2, 3]}}),
        None
    )
    .is_empty());
    assert_eq!(
        errs(
            &r,
            json!({"spec": {"labels": {"a": "a"}, "ports": [1, 3, 2]}}),
            None
        ),
        vec![
            "spec: Invalid value: \"object\": labels",
            "spec: Invalid value: \"object\": ports ascending"
        ]
    );
    let bad = spec_schema(
        json!({"ports": {"type": "array", "maxItems": 10, "items": {"type": "integer"}}}),
        json!([{"rule": "self.ports.all(i, p, p.startsWith('x'))"}]),
    );
    assert!(compile_err(&bad)[0]
        .contains("found no matching overload for 'startsWith' applied to 'int.(string)'"));
}

#[test]
fn network_and_format_libraries_in_rules() {
    let s = spec_schema(
        json!({"address": {"type": "string", "maxLength": 64}, "network": {"type": "string", "maxLength": 64},
               "name": {"type": "string", "maxLength": 253}}),
        json!([
            {"rule": "isIP(self.address) && ip(self.address).family() == 4", "message": "ipv4 address"},
            {"rule": "cidr(self.network).containsIP(self.address)", "message": "address outside network"},
            {"rule": "!format.dns1123Subdomain().validate(self.name).hasValue()",
             "messageExpression": "format.dns1123Subdomain().validate(self.name).value().join(', ')"}
        ]),
    );
    let r = compile(&s);
    assert!(errs(
        &r,
        json!({"spec": {"address": "10.0.0.5", "network": "10.0.0.0/24", "name": "a.b"}}),
        None
    )
    .is_empty());
    let e = errs(
        &r,
        json!({"spec": {"address": "10.0.1.5", "network": "10.0.0.0/24", "name": "A_b"}}),
        None,
    );
    assert_eq!(
        e[0],
        "spec: Invalid value: \"object\": address outside network"
    );
    assert!(
        e[1].starts_with(
            "spec: Invalid value: \"object\": a lowercase RFC 1123 subdomain must consist of"
        ),
        "{}",
        e[1]
    );
}
