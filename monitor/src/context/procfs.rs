//! Reading a process's context from /proc: for processes that existed before the agent
//! started, and for events whose process the table has not seen.
use std::{fs, os::unix::ffi::OsStrExt};

use super::host::HostRoot;
use crate::event::Capabilities;

/// What /proc tells about one process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcSnapshot {
    pub env: Option<Vec<Vec<u8>>>,
    pub capabilities: Option<Capabilities>,
    pub pid: u32,
    pub ppid: u32,
    pub comm: Vec<u8>,
    pub exepath: Option<Vec<u8>>,
    pub argv: Vec<Vec<u8>>,
    pub cwd: Option<Vec<u8>>,
    pub tty: u32,
    pub sid: u32,
    /// The pid in the process's own pid namespace.
    pub vpid: u32,
    /// Process group id in the process's own pid namespace; 0 when unknown.
    pub vpgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub loginuid: Option<u32>,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// Path of the process's cgroup in the v2 hierarchy (`0::<path>`).
    pub cgroup_v2_path: Option<String>,
}

pub fn read_link(host: &HostRoot, pid: u32, name: &str) -> Option<Vec<u8>> {
    fs::read_link(host.proc(pid, name))
        .ok()
        .map(|p| p.as_os_str().as_bytes().to_vec())
}

/// The host's name, as alerts carry it.
pub fn hostname(host: &HostRoot) -> String {
    fs::read_to_string(host.path("/proc/sys/kernel/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The boot's id, part of every exec id.
pub fn boot_id(host: &HostRoot) -> String {
    fs::read_to_string(host.path("/proc/sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The exec id (see [`super::process::exec_id`]) of the program the process `pid`
/// runs now, read from /proc; `None` when there is no such process, or it has exited
/// and awaits its parent (a zombie has no executable left).
pub fn exec_id_now(host: &HostRoot, boot_id: &str, pid: u32) -> Option<std::sync::Arc<str>> {
    let stat = parse_stat(&fs::read(host.proc(pid, "stat")).ok()?)?;
    let exepath = read_link(host, pid, "exe")?;
    Some(super::process::exec_id(
        boot_id,
        pid,
        stat.start_ticks,
        &exepath,
    ))
}

/// Session and controlling terminal: set up between fork and exec (a container
/// runtime calls setsid and takes a pty for `docker exec -it`), so read at exec.
pub fn session(host: &HostRoot, pid: u32) -> Option<(u32, u32)> {
    let stat = parse_stat(&fs::read(host.proc(pid, "stat")).ok()?)?;
    Some((stat.sid, stat.tty))
}

pub fn snapshot(host: &HostRoot, pid: u32) -> Option<ProcSnapshot> {
    let stat = fs::read(host.proc(pid, "stat")).ok()?;
    let stat = parse_stat(&stat)?;
    let status = fs::read_to_string(host.proc(pid, "status")).unwrap_or_default();
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let cap = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    };
    let capabilities = match (cap("CapInh:"), cap("CapPrm:"), cap("CapEff:")) {
        (Some(inheritable), Some(permitted), Some(effective)) => Some(Capabilities {
            inheritable,
            permitted,
            effective,
        }),
        _ => None,
    };
    // As much of the environment as an exec record carries.
    let env = fs::read(host.proc(pid, "environ")).ok().map(|mut raw| {
        raw.truncate(monitor_common::MAX_ENV_BYTES);
        split_nul(&raw)
    });
    let uids = ids("Uid:");
    let gids = ids("Gid:");
    let nspid = ids("NSpid:");
    let nspgid = ids("NSpgid:");
    let argv = fs::read(host.proc(pid, "cmdline"))
        .map(|raw| split_nul(&raw))
        .unwrap_or_default();
    let loginuid = fs::read_to_string(host.proc(pid, "loginuid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&uid| uid != u32::MAX);
    let cgroup_v2_path = fs::read_to_string(host.proc(pid, "cgroup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        });
    Some(ProcSnapshot {
        env,
        capabilities,
        pid,
        ppid: stat.ppid,
        comm: stat.comm,
        exepath: read_link(host, pid, "exe"),
        argv,
        cwd: read_link(host, pid, "cwd"),
        tty: stat.tty,
        sid: stat.sid,
        vpid: nspid.last().copied().unwrap_or(pid),
        vpgid: nspgid.last().copied().unwrap_or(0),
        uid: uids.first().copied().unwrap_or(0),
        euid: uids.get(1).copied().unwrap_or(0),
        gid: gids.first().copied().unwrap_or(0),
        egid: gids.get(1).copied().unwrap_or(0),
        loginuid,
        start_ticks: stat.start_ticks,
        cgroup_v2_path,
    })
}

struct Stat {
    comm: Vec<u8>,
    ppid: u32,
    sid: u32,
    tty: u32,
    start_ticks: u64,
}

/// `pid (comm) state ppid pgrp session tty_nr ...`; comm may contain spaces and
/// parentheses, so it ends at the last `)`.
fn parse_stat(raw: &[u8]) -> Option<Stat> {
    let open = raw.iter().position(|&b| b == b'(')?;
    let close = raw.iter().rposition(|&b| b == b')')?;
    let comm = raw.get(open + 1..close)?.to_vec();
    let rest = std::str::from_utf8(raw.get(close + 2..)?).ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        comm,
        ppid: field(4)? as u32,
        sid: field(6)? as u32,
        tty: field(7)? as u32,
        start_ticks: field(22)?,
    })
}

fn split_nul(raw: &[u8]) -> Vec<Vec<u8>> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// Clock ticks per second for `/proc/<pid>/stat` times.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_comm_parses() {
        let raw = b"42 (a) b (c) S 1 42 40 34816 42 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0";
        let stat = parse_stat(raw).unwrap();
        assert_eq!(stat.comm, b"a) b (c");
        assert_eq!(
            (stat.ppid, stat.sid, stat.tty, stat.start_ticks),
            (1, 40, 34816, 777)
        );
    }

    #[test]
    fn own_process_snapshot() {
        let me = std::process::id();
        let snap = snapshot(&HostRoot::default(), me).unwrap();
        assert_eq!(snap.pid, me);
        // SAFETY: getppid has no preconditions.
        assert_eq!(snap.ppid, unsafe { libc::getppid() } as u32);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(snap.exepath.unwrap(), exe.as_os_str().as_bytes());
        assert!(snap.start_ticks > 0);
    }
}
