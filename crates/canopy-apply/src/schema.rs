//! Type information for merging: which nodes of an object are scalars, structs, maps and
//! lists, and how each merges.
//!
//! A [`Schema`] is structured-merge-diff's `schema.Schema` for one kind: an arena of atoms
//! (each possibly a scalar, a list and a map at once, for untyped nodes) and a root type.
//! It is built once (from OpenAPI v3 with [`Schema::from_openapi_v3`], from a CRD's
//! `openAPIV3Schema` with [`Schema::for_custom_resource`], or from a [`TypeDef`] tree) and
//! shared cheaply (`Arc`).
//!
//! The OpenAPI conversion follows kube-openapi's `schemaconv`:
//! - `type: object` → a map whose `properties` are struct fields and whose
//!   `additionalProperties` give the type of other keys; without `additionalProperties` an
//!   object with no properties (or under `x-kubernetes-preserve-unknown-fields`) takes any
//!   key, deduced; `x-kubernetes-map-type: atomic` makes it a single leaf (`granular`, the
//!   default, merges key by key);
//! - `type: array` → a list: `x-kubernetes-list-type: atomic` (the default) replaces it
//!   whole, `set` merges scalar items by value, `map` merges items by
//!   `x-kubernetes-list-map-keys`; without a list type, `x-kubernetes-patch-strategy: merge`
//!   makes an associative list keyed by `x-kubernetes-patch-merge-key` (a set without one);
//! - `integer`/`number` → numeric, `boolean`, `string` (formats other than `byte` are
//!   untyped scalars), no type → untyped (any scalar, a deduced map or an atomic list);
//! - `$ref` (`#/components/schemas/<name>`, also `#/definitions/<name>`) and `allOf` with a
//!   single `$ref` name a definition; a field may override the referenced map's type with
//!   `x-kubernetes-map-type`; `Quantity` and `RawExtension` are untyped scalars.
//!
//! The deduced type (custom resources without a schema, preserve-unknown-fields) is
//! structured-merge-diff's: maps merge key by key, lists are atomic.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::SchemaError;

/// A scalar's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    Numeric,
    String,
    Boolean,
    /// Any scalar.
    Untyped,
}

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced whole.
    Atomic,
    /// Scalar items merged by value.
    Set,
    /// Items merged by these key fields.
    Map(Vec<String>),
}

/// A type as a tree, to build a [`Schema`] by hand (no sharing or recursion; use OpenAPI
/// for those).
#[derive(Debug, Clone, PartialEq)]
pub enum TypeDef {
    Scalar(ScalarType),
    /// A struct: known fields and, optionally, the type of other keys.
    Struct {
        fields: Vec<(String, TypeDef)>,
        /// Type of keys that are not fields (`additionalProperties`); `None` rejects them.
        other: Option<Box<TypeDef>>,
        /// Replaced whole (`x-kubernetes-map-type: atomic`).
        atomic: bool,
    },
    /// A map of `values`; granular (merged key by key) unless `atomic`.
    Map {
        values: Box<TypeDef>,
        atomic: bool,
    },
    /// A list of `items`.
    List {
        items: Box<TypeDef>,
        kind: ListKind,
    },
    /// Anything: scalars, maps merged key by key (deduced), lists replaced whole.
    Deduced,
    /// Anything, replaced whole.
    Atomic,
}

impl TypeDef {
    /// A struct of the given fields, rejecting other keys.
    pub fn fields<I, S>(fields: I) -> TypeDef
    where
        I: IntoIterator<Item = (S, TypeDef)>,
        S: Into<String>,
    {
        TypeDef::Struct {
            fields: fields.into_iter().map(|(k, t)| (k.into(), t)).collect(),
            other: None,
            atomic: false,
        }
    }

    /// A string scalar.
    pub fn string() -> TypeDef {
        TypeDef::Scalar(ScalarType::String)
    }

    /// A numeric scalar.
    pub fn number() -> TypeDef {
        TypeDef::Scalar(ScalarType::Numeric)
    }

