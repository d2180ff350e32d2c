//! Maps and load-time constants shared by all programs.
use aya_ebpf::{
    macros::map,
    maps::{
        Array, HashMap, LruHashMap, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
};
use monitor_common::{
    DEFAULT_RING_BUFFER_BYTES, DenySlot, KIND_SLOTS, KernelOffsets, KillSlot, KillWindow,
    KindFilter, deny, filter, kill, stat,
};

use crate::record::Scratch;

/// Records for the agent. Its size is set by the agent at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BUFFER_BYTES, 0);

/// Per-kind enable switches (index = kind id, non-zero = on), written by the agent.
#[map]
pub static KIND_ENABLED: Array<u32> = Array::with_max_entries(KIND_SLOTS, 0);

/// Per-kind, per-CPU counters: sent, dropped, errors (see `monitor_common::stat`).
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::SLOTS, 0);

/// Where a record is assembled before it is copied into the ring buffer: records are
/// variable-sized and too large for the 512-byte BPF stack.
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Syscall arguments saved at entry, consumed at exit.
#[map]
pub static PENDING_EXEC: LruHashMap<u32, crate::process::PendingExec> =
    LruHashMap::with_max_entries(8192, 0);
#[map]
pub static PENDING_OPEN: LruHashMap<u64, crate::file::PendingOpen> =
    LruHashMap::with_max_entries(16384, 0);
/// The file an exec runs, as the LSM `bprm_check_security` hook resolved it, kept
/// for the exec's exit tracepoint. Keyed like `PENDING_EXEC`; one path per exec in
/// flight, so a few hundred entries cover every CPU.
#[map]
pub static EXEC_FILE: LruHashMap<u32, crate::process::ExecFile> =
    LruHashMap::with_max_entries(512, 0);
/// Arguments of the syscalls of `syscalls`, keyed by thread.
#[map]
pub static PENDING_SYSCALL: LruHashMap<u64, crate::syscalls::PendingSyscall> =
    LruHashMap::with_max_entries(8192, 0);
#[map]
pub static PENDING_CONNECT: LruHashMap<u64, crate::network::PendingConnect> =
    LruHashMap::with_max_entries(8192, 0);

/// When the programs last woke the agent (`bpf_ktime_get_ns`), on any CPU: shared,
/// not per CPU, so that wake-ups stay rare however many CPUs write. Races between CPUs
/// only ever cause an extra wake-up.
#[map]
pub static LAST_WAKEUP: Array<u64> = Array::with_max_entries(1, 0);

/// The kernel filter per kind, twice: entry `generation * KIND_SLOTS + kind`. The agent
/// writes the generation not in use, then switches `FILTER_GENERATION`, so a reload
/// changes every table at once.
#[map]
pub static FILTERS: Array<KindFilter> = Array::with_max_entries(2 * KIND_SLOTS, 0);
#[map]
pub static FILTER_GENERATION: Array<u32> = Array::with_max_entries(1, 0);

/// cgroup ids the agent found to be the host's (value unused): their events are in
/// the filter's host scope.
#[map]
pub static HOST_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(16384, 0);

/// Destination networks no rule can match a connect to, keyed by the generation byte
/// and the address; the value holds the scopes (bit per `filter::SCOPE_*`) for which
/// the network is excluded. Deny slots keep their networks here too, under their
/// marks (`deny::within_mark`, `deny::excluded_mark`).
#[map]
pub static EXCLUDED_V4: LpmTrie<[u8; 5], u32> = LpmTrie::with_max_entries(1024, 0);
#[map]
pub static EXCLUDED_V6: LpmTrie<[u8; 17], u32> = LpmTrie::with_max_entries(1024, 0);

/// The paths (exact, or prefixes) some rule could match, per generation and scope (see
/// `monitor_common::filter::PATH_KEY_BYTES`); the value is unused.
#[map]
pub static PATHS: LpmTrie<[u8; filter::PATH_KEY_BYTES], u8> = LpmTrie::with_max_entries(8192, 0);

