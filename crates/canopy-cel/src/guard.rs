//! Limits checked before a rule is handed to the `cel` crate's parser, and on the
//! parsed expression before anything walks it: cel-go's parser limits, which
//! kube-apiserver keeps at their defaults, with cel-go's messages.
//!
//! * [`MAX_EXPRESSION_CODE_POINTS`]: `expression code point size exceeds limit: size: N, limit 100000`;
//! * [`MAX_PARSE_DEPTH`]: nesting of sub-expressions (parentheses, list and map
//!   literals, call arguments, indexes, the else branch of `?:`), the depth cel-go's
//!   ANTLR listener counts: `expression recursion limit exceeded: 250`;
//! * [`MAX_RECURSION_DEPTH`]: nesting of operators as cel-go's visitor counts it
//!   (binary operators, `.` selections and calls, `[]` indexes, `?:`; `&&` and `||`
//!   chains are balanced trees and do not count): `max recursion depth exceeded`.
//!
//! The source is scanned without recursion (a lexer and a stack of open brackets),
//! so a rule of any shape is refused before a parser, type checker, cost estimator or
//! interpreter could recurse on it. The scan's operator count is an upper bound of
//! cel-go's, exact for the chains attacks are made of (`a + a + ...`).
//!
//! After parsing, [`ast_depth`] measures the expression tree (again without
//! recursion); trees deeper than [`MAX_AST_DEPTH`] are refused with the same
//! `max recursion depth exceeded`. Every recursive walk of an expression (the `cel`
//! crate's interpreter, Canopy's type checker, cost estimator and instrumentation,
//! `Clone` and `Drop` of the tree) is therefore bounded; the tests in
//! `tests/deep_rules.rs` run the worst shapes on threads with a 2 MiB stack.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// cel-go's `expressionSizeCodePointLimit` default, which kube keeps.
pub const MAX_EXPRESSION_CODE_POINTS: usize = 100_000;
/// cel-go's `maxRecursionDepth` default (parser), which kube keeps.
pub const MAX_PARSE_DEPTH: u32 = 250;
/// cel-go's `maxRecursionDepth` default (visitor), which kube keeps.
pub const MAX_RECURSION_DEPTH: u32 = 250;
/// Stack guaranteed to compilation ([`crate::CompiledRules::compile_at`]): the
/// `cel` crate's ANTLR parser needs about 13 KiB of stack per level of nesting in
/// debug builds (4 MiB suffice at [`MAX_PARSE_DEPTH`]); compilation runs on a stack
/// segment of its own of this size (`stacker`), whatever the caller's thread has.
pub const COMPILE_STACK_BYTES: usize = 16 << 20;
/// Stack that must be left for an evaluation ([`crate::CompiledRules::validate_with`]),
/// else it runs on a new segment of [`EVAL_STACK_BYTES`]: evaluating the deepest
/// trees Canopy accepts takes under 512 KiB in debug builds.
pub const EVAL_RED_ZONE_BYTES: usize = 1 << 20;
/// See [`EVAL_RED_ZONE_BYTES`].
pub const EVAL_STACK_BYTES: usize = 4 << 20;
/// Deepest expression tree Canopy walks. cel-go has no such limit (its balanced
/// `&&`/`||` trees under 249 levels of nesting could be deeper); no rule written by
/// hand comes near it.
pub const MAX_AST_DEPTH: usize = 400;

/// cel-go's rendering of an error without a location.
fn no_location(msg: &str) -> String {
    format!("ERROR: <input>:-1:0: {msg}")
}

/// The message of a rule over [`MAX_RECURSION_DEPTH`] or [`MAX_AST_DEPTH`].
pub fn recursion_error() -> String {
    no_location("max recursion depth exceeded")
}

