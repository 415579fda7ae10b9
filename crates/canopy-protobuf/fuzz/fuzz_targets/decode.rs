#![no_main]
//! Any body decodes or fails cleanly; whatever decodes re-encodes and decodes the same.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut body = canopy_protobuf::MAGIC.to_vec();
    body.extend_from_slice(data);
    if let Ok(v) = canopy_protobuf::decode(&body) {
        if let Ok(again) = canopy_protobuf::encode(&v) {
            let v2 = canopy_protobuf::decode(&again).expect("re-encoded body decodes");
            assert_eq!(v, v2);
        }
    }
});
