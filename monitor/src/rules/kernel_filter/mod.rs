//! The active rules compiled into the kernel filter (`monitor_common::filter`): per
//! event kind and scope, the facts (syscall, open access mode, result, socket family,
//! destination network, an open's path) an event must have for some rule to be able
//! to match it.
//!
//! Each rule's condition, specialised per event type, is read as a region of the
//! space of those facts: an over-approximation of the events on which it can be
//! true. A check on a fact is exact per value of the fact (it is evaluated on each
//! value with the engine's own matcher); a check on anything else (paths, process
//! names, ...) may be true or false, so it bounds nothing. `and` intersects regions,
//! `or` joins them, `not` swaps a check's true and false regions. A kind's filter is
//! the join of its rules' regions, so it admits every event any rule could match:
//! conservative by construction, and checked by the differential tests against the
//! engine itself.
mod exact;

use std::{collections::BTreeSet, fmt::Write, net::IpAddr};

use monitor_common::{KindFilter, ScopeFilter, filter, kill};

use super::{
    CompiledRule,
    event_types::for_each_check,
    fields::FieldId,
    source::{EventType, FieldArg, FieldValue},
    specialize::specialize,
    tree::{CheckNode, Matcher, Node, ip_in},
};
use crate::{
    context::EnrichedEvent,
    event::{Detail, EventKind},
};

pub use exact::{DenyRegion, KillRegion, deny_region, kill_region};

/// The kinds the kernel filters. Exec, fork and exit always reach the process table.
pub const FILTERED_KINDS: [EventKind; 3] =
    [EventKind::Open, EventKind::Connect, EventKind::Syscall];

const SCOPE_HOST: u8 = 1;
const SCOPE_CONTAINER: u8 = 2;
const ALL_SCOPES: u8 = SCOPE_HOST | SCOPE_CONTAINER;
const ALL_ACCESS: u32 = 0b1111;
const ALL_RESULTS: u32 = filter::RESULT_OK | filter::RESULT_FAILED;
const ALL_FAMILIES: u32 =
    filter::FAMILY_UNIX | filter::FAMILY_INET | filter::FAMILY_INET6 | filter::FAMILY_OTHER;
const ALL_FILES: u32 = kill::FILE | kill::DIRECTORY;
/// The families with an IP destination: the only ones ports and networks apply to.
const IP_FAMILIES: u32 = filter::FAMILY_INET | filter::FAMILY_INET6;

/// `creat(path, mode)` is `open(path, O_CREAT | O_WRONLY | O_TRUNC, mode)`.
const CREAT_FLAGS: u64 = 0o100 | 0o1 | 0o1000;

/// A network as the rules write them: address and prefix length.
pub type Net = (IpAddr, u8);

/// The opens whose path (`fd.name`, which for an absolute path is its bytes
/// normalized) a condition can be true on.
#[derive(Clone, Debug, PartialEq)]
pub enum PathBound {
    Any,
    /// These paths exactly, those below these prefixes, those whose last component is
    /// one of these names, and every path the kernel cannot judge by its bytes
    /// (`filter::path_needs_agent`).
    Only {
        exact: BTreeSet<String>,
        prefixes: BTreeSet<String>,
        names: BTreeSet<String>,
    },
}

impl PathBound {
    fn only(
        exact: impl IntoIterator<Item = String>,
        prefixes: impl IntoIterator<Item = String>,
        names: impl IntoIterator<Item = String>,
    ) -> PathBound {
        PathBound::Only {
            exact: exact.into_iter().collect(),
            prefixes: prefixes.into_iter().collect(),
            names: names.into_iter().collect(),
        }
    }

    /// Does it hold `path` (bytes the kernel would judge)?
    fn holds(&self, path: &[u8]) -> bool {
        match self {
            PathBound::Any => true,
            PathBound::Only {
                exact,
                prefixes,
                names,
            } => {
                let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
                exact.iter().any(|e| e.as_bytes() == path)
                    || prefixes.iter().any(|p| path.starts_with(p.as_bytes()))
                    || names.iter().any(|n| n.as_bytes() == name)
            }
        }
    }

    fn below_any(prefixes: &BTreeSet<String>, path: &str) -> bool {
        prefixes.iter().any(|p| path.starts_with(p.as_str()))
    }

    /// Both bounds hold the paths both hold; where the intersection is not of this
    /// form (names against paths), the smaller side stands for it.
    fn meet(&self, other: &PathBound) -> PathBound {
        match (self, other) {
            (PathBound::Any, b) | (b, PathBound::Any) => b.clone(),
            (
                PathBound::Only {
                    exact: e1,
                    prefixes: p1,
                    names: n1,
                },
                PathBound::Only {
                    exact: e2,
                    prefixes: p2,
                    names: n2,
                },
            ) if n1.is_empty() && n2.is_empty() => {
                let in1 = |x: &str| e1.contains(x) || Self::below_any(p1, x);
                let in2 = |x: &str| e2.contains(x) || Self::below_any(p2, x);
                PathBound::only(
                    e1.iter()
                        .filter(|x| in2(x))
                        .chain(e2.iter().filter(|x| in1(x)))
                        .cloned(),
                    p1.iter()
                        .filter(|p| Self::below_any(p2, p))
                        .chain(p2.iter().filter(|p| Self::below_any(p1, p)))
                        .cloned(),
                    [],
                )
            }
            (a, b) if a.entries() <= b.entries() => a.clone(),
            (_, b) => b.clone(),
        }
    }

