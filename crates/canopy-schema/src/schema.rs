//! Compiling an `openAPIV3Schema` into a tree that validates, prunes and
//! defaults without looking at the schema JSON again.
//!
//! [`CompiledSchema::compile`] decodes every node once: types are resolved
//! (including `x-kubernetes-int-or-string`, which validates as
//! `integer,string`), unsupported formats are dropped as kube-apiserver does
//! (`StripUnsupportedFormatsPostProcess`), `pattern`s are compiled to
//! [`regex::Regex`] (identical patterns share one compiled regex), property
//! lookups are hashed, and default values are pruned against their own
//! schema like `structuraldefaulting.PruneDefaults`. The result is meant to
//! be cached per CRD version and shared between requests (`CompiledSchema`
//! is `Send + Sync`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::CompileError;
use crate::formats::StringFormat;

/// A small, fast, non-cryptographic hasher (the "Fx" hash of rustc) for
/// property lookups: keys come from the CRD author, not from requests.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `additionalProperties` of a node.
#[derive(Debug, Clone)]
pub(crate) enum Additional {
    /// `additionalProperties: true|false`.
    Bool(bool),
    /// `additionalProperties: {schema}`.
    Schema(Box<Node>),
}

/// One compiled schema node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    /// `type` as written (empty if unset).
    pub ty: String,
    /// The type list go-openapi validates against: `[type]`,
    /// `[integer, string]` for int-or-string, or empty.
    pub types: Vec<&'static str>,
    pub nullable: bool,
    /// The format after kube's stripping of unsupported formats.
    pub format: Option<String>,
    /// The string format checked by the format validator.
    pub string_format: Option<StringFormat>,
    /// `integer` / `number` when the type is exactly one of those (used by
    /// go-openapi's range checks).
    pub num_type: &'static str,
    /// `int32`/`int64`/`float`/`double` when valid for `num_type`.
    pub num_format: &'static str,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub pattern: Option<(String, Result<Regex, String>)>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub unique_items: bool,
    pub multiple_of: Option<f64>,
    pub enum_values: Option<Vec<Value>>,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub required: Vec<String>,
    pub all_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub properties: Vec<(String, Node)>,
    pub prop_index: HashMap<String, usize, BuildHasherDefault<FxHasher>>,
    pub additional: Option<Additional>,
    pub items: Option<Box<Node>>,
    pub default: Option<Value>,
    pub preserve_unknown_fields: bool,
    pub embedded_resource: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`: only server-side apply cares about it;
    /// kube does not validate values against it.
    #[allow(dead_code)]
    pub map_type: Option<String>,
    /// Indices of `properties` that carry a default.
    pub defaulted: Vec<usize>,
    /// Whether this node or anything below it (structurally) has a default.
    pub has_defaults: bool,
    /// Whether this node or anything below it is a `set`/`map` list.
    pub has_list_semantics: bool,
    /// Whether this node or anything below it is an embedded resource.
    pub has_embedded: bool,
}

impl Node {
    pub(crate) fn property(&self, name: &str) -> Option<&Node> {
        self.prop_index.get(name).map(|&i| &self.properties[i].1)
    }

    pub(crate) fn has_type(&self, t: &str) -> bool {
        self.types.contains(&t)
    }

    /// The schema applying to a key that is not a declared property.
    pub(crate) fn additional_schema(&self) -> Option<&Node> {
        match &self.additional {
            Some(Additional::Schema(s)) => Some(s),
            _ => None,
        }
    }
}

/// A compiled structural schema of one CRD version.
///
/// ```
/// use canopy_schema::CompiledSchema;
/// use serde_json::json;
///
/// let schema = CompiledSchema::compile(&json!({
///     "type": "object",
///     "properties": {"spec": {"type": "object", "properties": {
///         "replicas": {"type": "integer", "default": 1, "maximum": 10}
///     }}}
/// })).unwrap();
///
/// let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "spec": {"extra": true}});
/// assert_eq!(schema.prune(&mut obj), vec!["spec.extra".to_string()]);
/// schema.default(&mut obj);
/// assert_eq!(obj["spec"]["replicas"], 1);
/// assert!(schema.validate(&obj).is_empty());
///
/// obj["spec"]["replicas"] = json!(11);
/// assert_eq!(
///     schema.validate(&obj)[0].to_string(),
///     "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    pub(crate) root: Arc<Node>,
    /// Containers nested in the schema's JSON: how deep compiling, defaulting,
    /// pruning and validating recurse.
    pub(crate) nesting: usize,
}

