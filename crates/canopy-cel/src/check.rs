//! A light type checker and cost estimator for rule expressions.
//!
//! kube compiles rules with cel-go's checker against the schema's declared
//! types, then estimates the worst-case cost of each rule with cel-go's cost
//! model and kube's library costs. This module does the same over the AST of
//! the `cel` crate:
//!
//! * identifiers must be `self`, `oldSelf`, comprehension variables or type
//!   names (`undeclared reference to 'x' (in container '')`);
//! * fields selected on schema objects must be declared (`undefined field 'x'`);
//! * functions must exist, and operators must get operands of types they
//!   accept (`found no matching overload for '_+_' applied to '(int, string)'`);
//! * `dyn` values (int-or-string, preserve-unknown-fields) defer all checks to
//!   runtime, as in kube.
//!
//! The cost model follows cel-go's `checker/cost.go`: 1 per identifier, field
//! selection and function call, string functions in proportion to the sizes
//! of their operands (`0.1` per byte traversed, `contains` and `matches`
//! multiplying both sizes), and comprehensions multiplying their body by the
//! size of their range.

use crate::types::{ObjectType, Ty, MAX_SIZE};
use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr, LiteralValue};
use std::sync::Arc;

/// A checker error, located at an expression.
#[derive(Debug, Clone)]
pub struct CheckError {
    /// Id of the expression the error is about.
    pub expr_id: u64,
    /// cel-go's wording.
    pub msg: String,
}

/// The outcome of checking an expression.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Its type.
    pub ty: Ty,
    /// Its estimated worst-case cost.
    pub cost: u64,
    /// Whether it references `oldSelf`.
    pub uses_old_self: bool,
}

/// The checker's scope: `self`, `oldSelf` and comprehension variables.
pub struct Checker {
    vars: Vec<(String, Ty)>,
    uses_old_self: bool,
}

type R = Result<(Ty, u64), CheckError>;

fn err(id: u64, msg: impl Into<String>) -> CheckError {
    CheckError {
        expr_id: id,
        msg: msg.into(),
    }
}

/// `ceil(size * factor)`.
fn factor(size: u64, f: f64) -> u64 {
    ((size as f64) * f).ceil() as u64
}

/// Traversal cost of a string or list of `size`: cel-go's 0.1 factor.
fn traverse(size: u64) -> u64 {
    factor(size, 0.1).max(1)
}

const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "optional_type",
];

/// Namespaces of global functions called as `ns.f(...)`.
const NAMESPACES: &[&str] = &["optional", "sets", "strings", "math", "ip", "format"];

fn known(t: &Ty) -> bool {
    !t.is_dyn()
}

fn is_num(t: &Ty) -> bool {
    matches!(t, Ty::Int | Ty::Uint | Ty::Double)
}

fn same_kind(a: &Ty, b: &Ty) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn overload_err(id: u64, f: &str, args: &[&Ty]) -> CheckError {
    let names: Vec<String> = args.iter().map(|t| t.name()).collect();
    err(
        id,
        format!(
            "found no matching overload for '{f}' applied to '({})'",
            names.join(", ")
        ),
    )
}

fn member_overload_err(id: u64, f: &str, target: &Ty, args: &[&Ty]) -> CheckError {
    let names: Vec<String> = args.iter().map(|t| t.name()).collect();
    err(
        id,
        format!(
            "found no matching overload for '{f}' applied to '{}.({})'",
            target.name(),
            names.join(", ")
        ),
    )
}

fn list_of(elem: Ty, max: u64) -> Ty {
    Ty::List {
        elem: Box::new(elem),
        max,
    }
}

fn string_of(max: u64) -> Ty {
    Ty::String { max }
}

impl Checker {
    /// A checker with `self` (and `oldSelf`, same type) in scope.
    pub fn new(self_ty: Ty, with_old_self: Option<Ty>) -> Self {
        let mut vars = vec![("self".to_string(), self_ty)];
        if let Some(o) = with_old_self {
            vars.push(("oldSelf".to_string(), o));
        }
        Checker {
            vars,
            uses_old_self: false,
        }
    }

    /// Checks an expression.
    pub fn check_expr(mut self, e: &IdedExpr) -> Result<Checked, CheckError> {
        let (ty, cost) = self.check(e)?;
        Ok(Checked {
            ty,
            cost,
            uses_old_self: self.uses_old_self,
        })
    }

