//! The decoded, owned event: what the sensor hands to the rest of the pipeline.
//!
//! Strings that come from the watched processes (paths, argv, comm) stay bytes here:
//! they are attacker-controlled, may be any bytes, and are only turned into text,
//! escaped, by an output format.
use std::net::IpAddr;

mod container_stats;

pub use crate::kinds::{EventKind, EventType, KindSet};
pub(crate) use container_stats::container_measures;
pub use container_stats::{ContainerStats, Measure};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_BOOTTIME nanoseconds.
    pub boot_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub cgroup_id: u64,
    pub comm: Vec<u8>,
    pub detail: Detail,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self.detail {
            Detail::Exec(_) => EventKind::Exec,
            Detail::Fork(_) => EventKind::Fork,
            Detail::Exit(_) => EventKind::Exit,
            Detail::Connect(_) => EventKind::Connect,
            Detail::Open(_) => EventKind::Open,
            Detail::Syscall(_) => EventKind::Syscall,
            Detail::ContainerStats(_) => EventKind::ContainerStats,
        }
    }

    /// The kernel hook that produced the event (the `hook` of the event JSON).
    pub fn hook(&self) -> &'static str {
        match &self.detail {
            Detail::Exec(x) if x.result == 0 => match x.enhanced {
                None => "raw_tp/sched_process_exec",
                Some(Enhanced::Lsm) => "raw_tp/sched_process_exec+lsm/bprm_check_security",
                Some(Enhanced::Fentry) => "raw_tp/sched_process_exec+fentry/security_bprm_check",
            },
            Detail::Exec(x) => match (x.syscall, x.enhanced) {
                (EventType::Execveat, None) => "tracepoint/syscalls/sys_exit_execveat",
                (EventType::Execveat, Some(Enhanced::Lsm)) => {
                    "tracepoint/syscalls/sys_exit_execveat+lsm/bprm_check_security"
                }
                (EventType::Execveat, Some(Enhanced::Fentry)) => {
                    "tracepoint/syscalls/sys_exit_execveat+fentry/security_bprm_check"
                }
                (_, None) => "tracepoint/syscalls/sys_exit_execve",
                (_, Some(Enhanced::Lsm)) => {
                    "tracepoint/syscalls/sys_exit_execve+lsm/bprm_check_security"
                }
                (_, Some(Enhanced::Fentry)) => {
                    "tracepoint/syscalls/sys_exit_execve+fentry/security_bprm_check"
                }
            },
            Detail::Fork(_) => "raw_tp/sched_process_fork",
            Detail::Exit(_) => "tracepoint/sched/sched_process_exit",
            Detail::Connect(x) => match x.enhanced {
                None => "tracepoint/syscalls/sys_exit_connect",
                Some(Enhanced::Lsm) => "tracepoint/syscalls/sys_exit_connect+lsm/socket_connect",
                Some(Enhanced::Fentry) => {
                    "tracepoint/syscalls/sys_exit_connect+fentry/security_socket_connect"
                }
            },
            Detail::Open(x) if x.enhanced == Some(Enhanced::Lsm) => "lsm/file_open",
            Detail::Open(x) if x.enhanced == Some(Enhanced::Fentry) => "fentry/security_file_open",
            Detail::Open(x) => x
                .syscall
                .exit_tracepoint()
                .unwrap_or("tracepoint/syscalls/sys_exit_openat"),
            Detail::ContainerStats(_) => "agent/container_stats",
            Detail::Syscall(x) if x.raw => "raw_tp/sys_exit",
            Detail::Syscall(x) => x
                .syscall
                .exit_tracepoint()
                .unwrap_or("tracepoint/syscalls/sys_exit_ptrace"),
        }
    }
}

/// The enhanced hook that took part in an event, where one did (see the probe table):
/// the BPF LSM hook, or, where the bpf LSM is not active, fentry on the `security_*`
/// function that hook runs inside. Both see the same thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enhanced {
    Lsm,
    Fentry,
}

