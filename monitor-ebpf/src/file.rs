//! File opens: entry saves the arguments, exit reports the path as given, the result
//! and, for a successful open, the absolute path of the file the kernel opened.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_user},
    macros::{fentry, lsm, map, tracepoint},
    maps::LruHashMap,
    programs::{FEntryContext, LsmContext, TracePointContext},
};
use aya_log_ebpf::warn;
use monitor_common::{Fault, MAX_PATH_BYTES, OpenRecord, flags, kind, stat, syscall};

use crate::{
    filter,
    kernel::{current_task, file_of_fd, offset, read},
    maps::wanted,
    path::{AT_FDCWD, append_d_path, append_file_path},
    process::{syscall_arg, syscall_ret},
    record::{Record, count, counted},
};

#[map]
pub static PENDING_OPEN: LruHashMap<u64, PendingOpen> = LruHashMap::with_max_entries(16384, 0);

const O_CREAT_WRONLY_TRUNC: u64 = 0o100 | 0o1 | 0o1000;

#[derive(Clone, Copy)]
pub struct PendingOpen {
    path: u64,
    flags: u64,
    mode: u32,
    dirfd: i32,
    syscall: u16,
}

#[inline(always)]
fn save_open(ctx: &TracePointContext, pending: PendingOpen) -> Result<(), Fault> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !wanted(kind::OPEN, (pid_tgid >> 32) as u32) {
        return Ok(());
    }
    if let Some(filter) = filter::applies(kind::OPEN)
        && !(filter
            .admits
            .admits_open_entry(pending.syscall, pending.flags)
            && filter.admits_path(pending.path))
    {
        count(kind::OPEN, stat::FILTERED);
        return Ok(());
    }
    PENDING_OPEN.insert(&pid_tgid, &pending, 0).map_err(|_| {
        warn!(
            ctx,
            "open by {} not recorded: pending-open table full",
            pid_tgid >> 32
        );
        Fault::PendingFull
    })
}

#[tracepoint]
pub fn sys_enter_open(ctx: TracePointContext) -> u32 {
    counted(
        kind::OPEN,
        save_open(
            &ctx,
            PendingOpen {
                path: syscall_arg(&ctx, 0),
                flags: syscall_arg(&ctx, 1) as u32 as u64,
                mode: syscall_arg(&ctx, 2) as u32,
                dirfd: AT_FDCWD,
                syscall: syscall::OPEN,
            },
        ),
    ) as u32
}

#[tracepoint]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    counted(
        kind::OPEN,
        save_open(
            &ctx,
            PendingOpen {
                dirfd: syscall_arg(&ctx, 0) as i32,
                path: syscall_arg(&ctx, 1),
                flags: syscall_arg(&ctx, 2) as u32 as u64,
                mode: syscall_arg(&ctx, 3) as u32,
                syscall: syscall::OPENAT,
            },
        ),
    ) as u32
}

/// `openat2(dirfd, path, struct open_how *how, size)`: flags and mode live in `how`.
#[tracepoint]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    let how = syscall_arg(&ctx, 2);
    // SAFETY: the helper checks the address: a bad one fails the read (an error), never
    // faults.
    let how_flags = unsafe { bpf_probe_read_user(how as *const u64) }.unwrap_or(0);
    // SAFETY: as above.
    let how_mode = unsafe { bpf_probe_read_user((how + 8) as *const u64) }.unwrap_or(0);
    counted(
        kind::OPEN,
        save_open(
            &ctx,
            PendingOpen {
                dirfd: syscall_arg(&ctx, 0) as i32,
                path: syscall_arg(&ctx, 1),
                flags: how_flags,
                mode: how_mode as u32,
                syscall: syscall::OPENAT2,
            },
        ),
    ) as u32
}

#[tracepoint]
pub fn sys_enter_creat(ctx: TracePointContext) -> u32 {
    counted(
        kind::OPEN,
        save_open(
            &ctx,
            PendingOpen {
                path: syscall_arg(&ctx, 0),
                flags: O_CREAT_WRONLY_TRUNC,
                mode: syscall_arg(&ctx, 1) as u32,
                dirfd: AT_FDCWD,
                syscall: syscall::CREAT,
            },
        ),
    ) as u32
}

#[tracepoint]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    exit_open(&ctx)
}

#[tracepoint]
pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    exit_open(&ctx)
}

#[tracepoint]
pub fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
    exit_open(&ctx)
}

#[tracepoint]
pub fn sys_exit_creat(ctx: TracePointContext) -> u32 {
    exit_open(&ctx)
}

#[inline(always)]
fn exit_open(ctx: &TracePointContext) -> u32 {
    counted(kind::OPEN, emit_open(ctx)) as u32
}