    fn join(&self, other: &PathBound) -> PathBound {
        match (self, other) {
            (
                PathBound::Only {
                    exact: e1,
                    prefixes: p1,
                    names: n1,
                },
                PathBound::Only {
                    exact: e2,
                    prefixes: p2,
                    names: n2,
                },
            ) => PathBound::only(
                e1.union(e2).cloned(),
                p1.union(p2).cloned(),
                n1.union(n2).cloned(),
            ),
            _ => PathBound::Any,
        }
    }

    fn entries(&self) -> usize {
        match self {
            PathBound::Any => usize::MAX,
            PathBound::Only {
                exact,
                prefixes,
                names,
            } => exact.len() + prefixes.len() + names.len(),
        }
    }
}

/// The destination ports of the connects a condition can be true on.
#[derive(Clone, Debug, PartialEq)]
pub enum PortBound {
    Any,
    Only(BTreeSet<u16>),
    Except(BTreeSet<u16>),
}

impl PortBound {
    pub fn holds(&self, port: u16) -> bool {
        match self {
            PortBound::Any => true,
            PortBound::Only(set) => set.contains(&port),
            PortBound::Except(set) => !set.contains(&port),
        }
    }

    fn meet(&self, other: &PortBound) -> PortBound {
        use PortBound::*;
        match (self, other) {
            (Any, b) | (b, Any) => b.clone(),
            (Only(a), Only(b)) => Only(a.intersection(b).copied().collect()),
            (Except(a), Except(b)) => Except(a.union(b).copied().collect()),
            (Only(a), Except(b)) | (Except(b), Only(a)) => Only(a.difference(b).copied().collect()),
        }
    }

    fn join(&self, other: &PortBound) -> PortBound {
        use PortBound::*;
        match (self, other) {
            (Any, _) | (_, Any) => Any,
            (Only(a), Only(b)) => Only(a.union(b).copied().collect()),
            (Except(a), Except(b)) => Except(a.intersection(b).copied().collect()),
            (Only(a), Except(b)) | (Except(b), Only(a)) => {
                Except(b.difference(a).copied().collect())
            }
        }
        .normalized()
    }

    /// Every port, written one way.
    fn normalized(self) -> PortBound {
        match self {
            PortBound::Except(set) if set.is_empty() => PortBound::Any,
            other => other,
        }
    }

    fn entries(&self) -> usize {
        match self {
            PortBound::Any => 0,
            PortBound::Only(s) | PortBound::Except(s) => s.len(),
        }
    }
}

/// Port-table entries one scope may use (the kernel's table holds 8192).
const MAX_PORT_ENTRIES: usize = 2000;

/// Path-table entries one scope may use (both generations and scopes share the
/// kernel's 8192); a scope that needs more stays unbounded.
const MAX_PATH_ENTRIES: usize = 2000;

/// Events a condition can be true on (an over-approximation), as a product of fact
/// sets, less the destinations in `excluded`. Destinations (`within`, `excluded`,
/// `ports`) bound connects with an IP destination only: a connect of another family
/// is in the region when its family is.
#[derive(Clone, Debug, PartialEq)]
struct Region {
    scopes: u8,
    syscalls: u64,
    access: u32,
    results: u32,
    families: u32,
    /// Opens of files and of directories (`kill::FILE`, `kill::DIRECTORY`): only kill
    /// slots judge it; the filter admits both.
    files: u32,
    excluded: Vec<Net>,
    /// The networks an IP destination must be inside; `None`: any.
    within: Option<Vec<Net>>,
    path: PathBound,
    ports: PortBound,
}

impl Region {
    fn top() -> Region {
        Region {
            scopes: ALL_SCOPES,
            syscalls: u64::MAX,
            access: ALL_ACCESS,
            results: ALL_RESULTS,
            families: ALL_FAMILIES,
            files: ALL_FILES,
            excluded: Vec::new(),
            within: None,
            path: PathBound::Any,
            ports: PortBound::Any,
        }
    }

    fn bottom() -> Region {
        Region {
            scopes: 0,
            syscalls: 0,
            access: 0,
            results: 0,
            families: 0,
            files: 0,
            excluded: Vec::new(),
            within: None,
            path: PathBound::Any,
            ports: PortBound::Any,
        }
    }

    fn is_bottom(&self) -> bool {
        self.scopes == 0
            || self.syscalls == 0
            || self.access == 0
            || self.results == 0
            || self.families == 0
            || self.files == 0
            || (self.families & !IP_FAMILIES == 0 && self.no_ip_destination())
    }

    /// Do the destination bounds leave no IP destination at all?
    fn no_ip_destination(&self) -> bool {
        matches!(&self.ports, PortBound::Only(set) if set.is_empty())
            || self.within.as_ref().is_some_and(|within| {
                within
                    .iter()
                    .all(|&n| self.excluded.iter().any(|&x| contains(x, n)))
            })
    }

