//! The field catalog: every field a condition or an output may name, with its type,
//! the argument it takes and what it means for this agent's events.
use std::fmt;

/// The argument of a field: `proc.aname[2]`, `container.label[app]`, `evt.arg.flags`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldArg {
    None,
    Index(usize),
    Key(Box<str>),
}

/// A field the engine asks an event for, resolved against the catalog at load time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedField {
    pub id: FieldId,
    pub arg: FieldArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    Str,
    /// A filesystem path (a string; `pmatch` and `glob` are the natural operators).
    Path,
    U64,
    I64,
    Bool,
    IpAddr,
    /// An IP address compared against networks (`fd.net = 10.0.0.0/8`).
    IpNet,
    /// Several strings (the any-ancestor forms); `in`/`intersects` test each.
    StrList,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Path => "path",
            FieldType::U64 => "u64",
            FieldType::I64 => "i64",
            FieldType::Bool => "bool",
            FieldType::IpAddr => "ipaddr",
            FieldType::IpNet => "ipnet",
            FieldType::StrList => "list",
        }
    }

    pub fn is_string(self) -> bool {
        matches!(self, FieldType::Str | FieldType::Path | FieldType::StrList)
    }

    pub fn is_number(self) -> bool {
        matches!(self, FieldType::U64 | FieldType::I64)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The argument a field takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// No argument.
    None,
    /// `[N]`, an ancestor depth; without it the field matches any ancestor.
    AncestorIndex,
    /// `[key]` or `.key`, required.
    Key,
    /// `[key]`, or nothing for the whole value.
    OptionalKey,
    /// `.name` or `[N]` (event arguments).
    EventArg,
}

#[derive(Clone, Copy, Debug)]
pub struct FieldInfo {
    pub id: FieldId,
    pub name: &'static str,
    pub ty: FieldType,
    pub arg: ArgKind,
    /// Whether events of this agent can carry a value for it (false: always no value,
    /// kept so that Falco rules naming it still load).
    pub available: bool,
    pub description: &'static str,
}

/// The class a field belongs to: Falco's libs' (`evt`, `proc`, `fd`, `container`,
/// `k8s`) and this agent's own (`stats` for `container_stats` measures, `workload`).
/// Each class's values are read in a file of its own (`event_fields/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldClass {
    Evt,
    Proc,
    Fd,
    Container,
    Stats,
    K8s,
    Workload,
}

impl FieldClass {
    /// The class of a field from its `FieldId` variant's name, at compile time.
    const fn of_variant(variant: &str) -> FieldClass {
        const fn starts(s: &[u8], prefix: &[u8]) -> bool {
            if s.len() < prefix.len() {
                return false;
            }
            let mut i = 0;
            while i < prefix.len() {
                if s[i] != prefix[i] {
                    return false;
                }
                i += 1;
            }
            true
        }
        let v = variant.as_bytes();
        if starts(v, b"Evt") {
            FieldClass::Evt
        } else if starts(v, b"Proc")
            || starts(v, b"Thread")
            || starts(v, b"User")
            || starts(v, b"Group")
        {
            FieldClass::Proc
        } else if starts(v, b"Fd") || starts(v, b"Fs") {
            FieldClass::Fd
        } else if starts(v, b"Container") {
            FieldClass::Container
        } else if starts(v, b"Stat") {
            FieldClass::Stats
        } else if starts(v, b"K8s") {
            FieldClass::K8s
        } else if starts(v, b"Workload") {
            FieldClass::Workload
        } else {
            panic!("a FieldId variant without a class prefix")
        }
    }
}

