//! Evaluation of the filter tree against one event: the per-event field and macro
//! caches, and each matcher's test. Allocates nothing.
use aho_corasick::{Anchored, Input};

use super::{
    parser::{Op, Transformer},
    source::{FieldArg, FieldSource, FieldValue, ResolvedField},
    tree::{CheckNode, Matcher, Memo, Node, StrSet, ip_in},
};

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
