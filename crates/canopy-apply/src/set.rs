//! Field sets and their FieldsV1 encoding.
//!
//! A [`FieldSet`] is a trie of [`PathElement`]s: `members` are the paths that belong to the
//! set, `children` the subtrees below elements that have members further down (a node may
//! be both). As in structured-merge-diff, a child subtree is never empty, and the set
//! operations follow `fieldpath.Set`: [`FieldSet::difference`] removes leaves only
//! (`parent - child = parent`, `child - parent = ∅`), [`FieldSet::recursive_difference`]
//! removes a node together with everything below it.
//!
//! FieldsV1 is the JSON form of the trie as Kubernetes stores it in
//! `metadata.managedFields[].fieldsV1`: one object per node whose keys are serialized path
//! elements in order, `{}` for a member without children, and `".": {}` first in the
//! object of a node that is both a member and a parent:
//! `{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{}}}}}`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::path::{Path, PathElement};
use crate::FieldsError;

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set of the given paths.
    pub fn from_paths<I: IntoIterator<Item = Path>>(paths: I) -> Self {
        let mut s = Self::new();
        for p in paths {
            s.insert(&p.0);
        }
        s
    }

    /// Adds a path (its parents are not added). The empty path (the whole object) is
    /// never owned, so inserting it does nothing.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Is `path` a member?
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// No member anywhere?
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.values().map(FieldSet::len).sum::<usize>()
    }

    /// The members directly below the root.
    pub fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    /// The subtrees directly below the root.
    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    /// Is `pe` a member directly below the root?
    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The subtree below `pe` (the paths that start with `pe`, without it).
    pub fn with_prefix(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// Elements of `self ∪ other`.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_in_place(other);
        out
    }

    /// Adds every element of `other` to `self`.
    pub fn union_in_place(&mut self, other: &FieldSet) {
        for m in &other.members {
            if !self.members.contains(m) {
                self.members.insert(m.clone());
            }
        }
        for (pe, c) in &other.children {
            match self.children.get_mut(pe) {
                Some(mine) => mine.union_in_place(c),
                None => {
                    if !c.is_empty() {
                        self.children.insert(pe.clone(), c.clone());
                    }
                }
            }
        }
    }

    /// Elements in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| other.members.contains(*m))
            .cloned()
            .collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            if let Some(oc) = other.children.get(pe) {
                let i = c.intersection(oc);
                if !i.is_empty() {
                    children.insert(pe.clone(), i);
                }
            }
        }
        FieldSet { members, children }
    }

    /// Elements of `self` not in `other` (leaf-wise: removing a parent leaves its children).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| !other.members.contains(*m))
            .cloned()
            .collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            match other.children.get(pe) {
                Some(oc) => {
                    let d = c.difference(oc);
                    if !d.is_empty() {
                        children.insert(pe.clone(), d);
                    }
                }
                None => {
                    children.insert(pe.clone(), c.clone());
                }
            }
        }
        FieldSet { members, children }
    }

    /// Elements of `self` not in `other`, where a member of `other` also removes everything
    /// below it.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| !other.members.contains(*m))
            .cloned()
            .collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            match other.children.get(pe) {
                Some(oc) => {
                    let d = c.recursive_difference(oc);
                    if !d.is_empty() {
                        children.insert(pe.clone(), d);
                    }
                }
                None => {
                    children.insert(pe.clone(), c.clone());
                }
            }
        }
        FieldSet { members, children }
    }

    /// Only the members that have no children.
    pub fn leaves(&self) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| !self.children.contains_key(*m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .map(|(pe, c)| (pe.clone(), c.leaves()))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        FieldSet { members, children }
    }

    /// Every member path, in structured-merge-diff's iteration order (at each node its
    /// members first, then its subtrees).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(Path(p));
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Children map, for crate-internal construction.
    pub(crate) fn child_mut(&mut self, pe: &PathElement) -> &mut FieldSet {
        self.children.entry(pe.clone()).or_default()
    }

    /// Inserts a member directly below the root.
    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    /// Drops empty subtrees (after crate-internal construction).
    pub(crate) fn prune_empty(&mut self) {
        self.children.retain(|_, c| {
            c.prune_empty();
            !c.is_empty()
        });
    }

    /// The FieldsV1 JSON of the set.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        // Merge the sorted members and children.
        let mut mi = self.members.iter().peekable();
        let mut ci = self.children.iter().peekable();
        loop {
            match (mi.peek(), ci.peek()) {
                (Some(m), Some((c, _))) if *m < *c => {
                    out.insert(m.serialize(), Value::Object(Map::new()));
                    mi.next();
                }
                (Some(m), Some((c, set))) if *m == *c => {
                    out.insert(c.serialize(), Value::Object(set.emit(true)));
                    mi.next();
                    ci.next();
                }
                (_, Some((c, set))) => {
                    out.insert(c.serialize(), Value::Object(set.emit(false)));
                    ci.next();
                }
                (Some(m), None) => {
                    out.insert(m.serialize(), Value::Object(Map::new()));
                    mi.next();
                }
                (None, None) => break,
            }
        }
        out
    }

    /// The FieldsV1 text of the set (compact JSON).
    pub fn to_fields_v1_string(&self) -> String {
        self.to_fields_v1().to_string()
    }

    /// Parses FieldsV1 JSON. Keys with an unknown element type are skipped, as
    /// structured-merge-diff skips them.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, FieldsError> {
        match read_node(v)? {
            (Some(set), _) => Ok(set),
            (None, _) => Ok(FieldSet::new()),
        }
    }

    /// Parses FieldsV1 text.
    pub fn from_fields_v1_str(s: &str) -> Result<FieldSet, FieldsError> {
        let v: Value = serde_json::from_str(s).map_err(|e| FieldsError::Json(e.to_string()))?;
        Self::from_fields_v1(&v)
    }
}

