//! CRD schema checks, worded like kube-apiserver's CRD validation.

use canopy_schema::{validate_crd_schema, validate_crd_schema_with, CrdSchemaOptions, ErrorType};
use serde_json::{json, Value};

const P: &str = "spec.versions[0].schema.openAPIV3Schema";

fn check(schema: Value) -> Vec<String> {
    validate_crd_schema(&schema, P)
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn with_spec(spec: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec}})
}

fn has(errs: &[String], expected: &str) {
    assert!(
        errs.iter().any(|e| e == expected),
        "missing {expected:?} in {errs:#?}"
    );
}

#[test]
fn accepts_a_good_schema() {
    let s = json!({
        "type": "object",
        "description": "a thing",
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
            "spec": {"type": "object", "required": ["port"], "properties": {
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "replicas": {"type": "integer", "format": "int32", "default": 1, "minimum": 0},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                "choice": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                           "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                "rules": {"type": "object", "x-kubernetes-validations": [{"rule": "self.a == 1", "message": "a must be 1"}]}
            }}
        }
    });
    assert_eq!(check(s), Vec::<String>::new());
}

#[test]
fn types_are_required() {
    let e = validate_crd_schema(
        &with_spec(json!({"properties": {"a": {"type": "string"}}})),
        "spec.validation.openAPIV3Schema",
    );
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].to_string(), "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields");
    assert_eq!(e[0].error_type, ErrorType::Required);
    assert_eq!(
        check(with_spec(json!({"type": "array", "items": {}}))),
        vec![format!("{P}.properties[spec].items.type: Required value: must not be empty for specified array items")]
    );
    assert_eq!(
        check(json!({"properties": {}})),
        vec![format!(
            "{P}.type: Required value: must not be empty at the root"
        )]
    );
    assert_eq!(
        check(json!({"type": "string"})),
        vec![format!(
            r#"{P}.type: Invalid value: "string": must be object at the root"#
        )]
    );
    assert_eq!(
        check(with_spec(json!({"type": "array"}))),
        vec![format!(
            "{P}.properties[spec].items: Required value: must be specified"
        )]
    );
    // int-or-string and preserve-unknown-fields need no type
    assert!(check(with_spec(json!({"x-kubernetes-int-or-string": true}))).is_empty());
    assert!(check(with_spec(
        json!({"x-kubernetes-preserve-unknown-fields": true})
    ))
    .is_empty());
}

#[test]
fn unsupported_types() {
    has(
        &check(with_spec(json!({"type": "foo"}))),
        &format!(
            r#"{P}.properties[spec].type: Unsupported value: "foo": supported values: "array", "boolean", "integer", "number", "object", "string""#
        ),
    );
    has(&check(with_spec(json!({"type": "null"}))), &format!("{P}.properties[spec].type: Forbidden: type cannot be set to null, use nullable as an alternative"));
    has(
        &check(json!({"type": "object", "nullable": true})),
        &format!("{P}.nullable: Forbidden: nullable cannot be true at the root"),
    );
}

#[test]
fn forbidden_keywords() {
    let cases = [
        (json!({"type": "object", "$ref": "#/x"}), "$ref: Forbidden: $ref is not supported"),
        (json!({"type": "object", "definitions": {"a": {"type": "string"}}}), "definitions: Forbidden: definitions is not supported"),
        (json!({"type": "object", "dependencies": {"a": ["b"]}}), "dependencies: Forbidden: dependencies is not supported"),
        (json!({"type": "array", "items": {"type": "string"}, "additionalItems": false}), "additionalItems: Forbidden: additionalItems is not supported"),
        (json!({"type": "object", "patternProperties": {"^a": {"type": "string"}}}), "patternProperties: Forbidden: patternProperties is not supported"),
        (json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true}), "uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"),
        (json!({"type": "object", "id": "x"}), "id: Forbidden: id is not supported"),
        (json!({"type": "array", "items": [{"type": "string"}]}), "items: Forbidden: items must be a schema object and not an array"),
    ];
    for (spec, msg) in cases {
        has(
            &check(with_spec(spec)),
            &format!("{P}.properties[spec].{msg}"),
        );
    }
    // `$schema` is refused by the structural conversion alone
    assert_eq!(
        check(with_spec(json!({"type": "object", "$schema": "x"}))),
        vec![format!(
            r#"{P}: Invalid value: "": OpenAPIV3Schema 'schema' is not supported"#
        )]
    );
}

#[test]
fn properties_and_additional_properties() {
    has(
        &check(with_spec(json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}))),
        &format!("{P}.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"),
    );
    assert!(check(with_spec(json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}))).is_empty());
    has(
        &check(json!({"type": "object", "additionalProperties": {"type": "string"}})),
        &format!("{P}.additionalProperties: Forbidden: must not be used at the root"),
    );
}

