//! Cases ported from structured-merge-diff's merge tests (leaf, set, multiple appliers),
//! run through the field manager (all in one API version).

mod common;

use std::collections::BTreeMap;

use canopy_apply::{
    ApplyError, FieldManager, FieldSet, ListKind, Path, PathElement, Schema, TypeDef,
};
use common::at;
use serde_json::{json, Value};

enum Op {
    Apply(&'static str, Value),
    ForceApply(&'static str, Value),
    /// An apply expected to conflict with these (manager, path) pairs.
    ApplyConflicts(&'static str, Value, Vec<(&'static str, Path)>),
    Update(&'static str, Value),
}

fn with_type(mut v: Value) -> Value {
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("T");
    v
}

fn schema(fields: Vec<(&str, TypeDef)>) -> FieldManager {
    let mut all = vec![
        ("apiVersion", TypeDef::string()),
        ("kind", TypeDef::string()),
        ("metadata", TypeDef::Deduced),
    ];
    all.extend(fields);
    FieldManager::new(Schema::new(&TypeDef::fields(all)), "v1", "T")
}

fn run(fm: &FieldManager, ops: Vec<Op>) -> Value {
    let mut live: Option<Value> = None;
    for (i, op) in ops.into_iter().enumerate() {
        let now = at(i as i64);
        live = Some(match op {
            Op::Apply(m, obj) => fm
                .apply(live.as_ref(), &with_type(obj), m, false, now)
                .unwrap_or_else(|e| panic!("op {i}: {e}")),
            Op::ForceApply(m, obj) => fm
                .apply(live.as_ref(), &with_type(obj), m, true, now)
                .unwrap_or_else(|e| panic!("op {i}: {e}")),
            Op::ApplyConflicts(m, obj, expected) => {
                match fm.apply(live.as_ref(), &with_type(obj), m, false, now) {
                    Err(ApplyError::Conflicts(c)) => {
                        let got: Vec<(String, String)> =
                            c.0.iter()
                                .map(|c| (c.manager.manager.clone(), c.path.to_string()))
                                .collect();
                        let want: Vec<(String, String)> = expected
                            .iter()
                            .map(|(m, p)| (m.to_string(), p.to_string()))
                            .collect();
                        assert_eq!(got, want, "op {i}");
                    }
                    other => panic!("op {i}: expected conflicts, got {other:?}"),
                }
                live.clone().unwrap()
            }
            Op::Update(m, obj) => {
                let new = with_type(obj);
                fm.try_update(live.as_ref(), &new, m, now)
                    .unwrap_or_else(|e| panic!("op {i}: {e}"))
            }
        });
    }
    live.unwrap()
}

fn managed(obj: &Value) -> BTreeMap<String, FieldSet> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_string(),
                        FieldSet::from_fields_v1(&e["fieldsV1"]).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn without_meta(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("metadata");
    o.remove("apiVersion");
    o.remove("kind");
    v
}

fn f(name: &str) -> PathElement {
    PathElement::field(name)
}

fn v(s: &str) -> PathElement {
    PathElement::Value(json!(s))
}

fn k(name: &str) -> PathElement {
    PathElement::key([("name", json!(name))])
}

fn p(elements: &[PathElement]) -> Path {
    Path(elements.to_vec())
}

fn set(paths: &[&[PathElement]]) -> FieldSet {
    FieldSet::from_paths(paths.iter().map(|e| p(e)))
}

fn leaf_fields() -> FieldManager {
    schema(vec![
        ("numeric", TypeDef::number()),
        ("string", TypeDef::string()),
        ("bool", TypeDef::boolean()),
    ])
}

fn sets() -> FieldManager {
    schema(vec![(
        "list",
        TypeDef::list_of(TypeDef::string(), ListKind::Set),
    )])
}

fn associative_list() -> FieldManager {
    schema(vec![(
        "list",
        TypeDef::list_of(
            TypeDef::fields([("name", TypeDef::string()), ("value", TypeDef::number())]),
            ListKind::Map(vec!["name".into()]),
        ),
    )])
}

#[test]
fn leaf_apply_update_apply_no_conflict() {
    let obj = run(
        &leaf_fields(),
        vec![
            Op::Apply("default", json!({"numeric": 1, "string": "string"})),
            Op::Update(
                "controller",
                json!({"numeric": 1, "string": "string", "bool": true}),
            ),
            Op::Apply("default", json!({"numeric": 2, "string": "string"})),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"numeric": 2, "string": "string", "bool": true})
    );
    assert_eq!(
        managed(&obj),
        BTreeMap::from([
            ("default".into(), set(&[&[f("numeric")], &[f("string")]])),
            ("controller".into(), set(&[&[f("bool")]])),
        ])
    );
}

#[test]
fn leaf_apply_update_apply_with_conflict() {
    let obj = run(
        &leaf_fields(),
        vec![
            Op::Apply("default", json!({"numeric": 1, "string": "string"})),
            Op::Update(
                "controller",
                json!({"numeric": 1, "string": "controller string", "bool": true}),
            ),
            Op::ApplyConflicts(
                "default",
                json!({"numeric": 2, "string": "user string"}),
                vec![("controller", p(&[f("string")]))],
            ),
            Op::ForceApply("default", json!({"numeric": 2, "string": "user string"})),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"numeric": 2, "string": "user string", "bool": true})
    );
    assert_eq!(
        managed(&obj),
        BTreeMap::from([
            ("default".into(), set(&[&[f("numeric")], &[f("string")]])),
            ("controller".into(), set(&[&[f("bool")]])),
        ])
    );
}

