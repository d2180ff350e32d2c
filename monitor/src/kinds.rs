//! The one table of event kinds and event types. Everything that lists, counts or maps
//! kinds and types (the `--kinds` names, kind sets, the kernel's switches, `evt.type`
//! names, type masks, which syscall id a record carries) is generated here from a
//! single declaration, and compile-time checks tie it to the kernel's ids in
//! `monitor_common`: a kind declared on one side and forgotten on the other, or a
//! table that outgrows its bit set, does not build.
use std::{fmt, str::FromStr};

use monitor_common::{KIND_SLOTS, kind, syscall};

macro_rules! event_kinds {
    ($($(#[$m:meta])* $variant:ident = $id:path, $name:literal, $default:ident;)+) => {
        /// What the sensor reports: one kernel record type each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum EventKind {
            $($(#[$m])* $variant = $id,)+
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &[EventKind] = &[$(EventKind::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)+
                }
            }

            /// The type a recorded event of this kind has when it names no
            /// syscall.
            pub fn default_type(self) -> EventType {
                match self {
                    $(EventKind::$variant => EventType::$default,)+
                }
            }

            /// The kind of a record's `kind` id.
            pub fn from_id(id: u16) -> Option<Self> {
                match id {
                    $($id => Some(EventKind::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    // variant = kernel id, `--kinds` name, default event type
    Exec = kind::EXEC, "exec", Execve;
    Fork = kind::FORK, "fork", Clone;
    Exit = kind::EXIT, "exit", Procexit;
    Connect = kind::CONNECT, "connect", Connect;
    Open = kind::OPEN, "open", Openat;
    /// The other syscalls Falco's rules name (ptrace, links, renames, removals,
    /// directories, module loads, sockets and their traffic, fd duplication,
    /// namespaces, setuid, chmod, bpf, userfaultfd, memfd_create).
    Syscall = kind::SYSCALL, "syscall", Ptrace;
    /// A container's resource usage and activity, made by the agent every
    /// `stats.interval` (not a kernel record).
    ContainerStats = kind::CONTAINER_STATS, "container_stats", ContainerStats;
}

/// The agent knows every kind the kernel declares, and a kind set
/// holds every kind slot.
const _: () = {
    let mut ids = [0u16; EventKind::ALL.len()];
    let mut i = 0;
    while i < ids.len() {
        ids[i] = EventKind::ALL[i] as u16;
        i += 1;
    }
    assert!(
        same_ids(&ids, kind::ALL),
        "EventKind and monitor_common::kind differ"
    );
    assert!(KIND_SLOTS <= KindSet::CAPACITY);
};

impl EventKind {
    /// Does the kernel produce this kind? (`container_stats` is the agent's.)
    pub fn from_kernel(self) -> bool {
        self != EventKind::ContainerStats
    }

    pub fn id(self) -> u16 {
        self as u16
    }

    /// The event types this kind produces, in table order.
    pub fn types(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(move |t| t.kind() == self)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown event kind `{s}` (known: {})", names.join(", "))
            })
    }
}

/// A set of event kinds (the `--kinds` filter, the kernel's enable switches), one bit
/// per kind id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindSet(u32);

impl KindSet {
    const CAPACITY: u32 = u32::BITS;

    pub fn all() -> Self {
        EventKind::ALL.iter().copied().collect()
    }
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & (1 << kind.id()) != 0
    }
    pub fn insert(&mut self, kind: EventKind) {
        self.0 |= 1 << kind.id();
    }
    pub fn iter(self) -> impl Iterator<Item = EventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .filter(move |k| self.contains(*k))
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<EventKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = EventKind>>(iter: I) -> Self {
        let mut set = KindSet::default();
        for kind in iter {
            set.insert(kind);
        }
        set
    }
}

macro_rules! event_types {
    ($($variant:ident = $name:literal, $kind:ident $(, syscall $id:path)?;)+) => {
        /// The `evt.type` values the sensor produces, with Falco's syscall names.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            /// Every type, in table order (its position is its bit in a [`TypeMask`]).
            pub const ALL: &[EventType] = &[$(EventType::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }

            /// The sensor event kind that produces this event type.
            pub fn kind(self) -> EventKind {
                match self {
                    $(EventType::$variant => EventKind::$kind,)+
                }
            }

            /// The type a record's syscall id stands for (exec and open records say
            /// which syscall made them).
            pub fn from_syscall_id(id: u16) -> Option<Self> {
                $($(if id == $id {
                    return Some(EventType::$variant);
                })?)+
                None
            }

            /// The syscall id a record of this type carries, where it carries one.
            pub fn syscall_id(self) -> Option<u16> {
                match self {
                    $(EventType::$variant => syscall_id!($($id)?),)+
                }
            }

            /// The syscall tracepoint whose exit reports this type, where a record
            /// says which syscall made it.
            pub fn exit_tracepoint(self) -> Option<&'static str> {
                match self {
                    $(EventType::$variant => exit_tracepoint!($name $(, $id)?),)+
                }
            }
        }

        /// Every record syscall id names exactly one type.
        const _: () = assert!(same_ids(&[$($($id,)?)+], syscall::ALL));
    };
}

macro_rules! syscall_id {
    () => {
        None
    };
    ($id:path) => {
        Some($id)
    };
}

macro_rules! exit_tracepoint {
    ($name:literal) => {
        None
    };
    ($name:literal, $id:path) => {
        Some(concat!("tracepoint/syscalls/sys_exit_", $name))
    };
}

/// Do two lists hold the same ids, each once?
const fn same_ids(a: &[u16], b: &[u16]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        let (mut in_a, mut in_b) = (0, 0);
        let mut j = 0;
        while j < a.len() {
            in_a += (a[j] == a[i]) as usize;
            in_b += (b[j] == a[i]) as usize;
            j += 1;
        }
        if in_a != 1 || in_b != 1 {
            return false;
        }
        i += 1;
    }
    true
}

event_types! {
    // variant = `evt.type`, kind[, the record's syscall id]
    Execve = "execve", Exec, syscall syscall::EXECVE;
    Execveat = "execveat", Exec, syscall syscall::EXECVEAT;
    Clone = "clone", Fork;
    Clone3 = "clone3", Fork;
    Fork = "fork", Fork;
    Vfork = "vfork", Fork;
    Procexit = "procexit", Exit;
    ContainerStats = "container_stats", ContainerStats;
    Connect = "connect", Connect;
    Open = "open", Open, syscall syscall::OPEN;
    Openat = "openat", Open, syscall syscall::OPENAT;
    Openat2 = "openat2", Open, syscall syscall::OPENAT2;
    Creat = "creat", Open, syscall syscall::CREAT;
    Ptrace = "ptrace", Syscall, syscall syscall::PTRACE;
    Symlink = "symlink", Syscall, syscall syscall::SYMLINK;
    Symlinkat = "symlinkat", Syscall, syscall syscall::SYMLINKAT;
    Link = "link", Syscall, syscall syscall::LINK;
    Linkat = "linkat", Syscall, syscall syscall::LINKAT;
    InitModule = "init_module", Syscall, syscall syscall::INIT_MODULE;
    FinitModule = "finit_module", Syscall, syscall syscall::FINIT_MODULE;
    Socket = "socket", Syscall, syscall syscall::SOCKET;
    Dup = "dup", Syscall, syscall syscall::DUP;
    Dup2 = "dup2", Syscall, syscall syscall::DUP2;
    Dup3 = "dup3", Syscall, syscall syscall::DUP3;
    Setns = "setns", Syscall, syscall syscall::SETNS;
    Unshare = "unshare", Syscall, syscall syscall::UNSHARE;
    Setuid = "setuid", Syscall, syscall syscall::SETUID;
    Chmod = "chmod", Syscall, syscall syscall::CHMOD;
    Fchmod = "fchmod", Syscall, syscall syscall::FCHMOD;
    Fchmodat = "fchmodat", Syscall, syscall syscall::FCHMODAT;
    Bpf = "bpf", Syscall, syscall syscall::BPF;
    Unlink = "unlink", Syscall, syscall syscall::UNLINK;
    Unlinkat = "unlinkat", Syscall, syscall syscall::UNLINKAT;
    Rename = "rename", Syscall, syscall syscall::RENAME;
    Renameat = "renameat", Syscall, syscall syscall::RENAMEAT;
    Renameat2 = "renameat2", Syscall, syscall syscall::RENAMEAT2;
    Mkdir = "mkdir", Syscall, syscall syscall::MKDIR;
    Mkdirat = "mkdirat", Syscall, syscall syscall::MKDIRAT;
    Rmdir = "rmdir", Syscall, syscall syscall::RMDIR;
    Userfaultfd = "userfaultfd", Syscall, syscall syscall::USERFAULTFD;
    Listen = "listen", Syscall, syscall syscall::LISTEN;
    Accept = "accept", Syscall, syscall syscall::ACCEPT;
    Accept4 = "accept4", Syscall, syscall syscall::ACCEPT4;
    Sendto = "sendto", Syscall, syscall syscall::SENDTO;
    Sendmsg = "sendmsg", Syscall, syscall syscall::SENDMSG;
    Recvfrom = "recvfrom", Syscall, syscall syscall::RECVFROM;
    Recvmsg = "recvmsg", Syscall, syscall syscall::RECVMSG;
    MemfdCreate = "memfd_create", Syscall, syscall syscall::MEMFD_CREATE;
}

/// A set of event types, one bit per position in [`EventType::ALL`].
pub type TypeMask = u64;

const _: () = assert!(EventType::ALL.len() <= TypeMask::BITS as usize);

/// What the kernel is asked to report: event kinds, and within them the event types
/// (a kind's syscall sources are attached only for the types wanted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    types: TypeMask,
}

impl Interest {
    pub fn all() -> Self {
        Self::of_kinds(KindSet::all())
    }

    /// Every type of these kinds.
    pub fn of_kinds(kinds: KindSet) -> Self {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| kinds.contains(t.kind()))
            .collect()
    }

    pub fn union(self, other: Interest) -> Self {
        Self {
            types: self.types | other.types,
        }
    }

    pub fn kinds(self) -> KindSet {
        self.types().map(EventType::kind).collect()
    }

    pub fn wants(self, t: EventType) -> bool {
        self.types & t.bit() != 0
    }

    pub fn types(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(move |t| self.wants(*t))
    }
}

impl FromIterator<EventType> for Interest {
    fn from_iter<I: IntoIterator<Item = EventType>>(iter: I) -> Self {
        Self {
            types: iter.into_iter().fold(0, |mask, t| mask | t.bit()),
        }
    }
}

impl EventType {
    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn bit(self) -> TypeMask {
        1 << self.index()
    }

    /// `send*`/`recv*`: the syscall moves data, whose first bytes its record carries.
    pub fn moves_data(self) -> bool {
        matches!(
            self,
            EventType::Sendto | EventType::Sendmsg | EventType::Recvfrom | EventType::Recvmsg
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_reject_unknown() {
        assert_eq!("connect".parse::<EventKind>(), Ok(EventKind::Connect));
        let err = "opne".parse::<EventKind>().unwrap_err();
        assert_eq!(
            err,
            "unknown event kind `opne` (known: exec, fork, exit, connect, open, syscall, container_stats)"
        );
        let set: KindSet = [EventKind::Open, EventKind::Exec].into_iter().collect();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![EventKind::Exec, EventKind::Open]
        );
    }

    #[test]
    fn every_kinds_default_type_is_its_own() {
        for &k in EventKind::ALL {
            assert_eq!(k.default_type().kind(), k);
        }
    }

    #[test]
    fn kind_ids_read_back() {
        for &k in EventKind::ALL {
            assert_eq!(EventKind::from_id(k.id()), Some(k));
        }
        assert_eq!(EventKind::from_id(0), None);
    }

    /// Every syscall id of a record names a type of the kind that carries it, and the
    /// tracepoint it is reported by.
    #[test]
    fn syscall_ids_map_to_their_types() {
        let cases = [
            (syscall::EXECVE, EventType::Execve, EventKind::Exec),
            (syscall::EXECVEAT, EventType::Execveat, EventKind::Exec),
            (syscall::OPEN, EventType::Open, EventKind::Open),
            (syscall::OPENAT, EventType::Openat, EventKind::Open),
            (syscall::OPENAT2, EventType::Openat2, EventKind::Open),
            (syscall::CREAT, EventType::Creat, EventKind::Open),
        ];
        for (id, t, k) in cases {
            assert_eq!(EventType::from_syscall_id(id), Some(t));
            assert_eq!(t.syscall_id(), Some(id));
            assert_eq!(t.kind(), k);
        }
        assert_eq!(EventType::from_syscall_id(0), None);
        assert_eq!(
            EventType::Openat2.exit_tracepoint(),
            Some("tracepoint/syscalls/sys_exit_openat2")
        );
        assert_eq!(EventType::Clone.exit_tracepoint(), None);
        assert_eq!(EventKind::Open.default_type(), EventType::Openat);
        assert_eq!(EventKind::Exec.default_type(), EventType::Execve);
        assert_eq!(EventKind::Fork.default_type(), EventType::Clone);
    }
}
