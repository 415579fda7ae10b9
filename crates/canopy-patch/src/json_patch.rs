//! RFC 6902 JSON patch as kube-apiserver applies it: evanphx/json-patch v4 with its
//! non-standard behaviour, under kube's limits and Canopy's own.
//!
//! Where kube (evanphx v4) differs from the RFC, this follows kube:
//!
//! * `test` of a path whose parent exists but whose key does not (or holds `null`)
//!   succeeds against `"value": null` (or no value): kube-rs' `finalizer()` helper
//!   tests `/metadata/finalizers` against `null` before adding the first finalizer;
//! * array indexes may be negative (`SupportNegativeIndices`): `-1` is the last
//!   element (for `add`, `-1` appends), and are parsed as Go's `strconv.Atoi` does
//!   (`+1`, `01`);
//! * `replace` of a missing object key adds it; `replace` of `""` replaces the
//!   document (with an object or array); `add` to `""` is an error;
//! * `copy` from a missing object key copies `null`; `add` without a value adds
//!   `null`; `remove` of a missing key is an error;
//! * the text before a path's first `/` is ignored.
//!
//! Limits (all errors, nothing is applied): at most [`Limits::max_operations`]
//! operations (kube's `maxJSONPatchOperations`, 413); the bytes copied by `copy`
//! operations together at most [`Limits::max_copy_bytes`] (kube's
//! `JSONPatchMaxCopyBytes`, evanphx's `AccumulatedCopySizeLimit`); the document at
//! most [`Limits::max_result_bytes`] at every step (its size is tracked as
//! operations apply, so a chain of doubling copies stops before it allocates); at
//! most [`Limits::max_nesting`] nested containers at every step; at most
//! [`Limits::max_work`] units of work (elements shifted by array inserts and
//! removals and object key removals, values visited to measure nesting).

use serde_json::Value;

use crate::measure::{measure, string_size, Measure};
use crate::{Limits, PatchError};

/// One decoded operation: its fields as evanphx reads them.
struct Op<'a> {
    kind: &'a str,
    path: Option<&'a str>,
    from: Option<&'a str>,
    /// `Some(Value::Null)` for `"value": null`; `None` without a `value` field.
    value: Option<&'a Value>,
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn decode(patch: &Value) -> Result<Vec<Op<'_>>, PatchError> {
    let items: &[Value] = match patch {
        Value::Array(a) => a,
        Value::Null => &[],
        other => {
            return Err(PatchError::InvalidJsonPatch(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                go_type(other)
            )))
        }
    };
    let mut ops = Vec::with_capacity(items.len());
    for item in items {
        let m = match item {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                return Err(PatchError::InvalidJsonPatch(format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                    go_type(other)
                )))
            }
        };
        let s = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_str);
        ops.push(Op {
            kind: s("op").unwrap_or("unknown"),
            path: s("path"),
            from: s("from"),
            value: m.and_then(|m| m.get("value")),
        });
    }
    Ok(ops)
}

/// A path split as evanphx's `findObject` splits it: the keys of the containers
/// to walk to, and the last key. `None` for a path without `/`.
fn split(path: &str) -> Option<(Vec<String>, String)> {
    let mut parts = path.split('/');
    parts.next()?; // whatever precedes the first '/'
    let mut keys: Vec<String> = parts.map(decode_key).collect();
    let last = keys.pop()?;
    Some((keys, last))
}