    fn meet(&self, other: &Region) -> Region {
        let mut excluded = self.excluded.clone();
        for n in &other.excluded {
            if !excluded.contains(n) {
                excluded.push(*n);
            }
        }
        let r = Region {
            scopes: self.scopes & other.scopes,
            syscalls: self.syscalls & other.syscalls,
            access: self.access & other.access,
            results: self.results & other.results,
            families: self.families & other.families,
            files: self.files & other.files,
            excluded,
            within: match (&self.within, &other.within) {
                (None, w) | (w, None) => w.clone(),
                (Some(a), Some(b)) => Some(common_networks(a, b)),
            },
            path: self.path.meet(&other.path),
            ports: self.ports.meet(&other.ports),
        };
        if r.is_bottom() { Region::bottom() } else { r }
    }

    fn join(&self, other: &Region) -> Region {
        if self.is_bottom() {
            return other.clone();
        }
        if other.is_bottom() {
            return self.clone();
        }
        Region {
            scopes: self.scopes | other.scopes,
            syscalls: self.syscalls | other.syscalls,
            access: self.access | other.access,
            results: self.results | other.results,
            families: self.families | other.families,
            files: self.files | other.files,
            excluded: match (self.ip_excluded(), other.ip_excluded()) {
                (Some(a), Some(b)) => common_networks(a, b),
                (Some(a), None) | (None, Some(a)) => a.to_vec(),
                (None, None) => Vec::new(),
            },
            within: match (self.ip_within(), other.ip_within()) {
                (Some(Some(a)), Some(Some(b))) => {
                    let mut both = a.clone();
                    both.extend(b.iter().filter(|n| !a.contains(n)));
                    Some(both)
                }
                (Some(Some(a)), None) | (None, Some(Some(a))) => Some(a.clone()),
                _ => None,
            },
            path: self.path.join(&other.path),
            // As for networks: a side without IP sockets has no ports to widen with.
            ports: match (self.ip_ports(), other.ip_ports()) {
                (Some(a), Some(b)) => a.join(b),
                (Some(a), None) | (None, Some(a)) => a.clone(),
                (None, None) => PortBound::Any,
            },
        }
    }

    /// The destination ports, where the region holds IP sockets at all.
    fn ip_ports(&self) -> Option<&PortBound> {
        (self.families & (filter::FAMILY_INET | filter::FAMILY_INET6) != 0).then_some(&self.ports)
    }

    /// The networks destinations are bound to, where the region holds IP sockets at
    /// all.
    fn ip_within(&self) -> Option<&Option<Vec<Net>>> {
        (self.families & IP_FAMILIES != 0).then_some(&self.within)
    }

    /// The destinations excluded, where the region holds IP sockets at all; `None`
    /// when it holds none, so every destination is excluded from it.
    fn ip_excluded(&self) -> Option<&[Net]> {
        (self.families & (filter::FAMILY_INET | filter::FAMILY_INET6) != 0)
            .then_some(self.excluded.as_slice())
    }
}

/// Networks inside both lists (the smaller of each nested pair): a destination is
/// excluded from a join only where both sides exclude it.
fn common_networks(a: &[Net], b: &[Net]) -> Vec<Net> {
    let mut out = Vec::new();
    for &x in a {
        for &y in b {
            let inner = if contains(y, x) {
                Some(x)
            } else if contains(x, y) {
                Some(y)
            } else {
                None
            };
            if let Some(n) = inner.filter(|n| !out.contains(n)) {
                out.push(n);
            }
        }
    }
    out
}

/// Is network `inner` inside network `outer` (same family)?
fn contains(outer: Net, inner: Net) -> bool {
    outer.0.is_ipv4() == inner.0.is_ipv4() && inner.1 >= outer.1 && ip_in(inner.0, outer.0, outer.1)
}

/// The regions where a condition is true and where it is false.
fn regions(node: &Node, t: EventType) -> (Region, Region) {
    match node {
        Node::Const(true) => (Region::top(), Region::bottom()),
        Node::Const(false) => (Region::bottom(), Region::top()),
        Node::Not(inner) => {
            let (yes, no) = regions(inner, t);
            (no, yes)
        }
        Node::And(items) => {
            items
                .iter()
                .fold((Region::top(), Region::bottom()), |(yes, no), item| {
                    let (y, n) = regions(item, t);
                    (yes.meet(&y), no.join(&n))
                })
        }
        Node::Or(items) => {
            items
                .iter()
                .fold((Region::bottom(), Region::top()), |(yes, no), item| {
                    let (y, n) = regions(item, t);
                    (yes.join(&y), no.meet(&n))
                })
        }
        Node::Memo(m) => regions(&m.node, t),
        Node::Check(c) => check_regions(c, t),
    }
}

/// How a check can come out on one value of a fact: (may be true, may be false).
type Truth = (bool, bool);

/// A check evaluated as the engine does on a value the fact gives the field.
fn on_value(c: &CheckNode, value: &FieldValue<'_>) -> Truth {
    let t = match value {
        FieldValue::None => false,
        _ if matches!(c.matcher, Matcher::Exists) => true,
        v => c.match_value(v) != c.negate,
    };
    (t, !t)
}

