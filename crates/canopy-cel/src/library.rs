//! The CEL environment rules are compiled and evaluated in: the CEL standard
//! library and cel-go's strings extension (from the `cel` crate), plus the
//! Kubernetes libraries kube-apiserver adds, registered here as overloads:
//!
//! * lists: `isSorted()`, `sum()`, `min()`, `max()`, `indexOf(x)`, `lastIndexOf(x)`;
//! * regex: `find(re)`, `findAll(re)`, `findAll(re, n)`;
//! * URLs: `url(s)`, `isURL(s)`, `getScheme()`, `getHost()`, `getHostname()`,
//!   `getPort()`, `getEscapedPath()`, `getQuery()`;
//! * quantities: `quantity(s)`, `isQuantity(s)`, `sign()`, `isGreaterThan(q)`,
//!   `isLessThan(q)`, `compareTo(q)`, `add(q|int)`, `sub(q|int)`, `asInteger()`,
//!   `isInteger()`, `asApproximateFloat()`;
//! * sets: `sets.contains(a, b)`, `sets.intersects(a, b)`, `sets.equivalent(a, b)`;
//! * IPs and CIDRs: `isIP(s)`, `isCIDR(s)`.
//!
//! It also holds the runtime cost meter: rule expressions are instrumented
//! with calls to an internal `@canopy_tick` function on every comprehension
//! iteration, which charges a thread-local meter and fails once the per-call
//! limit is exceeded, so that no object can keep the evaluator busy.

use crate::netfmt;
use crate::quantity::Quantity;
use cel::common::ast::{
    operators, CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue,
};
use cel::common::types::{Type, BOOL_TYPE, DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::objects::{Opaque, OptionalValue, Value};
use cel::{Env, ExecutionError};
use std::cell::Cell;
use std::cmp::Ordering;
use std::sync::{Arc, OnceLock};

/// CEL type name of `url()` values.
pub const URL_TYPE: &str = "kubernetes.URL";
/// CEL type name of `quantity()` values.
pub const QUANTITY_TYPE: &str = "kubernetes.Quantity";
/// Internal function charging the runtime cost meter.
pub const TICK_FN: &str = "@canopy_tick";
/// Error text of a call that ran past its cost limit (cel-go's wording).
pub const COST_LIMIT_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

/// The shared environment.
pub fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(build_env())).clone()
}

fn build_env() -> Env {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .expect("strings extension");
    env.add_macro(cel::parser::Macro::receiver("bind", 3, bind_macro))
        .expect("cel.bind macro");
    for name in ["all", "exists", "exists_one", "existsOne"] {
        env.add_macro(cel::parser::Macro::receiver(name, 3, move |h, t, a| {
            two_var_macro(name, h, t, a)
        }))
        .expect("two-variable comprehension macros");
    }
    register(&mut env).expect("kubernetes library");
    env
}

/// `cel.bind(v, init, expr)`: `expr` with `v` bound to `init`, expanded as
/// cel-go expands it, into a comprehension over an empty list whose
/// accumulator is `v`.
fn bind_macro(
    helper: &mut cel::parser::MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, cel::ParseError> {
    if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(n)) if n == "cel") {
        return Ok(None);
    }
    let var = match &args[0].expr {
        Expr::Ident(n) => n.clone(),
        _ => {
            return Err(helper.new_error(
                args[0].id,
                "cel.bind() variable name must be a simple identifier",
            ))
        }
    };
    let result = args.pop().unwrap_or_default();
    let init = args.pop().unwrap_or_default();
    let range = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
    let cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into())));
    let step = helper.next_expr(Expr::Ident(var.clone()));
    Ok(Some(helper.next_expr(Expr::Comprehension(Box::new(
        ComprehensionExpr {
            iter_range: range,
            iter_var: "#unused".to_string(),
            iter_var2: None,
            accu_var: var,
            accu_init: init,
            loop_cond: cond,
            loop_step: step,
            result,
        },
    )))))
}

/// Internal function listing the indices of a list or the keys of a map.
pub const KEYS_FN: &str = "@canopy_keys";

static TWO_VAR_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn bind_expr(
    helper: &mut cel::parser::MacroExprHelper<'_>,
    var: String,
    init: IdedExpr,
    result: IdedExpr,
) -> IdedExpr {
    let range = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
    let cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into())));
    let step = helper.next_expr(Expr::Ident(var.clone()));
    helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: range,
        iter_var: "#unused".to_string(),
        iter_var2: None,
        accu_var: var,
        accu_init: init,
        loop_cond: cond,
        loop_step: step,
        result,
    })))
}

fn call(helper: &mut cel::parser::MacroExprHelper<'_>, f: &str, args: Vec<IdedExpr>) -> IdedExpr {
    helper.next_expr(Expr::Call(CallExpr {
        func_name: f.to_string(),
        target: None,
        args,
    }))
}

