//! A table-driven protobuf reader and writer for Kubernetes messages.
//!
//! Each message is described by a [`Message`] table (generated into `schema.rs`) that maps
//! field numbers to JSON names and kinds. Decoding walks the wire format and builds the
//! JSON object a Go client would have serialized; encoding does the reverse. Kinds with a
//! JSON form of their own (Time, Quantity, IntOrString, raw JSON, the JSON-schema unions)
//! are converted here.

use base64::Engine;
use serde_json::{Map, Number, Value};

use crate::DecodeError;

/// How a field is represented; `Quantity` and `IntOrString` serve kinds with resource
/// quantities and ports (none of today's roots use them, the tables may).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    Msg(usize),
    Time,
    MicroTime,
    Quantity,
    IntOrString,
    RawJson,
    OrArray,
    OrBool,
    OrStringArray,
    StringList,
}

pub(crate) struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    pub map: bool,
}

pub(crate) struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// Seconds of Go's zero `time.Time` (year 1), which JSON writes as null.
const GO_ZERO_TIME: i64 = -62_135_596_800;
const MAX_DEPTH: usize = 64;

fn err(m: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(m.into())
}

/// A cursor over protobuf bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("varint too long"))
    }

    fn fixed(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| err("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| err("truncated field"))?;
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| err("length overflow"))?;
        self.fixed(n)
    }

    /// (field number, wire type)
    fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let k = self.varint()?;
        let tag = u32::try_from(k >> 3).map_err(|_| err("field number overflow"))?;
        if tag == 0 {
            return Err(err("field number 0"));
        }
        Ok((tag, (k & 7) as u8))
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.fixed(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.fixed(4).map(|_| ()),
            w => Err(err(format!("unsupported wire type {w}"))),
        }
    }
}

/// The raw value of one occurrence of a field.
enum Raw<'a> {
    Varint(u64),
    Fixed64(&'a [u8]),
    Len(&'a [u8]),
}

fn read_raw<'a>(r: &mut Reader<'a>, wire: u8) -> Result<Option<Raw<'a>>, DecodeError> {
    Ok(match wire {
        0 => Some(Raw::Varint(r.varint()?)),
        1 => Some(Raw::Fixed64(r.fixed(8)?)),
        2 => Some(Raw::Len(r.bytes()?)),
        5 => {
            r.fixed(4)?;
            None
        }
        w => return Err(err(format!("unsupported wire type {w}"))),
    })
}

fn find(name: &str) -> Result<usize, DecodeError> {
    crate::schema::MESSAGES
        .iter()
        .position(|m| m.name.ends_with(name))
        .ok_or_else(|| err(format!("no table for {name}")))
}

