//! The Swagger 2.0 document in gnostic's `openapi.v2.Document` protobuf encoding, which
//! kubectl up to 1.28 asks for (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`)
//! to validate objects and to find patch metadata. Field numbers follow gnostic's
//! OpenAPIv2.proto (proto3: default values are not written). Vendor extensions and
//! free-form values (`default`, `enum`, `example`) are `Any { yaml }`, written as JSON
//! (which is YAML).

use serde_json::Value;

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn key(&mut self, tag: u32, wire: u8) {
        self.varint((u64::from(tag) << 3) | u64::from(wire));
    }
    fn bytes(&mut self, tag: u32, b: &[u8]) {
        self.key(tag, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, tag: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(tag, s.as_bytes());
        }
    }
    fn message(&mut self, tag: u32, m: W) {
        self.bytes(tag, &m.0);
    }
    fn boolean(&mut self, tag: u32, b: bool) {
        if b {
            self.key(tag, 0);
            self.varint(1);
        }
    }
    fn int(&mut self, tag: u32, v: i64) {
        if v != 0 {
            self.key(tag, 0);
            self.varint(v as u64);
        }
    }
    fn double(&mut self, tag: u32, v: f64) {
        if v != 0.0 {
            self.key(tag, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn any(v: &Value) -> W {
    let mut a = W::default();
    a.string(2, &serde_json::to_string(v).unwrap_or_default());
    a
}

fn named_any(name: &str, v: &Value) -> W {
    let mut n = W::default();
    n.string(1, name);
    n.message(2, any(v));
    n
}

fn schema(v: &Value) -> W {
    let mut w = W::default();
    let Value::Object(m) = v else { return w };
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
    let f = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let i = |k: &str| m.get(k).and_then(Value::as_i64).unwrap_or(0);
    let b = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    w.string(1, s("$ref"));
    w.string(2, s("format"));
    w.string(3, s("title"));
    w.string(4, s("description"));
    if let Some(d) = m.get("default") {
        w.message(5, any(d));
    }
    w.double(6, f("multipleOf"));
    w.double(7, f("maximum"));
    w.boolean(8, b("exclusiveMaximum"));
    w.double(9, f("minimum"));
    w.boolean(10, b("exclusiveMinimum"));
    w.int(11, i("maxLength"));
    w.int(12, i("minLength"));
    w.string(13, s("pattern"));
    w.int(14, i("maxItems"));
    w.int(15, i("minItems"));
    w.boolean(16, b("uniqueItems"));
    w.int(17, i("maxProperties"));
    w.int(18, i("minProperties"));
    for r in m
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.string(19, r.as_str().unwrap_or(""));
    }
    for e in m
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.message(20, any(e));
    }
    match m.get("additionalProperties") {
        Some(Value::Bool(allowed)) => {
            let mut ap = W::default();
            ap.key(2, 0);
            ap.varint(u64::from(*allowed));
            w.message(21, ap);
        }
        Some(sub @ Value::Object(_)) => {
            let mut ap = W::default();
            ap.message(1, schema(sub));
            w.message(21, ap);
        }
        _ => {}
    }
    match m.get("type") {
        Some(Value::String(t)) => {
            let mut ti = W::default();
            ti.string(1, t);
            w.message(22, ti);
        }
        Some(Value::Array(ts)) => {
            let mut ti = W::default();
            for t in ts {
                ti.string(1, t.as_str().unwrap_or(""));
            }
            w.message(22, ti);
        }
        _ => {}
    }
    match m.get("items") {
        Some(one @ Value::Object(_)) => {
            let mut it = W::default();
            it.message(1, schema(one));
            w.message(23, it);
        }
        Some(Value::Array(many)) => {
            let mut it = W::default();
            for x in many {
                it.message(1, schema(x));
            }
            w.message(23, it);
        }
        _ => {}
    }
    for a in m
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.message(24, schema(a));
    }
    if let Some(Value::Object(props)) = m.get("properties") {
        let mut p = W::default();
        for (name, sub) in props {
            let mut n = W::default();
            n.string(1, name);
            n.message(2, schema(sub));
            p.message(1, n);
        }
        w.message(25, p);
    }
    w.boolean(27, b("readOnly"));
    if let Some(e) = m.get("example") {
        w.message(30, any(e));
    }
    for (k, x) in m {
        if k.starts_with("x-") {
            w.message(31, named_any(k, x));
        }
    }
    w
}

fn operation(op: &Value) -> W {
    let mut w = W::default();
    let s = |k: &str| op.get(k).and_then(Value::as_str).unwrap_or("");
    w.string(5, s("operationId"));
    for p in op
        .get("produces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.string(6, p.as_str().unwrap_or(""));
    }
    if let Some(Value::Object(resps)) = op.get("responses") {
        let mut rs = W::default();
        for (code, r) in resps {
            let mut resp = W::default();
            resp.string(
                1,
                r.get("description").and_then(Value::as_str).unwrap_or(""),
            );
            if let Some(sch) = r.get("schema") {
                let mut si = W::default();
                si.message(1, schema(sch));
                resp.message(2, si);
            }
            let mut rv = W::default();
            rv.message(1, resp);
            let mut named = W::default();
            named.string(1, code);
            named.message(2, rv);
            rs.message(1, named);
        }
        w.message(9, rs);
    }
    if let Value::Object(m) = op {
        for (k, x) in m {
            if k.starts_with("x-") {
                w.message(13, named_any(k, x));
            }
        }
    }
    w
}

/// Encodes a Swagger 2.0 JSON document as `openapi.v2.Document`.
pub(crate) fn encode(doc: &Value) -> Vec<u8> {
    let mut d = W::default();
    d.string(
        1,
        doc.get("swagger").and_then(Value::as_str).unwrap_or("2.0"),
    );
    if let Some(info) = doc.get("info") {
        let mut i = W::default();
        i.string(1, info.get("title").and_then(Value::as_str).unwrap_or(""));
        i.string(2, info.get("version").and_then(Value::as_str).unwrap_or(""));
        d.message(2, i);
    }
    if let Some(Value::Object(paths)) = doc.get("paths") {
        let mut ps = W::default();
        for (path, item) in paths {
            let mut pi = W::default();
            for (tag, verb) in [
                (2u32, "get"),
                (3, "put"),
                (4, "post"),
                (5, "delete"),
                (8, "patch"),
            ] {
                if let Some(op) = item.get(verb) {
                    pi.message(tag, operation(op));
                }
            }
            let mut named = W::default();
            named.string(1, path);
            named.message(2, pi);
            ps.message(2, named);
        }
        d.message(8, ps);
    }
    if let Some(Value::Object(defs)) = doc.get("definitions") {
        let mut ds = W::default();
        for (name, sch) in defs {
            let mut n = W::default();
            n.string(1, name);
            n.message(2, schema(sch));
            ds.message(1, n);
        }
        d.message(9, ds);
    }
    d.0
}
