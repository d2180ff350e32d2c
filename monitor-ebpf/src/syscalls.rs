//! The other syscalls Falco's rules name (`ptrace`, `symlink(at)`, `link(at)`,
//! `(f)init_module`, `socket`, `dup(2,3)`, `setns`, `unshare`, `setuid`,
//! `(f)chmod(at)`, `bpf`): rare or cheap to describe, so one record
//! type carries them all. Entry saves the raw arguments; exit adds the result, the
//! string arguments (the caller's memory is still there), and for `dup*` the socket
//! behind the duplicated fd.
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid},
    macros::tracepoint,
    programs::TracePointContext,
};
use aya_log_ebpf::warn;
use monitor_common::{MAX_PATH_BYTES, SocketFacts, SyscallRecord, flags, kind, stat, syscall};

use crate::{
    filter,
    kernel::{current_task, file_of_fd, socket_facts},
    maps::{PENDING_SYSCALL, count, wanted},
    process::{syscall_arg, syscall_ret},
    record::Record,
};

/// No string argument at this position.
const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
pub struct PendingSyscall {
    args: [u64; 5],
}

/// Declares the entry and exit programs of one syscall: its id, and which arguments
/// are strings to copy (up to two) and which is an fd whose socket to describe.
macro_rules! traced {
    ($enter:ident, $exit:ident, $id:path, strings: [$s0:expr, $s1:expr], socket_fd: $fd:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            save(&ctx, $id);
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            if emit(&ctx, $id, $s0, $s1, $fd, 0).is_err() {
                count(kind::SYSCALL, stat::ERRORS);
            }
            0
        }
    };
}

traced!(sys_enter_ptrace, sys_exit_ptrace, syscall::PTRACE, strings: [NONE, NONE], socket_fd: NONE);
traced!(sys_enter_symlink, sys_exit_symlink, syscall::SYMLINK, strings: [0, 1], socket_fd: NONE);
traced!(sys_enter_symlinkat, sys_exit_symlinkat, syscall::SYMLINKAT, strings: [0, 2], socket_fd: NONE);
traced!(sys_enter_link, sys_exit_link, syscall::LINK, strings: [0, 1], socket_fd: NONE);
traced!(sys_enter_linkat, sys_exit_linkat, syscall::LINKAT, strings: [1, 3], socket_fd: NONE);
traced!(sys_enter_init_module, sys_exit_init_module, syscall::INIT_MODULE, strings: [2, NONE], socket_fd: NONE);
traced!(sys_enter_finit_module, sys_exit_finit_module, syscall::FINIT_MODULE, strings: [1, NONE], socket_fd: NONE);
traced!(sys_enter_socket, sys_exit_socket, syscall::SOCKET, strings: [NONE, NONE], socket_fd: NONE);
traced!(sys_enter_dup, sys_exit_dup, syscall::DUP, strings: [NONE, NONE], socket_fd: 0);
traced!(sys_enter_dup2, sys_exit_dup2, syscall::DUP2, strings: [NONE, NONE], socket_fd: 0);
traced!(sys_enter_dup3, sys_exit_dup3, syscall::DUP3, strings: [NONE, NONE], socket_fd: 0);
traced!(sys_enter_setns, sys_exit_setns, syscall::SETNS, strings: [NONE, NONE], socket_fd: NONE);
traced!(sys_enter_unshare, sys_exit_unshare, syscall::UNSHARE, strings: [NONE, NONE], socket_fd: NONE);
traced!(sys_enter_setuid, sys_exit_setuid, syscall::SETUID, strings: [NONE, NONE], socket_fd: NONE);
traced!(sys_enter_chmod, sys_exit_chmod, syscall::CHMOD, strings: [0, NONE], socket_fd: NONE);
traced!(sys_enter_fchmod, sys_exit_fchmod, syscall::FCHMOD, strings: [NONE, NONE], socket_fd: NONE);
traced!(sys_enter_fchmodat, sys_exit_fchmodat, syscall::FCHMODAT, strings: [1, NONE], socket_fd: NONE);
traced!(sys_enter_bpf, sys_exit_bpf, syscall::BPF, strings: [NONE, NONE], socket_fd: NONE);

/// The kernel's numbers of `init_module` and `finit_module` on this architecture, set by
/// the agent at load time (only the `raw_syscalls` fallback reads them).
#[unsafe(no_mangle)]
static MODULE_SYSCALL_NRS: [u64; 2] = [u64::MAX; 2];

