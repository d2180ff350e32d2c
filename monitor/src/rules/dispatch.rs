//! The rules of one event type, indexed by the value of one string field.
//!
//! Most rules open with a test such as `proc.name in (shell_binaries)` that almost
//! every event fails. Rather than run that test rule after rule, the rules whose
//! condition requires the field to hold one of a few strings are filed under those
//! strings: per event the field is read once, looked up once, and only the rules filed
//! under its value run, together with the rules that have no such test. Rules still
//! run in load order, so `rule_matching: first` and the order of alerts are unchanged.
use std::collections::HashMap;

use super::{
    eval::EvalCtx,
    fields::FieldId,
    source::{FieldSource, FieldValue, ResolvedField},
    specialize::few_values,
    tree::{CheckNode, Matcher, NO_SLOT, Node},
};

type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The rules of one event type, as `(rule index, condition)` in load order.
#[derive(Debug, Default)]
pub struct TypeRules {
    rules: Vec<(usize, Node)>,
    /// Positions in `rules` of the rules that run for every event.
    always: Vec<u32>,
    index: Option<Index>,
}

#[derive(Debug)]
struct Index {
    field: ResolvedField,
    slot: u32,
    /// Value of the field → positions in `rules` (ascending) of the rules that can
    /// match with it.
    by_value: Map<Box<str>, Box<[u32]>>,
}

impl TypeRules {
    pub fn new(rules: Vec<(usize, Node)>) -> TypeRules {
        let keys: Vec<Vec<Key>> = rules.iter().map(|(_, node)| keys(node)).collect();
        // The field that files the most rules (ties: `proc.name`, then the field
        // first seen in load order, so the choice does not depend on hashing); one
        // that files fewer than two saves nothing.
        let mut counts: Vec<(&ResolvedField, usize)> = Vec::new();
        for key in keys.iter().flatten() {
            match counts.iter_mut().find(|(field, _)| *field == &key.field) {
                Some((_, n)) => *n += 1,
                None => counts.push((&key.field, 1)),
            }
        }
        let best = counts
            .into_iter()
            .rev()
            .filter(|&(_, n)| n >= 2)
            .max_by_key(|&(field, n)| (n, field.id == FieldId::ProcName))
            .map(|(field, _)| field.clone());
        let Some(field) = best else {
            return TypeRules {
                always: (0..rules.len() as u32).collect(),
                rules,
                index: None,
            };
        };
        let mut always = Vec::new();
        let mut by_value: Map<Box<str>, Vec<u32>> = Map::default();
        let mut slot = NO_SLOT;
        for (position, keys) in keys.into_iter().enumerate() {
            match keys.into_iter().find(|k| k.field == field) {
                Some(key) => {
                    slot = key.slot;
                    for v in key.values {
                        by_value.entry(v).or_default().push(position as u32);
                    }
                }
                None => always.push(position as u32),
            }
        }
        TypeRules {
            rules,
            always,
            index: Some(Index {
                field,
                slot,
                by_value: by_value
                    .into_iter()
                    .map(|(v, mut positions)| {
                        positions.dedup();
                        (v, positions.into())
                    })
                    .collect(),
            }),
        }
    }

    /// Calls `f` with each rule that may match the event, in load order, until it
    /// returns false.
    #[inline(always)]
    pub fn each_candidate<S: FieldSource + ?Sized>(
        &self,
        ctx: &mut EvalCtx<'_, '_, S>,
        mut f: impl FnMut(&mut EvalCtx<'_, '_, S>, usize, &Node) -> bool,
    ) {
        let filed: &[u32] = match &self.index {
            None => &[],
            Some(index) => {
                let value = ctx.value(index.slot, &index.field);
                match value {
                    FieldValue::Str(s) => index.by_value.get(&**s).map_or(&[], |p| &p[..]),
                    _ => &[],
                }
            }
        };
        // Both lists are ascending: merge them.
        let (always, mut i, mut j) = (&self.always[..], 0, 0);
        loop {
            let position = match (always.get(i), filed.get(j)) {
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (_, Some(&b)) => {
                    j += 1;
                    b
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, None) => return,
            };
            let (rule, node) = &self.rules[position as usize];
            if !f(ctx, *rule, node) {
                return;
            }
        }
    }
}

/// A field and the values it must hold for a condition to be true.
struct Key {
    field: ResolvedField,
    slot: u32,
    values: Vec<Box<str>>,
}

/// The keys a condition requires: tests of the form `field = "v"` or `field in (...)`
/// on a field with many values that must hold for it to be true: its own test, those
/// of the operands of an `and`, and those every operand of an `or` has on one field
/// (the union of their values).
fn keys(node: &Node) -> Vec<Key> {
    match node {
        Node::Check(c) => check_key(c).into_iter().collect(),
        Node::And(items) => items.iter().flat_map(keys).collect(),
        Node::Or(items) => {
            let mut per_operand = items.iter().map(keys);
            let Some(first) = per_operand.next() else {
                return Vec::new();
            };
            per_operand.fold(first, |common, other| {
                common
                    .into_iter()
                    .filter_map(|mut key| {
                        let same = other.iter().find(|k| k.field == key.field)?;
                        key.values.extend(same.values.iter().cloned());
                        Some(key)
                    })
                    .collect()
            })
        }
        Node::Memo(m) => keys(&m.node),
        Node::Not(_) | Node::Const(_) => Vec::new(),
    }
}

fn check_key(c: &CheckNode) -> Option<Key> {
    if c.negate
        || c.any_ancestor
        || !c.transformers.is_empty()
        || c.slot == NO_SLOT
        || few_values(c.field.id)
    {
        return None;
    }
    let values = match &c.matcher {
        Matcher::StrEq(v) => vec![v.clone()],
        Matcher::StrIn(set) => set.iter().cloned().collect(),
        _ => return None,
    };
    Some(Key {
        field: c.field.clone(),
        slot: c.slot,
        values,
    })
}
