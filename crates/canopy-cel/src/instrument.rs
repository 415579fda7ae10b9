//! Instruments a rule's AST with runtime cost metering.
//!
//! Every comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) gets
//! its loop step guarded by `@canopy_tick(n) ? <step> : <unchanged>`, where
//! `n` is one plus the number of nodes of the step. The tick charges the
//! thread's cost meter and fails once the per-call limit is exceeded; as the
//! condition of `?:` it is evaluated *before* the step, so a failed tick stops
//! the work of the iteration (nested loops included) at once. The shapes the
//! `cel` crate optimizes (`accu && p`, `accu || p`, `c ? accu + [e] : accu`,
//! `accu + [e]`) are kept, with only their inner expression guarded.

use crate::library::TICK_FN;
use cel::common::ast::{operators, CallExpr, EntryExpr, Expr, IdedExpr, ListExpr, LiteralValue};

/// Fresh ids for generated nodes, far from the parser's.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 -= 1;
        self.0
    }
}

/// Number of nodes in an expression.
pub fn node_count(e: &IdedExpr) -> u64 {
    1 + match &e.expr {
        Expr::Call(c) => {
            c.target.as_deref().map(node_count).unwrap_or(0)
                + c.args.iter().map(node_count).sum::<u64>()
        }
        Expr::Comprehension(c) => {
            node_count(&c.iter_range)
                + node_count(&c.accu_init)
                + node_count(&c.loop_cond)
                + node_count(&c.loop_step)
                + node_count(&c.result)
        }
        Expr::List(l) => l.elements.iter().map(node_count).sum(),
        Expr::Map(m) => m
            .entries
            .iter()
            .map(|e| match &e.expr {
                EntryExpr::MapEntry(me) => node_count(&me.key) + node_count(&me.value),
                EntryExpr::StructField(f) => node_count(&f.value),
            })
            .sum(),
        Expr::Select(s) => node_count(&s.operand),
        Expr::Struct(s) => s
            .entries
            .iter()
            .map(|e| match &e.expr {
                EntryExpr::MapEntry(me) => node_count(&me.key) + node_count(&me.value),
                EntryExpr::StructField(f) => node_count(&f.value),
            })
            .sum(),
        _ => 0,
    }
}

/// Returns an instrumented copy of `e`.
pub fn instrument(e: &IdedExpr) -> IdedExpr {
    let mut ids = Ids(u64::MAX);
    let mut e = e.clone();
    walk(&mut e, &mut ids);
    e
}

fn lit(ids: &mut Ids, v: LiteralValue) -> IdedExpr {
    IdedExpr {
        id: ids.next(),
        expr: Expr::Literal(v),
    }
}

/// `@canopy_tick(cost) ? then : otherwise`.
fn guard(ids: &mut Ids, cost: u64, then: IdedExpr, otherwise: IdedExpr) -> IdedExpr {
    let tick = IdedExpr {
        id: ids.next(),
        expr: Expr::Call(CallExpr {
            func_name: TICK_FN.to_string(),
            target: None,
            args: vec![lit(
                ids,
                LiteralValue::Int((cost.min(i64::MAX as u64) as i64).into()),
            )],
        }),
    };
    IdedExpr {
        id: ids.next(),
        expr: Expr::Call(CallExpr {
            func_name: operators::CONDITIONAL.to_string(),
            target: None,
            args: vec![tick, then, otherwise],
        }),
    }
}

fn is_ident(e: &IdedExpr, name: &str) -> bool {
    matches!(&e.expr, Expr::Ident(n) if n == name)
}