    fn lookup(&self, name: &str) -> Option<&Ty> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    fn check(&mut self, e: &IdedExpr) -> R {
        match &e.expr {
            Expr::Literal(l) => Ok((
                match l {
                    LiteralValue::Boolean(_) => Ty::Bool,
                    LiteralValue::Bytes(b) => Ty::Bytes {
                        max: b.inner().len() as u64,
                    },
                    LiteralValue::Double(_) => Ty::Double,
                    LiteralValue::Int(_) => Ty::Int,
                    LiteralValue::Null => Ty::Null,
                    LiteralValue::String(s) => string_of(s.inner().len() as u64),
                    LiteralValue::UInt(_) => Ty::Uint,
                },
                0,
            )),
            Expr::Ident(name) => {
                if name == "oldSelf" {
                    self.uses_old_self = true;
                }
                if let Some(t) = self.lookup(name) {
                    return Ok((t.clone(), 1));
                }
                if TYPE_NAMES.contains(&name.as_str()) {
                    return Ok((Ty::Type, 1));
                }
                Err(err(
                    e.id,
                    format!("undeclared reference to '{name}' (in container '')"),
                ))
            }
            Expr::Select(sel) => {
                let (ot, oc) = self.check(&sel.operand)?;
                let ft = self.select_type(e.id, &ot, &sel.field)?;
                if sel.test {
                    Ok((Ty::Bool, oc + 1))
                } else {
                    Ok((ft, oc + 1))
                }
            }
            Expr::List(l) => {
                let mut cost = 10u64;
                let mut elem: Option<Ty> = None;
                for x in &l.elements {
                    let (t, c) = self.check(x)?;
                    cost = cost.saturating_add(c).saturating_add(copy_cost(&t));
                    elem = Some(match elem {
                        None => t,
                        Some(prev) if same_kind(&prev, &t) => max_ty(prev, t),
                        Some(_) => Ty::dyn_(),
                    });
                }
                Ok((
                    list_of(elem.unwrap_or_else(Ty::dyn_), l.elements.len() as u64),
                    cost,
                ))
            }
            Expr::Map(m) => {
                let mut cost = 30u64;
                let mut kt: Option<Ty> = None;
                let mut vt: Option<Ty> = None;
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        let (k, kc) = self.check(&me.key)?;
                        let (v, vc) = self.check(&me.value)?;
                        cost = cost.saturating_add(kc).saturating_add(vc);
                        kt.get_or_insert(k);
                        vt = Some(match vt {
                            None => v,
                            Some(prev) if same_kind(&prev, &v) => max_ty(prev, v),
                            Some(_) => Ty::dyn_(),
                        });
                    }
                }
                Ok((
                    Ty::Map {
                        key: Box::new(kt.unwrap_or_else(Ty::dyn_)),
                        val: Box::new(vt.unwrap_or_else(Ty::dyn_)),
                        max: m.entries.len() as u64,
                    },
                    cost,
                ))
            }
            Expr::Struct(s) => Err(err(
                e.id,
                format!(
                    "undeclared reference to '{}' (in container '')",
                    s.type_name
                ),
            )),
            Expr::Comprehension(c) => {
                let (rt, rc) = self.check(&c.iter_range)?;
                let n = rt.size();
                let (v1, v2) = match &rt {
                    Ty::List { elem, .. } => {
                        if c.iter_var2.is_some() {
                            (Ty::Int, (**elem).clone())
                        } else {
                            ((**elem).clone(), Ty::dyn_())
                        }
                    }
                    Ty::Map { key, val, .. } => ((**key).clone(), (**val).clone()),
                    Ty::Object(_) => (Ty::any_string(), Ty::dyn_()),
                    Ty::Dyn { max } => (Ty::Dyn { max: *max }, Ty::Dyn { max: *max }),
                    other => {
                        return Err(err(
                            c.iter_range.id,
                            format!(
                                "expression of type '{}' cannot be range of a comprehension (must be list, map, or dynamic)",
                                other.name()
                            ),
                        ))
                    }
                };
                let (it, ic) = self.check(&c.accu_init)?;
                let mark = self.vars.len();
                self.vars.push((c.accu_var.clone(), it.clone()));
                self.vars.push((c.iter_var.clone(), v1));
                if let Some(v2n) = &c.iter_var2 {
                    self.vars.push((v2n.clone(), v2));
                }
                let cond = self.check(&c.loop_cond);
                let step = self.check(&c.loop_step);
                self.vars.truncate(mark);
                let (_, cc) = cond?;
                let (st, sc) = step?;
                // the accumulator after the loop: a list grows to one
                // element per iteration at most (map / filter)
                let accu_after = match (&it, &st) {
                    (Ty::List { .. }, Ty::List { elem, .. }) => list_of((**elem).clone(), n),
                    _ => st.clone(),
                };
                self.vars.push((c.accu_var.clone(), accu_after));
                let res = self.check(&c.result);
                self.vars.truncate(mark);
                let (rty, resc) = res?;
                let per = cc.saturating_add(sc);
                let cost = rc
                    .saturating_add(ic)
                    .saturating_add(n.saturating_mul(per))
                    .saturating_add(resc);
                Ok((rty, cost))
            }
            Expr::Call(call) => self.check_call(e.id, call),
            Expr::Unspecified => Err(err(e.id, "unspecified expression")),
        }
    }

    fn select_type(&self, id: u64, ot: &Ty, field: &str) -> Result<Ty, CheckError> {
        match ot {
            Ty::Object(o) => match o.field(field) {
                Some(t) => Ok(t.clone()),
                None if o.open => Ok(o.field("@unknown").cloned().unwrap_or_else(Ty::dyn_)),
                None => Err(err(id, format!("undefined field '{field}'"))),
            },
            Ty::Map { val, .. } => Ok((**val).clone()),
            Ty::Dyn { max } => Ok(Ty::Dyn { max: *max }),
            other => Err(err(
                id,
                format!("type '{}' does not support field selection", other.name()),
            )),
        }
    }

    fn check_call(&mut self, id: u64, call: &cel::common::ast::CallExpr) -> R {
        let name = call.func_name.as_str();
        // namespaced global function: `optional.none()`, `sets.contains(a, b)`
        if let Some(t) = &call.target {
            if let Expr::Ident(ns) = &t.expr {
                if NAMESPACES.contains(&ns.as_str()) && self.lookup(ns).is_none() {
                    let full = format!("{ns}.{name}");
                    let mut args = Vec::new();
                    let mut cost = 0u64;
                    for a in &call.args {
                        let (t, c) = self.check(a)?;
                        cost = cost.saturating_add(c);
                        args.push(t);
                    }
                    let (t, c) = global_fn(id, &full, &args)?;
                    return Ok((t, cost.saturating_add(c)));
                }
            }
        }
        let arity_ok = match name {
            operators::LOGICAL_AND | operators::LOGICAL_OR => call.args.len() == 2,
            operators::CONDITIONAL => call.args.len() == 3,
            _ => true,
        };
        if !arity_ok || (call.target.is_some() && name.starts_with('_')) {
            return Err(err(
                id,
                format!("undeclared reference to '{name}' (in container '')"),
            ));
        }
        match name {
            operators::LOGICAL_AND | operators::LOGICAL_OR => {
                let (a, ac) = self.check(&call.args[0])?;
                let (b, bc) = self.check(&call.args[1])?;
                for t in [&a, &b] {
                    if known(t) && !matches!(t, Ty::Bool) {
                        return Err(overload_err(id, name, &[&a, &b]));
                    }
                }
                return Ok((Ty::Bool, ac.saturating_add(bc)));
            }
            operators::CONDITIONAL => {
                let (c, cc) = self.check(&call.args[0])?;
                if known(&c) && !matches!(c, Ty::Bool) {
                    return Err(err(
                        call.args[0].id,
                        format!(
                            "found no matching overload for '_?_:_' applied to '({}, ...)'",
                            c.name()
                        ),
                    ));
                }
                let (a, ac) = self.check(&call.args[1])?;
                let (b, bc) = self.check(&call.args[2])?;
                let t = if same_kind(&a, &b) {
                    max_ty(a, b)
                } else if a.is_dyn() || matches!(b, Ty::Null) {
                    a
                } else if matches!(a, Ty::Null) {
                    b
                } else {
                    Ty::dyn_()
                };
                return Ok((t, cc.saturating_add(ac.max(bc))));
            }
            _ => {}
        }
        let mut cost = 0u64;
        let target = match &call.target {
            Some(t) => {
                let (tt, tc) = self.check(t)?;
                cost = cost.saturating_add(tc);
                Some(tt)
            }
            None => None,
        };
        let mut args = Vec::with_capacity(call.args.len());
        for a in &call.args {
            let (t, c) = self.check(a)?;
            cost = cost.saturating_add(c);
            args.push(t);
        }
        let (t, c) = match target {
            Some(tt) => member_fn(id, name, &tt, &args)?,
            None => global_fn(id, name, &args)?,
        };
        Ok((t, cost.saturating_add(c)))
    }
}

