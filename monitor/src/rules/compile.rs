//! Compiles parsed conditions (macros and named lists expanded) into a filter tree with
//! every matcher prepared once: hash sets for lists, one aho-corasick automaton for the
//! `contains`/`icontains`/`startswith` alternatives of a field, regexes and globs built
//! at load. Evaluation allocates nothing.
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::IpAddr,
};

/// String sets for `in` and `pmatch`: a fast non-cryptographic hash (the keys come
/// from the rules, not from events), looked up with a `&str` without allocating, behind
/// a filter on the lengths of the items (most strings are rejected without hashing).
#[derive(Debug, Default, Clone)]
pub struct StrSet {
    set: HashSet<Box<str>, foldhash::fast::FixedState>,
    /// Bit `min(len, 63)` set for the length of every item.
    lens: u64,
}

impl StrSet {
    #[inline]
    fn len_bit(len: usize) -> u64 {
        1 << len.min(63)
    }

    #[inline]
    pub fn contains(&self, s: &str) -> bool {
        self.lens & Self::len_bit(s.len()) != 0 && self.set.contains(s)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Box<str>> {
        self.set.iter()
    }
}

impl FromIterator<Box<str>> for StrSet {
    fn from_iter<I: IntoIterator<Item = Box<str>>>(iter: I) -> Self {
        let set: HashSet<Box<str>, foldhash::fast::FixedState> = iter.into_iter().collect();
        let lens = set.iter().fold(0, |m, s| m | Self::len_bit(s.len()));
        StrSet { set, lens }
    }
}

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Anchored, Input, MatchKind, StartKind};
use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;

use super::{
    fields::{self, ArgKind, FieldId, FieldType},
    parser::{Check, Expr, FieldExpr, Op, Rhs, Transformer, Value},
    source::{EventType, FieldArg, FieldSource, FieldValue, ResolvedField, TypeMask},
};

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Node {
    Const(bool),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Check(Box<CheckNode>),
    /// A macro's condition: evaluated once per event, however many rules use it.
    /// The first field names the macro until the engine numbers it (`assign_slots`).
    Memo(Box<Memo>),
}

#[derive(Debug, Clone)]
pub struct Memo {
    pub name: Box<str>,
    /// Index in the per-event result cache, set by `assign_slots`.
    pub slot: u32,
    pub node: Node,
}

#[derive(Debug, Clone)]
pub struct CheckNode {
    pub field: ResolvedField,
    pub transformers: Box<[Transformer]>,
    /// `proc.aname` without index: true when any ancestor matches.
    pub any_ancestor: bool,
    /// `!=`: the value exists and does not match.
    pub negate: bool,
    pub matcher: Matcher,
    /// For `evt.type` tests: the event types (bit `EventType::index`) that match,
    /// so the test is a bit test.
    pub type_mask: Option<TypeMask>,
    /// Index of the field in the per-event cache (`NO_SLOT`: not cached). Set when
    /// the engine is built: every check of one (field, argument) shares a slot.
    pub slot: u32,
}

/// A check whose field is not cached.
pub const NO_SLOT: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub enum Matcher {
    Exists,
    StrEq(Box<str>),
    StrIn(StrSet),
    /// Any of the patterns occurs (contains / icontains, merged per field).
    Contains {
        ac: AhoCorasick,
        patterns: Vec<Box<str>>,
        ci: bool,
        /// The one pattern of a case-sensitive `contains`: a substring search is
        /// cheaper than the automaton.
        single: Option<Box<memchr::memmem::Finder<'static>>>,
    },
    /// Starts with any of the patterns (anchored automaton).
    StartsWith {
        ac: AhoCorasick,
        patterns: Vec<Box<str>>,
        /// The patterns' first bytes: most strings are rejected by their first byte,
        /// before the automaton runs.
        first_bytes: ByteSet,
    },
    EndsWith(Box<str>),
    BContains(AhoCorasick),
    BStartsWith(Box<[u8]>),
    Glob(Glob),
    Regex(Regex),
    /// Path prefixes, stored without trailing '/'. `"/"` stands for the root.
    PMatch(StrSet),
    NumCmp(Op, i128),
    NumIn(Box<[i128]>),
    BoolEq(bool),
    /// IP equal to one of the addresses or inside one of the networks.
    Ip(Box<[(IpAddr, u8)]>),
}

/// A set of bytes, for a first-byte test; `None` (an empty pattern) admits every
/// string.
#[derive(Debug, Clone, Default)]
pub struct ByteSet {
    bits: [u64; 4],
    any: bool,
}

