//! The contract between the kernel programs (`monitor-ebpf`) and the agent (`monitor`).
//!
//! Every record the kernel writes into the ring buffer starts with an [`EventHeader`];
//! the header's `kind` says which fixed part follows, and the fixed part's length fields
//! say how many bytes of variable data (paths, argv) follow it, in the order the
//! record type documents. All structs are `#[repr(C)]` with explicit padding so the
//! layout is the same on both sides and the compiler never inserts hidden bytes.
//!
//! Resolved paths travel as *reversed paths*: the components from the leaf up to the
//! root, each followed by a NUL byte (`"/etc/passwd"` is `b"passwd\0etc\0"`, the root
//! alone is empty). Walking leaf-first lets the kernel write forward into a bounded
//! buffer, which is what the verifier can check.
#![no_std]

/// Declares a module of stable numeric ids, each once: the constants, `ALL` in
/// declaration order, and compile-time checks that every id is non-zero (a zeroed
/// record is always invalid), below the module's capacity and unique.
macro_rules! ids {
    ($(#[$doc:meta])* $module:ident below $capacity:expr; $($(#[$m:meta])* $name:ident = $id:literal,)+) => {
        $(#[$doc])*
        pub mod $module {
            $($(#[$m])* pub const $name: u16 = $id;)+
            /// Every id, in declaration order.
            pub const ALL: &[u16] = &[$($name),+];
            const _: () = {
                let mut i = 0;
                while i < ALL.len() {
                    assert!(ALL[i] != 0, "id 0 is reserved for invalid records");
                    assert!((ALL[i] as u32) < $capacity, "id beyond the capacity");
                    let mut j = i + 1;
                    while j < ALL.len() {
                        assert!(ALL[i] != ALL[j], "two names share one id");
                        j += 1;
                    }
                    i += 1;
                }
            };
        }
    };
}

ids! {
    /// Stable numeric ids of event kinds, the `kind` of [`EventHeader`]. The agent's
    /// `EventKind` is generated from the same list and checked against it.
    kind below super::KIND_SLOTS;
    EXEC = 1,
    FORK = 2,
    EXIT = 3,
    CONNECT = 4,
    OPEN = 5,
    SYSCALL = 6,
    /// Made by the agent, never by the kernel: a container's resource usage and
    /// activity, sampled periodically.
    CONTAINER_STATS = 7,
}

/// Kinds the agent makes itself: no kernel record, no program.
pub const AGENT_MADE_KINDS: &[u16] = &[kind::CONTAINER_STATS];

/// Size of per-kind arrays (the kernel's enable switches and counters, the agent's
/// kind sets): every kind id is below it.
pub const KIND_SLOTS: u32 = 16;

ids! {
    /// Which syscall produced an exec, open or syscall record. The agent's `EventType`
    /// table names the syscall each id stands for.
    syscall below 64;
    EXECVE = 1,
    EXECVEAT = 2,
    OPEN = 3,
    OPENAT = 4,
    OPENAT2 = 5,
    CREAT = 6,
    PTRACE = 7,
    SYMLINK = 8,
    SYMLINKAT = 9,
    LINK = 10,
    LINKAT = 11,
    INIT_MODULE = 12,
    FINIT_MODULE = 13,
    SOCKET = 14,
    DUP = 15,
    DUP2 = 16,
    DUP3 = 17,
    SETNS = 18,
    UNSHARE = 19,
    SETUID = 20,
    CHMOD = 21,
    FCHMOD = 22,
    FCHMODAT = 23,
    BPF = 24,
    UNLINK = 25,
    UNLINKAT = 26,
    RENAME = 27,
    RENAMEAT = 28,
    RENAMEAT2 = 29,
    MKDIR = 30,
    MKDIRAT = 31,
    RMDIR = 32,
    USERFAULTFD = 33,
    LISTEN = 34,
    ACCEPT = 35,
    ACCEPT4 = 36,
    SENDTO = 37,
    SENDMSG = 38,
    RECVFROM = 39,
    RECVMSG = 40,
    MEMFD_CREATE = 41,
}

/// A record's fixed part, with the kind it is the record of: the kernel starts a
/// record by its type and the agent decodes a kind into its type, so the two cannot
/// disagree.
pub trait KindRecord: Copy {
    const KIND: u16;
}

macro_rules! kind_records {
    ($($record:ty => $kind:ident,)+) => {
        $(impl KindRecord for $record {
            const KIND: u16 = kind::$kind;
        })+
        /// Every kind the kernel makes has exactly one record type.
        const _: () = {
            let listed = [$(kind::$kind),+];
            assert!(
                listed.len() == kind::ALL.len() - AGENT_MADE_KINDS.len(),
                "a kind without a record type, or two"
            );
            let mut i = 0;
            while i < kind::ALL.len() {
                let mut agent_made = false;
                let mut a = 0;
                while a < AGENT_MADE_KINDS.len() {
                    agent_made |= AGENT_MADE_KINDS[a] == kind::ALL[i];
                    a += 1;
                }
                if agent_made {
                    i += 1;
                    continue;
                }
                let mut found = false;
                let mut j = 0;
                while j < listed.len() {
                    found |= listed[j] == kind::ALL[i];
                    j += 1;
                }
                assert!(found, "a kind without a record type");
                i += 1;
            }
        };
    };
}

/// Bits of [`EventHeader::flags`].
pub mod flags {
    /// argv was longer than [`super::MAX_ARGS_BYTES`] or had more than [`super::MAX_ARGS`] entries.
    pub const ARGS_TRUNCATED: u16 = 1;
    /// The path as given by the caller was cut at [`super::MAX_PATH_BYTES`].
    pub const PATH_TRUNCATED: u16 = 2;
    /// The kernel-resolved path was deeper or longer than the walk allows.
    pub const RESOLVED_TRUNCATED: u16 = 4;
    /// An enhanced hook (BPF LSM, or fentry on the `security_*` function with
    /// [`FENTRY`]) took part. Open: reported by `file_open` rather than a syscall
    /// tracepoint. Connect: the address is the kernel's copy, from `socket_connect`.
    /// Exec: the record carries the executed file as `bprm_check_security` saw it.
    pub const ENHANCED: u16 = 8;
    /// Exec: the file from `bprm_check_security` was deeper or longer than the walk
    /// allows.
    pub const FILE_TRUNCATED: u16 = 16;
    /// With [`ENHANCED`]: the hook was fentry on `security_<hook>` (kernels where the
    /// bpf LSM is not active but fentry works), not the BPF LSM.
    pub const FENTRY: u16 = 32;
    /// The path from the enhanced hook (open: the resolved path; exec: the file from
    /// `bprm_check_security`) is as the kernel's `d_path` wrote it (`bpf_d_path`):
    /// forward and absolute, not reversed; an unlinked file ends in ` (deleted)`.
    pub const D_PATH: u16 = 64;
    /// Syscall records: reported by the raw `sys_enter`/`sys_exit` tracepoints, on a
    /// kernel that lacks the syscall's own (a module syscall on a kernel built without modules:
    /// the attempt still happens, and fails with `ENOSYS`).
    pub const RAW_SYSCALL: u16 = 128;
    /// Exec: the environment was longer than [`super::MAX_ENV_BYTES`].
    pub const ENV_TRUNCATED: u16 = 256;
}

/// Upper bound of the argv bytes copied per exec.
pub const MAX_ARGS_BYTES: usize = 4096;
/// Upper bound of the environment bytes copied per exec (Falco's `proc.env`).
pub const MAX_ENV_BYTES: usize = 4096;
/// Upper bound of argv entries copied from a failed exec (a successful one is copied as
/// one block from the new image's argument area, bounded by bytes only).
pub const MAX_ARGS: usize = 64;
/// Upper bound of a path copied from user memory, and of a resolved path.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single path component (NAME_MAX + NUL).
pub const MAX_NAME_BYTES: usize = 256;
/// Path components walked per resolved path (mount crossings included).
pub const MAX_PATH_DEPTH: usize = 48;
/// Longest unix socket path (`sizeof(sun_path)`).
pub const MAX_UNIX_PATH: usize = 108;
/// Longest cgroup directory name copied (`cri-containerd-<64 hex>.scope` is 85).
pub const MAX_CGROUP_NAME: usize = 128;
/// The kernel programs wake the agent for a record only when no wake-up was sent for
/// this long; the records in between wait for the agent's next poll. A wake-up costs the writing process 1 to 3 µs, more than the
/// rest of the program. The agent, once it has read everything, keeps polling for
/// slightly longer than this before it relies on wake-ups alone (see the agent's
/// reader), so no record waits much longer than this.
pub const WAKEUP_INTERVAL_NS: u64 = 2_000_000;

/// Default ring buffer size in bytes (a power of two multiple of the page size).
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 16 * 1024 * 1024;

/// The recorder's ABI: the record layouts, the shared maps' layouts and what the
/// agent writes into them. A pinned recorder is adopted only by an agent of the same
/// ABI; raise it whenever any of those changes.
pub const RECORDER_ABI: u32 = 4;

/// Common first part of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u16,
    pub flags: u16,
    /// Total bytes of the record, this header included.
    pub size: u32,
    /// `CLOCK_BOOTTIME` nanoseconds when the event was recorded.
    pub boot_ns: u64,
    /// Thread group id (the process id user space sees).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub cgroup_id: u64,
    pub comm: [u8; 16],
}

/// Process credentials and lineage, read from the current task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskIdentity {
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// `u32::MAX` when unset or when the kernel has no audit login uid.
    pub loginuid: u32,
    /// `task->start_boottime` of the thread group leader, CLOCK_BOOTTIME nanoseconds.
    pub start_boot_ns: u64,
    /// The process id as seen in the task's own pid namespace (1 for a container's
    /// first process); 0 when unknown.
    pub vpid: u32,
    pub _pad: u32,
}

/// `execve`/`execveat` completion. Followed by `exe_len` bytes of the resolved
/// executable path (a reversed path), `filename_len` bytes of the file name as
/// given (failed execs only: after a successful exec the caller's memory is gone),
/// `args_len` bytes of NUL-separated argv and `cgroup_name_len` bytes of the name of
/// the task's cgroup v2 directory (which names the container: reading it in the kernel
/// works even when the container is gone before user space looks), then `file_len`
/// bytes of the file the caller named, as the kernel resolved it (a reversed path, from
/// the LSM `bprm_check_security` hook; present with [`flags::ENHANCED`]), then
/// `env_len` bytes of the new image's environment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: EventHeader,
    pub task: TaskIdentity,
    /// 0 or `-errno`.
    pub result: i64,
    pub syscall: u16,
    pub exe_len: u16,
    pub filename_len: u16,
    pub cgroup_name_len: u16,
    pub args_len: u32,
    /// `execveat`'s dirfd, or `AT_FDCWD` for `execve`.
    pub dirfd: i32,
    pub at_flags: u32,
    pub file_len: u16,
    /// The new image's environment (NUL-separated `NAME=value`, at most
    /// [`MAX_ENV_BYTES`]), after the file; successful execs only.
    pub env_len: u16,
    /// [`exe`] bits: what the new executable's file is.
    pub exe_flags: u32,
    /// The process group id in the task's own pid namespace (Falco's `proc.vpgid`);
    /// 0 when unknown.
    pub vpgid: u32,
    /// The controlling terminal, encoded as `/proc/<pid>/stat`'s `tty_nr` (0: none).
    pub tty: u32,
    /// The session id (the host's numbering); 0 when unknown.
    pub sid: u32,
    pub _pad3: u64,
    /// The new image's capability sets (`cred->cap_*`), one bit per `CAP_*` number.
    pub caps: Capabilities,
}

/// A task's capability sets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub inheritable: u64,
    pub permitted: u64,
    pub effective: u64,
}