macro_rules! catalog {
    (
        before { $( $id:ident => $name:literal, $ty:ident, $arg:ident, $avail:literal, $desc:literal; )* }
        after { $( $id2:ident => $name2:literal, $ty2:ident, $arg2:ident, $avail2:literal, $desc2:literal; )* }
        @measures { $( $field:ident => $mname:literal [$now:ident $(, $m1:ident, $m5:ident)?] $mdesc:literal; )* }
    ) => {
        /// Identifies a catalog field.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FieldId { $($id,)* $( $now, $($m1, $m5,)? )* $($id2,)* }

        /// Each field's class, in `FieldId` order; computed at compile time (a variant
        /// without a class prefix fails the build).
        const CLASSES: &[FieldClass] = &[
            $( FieldClass::of_variant(stringify!($id)), )*
            $( FieldClass::of_variant(stringify!($now)),
               $( FieldClass::of_variant(stringify!($m1)), FieldClass::of_variant(stringify!($m5)), )? )*
            $( FieldClass::of_variant(stringify!($id2)), )*
        ];

        impl FieldId {
            pub const fn class(self) -> FieldClass {
                CLASSES[self as usize]
            }

            /// The key of a `stats` field's measure in a `container_stats` event.
            #[inline(always)]
            pub fn stats_key(self) -> Option<&'static str> {
                match self {
                    $(
                        FieldId::$now => Some(stringify!($field)),
                        $(
                            FieldId::$m1 => Some(concat!(stringify!($field), "_1m")),
                            FieldId::$m5 => Some(concat!(stringify!($field), "_5m")),
                        )?
                    )*
                    _ => None,
                }
            }
        }

        /// Every field, in display order.
        pub static CATALOG: &[FieldInfo] = &[
            $( FieldInfo { id: FieldId::$id, name: $name, ty: FieldType::$ty, arg: ArgKind::$arg, available: $avail, description: $desc }, )*
            $(
                FieldInfo { id: FieldId::$now, name: $mname, ty: FieldType::U64, arg: ArgKind::None, available: true, description: measure_doc!($mdesc $(, $m1)?) },
                $(
                    FieldInfo { id: FieldId::$m1, name: concat!($mname, "_1m"), ty: FieldType::U64, arg: ArgKind::None, available: true, description: measure_doc!($mdesc, "Mean over the last minute.") },
                    FieldInfo { id: FieldId::$m5, name: concat!($mname, "_5m"), ty: FieldType::U64, arg: ArgKind::None, available: true, description: measure_doc!($mdesc, "Mean over the last five minutes.") },
                )?
            )*
            $( FieldInfo { id: FieldId::$id2, name: $name2, ty: FieldType::$ty2, arg: ArgKind::$arg2, available: $avail2, description: $desc2 }, )*
        ];
    };
}

/// The description of a measure's field: a series' plain field is its last sample,
/// its `_1m` and `_5m` fields name their window.
macro_rules! measure_doc {
    ($desc:literal, $m1:ident) => {
        measure_doc!($desc, "Last sample.")
    };
    ($desc:literal $(, $window:literal)?) => {
        concat!("container_stats events: ", $desc $(, " ", $window)?)
    };
}