/// Stack one level of schema nesting may take in compiling, defaulting, pruning or
/// validating, with room to spare (debug builds take up to about 17 KiB).
const STACK_PER_LEVEL: usize = 32 << 10;

/// Runs `f` with at least the stack a schema nesting `nesting` containers needs:
/// on the current thread when it has that much left, else on a stack segment of
/// its own (`stacker`). Schemas are at most 127 deep (serde_json's limit): typical
/// ones never leave the thread's stack, the deepest get a segment of a few MiB.
pub(crate) fn with_stack<R>(nesting: usize, f: impl FnOnce() -> R) -> R {
    let need = (64 << 10) + nesting.saturating_mul(STACK_PER_LEVEL);
    stacker::maybe_grow(need, need.max(1 << 20) * 2, f)
}

/// Containers nested in `v`, measured without recursion.
pub(crate) use canopy_patch::measure::nesting;

impl CompiledSchema {
    /// Compiles an `openAPIV3Schema`. Fails only if the JSON does not
    /// decode as a `JSONSchemaProps` (e.g. `"type": 5`); structural
    /// problems are reported by [`crate::validate_crd_schema`], and invalid
    /// `pattern`s are reported when a value is validated, like kube does.
    pub fn compile(schema: &Value) -> Result<CompiledSchema, CompileError> {
        let nesting = nesting(schema);
        with_stack(nesting, || {
            let mut cx = Compiler::default();
            let root = cx.node(schema, "")?;
            Ok(CompiledSchema {
                root: Arc::new(root),
                nesting,
            })
        })
    }

    /// The compiled schema of a root property, e.g. `status` for the status
    /// subresource, which kube validates against `properties.status` alone.
    pub fn property(&self, name: &str) -> Option<CompiledSchema> {
        self.root.property(name).map(|n| CompiledSchema {
            root: Arc::new(n.clone()),
            nesting: self.nesting,
        })
    }

    /// Runs `f` with the stack this schema needs (see [`with_stack`]).
    pub(crate) fn on_stack<R>(&self, f: impl FnOnce() -> R) -> R {
        with_stack(self.nesting, f)
    }
}

#[derive(Default)]
struct Compiler {
    regexes: HashMap<String, Result<Regex, String>>,
}

fn err(path: &str, message: impl Into<String>) -> CompileError {
    CompileError {
        path: path.to_string(),
        message: message.into(),
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn get_str(m: &Map<String, Value>, k: &str, path: &str) -> Result<Option<String>, CompileError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err(&child(path, k), "must be a string")),
    }
}

fn get_bool(m: &Map<String, Value>, k: &str, path: &str) -> Result<Option<bool>, CompileError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(err(&child(path, k), "must be a boolean")),
    }
}

fn get_f64(m: &Map<String, Value>, k: &str, path: &str) -> Result<Option<f64>, CompileError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(err(&child(path, k), "must be a number")),
    }
}

fn get_i64(m: &Map<String, Value>, k: &str, path: &str) -> Result<Option<i64>, CompileError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => Err(err(&child(path, k), "must be an integer")),
        },
        Some(_) => Err(err(&child(path, k), "must be an integer")),
    }
}

fn get_str_list(m: &Map<String, Value>, k: &str, path: &str) -> Result<Vec<String>, CompileError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(&child(path, k), "must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(err(&child(path, k), "must be a list of strings")),
    }
}

fn static_type(t: &str) -> &'static str {
    match t {
        "string" => "string",
        "integer" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        "array" => "array",
        "object" => "object",
        "null" => "null",
        _ => "",
    }
}

