//! Evaluation of compiled rules against an object, as kube's
//! `Validator.Validate`: every rule at every node of the object its schema
//! applies to, `oldSelf` bound to the correlated old value, transition rules
//! skipped without one, kube's error wording, ratcheting of unchanged values,
//! and the runtime cost budget.

use crate::check::Checker;
use crate::compile::{CompiledRule, Node, Reason};
use crate::errors::{BadValue, FieldError, FieldPath};
use crate::library::{self, COST_LIMIT_EXCEEDED};
use crate::schema::Schema;
use crate::types;
use crate::value::to_val;
use crate::PER_CALL_LIMIT;
use cel::common::types::CelOptional;
use cel::{Context, Env, ExecutionError, Value as CelValue};
use serde_json::Value;
use std::sync::Arc;

/// The largest cost, estimated with the sizes of the actual value, of a rule
/// evaluation that is attempted at all. The estimate is an upper bound of the
/// work (the metered cost is what kube's limits apply to); it only stops
/// evaluations that the `cel` crate could not finish quickly, such as ones
/// copying large lists on every iteration.
pub const RUNTIME_ESTIMATE_LIMIT: u64 = 10 * PER_CALL_LIMIT;

/// Longest message a `messageExpression` may produce.
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

const OUT_OF_BUDGET: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

/// Correlation state for ratcheting: whether the current node, and the
/// nearest correlated ancestor, equal their old values.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ratchet {
    current: Option<bool>,
    nearest: Option<bool>,
}

impl Ratchet {
    fn should_ratchet(&self) -> bool {
        match self.current {
            Some(eq) => eq,
            None => self.nearest.unwrap_or(false),
        }
    }

    fn child(&self, new: &Value, old: Option<&Value>) -> Ratchet {
        if self.current.is_none() {
            return *self;
        }
        Ratchet {
            current: old.map(|o| o == new),
            nearest: self.current,
        }
    }
}

pub(crate) struct Run<'a> {
    pub env: &'a Arc<Env>,
    pub budget: i64,
    pub errors: Vec<FieldError>,
    pub warnings: Vec<FieldError>,
    pub ratcheting: bool,
}

/// kube's `ruleErrorString`.
fn rule_error_string(r: &CompiledRule) -> String {
    match r.raw.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => r.raw.rule.trim().to_string(),
    }
}

/// cel-go's wording of an evaluation error.
fn error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnsupportedIndex(..)
        | ExecutionError::UnsupportedTargetType { .. }
        | ExecutionError::NotSupportedAsMethod { .. }
        | ExecutionError::UnexpectedType { .. } => "no such overload".to_string(),
        ExecutionError::IndexOutOfBounds(v) => match v {
            CelValue::Int(i) => format!("index out of bounds: {i}"),
            CelValue::UInt(i) => format!("index out of bounds: {i}"),
            other => format!("index out of bounds: {other:?}"),
        },
        ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_string(),
        ExecutionError::Overflow(..) => "integer overflow".to_string(),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        ExecutionError::UndeclaredReference(n) => format!("no such attribute: {n}"),
        other => other.to_string(),
    }
}

fn is_cost_error(e: &ExecutionError) -> bool {
    matches!(e, ExecutionError::FunctionError { message, .. } if message == COST_LIMIT_EXCEEDED)
}

enum Eval {
    Done(Result<CelValue, ExecutionError>, u64),
    PerCallExceeded,
    BudgetExceeded,
}

fn evaluate(ctx: &Context, expr: &cel::common::ast::IdedExpr, base: u64, budget: i64) -> Eval {
    let limit = PER_CALL_LIMIT.min(budget.max(0) as u64);
    let (res, meter) = library::metered(limit, || {
        library::charge(base);
        ctx.resolve(expr)
    });
    if meter.exceeded || res.as_ref().err().is_some_and(is_cost_error) {
        if limit >= PER_CALL_LIMIT {
            Eval::PerCallExceeded
        } else {
            Eval::BudgetExceeded
        }
    } else {
        Eval::Done(res, meter.used)
    }
}