fn walk(e: &mut IdedExpr, ids: &mut Ids) {
    match &mut e.expr {
        Expr::Call(c) => {
            if let Some(t) = c.target.as_deref_mut() {
                walk(t, ids);
            }
            for a in &mut c.args {
                walk(a, ids);
            }
        }
        Expr::Select(s) => walk(&mut s.operand, ids),
        Expr::List(l) => l.elements.iter_mut().for_each(|x| walk(x, ids)),
        Expr::Map(m) => {
            for en in &mut m.entries {
                match &mut en.expr {
                    EntryExpr::MapEntry(me) => {
                        walk(&mut me.key, ids);
                        walk(&mut me.value, ids);
                    }
                    EntryExpr::StructField(f) => walk(&mut f.value, ids),
                }
            }
        }
        Expr::Struct(s) => {
            for en in &mut s.entries {
                if let EntryExpr::StructField(f) = &mut en.expr {
                    walk(&mut f.value, ids);
                }
            }
        }
        Expr::Comprehension(c) => {
            walk(&mut c.iter_range, ids);
            walk(&mut c.accu_init, ids);
            walk(&mut c.loop_cond, ids);
            walk(&mut c.loop_step, ids);
            walk(&mut c.result, ids);
            let cost = 1 + node_count(&c.loop_step);
            let accu = c.accu_var.clone();
            let step = std::mem::take(&mut c.loop_step);
            c.loop_step = guard_step(step, &accu, cost, ids);
        }
        _ => {}
    }
}

fn guard_step(mut step: IdedExpr, accu: &str, cost: u64, ids: &mut Ids) -> IdedExpr {
    if let Expr::Call(call) = &mut step.expr {
        let name = call.func_name.as_str();
        if call.target.is_none() && call.args.len() == 2 && is_ident(&call.args[0], accu) {
            if name == operators::LOGICAL_AND || name == operators::LOGICAL_OR {
                let pred = std::mem::take(&mut call.args[1]);
                let f = lit(ids, LiteralValue::Boolean(false.into()));
                call.args[1] = guard(ids, cost, pred, f);
                return step;
            }
            if name == operators::ADD {
                if let Expr::List(ListExpr { elements, .. }) = &mut call.args[1].expr {
                    for el in elements.iter_mut() {
                        let x = std::mem::take(el);
                        let n = lit(ids, LiteralValue::Null);
                        *el = guard(ids, cost, x, n);
                    }
                    return step;
                }
            }
        }
        if name == operators::CONDITIONAL && call.target.is_none() && call.args.len() == 3 {
            let c = std::mem::take(&mut call.args[0]);
            let f = lit(ids, LiteralValue::Boolean(false.into()));
            call.args[0] = guard(ids, cost, c, f);
            return step;
        }
    }
    let accu_ident = IdedExpr {
        id: ids.next(),
        expr: Expr::Ident(accu.to_string()),
    };
    guard(ids, cost, step, accu_ident)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::{Context, Value};

    fn run(src: &str, limit: u64) -> (Result<Value, String>, crate::library::Meter) {
        let env = crate::library::env();
        let p = env.compile(src).unwrap();
        let e = instrument(p.expression());
        let ctx = Context::with_env(env);
        crate::library::metered(limit, || ctx.resolve(&e).map_err(|e| e.to_string()))
    }

    #[test]
    fn instrumented_macros_keep_their_meaning() {
        for (src, want) in [
            ("[1, 2, 3].all(x, x > 0)", Value::Bool(true)),
            ("[1, 2, 3].exists(x, x > 2)", Value::Bool(true)),
            ("[1, 2, 3].exists_one(x, x > 1)", Value::Bool(false)),
            ("[1, 2, 3].map(x, x * 2) == [2, 4, 6]", Value::Bool(true)),
            ("[1, 2, 3].filter(x, x > 1) == [2, 3]", Value::Bool(true)),
            (
                "[1, 2, 3].map(x, x > 1, x * 10) == [20, 30]",
                Value::Bool(true),
            ),
            ("{'a': 1}.all(k, k == 'a')", Value::Bool(true)),
        ] {
            let (r, m) = run(src, 1000);
            assert_eq!(r, Ok(want), "{src}");
            assert!(m.used > 0 && !m.exceeded, "{src}");
        }
    }

    #[test]
    fn ticks_stop_nested_loops() {
        let src = "[1,2,3,4,5,6,7,8,9,10].all(x, [1,2,3,4,5,6,7,8,9,10].all(y, [1,2,3,4,5,6,7,8,9,10].all(z, true)))";
        let (r, m) = run(src, 50);
        assert!(m.exceeded);
        assert!(r.is_err(), "{r:?}");
        // far fewer than the 1000 innermost iterations were charged
        assert!(m.used < 1000, "{}", m.used);
    }
}
