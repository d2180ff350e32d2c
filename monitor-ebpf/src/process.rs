//! Process lifecycle: exec (syscall tracepoints, plus the LSM `bprm_check_security`
//! hook for the file the kernel resolved), fork (raw tracepoint), exit (sched
//! tracepoint).
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{fentry, lsm, map, raw_tracepoint, tracepoint},
    maps::LruHashMap,
    programs::{FEntryContext, LsmContext, RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use monitor_common::{
    ExecRecord, ExitRecord, Fault, ForkRecord, MAX_ARGS, MAX_ARGS_BYTES, MAX_ENV_BYTES,
    MAX_PATH_BYTES, exe, flags, kind, syscall,
};

use crate::{
    kernel::{
        append_cgroup_name, capabilities, current_task, exe_facts, identity, offset, parent_tgid,
        process_start, read, sid, tty, vpgid, vpid,
    },
    maps::wanted,
    path::{AT_FDCWD, append_d_path, append_file_path},
    record::{Record, RecordBytes, counted},
};

#[map]
pub static PENDING_EXEC: LruHashMap<u32, PendingExec> = LruHashMap::with_max_entries(8192, 0);
/// The file an exec runs, as the LSM `bprm_check_security` hook resolved it, kept
/// for the exec's exit tracepoint. Keyed like `PENDING_EXEC`; one path per exec in
/// flight, so a few hundred entries cover every CPU.
#[map]
pub static EXEC_FILE: LruHashMap<u32, ExecFile> = LruHashMap::with_max_entries(512, 0);

#[derive(Clone, Copy)]
pub struct PendingExec {
    filename: u64,
    argv: u64,
    dirfd: i32,
    at_flags: u32,
    syscall: u16,
    /// What an exec keeps, read at entry: the exit programs' verification grows with
    /// every branch they take (6.1 gave up), the entry's does not matter as much.
    session: Session,
}

#[derive(Clone, Copy, Default)]
struct Session {
    vpgid: u32,
    tty: u32,
    sid: u32,
}

/// Argument `n` of a syscall entry tracepoint (they start at byte 16, 8 bytes each).
#[inline(always)]
pub fn syscall_arg(ctx: &TracePointContext, n: usize) -> u64 {
    // SAFETY: `read_at` goes through `bpf_probe_read_kernel`, which checks the address: an
    // offset past the tracepoint's record fails the read (an error), never faults.
    unsafe { ctx.read_at::<u64>(16 + 8 * n) }.unwrap_or(0)
}

/// Return value of a syscall exit tracepoint.
#[inline(always)]
pub fn syscall_ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: as in `syscall_arg`.
    unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0)
}

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    counted(
        kind::EXEC,
        save_exec(
            &ctx,
            PendingExec {
                filename: syscall_arg(&ctx, 0),
                argv: syscall_arg(&ctx, 1),
                dirfd: AT_FDCWD,
                at_flags: 0,
                syscall: syscall::EXECVE,
                session: Session::default(),
            },
        ),
    ) as u32
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    counted(
        kind::EXEC,
        save_exec(
            &ctx,
            PendingExec {
                dirfd: syscall_arg(&ctx, 0) as i32,
                filename: syscall_arg(&ctx, 1),
                argv: syscall_arg(&ctx, 2),
                at_flags: syscall_arg(&ctx, 4) as u32,
                syscall: syscall::EXECVEAT,
                session: Session::default(),
            },
        ),
    ) as u32
}

/// Keyed by thread group id: a successful exec from a non-leader thread returns in
/// the leader's pid, so the thread id would not find the entry again.
#[inline(always)]
fn save_exec(ctx: &TracePointContext, mut pending: PendingExec) -> Result<(), Fault> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !wanted(kind::EXEC, tgid) {
        return Ok(());
    }
    let task = current_task();
    pending.session = Session {
        vpgid: vpgid(task),
        tty: tty(task),
        sid: sid(task),
    };
    // A file left by an exec whose exit was never seen must not pass for this one's.
    let _ = EXEC_FILE.remove(&tgid);
    PENDING_EXEC.insert(&tgid, &pending, 0).map_err(|_| {
        warn!(
            ctx,
            "exec by {} not recorded: pending-exec table full", tgid
        );
        Fault::PendingFull
    })
}

