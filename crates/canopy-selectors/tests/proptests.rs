//! Property tests: display/parse round trips, agreement of `matches` with a
//! simple reference model, and a parser that never panics.

use std::collections::{BTreeMap, HashMap};

use canopy_selectors::field;
use canopy_selectors::label::{self, Operator, Requirement, Selector};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// A requirement as the reference model sees it.
#[derive(Debug, Clone)]
enum RefReq {
    Eq(String, String, bool), // bool: spelled "=="
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, u32),
    Lt(String, u32),
}

/// The value set of `k in (...)`: kube reads `()` as `{""}`.
fn set_of(vals: &[String]) -> Vec<String> {
    if vals.is_empty() {
        vec![String::new()]
    } else {
        vals.to_vec()
    }
}

impl RefReq {
    fn eval(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k).map(String::as_str);
        let int = |k: &String| get(k).and_then(|v| v.parse::<i64>().ok());
        match self {
            RefReq::Eq(k, v, _) => get(k) == Some(v.as_str()),
            RefReq::Ne(k, v) => get(k) != Some(v.as_str()),
            RefReq::In(k, vs) => get(k).is_some_and(|x| set_of(vs).iter().any(|v| v == x)),
            RefReq::NotIn(k, vs) => !get(k).is_some_and(|x| set_of(vs).iter().any(|v| v == x)),
            RefReq::Exists(k) => labels.contains_key(k),
            RefReq::NotExists(k) => !labels.contains_key(k),
            RefReq::Gt(k, n) => int(k).is_some_and(|x| x > i64::from(*n)),
            RefReq::Lt(k, n) => int(k).is_some_and(|x| x < i64::from(*n)),
        }
    }

    /// Render with the given optional (`o`) and required (`r`) whitespace.
    fn render(&self, o: &str, r: &str) -> String {
        match self {
            RefReq::Eq(k, v, dbl) => {
                format!("{o}{k}{o}{}{o}{v}{o}", if *dbl { "==" } else { "=" })
            }
            RefReq::Ne(k, v) => format!("{o}{k}{o}!={o}{v}{o}"),
            RefReq::In(k, vs) => {
                format!("{o}{k}{r}in{o}({o}{}{o}){o}", vs.join(&format!("{o},{o}")))
            }
            RefReq::NotIn(k, vs) => {
                format!(
                    "{o}{k}{r}notin{o}({o}{}{o}){o}",
                    vs.join(&format!("{o},{o}"))
                )
            }
            RefReq::Exists(k) => format!("{o}{k}{o}"),
            RefReq::NotExists(k) => format!("{o}!{o}{k}{o}"),
            RefReq::Gt(k, n) => format!("{o}{k}{o}>{o}{n}{o}"),
            RefReq::Lt(k, n) => format!("{o}{k}{o}<{o}{n}{o}"),
        }
    }

    /// The same requirement built through the public constructor.
    fn build(&self) -> Requirement {
        let none: Vec<String> = Vec::new();
        let r = match self {
            RefReq::Eq(k, v, false) => Requirement::new(k.clone(), Operator::Equals, [v.clone()]),
            RefReq::Eq(k, v, true) => {
                Requirement::new(k.clone(), Operator::DoubleEquals, [v.clone()])
            }
            RefReq::Ne(k, v) => Requirement::new(k.clone(), Operator::NotEquals, [v.clone()]),
            RefReq::In(k, vs) => Requirement::new(k.clone(), Operator::In, set_of(vs)),
            RefReq::NotIn(k, vs) => Requirement::new(k.clone(), Operator::NotIn, set_of(vs)),
            RefReq::Exists(k) => Requirement::new(k.clone(), Operator::Exists, none),
            RefReq::NotExists(k) => Requirement::new(k.clone(), Operator::DoesNotExist, none),
            RefReq::Gt(k, n) => Requirement::new(k.clone(), Operator::GreaterThan, [n.to_string()]),
            RefReq::Lt(k, n) => Requirement::new(k.clone(), Operator::LessThan, [n.to_string()]),
        };
        r.expect("generated requirements are valid")
    }
}

fn small_key() -> BoxedStrategy<String> {
    prop::sample::select(vec!["a", "b", "in", "notin", "x.y/z", "k8s.io/n"])
        .prop_map(String::from)
        .boxed()
}

fn small_value() -> BoxedStrategy<String> {
    prop::sample::select(vec!["", "1", "2", "10", "v", "in", "notin"])
        .prop_map(String::from)
        .boxed()
}

/// Valid qualified names, with and without a DNS prefix.
fn any_key() -> BoxedStrategy<String> {
    "([a-z0-9]([-a-z0-9]{0,4}[a-z0-9])?(\\.[a-z0-9]{1,3}){0,2}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?".boxed()
}