impl Enhanced {
    /// The enhanced hook named in a `hook` value as [`Event::hook`] writes it.
    pub fn in_hook(hook: &str) -> Option<Self> {
        if hook.starts_with("fentry/") || hook.contains("+fentry/") {
            Some(Enhanced::Fentry)
        } else if hook.starts_with("lsm/") || hook.contains("+lsm/") {
            Some(Enhanced::Lsm)
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    Connect(Connect),
    Open(Open),
    Syscall(SyscallDetail),
    ContainerStats(Box<ContainerStats>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// `None` when unset (`(uid_t)-1`) or not provided by the kernel.
    pub loginuid: Option<u32>,
    pub process_start_boot_ns: u64,
    /// Pid inside the process's own pid namespace (`None` when the kernel did not say).
    pub vpid: Option<u32>,
    /// Process group id inside the process's own pid namespace (`None` when the
    /// kernel did not say).
    pub vpgid: Option<u32>,
    /// Session id and controlling terminal (`tty_nr`, 0 for none), as the kernel had
    /// them at the exec; `None` when it did not say.
    pub session: Option<(u32, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub credentials: Credentials,
    /// `execve`/`execveat`, or for opens `open`/`openat`/`openat2`/`creat`.
    pub syscall: EventType,
    /// 0 or `-errno`.
    pub result: i64,
    /// Absolute path of the new executable (successful execs).
    pub exe: Option<Vec<u8>>,
    pub exe_truncated: bool,
    /// The file name as the caller gave it (failed execs).
    pub filename: Option<Vec<u8>>,
    pub filename_truncated: bool,
    /// The file the caller named, as the kernel resolved it (`bprm_check_security`,
    /// where it attached): a script rather than its interpreter, the real file behind
    /// `/dev/fd/N`. Also for execs that failed after the lookup.
    pub resolved_filename: Option<Vec<u8>>,
    pub resolved_filename_truncated: bool,
    /// The hook that supplied `resolved_filename`.
    pub enhanced: Option<Enhanced>,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    pub dirfd: i32,
    pub at_flags: u32,
    /// Name of the task's cgroup v2 directory, read in the kernel at exec time.
    pub cgroup_name: Vec<u8>,
    /// The new image's environment, `NAME=value` each (successful execs; at most
    /// `monitor_common::MAX_ENV_BYTES`). Kept for rules (`proc.env`), never printed
    /// with the event: environments hold secrets.
    pub env: Option<Vec<Vec<u8>>>,
    pub env_truncated: bool,
    /// The new image's capability sets (successful execs).
    pub capabilities: Option<Capabilities>,
    /// What the executable's file is, where the kernel could tell (successful execs).
    pub exe_facts: Option<ExeFacts>,
}

pub use monitor_common::Capabilities;

/// Falco's executable facts (`proc.is_exe_upper_layer`, `proc.is_exe_from_memfd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExeFacts {
    /// `Some` on an overlay filesystem: in its upper layer (written in the container)
    /// or a lower (image) layer.
    pub upper_layer: Option<bool>,
    pub from_memfd: bool,
    /// The process may write the file it runs (`proc.is_exe_writable`).
    pub writable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    pub child_pid: u32,
    pub child_tid: u32,
    pub child_start_boot_ns: u64,
    pub parent_ppid: u32,
    pub child_vpid: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// `exit()` status, when the process exited normally.
    pub exit_code: Option<u8>,
    /// Fatal signal, when a signal ended the process.
    pub signal: Option<u8>,
    pub core_dumped: bool,
    pub ppid: u32,
    pub process_start_boot_ns: u64,
}

impl Exit {
    /// Splits the kernel's raw `exit_code` the way `waitpid` does.
    pub fn from_raw(raw: i32, ppid: u32, process_start_boot_ns: u64) -> Self {
        let signal = (raw & 0x7f) as u8;
        Self {
            exit_code: (signal == 0).then_some(((raw >> 8) & 0xff) as u8),
            signal: (signal != 0).then_some(signal),
            core_dumped: raw & 0x80 != 0,
            ppid,
            process_start_boot_ns,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub fd: i32,
    pub family: SocketFamily,
    pub sock_type: u16,
    /// 0, `-EINPROGRESS` (non-blocking attempt under way) or `-errno`.
    pub result: i64,
    pub address: Option<IpAddr>,
    pub port: u16,
    /// The socket's own address and port at the connect's exit (IP sockets that had
    /// one: a refused connect leaves none).
    pub local: Option<(IpAddr, u16)>,
    /// `sun_path` bytes; an abstract socket name starts with a NUL byte.
    pub unix_path: Option<Vec<u8>>,
    pub uid: u32,
    /// The hook that took the kernel's copy of the address (`socket_connect`); `None`
    /// when the exit tracepoint read it from the caller's memory.
    pub enhanced: Option<Enhanced>,
    /// What an in-kernel deny did at this connect (`monitor_common::kill::verdict`
    /// with a `deny` outcome; 0: no deny slot held it).
    pub kernel_verdict: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketFamily {
    Unix,
    Inet,
    Inet6,
    Other(u16),
}

impl SocketFamily {
    pub fn from_raw(raw: u16) -> Self {
        match raw {
            1 => SocketFamily::Unix,
            2 => SocketFamily::Inet,
            10 => SocketFamily::Inet6,
            other => SocketFamily::Other(other),
        }
    }

    /// The `AF_*` number the kernel reported.
    pub fn raw(self) -> u16 {
        match self {
            SocketFamily::Unix => 1,
            SocketFamily::Inet => 2,
            SocketFamily::Inet6 => 10,
            SocketFamily::Other(raw) => raw,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// `execve`/`execveat`, or for opens `open`/`openat`/`openat2`/`creat`.
    pub syscall: EventType,
    /// Seen by the `file_open` hook, not a syscall tracepoint (io_uring opens): no
    /// path as given, no fd yet.
    pub enhanced: Option<Enhanced>,
    /// The path as the caller gave it.
    pub path: Vec<u8>,
    pub path_truncated: bool,
    /// Absolute path of the opened file, from the kernel (successful opens).
    pub resolved: Option<Vec<u8>>,
    pub resolved_truncated: bool,
    pub dirfd: i32,
    pub flags: u64,
    pub mode: u32,
    /// The new fd, or `-errno`.
    pub result: i64,
    pub uid: u32,
    /// What an in-kernel kill did at this open (`monitor_common::kill::verdict`; 0:
    /// no kill slot held it).
    pub kernel_verdict: u32,
}

/// One of the other syscalls (see `monitor_common::SyscallRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallDetail {
    pub syscall: EventType,
    /// A new fd, 0 or `-errno`.
    pub result: i64,
    /// The raw arguments, in the syscall's order.
    pub args: [u64; 5],
    /// The string arguments: symlink target and link path, link and rename old and new
    /// path, the path of unlink, mkdir, rmdir and chmod, module parameters, a memfd's
    /// name (empty where the syscall has none).
    pub strings: [Vec<u8>; 2],
    /// Per string that is a relative path: the path joined to the directory it starts
    /// from as the kernel had it (the dirfd's or the working directory), `.` and `..`
    /// folded, as Falco resolves such an argument; `None` for an absolute path, a
    /// string that is no path, or an unknown directory.
    pub resolved: [Option<Vec<u8>>; 2],
    /// The socket the syscall worked on: the duplicated fd of `dup*`, the fd of
    /// `listen`, `send*` and `recv*`, the new fd of `accept*`.
    pub socket: Option<SocketEnds>,
    /// `send*`/`recv*`: the first bytes moved (`monitor_common::SNAPLEN` at most).
    pub data: Option<Vec<u8>>,
    /// `send*`/`recv*`: the address the caller named or was given.
    pub address: Option<SockAddr>,
    pub uid: u32,
    /// Seen by the raw `sys_exit` tracepoint (the kernel has none of the syscall's
    /// own; see `monitor_common::flags::RAW_SYSCALL`).
    pub raw: bool,
}

impl SyscallDetail {
    /// An argument as the signed int the syscall takes (fds, flags).
    pub fn int_arg(&self, n: usize) -> i64 {
        self.args[n] as i32 as i64
    }

    /// The peer: the address a `send*`/`recv*` named or was given, else the socket's
    /// remote end (an unconnected socket has none).
    pub fn remote(&self) -> Option<(IpAddr, u16)> {
        if let Some(SockAddr::Ip(addr, port)) = self.address {
            return Some((addr, port));
        }
        self.socket?
            .remote
            .filter(|(addr, port)| *port != 0 || !addr.is_unspecified())
    }

    /// String `n` as Falco's `evt.arg` compares it: resolved when it was a relative
    /// path, else as given.
    pub fn path_arg(&self, n: usize) -> &[u8] {
        self.resolved[n].as_deref().unwrap_or(&self.strings[n])
    }

    /// Argument `slot`'s value (see [`syscall_args`]).
    pub fn slot(&self, slot: Slot) -> ArgValue<'_> {
        match slot {
            Slot::Int(n) => ArgValue::Int(self.int_arg(n)),
            Slot::Uint(n) => ArgValue::Uint(self.args[n] & 0xffff_ffff),
            Slot::Text(n) | Slot::Path(n) => ArgValue::Text(&self.strings[n]),
        }
    }
}

/// Where a syscall record holds one named argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Raw argument `n`, a signed int (fds).
    Int(usize),
    /// Raw argument `n`, an unsigned int (flags, modes, ids).
    Uint(usize),
    /// String `n`, no path of the caller's (a symlink's target, module parameters, a
    /// memfd's name).
    Text(usize),
    /// String `n`, a path; relative ones are resolved (see `SyscallDetail::resolved`).
    Path(usize),
}

pub enum ArgValue<'a> {
    Int(i64),
    Uint(u64),
    Text(&'a [u8]),
}

/// The named arguments of each syscall event, by the key its JSON gives them, and
/// where the record holds them. The JSON writer, the JSON reader (fixtures, replay)
/// and the rule fields of live events all read this one table.
pub fn syscall_args(t: EventType) -> &'static [(&'static str, Slot)] {
    use Slot::*;
    match t {
        EventType::Ptrace => &[("request", Uint(0)), ("target_pid", Int(1))],
        EventType::Symlink => &[("target", Text(0)), ("linkpath", Path(1))],
        EventType::Symlinkat => &[
            ("target", Text(0)),
            ("dirfd", Int(1)),
            ("linkpath", Path(1)),
        ],
        EventType::Link | EventType::Rename => &[("oldpath", Path(0)), ("newpath", Path(1))],
        EventType::Linkat | EventType::Renameat2 => &[
            ("olddirfd", Int(0)),
            ("oldpath", Path(0)),
            ("dirfd", Int(2)),
            ("newpath", Path(1)),
            ("flags", Uint(4)),
        ],
        EventType::Renameat => &[
            ("olddirfd", Int(0)),
            ("oldpath", Path(0)),
            ("dirfd", Int(2)),
            ("newpath", Path(1)),
        ],
        EventType::InitModule => &[("length", Uint(1)), ("uargs", Text(0))],
        EventType::FinitModule => &[("fd", Int(0)), ("uargs", Text(0)), ("flags", Uint(2))],
        EventType::Socket => &[
            ("domain", Uint(0)),
            ("sock_type", Uint(1)),
            ("protocol", Uint(2)),
        ],
        EventType::Dup => &[("fd", Int(0))],
        EventType::Dup2 => &[("fd", Int(0)), ("newfd", Int(1))],
        EventType::Dup3 => &[("fd", Int(0)), ("newfd", Int(1)), ("flags", Uint(2))],
        EventType::Setns => &[("fd", Int(0)), ("nstype", Uint(1))],
        EventType::Unshare | EventType::Userfaultfd => &[("flags", Uint(0))],
        EventType::Setuid => &[("target_uid", Uint(0))],
        EventType::Chmod | EventType::Mkdir => &[("path", Path(0)), ("mode", Uint(1))],
        EventType::Fchmod => &[("fd", Int(0)), ("mode", Uint(1))],
        EventType::Fchmodat | EventType::Mkdirat => {
            &[("dirfd", Int(0)), ("path", Path(0)), ("mode", Uint(2))]
        }
        EventType::Bpf => &[("cmd", Uint(0))],
        EventType::Unlink | EventType::Rmdir => &[("path", Path(0))],
        EventType::Unlinkat => &[("dirfd", Int(0)), ("name", Path(0)), ("flags", Uint(2))],
        EventType::MemfdCreate => &[("name", Text(0)), ("flags", Uint(1))],
        EventType::Listen => &[("fd", Int(0)), ("backlog", Int(1))],
        EventType::Accept => &[("fd", Int(0))],
        EventType::Accept4 => &[("fd", Int(0)), ("flags", Uint(3))],
        EventType::Sendto | EventType::Recvfrom => &[("fd", Int(0)), ("size", Uint(2))],
        EventType::Sendmsg | EventType::Recvmsg => &[("fd", Int(0))],
        _ => &[],
    }
}

/// `.` and `..` components resolved and repeated slashes folded, without looking at
/// the filesystem (as Falco joins a relative path to its directory).
pub fn normalize_path(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for part in parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// A socket address from a syscall's arguments (`struct sockaddr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    Ip(IpAddr, u16),
    /// `sun_path` bytes; an abstract name starts with a NUL byte.
    Unix(Vec<u8>),
}

impl SockAddr {
    /// The address in raw `sockaddr` bytes (family first, port in network order);
    /// `None` for an empty or unknown one.
    pub fn parse(raw: &[u8]) -> Option<SockAddr> {
        let family = u16::from_ne_bytes(raw.get(..2)?.try_into().ok()?);
        let port = || raw.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]]));
        match family {
            1 => {
                let path = &raw[2..];
                let end = if path.first() == Some(&0) {
                    path.len()
                } else {
                    path.iter().position(|&b| b == 0).unwrap_or(path.len())
                };
                Some(SockAddr::Unix(path[..end].to_vec()))
            }
            2 => {
                let a: [u8; 4] = raw.get(4..8)?.try_into().ok()?;
                Some(SockAddr::Ip(IpAddr::from(a), port()?))
            }
            10 => {
                let a: [u8; 16] = raw.get(8..24)?.try_into().ok()?;
                Some(SockAddr::Ip(IpAddr::from(a), port()?))
            }
            _ => None,
        }
    }
}

