//! The probe table: for each event kind, the hooks that can produce it, in order of
//! preference. At start-up each candidate is checked against the running kernel and
//! the first that loads and attaches wins; what was chosen is logged and reported by
//! `monitor probes`.
use std::{io, path::Path};

use anyhow::{Result, anyhow};
use aya::{
    Ebpf,
    programs::{
        FEntry, Lsm, ProgramError, RawTracePoint, TracePoint,
        links::{FdLink, PinnedLink},
    },
};
use serde::Serialize;

use super::{
    recorder::Pins,
    tracefs::{has_tracepoint, mount_pseudo_fs},
};
use crate::{
    event::{EventKind, EventType},
    kinds::Interest,
};
use monitor_common::KernelOffsets;

#[derive(Clone, Copy, Debug)]
pub enum Hook {
    /// A tracefs tracepoint (`category/name`).
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// A raw tracepoint: the tracepoint's own arguments, no tracefs format parsing (the
    /// category only tells where tracefs lists it).
    RawTracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// A BPF LSM hook (`security_<name>`); needs `bpf` among the active LSMs.
    Lsm { name: &'static str },
    /// fentry on a kernel function: needs the kernel BTF and BPF trampolines, not the
    /// bpf LSM, so it stands in for an LSM hook where the bpf LSM is not active.
    FEntry { function: &'static str },
}

impl Hook {
    pub fn describe(&self) -> String {
        match self {
            Hook::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
            Hook::RawTracepoint { name, .. } => format!("raw_tp/{name}"),
            Hook::Lsm { name } => format!("lsm/{name}"),
            Hook::FEntry { function } => format!("fentry/{function}"),
        }
    }

    /// Raw tracepoints carry the same names as tracefs events, so tracefs tells
    /// whether either kind exists. An LSM program loads and attaches even when the bpf
    /// LSM is not active, and then never runs: that must count as missing. Whether
    /// fentry works only loading tells.
    fn missing(&self, kernel: &KernelEnv) -> Option<String> {
        let exists = match self {
            Hook::Tracepoint { category, name } => has_tracepoint(&kernel.tracefs, category, name),
            Hook::RawTracepoint { category, name } => {
                has_tracepoint(&kernel.tracefs, category, name)
            }
            Hook::Lsm { .. } => {
                return match &kernel.active_lsms {
                    Some(lsms) if lsms.split(',').any(|l| l == "bpf") => None,
                    Some(lsms) => Some(format!(
                        "{} needs the bpf LSM, which is not active (active: {lsms}; boot \
                         with lsm=...,bpf)",
                        self.describe()
                    )),
                    None => Some(format!(
                        "{} needs the bpf LSM; cannot tell whether it is active: {} is \
                         unreadable",
                        self.describe(),
                        ACTIVE_LSMS
                    )),
                };
            }
            Hook::FEntry { .. } => return None,
        };
        (!exists).then(|| format!("{} does not exist on this kernel", self.describe()))
    }
}

/// Where the kernel lists its active LSMs (securityfs).
pub const ACTIVE_LSMS: &str = "/sys/kernel/security/lsm";

/// What the probe table checks hooks against.
pub struct KernelEnv {
    pub tracefs: std::path::PathBuf,
    /// The kernel BTF that LSM programs are loaded against.
    pub btf: std::path::PathBuf,
    /// The contents of [`ACTIVE_LSMS`], if readable.
    pub active_lsms: Option<String>,
    /// Optional kernel struct members (`struct.member`) this kernel's BTF lacks.
    pub absent_members: Vec<&'static str>,
}

impl KernelEnv {
    /// Fresh nodes often boot without securityfs mounted; mount it, as for tracefs.
    pub fn new(tracefs: &Path, btf: &Path) -> Self {
        let read = || {
            std::fs::read_to_string(ACTIVE_LSMS)
                .ok()
                .map(|s| s.trim().to_string())
        };
        let mut active_lsms = read();
        if active_lsms.is_none() {
            match mount_pseudo_fs("securityfs", "/sys/kernel/security") {
                Ok(()) => tracing::info!("mounted securityfs at /sys/kernel/security"),
                Err(err) => tracing::debug!("mounting securityfs failed: {err}"),
            }
            active_lsms = read();
        }
        Self {
            tracefs: tracefs.to_path_buf(),
            btf: btf.to_path_buf(),
            active_lsms,
            absent_members: Vec::new(),
        }
    }
}

impl KernelEnv {
    /// Records which optional members the offsets found absent.
    pub fn with_absent_members(mut self, offsets: &KernelOffsets) -> Self {
        let optional = [
            ("linux_binprm.file", offsets.binprm_file),
            ("file.f_mode", offsets.file_f_mode),
            ("file.f_flags", offsets.file_f_flags),
            ("task_struct.loginuid", offsets.task_loginuid),
        ];
        self.absent_members = optional
            .into_iter()
            .filter(|&(_, offset)| offset == KernelOffsets::ABSENT)
            .map(|(member, _)| member)
            .collect();
        self
    }
}

/// One program and where it attaches.
#[derive(Clone, Copy, Debug)]
pub struct Attachment {
    pub program: &'static str,
    pub hook: Hook,
}

/// A way to observe an event kind: programs that only work together, such as a
/// syscall's entry and exit.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    pub name: &'static str,
    pub attachments: &'static [Attachment],
}

/// A source of events of one kind. A required source must attach or the sensor
/// refuses to start; an optional one is skipped with a warning (e.g. `open` does not
/// exist on arm64, `openat2` before 5.6).
#[derive(Clone, Copy, Debug)]
pub struct Source {
    pub kind: EventKind,
    /// With `per_type`, the event types the source reports, comma-separated.
    pub name: &'static str,
    /// The source reports only the types its name lists, and is attached only when one
    /// of them is wanted; otherwise it serves its whole kind.
    pub per_type: bool,
    pub required: bool,
    /// Kernel struct members (`struct.member`) its programs read that BTF may lack;
    /// without one the source is skipped, named as the reason.
    pub needs: &'static [&'static str],
    pub candidates: &'static [Candidate],
}