/// Valid label values (possibly empty).
fn any_value() -> BoxedStrategy<String> {
    "([A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?".boxed()
}

fn ref_req(
    key: BoxedStrategy<String>,
    value: BoxedStrategy<String>,
) -> impl Strategy<Value = RefReq> {
    let vals = prop::collection::vec(value.clone(), 0..4);
    prop_oneof![
        (key.clone(), value.clone(), any::<bool>()).prop_map(|(k, v, d)| RefReq::Eq(k, v, d)),
        (key.clone(), value).prop_map(|(k, v)| RefReq::Ne(k, v)),
        (key.clone(), vals.clone()).prop_map(|(k, v)| RefReq::In(k, v)),
        (key.clone(), vals).prop_map(|(k, v)| RefReq::NotIn(k, v)),
        key.clone().prop_map(RefReq::Exists),
        key.clone().prop_map(RefReq::NotExists),
        (key.clone(), 0u32..20).prop_map(|(k, n)| RefReq::Gt(k, n)),
        (key, 0u32..20).prop_map(|(k, n)| RefReq::Lt(k, n)),
    ]
}

fn render_all(reqs: &[RefReq], o: &str, r: &str) -> String {
    reqs.iter()
        .map(|q| q.render(o, r))
        .collect::<Vec<_>>()
        .join(",")
}

fn optional_ws() -> BoxedStrategy<String> {
    "[ \t\r\n]{0,2}".boxed()
}

fn required_ws() -> BoxedStrategy<String> {
    "[ \t\r\n]{1,2}".boxed()
}

