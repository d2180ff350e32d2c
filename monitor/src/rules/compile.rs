//! Compiles parsed conditions (macros and named lists expanded) into the filter tree
//! of `tree`, with every matcher prepared once, and gives the tree's checks and macros
//! their slots in the per-event caches.
use std::{collections::HashMap, net::IpAddr};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, StartKind};
use globset::GlobBuilder;
use regex::Regex;

use super::{
    fields::{self, ArgKind, FieldId, FieldType},
    parser::{Check, Expr, FieldExpr, Op, Rhs, Transformer, Value},
    source::{EventType, FieldArg, ResolvedField, TypeMask},
    tree::{ByteSet, CheckNode, Glob, Matcher, Memo, NO_SLOT, Node},
};

/// An error at a byte offset of the condition being compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub pos: usize,
    pub message: String,
    /// Set when the error lies inside a macro's condition (the macro's name).
    pub in_macro: Option<String>,
}

/// A macro as the compiler sees it.
pub struct MacroDef {
    pub expr: Option<Expr>,
}

/// What compiling needs: macros by name and named lists (already flattened).
pub struct Scope<'a> {
    pub macros: &'a HashMap<String, MacroDef>,
    pub lists: &'a HashMap<String, Vec<String>>,
}

pub struct Compiler<'a> {
    scope: &'a Scope<'a>,
    stack: Vec<String>,
    pub errors: Vec<CompileError>,
}