/// The two-variable comprehensions `all(k, v, p)`, `exists(k, v, p)` and
/// `exists_one(k, v, p)` (index and element of a list, key and value of a
/// map), expanded into one-variable comprehensions over the indices or keys,
/// with the element bound by `cel.bind`.
fn two_var_macro(
    name: &str,
    helper: &mut cel::parser::MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, cel::ParseError> {
    let (Expr::Ident(k), Expr::Ident(v)) = (&args[0].expr, &args[1].expr) else {
        return Err(helper.new_error(
            args[0].id,
            format!("{name}() variable names must be simple identifiers"),
        ));
    };
    let (k, v) = (k.clone(), v.clone());
    let Some(range) = target.take() else {
        return Ok(None);
    };
    let pred = args.pop().unwrap_or_default();
    let n = TWO_VAR_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let x = format!("@tv_range{n}");
    let accu = "@result".to_string();
    // cel.bind(v, @x[k], pred)
    let x_ident = helper.next_expr(Expr::Ident(x.clone()));
    let k_ident = helper.next_expr(Expr::Ident(k.clone()));
    let elem = call(helper, operators::INDEX, vec![x_ident, k_ident]);
    let pred = bind_expr(helper, v, elem, pred);
    let accu_ident =
        |h: &mut cel::parser::MacroExprHelper<'_>| h.next_expr(Expr::Ident(accu.clone()));
    let (init, cond, step, result) = match name {
        "all" | "exists" => {
            let and = name == "all";
            let init = helper.next_expr(Expr::Literal(LiteralValue::Boolean(and.into())));
            let a = accu_ident(helper);
            let cond_arg = if and {
                a
            } else {
                call(helper, operators::LOGICAL_NOT, vec![a])
            };
            let cond = call(helper, operators::NOT_STRICTLY_FALSE, vec![cond_arg]);
            let a = accu_ident(helper);
            let op = if and {
                operators::LOGICAL_AND
            } else {
                operators::LOGICAL_OR
            };
            let step = call(helper, op, vec![a, pred]);
            (init, cond, step, accu_ident(helper))
        }
        _ => {
            let init = helper.next_expr(Expr::Literal(LiteralValue::Int(0.into())));
            let cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(true.into())));
            let one = helper.next_expr(Expr::Literal(LiteralValue::Int(1.into())));
            let a = accu_ident(helper);
            let inc = call(helper, operators::ADD, vec![a, one]);
            let a = accu_ident(helper);
            let step = call(helper, operators::CONDITIONAL, vec![pred, inc, a]);
            let one = helper.next_expr(Expr::Literal(LiteralValue::Int(1.into())));
            let a = accu_ident(helper);
            let result = call(helper, operators::EQUALS, vec![a, one]);
            (init, cond, step, result)
        }
    };
    let x_ident = helper.next_expr(Expr::Ident(x.clone()));
    let keys = call(helper, KEYS_FN, vec![x_ident]);
    let loop_expr = helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: keys,
        iter_var: k,
        iter_var2: None,
        accu_var: accu,
        accu_init: init,
        loop_cond: cond,
        loop_step: step,
        result,
    })));
    Ok(Some(bind_expr(helper, x, range, loop_expr)))
}

fn keys<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    match val(&args[0])? {
        Value::List(l) => Ok(owned(Value::List(Arc::new(
            (0..l.len() as i64).map(Value::Int).collect(),
        )))),
        Value::Map(m) => Ok(owned(Value::List(Arc::new(
            m.map.keys().map(|k| Value::from(k.clone())).collect(),
        )))),
        other => Err(ExecutionError::no_such_overload(
            KEYS_FN,
            vec![other.type_of().to_string()],
        )),
    }
}

fn url_type() -> Type {
    Type::new_opaque_type(URL_TYPE)
}

fn quantity_type() -> Type {
    Type::new_opaque_type(QUANTITY_TYPE)
}