/// Cost of copying a value of type `t` into a new list (the `cel` crate
/// copies containers).
fn copy_cost(t: &Ty) -> u64 {
    match t {
        Ty::List { .. } | Ty::Map { .. } | Ty::Object(_) | Ty::Dyn { .. } => t.size(),
        Ty::String { max } | Ty::Bytes { max } => factor(*max, 0.1),
        _ => 0,
    }
}

/// The larger-sized of two types of the same kind.
fn max_ty(a: Ty, b: Ty) -> Ty {
    if b.size() > a.size() {
        b
    } else {
        a
    }
}

fn elem_of(t: &Ty) -> Ty {
    match t {
        Ty::List { elem, .. } => (**elem).clone(),
        _ => Ty::dyn_(),
    }
}

/// Cost of comparing two values of type `t` (for equality or ordering).
fn compare_cost(a: &Ty, b: &Ty) -> u64 {
    match (a, b) {
        (Ty::String { .. } | Ty::Bytes { .. }, _) | (_, Ty::String { .. } | Ty::Bytes { .. }) => {
            traverse(a.size().min(b.size()))
        }
        (Ty::List { .. } | Ty::Map { .. }, _) => traverse(a.size().min(b.size())),
        _ => 1,
    }
}

fn global_fn(id: u64, name: &str, args: &[Ty]) -> R {
    let a = |i: usize| args.get(i).cloned().unwrap_or_else(Ty::dyn_);
    let refs: Vec<&Ty> = args.iter().collect();
    let arity = |n: usize| -> Result<(), CheckError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(overload_err(id, name, &refs))
        }
    };
    match name {
        operators::LOGICAL_NOT => {
            arity(1)?;
            if known(&a(0)) && !matches!(a(0), Ty::Bool) {
                return Err(overload_err(id, name, &refs));
            }
            Ok((Ty::Bool, 1))
        }
        operators::NEGATE => {
            arity(1)?;
            let t = a(0);
            if known(&t) && !matches!(t, Ty::Int | Ty::Double | Ty::Duration) {
                return Err(overload_err(id, name, &refs));
            }
            Ok((t, 1))
        }
        operators::NOT_STRICTLY_FALSE => Ok((Ty::Bool, 0)),
        operators::EQUALS | operators::NOT_EQUALS => {
            arity(2)?;
            let (x, y) = (a(0), a(1));
            if known(&x) && known(&y) && !equality_compatible(&x, &y) {
                return Err(overload_err(id, name, &refs));
            }
            Ok((Ty::Bool, compare_cost(&x, &y)))
        }
        operators::LESS
        | operators::LESS_EQUALS
        | operators::GREATER
        | operators::GREATER_EQUALS => {
            arity(2)?;
            let (x, y) = (a(0), a(1));
            let ok = !known(&x)
                || !known(&y)
                || (is_num(&x) && is_num(&y))
                || (same_kind(&x, &y)
                    && matches!(
                        x,
                        Ty::String { .. }
                            | Ty::Bytes { .. }
                            | Ty::Bool
                            | Ty::Timestamp
                            | Ty::Duration
                    ));
            if !ok {
                return Err(overload_err(id, name, &refs));
            }
            Ok((Ty::Bool, compare_cost(&x, &y)))
        }
        operators::ADD => {
            arity(2)?;
            let (x, y) = (a(0), a(1));
            match (&x, &y) {
                (Ty::Dyn { .. }, _) | (_, Ty::Dyn { .. }) => {
                    let t = if known(&x) { x.clone() } else { y.clone() };
                    let size = x.size().saturating_add(y.size());
                    Ok((resize(t, size), traverse(size)))
                }
                (Ty::Int, Ty::Int) | (Ty::Uint, Ty::Uint) | (Ty::Double, Ty::Double) => Ok((x, 1)),
                (Ty::String { max: l }, Ty::String { max: r }) => {
                    let s = l.saturating_add(*r);
                    Ok((string_of(s), traverse(s)))
                }
                (Ty::Bytes { max: l }, Ty::Bytes { max: r }) => {
                    let s = l.saturating_add(*r);
                    Ok((Ty::Bytes { max: s }, traverse(s)))
                }
                (Ty::List { elem, max: l }, Ty::List { elem: e2, max: r }) => {
                    let s = l.saturating_add(*r);
                    let el = if elem.is_dyn() {
                        (**e2).clone()
                    } else {
                        (**elem).clone()
                    };
                    Ok((list_of(el, s), traverse(s)))
                }
                (Ty::Timestamp, Ty::Duration) | (Ty::Duration, Ty::Timestamp) => {
                    Ok((Ty::Timestamp, 1))
                }
                (Ty::Duration, Ty::Duration) => Ok((Ty::Duration, 1)),
                _ => Err(overload_err(id, name, &refs)),
            }
        }
        operators::SUBSTRACT | operators::MULTIPLY | operators::DIVIDE | operators::MODULO => {
            arity(2)?;
            let (x, y) = (a(0), a(1));
            if !known(&x) || !known(&y) {
                return Ok((if known(&x) { x } else { y }, 1));
            }
            let t = match (&x, &y) {
                (Ty::Int, Ty::Int) | (Ty::Uint, Ty::Uint) => Some(x.clone()),
                (Ty::Double, Ty::Double) if name != operators::MODULO => Some(Ty::Double),
                (Ty::Timestamp, Ty::Timestamp) if name == operators::SUBSTRACT => {
                    Some(Ty::Duration)
                }
                (Ty::Timestamp, Ty::Duration) if name == operators::SUBSTRACT => {
                    Some(Ty::Timestamp)
                }
                (Ty::Duration, Ty::Duration) if name == operators::SUBSTRACT => Some(Ty::Duration),
                _ => None,
            };
            t.map(|t| (t, 1))
                .ok_or_else(|| overload_err(id, name, &refs))
        }
        operators::IN | "in" => {
            arity(2)?;
            match a(1) {
                Ty::List { elem, max } => Ok((
                    Ty::Bool,
                    max.saturating_mul(compare_cost(&a(0), &elem)).max(1),
                )),
                Ty::Map { .. } | Ty::Dyn { .. } | Ty::Object(_) => Ok((Ty::Bool, 1)),
                _ => Err(overload_err(id, "@in", &refs)),
            }
        }
        operators::INDEX => {
            arity(2)?;
            match a(0) {
                Ty::List { elem, .. } => {
                    if known(&a(1)) && !matches!(a(1), Ty::Int | Ty::Uint | Ty::Double) {
                        return Err(overload_err(id, name, &refs));
                    }
                    Ok(((*elem).clone(), 1))
                }
                Ty::Map { val, .. } => Ok(((*val).clone(), 1)),
                Ty::Object(_) => Ok((Ty::dyn_(), 1)),
                Ty::Dyn { max } => Ok((Ty::Dyn { max }, 1)),
                _ => Err(overload_err(id, name, &refs)),
            }
        }
        operators::OPT_INDEX => {
            arity(2)?;
            let inner = match a(0) {
                Ty::List { elem, .. } => (*elem).clone(),
                Ty::Map { val, .. } => (*val).clone(),
                Ty::Optional(t) => match *t {
                    Ty::List { elem, .. } => *elem,
                    Ty::Map { val, .. } => *val,
                    _ => Ty::dyn_(),
                },
                _ => Ty::dyn_(),
            };
            Ok((Ty::Optional(Box::new(inner)), 1))
        }
        operators::OPT_SELECT => {
            arity(2)?;
            let base = match a(0) {
                Ty::Optional(t) => *t,
                t => t,
            };
            let inner = match &base {
                Ty::Object(o) => Ty::Object(o.clone()),
                _ => base.clone(),
            };
            // the field name is a string literal; its type is resolved leniently
            let ft = match inner {
                Ty::Map { val, .. } => *val,
                _ => Ty::dyn_(),
            };
            Ok((Ty::Optional(Box::new(ft)), 1))
        }
        "size" => {
            arity(1)?;
            match a(0) {
                Ty::String { .. }
                | Ty::Bytes { .. }
                | Ty::List { .. }
                | Ty::Map { .. }
                | Ty::Dyn { .. }
                | Ty::Object(_) => Ok((Ty::Int, 1)),
                _ => Err(overload_err(id, name, &refs)),
            }
        }
        "int" | "uint" | "double" | "bool" => {
            arity(1)?;
            let t = match name {
                "int" => Ty::Int,
                "uint" => Ty::Uint,
                "double" => Ty::Double,
                _ => Ty::Bool,
            };
            Ok((t, traverse(a(0).size())))
        }
        "string" => {
            arity(1)?;
            let size = match a(0) {
                Ty::String { max } | Ty::Bytes { max } => max,
                Ty::Dyn { max } => max,
                _ => 40,
            };
            Ok((string_of(size), traverse(size)))
        }
        "bytes" => {
            arity(1)?;
            let s = a(0).size();
            Ok((Ty::Bytes { max: s }, traverse(s)))
        }
        crate::library::KEYS_FN => match a(0) {
            Ty::List { max, .. } => Ok((list_of(Ty::Int, max), 1)),
            Ty::Map { key, max, .. } => Ok((list_of(*key, max), 1)),
            Ty::Object(o) => Ok((list_of(Ty::any_string(), o.fields.len() as u64), 1)),
            Ty::Dyn { max } => Ok((list_of(Ty::Dyn { max }, max), 1)),
            _ => Err(err(
                id,
                "expression cannot be range of a comprehension (must be list, map, or dynamic)",
            )),
        },
        "type" => Ok((Ty::Type, 1)),
        "dyn" => {
            arity(1)?;
            let s = a(0).size();
            Ok((Ty::Dyn { max: s }, 1))
        }
        "duration" => Ok((Ty::Duration, traverse(a(0).size()))),
        "timestamp" => Ok((Ty::Timestamp, traverse(a(0).size()))),
        "matches" => {
            arity(2)?;
            Ok((
                Ty::Bool,
                traverse(a(0).size()).saturating_mul(factor(a(1).size(), 0.25).max(1)),
            ))
        }
        "url" => Ok((Ty::Opaque(crate::library::URL_TYPE), traverse(a(0).size()))),
        "isURL" | "isQuantity" | "isIP" | "isCIDR" => Ok((Ty::Bool, traverse(a(0).size()))),
        "quantity" => Ok((
            Ty::Opaque(crate::library::QUANTITY_TYPE),
            traverse(a(0).size()),
        )),
        "ip" => Ok((Ty::Opaque(crate::netfmt::IP_TYPE), traverse(a(0).size()))),
        "cidr" => Ok((Ty::Opaque(crate::netfmt::CIDR_TYPE), traverse(a(0).size()))),
        "ip.isCanonical" => Ok((Ty::Bool, traverse(a(0).size()))),
        "format.named" => Ok((
            Ty::Optional(Box::new(Ty::Opaque(crate::netfmt::FORMAT_TYPE))),
            1,
        )),
        f if f
            .strip_prefix("format.")
            .is_some_and(|n| crate::netfmt::FORMATS.contains(&n)) =>
        {
            arity(0)?;
            Ok((Ty::Opaque(crate::netfmt::FORMAT_TYPE), 1))
        }
        "optional.of" | "optional.ofNonZeroValue" => {
            arity(1)?;
            Ok((Ty::Optional(Box::new(a(0))), 1))
        }
        "optional.none" => Ok((Ty::Optional(Box::new(Ty::dyn_())), 1)),
        "sets.contains" | "sets.intersects" | "sets.equivalent" => {
            arity(2)?;
            let c = a(0).size().saturating_mul(a(1).size()).max(1);
            Ok((Ty::Bool, c))
        }
        "strings.quote" => {
            let s = a(0).size().saturating_mul(2).saturating_add(2);
            Ok((string_of(s), traverse(s)))
        }
        _ => Err(err(
            id,
            format!("undeclared reference to '{name}' (in container '')"),
        )),
    }
}