impl<'a> Compiler<'a> {
    pub fn new(scope: &'a Scope<'a>) -> Self {
        Compiler {
            scope,
            stack: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, pos: usize, message: String) {
        self.errors.push(CompileError {
            pos,
            message,
            in_macro: self.stack.last().cloned(),
        });
    }

    pub fn compile(&mut self, expr: &Expr) -> Node {
        let node = self.expr(expr);
        optimize(node)
    }

    fn expr(&mut self, expr: &Expr) -> Node {
        match expr {
            Expr::And(items) => Node::And(items.iter().map(|e| self.expr(e)).collect()),
            Expr::Or(items) => Node::Or(items.iter().map(|e| self.expr(e)).collect()),
            Expr::Not(inner) => Node::Not(Box::new(self.expr(inner))),
            Expr::Macro { name, pos } => {
                let Some(def) = self.scope.macros.get(name) else {
                    self.error(*pos, format!("undefined macro '{name}'"));
                    return Node::Const(false);
                };
                if self.stack.iter().any(|m| m == name) {
                    let mut chain = self.stack.clone();
                    chain.push(name.clone());
                    let start = chain.iter().position(|m| m == name).unwrap_or(0);
                    self.error(
                        *pos,
                        format!("macro cycle: {}", chain[start..].join(" -> ")),
                    );
                    return Node::Const(false);
                }
                let Some(body) = &def.expr else {
                    // Its own parse error is reported with the macro.
                    return Node::Const(false);
                };
                self.stack.push(name.clone());
                let node = self.expr(body);
                self.stack.pop();
                Node::Memo(Box::new(Memo {
                    name: name.as_str().into(),
                    slot: NO_SLOT,
                    node,
                }))
            }
            Expr::Check(check) => match self.check(check) {
                Ok(node) => node,
                Err((pos, msg)) => {
                    self.error(pos, msg);
                    Node::Const(false)
                }
            },
        }
    }

    /// Expands named lists among a list's bare items.
    fn values<'v>(&self, values: &'v [Value]) -> Vec<(&'v str, usize, bool)>
    where
        'a: 'v,
    {
        let mut out = Vec::new();
        for v in values {
            if !v.quoted
                && let Some(items) = self.scope.lists.get(&v.text)
            {
                out.extend(items.iter().map(|i| (i.as_str(), v.pos, true)));
                continue;
            }
            out.push((v.text.as_str(), v.pos, v.quoted));
        }
        out
    }

    fn check(&mut self, check: &Check) -> Result<Node, (usize, String)> {
        let (field, transformers, ty, any_ancestor) = compile_field(&check.field, true)?;
        let op = check.op;
        let op_err = |ty: FieldType| {
            (
                check.op_pos,
                format!(
                    "operator '{op}' cannot be used with {} field '{}'",
                    ty, check.field
                ),
            )
        };
        let values: Vec<(&str, usize, bool)> = match &check.rhs {
            Rhs::None => Vec::new(),
            Rhs::Value(v) => vec![(v.text.as_str(), v.pos, v.quoted)],
            Rhs::List(items) => {
                if !op.takes_list() {
                    return Err((
                        check.op_pos,
                        format!("operator '{op}' takes a single value, not a list"),
                    ));
                }
                self.values(items)
            }
        };
        let single = || {
            values
                .first()
                .map(|v| (v.0, v.1))
                .unwrap_or(("", check.op_pos))
        };
        let mut negate = false;
        let matcher = if op == Op::Exists {
            Matcher::Exists
        } else if ty.is_string() {
            let (v, vpos) = single();
            match op {
                Op::Eq => Matcher::StrEq(v.into()),
                Op::Ne => {
                    negate = true;
                    Matcher::StrEq(v.into())
                }
                Op::In | Op::Intersects => {
                    Matcher::StrIn(values.iter().map(|v| Box::from(v.0)).collect())
                }
                Op::Contains | Op::IContains => {
                    let ci = op == Op::IContains;
                    contains_matcher(vec![v.into()], ci).map_err(|e| (vpos, e))?
                }
                Op::StartsWith => starts_matcher(vec![v.into()]).map_err(|e| (vpos, e))?,
                Op::EndsWith => Matcher::EndsWith(v.into()),
                Op::BContains | Op::BStartsWith => {
                    let bytes = decode_hex(v).ok_or_else(|| {
                        (
                            vpos,
                            format!("'{v}' is not a hex byte string (e.g. 2f6574)"),
                        )
                    })?;
                    if op == Op::BStartsWith {
                        Matcher::BStartsWith(bytes.into())
                    } else {
                        Matcher::BContains(
                            AhoCorasick::new([bytes]).map_err(|e| (vpos, e.to_string()))?,
                        )
                    }
                }
                Op::Glob | Op::IGlob => {
                    let glob = GlobBuilder::new(v)
                        .case_insensitive(op == Op::IGlob)
                        .literal_separator(false)
                        .build()
                        .map_err(|e| (vpos, format!("invalid glob '{v}': {}", e.kind())))?;
                    Matcher::Glob(Glob::new(v, op == Op::Glob, glob.compile_matcher()))
                }
                Op::Regex => {
                    let re = Regex::new(&format!("^(?:{v})$")).map_err(|e| {
                        (
                            vpos,
                            format!("invalid regex '{v}': {}", first_line(&e.to_string())),
                        )
                    })?;
                    Matcher::Regex(re)
                }
                Op::PMatch => Matcher::PMatch(
                    values
                        .iter()
                        .map(|v| {
                            let t = v.0.trim_end_matches('/');
                            Box::from(if t.is_empty() { "/" } else { t })
                        })
                        .collect(),
                ),
                Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Exists => return Err(op_err(ty)),
            }
        } else if ty.is_number() {
            let parse = |(v, p, _): &(&str, usize, bool)| {
                parse_int(v).ok_or_else(|| {
                    (
                        *p,
                        format!("'{v}' is not a number (field '{}' is {ty})", check.field),
                    )
                })
            };
            match op {
                Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                    let first = values
                        .first()
                        .ok_or((check.op_pos, "missing value".to_string()))?;
                    let n = parse(first)?;
                    if op == Op::Ne {
                        negate = true;
                        Matcher::NumCmp(Op::Eq, n)
                    } else {
                        Matcher::NumCmp(op, n)
                    }
                }
                Op::In | Op::Intersects => Matcher::NumIn(
                    values
                        .iter()
                        .map(parse)
                        .collect::<Result<Vec<_>, _>>()?
                        .into(),
                ),
                _ => return Err(op_err(ty)),
            }
        } else if ty == FieldType::Bool {
            let (v, vpos) = single();
            let b = match v.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err((vpos, format!("'{v}' is not a boolean (true or false)")));
                }
            };
            match op {
                Op::Eq => Matcher::BoolEq(b),
                Op::Ne => Matcher::BoolEq(!b),
                _ => return Err(op_err(ty)),
            }
        } else {
            // IP address or network fields.
            let parse = |(v, p, _): &(&str, usize, bool)| {
                parse_net(v).ok_or_else(|| (*p, format!("'{v}' is not an IP address or network")))
            };
            match op {
                Op::Eq | Op::Ne | Op::In | Op::Intersects => {
                    if op == Op::Ne {
                        negate = true;
                    }
                    let nets: Vec<_> = values.iter().map(parse).collect::<Result<_, _>>()?;
                    Matcher::Ip(nets.into())
                }
                _ => return Err(op_err(ty)),
            }
        };
        let mut node = CheckNode {
            field,
            transformers: transformers.into(),
            any_ancestor,
            negate,
            matcher,
            type_mask: None,
            slot: NO_SLOT,
        };
        node.type_mask = evt_type_mask(&node);
        Ok(Node::Check(Box::new(node)))
    }
}