crate::event::container_measures!(catalog
before {
    EvtType => "evt.type", Str, None, true, "Syscall name of the event: execve, execveat, clone (clone3, fork, vfork), procexit, connect, open, openat, openat2, creat, and the syscall kind's ptrace, symlink, symlinkat, link, linkat, init_module, finit_module, socket, dup, dup2, dup3, setns, unshare, setuid, chmod, fchmod, fchmodat, bpf, unlink, unlinkat, rename, renameat, renameat2, mkdir, mkdirat, rmdir, userfaultfd, memfd_create, listen, accept, accept4, sendto, sendmsg, recvfrom, recvmsg.";
    EvtDir => "evt.dir", Str, None, true, "Direction; always `<` here, every event is a completed syscall.";
    EvtRes => "evt.res", Str, None, true, "Result as text: SUCCESS for a non-negative return, else the errno name (ENOENT, EACCES, ...).";
    EvtRawRes => "evt.rawres", I64, None, true, "Raw return value of the syscall (negative errno on failure).";
    EvtFailed => "evt.failed", Bool, None, true, "True when the syscall returned an error.";
    EvtTime => "evt.time", Str, None, true, "Wall-clock time of the event, RFC 3339 with nanoseconds.";
    EvtRawTime => "evt.rawtime", U64, None, true, "Wall-clock time of the event in nanoseconds since the epoch.";
    EvtNum => "evt.num", U64, None, true, "Sequence number of the event, when the producer numbers events.";
    EvtHostname => "evt.hostname", Str, None, true, "Host name of the machine the event happened on.";
    EvtIsOpenRead => "evt.is_open_read", Bool, None, true, "For opens: the file was opened for reading (O_RDONLY or O_RDWR).";
    EvtIsOpenWrite => "evt.is_open_write", Bool, None, true, "For opens: the file was opened for writing (O_WRONLY or O_RDWR).";
    EvtIsOpenExec => "evt.is_open_exec", Bool, None, true, "For opens: a file was created (O_CREAT or creat) with an execute bit in its mode.";
    EvtIsOpenCreate => "evt.is_open_create", Bool, None, true, "For opens: O_CREAT was passed (or the syscall is creat).";
    EvtArg => "evt.arg", Str, EventArg, true, "One syscall argument as text, by name (evt.arg.flags) or position (evt.arg[1]). open: fd, name, flags, mode, dirfd; exec: res, exe, args, filename, dirfd, flags; connect: res, fd, addr, tuple; clone: res; procexit: status, sig; ptrace: res, addr, data, request (PTRACE_ATTACH, ...), pid; symlink(at): res, target, linkpath (symlinkat also newdirfd); link(at): res, oldpath, newpath (linkat also olddir, newdir, flags); init_module: res, length, uargs; finit_module: res, fd, uargs, flags; socket: fd, domain (AF_PACKET, ...), type, proto; dup: res, oldfd (dup2 and dup3 also newfd, dup3 flags); setns: res, fd, nstype (CLONE_NEW* names); unshare: res, flags; setuid: res, uid; chmod, fchmodat: res, filename, mode (S_ISUID|... names), fchmodat also dirfd; fchmod: res, fd, mode; bpf: fd, cmd (BPF_PROG_LOAD, ...); unlink, rmdir: res, path; unlinkat: res, dirfd, name, flags (AT_REMOVEDIR); mkdir: res, path, mode; mkdirat: res, dirfd, path, mode; rename: res, oldpath, newpath; renameat(2): res, olddirfd, oldpath, newdirfd, newpath (renameat2 also flags); userfaultfd: res, flags; memfd_create: fd, name, flags; listen: res, fd, backlog; accept(4): fd (the new connection), tuple (accept4 also flags); sendto, sendmsg: res, data, fd, size, tuple; recvfrom: res, data, tuple, fd, size; recvmsg: res, size, data, tuple, fd. A path argument that was relative is resolved against its dirfd or the working directory, as Falco does.";
    EvtBuffer => "evt.buffer", Str, None, true, "sendto, sendmsg, recvfrom, recvmsg: the first bytes the call moved (80 at most, Falco's snapshot length); bcontains and bstartswith compare them as bytes (hex), outputs print non-printable bytes as `.`.";
    EvtArgs => "evt.args", Str, None, true, "All syscall arguments as `name=value` pairs separated by spaces.";

    ProcName => "proc.name", Str, None, true, "Name of the process (the executable's base name as the kernel keeps it, 16 bytes at most).";
    ProcExe => "proc.exe", Str, None, true, "First command-line argument (argv[0]), usually the executable as it was invoked.";
    ProcExePath => "proc.exepath", Path, None, true, "Absolute path of the executable file.";
    ProcCmdline => "proc.cmdline", Str, None, true, "proc.name followed by the arguments, separated by spaces.";
    ProcArgs => "proc.args", Str, None, true, "Command-line arguments after argv[0], joined by spaces.";
    ProcPname => "proc.pname", Str, None, true, "proc.name of the parent process.";
    ProcPexe => "proc.pexe", Str, None, true, "proc.exe of the parent process.";
    ProcPexePath => "proc.pexepath", Path, None, true, "proc.exepath of the parent process.";
    ProcPcmdline => "proc.pcmdline", Str, None, true, "proc.cmdline of the parent process.";
    ProcAname => "proc.aname", Str, AncestorIndex, true, "proc.name of an ancestor: [0] the process, [1] its parent, [2] the grandparent, ...; without an index (conditions only) true when any ancestor (from the parent up) matches.";
    ProcAexePath => "proc.aexepath", Path, AncestorIndex, true, "proc.exepath of an ancestor, indexed like proc.aname.";
    ProcApid => "proc.apid", I64, AncestorIndex, true, "Pid of an ancestor, indexed like proc.aname.";
    ProcAexe => "proc.aexe", Str, AncestorIndex, true, "proc.exe (argv[0]) of an ancestor, indexed like proc.aname.";
    ProcPid => "proc.pid", I64, None, true, "Process id (thread group id).";
    ProcPpid => "proc.ppid", I64, None, true, "Pid of the parent process.";
    ProcTty => "proc.tty", I64, None, true, "Controlling terminal device number; 0 when the process has none.";
    ProcCwd => "proc.cwd", Path, None, true, "Current working directory of the process, ending with `/` as Falco's does (`/dev/shm/`).";
    ProcSid => "proc.sid", I64, None, true, "Session id of the process.";
    ProcSname => "proc.sname", Str, None, true, "proc.name of the session leader (the process or ancestor whose pid is proc.sid).";
    ProcVpid => "proc.vpid", I64, None, true, "Process id as seen inside its pid namespace.";
    ProcVpgid => "proc.vpgid", I64, None, true, "Process group id as seen inside the process's pid namespace (read in the kernel at exec; a later setpgid is not seen).";
    ProcIsVpgidLeader => "proc.is_vpgid_leader", Bool, None, true, "The process leads its process group (proc.vpid = proc.vpgid), as a shell's foreground job does.";
    ProcIsExeUpperLayer => "proc.is_exe_upper_layer", Bool, None, true, "The executable lives in the writable upper layer of an overlay filesystem (written after the container started).";
    ProcIsExeWritable => "proc.is_exe_writable", Bool, None, true, "The process may write the file it runs: a writable filesystem, a file not immutable, a mode that lets its fsuid or fsgid write, or CAP_DAC_OVERRIDE (read in the kernel at exec).";
    ProcIsContainerStart => "proc.is_container_start", Bool, None, true, "This exec started the container: its first process (vpid 1, forked by the runtime from outside the container) ran its first program. False for an entrypoint's later `exec`, for `docker exec` processes and for nested pid namespaces, so a check on it runs once per container start (monitor's own field; Falco's container_started macro uses proc.vpid = 1).";
    ProcIsExeFromMemfd => "proc.is_exe_from_memfd", Bool, None, true, "The executable is a memfd (an anonymous in-memory file).";
    ProcEnv => "proc.env", Str, OptionalKey, true, "The process's environment as of its exec (`NAME=value` entries separated by spaces, at most 4096 bytes, read in the kernel); proc.env[NAME] is one variable's value. Never printed unless a rule's output asks for it.";
    ProcExeSha256 => "proc.exe_sha256", Str, None, true, "SHA-256 of the executable file, hex.";
    ProcDuration => "proc.duration", U64, None, true, "Nanoseconds since the process started.";
    ProcExeInoCtime => "proc.exe_ino.ctime", U64, None, false, "Change time of the executable's inode (not collected by this agent).";
    ProcExeInoMtime => "proc.exe_ino.mtime", U64, None, false, "Modification time of the executable's inode (not collected by this agent).";
    ProcExeInoCtimeDurationProcStart => "proc.exe_ino.ctime_duration_proc_start", U64, None, false, "Nanoseconds between the executable inode's change time and the process start (not collected by this agent).";

    ThreadTid => "thread.tid", I64, None, true, "Id of the thread that made the syscall.";
    ThreadCapEffective => "thread.cap_effective", Str, None, true, "Effective capabilities of the thread, names separated by spaces (CAP_SYS_ADMIN ...), as of the process's last exec.";
    ThreadCapPermitted => "thread.cap_permitted", Str, None, true, "Permitted capabilities of the thread, like thread.cap_effective.";
    ThreadCapInheritable => "thread.cap_inheritable", Str, None, true, "Inheritable capabilities of the thread, like thread.cap_effective.";

    UserName => "user.name", Str, None, true, "Name of the process's user.";
    UserUid => "user.uid", U64, None, true, "User id of the process.";
    UserLoginUid => "user.loginuid", I64, None, true, "Audit login uid; -1 when unset.";
    UserLoginName => "user.loginname", Str, None, true, "Name of the audit login user.";
    GroupName => "group.name", Str, None, true, "Name of the process's group.";
    GroupGid => "group.gid", U64, None, true, "Group id of the process.";

    FdName => "fd.name", Path, None, true, "Files: the path as the process named it, made absolute and normalized (Falco's: `/lib/libc.so.6` stays that, whatever the symlinks); a relative path is taken as the kernel resolved it, an open no syscall made (io_uring) by its resolved path. Connections: the client:port->server:port tuple (a unix socket: its path).";
    FdRealpath => "fd.realpath", Path, None, true, "Files: the absolute path of the opened file as the kernel resolved it, symlinks followed (monitor's own field; the kernel filter does not bound it, so a rule on it keeps opens unfiltered); none for a failed open.";
    FdNameRaw => "fd.nameraw", Str, None, true, "For files, the path exactly as the process passed it.";
    FdDirectory => "fd.directory", Path, None, true, "For files, the directory part of fd.name.";
    FdFilename => "fd.filename", Str, None, true, "For files, the last component of fd.name.";
    FdTypeChar => "fd.typechar", Str, None, true, "Kind of descriptor as one character: f file, d directory, 4 IPv4 socket, 6 IPv6 socket, u unix socket.";
    FdType => "fd.type", Str, None, true, "Kind of descriptor: file, directory, ipv4, ipv6, unix.";
    FdNum => "fd.num", I64, None, true, "Descriptor number; -1 for a failed open.";
    FdSip => "fd.sip", IpAddr, None, true, "Server IP: for an outbound connect, the destination address.";
    FdSport => "fd.sport", U64, None, true, "Server port: for an outbound connect, the destination port.";
    FdCip => "fd.cip", IpAddr, None, false, "Client IP (the local side of a connect; not known to this agent).";
    FdCport => "fd.cport", U64, None, false, "Client port (not known to this agent).";
    FdRip => "fd.rip", IpAddr, None, true, "Remote IP: the destination of a connect.";
    FdRport => "fd.rport", U64, None, true, "Remote port: the destination port of a connect.";
    FdLip => "fd.lip", IpAddr, None, false, "Local IP (not known for a connect).";
    FdLport => "fd.lport", U64, None, false, "Local port (not known for a connect).";
    FdL4proto => "fd.l4proto", Str, None, true, "Transport protocol of an IP socket: tcp, udp or raw.";
    FdNet => "fd.net", IpNet, None, true, "Matches when either endpoint's IP is inside the given network.";
    FdSnet => "fd.snet", IpNet, None, true, "Matches when the server IP is inside the given network.";
    FdCnet => "fd.cnet", IpNet, None, false, "Matches when the client IP is inside the given network (not known for a connect).";
    FdRnet => "fd.rnet", IpNet, None, true, "Matches when the remote IP is inside the given network.";
    FdLnet => "fd.lnet", IpNet, None, false, "Matches when the local IP is inside the given network (not known for a connect).";
    FdSockfamily => "fd.sockfamily", Str, None, true, "Socket family: ip or unix.";
    FdIp => "fd.ip", IpAddr, None, true, "Matches either endpoint's IP (here: the destination of a connect).";
    FdPort => "fd.port", U64, None, true, "Matches either endpoint's port (here: the destination port).";
    FdConnected => "fd.connected", Bool, None, true, "For sockets: the connect completed (false while EINPROGRESS or after a failure).";
    FdNameChanged => "fd.name_changed", Bool, None, false, "The event changed the descriptor's name (datagram sockets; not tracked by this agent).";
    FdSipName => "fd.sip.name", Str, None, true, "The DNS name the server IP belongs to, among the names the active rules compare these fields with: the agent resolves those names with the host's resolver every 30 s, as Falco does (no value for an address none of them resolved to).";
    FdRipName => "fd.rip.name", Str, None, true, "The DNS name of the remote IP, as fd.sip.name.";
    FdCipName => "fd.cip.name", Str, None, true, "The DNS name of the client IP, as fd.sip.name.";
    FdLipName => "fd.lip.name", Str, None, true, "The DNS name of the local IP, as fd.sip.name.";

    ContainerId => "container.id", Str, None, true, "Container id as Falco gives it: its first 12 hex digits, or `host` for processes outside containers.";
    ContainerFullId => "container.full_id", Str, None, true, "The whole container id (64 hex digits), or `host`.";
    ContainerName => "container.name", Str, None, true, "Container name (`host` outside containers).";
    ContainerImage => "container.image", Str, None, true, "Image as the container was created from (repository:tag).";
    ContainerImageRepository => "container.image.repository", Str, None, true, "Repository part of the image (nginx, docker.io/library/nginx).";
    ContainerImageTag => "container.image.tag", Str, None, true, "Tag part of the image.";
    ContainerImageDigest => "container.image.digest", Str, None, true, "Registry digest of the image (sha256:...).";
    ContainerImageId => "container.image.id", Str, None, true, "Image id.";
    ContainerType => "container.type", Str, None, true, "Container runtime (docker, containerd, cri-o, podman).";
    ContainerPrivileged => "container.privileged", Bool, None, true, "The container runs privileged (containerd's own containers: judged from their spec, which keeps no such flag).";
    ContainerHostPid => "container.host_pid", Bool, None, true, "The container shares the host's pid namespace.";
    ContainerHostNetwork => "container.host_network", Bool, None, true, "The container shares the host's network namespace.";
    ContainerHostIpc => "container.host_ipc", Bool, None, true, "The container shares the host's IPC namespace.";
    ContainerUser => "container.user", Str, None, true, "The user the container's process starts as, as configured (Docker and Podman: `Config.User`, e.g. `1000:1000` or `nginx`; CRI and containerd: the numeric uid).";
    ContainerMounts => "container.mounts", Str, None, true, "The container's mounts, each `source:dest:mode:rdwr:propagation`, separated by commas (empty for a container without mounts; no value on the host).";
    ContainerMount => "container.mount", Str, Key, true, "One mount in the form of container.mounts: container.mount[0] by position, or container.mount[/var/run/docker.sock] by source (the key is searched in the source as an unanchored regular expression, as Falco's container plugin does).";
    ContainerMountSource => "container.mount.source", Str, Key, true, "A mount's source, by position or by destination (searched like container.mount).";
    ContainerMountDest => "container.mount.dest", Str, Key, true, "A mount's destination, by position or by source (searched like container.mount).";
    ContainerMountMode => "container.mount.mode", Str, Key, true, "A mount's mode (options such as `z` or `ro`), by position or by source.";
    ContainerMountRdwr => "container.mount.rdwr", Str, Key, true, "`true` when a mount is writable, by position or by source.";
    ContainerMountPropagation => "container.mount.propagation", Str, Key, true, "A mount's propagation (`rprivate`, ...), by position or by source.";
    ContainerLabels => "container.labels", Str, None, true, "The container's labels as `key:value` pairs joined by `, ` (sorted; `io.kubernetes.*` left out).";
    ContainerLabel => "container.label", Str, Key, true, "One container label: container.label[app] or container.label.app.";
    ContainerStartTs => "container.start_ts", U64, None, true, "Container start time, nanoseconds since the epoch.";
}
after {
    WorkloadIdField => "workload.id", Str, None, true, "The container's workload as its learned profile is kept: `deployment/NAMESPACE/NAME` (also daemonset, statefulset, job, cronjob, pod) from the pod's labels, else `image/REPOSITORY`; none on the host or without profiles.";
    WorkloadKindField => "workload.kind", Str, None, true, "The workload's kind: deployment, daemonset, statefulset, job, cronjob, pod or image.";
    WorkloadName => "workload.name", Str, None, true, "The workload's name (the image repository for `image` workloads).";
    WorkloadNamespace => "workload.namespace", Str, None, true, "The workload's Kubernetes namespace.";
    WorkloadLearning => "workload.learning", Bool, None, true, "The workload's profile is still learning (its window of observed runtime is open, `profiles.learning_window_secs`); false once frozen.";
    ProcIsNewForWorkload => "proc.is_new_for_workload", Bool, None, true, "Exec events: the workload's frozen profile has never seen this executable (proc.exepath); false while learning.";
    FdIsNewForWorkload => "fd.is_new_for_workload", Bool, None, true, "Connects: the destination (network, port, protocol) is not in the workload's frozen profile; listens: the port; writes: the directory. False while learning.";
    K8sPodName => "k8s.pod.name", Str, None, true, "Kubernetes pod name.";
    K8sPodUid => "k8s.pod.uid", Str, None, true, "Kubernetes pod uid.";
    K8sPodId => "k8s.pod.id", Str, None, true, "Kubernetes pod uid (older name).";
    K8sNsName => "k8s.ns.name", Str, None, true, "Kubernetes namespace of the pod.";
    K8sPodIp => "k8s.pod.ip", Str, None, true, "The pod's primary IP address, as its sandbox reports it (CRI).";
    K8sPodLabels => "k8s.pod.labels", Str, None, true, "The pod's labels as `key:value` pairs joined by `, ` (sorted; `io.kubernetes.*` left out), from its sandbox (CRI).";
    K8sPodLabel => "k8s.pod.label", Str, Key, true, "One pod label: k8s.pod.label[app] or k8s.pod.label.app.";
});

