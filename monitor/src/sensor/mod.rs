//! Loading the kernel programs, attaching them, and reading what they produce.
pub mod btf;
pub mod decode;
mod filter;
pub mod probes;
pub mod reader;
pub mod tracefs;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
};
use monitor_common::{DEFAULT_RING_BUFFER_BYTES, KernelOffsets, stat};
use serde::Serialize;

use crate::{event::EventKind, kinds::Interest, signals::StoppedDuringStart};
pub use probes::ProbeReport;
pub use reader::EventReader;

/// The kernel programs, built by `build.rs` from `monitor-ebpf`.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

#[derive(Clone, Debug)]
pub struct SensorConfig {
    pub interest: Interest,
    /// Ring buffer size in bytes: a power of two, at least one page.
    pub ring_buffer_bytes: u32,
    /// Kernel BTF to take struct offsets from.
    pub btf: PathBuf,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            interest: Interest::all(),
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            btf: PathBuf::from(btf::VMLINUX_BTF),
        }
    }
}

pub struct Sensor {
    ebpf: Ebpf,
    probes: Vec<ProbeReport>,
    stats: PerCpuArray<MapData, u64>,
    kernel: probes::KernelEnv,
    /// Per entry of `probes::SOURCES`: tried already (attached or skipped), whether or
    /// not its kind is switched on now.
    tried: Vec<bool>,
}

/// Kernel-side counters of one event kind, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindCounters {
    pub sent: u64,
    pub dropped: u64,
    pub errors: u64,
    /// Let go by the kernel filter.
    pub filtered: u64,
}

impl Sensor {
    /// Checks the prerequisites, loads the programs with this kernel's offsets and
    /// attaches the sources of the requested kinds.
    pub fn start(config: &SensorConfig) -> Result<Self> {
        Self::start_unless(config, &AtomicBool::new(false))
    }

    /// What a start needs that is quick to check (root, the programs built in, a valid
    /// ring buffer size, the kernel's BTF): each failure is one line that says what to
    /// do, before anything else starts or logs.
    pub fn check_prerequisites(config: &SensorConfig) -> Result<()> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(anyhow!(
                "monitor must run as root: loading eBPF programs needs CAP_BPF, CAP_PERFMON \
                 and CAP_SYS_ADMIN (try `sudo monitor ...`)"
            ));
        }
        if PROGRAMS.is_empty() {
            return Err(anyhow!(
                "this binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild \
                 it with `cargo xtask build`"
            ));
        }
        validate_ring_buffer_size(config.ring_buffer_bytes)?;
        btf::ensure_present(&config.btf)
    }

    /// [`Sensor::start`], given up between its steps (each source attached is one)
    /// once `stop` is set: the error is then [`StoppedDuringStart`], and whatever was
    /// attached is detached as the half-made sensor is dropped.
    pub fn start_unless(config: &SensorConfig, stop: &AtomicBool) -> Result<Self> {
        let check = || -> Result<()> {
            if stop.load(Ordering::Relaxed) {
                Err(StoppedDuringStart.into())
            } else {
                Ok(())
            }
        };
        Self::check_prerequisites(config)?;
        raise_memlock_limit();
        check()?;
        let began = std::time::Instant::now();
        let offsets = btf::KernelLayout::open(&config.btf)?.offsets()?;
        let layout_took = began.elapsed();
        // Parsing BTF takes tens of MiB that are free again now; hand them back so the
        // daemon's resident size reflects what it keeps.
        // SAFETY: malloc_trim only releases free heap pages.
        unsafe { libc::malloc_trim(0) };
        check()?;
        let tracefs = tracefs::ensure_mounted()?;
        let prepared_at = std::time::Instant::now();
        let mut ebpf = load_object(&offsets, config.ring_buffer_bytes)?;
        let prepare_took = prepared_at.elapsed();
        forward_kernel_logs(&mut ebpf);

        let stats = PerCpuArray::try_from(ebpf.take_map("STATS").context("map STATS missing")?)?;
        let mut sensor = Self {
            ebpf,
            probes: Vec::new(),
            stats,
            kernel: probes::KernelEnv::new(&tracefs, &config.btf).with_absent_members(&offsets),
            tried: vec![false; probes::SOURCES.len()],
        };
        let attached_at = std::time::Instant::now();
        sensor.attach_interest(config.interest, stop)?;
        tracing::info!(
            "sensor start-up: kernel layout from BTF in {} ms, maps and programs prepared in \
             {} ms, {} sources loaded and attached in {} ms",
            layout_took.as_millis(),
            prepare_took.as_millis(),
            sensor.probes.len(),
            attached_at.elapsed().as_millis()
        );
        Ok(sensor)
    }

    /// Switches the kernel's capture to exactly the kinds of `interest`, attaching the
    /// sources it needs that were not attached before. A kind switched off stays
    /// attached and returns at its first check, so switching it on again later loses
    /// nothing to attaching; a syscall source nothing wanted is never attached, so a
    /// busy syscall no rule names costs nothing.
    pub fn set_interest(&mut self, interest: Interest) -> Result<()> {
        self.attach_interest(interest, &AtomicBool::new(false))
    }

    fn attach_interest(&mut self, interest: Interest, stop: &AtomicBool) -> Result<()> {
        for (i, source) in probes::SOURCES.iter().enumerate() {
            if self.tried[i] || !source.serves(interest) {
                continue;
            }
            if stop.load(Ordering::Relaxed) {
                return Err(StoppedDuringStart.into());
            }
            self.tried[i] = true;
            let report = probes::attach_source(&mut self.ebpf, &self.kernel, source)?;
            match report.chosen {
                Some(chosen) => tracing::info!(
                    kind = report.kind,
                    source = report.source,
                    "attached {chosen}: {}",
                    report.hooks.join(", ")
                ),
                None => tracing::warn!(
                    kind = report.kind,
                    source = report.source,
                    "optional source skipped: {}",
                    report.refused.join("; ")
                ),
            }
            self.probes.push(report);
        }
        let kinds = interest.kinds();
        self.switch_kinds(|kind| kinds.contains(kind))
    }

    fn switch_kinds(&mut self, on: impl Fn(EventKind) -> bool) -> Result<()> {
        let mut switches: Array<_, u32> = Array::try_from(
            self.ebpf
                .map_mut("KIND_ENABLED")
                .context("map KIND_ENABLED missing")?,
        )?;
        for &kind in EventKind::ALL {
            switches.set(kind.id() as u32, u32::from(on(kind)), 0)?;
        }
        Ok(())
    }

    pub fn probes(&self) -> &[ProbeReport] {
        &self.probes
    }

    /// The ring buffer reader; can be taken once.
    pub fn take_reader(&mut self) -> Result<EventReader> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .context("the event reader was already taken")?;
        EventReader::new(RingBuf::try_from(map)?)
    }

    /// Kernel counters per kind, summed over CPUs.
    pub fn counters(&self) -> Result<Vec<(EventKind, KindCounters)>> {
        let mut out = Vec::new();
        for &kind in EventKind::ALL {
            let sum = |which: u32| -> Result<u64> {
                let per_cpu = self.stats.get(&stat::index(kind.id(), which), 0)?;
                Ok(per_cpu.iter().sum())
            };
            out.push((
                kind,
                KindCounters {
                    sent: sum(stat::SENT)?,
                    dropped: sum(stat::DROPPED)?,
                    errors: sum(stat::ERRORS)?,
                    filtered: sum(stat::FILTERED)?,
                },
            ));
        }
        Ok(out)
    }

    /// Switches every kind off: the programs return at their first check from now on,
    /// so a stop is not chased by a storm while the programs are detached (which takes
    /// the kernel a grace period per program).
    pub fn quiesce(&mut self) -> Result<()> {
        self.switch_kinds(|_| false)
    }

    /// Detaches every program so no new records arrive; what is already in the ring
    /// buffer can still be drained.
    pub fn detach(&mut self) {
        for (_, program) in self.ebpf.programs_mut() {
            let _ = match program {
                aya::programs::Program::TracePoint(p) => p.unload(),
                aya::programs::Program::RawTracePoint(p) => p.unload(),
                aya::programs::Program::Lsm(p) => p.unload(),
                aya::programs::Program::FEntry(p) => p.unload(),
                _ => Ok(()),
            };
        }
    }
}