/// A check on a string field whose value is any string but `except` (a container id
/// other than `host`, an errno name other than `SUCCESS`).
fn on_any_string_but(c: &CheckNode, except: &str) -> Truth {
    let (may_match, may_miss) = match &c.matcher {
        Matcher::Exists => (true, false),
        Matcher::StrEq(v) => (&**v != except, true),
        Matcher::StrIn(set) => (set.iter().any(|v| &**v != except), true),
        _ => (true, true),
    };
    if matches!(c.matcher, Matcher::Exists) || !c.negate {
        (may_match, may_miss)
    } else {
        (may_miss, may_match)
    }
}

/// A check on an integer field whose value is anywhere in `lo..=hi`.
fn on_range(c: &CheckNode, lo: i128, hi: i128) -> Truth {
    let (may_match, may_miss) = match &c.matcher {
        Matcher::Exists => return (true, false),
        Matcher::NumCmp(op, v) => {
            use super::parser::Op;
            let v = *v;
            match op {
                Op::Eq => (lo <= v && v <= hi, lo != hi || lo != v),
                Op::Lt => (lo < v, hi >= v),
                Op::Le => (lo <= v, hi > v),
                Op::Gt => (hi > v, lo <= v),
                Op::Ge => (hi >= v, lo < v),
                _ => (true, true),
            }
        }
        Matcher::NumIn(vs) => (
            vs.iter().any(|v| lo <= *v && *v <= hi),
            lo != hi || !vs.contains(&lo),
        ),
        _ => (true, true),
    };
    if c.negate {
        (may_miss, may_match)
    } else {
        (may_match, may_miss)
    }
}

/// The regions of one fact's values where the check may be true and may be false.
fn split<const N: usize>(values: [(u32, Truth); N], set: fn(&mut Region, u32)) -> (Region, Region) {
    let (mut yes, mut no) = (0, 0);
    for (bit, (t, f)) in values {
        if t {
            yes |= bit;
        }
        if f {
            no |= bit;
        }
    }
    let region = |bits| {
        let mut r = Region::top();
        set(&mut r, bits);
        if r.is_bottom() { Region::bottom() } else { r }
    };
    (region(yes), region(no))
}

/// A check decided whatever the event: where it may be true, and where false.
fn decided((may_match, may_miss): Truth) -> (Region, Region) {
    let region = |may| if may { Region::top() } else { Region::bottom() };
    (region(may_match), region(may_miss))
}

