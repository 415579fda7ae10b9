//! Property tests: FieldsV1 round trips, set algebra against a model, idempotent apply, and
//! no panic on arbitrary JSON.

mod common;

use std::collections::BTreeSet;

use canopy_apply::{
    decode_managed_fields, validate_managed_fields, FieldManager, FieldSet, Path, PathElement,
    Schema,
};
use common::*;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        "[a-z<>&\"\\\\ é]{0,6}".prop_map(Value::from),
        // serde_json's default float parsing is not exact to the last bit, so floats are
        // drawn from those that survive a text round trip.
        (-4_000_000i64..4_000_000).prop_map(|n| json!(n as f64 / 8.0)),
        Just(json!(1e21)),
    ]
}

fn path_element() -> impl Strategy<Value = PathElement> {
    prop_oneof![
        4 => "[a-zA-Z0-9.:/\"{}é -]{0,8}".prop_map(PathElement::Field),
        2 => proptest::collection::btree_map("[a-z]{1,5}", scalar(), 1..3)
            .prop_map(PathElement::key),
        1 => scalar().prop_map(PathElement::Value),
        1 => (0i64..100).prop_map(PathElement::Index),
    ]
}

fn path() -> impl Strategy<Value = Path> {
    proptest::collection::vec(path_element(), 1..5).prop_map(Path)
}

/// Paths over a small alphabet, so that sets share prefixes and members.
fn small_path() -> impl Strategy<Value = Path> {
    proptest::collection::vec(
        prop_oneof![
            3 => prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(PathElement::field),
            1 => (0i64..2).prop_map(|i| PathElement::key([("k", json!(i))])),
        ],
        1..4,
    )
    .prop_map(Path)
}

fn small_set() -> impl Strategy<Value = (FieldSet, BTreeSet<Path>)> {
    proptest::collection::btree_set(small_path(), 0..8)
        .prop_map(|paths| (FieldSet::from_paths(paths.iter().cloned()), paths))
}