#[test]
fn leaf_apply_twice_remove() {
    let obj = run(
        &leaf_fields(),
        vec![
            Op::Apply(
                "default",
                json!({"numeric": 1, "string": "string", "bool": false}),
            ),
            Op::Apply("default", json!({"string": "new string"})),
        ],
    );
    assert_eq!(without_meta(obj.clone()), json!({"string": "new string"}));
    assert_eq!(
        managed(&obj),
        BTreeMap::from([("default".into(), set(&[&[f("string")]]))])
    );
}

#[test]
fn set_apply_twice() {
    let obj = run(
        &sets(),
        vec![
            Op::Apply("default", json!({"list": ["a", "c"]})),
            Op::Apply("default", json!({"list": ["a", "b", "c", "d"]})),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"list": ["a", "b", "c", "d"]})
    );
    let l = f("list");
    assert_eq!(
        managed(&obj),
        BTreeMap::from([(
            "default".into(),
            set(&[
                &[l.clone(), v("a")],
                &[l.clone(), v("b")],
                &[l.clone(), v("c")],
                &[l.clone(), v("d")]
            ])
        )])
    );
}

#[test]
fn set_apply_update_apply_no_overlap() {
    let obj = run(
        &sets(),
        vec![
            Op::Apply("default", json!({"list": ["a", "c"]})),
            Op::Update("controller", json!({"list": ["a", "b", "c", "d"]})),
            Op::Apply("default", json!({"list": ["a", "aprime", "c", "cprime"]})),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"list": ["a", "b", "aprime", "c", "d", "cprime"]})
    );
    let l = f("list");
    assert_eq!(
        managed(&obj),
        BTreeMap::from([
            (
                "default".into(),
                set(&[
                    &[l.clone(), v("a")],
                    &[l.clone(), v("aprime")],
                    &[l.clone(), v("c")],
                    &[l.clone(), v("cprime")]
                ])
            ),
            (
                "controller".into(),
                set(&[&[l.clone(), v("b")], &[l.clone(), v("d")]])
            ),
        ])
    );
}

#[test]
fn set_apply_update_apply_with_overlap() {
    let obj = run(
        &sets(),
        vec![
            Op::Apply("default", json!({"list": ["a", "c"]})),
            Op::Update("controller", json!({"list": ["a", "b", "c", "d"]})),
            Op::Apply("default", json!({"list": ["a", "b", "c"]})),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"list": ["a", "b", "c", "d"]})
    );
    let l = f("list");
    assert_eq!(
        managed(&obj),
        BTreeMap::from([
            (
                "default".into(),
                set(&[
                    &[l.clone(), v("a")],
                    &[l.clone(), v("b")],
                    &[l.clone(), v("c")]
                ])
            ),
            (
                "controller".into(),
                set(&[&[l.clone(), v("b")], &[l.clone(), v("d")]])
            ),
        ])
    );
}