fn check_regions(c: &CheckNode, t: EventType) -> (Region, Region) {
    let unbounded = (Region::top(), Region::top());
    if c.any_ancestor || !c.transformers.is_empty() {
        return unbounded;
    }
    if !c.field.id.info().available {
        // A field this agent never has a value for: the check is decided.
        return decided(on_value(c, &FieldValue::None));
    }
    if c.field.arg != FieldArg::None {
        return unbounded;
    }
    let kind = t.kind();
    let is_open = kind == EventKind::Open;
    let is_connect = kind == EventKind::Connect;
    let has_result = is_open || is_connect || kind == EventKind::Syscall;
    let str_v = |s: &'static str| FieldValue::Str(s.into());
    let scopes = |r: &mut Region, bits: u32| r.scopes = bits as u8;
    let access = |r: &mut Region, bits: u32| r.access = bits;
    let results = |r: &mut Region, bits: u32| r.results = bits;
    let families = |r: &mut Region, bits: u32| r.families = bits;
    let files = |r: &mut Region, bits: u32| r.files = bits;
    let ok = filter::RESULT_OK;
    let failed = filter::RESULT_FAILED;
    match c.field.id {
        FieldId::ContainerId | FieldId::ContainerFullId => split(
            [
                (SCOPE_HOST as u32, on_value(c, &str_v("host"))),
                (SCOPE_CONTAINER as u32, on_any_string_but(c, "host")),
            ],
            scopes,
        ),
        FieldId::EvtIsOpenRead | FieldId::EvtIsOpenWrite if is_open => {
            let read = c.field.id == FieldId::EvtIsOpenRead;
            let value = |mode: u64| {
                let (r, w) = (matches!(mode, 0 | 2), matches!(mode, 1 | 2));
                on_value(c, &FieldValue::Bool(if read { r } else { w }))
            };
            split(
                [0u64, 1, 2, 3].map(|mode| (filter::access_bit(mode), value(mode))),
                access,
            )
        }
        FieldId::FdNum if is_open => split(
            [
                (ok, on_range(c, 0, i64::MAX as i128)),
                (failed, on_value(c, &FieldValue::I64(-1))),
            ],
            results,
        ),
        FieldId::EvtRawRes if has_result => split(
            [
                (ok, on_range(c, 0, i64::MAX as i128)),
                (failed, on_range(c, i64::MIN as i128, -1)),
            ],
            results,
        ),
        FieldId::EvtFailed if has_result => split(
            [
                (ok, on_value(c, &FieldValue::Bool(false))),
                (failed, on_value(c, &FieldValue::Bool(true))),
            ],
            results,
        ),
        FieldId::EvtRes if has_result => split(
            [
                (ok, on_value(c, &str_v("SUCCESS"))),
                (failed, on_any_string_but(c, "SUCCESS")),
            ],
            results,
        ),
        // Traffic marks its socket connected when it succeeds (see `fd.connected`); a
        // failed call's fd may be no socket at all.
        FieldId::FdConnected if t.moves_data() => split(
            [
                (ok, on_value(c, &FieldValue::Bool(true))),
                (failed, (true, true)),
            ],
            results,
        ),
        FieldId::FdSockfamily | FieldId::FdTypeChar | FieldId::FdType if is_connect => {
            // The field's value for a unix, IPv4 and IPv6 socket; none for others.
            let [unix, v4, v6] = match c.field.id {
                FieldId::FdSockfamily => ["unix", "ip", "ip"],
                FieldId::FdTypeChar => ["u", "4", "6"],
                _ => ["unix", "ipv4", "ipv6"],
            };
            split(
                [
                    (filter::FAMILY_UNIX, on_value(c, &str_v(unix))),
                    (filter::FAMILY_INET, on_value(c, &str_v(v4))),
                    (filter::FAMILY_INET6, on_value(c, &str_v(v6))),
                    (filter::FAMILY_OTHER, on_value(c, &FieldValue::None)),
                ],
                families,
            )
        }
        // An open's descriptor is a directory with `O_DIRECTORY`, a file without.
        FieldId::FdTypeChar | FieldId::FdType if is_open => {
            let [file, directory] = if c.field.id == FieldId::FdTypeChar {
                ["f", "d"]
            } else {
                ["file", "directory"]
            };
            split(
                [
                    (kill::FILE, on_value(c, &str_v(file))),
                    (kill::DIRECTORY, on_value(c, &str_v(directory))),
                ],
                files,
            )
        }
        FieldId::FdName | FieldId::FdNameRaw | FieldId::FdDirectory | FieldId::FdFilename
            if is_open && !c.negate =>
        {
            match path_bound(c) {
                Some(path) => {
                    let mut yes = Region::top();
                    yes.path = path;
                    (yes, Region::top())
                }
                None => unbounded,
            }
        }
        // A connect's server and remote port are its destination's.
        FieldId::FdSport | FieldId::FdRport | FieldId::FdPort if is_connect => {
            let ports: BTreeSet<u16> = match &c.matcher {
                Matcher::NumCmp(super::parser::Op::Eq, v) => {
                    u16::try_from(*v).into_iter().collect()
                }
                Matcher::NumIn(vs) => vs.iter().filter_map(|v| u16::try_from(*v).ok()).collect(),
                _ => return unbounded,
            };
            let mut only = Region::top();
            only.ports = PortBound::Only(ports.clone());
            let mut except = Region::top();
            except.ports = PortBound::Except(ports).normalized();
            let (mut yes, no) = if c.negate {
                (except, only)
            } else {
                (only, except)
            };
            // A connect without an IP destination has no port: the check is false
            // there, negated or not.
            yes.families = IP_FAMILIES;
            (yes, no)
        }
        FieldId::FdSip
        | FieldId::FdRip
        | FieldId::FdIp
        | FieldId::FdNet
        | FieldId::FdSnet
        | FieldId::FdRnet
            if is_connect =>
        {
            let Matcher::Ip(nets) = &c.matcher else {
                return unbounded;
            };
            // Inside the networks: an IP socket whose destination is in one of them.
            let mut inside = Region::top();
            inside.within = Some(nets.to_vec());
            // Not inside (or no address): anything but such a destination.
            let mut not_inside = Region::top();
            not_inside.excluded = nets.to_vec();
            // A connect without an IP destination has no address: the check is false
            // there, negated (`!=`) or not.
            let (mut yes, no) = if c.negate {
                (not_inside, inside)
            } else {
                (inside, not_inside)
            };
            yes.families = IP_FAMILIES;
            (yes, no)
        }
        _ => unbounded,
    }
}

