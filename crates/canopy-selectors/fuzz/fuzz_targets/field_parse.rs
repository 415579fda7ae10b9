//! Parse arbitrary UTF-8 as a field selector; whatever is accepted must
//! display to a string that parses back to an equal selector.
#![no_main]

use canopy_selectors::field;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sel) = field::parse(s) {
        let shown = sel.to_string();
        let again = field::parse(&shown)
            .unwrap_or_else(|e| panic!("{s:?} displayed as {shown:?}, which fails to parse: {e}"));
        assert_eq!(again, sel, "{s:?} -> {shown:?}");
        assert_eq!(again.to_string(), shown);
    }
});