fn register(env: &mut Env) -> Result<(), cel::DeclarationError> {
    env.add_overload(TICK_FN, "canopy_tick_int", vec![INT_TYPE], tick)?;
    env.add_overload(KEYS_FN, "canopy_keys", vec![DYN_TYPE], keys)?;
    // lists
    env.add_member_overload("isSorted", "list_is_sorted", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], list_min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], list_max)?;
    env.add_member_overload(
        "indexOf",
        "list_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        list_index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_last_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        list_last_index_of,
    )?;
    // regex
    env.add_member_overload("find", "string_find", STRING_TYPE, vec![STRING_TYPE], find)?;
    env.add_member_overload(
        "findAll",
        "string_find_all",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_n",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all_n,
    )?;
    // urls
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], url)?;
    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    for (name, f) in [
        ("getScheme", get_scheme as cel::common::functions::Function),
        ("getHost", get_host),
        ("getHostname", get_hostname),
        ("getPort", get_port),
        ("getEscapedPath", get_escaped_path),
        ("getQuery", get_query),
    ] {
        env.add_member_overload(name, &format!("url_{name}"), url_type(), vec![], f)?;
    }
    // quantities
    env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        quantity,
    )?;
    env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    )?;
    env.add_member_overload("sign", "quantity_sign", quantity_type(), vec![], q_sign)?;
    env.add_member_overload(
        "isInteger",
        "quantity_is_integer",
        quantity_type(),
        vec![],
        q_is_integer,
    )?;
    env.add_member_overload(
        "asInteger",
        "quantity_as_integer",
        quantity_type(),
        vec![],
        q_as_integer,
    )?;
    env.add_member_overload(
        "asApproximateFloat",
        "quantity_as_float",
        quantity_type(),
        vec![],
        q_as_float,
    )?;
    env.add_member_overload(
        "isGreaterThan",
        "quantity_gt",
        quantity_type(),
        vec![quantity_type()],
        q_gt,
    )?;
    env.add_member_overload(
        "isLessThan",
        "quantity_lt",
        quantity_type(),
        vec![quantity_type()],
        q_lt,
    )?;
    env.add_member_overload(
        "compareTo",
        "quantity_cmp",
        quantity_type(),
        vec![quantity_type()],
        q_cmp,
    )?;
    env.add_member_overload(
        "add",
        "quantity_add",
        quantity_type(),
        vec![quantity_type()],
        q_add,
    )?;
    env.add_member_overload(
        "add",
        "quantity_add_int",
        quantity_type(),
        vec![INT_TYPE],
        q_add,
    )?;
    env.add_member_overload(
        "sub",
        "quantity_sub",
        quantity_type(),
        vec![quantity_type()],
        q_sub,
    )?;
    env.add_member_overload(
        "sub",
        "quantity_sub_int",
        quantity_type(),
        vec![INT_TYPE],
        q_sub,
    )?;
    // sets
    env.add_overload(
        "sets.contains",
        "list_sets_contains_list",
        vec![LIST_TYPE, LIST_TYPE],
        sets_contains,
    )?;
    env.add_overload(
        "sets.intersects",
        "list_sets_intersects_list",
        vec![LIST_TYPE, LIST_TYPE],
        sets_intersects,
    )?;
    env.add_overload(
        "sets.equivalent",
        "list_sets_equivalent_list",
        vec![LIST_TYPE, LIST_TYPE],
        sets_equivalent,
    )?;
    // ip / cidr
    env.add_overload("isIP", "is_ip", vec![STRING_TYPE], is_ip)?;
    env.add_overload("isCIDR", "is_cidr", vec![STRING_TYPE], is_cidr)?;
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], ip)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical",
        vec![STRING_TYPE],
        ip_is_canonical,
    )?;
    env.add_overload("cidr", "string_to_cidr", vec![STRING_TYPE], cidr)?;
    env.add_overload("string", "ip_to_string", vec![ip_type()], to_string)?;
    env.add_overload("string", "cidr_to_string", vec![cidr_type()], to_string)?;
    for (name, f) in [
        ("family", ip_family as cel::common::functions::Function),
        ("isUnspecified", ip_is_unspecified),
        ("isLoopback", ip_is_loopback),
        ("isLinkLocalMulticast", ip_is_link_local_multicast),
        ("isLinkLocalUnicast", ip_is_link_local_unicast),
        ("isGlobalUnicast", ip_is_global_unicast),
    ] {
        env.add_member_overload(name, &format!("ip_{name}"), ip_type(), vec![], f)?;
    }
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip",
        cidr_type(),
        vec![ip_type()],
        cidr_contains_ip,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_string",
        cidr_type(),
        vec![STRING_TYPE],
        cidr_contains_ip,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr",
        cidr_type(),
        vec![cidr_type()],
        cidr_contains_cidr,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_string",
        cidr_type(),
        vec![STRING_TYPE],
        cidr_contains_cidr,
    )?;
    env.add_member_overload("ip", "cidr_ip", cidr_type(), vec![], cidr_ip)?;
    env.add_member_overload("masked", "cidr_masked", cidr_type(), vec![], cidr_masked)?;
    env.add_member_overload(
        "prefixLength",
        "cidr_prefix_length",
        cidr_type(),
        vec![],
        cidr_prefix_length,
    )?;
    // named formats
    env.add_overload(
        "format.named",
        "format_named",
        vec![STRING_TYPE],
        format_named,
    )?;
    for (name, f) in FORMAT_FNS {
        env.add_overload(
            &format!("format.{name}"),
            &format!("format_{name}"),
            vec![],
            *f,
        )?;
    }
    env.add_member_overload(
        "validate",
        "format_validate",
        format_type(),
        vec![STRING_TYPE],
        format_validate,
    )?;
    let _ = BOOL_TYPE;
    Ok(())
}

// ---------------------------------------------------------------- meter

/// The state of the runtime cost meter of the evaluation in progress on this
/// thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meter {
    /// Cost charged so far.
    pub used: u64,
    /// Cost after which ticks fail.
    pub limit: u64,
    /// Whether a tick failed.
    pub exceeded: bool,
}

thread_local! {
    static METER: Cell<Option<Meter>> = const { Cell::new(None) };
}

/// Runs `f` with a fresh meter of `limit`, returning its result and the meter.
pub fn metered<T>(limit: u64, f: impl FnOnce() -> T) -> (T, Meter) {
    let prev = METER.with(|m| {
        m.replace(Some(Meter {
            used: 0,
            limit,
            exceeded: false,
        }))
    });
    let out = f();
    let meter = METER.with(|m| m.replace(prev)).unwrap_or_default();
    (out, meter)
}

/// Charges the meter directly.
pub fn charge(cost: u64) {
    METER.with(|m| {
        if let Some(mut meter) = m.get() {
            meter.used = meter.used.saturating_add(cost);
            if meter.used > meter.limit {
                meter.exceeded = true;
            }
            m.set(Some(meter));
        }
    });
}

fn tick<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let cost = match args.first().map(|a| Value::try_from(a.as_ref())) {
        Some(Ok(Value::Int(i))) => i.max(1) as u64,
        _ => 1,
    };
    let exceeded = METER.with(|m| match m.get() {
        Some(mut meter) => {
            meter.used = meter.used.saturating_add(cost);
            if meter.used > meter.limit {
                meter.exceeded = true;
            }
            m.set(Some(meter));
            meter.exceeded
        }
        None => false,
    });
    if exceeded {
        Err(ExecutionError::function_error(TICK_FN, COST_LIMIT_EXCEEDED))
    } else {
        Ok(owned(Value::Bool(true)))
    }
}

// ---------------------------------------------------------------- helpers

fn owned<'b, 'v>(v: Value) -> CowVal<'b, 'v> {
    let b: Box<dyn Val> = match v.try_into() {
        Ok(b) => b,
        Err(_) => Box::new(cel::common::types::CelNull),
    };
    CowVal::Owned(b)
}