fn model(s: &FieldSet) -> BTreeSet<Path> {
    s.paths().into_iter().collect()
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![Just(Value::Null), scalar()];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("managedFields".to_string()),
                    Just("labels".to_string()),
                    Just("containers".to_string()),
                    Just("name".to_string()),
                    Just("tags".to_string()),
                    Just("items".to_string()),
                    "[a-z:.]{0,4}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// A valid Widget configuration.
fn widget_config() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(0i64..10),
        proptest::option::of("[a-c]{1,2}"),
        proptest::option::of(proptest::collection::btree_set("[a-d]", 0..4)),
        proptest::option::of(proptest::collection::vec("[a-d]", 0..3)),
        proptest::option::of(proptest::collection::btree_map("[a-d]", "[x-z]", 0..3)),
        proptest::option::of(proptest::collection::btree_map("[a-d]", "[x-z]{0,2}", 0..3)),
        proptest::option::of(proptest::collection::btree_map("[a-c]", arb_json(), 0..3)),
        proptest::option::of(proptest::collection::btree_map("[a-d]", "[x-z]", 0..3)),
    )
        .prop_map(|(size, color, tags, args, params, items, extra, labels)| {
            let mut spec = Map::new();
            if let Some(s) = size {
                spec.insert("size".into(), json!(s));
            }
            if let Some(c) = color {
                spec.insert("color".into(), json!(c));
            }
            if let Some(t) = tags {
                spec.insert("tags".into(), json!(t.into_iter().collect::<Vec<_>>()));
            }
            if let Some(a) = args {
                spec.insert("args".into(), json!(a));
            }
            if let Some(p) = params {
                spec.insert("params".into(), json!(p));
            }
            if let Some(i) = items {
                let items: Vec<Value> = i
                    .into_iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect();
                spec.insert("items".into(), json!(items));
            }
            if let Some(e) = extra {
                spec.insert("extra".into(), json!(e));
            }
            let mut meta = json!({"name": "w"});
            if let Some(l) = labels {
                meta["labels"] = json!(l);
            }
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta, "spec": spec})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fields_v1_round_trip(paths in proptest::collection::vec(path(), 0..10)) {
        let set = FieldSet::from_paths(paths.clone());
        let json = set.to_fields_v1();
        prop_assert_eq!(&FieldSet::from_fields_v1(&json).unwrap(), &set);
        let text = set.to_fields_v1_string();
        prop_assert_eq!(&FieldSet::from_fields_v1_str(&text).unwrap(), &set);
        for p in &paths {
            prop_assert!(set.has(&p.0));
        }
        prop_assert_eq!(set.len(), model(&set).len());
    }

    #[test]
    fn path_elements_round_trip(pe in path_element()) {
        let text = pe.serialize();
        prop_assert_eq!(PathElement::deserialize(&text).unwrap(), Some(pe));
    }

    #[test]
    fn set_algebra_matches_the_model((a, ma) in small_set(), (b, mb) in small_set()) {
        prop_assert_eq!(model(&a), ma.clone());
        let union = a.union(&b);
        prop_assert_eq!(model(&union), ma.union(&mb).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(model(&a.intersection(&b)), ma.intersection(&mb).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(model(&a.difference(&b)), ma.difference(&mb).cloned().collect::<BTreeSet<_>>());
        let rd: BTreeSet<Path> = ma
            .iter()
            .filter(|p| !(1..=p.0.len()).any(|n| mb.contains(&Path(p.0[..n].to_vec()))))
            .cloned()
            .collect();
        prop_assert_eq!(model(&a.recursive_difference(&b)), rd);
        // Laws.
        prop_assert_eq!(&a.union(&b), &b.union(&a));
        prop_assert_eq!(&union.difference(&b).union(&a.intersection(&b)), &a);
        prop_assert!(a.difference(&b).intersection(&b).is_empty());
        prop_assert_eq!(&a.union(&a), &a);
        prop_assert_eq!(&a.difference(&a), &FieldSet::new());
        // Round trip of results.
        prop_assert_eq!(&FieldSet::from_fields_v1(&union.to_fields_v1()).unwrap(), &union);
    }

    #[test]
    fn applying_twice_changes_nothing(a in widget_config(), b in widget_config()) {
        let fm = widgets();
        let live = stored(fm.apply(None, &b, "b", false, at(0)).unwrap());
        let once = stored(fm.apply(Some(&live), &a, "a", true, at(1)).unwrap());
        let twice = fm.apply(Some(&once), &a, "a", true, at(2)).unwrap();
        prop_assert_eq!(&twice, &once);
        let thrice = fm.apply(Some(&once), &a, "a", false, at(3)).unwrap();
        prop_assert_eq!(&thrice, &once);
        // A no-op update leaves managedFields alone.
        let same = fm.update(Some(&once), &once, "c", at(4));
        prop_assert_eq!(&same, &once);
    }

    #[test]
    fn applied_fields_are_owned(a in widget_config()) {
        let fm = widgets();
        let obj = fm.apply(None, &a, "a", false, at(0)).unwrap();
        let owned = fm.field_set(&a).unwrap();
        let entries = obj["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        if owned.is_empty() {
            prop_assert!(entries.is_empty());
        } else {
            prop_assert_eq!(entries.len(), 1);
            prop_assert_eq!(FieldSet::from_fields_v1(&entries[0]["fieldsV1"]).unwrap(), owned);
        }
    }

    #[test]
    fn no_panic_on_arbitrary_json(live in arb_json(), applied in arb_json(), new in arb_json(), typed in any::<bool>()) {
        let deduced = FieldManager::new(Schema::deduced(), "v1", "Thing");
        let managers = [
            (deduced, "v1", "Thing"),
            (widgets(), "example.com/v1", "Widget"),
            (deployments(), "apps/v1", "Deployment"),
            (configmaps().lenient(true), "v1", "ConfigMap"),
        ];
        for (fm, api_version, kind) in &managers {
            let mut applied = applied.clone();
            if typed {
                if let Value::Object(m) = &mut applied {
                    m.insert("apiVersion".into(), json!(api_version));
                    m.insert("kind".into(), json!(kind));
                }
            }
            let _ = fm.apply(Some(&live), &applied, "m", typed, at(0));
            let _ = fm.apply(None, &applied, "kubectl", false, at(0));
            let _ = fm.update(Some(&live), &new, "u", at(0));
            let _ = fm.update(None, &new, "", at(0));
            let _ = fm.field_set(&new);
        }
        let _ = FieldSet::from_fields_v1(&live);
        let _ = decode_managed_fields(&json!({"metadata": {"managedFields": live}}));
        let _ = validate_managed_fields(&json!({"metadata": {"managedFields": new}}));
        let _ = Schema::from_openapi_v3(&applied, live.as_object());
        let _ = Schema::for_custom_resource(&applied);
    }
}
