//! Outbound connections: `connect` entry saves the arguments, exit reports the
//! address with the result (`-EINPROGRESS` is an attempt under way, still reported).
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
        bpf_probe_read_kernel_buf, bpf_probe_read_user,
    },
    macros::{fentry, lsm, map, tracepoint},
    maps::LruHashMap,
    programs::{FEntryContext, LsmContext, TracePointContext},
};
use aya_log_ebpf::warn;
use monitor_common::{ConnectRecord, Fault, MAX_UNIX_PATH, SocketFacts, flags, kind, stat};

use crate::{
    filter,
    kernel::{current_task, file_of_fd, socket_facts_into},
    maps::wanted,
    process::{syscall_arg, syscall_ret},
    record::{Record, count, counted},
};

#[map]
pub static PENDING_CONNECT: LruHashMap<u64, PendingConnect> = LruHashMap::with_max_entries(8192, 0);

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EBADF: i64 = 9;
const ENOTSOCK: i64 = 88;

/// `sizeof(struct sockaddr_storage)`: what the kernel copies a connect address into.
const SOCKADDR_STORAGE: usize = 128;

#[derive(Clone, Copy)]
pub struct PendingConnect {
    fd: i64,
    addr: u64,
    addrlen: u64,
    /// The address as the kernel copied it (`socket_connect`), when `copied`.
    kernel_addr: [u8; SOCKADDR_STORAGE],
    /// The header flags of the hook that copied it; 0 when none did.
    copied: u64,
    /// What a deny slot did (`deny.rs`), or 0.
    pub deny: u32,
}

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    counted(kind::CONNECT, save_connect(&ctx)) as u32
}

#[inline(always)]
fn save_connect(ctx: &TracePointContext) -> Result<(), Fault> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !wanted(kind::CONNECT, (pid_tgid >> 32) as u32) {
        return Ok(());
    }
    let pending = PendingConnect {
        fd: syscall_arg(ctx, 0) as i32 as i64,
        addr: syscall_arg(ctx, 1),
        addrlen: syscall_arg(ctx, 2),
        kernel_addr: [0; SOCKADDR_STORAGE],
        copied: 0,
        deny: 0,
    };
    PENDING_CONNECT.insert(&pid_tgid, &pending, 0).map_err(|_| {
        warn!(
            ctx,
            "connect by {} not recorded: pending-connect table full",
            pid_tgid >> 32
        );
        Fault::PendingFull
    })
}

/// LSM `socket_connect`: runs inside `connect` after the kernel copied the address
/// from the caller. Saving that copy for the exit tracepoint closes the gap in which
/// another thread could rewrite the caller's buffer between the connect and our read
/// of it. Always allows the connect.
#[lsm(hook = "socket_connect")]
pub fn lsm_socket_connect(ctx: LsmContext) -> i32 {
    save_kernel_address(ctx.arg(1), flags::ENHANCED);
    0
}

/// The same where the bpf LSM is not active: fentry on `security_socket_connect`,
/// which the LSM hook runs inside (same arguments).
#[fentry(function = "security_socket_connect")]
pub fn fentry_security_socket_connect(ctx: FEntryContext) -> i32 {
    save_kernel_address(ctx.arg(1), flags::ENHANCED | flags::FENTRY);
    0
}

#[inline(always)]
fn save_kernel_address(address: u64, hook_flags: u16) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if let Some(pending) = PENDING_CONNECT.get_ptr_mut(&pid_tgid) {
        // SAFETY: the entry is this thread's (keyed by pid_tgid) and only this thread's
        // programs use it, one after another; its map memory stays valid meanwhile.
        let pending = unsafe { &mut *pending };
        // SAFETY: the helper checks the source address (a bad one fails the read, never
        // faults) and writes exactly the length of `kernel_addr`, into it.
        if unsafe { bpf_probe_read_kernel_buf(address as *const u8, &mut pending.kernel_addr) }
            .is_ok()
        {
            pending.copied = hook_flags as u64;
        }
    }
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    counted(kind::CONNECT, emit_connect(&ctx)) as u32
}

