#![no_main]
//! Request paths and queries never panic the parser, and a parsed request's parts
//! always come from the input.

use canopy_core::RequestInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (method, rest) = s.split_once(' ').unwrap_or(("GET", s));
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if let Ok(info) = RequestInfo::parse(method, path, query) {
        assert!(info.path.starts_with('/') || info.path.is_empty() || !path.starts_with('/'));
        if info.is_resource_request {
            assert!(!info.resource.is_empty());
            assert!(!info.version.is_empty());
        }
    }
    let _ = canopy_core::request::parse_query(query);
});
