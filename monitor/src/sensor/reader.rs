//! Reading the ring buffer without busy-polling: the map's fd becomes readable when
//! the kernel has submitted records.
use std::io;

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl EventReader {
    pub fn new(ring: RingBuf<MapData>) -> Result<Self> {
        // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for as long
        // as it lives; the AsyncFd owns the RingBuf.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { ring })
    }

    /// Waits for records and hands up to `max` of them to `handle`; returns how many
    /// were read.
    pub async fn read_batch(
        &mut self,
        max: usize,
        mut handle: impl FnMut(&[u8]),
    ) -> io::Result<usize> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            let n = drain_ring(guard.get_inner_mut(), max, &mut handle);
            if n < max {
                // Only an emptied buffer may wait for the next wake-up.
                guard.clear_ready();
            }
            if n > 0 {
                return Ok(n);
            }
        }
    }

    /// Reads whatever is in the buffer now, without waiting.
    pub fn drain(&mut self, mut handle: impl FnMut(&[u8])) -> usize {
        drain_ring(self.ring.get_mut(), usize::MAX, &mut handle)
    }
}

fn drain_ring(ring: &mut RingBuf<MapData>, max: usize, handle: &mut impl FnMut(&[u8])) -> usize {
    let mut n = 0;
    while n < max {
        let Some(item) = ring.next() else { break };
        handle(&item);
        n += 1;
    }
    n
}
