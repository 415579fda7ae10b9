//! Label selectors: a port of `k8s.io/apimachinery/pkg/labels` (the string
//! syntax accepted by `?labelSelector=`) and of
//! `metav1.LabelSelectorAsSelector` (the structured `matchLabels` /
//! `matchExpressions` form used inside API objects).
//!
//! The lexer and parser follow kube's `selector.go` token for token, so the
//! same strings are accepted and rejected, with the same error texts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::str::FromStr;

use serde_json::Value;

use crate::error::{go_json_strings, go_quote, BadValue, ErrorList, FieldError, SelectorError};
use crate::validation::{is_qualified_name, is_valid_label_value};

/// A label selector operator (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value`; also matches objects without the label.
    NotEquals,
    /// `key in (v1,v2)`
    In,
    /// `key notin (v1,v2)`; also matches objects without the label.
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>N` (integer comparison; objects without the label never match)
    GreaterThan,
    /// `key<N` (integer comparison; objects without the label never match)
    LessThan,
}

impl Operator {
    /// The `selection.Operator` string value (`"="`, `"in"`, `"gt"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of looking a key up in a [`LabelSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelLookup<'a> {
    /// The object has no such label.
    Absent,
    /// The label is present with this value.
    Value(&'a str),
    /// The label is present but its value is not a string (possible only
    /// for JSON input). Every requirement on such a key fails to match.
    NotAString,
}

/// Something that holds labels: a map, a JSON `metadata.labels` object, ...
pub trait LabelSource {
    /// Look up one label.
    fn lookup(&self, key: &str) -> LabelLookup<'_>;
}

impl<L: LabelSource + ?Sized> LabelSource for &L {
    fn lookup(&self, key: &str) -> LabelLookup<'_> {
        (**self).lookup(key)
    }
}

/// `None` is an object without labels.
impl<L: LabelSource> LabelSource for Option<L> {
    fn lookup(&self, key: &str) -> LabelLookup<'_> {
        match self {
            Some(l) => l.lookup(key),
            None => LabelLookup::Absent,
        }
    }
}

impl<K, V> LabelSource for BTreeMap<K, V>
where
    K: std::borrow::Borrow<str> + Ord,
    V: AsRef<str>,
{
    fn lookup(&self, key: &str) -> LabelLookup<'_> {
        match self.get(key) {
            Some(v) => LabelLookup::Value(v.as_ref()),
            None => LabelLookup::Absent,
        }
    }
}

impl<K, V, S> LabelSource for HashMap<K, V, S>
where
    K: std::borrow::Borrow<str> + Hash + Eq,
    V: AsRef<str>,
    S: BuildHasher,
{
    fn lookup(&self, key: &str) -> LabelLookup<'_> {
        match self.get(key) {
            Some(v) => LabelLookup::Value(v.as_ref()),
            None => LabelLookup::Absent,
        }
    }
}

/// A JSON `metadata.labels` object. Non-string values never match.
impl LabelSource for serde_json::Map<String, Value> {
    fn lookup(&self, key: &str) -> LabelLookup<'_> {
        match self.get(key) {
            Some(Value::String(s)) => LabelLookup::Value(s),
            Some(_) => LabelLookup::NotAString,
            None => LabelLookup::Absent,
        }
    }
}

/// A JSON value holding `metadata.labels`: `null` has no labels, an object
/// is looked up like [`serde_json::Map`], and any other value is treated as
/// malformed: every key is [`LabelLookup::NotAString`], so nothing matches.
impl LabelSource for Value {
    fn lookup(&self, key: &str) -> LabelLookup<'_> {
        match self {
            Value::Null => LabelLookup::Absent,
            Value::Object(m) => m.lookup(key),
            _ => LabelLookup::NotAString,
        }
    }
}

/// One term of a label selector: a key, an operator and a sorted set of
/// values (`labels.Requirement`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

impl Requirement {
    /// Build a validated requirement, like kube's `labels.NewRequirement`:
    /// the key must be a qualified name, every value a valid label value,
    /// and the number of values must suit the operator (`in`/`notin`: at
    /// least one; `=`/`==`/`!=`/`gt`/`lt`: exactly one, an integer for
    /// `gt`/`lt`; `exists`/`!`: none).
    pub fn new<I, S>(
        key: impl Into<String>,
        operator: Operator,
        values: I,
    ) -> Result<Requirement, SelectorError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        Self::build(key.into(), operator, values, false)
    }

    /// `nil_values` renders an empty value list as `null` instead of `[]`
    /// in error messages (Go distinguishes nil and empty slices).
    fn build(
        key: String,
        operator: Operator,
        values: Vec<String>,
        nil_values: bool,
    ) -> Result<Requirement, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(&key);
        if !key_errs.is_empty() {
            errs.push(FieldError::invalid(
                "key",
                BadValue::string(&key),
                key_errs.join("; "),
            ));
        }
        let values_err = |detail: &str| {
            FieldError::invalid(
                "values",
                BadValue::rendered(go_json_strings(if nil_values && values.is_empty() {
                    None
                } else {
                    Some(&values)
                })),
                detail,
            )
        };
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(values_err(
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(values_err(
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(values_err(
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(values_err(
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            format!("values[{i}]"),
                            BadValue::string(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let v_errs = is_valid_label_value(v);
            if !v_errs.is_empty() {
                errs.push(FieldError::invalid(
                    format!("values[{i}][{key}]"),
                    BadValue::string(v),
                    v_errs.join("; "),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(SelectorError::Invalid(ErrorList(errs)));
        }
        Ok(Requirement {
            key,
            operator,
            values: values.into_iter().collect(),
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and de-duplicated.
    pub fn values(&self) -> &BTreeSet<String> {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement
    /// (`Requirement.Matches`).
    pub fn matches(&self, labels: &(impl LabelSource + ?Sized)) -> bool {
        let found = match labels.lookup(&self.key) {
            LabelLookup::NotAString => return false,
            LabelLookup::Absent => None,
            LabelLookup::Value(v) => Some(v),
        };
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                found.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => found.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => found.is_some(),
            Operator::DoesNotExist => found.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = found.map(str::parse::<i64>) else {
                    return false;
                };
                let mut it = self.values.iter();
                let (Some(want), None) = (it.next(), it.next()) else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// kube's `Requirement.String()`: `!k`, `k`, `k=v`, `k==v`, `k!=v`,
    /// `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(v)?;
        }
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: a conjunction of [`Requirement`]s, sorted by key.
///
/// Besides ordinary selectors there is the special "nothing" selector
/// (kube's `labels.Nothing()`), produced for a `null` structured selector,
/// which matches no object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// The selector that matches every object (the empty string).
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// The selector that matches no object (kube's `labels.Nothing()`).
    /// It displays as the empty string, like kube's.
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Build a selector from requirements (sorted by key, stably).
    pub fn from_requirements(requirements: impl IntoIterator<Item = Requirement>) -> Selector {
        Selector::everything().with_requirements(requirements)
    }

    /// `key=value` for every pair, validated (kube's
    /// `ValidatedSelectorFromSet`).
    pub fn from_labels<I, K, V>(labels: I) -> Result<Selector, SelectorError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut reqs = Vec::new();
        for (k, v) in labels {
            reqs.push(Requirement::new(k, Operator::Equals, [v.into()])?);
        }
        Ok(Selector::from_requirements(reqs))
    }

    /// Add requirements, keeping them sorted by key. Adding to the
    /// "nothing" selector leaves it matching nothing, like kube.
    pub fn with_requirements(
        mut self,
        requirements: impl IntoIterator<Item = Requirement>,
    ) -> Selector {
        if self.nothing {
            return self;
        }
        self.requirements.extend(requirements);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    /// True for the selector that matches everything (no requirements).
    /// The "nothing" selector is not empty, as in kube.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the selector built by [`Selector::nothing`].
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: impl LabelSource) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(&labels))
    }

    /// If the first requirement on `key` pins a single value with `=`,
    /// `==` or `in`, that value (kube's `RequiresExactMatch`).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match r.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In if r.values.len() == 1 => {
                r.values.iter().next().map(String::as_str)
            }
            _ => None,
        }
    }

    /// Convert a structured `metav1.LabelSelector` in JSON form,
    /// `{"matchLabels":{..},"matchExpressions":[{"key","operator","values"}]}`,
    /// like kube's `LabelSelectorAsSelector`: `null` selects nothing, an
    /// object with neither part selects everything, and operators are
    /// `In`, `NotIn`, `Exists` and `DoesNotExist`.
    pub fn from_label_selector_json(v: &Value) -> Result<Selector, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(Selector::nothing()),
            Value::Object(o) => o,
            _ => return Err(malformed("a label selector must be a JSON object or null")),
        };
        let match_labels = match obj.get("matchLabels") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(malformed("matchLabels must be an object")),
        };
        let match_expressions = match obj.get("matchExpressions") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a),
            Some(_) => return Err(malformed("matchExpressions must be an array")),
        };
        let n = match_labels.map_or(0, |m| m.len()) + match_expressions.map_or(0, |a| a.len());
        if n == 0 {
            return Ok(Selector::everything());
        }
        let mut reqs = Vec::with_capacity(n);
        for (k, v) in match_labels.into_iter().flatten() {
            let Value::String(v) = v else {
                return Err(malformed(&format!(
                    "matchLabels[{}] must be a string",
                    go_quote(k)
                )));
            };
            reqs.push(Requirement::build(
                k.clone(),
                Operator::Equals,
                vec![v.clone()],
                false,
            )?);
        }
        for (i, expr) in match_expressions.into_iter().flatten().enumerate() {
            let Value::Object(expr) = expr else {
                return Err(malformed(&format!(
                    "matchExpressions[{i}] must be an object"
                )));
            };
            let key = opt_string(expr, "key", i)?;
            let op = opt_string(expr, "operator", i)?;
            let values = match expr.get("values") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => {
                    let mut out = Vec::with_capacity(a.len());
                    for v in a {
                        let Value::String(s) = v else {
                            return Err(malformed(&format!(
                                "matchExpressions[{i}].values must be strings"
                            )));
                        };
                        out.push(s.clone());
                    }
                    out
                }
                Some(_) => {
                    return Err(malformed(&format!(
                        "matchExpressions[{i}].values must be an array"
                    )))
                }
            };
            let operator = match op.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => return Err(SelectorError::InvalidLabelSelectorOperator(op)),
            };
            reqs.push(Requirement::build(key, operator, values, true)?);
        }
        Ok(Selector::from_requirements(reqs))
    }
}