fn equality_compatible(x: &Ty, y: &Ty) -> bool {
    if matches!(x, Ty::Null) || matches!(y, Ty::Null) {
        return true;
    }
    match (x, y) {
        (Ty::Object(_), Ty::Map { .. }) | (Ty::Map { .. }, Ty::Object(_)) => true,
        (Ty::Optional(_), _) | (_, Ty::Optional(_)) => true,
        (Ty::List { elem: a, .. }, Ty::List { elem: b, .. }) => {
            !known(a) || !known(b) || equality_compatible(a, b)
        }
        _ => same_kind(x, y),
    }
}

fn resize(t: Ty, size: u64) -> Ty {
    match t {
        Ty::String { .. } => Ty::String { max: size },
        Ty::Bytes { .. } => Ty::Bytes { max: size },
        Ty::List { elem, .. } => Ty::List { elem, max: size },
        Ty::Dyn { .. } => Ty::Dyn { max: size },
        t => t,
    }
}

/// Which receiver kinds a member function accepts.
fn member_targets(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "size" => &["string", "bytes", "list", "map"],
        "contains" | "startsWith" | "endsWith" | "matches" | "charAt" | "lowerAscii"
        | "upperAscii" | "trim" | "replace" | "split" | "substring" | "format" | "find"
        | "findAll" => &["string"],
        "reverse" => &["string", "list"],
        "indexOf" | "lastIndexOf" => &["string", "list"],
        "join" | "isSorted" | "sum" | "min" | "max" => &["list"],
        "getFullYear" | "getMonth" | "getDate" | "getDayOfMonth" | "getDayOfWeek"
        | "getDayOfYear" | "getMilliseconds" => &["timestamp", "duration"],
        "getHours" | "getMinutes" | "getSeconds" => &["timestamp", "duration"],
        "hasValue" | "value" | "orValue" | "or" => &["optional"],
        "getScheme" | "getHost" | "getHostname" | "getPort" | "getEscapedPath" | "getQuery" => {
            &["url"]
        }
        "sign" | "isGreaterThan" | "isLessThan" | "compareTo" | "add" | "sub" | "asInteger"
        | "isInteger" | "asApproximateFloat" => &["quantity"],
        "family"
        | "isUnspecified"
        | "isLoopback"
        | "isLinkLocalMulticast"
        | "isLinkLocalUnicast"
        | "isGlobalUnicast" => &["ip"],
        "containsIP" | "containsCIDR" | "ip" | "masked" | "prefixLength" => &["cidr"],
        "validate" => &["format"],
        _ => return None,
    })
}

