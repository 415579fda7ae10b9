//! Validation of custom resources: every keyword and every message form,
//! worded like kube-apiserver (apimachinery 1.34+ rendering).

use canopy_schema::{aggregate, BadValue, CompiledSchema, ErrorType};
use serde_json::{json, Value};

fn compile(spec_props: Value) -> CompiledSchema {
    CompiledSchema::compile(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": spec_props}}
    }))
    .unwrap()
}

fn errs(s: &CompiledSchema, spec: Value) -> Vec<String> {
    s.validate(&json!({"apiVersion": "x.io/v1", "kind": "X", "spec": spec}))
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn one(props: Value, spec: Value) -> Vec<String> {
    errs(&compile(props), spec)
}

#[test]
fn type_errors() {
    let p = json!({"replicas": {"type": "integer"}, "f": {"type": "number"}, "b": {"type": "boolean"},
                   "s": {"type": "string"}, "o": {"type": "object"}, "a": {"type": "array", "items": {"type": "string"}}});
    assert_eq!(
        one(p.clone(), json!({"replicas": "string"})),
        vec![
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
    assert!(one(
        p.clone(),
        json!({"replicas": 3, "f": 1, "b": true, "s": "x", "o": {}, "a": []})
    )
    .is_empty());
    // an integral float is an integer for go-openapi
    assert!(one(p.clone(), json!({"replicas": 2.0})).is_empty());
    assert_eq!(
        one(p.clone(), json!({"replicas": 1.5})),
        vec![
            r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#,
            r#"<nil>: Invalid value: "": Checked value must be of type integer (default format) in spec.replicas"#,
        ]
    );
    assert_eq!(
        one(p.clone(), json!({"b": "true"})),
        vec![
            r#"spec.b: Invalid value: "string": spec.b in body must be of type boolean: "string""#
        ]
    );
    assert_eq!(
        one(p.clone(), json!({"s": 1})),
        vec![
            r#"spec.s: Invalid value: "integer": spec.s in body must be of type string: "integer""#
        ]
    );
    assert_eq!(
        one(p.clone(), json!({"o": []})),
        vec![r#"spec.o: Invalid value: "array": spec.o in body must be of type object: "array""#]
    );
    assert_eq!(
        one(p.clone(), json!({"a": {}})),
        vec![r#"spec.a: Invalid value: "object": spec.a in body must be of type array: "object""#]
    );
    assert_eq!(
        one(p, json!({"a": [1]})),
        vec![
            r#"spec.a[0]: Invalid value: "integer": spec.a[0] in body must be of type string: "integer""#
        ]
    );
    let e = compile(json!({"n": {"type": "integer"}})).validate(&json!({"spec": {"n": "x"}}));
    assert_eq!(e[0].error_type, ErrorType::TypeInvalid);
    assert_eq!(e[0].field, "spec.n");
    assert_eq!(e[0].bad_value, Some(BadValue::Json(json!("string"))));
    assert_eq!(
        e[0].body(),
        r#"Invalid value: "string": spec.n in body must be of type integer: "string""#
    );
}

#[test]
fn nullable() {
    let p = json!({"a": {"type": "string"}, "b": {"type": "string", "nullable": true}, "c": {"x-kubernetes-preserve-unknown-fields": true}});
    assert_eq!(
        one(p.clone(), json!({"a": null})),
        vec![r#"spec.a: Invalid value: "null": spec.a in body must be of type string: "null""#]
    );
    assert!(one(p, json!({"b": null, "c": null})).is_empty());
}

#[test]
fn required() {
    let s = CompiledSchema::compile(&json!({"type": "object", "required": ["spec"], "properties": {
        "spec": {"type": "object", "required": ["name", "size"], "properties": {"name": {"type": "string"}, "size": {"type": "integer"}}}
    }}))
    .unwrap();
    let e = s.validate(&json!({"spec": {"size": 1}}));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].to_string(), "spec.name: Required value");
    assert_eq!(e[0].error_type, ErrorType::Required);
    assert_eq!(e[0].error_type.as_str(), "FieldValueRequired");
    assert_eq!(
        s.validate(&json!({}))[0].to_string(),
        "spec: Required value"
    );
    // present-but-null satisfies `required` (null is then a type error)
    let e: Vec<String> = s
        .validate(&json!({"spec": {"name": null, "size": 1}}))
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        e,
        vec![
            r#"spec.name: Invalid value: "null": spec.name in body must be of type string: "null""#
        ]
    );
}

#[test]
fn enums() {
    let p = json!({"mode": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "integer", "enum": [1, 2]},
                   "o": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "enum": [{"k": "v"}]},
                   "m": {"type": "string", "nullable": true, "enum": ["a"]}});
    assert_eq!(
        one(p.clone(), json!({"mode": "x"})),
        vec![r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#]
    );
    assert_eq!(
        one(p.clone(), json!({"n": 3})),
        vec![r#"spec.n: Unsupported value: 3: supported values: "1", "2""#]
    );
    assert_eq!(
        one(p.clone(), json!({"o": {"k": "w"}})),
        vec![r#"spec.o: Unsupported value: {"k":"w"}: supported values: "{\"k\":\"v\"}""#]
    );
    assert!(one(p.clone(), json!({"mode": "b", "n": 2, "o": {"k": "v"}})).is_empty());
    // kube never matches null against an enum, even when nullable
    assert_eq!(
        one(p.clone(), json!({"m": null})),
        vec![r#"spec.m: Unsupported value: null: supported values: "a""#]
    );
    let e = compile(p).validate(&json!({"spec": {"mode": "x"}}));
    assert_eq!(e[0].error_type, ErrorType::NotSupported);
    assert_eq!(e[0].error_type.as_str(), "FieldValueNotSupported");
}

#[test]
fn string_lengths_count_characters() {
    let p = json!({"name": {"type": "string", "maxLength": 10, "minLength": 3}, "one": {"type": "string", "maxLength": 1}});
    let e = compile(p.clone()).validate(&json!({"spec": {"name": "abcdefghijk"}}));
    assert_eq!(
        e[0].to_string(),
        "spec.name: Too long: may not be more than 10 bytes"
    );
    assert_eq!(e[0].error_type, ErrorType::TooLong);
    assert_eq!(e[0].error_type.as_str(), "FieldValueTooLong");
    assert_eq!(
        one(p.clone(), json!({"one": "ab"})),
        vec!["spec.one: Too long: may not be more than 1 byte"]
    );
    assert_eq!(
        one(p.clone(), json!({"name": "ab"})),
        vec![
            r#"spec.name: Invalid value: "ab": spec.name in body should be at least 3 chars long"#
        ]
    );
    // 10 characters, 20 bytes
    assert!(one(p, json!({"name": "éééééééééé"})).is_empty());
}

#[test]
fn patterns() {
    let p = json!({"name": {"type": "string", "pattern": "^[a-z]+$"}, "d": {"type": "string", "pattern": "^\\d+$"}});
    assert_eq!(
        one(p.clone(), json!({"name": "x1"})),
        vec![r#"spec.name: Invalid value: "x1": spec.name in body should match '^[a-z]+$'"#]
    );
    assert!(one(p.clone(), json!({"name": "abc", "d": "123"})).is_empty());
    // Go's \d is ASCII only
    assert_eq!(one(p, json!({"d": "١٢"})).len(), 1);
    // an invalid pattern is reported at validation time, as kube does
    let s = compile(json!({"x": {"type": "string", "pattern": "("}}));
    let e = errs(&s, json!({"x": "a"}));
    assert!(e[0].starts_with(r#"spec.x: Invalid value: "a": spec.x in body should match '(, but pattern is invalid: "#), "{e:?}");
}

#[test]
fn numbers() {
    let p = json!({
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "emax": {"type": "integer", "maximum": 10, "exclusiveMaximum": true},
        "emin": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
        "f": {"type": "number", "maximum": 1, "minimum": -1.5},
        "big": {"type": "number", "maximum": 1000000},
        "m": {"type": "integer", "multipleOf": 5},
        "fm": {"type": "number", "multipleOf": 0.25}
    });
    assert_eq!(one(p.clone(), json!({"port": 70000})), vec!["spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535"]);
    assert_eq!(
        one(p.clone(), json!({"port": 0})),
        vec!["spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1"]
    );
    assert_eq!(
        one(p.clone(), json!({"emax": 10})),
        vec!["spec.emax: Invalid value: 10: spec.emax in body should be less than 10"]
    );
    assert_eq!(
        one(p.clone(), json!({"emin": 0})),
        vec!["spec.emin: Invalid value: 0: spec.emin in body should be greater than 0"]
    );
    assert_eq!(
        one(p.clone(), json!({"f": 1.5})),
        vec!["spec.f: Invalid value: 1.5: spec.f in body should be less than or equal to 1"]
    );
    // go-openapi compares an integer value with the bound truncated to int64
    assert_eq!(
        one(p.clone(), json!({"f": -2})),
        vec!["spec.f: Invalid value: -2: spec.f in body should be greater than or equal to -1"]
    );
    assert_eq!(
        one(p.clone(), json!({"f": -2.5})),
        vec!["spec.f: Invalid value: -2.5: spec.f in body should be greater than or equal to -1.5"]
    );
    assert_eq!(one(p.clone(), json!({"big": 1e7})), vec!["spec.big: Invalid value: 1e+07: spec.big in body should be less than or equal to 1e+06"]);
    assert_eq!(
        one(p.clone(), json!({"m": 7})),
        vec!["spec.m: Invalid value: 7: spec.m in body should be a multiple of 5"]
    );
    assert_eq!(
        one(p.clone(), json!({"fm": 0.3})),
        vec!["spec.fm: Invalid value: 0.3: spec.fm in body should be a multiple of 0.25"]
    );
    assert!(one(
        p,
        json!({"port": 443, "emax": 9, "emin": 1, "f": 0.5, "m": 10, "fm": 0.75})
    )
    .is_empty());
}

#[test]
fn numeric_formats() {
    let p = json!({"i32": {"type": "integer", "format": "int32"}, "i64": {"type": "integer", "format": "int64"},
                   "fl": {"type": "number", "format": "float"}, "d": {"type": "number", "format": "double"}});
    assert!(one(
        p.clone(),
        json!({"i32": 2147483647, "i64": 9223372036854775807i64, "fl": 1.5, "d": 1e300})
    )
    .is_empty());
    assert_eq!(
        one(p.clone(), json!({"i32": 2147483648i64})),
        vec![
            r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.i32"#
        ]
    );
    assert_eq!(
        one(p.clone(), json!({"fl": 1e39})),
        vec![
            r#"<nil>: Invalid value: "": Checked value must be of type number with format float in spec.fl"#
        ]
    );
    assert_eq!(
        one(p, json!({"i32": "1"})),
        vec![
            r#"spec.i32: Invalid value: "string": spec.i32 in body must be of type integer: "string""#
        ]
    );
}

#[test]
fn string_formats() {
    let p = json!({
        "email": {"type": "string", "format": "email"},
        "t": {"type": "string", "format": "date-time"},
        "d": {"type": "string", "format": "date"},
        "u": {"type": "string", "format": "uuid"},
        "h": {"type": "string", "format": "hostname"},
        "ip": {"type": "string", "format": "ipv4"},
        "ip6": {"type": "string", "format": "ipv6"},
        "cidr": {"type": "string", "format": "cidr"},
        "mac": {"type": "string", "format": "mac"},
        "uri": {"type": "string", "format": "uri"},
        "b": {"type": "string", "format": "byte"},
        "dur": {"type": "string", "format": "duration"},
        "unknown": {"type": "string", "format": "quantity"}
    });
    assert_eq!(
        one(p.clone(), json!({"email": "x"})),
        vec![r#"spec.email: Invalid value: "x": spec.email in body must be of type email: "x""#]
    );
    assert_eq!(
        one(p.clone(), json!({"t": "yesterday"})),
        vec![
            r#"spec.t: Invalid value: "yesterday": spec.t in body must be of type date-time: "yesterday""#
        ]
    );
    for (k, bad) in [
        ("d", "2024-13-01"),
        ("u", "nope"),
        ("h", "-x-"),
        ("ip", "1.2.3"),
        ("ip6", "1.2.3.4"),
        ("cidr", "1.2.3.4"),
        ("mac", "zz"),
        ("uri", "rel"),
        ("b", "!"),
        ("dur", "soon"),
    ] {
        let e = one(p.clone(), json!({k: bad}));
        assert_eq!(e.len(), 1, "{k}: {e:?}");
        assert!(
            e[0].contains(&format!(
                "in body must be of type {}",
                p[k]["format"].as_str().unwrap()
            )),
            "{e:?}"
        );
    }
    let good = json!({"email": "a@b.io", "t": "2024-01-02T03:04:05Z", "d": "2024-01-02", "u": "123e4567-e89b-12d3-a456-426614174000",
        "h": "example.com", "ip": "10.1.2.3", "ip6": "fe80::1", "cidr": "10.0.0.0/8", "mac": "00:11:22:33:44:55",
        "uri": "https://x.io/p", "b": "aGk=", "dur": "1h5m", "unknown": "anything"});
    assert!(one(p, good).is_empty());
}

#[test]
fn int_or_string() {
    let p = json!({"port": {"x-kubernetes-int-or-string": true}, "q": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": "^[0-9]+m?$"}});
    assert!(one(p.clone(), json!({"port": 80})).is_empty());
    assert!(one(p.clone(), json!({"port": "http"})).is_empty());
    assert_eq!(
        one(p.clone(), json!({"port": true})),
        vec![
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
        ]
    );
    assert!(one(p.clone(), json!({"q": "100m", "port": 1.0})).is_empty());
    assert_eq!(
        one(p, json!({"q": "1x"})),
        vec![r#"spec.q: Invalid value: "1x": spec.q in body should match '^[0-9]+m?$'"#]
    );
}

#[test]
fn arrays() {
    let p = json!({"items": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "string"}},
                   "one": {"type": "array", "maxItems": 1, "items": {"type": "integer"}}});
    let e = compile(p.clone()).validate(&json!({"spec": {"items": ["a", "b", "c", "d"]}}));
    assert_eq!(
        e[0].to_string(),
        "spec.items: Too many: 4: must have at most 3 items"
    );
    assert_eq!(e[0].error_type.as_str(), "FieldValueTooMany");
    assert_eq!(
        one(p.clone(), json!({"one": [1, 2]})),
        vec!["spec.one: Too many: 2: must have at most 1 item"]
    );
    assert_eq!(
        one(p, json!({"items": ["a"]})),
        vec!["spec.items: Invalid value: 1: spec.items in body should have at least 2 items"]
    );
}

#[test]
fn objects() {
    let p = json!({
        "m": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}},
        "closed": {"type": "object", "additionalProperties": false}
    });
    assert_eq!(
        one(p.clone(), json!({"m": {}})),
        vec!["spec.m: Invalid value: 0: spec.m in body should have at least 1 properties"]
    );
    assert_eq!(
        one(p.clone(), json!({"m": {"a": "1", "b": "2", "c": "3"}})),
        vec!["spec.m: Too many: 3: must have at most 2 items"]
    );
    assert_eq!(
        one(p.clone(), json!({"m": {"foo": 1}})),
        vec![
            r#"spec.m.foo: Invalid value: "integer": spec.m.foo in body must be of type string: "integer""#
        ]
    );
    assert_eq!(
        one(p, json!({"closed": {"x": 1}})),
        vec![r#"spec.closed: Invalid value: "x": spec.closed.x in body is a forbidden property"#]
    );
}

#[test]
fn preserve_unknown_fields_accepts_anything() {
    let p = json!({"free": {"x-kubernetes-preserve-unknown-fields": true}, "obj": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    for v in [
        json!(1),
        json!("s"),
        json!([1, {"a": null}]),
        json!({"deep": {"x": [1]}}),
        json!(null),
    ] {
        assert!(one(p.clone(), json!({"free": v})).is_empty());
    }
    assert!(one(p, json!({"obj": {"anything": true}})).is_empty());
}

#[test]
fn embedded_resources() {
    let p = json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}});
    assert!(one(p.clone(), json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": {"a": "b"}}}})).is_empty());
    assert_eq!(
        one(p.clone(), json!({"template": {}})),
        vec![
            "spec.template.apiVersion: Required value",
            "spec.template.kind: Required value"
        ]
    );
    assert_eq!(
        one(
            p.clone(),
            json!({"template": {"apiVersion": "a/b/c", "kind": "my_kind"}})
        ),
        vec![
            r#"spec.template.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#,
            r#"spec.template.kind: Invalid value: "my_kind": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ]
    );
    assert_eq!(
        one(
            p.clone(),
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a/b"}}})
        ),
        vec![r#"spec.template.metadata.name: Invalid value: "a/b": may not contain '/'"#]
    );
    assert_eq!(
        one(
            p.clone(),
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": "x"}})
        ),
        vec![
            r#"spec.template.metadata: Invalid value: "x": json: cannot unmarshal string into Go value of type v1.ObjectMeta"#
        ]
    );
    let e = one(
        p.clone(),
        json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "-bad-"}}}}),
    );
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            r#"spec.template.metadata.labels[a]: Invalid value: "-bad-": a valid label must be"#
        ),
        "{e:?}"
    );
    // embedded resources in lists
    let p = json!({"list": {"type": "array", "items": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}});
    assert_eq!(
        one(
            p,
            json!({"list": [{"apiVersion": "v1", "kind": "A"}, {"kind": "B"}]})
        ),
        vec!["spec.list[1].apiVersion: Required value"]
    );
}

#[test]
fn any_of_one_of_all_of_not() {
    let p = json!({
        "any": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
        "one": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
        "all": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]},
        "not": {"type": "string", "not": {"enum": ["forbidden"]}}
    });
    assert_eq!(
        one(p.clone(), json!({"any": {}})),
        vec![
            r#"<nil>: Invalid value: "": "spec.any" must validate at least one schema (anyOf)"#,
            "spec.any.a: Required value"
        ]
    );
    assert!(one(p.clone(), json!({"any": {"b": "x"}})).is_empty());
    assert_eq!(
        one(p.clone(), json!({"one": {"a": "x", "b": "y"}})),
        vec![
            r#"<nil>: Invalid value: "": "spec.one" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
    assert_eq!(
        one(p.clone(), json!({"one": {}})),
        vec![
            r#"<nil>: Invalid value: "": "spec.one" must validate one and only one schema (oneOf). Found none valid"#,
            "spec.one.a: Required value"
        ]
    );
    assert!(one(p.clone(), json!({"one": {"a": "x"}})).is_empty());
    assert_eq!(
        one(p.clone(), json!({"all": 9})),
        vec![
            "spec.all: Invalid value: 9: spec.all in body should be less than or equal to 5",
            r#"<nil>: Invalid value: "": "spec.all" must validate all the schemas (allOf)"#,
        ]
    );
    assert_eq!(
        one(p.clone(), json!({"not": "forbidden"})),
        vec![r#"<nil>: Invalid value: "": "spec.not" must not validate the schema (not)"#]
    );
    assert!(one(p, json!({"all": 3, "not": "fine"})).is_empty());
}

#[test]
fn list_type_set_and_map() {
    let p = json!({
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
        "multi": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
                  "items": {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}},
        "byKey": {"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}}
    });
    let e = compile(p.clone()).validate(&json!({"spec": {"tags": ["a", "b", "a", "a", "b"]}}));
    let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        vec![
            r#"spec.tags[2]: Duplicate value: "a""#,
            r#"spec.tags[4]: Duplicate value: "b""#
        ]
    );
    assert_eq!(e[0].error_type.as_str(), "FieldValueDuplicate");
    assert_eq!(
        one(
            p.clone(),
            json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]})
        ),
        vec![r#"spec.ports[1]: Duplicate value: {"name":"http"}"#]
    );
    assert_eq!(
        one(
            p.clone(),
            json!({"multi": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}]})
        ),
        vec![r#"spec.multi[2]: Duplicate value: {"port":80,"protocol":"TCP"}"#]
    );
    assert_eq!(
        one(p.clone(), json!({"byKey": {"foo": [1, 2, 1]}})),
        vec!["spec.byKey[foo][2]: Duplicate value: 1"]
    );
    assert!(one(
        p,
        json!({"tags": ["a", "b"], "ports": [{"name": "a"}, {"name": "b"}], "byKey": {"x": [1, 2]}})
    )
    .is_empty());
}

#[test]
fn status_subresource_path() {
    let s = CompiledSchema::compile(&json!({"type": "object", "properties": {
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
    }}))
    .unwrap();
    let status = s.property("status").unwrap();
    let e: Vec<String> = status
        .validate_at(&json!({"replicas": "x"}), "status")
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        e,
        vec![
            r#"status.replicas: Invalid value: "string": replicas in body must be of type integer: "string""#
        ]
    );
}

#[test]
fn many_errors_aggregate_like_kube() {
    let p = json!({"a": {"type": "string"}, "b": {"type": "integer", "maximum": 1}});
    let e = compile(p).validate(&json!({"spec": {"a": 1, "b": 2}}));
    assert_eq!(
        aggregate(&e),
        r#"[spec.a: Invalid value: "integer": spec.a in body must be of type string: "integer", spec.b: Invalid value: 2: spec.b in body should be less than or equal to 1]"#
    );
}

#[test]
fn root_type_errors_have_no_path() {
    let s = CompiledSchema::compile(&json!({"type": "object"})).unwrap();
    let e: Vec<String> = s
        .validate(&json!("x"))
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        e,
        vec![r#"<nil>: Invalid value: "string":  in body must be of type object: "string""#]
    );
}
