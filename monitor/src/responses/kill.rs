//! The user-space kill: through a pidfd, and only after /proc confirmed that the pid
//! still runs the program whose event matched (its exec id), so an exited process's
//! reused pid, or a process that has since exec'd another program, is never hit.
use std::{
    io,
    os::fd::{FromRawFd, OwnedFd, RawFd},
};

use std::os::fd::AsRawFd;

use crate::context::{host::HostRoot, procfs};

pub fn kill_exactly(host: &HostRoot, boot_id: &str, pid: u32, exec_id: &str) -> Result<(), String> {
    let pidfd = pidfd_open(pid).map_err(|e| match e.raw_os_error() {
        Some(libc::ESRCH) => "not killed: the process had already exited".to_string(),
        _ => format!("not killed: pidfd_open({pid}): {e}"),
    })?;
    let now = procfs::exec_id_now(host, boot_id, pid);
    // The pidfd holds the process, not its pid: if the process is still there after
    // /proc was read, the pid was never free in between, so what /proc said is about
    // the process the pidfd names.
    if send_signal(&pidfd, 0).is_err() {
        return Err("not killed: the process had already exited".into());
    }
    match now {
        Some(now) if &*now == exec_id => {}
        None => return Err("not killed: the process had already exited".into()),
        Some(_) => {
            return Err(format!(
                "not killed: pid {pid} no longer runs the program that matched (it exec'd \
                 another, or exited and the pid was reused)"
            ));
        }
    }
    send_signal(&pidfd, libc::SIGKILL).map_err(|e| match e.raw_os_error() {
        Some(libc::ESRCH) => "not killed: the process had already exited".to_string(),
        _ => format!("not killed: pidfd_send_signal: {e}"),
    })
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn send_signal(pidfd: &OwnedFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
