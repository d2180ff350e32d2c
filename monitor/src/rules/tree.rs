//! The compiled condition: a tree of boolean nodes over checks, each check a field,
//! its transformers and a matcher prepared at load (hash sets for lists, one
//! aho-corasick automaton for a field's `contains`/`startswith` alternatives, regexes
//! and globs).
use std::{collections::HashSet, net::IpAddr};

use aho_corasick::AhoCorasick;
use globset::GlobMatcher;
use regex::Regex;

use super::{
    parser::{Op, Transformer},
    source::{ResolvedField, TypeMask},
};

/// String sets for `in` and `pmatch`: a fast non-cryptographic hash (the keys come
/// from the rules, not from events), looked up with a `&str` without allocating, behind
/// a filter on the lengths of the items (most strings are rejected without hashing).
#[derive(Debug, Default, Clone)]
pub struct StrSet {
    set: HashSet<Box<str>, foldhash::fast::FixedState>,
    /// Bit `min(len, 63)` set for the length of every item.
    pub(crate) lens: u64,
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
    pub(crate) fn of(first_bytes: impl Iterator<Item = Option<u8>>) -> ByteSet {
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
    pub(crate) fn admits(&self, b: Option<u8>) -> bool {
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

    pub(crate) fn new(pattern: &str, case_sensitive: bool, matcher: GlobMatcher) -> Glob {
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

    pub(crate) fn is_match(&self, s: &str) -> bool {
        s.starts_with(&*self.prefix) && s.ends_with(&*self.suffix) && self.matcher.is_match(s)
    }
}

/// Whether `ip` is in the network `net/bits` (an IPv4-mapped IPv6 address counts as
/// its IPv4 address).
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