fn val(a: &CowVal<'_, '_>) -> Result<Value, ExecutionError> {
    Value::try_from(a.as_ref())
}

fn fn_err(f: &str, msg: impl ToString) -> ExecutionError {
    ExecutionError::function_error(f, msg)
}

fn list_arg(a: &CowVal<'_, '_>, f: &str) -> Result<Arc<Vec<Value>>, ExecutionError> {
    match val(a)? {
        Value::List(l) => Ok(l),
        other => Err(fn_err(f, format!("expected list, got {}", other.type_of()))),
    }
}

fn str_arg(a: &CowVal<'_, '_>, f: &str) -> Result<Arc<String>, ExecutionError> {
    match val(a)? {
        Value::String(s) => Ok(s),
        other => Err(fn_err(
            f,
            format!("expected string, got {}", other.type_of()),
        )),
    }
}

/// CEL ordering of two values (numbers compare across types).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (UInt(x), UInt(y)) => Some(x.cmp(y)),
        (Float(x), Float(y)) => x.partial_cmp(y),
        (Int(x), UInt(y)) => Some((*x as i128).cmp(&(*y as i128))),
        (UInt(x), Int(y)) => Some((*x as i128).cmp(&(*y as i128))),
        (Int(x), Float(y)) => (*x as f64).partial_cmp(y),
        (Float(x), Int(y)) => x.partial_cmp(&(*y as f64)),
        (UInt(x), Float(y)) => (*x as f64).partial_cmp(y),
        (Float(x), UInt(y)) => x.partial_cmp(&(*y as f64)),
        (String(x), String(y)) => Some(x.cmp(y)),
        (Bytes(x), Bytes(y)) => Some(x.cmp(y)),
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        (Duration(x), Duration(y)) => Some(x.cmp(y)),
        (Timestamp(x), Timestamp(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn no_overload(f: &str, v: &Value) -> ExecutionError {
    ExecutionError::no_such_member_overload(f, vec!["list".into(), v.type_of().to_string()])
}

// ---------------------------------------------------------------- lists

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let l = list_arg(&args[0], "isSorted")?;
    for w in l.windows(2) {
        match compare(&w[0], &w[1]) {
            Some(Ordering::Greater) => return Ok(owned(Value::Bool(false))),
            Some(_) => {}
            None => return Err(no_overload("isSorted", &w[1])),
        }
    }
    Ok(owned(Value::Bool(true)))
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let l = list_arg(&args[0], "sum")?;
    let mut acc: Option<Value> = None;
    for v in l.iter() {
        acc = Some(match (acc, v) {
            (None, v) => v.clone(),
            (Some(Value::Int(a)), Value::Int(b)) => Value::Int(
                a.checked_add(*b)
                    .ok_or_else(|| fn_err("sum", "integer overflow"))?,
            ),
            (Some(Value::UInt(a)), Value::UInt(b)) => Value::UInt(
                a.checked_add(*b)
                    .ok_or_else(|| fn_err("sum", "unsigned integer overflow"))?,
            ),
            (Some(Value::Float(a)), Value::Float(b)) => Value::Float(a + b),
            (Some(Value::Duration(a)), Value::Duration(b)) => Value::Duration(a + *b),
            (Some(_), v) => return Err(no_overload("sum", v)),
        });
    }
    Ok(owned(acc.unwrap_or(Value::Int(0))))
}

fn extreme<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    f: &str,
    want: Ordering,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let l = list_arg(&args[0], f)?;
    let mut best: Option<&Value> = None;
    for v in l.iter() {
        best = Some(match best {
            None => v,
            Some(b) => match compare(v, b) {
                Some(o) if o == want => v,
                Some(_) => b,
                None => return Err(no_overload(f, v)),
            },
        });
    }
    match best {
        Some(b) => Ok(owned(b.clone())),
        None => Err(fn_err(f, format!("{f} of empty list"))),
    }
}

fn list_min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "min", Ordering::Less)
}

fn list_max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "max", Ordering::Greater)
}

fn list_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let l = list_arg(&args[0], "indexOf")?;
    let x = val(&args[1])?;
    let i = l
        .iter()
        .position(|v| *v == x)
        .map(|i| i as i64)
        .unwrap_or(-1);
    Ok(owned(Value::Int(i)))
}

fn list_last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let l = list_arg(&args[0], "lastIndexOf")?;
    let x = val(&args[1])?;
    let i = l
        .iter()
        .rposition(|v| *v == x)
        .map(|i| i as i64)
        .unwrap_or(-1);
    Ok(owned(Value::Int(i)))
}

// ---------------------------------------------------------------- regex

fn regex(f: &str, re: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(re).map_err(|e| fn_err(f, format!("invalid regex: {e}")))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "find")?;
    let re = regex("find", &str_arg(&args[1], "find")?)?;
    let m = re
        .find(&s)
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    Ok(owned(Value::String(Arc::new(m))))
}

fn find_all_impl<'b, 'v>(
    args: &[CowVal<'b, 'v>],
    limit: Option<i64>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "findAll")?;
    let re = regex("findAll", &str_arg(&args[1], "findAll")?)?;
    let n = match limit {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    };
    let all: Vec<Value> = re
        .find_iter(&s)
        .take(n)
        .map(|m| Value::String(Arc::new(m.as_str().to_string())))
        .collect();
    Ok(owned(Value::List(Arc::new(all))))
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    find_all_impl(&args, None)
}