/// The paths a (not negated) check on `fd.name`, `fd.nameraw` or `fd.directory` can be
/// true on, for the paths the kernel judges (absolute, normalized: for them the three
/// fields are the path, the path, and all of it before its last `/`); `None` when the
/// check bounds nothing.
fn path_bound(c: &CheckNode) -> Option<PathBound> {
    let directory = c.field.id == FieldId::FdDirectory;
    let none = || std::iter::empty::<String>();
    if c.field.id == FieldId::FdFilename {
        return match &c.matcher {
            Matcher::StrEq(v) => Some(PathBound::only(none(), none(), [v.to_string()])),
            Matcher::StrIn(set) => Some(PathBound::only(
                none(),
                none(),
                set.iter().map(|n| n.to_string()),
            )),
            _ => None,
        };
    }
    // A directory's files are below it; the root's are below "/".
    let below = |d: &str| {
        if d.ends_with('/') {
            d.to_string()
        } else {
            format!("{d}/")
        }
    };
    let prefixes = |p: Vec<String>| PathBound::only(none(), p, none());
    Some(match &c.matcher {
        Matcher::StrEq(v) if directory => prefixes(vec![below(v)]),
        Matcher::StrIn(set) if directory => prefixes(set.iter().map(|d| below(d)).collect()),
        Matcher::StrEq(v) => PathBound::only([v.to_string()], none(), none()),
        Matcher::StrIn(set) => PathBound::only(set.iter().map(|p| p.to_string()), none(), none()),
        // A directory that starts with `s` belongs to a path that does.
        Matcher::StartsWith { patterns, .. } => {
            prefixes(patterns.iter().map(|p| p.to_string()).collect())
        }
        Matcher::PMatch(set) if directory => prefixes(set.iter().map(|d| below(d)).collect()),
        Matcher::PMatch(set) => PathBound::only(
            set.iter().map(|p| p.to_string()),
            set.iter().map(|d| below(d)),
            none(),
        ),
        Matcher::Glob(g) if !g.literal_prefix().is_empty() => {
            prefixes(vec![g.literal_prefix().to_string()])
        }
        // Text that no judged path holds (`..`, `//`, `/.`): only paths the agent
        // judges can match.
        Matcher::Contains { patterns, ci, .. }
            if !ci
                && patterns
                    .iter()
                    .all(|p| ["..", "//", "/."].iter().any(|odd| p.contains(odd))) =>
        {
            PathBound::only(none(), none(), none())
        }
        _ => return None,
    })
}

/// What one scope of a kind admits, with the rules that keep each fact open.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeSpec {
    pub admits: ScopeFilter,
    /// Destinations no rule of this scope can match (connects).
    pub excluded: Vec<Net>,
    /// The rules whose region reaches this scope.
    pub rules: Vec<String>,
    /// Per fact left fully open, the first rule that leaves it so.
    pub open_facts: Vec<(&'static str, String)>,
    /// The paths the scope's opens may have (the path table's entries).
    pub paths: PathBound,
    /// The destination ports the scope's connects may have (the port table's).
    pub ports: PortBound,
}

/// One kind's filter.
#[derive(Clone, Debug, PartialEq)]
pub struct KindSpec {
    pub kind: EventKind,
    /// `[host, other]`, as `filter::SCOPE_*`.
    pub scopes: [ScopeSpec; filter::SCOPES],
}

impl KindSpec {
    /// The kernel's table entry.
    pub fn table(&self) -> KindFilter {
        KindFilter {
            active: 1,
            _pad: 0,
            scopes: [self.scopes[0].admits, self.scopes[1].admits],
        }
    }
}

/// The filter of every filtered kind, derived from the active rules.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelFilter {
    pub kinds: Vec<KindSpec>,
}

/// The facts the kernel judges an event by, as the kernel programs read them.
#[derive(Clone, Debug)]
pub struct Facts {
    pub kind: EventKind,
    pub host: bool,
    pub syscall: u16,
    pub flags: u64,
    pub result: i64,
    pub family: u16,
    pub address: Option<IpAddr>,
    /// A connect's destination port.
    pub port: u16,
    /// An open's path as the caller gave it (none for an open no syscall made).
    pub path: Option<Vec<u8>>,
}

impl Facts {
    /// The facts of a decoded event, with the scope the agent gives its container.
    pub fn of(e: &EnrichedEvent) -> Option<Facts> {
        let host = e.container.is_host();
        match &e.event.detail {
            Detail::Open(o) => Some(Facts {
                kind: EventKind::Open,
                host,
                syscall: o.syscall.syscall_id().unwrap_or(0),
                // The kernel records creat with the flags creat means; a recorded
                // event may say 0, which the engine reads the same way.
                flags: if o.syscall == EventType::Creat && o.flags == 0 {
                    CREAT_FLAGS
                } else {
                    o.flags
                },
                result: o.result,
                family: 0,
                address: None,
                port: 0,
                path: o.enhanced.is_none().then(|| o.path.clone()),
            }),
            Detail::Syscall(x) => Some(Facts {
                kind: EventKind::Syscall,
                host,
                syscall: x.syscall.syscall_id().unwrap_or(0),
                flags: 0,
                result: x.result,
                family: 0,
                address: None,
                port: 0,
                path: None,
            }),
            Detail::Connect(c) => Some(Facts {
                kind: EventKind::Connect,
                host,
                syscall: 0,
                flags: 0,
                result: c.result,
                family: c.family.raw(),
                address: c.address,
                port: c.port,
                path: None,
            }),
            _ => None,
        }
    }
}

/// The events of `kind` a rule needs counted rather than matched: a rule on
/// `container_stats` that reads a container's connect rates needs every connect of
/// every container to reach the agent, whatever else it filters.
fn counted_events(rule: &CompiledRule, kind: EventKind) -> Option<Region> {
    counted_types(rule)
        .any(|t| t.kind() == kind)
        .then(|| Region {
            scopes: SCOPE_CONTAINER,
            ..Region::top()
        })
}

/// The event types a rule needs from the kernel to count, besides those it matches.
pub fn counted_types(rule: &CompiledRule) -> impl Iterator<Item = EventType> {
    let mut reads_rates = false;
    for_each_check(rule.condition_node(), &mut |c| {
        reads_rates |= matches!(
            c.field.id,
            FieldId::StatConnectsPerMin
                | FieldId::StatFailedConnectsPerMin
                | FieldId::StatDestinationsPerMin
        );
    });
    reads_rates.then_some(EventType::Connect).into_iter()
}

