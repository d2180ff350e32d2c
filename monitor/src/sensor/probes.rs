//! The probe table: for each event kind, the hooks that can produce it, in order of
//! preference. At start-up each candidate is checked against the running kernel and
//! the first that loads and attaches wins; what was chosen is logged and reported by
//! `monitor probes`.
use std::path::Path;

use anyhow::{Result, anyhow};
use aya::{
    Ebpf,
    programs::{ProgramError, RawTracePoint, TracePoint},
};
use serde::Serialize;

use super::tracefs::has_tracepoint;
use crate::event::EventKind;

#[derive(Clone, Copy, Debug)]
pub enum Hook {
    /// A tracefs tracepoint (`category/name`).
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// A raw tracepoint: the tracepoint's own arguments, no tracefs format parsing.
    RawTracepoint { name: &'static str },
}

impl Hook {
    pub fn describe(&self) -> String {
        match self {
            Hook::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
            Hook::RawTracepoint { name } => format!("raw_tp/{name}"),
        }
    }

    /// Raw tracepoints carry the same names as tracefs events, so tracefs tells
    /// whether either kind exists.
    fn exists(&self, tracefs: &Path) -> bool {
        match self {
            Hook::Tracepoint { category, name } => has_tracepoint(tracefs, category, name),
            Hook::RawTracepoint { name } => has_tracepoint(tracefs, "sched", name),
        }
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
    pub name: &'static str,
    pub required: bool,
    pub candidates: &'static [Candidate],
}

macro_rules! syscall_source {
    ($kind:expr, $name:literal, required: $required:expr, $enter:literal, $exit:literal) => {
        Source {
            kind: $kind,
            name: $name,
            required: $required,
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

pub const SOURCES: &[Source] = &[
    syscall_source!(EventKind::Exec, "execve", required: true, "sys_enter_execve", "sys_exit_execve"),
    syscall_source!(EventKind::Exec, "execveat", required: false, "sys_enter_execveat", "sys_exit_execveat"),
    Source {
        kind: EventKind::Fork,
        name: "fork",
        required: true,
        candidates: &[Candidate {
            name: "raw tracepoint",
            attachments: &[Attachment {
                program: "sched_process_fork",
                hook: Hook::RawTracepoint {
                    name: "sched_process_fork",
                },
            }],
        }],
    },
    Source {
        kind: EventKind::Exit,
        name: "exit",
        required: true,
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
    syscall_source!(EventKind::Connect, "connect", required: true, "sys_enter_connect", "sys_exit_connect"),
    syscall_source!(EventKind::Open, "openat", required: true, "sys_enter_openat", "sys_exit_openat"),
    syscall_source!(EventKind::Open, "open", required: false, "sys_enter_open", "sys_exit_open"),
    syscall_source!(EventKind::Open, "openat2", required: false, "sys_enter_openat2", "sys_exit_openat2"),
    syscall_source!(EventKind::Open, "creat", required: false, "sys_enter_creat", "sys_exit_creat"),
];

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
}

/// Attaches one source: the first candidate whose programs all load and attach.
pub fn attach_source(ebpf: &mut Ebpf, tracefs: &Path, source: &Source) -> Result<ProbeReport> {
    let mut report = ProbeReport {
        kind: source.kind.name(),
        source: source.name,
        required: source.required,
        chosen: None,
        hooks: Vec::new(),
        refused: Vec::new(),
    };
    for candidate in source.candidates {
        match attach_candidate(ebpf, tracefs, candidate) {
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

fn attach_candidate(ebpf: &mut Ebpf, tracefs: &Path, candidate: &Candidate) -> Result<()> {
    if let Some(missing) = candidate
        .attachments
        .iter()
        .find(|a| !a.hook.exists(tracefs))
    {
        return Err(anyhow!(
            "{} does not exist on this kernel",
            missing.hook.describe()
        ));
    }
    for attachment in candidate.attachments {
        if let Err(err) = attach_one(ebpf, attachment) {
            // Half a pair would save syscall arguments nobody consumes.
            for attached in candidate.attachments {
                unload(ebpf, attached);
            }
            return Err(anyhow!(
                "{} refused: {}",
                attachment.hook.describe(),
                describe_error(&err)
            ));
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
    };
}

fn attach_one(ebpf: &mut Ebpf, attachment: &Attachment) -> Result<(), ProgramError> {
    let program = ebpf
        .program_mut(attachment.program)
        .ok_or(ProgramError::UnexpectedProgramType)?;
    match attachment.hook {
        Hook::Tracepoint { category, name } => {
            let program: &mut TracePoint = program.try_into()?;
            program.load()?;
            program.attach(category, name)?;
        }
        Hook::RawTracepoint { name } => {
            let program: &mut RawTracePoint = program.try_into()?;
            program.load()?;
            program.attach(name)?;
        }
    }
    Ok(())
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
            format!("load failed ({io_error}); verifier: {}", tail.join(" | "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::{btf::KernelLayout, load_object};

    /// A tracefs without any events stands in for a kernel that lacks them; the
    /// programs and maps are the real ones (this needs root, like the daemon).
    fn object_and_empty_tracefs() -> (Ebpf, std::path::PathBuf) {
        let offsets = KernelLayout::open(Path::new(crate::sensor::btf::VMLINUX_BTF))
            .and_then(|layout| layout.offsets())
            .expect("kernel BTF");
        let ebpf = load_object(&offsets, 4096).expect("load object (run tests as root)");
        let tracefs =
            std::env::temp_dir().join(format!("monitor-fake-tracefs-{}", std::process::id()));
        std::fs::create_dir_all(tracefs.join("events")).unwrap();
        (ebpf, tracefs)
    }

    fn source(name: &str) -> &'static Source {
        SOURCES.iter().find(|s| s.name == name).expect("source")
    }

    #[test]
    fn a_missing_required_tracepoint_is_a_clear_error() {
        let (mut ebpf, tracefs) = object_and_empty_tracefs();
        let err = attach_source(&mut ebpf, &tracefs, source("execve")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot observe `execve` (exec events): syscall tracepoints: \
             tracepoint/syscalls/sys_enter_execve does not exist on this kernel; monitor \
             needs syscall and sched tracepoints (CONFIG_FTRACE_SYSCALLS) and BPF ring \
             buffers (kernel >= 5.8)"
        );
    }

    #[test]
    fn a_missing_optional_tracepoint_is_skipped_with_the_reason() {
        let (mut ebpf, tracefs) = object_and_empty_tracefs();
        let report = attach_source(&mut ebpf, &tracefs, source("openat2")).unwrap();
        assert_eq!(report.chosen, None);
        assert_eq!(
            report.refused,
            vec![
                "syscall tracepoints: tracepoint/syscalls/sys_enter_openat2 does not exist on this kernel"
            ]
        );
    }
}