impl Run<'_> {
    fn stop(&mut self, e: FieldError) {
        self.errors.push(e);
        self.budget = -1;
    }

    pub fn node(
        &mut self,
        node: &Node,
        path: &FieldPath,
        obj: &Value,
        old: Option<&Value>,
        ratchet: Ratchet,
    ) {
        if self.budget < 0 || obj.is_null() {
            return;
        }
        if !node.rules.is_empty() {
            self.rules(node, path, obj, old, ratchet);
            if self.budget < 0 {
                return;
            }
        }
        match obj {
            Value::Array(items) => {
                let Some(child) = &node.items else { return };
                let old_items = old.and_then(Value::as_array);
                let schema = &node.schema;
                for (i, item) in items.iter().enumerate() {
                    let old_item = if schema.is_list_map() {
                        old_items.and_then(|o| find_by_keys(o, item, &schema.list_map_keys))
                    } else {
                        None
                    };
                    let r = if schema.is_list_map() {
                        ratchet.child(item, old_item)
                    } else {
                        Ratchet {
                            current: None,
                            nearest: ratchet.current.or(ratchet.nearest),
                        }
                    };
                    self.node(child, &path.index(i), item, old_item, r);
                    if self.budget < 0 {
                        return;
                    }
                }
            }
            Value::Object(map) => {
                let correlatable = node.schema.map_is_correlatable();
                let old_map = old.and_then(Value::as_object).filter(|_| correlatable);
                if let Some(child) = &node.additional {
                    for (k, v) in map {
                        let ov = old_map.and_then(|o| o.get(k));
                        self.node(child, &path.key(k), v, ov, ratchet.child(v, ov));
                        if self.budget < 0 {
                            return;
                        }
                    }
                }
                if !node.properties.is_empty() {
                    for (k, v) in map {
                        if let Some((_, child)) = node.properties.iter().find(|(n, _)| n == k) {
                            let ov = old_map.and_then(|o| o.get(k));
                            self.node(child, &path.child(k), v, ov, ratchet.child(v, ov));
                            if self.budget < 0 {
                                return;
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn rules(
        &mut self,
        node: &Node,
        path: &FieldPath,
        obj: &Value,
        old: Option<&Value>,
        ratchet: Ratchet,
    ) {
        let ty = BadValue::string(&node.schema.ty);
        if self.budget <= 0 {
            self.stop(FieldError::invalid(path.clone(), ty, OUT_OF_BUDGET));
            return;
        }
        let schema: &Schema = &node.schema;
        // only the fields the rules read, when that is all they do
        let narrowed = |v: &Value| -> Option<Value> {
            let fields = node.self_fields.as_ref()?;
            let m = v.as_object()?;
            Some(Value::Object(
                fields
                    .iter()
                    .filter_map(|f| m.get(f).map(|x| (f.clone(), x.clone())))
                    .collect(),
            ))
        };
        let obj_n = narrowed(obj);
        let old_n = old.and_then(narrowed);
        let self_val = to_val(
            obj_n.as_ref().unwrap_or(obj),
            Some(schema),
            node.resource_root,
        );
        let old_val = old.map(|o| {
            to_val(
                old_n.as_ref().unwrap_or(o),
                Some(schema),
                node.resource_root,
            )
        });
        // sizes of this very value, for re-estimating the cost of rules whose worst case
        // (by the schema's bounds) could exceed the limit; cheap rules skip this
        let needs_estimate = node.rules.iter().any(needs_runtime_estimate);
        let sized = node.self_ty.as_ref().filter(|_| needs_estimate).map(|t| {
            let new = types::actual(t, obj);
            let old = old.map(|o| types::actual(t, o));
            (new, old)
        });
        let mut ctx = Context::with_env(self.env.clone());
        ctx.add_variable_as_val("self", self_val.clone_as_boxed());
        if let Some(o) = &old_val {
            ctx.add_variable_as_val("oldSelf", o.clone_as_boxed());
        }
        let needs_optional = node
            .rules
            .iter()
            .any(|r| r.optional_old_self && r.transition);
        let opt_ctx = needs_optional.then(|| {
            let mut c = Context::with_env(self.env.clone());
            c.add_variable_as_val("self", self_val.clone_as_boxed());
            let o = match &old_val {
                Some(o) => CelOptional::of(o.clone_as_boxed()),
                None => CelOptional::none(),
            };
            c.add_variable_as_val("oldSelf", Box::new(o));
            c
        });
        for rule in &node.rules {
            if rule.transition && old.is_none() && !rule.optional_old_self {
                continue;
            }
            if let Some((new_ty, old_ty)) = sized.as_ref().filter(|_| needs_runtime_estimate(rule))
            {
                let old_ty = old_ty.clone().unwrap_or_else(|| types::zero_sized(new_ty));
                let old_ty = if rule.optional_old_self {
                    types::Ty::Optional(Box::new(old_ty))
                } else {
                    old_ty
                };
                let estimate = Checker::new(new_ty.clone(), Some(old_ty))
                    .check_expr(&rule.source_expr)
                    .map(|c| c.cost)
                    .unwrap_or(0);
                if estimate > RUNTIME_ESTIMATE_LIMIT {
                    self.stop(FieldError::invalid(
                        path.clone(),
                        ty.clone(),
                        format!(
                            "'{COST_LIMIT_EXCEEDED}': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                            rule_error_string(rule)
                        ),
                    ));
                    return;
                }
            }
            let rctx = match (&opt_ctx, rule.optional_old_self) {
                (Some(c), true) => c,
                _ => &ctx,
            };
            let (res, used) = match evaluate(rctx, &rule.expr, rule.base_cost, self.budget) {
                Eval::Done(r, u) => (r, u),
                Eval::PerCallExceeded => {
                    self.stop(FieldError::invalid(
                        path.clone(),
                        ty.clone(),
                        format!(
                            "'{COST_LIMIT_EXCEEDED}': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                            rule_error_string(rule)
                        ),
                    ));
                    return;
                }
                Eval::BudgetExceeded => {
                    self.stop(FieldError::invalid(path.clone(), ty.clone(), OUT_OF_BUDGET));
                    return;
                }
            };
            self.budget -= used as i64;
            match res {
                Err(e) => {
                    let text = error_text(&e);
                    let detail = if text.starts_with("no such overload") {
                        format!(
                            "'{text}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                            rule_error_string(rule)
                        )
                    } else {
                        format!("{text} evaluating rule: {}", rule_error_string(rule))
                    };
                    self.errors
                        .push(FieldError::invalid(path.clone(), ty.clone(), detail));
                    continue;
                }
                Ok(CelValue::Bool(true)) => continue,
                Ok(_) => {}
            }
            let fpath = match &rule.field_path {
                Some(p) if !p.is_empty() => path.child(p),
                _ => path.clone(),
            };
            let mut detail = None;
            if let Some((me, base)) = &rule.message_expr {
                match evaluate(&ctx, me, *base, self.budget) {
                    Eval::Done(r, used) => {
                        self.budget -= used as i64;
                        if let Ok(CelValue::String(s)) = r {
                            let t = s.trim();
                            if !t.is_empty()
                                && t.len() <= MAX_MESSAGE_EXPRESSION_BYTES
                                && !t.contains('\n')
                            {
                                detail = Some(t.to_string());
                            }
                        }
                    }
                    Eval::PerCallExceeded => {
                        self.stop(FieldError::invalid(
                            fpath,
                            ty.clone(),
                            format!(
                                "no further validation rules will be run due to call cost exceeds limit for messageExpression: {}",
                                crate::errors::go_quote(rule.raw.message_expression.as_deref().unwrap_or(""))
                            ),
                        ));
                        return;
                    }
                    Eval::BudgetExceeded => {
                        self.stop(FieldError::invalid(
                            fpath,
                            ty.clone(),
                            "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run",
                        ));
                        return;
                    }
                }
            }
            let detail =
                detail.unwrap_or_else(|| match rule.raw.message.as_deref().map(str::trim) {
                    Some(m) if !m.is_empty() => m.to_string(),
                    _ => format!("failed rule: {}", rule_error_string(rule)),
                });
            let err = match rule.reason {
                Reason::Invalid => FieldError::invalid(fpath, ty.clone(), detail),
                Reason::Forbidden => FieldError::forbidden(fpath, detail),
                Reason::Required => FieldError::required(fpath, detail),
                Reason::Duplicate => FieldError::duplicate(fpath, ty.clone()),
            };
            if self.ratcheting && !rule.transition && ratchet.should_ratchet() {
                self.warnings.push(err);
            } else {
                self.errors.push(err);
            }
        }
    }
}

/// Whether a rule's cost must be re-estimated with the sizes of the actual value before
/// it runs: when its worst case by the schema's bounds may exceed the limit, or when it
/// iterates (a value larger than the schema allows, which validation refuses anyway,
/// could make an iteration expensive). Rules that only test fields are never costly.
fn needs_runtime_estimate(rule: &crate::compile::CompiledRule) -> bool {
    const ITERATING: [&str; 12] = [
        "all(",
        "exists(",
        "exists_one(",
        "map(",
        "filter(",
        "sum(",
        "min(",
        "max(",
        "join(",
        "isSorted(",
        "indexOf(",
        "split(",
    ];
    rule.max_cost > RUNTIME_ESTIMATE_LIMIT || ITERATING.iter().any(|f| rule.raw.rule.contains(f))
}

/// The old item of a `x-kubernetes-list-type: map` list with the same keys.
fn find_by_keys<'a>(old: &'a [Value], item: &Value, keys: &[String]) -> Option<&'a Value> {
    let key_of = |v: &Value| -> Option<Vec<Value>> {
        let o = v.as_object()?;
        Some(
            keys.iter()
                .map(|k| o.get(k).cloned().unwrap_or(Value::Null))
                .collect(),
        )
    };
    let want = key_of(item)?;
    old.iter().find(|o| key_of(o).as_ref() == Some(&want))
}

/// Starts a validation of the root node.
pub(crate) fn validate_root(
    run: &mut Run<'_>,
    node: &Node,
    base: &FieldPath,
    obj: &Value,
    old: Option<&Value>,
) {
    let ratchet = Ratchet {
        current: old.map(|o| o == obj),
        nearest: None,
    };
    run.node(node, base, obj, old, ratchet);
}
