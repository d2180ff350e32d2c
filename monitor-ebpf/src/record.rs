//! Assembling a variable-sized record in per-CPU scratch memory and handing it to the
//! ring buffer.
//!
//! The verifier must be able to prove every write stays inside the scratch buffer, so
//! write positions are masked with `CURSOR_MASK` and lengths with `LEN_MASK`, and the
//! buffer is large enough for the worst case of both. The masks never change a value
//! in practice: a record's fixed part plus its bounded variable parts stays below
//! `CURSOR_MASK`.
//!
//! The write position lives in the scratch map value, not in a register, and is
//! re-read on every use. The verifier does not track values loaded from map memory, so
//! two paths through a loop that wrote different amounts look alike to it and it can
//! prune one of them; with the position in a register, every path of a 48-step path
//! walk had to be verified separately (more than the 1M-instruction budget).
use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_xadd},
    marker::PhantomData,
};

use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid,
    generated::{
        bpf_d_path, bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_ktime_get_boot_ns,
        bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
        bpf_probe_read_user_str,
    },
};
use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use monitor_common::{
    DEFAULT_RING_BUFFER_BYTES, EventHeader, Fault, KindRecord, WAKEUP_INTERVAL_NS, stat,
};

const CURSOR_MASK: usize = 0x3FFF;
const LEN_MASK: usize = 0x1FFF;
const SCRATCH_BYTES: usize = CURSOR_MASK + 1 + LEN_MASK + 1;

/// Records in the making a CPU can hold at once. Two: a program preempted mid-record
/// (LSM hooks and fentry run with only migration disabled on preemptible kernels, and
/// so do syscall tracepoints on PREEMPT_RT) and the one that runs meanwhile. A third
/// finds none and drops its record as [`Fault::ScratchBusy`].
const SCRATCH_SLOTS: u32 = 2;

/// Records for the agent. Its size is set by the agent at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BUFFER_BYTES, 0);

/// Per-kind, per-CPU counters: sent, dropped, filtered and each [`Fault`] (see
/// `monitor_common::stat`).
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::SLOTS, 0);

/// Where records are assembled before they are copied into the ring buffer: records
/// are variable-sized and too large for the 512-byte BPF stack.
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);

/// When the programs last woke the agent (`bpf_ktime_get_ns`), on any CPU: shared,
/// not per CPU, so that wake-ups stay rare however many CPUs write. Races between CPUs
/// only ever cause an extra wake-up.
#[map]
pub static LAST_WAKEUP: Array<u64> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn count(kind: u16, which: u32) {
    if let Some(counter) = STATS.get_ptr_mut(stat::index(kind, which)) {
        // SAFETY: a per-CPU map value, valid for the whole run of the program, and no
        // other CPU writes this CPU's copy.
        unsafe { *counter += 1 };
    }
}

/// What a hook's entry point returns: 0 (hooks never deny), after counting a failure
/// of its inner function as a fault of `kind`.
#[inline(always)]
pub fn counted(kind: u16, result: Result<(), Fault>) -> i32 {
    if let Err(fault) = result {
        count(kind, stat::fault(fault));
    }
    0
}

#[repr(C, align(8))]
pub struct Scratch {
    /// How many programs hold or are taking this slot: the holder's own claim, plus
    /// any that came in while it held it (and are about to back off).
    claims: u64,
    cursor: u64,
    bytes: [u8; SCRATCH_BYTES],
}

/// Takes the slot if nobody holds it. The claim is an atomic add without a fetch
/// (`BPF_XADD`, which every kernel since 5.8 has, unlike compare-and-swap) followed by
/// a read: a program that reads 1 holds the slot, since its own claim stays counted
/// until it lets go and so any later claimant reads 2 or more. Two claimants that
/// interleave both read 2 and both back off: a record lost and counted, never two
/// writers in one slot.
#[inline(always)]
fn claim(slot: u32) -> Option<*mut Scratch> {
    let scratch = SCRATCH.get_ptr_mut(slot)?;
    // SAFETY: a per-CPU map value, valid for the whole run of the program and aligned
    // for a u64.
    let claims = unsafe { &raw mut (*scratch).claims };
    add_claims(claims, 1);
    // SAFETY: as above.
    if unsafe { core::ptr::read_volatile(claims) } == 1 {
        return Some(scratch);
    }
    add_claims(claims, u64::MAX);
    None
}