    /// A boolean scalar.
    pub fn boolean() -> TypeDef {
        TypeDef::Scalar(ScalarType::Boolean)
    }

    /// A granular map of `values`.
    pub fn map_of(values: TypeDef) -> TypeDef {
        TypeDef::Map {
            values: Box::new(values),
            atomic: false,
        }
    }

    /// A list of `items` merged as `kind` says.
    pub fn list_of(items: TypeDef, kind: ListKind) -> TypeDef {
        TypeDef::List {
            items: Box::new(items),
            kind,
        }
    }
}

/// What a node of a schema is, as reported by [`Schema::kind_at`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Scalar(ScalarType),
    /// A map with declared fields.
    Struct {
        atomic: bool,
    },
    /// A map without declared fields.
    Map {
        atomic: bool,
    },
    List(ListKind),
    /// Untyped: scalar, deduced map or atomic list depending on the value.
    Untyped,
}

/// Map element relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapRel {
    Separable,
    Atomic,
}

/// A reference to an atom, possibly overriding a map's relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeRef {
    pub(crate) id: u32,
    pub(crate) map_override: Option<MapRel>,
}

impl TypeRef {
    pub(crate) const fn plain(id: u32) -> Self {
        TypeRef {
            id,
            map_override: None,
        }
    }
}

/// structured-merge-diff's `__untyped_atomic_`.
pub(crate) const UNTYPED_ATOMIC: TypeRef = TypeRef::plain(0);
/// structured-merge-diff's `__untyped_deduced_`.
pub(crate) const DEDUCED: TypeRef = TypeRef::plain(1);