fn scalar(kind: Kind, raw: Raw<'_>, depth: usize) -> Result<Option<Value>, DecodeError> {
    let bad = |what: &str| err(format!("wrong wire type for {what}"));
    Ok(match (kind, raw) {
        (Kind::Str, Raw::Len(b)) => Some(Value::String(
            std::str::from_utf8(b)
                .map_err(|_| err("invalid UTF-8 in string"))?
                .to_string(),
        )),
        (Kind::Bytes, Raw::Len(b)) => Some(Value::String(
            base64::engine::general_purpose::STANDARD.encode(b),
        )),
        (Kind::Bool, Raw::Varint(v)) => Some(Value::Bool(v != 0)),
        (Kind::I32, Raw::Varint(v)) => Some(Value::from(v as i64 as i32)),
        (Kind::I64, Raw::Varint(v)) => Some(Value::from(v as i64)),
        (Kind::F64, Raw::Fixed64(b)) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Number::from_f64(f64::from_le_bytes(a)).map(Value::Number)
        }
        (Kind::Msg(idx), Raw::Len(b)) => Some(decode_message(b, idx, depth + 1)?),
        (Kind::Time | Kind::MicroTime, Raw::Len(b)) => {
            let (mut secs, mut nanos) = (0i64, 0i32);
            let mut r = Reader::new(b);
            while !r.done() {
                let (tag, wire) = r.key()?;
                match (tag, wire) {
                    (1, 0) => secs = r.varint()? as i64,
                    (2, 0) => nanos = r.varint()? as i64 as i32,
                    (_, w) => r.skip(w)?,
                }
            }
            if secs == GO_ZERO_TIME && nanos == 0 {
                return Ok(None);
            }
            let t = chrono::DateTime::from_timestamp(secs, nanos.max(0) as u32)
                .ok_or_else(|| err("time out of range"))?;
            Some(Value::String(match kind {
                Kind::MicroTime => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                _ => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }))
        }
        (Kind::Quantity, Raw::Len(b)) => {
            let mut r = Reader::new(b);
            let mut s = None;
            while !r.done() {
                let (tag, wire) = r.key()?;
                if tag == 1 && wire == 2 {
                    s = Some(
                        std::str::from_utf8(r.bytes()?)
                            .map_err(|_| err("invalid UTF-8"))?
                            .to_string(),
                    );
                } else {
                    r.skip(wire)?;
                }
            }
            s.map(Value::String)
        }
        (Kind::IntOrString, Raw::Len(b)) => {
            let (mut ty, mut i, mut s) = (0u64, 0i32, String::new());
            let mut r = Reader::new(b);
            while !r.done() {
                let (tag, wire) = r.key()?;
                match (tag, wire) {
                    (1, 0) => ty = r.varint()?,
                    (2, 0) => i = r.varint()? as i64 as i32,
                    (3, 2) => {
                        s = std::str::from_utf8(r.bytes()?)
                            .map_err(|_| err("invalid UTF-8"))?
                            .to_string()
                    }
                    (_, w) => r.skip(w)?,
                }
            }
            Some(if ty == 1 {
                Value::String(s)
            } else {
                Value::from(i)
            })
        }
        (Kind::RawJson, Raw::Len(b)) => {
            let mut r = Reader::new(b);
            let mut v = None;
            while !r.done() {
                let (tag, wire) = r.key()?;
                if tag == 1 && wire == 2 {
                    let raw = r.bytes()?;
                    v = Some(
                        serde_json::from_slice(raw)
                            .map_err(|e| err(format!("embedded JSON: {e}")))?,
                    );
                } else {
                    r.skip(wire)?;
                }
            }
            v
        }
        (Kind::StringList, Raw::Len(b)) => {
            let mut r = Reader::new(b);
            let mut items = Vec::new();
            while !r.done() {
                let (tag, wire) = r.key()?;
                if tag == 1 && wire == 2 {
                    items.push(Value::String(
                        std::str::from_utf8(r.bytes()?)
                            .map_err(|_| err("invalid UTF-8"))?
                            .to_string(),
                    ));
                } else {
                    r.skip(wire)?;
                }
            }
            Some(Value::Array(items))
        }
        (Kind::OrArray | Kind::OrBool | Kind::OrStringArray, Raw::Len(b)) => {
            Some(union(kind, b, depth)?)
        }
        (k, _) => return Err(bad(&format!("{k:?}"))),
    })
}

/// JSONSchemaPropsOrArray / OrBool / OrStringArray: a schema, or an array / bool / strings.
fn union(kind: Kind, b: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let props = find(".JsonSchemaProps")?;
    let mut r = Reader::new(b);
    let mut schema = None;
    let mut list = Vec::new();
    let mut allows = None;
    while !r.done() {
        let (tag, wire) = r.key()?;
        match (kind, tag, wire) {
            (Kind::OrArray, 1, 2) | (Kind::OrStringArray, 1, 2) | (Kind::OrBool, 2, 2) => {
                schema = Some(decode_message(r.bytes()?, props, depth + 1)?)
            }
            (Kind::OrArray, 2, 2) => list.push(decode_message(r.bytes()?, props, depth + 1)?),
            (Kind::OrStringArray, 2, 2) => list.push(Value::String(
                std::str::from_utf8(r.bytes()?)
                    .map_err(|_| err("invalid UTF-8"))?
                    .to_string(),
            )),
            (Kind::OrBool, 1, 0) => allows = Some(r.varint()? != 0),
            (_, _, w) => r.skip(w)?,
        }
    }
    Ok(match (schema, kind) {
        (Some(s), _) => s,
        (None, Kind::OrBool) => Value::Bool(allows.unwrap_or(false)),
        (None, _) => Value::Array(list),
    })
}