#[inline(always)]
fn emit_connect(ctx: &TracePointContext) -> Result<(), Fault> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING_CONNECT.get_ptr(&pid_tgid) else {
        return Ok(());
    };
    // SAFETY: the fields are copied at once from this thread's entry (keyed by pid_tgid),
    // which only this thread's programs write, and which is removed only below.
    let (fd, user_addr, addrlen, hook_flags, deny) = unsafe {
        (
            (*pending).fd,
            (*pending).addr,
            (*pending).addrlen,
            (*pending).copied as u16,
            (*pending).deny,
        )
    };
    let kernel = hook_flags != 0;
    // The kernel's copy stays in the map entry until this record is written.
    // SAFETY: only an address is taken: the bytes are read through the probe-read helpers,
    // which check it.
    let sockaddr = if kernel {
        unsafe { (*pending).kernel_addr.as_ptr() as u64 }
    } else {
        user_addr
    };
    let result = syscall_ret(ctx);
    let family = sockaddr_read::<u16>(sockaddr, 0, kernel).unwrap_or(0);
    let mut port = 0u16;
    let mut addr = [0u8; 16];
    match family {
        AF_INET => {
            port = u16::from_be(sockaddr_read::<u16>(sockaddr, 2, kernel).unwrap_or(0));
            let v4 = sockaddr_read::<[u8; 4]>(sockaddr, 4, kernel).unwrap_or([0; 4]);
            addr[..4].copy_from_slice(&v4);
        }
        AF_INET6 => {
            port = u16::from_be(sockaddr_read::<u16>(sockaddr, 2, kernel).unwrap_or(0));
            addr = sockaddr_read::<[u8; 16]>(sockaddr, 8, kernel).unwrap_or([0; 16]);
        }
        _ => {}
    }
    // Judged on the address the record would carry (the kernel's copy where a hook
    // took one), so rewriting the caller's buffer cannot steer the filter. A connect
    // a deny slot judged is always recorded: what was done must reach an alert.
    if deny == 0
        && let Some(filter) = filter::applies(kind::CONNECT)
        && (!filter.admits.admits_connect(family, result)
            || filter.excludes_address(family, &addr)
            || (matches!(family, AF_INET | AF_INET6) && !filter.admits_port(port)))
    {
        let _ = PENDING_CONNECT.remove(&pid_tgid);
        count(kind::CONNECT, stat::FILTERED);
        return Ok(());
    }
    let record = match Record::<ConnectRecord>::start() {
        Ok(record) => record,
        Err(fault) => {
            let _ = PENDING_CONNECT.remove(&pid_tgid);
            return Err(fault);
        }
    };
    let mut unix_path_len = 0usize;
    if family == AF_UNIX {
        // sun_path follows the 2-byte family; an abstract name starts with NUL, so
        // copy raw bytes rather than a string.
        let len = (addrlen as usize).saturating_sub(2).min(MAX_UNIX_PATH);
        unix_path_len = record.raw_bytes(sockaddr + 2, len, kernel);
    }
    let _ = PENDING_CONNECT.remove(&pid_tgid);

    let mut sock = SocketFacts::default();
    if result != -EBADF
        && result != -ENOTSOCK
        && let Ok(file) = file_of_fd(current_task(), fd)
    {
        socket_facts_into(file, &mut sock);
    }
    let fixed = ConnectRecord {
        header: record.header(hook_flags),
        fd: fd as i32,
        family,
        sock_type: sock.sock_type,
        result,
        port,
        unix_path_len: unix_path_len as u16,
        uid: bpf_get_current_uid_gid() as u32,
        addr,
        local_port: sock.local_port,
        _pad0: 0,
        deny,
        local_addr: sock.local_addr,
    };
    record.set_fixed(fixed);
    record.submit();
    Ok(())
}

/// A `T` at `offset` in the caller's sockaddr, or in the kernel's copy of it.
#[inline(always)]
fn sockaddr_read<T>(sockaddr: u64, offset: u64, kernel: bool) -> Result<T, Fault> {
    let src = (sockaddr + offset) as *const T;
    // SAFETY: the helpers check the address: a bad one fails the read (an error), never
    // faults.
    unsafe {
        if kernel {
            bpf_probe_read_kernel(src)
        } else {
            bpf_probe_read_user(src)
        }
    }
    .map_err(|_| Fault::ReadFailed)
}