fn find_all_n<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let n = match val(&args[2])? {
        Value::Int(n) => n,
        _ => -1,
    };
    find_all_impl(&args, Some(n))
}

// ---------------------------------------------------------------- urls

/// A parsed URL, as Go's `url.ParseRequestURI` parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Opaque for Url {
    fn runtime_type_name(&self) -> &str {
        URL_TYPE
    }
}

impl Url {
    /// Parses an absolute URL or absolute path.
    pub fn parse(s: &str) -> Option<Url> {
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (rest, _fragment) = match s.split_once('#') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((a, b)) => (a, b.to_string()),
            None => (rest, String::new()),
        };
        if rest.starts_with('/') {
            return Some(Url {
                scheme: String::new(),
                host: String::new(),
                path: rest.to_string(),
                query,
            });
        }
        let colon = rest.find(':')?;
        let scheme = &rest[..colon];
        let mut chars = scheme.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return None;
        }
        let after = &rest[colon + 1..];
        let (host, path) = if let Some(auth) = after.strip_prefix("//") {
            match auth.find('/') {
                Some(i) => (auth[..i].to_string(), auth[i..].to_string()),
                None => (auth.to_string(), String::new()),
            }
        } else if after.starts_with('/') {
            (String::new(), after.to_string())
        } else {
            // opaque URLs such as mailto:x are rejected by ParseRequestURI only
            // when they are not absolute; accept them with no host.
            (String::new(), after.to_string())
        };
        let host = match host.rsplit_once('@') {
            Some((_, h)) => h.to_string(),
            None => host,
        };
        if host.starts_with('[') && !host.contains(']') {
            return None;
        }
        Some(Url {
            scheme: scheme.to_string(),
            host,
            path,
            query,
        })
    }

    fn hostname(&self) -> String {
        if let Some(rest) = self.host.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("").to_string();
        }
        match self.host.rsplit_once(':') {
            Some((h, _)) => h.to_string(),
            None => self.host.clone(),
        }
    }

    fn port(&self) -> String {
        let after = if self.host.starts_with('[') {
            self.host.split(']').nth(1).unwrap_or("")
        } else {
            self.host.rsplit_once(':').map(|(_, p)| p).unwrap_or("")
        };
        after.trim_start_matches(':').to_string()
    }
}

fn url_arg(a: &CowVal<'_, '_>, f: &str) -> Result<Url, ExecutionError> {
    match val(a)? {
        Value::Opaque(o) => o
            .downcast_ref::<Url>()
            .cloned()
            .ok_or_else(|| fn_err(f, "expected URL")),
        other => Err(fn_err(f, format!("expected URL, got {}", other.type_of()))),
    }
}

fn url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "url")?;
    match Url::parse(&s) {
        Some(u) => Ok(owned(Value::Opaque(Arc::new(u)))),
        None => Err(fn_err(
            "url",
            format!("URL parse error during conversion from string: parse {:?}: invalid URI for request", s.as_str()),
        )),
    }
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "isURL")?;
    Ok(owned(Value::Bool(Url::parse(&s).is_some())))
}

macro_rules! url_getter {
    ($name:ident, $f:literal, |$u:ident| $body:expr) => {
        fn $name<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
            let $u = url_arg(&args[0], $f)?;
            Ok(owned(Value::String(Arc::new($body))))
        }
    };
}

url_getter!(get_scheme, "getScheme", |u| u.scheme.clone());
url_getter!(get_host, "getHost", |u| u.host.clone());
url_getter!(get_hostname, "getHostname", |u| u.hostname());
url_getter!(get_port, "getPort", |u| u.port());
url_getter!(get_escaped_path, "getEscapedPath", |u| u.path.clone());

fn get_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let u = url_arg(&args[0], "getQuery")?;
    let mut map: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for pair in u.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.entry(k.to_string())
            .or_default()
            .push(Value::String(Arc::new(v.to_string())));
    }
    let m: std::collections::HashMap<String, Value> = map
        .into_iter()
        .map(|(k, v)| (k, Value::List(Arc::new(v))))
        .collect();
    Ok(owned(Value::Map(m.into())))
}

// ---------------------------------------------------------------- quantities

fn q_arg(a: &CowVal<'_, '_>, f: &str) -> Result<Quantity, ExecutionError> {
    match val(a)? {
        Value::Opaque(o) => o
            .downcast_ref::<Quantity>()
            .cloned()
            .ok_or_else(|| fn_err(f, "expected quantity")),
        Value::Int(i) => Ok(Quantity::from_int(i)),
        other => Err(fn_err(
            f,
            format!("expected quantity, got {}", other.type_of()),
        )),
    }
}

fn quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "quantity")?;
    match Quantity::parse(&s) {
        Ok(q) => Ok(owned(Value::Opaque(Arc::new(q)))),
        Err(e) => Err(fn_err("quantity", e)),
    }
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "isQuantity")?;
    Ok(owned(Value::Bool(Quantity::parse(&s).is_ok())))
}

fn q_sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(owned(Value::Int(q_arg(&args[0], "sign")?.sign())))
}

fn q_is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(owned(Value::Bool(
        q_arg(&args[0], "isInteger")?.as_i64().is_some(),
    )))
}

fn q_as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    match q_arg(&args[0], "asInteger")?.as_i64() {
        Some(i) => Ok(owned(Value::Int(i))),
        None => Err(fn_err("asInteger", "cannot convert value to integer")),
    }
}

fn q_as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(owned(Value::Float(
        q_arg(&args[0], "asApproximateFloat")?.as_f64(),
    )))
}

