//! In-kernel kills (see `monitor_common::kill`): at an open's exit, the slots whose
//! region holds the open kill the caller, unless it is one no response acts on or its
//! response reached its cap. Only rules the kernel decides exactly get slots (the
//! agent computes which), so a slot never acts where its rule would not match.
//!
//! A slot's paths are whole paths: the path as given is compared byte for byte, with
//! no scan of how it is written (the filter's scan, a second time in the exit
//! program, would take it past the verifier's budget).
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_ktime_get_ns,
        generated::{bpf_probe_read_user_str, bpf_send_signal},
    },
    macros::map,
    maps::{Array, HashMap, PerCpuArray, lpm_trie::Key},
};
use monitor_common::{KillSlot, KillWindow, filter, kill};

use crate::{filter::PATHS, maps::current_scope};

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

/// Task names (comm, NUL-padded) no kill acts on: the container runtimes, kubelet,
/// and the processes the settings exempt.
#[map]
pub static EXEMPT_COMMS: HashMap<[u8; 16], u8> = HashMap::with_max_entries(256, 0);

const SIGKILL: u32 = 9;

/// The open the exit program reports: what the slots judge.
pub struct OpenFacts {
    pub syscall: u16,
    pub flags: u64,
    pub result: i64,
    /// The path as the caller gave it (user memory, still readable at exit).
    pub path: u64,
    pub tgid: u32,
}

/// The verdict of the first slot that holds the open (`kill::verdict`), or 0.
///
/// Read back from map memory, where it is left: returned in a register, each of its
/// few dozen constant values would have the verifier check the rest of the caller
/// once per value (past the instruction budget).
#[inline(always)]
pub fn judge_open(open: &OpenFacts) -> u32 {
    let Some(verdict) = KILL_VERDICT.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a per-CPU map value, valid for the program's whole run and aligned for a u32;
    // no other CPU writes this CPU's copy.
    unsafe {
        core::ptr::write_volatile(verdict, judge(open));
        core::ptr::read_volatile(verdict)
    }
}

#[inline(always)]
fn judge(open: &OpenFacts) -> u32 {
    if !matches!(KILLS_ACTIVE.get(0), Some(n) if *n != 0) {
        return 0;
    }
    let Some(scope) = current_scope() else {
        return 0;
    };
    let Some(probe) = KILL_PROBE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a per-CPU map value, valid for the program's whole run; only this function
    // uses the map, and no other CPU writes this CPU's copy.
    let probe = unsafe { &mut *probe };
    // SAFETY: the helper checks the source (a bad address fails the read) and writes at
    // most MAX_FILTER_PATH bytes after the key's header: the rest of its data.
    let n = unsafe {
        bpf_probe_read_user_str(
            probe.data.as_mut_ptr().add(filter::PATH_KEY_HEADER) as *mut c_void,
            filter::MAX_FILTER_PATH as u32,
            open.path as *const c_void,
        )
    };
    // Read whole, NUL included (a longer path matches no slot's whole paths).
    let whole = n > 1 && (n as usize) < filter::MAX_FILTER_PATH;
    if whole {
        probe.prefix_len = (8 * (filter::PATH_KEY_HEADER + (n as usize & 0xff))) as u32;
    }
    for slot in 0..kill::SLOTS {
        let Some(s) = KILL_SLOTS.get(slot as u32) else {
            return 0;
        };
        if s.active == 0
            || s.scopes & scope == 0
            || !s.admits.admits_open_entry(open.syscall, open.flags)
            || !s.admits.admits_result(open.result)
            || s.files & kill::file_bit(open.flags) == 0
        {
            continue;
        }
        if s.admits.paths & filter::PATHS_BOUNDED != 0 {
            if !whole {
                continue;
            }
            // The slot's entries are whole paths ending in their NUL: a hit is the
            // same bytes.
            probe.data[0] = kill::path_key_mark(slot);
            probe.data[1] = 0;
            if PATHS.get(&*probe).is_none() {
                continue;
            }
        }
        return kill::verdict(slot, act(open.tgid, s.window, s.per_minute));
    }
    0
}

/// Kills the caller, or says why not.
#[inline(always)]
fn act(tgid: u32, window: u32, per_minute: u32) -> u32 {
    if tgid == 1 {
        return kill::EXEMPT;
    }
    // SAFETY: only whether the name is listed is checked; the value is never read.
    if let Ok(comm) = bpf_get_current_comm()
        && unsafe { EXEMPT_COMMS.get(&comm) }.is_some()
    {
        return kill::EXEMPT;
    }
    let Some(w) = KILL_WINDOWS.get_ptr_mut(window) else {
        return kill::FAILED;
    };
    // SAFETY: an array map value, valid for the program's whole run (array entries are
    // never deleted); CPUs racing on it can at worst pass the cap, as said below.
    let w = unsafe { &mut *w };
    // SAFETY: a BPF helper without memory arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // Not atomic: CPUs killing at the same instant may each pass a cap that has one
    // kill left, so a burst can exceed it by the CPUs that raced.
    if now.wrapping_sub(w.started_ns) >= kill::WINDOW_NS {
        w.started_ns = now;
        w.kills = 0;
    }
    if w.kills >= u64::from(per_minute) {
        return kill::CAPPED;
    }
    // SAFETY: a BPF helper without memory arguments (it signals the current task).
    if unsafe { bpf_send_signal(SIGKILL) } != 0 {
        return kill::FAILED;
    }
    w.kills += 1;
    kill::KILLED
}