macro_rules! syscall_source {
    ($kind:expr, $name:literal, required: $required:expr, $enter:literal, $exit:literal) => {
        Source {
            kind: $kind,
            name: $name,
            per_type: true,
            required: $required,
            needs: &[],
            candidates: &[Candidate {
                name: "syscall tracepoints",
                attachments: &[
                    Attachment {
                        program: $enter,
                        hook: Hook::Tracepoint {
                            category: "syscalls",
                            name: $enter,
                        },
                    },
                    Attachment {
                        program: $exit,
                        hook: Hook::Tracepoint {
                            category: "syscalls",
                            name: $exit,
                        },
                    },
                ],
            }],
        }
    };
}

/// A syscall tracepoint whose program has the tracepoint's name.
const fn syscall_tracepoint(name: &'static str) -> Attachment {
    Attachment {
        program: name,
        hook: Hook::Tracepoint {
            category: "syscalls",
            name,
        },
    }
}

/// An optional source seen by an LSM hook: the BPF LSM program where the bpf LSM is
/// active, else the same program body on fentry of the `security_*` function the hook
/// runs inside, else nothing (the tracepoints keep working without it).
macro_rules! enhanced_source {
    ($kind:expr, $hook:literal, $lsm_program:literal, $fentry_program:literal, $function:literal) => {
        Source {
            kind: $kind,
            name: $hook,
            per_type: false,
            required: false,
            needs: &[],
            candidates: &[
                Candidate {
                    name: "lsm",
                    attachments: &[Attachment {
                        program: $lsm_program,
                        hook: Hook::Lsm { name: $hook },
                    }],
                },
                Candidate {
                    name: "fentry",
                    attachments: &[Attachment {
                        program: $fentry_program,
                        hook: Hook::FEntry {
                            function: $function,
                        },
                    }],
                },
            ],
        }
    };
}