/// Which module syscall the `raw_syscalls` id is, if either (the id is at byte 8 of
/// both raw tracepoints; their arguments and return value sit where the per-syscall
/// tracepoints keep them, so `save` and `emit` read them alike).
#[inline(always)]
fn module_syscall(ctx: &TracePointContext) -> Option<u16> {
    // A plain load from the tracepoint's record (the verifier allows it for
    // tracepoint programs): no helper call on a path every syscall takes.
    let id = unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(8) as *const u64) };
    let nrs = unsafe { core::ptr::read_volatile(&MODULE_SYSCALL_NRS) };
    if id == nrs[0] {
        Some(syscall::INIT_MODULE)
    } else if id == nrs[1] {
        Some(syscall::FINIT_MODULE)
    } else {
        None
    }
}

/// Module loads where the kernel has no tracepoints of their own (built without
/// module support, the syscalls still exist and fail with `ENOSYS`): the raw syscall
/// tracepoints run for every syscall, so this is only attached in that case.
#[tracepoint]
pub fn raw_sys_enter_module(ctx: TracePointContext) -> u32 {
    if let Some(id) = module_syscall(&ctx) {
        save(&ctx, id);
    }
    0
}

#[tracepoint]
pub fn raw_sys_exit_module(ctx: TracePointContext) -> u32 {
    let raw = flags::RAW_SYSCALL;
    let result = match module_syscall(&ctx) {
        Some(syscall::INIT_MODULE) => emit(&ctx, syscall::INIT_MODULE, 2, NONE, NONE, raw),
        Some(_) => emit(&ctx, syscall::FINIT_MODULE, 1, NONE, NONE, raw),
        None => Ok(()),
    };
    if result.is_err() {
        count(kind::SYSCALL, stat::ERRORS);
    }
    0
}

#[inline(always)]
fn save(ctx: &TracePointContext, id: u16) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !wanted(kind::SYSCALL, (pid_tgid >> 32) as u32) {
        return;
    }
    if let Some(f) = filter::applies(kind::SYSCALL)
        && !f.admits.admits_syscall(id)
    {
        count(kind::SYSCALL, stat::FILTERED);
        return;
    }
    let pending = PendingSyscall {
        args: [
            syscall_arg(ctx, 0),
            syscall_arg(ctx, 1),
            syscall_arg(ctx, 2),
            syscall_arg(ctx, 3),
            syscall_arg(ctx, 4),
        ],
    };
    if PENDING_SYSCALL.insert(&pid_tgid, &pending, 0).is_err() {
        count(kind::SYSCALL, stat::ERRORS);
        warn!(
            ctx,
            "syscall by {} not recorded: pending-syscall table full",
            pid_tgid >> 32
        );
    }
}

#[inline(always)]
fn emit(
    ctx: &TracePointContext,
    id: u16,
    s0: usize,
    s1: usize,
    socket_fd: usize,
    header_flags: u16,
) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(pending) = (unsafe { PENDING_SYSCALL.get(&pid_tgid) }).copied() else {
        return Ok(());
    };
    let _ = PENDING_SYSCALL.remove(&pid_tgid);
    let result = syscall_ret(ctx);
    if let Some(f) = filter::applies(kind::SYSCALL)
        && !f.admits.admits_result(result)
    {
        count(kind::SYSCALL, stat::FILTERED);
        return Ok(());
    }
    let record = Record::start::<SyscallRecord>().ok_or(-1i64)?;
    let string = |at: usize| -> u16 {
        if at >= pending.args.len() {
            return 0;
        }
        record.user_str(pending.args[at], MAX_PATH_BYTES).0 as u16
    };
    let str0_len = string(s0);
    let str1_len = string(s1);
    let sock = if socket_fd < pending.args.len() && result >= 0 {
        file_of_fd(current_task(), pending.args[socket_fd] as i32 as i64)
            .map(socket_facts)
            .unwrap_or_default()
    } else {
        SocketFacts::default()
    };
    let fixed = SyscallRecord {
        header: record.header(header_flags),
        syscall: id,
        str0_len,
        str1_len,
        _pad0: 0,
        uid: bpf_get_current_uid_gid() as u32,
        _pad1: 0,
        result,
        args: pending.args,
        sock,
    };
    unsafe { record.fixed::<SyscallRecord>().write(fixed) };
    record.submit();
    Ok(())
}