/// The event types an `evt.type` check (without transformers) matches, before negation.
fn evt_type_mask(c: &CheckNode) -> Option<TypeMask> {
    if c.field.id != FieldId::EvtType || !c.transformers.is_empty() || c.any_ancestor {
        return None;
    }
    if !matches!(c.matcher, Matcher::StrEq(_) | Matcher::StrIn(_)) {
        return None;
    }
    Some(
        EventType::ALL
            .iter()
            .filter(|t| c.match_str(t.as_str()))
            .fold(0, |m, t| m | t.bit()),
    )
}

/// Gives every cacheable check a slot in the per-event field cache, one per distinct
/// (field, argument), and every macro a slot in the per-event result cache; returns the
/// number of field slots and of macro slots.
pub fn assign_slots<'n>(nodes: impl IntoIterator<Item = &'n mut Node>) -> (usize, usize) {
    #[derive(Default)]
    struct Slots {
        fields: HashMap<ResolvedField, u32>,
        memos: HashMap<Box<str>, u32>,
    }
    fn walk(node: &mut Node, slots: &mut Slots) {
        match node {
            Node::Const(_) => {}
            Node::And(items) | Node::Or(items) => items.iter_mut().for_each(|n| walk(n, slots)),
            Node::Not(inner) => walk(inner, slots),
            Node::Memo(m) => {
                let next = slots.memos.len() as u32;
                m.slot = *slots.memos.entry(m.name.clone()).or_insert(next);
                walk(&mut m.node, slots);
            }
            Node::Check(c) => {
                if c.type_mask.is_none() && !c.any_ancestor {
                    let next = slots.fields.len() as u32;
                    c.slot = *slots.fields.entry(c.field.clone()).or_insert(next);
                }
            }
        }
    }
    let mut slots = Slots::default();
    for n in nodes {
        walk(n, &mut slots);
    }
    (slots.fields.len(), slots.memos.len())
}

