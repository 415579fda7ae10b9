//! Content negotiation: decoding request bodies (JSON, YAML, Kubernetes protobuf) and
//! deciding what a response should look like from the `Accept` header (plain JSON, a
//! `meta.k8s.io/v1` Table, `PartialObjectMetadata`, aggregated discovery).

use canopy_core::ApiError;
use serde_json::Value;

/// The largest request body accepted (kube's default is 3 MiB for most requests).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Containers a request body may nest (objects and arrays in each other). serde_json
/// parses at most 127; what a shard stores (the object, its managedFields, a few
/// levels deeper than the object, and `resourceVersion`) must parse back when the
/// shard reads its store, and lists and watch events wrap objects in two more levels
/// for clients that parse with the same limit. No Kubernetes object comes near it.
pub const MAX_BODY_NESTING: usize = 100;

/// Containers nested in `v` (0 for a scalar), measured without recursion; the
/// `metadata.managedFields` of an object are not counted.
pub fn nesting(v: &Value) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&Value, usize, bool)> = vec![(v, 0, true)];
    while let Some((v, d, root)) = stack.pop() {
        match v {
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1, false)));
            }
            Value::Object(m) => {
                max = max.max(d + 1);
                for (k, x) in m {
                    match x {
                        Value::Object(meta) if root && k == "metadata" => {
                            max = max.max(d + 2);
                            stack.extend(
                                meta.iter()
                                    .filter(|(k, _)| *k != "managedFields")
                                    .map(|(_, x)| (x, d + 2, false)),
                            );
                        }
                        x => stack.push((x, d + 1, false)),
                    }
                }
            }
            _ => {}
        }
    }
    max
}

/// Refuses an object nesting more than [`MAX_BODY_NESTING`] containers (400).
pub fn check_nesting(v: &Value) -> Result<(), ApiError> {
    if nesting(v) > MAX_BODY_NESTING {
        return Err(ApiError::bad_request(format!(
            "error decoding request body: the object nests more than {MAX_BODY_NESTING} levels of objects and arrays"
        )));
    }
    Ok(())
}

/// Decodes a request body by its Content-Type.
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let v = decode_body_unchecked(content_type, body)?;
    check_nesting(&v)?;
    Ok(v)
}

fn decode_body_unchecked(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "" | "application/json" | "*/*" => decode_json(body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body),
        "application/vnd.kubernetes.protobuf" => canopy_protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("unable to decode protobuf body: {e}"))),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

pub fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    let v = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: json: {e}")))?;
    check_nesting(&v)?;
    Ok(v)
}

pub fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let v = serde_yaml::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))?;
    check_nesting(&v)?;
    Ok(v)
}

/// What form of response the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Json,
    Table,
    PartialObjectMetadata,
    PartialObjectMetadataList,
}

/// One media range of an Accept header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    pub mime: String,
    pub params: Vec<(String, String)>,
}

impl MediaRange {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

pub fn parse_accept(accept: Option<&str>) -> Vec<MediaRange> {
    let Some(accept) = accept else {
        return vec![];
    };
    accept
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';');
            let mime = it.next()?.trim().to_ascii_lowercase();
            if mime.is_empty() {
                return None;
            }
            let params = it
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            Some(MediaRange { mime, params })
        })
        .collect()
}

fn json_like(mime: &str) -> bool {
    matches!(
        mime,
        "application/json" | "*/*" | "application/*" | "application/yaml"
    )
}