impl KernelFilter {
    /// Derives the filter from the engine's active rules.
    pub fn of_rules(rules: &[CompiledRule]) -> KernelFilter {
        let kinds = FILTERED_KINDS
            .iter()
            .map(|&kind| {
                let mut per_rule = Vec::new();
                for rule in rules {
                    let mut region = Region::bottom();
                    for &t in rule.event_types.iter().filter(|t| t.kind() == kind) {
                        let (mut yes, _) = regions(&specialize(rule.condition_node(), t), t);
                        yes.syscalls &= filter::syscall_bit(t.syscall_id().unwrap_or(0));
                        region = region.join(&yes);
                    }
                    if !region.is_bottom() {
                        per_rule.push((rule.name.as_str(), region));
                    }
                    if let Some(needed) = counted_events(rule, kind) {
                        per_rule.push((rule.name.as_str(), needed));
                    }
                }
                let host = scope_spec(kind, &per_rule, SCOPE_HOST);
                let other = scope_spec(kind, &per_rule, ALL_SCOPES);
                KindSpec {
                    kind,
                    scopes: [host, other],
                }
            })
            .collect();
        KernelFilter { kinds }
    }

    /// Would the kernel pass an event with these facts? The user-space model of the
    /// programs' checks (the same `ScopeFilter` methods, the networks as the rules
    /// compare them), for the differential tests.
    pub fn passes(&self, facts: &Facts) -> bool {
        let Some(spec) = self.kinds.iter().find(|k| k.kind == facts.kind) else {
            return true;
        };
        let scope = &spec.scopes[if facts.host {
            filter::SCOPE_HOST
        } else {
            filter::SCOPE_OTHER
        }];
        let f = &scope.admits;
        match facts.kind {
            EventKind::Open => {
                let path = match &facts.path {
                    Some(p) if f.paths & filter::PATHS_BOUNDED != 0 => {
                        // The kernel reads at most this much of a path (see
                        // `Applies::admits_path`); a longer one passes.
                        p.len() + 1 >= filter::MAX_FILTER_PATH
                            || filter::path_needs_agent(p)
                            || scope.paths.holds(p)
                    }
                    _ => true,
                };
                f.admits_open_entry(facts.syscall, facts.flags)
                    && f.admits_result(facts.result)
                    && path
            }
            EventKind::Connect => {
                let excluded = matches!(facts.family, 2 | 10)
                    && facts.address.is_some_and(|a| {
                        scope
                            .excluded
                            .iter()
                            .any(|(net, bits)| ip_in(a, *net, *bits))
                    });
                let ip = matches!(facts.family, 2 | 10);
                f.admits_connect(facts.family, facts.result)
                    && !excluded
                    && (!ip || scope.ports.holds(facts.port))
            }
            EventKind::Syscall => f.admits_syscall(facts.syscall) && f.admits_result(facts.result),
            _ => true,
        }
    }

    /// Could an event of type `t` pass, in some scope?
    pub fn may_admit(&self, t: EventType) -> bool {
        let Some(spec) = self.kinds.iter().find(|k| k.kind == t.kind()) else {
            return true;
        };
        let bit = filter::syscall_bit(t.syscall_id().unwrap_or(0));
        spec.scopes.iter().any(|s| s.admits.syscalls & bit != 0)
    }

    /// What `monitor rules list --kernel-filter` prints.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for spec in &self.kinds {
            for (name, scope) in ["host", "containers (and unclassified cgroups)"]
                .iter()
                .zip(&spec.scopes)
            {
                let _ = write!(out, "{} events on {name}: ", spec.kind);
                if scope.rules.is_empty() {
                    let _ = writeln!(out, "all filtered out (no active rule can match)");
                    continue;
                }
                let _ = writeln!(out, "{}", describe_admits(spec.kind, scope));
                for (fact, rule) in &scope.open_facts {
                    let _ = writeln!(out, "    any {fact}: kept open by rule \"{rule}\"");
                }
                let _ = writeln!(out, "    rules: {}", scope.rules.join(", "));
            }
        }
        out
    }
}

