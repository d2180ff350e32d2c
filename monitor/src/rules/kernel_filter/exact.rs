//! Where the kernel decides a rule exactly: the under-approximation beside the
//! filter's over-approximation. A kill in the kernel may act only on events its rule
//! surely matches, so a rule gets an in-kernel kill only when the region of events it
//! matches is exactly a region the kernel's tables can hold.
//!
//! Each node gives the region where it is true and the region where it is false, each
//! only when that region is exact. A check on a fact the kernel reads, decided per
//! value of the fact, is exact both ways; a check on anything else (process names,
//! ancestors, ...) is exact neither way. `and` is exact where its parts are (a meet of
//! boxes is a box); `or` only where the join of its parts' boxes is their union
//! (they differ in one fact at most). `not` swaps the two.
use monitor_common::{ScopeFilter, filter, kill};

use super::{
    super::{
        CompiledRule,
        fields::FieldId,
        source::{EventType, FieldArg},
        specialize::specialize,
        tree::{CheckNode, Matcher, Node, ip_in},
    },
    ALL_RESULTS, IP_FAMILIES, MAX_PORT_ENTRIES, Net, PathBound, PortBound, Region, SCOPE_CONTAINER,
    SCOPE_HOST, check_regions,
};
use crate::event::EventKind;

/// The opens a rule matches, exactly, as a kill slot holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct KillRegion {
    /// `kill::SCOPE_HOST` and/or `kill::SCOPE_CONTAINER`.
    pub scopes: u32,
    /// The syscalls, access modes and results (`paths` is `PATHS_BOUNDED` when
    /// `paths` below is a list).
    pub admits: ScopeFilter,
    /// `kill::FILE` and/or `kill::DIRECTORY`.
    pub files: u32,
    /// Whole paths (never prefixes or names); `Any` when the rule reads no path.
    pub paths: PathBound,
}

impl KillRegion {
    /// Would a slot of this region kill at an open with these facts? The user-space
    /// model of the exit program's judgement (`kill::judge` in the kernel crate), for
    /// the differential tests: the scope as the cgroup tables give it, the syscall,
    /// the access mode and `O_DIRECTORY`, the result, and the path as given, whole.
    pub fn holds(&self, facts: &super::Facts) -> bool {
        let path = match &self.paths {
            PathBound::Any => true,
            PathBound::Only { exact, .. } => facts.path.as_ref().is_some_and(|p| {
                p.len() + 1 < filter::MAX_FILTER_PATH && exact.iter().any(|e| e.as_bytes() == p)
            }),
        };
        facts.kind == EventKind::Open
            && self.scopes & scope_bit(facts) != 0
            && self.admits.admits_open_entry(facts.syscall, facts.flags)
            && self.admits.admits_result(facts.result)
            && self.files & kill::file_bit(facts.flags) != 0
            && path
    }
}

/// The IP connects a rule matches, exactly, as a deny slot holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct DenyRegion {
    /// `kill::SCOPE_HOST` and/or `kill::SCOPE_CONTAINER`.
    pub scopes: u32,
    /// `filter::FAMILY_INET` and/or `filter::FAMILY_INET6`.
    pub families: u32,
    pub ports: PortBound,
    /// The networks the destination must be inside; `None`: any.
    pub within: Option<Vec<Net>>,
    /// The networks the destination must be outside.
    pub excluded: Vec<Net>,
}

/// Networks one deny slot may hold, per bound (the network tables are shared).
const MAX_DENY_NETWORKS: usize = 64;

impl DenyRegion {
    /// Would a slot of this region refuse a connect with these facts? The user-space
    /// model of the cgroup programs' judgement (`deny::judge` in the kernel crate),
    /// for the differential tests: the scope, the family, the destination port and
    /// address (an IPv4-mapped IPv6 address is inside the IPv4 networks it maps to).
    pub fn holds(&self, facts: &super::Facts) -> bool {
        let inside = |nets: &[Net]| {
            facts
                .address
                .is_some_and(|a| nets.iter().any(|&(n, bits)| ip_in(a, n, bits)))
        };
        facts.kind == EventKind::Connect
            && self.scopes & scope_bit(facts) != 0
            && self.families & filter::family_bit(facts.family) != 0
            && self.ports.holds(facts.port)
            && self.within.as_deref().is_none_or(inside)
            && !inside(&self.excluded)
    }
}