/// Checks the limits on the source text; `Err` is cel-go's rendered error.
pub fn check_source(src: &str) -> Result<(), String> {
    let size = src.chars().count();
    if size > MAX_EXPRESSION_CODE_POINTS {
        return Err(no_location(&format!(
            "expression code point size exceeds limit: size: {size}, limit {MAX_EXPRESSION_CODE_POINTS}"
        )));
    }
    let d = scan(src);
    if d.parse > MAX_PARSE_DEPTH {
        return Err(no_location(&format!(
            "expression recursion limit exceeded: {MAX_PARSE_DEPTH}"
        )));
    }
    if d.visit > MAX_RECURSION_DEPTH {
        return Err(recursion_error());
    }
    Ok(())
}

/// Depth of an expression tree (a leaf is 1), measured with an explicit stack.
pub fn ast_depth(e: &IdedExpr) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&IdedExpr, usize)> = vec![(e, 1)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        children(e, &mut |c| stack.push((c, d + 1)));
    }
    max
}

/// Calls `f` with each direct child of `e`.
fn children<'a>(e: &'a IdedExpr, f: &mut impl FnMut(&'a IdedExpr)) {
    match &e.expr {
        Expr::Call(c) => {
            if let Some(t) = c.target.as_deref() {
                f(t);
            }
            c.args.iter().for_each(&mut *f);
        }
        Expr::Comprehension(c) => {
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                f(x);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(&mut *f),
        Expr::Map(m) => m.entries.iter().for_each(|en| match &en.expr {
            EntryExpr::MapEntry(me) => {
                f(&me.key);
                f(&me.value);
            }
            EntryExpr::StructField(sf) => f(&sf.value),
        }),
        Expr::Struct(s) => s.entries.iter().for_each(|en| match &en.expr {
            EntryExpr::MapEntry(me) => {
                f(&me.key);
                f(&me.value);
            }
            EntryExpr::StructField(sf) => f(&sf.value),
        }),
        Expr::Select(s) => f(&s.operand),
        _ => {}
    }
}

/// Nesting found by [`scan`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Depths {
    /// Deepest nesting of the `expr` grammar rule (cel-go's parse listener).
    pub parse: u32,
    /// Upper bound of cel-go's visitor recursion depth.
    pub visit: u32,
}

/// One open bracket (or the whole expression).
#[derive(Default)]
struct Frame {
    /// `expr` nesting this bracket adds (1; 0 for the whole expression, whose
    /// `expr` is counted once at the start).
    parse_base: u32,
    /// `?:` nesting within the current element.
    tern: u32,
    /// Binary operators in the current operand of `&&`/`||` (a left-deep chain).
    binops: u32,
    /// Postfix operators (`.` selections and calls, `[]` indexes) in the current
    /// term of that chain.
    post: u32,
    /// Deepest closed bracket group in the current term.
    inner: u32,
    /// Deepest term of the current operand.
    term_max: u32,
    /// Deepest visitor depth of the finished operands.
    max: u32,
}

impl Frame {
    fn end_term(&mut self) {
        self.term_max = self.term_max.max(self.post.saturating_add(self.inner));
        self.post = 0;
        self.inner = 0;
    }

    fn binary(&mut self) {
        self.end_term();
        self.binops = self.binops.saturating_add(1);
    }