/// `*claims += n` (wrapping) in one atomic instruction, whose old value is never
/// read: that is what compiles to `BPF_XADD` rather than the fetching atomics of 5.12.
#[inline(always)]
fn add_claims(claims: *mut u64, n: u64) {
    // SAFETY: `claims` points into a live per-CPU map value (see `claim`).
    let _ = unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(claims, n) };
}

/// Whether this record wakes the agent: only the first record after a quiet
/// [`WAKEUP_INTERVAL_NS`]; the others are read by the agent's next poll (it polls
/// every millisecond while records flow, so the buffer cannot fill up between
/// polls). A wake-up per record made the writer pay for the agent's wake-up, and on
/// kernels whose syscall tracepoints run preemptibly, for the agent's run too.
#[inline(always)]
fn wakeup_flag() -> u64 {
    let Some(last) = LAST_WAKEUP.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a BPF helper without memory arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: an array map value, valid for the program's whole run; CPUs race on it, but
    // an aligned u64 load or store does not tear, and a lost update only adds a wake-up.
    unsafe {
        if now.wrapping_sub(*last) > WAKEUP_INTERVAL_NS {
            *last = now;
            BPF_RB_FORCE_WAKEUP as u64
        } else {
            BPF_RB_NO_WAKEUP as u64
        }
    }
}

/// A record in the making whose fixed part is a `T`, in a claimed scratch slot: the
/// variable data is appended through [`RecordBytes`] (which it derefs to), the fixed
/// part is written last, when its lengths are known. Only a `T` that is a kind's
/// record can be submitted.
pub struct Record<T> {
    bytes: RecordBytes,
    fixed: PhantomData<T>,
}

/// The bytes of a record in the making: its claimed scratch slot and write position.
/// Path and string helpers take this, whatever the record's fixed part.
pub struct RecordBytes {
    scratch: *mut Scratch,
    base: *mut u8,
    kind: u16,
}

impl<T: KindRecord> Record<T> {
    /// Starts a record of `T`'s kind whose fixed part is a `T`; variable data is
    /// appended after it.
    #[inline(always)]
    pub fn start() -> Result<Self, Fault> {
        Self::begin(T::KIND)
    }

    /// Copies the record into the ring buffer, counting it as sent or dropped.
    #[inline(always)]
    pub fn submit(self) {
        let size = self.len() & CURSOR_MASK;
        // SAFETY: masked with CURSOR_MASK, `size` bytes fit in the scratch buffer:
        // they are this record's claimed bytes, initialized map memory.
        let bytes = unsafe { core::slice::from_raw_parts(self.base as *const u8, size) };
        match EVENTS.output::<[u8]>(bytes, wakeup_flag()) {
            Ok(()) => count(self.kind, stat::SENT),
            Err(_) => count(self.kind, stat::DROPPED),
        }
    }
}

impl<T> Record<T> {
    /// Starts bytes in scratch memory whose fixed part is a `T`, counted as `kind`'s
    /// (a part of a later record, such as the file an exec runs). The scratch slot is
    /// this record's until it is dropped.
    #[inline(always)]
    pub fn begin(kind: u16) -> Result<Self, Fault> {
        const { assert!(core::mem::size_of::<T>() <= CURSOR_MASK) };
        let scratch = (0..SCRATCH_SLOTS)
            .find_map(claim)
            .ok_or(Fault::ScratchBusy)?;
        // SAFETY: `scratch` is the per-CPU map value `claim` returned: valid for the
        // program's run.
        let base = unsafe { (*scratch).bytes.as_mut_ptr() };
        let bytes = RecordBytes {
            scratch,
            base,
            kind,
        };
        bytes.set_cursor(core::mem::size_of::<T>());
        Ok(Self {
            bytes,
            fixed: PhantomData,
        })
    }

    /// Writes the whole fixed part.
    #[inline(always)]
    pub fn set_fixed(&self, fixed: T) {
        // SAFETY: the slot's first bytes are this record's, 8-aligned (`Scratch` is
        // `align(8)` and `bytes` follows two u64s) and larger than a `T` (checked in
        // `begin`).
        unsafe { (self.base as *mut T).write(fixed) };
    }