/// Bits of [`ExecRecord::exe_flags`], Falco's `PPM_EXE_*` facts.
pub mod exe {
    /// The file is on an overlay filesystem, in its writable upper layer (written or
    /// copied up after the container started).
    pub const UPPER_LAYER: u32 = 1;
    /// The file is on an overlay filesystem, in a lower (image) layer.
    pub const LOWER_LAYER: u32 = 2;
    /// The file is a memfd (`memfd_create`), named `memfd:...`.
    pub const FROM_MEMFD: u32 = 4;
    /// The kernel could not read the facts (then no other bit is meaningful).
    pub const UNKNOWN: u32 = 8;
    /// The process may write its own executable (Falco's `EXE_WRITABLE`): the
    /// filesystem is writable, the file not immutable, and its mode grants the
    /// process's fsuid or fsgid write, or the process has `CAP_DAC_OVERRIDE`.
    pub const WRITABLE: u32 = 16;
}

/// A new process (threads are not reported). The header describes the parent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkRecord {
    pub header: EventHeader,
    pub child_pid: u32,
    pub child_tid: u32,
    pub child_start_boot_ns: u64,
    pub parent_ppid: u32,
    /// The child's pid in its own pid namespace; 0 when unknown.
    pub child_vpid: u32,
}

/// The last thread of a process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitRecord {
    pub header: EventHeader,
    /// Raw `task->exit_code`: `status << 8` for a normal exit, the signal number (plus
    /// 0x80 for a core dump) for a fatal signal.
    pub exit_code: i32,
    pub ppid: u32,
    pub start_boot_ns: u64,
}

