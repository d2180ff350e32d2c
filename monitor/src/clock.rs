//! Converting the kernel's CLOCK_BOOTTIME stamps to wall-clock time.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec pointer; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Wall time = boot time + (realtime − boottime) measured once at start-up; stable
/// across suspend, unlike CLOCK_MONOTONIC.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    realtime_minus_boottime_ns: i128,
}

impl BootClock {
    pub fn new() -> Self {
        Self {
            realtime_minus_boottime_ns: now_ns(libc::CLOCK_REALTIME) - now_ns(libc::CLOCK_BOOTTIME),
        }
    }

    pub fn wall_time(&self, boot_ns: u64) -> SystemTime {
        let ns = boot_ns as i128 + self.realtime_minus_boottime_ns;
        UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
    }

    pub fn boot_ns_now() -> u64 {
        now_ns(libc::CLOCK_BOOTTIME) as u64
    }
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
}
