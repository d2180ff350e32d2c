//! Kernel struct offsets from the running kernel's BTF: the programs read task, file,
//! dentry and socket members at these offsets, so one binary works on every kernel
//! with BTF (6.1 and 6.12 already put `file.f_path` 48 bytes apart).
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use btf_rs::{Btf, BtfType, Type};
use monitor_common::KernelOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub struct KernelLayout {
    btf: Btf,
}

/// The kernel's BTF is where it is said to be.
pub fn ensure_present(path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(anyhow!(
            "kernel BTF not found at {}: monitor needs a kernel >= 5.8 built with \
             CONFIG_DEBUG_INFO_BTF=y (most distribution kernels are)",
            path.display()
        ));
    }
    Ok(())
}

impl KernelLayout {
    pub fn open(path: &Path) -> Result<Self> {
        ensure_present(path)?;
        let btf = Btf::from_file(path)
            .map_err(|err| anyhow!("cannot parse kernel BTF at {}: {err}", path.display()))?;
        Ok(Self { btf })
    }

    /// Byte offset of `member` in `struct name`, looking through anonymous structs and
    /// unions (where newer kernels tuck many members away).
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|err| anyhow!("kernel BTF has no type `{name}`: {err}"))?;
        let strukt = types
            .iter()
            .find_map(|t| match t {
                Type::Struct(s) | Type::Union(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .ok_or_else(|| anyhow!("kernel BTF has no struct `{name}`"))?;
        self.find_member(strukt, member)?
            .map(|bits| bits / 8)
            .ok_or_else(|| anyhow!("kernel struct `{name}` has no member `{member}`"))
    }

    /// Size in bytes of `struct name`.
    pub fn struct_size(&self, name: &str) -> Result<u32> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|err| anyhow!("kernel BTF has no type `{name}`: {err}"))?;
        types
            .iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s.size() as u32),
                _ => None,
            })
            .ok_or_else(|| anyhow!("kernel BTF has no struct `{name}`"))
    }

    fn find_member(&self, strukt: &btf_rs::Struct, wanted: &str) -> Result<Option<u32>> {
        for member in &strukt.members {
            let name = self.btf.resolve_name(member).unwrap_or_default();
            if name == wanted {
                return Ok(Some(member.bit_offset()));
            }
            if name.is_empty()
                && let Some(inner) = self.aggregate_of(member)?
                && let Some(bits) = self.find_member(&inner, wanted)?
            {
                return Ok(Some(member.bit_offset() + bits));
            }
        }
        Ok(None)
    }

    /// The struct or union an anonymous member stands for, seen through qualifiers.
    fn aggregate_of(&self, member: &dyn BtfType) -> Result<Option<btf_rs::Struct>> {
        let mut t = self
            .btf
            .resolve_chained_type(member)
            .map_err(|err| anyhow!("BTF: {err}"))?;
        for _ in 0..8 {
            let next = match &t {
                Type::Struct(s) | Type::Union(s) => return Ok(Some(s.clone())),
                Type::Typedef(q) => self.btf.resolve_chained_type(q),
                Type::Const(q) | Type::Volatile(q) => self.btf.resolve_chained_type(q),
                _ => return Ok(None),
            };
            t = next.map_err(|err| anyhow!("BTF: {err}"))?;
        }
        Ok(None)
    }

    /// Every offset the programs use. A required member that is missing is an error
    /// naming it; optional ones (`loginuid` needs CONFIG_AUDIT) become `ABSENT`.
    pub fn offsets(&self) -> Result<KernelOffsets> {
        let required = |s: &str, m: &str| {
            self.member_offset(s, m)
                .context("reading kernel struct offsets from BTF")
        };
        let optional = |s: &str, m: &str| match self.member_offset(s, m) {
            Ok(offset) => offset,
            Err(err) => {
                tracing::warn!("{err}; the field it feeds will be empty");
                KernelOffsets::ABSENT
            }
        };
        Ok(KernelOffsets {
            task_pid: required("task_struct", "pid")?,
            task_tgid: required("task_struct", "tgid")?,
            task_real_parent: required("task_struct", "real_parent")?,
            task_group_leader: required("task_struct", "group_leader")?,
            task_cred: required("task_struct", "cred")?,
            task_loginuid: optional("task_struct", "loginuid"),
            task_mm: required("task_struct", "mm")?,
            task_files: required("task_struct", "files")?,
            task_signal: required("task_struct", "signal")?,
            task_exit_code: required("task_struct", "exit_code")?,
            task_start_boottime: required("task_struct", "start_boottime")?,
            signal_live: required("signal_struct", "live")?,
            cred_uid: required("cred", "uid")?,
            cred_gid: required("cred", "gid")?,
            cred_euid: required("cred", "euid")?,
            cred_egid: required("cred", "egid")?,
            mm_arg_start: required("mm_struct", "arg_start")?,
            mm_arg_end: required("mm_struct", "arg_end")?,
            mm_env_start: optional("mm_struct", "env_start"),
            mm_env_end: optional("mm_struct", "env_end"),
            mm_exe_file: required("mm_struct", "exe_file")?,
            binprm_file: optional("linux_binprm", "file"),
            files_fdt: required("files_struct", "fdt")?,
            fdtable_max_fds: required("fdtable", "max_fds")?,
            fdtable_fd: required("fdtable", "fd")?,
            file_f_path: required("file", "f_path")?,
            file_private_data: required("file", "private_data")?,
            file_f_mode: optional("file", "f_mode"),
            file_f_flags: optional("file", "f_flags"),
            path_mnt: required("path", "mnt")?,
            path_dentry: required("path", "dentry")?,
            dentry_d_parent: required("dentry", "d_parent")?,
            dentry_d_name: required("dentry", "d_name")?,
            qstr_name: required("qstr", "name")?,
            vfsmount_mnt_root: required("vfsmount", "mnt_root")?,
            mount_mnt: required("mount", "mnt")?,
            mount_mnt_parent: required("mount", "mnt_parent")?,
            mount_mnt_mountpoint: required("mount", "mnt_mountpoint")?,
            socket_type: required("socket", "type")?,
            task_cgroups: required("task_struct", "cgroups")?,
            css_set_dfl_cgrp: required("css_set", "dfl_cgrp")?,
            cgroup_kn: required("cgroup", "kn")?,
            kernfs_node_name: required("kernfs_node", "name")?,
            task_thread_pid: required("task_struct", "thread_pid")?,
            pid_level: required("pid", "level")?,
            pid_numbers: required("pid", "numbers")?,
            upid_size: self.struct_size("upid")?,
            cred_cap_inheritable: optional("cred", "cap_inheritable"),
            cred_cap_permitted: optional("cred", "cap_permitted"),
            cred_cap_effective: optional("cred", "cap_effective"),
            file_f_inode: optional("file", "f_inode"),
            inode_i_sb: optional("inode", "i_sb"),
            inode_i_mode: optional("inode", "i_mode"),
            inode_i_uid: optional("inode", "i_uid"),
            inode_i_gid: optional("inode", "i_gid"),
            inode_i_flags: optional("inode", "i_flags"),
            super_block_s_flags: optional("super_block", "s_flags"),
            cred_fsuid: optional("cred", "fsuid"),
            cred_fsgid: optional("cred", "fsgid"),
            inode_size: self.struct_size("inode").unwrap_or(KernelOffsets::ABSENT),
            super_block_s_magic: optional("super_block", "s_magic"),
            socket_sk: optional("socket", "sk"),
            sock_common_family: optional("sock_common", "skc_family"),
            sock_common_daddr: optional("sock_common", "skc_daddr"),
            sock_common_rcv_saddr: optional("sock_common", "skc_rcv_saddr"),
            sock_common_dport: optional("sock_common", "skc_dport"),
            sock_common_num: optional("sock_common", "skc_num"),
            // Without CONFIG_IPV6 a dup'd IPv6 socket has no addresses.
            sock_common_v6_daddr: optional("sock_common", "skc_v6_daddr"),
            sock_common_v6_rcv_saddr: optional("sock_common", "skc_v6_rcv_saddr"),
            task_fs: optional("task_struct", "fs"),
            fs_pwd: optional("fs_struct", "pwd"),
            signal_pids: optional("signal_struct", "pids"),
            pt_regs_args: syscall_arg_registers(&optional),
            pt_regs_syscall_nr: syscall_nr_register(&optional),
            signal_tty: optional("signal_struct", "tty"),
            tty_driver: optional("tty_struct", "driver"),
            tty_index: optional("tty_struct", "index"),
            tty_driver_major: optional("tty_driver", "major"),
            tty_driver_minor_start: optional("tty_driver", "minor_start"),
        })
    }
}