/// Reads one FieldsV1 node: its subtree (None if it has no children) and whether the node
/// itself is a member.
fn read_node(v: &Value) -> Result<(Option<FieldSet>, bool), FieldsError> {
    let Value::Object(m) = v else {
        return Err(FieldsError::Json(format!(
            "expected a JSON object in FieldsV1, got {v}"
        )));
    };
    let mut is_member = false;
    let mut children: Option<FieldSet> = None;
    for (key, sub) in m {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::deserialize(key)? else {
            continue;
        };
        let (grandchildren, child_is_member) = read_node(sub)?;
        if child_is_member {
            children
                .get_or_insert_with(FieldSet::new)
                .members
                .insert(pe.clone());
        }
        if let Some(g) = grandchildren {
            children
                .get_or_insert_with(FieldSet::new)
                .children
                .entry(pe)
                .or_default()
                .union_in_place(&g);
        }
    }
    if children.is_none() {
        is_member = true;
    }
    Ok((children, is_member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(names: &[&str]) -> Path {
        Path::fields(names)
    }

    #[test]
    fn fields_v1_of_a_deployment_like_set() {
        let nginx = PathElement::key([("name", json!("nginx"))]);
        let containers = p(&["spec", "template", "spec", "containers"]);
        let s = FieldSet::from_paths([
            p(&["metadata", "labels", "app"]),
            containers.child(nginx.clone()),
            containers
                .child(nginx.clone())
                .child(PathElement::field("image")),
            containers
                .child(nginx.clone())
                .child(PathElement::field("name")),
            p(&["spec", "replicas"]),
        ]);
        assert_eq!(
            s.to_fields_v1_string(),
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
        );
        let back = FieldSet::from_fields_v1(&s.to_fields_v1()).unwrap();
        assert_eq!(back, s);
        assert!(back.has(&containers.child(nginx).0));
        assert!(!back.has(&p(&["spec"]).0));
    }

    #[test]
    fn set_operations() {
        let a = FieldSet::from_paths([p(&["a", "b"]), p(&["a"]), p(&["c"])]);
        let b = FieldSet::from_paths([p(&["a"])]);
        // Leaf-wise difference keeps children of a removed parent.
        assert_eq!(
            a.difference(&b),
            FieldSet::from_paths([p(&["a", "b"]), p(&["c"])])
        );
        assert_eq!(
            a.recursive_difference(&b),
            FieldSet::from_paths([p(&["c"])])
        );
        assert_eq!(a.intersection(&b), b);
        assert_eq!(a.union(&b), a);
        assert_eq!(
            a.leaves(),
            FieldSet::from_paths([p(&["a", "b"]), p(&["c"])])
        );
        assert_eq!(a.len(), 3);
        assert_eq!(a.paths(), vec![p(&["a"]), p(&["c"]), p(&["a", "b"])]);
    }

    #[test]
    fn decoding_like_smd() {
        // An empty object is a member; a node with only unknown children is a member.
        let s = FieldSet::from_fields_v1(&json!({"f:a": {}, "f:b": {"x:unknown": {}}})).unwrap();
        assert_eq!(s, FieldSet::from_paths([p(&["a"]), p(&["b"])]));
        assert!(FieldSet::from_fields_v1(&json!({"bad": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        assert_eq!(
            FieldSet::from_fields_v1(&json!({})).unwrap(),
            FieldSet::new()
        );
    }
}