/// The region of IP connects `rule` matches within a response's `scope`, when the
/// kernel decides it exactly at the connect, before it happens; otherwise why not.
pub fn deny_region(rule: &CompiledRule, scope: Option<&Node>) -> Result<DenyRegion, String> {
    if let Some(other) = rule
        .event_types
        .iter()
        .find(|t| t.kind() != EventKind::Connect)
    {
        return Err(format!(
            "the rule also matches {} events: deny acts at connects (cgroup programs); \
             opens and execs need the bpf LSM, which this agent does not attach yet",
            other.as_str()
        ));
    }
    let region = exact_region(rule, scope)?;
    if region.results & ALL_RESULTS != ALL_RESULTS {
        return Err(
            "the rule depends on the connect's result, and a deny decides before \
             the connect has one"
                .to_string(),
        );
    }
    if region.families & !IP_FAMILIES != 0 {
        return Err(
            "the rule also matches connects without an IP destination (unix \
             sockets), which the cgroup programs do not see; `fd.typechar in (4, 6)` \
             keeps it to IP"
                .to_string(),
        );
    }
    if region.ports.entries() > MAX_PORT_ENTRIES {
        return Err(format!(
            "the rule names more than the {MAX_PORT_ENTRIES} ports a deny slot holds"
        ));
    }
    let within_len = region.within.as_ref().map_or(0, Vec::len);
    if within_len.max(region.excluded.len()) > MAX_DENY_NETWORKS {
        return Err(format!(
            "the rule names more than the {MAX_DENY_NETWORKS} networks a deny slot holds"
        ));
    }
    Ok(DenyRegion {
        scopes: kernel_scopes(&region),
        families: region.families & IP_FAMILIES,
        ports: region.ports,
        within: region.within,
        excluded: region.excluded,
    })
}

/// Where the rule (within `scope`) is true, exactly, over all its event types.
fn exact_region(rule: &CompiledRule, scope: Option<&Node>) -> Result<Region, String> {
    let condition = match scope {
        Some(scope) => Node::And(vec![rule.condition_node().clone(), scope.clone()].into()),
        None => rule.condition_node().clone(),
    };
    let mut region = Region::bottom();
    let mut blocker = None;
    for &t in &rule.event_types {
        let Some(mut yes) = exact(&specialize(&condition, t), t, &mut blocker).yes else {
            return Err(match blocker {
                Some((_, check)) => format!("the kernel cannot decide `{check}`"),
                None => "the kernel cannot decide the rule's condition".to_string(),
            });
        };
        yes.syscalls &= filter::syscall_bit(t.syscall_id().unwrap_or(0));
        region = join(&region, &yes).ok_or_else(|| {
            format!(
                "the rule's {} events per syscall differ in more than the syscall",
                t.kind().name()
            )
        })?;
    }
    if region.is_bottom() {
        return Err("the rule matches no event the kernel judges".to_string());
    }
    Ok(region)
}

/// The slot scope an event's cgroup is in (the agent's tables classify it).
fn scope_bit(facts: &super::Facts) -> u32 {
    if facts.host {
        kill::SCOPE_HOST
    } else {
        kill::SCOPE_CONTAINER
    }
}

fn kernel_scopes(region: &Region) -> u32 {
    let scope = |ours: u8, theirs: u32| if region.scopes & ours != 0 { theirs } else { 0 };
    scope(SCOPE_HOST, kill::SCOPE_HOST) | scope(SCOPE_CONTAINER, kill::SCOPE_CONTAINER)
}

/// Where a node is true and where false, each when exact.
struct Exact {
    yes: Option<Region>,
    no: Option<Region>,
}

/// The region of opens `rule` matches within a response's `scope`, when the kernel
/// decides it exactly; otherwise why not, in words for `rules list --responses`.
pub fn kill_region(rule: &CompiledRule, scope: Option<&Node>) -> Result<KillRegion, String> {
    if let Some(other) = rule
        .event_types
        .iter()
        .find(|t| t.kind() != EventKind::Open)
    {
        return Err(format!(
            "the rule also matches {} events, and the kernel kills only at opens",
            other.as_str()
        ));
    }
    let region = exact_region(rule, scope)?;
    let paths = match &region.path {
        PathBound::Only {
            names, prefixes, ..
        } if !names.is_empty() || !prefixes.is_empty() => {
            return Err("kill slots hold whole paths, not prefixes or file names".to_string());
        }
        PathBound::Only { exact, .. }
            if exact
                .iter()
                .any(|p| p.len() + 1 > filter::MAX_FILTER_PATH - 1) =>
        {
            return Err(format!(
                "a path is longer than the {} bytes the kernel judges",
                filter::MAX_FILTER_PATH - 2
            ));
        }
        p => p.clone(),
    };
    Ok(KillRegion {
        scopes: kernel_scopes(&region),
        admits: ScopeFilter {
            syscalls: region.syscalls,
            access: region.access,
            results: region.results,
            families: u32::MAX,
            paths: if matches!(paths, PathBound::Any) {
                0
            } else {
                filter::PATHS_BOUNDED
            },
            ports: 0,
            _pad: 0,
        },
        files: region.files,
        paths,
    })
}

