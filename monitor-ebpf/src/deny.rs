//! In-kernel denies (see `monitor_common::deny`): `connect4`/`connect6` programs on
//! the cgroup v2 root refuse an IP connect, before any packet leaves, when a slot's
//! region holds it. Only rules the kernel decides exactly get slots (the agent
//! computes which), so a slot never refuses a connect its rule would not match.
//!
//! The verdict reaches the connect's record through the pending-connect entry that
//! the `connect` entry tracepoint made for the same thread.
use aya_ebpf::{
    bindings::bpf_sock_addr,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{cgroup_sock_addr, map},
    maps::{Array, lpm_trie::Key},
    programs::SockAddrContext,
};
use monitor_common::{DenySlot, deny, filter, kill};

use crate::{
    filter::{EXCLUDED_V4, EXCLUDED_V6, PORTS},
    kill::EXEMPT_COMMS,
    maps::{AGENT, current_scope},
    network::PENDING_CONNECT,
};

/// The in-kernel denies (see `monitor_common::deny`): the slots, and how many are
/// active (entry 0; 0 lets every connect through at once). Their networks and ports
/// are in the filter's network and port tables, under the slots' marks.
#[map]
pub static DENY_SLOTS: Array<DenySlot> = Array::with_max_entries(deny::SLOTS as u32, 0);
#[map]
pub static DENIES_ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// What a cgroup `sock_addr` program returns to let the connect go on, or to refuse
/// it with `EPERM`.
const ALLOW: i32 = 1;
const REFUSE: i32 = 0;

#[cgroup_sock_addr(connect4)]
pub fn deny_connect4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the context the kernel passes the program: valid for its whole run, and the
    // verifier checks every field load from it.
    let sa: &bpf_sock_addr = unsafe { &*ctx.sock_addr };
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&sa.user_ip4.to_ne_bytes());
    judge(filter::FAMILY_INET, &addr, sa.user_port)
}

#[cgroup_sock_addr(connect6)]
pub fn deny_connect6(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in `deny_connect4`.
    let sa: &bpf_sock_addr = unsafe { &*ctx.sock_addr };
    let mut addr = [0u8; 16];
    // The context allows word loads of the address, one at a time.
    let words = [
        sa.user_ip6[0],
        sa.user_ip6[1],
        sa.user_ip6[2],
        sa.user_ip6[3],
    ];
    for (i, w) in words.iter().enumerate() {
        addr[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    judge(filter::FAMILY_INET6, &addr, sa.user_port)
}

/// `user_port` holds the port in network byte order in its low 16 bits.
#[inline(always)]
fn judge(family: u32, addr: &[u8; 16], user_port: u32) -> i32 {
    if !matches!(DENIES_ACTIVE.get(0), Some(n) if *n != 0) {
        return ALLOW;
    }
    let Some(scope) = current_scope() else {
        return ALLOW;
    };
    let port = u16::from_be(user_port as u16);
    for slot in 0..deny::SLOTS {
        let Some(s) = DENY_SLOTS.get(slot as u32) else {
            return ALLOW;
        };
        if s.active == 0 || s.scopes & scope == 0 || s.families & family == 0 {
            continue;
        }
        if s.ports != 0 {
            // SAFETY: only whether the port is listed is checked; the value is never read,
            // so a concurrent change to it cannot matter.
            let listed =
                unsafe { PORTS.get(&filter::port_key(deny::port_mark(slot), 0, port)) }.is_some();
            if listed != (s.ports == filter::PORTS_ONLY) {
                continue;
            }
        }
        if s.within != 0 && !in_networks(deny::within_mark(slot), family, addr) {
            continue;
        }
        if s.excluded != 0 && in_networks(deny::excluded_mark(slot), family, addr) {
            continue;
        }
        let (outcome, answer) = if exempt() {
            (deny::EXEMPT, ALLOW)
        } else {
            (deny::DENIED, REFUSE)
        };
        report(kill::verdict(slot, outcome));
        return answer;
    }
    ALLOW
}

/// Is the destination inside one of the networks under `mark`? An IPv4-mapped IPv6
/// address is also looked up as the IPv4 address it maps, as the rule engine
/// matches it.
#[inline(always)]
fn in_networks(mark: u8, family: u32, addr: &[u8; 16]) -> bool {
    let v4 = |a: [u8; 4]| {
        let key = Key::new(
            filter::NET_KEY_GENERATION_BITS + 32,
            [mark, a[0], a[1], a[2], a[3]],
        );
        EXCLUDED_V4.get(&key).is_some()
    };
    if family == filter::FAMILY_INET {
        return v4([addr[0], addr[1], addr[2], addr[3]]);
    }
    let mut data = [0u8; 17];
    data[0] = mark;
    data[1..].copy_from_slice(addr);
    if EXCLUDED_V6
        .get(&Key::new(filter::NET_KEY_GENERATION_BITS + 128, data))
        .is_some()
    {
        return true;
    }
    let mapped = addr[..10].iter().all(|b| *b == 0) && addr[10] == 0xff && addr[11] == 0xff;
    mapped && v4([addr[12], addr[13], addr[14], addr[15]])
}

/// The agent, the host's PID 1 and the exempt task names are never refused.
#[inline(always)]
fn exempt() -> bool {
    let tgid = bpf_get_current_pid_tgid() >> 32;
    if tgid == 1 || matches!(AGENT.get(0), Some(agent) if *agent == tgid) {
        return true;
    }
    // SAFETY: only whether the name is listed is checked; the value is never read.
    matches!(bpf_get_current_comm(), Ok(comm) if unsafe { EXEMPT_COMMS.get(&comm) }.is_some())
}

/// Hands the verdict to the connect's record, when the connect is being recorded.
#[inline(always)]
fn report(verdict: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if let Some(pending) = PENDING_CONNECT.get_ptr_mut(&pid_tgid) {
        // SAFETY: the entry is this thread's (keyed by pid_tgid) and only this thread's
        // programs use it, one after another; its map memory stays valid meanwhile.
        unsafe { (*pending).deny = verdict };
    }
}