#[derive(Debug, Clone)]
pub(crate) struct StructField {
    pub(crate) ty: TypeRef,
    pub(crate) default: Option<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct MapType {
    pub(crate) fields: HashMap<String, StructField>,
    pub(crate) element: Option<TypeRef>,
    pub(crate) rel: MapRel,
}

impl MapType {
    pub(crate) fn field(&self, name: &str) -> Option<&StructField> {
        self.fields.get(name)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ListType {
    pub(crate) element: TypeRef,
    pub(crate) associative: bool,
    pub(crate) keys: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Atom {
    pub(crate) scalar: Option<ScalarType>,
    pub(crate) list: Option<ListType>,
    pub(crate) map: Option<MapType>,
}

#[derive(Debug)]
pub(crate) struct SchemaInner {
    pub(crate) atoms: Vec<Atom>,
}

/// Type information for one kind; cheap to clone.
#[derive(Debug, Clone)]
pub struct Schema {
    pub(crate) inner: Arc<SchemaInner>,
    pub(crate) root: TypeRef,
}

fn common_atoms() -> Vec<Atom> {
    vec![
        // __untyped_atomic_
        Atom {
            scalar: Some(ScalarType::Untyped),
            list: Some(ListType {
                element: UNTYPED_ATOMIC,
                associative: false,
                keys: vec![],
            }),
            map: Some(MapType {
                fields: HashMap::new(),
                element: Some(UNTYPED_ATOMIC),
                rel: MapRel::Atomic,
            }),
        },
        // __untyped_deduced_
        Atom {
            scalar: Some(ScalarType::Untyped),
            list: Some(ListType {
                element: UNTYPED_ATOMIC,
                associative: false,
                keys: vec![],
            }),
            map: Some(MapType {
                fields: HashMap::new(),
                element: Some(DEDUCED),
                rel: MapRel::Separable,
            }),
        },
    ]
}

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";

impl Schema {
    /// The deduced schema: every map granular, every list atomic (custom resources without
    /// a schema).
    pub fn deduced() -> Schema {
        Schema {
            inner: Arc::new(SchemaInner {
                atoms: common_atoms(),
            }),
            root: DEDUCED,
        }
    }

    /// A schema from a type tree.
    pub fn new(def: &TypeDef) -> Schema {
        let mut atoms = common_atoms();
        let root = push_def(&mut atoms, def);
        Schema {
            inner: Arc::new(SchemaInner { atoms }),
            root,
        }
    }

    /// A schema from an OpenAPI v3 schema object. `$ref`s (also inside `allOf`) name
    /// entries of `components` (`components.schemas` of an OpenAPI v3 document); the root
    /// may itself be a `$ref`.
    pub fn from_openapi_v3(
        schema: &Value,
        components: Option<&Map<String, Value>>,
    ) -> Result<Schema, SchemaError> {
        let mut c = Converter {
            components,
            atoms: common_atoms(),
            named: HashMap::new(),
            errors: Vec::new(),
        };
        let root = c.make_ref(schema, false);
        if !c.errors.is_empty() {
            return Err(SchemaError::Invalid(c.errors.join("\n")));
        }
        Ok(Schema {
            inner: Arc::new(SchemaInner { atoms: c.atoms }),
            root,
        })
    }

    /// The schema of the kind `group/version, Kind=kind` in an OpenAPI v3 document (the
    /// definition whose `x-kubernetes-group-version-kind` names it).
    pub fn from_openapi_v3_document(
        doc: &Value,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Schema, SchemaError> {
        let components = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .ok_or_else(|| SchemaError::Invalid("document has no components.schemas".into()))?;
        let name = components
            .iter()
            .find(|(_, def)| {
                def.get("x-kubernetes-group-version-kind")
                    .and_then(Value::as_array)
                    .is_some_and(|gvks| {
                        gvks.iter().any(|g| {
                            g.get("group").and_then(Value::as_str).unwrap_or("") == group
                                && g.get("version").and_then(Value::as_str) == Some(version)
                                && g.get("kind").and_then(Value::as_str) == Some(kind)
                        })
                    })
            })
            .map(|(name, _)| name.clone())
            .ok_or_else(|| SchemaError::UnknownKind(format!("{group}/{version}, Kind={kind}")))?;
        Self::from_openapi_v3(
            &json!({"$ref": format!("#/components/schemas/{name}")}),
            Some(components),
        )
    }

    /// The schema of a custom resource from its CRD version's `openAPIV3Schema`, completed
    /// as kube does: `apiVersion` and `kind` strings and `metadata` as `ObjectMeta`.
    pub fn for_custom_resource(open_api_v3_schema: &Value) -> Result<Schema, SchemaError> {
        let mut s = match open_api_v3_schema {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            _ => {
                return Err(SchemaError::Invalid(
                    "openAPIV3Schema is not an object".into(),
                ))
            }
        };
        s.insert("type".into(), json!("object"));
        let props = s
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(props) = props else {
            return Err(SchemaError::Invalid("properties is not an object".into()));
        };
        props.insert("apiVersion".into(), json!({"type": "string"}));
        props.insert("kind".into(), json!({"type": "string"}));
        props.insert(
            "metadata".into(),
            json!({"$ref": format!("#/components/schemas/{OBJECT_META}")}),
        );
        let components = object_meta_components();
        Self::from_openapi_v3(&Value::Object(s), Some(&components))
    }

    /// What the node at `path` is: `path` names struct fields and map keys; `"[]"` steps
    /// into a list's items. `None` if the path leaves the schema.
    pub fn kind_at(&self, path: &[&str]) -> Option<NodeKind> {
        let mut tr = self.root;
        for step in path {
            let atom = &self.inner.atoms[tr.id as usize];
            if *step == "[]" {
                tr = atom.list.as_ref()?.element;
            } else {
                let m = atom.map.as_ref()?;
                tr = match m.field(step) {
                    Some(f) => f.ty,
                    None => m.element?,
                };
            }
        }
        let atom = &self.inner.atoms[tr.id as usize];
        if atom.scalar == Some(ScalarType::Untyped) && (atom.map.is_some() || atom.list.is_some()) {
            return Some(NodeKind::Untyped);
        }
        if let Some(m) = &atom.map {
            let atomic = tr.map_override.unwrap_or(m.rel) == MapRel::Atomic;
            return Some(if m.fields.is_empty() {
                NodeKind::Map { atomic }
            } else {
                NodeKind::Struct { atomic }
            });
        }
        if let Some(l) = &atom.list {
            return Some(NodeKind::List(if !l.associative {
                ListKind::Atomic
            } else if l.keys.is_empty() {
                ListKind::Set
            } else {
                ListKind::Map(l.keys.clone())
            }));
        }
        atom.scalar.map(NodeKind::Scalar)
    }
}

fn push_atom(atoms: &mut Vec<Atom>, atom: Atom) -> TypeRef {
    atoms.push(atom);
    TypeRef::plain((atoms.len() - 1) as u32)
}

fn push_def(atoms: &mut Vec<Atom>, def: &TypeDef) -> TypeRef {
    match def {
        TypeDef::Deduced => DEDUCED,
        TypeDef::Atomic => UNTYPED_ATOMIC,
        TypeDef::Scalar(s) => push_atom(
            atoms,
            Atom {
                scalar: Some(*s),
                ..Atom::default()
            },
        ),
        TypeDef::Struct {
            fields,
            other,
            atomic,
        } => {
            let mut fs = HashMap::new();
            for (name, t) in fields {
                let ty = push_def(atoms, t);
                fs.insert(name.clone(), StructField { ty, default: None });
            }
            let element = other.as_ref().map(|o| push_def(atoms, o));
            push_atom(
                atoms,
                Atom {
                    map: Some(MapType {
                        fields: fs,
                        element,
                        rel: if *atomic {
                            MapRel::Atomic
                        } else {
                            MapRel::Separable
                        },
                    }),
                    ..Atom::default()
                },
            )
        }
        TypeDef::Map { values, atomic } => {
            let element = push_def(atoms, values);
            push_atom(
                atoms,
                Atom {
                    map: Some(MapType {
                        fields: HashMap::new(),
                        element: Some(element),
                        rel: if *atomic {
                            MapRel::Atomic
                        } else {
                            MapRel::Separable
                        },
                    }),
                    ..Atom::default()
                },
            )
        }
        TypeDef::List { items, kind } => {
            let element = push_def(atoms, items);
            let (associative, keys) = match kind {
                ListKind::Atomic => (false, vec![]),
                ListKind::Set => (true, vec![]),
                ListKind::Map(keys) => (true, keys.clone()),
            };
            push_atom(
                atoms,
                Atom {
                    list: Some(ListType {
                        element,
                        associative,
                        keys,
                    }),
                    ..Atom::default()
                },
            )
        }
    }
}

/// OpenAPI → atoms, as kube-openapi's schemaconv.
struct Converter<'a> {
    components: Option<&'a Map<String, Value>>,
    atoms: Vec<Atom>,
    named: HashMap<String, TypeRef>,
    errors: Vec<String>,
}

fn ext_str<'v>(s: &'v Value, key: &str) -> Option<&'v str> {
    s.get(key).and_then(Value::as_str)
}

fn ref_name(s: &Value) -> Option<&str> {
    let r = match s.get("$ref").and_then(Value::as_str) {
        Some(r) if !r.is_empty() => r,
        _ => {
            let all = s.get("allOf").and_then(Value::as_array)?;
            if all.len() != 1 {
                return None;
            }
            all[0].get("$ref").and_then(Value::as_str)?
        }
    };
    let name = r.rsplit('/').next().unwrap_or(r);
    (!name.is_empty()).then_some(name)
}

impl Converter<'_> {
    fn map_relationship(&mut self, s: &Value) -> Option<MapRel> {
        match s.get("x-kubernetes-map-type") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_str() {
                Some("atomic") => Some(MapRel::Atomic),
                Some("granular") => Some(MapRel::Separable),
                _ => {
                    self.errors.push(format!("unknown map type {v}"));
                    None
                }
            },
        }
    }