fn describe_admits(kind: EventKind, scope: &ScopeSpec) -> String {
    let f = &scope.admits;
    let names = |bits: u32, all: &[(u32, &str)]| -> String {
        let v: Vec<&str> = all
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect();
        v.join("|")
    };
    let results = names(
        f.results,
        &[(filter::RESULT_OK, "ok"), (filter::RESULT_FAILED, "failed")],
    );
    let syscalls: Vec<&str> = kind
        .types()
        .filter(|t| f.syscalls & filter::syscall_bit(t.syscall_id().unwrap_or(0)) != 0)
        .map(EventType::as_str)
        .collect();
    match kind {
        EventKind::Syscall => format!(
            "passes syscall {}, result {results}",
            if syscalls.is_empty() {
                "none".to_string()
            } else {
                syscalls.join("|")
            }
        ),
        EventKind::Open => {
            let access = names(
                f.access,
                &[
                    (filter::access_bit(0), "read"),
                    (filter::access_bit(1), "write"),
                    (filter::access_bit(2), "read-write"),
                    (filter::access_bit(3), "mode-3"),
                ],
            );
            format!(
                "passes syscall {}, access {access}, result {results}, path {}",
                syscalls.join("|"),
                describe_paths(&scope.paths)
            )
        }
        _ => {
            let families = names(
                f.families,
                &[
                    (filter::FAMILY_UNIX, "unix"),
                    (filter::FAMILY_INET, "inet"),
                    (filter::FAMILY_INET6, "inet6"),
                    (filter::FAMILY_OTHER, "other"),
                ],
            );
            let nets: Vec<String> = scope
                .excluded
                .iter()
                .map(|(a, b)| format!("{a}/{b}"))
                .collect();
            let ports =
                |set: &BTreeSet<u16>| set.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
            format!(
                "passes family {families}, result {results}, destination port {}; destinations dropped: {}",
                match &scope.ports {
                    PortBound::Any => "any".to_string(),
                    PortBound::Only(set) => format!("in {}", ports(set)),
                    PortBound::Except(set) => format!("not in {}", ports(set)),
                },
                if nets.is_empty() {
                    "none".to_string()
                } else {
                    nets.join(", ")
                }
            )
        }
    }
}

/// The path table, as `rules list --kernel-filter` shows it.
fn describe_paths(paths: &PathBound) -> String {
    const SHOWN: usize = 12;
    let PathBound::Only {
        exact,
        prefixes,
        names,
    } = paths
    else {
        return "any".to_string();
    };
    let mut items: Vec<String> = exact.iter().cloned().collect();
    items.extend(prefixes.iter().map(|p| format!("{p}*")));
    items.extend(names.iter().map(|n| format!("*/{n}")));
    let more = items.len().saturating_sub(SHOWN);
    items.truncate(SHOWN);
    let mut text = format!(
        "in {} (relative ones, and ones with `..`, `//` or `/.`, always",
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(" ")
        }
    );
    if more > 0 {
        let _ = write!(text, "; {more} more entries");
    }
    text.push(')');
    text
}

fn scope_spec(kind: EventKind, per_rule: &[(&str, Region)], scopes: u8) -> ScopeSpec {
    let all_syscalls = kind.types().fold(0, |m, t| {
        m | filter::syscall_bit(t.syscall_id().unwrap_or(0))
    });
    let mut joined = Region::bottom();
    let mut rules = Vec::new();
    let mut open_facts: Vec<(&'static str, String)> = Vec::new();
    for (name, region) in per_rule.iter().filter(|(_, r)| r.scopes & scopes != 0) {
        joined = joined.join(region);
        rules.push(name.to_string());
        let mut note = |fact: &'static str, open: bool| {
            if open && !open_facts.iter().any(|(f, _)| *f == fact) {
                open_facts.push((fact, name.to_string()));
            }
        };
        match kind {
            EventKind::Open => {
                note("access mode", region.access & ALL_ACCESS == ALL_ACCESS);
                note("result", region.results & ALL_RESULTS == ALL_RESULTS);
                note("path", region.path == PathBound::Any);
            }
            EventKind::Syscall => {
                note("result", region.results & ALL_RESULTS == ALL_RESULTS);
            }
            _ => {
                note("family", region.families & ALL_FAMILIES == ALL_FAMILIES);
                let ip = region.families & (filter::FAMILY_INET | filter::FAMILY_INET6) != 0;
                note("destination", ip && region.excluded.is_empty());
                note("destination port", ip && region.ports == PortBound::Any);
            }
        }
    }
    if joined.is_bottom() {
        return ScopeSpec {
            admits: ScopeFilter::default(),
            excluded: Vec::new(),
            rules,
            open_facts,
            paths: PathBound::only([], [], []),
            ports: PortBound::Any,
        };
    }
    let paths = if kind == EventKind::Open && joined.path.entries() <= MAX_PATH_ENTRIES {
        joined.path
    } else {
        PathBound::Any
    };
    let ports = if kind == EventKind::Connect && joined.ports.entries() <= MAX_PORT_ENTRIES {
        joined.ports
    } else {
        PortBound::Any
    };
    ScopeSpec {
        admits: ScopeFilter {
            syscalls: joined.syscalls & all_syscalls,
            access: joined.access & ALL_ACCESS,
            results: joined.results & ALL_RESULTS,
            families: joined.families & ALL_FAMILIES,
            paths: match &paths {
                PathBound::Any => 0,
                PathBound::Only { names, .. } if !names.is_empty() => {
                    filter::PATHS_BOUNDED | filter::PATHS_NAMES
                }
                PathBound::Only { .. } => filter::PATHS_BOUNDED,
            },
            ports: match &ports {
                PortBound::Any => 0,
                PortBound::Only(_) => filter::PORTS_ONLY,
                PortBound::Except(_) => filter::PORTS_EXCEPT,
            },
            _pad: 0,
        },
        excluded: joined.excluded,
        rules,
        open_facts,
        paths,
        ports,
    }
}