/// The programs' rare warnings (aya-log) go to our log. Needs a tokio runtime; without
/// one (or without the log map) the warnings are only counted, as every error is.
fn forward_kernel_logs(ebpf: &mut Ebpf) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(err) => {
            tracing::debug!("kernel log forwarding unavailable: {err}");
            return;
        }
    };
    // SAFETY: the logger owns its map fd and keeps it open for its whole life.
    let Ok(mut logger) = (unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    }) else {
        return;
    };
    runtime.spawn(async move {
        while let Ok(mut guard) = logger.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

/// This architecture's numbers of `init_module` and `finit_module`, for the programs
/// that find them among all syscalls (see the probe table's module source).
const MODULE_SYSCALL_NRS: [u64; 2] = [libc::SYS_init_module as u64, libc::SYS_finit_module as u64];

/// Creates the maps and prepares (but does not load) the programs, with this
/// kernel's offsets and the agent's pid patched in.
fn load_object(offsets: &KernelOffsets, ring_buffer_bytes: u32) -> Result<Ebpf> {
    let agent_tgid = std::process::id();
    EbpfLoader::new()
        .override_global("OFFSETS", offsets, true)
        .override_global("AGENT_TGID", &agent_tgid, true)
        .override_global("MODULE_SYSCALL_NRS", &MODULE_SYSCALL_NRS, true)
        .map_max_entries("EVENTS", ring_buffer_bytes)
        .load(PROGRAMS)
        .context("loading the eBPF object")
}

fn validate_ring_buffer_size(bytes: u32) -> Result<()> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
    if bytes < page || !bytes.is_power_of_two() {
        return Err(anyhow!(
            "ring buffer size {bytes} is invalid: it must be a power of two and at least one \
             page ({page} bytes), e.g. 16777216"
        ));
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones charge the
/// cgroup, and some hosts (these CI machines among them) forbid raising the limit, so
/// a failure is only worth a warning.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit pointer for the call's duration.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!(
            "could not raise RLIMIT_MEMLOCK ({}); fine on kernels >= 5.11",
            std::io::Error::last_os_error()
        );
    }
}
