//! Properties of field errors and their aggregate, against a direct model of
//! Go's `field.Error.Error()` and `utilerrors.Aggregate.Error()`.

use canopy_field::{aggregate, aggregate_texts, BadValue, ErrorList, ErrorType, FieldError};
use proptest::prelude::*;
use serde_json::Value;

fn error_type() -> impl Strategy<Value = ErrorType> {
    proptest::sample::select(ErrorType::ALL.to_vec())
}

fn bad_value() -> impl Strategy<Value = Option<BadValue>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(|s| Some(BadValue::string(&s))),
        any::<i64>().prop_map(|n| Some(BadValue::Json(Value::from(n)))),
        any::<bool>().prop_map(|b| Some(BadValue::Json(Value::Bool(b)))),
        "[ -~]{0,8}".prop_map(|s| Some(BadValue::rendered(s))),
    ]
}

fn field_error() -> impl Strategy<Value = FieldError> {
    (
        error_type(),
        "[a-z.\\[\\]0-9]{0,6}",
        bad_value(),
        "[ -~]{0,6}",
    )
        .prop_map(|(t, f, v, d)| FieldError::new(t, f, v, d))
}

/// Go's `ErrorBody()`, written out independently of the crate.
fn go_body(e: &FieldError) -> String {
    let mut s = e.error_type.text().to_string();
    let hides = matches!(
        e.error_type,
        ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
    );
    match (&e.bad_value, hides) {
        (Some(BadValue::Json(Value::String(v))), false) => {
            s = format!("{s}: {}", canopy_gofmt::quote(v))
        }
        (Some(BadValue::Json(Value::Number(n))), false) => s = format!("{s}: {n}"),
        (Some(BadValue::Json(Value::Bool(b))), false) => s = format!("{s}: {b}"),
        (Some(BadValue::Json(other)), false) => {
            s = format!("{s}: {}", canopy_gofmt::marshal(other))
        }
        (Some(BadValue::Rendered(r)), false) => s = format!("{s}: {r}"),
        _ => {}
    }
    if !e.detail.is_empty() {
        s = format!("{s}: {}", e.detail);
    }
    s
}

proptest! {
    #[test]
    fn error_is_field_colon_body(e in field_error()) {
        prop_assert_eq!(e.body(), go_body(&e));
        prop_assert_eq!(e.to_string(), format!("{}: {}", e.field, go_body(&e)));
    }

    #[test]
    fn aggregate_is_gos(errs in proptest::collection::vec(field_error(), 0..6)) {
        // Go: one error verbatim (even before de-duplication), else the unique
        // texts in first-seen order, bracketed when more than one remains.
        let texts: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let mut unique: Vec<String> = Vec::new();
        for t in &texts {
            if !unique.contains(t) {
                unique.push(t.clone());
            }
        }
        let want = match unique.len() {
            0 => String::new(),
            1 => unique[0].clone(),
            _ => format!("[{}]", unique.join(", ")),
        };
        prop_assert_eq!(aggregate(&errs), want.clone());
        prop_assert_eq!(aggregate_texts(texts), want.clone());
        prop_assert_eq!(ErrorList(errs).to_string(), want);
    }

    #[test]
    fn aggregate_of_repeats_is_one(e in field_error(), n in 1usize..5) {
        let errs = vec![e.clone(); n];
        prop_assert_eq!(aggregate(&errs), e.to_string());
    }
}
