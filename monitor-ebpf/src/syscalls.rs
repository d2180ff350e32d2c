//! The other syscalls Falco's rules name (see `monitor_common::SyscallRecord`): rare,
//! or cheap to describe, so one record type carries them all. Entry saves the raw
//! arguments; exit adds the result, the string arguments (the caller's memory is still
//! there), the directory a relative path starts from, the socket the syscall worked
//! on, and for `send*`/`recv*` the first bytes moved and the address named.
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_user},
    macros::{map, raw_tracepoint, tracepoint},
    maps::LruHashMap,
    programs::{RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use monitor_common::{
    DIR_FOR_STR0, DIR_FOR_STR1, Fault, MAX_PATH_BYTES, MAX_SOCKADDR, SNAPLEN, SocketFacts,
    SyscallRecord, flags, kind, stat, syscall,
};

use crate::{
    filter,
    kernel::{current_task, file_of_fd, offset, read, socket_facts_into},
    maps::wanted,
    path::{AT_FDCWD, append_base_dir},
    process::{syscall_arg, syscall_ret},
    record::{Record, RecordBytes, count, counted},
};

/// Arguments of the syscalls of `syscalls`, keyed by thread.
#[map]
pub static PENDING_SYSCALL: LruHashMap<u64, PendingSyscall> = LruHashMap::with_max_entries(8192, 0);

/// No argument at this position.
const NONE: usize = usize::MAX;
/// A relative path starts from the working directory (the syscall takes no dirfd).
const CWD: usize = usize::MAX - 1;
/// The socket is the fd the syscall returns.
const RESULT: usize = usize::MAX - 2;

#[derive(Clone, Copy)]
pub struct PendingSyscall {
    args: [u64; 6],
}

/// What a syscall's record holds besides its raw arguments and result. Every field is
/// a constant per program, so each exit program keeps only the code its syscall needs.
#[derive(Clone, Copy)]
struct Shape {
    /// Argument positions of up to two string arguments.
    strings: [usize; 2],
    /// Per string that is a path: the argument holding the dirfd a relative path
    /// starts from, or `CWD`; `NONE` for strings that are no path of the caller's
    /// (a symlink's target, module parameters, a memfd's name).
    bases: [usize; 2],
    /// The fd of the socket to describe: an argument position, or `RESULT`.
    socket: usize,
    io: Io,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Io {
    None,
    /// `sendto`/`recvfrom(fd, buf, len, flags, addr, addrlen)`.
    Buffer,
    /// `sendmsg`/`recvmsg(fd, msg, flags)`.
    Message,
}

const fn paths(strings: [usize; 2], bases: [usize; 2]) -> Shape {
    Shape {
        strings,
        bases,
        socket: NONE,
        io: Io::None,
    }
}

const fn socket(fd: usize, io: Io) -> Shape {
    Shape {
        strings: [NONE, NONE],
        bases: [NONE, NONE],
        socket: fd,
        io,
    }
}

const PLAIN: Shape = paths([NONE, NONE], [NONE, NONE]);

/// Declares the entry and exit programs of one syscall.
macro_rules! traced {
    ($enter:ident, $exit:ident, $id:path, $shape:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            let arg = |n| syscall_arg(&ctx, n);
            let args = [arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)];
            counted(kind::SYSCALL, save(&ctx, $id, args)) as u32
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            counted(kind::SYSCALL, emit($id, $shape, 0, syscall_ret(&ctx))) as u32
        }
    };
}