/// Decodes one message by its table.
pub(crate) fn decode_message(buf: &[u8], idx: usize, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(err("message nested too deeply"));
    }
    let msg = &crate::schema::MESSAGES[idx];
    let mut slots: Vec<Option<Value>> = vec![None; msg.fields.len()];
    let mut r = Reader::new(buf);
    while !r.done() {
        let (tag, wire) = r.key()?;
        let Some(fi) = msg.fields.iter().position(|f| f.tag == tag) else {
            r.skip(wire)?;
            continue;
        };
        let f = &msg.fields[fi];
        let Some(raw) = read_raw(&mut r, wire)? else {
            continue;
        };
        if f.map {
            let Raw::Len(entry) = raw else {
                return Err(err(format!(
                    "{}: map entry is not length-delimited",
                    f.json
                )));
            };
            let (mut k, mut v) = (String::new(), None);
            let mut er = Reader::new(entry);
            while !er.done() {
                let (t, w) = er.key()?;
                match (t, read_raw(&mut er, w)?) {
                    (1, Some(Raw::Len(b))) => {
                        k = std::str::from_utf8(b)
                            .map_err(|_| err("invalid UTF-8 map key"))?
                            .to_string()
                    }
                    (2, Some(raw)) => v = scalar(f.kind, raw, depth)?,
                    _ => {}
                }
            }
            let v = v.unwrap_or_else(|| match f.kind {
                Kind::Str | Kind::Bytes => Value::String(String::new()),
                Kind::Msg(_) => Value::Object(Map::new()),
                _ => Value::Null,
            });
            let slot = slots[fi].get_or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = slot {
                m.insert(k, v);
            }
        } else if f.repeated {
            // packed repeated scalars arrive as one length-delimited run
            let values: Vec<Value> = match (f.kind, raw) {
                (Kind::I32 | Kind::I64 | Kind::Bool, Raw::Len(b)) => {
                    let mut pr = Reader::new(b);
                    let mut out = Vec::new();
                    while !pr.done() {
                        if let Some(v) = scalar(f.kind, Raw::Varint(pr.varint()?), depth)? {
                            out.push(v);
                        }
                    }
                    out
                }
                (k, raw) => scalar(k, raw, depth)?.into_iter().collect(),
            };
            let slot = slots[fi].get_or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = slot {
                a.extend(values);
            }
        } else {
            slots[fi] = scalar(f.kind, raw, depth)?;
        }
    }
    let mut out = Map::new();
    for (f, v) in msg.fields.iter().zip(slots) {
        let Some(v) = v else { continue };
        // Go's omitempty: empty strings and generation 0 are not written in JSON.
        let omit = match (&v, f.kind) {
            (Value::String(s), Kind::Str) if !f.repeated && !f.map => s.is_empty(),
            (Value::Number(n), Kind::I64) if f.json == "generation" => n.as_i64() == Some(0),
            _ => false,
        };
        if !omit {
            out.insert(f.json.to_string(), v);
        }
    }
    Ok(Value::Object(out))
}

// ----------------------------------------------------------------------------------------
// Encoding

pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(b);
                return;
            }
            self.buf.push(b | 0x80);
        }
    }
    fn key(&mut self, tag: u32, wire: u8) {
        self.varint((u64::from(tag) << 3) | u64::from(wire));
    }
    pub(crate) fn bytes(&mut self, tag: u32, b: &[u8]) {
        self.key(tag, 2);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    fn int(&mut self, tag: u32, v: i64) {
        self.key(tag, 0);
        self.varint(v as u64);
    }
}

fn enc_err(m: impl Into<String>) -> DecodeError {
    DecodeError::Unencodable(m.into())
}

fn encode_time(s: &str) -> Result<Vec<u8>, DecodeError> {
    let t =
        chrono::DateTime::parse_from_rfc3339(s).map_err(|e| enc_err(format!("time {s:?}: {e}")))?;
    let mut w = Writer::new();
    w.int(1, t.timestamp());
    if t.timestamp_subsec_nanos() != 0 {
        w.int(2, i64::from(t.timestamp_subsec_nanos()));
    }
    Ok(w.buf)
}