pub const SOURCES: &[Source] = &[
    // The executed file as the kernel resolved it, for the exec tracepoints' events.
    // (fentry on `security_bprm_check` is not among the functions the kernel lets call
    // `bpf_d_path`.)
    Source {
        kind: EventKind::Exec,
        name: "bprm_check_security",
        per_type: false,
        required: false,
        needs: &["linux_binprm.file"],
        candidates: &[
            Candidate {
                name: "lsm with bpf_d_path",
                attachments: &[Attachment {
                    program: "lsm_bprm_check_security_d_path",
                    hook: Hook::Lsm {
                        name: "bprm_check_security",
                    },
                }],
            },
            Candidate {
                name: "lsm with dentry walk",
                attachments: &[Attachment {
                    program: "lsm_bprm_check_security",
                    hook: Hook::Lsm {
                        name: "bprm_check_security",
                    },
                }],
            },
            Candidate {
                name: "fentry with dentry walk",
                attachments: &[Attachment {
                    program: "fentry_security_bprm_check",
                    hook: Hook::FEntry {
                        function: "security_bprm_check",
                    },
                }],
            },
        ],
    },
    // Successful execs, whichever syscall made them; the syscall tracepoints save the
    // arguments and report failures.
    Source {
        kind: EventKind::Exec,
        name: "sched_process_exec",
        per_type: false,
        required: true,
        needs: &[],
        candidates: &[Candidate {
            name: "raw tracepoint",
            attachments: &[Attachment {
                program: "sched_process_exec",
                hook: Hook::RawTracepoint {
                    category: "sched",
                    name: "sched_process_exec",
                },
            }],
        }],
    },
    syscall_source!(EventKind::Exec, "execve", required: true, "sys_enter_execve", "sys_exit_execve"),
    syscall_source!(EventKind::Exec, "execveat", required: false, "sys_enter_execveat", "sys_exit_execveat"),
    Source {
        kind: EventKind::Fork,
        name: "fork",
        per_type: false,
        required: true,
        needs: &[],
        candidates: &[Candidate {
            name: "raw tracepoint",
            attachments: &[Attachment {
                program: "sched_process_fork",
                hook: Hook::RawTracepoint {
                    category: "sched",
                    name: "sched_process_fork",
                },
            }],
        }],
    },
    Source {
        kind: EventKind::Exit,
        name: "exit",
        per_type: false,
        required: true,
        needs: &[],
        candidates: &[Candidate {
            name: "sched tracepoint",
            attachments: &[Attachment {
                program: "sched_process_exit",
                hook: Hook::Tracepoint {
                    category: "sched",
                    name: "sched_process_exit",
                },
            }],
        }],
    },
    // The destination as the kernel copied it, for the connect tracepoints' events.
    enhanced_source!(
        EventKind::Connect,
        "socket_connect",
        "lsm_socket_connect",
        "fentry_security_socket_connect",
        "security_socket_connect"
    ),
    syscall_source!(EventKind::Connect, "connect", required: true, "sys_enter_connect", "sys_exit_connect"),
    // Opens no syscall tracepoint sees (io_uring): the program leaves opens made by the
    // traced syscalls to them, so both attach without duplicates.
    //
    // The kernel's own `d_path` first: it is what /proc shows and takes the kernel's
    // locks; kernels that refuse the helper to these programs still load the dentry
    // walk.
    Source {
        kind: EventKind::Open,
        name: "file_open",
        per_type: false,
        required: false,
        needs: &[],
        candidates: &[
            Candidate {
                name: "lsm with bpf_d_path",
                attachments: &[Attachment {
                    program: "lsm_file_open_d_path",
                    hook: Hook::Lsm { name: "file_open" },
                }],
            },
            Candidate {
                name: "lsm with dentry walk",
                attachments: &[Attachment {
                    program: "lsm_file_open",
                    hook: Hook::Lsm { name: "file_open" },
                }],
            },
            Candidate {
                name: "fentry with bpf_d_path",
                attachments: &[Attachment {
                    program: "fentry_security_file_open_d_path",
                    hook: Hook::FEntry {
                        function: "security_file_open",
                    },
                }],
            },
            Candidate {
                name: "fentry with dentry walk",
                attachments: &[Attachment {
                    program: "fentry_security_file_open",
                    hook: Hook::FEntry {
                        function: "security_file_open",
                    },
                }],
            },
        ],
    },
    syscall_source!(EventKind::Open, "openat", required: true, "sys_enter_openat", "sys_exit_openat"),
    syscall_source!(EventKind::Open, "open", required: false, "sys_enter_open", "sys_exit_open"),
    syscall_source!(EventKind::Open, "openat2", required: false, "sys_enter_openat2", "sys_exit_openat2"),
    syscall_source!(EventKind::Open, "creat", required: false, "sys_enter_creat", "sys_exit_creat"),
    // Each optional: an architecture without the legacy forms (`symlink`, `link`,
    // `dup2` on arm64) keeps the others.
    syscall_source!(EventKind::Syscall, "ptrace", required: false, "sys_enter_ptrace", "sys_exit_ptrace"),
    syscall_source!(EventKind::Syscall, "symlink", required: false, "sys_enter_symlink", "sys_exit_symlink"),
    syscall_source!(EventKind::Syscall, "symlinkat", required: false, "sys_enter_symlinkat", "sys_exit_symlinkat"),
    syscall_source!(EventKind::Syscall, "link", required: false, "sys_enter_link", "sys_exit_link"),
    syscall_source!(EventKind::Syscall, "linkat", required: false, "sys_enter_linkat", "sys_exit_linkat"),
    // Module loads: their own tracepoints; on a kernel built without module support
    // (which has none, yet the syscalls exist and fail with ENOSYS, and an attempt is
    // still worth an alert) the raw syscall tracepoints, which run on every syscall
    // and so are only the fallback.
    Source {
        kind: EventKind::Syscall,
        name: "init_module, finit_module",
        per_type: true,
        required: false,
        needs: &[],
        candidates: &[
            Candidate {
                name: "syscall tracepoints",
                attachments: &[
                    syscall_tracepoint("sys_enter_init_module"),
                    syscall_tracepoint("sys_exit_init_module"),
                    syscall_tracepoint("sys_enter_finit_module"),
                    syscall_tracepoint("sys_exit_finit_module"),
                ],
            },
            Candidate {
                name: "raw syscall tracepoints",
                attachments: &[
                    Attachment {
                        program: "raw_sys_enter_module",
                        hook: Hook::RawTracepoint {
                            category: "raw_syscalls",
                            name: "sys_enter",
                        },
                    },
                    Attachment {
                        program: "raw_sys_exit_module",
                        hook: Hook::RawTracepoint {
                            category: "raw_syscalls",
                            name: "sys_exit",
                        },
                    },
                ],
            },
        ],
    },
    syscall_source!(EventKind::Syscall, "socket", required: false, "sys_enter_socket", "sys_exit_socket"),
    syscall_source!(EventKind::Syscall, "dup", required: false, "sys_enter_dup", "sys_exit_dup"),
    syscall_source!(EventKind::Syscall, "dup2", required: false, "sys_enter_dup2", "sys_exit_dup2"),
    syscall_source!(EventKind::Syscall, "dup3", required: false, "sys_enter_dup3", "sys_exit_dup3"),
    syscall_source!(EventKind::Syscall, "setns", required: false, "sys_enter_setns", "sys_exit_setns"),
    syscall_source!(EventKind::Syscall, "unshare", required: false, "sys_enter_unshare", "sys_exit_unshare"),
    syscall_source!(EventKind::Syscall, "setuid", required: false, "sys_enter_setuid", "sys_exit_setuid"),
    syscall_source!(EventKind::Syscall, "chmod", required: false, "sys_enter_chmod", "sys_exit_chmod"),
    syscall_source!(EventKind::Syscall, "fchmod", required: false, "sys_enter_fchmod", "sys_exit_fchmod"),
    syscall_source!(EventKind::Syscall, "fchmodat", required: false, "sys_enter_fchmodat", "sys_exit_fchmodat"),
    syscall_source!(EventKind::Syscall, "bpf", required: false, "sys_enter_bpf", "sys_exit_bpf"),
    syscall_source!(EventKind::Syscall, "unlink", required: false, "sys_enter_unlink", "sys_exit_unlink"),
    syscall_source!(EventKind::Syscall, "unlinkat", required: false, "sys_enter_unlinkat", "sys_exit_unlinkat"),
    syscall_source!(EventKind::Syscall, "rename", required: false, "sys_enter_rename", "sys_exit_rename"),
    syscall_source!(EventKind::Syscall, "renameat", required: false, "sys_enter_renameat", "sys_exit_renameat"),
    syscall_source!(EventKind::Syscall, "renameat2", required: false, "sys_enter_renameat2", "sys_exit_renameat2"),
    syscall_source!(EventKind::Syscall, "mkdir", required: false, "sys_enter_mkdir", "sys_exit_mkdir"),
    syscall_source!(EventKind::Syscall, "mkdirat", required: false, "sys_enter_mkdirat", "sys_exit_mkdirat"),
    syscall_source!(EventKind::Syscall, "rmdir", required: false, "sys_enter_rmdir", "sys_exit_rmdir"),
    syscall_source!(EventKind::Syscall, "userfaultfd", required: false, "sys_enter_userfaultfd", "sys_exit_userfaultfd"),
    syscall_source!(EventKind::Syscall, "memfd_create", required: false, "sys_enter_memfd_create", "sys_exit_memfd_create"),
    syscall_source!(EventKind::Syscall, "listen", required: false, "sys_enter_listen", "sys_exit_listen"),
    syscall_source!(EventKind::Syscall, "accept", required: false, "sys_enter_accept", "sys_exit_accept"),
    syscall_source!(EventKind::Syscall, "accept4", required: false, "sys_enter_accept4", "sys_exit_accept4"),
    // Traffic syscalls run often: they are attached only where a rule names them, and
    // the kernel filter judges them at entry.
    syscall_source!(EventKind::Syscall, "sendto", required: false, "sys_enter_sendto", "sys_exit_sendto"),
    syscall_source!(EventKind::Syscall, "sendmsg", required: false, "sys_enter_sendmsg", "sys_exit_sendmsg"),
    syscall_source!(EventKind::Syscall, "recvfrom", required: false, "sys_enter_recvfrom", "sys_exit_recvfrom"),
    syscall_source!(EventKind::Syscall, "recvmsg", required: false, "sys_enter_recvmsg", "sys_exit_recvmsg"),
];