    /// A reference to a schema: named if it is a `$ref`, else converted inline.
    fn make_ref(&mut self, s: &Value, preserve_unknown: bool) -> TypeRef {
        if let Some(name) = ref_name(s) {
            let name = name.to_string();
            let ty = self.named(&name);
            let over = self.map_relationship(s);
            return TypeRef {
                id: ty.id,
                map_override: over,
            };
        }
        let preserve = preserve_unknown
            || s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        let atom = self.parse_schema(s, preserve);
        push_atom(&mut self.atoms, atom)
    }

    fn named(&mut self, name: &str) -> TypeRef {
        if let Some(t) = self.named.get(name) {
            return *t;
        }
        if name == QUANTITY || name == RAW_EXTENSION {
            let t = push_atom(
                &mut self.atoms,
                Atom {
                    scalar: Some(ScalarType::Untyped),
                    ..Atom::default()
                },
            );
            self.named.insert(name.to_string(), t);
            return t;
        }
        // Reserve the slot first: definitions may be recursive (JSONSchemaProps).
        let t = push_atom(&mut self.atoms, Atom::default());
        self.named.insert(name.to_string(), t);
        let def = self.components.and_then(|c| c.get(name)).cloned();
        let atom = match def {
            Some(def) => {
                if ref_name(&def).is_some() {
                    // A definition that is only a reference: resolve through it.
                    let target = self.make_ref(&def, false);
                    self.atoms[target.id as usize].clone()
                } else {
                    let preserve =
                        def.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
                    self.parse_schema(&def, preserve)
                }
            }
            None => {
                self.errors
                    .push(format!("unresolved reference to definition {name:?}"));
                Atom {
                    scalar: Some(ScalarType::Untyped),
                    ..Atom::default()
                }
            }
        };
        self.atoms[t.id as usize] = atom;
        t
    }

