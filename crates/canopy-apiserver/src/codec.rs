//! Content negotiation: decoding request bodies (JSON, YAML, Kubernetes protobuf) and
//! deciding what a response should look like from the `Accept` header (plain JSON, a
//! `meta.k8s.io/v1` Table, `PartialObjectMetadata`, aggregated discovery).

use canopy_core::ApiError;
use serde_json::Value;

/// The largest request body accepted by default (kube-apiserver's 3 MiB); configured
/// by [`crate::Limits::max_request_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// kube's answer to a body over the limit: 413 `Request entity too large: limit is N`.
pub fn body_too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!("Request entity too large: limit is {limit}"))
}

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

/// Decodes a request body by its Content-Type. YAML and protobuf bodies may decode to
/// at most `max_decoded` bytes of JSON (YAML aliases and protobuf field names make a
/// small body large); past that the answer is 413 and decoding stops early. Bodies
/// nesting more than [`MAX_BODY_NESTING`] containers are refused (400).
pub fn decode_body(
    content_type: Option<&str>,
    body: &[u8],
    max_decoded: usize,
) -> Result<Value, ApiError> {
    let v = decode_body_unchecked(content_type, body, max_decoded)?;
    check_nesting(&v)?;
    Ok(v)
}

fn decode_body_unchecked(
    content_type: Option<&str>,
    body: &[u8],
    max_decoded: usize,
) -> Result<Value, ApiError> {
    let ct = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "" | "application/json" | "*/*" => decode_json(body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body, max_decoded),
        "application/vnd.kubernetes.protobuf" => {
            let v = canopy_protobuf::decode(body).map_err(|e| {
                ApiError::bad_request(format!("unable to decode protobuf body: {e}"))
            })?;
            if json_size(&v) > max_decoded {
                return Err(decoded_too_large(max_decoded));
            }
            Ok(v)
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

pub fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    let v = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: json: {e}")))?;
    check_nesting(&v)?;
    Ok(v)
}

fn decoded_too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!(
        "Request entity too large: the decoded body is larger than {limit} bytes"
    ))
}

/// The length of `v` serialized as JSON, without building the text.
pub fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(b.len());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        // a Value always serializes; should it not, count it as too large
        Err(_) => usize::MAX,
    }
}

/// Decodes YAML into JSON, charging every value (each alias expansion included) against
/// a budget of `max_decoded` bytes of JSON; a body that would grow past it ("billion
/// laughs") is refused with 413 as soon as the budget runs out, before it takes the
/// memory. serde_yaml's own guard (at most 100 alias expansions per event of the
/// document) does not bound the size: one large anchor referenced many times still
/// expands quadratically.
pub fn decode_yaml(body: &[u8], max_decoded: usize) -> Result<Value, ApiError> {
    let budget = yaml_budget::Budget::new(max_decoded);
    let de = serde_yaml::Deserializer::from_slice(body);
    match serde::de::DeserializeSeed::deserialize(yaml_budget::Seed(&budget), de) {
        Ok(v) => {
            check_nesting(&v)?;
            Ok(v)
        }
        Err(_) if budget.exhausted() => Err(decoded_too_large(max_decoded)),
        Err(e) => Err(ApiError::bad_request(format!(
            "error decoding YAML body: {e}"
        ))),
    }
}

/// A `serde_json::Value` built through a visitor that counts what it builds.
mod yaml_budget {
    use std::cell::Cell;
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Number, Value};

    pub(super) struct Budget {
        left: Cell<usize>,
        exhausted: Cell<bool>,
    }

    impl Budget {
        pub(super) fn new(bytes: usize) -> Budget {
            Budget {
                left: Cell::new(bytes),
                exhausted: Cell::new(false),
            }
        }
        pub(super) fn exhausted(&self) -> bool {
            self.exhausted.get()
        }
        /// Takes `n` bytes (what the value costs as JSON, at least 1 per value).
        fn charge<E: Error>(&self, n: usize) -> Result<(), E> {
            match self.left.get().checked_sub(n.max(1)) {
                Some(l) => {
                    self.left.set(l);
                    Ok(())
                }
                None => {
                    self.exhausted.set(true);
                    Err(E::custom("the decoded document is too large"))
                }
            }
        }
    }

    #[derive(Clone, Copy)]
    pub(super) struct Seed<'a>(pub(super) &'a Budget);

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    /// A map key: a string, charged like one.
    struct KeySeed<'a>(&'a Budget);

    impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
        type Value = String;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            let s = String::deserialize(d)?;
            self.0.charge(s.len() + 3)?;
            Ok(s)
        }
    }
    use serde::Deserialize;

    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any YAML value")
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
            self.0.charge(5)?;
            Ok(Value::Bool(v))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
            self.0.charge(20)?;
            Ok(Value::Number(v.into()))
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
            self.0.charge(20)?;
            Ok(Value::Number(v.into()))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
            self.0.charge(24)?;
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
            self.0.charge(v.len() + 2)?;
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E: Error>(self, v: String) -> Result<Value, E> {
            self.0.charge(v.len() + 2)?;
            Ok(Value::String(v))
        }
        fn visit_unit<E: Error>(self) -> Result<Value, E> {
            self.0.charge(4)?;
            Ok(Value::Null)
        }
        fn visit_none<E: Error>(self) -> Result<Value, E> {
            self.visit_unit()
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            self.0.charge(2)?;
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(self)? {
                self.0.charge(1)?;
                out.push(v);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            self.0.charge(2)?;
            let mut out = Map::new();
            while let Some(k) = map.next_key_seed(KeySeed(self.0))? {
                let v = map.next_value_seed(self)?;
                out.insert(k, v);
            }
            Ok(Value::Object(out))
        }
    }
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
            decode_body(Some("application/yaml"), b"a: 1\n", 1 << 20).unwrap()["a"],
            1
        );
        assert_eq!(decode_body(None, b"{\"a\":1}", 1 << 20).unwrap()["a"], 1);
        assert_eq!(
            decode_body(Some("application/json"), b"{", 1 << 20)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            decode_body(Some("text/plain"), b"x", 1 << 20)
                .unwrap_err()
                .code,
            415
        );
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
                    few.contains(&k)
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
mod yaml_bound_tests {
    use super::*;

