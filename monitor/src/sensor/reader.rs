//! Reading the ring buffer without busy-polling. The kernel programs wake the agent
//! only for the first record after a quiet [`WAKEUP_INTERVAL_NS`] (or when the buffer
//! fills up): a wake-up per record cost the watched process more than the rest of
//! the program. So while records flow the reader polls; once the buffer has been
//! empty for longer than that interval after the last record, every new record wakes
//! it, and it sleeps on the fd alone.
use std::{
    io,
    time::{Duration, Instant},
};

use anyhow::Result;
use monitor_common::WAKEUP_INTERVAL_NS;
use tokio::io::unix::AsyncFd;

use super::ring::Ring;

/// How long after the last record read the reader keeps polling: the kernel's quiet
/// interval plus a margin, so that a record the kernel wrote without waking us (a
/// wake-up was sent less than the interval before) is still found by a poll. Every
/// wake-up the kernel sends is for a record we then read, so after this long without
/// records the next record is sure to wake us.
const POLL_WINDOW: Duration = Duration::from_nanos(WAKEUP_INTERVAL_NS + 1_000_000);

/// How often the reader polls within that window: records the kernel did not wake us
/// for wait at most this long.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

pub struct EventReader {
    ring: AsyncFd<Ring>,
    /// When a read last returned records.
    last_records: Instant,
    /// Records are given back to the kernel as they are read. Otherwise only
    /// [`EventReader::commit_to`] gives them back: a pinned recorder keeps what the
    /// agent read but had not delivered when it died, for the next agent.
    commit_on_read: bool,
}

impl EventReader {
    pub fn new(ring: Ring, commit_on_read: bool) -> Result<Self> {
        // SAFETY: the Ring owns its map fd and keeps it open, unchanged, for as long
        // as it lives; the AsyncFd owns the Ring.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self {
            ring,
            last_records: Instant::now(),
            commit_on_read,
        })
    }

    /// Where the next read starts.
    pub fn position(&self) -> usize {
        self.ring.get_ref().position()
    }

    /// Gives the records before `position` back to the kernel.
    pub fn commit_to(&mut self, position: usize) {
        self.ring.get_mut().commit_to(position);
    }

    /// Records waiting in the buffer now, unread.
    pub fn waiting(&mut self) -> u64 {
        let mut n = 0;
        self.ring.get_mut().peek(|_| n += 1);
        n
    }

    /// Records read but not given back to the kernel.
    pub fn uncommitted(&mut self) -> u64 {
        self.ring.get_mut().uncommitted()
    }

    /// Calls `each` with every record waiting now, without reading them.
    pub fn peek(&mut self, each: impl FnMut(&[u8])) {
        self.ring.get_mut().peek(each);
    }

    /// Waits for records and hands up to `max` of them to `handle`; returns how many
    /// were read.
    pub async fn read_batch(
        &mut self,
        max: usize,
        mut handle: impl FnMut(&[u8]),
    ) -> io::Result<usize> {
        loop {
            let n = drain_ring(self.ring.get_mut(), max, self.commit_on_read, &mut handle);
            if n > 0 {
                self.last_records = Instant::now();
                return Ok(n);
            }
            // The readiness is cleared before the next read, so a wake-up that comes
            // after it is never lost.
            let poll_until = self.last_records + POLL_WINDOW;
            if Instant::now() < poll_until {
                let next_poll = tokio::time::Instant::from_std(
                    (Instant::now() + POLL_INTERVAL).min(poll_until),
                );
                if let Ok(guard) =
                    tokio::time::timeout_at(next_poll, self.ring.readable_mut()).await
                {
                    guard?.clear_ready();
                }
            } else {
                self.ring.readable_mut().await?.clear_ready();
            }
        }
    }

    /// Reads up to `max` of the records in the buffer now, without waiting.
    pub fn drain(&mut self, max: usize, mut handle: impl FnMut(&[u8])) -> usize {
        drain_ring(self.ring.get_mut(), max, self.commit_on_read, &mut handle)
    }
}

fn drain_ring(ring: &mut Ring, max: usize, commit: bool, handle: &mut impl FnMut(&[u8])) -> usize {
    let mut n = 0;
    while n < max {
        let Some(item) = ring.next() else { break };
        handle(item);
        n += 1;
    }
    if commit {
        ring.commit();
    }
    n
}
