//! Loading the kernel programs, attaching them, and reading what they produce.
pub mod btf;
pub mod decode;
mod deny;
mod filter;
pub mod last_seen;
pub mod probes;
pub mod reader;
pub mod recorder;
mod ring;
pub mod tracefs;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, PerCpuArray},
    programs::links::PinnedLink,
};
use monitor_common::{DEFAULT_RING_BUFFER_BYTES, Fault, KernelOffsets, stat};
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
    /// Where the recorder (programs' links, ring buffer, tables) is pinned in bpffs,
    /// so the kernel keeps recording between agents; `None`: it ends with the agent.
    pub pin_root: Option<PathBuf>,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            interest: Interest::all(),
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            btf: PathBuf::from(btf::VMLINUX_BTF),
            pin_root: None,
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
    /// The pinned recorder this agent holds, when it pins.
    claim: Option<recorder::Claim>,
    /// The links pinned (by this agent or the one before) for the programs.
    links: Vec<(&'static str, PinnedLink)>,
    /// What the kernel counters said when this agent adopted the recorder: its
    /// totals count from there.
    baseline: BTreeMap<EventKind, KindCounters>,
    /// Records of each kind waiting in an adopted ring buffer: sent before this agent,
    /// received by it.
    backlog: BTreeMap<EventKind, u64>,
    /// Drops the kernel counted while no agent read (an adopted recorder's buffer
    /// was full).
    dropped_without_agent: u64,
    /// When this agent's own programs began to record (CLOCK_BOOTTIME).
    recording_since: u64,
    /// Nothing recorded this long before this agent (no recorder was handed over).
    unobserved: Option<last_seen::Unobserved>,
    /// The deny programs are attached to the cgroup v2 root.
    denies_attached: bool,
}

/// What the agent knows of the recorder, for its totals and metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecorderReport {
    pub pinned: bool,
    /// An earlier agent's recorder was adopted (its programs kept recording).
    pub adopted: bool,
    /// Records that waited in the adopted recorder.
    pub backlog: u64,
    /// Records the kernel dropped while no agent read (the buffer was full).
    pub dropped_without_agent: u64,
    /// Recorders of other ABIs replaced, with the records they held (lost).
    pub replaced: Vec<recorder::Replaced>,
    /// No recorder was handed over: nothing was recorded between the last agent's
    /// last note and this agent's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unobserved: Option<last_seen::Unobserved>,
}

impl RecorderReport {
    /// Records known lost between agents: dropped while no agent read, and held by
    /// replaced recorders.
    pub fn lost(&self) -> u64 {
        self.dropped_without_agent + self.replaced.iter().map(|r| r.lost).sum::<u64>()
    }
}

/// Kernel-side counters of one event kind, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindCounters {
    pub sent: u64,
    /// Lost because the ring buffer was full.
    pub dropped: u64,
    /// Let go by the kernel filter.
    pub filtered: u64,
    /// Lost before the ring buffer, by cause.
    pub faults: Faults,
}

/// Records of one kind the programs lost before the ring buffer, by cause (in
/// [`Fault::ALL`]'s order). Serialised as every cause's name and count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults([u64; Fault::ALL.len()]);

impl Faults {
    pub fn get(&self, fault: Fault) -> u64 {
        self.0[fault as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Fault, u64)> + '_ {
        Fault::ALL.iter().map(|&fault| (fault, self.get(fault)))
    }

    fn since(&self, base: &Faults) -> Faults {
        Faults(std::array::from_fn(|i| self.0[i].saturating_sub(base.0[i])))
    }
}