fn kind_name(t: &Ty) -> &'static str {
    match t {
        Ty::String { .. } => "string",
        Ty::Bytes { .. } => "bytes",
        Ty::List { .. } => "list",
        Ty::Map { .. } | Ty::Object(_) => "map",
        Ty::Timestamp => "timestamp",
        Ty::Duration => "duration",
        Ty::Optional(_) => "optional",
        Ty::Opaque(n) if *n == crate::library::URL_TYPE => "url",
        Ty::Opaque(n) if *n == crate::library::QUANTITY_TYPE => "quantity",
        Ty::Opaque(n) if *n == crate::netfmt::IP_TYPE => "ip",
        Ty::Opaque(n) if *n == crate::netfmt::CIDR_TYPE => "cidr",
        Ty::Opaque(n) if *n == crate::netfmt::FORMAT_TYPE => "format",
        _ => "other",
    }
}

fn member_fn(id: u64, name: &str, target: &Ty, args: &[Ty]) -> R {
    let Some(targets) = member_targets(name) else {
        return Err(err(
            id,
            format!("undeclared reference to '{name}' (in container '')"),
        ));
    };
    let refs: Vec<&Ty> = args.iter().collect();
    if known(target) && !targets.contains(&kind_name(target)) {
        return Err(member_overload_err(id, name, target, &refs));
    }
    let a = |i: usize| args.get(i).cloned().unwrap_or_else(Ty::dyn_);
    let ts = target.size();
    let string_arg_ok = |i: usize| {
        let t = a(i);
        !known(&t) || matches!(t, Ty::String { .. })
    };
    let res = match name {
        "size" => (Ty::Int, 1),
        "contains" => {
            if !string_arg_ok(0) {
                return Err(member_overload_err(id, name, target, &refs));
            }
            (Ty::Bool, traverse(ts).saturating_mul(traverse(a(0).size())))
        }
        "startsWith" | "endsWith" => {
            if !string_arg_ok(0) {
                return Err(member_overload_err(id, name, target, &refs));
            }
            (Ty::Bool, traverse(a(0).size()))
        }
        "matches" => {
            if !string_arg_ok(0) {
                return Err(member_overload_err(id, name, target, &refs));
            }
            (
                Ty::Bool,
                traverse(ts).saturating_mul(factor(a(0).size(), 0.25).max(1)),
            )
        }
        "find" => (
            string_of(ts),
            traverse(ts).saturating_mul(factor(a(0).size(), 0.25).max(1)),
        ),
        "findAll" => (
            list_of(string_of(ts), ts),
            traverse(ts).saturating_mul(factor(a(0).size(), 0.25).max(1)),
        ),
        "charAt" => (string_of(4), traverse(ts)),
        "indexOf" | "lastIndexOf" => match target {
            Ty::List { elem, max } => (
                Ty::Int,
                max.saturating_mul(compare_cost(elem, &a(0))).max(1),
            ),
            _ => (Ty::Int, traverse(ts).saturating_mul(traverse(a(0).size()))),
        },
        "lowerAscii" | "upperAscii" | "trim" | "reverse" => match target {
            Ty::List { .. } => (target.clone(), traverse(ts)),
            _ => (string_of(ts), traverse(ts)),
        },
        "substring" => (string_of(ts), traverse(ts)),
        "replace" => {
            let grown = ts.saturating_mul(a(1).size().max(1));
            (
                string_of(grown.min(MAX_SIZE.saturating_mul(4))),
                traverse(ts).saturating_mul(traverse(a(0).size().saturating_add(a(1).size()))),
            )
        }
        "split" => (list_of(string_of(ts), ts), traverse(ts).saturating_add(ts)),
        "join" => {
            let elem = elem_of(target);
            let total = ts
                .saturating_mul(elem.size())
                .saturating_add(ts.saturating_mul(args.first().map(|t| t.size()).unwrap_or(0)));
            (string_of(total), traverse(total))
        }
        "format" => (
            string_of(MAX_SIZE),
            traverse(ts).saturating_mul(traverse(a(0).size()).max(1)),
        ),
        "isSorted" => (
            Ty::Bool,
            ts.saturating_mul(compare_cost(&elem_of(target), &elem_of(target)))
                .max(1),
        ),
        "sum" | "min" | "max" => (
            elem_of(target),
            ts.saturating_mul(compare_cost(&elem_of(target), &elem_of(target)))
                .max(1),
        ),
        "getFullYear" | "getMonth" | "getDate" | "getDayOfMonth" | "getDayOfWeek"
        | "getDayOfYear" | "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds" => {
            (Ty::Int, 1)
        }
        "hasValue" => (Ty::Bool, 1),
        "value" => (
            match target {
                Ty::Optional(t) => (**t).clone(),
                _ => Ty::dyn_(),
            },
            1,
        ),
        "orValue" => (
            match target {
                Ty::Optional(t) if known(t) => (**t).clone(),
                _ => a(0),
            },
            1,
        ),
        "or" => (target.clone(), 1),
        "getScheme" | "getHost" | "getHostname" | "getPort" | "getEscapedPath" => {
            (string_of(ts.max(1)), 1)
        }
        "getQuery" => (
            Ty::Map {
                key: Box::new(Ty::any_string()),
                val: Box::new(list_of(Ty::any_string(), MAX_SIZE)),
                max: MAX_SIZE,
            },
            1,
        ),
        "sign" | "compareTo" | "asInteger" => (Ty::Int, 1),
        "isGreaterThan" | "isLessThan" | "isInteger" => (Ty::Bool, 1),
        "add" | "sub" => (Ty::Opaque(crate::library::QUANTITY_TYPE), 1),
        "asApproximateFloat" => (Ty::Double, 1),
        "family" | "prefixLength" => (Ty::Int, 1),
        "isUnspecified"
        | "isLoopback"
        | "isLinkLocalMulticast"
        | "isLinkLocalUnicast"
        | "isGlobalUnicast"
        | "containsIP"
        | "containsCIDR" => (Ty::Bool, 1),
        "ip" => (Ty::Opaque(crate::netfmt::IP_TYPE), 1),
        "masked" => (Ty::Opaque(crate::netfmt::CIDR_TYPE), 1),
        "validate" => (
            Ty::Optional(Box::new(list_of(string_of(1024), 4))),
            traverse(a(0).size()),
        ),
        _ => (Ty::dyn_(), 1),
    };
    Ok(res)
}

