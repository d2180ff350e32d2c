//! Finding (and, where missing, mounting) tracefs: attaching a tracepoint needs its id
//! from `events/<category>/<name>/id`, and fresh nodes often have tracefs unmounted.
use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use anyhow::{Result, anyhow};

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn is_mounted(root: &Path) -> bool {
    root.join("events").is_dir()
}

/// The tracefs root, mounting tracefs at `/sys/kernel/tracing` when no candidate is
/// mounted yet.
pub fn ensure_mounted() -> Result<PathBuf> {
    if let Some(root) = CANDIDATES.iter().map(Path::new).find(|p| is_mounted(p)) {
        return Ok(root.to_path_buf());
    }
    let target = Path::new(CANDIDATES[0]);
    let mounted = mount_pseudo_fs("tracefs", CANDIDATES[0]);
    if mounted.is_err() || !is_mounted(target) {
        let err = mounted.err().unwrap_or_else(std::io::Error::last_os_error);
        return Err(anyhow!(
            "tracefs is not mounted and mounting it at {} failed ({err}); mount it with \
             `mount -t tracefs tracefs {}` (needs CAP_SYS_ADMIN)",
            target.display(),
            target.display()
        ));
    }
    tracing::info!("mounted tracefs at {}", target.display());
    Ok(target.to_path_buf())
}

/// Mounts the kernel pseudo file system `fstype` (tracefs, securityfs) at `target`.
pub fn mount_pseudo_fs(fstype: &str, target: &str) -> std::io::Result<()> {
    let c_target = CString::new(target)?;
    let c_fstype = CString::new(fstype)?;
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let rc = unsafe {
        libc::mount(
            c_fstype.as_ptr(),
            c_target.as_ptr(),
            c_fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Does this kernel have the tracepoint `category/name`?
pub fn has_tracepoint(root: &Path, category: &str, name: &str) -> bool {
    root.join("events")
        .join(category)
        .join(name)
        .join("id")
        .exists()
}