    fn end_operand(&mut self) {
        self.end_term();
        self.max = self.max.max(
            self.tern
                .saturating_add(self.binops)
                .saturating_add(self.term_max),
        );
        self.binops = 0;
        self.term_max = 0;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// Start, an operator, an opening bracket, `,`, `?`, `:`.
    Operator,
    /// An identifier (a following `(` is a call, not a group).
    Ident,
    /// A literal or a closing bracket.
    Operand,
    /// `.` (a member name follows).
    Dot,
}

/// Scans `src` (see the module documentation). Never recurses; linear in the
/// length of `src`. Unterminated strings and stray characters end the scan quietly:
/// the parser reports them.
pub fn scan(src: &str) -> Depths {
    let b = src.as_bytes();
    let mut i = 0;
    let mut stack: Vec<Frame> = vec![Frame::default()];
    let mut parse_max: u32 = 1;
    let mut prev = Prev::Operator;
    // running sum of parse_base + tern over the stack
    let mut parse_cur: u32 = 1;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0c => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        // string and bytes literals, with their prefixes
        if let Some(end) = string_end(b, i) {
            i = end;
            prev = Prev::Operand;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            i = number_end(b, i);
            prev = Prev::Operand;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &src[start..i];
            if word == "in" && prev != Prev::Dot {
                if let Some(f) = stack.last_mut() {
                    f.binary();
                }
                prev = Prev::Operator;
            } else {
                prev = Prev::Ident;
            }
            continue;
        }
        if c == b'`' {
            i += 1;
            while i < b.len() && b[i] != b'`' {
                i += 1;
            }
            i = (i + 1).min(b.len());
            prev = Prev::Ident;
            continue;
        }
        let two = b.get(i..i + 2).unwrap_or(&[]);
        let len = match two {
            b"==" | b"!=" | b"<=" | b">=" | b"&&" | b"||" => 2,
            _ => 1,
        };
        let Some(top) = stack.last_mut() else { break };
        match (two, c) {
            (b"&&" | b"||", _) => {
                top.end_operand();
                prev = Prev::Operator;
            }
            (b"==" | b"!=" | b"<=" | b">=", _) | (_, b'<' | b'>' | b'+' | b'*' | b'/' | b'%') => {
                top.binary();
                prev = Prev::Operator;
            }
            (_, b'-') => {
                if matches!(prev, Prev::Ident | Prev::Operand) {
                    top.binary();
                }
                prev = Prev::Operator;
            }
            (_, b'!') => prev = Prev::Operator,
            (_, b'.') => {
                if matches!(prev, Prev::Ident | Prev::Operand) {
                    top.post = top.post.saturating_add(1);
                }
                prev = Prev::Dot;
            }
            (_, b'?') => {
                // `.?` and `[?` (optional syntax) are not conditionals
                if prev == Prev::Dot || prev == Prev::Operator && i > 0 && b[i - 1] == b'[' {
                    i += 1;
                    continue;
                }
                top.end_operand();
                top.tern = top.tern.saturating_add(1);
                parse_cur = parse_cur.saturating_add(1);
                parse_max = parse_max.max(parse_cur);
                prev = Prev::Operator;
            }
            (_, b':') => {
                top.end_operand();
                prev = Prev::Operator;
            }
            (_, b',') => {
                top.end_operand();
                parse_cur = parse_cur.saturating_sub(top.tern);
                top.tern = 0;
                prev = Prev::Operator;
            }
            (_, b'(' | b'[' | b'{') => {
                if c == b'[' && matches!(prev, Prev::Ident | Prev::Operand) {
                    top.post = top.post.saturating_add(1); // an index
                }
                stack.push(Frame {
                    parse_base: 1,
                    ..Frame::default()
                });
                parse_cur = parse_cur.saturating_add(1);
                parse_max = parse_max.max(parse_cur);
                prev = Prev::Operator;
            }
            (_, b')' | b']' | b'}') => {
                if stack.len() > 1 {
                    if let Some(mut f) = stack.pop() {
                        f.end_operand();
                        parse_cur = parse_cur.saturating_sub(f.parse_base.saturating_add(f.tern));
                        if let Some(parent) = stack.last_mut() {
                            parent.inner = parent.inner.max(f.max);
                        }
                    }
                }
                prev = Prev::Operand;
            }
            _ => {
                // a character the lexer refuses: the parser reports it
                prev = Prev::Operator;
            }
        }
        i += len;
        if parse_max > MAX_PARSE_DEPTH {
            // cel-go's parser stops here; nothing after matters
            break;
        }
    }
    // unclosed brackets: fold them into their parents
    while let Some(mut f) = stack.pop() {
        f.end_operand();
        match stack.last_mut() {
            Some(parent) => parent.inner = parent.inner.max(f.max),
            None => {
                return Depths {
                    parse: parse_max,
                    visit: f.max,
                }
            }
        }
    }
    Depths {
        parse: parse_max,
        visit: 0,
    }
}