traced!(sys_enter_ptrace, sys_exit_ptrace, syscall::PTRACE, PLAIN);
traced!(
    sys_enter_symlink,
    sys_exit_symlink,
    syscall::SYMLINK,
    paths([0, 1], [NONE, CWD])
);
traced!(
    sys_enter_symlinkat,
    sys_exit_symlinkat,
    syscall::SYMLINKAT,
    paths([0, 2], [NONE, 1])
);
traced!(
    sys_enter_link,
    sys_exit_link,
    syscall::LINK,
    paths([0, 1], [CWD, CWD])
);
traced!(
    sys_enter_linkat,
    sys_exit_linkat,
    syscall::LINKAT,
    paths([1, 3], [0, 2])
);
traced!(
    sys_enter_init_module,
    sys_exit_init_module,
    syscall::INIT_MODULE,
    paths([2, NONE], [NONE, NONE])
);
traced!(
    sys_enter_finit_module,
    sys_exit_finit_module,
    syscall::FINIT_MODULE,
    paths([1, NONE], [NONE, NONE])
);
traced!(sys_enter_socket, sys_exit_socket, syscall::SOCKET, PLAIN);
traced!(
    sys_enter_dup,
    sys_exit_dup,
    syscall::DUP,
    socket(0, Io::None)
);
traced!(
    sys_enter_dup2,
    sys_exit_dup2,
    syscall::DUP2,
    socket(0, Io::None)
);
traced!(
    sys_enter_dup3,
    sys_exit_dup3,
    syscall::DUP3,
    socket(0, Io::None)
);
traced!(sys_enter_setns, sys_exit_setns, syscall::SETNS, PLAIN);
traced!(sys_enter_unshare, sys_exit_unshare, syscall::UNSHARE, PLAIN);
traced!(sys_enter_setuid, sys_exit_setuid, syscall::SETUID, PLAIN);
traced!(
    sys_enter_chmod,
    sys_exit_chmod,
    syscall::CHMOD,
    paths([0, NONE], [CWD, NONE])
);
traced!(sys_enter_fchmod, sys_exit_fchmod, syscall::FCHMOD, PLAIN);
traced!(
    sys_enter_fchmodat,
    sys_exit_fchmodat,
    syscall::FCHMODAT,
    paths([1, NONE], [0, NONE])
);
traced!(sys_enter_bpf, sys_exit_bpf, syscall::BPF, PLAIN);
traced!(
    sys_enter_unlink,
    sys_exit_unlink,
    syscall::UNLINK,
    paths([0, NONE], [CWD, NONE])
);
traced!(
    sys_enter_unlinkat,
    sys_exit_unlinkat,
    syscall::UNLINKAT,
    paths([1, NONE], [0, NONE])
);
traced!(
    sys_enter_rename,
    sys_exit_rename,
    syscall::RENAME,
    paths([0, 1], [CWD, CWD])
);
traced!(
    sys_enter_renameat,
    sys_exit_renameat,
    syscall::RENAMEAT,
    paths([1, 3], [0, 2])
);
traced!(
    sys_enter_renameat2,
    sys_exit_renameat2,
    syscall::RENAMEAT2,
    paths([1, 3], [0, 2])
);
traced!(
    sys_enter_mkdir,
    sys_exit_mkdir,
    syscall::MKDIR,
    paths([0, NONE], [CWD, NONE])
);
traced!(
    sys_enter_mkdirat,
    sys_exit_mkdirat,
    syscall::MKDIRAT,
    paths([1, NONE], [0, NONE])
);
traced!(
    sys_enter_rmdir,
    sys_exit_rmdir,
    syscall::RMDIR,
    paths([0, NONE], [CWD, NONE])
);
traced!(
    sys_enter_userfaultfd,
    sys_exit_userfaultfd,
    syscall::USERFAULTFD,
    PLAIN
);
traced!(
    sys_enter_memfd_create,
    sys_exit_memfd_create,
    syscall::MEMFD_CREATE,
    paths([0, NONE], [NONE, NONE])
);
traced!(
    sys_enter_listen,
    sys_exit_listen,
    syscall::LISTEN,
    socket(0, Io::None)
);
traced!(
    sys_enter_accept,
    sys_exit_accept,
    syscall::ACCEPT,
    socket(RESULT, Io::None)
);
traced!(
    sys_enter_accept4,
    sys_exit_accept4,
    syscall::ACCEPT4,
    socket(RESULT, Io::None)
);
traced!(
    sys_enter_sendto,
    sys_exit_sendto,
    syscall::SENDTO,
    socket(0, Io::Buffer)
);
traced!(
    sys_enter_recvfrom,
    sys_exit_recvfrom,
    syscall::RECVFROM,
    socket(0, Io::Buffer)
);
traced!(
    sys_enter_sendmsg,
    sys_exit_sendmsg,
    syscall::SENDMSG,
    socket(0, Io::Message)
);
traced!(
    sys_enter_recvmsg,
    sys_exit_recvmsg,
    syscall::RECVMSG,
    socket(0, Io::Message)
);

/// The kernel's numbers of `init_module` and `finit_module` on this architecture, set by
/// the agent at load time (only the raw `sys_enter`/`sys_exit` fallback reads them).
// SAFETY: no other symbol in the program is named `MODULE_SYSCALL_NRS` (the agent patches
// it by that name).
#[unsafe(no_mangle)]
static MODULE_SYSCALL_NRS: [u64; 2] = [u64::MAX; 2];