    /// The fixed part in place, for records too large to build on the stack. It holds
    /// whatever the slot's last record left: the caller writes every field. `T` is a
    /// plain `#[repr(C)]` record of integers, valid for any bytes.
    #[inline(always)]
    pub fn fixed_mut(&mut self) -> &mut T {
        // SAFETY: as in `set_fixed`; `&mut self` makes this the only reference to it.
        unsafe { &mut *(self.base as *mut T) }
    }

    /// The slot's bytes as one `U` that starts with the fixed part: a map value built
    /// in scratch memory (a head followed by a path) because it is too large for the
    /// stack. `U` is a plain record of integers, valid for any bytes.
    #[inline(always)]
    pub fn as_whole<U>(&self) -> &U {
        const { assert!(core::mem::size_of::<U>() <= SCRATCH_BYTES) };
        // SAFETY: the slot is this record's, 8-aligned and at least a `U` long (checked
        // above); map memory, so every byte is initialized.
        unsafe { &*(self.base as *const U) }
    }
}

impl<T> core::ops::Deref for Record<T> {
    type Target = RecordBytes;

    fn deref(&self) -> &RecordBytes {
        &self.bytes
    }
}

impl RecordBytes {
    /// Bytes written so far, fixed part included.
    #[inline(always)]
    pub fn len(&self) -> usize {
        // SAFETY: `scratch` is this record's claimed slot, a per-CPU map value valid for
        // the program's run; no one else writes its cursor while the claim is held.
        unsafe { core::ptr::read_volatile(&(*self.scratch).cursor) as usize }
    }

    #[inline(always)]
    fn set_cursor(&self, cursor: usize) {
        // SAFETY: as in `len`.
        unsafe { core::ptr::write_volatile(&mut (*self.scratch).cursor, cursor as u64) };
    }

    #[inline(always)]
    fn advance(&self, n: usize) {
        self.set_cursor(self.len() + n);
    }

    /// The byte at `at` (a position an earlier append reported).
    #[inline(always)]
    pub fn byte_at(&self, at: usize) -> u8 {
        // SAFETY: `at & CURSOR_MASK` is less than the scratch buffer's CURSOR_MASK + 1 +
        // LEN_MASK + 1 bytes.
        unsafe { *self.base.add(at & CURSOR_MASK) }
    }

    #[inline(always)]
    fn tail(&self) -> *mut c_void {
        // SAFETY: the cursor masked with CURSOR_MASK leaves LEN_MASK + 1 bytes after it in
        // the scratch buffer (CURSOR_MASK + 1 + LEN_MASK + 1 bytes).
        unsafe { self.base.add(self.len() & CURSOR_MASK) as *mut c_void }
    }

    /// Appends a NUL-terminated user string without its NUL; returns its length and
    /// whether it filled `max` (and so may have been cut).
    #[inline(always)]
    pub fn user_str(&self, src: u64, max: usize) -> (usize, bool) {
        // SAFETY: the helper checks the source address (a bad one fails the read) and
        // writes at most `max & LEN_MASK` bytes: `tail()` has LEN_MASK + 1 after it.
        let n = unsafe {
            bpf_probe_read_user_str(self.tail(), (max & LEN_MASK) as u32, src as *const c_void)
        };
        if n <= 1 {
            return (0, false);
        }
        let len = (n - 1) as usize;
        self.advance(len);
        (len, n as usize >= max)
    }

    /// Appends a NUL-terminated user string with its NUL (argv entries keep their
    /// separators); returns the bytes appended.
    #[inline(always)]
    pub fn user_str_with_nul(&self, src: u64, max: usize) -> usize {
        // SAFETY: the helper checks the source address (a bad one fails the read) and
        // writes at most `max & LEN_MASK` bytes: `tail()` has LEN_MASK + 1 after it.
        let n = unsafe {
            bpf_probe_read_user_str(self.tail(), (max & LEN_MASK) as u32, src as *const c_void)
        };
        if n <= 0 {
            return 0;
        }
        self.advance(n as usize);
        n as usize
    }

