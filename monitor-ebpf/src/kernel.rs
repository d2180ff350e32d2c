//! Reads of kernel structs at offsets taken from the running kernel's BTF.
use aya_ebpf::helpers::{
    bpf_get_current_uid_gid, bpf_probe_read_kernel, generated::bpf_get_current_task,
};
use monitor_common::{
    Capabilities, Fault, KernelOffsets, MAX_CGROUP_NAME, SocketFacts, TaskIdentity, exe,
};

use crate::record::RecordBytes;

/// The offset of a member, as patched in by the agent.
macro_rules! offset {
    ($member:ident) => {
        // SAFETY: a reference to a static: valid and aligned. Volatile so that the value
        // the agent patched in at load time is read, not the `UNSET` the compiler saw.
        unsafe { core::ptr::read_volatile(&crate::maps::OFFSETS.$member) }
    };
}
pub(crate) use offset;

/// Reads a `T` at `base + offset`; an absent member or a null base is an error, so a
/// kernel without the member degrades to a missing field instead of a wrong one.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Result<T, Fault> {
    if base == 0 || offset == KernelOffsets::ABSENT {
        return Err(Fault::ReadFailed);
    }
    // SAFETY: the helper checks the address; a bad one fails the read, never faults.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }
        .map_err(|_| Fault::ReadFailed)
}

#[inline(always)]
pub fn current_task() -> u64 {
    // SAFETY: a BPF helper without memory arguments.
    unsafe { bpf_get_current_task() }
}

/// Thread group id of a task's parent.
#[inline(always)]
pub fn parent_tgid(task: u64) -> u32 {
    read::<u64>(task, offset!(task_real_parent))
        .and_then(|parent| read::<u32>(parent, offset!(task_tgid)))
        .unwrap_or(0)
}

/// Start time of the task's thread group leader: with the pid it names a process
/// uniquely for the whole boot.
#[inline(always)]
pub fn process_start(task: u64) -> u64 {
    read::<u64>(task, offset!(task_group_leader))
        .and_then(|leader| read::<u64>(leader, offset!(task_start_boottime)))
        .unwrap_or(0)
}

/// The task's pid in its own (innermost) pid namespace.
#[inline(always)]
pub fn vpid(task: u64) -> u32 {
    let Ok(pid) = read::<u64>(task, offset!(task_thread_pid)) else {
        return 0;
    };
    let Ok(level) = read::<u32>(pid, offset!(pid_level)) else {
        return 0;
    };
    pid_nr_at(pid, level)
}

/// The number a `struct pid` has in the pid namespace at `level`; 0 when it has none
/// there.
#[inline(always)]
fn pid_nr_at(pid: u64, level: u32) -> u32 {
    if read::<u32>(pid, offset!(pid_level)).is_ok_and(|own| own < level) {
        return 0;
    }
    // Pid namespaces nest at most 32 deep.
    let level = level & 31;
    let upid = offset!(pid_numbers) as u64 + level as u64 * offset!(upid_size) as u64;
    read::<u32>(pid, upid as u32).unwrap_or(0)
}

const PIDTYPE_PGID: u32 = 2;
const PIDTYPE_SID: u32 = 3;

/// The task's session id, as the host numbers it (`proc.sid`).
#[inline(always)]
pub fn sid(task: u64) -> u32 {
    if offset!(signal_pids) == KernelOffsets::ABSENT {
        return 0;
    }
    read::<u64>(task, offset!(task_signal))
        .and_then(|signal| read::<u64>(signal, offset!(signal_pids) + 8 * PIDTYPE_SID))
        .map(|session| pid_nr_at(session, 0))
        .unwrap_or(0)
}