/// RFC 6901 unescaping, as evanphx's replacer does it (`~1` then `~0`, left to right).
fn decode_key(k: &str) -> String {
    if !k.contains('~') {
        return k.to_string();
    }
    let mut out = String::with_capacity(k.len());
    let mut chars = k.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.peek() {
                Some('1') => {
                    chars.next();
                    out.push('/');
                    continue;
                }
                Some('0') => {
                    chars.next();
                    out.push('~');
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

/// An index into an array of `len` elements, Go `strconv.Atoi` and negative
/// indexes as evanphx's `get`, `set` and `remove`.
fn index(key: &str, len: usize) -> Result<usize, String> {
    let i: i64 = key
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing {key:?}: invalid syntax"))?;
    let len = len as i64;
    let j = if i < 0 { i + len } else { i };
    if i < -len || j >= len {
        return Err(format!(
            "Unable to access invalid index: {i}: invalid index referenced"
        ));
    }
    Ok(j as usize)
}

struct State {
    limits: Limits,
    /// Serialized size of the document, kept exact as operations apply.
    bytes: u64,
    /// Upper bound of the document's nesting.
    nesting: usize,
    work: u64,
    copied: u64,
}

/// Why an operation failed: a limit (reported as itself) or evanphx's message.
enum OpError {
    Limit(PatchError),
    Msg(String),
}

impl From<PatchError> for OpError {
    fn from(e: PatchError) -> Self {
        OpError::Limit(e)
    }
}

impl From<String> for OpError {
    fn from(e: String) -> Self {
        OpError::Msg(e)
    }
}

impl From<&str> for OpError {
    fn from(e: &str) -> Self {
        OpError::Msg(e.to_string())
    }
}

impl OpError {
    /// Wraps evanphx's message; limits stay as they are.
    fn wrap(self, f: impl FnOnce(String) -> String) -> OpError {
        match self {
            OpError::Msg(m) => OpError::Msg(f(m)),
            limit => limit,
        }
    }
}

type OpResult<T = ()> = Result<T, OpError>;

impl State {
    fn charge(&mut self, units: u64) -> Result<(), PatchError> {
        self.work = self.work.saturating_add(units);
        if self.work > self.limits.max_work {
            return Err(PatchError::TooComplex {
                limit: self.limits.max_work,
            });
        }
        Ok(())
    }

    fn measure(&mut self, v: &Value) -> Result<Measure, PatchError> {
        let m = measure(v);
        self.charge(m.nodes)?;
        Ok(m)
    }

    /// Adds and removes bytes; a document that grows past the limit is refused (one
    /// that is already larger may shrink).
    fn grow(&mut self, add: u64, remove: u64) -> Result<(), PatchError> {
        let before = self.bytes;
        self.bytes = self.bytes.saturating_add(add).saturating_sub(remove);
        if self.bytes > before && self.bytes > self.limits.max_result_bytes {
            return Err(PatchError::ResultTooLarge {
                limit: self.limits.max_result_bytes,
            });
        }
        Ok(())
    }

    /// A value of `nesting` placed in a container at depth `at` (the root is 1).
    fn nest(&mut self, at: usize, nesting: usize) -> Result<(), PatchError> {
        let n = at.saturating_add(nesting);
        if n > self.limits.max_nesting {
            return Err(PatchError::TooDeep {
                limit: self.limits.max_nesting,
            });
        }
        self.nesting = self.nesting.max(n);
        Ok(())
    }
}

/// The container at `keys` below `doc`, and its depth (the root is 1).
fn find<'a>(doc: &'a mut Value, keys: &[String]) -> Option<(&'a mut Value, usize)> {
    let mut cur = doc;
    let mut depth = 1;
    for k in keys {
        let next = match cur {
            Value::Object(m) => m.get_mut(k)?,
            Value::Array(a) => {
                let i = index(k, a.len()).ok()?;
                a.get_mut(i)?
            }
            _ => return None,
        };
        if !(next.is_object() || next.is_array()) {
            return None;
        }
        cur = next;
        depth += 1;
    }
    (cur.is_object() || cur.is_array()).then_some((cur, depth))
}

/// Bytes an entry `key: value` adds to an object of `len` entries, the value aside.
fn entry_overhead(key: &str, len: usize) -> u64 {
    string_size(key) + 1 + u64::from(len > 0)
}

/// Adds `v` (of `bytes` not yet counted in the document's size, and `nesting`)
/// under `key` of the container `con` at depth `depth`, as evanphx's `add` of a
/// document (sets the key) or of an array (inserts; `-` appends).
fn add_to(
    st: &mut State,
    con: &mut Value,
    depth: usize,
    key: &str,
    v: Value,
    bytes: u64,
    nesting: usize,
) -> OpResult {
    match con {
        Value::Object(map) => {
            let (add, remove) = match map.get(key) {
                Some(old) => (bytes, st.measure(old)?.bytes),
                None => (bytes + entry_overhead(key, map.len()), 0),
            };
            st.nest(depth, nesting)?;
            st.grow(add, remove)?;
            map.insert(key.to_string(), v);
            Ok(())
        }
        Value::Array(a) => {
            let len = a.len();
            let at = if key == "-" {
                len
            } else {
                let i: i64 = key.parse().map_err(|_| {
                    format!("value was not a proper array index: '{key}': strconv.Atoi: parsing {key:?}: invalid syntax")
                })?;
                let size = len as i64 + 1;
                if i >= size || i < -size {
                    return Err(format!(
                        "Unable to access invalid index: {i}: invalid index referenced"
                    )
                    .into());
                }
                (if i < 0 { i + size } else { i }) as usize
            };
            st.charge((len - at) as u64)?;
            st.nest(depth, nesting)?;
            st.grow(bytes + u64::from(len > 0), 0)?;
            a.insert(at, v);
            Ok(())
        }
        _ => Err("invalid state detected".into()),
    }
}

/// Removes `key` from `con`, returning the value. The value's own bytes are
/// subtracted from the document's size when `whole`; else only its entry's.
fn remove_from(st: &mut State, con: &mut Value, key: &str, whole: bool) -> OpResult<Value> {
    match con {
        Value::Object(map) => {
            let len = map.len();
            if !map.contains_key(key) {
                return Err(
                    format!("Unable to remove nonexistent key: {key}: missing value").into(),
                );
            }
            // shifting the keys after it keeps the object's order
            st.charge(len as u64)?;
            let v = map.shift_remove(key).unwrap_or(Value::Null);
            let vb = if whole { st.measure(&v)?.bytes } else { 0 };
            st.grow(0, vb + string_size(key) + 1 + u64::from(len > 1))?;
            Ok(v)
        }
        Value::Array(a) => {
            let len = a.len();
            let i = index(key, len)?;
            st.charge((len - i) as u64)?;
            let v = a.remove(i);
            let vb = if whole { st.measure(&v)?.bytes } else { 0 };
            st.grow(0, vb + u64::from(len > 1))?;
            Ok(v)
        }
        _ => Err("invalid state detected".into()),
    }
}

/// Applies a JSON patch to `doc` under `limits`.
pub fn apply(doc: &Value, patch: &Value, limits: &Limits) -> Result<Value, PatchError> {
    let ops = decode(patch)?;
    if ops.len() > limits.max_operations {
        return Err(PatchError::TooManyOperations {
            max: limits.max_operations,
            got: ops.len(),
        });
    }
    if !(doc.is_object() || doc.is_array()) {
        return Err(PatchError::JsonPatch(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.partialDoc",
            go_type(doc)
        )));
    }
    let m = measure(doc);
    let mut st = State {
        limits: limits.clone(),
        bytes: 0,
        nesting: 0,
        work: 0,
        copied: 0,
    };
    st.charge(m.nodes)?;
    st.nest(0, m.nesting)?;
    st.bytes = m.bytes;
    // values of operations nested deeper than any document may be are refused
    // before they are cloned or compared (both recurse)
    for op in &ops {
        if let Some(v) = op.value {
            let m = st.measure(v)?;
            if m.nesting >= limits.max_nesting {
                return Err(PatchError::TooDeep {
                    limit: limits.max_nesting,
                });
            }
        }
    }
    let mut out = doc.clone();
    for op in &ops {
        st.charge(1)?;
        match apply_op(&mut st, &mut out, op) {
            Ok(()) => {}
            Err(OpError::Limit(e)) => return Err(e),
            Err(OpError::Msg(m)) => return Err(PatchError::JsonPatch(m)),
        }
    }
    Ok(out)
}

fn missing_path(op: &str, path: &str) -> OpError {
    OpError::Msg(format!(
        "{op} operation does not apply: doc is missing path: \"{path}\": missing value"
    ))
}

fn apply_op(st: &mut State, doc: &mut Value, op: &Op<'_>) -> OpResult {
    match op.kind {
        "add" => {
            let path = op
                .path
                .ok_or("add operation failed to decode path: missing value")?;
            let v = op.value.cloned().unwrap_or(Value::Null);
            let m = st.measure(&v)?;
            let (keys, key) = split(path).ok_or_else(|| missing_path("add", path))?;
            let (con, depth) = find(doc, &keys).ok_or_else(|| missing_path("add", path))?;
            add_to(st, con, depth, &key, v, m.bytes, m.nesting)
                .map_err(|e| e.wrap(|e| format!("error in add for path: '{path}': {e}")))
        }
        "remove" => {
            let path = op
                .path
                .ok_or("remove operation failed to decode path: missing value")?;
            let (keys, key) = split(path).ok_or_else(|| missing_path("remove", path))?;
            let (con, _) = find(doc, &keys).ok_or_else(|| missing_path("remove", path))?;
            remove_from(st, con, &key, true)
                .map(drop)
                .map_err(|e| e.wrap(|e| format!("error in remove for path: '{path}': {e}")))
        }
        "replace" => {
            let path = op
                .path
                .ok_or("replace operation failed to decode path: missing value")?;
            if path.is_empty() {
                let v = match op.value {
                    Some(v @ (Value::Object(_) | Value::Array(_))) => v.clone(),
                    _ => return Err("replace operation value must be object or array".into()),
                };
                let m = st.measure(&v)?;
                st.bytes = 0;
                st.nesting = 0;
                st.nest(0, m.nesting)?;
                st.grow(m.bytes, 0)?;
                *doc = v;
                return Ok(());
            }
            let missing = || {
                OpError::Msg(format!(
                    "replace operation does not apply: doc is missing path: {path}: missing value"
                ))
            };
            let v = op.value.cloned().unwrap_or(Value::Null);
            let m = st.measure(&v)?;
            let (keys, key) = split(path).ok_or_else(missing)?;
            let (con, depth) = find(doc, &keys).ok_or_else(missing)?;
            if let Value::Array(a) = con {
                let i = index(&key, a.len()).map_err(|_| {
                    format!("replace operation does not apply: doc is missing key: {path}: missing value")
                })?;
                let old = st.measure(&a[i])?.bytes;
                st.nest(depth, m.nesting)?;
                st.grow(m.bytes, old)?;
                a[i] = v;
                return Ok(());
            }
            // a missing key of an object is added
            add_to(st, con, depth, &key, v, m.bytes, m.nesting)
        }
        "move" => {
            let from = op
                .from
                .ok_or("move operation failed to decode from: missing value")?;
            let path = op
                .path
                .ok_or("move operation failed to decode path: missing value")?;
            let missing_from = || {
                OpError::Msg(format!(
                    "move operation does not apply: doc is missing from path: {from}: missing value"
                ))
            };
            let missing_to = || {
                OpError::Msg(format!(
                    "move operation does not apply: doc is missing destination path: {path}: missing value"
                ))
            };
            let (fkeys, fkey) = split(from).ok_or_else(missing_from)?;
            let (con, fdepth) = find(doc, &fkeys).ok_or_else(missing_from)?;
            let v = remove_from(st, con, &fkey, false)
                .map_err(|e| e.wrap(|e| format!("error in move for path: '{fkey}': {e}")))?;
            let (keys, key) = split(path).ok_or_else(missing_to)?;
            let (con, depth) = find(doc, &keys).ok_or_else(missing_to)?;
            // the moved value is at most as deep as the document below its old
            // place; it is measured only when that bound would exceed the limit
            let bound = st.nesting.saturating_sub(fdepth);
            let nesting = if depth.saturating_add(bound) > st.limits.max_nesting {
                st.measure(&v)?.nesting
            } else {
                bound
            };
            // its own bytes are still counted in the document's size
            add_to(st, con, depth, &key, v, 0, nesting)
                .map_err(|e| e.wrap(|e| format!("error in move for path: '{path}': {e}")))
        }
        "test" => {
            let path = op
                .path
                .ok_or("test operation failed to decode path: missing value")?;
            let failed = || OpError::Msg(format!("testing value {path} failed: test failed"));
            if path.is_empty() {
                return match op.value {
                    Some(v) if v == doc => Ok(()),
                    _ => Err(failed()),
                };
            }
            let missing = || {
                OpError::Msg(format!(
                    "test operation does not apply: is missing path: {path}: missing value"
                ))
            };
            let (keys, key) = split(path).ok_or_else(missing)?;
            let (con, _) = find(doc, &keys).ok_or_else(missing)?;
            // a missing key and `null` are the same to evanphx
            let cur = match con {
                Value::Object(m) => m.get(&key),
                Value::Array(a) => {
                    let i = index(&key, a.len())
                        .map_err(|e| format!("error in test for path: '{path}': {e}"))?;
                    a.get(i)
                }
                _ => None,
            }
            .filter(|v| !v.is_null());
            match (cur, op.value.filter(|v| !v.is_null())) {
                (None, None) => Ok(()),
                (Some(c), Some(w)) if c == w => Ok(()),
                _ => Err(failed()),
            }
        }
        "copy" => {
            let from = op
                .from
                .ok_or("copy operation failed to decode from: missing value")?;
            let path = op
                .path
                .ok_or("copy operation failed to decode path: missing value")?;
            let missing_from = || {
                OpError::Msg(format!(
                    "copy operation does not apply: doc is missing from path: {from}: missing value"
                ))
            };
            let (fkeys, fkey) = split(from).ok_or_else(missing_from)?;
            let (con, _) = find(doc, &fkeys).ok_or_else(missing_from)?;
            let src = match con {
                Value::Object(m) => m.get(&fkey),
                Value::Array(a) => {
                    let i = index(&fkey, a.len())
                        .map_err(|e| format!("error in copy for from: '{from}': {e}"))?;
                    a.get(i)
                }
                _ => None,
            };
            // measured (as evanphx measures it, by its JSON) and counted before it is
            // cloned; a missing key copies null, counted as 0 bytes as evanphx does
            let (m, copied) = match src {
                Some(v) => {
                    let m = measure(v);
                    (m, m.bytes)
                }
                None => (measure(&Value::Null), 0),
            };
            st.charge(m.nodes)?;
            st.copied = st.copied.saturating_add(copied);
            if st.limits.max_copy_bytes > 0 && st.copied > st.limits.max_copy_bytes {
                return Err(PatchError::CopySizeExceeded {
                    limit: st.limits.max_copy_bytes,
                    accumulated: st.copied,
                }
                .into());
            }
            if m.bytes > st.limits.max_result_bytes.saturating_sub(st.bytes) {
                return Err(PatchError::ResultTooLarge {
                    limit: st.limits.max_result_bytes,
                }
                .into());
            }
            let v = src.cloned().unwrap_or(Value::Null);
            let missing_to = || {
                OpError::Msg(format!(
                    "copy operation does not apply: doc is missing destination path: {path}: missing value"
                ))
            };
            let (keys, key) = split(path).ok_or_else(missing_to)?;
            let (con, depth) = find(doc, &keys).ok_or_else(missing_to)?;
            add_to(st, con, depth, &key, v, m.bytes, m.nesting)
                .map_err(|e| e.wrap(|e| format!("error while adding value during copy: {e}")))
        }
        other => Err(format!("Unexpected kind: {other}").into()),
    }
}
