//! Behavioural tests for label selectors (cases taken from kube's
//! `labels/selector_test.go` semantics).

use std::collections::{BTreeMap, HashMap};

use canopy_selectors::label::{self, LabelLookup, LabelSource, Operator, Requirement, Selector};
use canopy_selectors::SelectorError;
use serde_json::json;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn matches(sel: &str, pairs: &[(&str, &str)]) -> bool {
    label::parse(sel)
        .unwrap_or_else(|e| panic!("{sel:?} should parse: {e}"))
        .matches(labels(pairs))
}

fn err(sel: &str) -> String {
    match label::parse(sel) {
        Ok(s) => panic!("{sel:?} should not parse, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

const NAME_REGEX_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_REGEX_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

#[test]
fn equals_and_double_equals() {
    for sel in ["x=a", "x==a"] {
        assert!(matches(sel, &[("x", "a")]));
        assert!(!matches(sel, &[("x", "b")]));
        assert!(!matches(sel, &[]));
        assert!(!matches(sel, &[("y", "a")]));
    }
    let s = label::parse("x==a").unwrap();
    assert_eq!(s.requirements()[0].operator(), Operator::DoubleEquals);
    let s = label::parse("x=a").unwrap();
    assert_eq!(s.requirements()[0].operator(), Operator::Equals);
}

#[test]
fn not_equals_matches_missing_label() {
    assert!(matches("x!=a", &[]));
    assert!(matches("x!=a", &[("x", "b")]));
    assert!(!matches("x!=a", &[("x", "a")]));
}

#[test]
fn in_and_notin() {
    assert!(matches("x in (a,b)", &[("x", "a")]));
    assert!(matches("x in (a,b)", &[("x", "b")]));
    assert!(!matches("x in (a,b)", &[("x", "c")]));
    assert!(!matches("x in (a,b)", &[]));
    assert!(matches("x notin (a,b)", &[]));
    assert!(matches("x notin (a,b)", &[("x", "c")]));
    assert!(!matches("x notin (a,b)", &[("x", "a")]));
    // kube reads "()" as the set {""}, for in and notin alike.
    let s = label::parse("x in ()").unwrap();
    assert_eq!(
        s.requirements()[0].values().iter().collect::<Vec<_>>(),
        vec![""]
    );
    assert!(matches("x in ()", &[("x", "")]));
    assert!(!matches("x in ()", &[("x", "a")]));
    assert!(matches("x notin ()", &[("x", "a")]));
    assert!(matches("x notin ()", &[]));
    assert!(!matches("x notin ()", &[("x", "")]));
    // Empty members from stray commas.
    let s = label::parse("x in (,a,,b,)").unwrap();
    assert_eq!(
        s.requirements()[0].values().iter().collect::<Vec<_>>(),
        vec!["", "a", "b"]
    );
}

#[test]
fn exists_and_does_not_exist() {
    assert!(matches("x", &[("x", "")]));
    assert!(!matches("x", &[("y", "a")]));
    assert!(matches("!x", &[("y", "a")]));
    assert!(!matches("!x", &[("x", "a")]));
    let s = label::parse("x,!y").unwrap();
    let ops: Vec<_> = s.requirements().iter().map(|r| r.operator()).collect();
    assert_eq!(ops, vec![Operator::Exists, Operator::DoesNotExist]);
}

#[test]
fn greater_and_less_than() {
    assert!(matches("x>5", &[("x", "6")]));
    assert!(!matches("x>5", &[("x", "5")]));
    assert!(!matches("x>5", &[("x", "abc")]));
    assert!(!matches("x>5", &[]));
    assert!(matches("x<5", &[("x", "-3")]));
    assert!(!matches("x<5", &[("x", "5")]));
    assert!(!matches("x<5", &[]));
    assert!(matches("x>0", &[("x", "+1")]));
    assert!(!matches(
        "x<9223372036854775807",
        &[("x", "9223372036854775808")]
    ));
}

#[test]
fn empty_value_and_empty_selector() {
    assert!(matches("x=", &[("x", "")]));
    assert!(!matches("x=", &[("x", "a")]));
    assert!(matches("x=,y=b", &[("x", ""), ("y", "b")]));
    for s in ["", "   ", "\t\n"] {
        let sel = label::parse(s).unwrap();
        assert!(sel.is_empty());
        assert!(sel.matches(labels(&[("a", "b")])));
        assert_eq!(sel.to_string(), "");
    }
}

#[test]
fn whitespace_tolerance() {
    let canonical = "a=b,c in (d,e),!f,g";
    for s in [
        "a=b,c in (d,e),!f,g",
        "  a = b ,\tc in(d , e) ,\n! f , g  ",
        "a=b , c  in  ( e ,d )  , !f,g",
    ] {
        assert_eq!(label::parse(s).unwrap().to_string(), canonical, "{s:?}");
    }
}

#[test]
fn keywords_are_identifiers_in_key_and_value_position() {
    let s = label::parse("in in (in,notin),notin=notin").unwrap();
    assert_eq!(s.to_string(), "in in (in,notin),notin=notin");
    assert!(s.matches(labels(&[("in", "notin"), ("notin", "notin")])));
}

#[test]
fn display_is_canonical_sorted_by_key() {
    let s = label::parse("z=1,a in (c,b,c),!m,k notin (y,x),n>3,o<4,p==q,r!=s").unwrap();
    assert_eq!(
        s.to_string(),
        "a in (b,c),k notin (x,y),!m,n>3,o<4,p==q,r!=s,z=1"
    );
    // Same key keeps input order (stable sort).
    let s = label::parse("b=2,a!=1,a=3").unwrap();
    assert_eq!(s.to_string(), "a!=1,a=3,b=2");
}

#[test]
fn prefixed_keys() {
    assert!(matches(
        "app.kubernetes.io/name=web",
        &[("app.kubernetes.io/name", "web")]
    ));
    assert_eq!(
        err("Example.com/a=b"),
        "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
}

#[test]
fn syntax_errors_worded_like_kube() {
    let cases = [
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b,,c=d", "found ',', expected: identifier after ','"),
        (
            ",a",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        (
            "=a",
            "found '=', expected: !, identifier, or 'end of string'",
        ),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a==b==c", "found '==', expected: ',' or 'end of string'"),
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "a!b",
            "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "a in b",
            "unable to parse requirement: found 'b' expected: '('",
        ),
        (
            "a notin",
            "unable to parse requirement: found '' expected: '('",
        ),
        (
            "a in (",
            "unable to parse requirement: found '', expected: ',', ')' or identifier",
        ),
        (
            "a in (b",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "a in (b c)",
            "unable to parse requirement: found 'c', expected: ',' or ')'",
        ),
        (
            "a in (b,=)",
            "unable to parse requirement: found '=', expected: ',', or identifier",
        ),
        (
            "a=(",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        (
            "!",
            "unable to parse requirement: found '', expected: identifier",
        ),
        (
            "!=a",
            "found '!=', expected: !, identifier, or 'end of string'",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(err(input), want, "input {input:?}");
    }
}

#[test]
fn validation_errors_worded_like_kube() {
    assert_eq!(
        err("a>b"),
        "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
    );
    assert_eq!(
        err("a>-1"),
        format!(
            "unable to parse requirement: values[0][a]: Invalid value: \"-1\": {VALUE_REGEX_MSG}"
        )
    );
    assert_eq!(
        err("a<-"),
        format!("unable to parse requirement: [values[0]: Invalid value: \"-\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][a]: Invalid value: \"-\": {VALUE_REGEX_MSG}]")
    );
    assert_eq!(
        err("a@b=c"),
        format!("unable to parse requirement: <nil>: Invalid value: \"a@b\": {NAME_REGEX_MSG}")
    );
    assert_eq!(
        err("x=a||y"),
        format!(
            "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {VALUE_REGEX_MSG}"
        )
    );
    let long = "v".repeat(64);
    assert_eq!(
        err(&format!("k in ({long})")),
        format!("unable to parse requirement: values[0][k]: Invalid value: \"{long}\": must be no more than 63 bytes")
    );
    let long_key = "k".repeat(64);
    assert_eq!(
        err(&long_key),
        format!("unable to parse requirement: <nil>: Invalid value: \"{long_key}\": name part must be no more than 63 bytes")
    );
    assert!(err("a/b/c=d").contains("a valid label key must consist of alphanumeric characters"));
    assert!(err("é=b").contains("<nil>: Invalid value: \"é\""));
    assert!(matches!(
        label::parse("x=a||y"),
        Err(SelectorError::Requirement(_))
    ));
}

#[test]
fn nul_byte_acts_like_go_end_of_input() {
    // Go's lexer reads byte 0 as end of input at a token boundary.
    assert_eq!(label::parse("a=b\0").unwrap().to_string(), "a=b");
    assert_eq!(label::parse("a= \0b").unwrap().to_string(), "a=");
    // ... and as a separator when it ends a token.
    assert_eq!(label::parse("a=\0b").unwrap().to_string(), "a=b");
    assert_eq!(err("a=b\0c"), "found 'c', expected: ',' or 'end of string'");
}

#[test]
fn requirement_constructor_validates() {
    let r = Requirement::new("x", Operator::In, ["b", "a", "b"]).unwrap();
    assert_eq!(r.to_string(), "x in (a,b)");
    assert_eq!(
        Requirement::new("x", Operator::In, Vec::<String>::new())
            .unwrap_err()
            .to_string(),
        "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        Requirement::new("x", Operator::Equals, ["foo", "bar"])
            .unwrap_err()
            .to_string(),
        "values: Invalid value: [\"foo\",\"bar\"]: exact-match compatibility requires one single value"
    );
    assert_eq!(
        Requirement::new("x", Operator::Exists, ["foo"])
            .unwrap_err()
            .to_string(),
        "values: Invalid value: [\"foo\"]: values set must be empty for exists and does not exist"
    );
    assert_eq!(
        Requirement::new("x", Operator::GreaterThan, ["1", "2"])
            .unwrap_err()
            .to_string(),
        "values: Invalid value: [\"1\",\"2\"]: for 'Gt', 'Lt' operators, exactly one value is required"
    );
    assert_eq!(
        Requirement::new("-x", Operator::Exists, Vec::<String>::new())
            .unwrap_err()
            .to_string(),
        format!("key: Invalid value: \"-x\": {NAME_REGEX_MSG}")
    );
    assert!(Requirement::new("x", Operator::LessThan, ["6"]).is_ok());
}

#[test]
fn requires_exact_match() {
    let s = label::parse("a=1,b==2,c in (3),d in (4,5),e!=6").unwrap();
    assert_eq!(s.requires_exact_match("a"), Some("1"));
    assert_eq!(s.requires_exact_match("b"), Some("2"));
    assert_eq!(s.requires_exact_match("c"), Some("3"));
    assert_eq!(s.requires_exact_match("d"), None);
    assert_eq!(s.requires_exact_match("e"), None);
    assert_eq!(s.requires_exact_match("z"), None);
}

#[test]
fn label_sources() {
    let sel = label::parse("a=1,b!=2,!c").unwrap();
    let mut hm: HashMap<String, String> = HashMap::new();
    hm.insert("a".into(), "1".into());
    assert!(sel.matches(&hm));
    let bm: BTreeMap<&str, &str> = BTreeMap::from([("a", "1"), ("b", "2")]);
    assert!(!sel.matches(&bm));

    let obj = json!({"a": "1", "b": "3"});
    let map = obj.as_object();
    assert!(sel.matches(map));
    assert!(!label::parse("a")
        .unwrap()
        .matches(None::<&serde_json::Map<_, _>>));
    assert!(label::parse("!a")
        .unwrap()
        .matches(None::<&serde_json::Map<_, _>>));
    // Non-string JSON values never match, whatever the operator.
    let odd = json!({"a": 1, "b": true});
    for s in ["a=1", "a!=2", "a", "!a", "a notin (x)", "a>0", "b"] {
        assert!(
            !label::parse(s).unwrap().matches(odd.as_object()),
            "{s} must not match non-string labels"
        );
    }
    assert!(label::parse("c!=x").unwrap().matches(odd.as_object()));
    assert_eq!(
        odd.as_object().unwrap().lookup("a"),
        LabelLookup::NotAString
    );
    // A whole JSON value works too; null has no labels.
    assert!(label::parse("!a")
        .unwrap()
        .matches(&serde_json::Value::Null));
    assert!(!label::parse("!a").unwrap().matches(json!("str")));
}

#[test]
fn structured_label_selector() {
    let v = json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "Exists", "values": []}
        ]
    });
    let s = Selector::from_label_selector_json(&v).unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,!canary,env notin (prod),tier in (a,b),zone"
    );
    assert!(s.matches(labels(&[("app", "web"), ("tier", "a"), ("zone", "z")])));
    assert!(!s.matches(labels(&[("app", "web"), ("tier", "c"), ("zone", "z")])));
    assert_eq!(s, label::parse(&s.to_string()).unwrap());

    let everything = Selector::from_label_selector_json(&json!({})).unwrap();
    assert!(everything.is_empty());
    assert!(everything.matches(labels(&[])));
    let everything =
        Selector::from_label_selector_json(&json!({"matchLabels": {}, "matchExpressions": []}))
            .unwrap();
    assert!(everything.is_empty());

    let nothing = Selector::from_label_selector_json(&serde_json::Value::Null).unwrap();
    assert!(nothing.matches_nothing());
    assert!(!nothing.is_empty());
    assert!(!nothing.matches(labels(&[])));
    assert_eq!(nothing.to_string(), "");
}

#[test]
fn structured_label_selector_errors() {
    let e = |v: serde_json::Value| {
        Selector::from_label_selector_json(&v)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        e(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
        "\"Gt\" is not a valid label selector operator"
    );
    assert_eq!(
        e(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
        "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        e(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
        "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
    );
    assert_eq!(
        e(json!({"matchLabels": {"a": "-x"}})),
        format!("values[0][a]: Invalid value: \"-x\": {VALUE_REGEX_MSG}")
    );
    assert_eq!(
        e(json!({"matchExpressions": [{"operator": "Exists"}]})),
        "key: Invalid value: \"\": name part must be non-empty; ".to_owned() + NAME_REGEX_MSG
    );
    assert!(matches!(
        Selector::from_label_selector_json(&json!({"matchLabels": {"a": 1}})),
        Err(SelectorError::MalformedLabelSelector(_))
    ));
    assert!(matches!(
        Selector::from_label_selector_json(&json!([])),
        Err(SelectorError::MalformedLabelSelector(_))
    ));
    assert!(matches!(
        Selector::from_label_selector_json(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]})
        ),
        Err(SelectorError::MalformedLabelSelector(_))
    ));
}

#[test]
fn from_labels_and_with_requirements() {
    let s = Selector::from_labels([("b", "2"), ("a", "1")]).unwrap();
    assert_eq!(s.to_string(), "a=1,b=2");
    assert!(Selector::from_labels([("a", "-")]).is_err());
    let s = s.with_requirements([
        Requirement::new("a", Operator::Exists, Vec::<String>::new()).unwrap(),
    ]);
    assert_eq!(s.to_string(), "a=1,a,b=2");
    let n = Selector::nothing().with_requirements(s.requirements().to_vec());
    assert!(n.matches_nothing());
    let parsed: Selector = "a=1".parse().unwrap();
    assert_eq!(parsed.requirements().len(), 1);
}
