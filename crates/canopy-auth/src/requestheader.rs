//! Identity passed in request headers, as kube's "requestheader" authentication: an
//! authenticating proxy (Canopy's front-proxy) verifies the caller and forwards who it
//! is as `X-Remote-User`, `X-Remote-Uid`, `X-Remote-Group` (repeated) and
//! `X-Remote-Extra-<key>` (repeated; the key percent-encoded).
//!
//! These headers are only believed on connections whose TLS client certificate was
//! signed by the configured proxy client CA; everywhere else they are stripped. Pure:
//! headers are given as (lower-case name, value) pairs, so nothing here knows HTTP types.

use std::collections::BTreeMap;

use crate::UserInfo;

pub const USER: &str = "x-remote-user";
pub const UID: &str = "x-remote-uid";
pub const GROUP: &str = "x-remote-group";
pub const EXTRA_PREFIX: &str = "x-remote-extra-";

/// Whether a header (any case) is one of the identity headers.
pub fn is_identity_header(name: &str) -> bool {
    name.len() >= 9 && name[..9].eq_ignore_ascii_case("x-remote-")
}

/// Headers carrying `user`, in order.
pub fn encode(user: &UserInfo) -> Vec<(String, String)> {
    let mut out = vec![(USER.to_string(), user.name.clone())];
    if !user.uid.is_empty() {
        out.push((UID.to_string(), user.uid.clone()));
    }
    for g in &user.groups {
        out.push((GROUP.to_string(), g.clone()));
    }
    for (k, vals) in &user.extra {
        for v in vals {
            out.push((format!("{EXTRA_PREFIX}{}", escape_key(k)), v.clone()));
        }
    }
    out
}

/// The user the headers name, or `None` without `X-Remote-User`. Adds
/// `system:authenticated` as kube's authenticated-group adder does.
pub fn decode<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<UserInfo> {
    let mut name = None;
    let mut uid = String::new();
    let mut groups = Vec::new();
    let mut extra = BTreeMap::<String, Vec<String>>::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        if k == USER {
            if name.is_none() && !v.is_empty() {
                name = Some(v.to_string());
            }
        } else if k == UID {
            uid = v.to_string();
        } else if k == GROUP {
            groups.push(v.to_string());
        } else if let Some(key) = k.strip_prefix(EXTRA_PREFIX) {
            extra
                .entry(unescape_key(key))
                .or_default()
                .push(v.to_string());
        }
    }
    let name = name?;
    if name != "system:anonymous" && !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    Some(UserInfo {
        name,
        uid,
        groups,
        extra,
    })
}

/// Percent-encodes what may not appear in a header name (kube escapes extra keys so
/// that keys such as `scopes.example.com/x` survive).
fn escape_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    for b in k.bytes() {
        let token = b.is_ascii_alphanumeric() || b"-.!#$&'*+^_`|~".contains(&b);
        if token && !b.is_ascii_uppercase() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape_key(k: &str) -> String {
    let bytes = k.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut extra = BTreeMap::new();
        extra.insert(
            "example.com/Scopes".to_string(),
            vec!["a".to_string(), "b c".to_string()],
        );
        let u = UserInfo {
            name: "alice".into(),
            uid: "42".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra,
        };
        let h = encode(&u);
        assert!(h.iter().all(|(k, _)| is_identity_header(k)));
        assert!(h
            .iter()
            .any(|(k, _)| k == "x-remote-extra-example.com%2F%53copes"));
        let back = decode(h.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, u);
    }

    #[test]
    fn no_user_no_identity_and_authenticated_added() {
        assert!(decode([("x-remote-group", "system:masters")]).is_none());
        let u = decode([("X-Remote-User", "bob"), ("X-Remote-Group", "g")]).unwrap();
        assert_eq!(u.groups, vec!["g", "system:authenticated"]);
        assert!(is_identity_header("X-REMOTE-USER"));
        assert!(!is_identity_header("x-remote"));
        assert!(!is_identity_header("authorization"));
    }
}