/// `blocker`: whether the check named is on a fact the kernel reads, and the check.
fn exact(node: &Node, t: EventType, blocker: &mut Option<(bool, String)>) -> Exact {
    match node {
        Node::Const(true) => Exact {
            yes: Some(Region::top()),
            no: Some(Region::bottom()),
        },
        Node::Const(false) => Exact {
            yes: Some(Region::bottom()),
            no: Some(Region::top()),
        },
        Node::Not(inner) => {
            let e = exact(inner, t, blocker);
            Exact {
                yes: e.no,
                no: e.yes,
            }
        }
        Node::And(items) => items.iter().fold(
            Exact {
                yes: Some(Region::top()),
                no: Some(Region::bottom()),
            },
            |acc, item| {
                let e = exact(item, t, blocker);
                Exact {
                    yes: acc.yes.zip(e.yes).and_then(|(a, b)| meet(&a, &b)),
                    no: acc.no.zip(e.no).and_then(|(a, b)| join(&a, &b)),
                }
            },
        ),
        Node::Or(items) => items.iter().fold(
            Exact {
                yes: Some(Region::bottom()),
                no: Some(Region::top()),
            },
            |acc, item| {
                let e = exact(item, t, blocker);
                Exact {
                    yes: acc.yes.zip(e.yes).and_then(|(a, b)| join(&a, &b)),
                    no: acc.no.zip(e.no).and_then(|(a, b)| meet(&a, &b)),
                }
            },
        ),
        Node::Memo(m) => exact(&m.node, t, blocker),
        Node::Check(c) => {
            let e = exact_check(c, t);
            // Named in the refusal: a check on a fact the kernel does not read at all
            // before one it reads but cannot decide one way (`not fd.name in ...`).
            let unknown = e.yes.is_none() && e.no.is_none();
            let first = blocker.as_ref().is_none_or(|(known, _)| *known && unknown);
            if (e.yes.is_none() || e.no.is_none()) && first {
                *blocker = Some((!unknown, describe(c)));
            }
            e
        }
    }
}

fn exact_check(c: &CheckNode, t: EventType) -> Exact {
    let none = Exact {
        yes: None,
        no: None,
    };
    if c.any_ancestor || !c.transformers.is_empty() || c.field.arg != FieldArg::None {
        return none;
    }
    let (yes, no) = check_regions(c, t);
    if is_path_field(c.field.id) && c.field.id.info().available {
        // Where a path check is true is exact for the paths the kernel judges, when
        // it names whole paths or prefixes; where it is false is no region at all.
        return Exact {
            yes: exact_path_check(c).then_some(yes),
            no: None,
        };
    }
    // A check decided per value of one fact: each value on one side only.
    let complementary = yes.meet(&no).is_bottom() && yes.join(&no) == Region::top();
    if complementary {
        Exact {
            yes: Some(yes),
            no: Some(no),
        }
    } else {
        none
    }
}

fn is_path_field(id: FieldId) -> bool {
    matches!(
        id,
        FieldId::FdName | FieldId::FdNameRaw | FieldId::FdDirectory | FieldId::FdFilename
    )
}

/// A path check whose bound (`path_bound`) is exactly the paths it is true on, as a
/// kill slot holds them: whole paths (`=`, `in`). A slot compares the path's bytes
/// with whole paths only, which needs no look at how the path is written (the bytes
/// of a path such as `/etc/ssl/../shadow` start with `/etc/ssl/`, yet it is not
/// below it); so no prefix (`startswith`, `pmatch`), directory, file name, glob or
/// substring.
fn exact_path_check(c: &CheckNode) -> bool {
    !c.negate
        && matches!(c.field.id, FieldId::FdName | FieldId::FdNameRaw)
        && matches!(c.matcher, Matcher::StrEq(_) | Matcher::StrIn(_))
}

fn describe(c: &CheckNode) -> String {
    let field = c.field.id.info().name;
    if c.any_ancestor {
        format!("{field} (any ancestor)")
    } else {
        field.to_string()
    }
}

/// The meet of two exact regions, when it is exact (file-name bounds meet paths only
/// approximately).
fn meet(a: &Region, b: &Region) -> Option<Region> {
    (!has_names(a) && !has_names(b)).then(|| a.meet(b))
}

fn has_names(r: &Region) -> bool {
    matches!(&r.path, PathBound::Only { names, .. } if !names.is_empty())
}

/// The union of two exact regions, when it is one region: one holds the other, or
/// they differ in one fact only, whose sets join exactly.
fn join(a: &Region, b: &Region) -> Option<Region> {
    if a.is_bottom() {
        return Some(b.clone());
    }
    if b.is_bottom() || a == b {
        return Some(a.clone());
    }
    let differs = [
        a.scopes != b.scopes,
        a.syscalls != b.syscalls,
        a.access != b.access,
        a.results != b.results,
        a.families != b.families,
        a.files != b.files,
        a.excluded != b.excluded,
        a.within != b.within,
        a.path != b.path,
        a.ports != b.ports,
    ];
    if differs.iter().filter(|d| **d).count() > 1 || a.excluded != b.excluded {
        return None;
    }
    if a.path != b.path && (has_names(a) || has_names(b)) {
        return None;
    }
    Some(a.join(b))
}