/// The `struct pt_regs` members that hold a syscall's arguments (the kernel's
/// `syscall_get_arguments`).
#[cfg(target_arch = "x86_64")]
fn syscall_arg_registers(optional: &dyn Fn(&str, &str) -> u32) -> [u32; 6] {
    ["di", "si", "dx", "r10", "r8", "r9"].map(|r| optional("pt_regs", r))
}

#[cfg(target_arch = "aarch64")]
fn syscall_arg_registers(optional: &dyn Fn(&str, &str) -> u32) -> [u32; 6] {
    // The first argument is `orig_x0`: `regs[0]` holds the return value at exit.
    let regs = optional("pt_regs", "regs");
    let first = optional("pt_regs", "orig_x0");
    let at = |n: u32| match regs {
        KernelOffsets::ABSENT => KernelOffsets::ABSENT,
        r => r + 8 * n,
    };
    [first, at(1), at(2), at(3), at(4), at(5)]
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn syscall_arg_registers(_: &dyn Fn(&str, &str) -> u32) -> [u32; 6] {
    [KernelOffsets::ABSENT; 6]
}

/// The `struct pt_regs` member with the syscall's number (still there at exit).
fn syscall_nr_register(optional: &dyn Fn(&str, &str) -> u32) -> u32 {
    if cfg!(target_arch = "x86_64") {
        optional("pt_regs", "orig_ax")
    } else if cfg!(target_arch = "aarch64") {
        optional("pt_regs", "syscallno")
    } else {
        KernelOffsets::ABSENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads this machine's BTF: the numbers are the ones ENVIRONMENT.md verified for
    /// 6.18 with an independent tool, and the qstr/anonymous-union cases exercise the
    /// recursive lookup.
    #[test]
    fn offsets_match_the_running_kernel() {
        let layout = KernelLayout::open(Path::new(VMLINUX_BTF)).expect("kernel BTF");
        let offsets = layout.offsets().expect("offsets");
        assert_eq!(offsets.dentry_d_parent, 24);
        assert_eq!(offsets.dentry_d_name, 32);
        assert_eq!(offsets.qstr_name, 8);
        assert_eq!(offsets.mount_mnt, 32);
        assert_eq!(offsets.mount_mnt_parent, 16);
        assert_eq!(offsets.mount_mnt_mountpoint, 24);
        assert_eq!(offsets.fdtable_fd, 8);
        assert_eq!(offsets.files_fdt, 32);
        assert_ne!(offsets.file_f_path, KernelOffsets::ABSENT);
    }

    #[test]
    fn missing_member_is_named() {
        let layout = KernelLayout::open(Path::new(VMLINUX_BTF)).expect("kernel BTF");
        let err = layout
            .member_offset("task_struct", "no_such_member")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel struct `task_struct` has no member `no_such_member`"
        );
    }
}