/// A failed exec: the caller's memory still holds what it asked for. (A successful one
/// is reported by `sched_process_exec`, which leaves no pending entry behind.)
#[tracepoint]
pub fn sys_exit_execve(ctx: TracePointContext) -> u32 {
    counted(kind::EXEC, emit_failed_exec(&ctx)) as u32
}

#[tracepoint]
pub fn sys_exit_execveat(ctx: TracePointContext) -> u32 {
    counted(kind::EXEC, emit_failed_exec(&ctx)) as u32
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`:
/// the new image is in place and the exec can no longer fail. Reporting the success
/// here and the failure at the syscall's exit keeps each program small enough for
/// older verifiers (6.1 gave up on one program doing both).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    counted(kind::EXEC, emit_exec_image())
}

#[inline(always)]
fn take_pending_exec(tgid: u32) -> Option<PendingExec> {
    // SAFETY: the value is copied at once; the entry is keyed by this process's tgid, and
    // the map's element memory stays valid while the program runs.
    let pending = (unsafe { PENDING_EXEC.get(&tgid) }).copied()?;
    let _ = PENDING_EXEC.remove(&tgid);
    Some(pending)
}

#[inline(always)]
fn emit_exec_image() -> Result<(), Fault> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(pending) = take_pending_exec(tgid) else {
        // Not saved at entry: the kind is off, or this is the agent.
        return Ok(());
    };
    let task = current_task();
    let record = Record::<ExecRecord>::start()?;
    let mut header_flags = 0u16;

    // The caller's memory is gone; the new image tells its file and argv.
    let mm = read::<u64>(task, offset!(task_mm))?;
    let mut exe_len = 0usize;
    let mut exe = 0u64;
    if let Ok(exe_file) = read::<u64>(mm, offset!(mm_exe_file)) {
        exe = exe_file;
        let (len, cut) = append_file_path(&record, exe_file);
        exe_len = len;
        if cut {
            header_flags |= flags::RESOLVED_TRUNCATED;
        }
    }
    let start = read::<u64>(mm, offset!(mm_arg_start)).unwrap_or(0);
    let end = read::<u64>(mm, offset!(mm_arg_end)).unwrap_or(0);
    let mut len = end.saturating_sub(start) as usize;
    if len > MAX_ARGS_BYTES {
        len = MAX_ARGS_BYTES;
        header_flags |= flags::ARGS_TRUNCATED;
    }
    let args_len = record.user_bytes(start, len);
    let cgroup_name_len = append_cgroup_name(&record, task);
    let file_len = append_exec_file(&record, tgid, &mut header_flags);
    // Last, so that a failed read leaves the other parts whole.
    let env_start = read::<u64>(mm, offset!(mm_env_start)).unwrap_or(0);
    let env_end = read::<u64>(mm, offset!(mm_env_end)).unwrap_or(0);
    let mut env_len = env_end.saturating_sub(env_start) as usize;
    if env_len > MAX_ENV_BYTES {
        env_len = MAX_ENV_BYTES;
        header_flags |= flags::ENV_TRUNCATED;
    }
    let env_len = record.user_bytes(env_start, env_len);
    let exe_flags = if exe != 0 {
        exe_facts(task, exe)
    } else {
        exe::UNKNOWN
    };
    submit_exec(
        record,
        task,
        header_flags,
        &pending,
        ExecParts {
            exe_len,
            filename_len: 0,
            cgroup_name_len,
            args_len,
            file_len,
            env_len,
            exe_flags,
            result: 0,
        },
    );
    Ok(())
}

#[inline(always)]
fn emit_failed_exec(ctx: &TracePointContext) -> Result<(), Fault> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(pending) = take_pending_exec(tgid) else {
        // Not saved at entry, or already reported by `sched_process_exec`.
        return Ok(());
    };
    let result = syscall_ret(ctx);
    if result == 0 {
        // A success `sched_process_exec` did not see: its program is not attached.
        return Err(Fault::MissedHook);
    }
    let task = current_task();
    let record = Record::<ExecRecord>::start()?;
    let mut header_flags = 0u16;
    let (filename_len, cut) = record.user_str(pending.filename, MAX_PATH_BYTES);
    if cut {
        header_flags |= flags::PATH_TRUNCATED;
    }
    let (args_len, cut) = append_argv(&record, pending.argv);
    if cut {
        header_flags |= flags::ARGS_TRUNCATED;
    }
    let cgroup_name_len = append_cgroup_name(&record, task);
    let file_len = append_exec_file(&record, tgid, &mut header_flags);
    submit_exec(
        record,
        task,
        header_flags,
        &pending,
        ExecParts {
            exe_len: 0,
            filename_len,
            cgroup_name_len,
            args_len,
            file_len,
            env_len: 0,
            exe_flags: exe::UNKNOWN,
            result,
        },
    );
    Ok(())
}

/// Appends the file `bprm_check_security` saw for this exec, if it saw one; returns
/// its length.
#[inline(always)]
fn append_exec_file(record: &RecordBytes, tgid: u32, header_flags: &mut u16) -> usize {
    // SAFETY: the map's element memory stays valid while the program runs: a concurrent
    // change could only garble what is copied (a probe read, its length capped).
    let Some(file) = (unsafe { EXEC_FILE.get(&tgid) }) else {
        return 0;
    };
    let len = (file.head.len as usize).min(MAX_PATH_BYTES);
    let len = record.raw_bytes(file.path.as_ptr() as u64, len, true);
    *header_flags |= file.head.flags as u16;
    let _ = EXEC_FILE.remove(&tgid);
    len
}

/// The lengths and facts of an exec record's parts, in record order.
struct ExecParts {
    exe_len: usize,
    filename_len: usize,
    cgroup_name_len: usize,
    args_len: usize,
    file_len: usize,
    env_len: usize,
    exe_flags: u32,
    result: i64,
}

#[inline(always)]
fn submit_exec(
    record: Record<ExecRecord>,
    task: u64,
    header_flags: u16,
    pending: &PendingExec,
    parts: ExecParts,
) {
    let fixed = ExecRecord {
        header: record.header(header_flags),
        task: identity(task),
        result: parts.result,
        syscall: pending.syscall,
        exe_len: parts.exe_len as u16,
        filename_len: parts.filename_len as u16,
        cgroup_name_len: parts.cgroup_name_len as u16,
        args_len: parts.args_len as u32,
        dirfd: pending.dirfd,
        at_flags: pending.at_flags,
        file_len: parts.file_len as u16,
        env_len: parts.env_len as u16,
        exe_flags: parts.exe_flags,
        vpgid: pending.session.vpgid,
        tty: pending.session.tty,
        sid: pending.session.sid,
        _pad3: 0,
        caps: capabilities(task),
    };
    record.set_fixed(fixed);
    record.submit();
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct ExecFileHead {
    len: u32,
    /// Header flags for the exec record: the hook's, and whether the path was cut.
    flags: u32,
}

/// An `EXEC_FILE` entry: a reversed path.
#[repr(C)]
pub struct ExecFile {
    head: ExecFileHead,
    path: [u8; MAX_PATH_BYTES],
}

/// LSM `bprm_check_security(struct linux_binprm *bprm)`: runs once per binary format
/// handler, first for the file the caller named (a script, a binary, the file behind
/// `/dev/fd/N` or a memfd), then for a script's interpreter. The first call's
/// `bprm->file` is kept for the exit tracepoint; the interpreter is what the exit
/// reports as `exe` anyway. Always allows the exec.
#[lsm(hook = "bprm_check_security")]
pub fn lsm_bprm_check_security(ctx: LsmContext) -> i32 {
    counted(
        kind::EXEC,
        save_exec_file(ctx.arg::<u64>(0), flags::ENHANCED),
    )
}

/// The same, with the path from the kernel's own `d_path` where the kernel allows it
/// the helper (`bprm_check_security` is a sleepable hook, so LSM programs on it may).
#[lsm(hook = "bprm_check_security")]
pub fn lsm_bprm_check_security_d_path(ctx: LsmContext) -> i32 {
    counted(
        kind::EXEC,
        save_exec_file(ctx.arg::<u64>(0), flags::ENHANCED | flags::D_PATH),
    )
}

/// The same where the bpf LSM is not active: fentry on `security_bprm_check`, which
/// the LSM hook runs inside.
#[fentry(function = "security_bprm_check")]
pub fn fentry_security_bprm_check(ctx: FEntryContext) -> i32 {
    counted(
        kind::EXEC,
        save_exec_file(ctx.arg::<u64>(0), flags::ENHANCED | flags::FENTRY),
    )
}

#[inline(always)]
fn save_exec_file(bprm: u64, hook_flags: u16) -> Result<(), Fault> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // Only execs the entry tracepoint saw (kind on, not the agent), and only the
    // first handler's file.
    // SAFETY: only whether the entries are there is checked; the values are never read.
    if unsafe { PENDING_EXEC.get(&tgid) }.is_none() || unsafe { EXEC_FILE.get(&tgid) }.is_some() {
        return Ok(());
    }
    // The path is assembled in the record scratch, laid out as an `ExecFile`, and
    // copied from there into the map (a map value is too large for the stack).
    let staging = Record::<ExecFileHead>::begin(kind::EXEC)?;
    let (len, cut) = if hook_flags & flags::D_PATH != 0 {
        // A plain load, not a probe read: the verifier must see `bprm->file` as the
        // `struct file *` it is to let `bpf_d_path` have its `f_path`.
        let field = bprm + offset!(binprm_file) as u64;
        // SAFETY: `bprm` is the hook's `struct linux_binprm *`: the verifier checks this
        // load against its BTF type and makes it one that cannot fault.
        let file = unsafe { core::ptr::read_volatile(field as *const u64) };
        append_d_path(&staging, file)
    } else {
        append_file_path(&staging, read::<u64>(bprm, offset!(binprm_file))?)
    };
    let cut = if cut { flags::FILE_TRUNCATED } else { 0 };
    staging.set_fixed(ExecFileHead {
        len: len as u32,
        flags: (hook_flags | cut) as u32,
    });
    EXEC_FILE
        .insert(&tgid, staging.as_whole::<ExecFile>(), 0)
        .map_err(|_| Fault::PendingFull)
}

/// Copies a user `argv` array (NULL-terminated pointers to strings) as NUL-separated
/// bytes; returns the length and whether entries or bytes were cut.
#[inline(always)]
fn append_argv(record: &RecordBytes, argv: u64) -> (usize, bool) {
    if argv == 0 {
        return (0, false);
    }
    let start = record.len();
    for i in 0..MAX_ARGS {
        let written = record.len().wrapping_sub(start);
        // SAFETY: the helper checks the address: a bad one fails the read (an error), never
        // faults.
        let Ok(arg) = (unsafe { bpf_probe_read_user((argv + 8 * i as u64) as *const u64) }) else {
            return (written, false);
        };
        if arg == 0 {
            return (written, false);
        }
        let remaining = MAX_ARGS_BYTES.saturating_sub(written);
        if remaining == 0 {
            return (written, true);
        }
        if record.user_str_with_nul(arg, remaining) == 0 {
            return (written, false);
        }
    }
    (record.len().wrapping_sub(start), true)
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    counted(kind::FORK, emit_fork(&ctx))
}

#[inline(always)]
fn emit_fork(ctx: &RawTracePointContext) -> Result<(), Fault> {
    let parent: u64 = ctx.arg(0);
    let child: u64 = ctx.arg(1);
    let parent_pid = read::<u32>(parent, offset!(task_tgid))?;
    if !wanted(kind::FORK, parent_pid) {
        return Ok(());
    }
    let child_tid = read::<u32>(child, offset!(task_pid))?;
    let child_pid = read::<u32>(child, offset!(task_tgid))?;
    if child_pid != child_tid {
        // A new thread, not a new process.
        return Ok(());
    }
    let record = Record::<ForkRecord>::start()?;
    let fixed = ForkRecord {
        header: record.header(0),
        child_pid,
        child_tid,
        child_start_boot_ns: read::<u64>(child, offset!(task_start_boottime)).unwrap_or(0),
        parent_ppid: parent_tgid(parent),
        child_vpid: vpid(child),
    };
    record.set_fixed(fixed);
    record.submit();
    Ok(())
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    counted(kind::EXIT, emit_exit()) as u32
}

#[inline(always)]
fn emit_exit() -> Result<(), Fault> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !wanted(kind::EXIT, tgid) {
        return Ok(());
    }
    let task = current_task();
    // Report the process, not each thread: only the last thread out sees no live ones.
    let signal = read::<u64>(task, offset!(task_signal))?;
    let live = read::<i32>(signal, offset!(signal_live))?;
    if live != 0 {
        return Ok(());
    }
    let record = Record::<ExitRecord>::start()?;
    let fixed = ExitRecord {
        header: record.header(0),
        exit_code: read::<i32>(task, offset!(task_exit_code)).unwrap_or(0),
        ppid: parent_tgid(task),
        start_boot_ns: process_start(task),
    };
    record.set_fixed(fixed);
    record.submit();
    Ok(())
}