/// Which module syscall a syscall number is, if either.
#[inline(always)]
fn module_syscall(nr: u64) -> Option<u16> {
    // SAFETY: a reference to a static: valid and aligned. Volatile so that the numbers the
    // agent patched in at load time are read, not the ones the compiler saw.
    let nrs = unsafe { core::ptr::read_volatile(&MODULE_SYSCALL_NRS) };
    if nr == nrs[0] {
        Some(syscall::INIT_MODULE)
    } else if nr == nrs[1] {
        Some(syscall::FINIT_MODULE)
    } else {
        None
    }
}

/// Module loads where the kernel has no tracepoints of their own (built without
/// module support, the syscalls still exist and fail with `ENOSYS`). The raw
/// `sys_enter(struct pt_regs *regs, long id)` tracepoint runs for every syscall, so this
/// is only attached in that case; a raw tracepoint costs every syscall less than the
/// perf-based `raw_syscalls` one, which copies each syscall's arguments.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn raw_sys_enter_module(ctx: RawTracePointContext) -> i32 {
    let nr: u64 = ctx.arg(1);
    let Some(id) = module_syscall(nr) else {
        return 0;
    };
    let regs: u64 = ctx.arg(0);
    let offsets = offset!(pt_regs_args);
    let reg = |n: usize| read::<u64>(regs, offsets[n]).unwrap_or(0);
    let args = [reg(0), reg(1), reg(2), reg(3), reg(4), reg(5)];
    counted(kind::SYSCALL, save(&ctx, id, args))
}

/// `sys_exit(struct pt_regs *regs, long ret)`; the syscall's number is still in the
/// registers.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn raw_sys_exit_module(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let nr = read::<u64>(regs, offset!(pt_regs_syscall_nr)).unwrap_or(u64::MAX);
    // One call, so that one copy of the record's code is inlined.
    let (id, params) = match module_syscall(nr) {
        Some(syscall::INIT_MODULE) => (syscall::INIT_MODULE, 2),
        Some(_) => (syscall::FINIT_MODULE, 1),
        None => return 0,
    };
    let shape = paths([params, NONE], [NONE, NONE]);
    counted(
        kind::SYSCALL,
        emit(id, shape, flags::RAW_SYSCALL, ctx.arg::<i64>(1)),
    )
}

#[inline(always)]
fn save<C: EbpfContext>(ctx: &C, id: u16, args: [u64; 6]) -> Result<(), Fault> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !wanted(kind::SYSCALL, (pid_tgid >> 32) as u32) {
        return Ok(());
    }
    if let Some(f) = filter::applies(kind::SYSCALL)
        && !f.admits.admits_syscall(id)
    {
        count(kind::SYSCALL, stat::FILTERED);
        return Ok(());
    }
    let pending = PendingSyscall { args };
    PENDING_SYSCALL.insert(&pid_tgid, &pending, 0).map_err(|_| {
        warn!(
            ctx,
            "syscall by {} not recorded: pending-syscall table full",
            pid_tgid >> 32
        );
        Fault::PendingFull
    })
}

#[inline(always)]
fn emit(id: u16, shape: Shape, header_flags: u16, result: i64) -> Result<(), Fault> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Read in place and removed last: a copy of the arguments on the stack would not
    // fit beside the rest in the biggest of these programs.
    let Some(pending) = PENDING_SYSCALL.get_ptr(&pid_tgid) else {
        return Ok(());
    };
    // SAFETY: the entry is this thread's (keyed by pid_tgid) and removed only after this
    // use; the map's element memory stays valid while the program runs.
    let emitted = emit_pending(id, shape, header_flags, unsafe { &(*pending).args }, result);
    let _ = PENDING_SYSCALL.remove(&pid_tgid);
    emitted
}