/// Destination ports of connects, per generation and scope (`filter::port_key`): the
/// ones a scope admits alone, or the ones it drops (its `ports` mode says which).
#[map]
pub static PORTS: HashMap<u32, u8> = HashMap::with_max_entries(8192, 0);

/// The last components (file names) some rule could match, keyed like `PATHS` (an
/// exact name with its NUL).
#[map]
pub static NAMES: LpmTrie<[u8; filter::PATH_KEY_BYTES], u8> = LpmTrie::with_max_entries(8192, 0);

/// Where an open's path is read and looked up at syscall entry: a path-table key is
/// too large for the stack.
#[map]
pub static PATH_PROBE: PerCpuArray<crate::filter::PathProbe> = PerCpuArray::with_max_entries(2, 0);

/// The in-kernel kills (see `monitor_common::kill`): the slots, how many are active
/// (entry 0; 0 skips the rest), and each response's window for its cap.
#[map]
pub static KILL_SLOTS: Array<KillSlot> = Array::with_max_entries(kill::SLOTS as u32, 0);
#[map]
pub static KILLS_ACTIVE: Array<u32> = Array::with_max_entries(1, 0);
#[map]
pub static KILL_WINDOWS: Array<KillWindow> = Array::with_max_entries(kill::SLOTS as u32, 0);
/// Where an open's exit reads its path for the kill slots.
#[map]
pub static KILL_PROBE: PerCpuArray<Key<[u8; filter::PATH_KEY_BYTES]>> =
    PerCpuArray::with_max_entries(1, 0);
/// Where an open's verdict is handed to its record (see `kill::judge_open`).
#[map]
pub static KILL_VERDICT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The in-kernel denies (see `monitor_common::deny`): the slots, and how many are
/// active (entry 0; 0 lets every connect through at once). Their networks and ports
/// are in the filter's network and port tables, under the slots' marks.
#[map]
pub static DENY_SLOTS: Array<DenySlot> = Array::with_max_entries(deny::SLOTS as u32, 0);
#[map]
pub static DENIES_ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// cgroup ids the agent found to be containers': a kill slot scoped to containers
/// acts only in these (a cgroup in neither table is not judged by any slot).
#[map]
pub static CONTAINER_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(16384, 0);

/// Task names (comm, NUL-padded) no kill acts on: the container runtimes, kubelet,
/// and the processes the settings exempt.
#[map]
pub static EXEMPT_COMMS: HashMap<[u8; 16], u8> = HashMap::with_max_entries(256, 0);

/// Entry 0: the reading agent's thread group id (0 while none reads); its syscalls
/// are not reported (they would feed back into its own event stream). A map, not a
/// load-time constant: a recorder pinned across restarts serves agent after agent.
/// Entry 1 is the agents' own: the drops the last agent had seen.
#[map]
pub static AGENT: Array<u64> = Array::with_max_entries(2, 0);

/// Kernel struct offsets for the running kernel, computed by the agent from BTF.
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
    let cgroup = unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() };
    if unsafe { HOST_CGROUPS.get(&cgroup) }.is_some() {
        Some(kill::SCOPE_HOST)
    } else if unsafe { CONTAINER_CGROUPS.get(&cgroup) }.is_some() {
        Some(kill::SCOPE_CONTAINER)
    } else {
        None
    }
}

#[inline(always)]
pub fn count(kind: u16, which: u32) {
    if let Some(counter) = STATS.get_ptr_mut(stat::index(kind, which)) {
        unsafe { *counter += 1 };
    }
}

/// What a hook's entry point returns: 0 (hooks never deny), after counting a failure
/// of its inner function as an error of `kind`.
#[inline(always)]
pub fn counted(kind: u16, result: Result<(), i64>) -> i32 {
    if result.is_err() {
        count(kind, stat::ERRORS);
    }
    0
}