impl ByteSet {
    fn of(first_bytes: impl Iterator<Item = Option<u8>>) -> ByteSet {
        let mut set = ByteSet::default();
        for b in first_bytes {
            match b {
                Some(b) => set.bits[usize::from(b >> 6)] |= 1 << (b & 63),
                None => set.any = true,
            }
        }
        set
    }

    #[inline]
    fn admits(&self, b: Option<u8>) -> bool {
        match b {
            Some(b) => self.any || self.bits[usize::from(b >> 6)] & (1 << (b & 63)) != 0,
            None => self.any,
        }
    }
}

/// A glob with the literal text it must start and end with, checked before the glob
/// itself: most paths fail there, at the cost of two comparisons.
#[derive(Debug, Clone)]
pub struct Glob {
    matcher: GlobMatcher,
    prefix: Box<str>,
    suffix: Box<str>,
}

impl Glob {
    /// What every match starts with (empty when the pattern promises nothing).
    pub fn literal_prefix(&self) -> &str {
        &self.prefix
    }

    fn new(pattern: &str, case_sensitive: bool, matcher: GlobMatcher) -> Glob {
        const SPECIAL: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];
        let (prefix, suffix) = match (pattern.find(SPECIAL), pattern.rfind(SPECIAL)) {
            _ if !case_sensitive || pattern.contains('\\') => ("", ""),
            (Some(first), Some(last)) => (&pattern[..first], &pattern[last + 1..]),
            _ => (pattern, ""),
        };
        Glob {
            matcher,
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    fn is_match(&self, s: &str) -> bool {
        s.starts_with(&*self.prefix) && s.ends_with(&*self.suffix) && self.matcher.is_match(s)
    }
}

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

pub(crate) fn ip_in(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits as u32)
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits as u32)
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => match a.to_ipv4_mapped() {
            Some(v4) => ip_in(IpAddr::V4(v4), net, bits),
            None => false,
        },
        _ => false,
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

// ---------------------------------------------------------------------------------
// Event types a condition can match.

/// The set of `evt.type` names a condition can be true for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeSet {
    All,
    Only(BTreeSet<String>),
    AllExcept(BTreeSet<String>),
}

impl TypeSet {
    fn and(self, other: TypeSet) -> TypeSet {
        use TypeSet::*;
        match (self, other) {
            (All, x) | (x, All) => x,
            (Only(a), Only(b)) => Only(a.intersection(&b).cloned().collect()),
            (Only(a), AllExcept(b)) | (AllExcept(b), Only(a)) => {
                Only(a.difference(&b).cloned().collect())
            }
            (AllExcept(a), AllExcept(b)) => AllExcept(a.union(&b).cloned().collect()),
        }
    }

    fn or(self, other: TypeSet) -> TypeSet {
        use TypeSet::*;
        match (self, other) {
            (All, _) | (_, All) => All,
            (Only(a), Only(b)) => Only(a.union(&b).cloned().collect()),
            (Only(a), AllExcept(b)) | (AllExcept(b), Only(a)) => {
                AllExcept(b.difference(&a).cloned().collect())
            }
            (AllExcept(a), AllExcept(b)) => AllExcept(a.intersection(&b).cloned().collect()),
        }
    }