/// `connect` completion. Followed by `unix_path_len` raw bytes of `sun_path` for
/// `AF_UNIX` (an abstract name starts with a NUL byte).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectRecord {
    pub header: EventHeader,
    pub fd: i32,
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...; 0 when the fd was not a socket.
    pub sock_type: u16,
    /// 0, `-EINPROGRESS` (an attempt under way) or `-errno`.
    pub result: i64,
    /// Port in host byte order.
    pub port: u16,
    pub unix_path_len: u16,
    pub uid: u32,
    /// IPv4 in the first four bytes, or IPv6; network byte order.
    pub addr: [u8; 16],
    /// The socket's own end at exit, as the kernel holds it (port in host order; all
    /// zero when the socket has none, as after a refused connect).
    pub local_port: u16,
    pub _pad0: u16,
    /// What a deny slot did at the connect (`deny::verdict`), or 0.
    pub deny: u32,
    pub local_addr: [u8; 16],
}

/// `open`/`openat`/`openat2`/`creat` completion. Followed by `path_len` bytes of the
/// path as given and `resolved_len` bytes of the path of the opened file (a reversed
/// path, or a forward one with [`flags::D_PATH`]; empty when the open failed).
///
/// With [`flags::ENHANCED`] the record comes from the `file_open` hook, for an open
/// no traced syscall made (io_uring): no path as given (`path_len` 0), `AT_FDCWD`,
/// `OPENAT`, the file's `f_flags`, mode 0 and result 0 (the fd does not exist yet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenRecord {
    pub header: EventHeader,
    pub syscall: u16,
    pub path_len: u16,
    pub resolved_len: u16,
    pub _pad0: u16,
    pub dirfd: i32,
    pub mode: u32,
    pub flags: u64,
    /// The new fd, or `-errno`.
    pub result: i64,
    pub uid: u32,
    /// What an in-kernel kill response did at this open (see [`kill::verdict`]); 0
    /// when no kill slot matched.
    pub kill: u32,
}

