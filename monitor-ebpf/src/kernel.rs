//! Reads of kernel structs at offsets taken from the running kernel's BTF.
use aya_ebpf::helpers::{
    bpf_get_current_uid_gid, bpf_probe_read_kernel, generated::bpf_get_current_task,
};
use monitor_common::{KernelOffsets, MAX_CGROUP_NAME, TaskIdentity};

use crate::record::Record;

/// The offset of a member, as patched in by the agent.
macro_rules! offset {
    ($member:ident) => {
        unsafe { core::ptr::read_volatile(&crate::maps::OFFSETS.$member) }
    };
}
pub(crate) use offset;

/// Reads a `T` at `base + offset`; an absent member or a null base is an error, so a
/// kernel without the member degrades to a missing field instead of a wrong one.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Result<T, i64> {
    if base == 0 || offset == KernelOffsets::ABSENT {
        return Err(-1);
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.map_err(|e| e as i64)
}

#[inline(always)]
pub fn current_task() -> u64 {
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
    // Pid namespaces nest at most 32 deep.
    let level = level & 31;
    let upid = offset!(pid_numbers) as u64 + level as u64 * offset!(upid_size) as u64;
    read::<u32>(pid, upid as u32).unwrap_or(0)
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
pub fn file_of_fd(task: u64, fd: i64) -> Result<u64, i64> {
    if fd < 0 {
        return Err(-1);
    }
    let files = read::<u64>(task, offset!(task_files))?;
    let fdt = read::<u64>(files, offset!(files_fdt))?;
    let max_fds = read::<u32>(fdt, offset!(fdtable_max_fds))?;
    if fd as u64 >= max_fds as u64 {
        return Err(-1);
    }
    let fd_array = read::<u64>(fdt, offset!(fdtable_fd))?;
    let file = read::<u64>(fd_array, (fd as u32) * 8)?;
    if file == 0 { Err(-1) } else { Ok(file) }
}

/// Appends the name of the task's cgroup v2 directory (e.g. a container id); returns
/// its length.
#[inline(always)]
pub fn append_cgroup_name(record: &Record, task: u64) -> usize {
    let name = read::<u64>(task, offset!(task_cgroups))
        .and_then(|css_set| read::<u64>(css_set, offset!(css_set_dfl_cgrp)))
        .and_then(|cgroup| read::<u64>(cgroup, offset!(cgroup_kn)))
        .and_then(|kn| read::<u64>(kn, offset!(kernfs_node_name)));
    match name {
        Ok(name) => record.kernel_str(name, MAX_CGROUP_NAME),
        Err(_) => 0,
    }
}