fn q_cmp_of(args: &[CowVal<'_, '_>], f: &str) -> Result<Ordering, ExecutionError> {
    Ok(q_arg(&args[0], f)?.cmp_q(&q_arg(&args[1], f)?))
}

fn q_gt<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(owned(Value::Bool(
        q_cmp_of(&args, "isGreaterThan")? == Ordering::Greater,
    )))
}

fn q_lt<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(owned(Value::Bool(
        q_cmp_of(&args, "isLessThan")? == Ordering::Less,
    )))
}

fn q_cmp<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(owned(Value::Int(match q_cmp_of(&args, "compareTo")? {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })))
}

fn q_add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = q_arg(&args[0], "add")?.add(&q_arg(&args[1], "add")?);
    Ok(owned(Value::Opaque(Arc::new(q))))
}

fn q_sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = q_arg(&args[0], "sub")?.add(&q_arg(&args[1], "sub")?.neg());
    Ok(owned(Value::Opaque(Arc::new(q))))
}

// ---------------------------------------------------------------- sets

fn sets_contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let a = list_arg(&args[0], "sets.contains")?;
    let b = list_arg(&args[1], "sets.contains")?;
    Ok(owned(Value::Bool(b.iter().all(|x| a.contains(x)))))
}

fn sets_intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let a = list_arg(&args[0], "sets.intersects")?;
    let b = list_arg(&args[1], "sets.intersects")?;
    Ok(owned(Value::Bool(b.iter().any(|x| a.contains(x)))))
}

fn sets_equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let a = list_arg(&args[0], "sets.equivalent")?;
    let b = list_arg(&args[1], "sets.equivalent")?;
    Ok(owned(Value::Bool(
        b.iter().all(|x| a.contains(x)) && a.iter().all(|x| b.contains(x)),
    )))
}

// ---------------------------------------------------------------- ip / cidr

fn ip_type() -> Type {
    Type::new_opaque_type(netfmt::IP_TYPE)
}

fn cidr_type() -> Type {
    Type::new_opaque_type(netfmt::CIDR_TYPE)
}

fn format_type() -> Type {
    Type::new_opaque_type(netfmt::FORMAT_TYPE)
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "isIP")?;
    Ok(owned(Value::Bool(netfmt::parse_ip(&s).is_ok())))
}

fn is_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "isCIDR")?;
    Ok(owned(Value::Bool(netfmt::parse_cidr(&s).is_ok())))
}

fn ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "ip")?;
    let ip = netfmt::parse_ip(&s).map_err(|e| fn_err("ip", e))?;
    Ok(owned(Value::Opaque(Arc::new(netfmt::Ip(ip)))))
}

fn ip_is_canonical<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "ip.isCanonical")?;
    let ip = netfmt::parse_ip(&s).map_err(|e| fn_err("ip.isCanonical", e))?;
    Ok(owned(Value::Bool(ip.to_string() == *s)))
}

fn cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "cidr")?;
    let c = netfmt::parse_cidr(&s).map_err(|e| fn_err("cidr", e))?;
    Ok(owned(Value::Opaque(Arc::new(c))))
}

fn ip_arg(a: &CowVal<'_, '_>, f: &str) -> Result<std::net::IpAddr, ExecutionError> {
    match val(a)? {
        Value::Opaque(o) => o
            .downcast_ref::<netfmt::Ip>()
            .map(|i| i.0)
            .ok_or_else(|| fn_err(f, "expected IP")),
        Value::String(s) => netfmt::parse_ip(&s).map_err(|e| fn_err(f, e)),
        other => Err(fn_err(f, format!("expected IP, got {}", other.type_of()))),
    }
}

fn cidr_arg(a: &CowVal<'_, '_>, f: &str) -> Result<netfmt::Cidr, ExecutionError> {
    match val(a)? {
        Value::Opaque(o) => o
            .downcast_ref::<netfmt::Cidr>()
            .cloned()
            .ok_or_else(|| fn_err(f, "expected CIDR")),
        Value::String(s) => netfmt::parse_cidr(&s).map_err(|e| fn_err(f, e)),
        other => Err(fn_err(f, format!("expected CIDR, got {}", other.type_of()))),
    }
}

fn to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = match val(&args[0])? {
        Value::Opaque(o) => {
            if let Some(i) = o.downcast_ref::<netfmt::Ip>() {
                i.0.to_string()
            } else if let Some(c) = o.downcast_ref::<netfmt::Cidr>() {
                c.to_string()
            } else {
                return Err(fn_err("string", "unsupported type"));
            }
        }
        other => {
            return Err(fn_err(
                "string",
                format!("unsupported type {}", other.type_of()),
            ))
        }
    };
    Ok(owned(Value::String(Arc::new(s))))
}

macro_rules! ip_pred {
    ($name:ident, $f:literal, |$ip:ident| $body:expr) => {
        fn $name<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
            let $ip = ip_arg(&args[0], $f)?;
            Ok(owned($body))
        }
    };
}

ip_pred!(ip_family, "family", |ip| Value::Int(if ip.is_ipv4() {
    4
} else {
    6
}));
ip_pred!(ip_is_unspecified, "isUnspecified", |ip| Value::Bool(
    ip.is_unspecified()
));
ip_pred!(ip_is_loopback, "isLoopback", |ip| Value::Bool(
    ip.is_loopback()
));
ip_pred!(ip_is_link_local_multicast, "isLinkLocalMulticast", |ip| {
    Value::Bool(netfmt::is_link_local_multicast(&ip))
});
ip_pred!(ip_is_link_local_unicast, "isLinkLocalUnicast", |ip| {
    Value::Bool(netfmt::is_link_local_unicast(&ip))
});
ip_pred!(ip_is_global_unicast, "isGlobalUnicast", |ip| Value::Bool(
    netfmt::is_global_unicast(&ip)
));

