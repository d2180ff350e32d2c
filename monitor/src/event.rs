//! The decoded, owned event: what the sensor hands to the rest of the pipeline.
//!
//! Strings that come from the watched processes (paths, argv, comm) stay bytes here:
//! they are attacker-controlled, may be any bytes, and are only turned into text,
//! escaped, by an output format.
use std::net::IpAddr;

pub use crate::kinds::{EventKind, EventType, KindSet};

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
            Detail::Syscall(x) if x.raw => "tracepoint/raw_syscalls/sys_exit",
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
}

/// One of the other syscalls (see `monitor_common::SyscallRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallDetail {
    pub syscall: EventType,
    /// A new fd, 0 or `-errno`.
    pub result: i64,
    /// The raw arguments, in the syscall's order.
    pub args: [u64; 5],
    /// The string arguments: symlink target and link path, link old and new path,
    /// module parameters (empty where the syscall has none).
    pub strings: [Vec<u8>; 2],
    /// `dup*`: the socket behind the duplicated fd.
    pub socket: Option<SocketEnds>,
    pub uid: u32,
    /// Seen by the `raw_syscalls` tracepoints (the kernel has none of the syscall's
    /// own; see `monitor_common::flags::RAW_SYSCALL`).
    pub raw: bool,
}

impl SyscallDetail {
    /// An argument as the signed int the syscall takes (fds, flags).
    pub fn int_arg(&self, n: usize) -> i64 {
        self.args[n] as i32 as i64
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