impl Source {
    /// The event types a per-type source reports.
    pub fn types(&self) -> impl Iterator<Item = EventType> + '_ {
        self.name
            .split(", ")
            .filter(|_| self.per_type)
            .filter_map(EventType::from_name)
    }

    /// Is the source needed for this interest?
    pub fn serves(&self, interest: Interest) -> bool {
        if self.per_type {
            self.types().any(|t| interest.wants(t))
        } else {
            interest.kinds().contains(self.kind)
        }
    }
}

/// What happened to one source at start-up.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    pub kind: &'static str,
    pub source: &'static str,
    pub required: bool,
    /// The candidate that attached, if any.
    pub chosen: Option<&'static str>,
    pub hooks: Vec<String>,
    /// Why each refused candidate was refused.
    pub refused: Vec<String>,
    /// Attached by an earlier agent and adopted from the pinned recorder.
    pub adopted: bool,
}

/// Where attached programs' links go when the recorder is pinned.
pub struct Pinning<'a> {
    pub pins: &'a Pins,
    /// The links pinned so far.
    pub links: &'a mut Vec<(&'static str, PinnedLink)>,
}

/// Attaches one source: the first candidate whose programs all load and attach.
/// With `pinning`, each program's link is pinned, so that it stays attached after
/// the agent.
pub fn attach_source(
    ebpf: &mut Ebpf,
    kernel: &KernelEnv,
    source: &Source,
    mut pinning: Option<Pinning<'_>>,
) -> Result<ProbeReport> {
    let mut report = ProbeReport {
        kind: source.kind.name(),
        source: source.name,
        required: source.required,
        chosen: None,
        hooks: Vec::new(),
        refused: Vec::new(),
        adopted: false,
    };
    let absent = source
        .needs
        .iter()
        .find(|member| kernel.absent_members.contains(member));
    if let Some(member) = absent {
        report.refused.push(format!(
            "every candidate: the kernel's BTF has no `{member}`, which its programs read"
        ));
    }
    for candidate in source.candidates.iter().filter(|_| absent.is_none()) {
        match attach_candidate(ebpf, kernel, candidate, pinning.as_mut()) {
            Ok(()) => {
                report.chosen = Some(candidate.name);
                report.hooks = candidate
                    .attachments
                    .iter()
                    .map(|a| a.hook.describe())
                    .collect();
                return Ok(report);
            }
            Err(reason) => report
                .refused
                .push(format!("{}: {reason:#}", candidate.name)),
        }
    }
    if source.required {
        return Err(anyhow!(
            "cannot observe `{}` ({} events): {}; monitor needs syscall and sched tracepoints \
             (CONFIG_FTRACE_SYSCALLS) and BPF ring buffers (kernel >= 5.8)",
            source.name,
            source.kind,
            report.refused.join("; ")
        ));
    }
    Ok(report)
}