/// A socket's family, type and ends, as the kernel held them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketEnds {
    pub family: SocketFamily,
    pub sock_type: u16,
    /// Address and port of each end (IP sockets only).
    pub local: Option<(IpAddr, u16)>,
    pub remote: Option<(IpAddr, u16)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_split_like_waitpid() {
        let normal = Exit::from_raw(7 << 8, 1, 0);
        assert_eq!(
            (normal.exit_code, normal.signal, normal.core_dumped),
            (Some(7), None, false)
        );
        let killed = Exit::from_raw(9, 1, 0);
        assert_eq!(
            (killed.exit_code, killed.signal, killed.core_dumped),
            (None, Some(9), false)
        );
        let dumped = Exit::from_raw(11 | 0x80, 1, 0);
        assert_eq!(
            (dumped.exit_code, dumped.signal, dumped.core_dumped),
            (None, Some(11), true)
        );
    }

    /// Replayed JSON events get their enhanced hook back from the `hook` value.
    #[test]
    fn every_enhanced_hook_name_reads_back() {
        let connect = |enhanced| Event {
            boot_ns: 1,
            pid: 2,
            tid: 2,
            cgroup_id: 3,
            comm: b"nc".to_vec(),
            detail: Detail::Connect(Connect {
                fd: 3,
                family: SocketFamily::Inet,
                sock_type: 1,
                result: 0,
                address: None,
                port: 80,
                local: None,
                unix_path: None,
                uid: 0,
                enhanced,
                kernel_verdict: 0,
            }),
        };
        for enhanced in [None, Some(Enhanced::Lsm), Some(Enhanced::Fentry)] {
            assert_eq!(Enhanced::in_hook(connect(enhanced).hook()), enhanced);
        }
        assert_eq!(Enhanced::in_hook("lsm/file_open"), Some(Enhanced::Lsm));
        assert_eq!(
            Enhanced::in_hook("fentry/security_file_open"),
            Some(Enhanced::Fentry)
        );
        assert_eq!(
            Enhanced::in_hook("tracepoint/syscalls/sys_exit_execve+fentry/security_bprm_check"),
            Some(Enhanced::Fentry)
        );
    }
}