/// One of the syscalls Falco's rules name that the other kinds do not report: see
/// [`syscall`] from `PTRACE` on. `args` are the raw arguments at entry (the syscall's
/// own order). Followed by, in this order:
/// - `str0_len` and `str1_len` bytes of the string arguments where the syscall has
///   them (symlink: target, linkpath; link and rename: old and new path; unlink,
///   rmdir, mkdir, chmod: the path as `str0`; init_module and finit_module: the
///   module parameters; memfd_create: the name);
/// - `dir_len` bytes of the directory a relative path argument starts from (its
///   dirfd's, or the working directory), a reversed path; `dir_for` says which
///   strings ([`DIR_FOR_STR0`], [`DIR_FOR_STR1`]) it is the base of (none when
///   every path is absolute; a second relative path from another directory than the
///   first's has no base);
/// - `data_len` bytes of the data a `send*`/`recv*` moved (its first
///   [`SNAPLEN`] bytes);
/// - `addr_len` bytes of the socket address a `sendto`/`sendmsg` named or a
///   `recvfrom`/`recvmsg` was given (a raw `struct sockaddr`).
///
/// `sock` describes the socket the syscall worked on, read at exit (family 0 when
/// there is none): the duplicated fd of `dup*`, the fd of `listen` and `send*`/`recv*`,
/// the new fd of `accept*`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRecord {
    pub header: EventHeader,
    pub syscall: u16,
    pub str0_len: u16,
    pub str1_len: u16,
    pub dir_len: u16,
    pub uid: u32,
    pub dir_for: u16,
    pub data_len: u16,
    /// The return value: a new fd, 0 or `-errno`.
    pub result: i64,
    pub args: [u64; 5],
    pub sock: SocketFacts,
    pub addr_len: u16,
    pub _pad: [u16; 3],
}

/// Bits of [`SyscallRecord::dir_for`].
pub const DIR_FOR_STR0: u16 = 1;
pub const DIR_FOR_STR1: u16 = 2;

/// Bytes of a `send*`/`recv*` buffer copied (Falco's default snapshot length).
pub const SNAPLEN: usize = 80;
/// Longest socket address copied from a `send*`/`recv*` (a `sockaddr_un`).
pub const MAX_SOCKADDR: usize = 112;

/// The two ends of a socket as the kernel holds them (`struct sock_common`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketFacts {
    /// `AF_*`; 0 when there is no socket.
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    pub sock_type: u16,
    /// Ports in host byte order.
    pub local_port: u16,
    pub remote_port: u16,
    /// IPv4 in the first four bytes, or IPv6; network byte order.
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

kind_records! {
    ExecRecord => EXEC,
    ForkRecord => FORK,
    ExitRecord => EXIT,
    ConnectRecord => CONNECT,
    OpenRecord => OPEN,
    SyscallRecord => SYSCALL,
}