fn malformed(msg: &str) -> SelectorError {
    SelectorError::MalformedLabelSelector(msg.to_owned())
}

/// A string field of a match expression; absent or `null` is `""`, as Go's
/// decoder leaves it.
fn opt_string(
    expr: &serde_json::Map<String, Value>,
    field: &str,
    i: usize,
) -> Result<String, SelectorError> {
    match expr.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(malformed(&format!(
            "matchExpressions[{i}].{field} must be a string"
        ))),
    }
}

impl fmt::Display for Selector {
    /// The canonical string form: requirements in key order joined by `,`
    /// (kube's `Selector.String()`); `parse` of it yields an equal selector
    /// (except for [`Selector::nothing`], which displays as `""` like kube).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        parse(s)
    }
}

/// Parse a label selector string such as
/// `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>5`, exactly as kube's
/// `labels.Parse` does. The empty string selects everything.
pub fn parse(s: &str) -> Result<Selector, SelectorError> {
    let mut p = Parser {
        items: scan(s.as_bytes()),
        position: 0,
    };
    let reqs = p.parse()?;
    Ok(Selector::from_requirements(reqs))
}

// ---------------------------------------------------------------------------
// Lexer (port of labels.Lexer; byte oriented, a NUL byte reads as end of
// input exactly like Go's `read()` returning 0)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn string_to_token(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut end;
        loop {
            end = self.pos;
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
        }
        // Identifiers end only at ASCII bytes (or input end), so the slice
        // is valid UTF-8; fall back to lossy conversion rather than panic.
        let lit = self.s.get(start..end).unwrap_or_default();
        match string_to_token(lit) {
            Some(t) => (t, String::from_utf8_lossy(lit).into_owned()),
            None => (Token::Identifier, String::from_utf8_lossy(lit).into_owned()),
        }
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut last: Option<(Token, usize)> = None;
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) {
                buffer.push(ch);
                if let Some(t) = string_to_token(&buffer) {
                    last = Some((t, buffer.len()));
                } else if last.is_some() {
                    self.unread();
                    break;
                }
            } else {
                self.unread();
                break;
            }
        }
        match last {
            Some((t, n)) => (
                t,
                String::from_utf8_lossy(buffer.get(..n).unwrap_or_default()).into_owned(),
            ),
            None => (
                Token::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&buffer)
                ),
            ),
        }
    }

    fn lex(&mut self) -> (Token, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            (Token::EndOfString, String::new())
        } else if is_special_symbol(ch) {
            self.unread();
            self.scan_special_symbol()
        } else {
            self.unread();
            self.scan_id_or_keyword()
        }
    }
}