    fn parse_schema(&mut self, s: &Value, preserve: bool) -> Atom {
        let typ = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or(""),
            _ => "",
        };
        match typ {
            "" => Atom {
                scalar: Some(ScalarType::Untyped),
                list: Some(self.parse_list(s, preserve, false)),
                map: Some(self.parse_object(s, preserve)),
            },
            "object" => Atom {
                map: Some(self.parse_object(s, preserve)),
                ..Atom::default()
            },
            "array" => Atom {
                list: Some(self.parse_list(s, preserve, true)),
                ..Atom::default()
            },
            "integer" | "number" => Atom {
                scalar: Some(ScalarType::Numeric),
                ..Atom::default()
            },
            "boolean" => Atom {
                scalar: Some(ScalarType::Boolean),
                ..Atom::default()
            },
            "string" => Atom {
                scalar: Some(match ext_str(s, "format").unwrap_or("") {
                    "" | "byte" => ScalarType::String,
                    _ => ScalarType::Untyped,
                }),
                ..Atom::default()
            },
            other => {
                self.errors.push(format!("unrecognized type: '{other}'"));
                Atom {
                    scalar: Some(ScalarType::Untyped),
                    ..Atom::default()
                }
            }
        }
    }

    fn parse_object(&mut self, s: &Value, preserve: bool) -> MapType {
        let mut fields = HashMap::new();
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(props) = props {
            for (name, member) in props {
                let ty = self.make_ref(member, preserve);
                fields.insert(
                    name.clone(),
                    StructField {
                        ty,
                        default: member.get("default").cloned(),
                    },
                );
            }
        }
        let element = match s.get("additionalProperties") {
            None | Some(Value::Null) => {
                if preserve || props.is_none_or(|p| p.is_empty()) {
                    Some(DEDUCED)
                } else {
                    None
                }
            }
            Some(Value::Bool(true)) => Some(DEDUCED),
            Some(Value::Bool(false)) => None,
            Some(sub @ Value::Object(_)) => Some(self.make_ref(sub, preserve)),
            Some(other) => {
                self.errors
                    .push(format!("invalid additionalProperties: {other}"));
                None
            }
        };
        let rel = self.map_relationship(s).unwrap_or(MapRel::Separable);
        MapType {
            fields,
            element,
            rel,
        }
    }

    fn parse_list(&mut self, s: &Value, preserve: bool, typed: bool) -> ListType {
        let (associative, keys) = self.list_relationship(s);
        let element = match s.get("items") {
            Some(items @ Value::Object(_)) => self.make_ref(items, preserve),
            Some(Value::Array(_)) => {
                self.errors
                    .push("structural schema arrays must have exactly one member subtype".into());
                DEDUCED
            }
            _ => {
                if typed {
                    self.errors
                        .push("`items` must be specified on arrays".into());
                }
                UNTYPED_ATOMIC
            }
        };
        ListType {
            element,
            associative,
            keys,
        }
    }

    fn list_relationship(&mut self, s: &Value) -> (bool, Vec<String>) {
        if let Some(v) = s.get("x-kubernetes-list-type") {
            return match v.as_str() {
                Some("atomic") => (false, vec![]),
                Some("set") => (true, vec![]),
                Some("map") => match s.get("x-kubernetes-list-map-keys") {
                    Some(Value::Array(keys)) => (
                        true,
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect(),
                    ),
                    Some(Value::Null) | None => {
                        self.errors.push("missing map keys".into());
                        (true, vec![])
                    }
                    Some(other) => {
                        self.errors.push(format!("uninterpreted map keys: {other}"));
                        (true, vec![])
                    }
                },
                _ => {
                    self.errors.push(format!("unknown list type {v}"));
                    (false, vec![])
                }
            };
        }
        if let Some(v) = s.get("x-kubernetes-patch-strategy") {
            return match v.as_str() {
                Some("merge") | Some("merge,retainKeys") => {
                    match s.get("x-kubernetes-patch-merge-key") {
                        Some(Value::String(k)) => (true, vec![k.clone()]),
                        None | Some(Value::Null) => (true, vec![]),
                        Some(other) => {
                            self.errors
                                .push(format!("uninterpreted merge key: {other}"));
                            (true, vec![])
                        }
                    }
                }
                Some("retainKeys") => (false, vec![]),
                _ => {
                    self.errors.push(format!("unknown patch strategy {v}"));
                    (false, vec![])
                }
            };
        }
        (false, vec![])
    }
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// `ObjectMeta` and what it references, as kube publishes them (descriptions left out),
/// for custom resources whose schema comes without components.
fn object_meta_components() -> Map<String, Value> {
    let v = json!({
        OBJECT_META: {
            "type": "object",
            "properties": {
                "annotations": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                "creationTimestamp": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "deletionTimestamp": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"},
                "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
                "generateName": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                "managedFields": {"type": "array", "items": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"}, "x-kubernetes-list-type": "atomic"},
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "ownerReferences": {"type": "array", "items": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"}, "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"},
                "resourceVersion": {"type": "string"},
                "selfLink": {"type": "string"},
                "uid": {"type": "string"}
            }
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": {"type": "object"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "fieldsType": {"type": "string"},
                "fieldsV1": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"},
                "manager": {"type": "string"},
                "operation": {"type": "string"},
                "subresource": {"type": "string"},
                "time": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"}
            }
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference": {
            "type": "object",
            "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {
                "apiVersion": {"type": "string", "default": ""},
                "blockOwnerDeletion": {"type": "boolean"},
                "controller": {"type": "boolean"},
                "kind": {"type": "string", "default": ""},
                "name": {"type": "string", "default": ""},
                "uid": {"type": "string", "default": ""}
            },
            "x-kubernetes-map-type": "atomic"
        }
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_list_and_map_types() {
        let s = Schema::from_openapi_v3(
            &json!({
                "type": "object",
                "properties": {
                    "atomic": {"type": "array", "items": {"type": "string"}},
                    "set": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "map": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
                    "merge": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}}}, "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "type"},
                    "mergeSet": {"type": "array", "items": {"type": "string"}, "x-kubernetes-patch-strategy": "merge"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "selector": {"type": "object", "properties": {"a": {"type": "string"}}, "x-kubernetes-map-type": "atomic"},
                    "free": {"type": "object"},
                    "any": {"x-kubernetes-int-or-string": true},
                    "time": {"type": "string", "format": "date-time"}
                }
            }),
            None,
        )
        .unwrap();
        assert_eq!(
            s.kind_at(&["atomic"]),
            Some(NodeKind::List(ListKind::Atomic))
        );
        assert_eq!(s.kind_at(&["set"]), Some(NodeKind::List(ListKind::Set)));
        assert_eq!(
            s.kind_at(&["map"]),
            Some(NodeKind::List(ListKind::Map(vec!["name".into()])))
        );
        assert_eq!(
            s.kind_at(&["merge"]),
            Some(NodeKind::List(ListKind::Map(vec!["type".into()])))
        );
        assert_eq!(
            s.kind_at(&["mergeSet"]),
            Some(NodeKind::List(ListKind::Set))
        );
        assert_eq!(
            s.kind_at(&["labels"]),
            Some(NodeKind::Map { atomic: false })
        );
        assert_eq!(
            s.kind_at(&["labels", "x"]),
            Some(NodeKind::Scalar(ScalarType::String))
        );
        assert_eq!(
            s.kind_at(&["selector"]),
            Some(NodeKind::Struct { atomic: true })
        );
        assert_eq!(s.kind_at(&["free", "x"]), Some(NodeKind::Untyped));
        assert_eq!(s.kind_at(&["any"]), Some(NodeKind::Untyped));
        assert_eq!(
            s.kind_at(&["time"]),
            Some(NodeKind::Scalar(ScalarType::Untyped))
        );
        assert_eq!(s.kind_at(&["nope"]), None);
    }

    #[test]
    fn openapi_refs_and_overrides() {
        let components = json!({
            "Sel": {"type": "object", "properties": {"a": {"type": "string"}}},
            "Rec": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Rec"}}},
            "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"}
        });
        let s = Schema::from_openapi_v3(
            &json!({
                "type": "object",
                "properties": {
                    "sel": {"allOf": [{"$ref": "#/components/schemas/Sel"}], "x-kubernetes-map-type": "atomic"},
                    "sel2": {"$ref": "#/components/schemas/Sel"},
                    "rec": {"$ref": "#/components/schemas/Rec"},
                    "q": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}
                }
            }),
            components.as_object(),
        )
        .unwrap();
        assert_eq!(s.kind_at(&["sel"]), Some(NodeKind::Struct { atomic: true }));
        assert_eq!(
            s.kind_at(&["sel2"]),
            Some(NodeKind::Struct { atomic: false })
        );
        assert_eq!(
            s.kind_at(&["rec", "next", "next", "next"]),
            Some(NodeKind::Struct { atomic: false })
        );
        assert_eq!(
            s.kind_at(&["q"]),
            Some(NodeKind::Scalar(ScalarType::Untyped))
        );
        let err = Schema::from_openapi_v3(&json!({"$ref": "#/components/schemas/Missing"}), None);
        assert!(err.is_err());
    }

    #[test]
    fn custom_resource_gets_object_meta() {
        let s = Schema::for_custom_resource(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
        }))
        .unwrap();
        assert_eq!(
            s.kind_at(&["metadata", "ownerReferences"]),
            Some(NodeKind::List(ListKind::Map(vec!["uid".into()])))
        );
        assert_eq!(
            s.kind_at(&["metadata", "finalizers"]),
            Some(NodeKind::List(ListKind::Set))
        );
        assert_eq!(s.kind_at(&["spec", "anything"]), Some(NodeKind::Untyped));
        assert_eq!(s.kind_at(&["status"]), None);
    }
}