    fn not(self) -> TypeSet {
        match self {
            TypeSet::All => TypeSet::Only(BTreeSet::new()),
            TypeSet::Only(a) => TypeSet::AllExcept(a),
            TypeSet::AllExcept(a) => TypeSet::Only(a),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        match self {
            TypeSet::All => true,
            TypeSet::Only(a) => a.contains(name),
            TypeSet::AllExcept(a) => !a.contains(name),
        }
    }
}

/// Returns the event types the node can match, and whether the node tests only
/// `evt.type` (only then is `not` an exact complement).
/// Every check of a condition, macros' included.
pub fn for_each_check(node: &Node, f: &mut impl FnMut(&CheckNode)) {
    match node {
        Node::Const(_) => {}
        Node::And(items) | Node::Or(items) => items.iter().for_each(|n| for_each_check(n, f)),
        Node::Not(inner) => for_each_check(inner, f),
        Node::Memo(m) => for_each_check(&m.node, f),
        Node::Check(c) => f(c),
    }
}

pub fn event_types(node: &Node) -> (TypeSet, bool) {
    match node {
        Node::Const(true) => (TypeSet::All, true),
        Node::Const(false) => (TypeSet::Only(BTreeSet::new()), true),
        Node::And(items) => items.iter().fold((TypeSet::All, true), |(acc, p), n| {
            let (t, q) = event_types(n);
            (acc.and(t), p && q)
        }),
        Node::Or(items) => {
            items
                .iter()
                .fold((TypeSet::Only(BTreeSet::new()), true), |(acc, p), n| {
                    let (t, q) = event_types(n);
                    (acc.or(t), p && q)
                })
        }
        Node::Not(inner) => {
            let (t, pure) = event_types(inner);
            if pure {
                (t.not(), true)
            } else {
                (TypeSet::All, false)
            }
        }
        Node::Check(c) if c.field.id == FieldId::EvtType && c.transformers.is_empty() => {
            let set = match &c.matcher {
                Matcher::StrEq(v) => TypeSet::Only([v.to_string()].into()),
                Matcher::StrIn(vs) => TypeSet::Only(vs.iter().map(|v| v.to_string()).collect()),
                _ => return (TypeSet::All, false),
            };
            if c.negate {
                (set.not(), true)
            } else {
                (set, true)
            }
        }
        Node::Check(_) => (TypeSet::All, false),
        Node::Memo(m) => event_types(&m.node),
    }
}

/// Which of our event types a set allows.
pub fn our_types(set: &TypeSet) -> Vec<EventType> {
    EventType::ALL
        .iter()
        .copied()
        .filter(|t| set.contains(t.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------
// Evaluation.

/// Reusable buffers for evaluation; one per evaluating thread. Holds the per-event
/// field cache: each field slot is resolved at most once per event, however many
/// rules and macros read it.
#[derive(Default, Debug)]
pub struct Scratch {
    buf: String,
    /// Per slot: `generation << 32 | index in values`; valid when the generation is
    /// the current event's.
    stamps: Vec<u64>,
    /// Per macro slot: `generation << 32 | result`.
    memo: Vec<u64>,
    generation: u32,
    /// The values resolved for the current event; always empty between events (the
    /// allocation is kept).
    values: Vec<FieldValue<'static>>,
}

/// Reuses a vector's allocation for another lifetime of its (empty) contents.
fn recycle<'x, 'y>(mut v: Vec<FieldValue<'x>>) -> Vec<FieldValue<'y>> {
    v.clear();
    // Same layout: the in-place collect keeps the allocation, moves nothing.
    v.into_iter().map(|_| unreachable!()).collect()
}

impl Scratch {
    /// Runs `f` with a fresh field cache for one event.
    pub(crate) fn with_event<'a, S: FieldSource + ?Sized, R>(
        &mut self,
        src: &'a S,
        slots: (usize, usize),
        f: impl FnOnce(&mut EvalCtx<'_, 'a, S>) -> R,
    ) -> R {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamps.fill(0);
            self.memo.fill(0);
            self.generation = 1;
        }
        if self.stamps.len() < slots.0 {
            self.stamps.resize(slots.0, 0);
        }
        if self.memo.len() < slots.1 {
            self.memo.resize(slots.1, 0);
        }
        let mut ctx = EvalCtx {
            src,
            buf: &mut self.buf,
            stamps: &mut self.stamps,
            memo: &mut self.memo,
            generation: u64::from(self.generation) << 32,
            values: recycle(std::mem::take(&mut self.values)),
        };
        let r = f(&mut ctx);
        let values = std::mem::take(&mut ctx.values);
        self.values = recycle(values);
        r
    }
}

/// One event being evaluated: the source and its field cache.
pub struct EvalCtx<'s, 'a, S: ?Sized> {
    src: &'a S,
    buf: &'s mut String,
    stamps: &'s mut [u64],
    memo: &'s mut [u64],
    generation: u64,
    values: Vec<FieldValue<'a>>,
}

impl<'a, S: FieldSource + ?Sized> EvalCtx<'_, 'a, S> {
    /// The index in `values` of the field's value, resolved on first use.
    #[inline(always)]
    fn lookup(&mut self, slot: u32, field: &ResolvedField) -> usize {
        if let Some(&st) = self.stamps.get(slot as usize)
            && st & !0xffff_ffff == self.generation
        {
            return (st & 0xffff_ffff) as usize;
        }
        self.resolve(slot, field)
    }

    /// The value of a field for this event.
    #[inline(always)]
    pub(super) fn value(&mut self, slot: u32, field: &ResolvedField) -> &FieldValue<'a> {
        let i = self.lookup(slot, field);
        &self.values[i]
    }

    /// A macro's result for this event, if already evaluated.
    #[inline(always)]
    fn remembered(&self, slot: u32) -> Option<bool> {
        match self.memo.get(slot as usize) {
            Some(&st) if st & !0xffff_ffff == self.generation => Some(st & 1 != 0),
            _ => None,
        }
    }

    fn remember(&mut self, slot: u32, result: bool) {
        if let Some(st) = self.memo.get_mut(slot as usize) {
            *st = self.generation | u64::from(result);
        }
    }

    /// First read of a field in this event (or an uncached one).
    #[inline(never)]
    fn resolve(&mut self, slot: u32, field: &ResolvedField) -> usize {
        if let Some(st) = self.stamps.get_mut(slot as usize) {
            let idx = self.values.len();
            self.values.push(self.src.field(field));
            *st = self.generation | idx as u64;
            return idx;
        }
        self.values.push(self.src.field(field));
        self.values.len() - 1
    }
}

const MAX_ANCESTORS: usize = 256;

impl Node {
    pub fn eval<S: FieldSource + ?Sized>(&self, src: &S, scratch: &mut Scratch) -> bool {
        scratch.with_event(src, (0, 0), |ctx| self.eval_in(ctx))
    }

