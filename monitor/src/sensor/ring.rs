//! The consumer side of the kernel's BPF ring buffer, with a position that is only
//! published when the agent says its records are delivered ([`Ring::commit`]). A
//! record read but not yet delivered stays the kernel's: an agent killed in between
//! leaves it in the buffer for the next agent, which reads it again (the recorder
//! survives the agent when it is pinned). aya's reader publishes each record as it is
//! read, which would lose it.
//!
//! The layout is the kernel's (`kernel/bpf/ringbuf.c`): a consumer page the reader
//! may write, then a producer page and the data pages mapped twice in a row, so a
//! record that wraps is contiguous. Each record starts with an 8-byte header whose
//! first word is the length with two flag bits.
use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
};

use aya::maps::MapData;

const HEADER_BYTES: usize = 8;
/// The producer is still writing the record.
const BUSY: u32 = 1 << 31;
/// The producer gave the record up: skip it.
const DISCARD: u32 = 1 << 30;

pub struct Ring {
    map: MapData,
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    mask: usize,
    /// The next record to read.
    read: usize,
    /// What the kernel was last told has been consumed.
    committed: usize,
}

// SAFETY: the mappings are plain shared memory owned by the ring; every access to the
// positions goes through atomics.
unsafe impl Send for Ring {}

impl Ring {
    pub fn new(map: MapData) -> io::Result<Self> {
        let bytes = map.info().map_err(io::Error::other)?.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let fd = map.fd().as_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + 2 * bytes, libc::PROT_READ, page)?;
        let committed = consumer.position(0).load(Ordering::Acquire);
        Ok(Self {
            map,
            consumer,
            producer,
            page,
            mask: bytes - 1,
            read: committed,
            committed,
        })
    }

    /// The next committed record, if there is one; its bytes stay valid until the next
    /// call. Reading does not release it: [`Ring::commit`] does.
    pub fn next(&mut self) -> Option<&[u8]> {
        loop {
            let produced = self.producer.position(0).load(Ordering::Acquire);
            if self.read == produced {
                return None;
            }
            let at = self.page + (self.read & self.mask);
            // SAFETY: `at` is within the first copy of the data pages, and a header
            // is 8-byte aligned there.
            let header = unsafe { &*self.producer.at(at).cast::<AtomicU32>() };
            let word = header.load(Ordering::Acquire);
            if word & BUSY != 0 {
                return None;
            }
            let len = (word & !(BUSY | DISCARD)) as usize;
            let start = self.read;
            self.read += (HEADER_BYTES + len).next_multiple_of(8);
            if word & DISCARD != 0 {
                continue;
            }
            // SAFETY: the record (at most the buffer's size) lies in the data pages'
            // two consecutive copies, whose mapping outlives the borrow of self.
            return Some(unsafe {
                std::slice::from_raw_parts(
                    self.producer
                        .at(self.page + (start & self.mask) + HEADER_BYTES),
                    len,
                )
            });
        }
    }

    /// Calls `each` with every record waiting now, without reading them.
    pub fn peek(&mut self, mut each: impl FnMut(&[u8])) {
        let read = self.read;
        while let Some(record) = self.next() {
            each(record);
        }
        self.read = read;
    }

    /// Records read but not committed.
    pub fn uncommitted(&mut self) -> u64 {
        let (read, mut n) = (self.read, 0);
        self.read = self.committed;
        while self.read < read && self.next().is_some() {
            n += 1;
        }
        self.read = read;
        n
    }

    /// Where the next read starts: what [`Ring::commit_to`] takes.
    pub fn position(&self) -> usize {
        self.read
    }

    /// Gives every record read so far back to the kernel.
    pub fn commit(&mut self) {
        self.commit_to(self.read);
    }

    /// Gives the records before `position` (a [`Ring::position`] of this reader)
    /// back to the kernel.
    pub fn commit_to(&mut self, position: usize) {
        // Positions only grow (they are 64-bit byte counts).
        if position > self.committed && position <= self.read {
            self.consumer.position(0).store(position, Ordering::Release);
            self.committed = position;
        }
    }
}

impl AsFd for Ring {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.fd().as_fd()
    }
}

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// A shared mapping of the ring buffer's fd.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, prot: libc::c_int, offset: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of a ring buffer map fd; the kernel checks
        // the length, protection and offset against the map.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?,
            len,
        })
    }

    /// The position word at `offset` (the consumer's or the producer's).
    fn position(&self, offset: usize) -> &AtomicUsize {
        // SAFETY: positions sit page-aligned at the start of their page, within the
        // mapping, and the kernel only ever accesses them atomically.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicUsize>() }
    }

    fn at(&self, offset: usize) -> *const u8 {
        debug_assert!(offset < self.len);
        // SAFETY: callers keep `offset` within the mapping.
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