    /// The classic "billion laughs": nine levels of ten aliases each (10^9 strings
    /// from a body of under 1 KiB).
    fn billion_laughs() -> String {
        let mut y = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            y.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        y.push_str("top: *a9\n");
        y
    }

    /// One large anchor referenced many times: within serde_yaml's own repetition
    /// limit (100 alias jumps per event), yet quadratic in the body size.
    fn wide_anchor(items: usize, refs: usize) -> String {
        let mut y = String::from("base: &b\n");
        for i in 0..items {
            y.push_str(&format!("  - item{i}\n"));
        }
        y.push_str("copies:\n");
        for _ in 0..refs {
            y.push_str("  - *b\n");
        }
        y
    }

    #[test]
    fn billion_laughs_is_refused() {
        let body = billion_laughs();
        assert!(body.len() < 1024);
        // serde_yaml's own guard (100 alias expansions per event) stops the deep form
        // first: 400, as kube's YAML decoder answers "excessive aliasing"
        let e = decode_yaml(body.as_bytes(), 3 << 20).unwrap_err();
        assert_eq!(e.code, 400, "{e:?}");
        assert!(e.message.contains("repetition limit exceeded"), "{e:?}");
        // with a budget below what the allowed expansions build, the budget stops it
        let e = decode_yaml(body.as_bytes(), 1000).unwrap_err();
        assert_eq!(e.code, 413, "{e:?}");
        assert_eq!(e.reason, "RequestEntityTooLarge");
    }

    #[test]
    fn a_wide_anchor_stops_at_the_budget() {
        // 20,000 items referenced 20,000 times: ~400 KB of YAML, 4*10^8 strings
        // (gigabytes) if expanded; refused after the budget of 6 MiB
        let body = wide_anchor(20_000, 20_000);
        assert!(body.len() < 600_000, "{}", body.len());
        let start = std::time::Instant::now();
        let e = decode_yaml(body.as_bytes(), 6 << 20).unwrap_err();
        assert_eq!(e.code, 413, "{e:?}");
        // it stopped early rather than expanding everything (generous bound)
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn ordinary_aliases_and_documents_still_decode() {
        let v = decode_yaml(wide_anchor(3, 2).as_bytes(), 1 << 20).unwrap();
        assert_eq!(v["copies"][1][2], "item2");
        let v = decode_yaml(b"a: 1\nb: [true, null, 1.5, x]\nc: {d: e}\n", 1 << 20).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": [true, null, 1.5, "x"], "c": {"d": "e"}})
        );
        // the budget is the JSON size: a document of exactly its size passes
        let doc = serde_json::json!({"k": ["abc", 1, {"x": null}]});
        let size = json_size(&doc);
        let yaml = serde_yaml::to_string(&doc).unwrap();
        assert_eq!(decode_yaml(yaml.as_bytes(), size + 64).unwrap(), doc);
        assert_eq!(decode_yaml(yaml.as_bytes(), 4).unwrap_err().code, 413);
        // syntax errors stay 400
        assert_eq!(decode_yaml(b"a: [", 1 << 20).unwrap_err().code, 400);
    }

    #[test]
    fn protobuf_bodies_are_bounded_after_decoding() {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "default"}, "data": {"k": "v".repeat(1000)}});
        let pb = canopy_protobuf::encode(&cm).unwrap();
        let ct = Some("application/vnd.kubernetes.protobuf");
        assert_eq!(
            decode_body(ct, &pb, 1 << 20).unwrap()["data"]["k"],
            cm["data"]["k"]
        );
        assert_eq!(decode_body(ct, &pb, 512).unwrap_err().code, 413);
    }
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