fn first_line(s: &str) -> String {
    let line = s.lines().last().unwrap_or(s).trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Resolves a field expression against the catalog; returns the field, the
/// transformers (innermost first), the resulting type and whether it is the
/// any-ancestor form.
/// A resolved field: the field, its transformers, the resulting type, any-ancestor.
pub type CompiledField = (ResolvedField, Vec<Transformer>, FieldType, bool);

pub fn compile_field(f: &FieldExpr, in_condition: bool) -> Result<CompiledField, (usize, String)> {
    match f {
        FieldExpr::Field { name, arg, pos } => {
            let (info, arg) = fields::resolve(name, arg.as_deref()).map_err(|m| (*pos, m))?;
            let any = info.arg == ArgKind::AncestorIndex && arg == FieldArg::None;
            if any && !in_condition {
                return Err((
                    *pos,
                    format!("field '{name}' needs an index here: {name}[N]"),
                ));
            }
            let ty = if any && info.ty.is_string() {
                FieldType::StrList
            } else {
                info.ty
            };
            Ok((ResolvedField { id: info.id, arg }, Vec::new(), ty, any))
        }
        FieldExpr::Transform { tf, inner, pos } => {
            let (field, mut tfs, ty, any) = compile_field(inner, in_condition)?;
            if !ty.is_string() {
                return Err((
                    *pos,
                    format!("{}() needs a string field, '{inner}' is {ty}", tf.as_str()),
                ));
            }
            tfs.push(*tf);
            let out = if *tf == Transformer::Len {
                FieldType::U64
            } else {
                FieldType::Str
            };
            Ok((field, tfs, out, any))
        }
    }
}

fn contains_matcher(patterns: Vec<Box<str>>, ci: bool) -> Result<Matcher, String> {
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(ci)
        .build(patterns.iter().map(|p| p.as_bytes()))
        .map_err(|e| e.to_string())?;
    let single = match &patterns[..] {
        [one] if !ci => Some(Box::new(
            memchr::memmem::Finder::new(one.as_bytes()).into_owned(),
        )),
        _ => None,
    };
    Ok(Matcher::Contains {
        ac,
        patterns,
        ci,
        single,
    })
}

fn starts_matcher(patterns: Vec<Box<str>>) -> Result<Matcher, String> {
    let ac = AhoCorasickBuilder::new()
        .start_kind(StartKind::Anchored)
        .match_kind(MatchKind::LeftmostFirst)
        .build(patterns.iter().map(|p| p.as_bytes()))
        .map_err(|e| e.to_string())?;
    let first_bytes = ByteSet::of(patterns.iter().map(|p| p.as_bytes().first().copied()));
    Ok(Matcher::StartsWith {
        ac,
        patterns,
        first_bytes,
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn parse_int(s: &str) -> Option<i128> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i128::from_str_radix(h, 16).ok();
    }
    s.parse::<i128>().ok()
}

fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let s = s.trim();
    match s.split_once('/') {
        Some((ip, bits)) => {
            let ip: IpAddr = ip.parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            (bits <= max).then_some((ip, bits))
        }
        None => {
            let ip: IpAddr = s.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// Merges, inside each `or`, the `contains`/`icontains`/`startswith` checks of one
/// field into a single automaton; flattens nested and/or.
fn optimize(node: Node) -> Node {
    match node {
        Node::And(items) => {
            let mut out = Vec::new();
            for n in items.into_vec() {
                match optimize(n) {
                    Node::And(inner) => out.extend(inner.into_vec()),
                    n => out.push(n),
                }
            }
            if out.len() == 1 {
                return out.pop().unwrap_or(Node::Const(true));
            }
            Node::And(out.into())
        }
        Node::Or(items) => {
            let mut flat = Vec::new();
            for n in items.into_vec() {
                match optimize(n) {
                    Node::Or(inner) => flat.extend(inner.into_vec()),
                    n => flat.push(n),
                }
            }
            let mut out: Vec<Node> = Vec::new();
            // (field, transformers, kind) -> index in `out`
            let mut groups: HashMap<(ResolvedField, Vec<Transformer>, u8), usize> = HashMap::new();
            for n in flat {
                let key = match &n {
                    Node::Check(c) if !c.any_ancestor && !c.negate => match &c.matcher {
                        Matcher::Contains { ci: false, .. } => Some(0u8),
                        Matcher::Contains { ci: true, .. } => Some(1),
                        Matcher::StartsWith { .. } => Some(2),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(kind) = key else {
                    out.push(n);
                    continue;
                };
                let Node::Check(c) = n else { continue };
                let k = (c.field.clone(), c.transformers.to_vec(), kind);
                if let Some(&i) = groups.get(&k)
                    && let Node::Check(existing) = &mut out[i]
                {
                    merge_patterns(existing, &c.matcher);
                    continue;
                }
                groups.insert(k, out.len());
                out.push(Node::Check(c));
            }
            if out.len() == 1 {
                return out.pop().unwrap_or(Node::Const(false));
            }
            Node::Or(out.into())
        }
        Node::Not(inner) => Node::Not(Box::new(optimize(*inner))),
        Node::Memo(mut m) => {
            m.node = optimize(m.node);
            match m.node {
                // A single test is as cheap as the cache lookup.
                Node::Const(_) | Node::Check(_) => m.node,
                _ => Node::Memo(m),
            }
        }
        n => n,
    }
}

fn merge_patterns(into: &mut CheckNode, from: &Matcher) {
    let rebuilt = match (&into.matcher, from) {
        (Matcher::Contains { patterns, ci, .. }, Matcher::Contains { patterns: more, .. }) => {
            let mut all = patterns.clone();
            all.extend(more.iter().cloned());
            contains_matcher(all, *ci)
        }
        (Matcher::StartsWith { patterns, .. }, Matcher::StartsWith { patterns: more, .. }) => {
            let mut all = patterns.clone();
            all.extend(more.iter().cloned());
            starts_matcher(all)
        }
        _ => return,
    };
    if let Ok(m) = rebuilt {
        into.matcher = m;
    }
}
