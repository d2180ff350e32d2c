//! The kernel filter (see `monitor_common::filter`): which scope an event is in and
//! what that scope admits, looked up once per event before any expensive work.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_probe_read_kernel, bpf_probe_read_user_str,
    },
    macros::map,
    maps::{
        Array, HashMap, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
};
use monitor_common::{KIND_SLOTS, KindFilter, ScopeFilter, filter};

use crate::maps::HOST_CGROUPS;

/// The kernel filter per kind, twice: entry `generation * KIND_SLOTS + kind`. The agent
/// writes the generation not in use, then switches `FILTER_GENERATION`, so a reload
/// changes every table at once.
#[map]
pub static FILTERS: Array<KindFilter> = Array::with_max_entries(2 * KIND_SLOTS, 0);
#[map]
pub static FILTER_GENERATION: Array<u32> = Array::with_max_entries(1, 0);

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
pub static PATH_PROBE: PerCpuArray<PathProbe> = PerCpuArray::with_max_entries(2, 0);

/// A path-table key being built, with room for the word-wise scan to read past the
/// key's last byte, and the scan's state.
#[repr(C)]
pub struct PathProbe {
    key: Key<[u8; filter::PATH_KEY_BYTES]>,
    _slack: [u8; 16],
    scan: Scan,
}

/// What the scan carries from one word to the next. It lives in map memory, re-read
/// each step, never in a register: the verifier does not track values loaded from
/// map memory, so the steps of two different paths look alike to it and it can prune
/// one (see `record`); tracked in registers, every path's step had to be verified
/// apart (more than the 1M-instruction budget).
#[repr(C)]
struct Scan {
    /// The previous word's last byte was a `/` (0x80), or a `.` (0x80).
    slash_before: u64,
    dot_before: u64,
    last_slash: u64,
}

