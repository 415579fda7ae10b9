#![no_main]
//! Two JSON documents separated by a NUL byte: the original and the patch. Applying never
//! panics; a successful result applied again is stable where the format is idempotent.

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else { return };
    let (Ok(doc), Ok(patch)) = (serde_json::from_slice::<Value>(&data[..split]), serde_json::from_slice::<Value>(&data[split + 1..])) else { return };
    if let Ok(once) = canopy_patch::apply_merge_patch(&doc, &patch) {
        assert_eq!(canopy_patch::apply_merge_patch(&once, &patch).unwrap(), once);
    }
});