/// Picks the response form for an object or list request. Falls back to JSON when the
/// client also accepts it; answers 406 when it only accepts something unsupported.
pub fn negotiate(accept: Option<&str>) -> Result<Form, ApiError> {
    let ranges = parse_accept(accept);
    if ranges.is_empty() {
        return Ok(Form::Json);
    }
    for r in &ranges {
        if r.mime == "application/json" || r.mime == "application/vnd.kubernetes.protobuf" {
            match (r.param("as"), r.param("g"), r.param("v")) {
                (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => {
                    return Ok(Form::Table)
                }
                (Some("PartialObjectMetadata"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => {
                    return Ok(Form::PartialObjectMetadata)
                }
                (
                    Some("PartialObjectMetadataList"),
                    Some("meta.k8s.io"),
                    Some("v1" | "v1beta1"),
                ) => return Ok(Form::PartialObjectMetadataList),
                (None, _, _) if r.mime == "application/json" => return Ok(Form::Json),
                _ => continue,
            }
        }
        if json_like(&r.mime) && r.param("as").is_none() {
            return Ok(Form::Json);
        }
    }
    Err(ApiError::not_acceptable(
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    ))
}

/// Whether the client asked for aggregated discovery (`apidiscovery.k8s.io` v2 or v2beta1);
/// returns the version to answer with.
pub fn wants_aggregated_discovery(accept: Option<&str>) -> Option<&'static str> {
    for r in parse_accept(accept) {
        if r.param("g") == Some("apidiscovery.k8s.io")
            && r.param("as") == Some("APIGroupDiscoveryList")
        {
            match r.param("v") {
                Some("v2") => return Some("v2"),
                Some("v2beta1") => return Some("v2beta1"),
                _ => {}
            }
        }
        if r.mime == "application/json" && r.param("as").is_none() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_asks_for_a_table() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(a)).unwrap(), Form::Table);
        assert_eq!(negotiate(Some("application/json")).unwrap(), Form::Json);
        assert_eq!(negotiate(None).unwrap(), Form::Json);
        assert_eq!(negotiate(Some("*/*")).unwrap(), Form::Json);
        assert_eq!(
            negotiate(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .unwrap(),
            Form::Json
        );
        assert_eq!(negotiate(Some("text/html")).unwrap_err().code, 406);
    }

    #[test]
    fn aggregated_discovery_detection() {
        let a = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated_discovery(Some(a)), Some("v2"));
        assert_eq!(wants_aggregated_discovery(Some("application/json")), None);
    }

    #[test]
    fn bodies() {
        assert_eq!(
            decode_body(Some("application/yaml"), b"a: 1\n").unwrap()["a"],
            1
        );
        assert_eq!(decode_body(None, b"{\"a\":1}").unwrap()["a"], 1);
        assert_eq!(
            decode_body(Some("application/json"), b"{")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(decode_body(Some("text/plain"), b"x").unwrap_err().code, 415);
    }
}

/// Paths of keys that occur more than once in the same JSON object (`fieldValidation`
/// reports them; the last value wins, as in kube). Empty for unparsable input.
///
/// One pass over the body without building values; a path is only written out when a
/// duplicate is found (the walk keeps a stack of segments), so large structured bodies
/// cost little more than parsing them.
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;
    use std::fmt;

    enum Seg<'de> {
        Key(Cow<'de, str>),
        Index(usize),
    }

    fn render(stack: &[Seg<'_>]) -> String {
        let mut out = String::new();
        for s in stack {
            match s {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    struct Walk<'a, 'de> {
        stack: &'a mut Vec<Seg<'de>>,
        out: &'a mut Vec<String>,
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    /// A key, borrowed from the body when it has no escapes.
    struct Key<'de>(Cow<'de, str>);
    impl<'de> serde::Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string key")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Owned(v.to_string())))
                }
            }
            d.deserialize_str(V)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            loop {
                self.stack.push(Seg::Index(i));
                let more = seq.next_element_seed(Walk {
                    stack: self.stack,
                    out: self.out,
                })?;
                self.stack.pop();
                if more.is_none() {
                    return Ok(());
                }
                i += 1;
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            // small objects: a vector; large ones: a set (no quadratic walks)
            let mut few: Vec<Cow<'de, str>> = Vec::new();
            let mut many: std::collections::HashSet<Cow<'de, str>> = Default::default();
            while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                let dup = if many.is_empty() {
                    few.iter().any(|s| *s == k)
                } else {
                    many.contains(&k)
                };
                self.stack.push(Seg::Key(k.clone()));
                if dup {
                    self.out.push(render(self.stack));
                } else if many.is_empty() && few.len() < 16 {
                    few.push(k);
                } else {
                    many.extend(few.drain(..));
                    many.insert(k);
                }
                map.next_value_seed(Walk {
                    stack: self.stack,
                    out: self.out,
                })?;
                self.stack.pop();
            }
            Ok(())
        }
    }

    let mut out = Vec::new();
    let mut stack = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        stack: &mut stack,
        out: &mut out,
    }
    .deserialize(&mut de);
    out
}

#[cfg(test)]
mod duplicate_tests {
    #[test]
    fn finds_duplicate_keys_at_any_depth() {
        let d = super::duplicate_fields(br#"{"a":1,"b":{"c":1,"c":2},"l":[{"x":1,"x":1}],"a":2}"#);
        assert_eq!(
            d,
            vec!["b.c".to_string(), "l[0].x".to_string(), "a".to_string()]
        );
        assert!(super::duplicate_fields(br#"{"a":1}"#).is_empty());
        assert!(super::duplicate_fields(b"not json").is_empty());
        // large objects, keys with escapes
        let mut big = String::from("{");
        for i in 0..100 {
            big.push_str(&format!("\"k{i}\":{i},"));
        }
        big.push_str("\"k7\":0,\"a\\u0062\":1,\"ab\":2}");
        assert_eq!(
            super::duplicate_fields(big.as_bytes()),
            vec!["k7".to_string(), "ab".to_string()]
        );
    }
}