impl FieldId {
    pub fn info(self) -> &'static FieldInfo {
        // The catalog is declared in enum order.
        &CATALOG[self as usize]
    }
}

/// The catalog, for `monitor fields`.
pub fn catalog() -> &'static [FieldInfo] {
    CATALOG
}

/// Resolves a field name (with the text of its `[...]` argument, if any) to a catalog
/// entry and argument. Returns the error message on failure.
pub fn resolve(
    name: &str,
    bracket: Option<&str>,
) -> Result<(&'static FieldInfo, FieldArg), String> {
    if let Some(info) = CATALOG.iter().find(|f| f.name == name) {
        let arg = match (info.arg, bracket) {
            (ArgKind::None, None) => FieldArg::None,
            (ArgKind::None, Some(_)) => {
                return Err(format!("field '{name}' takes no argument"));
            }
            (ArgKind::AncestorIndex, None) => FieldArg::None,
            (ArgKind::AncestorIndex, Some(b)) => match b.trim().parse::<usize>() {
                Ok(n) => FieldArg::Index(n),
                Err(_) => {
                    return Err(format!("field '{name}' needs a numeric index, got '{b}'"));
                }
            },
            (ArgKind::Key | ArgKind::OptionalKey, Some(b)) if !b.is_empty() => {
                FieldArg::Key(b.into())
            }
            (ArgKind::OptionalKey, _) => FieldArg::None,
            (ArgKind::Key, _) => return Err(format!("field '{name}' needs a key: {name}[key]")),
            (ArgKind::EventArg, Some(b)) => match b.trim().parse::<usize>() {
                Ok(n) => FieldArg::Index(n),
                Err(_) => FieldArg::Key(b.into()),
            },
            (ArgKind::EventArg, None) => {
                return Err(format!(
                    "field '{name}' needs an argument: {name}.NAME or {name}[N]"
                ));
            }
        };
        return Ok((info, arg));
    }
    // `prefix.key` forms: evt.arg.flags, container.label.app, k8s.pod.label.app.
    for info in CATALOG
        .iter()
        .filter(|f| matches!(f.arg, ArgKind::Key | ArgKind::EventArg))
    {
        if let Some(rest) = name
            .strip_prefix(info.name)
            .and_then(|r| r.strip_prefix('.'))
            && !rest.is_empty()
        {
            if bracket.is_some() {
                return Err(format!("field '{name}' takes no further argument"));
            }
            return Ok((info, FieldArg::Key(rest.into())));
        }
    }
    Err(format!("unknown field '{name}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_in_enum_order_and_unique() {
        for (i, f) in CATALOG.iter().enumerate() {
            assert_eq!(f.id as usize, i, "{}", f.name);
            assert!(!f.description.is_empty());
        }
        let mut names: Vec<_> = CATALOG.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
    }

    #[test]
    fn resolves_arguments() {
        let (f, a) = resolve("proc.aname", Some("2")).unwrap();
        assert_eq!((f.id, a), (FieldId::ProcAname, FieldArg::Index(2)));
        let (f, a) = resolve("proc.aname", None).unwrap();
        assert_eq!((f.id, a), (FieldId::ProcAname, FieldArg::None));
        let (f, a) = resolve("evt.arg.flags", None).unwrap();
        assert_eq!((f.id, a), (FieldId::EvtArg, FieldArg::Key("flags".into())));
        let (f, a) = resolve("evt.arg", Some("1")).unwrap();
        assert_eq!((f.id, a), (FieldId::EvtArg, FieldArg::Index(1)));
        let (f, a) = resolve("container.label", Some("app")).unwrap();
        assert_eq!(
            (f.id, a),
            (FieldId::ContainerLabel, FieldArg::Key("app".into()))
        );
        let (f, a) = resolve("k8s.pod.label.tier", None).unwrap();
        assert_eq!(
            (f.id, a),
            (FieldId::K8sPodLabel, FieldArg::Key("tier".into()))
        );
        assert_eq!(
            resolve("proc.nope", None).unwrap_err(),
            "unknown field 'proc.nope'"
        );
        assert!(resolve("proc.name", Some("1")).is_err());
        assert!(resolve("proc.aname", Some("x")).is_err());
        assert!(resolve("container.label", None).is_err());
    }

    #[test]
    fn every_stats_field_reads_a_key_the_event_writes() {
        let written: Vec<&str> = crate::event::ContainerStats::default()
            .entries()
            .iter()
            .map(|(key, _)| *key)
            .collect();
        let stats: Vec<&FieldInfo> = CATALOG
            .iter()
            .filter(|f| f.id.class() == FieldClass::Stats)
            .collect();
        for field in &stats {
            let key = field
                .id
                .stats_key()
                .unwrap_or_else(|| panic!("{}", field.name));
            assert!(written.contains(&key), "{} reads {key}", field.name);
        }
        // Every key but interval_secs is a field's.
        assert_eq!(stats.len(), written.len() - 1);
        assert_eq!(FieldId::StatPids5m.stats_key(), Some("pids_5m"));
        assert_eq!(FieldId::ProcName.stats_key(), None);
    }
}