fn cidr_contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args[0], "containsIP")?;
    let ip = ip_arg(&args[1], "containsIP")?;
    Ok(owned(Value::Bool(c.contains_ip(&ip))))
}

fn cidr_contains_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args[0], "containsCIDR")?;
    let other = cidr_arg(&args[1], "containsCIDR")?;
    Ok(owned(Value::Bool(c.contains_cidr(&other))))
}

fn cidr_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args[0], "ip")?;
    Ok(owned(Value::Opaque(Arc::new(netfmt::Ip(c.addr)))))
}

fn cidr_masked<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args[0], "masked")?;
    Ok(owned(Value::Opaque(Arc::new(c.masked()))))
}

fn cidr_prefix_length<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args[0], "prefixLength")?;
    Ok(owned(Value::Int(c.prefix as i64)))
}

fn format_named<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg(&args[0], "format.named")?;
    let v = match netfmt::FORMATS.iter().find(|f| **f == s.as_str()) {
        Some(f) => OptionalValue::of(Value::Opaque(Arc::new(netfmt::NamedFormat(f)))),
        None => OptionalValue::none(),
    };
    Ok(owned(Value::Opaque(Arc::new(v))))
}

macro_rules! named_formats {
    ($($f:ident => $name:literal),* $(,)?) => {
        $(
            fn $f<'b, 'v>(_args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
                Ok(owned(Value::Opaque(Arc::new(netfmt::NamedFormat($name)))))
            }
        )*
        /// `format.<name>()` functions.
        const FORMAT_FNS: &[(&str, cel::common::functions::Function)] = &[$(($name, $f)),*];
    };
}

named_formats! {
    format_dns1123_label => "dns1123Label",
    format_dns1123_subdomain => "dns1123Subdomain",
    format_dns1035_label => "dns1035Label",
    format_qualified_name => "qualifiedName",
    format_dns1123_label_prefix => "dns1123LabelPrefix",
    format_dns1123_subdomain_prefix => "dns1123SubdomainPrefix",
    format_dns1035_label_prefix => "dns1035LabelPrefix",
    format_label_value => "labelValue",
    format_uri => "uri",
    format_uuid => "uuid",
    format_byte => "byte",
    format_date => "date",
    format_datetime => "datetime",
}