fn scan(s: &[u8]) -> Vec<(Token, String)> {
    let mut lexer = Lexer { s, pos: 0 };
    let mut items = Vec::new();
    loop {
        let (tok, lit) = lexer.lex();
        items.push((tok, lit));
        if tok == Token::EndOfString {
            return items;
        }
    }
}

// ---------------------------------------------------------------------------
// Parser (port of labels.Parser)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn item(&self, i: usize, ctx: Context) -> (Token, String) {
        let (tok, lit) = match self.items.get(i) {
            Some((t, l)) => (*t, l.clone()),
            None => (Token::EndOfString, String::new()),
        };
        let tok = match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => tok,
        };
        (tok, lit)
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        self.item(self.position, ctx)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let it = self.item(self.position, ctx);
        self.position += 1;
        it
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| SelectorError::Requirement(Box::new(e)))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(reqs),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(unexpected(l2, "identifier after ','"));
                            }
                        }
                        _ => return Err(unexpected(l, "',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(reqs),
                _ => return Err(unexpected(lit, "!, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::build(key, op, Vec::new(), false);
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::build(key, operator, values.into_iter().collect(), false)
    }

    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), SelectorError> {
        let mut operator = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(unexpected(lit, "identifier"));
        }
        let errs = is_qualified_name(&lit);
        if !errs.is_empty() {
            return Err(SelectorError::Invalid(ErrorList(vec![
                FieldError::invalid("<nil>", BadValue::string(&lit), errs.join("; ")),
            ])));
        }
        let (t, _) = self.lookahead(Context::Values);
        if matches!(t, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(unexpected(lit, BINARY_OPERATORS)),
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(SelectorError::ExpectedOpenParen { found: lit });
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let s = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(unexpected(lit, "')'"));
                }
                Ok(s)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(unexpected(lit, "',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut s = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    s.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(s),
                        _ => return Err(unexpected(lit2, "',' or ')'")),
                    }
                }
                Token::Comma => {
                    if s.is_empty() {
                        s.insert(String::new()); // "(,"
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        s.insert(String::new()); // ",)"
                        return Ok(s);
                    }
                    if tok2 == Token::Comma {
                        s.insert(String::new()); // ",,"
                    }
                }
                _ => return Err(unexpected(lit, "',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(BTreeSet::from([lit]))
        } else {
            Err(unexpected(lit, "identifier"))
        }
    }
}

fn unexpected(found: String, expected: &'static str) -> SelectorError {
    SelectorError::Unexpected { found, expected }
}
