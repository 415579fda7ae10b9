//! Behavioural tests for field selectors (cases from kube's
//! `fields/selector_test.go`).

use std::collections::HashMap;

use canopy_selectors::field::{self, escape_value, unescape_value, Operator, Requirement};
use canopy_selectors::SelectorError;

fn getter(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |f| m.get(f).cloned()
}

#[test]
fn parse_and_match() {
    let s = field::parse("spec.type!=y,metadata.name=x").unwrap();
    assert_eq!(
        s.requirements(),
        &[
            Requirement {
                field: "metadata.name".into(),
                operator: Operator::Equals,
                value: "x".into()
            },
            Requirement {
                field: "spec.type".into(),
                operator: Operator::NotEquals,
                value: "y".into()
            },
        ]
    );
    assert!(s.matches(getter(&[("metadata.name", "x")])));
    assert!(s.matches(getter(&[("metadata.name", "x"), ("spec.type", "z")])));
    assert!(!s.matches(getter(&[("metadata.name", "x"), ("spec.type", "y")])));
    assert!(!s.matches(getter(&[("metadata.name", "w")])));
    assert!(!s.matches(getter(&[])));
}

#[test]
fn absent_field_compares_as_empty() {
    assert!(field::parse("a=").unwrap().matches(getter(&[])));
    assert!(!field::parse("a!=").unwrap().matches(getter(&[])));
    assert!(field::parse("a!=").unwrap().matches(getter(&[("a", "v")])));
}

#[test]
fn double_equals() {
    let s = field::parse("a==b").unwrap();
    assert_eq!(s.requirements()[0].operator, Operator::DoubleEquals);
    assert_eq!(s.requirements()[0].value, "b");
    assert!(s.matches(getter(&[("a", "b")])));
    assert_eq!(s.exact_match("a"), Some("b"));
}

#[test]
fn kube_good_strings_restring_identically() {
    for s in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
        assert_eq!(field::parse(s).unwrap().to_string(), s);
    }
    assert_eq!(
        field::parse(r"x=a\=\=b").unwrap().requirements()[0].value,
        "a==b"
    );
}

#[test]
fn kube_bad_strings() {
    let e = |s: &str| field::parse(s).unwrap_err().to_string();
    assert_eq!(
        e("x=a||y=b"),
        "invalid field selector: unescaped character in value: 61"
    );
    assert_eq!(
        e("x==a==b"),
        "invalid field selector: unescaped character in value: 61"
    );
    assert_eq!(
        e("x=a,b"),
        "invalid selector: 'x=a,b'; can't understand 'b'"
    );
    assert_eq!(
        e("x in (a)"),
        "invalid selector: 'x in (a)'; can't understand 'x in (a)'"
    );
    assert_eq!(e("x"), "invalid selector: 'x'; can't understand 'x'");
    assert_eq!(
        e(r"k=\a"),
        r"invalid field selector: invalid escape sequence: \a"
    );
    assert_eq!(
        e(r"k=\"),
        r"invalid field selector: invalid escape sequence: \"
    );
    assert!(matches!(
        field::parse(r"k=a\"),
        Err(SelectorError::InvalidEscapeSequence(_))
    ));
}

#[test]
fn escaped_commas_and_backslashes() {
    // Terms are sorted as strings: "k2=..." sorts before "k=..." ('2' < '=').
    let s = field::parse(r"k=\,,k2=v2").unwrap();
    assert_eq!(s.requirements()[0].value, "v2");
    assert_eq!(s.requirements()[1].field, "k");
    assert_eq!(s.requirements()[1].value, ",");
    let s = field::parse(r"k=\\,k2=v2").unwrap();
    assert_eq!(s.requirements()[1].value, "\\");
    let s = field::parse(r"k=\\\,,k2=v2").unwrap();
    assert_eq!(s.requirements()[1].value, "\\,");
    assert_eq!(s.to_string(), r"k2=v2,k=\\\,");
    let s = field::parse("함=수,목=록").unwrap();
    assert_eq!(s.to_string(), "목=록,함=수");
}

#[test]
fn escape_unescape() {
    for (raw, escaped) in [
        ("", ""),
        ("a", "a"),
        ("=", r"\="),
        (",", r"\,"),
        ("\\", r"\\"),
    ] {
        assert_eq!(escape_value(raw), escaped);
        assert_eq!(unescape_value(escaped).unwrap(), raw);
    }
    assert_eq!(escape_value(r"\=\,\"), r"\\\=\\\,\\");
    for bad in [r"\", r"\\\", r"\a"] {
        assert!(matches!(
            unescape_value(bad),
            Err(SelectorError::InvalidEscapeSequence(_))
        ));
    }
}

#[test]
fn empty_terms_are_skipped() {
    for s in ["", ",", ",,", "=", "!=", "==,,"] {
        let sel = field::parse(s).unwrap();
        assert!(sel.is_empty(), "{s:?}");
        assert!(sel.matches(getter(&[("a", "b")])));
    }
    let s = field::parse(",a=b,").unwrap();
    assert_eq!(s.to_string(), "a=b");
    // An empty field with a value is kept, as in kube.
    let s = field::parse("=x").unwrap();
    assert_eq!(s.requirements()[0].field, "");
    assert!(!s.is_empty());
}

#[test]
fn terms_sorted_and_deterministic() {
    assert_eq!(
        field::parse("x=a,a=x").unwrap(),
        field::parse("a=x,x=a").unwrap()
    );
}

#[test]
fn exact_match_and_supported_fields() {
    let s = field::parse("metadata.namespace!=kube-system,metadata.name=x").unwrap();
    assert_eq!(s.exact_match("metadata.name"), Some("x"));
    assert_eq!(s.exact_match("metadata.namespace"), None);
    assert_eq!(s.exact_match("spec.nodeName"), None);
    assert!(s
        .check_supported(&["metadata.name", "metadata.namespace"])
        .is_ok());
    assert_eq!(
        s.check_supported(&["metadata.name"])
            .unwrap_err()
            .to_string(),
        "field label not supported: metadata.namespace"
    );
    assert_eq!(
        s.check_supported(&[]).unwrap_err(),
        SelectorError::UnsupportedField("metadata.name".into())
    );
}

#[test]
fn operator_split_takes_first_operator() {
    // kube does not escape the field: the first operator wins.
    let s = field::parse(r"a\=b").unwrap();
    assert_eq!(s.requirements()[0].field, "a\\");
    assert_eq!(s.requirements()[0].value, "b");
    let s = field::parse("a!!=b").unwrap();
    assert_eq!(s.requirements()[0].field, "a!");
    assert_eq!(s.requirements()[0].operator, Operator::NotEquals);
}
