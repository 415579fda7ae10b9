//! Compilation of every `x-kubernetes-validations` rule of a schema, with
//! kube's CRD-time checks and error messages.

use crate::check::{CheckError, Checker};
use crate::errors::{BadValue, FieldError, FieldPath, RuleError};
use crate::instrument::{instrument, node_count};
use crate::schema::{RawRule, Schema};
use crate::types::{decl_type, max_cardinality, Ty};
use crate::{STATIC_ESTIMATED_COST_LIMIT, STATIC_ESTIMATED_CRD_COST_LIMIT};
use cel::common::ast::IdedExpr;
use cel::Env;
use std::sync::Arc;

/// What a failing rule reports, from the rule's `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `FieldValueInvalid` (the default).
    Invalid,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueDuplicate`.
    Duplicate,
}

const SUPPORTED_REASONS: &[&str] = &[
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// A compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule as written.
    pub raw: RawRule,
    /// The instrumented expression.
    pub expr: IdedExpr,
    /// The expression as written, re-estimated with the sizes of each
    /// evaluated value before it is evaluated.
    pub source_expr: IdedExpr,
    /// Nodes in the original expression (its base runtime cost).
    pub base_cost: u64,
    /// The instrumented `messageExpression`, with its base cost.
    pub message_expr: Option<(IdedExpr, u64)>,
    /// Whether the rule references `oldSelf`.
    pub transition: bool,
    /// `optionalOldSelf`.
    pub optional_old_self: bool,
    /// The normalized `fieldPath`, appended to the node's path on failure.
    pub field_path: Option<String>,
    /// The `reason`.
    pub reason: Reason,
    /// The estimated worst-case cost of one evaluation.
    pub max_cost: u64,
}

/// The compiled rules of one schema node and of the nodes below it that have
/// rules.
#[derive(Debug)]
pub struct Node {
    /// The schema of the node.
    pub schema: Arc<Schema>,
    /// Whether the node is a resource root (root or embedded resource).
    pub resource_root: bool,
    /// The CEL type of `self`, when the node has rules.
    pub self_ty: Option<Ty>,
    /// Rules of this node (including those of its `allOf` branches).
    pub rules: Vec<CompiledRule>,
    /// Children reached through `properties`.
    pub properties: Vec<(String, Node)>,
    /// Child reached through `additionalProperties`.
    pub additional: Option<Box<Node>>,
    /// Child reached through `items`.
    pub items: Option<Box<Node>>,
    /// When every rule (and message expression) of this node only reads named fields of
    /// `self`/`oldSelf` (`self.a`, `has(self.b)`), those field names: only they are
    /// converted into CEL values for evaluation. `None`: rules use `self` as a whole.
    pub self_fields: Option<Vec<String>>,
}

/// The fields of `self`/`oldSelf` a set of expressions reads, or `None` when some
/// expression uses `self` or `oldSelf` other than by selecting a named field (as a
/// whole, in a comparison, a macro, `size()`, indexing). Text-based and conservative:
/// anything it does not recognise counts as a use of the whole value.
pub fn referenced_self_fields<'a>(exprs: impl Iterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut fields: Vec<String> = Vec::new();
    for e in exprs {
        let b = e.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let rest = &e[i..];
            let word = if rest.starts_with("oldSelf") {
                "oldSelf"
            } else if rest.starts_with("self") {
                "self"
            } else {
                i += 1;
                continue;
            };
            let before_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
            let after = i + word.len();
            let after_ok =
                after >= b.len() || !(b[after].is_ascii_alphanumeric() || b[after] == b'_');
            if !(before_ok && after_ok) {
                i += 1;
                continue;
            }
            if b.get(after) != Some(&b'.') {
                return None;
            }
            let start = after + 1;
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                end += 1;
            }
            if end == start || b.get(end) == Some(&b'(') {
                return None; // a method on the whole value
            }
            let f = e[start..end].to_string();
            if f.contains("__") {
                return None; // an escaped property name (`__dash__`, ...): keep it simple
            }
            if !fields.contains(&f) {
                fields.push(f);
            }
            i = end;
        }
    }
    Some(fields)
}

pub(crate) struct Compiler {
    env: Arc<Env>,
    pub errors: Vec<RuleError>,
    pub total_cost: u64,
    pub expensive: Vec<(FieldPath, u64)>,
    pub rule_count: usize,
    pub has_transition: bool,
}

/// `getCostErrorMessage` of kube.
pub fn cost_error_message(name: &str, cost: u64, limit: u64) -> String {
    let f = cost as f64 / limit as f64;
    let factor = if f > 100.0 {
        "more than 100x".to_string()
    } else if f < 1.5 {
        format!("{f:.6}x")
    } else {
        format!("{f:.1}x")
    };
    format!(
        "{name} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

fn has_newlines(s: &str) -> bool {
    s.contains('\n') || s.contains('\r')
}

/// Renders parse or check errors as cel-go's `issues.String()`.
fn render_parse_errors(e: &cel::ParseErrors) -> String {
    e.to_string().replace("\n| ", "\n | ")
}

fn render_check_error(src: &str, offset: Option<u32>, msg: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let off = offset.map(|o| o as usize).unwrap_or(0).min(chars.len());
    let mut line = 1;
    let mut col = 1;
    let mut line_start = 0;
    for (i, c) in chars.iter().enumerate().take(off) {
        if *c == '\n' {
            line += 1;
            col = 1;
            line_start = i + 1;
        } else {
            col += 1;
        }
    }
    let text: String = chars[line_start..]
        .iter()
        .take_while(|c| **c != '\n')
        .collect();
    format!(
        "ERROR: <input>:{line}:{col}: {msg}\n | {text}\n | {}^",
        ".".repeat(col - 1)
    )
}

/// Parses and checks `src` with `self` (and `oldSelf`) of type `self_ty`.
fn compile_expr(
    env: &Env,
    src: &str,
    self_ty: &Ty,
    optional_old_self: bool,
) -> Result<(IdedExpr, crate::check::Checked), String> {
    crate::guard::check_source(src)?;
    let (expr, source_info) = env
        .parser()
        .max_recursion_depth(crate::guard::MAX_PARSE_DEPTH as u16)
        .parse_with_source_info(src)
        .map_err(|e| render_parse_errors(&e))?;
    if crate::guard::ast_depth(&expr) > crate::guard::MAX_AST_DEPTH {
        return Err(crate::guard::recursion_error());
    }
    let old_ty = if optional_old_self {
        Ty::Optional(Box::new(self_ty.clone()))
    } else {
        self_ty.clone()
    };
    let checked = Checker::new(self_ty.clone(), Some(old_ty))
        .check_expr(&expr)
        .map_err(|CheckError { expr_id, msg }| {
            let off = source_info.offset_for(expr_id).map(|(s, _)| s);
            render_check_error(src, off, &msg)
        })?;
    Ok((expr, checked))
}

/// Parses a rule's `fieldPath` against the schema of its node, as kube's
/// `ValidFieldPath`, returning the normalized path.
pub fn parse_field_path(path: &str, schema: &Schema) -> Result<String, String> {
    let mut out = FieldPath::root();
    let mut cur = schema;
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    let step = |name: String, cur: &mut &Schema, out: &mut FieldPath| -> Result<(), String> {
        if !cur.properties.is_empty() {
            match cur.property(&name) {
                Some(p) => {
                    *out = out.child(&name);
                    *cur = as_schema(p);
                    Ok(())
                }
                None => Err("does not refer to a valid field".into()),
            }
        } else if let Some(ap) = &cur.additional_properties {
            *out = out.key(&name);
            *cur = as_schema(ap);
            Ok(())
        } else {
            Err("does not refer to a valid field".into())
        }
    };
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[' | ']') {
                    i += 1;
                }
                if start == i {
                    return Err("unexpected end of JSON path".into());
                }
                step(chars[start..i].iter().collect(), &mut cur, &mut out)?;
            }
            '[' => {
                i += 1;
                if i >= chars.len() || chars[i] != '\'' {
                    return Err("expected single quoted string".into());
                }
                i += 1;
                let mut name = String::new();
                loop {
                    if i >= chars.len() {
                        return Err("unexpected end of JSON path".into());
                    }
                    match chars[i] {
                        '\\' if i + 1 < chars.len() => {
                            name.push(match chars[i + 1] {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\'' => '\'',
                                '\\' => '\\',
                                c => {
                                    return Err(format!(
                                        "invalid string literal: invalid escape char \\{c}"
                                    ))
                                }
                            });
                            i += 2;
                        }
                        '\'' => {
                            i += 1;
                            break;
                        }
                        c => {
                            name.push(c);
                            i += 1;
                        }
                    }
                }
                if i >= chars.len() || chars[i] != ']' {
                    return Err("expected ]".into());
                }
                i += 1;
                step(name, &mut cur, &mut out)?;
            }
            c => return Err(format!("expected [ or . but got: {c}")),
        }
    }
    Ok(out.to_string())
}

/// The schema behind an `Arc`.
fn as_schema(p: &Arc<Schema>) -> &Schema {
    p.as_ref()
}

impl Compiler {
    pub fn new() -> Self {
        Compiler {
            env: crate::library::env(),
            errors: Vec::new(),
            total_cost: 0,
            expensive: Vec::new(),
            rule_count: 0,
            has_transition: false,
        }
    }

    /// Compiles the node at `schema`. `card` is the product of the `maxItems`
    /// / `maxProperties` above, `None` when one is unbounded; `uncorrelatable`
    /// the highest path below which `oldSelf` cannot be used.
    pub fn node(
        &mut self,
        schema: &Arc<Schema>,
        path: &FieldPath,
        resource_root: bool,
        card: Option<u64>,
        uncorrelatable: Option<&FieldPath>,
    ) -> Option<Node> {
        if !schema.has_rules() {
            return None;
        }
        let mut rules = Vec::new();
        let mut self_ty = None;
        let lists: Vec<(FieldPath, &Vec<RawRule>)> = std::iter::once((path.clone(), &schema.rules))
            .chain(
                schema
                    .all_of_rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (path.child("allOf").index(i), r)),
            )
            .collect();
        for (lpath, list) in lists {
            if list.is_empty() {
                continue;
            }
            let vpath = lpath.child("x-kubernetes-validations");
            let Some(decl) = decl_type(schema, resource_root) else {
                self.errors.push(FieldError::internal(
                    vpath.clone(),
                    format!(
                        "rule declared on schema that does not support validation rules type: '{}' x-kubernetes-preserve-unknown-fields: '{}'",
                        schema.ty, schema.preserve_unknown_fields
                    ),
                ));
                continue;
            };
            let cardinality = card.unwrap_or_else(|| max_cardinality(decl.min_size));
            self_ty = Some(decl.ty.clone());
            for (i, raw) in list.iter().enumerate() {
                if let Some(r) = self.rule(
                    schema,
                    &vpath.index(i),
                    raw,
                    &decl.ty,
                    cardinality,
                    uncorrelatable,
                ) {
                    rules.push(r);
                }
            }
        }
        let map_correlatable = schema.map_is_correlatable();
        let child_uncorr = |own: bool| -> Option<FieldPath> {
            match uncorrelatable {
                Some(p) => Some(p.clone()),
                None if own => Some(path.clone()),
                None => None,
            }
        };
        let mut properties = Vec::new();
        for (name, prop) in &schema.properties {
            let unc = child_uncorr(!map_correlatable);
            if let Some(n) = self.node(
                prop,
                &path.child("properties").key(name),
                prop.embedded_resource,
                card,
                unc.as_ref(),
            ) {
                properties.push((name.clone(), n));
            }
        }
        let additional = schema.additional_properties.as_ref().and_then(|ap| {
            let c = match (card, schema.max_properties) {
                (Some(c), Some(m)) => Some(c.saturating_mul(m.max(0) as u64)),
                _ => None,
            };
            let unc = child_uncorr(!map_correlatable);
            self.node(
                ap,
                &path.child("additionalProperties"),
                ap.embedded_resource,
                c,
                unc.as_ref(),
            )
            .map(Box::new)
        });
        let items = schema.items.as_ref().and_then(|it| {
            let c = match (card, schema.max_items) {
                (Some(c), Some(m)) => Some(c.saturating_mul(m.max(0) as u64)),
                _ => None,
            };
            let unc = child_uncorr(!schema.is_list_map());
            self.node(
                it,
                &path.child("items"),
                it.embedded_resource,
                c,
                unc.as_ref(),
            )
            .map(Box::new)
        });
        if rules.is_empty() && properties.is_empty() && additional.is_none() && items.is_none() {
            return None;
        }
        let self_fields = if matches!(schema.ty.as_str(), "object")
            && schema.additional_properties.is_none()
            && !resource_root
        {
            referenced_self_fields(rules.iter().flat_map(|r| {
                std::iter::once(r.raw.rule.as_str()).chain(r.raw.message_expression.as_deref())
            }))
        } else {
            None
        };
        Some(Node {
            schema: schema.clone(),
            resource_root,
            self_ty,
            rules,
            properties,
            additional,
            items,
            self_fields,
        })
    }

    fn rule(
        &mut self,
        schema: &Schema,
        rpath: &FieldPath,
        raw: &RawRule,
        self_ty: &Ty,
        cardinality: u64,
        uncorrelatable: Option<&FieldPath>,
    ) -> Option<CompiledRule> {
        let errs_before = self.errors.len();
        let trimmed_rule = raw.rule.trim();
        let trimmed_msg = raw.message.as_deref().map(str::trim).unwrap_or("");
        if trimmed_rule.is_empty() {
            self.errors.push(FieldError::required(
                rpath.child("rule"),
                "rule is not specified",
            ));
        } else if raw.message.as_deref().is_some_and(|m| !m.is_empty()) && trimmed_msg.is_empty() {
            self.errors.push(FieldError::invalid(
                rpath.child("message"),
                BadValue::string(raw.message.as_deref().unwrap_or("")),
                "message must be non-empty if specified",
            ));
        } else if has_newlines(trimmed_msg) {
            self.errors.push(FieldError::invalid(
                rpath.child("message"),
                BadValue::string(raw.message.as_deref().unwrap_or("")),
                "message must not contain line breaks",
            ));
        } else if has_newlines(trimmed_rule) && trimmed_msg.is_empty() {
            self.errors.push(FieldError::required(
                rpath.child("message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        if raw
            .message_expression
            .as_deref()
            .is_some_and(|m| !m.is_empty() && m.trim().is_empty())
        {
            self.errors.push(FieldError::required(
                rpath.child("messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        let reason = match raw.reason.as_deref() {
            None | Some("FieldValueInvalid") => Reason::Invalid,
            Some("FieldValueForbidden") => Reason::Forbidden,
            Some("FieldValueRequired") => Reason::Required,
            Some("FieldValueDuplicate") => Reason::Duplicate,
            Some(other) => {
                self.errors.push(FieldError::not_supported(
                    rpath.child("reason"),
                    BadValue::string(other),
                    SUPPORTED_REASONS,
                ));
                Reason::Invalid
            }
        };
        let mut field_path = None;
        if let Some(fp) = &raw.field_path {
            if !fp.is_empty() && fp.trim().is_empty() {
                self.errors.push(FieldError::invalid(
                    rpath.child("fieldPath"),
                    BadValue::string(fp),
                    "fieldPath must be non-empty if specified",
                ));
            } else if has_newlines(fp) {
                self.errors.push(FieldError::invalid(
                    rpath.child("fieldPath"),
                    BadValue::string(fp),
                    "fieldPath must not contain line breaks",
                ));
            } else if !fp.is_empty() {
                match parse_field_path(fp.trim(), schema) {
                    Ok(p) => field_path = Some(p),
                    Err(_) => self.errors.push(FieldError::invalid(
                        rpath.child("fieldPath"),
                        BadValue::string(fp),
                        "fieldPath must be a valid path",
                    )),
                }
            }
        }
        if self.errors.len() > errs_before {
            return None;
        }

        // the rule itself
        let (expr, checked) = match compile_expr(
            &self.env,
            trimmed_rule,
            self_ty,
            raw.optional_old_self == Some(true),
        ) {
            Ok(x) => x,
            Err(e) => {
                self.errors.push(FieldError::invalid(
                    rpath.child("rule"),
                    BadValue::rendered(raw.go_repr()),
                    format!("compilation failed: {e}"),
                ));
                return None;
            }
        };
        if !matches!(checked.ty, Ty::Bool | Ty::Dyn { .. }) {
            self.errors.push(FieldError::invalid(
                rpath.child("rule"),
                BadValue::rendered(raw.go_repr()),
                "cel expression must evaluate to a bool",
            ));
            return None;
        }
        let cost = checked.cost.max(1).saturating_mul(cardinality);
        if cost > STATIC_ESTIMATED_COST_LIMIT {
            self.errors.push(FieldError::forbidden(
                rpath.child("rule"),
                cost_error_message("estimated rule cost", cost, STATIC_ESTIMATED_COST_LIMIT),
            ));
        }
        self.total_cost = self.total_cost.saturating_add(cost);
        self.expensive.push((rpath.child("rule"), cost));
        if checked.uses_old_self {
            if let Some(p) = uncorrelatable {
                self.errors.push(FieldError::invalid(
                    rpath.child("rule"),
                    BadValue::string(&raw.rule),
                    format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {p}"),
                ));
            }
        } else if let Some(v) = raw.optional_old_self {
            self.errors.push(FieldError::invalid(
                rpath.child("optionalOldSelf"),
                BadValue::rendered(v.to_string()),
                "may not be set if oldSelf is not used in rule",
            ));
        }

        // the message expression
        let mut message_expr = None;
        if let Some(me) = raw
            .message_expression
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            match compile_expr(&self.env, me, self_ty, false) {
                Err(e) => self.errors.push(FieldError::invalid(
                    rpath.child("messageExpression"),
                    BadValue::rendered(raw.go_repr()),
                    format!("messageExpression compilation failed: {e}"),
                )),
                Ok((_, c)) if !matches!(c.ty, Ty::String { .. } | Ty::Dyn { .. }) => {
                    self.errors.push(FieldError::invalid(
                        rpath.child("messageExpression"),
                        BadValue::rendered(raw.go_repr()),
                        "messageExpression must evaluate to a string",
                    ))
                }
                Ok((e, c)) => {
                    let mcost = c.cost.max(1).saturating_mul(cardinality);
                    if mcost > STATIC_ESTIMATED_COST_LIMIT {
                        self.errors.push(FieldError::forbidden(
                            rpath.child("messageExpression"),
                            cost_error_message(
                                "estimated messageExpression cost",
                                mcost,
                                STATIC_ESTIMATED_COST_LIMIT,
                            ),
                        ));
                    }
                    self.total_cost = self.total_cost.saturating_add(mcost);
                    self.expensive
                        .push((rpath.child("messageExpression"), mcost));
                    message_expr = Some((instrument(&e), node_count(&e)));
                }
            }
        }
        if self.errors.len() > errs_before {
            return None;
        }
        self.rule_count += 1;
        self.has_transition |= checked.uses_old_self;
        Some(CompiledRule {
            raw: raw.clone(),
            base_cost: node_count(&expr),
            expr: instrument(&expr),
            source_expr: expr,
            message_expr,
            transition: checked.uses_old_self,
            optional_old_self: raw.optional_old_self.unwrap_or(false),
            field_path,
            reason,
            max_cost: checked.cost,
        })
    }

    /// kube's check of the total estimated cost of all rules of a CRD.
    pub fn check_total(&mut self, base: &FieldPath) {
        if self.total_cost > STATIC_ESTIMATED_CRD_COST_LIMIT {
            let mut exp = self.expensive.clone();
            exp.sort_by_key(|e| std::cmp::Reverse(e.1));
            for (p, _) in exp.into_iter().take(4) {
                self.errors.push(FieldError::forbidden(
                    p,
                    "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                ));
            }
            self.errors.push(FieldError::forbidden(
                base.clone(),
                cost_error_message(
                    "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                    self.total_cost,
                    STATIC_ESTIMATED_CRD_COST_LIMIT,
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_paths_parse_against_the_schema() {
        let s = Schema::from_json(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        }));
        assert_eq!(
            parse_field_path(".spec.replicas", &s).unwrap(),
            "spec.replicas"
        );
        assert_eq!(
            parse_field_path(".labels['a.b']", &s).unwrap(),
            "labels[a.b]"
        );
        assert_eq!(parse_field_path("['spec']", &s).unwrap(), "spec");
        assert!(parse_field_path(".nope", &s).is_err());
        assert!(parse_field_path("spec", &s).is_err());
    }

    #[test]
    fn cost_messages_match_kube() {
        assert_eq!(
            cost_error_message("estimated rule cost", 54_000_000, 10_000_000),
            "estimated rule cost exceeds budget by factor of 5.4x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
        );
        assert!(cost_error_message("x", 10_100_000, 10_000_000).contains("factor of 1.010000x"));
        assert!(cost_error_message("x", u64::MAX, 10_000_000).contains("more than 100x"));
    }
}

#[cfg(test)]
mod self_fields_tests {
    use super::referenced_self_fields;

    #[test]
    fn named_fields_only() {
        let f = |xs: &[&str]| referenced_self_fields(xs.iter().copied());
        assert_eq!(
            f(&["!has(self.a) || !has(self.b.c)", "self.a == 'x'"]),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(f(&["self == oldSelf"]), None);
        assert_eq!(f(&["self.size() > 1"]), None);
        assert_eq!(f(&["self.all(k, k != '')"]), None);
        assert_eq!(
            f(&["self.replicas >= oldSelf.replicas"]),
            Some(vec!["replicas".to_string()])
        );
        assert_eq!(f(&["myself.a == 1"]), Some(vec![]));
        assert_eq!(f(&["self[0] == 1"]), None);
        assert_eq!(f(&["has(self.x__dash__y)"]), None);
    }
}
