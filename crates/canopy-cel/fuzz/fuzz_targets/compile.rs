#![no_main]
//! Any text as an `x-kubernetes-validations` rule: compiling never panics or
//! overflows (cel-go's limits are checked before parsing), and a rule that compiles
//! evaluates against an object without panicking.

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(rule) = std::str::from_utf8(data) else { return };
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {
                "s": {"type": "string", "maxLength": 16},
                "n": {"type": "integer"},
                "l": {"type": "array", "maxItems": 4, "items": {"type": "integer"}},
                "m": {"type": "object", "maxProperties": 4, "additionalProperties": {"type": "string", "maxLength": 8}}
            },
            "x-kubernetes-validations": [{"rule": rule}]
        }}
    });
    if let Ok(rules) = canopy_cel::CompiledRules::compile(&schema) {
        let obj = json!({"spec": {"s": "abc", "n": 3, "l": [1, 2], "m": {"k": "v"}}});
        let old = json!({"spec": {"s": "ab", "n": 2, "l": [1], "m": {}}});
        let _ = rules.validate(&obj, Some(&old));
    }
});