#[test]
fn metadata_at_the_root() {
    assert!(check(json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "pattern": "^a"}, "generateName": {"type": "string"}}}}})).is_empty());
    assert_eq!(
        check(json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}})),
        vec![format!("{P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified")]
    );
    has(
        &check(json!({"type": "object", "properties": {"metadata": {"type": "string"}}})),
        &format!(r#"{P}.properties[metadata].type: Invalid value: "string": must be object"#),
    );
    has(
        &check(
            json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {"name": "x"}}}}),
        ),
        &format!(
            "{P}.properties[metadata].default: Forbidden: must not be set in top-level metadata"
        ),
    );
    has(
        &check(json!({"type": "object", "properties": {"kind": {"type": "integer"}}})),
        &format!(r#"{P}.properties[kind].type: Invalid value: "integer": must be string"#),
    );
    has(
        &check(with_spec(json!({"type": "object", "anyOf": [{"properties": {"metadata": {}}}]}))),
        &format!("{P}.properties[spec].anyOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"),
    );
}

#[test]
fn value_validations_must_be_structural() {
    let e = check(with_spec(json!({
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "anyOf": [{"type": "object", "description": "d", "nullable": true, "default": {}, "properties": {"a": {"title": "t"}}}],
        "oneOf": [{"x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-list-type": "set"}]
    })));
    for msg in [
        "anyOf[0].type: Forbidden: must be empty to be structural",
        "anyOf[0].description: Forbidden: must be empty to be structural",
        "anyOf[0].nullable: Forbidden: must be false to be structural",
        "anyOf[0].default: Forbidden: must be undefined to be structural",
        "anyOf[0].properties[a].title: Forbidden: must be empty to be structural",
        "oneOf[0].x-kubernetes-preserve-unknown-fields: Forbidden: must be false to be structural",
        "oneOf[0].x-kubernetes-list-type: Forbidden: must be undefined to be structural",
    ] {
        has(&e, &format!("{P}.properties[spec].{msg}"));
    }
}

#[test]
fn value_validations_only_restrict_specified_fields() {
    // kube checks completeness from the root's value validations
    let e = check(
        json!({"type": "object", "properties": {"spec": {"type": "object"}},
        "allOf": [{"properties": {"spec": {"properties": {"missing": {"maxLength": 1}}}}}]}),
    );
    assert_eq!(
        e,
        vec![format!("{P}.properties[spec].properties[missing]: Required value: because it is defined in {P}.allOf[0].properties[spec].properties[missing]")]
    );
}

#[test]
fn int_or_string_rules() {
    assert!(check(with_spec(json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}))).is_empty());
    assert!(check(with_spec(json!({"x-kubernetes-int-or-string": true, "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^a"}]}))).is_empty());
    has(
        &check(with_spec(json!({"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}))),
        &format!("{P}.properties[spec].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"),
    );
    has(
        &check(with_spec(
            json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "boolean"}]}),
        )),
        &format!("{P}.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"),
    );
}

#[test]
fn preserve_unknown_fields_false() {
    has(
        &check(with_spec(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false}))),
        &format!("{P}.properties[spec].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"),
    );
}

#[test]
fn embedded_resources() {
    has(
        &check(with_spec(
            json!({"type": "string", "x-kubernetes-embedded-resource": true}),
        )),
        &format!(
            r#"{P}.properties[spec].type: Invalid value: "string": must be object if x-kubernetes-embedded-resource is true"#
        ),
    );
    has(
        &check(with_spec(json!({"type": "object", "x-kubernetes-embedded-resource": true}))),
        &format!("{P}.properties[spec].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"),
    );
    has(
        &check(json!({"type": "object", "properties": {"metadata": {"type": "object", "x-kubernetes-embedded-resource": true}}})),
        &format!("{P}.properties[metadata].x-kubernetes-embedded-resource: Forbidden: must not be used inside of resource meta"),
    );
}