#[test]
fn set_reorders() {
    let obj = run(
        &sets(),
        vec![
            Op::Apply("default", json!({"list": ["a", "b", "c", "d"]})),
            Op::Apply("default", json!({"list": ["a", "d", "c", "b"]})),
        ],
    );
    assert_eq!(without_meta(obj), json!({"list": ["a", "d", "c", "b"]}));
    let obj = run(
        &sets(),
        vec![
            Op::Apply("default", json!({"list": ["a", "b", "c", "d"]})),
            Op::Update("controller", json!({"list": ["a", "d", "c", "b"]})),
            Op::Apply("default", json!({"list": ["a", "b", "c", "d"]})),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"list": ["a", "b", "c", "d"]})
    );
    // Reordering a set changes no field: the controller owns nothing.
    assert_eq!(managed(&obj).keys().collect::<Vec<_>>(), ["default"]);
}

#[test]
fn set_apply_twice_remove() {
    let obj = run(
        &sets(),
        vec![
            Op::Apply("default", json!({"list": ["a", "b", "c", "d"]})),
            Op::Apply("default", json!({"list": ["a", "c"]})),
        ],
    );
    assert_eq!(without_meta(obj), json!({"list": ["a", "c"]}));
}

#[test]
fn multiple_appliers_remove_one() {
    let obj = run(
        &associative_list(),
        vec![
            Op::Apply("apply-one", json!({"list": [{"name": "a"}, {"name": "b"}]})),
            Op::Apply("apply-two", json!({"list": [{"name": "c"}]})),
            Op::Apply("apply-one", json!({"list": [{"name": "a"}]})),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"list": [{"name": "a"}, {"name": "c"}]})
    );
    let l = f("list");
    assert_eq!(
        managed(&obj),
        BTreeMap::from([
            (
                "apply-one".into(),
                set(&[&[l.clone(), k("a")], &[l.clone(), k("a"), f("name")]])
            ),
            (
                "apply-two".into(),
                set(&[&[l.clone(), k("c")], &[l.clone(), k("c"), f("name")]])
            ),
        ])
    );
}

#[test]
fn multiple_appliers_same_value_and_conflicts() {
    let obj = run(
        &associative_list(),
        vec![
            Op::Apply("apply-one", json!({"list": [{"name": "a", "value": 0}]})),
            Op::Apply("apply-two", json!({"list": [{"name": "a", "value": 0}]})),
        ],
    );
    assert_eq!(managed(&obj).len(), 2);
    let l = f("list");
    let obj = run(
        &associative_list(),
        vec![
            Op::Apply("apply-one", json!({"list": [{"name": "a", "value": 0}]})),
            Op::ApplyConflicts(
                "apply-two",
                json!({"list": [{"name": "a", "value": 1}]}),
                vec![("apply-one", p(&[l.clone(), k("a"), f("value")]))],
            ),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"list": [{"name": "a", "value": 0}]})
    );
    assert_eq!(managed(&obj).keys().collect::<Vec<_>>(), ["apply-one"]);
}

#[test]
fn multiple_appliers_remove_one_keep_one() {
    let obj = run(
        &associative_list(),
        vec![
            Op::Apply(
                "apply-one",
                json!({"list": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            ),
            Op::Apply("apply-two", json!({"list": [{"name": "c"}, {"name": "d"}]})),
            Op::Apply("apply-one", json!({"list": [{"name": "a"}]})),
        ],
    );
    assert_eq!(
        without_meta(obj.clone()),
        json!({"list": [{"name": "a"}, {"name": "c"}, {"name": "d"}]})
    );
    let l = f("list");
    assert_eq!(
        managed(&obj)["apply-two"],
        set(&[
            &[l.clone(), k("c")],
            &[l.clone(), k("d")],
            &[l.clone(), k("c"), f("name")],
            &[l.clone(), k("d"), f("name")]
        ])
    );
}
