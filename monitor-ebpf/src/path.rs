//! Absolute paths of open files, computed from the kernel's own dentry and mount
//! structures (Falco's `fd.name`): no user-space `/proc` lookup, so no race with the
//! process changing directory or renaming the file afterwards.
use monitor_common::{MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH};

use crate::{
    kernel::{file_of_fd, offset, read},
    record::RecordBytes,
};

/// Appends the reversed path of `file` (see `monitor_common`); returns its length and
/// whether it was cut short.
#[inline(always)]
pub fn append_file_path(record: &RecordBytes, file: u64) -> (usize, bool) {
    append_path_of(record, file + offset!(file_f_path) as u64)
}

/// Appends the reversed path of a `struct path`.
#[inline(always)]
pub fn append_path_of(record: &RecordBytes, path: u64) -> (usize, bool) {
    let (Ok(vfsmount), Ok(dentry)) = (
        read::<u64>(path, offset!(path_mnt)),
        read::<u64>(path, offset!(path_dentry)),
    ) else {
        return (0, false);
    };
    append_path(record, vfsmount, dentry)
}

/// Appends the reversed path of the directory a relative path given with `dirfd`
/// starts from: the file behind `dirfd`, or with `AT_FDCWD` the working directory.
#[inline(always)]
pub fn append_base_dir(record: &RecordBytes, task: u64, dirfd: i32) -> usize {
    if dirfd == AT_FDCWD {
        let Ok(fs) = read::<u64>(task, offset!(task_fs)) else {
            return 0;
        };
        if offset!(fs_pwd) == monitor_common::KernelOffsets::ABSENT {
            return 0;
        }
        return append_path_of(record, fs + offset!(fs_pwd) as u64).0;
    }
    match file_of_fd(task, dirfd as i64) {
        Ok(file) => append_file_path(record, file).0,
        Err(_) => 0,
    }
}

pub const AT_FDCWD: i32 = -100;

/// Appends the forward path of `file` from `bpf_d_path` (see `flags::D_PATH`). Only
/// programs the kernel allows the helper (LSM programs on sleepable hooks such as
/// `file_open`, fentry on an allowlist with `security_file_open`) load with it; the
/// probe table falls back to [`append_file_path`] where it is refused.
#[inline(always)]
pub fn append_d_path(record: &RecordBytes, file: u64) -> (usize, bool) {
    // `file` came from the program's context, so the verifier knows it as a `struct
    // file *`; the offset is a load-time constant, so it sees `&file->f_path`.
    record.d_path(file + offset!(file_f_path) as u64, MAX_PATH_BYTES)
}

#[inline(always)]
fn append_path(record: &RecordBytes, vfsmount: u64, mut dentry: u64) -> (usize, bool) {
    // `struct mount` embeds the `struct vfsmount` the path points to.
    let mount_mnt = offset!(mount_mnt) as u64;
    let mut mount = vfsmount.wrapping_sub(mount_mnt);
    let start = record.len();
    for _ in 0..MAX_PATH_DEPTH {
        // Recomputed from the record each step, never carried in a register (see
        // `record`): it keeps the verifier's work linear in the depth.
        let written = record.len().wrapping_sub(start);
        let Ok(mnt_root) = read::<u64>(mount + mount_mnt, offset!(vfsmount_mnt_root)) else {
            return (written, false);
        };
        if dentry == mnt_root {
            // At the root of this mount: continue from where it is mounted, or stop
            // at the root of the mount namespace (a mount that is its own parent).
            let Ok(parent) = read::<u64>(mount, offset!(mount_mnt_parent)) else {
                return (written, false);
            };
            if parent == mount {
                return (written, false);
            }
            let Ok(mountpoint) = read::<u64>(mount, offset!(mount_mnt_mountpoint)) else {
                return (written, false);
            };
            dentry = mountpoint;
            mount = parent;
            continue;
        }
        let Ok(parent) = read::<u64>(dentry, offset!(dentry_d_parent)) else {
            return (written, false);
        };
        if written > MAX_PATH_BYTES - MAX_NAME_BYTES {
            return (written, true);
        }
        let d_name = dentry + offset!(dentry_d_name) as u64;
        let Ok(name) = read::<u64>(d_name, offset!(qstr_name)) else {
            return (written, false);
        };
        if record.kernel_str_with_nul(name, MAX_NAME_BYTES) == 0 {
            return (written, false);
        }
        if parent == dentry {
            // A dentry that is its own parent without being a mount's root belongs to
            // no directory (a memfd, `memfd:name`): its name is the whole path, as
            // d_path gives it.
            let total = record.len().wrapping_sub(start);
            return (total, false);
        }
        dentry = parent;
    }
    (record.len().wrapping_sub(start), true)
}