fn object_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    let v = prop::sample::select(vec!["", "1", "2", "10", "-3", "v", "in", "x y"])
        .prop_map(String::from);
    prop::collection::btree_map(small_key(), v, 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (1) parse(display(s)) == s, for selectors written with arbitrary
    /// whitespace and for selectors built with the constructors.
    #[test]
    fn label_display_round_trips(
        reqs in prop::collection::vec(ref_req(any_key(), any_value()), 0..6),
        o in optional_ws(),
        r in required_ws(),
    ) {
        let text = render_all(&reqs, &o, &r);
        let parsed = label::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let shown = parsed.to_string();
        let reparsed = label::parse(&shown).map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
        prop_assert_eq!(&reparsed, &parsed);
        prop_assert_eq!(reparsed.to_string(), shown.clone());

        let built = Selector::from_requirements(reqs.iter().map(RefReq::build));
        prop_assert_eq!(&built, &parsed);
        prop_assert_eq!(label::parse(&built.to_string()).ok(), Some(built.clone()));

        // Sorted by key.
        let keys: Vec<&str> = parsed.requirements().iter().map(|q| q.key()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys, sorted);
    }

    /// (2) matches() agrees with the reference model, through every label
    /// source.
    #[test]
    fn label_matches_reference_model(
        reqs in prop::collection::vec(ref_req(small_key(), small_value()), 0..5),
        labels in object_labels(),
        o in optional_ws(),
        r in required_ws(),
    ) {
        let text = render_all(&reqs, &o, &r);
        let sel = label::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let want = reqs.iter().all(|q| q.eval(&labels));
        prop_assert_eq!(sel.matches(&labels), want, "selector {:?} labels {:?}", text, labels);

        let hm: HashMap<String, String> = labels.clone().into_iter().collect();
        prop_assert_eq!(sel.matches(&hm), want);
        let json: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        prop_assert_eq!(sel.matches(Some(&json)), want);
        // Each requirement individually agrees too.
        for (q, rr) in reqs.iter().zip(reqs.iter().map(RefReq::build)) {
            prop_assert_eq!(rr.matches(&labels), q.eval(&labels), "{:?}", q);
        }
    }

    /// (2b) the structured form agrees with the string form.
    #[test]
    fn structured_form_agrees_with_string_form(
        match_labels in prop::collection::btree_map(small_key(), small_value(), 0..3),
        exprs in prop::collection::vec(
            (small_key(), 0usize..4, prop::collection::vec(small_value(), 1..3)),
            0..3,
        ),
        labels in object_labels(),
    ) {
        let ops = ["In", "NotIn", "Exists", "DoesNotExist"];
        let json_exprs: Vec<serde_json::Value> = exprs
            .iter()
            .map(|(k, op, vs)| {
                let vs: &[String] = if *op >= 2 { &[] } else { vs };
                serde_json::json!({"key": k, "operator": ops[*op], "values": vs})
            })
            .collect();
        let v = serde_json::json!({"matchLabels": match_labels, "matchExpressions": json_exprs});
        let sel = Selector::from_label_selector_json(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut parts: Vec<String> = match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for (k, op, vs) in &exprs {
            parts.push(match *op {
                0 => format!("{k} in ({})", vs.join(",")),
                1 => format!("{k} notin ({})", vs.join(",")),
                2 => k.clone(),
                _ => format!("!{k}"),
            });
        }
        let text = parts.join(",");
        let from_text = label::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(sel.matches(&labels), from_text.matches(&labels));
        prop_assert_eq!(sel.to_string(), from_text.to_string());
    }

    /// (3) the parser never panics; whatever it accepts round-trips.
    #[test]
    fn label_parse_never_panics_arbitrary(s in any::<String>()) {
        check_label_round_trip(&s)?;
    }

    #[test]
    fn label_parse_never_panics_token_soup(
        toks in prop::collection::vec(
            prop::sample::select(vec![
                "a", "b", "in", "notin", "1", "-", "x.y/z", "/", "=", "==", "!=", "!", "(", ")",
                ",", ">", "<", " ", "\t", "\0", "é", "", "A_b", "a..b",
            ]),
            0..16,
        ),
    ) {
        check_label_round_trip(&toks.concat())?;
    }
}

fn check_label_round_trip(s: &str) -> Result<(), TestCaseError> {
    if let Ok(sel) = label::parse(s) {
        let shown = sel.to_string();
        let again = label::parse(&shown)
            .map_err(|e| TestCaseError::fail(format!("{s:?} -> {shown:?}: {e}")))?;
        prop_assert_eq!(again, sel);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

fn field_req() -> impl Strategy<Value = field::Requirement> {
    (
        prop::sample::select(vec!["a", "b", "metadata.name", "spec.x"]),
        prop::sample::select(vec![
            field::Operator::Equals,
            field::Operator::DoubleEquals,
            field::Operator::NotEquals,
        ]),
        "[a-c,=\\\\! é]{0,5}",
    )
        .prop_map(|(f, operator, value)| field::Requirement {
            field: f.to_owned(),
            operator,
            value,
        })
}

fn object_fields() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(vec!["a", "b", "metadata.name", "spec.x"]).prop_map(String::from),
        "[a-c,=]{0,2}",
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (1) rendering escaped terms and parsing gives back the terms, sorted
    /// by their text; display round-trips.
    #[test]
    fn field_round_trip(reqs in prop::collection::vec(field_req(), 0..6), commas in 0usize..3) {
        let terms: Vec<String> = reqs
            .iter()
            .map(|r| format!("{}{}{}", r.field, r.operator, field::escape_value(&r.value)))
            .collect();
        let text = format!("{}{}", terms.join(","), ",".repeat(commas));
        let sel = field::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let mut expected: Vec<(String, field::Requirement)> =
            terms.into_iter().zip(reqs.iter().cloned()).collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<field::Requirement> = expected.into_iter().map(|(_, r)| r).collect();
        prop_assert_eq!(sel.requirements(), expected.as_slice());
        prop_assert_eq!(field::parse(&sel.to_string()).ok(), Some(sel.clone()));
    }

    /// (2) matches() agrees with a reference model (absent compares as "").
    #[test]
    fn field_matches_reference_model(
        reqs in prop::collection::vec(field_req(), 0..4),
        fields in object_fields(),
    ) {
        let sel = field::Selector::from_requirements(reqs.clone());
        let got = sel.matches(|f| fields.get(f).cloned());
        let want = reqs.iter().all(|r| {
            let actual = fields.get(&r.field).map(String::as_str).unwrap_or("");
            match r.operator {
                field::Operator::NotEquals => actual != r.value,
                _ => actual == r.value,
            }
        });
        prop_assert_eq!(got, want);
        let reparsed = field::parse(&sel.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(reparsed.matches(|f| fields.get(f).cloned()), want);
        // exact_match reports the first pinning term.
        for f in ["a", "b", "metadata.name", "spec.x"] {
            let first = reqs.iter().find(|r| r.field == f && r.operator != field::Operator::NotEquals);
            prop_assert_eq!(sel.exact_match(f), first.map(|r| r.value.as_str()));
        }
    }

    /// (3) never panics; accepted input round-trips.
    #[test]
    fn field_parse_never_panics(s in any::<String>()) {
        check_field_round_trip(&s)?;
    }

    #[test]
    fn field_parse_never_panics_soup(s in "[a-c=!,\\\\ é]{0,24}") {
        check_field_round_trip(&s)?;
    }
}

fn check_field_round_trip(s: &str) -> Result<(), TestCaseError> {
    if let Ok(sel) = field::parse(s) {
        let shown = sel.to_string();
        let again = field::parse(&shown)
            .map_err(|e| TestCaseError::fail(format!("{s:?} -> {shown:?}: {e}")))?;
        prop_assert_eq!(again, sel);
    }
    Ok(())
}