/// Kernel struct member offsets, computed by the agent from the running kernel's BTF
/// and handed to the programs as a load-time constant. `ABSENT` marks a member this
/// kernel does not have (e.g. `loginuid` without `CONFIG_AUDIT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_cred: u32,
    pub task_loginuid: u32,
    pub task_mm: u32,
    pub task_files: u32,
    pub task_signal: u32,
    pub task_exit_code: u32,
    pub task_start_boottime: u32,
    pub signal_live: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    pub mm_exe_file: u32,
    pub binprm_file: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_f_path: u32,
    pub file_private_data: u32,
    pub file_f_mode: u32,
    pub file_f_flags: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_d_parent: u32,
    pub dentry_d_name: u32,
    pub qstr_name: u32,
    pub vfsmount_mnt_root: u32,
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,
    pub socket_type: u32,
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_name: u32,
    pub task_thread_pid: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`: the stride of `pid.numbers`.
    pub upid_size: u32,
    pub cred_cap_inheritable: u32,
    pub cred_cap_permitted: u32,
    pub cred_cap_effective: u32,
    pub file_f_inode: u32,
    pub inode_i_sb: u32,
    pub inode_i_mode: u32,
    pub inode_i_uid: u32,
    pub inode_i_gid: u32,
    pub inode_i_flags: u32,
    pub super_block_s_flags: u32,
    pub cred_fsuid: u32,
    pub cred_fsgid: u32,
    /// `sizeof(struct inode)`: overlayfs keeps its upper dentry right after the inode
    /// it embeds (`struct ovl_inode`), a module type the kernel BTF does not describe.
    pub inode_size: u32,
    pub super_block_s_magic: u32,
    pub socket_sk: u32,
    pub sock_common_family: u32,
    pub sock_common_daddr: u32,
    pub sock_common_rcv_saddr: u32,
    pub sock_common_dport: u32,
    pub sock_common_num: u32,
    pub sock_common_v6_daddr: u32,
    pub sock_common_v6_rcv_saddr: u32,
    pub task_fs: u32,
    pub fs_pwd: u32,
    pub signal_pids: u32,
    /// Where `struct pt_regs` keeps a syscall's six arguments and its number, on this
    /// architecture (the raw `sys_enter`/`sys_exit` tracepoints hand over the
    /// registers).
    pub pt_regs_args: [u32; 6],
    pub pt_regs_syscall_nr: u32,
    pub signal_tty: u32,
    pub tty_driver: u32,
    pub tty_index: u32,
    pub tty_driver_major: u32,
    pub tty_driver_minor_start: u32,
}

impl KernelOffsets {
    pub const ABSENT: u32 = u32::MAX;
    /// All members absent: what the programs see if the agent forgot to fill them in,
    /// which makes every kernel read fail safely instead of reading a wrong field.
    pub const UNSET: Self = Self {
        task_pid: Self::ABSENT,
        task_tgid: Self::ABSENT,
        task_real_parent: Self::ABSENT,
        task_group_leader: Self::ABSENT,
        task_cred: Self::ABSENT,
        task_loginuid: Self::ABSENT,
        task_mm: Self::ABSENT,
        task_files: Self::ABSENT,
        task_signal: Self::ABSENT,
        task_exit_code: Self::ABSENT,
        task_start_boottime: Self::ABSENT,
        signal_live: Self::ABSENT,
        cred_uid: Self::ABSENT,
        cred_gid: Self::ABSENT,
        cred_euid: Self::ABSENT,
        cred_egid: Self::ABSENT,
        mm_arg_start: Self::ABSENT,
        mm_arg_end: Self::ABSENT,
        mm_env_start: Self::ABSENT,
        mm_env_end: Self::ABSENT,
        mm_exe_file: Self::ABSENT,
        binprm_file: Self::ABSENT,
        files_fdt: Self::ABSENT,
        fdtable_max_fds: Self::ABSENT,
        fdtable_fd: Self::ABSENT,
        file_f_path: Self::ABSENT,
        file_private_data: Self::ABSENT,
        file_f_mode: Self::ABSENT,
        file_f_flags: Self::ABSENT,
        path_mnt: Self::ABSENT,
        path_dentry: Self::ABSENT,
        dentry_d_parent: Self::ABSENT,
        dentry_d_name: Self::ABSENT,
        qstr_name: Self::ABSENT,
        vfsmount_mnt_root: Self::ABSENT,
        mount_mnt: Self::ABSENT,
        mount_mnt_parent: Self::ABSENT,
        mount_mnt_mountpoint: Self::ABSENT,
        socket_type: Self::ABSENT,
        task_cgroups: Self::ABSENT,
        css_set_dfl_cgrp: Self::ABSENT,
        cgroup_kn: Self::ABSENT,
        kernfs_node_name: Self::ABSENT,
        task_thread_pid: Self::ABSENT,
        pid_level: Self::ABSENT,
        pid_numbers: Self::ABSENT,
        upid_size: Self::ABSENT,
        cred_cap_inheritable: Self::ABSENT,
        cred_cap_permitted: Self::ABSENT,
        cred_cap_effective: Self::ABSENT,
        file_f_inode: Self::ABSENT,
        inode_i_sb: Self::ABSENT,
        inode_i_mode: Self::ABSENT,
        inode_i_uid: Self::ABSENT,
        inode_i_gid: Self::ABSENT,
        inode_i_flags: Self::ABSENT,
        super_block_s_flags: Self::ABSENT,
        cred_fsuid: Self::ABSENT,
        cred_fsgid: Self::ABSENT,
        inode_size: Self::ABSENT,
        super_block_s_magic: Self::ABSENT,
        socket_sk: Self::ABSENT,
        sock_common_family: Self::ABSENT,
        sock_common_daddr: Self::ABSENT,
        sock_common_rcv_saddr: Self::ABSENT,
        sock_common_dport: Self::ABSENT,
        sock_common_num: Self::ABSENT,
        sock_common_v6_daddr: Self::ABSENT,
        sock_common_v6_rcv_saddr: Self::ABSENT,
        task_fs: Self::ABSENT,
        fs_pwd: Self::ABSENT,
        signal_pids: Self::ABSENT,
        pt_regs_args: [Self::ABSENT; 6],
        pt_regs_syscall_nr: Self::ABSENT,
        signal_tty: Self::ABSENT,
        tty_driver: Self::ABSENT,
        tty_index: Self::ABSENT,
        tty_driver_major: Self::ABSENT,
        tty_driver_minor_start: Self::ABSENT,
    };
}

/// Why the programs lost a record they set out to send, before it reached the ring
/// buffer (a full ring buffer is [`stat::DROPPED`]). Counted per kind in `STATS`, so the
/// agent can say why records were lost, not only that they were.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every scratch slot of the CPU held a record in the making: programs preempted
    /// mid-record (syscall tracepoints and LSM hooks run preemptibly on some kernels)
    /// left none for this one. Dropped rather than written over another's bytes.
    ScratchBusy = 0,
    /// A read of kernel or user memory the record needs failed.
    ReadFailed = 1,
    /// The syscall's entry could not save its arguments for the exit: the pending
    /// table refused the insert.
    PendingFull = 2,
    /// The event's other half was never seen (an exec that succeeded without
    /// `sched_process_exec` reporting it: that program is not attached).
    MissedHook = 3,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::ScratchBusy,
        Fault::ReadFailed,
        Fault::PendingFull,
        Fault::MissedHook,
    ];

    /// The cause's name in the totals line, the metrics and `monitor probes`.
    pub const fn name(self) -> &'static str {
        match self {
            Fault::ScratchBusy => "scratch_busy",
            Fault::ReadFailed => "read_failed",
            Fault::PendingFull => "pending_full",
            Fault::MissedHook => "missed_hook",
        }
    }
}

/// Index of a counter in the per-CPU statistics map: `kind * STATS_PER_KIND + stat`.
pub mod stat {
    use super::Fault;

    /// Records written to the ring buffer.
    pub const SENT: u32 = 0;
    /// Records lost because the ring buffer had no room.
    pub const DROPPED: u32 = 1;
    /// Events the kernel filter ([`super::filter`]) let go: no active rule could match.
    pub const FILTERED: u32 = 2;
    /// The first of the faults' counters, one per [`Fault`] in its order.
    const FAULTS: u32 = 3;
    pub const STATS_PER_KIND: u32 = FAULTS + Fault::ALL.len() as u32;
    pub const SLOTS: u32 = super::KIND_SLOTS * STATS_PER_KIND;

    pub const fn fault(fault: Fault) -> u32 {
        FAULTS + fault as u32
    }

    pub const fn index(kind: u16, stat: u32) -> u32 {
        kind as u32 * STATS_PER_KIND + stat
    }
}

/// The filter the agent derives from the active rules and the kernel programs apply
/// before any expensive work (path resolution, string copies, the record itself).
/// Conservative: an event some active rule could match always passes.
///
/// An event falls into one of two scopes: `HOST` when its cgroup is one the agent
/// found to be the host's (`HOST_CGROUPS`), else `OTHER` (a container, or a cgroup the
/// agent has not classified yet, so `OTHER` admits whatever the host admits too).
/// Within a scope, each fact of the event (which syscall, the open's access mode, the
/// result's sign, the socket family) must be one the scope admits: each is a bit set
/// over the fact's values, computed by the same functions on both sides. A scope may
/// also bound an open's path ([`filter::PATHS_BOUNDED`]): then an absolute path must be
/// in its path table (exactly, or below a prefix), unless the path is one its bytes
/// cannot settle ([`filter::path_needs_agent`]).
pub mod filter {
    pub const SCOPE_HOST: usize = 0;
    pub const SCOPE_OTHER: usize = 1;
    pub const SCOPES: usize = 2;

    /// The bit of a record's syscall id (0 for kinds whose records carry none).
    pub const fn syscall_bit(syscall: u16) -> u64 {
        1 << (syscall & 63)
    }
    /// The bit of an open's access mode (`flags & O_ACCMODE`: read, write, both, or
    /// the invalid 3).
    pub const fn access_bit(flags: u64) -> u32 {
        1 << (flags & 3)
    }
    pub const RESULT_OK: u32 = 1;
    pub const RESULT_FAILED: u32 = 2;
    pub const fn result_bit(result: i64) -> u32 {
        if result >= 0 {
            RESULT_OK
        } else {
            RESULT_FAILED
        }
    }
    pub const FAMILY_UNIX: u32 = 1;
    pub const FAMILY_INET: u32 = 2;
    pub const FAMILY_INET6: u32 = 4;
    pub const FAMILY_OTHER: u32 = 8;
    pub const fn family_bit(family: u16) -> u32 {
        match family {
            1 => FAMILY_UNIX,
            2 => FAMILY_INET,
            10 => FAMILY_INET6,
            _ => FAMILY_OTHER,
        }
    }
    /// Entries of the excluded-network tries are keyed by the filter generation first,
    /// so that a reload writes the next generation's networks beside the current ones.
    pub const NET_KEY_GENERATION_BITS: u32 = 8;

    /// `ScopeFilter::ports`: a connect's destination port must be in the scope's port
    /// table, or must not be.
    pub const PORTS_ONLY: u32 = 1;
    pub const PORTS_EXCEPT: u32 = 2;
    /// A port-table key: the generation, the scope, the port (little-endian).
    pub const fn port_key(generation: u8, scope: u8, port: u16) -> u32 {
        (generation as u32) | ((scope as u32) << 8) | ((port as u32) << 16)
    }

    /// `ScopeFilter::paths`: the scope admits only the paths its path table holds, or
    /// with [`PATHS_NAMES`] whose last component its name table holds.
    pub const PATHS_BOUNDED: u32 = 1;
    pub const PATHS_NAMES: u32 = 2;
    /// Bytes of a path-table key: the generation, the scope, then the path; an exact
    /// path ends with its NUL, a prefix does not.
    pub const PATH_KEY_BYTES: usize = 256;
    pub const PATH_KEY_HEADER: usize = 2;
    /// The longest path the table judges, NUL included; a longer one passes.
    pub const MAX_FILTER_PATH: usize = PATH_KEY_BYTES - PATH_KEY_HEADER;

    /// Is `path` one the path table cannot settle by its bytes? A relative path (the
    /// rules see it joined to a directory), and one that normalizing would change
    /// (`//`, `/.`, `..` anywhere, a trailing `/`): Falco's `fd.name` folds those, so
    /// the bytes are not the name the rules compare. Every path with `..` (a
    /// directory traversal) is among them.
    pub const fn path_needs_agent(path: &[u8]) -> bool {
        if path.is_empty() || path[0] != b'/' {
            return true;
        }
        if path.len() > 1 && path[path.len() - 1] == b'/' {
            return true;
        }
        let mut i = 0;
        while i + 1 < path.len() {
            let (a, b) = (path[i], path[i + 1]);
            if (a == b'/' && (b == b'/' || b == b'.')) || (a == b'.' && b == b'.') {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// What one scope of a kind admits (see [`filter`]); all zero admits nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeFilter {
    pub syscalls: u64,
    pub access: u32,
    pub results: u32,
    pub families: u32,
    /// [`filter::PATHS_BOUNDED`], or 0: every path.
    pub paths: u32,
    /// [`filter::PORTS_ONLY`], [`filter::PORTS_EXCEPT`], or 0: every port.
    pub ports: u32,
    pub _pad: u32,
}

impl ScopeFilter {
    pub const ALL: Self = Self {
        syscalls: u64::MAX,
        access: u32::MAX,
        results: u32::MAX,
        families: u32::MAX,
        paths: 0,
        ports: 0,
        _pad: 0,
    };

    /// What an open's entry knows: the syscall and the flags.
    pub const fn admits_open_entry(&self, syscall: u16, flags: u64) -> bool {
        self.syscalls & filter::syscall_bit(syscall) != 0
            && self.access & filter::access_bit(flags) != 0
    }

    /// One of the other syscalls: which one (at entry), then its result.
    pub const fn admits_syscall(&self, syscall: u16) -> bool {
        self.syscalls & filter::syscall_bit(syscall) != 0
    }

    pub const fn admits_result(&self, result: i64) -> bool {
        self.results & filter::result_bit(result) != 0
    }

    /// A connect's facts (the networks are checked apart, in a trie).
    pub const fn admits_connect(&self, family: u16, result: i64) -> bool {
        self.syscalls & filter::syscall_bit(0) != 0
            && self.families & filter::family_bit(family) != 0
            && self.admits_result(result)
    }
}

/// One kind's filter. `active` 0 admits everything (no filter set: `monitor events`,
/// or filtering switched off).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindFilter {
    pub active: u32,
    pub _pad: u32,
    pub scopes: [ScopeFilter; filter::SCOPES],
}

/// In-kernel kills: responses whose rule the kernel decides exactly get a slot, and
/// the open's exit program kills the caller with `bpf_send_signal(SIGKILL)` when the
/// open falls in a slot's region. The process dies before its next instruction in
/// user space: it never reads what it opened.
pub mod kill {
    /// Slots, and the kill windows responses share (one per response with slots).
    pub const SLOTS: usize = 8;
    /// The path-table key's first byte for slot `slot` (the filter's generations use
    /// 0 and 1).
    pub const fn path_key_mark(slot: usize) -> u8 {
        2 + slot as u8
    }
    /// A slot's scope bits: the cgroup is one the agent found to be the host's, or a
    /// container's. A cgroup it has not classified yet is in neither, and no slot
    /// acts there (the user-space kill still does).
    pub const SCOPE_HOST: u32 = 1;
    pub const SCOPE_CONTAINER: u32 = 2;

    /// What a slot did (`OpenRecord::kill`, with the slot): killed, spared a process
    /// no response acts on, not killed because its response reached its cap, or the
    /// signal could not be sent.
    pub const KILLED: u32 = 1;
    pub const EXEMPT: u32 = 2;
    pub const CAPPED: u32 = 3;
    pub const FAILED: u32 = 4;
    pub const fn verdict(slot: usize, outcome: u32) -> u32 {
        (slot as u32 + 1) | (outcome << 8)
    }
    /// The slot and outcome of a verdict; `None` for 0 (no slot matched).
    pub const fn parse(verdict: u32) -> Option<(usize, u32)> {
        match verdict & 0xff {
            0 => None,
            slot => Some((slot as usize - 1, verdict >> 8)),
        }
    }
    /// How long a cap's window lasts.
    pub const WINDOW_NS: u64 = 60_000_000_000;

    /// `KillSlot::files`: opens without `O_DIRECTORY` (`fd.typechar` f), with it (d).
    pub const FILE: u32 = 1;
    pub const DIRECTORY: u32 = 2;
    pub const O_DIRECTORY: u64 = 0o200000;
    pub const fn file_bit(flags: u64) -> u32 {
        if flags & O_DIRECTORY != 0 {
            DIRECTORY
        } else {
            FILE
        }
    }
}

/// Connects refused in the kernel: `connect4`/`connect6` programs attached to the
/// cgroup v2 root judge every IP connect before it leaves, by slots like the kill
/// slots. A denied connect fails with `EPERM`; its record carries the verdict.
pub mod deny {
    /// Slots (one per rule of an enforcing deny response).
    pub const SLOTS: usize = 8;
    /// The network-table key's first byte for a slot's destinations inside its
    /// networks, and for those it excludes (the filter's generations use 0 and 1).
    pub const fn within_mark(slot: usize) -> u8 {
        2 + 2 * slot as u8
    }
    pub const fn excluded_mark(slot: usize) -> u8 {
        3 + 2 * slot as u8
    }
    /// The port-table key's generation byte for a slot's ports.
    pub const fn port_mark(slot: usize) -> u8 {
        2 + slot as u8
    }
    /// What a slot did (`ConnectRecord::deny`, with the slot, encoded as
    /// [`super::kill::verdict`]): refused the connect, or spared a process no
    /// response acts on.
    pub const DENIED: u32 = 5;
    pub const EXEMPT: u32 = super::kill::EXEMPT;
    /// `DenySlot::within`/`excluded`: the destination must be inside (outside) the
    /// slot's networks in the network tables.
    pub const NETS_BOUNDED: u32 = 1;
}

/// One in-kernel deny: the IP connects of a rule the kernel decides exactly. `active`
/// 0 is an empty slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DenySlot {
    pub active: u32,
    /// [`kill::SCOPE_HOST`] and/or [`kill::SCOPE_CONTAINER`].
    pub scopes: u32,
    /// [`filter::FAMILY_INET`] and/or [`filter::FAMILY_INET6`].
    pub families: u32,
    /// [`filter::PORTS_ONLY`], [`filter::PORTS_EXCEPT`] (the slot's ports in the port
    /// table), or 0: every port.
    pub ports: u32,
    /// [`deny::NETS_BOUNDED`] when the destination must be in the slot's networks.
    pub within: u32,
    /// [`deny::NETS_BOUNDED`] when the destination must be outside the slot's
    /// excluded networks.
    pub excluded: u32,
}