fn encode_value(
    w: &mut Writer,
    tag: u32,
    kind: Kind,
    v: &Value,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(enc_err("nested too deeply"));
    }
    let str_of = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| enc_err(format!("expected a string, got {v}")))
    };
    match kind {
        Kind::Str => w.bytes(tag, str_of(v)?.as_bytes()),
        Kind::Bytes => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(str_of(v)?)
                .map_err(|e| enc_err(format!("base64: {e}")))?;
            w.bytes(tag, &b)
        }
        Kind::Bool => w.int(
            tag,
            i64::from(v.as_bool().ok_or_else(|| enc_err("expected a bool"))?),
        ),
        Kind::I32 | Kind::I64 => w.int(
            tag,
            v.as_i64().ok_or_else(|| enc_err("expected an integer"))?,
        ),
        Kind::F64 => {
            let f = v.as_f64().ok_or_else(|| enc_err("expected a number"))?;
            w.key(tag, 1);
            w.buf.extend_from_slice(&f.to_le_bytes());
        }
        Kind::Msg(idx) => {
            let inner = encode_message(v, idx, depth + 1)?;
            w.bytes(tag, &inner)
        }
        Kind::Time | Kind::MicroTime => w.bytes(tag, &encode_time(&str_of(v)?)?),
        Kind::Quantity => {
            let s = match v {
                Value::Number(n) => n.to_string(),
                other => str_of(other)?,
            };
            let mut inner = Writer::new();
            inner.bytes(1, s.as_bytes());
            w.bytes(tag, &inner.buf)
        }
        Kind::IntOrString => {
            let mut inner = Writer::new();
            match v {
                Value::String(s) => {
                    inner.int(1, 1);
                    inner.bytes(3, s.as_bytes());
                }
                other => {
                    inner.int(1, 0);
                    inner.int(
                        2,
                        other
                            .as_i64()
                            .ok_or_else(|| enc_err("expected int or string"))?,
                    );
                }
            }
            w.bytes(tag, &inner.buf)
        }
        Kind::RawJson => {
            let mut inner = Writer::new();
            inner.bytes(
                1,
                &serde_json::to_vec(v).map_err(|e| enc_err(e.to_string()))?,
            );
            w.bytes(tag, &inner.buf)
        }
        Kind::StringList => {
            let mut inner = Writer::new();
            for s in v.as_array().ok_or_else(|| enc_err("expected a list"))? {
                inner.bytes(1, str_of(s)?.as_bytes());
            }
            w.bytes(tag, &inner.buf)
        }
        Kind::OrArray | Kind::OrBool | Kind::OrStringArray => {
            let props = find(".JsonSchemaProps")?;
            let mut inner = Writer::new();
            match (kind, v) {
                (Kind::OrBool, Value::Bool(b)) => inner.int(1, i64::from(*b)),
                (Kind::OrBool, Value::Object(_)) => {
                    inner.int(1, 1);
                    inner.bytes(2, &encode_message(v, props, depth + 1)?)
                }
                (_, Value::Object(_)) => inner.bytes(1, &encode_message(v, props, depth + 1)?),
                (Kind::OrArray, Value::Array(a)) => {
                    for s in a {
                        inner.bytes(2, &encode_message(s, props, depth + 1)?);
                    }
                }
                (Kind::OrStringArray, Value::Array(a)) => {
                    for s in a {
                        inner.bytes(2, str_of(s)?.as_bytes());
                    }
                }
                (_, other) => {
                    return Err(enc_err(format!("unexpected schema union value {other}")))
                }
            }
            w.bytes(tag, &inner.buf)
        }
    }
    Ok(())
}

/// Encodes a JSON object by the table of message `idx`; unknown fields are errors.
pub(crate) fn encode_message(v: &Value, idx: usize, depth: usize) -> Result<Vec<u8>, DecodeError> {
    let msg = &crate::schema::MESSAGES[idx];
    let obj = v
        .as_object()
        .ok_or_else(|| enc_err(format!("{}: expected an object", msg.name)))?;
    let mut w = Writer::new();
    for (k, val) in obj {
        if val.is_null() {
            continue;
        }
        let f = msg
            .fields
            .iter()
            .find(|f| f.json == k)
            .ok_or_else(|| enc_err(format!("{}: unknown field {k:?}", msg.name)))?;
        if f.map {
            for (mk, mv) in val
                .as_object()
                .ok_or_else(|| enc_err(format!("{k}: expected an object")))?
            {
                let mut entry = Writer::new();
                entry.bytes(1, mk.as_bytes());
                encode_value(&mut entry, 2, f.kind, mv, depth)?;
                w.bytes(f.tag, &entry.buf);
            }
        } else if f.repeated {
            for item in val
                .as_array()
                .ok_or_else(|| enc_err(format!("{k}: expected a list")))?
            {
                encode_value(&mut w, f.tag, f.kind, item, depth)?;
            }
        } else {
            encode_value(&mut w, f.tag, f.kind, val, depth)?;
        }
    }
    Ok(w.buf)
}

/// Splits the `runtime.Unknown` envelope (after the magic) into (apiVersion, kind, raw).
pub(crate) fn unknown(buf: &[u8]) -> Result<(String, String, &[u8]), DecodeError> {
    let mut r = Reader::new(buf);
    let (mut av, mut kind, mut raw): (String, String, &[u8]) = (String::new(), String::new(), &[]);
    while !r.done() {
        let (tag, wire) = r.key()?;
        match (tag, wire) {
            (1, 2) => {
                let mut tm = Reader::new(r.bytes()?);
                while !tm.done() {
                    let (t, w) = tm.key()?;
                    match (t, w) {
                        (1, 2) => {
                            av = String::from_utf8(tm.bytes()?.to_vec())
                                .map_err(|_| err("invalid UTF-8 apiVersion"))?
                        }
                        (2, 2) => {
                            kind = String::from_utf8(tm.bytes()?.to_vec())
                                .map_err(|_| err("invalid UTF-8 kind"))?
                        }
                        (_, w) => tm.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            (3, 2) => {
                let enc = r.bytes()?;
                if !enc.is_empty() {
                    return Err(err(format!(
                        "unsupported contentEncoding {:?}",
                        String::from_utf8_lossy(enc)
                    )));
                }
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((av, kind, raw))
}
