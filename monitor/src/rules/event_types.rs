//! Which event types a condition can be true for: the rules' per-type index and the
//! kernel filter start from it.
use std::collections::BTreeSet;

use super::{
    fields::FieldId,
    source::EventType,
    tree::{CheckNode, Matcher, Node},
};

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