impl Compiler {
    fn node_list(
        &mut self,
        m: &Map<String, Value>,
        k: &str,
        path: &str,
    ) -> Result<Vec<Node>, CompileError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, s) in a.iter().enumerate() {
                    out.push(self.node(s, &format!("{}[{i}]", child(path, k)))?);
                }
                Ok(out)
            }
            Some(_) => Err(err(&child(path, k), "must be a list of schemas")),
        }
    }

    fn node(&mut self, v: &Value, path: &str) -> Result<Node, CompileError> {
        let m = match v {
            Value::Object(m) => m,
            _ => return Err(err(path, "must be a schema object")),
        };
        let mut n = Node {
            ty: get_str(m, "type", path)?.unwrap_or_default(),
            nullable: get_bool(m, "nullable", path)?.unwrap_or(false),
            maximum: get_f64(m, "maximum", path)?,
            exclusive_maximum: get_bool(m, "exclusiveMaximum", path)?.unwrap_or(false),
            minimum: get_f64(m, "minimum", path)?,
            exclusive_minimum: get_bool(m, "exclusiveMinimum", path)?.unwrap_or(false),
            max_length: get_i64(m, "maxLength", path)?,
            min_length: get_i64(m, "minLength", path)?,
            max_items: get_i64(m, "maxItems", path)?,
            min_items: get_i64(m, "minItems", path)?,
            unique_items: get_bool(m, "uniqueItems", path)?.unwrap_or(false),
            multiple_of: get_f64(m, "multipleOf", path)?,
            max_properties: get_i64(m, "maxProperties", path)?,
            min_properties: get_i64(m, "minProperties", path)?,
            required: get_str_list(m, "required", path)?,
            preserve_unknown_fields: get_bool(m, "x-kubernetes-preserve-unknown-fields", path)?
                .unwrap_or(false),
            embedded_resource: get_bool(m, "x-kubernetes-embedded-resource", path)?
                .unwrap_or(false),
            int_or_string: get_bool(m, "x-kubernetes-int-or-string", path)?.unwrap_or(false),
            list_type: get_str(m, "x-kubernetes-list-type", path)?,
            list_map_keys: get_str_list(m, "x-kubernetes-list-map-keys", path)?,
            map_type: get_str(m, "x-kubernetes-map-type", path)?,
            ..Node::default()
        };

        // types as go-openapi sees them
        if n.int_or_string {
            n.types = vec!["integer", "string"];
        } else if !n.ty.is_empty() {
            let t = static_type(&n.ty);
            // an unknown type name never matches any value
            n.types = vec![if t.is_empty() { "<invalid>" } else { t }];
        }
        if n.types.len() == 1 {
            match n.types[0] {
                "integer" => n.num_type = "integer",
                "number" => n.num_type = "number",
                _ => {}
            }
        }

        // formats, stripped like StripUnsupportedFormatsPostProcessorForVersion
        if let Some(f) = get_str(m, "format", path)? {
            if !f.is_empty() {
                let single = if n.types.len() == 1 { n.types[0] } else { "" };
                let keep = match single {
                    "" | "string" => StringFormat::lookup(&f).is_some(),
                    "integer" => f == "int32" || f == "int64",
                    "number" => f == "float" || f == "double",
                    _ => false,
                };
                if keep {
                    n.string_format = StringFormat::lookup(&f);
                    n.num_format = match (n.num_type, f.as_str()) {
                        ("integer", "int32") => "int32",
                        ("integer", "int64") => "int64",
                        ("number", "float") => "float",
                        ("number", "double") => "double",
                        _ => "",
                    };
                    n.format = Some(f);
                }
            }
        }

        if let Some(p) = get_str(m, "pattern", path)? {
            if !p.is_empty() {
                let compiled = self
                    .regexes
                    .entry(p.clone())
                    .or_insert_with(|| crate::goregex::compile(&p))
                    .clone();
                n.pattern = Some((p, compiled));
            }
        }

        match m.get("enum") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                if !a.is_empty() {
                    n.enum_values = Some(a.clone());
                }
            }
            Some(_) => return Err(err(&child(path, "enum"), "must be a list")),
        }

        n.all_of = self.node_list(m, "allOf", path)?;
        n.one_of = self.node_list(m, "oneOf", path)?;
        n.any_of = self.node_list(m, "anyOf", path)?;
        if let Some(s) = m.get("not").filter(|v| !v.is_null()) {
            n.not = Some(Box::new(self.node(s, &child(path, "not"))?));
        }

        match m.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(props)) => {
                n.properties.reserve(props.len());
                for (k, s) in props {
                    let pn = self.node(s, &format!("{}[{k}]", child(path, "properties")))?;
                    n.prop_index.insert(k.clone(), n.properties.len());
                    n.properties.push((k.clone(), pn));
                }
            }
            Some(_) => return Err(err(&child(path, "properties"), "must be an object")),
        }

        match m.get("additionalProperties") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => n.additional = Some(Additional::Bool(*b)),
            Some(s @ Value::Object(_)) => {
                n.additional = Some(Additional::Schema(Box::new(
                    self.node(s, &child(path, "additionalProperties"))?,
                )));
            }
            Some(_) => {
                return Err(err(
                    &child(path, "additionalProperties"),
                    "must be a boolean or a schema",
                ))
            }
        }

        match m.get("items") {
            None | Some(Value::Null) => {}
            Some(s @ Value::Object(_)) => {
                n.items = Some(Box::new(self.node(s, &child(path, "items"))?))
            }
            // a list of schemas is not structural; kube rejects such CRDs.
            // Validate against the first one so that compiling never fails.
            Some(Value::Array(a)) => {
                if let Some(first) = a.first() {
                    n.items = Some(Box::new(
                        self.node(first, &format!("{}[0]", child(path, "items")))?,
                    ));
                }
            }
            Some(_) => return Err(err(&child(path, "items"), "must be a schema")),
        }

        // bookkeeping for the fast paths
        n.defaulted = n
            .properties
            .iter()
            .enumerate()
            .filter(|(_, (_, p))| p.default.is_some())
            .map(|(i, _)| i)
            .collect();
        let kids = n
            .properties
            .iter()
            .map(|(_, p)| p)
            .chain(n.items.as_deref())
            .chain(n.additional_schema());
        let (mut d, mut l, mut e) = (false, false, false);
        for k in kids {
            d |= k.has_defaults;
            l |= k.has_list_semantics;
            e |= k.has_embedded;
        }
        if let Some(dv) = m.get("default").filter(|v| !v.is_null()) {
            // kube prunes defaults against the schema when serving
            let mut dv = dv.clone();
            crate::prune::prune_value(&mut dv, Some(&n), n.embedded_resource, &mut None);
            n.default = Some(dv);
            d = true;
        }
        n.has_defaults = d;
        n.has_list_semantics = l || matches!(n.list_type.as_deref(), Some("set") | Some("map"));
        n.has_embedded = e || n.embedded_resource;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compile_errors() {
        assert!(CompiledSchema::compile(&json!({"type": 5})).is_err());
        assert!(CompiledSchema::compile(&json!("x")).is_err());
        let e =
            CompiledSchema::compile(&json!({"properties": {"a": {"maxLength": "x"}}})).unwrap_err();
        assert_eq!(e.to_string(), "properties[a].maxLength: must be an integer");
    }

    #[test]
    fn formats_are_stripped() {
        let s = CompiledSchema::compile(&json!({"type": "integer", "format": "email"})).unwrap();
        assert!(s.root.format.is_none());
        let s = CompiledSchema::compile(&json!({"type": "string", "format": "int32"})).unwrap();
        assert!(s.root.format.is_none());
        let s = CompiledSchema::compile(&json!({"type": "string", "format": "date-time"})).unwrap();
        assert_eq!(s.root.string_format, Some(StringFormat::DateTime));
        let s = CompiledSchema::compile(&json!({"type": "integer", "format": "int32"})).unwrap();
        assert_eq!(s.root.num_format, "int32");
    }

    #[test]
    fn defaults_are_pruned() {
        let s = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"x": {"type": "string"}}, "default": {"x": "1", "y": 2}}}
        }))
        .unwrap();
        assert_eq!(
            s.root.property("a").unwrap().default,
            Some(json!({"x": "1"}))
        );
        assert!(s.root.has_defaults);
    }
}
