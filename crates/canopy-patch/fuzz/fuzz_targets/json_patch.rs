#![no_main]
//! Two JSON documents separated by a NUL byte: the original and the patch. Applying never
//! panics, under the default limits and under small ones (which every step respects).

use canopy_patch::{Limits, PatchError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else { return };
    let (Ok(doc), Ok(patch)) = (serde_json::from_slice::<Value>(&data[..split]), serde_json::from_slice::<Value>(&data[split + 1..])) else { return };
    let _ = canopy_patch::apply_json_patch(&doc, &patch);
    let small = Limits { max_operations: 8, max_copy_bytes: 256, max_result_bytes: 512, max_nesting: 6, max_work: 2_000 };
    match canopy_patch::apply_json_patch_with(&doc, &patch, &small) {
        Ok(out) => {
            let before = serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0) as u64;
            let after = serde_json::to_vec(&out).map(|v| v.len()).unwrap_or(0) as u64;
            assert!(after <= small.max_result_bytes.max(before), "{after} > limit");
            assert!(canopy_patch::measure::nesting(&out) <= small.max_nesting.max(canopy_patch::measure::nesting(&doc)));
        }
        Err(PatchError::TooManyOperations { got, .. }) => assert!(got > 8),
        Err(_) => {}
    }
});