#[inline(always)]
fn emit_open(ctx: &TracePointContext) -> Result<(), Fault> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied at once; the entry is this thread's (keyed by pid_tgid),
    // and only this thread's programs write it.
    let Some(pending) = (unsafe { PENDING_OPEN.get(&pid_tgid) }).copied() else {
        return Ok(());
    };
    let _ = PENDING_OPEN.remove(&pid_tgid);
    let result = syscall_ret(ctx);
    if let Some(filter) = filter::applies(kind::OPEN)
        && !filter.admits.admits_result(result)
    {
        count(kind::OPEN, stat::FILTERED);
        return Ok(());
    }
    // Before the record: a full ring buffer loses the record, never the kill.
    let kill = crate::kill::judge_open(&crate::kill::OpenFacts {
        syscall: pending.syscall,
        flags: pending.flags,
        result,
        path: pending.path,
        tgid: (pid_tgid >> 32) as u32,
    });
    let record = Record::<OpenRecord>::start()?;
    let mut header_flags = 0u16;

    let (path_len, cut) = record.user_str(pending.path, MAX_PATH_BYTES);
    if cut {
        header_flags |= flags::PATH_TRUNCATED;
    }
    let mut resolved_len = 0usize;
    if let Ok(file) = file_of_fd(current_task(), result) {
        let (len, cut) = append_file_path(&record, file);
        resolved_len = len;
        if cut {
            header_flags |= flags::RESOLVED_TRUNCATED;
        }
    }

    let fixed = OpenRecord {
        header: record.header(header_flags),
        syscall: pending.syscall,
        path_len: path_len as u16,
        resolved_len: resolved_len as u16,
        _pad0: 0,
        dirfd: pending.dirfd,
        mode: pending.mode,
        flags: pending.flags,
        result,
        uid: bpf_get_current_uid_gid() as u32,
        kill,
    };
    record.set_fixed(fixed);
    record.submit();
    Ok(())
}

/// `FMODE_EXEC`: the kernel's own open of a binary being executed (reported by exec).
const FMODE_EXEC: u32 = 0x20;

/// LSM `file_open`: every open the kernel performs for a process, however it was asked
/// for. Opens made by the traced open syscalls are left to their exit tracepoint (it
/// has the path as given and the fd); this reports the rest, above all io_uring's
/// `IORING_OP_OPENAT`, which no syscall tracepoint sees. Always allows the open.
#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    counted(
        kind::OPEN,
        enhanced_open(ctx.arg::<u64>(0), flags::ENHANCED),
    )
}

/// The same, with the path from the kernel's own `d_path` (what `/proc/<pid>/fd`
/// shows, checked under the kernel's locks) where the kernel allows it the helper.
#[lsm(hook = "file_open")]
pub fn lsm_file_open_d_path(ctx: LsmContext) -> i32 {
    counted(
        kind::OPEN,
        enhanced_open(ctx.arg::<u64>(0), flags::ENHANCED | flags::D_PATH),
    )
}

/// The same where the bpf LSM is not active: the LSM hook runs inside
/// `security_file_open`, so fentry on it sees the same opens.
#[fentry(function = "security_file_open")]
pub fn fentry_security_file_open(ctx: FEntryContext) -> i32 {
    counted(
        kind::OPEN,
        enhanced_open(ctx.arg::<u64>(0), flags::ENHANCED | flags::FENTRY),
    )
}

#[fentry(function = "security_file_open")]
pub fn fentry_security_file_open_d_path(ctx: FEntryContext) -> i32 {
    let hook_flags = flags::ENHANCED | flags::FENTRY | flags::D_PATH;
    counted(kind::OPEN, enhanced_open(ctx.arg::<u64>(0), hook_flags))
}

/// `hook_flags` is a constant in each caller: with `D_PATH` the path comes from
/// `bpf_d_path`, without it from the dentry walk, and only one of them is compiled
/// into each program.
#[inline(always)]
fn enhanced_open(file: u64, hook_flags: u16) -> Result<(), Fault> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !wanted(kind::OPEN, (pid_tgid >> 32) as u32) {
        return Ok(());
    }
    // SAFETY: only whether the entry is there is checked; the value is never read.
    if unsafe { PENDING_OPEN.get(&pid_tgid) }.is_some() {
        return Ok(());
    }
    // Kernel threads (no mm) open firmware and the like on nobody's behalf.
    if read::<u64>(current_task(), offset!(task_mm)).unwrap_or(0) == 0 {
        return Ok(());
    }
    if read::<u32>(file, offset!(file_f_mode)).unwrap_or(0) & FMODE_EXEC != 0 {
        return Ok(());
    }
    let file_flags = read::<u32>(file, offset!(file_f_flags)).unwrap_or(0) as u64;
    if let Some(filter) = filter::applies(kind::OPEN)
        && !(filter.admits.admits_open_entry(syscall::OPENAT, file_flags)
            && filter.admits.admits_result(0))
    {
        count(kind::OPEN, stat::FILTERED);
        return Ok(());
    }
    let record = Record::<OpenRecord>::start()?;
    let (resolved_len, cut) = if hook_flags & flags::D_PATH != 0 {
        append_d_path(&record, file)
    } else {
        append_file_path(&record, file)
    };
    let mut header_flags = hook_flags;
    if cut {
        header_flags |= flags::RESOLVED_TRUNCATED;
    }
    let fixed = OpenRecord {
        header: record.header(header_flags),
        syscall: syscall::OPENAT,
        path_len: 0,
        resolved_len: resolved_len as u16,
        _pad0: 0,
        dirfd: AT_FDCWD,
        mode: 0,
        flags: file_flags,
        result: 0,
        uid: bpf_get_current_uid_gid() as u32,
        kill: 0,
    };
    record.set_fixed(fixed);
    record.submit();
    Ok(())
}
