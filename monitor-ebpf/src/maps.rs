//! The switches every probe consults: which kinds are on, which process is the agent,
//! how the agent classified cgroups, and this kernel's struct offsets. Each probe
//! module owns its own maps; the record module owns the ring buffer and scratch; the
//! filter, kill and deny modules own their tables.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};
use monitor_common::{KIND_SLOTS, KernelOffsets, kill};

/// Per-kind enable switches (index = kind id, non-zero = on), written by the agent.
#[map]
pub static KIND_ENABLED: Array<u32> = Array::with_max_entries(KIND_SLOTS, 0);

/// cgroup ids the agent found to be the host's (value unused): their events are in
/// the filter's host scope.
#[map]
pub static HOST_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(16384, 0);

/// cgroup ids the agent found to be containers': a kill slot scoped to containers
/// acts only in these (a cgroup in neither table is not judged by any slot).
#[map]
pub static CONTAINER_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(16384, 0);

/// Entry 0: the reading agent's thread group id (0 while none reads); its syscalls
/// are not reported (they would feed back into its own event stream). A map, not a
/// load-time constant: a recorder pinned across restarts serves agent after agent.
/// Entry 1 is the agents' own: the drops the last agent had seen.
#[map]
pub static AGENT: Array<u64> = Array::with_max_entries(2, 0);

/// Kernel struct offsets for the running kernel, computed by the agent from BTF.
// SAFETY: no other symbol in the program is named `OFFSETS` (the agent patches it by that
// name).
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets::UNSET;

/// Is `kind` switched on and is `tgid` someone other than the agent?
#[inline(always)]
pub fn wanted(kind: u16, tgid: u32) -> bool {
    if matches!(AGENT.get(0), Some(agent) if *agent == u64::from(tgid)) {
        return false;
    }
    matches!(KIND_ENABLED.get(kind as u32), Some(on) if *on != 0)
}

/// The slot scope (`kill::SCOPE_*`) of the current task's cgroup, as the agent's
/// tables classify it; `None` for a cgroup it has not classified yet, where no slot
/// acts.
#[inline(always)]
pub fn current_scope() -> Option<u32> {
    // SAFETY: a BPF helper without memory arguments.
    let cgroup = unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() };
    // SAFETY: only whether each entry is there is checked; the values are never read, so a
    // concurrent change to them cannot matter.
    if unsafe { HOST_CGROUPS.get(&cgroup) }.is_some() {
        Some(kill::SCOPE_HOST)
    } else if unsafe { CONTAINER_CGROUPS.get(&cgroup) }.is_some() {
        Some(kill::SCOPE_CONTAINER)
    } else {
        None
    }
}
