//! monitor's kernel programs. One module per hook family, each owning its maps;
//! `record` owns the ring buffer, the scratch slots and the counters, `filter` its
//! tables, and `maps` only the switches every probe reads.
//!
//! Every program that records has one shape, `counted(kind, inner(..))`: the inner
//! function returns a typed [`monitor_common::Fault`] when it loses a record, and the
//! failure is counted in `STATS` under its cause (never a panic, which the verifier
//! would refuse).
#![no_std]
#![no_main]
// For `atomic_xadd`: the BPF target has no atomic read-modify-write types.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod deny;
mod file;
mod filter;
mod kernel;
mod kill;
mod maps;
mod network;
mod path;
mod process;
mod record;
mod syscalls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible: `bpf_probe_read_kernel` and friends are GPL-only helpers.
// SAFETY: the only item in the `license` section, where the loader reads the license from.
#[unsafe(link_section = "license")]
// SAFETY: no other symbol in the program is named `LICENSE`.
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