/// An object type with no fields: used by tests.
#[allow(dead_code)]
pub fn empty_object() -> Ty {
    Ty::Object(Arc::new(ObjectType::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::Env;

    fn chk(src: &str, self_ty: Ty) -> Result<Checked, String> {
        let env = crate::library::env();
        let p = env.compile(src).map_err(|e| e.to_string())?;
        Checker::new(self_ty.clone(), Some(self_ty))
            .check_expr(p.expression())
            .map_err(|e| e.msg)
    }

    fn obj() -> Ty {
        Ty::Object(Arc::new(ObjectType {
            fields: vec![
                ("replicas".into(), Ty::Int),
                ("name".into(), Ty::String { max: 100 }),
                ("items".into(), list_of(Ty::String { max: 10 }, 5)),
            ],
            open: false,
        }))
    }

    #[test]
    fn checks_identifiers_and_fields() {
        assert!(chk("self.replicas > 1", obj()).is_ok());
        assert_eq!(
            chk("self.foo > 1", obj()).unwrap_err(),
            "undefined field 'foo'"
        );
        assert_eq!(
            chk("bar > 1", obj()).unwrap_err(),
            "undeclared reference to 'bar' (in container '')"
        );
        assert_eq!(
            chk("self.replicas + 'a' == 1", obj()).unwrap_err(),
            "found no matching overload for '_+_' applied to '(int, string)'"
        );
        assert_eq!(
            chk("self.replicas.startsWith('a')", obj()).unwrap_err(),
            "found no matching overload for 'startsWith' applied to 'int.(string)'"
        );
        assert!(
            chk("self.replicas >= oldSelf.replicas", obj())
                .unwrap()
                .uses_old_self
        );
        assert!(
            !chk("self.items.all(x, x.size() < 3)", obj())
                .unwrap()
                .uses_old_self
        );
        let _ = Env::stdlib();
    }

    #[test]
    fn estimates_costs() {
        let c = chk("self.items.all(x, x.contains('a'))", obj()).unwrap();
        assert!(c.cost > 5 && c.cost < 100, "{}", c.cost);
        let big = list_of(Ty::String { max: MAX_SIZE }, 1_000_000);
        let t = Ty::Object(Arc::new(ObjectType {
            fields: vec![("l".into(), big)],
            open: false,
        }));
        let c = chk("self.l.all(x, self.l.exists(y, x == y))", t).unwrap();
        assert!(c.cost > 1_000_000_000, "{}", c.cost);
    }
}