/// The task's controlling terminal as `/proc/<pid>/stat` encodes it (`tty_nr`): the
/// device number of the driver's first minor plus the terminal's index; 0 when none.
#[inline(always)]
pub fn tty(task: u64) -> u32 {
    let Ok(tty) = read::<u64>(task, offset!(task_signal))
        .and_then(|signal| read::<u64>(signal, offset!(signal_tty)))
    else {
        return 0;
    };
    let Ok(driver) = read::<u64>(tty, offset!(tty_driver)) else {
        return 0;
    };
    let index = read::<i32>(tty, offset!(tty_index)).unwrap_or(0) as u32;
    let major = read::<i32>(driver, offset!(tty_driver_major)).unwrap_or(0) as u32;
    let minor = read::<i32>(driver, offset!(tty_driver_minor_start)).unwrap_or(0) as u32 + index;
    // new_encode_dev: minor's low byte, the major, then minor's upper bits.
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// The task's process group id in its own pid namespace (Falco's `proc.vpgid`).
#[inline(always)]
pub fn vpgid(task: u64) -> u32 {
    let Ok(level) = read::<u64>(task, offset!(task_thread_pid))
        .and_then(|pid| read::<u32>(pid, offset!(pid_level)))
    else {
        return 0;
    };
    if offset!(signal_pids) == KernelOffsets::ABSENT {
        return 0;
    }
    let group = read::<u64>(task, offset!(task_signal))
        .and_then(|signal| read::<u64>(signal, offset!(signal_pids) + 8 * PIDTYPE_PGID));
    match group {
        Ok(group) => pid_nr_at(group, level),
        Err(_) => 0,
    }
}

/// Credentials and lineage of the current task.
#[inline(always)]
pub fn identity(task: u64) -> TaskIdentity {
    let uid_gid = bpf_get_current_uid_gid();
    let cred = read::<u64>(task, offset!(task_cred)).unwrap_or(0);
    TaskIdentity {
        ppid: parent_tgid(task),
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        euid: read::<u32>(cred, offset!(cred_euid)).unwrap_or(u32::MAX),
        egid: read::<u32>(cred, offset!(cred_egid)).unwrap_or(u32::MAX),
        loginuid: read::<u32>(task, offset!(task_loginuid)).unwrap_or(u32::MAX),
        start_boot_ns: process_start(task),
        vpid: vpid(task),
        _pad: 0,
    }
}

/// The `struct file *` behind `fd` in the current task's file table.
#[inline(always)]
pub fn file_of_fd(task: u64, fd: i64) -> Result<u64, Fault> {
    if fd < 0 {
        return Err(Fault::ReadFailed);
    }
    let files = read::<u64>(task, offset!(task_files))?;
    let fdt = read::<u64>(files, offset!(files_fdt))?;
    let max_fds = read::<u32>(fdt, offset!(fdtable_max_fds))?;
    if fd as u64 >= max_fds as u64 {
        return Err(Fault::ReadFailed);
    }
    let fd_array = read::<u64>(fdt, offset!(fdtable_fd))?;
    let file = read::<u64>(fd_array, (fd as u32) * 8)?;
    if file == 0 {
        Err(Fault::ReadFailed)
    } else {
        Ok(file)
    }
}

/// Appends the name of the task's cgroup v2 directory (e.g. a container id); returns
/// its length.
#[inline(always)]
pub fn append_cgroup_name(record: &RecordBytes, task: u64) -> usize {
    let name = read::<u64>(task, offset!(task_cgroups))
        .and_then(|css_set| read::<u64>(css_set, offset!(css_set_dfl_cgrp)))
        .and_then(|cgroup| read::<u64>(cgroup, offset!(cgroup_kn)))
        .and_then(|kn| read::<u64>(kn, offset!(kernfs_node_name)));
    match name {
        Ok(name) => record.kernel_str(name, MAX_CGROUP_NAME),
        Err(_) => 0,
    }
}

/// The task's capability sets.
#[inline(always)]
pub fn capabilities(task: u64) -> Capabilities {
    let cred = read::<u64>(task, offset!(task_cred)).unwrap_or(0);
    Capabilities {
        inheritable: read::<u64>(cred, offset!(cred_cap_inheritable)).unwrap_or(0),
        permitted: read::<u64>(cred, offset!(cred_cap_permitted)).unwrap_or(0),
        effective: read::<u64>(cred, offset!(cred_cap_effective)).unwrap_or(0),
    }
}

const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

const SB_RDONLY: u64 = 1;
const S_IMMUTABLE: u32 = 8;
const CAP_DAC_OVERRIDE: u64 = 1 << 1;

/// Whether `task` may write `inode` (see [`exe::WRITABLE`]).
#[inline(always)]
fn writable_by(task: u64, inode: u64) -> bool {
    let Ok(mode) = read::<u16>(inode, offset!(inode_i_mode)) else {
        return false;
    };
    let read_only = read::<u64>(inode, offset!(inode_i_sb))
        .and_then(|sb| read::<u64>(sb, offset!(super_block_s_flags)))
        .is_ok_and(|f| f & SB_RDONLY != 0);
    let immutable = read::<u32>(inode, offset!(inode_i_flags)).is_ok_and(|f| f & S_IMMUTABLE != 0);
    if read_only || immutable {
        return false;
    }
    let cred = read::<u64>(task, offset!(task_cred)).unwrap_or(0);
    let fsuid = read::<u32>(cred, offset!(cred_fsuid)).unwrap_or(u32::MAX);
    let fsgid = read::<u32>(cred, offset!(cred_fsgid)).unwrap_or(u32::MAX);
    let owner = read::<u32>(inode, offset!(inode_i_uid)).unwrap_or(u32::MAX - 1);
    let group = read::<u32>(inode, offset!(inode_i_gid)).unwrap_or(u32::MAX - 1);
    let bits = if fsuid == owner {
        mode >> 6
    } else if fsgid == group {
        mode >> 3
    } else {
        mode
    };
    bits & 0o2 != 0
        || read::<u64>(cred, offset!(cred_cap_effective)).is_ok_and(|c| c & CAP_DAC_OVERRIDE != 0)
}

/// What an executable's file is ([`exe`] bits): a memfd (its dentry is named
/// `memfd:...`), or a file of an overlay's upper or lower layer, and whether `task`
/// may write it.
#[inline(always)]
pub fn exe_facts(task: u64, file: u64) -> u32 {
    let f_path = file + offset!(file_f_path) as u64;
    let name = read::<u64>(f_path, offset!(path_dentry))
        .and_then(|dentry| read::<u64>(dentry + offset!(dentry_d_name) as u64, offset!(qstr_name)))
        .and_then(|name| read::<[u8; 6]>(name, 0));
    let Ok(name) = name else {
        return exe::UNKNOWN;
    };
    let mut facts = 0;
    if &name == b"memfd:" {
        facts |= exe::FROM_MEMFD;
    }
    let Ok(inode) = read::<u64>(file, offset!(file_f_inode)) else {
        return facts | exe::UNKNOWN;
    };
    if writable_by(task, inode) {
        facts |= exe::WRITABLE;
    }
    let magic = read::<u64>(inode, offset!(inode_i_sb))
        .and_then(|sb| read::<u64>(sb, offset!(super_block_s_magic)));
    match magic {
        Ok(m) if m & 0xffff_ffff == OVERLAYFS_SUPER_MAGIC => {
            // `struct ovl_inode` keeps `__upperdentry` right after its `vfs_inode`: set
            // once the file exists in the upper layer.
            match read::<u64>(inode, offset!(inode_size)) {
                Ok(0) => facts | exe::LOWER_LAYER,
                Ok(_) => facts | exe::UPPER_LAYER,
                Err(_) => facts | exe::UNKNOWN,
            }
        }
        Ok(_) => facts,
        Err(_) => facts | exe::UNKNOWN,
    }
}

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Writes the ends of the socket behind `file` into `out` (left as it is, all zero,
/// when `file` is no socket). In place: the records that carry them are built in
/// scratch memory, and a copy through the stack would not fit beside the rest.
#[inline(always)]
pub fn socket_facts_into(file: u64, out: *mut SocketFacts) {
    let is_socket = read::<u64>(file, offset!(file_f_inode))
        .and_then(|inode| read::<u16>(inode, offset!(inode_i_mode)))
        .is_ok_and(|mode| mode & S_IFMT == S_IFSOCK);
    if !is_socket {
        return;
    }
    let Ok(socket) = read::<u64>(file, offset!(file_private_data)) else {
        return;
    };
    let Ok(sk) = read::<u64>(socket, offset!(socket_sk)) else {
        return;
    };
    // SAFETY: both callers pass a `SocketFacts` of their own (on the stack, or in their
    // claimed scratch record) that nothing else touches during this call.
    let out = unsafe { &mut *out };
    // `struct sock` starts with its `struct sock_common`.
    out.family = read::<u16>(sk, offset!(sock_common_family)).unwrap_or(0);
    out.sock_type = read::<i16>(socket, offset!(socket_type)).unwrap_or(0) as u16;
    out.local_port = read::<u16>(sk, offset!(sock_common_num)).unwrap_or(0);
    out.remote_port = u16::from_be(read::<u16>(sk, offset!(sock_common_dport)).unwrap_or(0));
    match out.family {
        AF_INET => {
            let _ = read_into(sk, offset!(sock_common_rcv_saddr), &mut out.local_addr[..4]);
            let _ = read_into(sk, offset!(sock_common_daddr), &mut out.remote_addr[..4]);
        }
        AF_INET6 => {
            let _ = read_into(sk, offset!(sock_common_v6_rcv_saddr), &mut out.local_addr);
            let _ = read_into(sk, offset!(sock_common_v6_daddr), &mut out.remote_addr);
        }
        _ => {}
    }
}

/// Reads `dst.len()` bytes at `base + offset` straight into `dst`.
#[inline(always)]
fn read_into(base: u64, offset: u32, dst: &mut [u8]) -> Result<(), Fault> {
    if base == 0 || offset == KernelOffsets::ABSENT {
        return Err(Fault::ReadFailed);
    }
    unsafe {
        // SAFETY: the helper checks the source address (a bad one fails the read, never
        // faults) and writes exactly `dst.len()` bytes, into `dst`.
        aya_ebpf::helpers::bpf_probe_read_kernel_buf((base + offset as u64) as *const u8, dst)
    }
    .map_err(|_| Fault::ReadFailed)
}
