//! monitor's kernel programs. One module per hook family; shared maps in `maps`.
//!
//! Every entry point is thin: it calls a fallible inner function and, when that fails,
//! the failure is counted in `STATS` (never a panic, which the verifier would refuse).
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