    /// Evaluates with the event's field cache.
    pub(crate) fn eval_in<S: FieldSource + ?Sized>(&self, ctx: &mut EvalCtx<'_, '_, S>) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::And(items) => items.iter().all(|n| n.eval_operand(ctx)),
            Node::Or(items) => items.iter().any(|n| n.eval_operand(ctx)),
            Node::Not(inner) => !inner.eval_operand(ctx),
            Node::Check(c) => c.eval_in(ctx),
            Node::Memo(m) => m.eval(ctx),
        }
    }

    /// An operand of a junction: leaf checks and macros already evaluated for this
    /// event are decided here, without the recursive call (most operands are one).
    #[inline(always)]
    fn eval_operand<S: FieldSource + ?Sized>(&self, ctx: &mut EvalCtx<'_, '_, S>) -> bool {
        match self {
            Node::Check(c) => c.eval_in(ctx),
            Node::Memo(m) => m.eval(ctx),
            Node::Not(inner) => match &**inner {
                Node::Check(c) => !c.eval_in(ctx),
                n => !n.eval_in(ctx),
            },
            n => n.eval_in(ctx),
        }
    }
}

impl Memo {
    /// The macro's result for this event: from the cache, or evaluated and cached.
    #[inline(always)]
    fn eval<S: FieldSource + ?Sized>(&self, ctx: &mut EvalCtx<'_, '_, S>) -> bool {
        if let Some(r) = ctx.remembered(self.slot) {
            return r;
        }
        let r = self.node.eval_in(ctx);
        ctx.remember(self.slot, r);
        r
    }
}

impl CheckNode {
    #[inline(always)]
    fn eval_in<S: FieldSource + ?Sized>(&self, ctx: &mut EvalCtx<'_, '_, S>) -> bool {
        if let Some(mask) = self.type_mask {
            // The hot path for evt.type: a bit test.
            let bit = (mask >> ctx.src.event_type().index()) & 1 != 0;
            return bit != self.negate;
        }
        if self.any_ancestor {
            for depth in 1..MAX_ANCESTORS {
                let field = ResolvedField {
                    id: self.field.id,
                    arg: FieldArg::Index(depth),
                };
                let value = ctx.src.field(&field);
                if value.is_none() {
                    return false;
                }
                if self.eval_value(&value, ctx.buf) {
                    return true;
                }
            }
            return false;
        }
        let i = ctx.lookup(self.slot, &self.field);
        let value = &ctx.values[i];
        if self.transformers.is_empty() {
            // The common case, without the transformer machinery.
            let matched = match value {
                FieldValue::None => return false,
                _ if matches!(self.matcher, Matcher::Exists) => return true,
                FieldValue::Str(s) => self.match_str(s),
                v => self.match_value(v),
            };
            return matched != self.negate;
        }
        self.eval_value(value, ctx.buf)
    }