impl Serialize for Faults {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Fault::ALL.len()))?;
        for (fault, n) in self.iter() {
            map.serialize_entry(fault.name(), &n)?;
        }
        map.end()
    }
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
        let claim = config.pin_root.as_deref().and_then(claim_recorder);
        let prepared_at = std::time::Instant::now();
        let mut ebpf = load_object(
            &offsets,
            config.ring_buffer_bytes,
            claim.as_ref().map(|c| &c.pins),
        )?;
        let prepare_took = prepared_at.elapsed();
        forward_kernel_logs(&mut ebpf);

        let stats = PerCpuArray::try_from(ebpf.take_map("STATS").context("map STATS missing")?)?;
        let mut sensor = Self {
            ebpf,
            probes: Vec::new(),
            stats,
            kernel: probes::KernelEnv::new(&tracefs, &config.btf).with_absent_members(&offsets),
            tried: vec![false; probes::SOURCES.len()],
            claim,
            links: Vec::new(),
            baseline: BTreeMap::new(),
            backlog: BTreeMap::new(),
            dropped_without_agent: 0,
            recording_since: 0,
            unobserved: None,
            denies_attached: false,
        };
        sensor.set_agent(std::process::id(), None)?;
        if sensor.claim.as_ref().is_some_and(|c| c.adopted) {
            sensor.adopt()?;
        }
        let attached_at = std::time::Instant::now();
        if let Err(err) = sensor.attach_interest(config.interest, stop) {
            sensor.abandon_start();
            return Err(err);
        }
        sensor.recording_since = crate::clock::BootClock::boot_ns_now();
        tracing::info!(
            "sensor start-up: kernel layout from BTF in {} ms, maps and programs prepared in \
             {} ms, {} sources loaded and attached in {} ms ({} adopted)",
            layout_took.as_millis(),
            prepare_took.as_millis(),
            sensor.probes.len(),
            attached_at.elapsed().as_millis(),
            sensor.probes.iter().filter(|p| p.adopted).count()
        );
        Ok(sensor)
    }

    /// Takes over the pinned recorder's programs (they keep running: nothing is
    /// loaded or attached for them) and notes where its counters stood.
    fn adopt(&mut self) -> Result<()> {
        let Some(claim) = &self.claim else {
            return Ok(());
        };
        let dir = claim.pins.dir().to_path_buf();
        for (i, source) in probes::SOURCES.iter().enumerate() {
            if let Some(report) = probes::adopt_source(source, &claim.pins, &mut self.links) {
                self.tried[i] = true;
                self.probes.push(report);
            }
        }
        tracing::info!(
            "adopted the recorder pinned at {} ({} programs kept recording while no agent \
             ran)",
            dir.display(),
            self.links.len(),
        );
        Ok(())
    }

    /// A start given up half-way: a recorder this agent created is removed (it would
    /// record for nobody), an adopted one is left as it was found.
    fn abandon_start(&mut self) {
        let adopted = self.claim.as_ref().is_some_and(|c| c.adopted);
        if !adopted {
            self.detach();
            self.remove_recorder();
        } else {
            let _ = self.set_agent(0, None);
        }
    }

    /// Writes the reading agent's pid (its own syscalls are not recorded) and, when
    /// it leaves a recorder behind, the drops it saw.
    fn set_agent(&mut self, pid: u32, drops_seen: Option<u64>) -> Result<()> {
        let mut agent: Array<_, u64> = Array::try_from(self.map_mut("AGENT")?)?;
        agent.set(0, u64::from(pid), 0)?;
        if let Some(drops) = drops_seen {
            agent.set(1, drops, 0)?;
        }
        Ok(())
    }

    fn map_mut(&mut self, name: &str) -> Result<&mut Map> {
        self.ebpf
            .map_mut(name)
            .with_context(|| format!("map {name} missing"))
    }

    /// Whether this agent took a running recorder over (no gap before it).
    pub fn adopted(&self) -> bool {
        self.claim.as_ref().is_some_and(|c| c.adopted)
    }

    /// The last agent recorded until `previous` (CLOCK_BOOTTIME) and handed no
    /// recorder over: from then to this agent's start nothing was recorded.
    pub fn note_unobserved_since(&mut self, previous: u64) {
        if self.adopted() {
            return;
        }
        self.unobserved = last_seen::Unobserved::between(previous, self.recording_since);
        if let Some(gap) = &self.unobserved {
            tracing::warn!(
                "blind spot: nothing was recorded for {:.2} s, from the last agent's last \
                 note to this start (at most: a killed agent noted its last second); {}",
                gap.ms as f64 / 1000.0,
                if self.pinned() {
                    "the last agent removed its recorder when it stopped (stop it with \
                     --keep-recording to hand it over)"
                } else {
                    "pin the recorder (drop --no-pin) to keep recording across restarts"
                }
            );
        }
    }

    /// Whether the recorder is pinned (it can outlive this agent).
    pub fn pinned(&self) -> bool {
        self.claim.is_some()
    }

    /// The recorder's state, for the totals and metrics.
    pub fn recorder_report(&self) -> RecorderReport {
        RecorderReport {
            pinned: self.claim.is_some(),
            adopted: self.claim.as_ref().is_some_and(|c| c.adopted),
            backlog: self.backlog.values().sum(),
            dropped_without_agent: self.dropped_without_agent,
            replaced: self
                .claim
                .as_ref()
                .map(|c| c.replaced.clone())
                .unwrap_or_default(),
            unobserved: self.unobserved,
        }
    }

    /// Leaves the recorder running for the next agent: the programs stay attached,
    /// the unread records stay in the buffer. The agent's pid is cleared and the drops
    /// it saw are kept, so the next agent can tell the drops of the gap.
    pub fn keep_recording(mut self) -> Result<()> {
        let drops: u64 = self
            .lifetime_counters()?
            .iter()
            .map(|(_, c)| c.dropped)
            .sum();
        self.set_agent(0, Some(drops))?;
        // Closing the pinned links' fds leaves their pins, which hold the programs.
        self.links.clear();
        Ok(())
    }

    /// Unpins the recorder's maps and directory (after [`Sensor::detach`]).
    pub fn remove_recorder(&mut self) {
        let Some(claim) = &self.claim else {
            return;
        };
        if let Err(err) = recorder::remove(claim.pins.dir()) {
            tracing::warn!("{err:#}");
        }
        // The root goes too when no other ABI's recorder is left in it.
        let _ = std::fs::remove_dir(claim.pins.root());
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
            let pinning = self.claim.as_ref().map(|claim| probes::Pinning {
                pins: &claim.pins,
                links: &mut self.links,
            });
            let report = probes::attach_source(&mut self.ebpf, &self.kernel, source, pinning)?;
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
        let mut switches: Array<_, u32> = Array::try_from(self.map_mut("KIND_ENABLED")?)?;
        for &kind in EventKind::ALL {
            switches.set(kind.id() as u32, u32::from(on(kind)), 0)?;
        }
        Ok(())
    }

    pub fn probes(&self) -> &[ProbeReport] {
        &self.probes
    }

    /// The ring buffer reader; can be taken once. What an adopted recorder holds is
    /// counted by kind first: this agent receives it, an earlier one's counters sent
    /// it.
    pub fn take_reader(&mut self) -> Result<EventReader> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .context("the event reader was already taken")?;
        let Map::RingBuf(map) = map else {
            return Err(anyhow!("map EVENTS is not a ring buffer"));
        };
        let mut reader = EventReader::new(ring::Ring::new(map)?, !self.pinned())?;
        if self.claim.as_ref().is_some_and(|c| c.adopted) {
            let mut backlog = BTreeMap::new();
            reader.peek(|bytes| {
                if let Some(kind) = decode::kind_of(bytes) {
                    *backlog.entry(kind).or_insert(0) += 1;
                }
            });
            // The counters are read after the backlog was counted: a record written in
            // between is then sent after the baseline, not also part of the backlog.
            let mut agent: Array<_, u64> = Array::try_from(self.map_mut("AGENT")?)?;
            let seen_by_last_agent = agent.get(&1, 0)?;
            agent.set(1, 0, 0)?;
            let counters = self.lifetime_counters()?;
            let dropped: u64 = counters.iter().map(|(_, c)| c.dropped).sum();
            self.dropped_without_agent = dropped.saturating_sub(seen_by_last_agent);
            self.baseline = counters.into_iter().collect();
            let waited = backlog.values().sum::<u64>();
            if self.dropped_without_agent > 0 {
                tracing::warn!(
                    "{waited} records waited in the adopted recorder; {} were dropped while \
                     no agent read (the buffer was full: a larger --ring-buffer-bytes holds a \
                     longer gap)",
                    self.dropped_without_agent
                );
            } else {
                tracing::info!(
                    "{waited} records waited in the adopted recorder; 0 were dropped while no \
                     agent read"
                );
            }
            self.backlog = backlog;
        }
        Ok(reader)
    }

    /// Kernel counters per kind, summed over CPUs, counted from this agent's start
    /// (with an adopted recorder: from the adoption, plus the backlog it found as
    /// sent).
    pub fn counters(&self) -> Result<Vec<(EventKind, KindCounters)>> {
        let mut counters = self.lifetime_counters()?;
        for (kind, c) in &mut counters {
            let base = self.baseline.get(kind).copied().unwrap_or_default();
            c.sent =
                c.sent.saturating_sub(base.sent) + self.backlog.get(kind).copied().unwrap_or(0);
            c.dropped = c.dropped.saturating_sub(base.dropped);
            c.filtered = c.filtered.saturating_sub(base.filtered);
            c.faults = c.faults.since(&base.faults);
        }
        Ok(counters)
    }

    /// The kernel's counters as they stand, since the recorder was made.
    pub fn lifetime_counters(&self) -> Result<Vec<(EventKind, KindCounters)>> {
        let mut out = Vec::new();
        for &kind in EventKind::ALL {
            let sum = |which: u32| -> Result<u64> {
                let per_cpu = self.stats.get(&stat::index(kind.id(), which), 0)?;
                Ok(per_cpu.iter().sum())
            };
            let mut faults = Faults::default();
            for fault in Fault::ALL {
                faults.0[fault as usize] = sum(stat::fault(fault))?;
            }
            out.push((
                kind,
                KindCounters {
                    sent: sum(stat::SENT)?,
                    dropped: sum(stat::DROPPED)?,
                    filtered: sum(stat::FILTERED)?,
                    faults,
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
    /// buffer can still be drained. Pinned links are unpinned: their programs
    /// detach as the last reference goes.
    ///
    /// Each detach waits for the kernel's grace periods; on threads of their own those
    /// waits overlap, so a stop takes about one detach, not one per program.
    pub fn detach(&mut self) {
        let links = std::mem::take(&mut self.links);
        std::thread::scope(|scope| {
            for (_, link) in links {
                scope.spawn(move || {
                    if let Ok(link) = link.unpin() {
                        drop(link);
                    }
                });
            }
            for (_, program) in self.ebpf.programs_mut() {
                scope.spawn(move || {
                    let _ = match program {
                        aya::programs::Program::TracePoint(p) => p.unload(),
                        aya::programs::Program::RawTracePoint(p) => p.unload(),
                        aya::programs::Program::Lsm(p) => p.unload(),
                        aya::programs::Program::FEntry(p) => p.unload(),
                        aya::programs::Program::CgroupSockAddr(p) => p.unload(),
                        _ => Ok(()),
                    };
                });
            }
        });
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
/// kernel's offsets patched in. With `pins`, the maps the recorder shares are the
/// pinned ones (created and pinned when not there yet). Needs root, like the daemon.
pub fn load_object(
    offsets: &KernelOffsets,
    ring_buffer_bytes: u32,
    pins: Option<&recorder::Pins>,
) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    loader
        .override_global("OFFSETS", offsets, true)
        .override_global("MODULE_SYSCALL_NRS", &MODULE_SYSCALL_NRS, true)
        .map_max_entries("EVENTS", ring_buffer_bytes);
    if let Some(pins) = pins {
        for name in recorder::SHARED_MAPS {
            loader.map_pin_path(name, pins.map_path(name));
        }
    }
    loader.load(PROGRAMS).context("loading the eBPF object")
}

/// Claims the recorder pinned under `root`; without it (another agent holds the root,
/// or pinning is impossible here), the agent records unpinned, and says why.
fn claim_recorder(root: &std::path::Path) -> Option<recorder::Claim> {
    if !aya::features().bpf_perf_link() {
        tracing::warn!(
            "this kernel has no bpf links for tracepoints (Linux >= 5.15): the recorder \
             cannot be pinned and ends with the agent"
        );
        return None;
    }
    match recorder::Pins::new(root, recorder::abi()).claim() {
        Ok(claim) => {
            for replaced in &claim.replaced {
                tracing::warn!(
                    "replaced the recorder of ABI {} (this build's is {}): its {} unread \
                     records are lost, and what happened since the last agent stopped went \
                     unseen",
                    replaced.abi,
                    claim.pins.abi,
                    replaced.lost
                );
            }
            Some(claim)
        }
        Err(recorder::Unclaimed::Held(pid)) => {
            let who = pid.map_or("another agent".to_string(), |p| format!("agent {p}"));
            tracing::warn!(
                "{who} holds the recorder pinned under {}: this one records unpinned (give \
                 it its own --pin-root, or stop the other first)",
                root.display()
            );
            None
        }
        Err(recorder::Unclaimed::Failed(err)) => {
            tracing::warn!(
                "the recorder cannot be pinned under {} ({err:#}): it ends with this agent; \
                 mount bpffs there or run with --no-pin",
                root.display()
            );
            None
        }
    }
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