    /// Appends a NUL-terminated kernel string without its NUL; returns its length.
    #[inline(always)]
    pub fn kernel_str(&self, src: u64, max: usize) -> usize {
        // SAFETY: the helper checks the source address (a bad one fails the read) and
        // writes at most `max & LEN_MASK` bytes: `tail()` has LEN_MASK + 1 after it.
        let n = unsafe {
            bpf_probe_read_kernel_str(self.tail(), (max & LEN_MASK) as u32, src as *const c_void)
        };
        if n <= 1 {
            return 0;
        }
        self.advance((n - 1) as usize);
        (n - 1) as usize
    }

    /// Appends a NUL-terminated kernel string with its NUL; returns the bytes appended.
    #[inline(always)]
    pub fn kernel_str_with_nul(&self, src: u64, max: usize) -> usize {
        // SAFETY: the helper checks the source address (a bad one fails the read) and
        // writes at most `max & LEN_MASK` bytes: `tail()` has LEN_MASK + 1 after it.
        let n = unsafe {
            bpf_probe_read_kernel_str(self.tail(), (max & LEN_MASK) as u32, src as *const c_void)
        };
        if n <= 0 {
            return 0;
        }
        self.advance(n as usize);
        n as usize
    }

    /// Appends the absolute path of `path` (a `struct path *` the verifier knows as
    /// such) as `bpf_d_path` writes it, without its NUL; returns its length and
    /// whether it did not fit in `max` (then nothing is appended).
    #[inline(always)]
    pub fn d_path(&self, path: u64, max: usize) -> (usize, bool) {
        // SAFETY: the verifier checks that `path` is a `struct path *`; the helper writes
        // at most `max & LEN_MASK` bytes: `tail()` has LEN_MASK + 1 after it.
        let n = unsafe {
            bpf_d_path(
                path as *mut aya_ebpf::bindings::path,
                self.tail() as *mut _,
                (max & LEN_MASK) as u32,
            )
        };
        if n == -36 {
            // ENAMETOOLONG
            return (0, true);
        }
        if n <= 1 {
            return (0, false);
        }
        let len = (n - 1) as usize;
        self.advance(len);
        (len, false)
    }

    /// Appends `len` raw bytes of user memory; returns the bytes appended.
    #[inline(always)]
    pub fn user_bytes(&self, src: u64, len: usize) -> usize {
        self.raw_bytes(src, len, false)
    }

    /// Appends `len` raw bytes of user memory, or of kernel memory when `kernel`;
    /// returns the bytes appended.
    #[inline(always)]
    pub fn raw_bytes(&self, src: u64, len: usize, kernel: bool) -> usize {
        let len = len & LEN_MASK;
        if len == 0 {
            return 0;
        }
        // SAFETY: the helpers check the source address (a bad one fails the read) and write
        // `len` (masked with LEN_MASK) bytes: `tail()` has LEN_MASK + 1 after it.
        let ret = unsafe {
            if kernel {
                bpf_probe_read_kernel(self.tail(), len as u32, src as *const c_void)
            } else {
                bpf_probe_read_user(self.tail(), len as u32, src as *const c_void)
            }
        };
        if ret < 0 {
            return 0;
        }
        self.advance(len);
        len
    }

    /// The common header for an event of the current task.
    #[inline(always)]
    pub fn header(&self, flags: u16) -> EventHeader {
        let pid_tgid = bpf_get_current_pid_tgid();
        // SAFETY: BPF helpers without memory arguments.
        let mut header = EventHeader {
            kind: self.kind,
            flags,
            size: self.len() as u32,
            boot_ns: unsafe { bpf_ktime_get_boot_ns() },
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
            comm: [0; 16],
        };
        // SAFETY: the helper writes at most 16 bytes, the size of `header.comm`.
        unsafe { bpf_get_current_comm(header.comm.as_mut_ptr() as *mut c_void, 16) };
        header
    }
}

impl Drop for RecordBytes {
    /// Lets go of the scratch slot, whether the record was sent or abandoned.
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: `scratch` is the per-CPU map value `claim` returned; it stays valid
        // for the program's run.
        add_claims(unsafe { &raw mut (*self.scratch).claims }, u64::MAX);
    }
}
