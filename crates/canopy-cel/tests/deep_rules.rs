//! Rules of every deep shape, compiled and evaluated on threads with the default
//! 2 MiB stack of Rust threads (and of tokio's workers): refused with cel-go's
//! messages past its limits, compiled and evaluated without overflow up to them.

use canopy_cel::{CompiledRules, FieldError};
use serde_json::{json, Value};

/// Runs `f` on a thread with a 2 MiB stack; an overflow aborts the test binary.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

fn schema(rule: &str) -> Value {
    json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {
                "s": {"type": "string", "maxLength": 10},
                "n": {"type": "integer"},
                "l": {"type": "array", "maxItems": 4, "items": {"type": "integer"}}
            },
            "x-kubernetes-validations": [{"rule": rule}]
        }}
    })
}

/// Compiles `rule`; on success also validates an object with it.
fn compile(rule: String) -> Result<Vec<FieldError>, Vec<String>> {
    on_small_stack(move || {
        let rules = CompiledRules::compile(&schema(&rule))
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        Ok(rules.validate(&json!({"spec": {"s": "a", "n": 1, "l": [1]}}), None))
    })
}

/// Refused with `message`, or with cel-go's size error when the rule is longer
/// than 100,000 code points (checked first, as cel-go does).
fn refused_with(rule: String, message: &str) {
    let len = rule.len();
    let size = rule.chars().count();
    let size_message = format!(
        "ERROR: <input>:-1:0: expression code point size exceeds limit: size: {size}, limit 100000"
    );
    let message = if size > 100_000 {
        size_message.as_str()
    } else {
        message
    };
    let errs = compile(rule).expect_err("refused");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: ")
            && errs[0].ends_with(&format!("compilation failed: {message}")),
        "rule of {len} bytes: {}",
        errs[0]
    );
}

const RECURSION: &str = "ERROR: <input>:-1:0: max recursion depth exceeded";
const NESTING: &str = "ERROR: <input>:-1:0: expression recursion limit exceeded: 250";

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

#[test]
fn long_chains_are_refused_with_cel_go_messages() {
    for n in [3_000, 10_000] {
        refused_with(format!("{} > 0", chain("self.n", " + ", n)), RECURSION);
        refused_with(
            format!("self.s + {} != ''", chain("'a'", " + ", n)),
            RECURSION,
        );
        refused_with(format!("{} == 1", chain("self.n", " * ", n)), RECURSION);
        refused_with(format!("{} > 0", chain("self.n", "-", n)), RECURSION);
        refused_with(format!("self.s{} != ''", ".size()".repeat(n)), RECURSION);
        refused_with(format!("self.l{} == 1", "[0]".repeat(n)), RECURSION);
        refused_with(nested("(", "true", ")", n), NESTING);
        refused_with(format!("size({}) > 0", nested("[", "1", "]", n)), NESTING);
        refused_with(
            format!("size({}) > 0", nested("{1: ", "1", "}", n)),
            NESTING,
        );
        refused_with(format!("{}true", "true ? true : ".repeat(n)), NESTING);
        refused_with(
            format!("{}true{}", "(true ? ".repeat(n), " : false)".repeat(n)),
            NESTING,
        );
        refused_with(nested("!(", "true", ")", n), NESTING);
        refused_with(nested("int(", "1", ")", n) + " == 1", NESTING);
    }
}

#[test]
fn logical_chains_are_balanced_as_in_cel_go() {
    // kube accepts these (cel-go balances && and ||) as long as the rule is under
    // 100,000 code points
    let or = chain("self.n == 1", " || ", 6_000);
    assert!(or.chars().count() < 100_000);
    assert_eq!(compile(or).expect("compiles"), vec![]);
    let and = chain("self.n == 1", " && ", 6_000);
    assert_eq!(compile(and).expect("compiles"), vec![]);
    // longer ones exceed the code point limit
    let or = chain("self.s == 'abcdefgh'", " || ", 10_000);
    assert!(or.chars().count() > 100_000);
    refused_with(or, "(the size error)");
}

#[test]
fn shapes_at_the_limits_compile_and_evaluate() {
    // 250 operators, 249 levels of nesting: what cel-go accepts
    for rule in [
        format!("{} > 0", chain("self.n", " + ", 250)),
        format!("self.s + {} != ''", chain("'a'", " + ", 249)),
        format!("{} == true", nested("(", "true", ")", 248)),
        format!("size({}) == 1", nested("[", "1", "]", 247)),
        format!("{}true", "self.n == 1 ? true : ".repeat(248)),
        format!("{} == 1", nested("int(", "1", ")", 248)),
        // balanced || inside nested groups: the deepest trees cel-go accepts
        nested("(self.n == 2 || ", "true", ")", 200),
        nested(
            "(self.n == 2 || self.n == 3 || self.n == 4 || self.n == 5 || ",
            "true",
            ")",
            120,
        ),
    ] {
        let len = rule.len();
        match compile(rule) {
            Ok(errs) => assert_eq!(errs, vec![], "rule of {len} bytes"),
            // deeper than Canopy walks: refused, never overflowing
            Err(errs) => assert!(
                errs[0].ends_with(RECURSION),
                "rule of {len} bytes: {errs:?}"
            ),
        }
    }
}

#[test]
fn message_expressions_are_bounded_too() {
    let s = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "x-kubernetes-validations": [{
                "rule": "self.n > 0",
                "messageExpression": format!("'x' + {}", chain("'a'", " + ", 10_000)),
            }]
        }}
    });
    let errs = on_small_stack(move || {
        CompiledRules::compile(&s)
            .map(|_| ())
            .map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    })
    .expect_err("refused");
    assert!(
        errs[0].ends_with(&format!(
            "messageExpression compilation failed: {RECURSION}"
        )),
        "{errs:?}"
    );
}
