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
use core::ffi::c_void;

use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid,
    generated::{
        bpf_d_path, bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_ktime_get_boot_ns,
        bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
        bpf_probe_read_user_str,
    },
};
use monitor_common::{EventHeader, KindRecord, WAKEUP_INTERVAL_NS, stat};

use crate::maps::{EVENTS, LAST_WAKEUP, SCRATCH, count};

const CURSOR_MASK: usize = 0x3FFF;
const LEN_MASK: usize = 0x1FFF;
const SCRATCH_BYTES: usize = CURSOR_MASK + 1 + LEN_MASK + 1;

#[repr(C, align(8))]
pub struct Scratch {
    cursor: u64,
    bytes: [u8; SCRATCH_BYTES],
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
    let now = unsafe { bpf_ktime_get_ns() };
    unsafe {
        if now.wrapping_sub(*last) > WAKEUP_INTERVAL_NS {
            *last = now;
            BPF_RB_FORCE_WAKEUP as u64
        } else {
            BPF_RB_NO_WAKEUP as u64
        }
    }
}

pub struct Record {
    scratch: *mut Scratch,
    base: *mut u8,
    kind: u16,
}

impl Record {
    /// Starts a record of `T`'s kind whose fixed part is a `T`; variable data is
    /// appended after it.
    #[inline(always)]
    pub fn start<T: KindRecord>() -> Option<Self> {
        Self::begin::<T>(T::KIND)
    }

    /// Starts bytes in scratch memory whose fixed part is a `T`, counted as `kind`'s
    /// (a part of a later record, such as the file an exec runs).
    #[inline(always)]
    pub fn begin<T>(kind: u16) -> Option<Self> {
        let scratch = SCRATCH.get_ptr_mut(0)?;
        let record = Self {
            scratch,
            base: unsafe { (*scratch).bytes.as_mut_ptr() },
            kind,
        };
        record.set_cursor(core::mem::size_of::<T>());
        Some(record)
    }

    /// Bytes written so far, fixed part included.
    #[inline(always)]
    pub fn len(&self) -> usize {
        unsafe { core::ptr::read_volatile(&(*self.scratch).cursor) as usize }
    }

    #[inline(always)]
    fn set_cursor(&self, cursor: usize) {
        unsafe { core::ptr::write_volatile(&mut (*self.scratch).cursor, cursor as u64) };
    }

    #[inline(always)]
    fn advance(&self, n: usize) {
        self.set_cursor(self.len() + n);
    }

    /// The fixed part, to be filled in completely by the caller (scratch memory holds
    /// the previous record's bytes).
    #[inline(always)]
    pub fn fixed<T>(&self) -> *mut T {
        self.base as *mut T
    }

    /// The byte at `at` (a position an earlier append reported).
    #[inline(always)]
    pub fn byte_at(&self, at: usize) -> u8 {
        unsafe { *self.base.add(at & CURSOR_MASK) }
    }

    #[inline(always)]
    fn tail(&self) -> *mut c_void {
        unsafe { self.base.add(self.len() & CURSOR_MASK) as *mut c_void }
    }

    /// Appends a NUL-terminated user string without its NUL; returns its length and
    /// whether it filled `max` (and so may have been cut).
    #[inline(always)]
    pub fn user_str(&self, src: u64, max: usize) -> (usize, bool) {
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
        unsafe { bpf_get_current_comm(header.comm.as_mut_ptr() as *mut c_void, 16) };
        header
    }

    /// Copies the record into the ring buffer, counting it as sent or dropped.
    #[inline(always)]
    pub fn submit(self) {
        let size = self.len() & CURSOR_MASK;
        let bytes = unsafe { core::slice::from_raw_parts(self.base as *const u8, size) };
        match EVENTS.output::<[u8]>(bytes, wakeup_flag()) {
            Ok(()) => count(self.kind, stat::SENT),
            Err(_) => count(self.kind, stat::DROPPED),
        }
    }
}