/// The end of the string or bytes literal starting at `i`, if one starts there.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut raw = false;
    // up to two prefix letters: r, b, in either order and case
    for _ in 0..2 {
        match b.get(j) {
            Some(b'r' | b'R') if !raw => {
                raw = true;
                j += 1;
            }
            Some(b'b' | b'B') if j == i || raw => j += 1,
            _ => break,
        }
    }
    let q = *b.get(j)?;
    if q != b'"' && q != b'\'' {
        return None;
    }
    // a prefix must be directly followed by the quote (else it is an identifier)
    let triple = b.get(j..j + 3) == Some(&[q, q, q][..]);
    let mut k = j + if triple { 3 } else { 1 };
    while k < b.len() {
        let c = b[k];
        if c == b'\\' && !raw {
            k += 2;
            continue;
        }
        if triple {
            if b.get(k..k + 3) == Some(&[q, q, q][..]) {
                return Some(k + 3);
            }
        } else if c == q {
            return Some(k + 1);
        } else if c == b'\n' || c == b'\r' {
            return Some(k);
        }
        k += 1;
    }
    Some(b.len())
}

/// The end of the number literal starting at `i`.
fn number_end(b: &[u8], mut i: usize) -> usize {
    if b.get(i..i + 2) == Some(b"0x") || b.get(i..i + 2) == Some(b"0X") {
        i += 2;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
    } else {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if b.get(j).is_some_and(u8::is_ascii_digit) {
                i = j;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
    }
    if matches!(b.get(i), Some(b'u' | b'U')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> (u32, u32) {
        let d = scan(s);
        (d.parse, d.visit)
    }

    #[test]
    fn counts_like_cel_go() {
        assert_eq!(d("a"), (1, 0));
        assert_eq!(d("a + b + c"), (1, 2));
        assert_eq!(d("a.b.c"), (1, 2));
        assert_eq!(d("a[1][2]"), (2, 2));
        assert_eq!(d("a || b || c"), (1, 0));
        assert_eq!(d("a + b || c + d"), (1, 1));
        assert_eq!(d("(a + b) + c"), (2, 2));
        assert_eq!(d("a ? b : c ? d : e"), (3, 2));
        assert_eq!(d("[[[1]]]"), (4, 0));
        assert_eq!(d("f(a + b, c)"), (2, 1));
        assert_eq!(d("-1 - -2"), (1, 1));
        assert_eq!(d("self.s + 'a+b(c' + \"[[\""), (1, 3));
        assert_eq!(d("r'\\' + b\"x\" + '''a\n'''"), (1, 2));
        assert_eq!(d("1.5e3 + .5 + 0x1Fu"), (1, 2));
        assert_eq!(d("// a + b\n a"), (1, 0));
        assert_eq!(d("a.?b"), (1, 1));
        assert_eq!(d("x in [1, 2]"), (2, 1));
    }

    #[test]
    fn cel_go_boundaries() {
        let plus = |n: usize| vec!["a"; n].join(" + ");
        assert!(check_source(&plus(251)).is_ok()); // 250 operators
        assert_eq!(check_source(&plus(252)), Err(recursion_error()));
        let parens = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        assert!(check_source(&parens(249)).is_ok());
        assert_eq!(
            check_source(&parens(250)).unwrap_err(),
            "ERROR: <input>:-1:0: expression recursion limit exceeded: 250"
        );
        let big = "a".repeat(100_001);
        assert_eq!(
            check_source(&big).unwrap_err(),
            "ERROR: <input>:-1:0: expression code point size exceeds limit: size: 100001, limit 100000"
        );
    }
}