const SLASHES: u64 = 0x2f2f_2f2f_2f2f_2f2f;
const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// 0x80 in each byte of `w` that equals the byte of `splat`, 0 elsewhere (exact: no
/// borrow crosses bytes).
#[inline(always)]
fn bytes_equal(w: u64, splat: u64) -> u64 {
    let x = w ^ splat;
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// The scope filter that applies to the current task's event of `kind`; `None` when
/// the kind is not filtered.
#[derive(Clone, Copy)]
pub struct Applies {
    pub admits: ScopeFilter,
    scope: usize,
    generation: u8,
}

#[inline(always)]
pub fn applies(kind: u16) -> Option<Applies> {
    let generation = *FILTER_GENERATION.get(0)? & 1;
    let kind_filter = FILTERS.get(generation * KIND_SLOTS + kind as u32)?;
    if kind_filter.active == 0 {
        return None;
    }
    // SAFETY: a BPF helper without memory arguments.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: only whether the cgroup is listed is checked; the value is never read.
    let scope = if unsafe { HOST_CGROUPS.get(&cgroup) }.is_some() {
        filter::SCOPE_HOST
    } else {
        filter::SCOPE_OTHER
    };
    Some(Applies {
        admits: kind_filter.scopes[scope & 1],
        scope: scope & 1,
        generation: generation as u8,
    })
}

impl Applies {
    /// Could a rule of this scope match an open of the user path at `path`? Only
    /// absolute paths whose bytes are their `fd.name` are judged (see
    /// `filter::path_needs_agent`, which this follows a word at a time); the rest pass.
    #[inline(always)]
    pub fn admits_path(&self, path: u64) -> bool {
        if self.admits.paths & filter::PATHS_BOUNDED == 0 {
            return true;
        }
        let Some(probe) = PATH_PROBE.get_ptr_mut(0) else {
            return true;
        };
        // SAFETY: a per-CPU map value, valid for the program's run; slot 0 is this
        // function's alone (`admits_name` takes 1); other CPUs have copies of their own.
        let probe = unsafe { &mut *probe };
        probe.key.data[0] = self.generation;
        probe.key.data[1] = self.scope as u8;
        // SAFETY: PATH_KEY_HEADER is less than the PATH_KEY_BYTES of the key's data.
        let text = unsafe { probe.key.data.as_mut_ptr().add(filter::PATH_KEY_HEADER) };
        // SAFETY: the helper checks the source address (a bad one fails the read); it
        // writes at most MAX_FILTER_PATH bytes at `text`: the rest of the key's data.
        let n = unsafe {
            bpf_probe_read_user_str(
                text as *mut c_void,
                filter::MAX_FILTER_PATH as u32,
                path as *const c_void,
            )
        };
        // Empty, unreadable, or perhaps cut short.
        if n <= 1 || n as usize >= filter::MAX_FILTER_PATH {
            return true;
        }
        let len = (n - 1) as usize & 0xff;
        let Some(last_slash) = judged(text, len, &mut probe.scan) else {
            return true;
        };
        probe.key.prefix_len = (8 * (filter::PATH_KEY_HEADER + len + 1)) as u32;
        if PATHS.get(&probe.key).is_some() {
            return true;
        }
        self.admits.paths & filter::PATHS_NAMES != 0 && self.admits_name(text, len, last_slash)
    }

    /// Is the last component of the path at `text` (after `last_slash`) in the name
    /// table?
    #[inline(always)]
    fn admits_name(&self, text: *const u8, len: usize, last_slash: usize) -> bool {
        let Some(probe) = PATH_PROBE.get_ptr_mut(1) else {
            return true;
        };
        // SAFETY: a per-CPU map value, valid for the program's run; slot 1 is this
        // function's alone (the caller holds 0); other CPUs have copies of their own.
        let probe = unsafe { &mut *probe };
        probe.key.data[0] = self.generation;
        probe.key.data[1] = self.scope as u8;
        // The name and its NUL.
        let name_len = (len - last_slash) & 0xff;
        // SAFETY: the helper checks the source (a bad address fails the read); it writes at
        // most 255 bytes after the header: the key's 254 bytes left and the `_slack` after.
        let copied = unsafe {
            bpf_probe_read_kernel(
                probe.key.data.as_mut_ptr().add(filter::PATH_KEY_HEADER) as *mut c_void,
                name_len as u32,
                text.add((last_slash + 1) & 0xff) as *const c_void,
            )
        };
        if copied != 0 {
            return true;
        }
        probe.key.prefix_len = (8 * (filter::PATH_KEY_HEADER + name_len)) as u32;
        NAMES.get(&probe.key).is_some()
    }

    /// Could a rule of this scope match a connect to `port`?
    #[inline(always)]
    pub fn admits_port(&self, port: u16) -> bool {
        let mode = self.admits.ports;
        if mode == 0 {
            return true;
        }
        let key = filter::port_key(self.generation, self.scope as u8, port);
        // SAFETY: only whether the port is listed is checked; the value is never read.
        let listed = unsafe { PORTS.get(&key) }.is_some();
        if mode == filter::PORTS_ONLY {
            listed
        } else {
            !listed
        }
    }

    /// Is the destination in a network no rule of this scope can match? An IPv4
    /// address mapped into IPv6 is also checked as IPv4, as the rules compare it.
    #[inline(always)]
    pub fn excludes_address(&self, family: u16, addr: &[u8; 16]) -> bool {
        let scope_bit = 1u32 << self.scope;
        let v4 = |a: [u8; 4]| {
            let key = Key::new(
                filter::NET_KEY_GENERATION_BITS + 32,
                [self.generation, a[0], a[1], a[2], a[3]],
            );
            matches!(EXCLUDED_V4.get(&key), Some(scopes) if scopes & scope_bit != 0)
        };
        match family {
            2 => v4([addr[0], addr[1], addr[2], addr[3]]),
            10 => {
                let mut data = [0u8; 17];
                data[0] = self.generation;
                data[1..].copy_from_slice(addr);
                let key = Key::new(filter::NET_KEY_GENERATION_BITS + 128, data);
                if matches!(EXCLUDED_V6.get(&key), Some(scopes) if scopes & scope_bit != 0) {
                    return true;
                }
                let mapped =
                    addr[..10].iter().all(|b| *b == 0) && addr[10] == 0xff && addr[11] == 0xff;
                mapped && v4([addr[12], addr[13], addr[14], addr[15]])
            }
            _ => false,
        }
    }
}

/// Where the last `/` of the `len` bytes at `text` (followed by readable bytes) is,
/// when the path is one the tables judge (`!filter::path_needs_agent`); scanned eight
/// bytes at a time.
#[inline(always)]
fn judged(text: *const u8, len: usize, scan: &mut Scan) -> Option<usize> {
    // SAFETY: `text` is the start of the path in this CPU's path probe (a map value, valid
    // for the program's run); the reads below stay within its key and `_slack`.
    if unsafe { *text } != b'/' {
        return None;
    }
    // SAFETY: at most 255 bytes past `text`, so inside the key's data or its `_slack`.
    if len > 1 && unsafe { *text.add((len - 1) & 0xff) } == b'/' {
        return None;
    }
    let words = len.div_ceil(8);
    scan.slash_before = 0;
    scan.dot_before = 0;
    scan.last_slash = 0;
    for i in 0..filter::PATH_KEY_BYTES / 8 {
        if i >= words {
            break;
        }
        // SAFETY: `i * 8 + 8` is at most PATH_KEY_BYTES: the word ends at most 2 bytes into
        // the `_slack` after the key's data; unaligned, so read with `read_unaligned`.
        let w = unsafe { core::ptr::read_unaligned(text.add(i * 8) as *const u64) };
        let mut slash = bytes_equal(w, SLASHES);
        let mut dot = bytes_equal(w, DOTS);
        let valid = len - i * 8;
        if valid < 8 {
            let keep = (1u64 << (valid * 8)) - 1;
            slash &= keep;
            dot &= keep;
        }
        // SAFETY: pointers from references to fields of `scan`: valid and aligned. Volatile
        // so the state is loaded from map memory (see `Scan`).
        let (slash_before, dot_before) = unsafe {
            (
                core::ptr::read_volatile(&scan.slash_before),
                core::ptr::read_volatile(&scan.dot_before),
            )
        };
        // Byte k followed by byte k+1: `//`, `/.`, `..`.
        let next_slash = slash >> 8;
        let next_dot = dot >> 8;
        let pairs = (slash & (next_slash | next_dot)) | (dot & next_dot);
        let across = (slash_before & (slash | dot) & 0x80) | (dot_before & dot & 0x80);
        if pairs | across != 0 {
            return None;
        }
        // SAFETY: pointers from references to fields of `scan`: valid and aligned.
        unsafe {
            if slash != 0 {
                core::ptr::write_volatile(
                    &mut scan.last_slash,
                    (i * 8 + highest_byte(slash)) as u64,
                );
            }
            core::ptr::write_volatile(&mut scan.slash_before, slash >> 56);
            core::ptr::write_volatile(&mut scan.dot_before, dot >> 56);
        }
    }
    // SAFETY: a pointer from a reference to a field of `scan`: valid and aligned.
    Some(unsafe { core::ptr::read_volatile(&scan.last_slash) } as usize & 0xff)
}

/// The index of the highest byte of `mask` that has its top bit set (`mask` != 0, only
/// top bits set).
#[inline(always)]
fn highest_byte(mask: u64) -> usize {
    let mut at = 0;
    let mut m = mask >> 7;
    // Bits 0, 8, ..., 56 may be set: halve the span three times.
    if m >> 32 != 0 {
        at += 4;
        m >>= 32;
    }
    if m >> 16 != 0 {
        at += 2;
        m >>= 16;
    }
    if m >> 8 != 0 {
        at += 1;
    }
    at
}