fn format_validate<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let name = match val(&args[0])? {
        Value::Opaque(o) => o
            .downcast_ref::<netfmt::NamedFormat>()
            .map(|f| f.0)
            .ok_or_else(|| fn_err("validate", "expected format"))?,
        _ => return Err(fn_err("validate", "expected format")),
    };
    let s = str_arg(&args[1], "validate")?;
    let errs = netfmt::validate_format(name, &s);
    let v = if errs.is_empty() {
        OptionalValue::none()
    } else {
        OptionalValue::of(Value::List(Arc::new(
            errs.into_iter()
                .map(|e| Value::String(Arc::new(e)))
                .collect(),
        )))
    };
    Ok(owned(Value::Opaque(Arc::new(v))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::Context;

    fn eval(src: &str) -> Result<Value, String> {
        let env = env();
        let p = env.compile(src).map_err(|e| e.to_string())?;
        let ctx = Context::with_env(env);
        p.execute(&ctx).map_err(|e| e.to_string())
    }

    #[test]
    fn list_library() {
        assert_eq!(eval("[1, 2, 3].isSorted()"), Ok(Value::Bool(true)));
        assert_eq!(eval("['b', 'a'].isSorted()"), Ok(Value::Bool(false)));
        assert_eq!(eval("[1, 2, 3].sum()"), Ok(Value::Int(6)));
        assert_eq!(eval("[1.5, 2.5].sum()"), Ok(Value::Float(4.0)));
        assert_eq!(eval("[3, 1, 2].min()"), Ok(Value::Int(1)));
        assert_eq!(eval("[3, 1, 2].max()"), Ok(Value::Int(3)));
        assert_eq!(eval("[1, 2, 1].indexOf(1)"), Ok(Value::Int(0)));
        assert_eq!(eval("[1, 2, 1].lastIndexOf(1)"), Ok(Value::Int(2)));
        assert_eq!(eval("'abc'.indexOf('c')"), Ok(Value::Int(2)));
        assert!(eval("[].min()").is_err());
    }

    #[test]
    fn string_library() {
        assert_eq!(eval("'ABC'.lowerAscii() == 'abc'"), Ok(Value::Bool(true)));
        assert_eq!(eval("'abc'.upperAscii() == 'ABC'"), Ok(Value::Bool(true)));
        assert_eq!(
            eval("'a,b'.split(',') == ['a', 'b']"),
            Ok(Value::Bool(true))
        );
        assert_eq!(eval("['a', 'b'].join('-') == 'a-b'"), Ok(Value::Bool(true)));
        assert_eq!(eval("'  x '.trim() == 'x'"), Ok(Value::Bool(true)));
        assert_eq!(
            eval("'aXa'.replace('a', 'b') == 'bXb'"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("'hello'.substring(1, 3) == 'el'"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("'abc123def'.find('[0-9]+') == '123'"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("'a1b2c3'.findAll('[0-9]') == ['1', '2', '3']"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("'a1b2c3'.findAll('[0-9]', 2) == ['1', '2']"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("'%s has %d'.format(['x', 2]) == 'x has 2'"),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn url_library() {
        assert_eq!(
            eval("isURL('https://example.com:8080/p?a=1')"),
            Ok(Value::Bool(true))
        );
        assert_eq!(eval("isURL('not a url')"), Ok(Value::Bool(false)));
        assert_eq!(
            eval("url('https://example.com:8080/p').getScheme()"),
            Ok(Value::String(Arc::new("https".into())))
        );
        assert_eq!(
            eval("url('https://example.com:8080/p').getHost()"),
            Ok(Value::String(Arc::new("example.com:8080".into())))
        );
        assert_eq!(
            eval("url('https://example.com:8080/p').getHostname()"),
            Ok(Value::String(Arc::new("example.com".into())))
        );
        assert_eq!(
            eval("url('https://[::1]:80/p').getHostname()"),
            Ok(Value::String(Arc::new("::1".into())))
        );
        assert_eq!(
            eval("url('https://example.com:8080/p').getPort()"),
            Ok(Value::String(Arc::new("8080".into())))
        );
        assert_eq!(
            eval("url('https://example.com/a/b').getEscapedPath()"),
            Ok(Value::String(Arc::new("/a/b".into())))
        );
        assert_eq!(
            eval("url('https://e.com/?a=1&a=2&b=3').getQuery()['a'] == ['1', '2']"),
            Ok(Value::Bool(true))
        );
        assert!(eval("url('::')").is_err());
    }

    #[test]
    fn quantity_library() {
        assert_eq!(
            eval("quantity('1Gi').isGreaterThan(quantity('1G'))"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("quantity('500m').isLessThan(quantity('1'))"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("quantity('1k').compareTo(quantity('1000'))"),
            Ok(Value::Int(0))
        );
        assert_eq!(
            eval("quantity('2').add(quantity('3')).asInteger()"),
            Ok(Value::Int(5))
        );
        assert_eq!(eval("quantity('2').add(3).asInteger()"), Ok(Value::Int(5)));
        assert_eq!(eval("quantity('5').sub(7).sign()"), Ok(Value::Int(-1)));
        assert_eq!(eval("quantity('1.5').isInteger()"), Ok(Value::Bool(false)));
        assert_eq!(
            eval("quantity('1.5').asApproximateFloat()"),
            Ok(Value::Float(1.5))
        );
        assert_eq!(eval("isQuantity('10Mi')"), Ok(Value::Bool(true)));
        assert_eq!(eval("isQuantity('ten')"), Ok(Value::Bool(false)));
        assert!(eval("quantity('x')").is_err());
    }

    #[test]
    fn two_variable_comprehensions() {
        assert_eq!(
            eval("{'a': 1, 'b': 2}.all(k, v, v > 0 && k != '')"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("[5, 6].exists(i, v, i == 1 && v == 6)"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("[5, 6].exists_one(i, v, v > i)"),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            eval("[5, 6].all(i, v, [1].all(j, w, v > w + j + i))"),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn ip_cidr_format_library() {
        assert_eq!(
            eval("ip('10.0.0.1').family() == 4 && ip('::1').isLoopback()"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1')"),
            Ok(Value::Bool(true))
        );
        assert_eq!(eval("cidr('10.0.0.0/8').containsIP(ip('10.1.1.1')) && cidr('10.0.0.0/8').containsIP('10.2.2.2')"), Ok(Value::Bool(true)));
        assert_eq!(eval("cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16') && !cidr('10.0.0.0/8').containsCIDR('11.0.0.0/16')"), Ok(Value::Bool(true)));
        assert_eq!(eval("string(cidr('10.1.2.3/8').masked()) == '10.0.0.0/8' && cidr('10.1.2.3/8').prefixLength() == 8"), Ok(Value::Bool(true)));
        assert_eq!(
            eval(
                "string(cidr('10.1.2.3/8').ip()) == '10.1.2.3' && ip('8.8.8.8').isGlobalUnicast()"
            ),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("!format.dns1123Label().validate('my-name').hasValue()"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("format.dns1123Label().validate('My_Name').value().size() == 1"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("format.named('labelValue').hasValue() && !format.named('nope').hasValue()"),
            Ok(Value::Bool(true))
        );
        assert_eq!(eval("!format.named('uuid').value().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()"), Ok(Value::Bool(true)));
        assert!(eval("ip('nope')").is_err());
    }

    #[test]
    fn bind() {
        assert_eq!(eval("cel.bind(x, 2, x * x + x)"), Ok(Value::Int(6)));
        assert_eq!(
            eval("cel.bind(a, [1, 2], cel.bind(b, a.map(v, v * 2), b.sum()))"),
            Ok(Value::Int(6))
        );
    }

    #[test]
    fn sets_and_ips() {
        assert_eq!(eval("sets.contains([1, 2, 3], [2])"), Ok(Value::Bool(true)));
        assert_eq!(eval("sets.intersects([1, 2], [3])"), Ok(Value::Bool(false)));
        assert_eq!(
            eval("sets.equivalent([1, 2], [2, 1, 1])"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("isIP('10.0.0.1') && isIP('::1') && !isIP('::ffff:1.2.3.4')"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0/33')"),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn meter_fails_ticks_past_limit() {
        let (r, m) = metered(3, || eval("[1, 2, 3, 4, 5].all(x, @canopy_tick(1))"));
        // `@` names can't be written in source: expect a parse error, and the meter untouched
        assert!(r.is_err());
        assert_eq!(m.used, 0);
        let (_, m) = metered(1, || charge(5));
        assert!(m.exceeded);
    }
}
