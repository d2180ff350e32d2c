//! Outbound connections: `connect` entry saves the arguments, exit reports the
//! address with the result (`-EINPROGRESS` is an attempt under way, still reported).
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use aya_log_ebpf::warn;
use monitor_common::{ConnectRecord, MAX_UNIX_PATH, kind, stat};

use crate::{
    kernel::{current_task, file_of_fd, offset, read},
    maps::{PENDING_CONNECT, count, wanted},
    process::{syscall_arg, syscall_ret},
    record::Record,
};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EBADF: i64 = 9;
const ENOTSOCK: i64 = 88;

#[derive(Clone, Copy)]
pub struct PendingConnect {
    fd: i64,
    addr: u64,
    addrlen: u64,
}

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !wanted(kind::CONNECT, (pid_tgid >> 32) as u32) {
        return 0;
    }
    let pending = PendingConnect {
        fd: syscall_arg(&ctx, 0) as i32 as i64,
        addr: syscall_arg(&ctx, 1),
        addrlen: syscall_arg(&ctx, 2),
    };
    if PENDING_CONNECT.insert(&pid_tgid, &pending, 0).is_err() {
        count(kind::CONNECT, stat::ERRORS);
        warn!(
            &ctx,
            "connect by {} not recorded: pending-connect table full",
            pid_tgid >> 32
        );
    }
    0
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    if emit_connect(&ctx).is_err() {
        count(kind::CONNECT, stat::ERRORS);
    }
    0
}

#[inline(always)]
fn emit_connect(ctx: &TracePointContext) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(pending) = (unsafe { PENDING_CONNECT.get(&pid_tgid) }).copied() else {
        return Ok(());
    };
    let _ = PENDING_CONNECT.remove(&pid_tgid);
    let result = syscall_ret(ctx);
    let record = Record::start::<ConnectRecord>(kind::CONNECT).ok_or(-1i64)?;

    let family = unsafe { bpf_probe_read_user(pending.addr as *const u16) }.unwrap_or(0);
    let mut port = 0u16;
    let mut addr = [0u8; 16];
    let mut unix_path_len = 0usize;
    match family {
        AF_INET => {
            port = u16::from_be(
                unsafe { bpf_probe_read_user((pending.addr + 2) as *const u16) }.unwrap_or(0),
            );
            let v4 = unsafe { bpf_probe_read_user((pending.addr + 4) as *const [u8; 4]) }
                .unwrap_or([0; 4]);
            addr[..4].copy_from_slice(&v4);
        }
        AF_INET6 => {
            port = u16::from_be(
                unsafe { bpf_probe_read_user((pending.addr + 2) as *const u16) }.unwrap_or(0),
            );
            addr = unsafe { bpf_probe_read_user((pending.addr + 8) as *const [u8; 16]) }
                .unwrap_or([0; 16]);
        }
        AF_UNIX => {
            // sun_path follows the 2-byte family; an abstract name starts with NUL, so
            // copy raw bytes rather than a string.
            let len = (pending.addrlen as usize)
                .saturating_sub(2)
                .min(MAX_UNIX_PATH);
            unix_path_len = record.user_bytes(pending.addr + 2, len);
        }
        _ => {}
    }

    let sock_type = if result == -EBADF || result == -ENOTSOCK {
        0
    } else {
        socket_type(pending.fd)
    };
    let fixed = ConnectRecord {
        header: record.header(0),
        fd: pending.fd as i32,
        family,
        sock_type,
        result,
        port,
        unix_path_len: unix_path_len as u16,
        uid: bpf_get_current_uid_gid() as u32,
        addr,
    };
    unsafe { record.fixed::<ConnectRecord>().write(fixed) };
    record.submit();
    Ok(())
}

/// `SOCK_STREAM`, `SOCK_DGRAM`, ... of the socket behind `fd`, or 0.
#[inline(always)]
fn socket_type(fd: i64) -> u16 {
    let Ok(file) = file_of_fd(current_task(), fd) else {
        return 0;
    };
    read::<u64>(file, offset!(file_private_data))
        .and_then(|socket| read::<i16>(socket, offset!(socket_type)))
        .map(|t| t as u16)
        .unwrap_or(0)
}
