//! Schema-aware operations on JSON values, as structured-merge-diff's `typed` package does
//! them: validation, the field set of a value, merging an applied configuration into a
//! live object, comparing two objects (added, modified and removed fields), removing a
//! field set from a value, and reconciling a field set with a changed schema.
//!
//! One deliberate difference: where structured-merge-diff's `RemoveItems` leaves `null`
//! behind for a map or list whose every item was removed, the key is dropped instead (what
//! Kubernetes ends up storing once the object is decoded into its Go type, or once a custom
//! resource's non-nullable nulls are pruned).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::path::PathElement;
use crate::schema::{ListType, MapRel, MapType, ScalarType, SchemaInner, TypeRef, DEDUCED};
use crate::set::FieldSet;
use crate::value::{display, equals, is_scalar};

/// One validation error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The field path (`.spec.replicas`), empty for the root.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Formats errors as structured-merge-diff's `ValidationErrors.Error()` does.
pub fn format_errors(errs: &[ValidationError]) -> String {
    if errs.len() == 1 {
        return errs[0].to_string();
    }
    let mut lines = vec!["errors:".to_string()];
    for e in errs {
        lines.push(format!("  {e}"));
    }
    lines.join("\n")
}

/// Added, modified and removed fields between two objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// Nothing changed?
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    /// Removes `fields` (and everything below them) from the comparison.
    pub fn exclude(&mut self, fields: &FieldSet) {
        if fields.is_empty() {
            return;
        }
        self.added = self.added.recursive_difference(fields);
        self.modified = self.modified.recursive_difference(fields);
        self.removed = self.removed.recursive_difference(fields);
    }
}

static NULL: Value = Value::Null;

/// The facet of an atom that handles a value.
#[derive(Clone, Copy)]
enum Facet<'a> {
    Scalar(ScalarType),
    List(&'a ListType),
    Map(&'a MapType, MapRel),
    Invalid,
}

impl Facet<'_> {
    fn same_kind(&self, other: &Facet<'_>) -> bool {
        matches!(
            (self, other),
            (Facet::Scalar(_), Facet::Scalar(_))
                | (Facet::List(_), Facet::List(_))
                | (Facet::Map(..), Facet::Map(..))
                | (Facet::Invalid, Facet::Invalid)
        )
    }
}

/// Schema-aware operations over one schema.
#[derive(Clone, Copy)]
pub(crate) struct Typer<'s> {
    pub(crate) schema: &'s SchemaInner,
    /// Treat keys a struct does not declare as deduced instead of rejecting them.
    pub(crate) lenient: bool,
}

type Errors = Vec<ValidationError>;

fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

fn err(path: &[PathElement], message: impl Into<String>) -> ValidationError {
    ValidationError {
        path: path_string(path),
        message: message.into(),
    }
}

fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => display(other),
    }
}

impl<'s> Typer<'s> {
    fn atom_facets(
        &self,
        tr: TypeRef,
    ) -> (
        Option<ScalarType>,
        Option<&'s ListType>,
        Option<(&'s MapType, MapRel)>,
    ) {
        let atom = &self.schema.atoms[tr.id as usize];
        (
            atom.scalar,
            atom.list.as_ref(),
            atom.map
                .as_ref()
                .map(|m| (m, tr.map_override.unwrap_or(m.rel))),
        )
    }

    /// structured-merge-diff's `deduceAtom` + `handleAtom`: the facet matching the value's
    /// kind, else the first of map, scalar, list.
    fn facet(&self, tr: TypeRef, v: Option<&Value>) -> Facet<'s> {
        let (scalar, list, map) = self.atom_facets(tr);
        match v {
            Some(x) if is_scalar(x) => {
                if let Some(s) = scalar {
                    return Facet::Scalar(s);
                }
            }
            Some(Value::Array(_)) => {
                if let Some(l) = list {
                    return Facet::List(l);
                }
            }
            Some(Value::Object(_)) => {
                if let Some((m, r)) = map {
                    return Facet::Map(m, r);
                }
            }
            _ => {}
        }
        if let Some((m, r)) = map {
            Facet::Map(m, r)
        } else if let Some(s) = scalar {
            Facet::Scalar(s)
        } else if let Some(l) = list {
            Facet::List(l)
        } else {
            Facet::Invalid
        }
    }