/// One in-kernel kill: the opens of a rule the kernel decides exactly. `active` 0 is
/// an empty slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KillSlot {
    pub active: u32,
    /// [`kill::SCOPE_HOST`] and/or [`kill::SCOPE_CONTAINER`].
    pub scopes: u32,
    /// The syscalls, access modes and results; `paths` is
    /// [`filter::PATHS_BOUNDED`] when the path must be in the path table under the
    /// slot's mark ([`kill::path_key_mark`]).
    pub admits: ScopeFilter,
    /// [`kill::FILE`] and/or [`kill::DIRECTORY`].
    pub files: u32,
    /// The response's kill window (index into the windows table) and its cap.
    pub window: u32,
    pub per_minute: u32,
    pub _pad: u32,
}

/// A response's kills in its current minute, shared by its slots.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KillWindow {
    pub started_ns: u64,
    pub kills: u64,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for KindFilter {}
    unsafe impl aya::Pod for KillSlot {}
    unsafe impl aya::Pod for KillWindow {}
    unsafe impl aya::Pod for DenySlot {}
}

const _: () = {
    assert!(core::mem::size_of::<EventHeader>() == 48);
    assert!(core::mem::size_of::<TaskIdentity>() == 40);
    assert!(core::mem::size_of::<ExecRecord>() == 168);
    assert!(core::mem::size_of::<SyscallRecord>() == 160);
    assert!(core::mem::size_of::<ForkRecord>() == 72);
    assert!(core::mem::size_of::<ExitRecord>() == 64);
    assert!(core::mem::size_of::<ConnectRecord>() == 112);
    assert!(core::mem::size_of::<OpenRecord>() == 88);
    assert!(core::mem::size_of::<KernelOffsets>() == 84 * 4);
    assert!(core::mem::size_of::<KindFilter>() == 8 + 32 * filter::SCOPES);
    assert!(core::mem::size_of::<KillSlot>() == 56);
    // A verdict holds its slot in one byte.
    assert!(kill::SLOTS < 255);
    // Marks 0 and 1 are the filter's generations; a mark is one byte.
    assert!(deny::excluded_mark(deny::SLOTS - 1) < 255);
    // Every syscall id has its own bit in `ScopeFilter::syscalls`, 0 included.
    assert!((syscall::ALL.len() as u32) < u64::BITS);
};

#[cfg(test)]
mod tests {
    use super::{Fault, stat};

    #[test]
    fn every_counter_of_a_kind_has_its_own_slot() {
        let mut slots = [0u32; 3 + Fault::ALL.len()];
        slots[..3].copy_from_slice(&[stat::SENT, stat::DROPPED, stat::FILTERED]);
        for (i, &fault) in Fault::ALL.iter().enumerate() {
            // `ALL` is in discriminant order: the agent reads the counters by it.
            assert_eq!(fault as usize, i);
            slots[3 + i] = stat::fault(fault);
        }
        for (i, a) in slots.iter().enumerate() {
            assert!(*a < stat::STATS_PER_KIND, "{slots:?}");
            assert!(!slots[i + 1..].contains(a), "{slots:?}");
        }
    }
}
