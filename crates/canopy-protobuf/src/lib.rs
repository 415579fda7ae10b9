//! Kubernetes protobuf request bodies, decoded into the JSON the same client would have
//! sent as `application/json`.
//!
//! Typed client-go clients (`kubectl create`, `kubectl auth can-i`, helm's release
//! Secrets, terraform's typed resources) send built-in kinds only as protobuf: the 4-byte
//! magic `k8s\0` and a `runtime.Unknown` envelope whose `raw` holds the typed message.
//! Decoding is table-driven: `schema.rs` (generated from the `k8s-pb` crate's sources by
//! `gen/generate.py`) gives each message's field numbers, JSON names and kinds, and
//! [`wire`] turns the wire format into JSON (times as RFC 3339, bytes as base64,
//! quantities and int-or-strings in their JSON forms, embedded JSON parsed). No input
//! panics: every malformed body is a [`DecodeError`].

mod schema;
mod wire;

use serde_json::{json, Value};

pub const MAGIC: [u8; 4] = *b"k8s\0";
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a Kubernetes protobuf body (missing the k8s\\0 prefix)")]
    NotProtobuf,
    #[error("protobuf decoding of {api_version}/{kind} is not supported")]
    Unsupported { api_version: String, kind: String },
    #[error("malformed protobuf: {0}")]
    Malformed(String),
    #[error("cannot encode as protobuf: {0}")]
    Unencodable(String),
}

/// (apiVersion, kind) pairs this crate can decode.
pub fn supported_kinds() -> Vec<(&'static str, &'static str)> {
    schema::ROOTS.iter().map(|(a, k, _)| (*a, *k)).collect()
}

fn root(api_version: &str, kind: &str) -> Result<usize, DecodeError> {
    schema::ROOTS
        .iter()
        .find(|(a, k, _)| *a == api_version && *k == kind)
        .map(|(_, _, i)| *i)
        .ok_or_else(|| DecodeError::Unsupported {
            api_version: api_version.into(),
            kind: kind.into(),
        })
}

/// Decodes a whole body into a JSON object with `apiVersion` and `kind` set.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let rest = body.strip_prefix(&MAGIC).ok_or(DecodeError::NotProtobuf)?;
    let (api_version, kind, raw) = wire::unknown(rest)?;
    let idx = root(&api_version, &kind)?;
    let mut obj = wire::decode_message(raw, idx, 0)?;
    if let Value::Object(m) = &mut obj {
        let mut out = serde_json::Map::new();
        out.insert("kind".into(), json!(kind));
        out.insert("apiVersion".into(), json!(api_version));
        for (k, v) in std::mem::take(m) {
            out.insert(k, v);
        }
        *m = out;
    }
    Ok(obj)
}

/// Encodes a JSON object of a supported kind as a protobuf body.
pub fn encode(value: &Value) -> Result<Vec<u8>, DecodeError> {
    let av = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let idx = root(av, kind)?;
    let mut body = value.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    let raw = wire::encode_message(&body, idx, 0)?;
    let mut tm = wire::Writer::new();
    tm.bytes(1, av.as_bytes());
    tm.bytes(2, kind.as_bytes());
    let mut env = wire::Writer::new();
    env.bytes(1, &tm.buf);
    env.bytes(2, &raw);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&env.buf);
    Ok(out)
}