#[inline(always)]
fn emit_pending(
    id: u16,
    shape: Shape,
    header_flags: u16,
    args: &[u64; 6],
    result: i64,
) -> Result<(), Fault> {
    if let Some(f) = filter::applies(kind::SYSCALL)
        && !f.admits.admits_result(result)
    {
        count(kind::SYSCALL, stat::FILTERED);
        return Ok(());
    }
    let task = current_task();
    let mut record = Record::<SyscallRecord>::start()?;
    let start0 = record.len();
    let str0_len = append_string(&record, args, shape.strings[0]);
    let start1 = record.len();
    let str1_len = append_string(&record, args, shape.strings[1]);
    // One directory walk at most: the first relative path's base, which a second
    // relative path shares when it starts from the same directory (rename(a, b),
    // renameat(fd, a, fd, b)). Two relative paths from two dirfds leave the second's
    // base unknown.
    let relative0 = shape.bases[0] != NONE && str0_len > 0 && record.byte_at(start0) != b'/';
    let relative1 = shape.bases[1] != NONE && str1_len > 0 && record.byte_at(start1) != b'/';
    let base0 = dirfd_of(args, shape.bases[0]);
    let base1 = dirfd_of(args, shape.bases[1]);
    let mut dir_for = 0u16;
    let mut dirfd = AT_FDCWD;
    if relative0 {
        dir_for = DIR_FOR_STR0;
        dirfd = base0;
        if relative1 && base1 == base0 {
            dir_for |= DIR_FOR_STR1;
        }
    } else if relative1 {
        dir_for = DIR_FOR_STR1;
        dirfd = base1;
    }
    let dir_len = if dir_for != 0 {
        append_base_dir(&record, task, dirfd) as u16
    } else {
        0
    };

    let (mut data_len, mut addr_len) = (0u16, 0u16);
    if shape.io != Io::None && result > 0 {
        let (buf, buf_len, addr, addr_len_arg) = if shape.io == Io::Buffer {
            (args[1], args[2], args[4], args[5])
        } else {
            message_parts(args[1])
        };
        let moved = (result as u64).min(buf_len).min(SNAPLEN as u64) as usize;
        data_len = record.user_bytes(buf, moved) as u16;
        if addr != 0 {
            // recvfrom's address length is a pointer to what the kernel wrote.
            // SAFETY: the helper checks the address: a bad one fails the read (an error),
            // never faults.
            let len = if id == syscall::RECVFROM {
                unsafe { bpf_probe_read_user(addr_len_arg as *const u32) }.unwrap_or(0) as u64
            } else {
                addr_len_arg
            };
            addr_len = record.user_bytes(addr, (len as usize).min(MAX_SOCKADDR)) as u16;
        }
    }
    // Written in place: a record built on the stack and copied would not fit the
    // stack of the programs that hold more than one syscall's code.
    let fixed = record.fixed_mut();
    fixed.sock = SocketFacts::default();
    if shape.socket != NONE && result >= 0 {
        let fd = if shape.socket == RESULT {
            result
        } else {
            arg(args, shape.socket) as i32 as i64
        };
        if let Ok(file) = file_of_fd(task, fd) {
            socket_facts_into(file, &mut fixed.sock);
        }
    }
    fixed.syscall = id;
    fixed.str0_len = str0_len;
    fixed.str1_len = str1_len;
    fixed.dir_len = dir_len;
    fixed.uid = bpf_get_current_uid_gid() as u32;
    fixed.dir_for = dir_for;
    fixed.data_len = data_len;
    fixed.result = result;
    fixed.args = [args[0], args[1], args[2], args[3], args[4]];
    fixed.addr_len = addr_len;
    fixed._pad = [0; 3];
    let header = record.header(header_flags);
    record.fixed_mut().header = header;
    record.submit();
    Ok(())
}

/// Appends the string argument at `at`, if any; returns its length.
#[inline(always)]
fn append_string(record: &RecordBytes, args: &[u64; 6], at: usize) -> u16 {
    if at == NONE {
        return 0;
    }
    record.user_str(arg(args, at), MAX_PATH_BYTES).0 as u16
}

/// The dirfd a relative path given at `base` starts from.
#[inline(always)]
fn dirfd_of(args: &[u64; 6], base: usize) -> i32 {
    if base == CWD {
        AT_FDCWD
    } else {
        arg(args, base) as i32
    }
}

/// Argument `n` (0 past the saved ones).
#[inline(always)]
fn arg(args: &[u64; 6], n: usize) -> u64 {
    args.get(n).copied().unwrap_or(0)
}

/// A `struct msghdr`'s first data buffer and its address: `(buf, buf_len, name,
/// name_len)` (`msg_name` at 0, `msg_namelen` at 8, `msg_iov` at 16; an iovec is
/// base then length).
#[inline(always)]
fn message_parts(msg: u64) -> (u64, u64, u64, u64) {
    // SAFETY: the helper checks the address: a bad one fails the read (an error), never
    // faults.
    let user = |at: u64| unsafe { bpf_probe_read_user(at as *const u64) }.unwrap_or(0);
    let name = user(msg);
    let name_len = user(msg + 8) & 0xffff_ffff;
    let iov = user(msg + 16);
    (user(iov), user(iov + 8), name, name_len)
}
