//! The kernel filter (see `monitor_common::filter`): which scope an event is in and
//! what that scope admits, looked up once per event before any expensive work.
use aya_ebpf::{helpers::generated::bpf_get_current_cgroup_id, maps::lpm_trie::Key};
use monitor_common::{KIND_SLOTS, ScopeFilter, filter};

use crate::maps::{EXCLUDED_V4, EXCLUDED_V6, FILTER_GENERATION, FILTERS, HOST_CGROUPS};

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
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
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