    /// The type of key `key` of map `m`: its field's, else the map's element type, else
    /// deduced when lenient.
    fn key_type(&self, m: &MapType, key: &str) -> Option<TypeRef> {
        match m.field(key) {
            Some(f) => Some(f.ty),
            None => m
                .element
                .or(if self.lenient { Some(DEDUCED) } else { None }),
        }
    }

    fn is_field(m: &MapType, key: &str) -> bool {
        m.field(key).is_some()
    }

    fn key_default(&self, list: &ListType, key: &str) -> Option<&'s Value> {
        let atom = &self.schema.atoms[list.element.id as usize];
        atom.map.as_ref()?.field(key)?.default.as_ref()
    }

    /// The path element of an item of an associative list.
    pub(crate) fn item_pe(&self, list: &ListType, item: &Value) -> Result<PathElement, String> {
        if !list.associative {
            return Err("invalid indexing of non-associative list".into());
        }
        if !list.keys.is_empty() {
            let m = match item {
                Value::Null => {
                    return Err("associative list with keys may not have a null element".into())
                }
                Value::Object(m) => m,
                _ => return Err("associative list with keys may not have non-map elements".into()),
            };
            let mut fields = Vec::new();
            for k in &list.keys {
                if let Some(v) = m.get(k) {
                    fields.push((k.clone(), v.clone()));
                } else if let Some(d) = self.key_default(list, k) {
                    fields.push((k.clone(), d.clone()));
                }
            }
            if fields.is_empty() {
                let quoted: Vec<String> = list.keys.iter().map(|k| format!("{k:?}")).collect();
                return Err(format!(
                    "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                    quoted.join(" ")
                ));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(PathElement::Key(fields));
        }
        match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(PathElement::Value(v.clone())),
        }
    }

    // ---------------------------------------------------------------- validation

    /// Validates `v` against type `tr`.
    pub(crate) fn validate(&self, v: &Value, tr: TypeRef, allow_duplicates: bool) -> Errors {
        let mut errs = Vec::new();
        let mut path = Vec::new();
        self.validate_at(v, tr, allow_duplicates, &mut path, &mut errs);
        errs
    }

    fn validate_at(
        &self,
        v: &Value,
        tr: TypeRef,
        allow_dups: bool,
        path: &mut Vec<PathElement>,
        errs: &mut Errors,
    ) {
        match self.facet(tr, Some(v)) {
            Facet::Scalar(t) => {
                if v.is_null() {
                    return;
                }
                let ok = match t {
                    ScalarType::Numeric => v.is_number(),
                    ScalarType::String => v.is_string(),
                    ScalarType::Boolean => v.is_boolean(),
                    ScalarType::Untyped => is_scalar(v),
                };
                if !ok {
                    let what = match t {
                        ScalarType::Numeric => "numeric (int or float)",
                        ScalarType::String => "string",
                        ScalarType::Boolean => "boolean",
                        ScalarType::Untyped => "any scalar",
                    };
                    errs.push(err(path, format!("expected {what}, got {}", go_value(v))));
                }
            }
            Facet::List(l) => {
                let items = match v {
                    Value::Null => return,
                    Value::Array(a) => a,
                    other => {
                        errs.push(err(path, format!("expected list, got {}", go_value(other))));
                        return;
                    }
                };
                let mut seen = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    let pe = if l.associative {
                        match self.item_pe(l, item) {
                            Ok(pe) => {
                                if seen.contains(&pe) && !allow_dups {
                                    errs.push(err(path, format!("duplicate entries for key {pe}")));
                                }
                                seen.insert(pe.clone());
                                pe
                            }
                            Err(e) => {
                                errs.push(err(path, format!("element {i}: {e}")));
                                return;
                            }
                        }
                    } else {
                        PathElement::Index(i as i64)
                    };
                    path.push(pe);
                    self.validate_at(item, l.element, allow_dups, path, errs);
                    path.pop();
                }
            }
            Facet::Map(m, _) => {
                let entries = match v {
                    Value::Null => return,
                    Value::Object(o) => o,
                    other => {
                        errs.push(err(path, format!("expected map, got {}", go_value(other))));
                        return;
                    }
                };
                for (k, x) in entries {
                    path.push(PathElement::Field(k.clone()));
                    match self.key_type(m, k) {
                        Some(t) => self.validate_at(x, t, allow_dups, path, errs),
                        None => {
                            errs.push(err(path, "field not declared in schema"));
                            path.pop();
                            return;
                        }
                    }
                    path.pop();
                }
            }
            Facet::Invalid => errs.push(err(path, "schema error: invalid atom")),
        }
    }

    // ---------------------------------------------------------------- field sets

    /// The field set of `v` (structured-merge-diff's `ToFieldSet`).
    pub(crate) fn field_set_of(&self, v: &Value, tr: TypeRef) -> FieldSet {
        let mut set = FieldSet::new();
        let mut path = Vec::new();
        self.tfs(v, tr, &mut path, &mut set);
        set
    }

    fn tfs(&self, v: &Value, tr: TypeRef, path: &mut Vec<PathElement>, set: &mut FieldSet) {
        match self.facet(tr, Some(v)) {
            Facet::Scalar(_) => set.insert(path),
            Facet::List(l) => {
                if !l.associative {
                    set.insert(path);
                    return;
                }
                let Value::Array(items) = v else { return };
                let pes: Vec<Option<PathElement>> =
                    items.iter().map(|i| self.item_pe(l, i).ok()).collect();
                let mut seen = BTreeSet::new();
                let mut dups = BTreeSet::new();
                for pe in pes.iter().flatten() {
                    if !seen.insert(pe.clone()) && dups.insert(pe.clone()) {
                        path.push(pe.clone());
                        set.insert(path);
                        path.pop();
                    }
                }
                for (item, pe) in items.iter().zip(pes) {
                    let Some(pe) = pe else { continue };
                    if dups.contains(&pe) {
                        continue;
                    }
                    path.push(pe);
                    self.tfs(item, l.element, path, set);
                    set.insert(path);
                    path.pop();
                }
            }
            Facet::Map(m, rel) => {
                if rel == MapRel::Atomic {
                    set.insert(path);
                    return;
                }
                let Value::Object(entries) = v else { return };
                for (k, x) in entries {
                    let Some(t) = self.key_type(m, k) else {
                        continue;
                    };
                    path.push(PathElement::Field(k.clone()));
                    self.tfs(x, t, path, set);
                    let empty_map = matches!(x, Value::Object(o) if o.is_empty());
                    if x.is_null() || empty_map || !Self::is_field(m, k) {
                        set.insert(path);
                    }
                    path.pop();
                }
            }
            Facet::Invalid => {}
        }
    }

    /// Adds to `set` the struct fields that have members below them
    /// (`EnsureNamedFieldsAreMembers`).
    pub(crate) fn ensure_named_fields_are_members(&self, set: &FieldSet, tr: TypeRef) -> FieldSet {
        let mut out = FieldSet::new();
        for m in set.members() {
            out.insert_member(m.clone());
        }
        let (_, list, map) = self.atom_facets(tr);
        for (pe, child) in set.children() {
            let mut child_tr = None;
            match pe {
                PathElement::Field(name) => {
                    if let Some((m, _)) = map {
                        if m.field(name).is_some() {
                            out.insert_member(pe.clone());
                        }
                        child_tr = self.key_type(m, name);
                    }
                }
                PathElement::Key(_) => child_tr = list.map(|l| l.element),
                _ => {}
            }
            let sub = match child_tr {
                Some(t) => self.ensure_named_fields_are_members(child, t),
                None => child.clone(),
            };
            *out.child_mut(pe) = sub;
        }
        out.prune_empty();
        out
    }

    // ---------------------------------------------------------------- merge

    /// Merges `rhs` (an applied configuration) into `lhs` (the live object), the right-hand
    /// side winning on leaves (`TypedValue.Merge`).
    pub(crate) fn merge(&self, lhs: &Value, rhs: &Value, tr: TypeRef) -> Result<Value, Errors> {
        let mut errs = Vec::new();
        let mut path = Vec::new();
        let out = self.merge_at(Some(lhs), Some(rhs), tr, &mut path, &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(out.unwrap_or(Value::Null))
    }

    fn merge_at(
        &self,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        tr: TypeRef,
        path: &mut Vec<PathElement>,
        errs: &mut Errors,
    ) -> Option<Value> {
        let facet = if rhs.is_none() {
            self.facet(tr, lhs)
        } else {
            self.facet(tr, rhs)
        };
        let leaf = || rhs.or(lhs).cloned();
        match facet {
            Facet::Scalar(_) | Facet::Invalid => leaf(),
            Facet::List(l) => {
                let la = lhs.and_then(Value::as_array);
                let ra = rhs.and_then(Value::as_array);
                let empty = la.is_none_or(|a| a.is_empty()) && ra.is_none_or(|a| a.is_empty());
                if !l.associative || empty {
                    return leaf();
                }
                self.merge_list(
                    l,
                    la.map(Vec::as_slice).unwrap_or(&[]),
                    ra.map(Vec::as_slice).unwrap_or(&[]),
                    path,
                    errs,
                )
            }
            Facet::Map(m, rel) => {
                let lm = lhs.and_then(Value::as_object);
                let rm = rhs.and_then(Value::as_object);
                let empty = lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty);
                if rel == MapRel::Atomic || empty {
                    return leaf();
                }
                let mut out = Map::new();
                let mut visit = |k: &String, l: Option<&Value>, r: Option<&Value>| {
                    let Some(t) = self.key_type(m, k) else {
                        path.push(PathElement::Field(k.clone()));
                        errs.push(err(path, "field not declared in schema"));
                        path.pop();
                        return;
                    };
                    path.push(PathElement::Field(k.clone()));
                    if let Some(v) = self.merge_at(l, r, t, path, errs) {
                        out.insert(k.clone(), v);
                    }
                    path.pop();
                };
                if let Some(lm) = lm {
                    for (k, l) in lm {
                        visit(k, Some(l), rm.and_then(|r| r.get(k)));
                    }
                }
                if let Some(rm) = rm {
                    for (k, r) in rm {
                        if lm.is_some_and(|l| l.contains_key(k)) {
                            continue;
                        }
                        visit(k, None, Some(r));
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
        }
    }

    /// Path elements of a list's items; duplicates are an error unless allowed, in which
    /// case they map to null (duplicated items are not merged).
    fn index_items<'v>(
        &self,
        l: &ListType,
        items: &'v [Value],
        allow_dups: bool,
        path: &[PathElement],
        errs: &mut Errors,
    ) -> (Vec<PathElement>, BTreeMap<PathElement, &'v Value>) {
        let mut pes = Vec::with_capacity(items.len());
        let mut observed: BTreeMap<PathElement, &Value> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let pe = match self.item_pe(l, item) {
                Ok(pe) => pe,
                Err(e) => {
                    errs.push(err(path, format!("element {i}: {e}")));
                    continue;
                }
            };
            if observed.contains_key(&pe) {
                if !allow_dups {
                    errs.push(err(path, format!("duplicate entries for key {pe}")));
                    continue;
                }
                observed.insert(pe.clone(), &NULL);
            } else {
                observed.insert(pe.clone(), item);
            }
            pes.push(pe);
        }
        (pes, observed)
    }

    fn merge_list(
        &self,
        l: &ListType,
        lhs: &[Value],
        rhs: &[Value],
        path: &mut Vec<PathElement>,
        errs: &mut Errors,
    ) -> Option<Value> {
        let n_errs = errs.len();
        let (rhs_pes, observed_rhs) = self.index_items(l, rhs, false, path, errs);
        let (lhs_pes, observed_lhs) = self.index_items(l, lhs, true, path, errs);
        if errs.len() != n_errs {
            return None;
        }
        let mut shared: std::collections::VecDeque<&PathElement> = rhs_pes
            .iter()
            .filter(|pe| observed_lhs.contains_key(*pe))
            .collect();
        let mut next_shared = shared.pop_front();
        let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
        let (llen, rlen) = (lhs_pes.len(), rhs_pes.len());
        let (mut li, mut ri) = (0, 0);
        let merge_item = |pe: &PathElement,
                          lc: Option<&Value>,
                          rc: Option<&Value>,
                          path: &mut Vec<PathElement>,
                          errs: &mut Errors,
                          out: &mut Vec<Value>| {
            path.push(pe.clone());
            if let Some(v) = self.merge_at(lc, rc, l.element, path, errs) {
                out.push(v);
            }
            path.pop();
        };
        while li < llen || ri < rlen {
            if li < llen && ri < rlen {
                let pe = &lhs_pes[li];
                if *pe == rhs_pes[ri] {
                    merged_rhs.insert(pe);
                    merge_item(
                        pe,
                        observed_lhs.get(pe).copied(),
                        observed_rhs.get(pe).copied(),
                        path,
                        errs,
                        &mut out,
                    );
                    li += 1;
                    ri += 1;
                    next_shared = shared.pop_front();
                    continue;
                }
                if observed_rhs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                    li += 1;
                    continue;
                }
            }
            if li < llen {
                let pe = &lhs_pes[li];
                if !observed_rhs.contains_key(pe) {
                    merge_item(pe, Some(&lhs[li]), None, path, errs, &mut out);
                    li += 1;
                    continue;
                } else if merged_rhs.contains(pe) {
                    li += 1;
                }
            }
            if ri < rlen {
                let pe = &rhs_pes[ri];
                merged_rhs.insert(pe);
                merge_item(
                    pe,
                    observed_lhs.get(pe).copied(),
                    observed_rhs.get(pe).copied(),
                    path,
                    errs,
                    &mut out,
                );
                ri += 1;
                if next_shared.is_some_and(|n| n == pe) {
                    next_shared = shared.pop_front();
                }
            }
        }
        (!out.is_empty()).then_some(Value::Array(out))
    }

    // ---------------------------------------------------------------- compare

    /// What changed from `lhs` to `rhs` (`TypedValue.Compare`).
    pub(crate) fn compare(&self, lhs: &Value, rhs: &Value, tr: TypeRef) -> Comparison {
        let mut c = Comparison::default();
        let mut path = Vec::new();
        self.compare_at(Some(lhs), Some(rhs), tr, &mut path, &mut c);
        c
    }

    fn compare_at(
        &self,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        tr: TypeRef,
        path: &mut Vec<PathElement>,
        c: &mut Comparison,
    ) {
        let alhs = self.facet(tr, lhs);
        let arhs = self.facet(tr, rhs);
        let in_leaf = if rhs.is_none() {
            self.compare_facet(alhs, lhs, rhs, path, c)
        } else if lhs.is_none() || alhs.same_kind(&arhs) {
            self.compare_facet(arhs, lhs, rhs, path, c)
        } else {
            self.compare_facet(alhs, lhs, rhs, path, c);
            self.compare_facet(arhs, lhs, rhs, path, c)
        };
        if !in_leaf {
            if lhs.is_none() {
                c.added.insert(path);
            } else if rhs.is_none() {
                c.removed.insert(path);
            }
        }
    }

    fn compare_leaf(
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        path: &[PathElement],
        c: &mut Comparison,
    ) -> bool {
        match (lhs, rhs) {
            (None, _) => c.added.insert(path),
            (_, None) => c.removed.insert(path),
            (Some(l), Some(r)) => {
                if !equals(l, r) {
                    c.modified.insert(path)
                }
            }
        }
        true
    }

    /// Returns whether the node was handled as a leaf.
    fn compare_facet(
        &self,
        facet: Facet<'_>,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        path: &mut Vec<PathElement>,
        c: &mut Comparison,
    ) -> bool {
        match facet {
            Facet::Scalar(_) => Self::compare_leaf(lhs, rhs, path, c),
            Facet::Invalid => false,
            Facet::List(l) => {
                let la = lhs.and_then(Value::as_array);
                let ra = rhs.and_then(Value::as_array);
                let empty = la.is_none_or(|a| a.is_empty()) && ra.is_none_or(|a| a.is_empty());
                if !l.associative || empty {
                    return Self::compare_leaf(lhs, rhs, path, c);
                }
                self.compare_list(
                    l,
                    la.map(Vec::as_slice).unwrap_or(&[]),
                    ra.map(Vec::as_slice).unwrap_or(&[]),
                    path,
                    c,
                );
                false
            }
            Facet::Map(m, rel) => {
                let lm = lhs.and_then(Value::as_object);
                let rm = rhs.and_then(Value::as_object);
                let empty = lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty);
                if rel == MapRel::Atomic || empty {
                    return Self::compare_leaf(lhs, rhs, path, c);
                }
                let mut visit = |k: &String, l: Option<&Value>, r: Option<&Value>| {
                    if let Some(t) = self.key_type(m, k) {
                        path.push(PathElement::Field(k.clone()));
                        self.compare_at(l, r, t, path, c);
                        path.pop();
                    }
                };
                if let Some(lm) = lm {
                    for (k, l) in lm {
                        visit(k, Some(l), rm.and_then(|r| r.get(k)));
                    }
                }
                if let Some(rm) = rm {
                    for (k, r) in rm {
                        if !lm.is_some_and(|l| l.contains_key(k)) {
                            visit(k, None, Some(r));
                        }
                    }
                }
                false
            }
        }
    }

    fn compare_list(
        &self,
        l: &ListType,
        lhs: &[Value],
        rhs: &[Value],
        path: &mut Vec<PathElement>,
        c: &mut Comparison,
    ) {
        let mut all: Vec<PathElement> = Vec::new();
        let mut lvals: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
        for item in lhs {
            let Ok(pe) = self.item_pe(l, item) else {
                continue;
            };
            match lvals.get_mut(&pe) {
                Some(v) => v.push(item),
                None => {
                    lvals.insert(pe.clone(), vec![item]);
                    all.push(pe);
                }
            }
        }
        let mut rvals: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
        for item in rhs {
            let Ok(pe) = self.item_pe(l, item) else {
                continue;
            };
            match rvals.get_mut(&pe) {
                Some(v) => v.push(item),
                None => {
                    rvals.insert(pe.clone(), vec![item]);
                    if !lvals.contains_key(&pe) {
                        all.push(pe);
                    }
                }
            }
        }
        for pe in all {
            let ll = lvals.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
            let rl = rvals.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
            path.push(pe);
            if ll.len() <= 1 && rl.len() <= 1 {
                self.compare_at(ll.first().copied(), rl.first().copied(), l.element, path, c);
            } else if ll.len() >= 2 && rl.len() >= 2 {
                let same =
                    ll.len() == rl.len() && ll.iter().zip(rl.iter()).all(|(a, b)| equals(a, b));
                if !same {
                    c.modified.insert(path);
                }
            } else if ll.len() >= 2 {
                if let Some(r) = rl.first() {
                    self.compare_at(None, Some(r), l.element, path, c);
                }
                c.removed.insert(path);
            } else {
                if let Some(x) = ll.first() {
                    self.compare_at(Some(x), None, l.element, path, c);
                }
                c.added.insert(path);
            }
            path.pop();
        }
    }

    // ---------------------------------------------------------------- remove

    /// `v` without the fields of `set` (`TypedValue.RemoveItems`); `None` when nothing is
    /// left of a container.
    pub(crate) fn remove_items(&self, v: &Value, set: &FieldSet, tr: TypeRef) -> Option<Value> {
        match self.facet(tr, Some(v)) {
            Facet::Scalar(_) | Facet::Invalid => Some(v.clone()),
            Facet::List(l) => {
                let Value::Array(items) = v else { return None };
                if items.is_empty() || !l.associative {
                    return None;
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Ok(pe) = self.item_pe(l, item) else {
                        out.push(item.clone());
                        continue;
                    };
                    if set.has_member(&pe) {
                        continue;
                    }
                    match set.with_prefix(&pe) {
                        Some(sub) if !sub.is_empty() => {
                            if let Some(x) = self.remove_items(item, sub, l.element) {
                                out.push(x);
                            }
                        }
                        _ => out.push(item.clone()),
                    }
                }
                (!out.is_empty()).then_some(Value::Array(out))
            }
            Facet::Map(m, rel) => {
                let Value::Object(entries) = v else {
                    return None;
                };
                if entries.is_empty() || rel == MapRel::Atomic {
                    return None;
                }
                let mut out = Map::new();
                for (k, x) in entries {
                    let pe = PathElement::Field(k.clone());
                    if set.has_member(&pe) {
                        continue;
                    }
                    match (set.with_prefix(&pe), self.key_type(m, k)) {
                        (Some(sub), Some(t)) if !sub.is_empty() => {
                            if let Some(y) = self.remove_items(x, sub, t) {
                                out.insert(k.clone(), y);
                            }
                        }
                        _ => {
                            out.insert(k.clone(), x.clone());
                        }
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
        }
    }

    // ---------------------------------------------------------------- reconcile

    /// A field set made consistent with the schema (`ReconcileFieldSetWithSchema`): a
    /// node that is now atomic but owned granularly is owned as a whole. `None` if
    /// nothing changed.
    pub(crate) fn reconcile(&self, set: &FieldSet, tr: TypeRef) -> Option<FieldSet> {
        let mut to_remove = FieldSet::new();
        let mut to_add = FieldSet::new();
        let mut path = Vec::new();
        self.reconcile_at(Some(set), tr, false, &mut path, &mut to_remove, &mut to_add);
        if to_remove.is_empty() && to_add.is_empty() {
            return None;
        }
        Some(set.recursive_difference(&to_remove).union(&to_add))
    }

    fn reconcile_at(
        &self,
        set: Option<&FieldSet>,
        tr: TypeRef,
        is_atomic: bool,
        path: &mut Vec<PathElement>,
        to_remove: &mut FieldSet,
        to_add: &mut FieldSet,
    ) {
        let (scalar, list, map) = self.atom_facets(tr);
        if let Some((m, rel)) = map {
            // Untyped deduced maps are not reconciled.
            if m.fields.is_empty() && m.element == Some(DEDUCED) {
                return;
            }
            if !is_atomic && rel == MapRel::Atomic {
                if set.is_some_and(|s| !s.is_empty()) {
                    to_remove.insert(path);
                    to_add.insert(path);
                }
                return;
            }
            if let Some(set) = set {
                self.reconcile_children(set, path, to_remove, to_add, |pe| match pe {
                    PathElement::Field(name) => match m.field(name) {
                        Some(f) => Some(f.ty),
                        None => m.element,
                    },
                    _ => m.element,
                });
            }
        } else if scalar.is_some() {
        } else if let Some(l) = list {
            if !is_atomic && !l.associative {
                to_remove.insert(path);
                to_add.insert(path);
                return;
            }
            if let Some(set) = set {
                self.reconcile_children(set, path, to_remove, to_add, |_| Some(l.element));
            }
        }
    }

    fn reconcile_children(
        &self,
        set: &FieldSet,
        path: &mut Vec<PathElement>,
        to_remove: &mut FieldSet,
        to_add: &mut FieldSet,
        type_of: impl Fn(&PathElement) -> Option<TypeRef>,
    ) {
        let mut handle = |pe: &PathElement, is_member: bool| {
            let Some(t) = type_of(pe) else { return };
            let child = set.with_prefix(pe);
            let atomic = is_member && child.is_none();
            path.push(pe.clone());
            self.reconcile_at(child, t, atomic, path, to_remove, to_add);
            path.pop();
        };
        for (pe, _) in set.children() {
            if !set.has_member(pe) {
                handle(pe, false);
            }
        }
        for pe in set.members() {
            handle(pe, true);
        }
    }
}