/// The source's adopted candidate: the first whose every program has a link pinned
/// by an earlier agent. Its links are taken into `links`; the programs keep running.
pub fn adopt_source(
    source: &Source,
    pins: &Pins,
    links: &mut Vec<(&'static str, PinnedLink)>,
) -> Option<ProbeReport> {
    let candidate = source
        .candidates
        .iter()
        .find(|c| c.attachments.iter().all(|a| pins.has_link(a.program)))?;
    let mut taken = Vec::new();
    for attachment in candidate.attachments {
        taken.push((attachment.program, pins.pinned_link(attachment.program)?));
    }
    links.extend(taken);
    Some(ProbeReport {
        kind: source.kind.name(),
        source: source.name,
        required: source.required,
        chosen: Some(candidate.name),
        hooks: candidate
            .attachments
            .iter()
            .map(|a| a.hook.describe())
            .collect(),
        refused: Vec::new(),
        adopted: true,
    })
}

fn attach_candidate(
    ebpf: &mut Ebpf,
    kernel: &KernelEnv,
    candidate: &Candidate,
    mut pinning: Option<&mut Pinning<'_>>,
) -> Result<()> {
    if let Some(missing) = candidate
        .attachments
        .iter()
        .find_map(|a| a.hook.missing(kernel))
    {
        return Err(anyhow!(missing));
    }
    let pinned_before = pinning.as_ref().map_or(0, |p| p.links.len());
    for attachment in candidate.attachments {
        let attached = attach_one(ebpf, kernel, attachment, pinning.is_some())
            .map_err(|err| describe_error(&err))
            .and_then(|link| match (link, pinning.as_mut()) {
                (Some(link), Some(pinning)) => pinning
                    .pins
                    .pin_link(attachment.program, link)
                    .map(|pinned| pinning.links.push((attachment.program, pinned)))
                    .map_err(|err| format!("{err:#}")),
                _ => Ok(()),
            });
        if let Err(err) = attached {
            // Half a pair would save syscall arguments nobody consumes.
            if let Some(pinning) = pinning.as_mut() {
                for (_, link) in pinning.links.drain(pinned_before..) {
                    if let Ok(link) = link.unpin() {
                        drop(link);
                    }
                }
            }
            for attached in candidate.attachments {
                unload(ebpf, attached);
            }
            return Err(anyhow!("{} refused: {err}", attachment.hook.describe()));
        }
    }
    Ok(())
}

fn unload(ebpf: &mut Ebpf, attachment: &Attachment) {
    let Some(program) = ebpf.program_mut(attachment.program) else {
        return;
    };
    let _ = match attachment.hook {
        Hook::Tracepoint { .. } => <&mut TracePoint>::try_from(program).map(|p| p.unload().ok()),
        Hook::RawTracepoint { .. } => {
            <&mut RawTracePoint>::try_from(program).map(|p| p.unload().ok())
        }
        Hook::Lsm { .. } => <&mut Lsm>::try_from(program).map(|p| p.unload().ok()),
        Hook::FEntry { .. } => <&mut FEntry>::try_from(program).map(|p| p.unload().ok()),
    };
}

/// Loads and attaches one program. With `take`, its link is taken from the program
/// and returned (to be pinned); otherwise the program keeps it, and the link ends
/// with the program.
fn attach_one(
    ebpf: &mut Ebpf,
    kernel: &KernelEnv,
    attachment: &Attachment,
    take: bool,
) -> Result<Option<FdLink>, ProgramError> {
    let program = ebpf
        .program_mut(attachment.program)
        .ok_or(ProgramError::UnexpectedProgramType)?;
    // A tracepoint's link is a bpf link (pinnable) wherever the recorder pins: it
    // pins only when the kernel has perf links (5.15), see `recorder`.
    let invalid =
        |err: aya::programs::links::LinkError| ProgramError::IOError(io::Error::other(err));
    let link = match attachment.hook {
        Hook::Tracepoint { category, name } => {
            let program: &mut TracePoint = program.try_into()?;
            program.load()?;
            let id = program.attach(category, name)?;
            take.then(|| FdLink::try_from(program.take_link(id)?).map_err(invalid))
                .transpose()?
        }
        Hook::RawTracepoint { name, .. } => {
            let program: &mut RawTracePoint = program.try_into()?;
            program.load()?;
            let id = program.attach(name)?;
            take.then(|| program.take_link(id).map(FdLink::from))
                .transpose()?
        }
        Hook::Lsm { name } => {
            let program: &mut Lsm = program.try_into()?;
            program.load(name, &kernel_btf(kernel)?)?;
            let id = program.attach()?;
            take.then(|| program.take_link(id).map(FdLink::from))
                .transpose()?
        }
        Hook::FEntry { function } => {
            let program: &mut FEntry = program.try_into()?;
            program.load(function, &kernel_btf(kernel)?)?;
            let id = program.attach()?;
            take.then(|| program.take_link(id).map(FdLink::from))
                .transpose()?
        }
    };
    Ok(link)
}

/// The kernel BTF that LSM and fentry programs name their attach point in; parsed per
/// use, as only a few programs need it and it is large.
fn kernel_btf(kernel: &KernelEnv) -> Result<aya::Btf, ProgramError> {
    aya::Btf::parse_file(&kernel.btf, aya::Endianness::default()).map_err(ProgramError::Btf)
}

/// The verifier log is what tells a kernel mismatch apart from a bug; keep its tail.
fn describe_error(err: &ProgramError) -> String {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            // An EPERM for a whole program type (LSM, fentry) comes with no log.
            if tail.iter().all(|l| l.trim().is_empty()) {
                return format!("load failed ({io_error}); the verifier left no log");
            }
            format!("load failed ({io_error}); verifier: {}", tail.join(" | "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str) -> &'static Source {
        SOURCES.iter().find(|s| s.name == name).expect("source")
    }

    /// A per-type source names event types of its own kind, each known.
    #[test]
    fn per_type_sources_name_their_types() {
        for source in SOURCES.iter().filter(|s| s.per_type) {
            let names: Vec<&str> = source.name.split(", ").collect();
            let types: Vec<EventType> = source.types().collect();
            assert_eq!(types.len(), names.len(), "{}", source.name);
            assert!(
                types.iter().all(|t| t.kind() == source.kind),
                "{}",
                source.name
            );
        }
        let only_sendto: Interest = [EventType::Sendto].into_iter().collect();
        assert!(source("sendto").serves(only_sendto));
        assert!(!source("recvfrom").serves(only_sendto));
        assert!(!source("openat").serves(only_sendto));
    }

    /// Every kind has a source, and every event type a record names by its syscall is
    /// reported by a tracepoint of that kind's sources: a type added to the table
    /// without its programs fails here.
    #[test]
    fn the_table_covers_every_kind_and_syscall_type() {
        let hooks_of = |kind: EventKind| -> Vec<String> {
            SOURCES
                .iter()
                .filter(|s| s.kind == kind)
                .flat_map(|s| s.candidates.iter())
                .flat_map(|c| c.attachments.iter())
                .map(|a| a.hook.describe())
                .collect()
        };
        for &kind in EventKind::ALL.iter().filter(|k| k.from_kernel()) {
            assert!(!hooks_of(kind).is_empty(), "no source for {kind}");
        }
        for &t in crate::event::EventType::ALL {
            if let Some(tracepoint) = t.exit_tracepoint() {
                assert!(
                    hooks_of(t.kind()).iter().any(|h| h == tracepoint),
                    "no source attaches {tracepoint} for {t}"
                );
            }
        }
    }
}
