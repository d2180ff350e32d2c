//! `monitor stop` and `monitor uninstall`: the pinned recorder's life beyond the
//! daemon.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};

use crate::{config::Settings, sensor::recorder};

/// Signals the daemon reading the recorder under the configured root and waits
/// until it has exited.
pub fn stop(settings: &Settings, keep_recording: bool, timeout_secs: u64) -> Result<()> {
    let root = &settings.sensor.pin_root;
    let pid = running_agent(root).ok_or_else(|| {
        anyhow!(
            "no daemon reads a recorder under {}: a daemon started with --no-pin (or another \
             --pin-root) stops with SIGTERM",
            root.display()
        )
    })?;
    let signal = if keep_recording {
        libc::SIGUSR2
    } else {
        libc::SIGTERM
    };
    // SAFETY: kill with a pid read from the recorder, checked to be a live monitor.
    if unsafe { libc::kill(pid as i32, signal) } != 0 {
        return Err(anyhow!(
            "signalling the daemon (pid {pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    eprintln!("monitor: stopping the daemon (pid {pid})...");
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    while is_running(pid) {
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the daemon (pid {pid}) is still running after {timeout_secs} s; its log says \
                 why (or raise --timeout)"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if keep_recording {
        println!(
            "stopped the daemon (pid {pid}); its recorder keeps recording under {} for the \
             next agent (`monitor uninstall` removes it)",
            root.display()
        );
    } else {
        println!("stopped the daemon (pid {pid}) and removed its recorder");
    }
    Ok(())
}

/// Removes every recorder under the configured root, unless a daemon reads one.
pub fn uninstall(settings: &Settings) -> Result<()> {
    let root = &settings.sensor.pin_root;
    if let Some(pid) = running_agent(root) {
        return Err(anyhow!(
            "the daemon (pid {pid}) reads the recorder under {}: stop it first (`monitor \
             stop`)",
            root.display()
        ));
    }
    let recorders = recorder::recorders(root);
    if recorders.is_empty() {
        println!("nothing is pinned under {}", root.display());
        let _ = std::fs::remove_dir(root);
        return Ok(());
    }
    for dir in recorders {
        let unread = recorder::count_backlog(&dir).unwrap_or(0);
        let links = recorder::remove(&dir)?;
        println!(
            "removed {}: {links} programs detached, {unread} unread records discarded",
            dir.display()
        );
    }
    let _ = std::fs::remove_dir(root);
    Ok(())
}

/// The live daemon that last said it reads a recorder under `root`.
fn running_agent(root: &Path) -> Option<u32> {
    recorder::recorders(root)
        .iter()
        .filter_map(|dir| recorder::reading_agent(dir).ok())
        .find(|&pid| pid != 0 && is_running(pid) && is_monitor(pid))
}

/// Alive and not a zombie (an exited daemon its parent has not reaped yet).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

fn is_monitor(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|name| name.starts_with("monitor"))
}