#[test]
fn list_types() {
    let item = json!({"type": "object", "properties": {"name": {"type": "string"}, "sub": {"type": "object"}}});
    has(
        &check(with_spec(json!({"type": "array", "x-kubernetes-list-type": "map", "items": item}))),
        &format!("{P}.properties[spec].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"),
    );
    has(
        &check(with_spec(json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": item}))),
        &format!("{P}.properties[spec].items.properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"),
    );
    has(
        &check(with_spec(
            json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["sub"], "items": item}),
        )),
        &format!(
            r#"{P}.properties[spec].items.properties[sub].type: Invalid value: "object": must be a scalar type if parent array's x-kubernetes-list-type is map"#
        ),
    );
    has(
        &check(with_spec(
            json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["nope"], "items": item}),
        )),
        &format!(
            r#"{P}.properties[spec].x-kubernetes-list-map-keys: Invalid value: ["nope"]: entries must all be names of item properties"#
        ),
    );
    has(
        &check(with_spec(
            json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "string"}}),
        )),
        &format!(
            r#"{P}.properties[spec].items.type: Invalid value: "string": must be object if parent array's x-kubernetes-list-type is map"#
        ),
    );
    has(
        &check(with_spec(json!({"type": "array", "x-kubernetes-list-type": "set", "items": item}))),
        &format!("{P}.properties[spec].items.x-kubernetes-map-type: Invalid value: null: must be atomic as item of a list with x-kubernetes-list-type=set"),
    );
    assert!(check(with_spec(json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object", "x-kubernetes-map-type": "atomic"}}))).is_empty());
    has(
        &check(with_spec(
            json!({"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}),
        )),
        &format!(
            r#"{P}.properties[spec].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map""#
        ),
    );
    has(
        &check(with_spec(
            json!({"type": "object", "x-kubernetes-list-type": "set"}),
        )),
        &format!(
            r#"{P}.properties[spec].type: Invalid value: "object": must be array if x-kubernetes-list-type is specified"#
        ),
    );
    has(
        &check(with_spec(json!({"type": "array", "x-kubernetes-list-map-keys": ["a"], "items": {"type": "string"}}))),
        &format!("{P}.properties[spec].x-kubernetes-list-type: Required value: must be map if x-kubernetes-list-map-keys is non-empty"),
    );
    has(
        &check(with_spec(json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string", "nullable": true}}))),
        &format!("{P}.properties[spec].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is set"),
    );
    has(
        &check(with_spec(
            json!({"type": "array", "x-kubernetes-map-type": "atomic", "items": {"type": "string"}}),
        )),
        &format!(
            r#"{P}.properties[spec].type: Invalid value: "array": must be object if x-kubernetes-map-type is specified"#
        ),
    );
    has(
        &check(with_spec(
            json!({"type": "object", "x-kubernetes-map-type": "bag"}),
        )),
        &format!(
            r#"{P}.properties[spec].x-kubernetes-map-type: Unsupported value: "bag": supported values: "atomic", "granular""#
        ),
    );
}

#[test]
fn defaults_must_validate_and_be_pruned() {
    let e = check(with_spec(
        json!({"type": "object", "properties": {"replicas": {"type": "integer", "default": "x"}}}),
    ));
    assert_eq!(
        e,
        vec![format!(
            r#"{P}.properties[spec].properties[replicas].default: Invalid value: "string":  in body must be of type integer: "string""#
        )]
    );
    let e = check(with_spec(
        json!({"type": "object", "properties": {"mode": {"type": "string", "enum": ["a"], "default": "b"}}}),
    ));
    assert_eq!(
        e,
        vec![format!(
            r#"{P}.properties[spec].properties[mode].default: Unsupported value: "b": supported values: "a""#
        )]
    );
    let e = check(with_spec(
        json!({"type": "object", "default": {"a": 1, "unknown": 2}, "properties": {"a": {"type": "integer"}}}),
    ));
    assert_eq!(
        e,
        vec![format!(
            r#"{P}.properties[spec].default: Invalid value: {{"a":1,"unknown":2}}: must not have unknown fields"#
        )]
    );
    let e = check(with_spec(
        json!({"type": "object", "default": {"a": 20}, "properties": {"a": {"type": "integer", "maximum": 10}}}),
    ));
    assert_eq!(e, vec![format!("{P}.properties[spec].default.a: Invalid value: 20: a in body should be less than or equal to 10")]);
    // defaults inside additionalProperties are allowed and not checked by kube
    assert!(check(with_spec(
        json!({"type": "object", "additionalProperties": {"type": "string", "default": "x"}})
    ))
    .is_empty());
}

#[test]
fn patterns_must_compile() {
    let e = check(with_spec(json!({"type": "string", "pattern": "(unclosed"})));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with(&format!(r#"{P}.properties[spec].pattern: Invalid value: "(unclosed": must be a valid regular expression, but isn't: "#)), "{e:?}");
}

#[test]
fn x_kubernetes_validations_are_well_formed() {
    let e = check(with_spec(
        json!({"type": "object", "x-kubernetes-validations": [
            {"rule": " "},
            {"rule": "self.a > 0", "message": "line\nbreak"},
            {"rule": "self.a > 0", "reason": "Nope"}
        ]}),
    ));
    has(&e, &format!("{P}.properties[spec].x-kubernetes-validations[0].rule: Required value: rule is not specified"));
    has(
        &e,
        &format!(
            r#"{P}.properties[spec].x-kubernetes-validations[1].message: Invalid value: "line\nbreak": must not contain line breaks"#
        ),
    );
    has(
        &e,
        &format!(
            r#"{P}.properties[spec].x-kubernetes-validations[2].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#
        ),
    );
}

#[test]
fn status_subresource_root() {
    let opts = CrdSchemaOptions {
        status_subresource: true,
    };
    let s = json!({"type": "object", "anyOf": [{"required": ["spec"]}], "properties": {"spec": {"type": "object"}}});
    let e: Vec<String> = validate_crd_schema_with(&s, P, opts)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!("{P}: Invalid value: "))
            && e[0].ends_with(
                "fields are allowed at the root of the schema if the status subresource is enabled"
            ),
        "{e:?}"
    );
    assert!(validate_crd_schema_with(
        &json!({"type": "object", "properties": {"status": {"type": "object"}}}),
        P,
        opts
    )
    .is_empty());
}

#[test]
fn embedded_resource_defaults_are_checked_once() {
    let e = check(with_spec(json!({"type": "object", "properties": {"t": {
        "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true,
        "default": {"kind": "Pod"}
    }}})));
    assert_eq!(
        e,
        vec![format!(
            "{P}.properties[spec].properties[t].default.apiVersion: Required value"
        )]
    );
}