    fn eval_value(&self, value: &FieldValue<'_>, buf: &mut String) -> bool {
        if value.is_none() {
            return false;
        }
        if matches!(self.matcher, Matcher::Exists) {
            return true;
        }
        let matched = if self.transformers.is_empty() {
            self.match_value(value)
        } else {
            let FieldValue::Str(s) = value else {
                return false;
            };
            let src_str: &str = s;
            let mut in_buf = false;
            let mut range = (0usize, src_str.len());
            let mut len = None;
            for tf in self.transformers.iter() {
                match tf {
                    Transformer::ToLower | Transformer::ToUpper => {
                        if in_buf {
                            buf.truncate(range.1);
                            buf.drain(..range.0);
                        } else {
                            buf.clear();
                            buf.push_str(&src_str[range.0..range.1]);
                            in_buf = true;
                        }
                        range = (0, buf.len());
                        if *tf == Transformer::ToLower {
                            buf.make_ascii_lowercase();
                        } else {
                            buf.make_ascii_uppercase();
                        }
                    }
                    Transformer::Basename => {
                        let cur = if in_buf {
                            &buf[range.0..range.1]
                        } else {
                            &src_str[range.0..range.1]
                        };
                        let b = basename(cur);
                        let off = b.as_ptr() as usize - cur.as_ptr() as usize;
                        range = (range.0 + off, range.0 + off + b.len());
                    }
                    Transformer::Len => len = Some((range.1 - range.0) as u64),
                }
            }
            let current = if in_buf {
                &buf[range.0..range.1]
            } else {
                &src_str[range.0..range.1]
            };
            match len {
                Some(n) => self.match_value(&FieldValue::U64(n)),
                None => self.match_str(current),
            }
        };
        matched != self.negate
    }

    pub(crate) fn match_value(&self, value: &FieldValue<'_>) -> bool {
        match value {
            FieldValue::None => false,
            FieldValue::Str(s) => self.match_str(s),
            FieldValue::U64(n) => self.match_num(*n as i128),
            FieldValue::I64(n) => self.match_num(*n as i128),
            FieldValue::Bool(b) => matches!(self.matcher, Matcher::BoolEq(x) if x == *b),
            FieldValue::Ip(ip) => match &self.matcher {
                Matcher::Ip(nets) => nets.iter().any(|(n, bits)| ip_in(*ip, *n, *bits)),
                _ => false,
            },
            FieldValue::Bytes(b) => match &self.matcher {
                Matcher::BContains(ac) => ac.is_match(&**b),
                Matcher::BStartsWith(v) => b.starts_with(v),
                _ => self.match_str(&crate::output::escape::bytes_to_text(b)),
            },
        }
    }

    fn match_num(&self, n: i128) -> bool {
        match &self.matcher {
            Matcher::NumCmp(op, v) => match op {
                Op::Eq => n == *v,
                Op::Lt => n < *v,
                Op::Le => n <= *v,
                Op::Gt => n > *v,
                Op::Ge => n >= *v,
                _ => false,
            },
            Matcher::NumIn(vs) => vs.contains(&n),
            _ => false,
        }
    }

    #[inline]
    pub(crate) fn match_str(&self, s: &str) -> bool {
        match &self.matcher {
            Matcher::Exists => true,
            Matcher::StrEq(v) => s == &**v,
            Matcher::StrIn(set) => set.contains(s),
            Matcher::Contains {
                single: Some(finder),
                ..
            } => finder.find(s.as_bytes()).is_some(),
            Matcher::Contains { ac, .. } => ac.is_match(s),
            Matcher::StartsWith {
                ac, first_bytes, ..
            } => {
                first_bytes.admits(s.as_bytes().first().copied())
                    && ac.is_match(Input::new(s).anchored(Anchored::Yes))
            }
            Matcher::EndsWith(v) => s.ends_with(&**v),
            Matcher::BContains(ac) => ac.is_match(s.as_bytes()),
            Matcher::BStartsWith(v) => s.as_bytes().starts_with(v),
            Matcher::Glob(g) => g.is_match(s),
            Matcher::Regex(r) => r.is_match(s),
            Matcher::PMatch(set) => pmatch(set, s),
            Matcher::NumCmp(..) | Matcher::NumIn(_) | Matcher::BoolEq(_) | Matcher::Ip(_) => false,
        }
    }
}

fn basename(s: &str) -> &str {
    let t = s.trim_end_matches('/');
    if t.is_empty() {
        return if s.is_empty() { s } else { &s[..1] };
    }
    match t.rfind('/') {
        Some(i) => &t[i + 1..],
        None => t,
    }
}

fn pmatch(set: &StrSet, path: &str) -> bool {
    if set.contains(path.trim_end_matches('/')) {
        return true;
    }
    if path.starts_with('/') && set.contains("/") {
        return true;
    }
    // A proper prefix of the path that ends before a '/' (a byte boundary: '/' is
    // ASCII); only the lengths of the set's items can be one.
    let bytes = path.as_bytes();
    let mut lens = set.lens;
    while lens != 0 {
        let len = lens.trailing_zeros() as usize;
        lens &= lens - 1;
        if len == 63 {
            // Bit 63 stands for every length from 63 up.
            return (63..bytes.len()).any(|i| bytes[i] == b'/' && set.contains(&path[..i]));
        }
        if len > 0 && bytes.get(len) == Some(&b'/') && set.contains(&path[..len]) {
            return true;
        }
    }
    false
}
