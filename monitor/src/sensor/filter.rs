//! Writing the kernel filter's tables (see `monitor_common::filter`): the rules'
//! filter per kind, the networks no rule can match, and the host's cgroups.
use std::{collections::HashSet, net::IpAddr};

use anyhow::{Context, Result};
use aya::maps::{
    Array, HashMap,
    lpm_trie::{Key, LpmTrie},
};
use monitor_common::{KIND_SLOTS, KillSlot, KillWindow, KindFilter, filter, kill};

use crate::{
    event::EventKind,
    responses::KernelTables,
    rules::kernel_filter::{KernelFilter, Net, PathBound, PortBound},
};

impl super::Sensor {
    /// Installs `filter` (or none: every event passes) as one change: the tables of
    /// the generation not in use are written, then the programs are switched to it,
    /// then the old generation's networks are removed.
    pub fn set_filter(&mut self, rules: Option<&KernelFilter>) -> Result<()> {
        let current = {
            let generation: Array<_, u32> = Array::try_from(map(&self.ebpf, "FILTER_GENERATION")?)?;
            generation.get(&0, 0)? & 1
        };
        let next = current ^ 1;
        {
            let mut filters: Array<_, KindFilter> = Array::try_from(
                self.ebpf
                    .map_mut("FILTERS")
                    .context("map FILTERS missing")?,
            )?;
            for slot in 0..KIND_SLOTS {
                filters.set(next * KIND_SLOTS + slot, KindFilter::default(), 0)?;
            }
            for spec in rules.iter().flat_map(|f| &f.kinds) {
                filters.set(next * KIND_SLOTS + spec.kind.id() as u32, spec.table(), 0)?;
            }
        }
        let networks = rules.map(excluded_networks).unwrap_or_default();
        write_networks(&mut self.ebpf, next as u8, &networks)?;
        write_paths(&mut self.ebpf, next as u8, rules)?;
        write_ports(&mut self.ebpf, next as u8, rules)?;
        {
            let mut generation: Array<_, u32> = Array::try_from(
                self.ebpf
                    .map_mut("FILTER_GENERATION")
                    .context("map FILTER_GENERATION missing")?,
            )?;
            generation.set(0, next, 0)?;
        }
        write_networks(&mut self.ebpf, current as u8, &[])?;
        write_paths(&mut self.ebpf, current as u8, None)?;
        write_ports(&mut self.ebpf, current as u8, None)
    }

    /// Makes the host scope exactly `ids` (cgroups the agent found to be the host's).
    /// Returns how many could not be added (the table is full: those cgroups' events
    /// are then judged as a container's, which is safe).
    pub fn set_host_cgroups(&mut self, ids: &HashSet<u64>) -> Result<usize> {
        self.set_cgroups("HOST_CGROUPS", ids)
    }

    /// Makes the containers' cgroups exactly `ids` (what kill slots scoped to
    /// containers act in). Returns how many could not be added (the table is full:
    /// their opens are then killed from user space only).
    pub fn set_container_cgroups(&mut self, ids: &HashSet<u64>) -> Result<usize> {
        self.set_cgroups("CONTAINER_CGROUPS", ids)
    }

    /// Installs the in-kernel kills: the slots and their paths are rewritten while
    /// none is active; the count of active slots goes last, so the programs judge by
    /// no half-written slot. The kill windows start afresh.
    pub fn set_kills(&mut self, kills: &KernelTables) -> Result<()> {
        set_active(&mut self.ebpf, "KILLS_ACTIVE", 0)?;
        {
            let mut exempt: HashMap<_, [u8; 16], u8> = HashMap::try_from(
                self.ebpf
                    .map_mut("EXEMPT_COMMS")
                    .context("map EXEMPT_COMMS missing")?,
            )?;
            let old: Vec<[u8; 16]> = exempt.keys().filter_map(Result::ok).collect();
            for comm in old.iter().filter(|c| !kills.exempt.contains(c)) {
                let _ = exempt.remove(comm);
            }
            for comm in &kills.exempt {
                exempt.insert(comm, 1, 0)?;
            }
        }
        {
            let mut windows: Array<_, KillWindow> = Array::try_from(
                self.ebpf
                    .map_mut("KILL_WINDOWS")
                    .context("map KILL_WINDOWS missing")?,
            )?;
            for index in 0..kill::SLOTS as u32 {
                windows.set(index, KillWindow::default(), 0)?;
            }
        }
        for index in 0..kill::SLOTS {
            let slot = kills.slots.get(index);
            let entries = slot
                .map(|s| path_entries(&s.region.paths))
                .unwrap_or_default();
            let mark = kill::path_key_mark(index);
            replace_path_entries(&mut self.ebpf, "PATHS", [mark, 0], &entries)?;
            let mut slots: Array<_, KillSlot> = Array::try_from(
                self.ebpf
                    .map_mut("KILL_SLOTS")
                    .context("map KILL_SLOTS missing")?,
            )?;
            let written = slot.map_or_else(KillSlot::default, |slot| KillSlot {
                active: 1,
                scopes: slot.region.scopes,
                admits: slot.region.admits,
                files: slot.region.files,
                window: slot.window,
                per_minute: slot.per_minute,
                _pad: 0,
            });
            slots.set(index as u32, written, 0)?;
        }
        set_active(
            &mut self.ebpf,
            "KILLS_ACTIVE",
            kills.slots.len().min(kill::SLOTS) as u32,
        )
    }

    fn set_cgroups(&mut self, table: &str, ids: &HashSet<u64>) -> Result<usize> {
        let mut table: HashMap<_, u64, u8> = HashMap::try_from(
            self.ebpf
                .map_mut(table)
                .with_context(|| format!("map {table} missing"))?,
        )?;
        let present: Vec<u64> = table.keys().filter_map(Result::ok).collect();
        for id in present.iter().filter(|id| !ids.contains(id)) {
            let _ = table.remove(id);
        }
        let present: HashSet<u64> = present.into_iter().collect();
        let mut full = 0;
        for id in ids.iter().filter(|id| !present.contains(id)) {
            if table.insert(id, 1, 0).is_err() {
                full += 1;
            }
        }
        Ok(full)
    }
}

/// A bound's whole paths and prefixes as path-table entries (see
/// [`replace_path_entries`]).
fn path_entries(bound: &PathBound) -> Vec<(&str, bool)> {
    match bound {
        PathBound::Only {
            exact, prefixes, ..
        } => exact
            .iter()
            .map(|p| (p.as_str(), true))
            .chain(prefixes.iter().map(|p| (p.as_str(), false)))
            .collect(),
        PathBound::Any => Vec::new(),
    }
}

/// Sets how many slots are active in `table` (`KILLS_ACTIVE`, `DENIES_ACTIVE`): 0
/// lets the programs skip their slots.
pub(super) fn set_active(ebpf: &mut aya::Ebpf, table: &str, count: u32) -> Result<()> {
    let mut active: Array<_, u32> = Array::try_from(
        ebpf.map_mut(table)
            .with_context(|| format!("map {table} missing"))?,
    )?;
    active.set(0, count, 0)?;
    Ok(())
}

/// Replaces the entries of a path table whose key starts with `header` by `entries`
/// (a path, and whether it is whole: an exact entry ends with its NUL, a prefix
/// matches whatever follows). Paths longer than the kernel judges are left out.
fn replace_path_entries(
    ebpf: &mut aya::Ebpf,
    table: &str,
    header: [u8; filter::PATH_KEY_HEADER],
    entries: &[(&str, bool)],
) -> Result<()> {
    let mut trie: LpmTrie<_, [u8; filter::PATH_KEY_BYTES], u8> = LpmTrie::try_from(
        ebpf.map_mut(table)
            .with_context(|| format!("map {table} missing"))?,
    )?;
    let old: Vec<Key<[u8; filter::PATH_KEY_BYTES]>> = trie.keys().filter_map(Result::ok).collect();
    for key in old.iter().filter(|k| k.data()[..2] == header) {
        let _ = trie.remove(key);
    }
    for &(text, whole) in entries {
        let len = text.len() + usize::from(whole);
        // Longer paths are never judged by the kernel (they pass).
        if len > filter::MAX_FILTER_PATH - 1 {
            continue;
        }
        let mut data = [0u8; filter::PATH_KEY_BYTES];
        data[..2].copy_from_slice(&header);
        data[filter::PATH_KEY_HEADER..][..text.len()].copy_from_slice(text.as_bytes());
        let bits = 8 * (filter::PATH_KEY_HEADER + len) as u32;
        trie.insert(&Key::new(bits, data), 1, 0)?;
    }
    Ok(())
}

fn map<'a>(ebpf: &'a aya::Ebpf, name: &str) -> Result<&'a aya::maps::Map> {
    ebpf.map(name)
        .with_context(|| format!("map {name} missing"))
}

/// A destination network with the scopes (bit per `filter::SCOPE_*`) it is excluded
/// from.
type ExcludedNet = (IpAddr, u8, u32);

/// Each network once, with every scope that excludes it or a network containing it:
/// the trie answers a lookup with the longest match only.
fn excluded_networks(rules: &KernelFilter) -> Vec<ExcludedNet> {
    let mut nets: Vec<ExcludedNet> = Vec::new();
    for spec in rules.kinds.iter() {
        for (scope, s) in spec.scopes.iter().enumerate() {
            for &(addr, bits) in &s.excluded {
                match nets.iter_mut().find(|(a, b, _)| *a == addr && *b == bits) {
                    Some(entry) => entry.2 |= 1 << scope,
                    None => nets.push((addr, bits, 1 << scope)),
                }
            }
        }
    }
    let all = nets.clone();
    for (addr, bits, scopes) in nets.iter_mut() {
        for (outer, outer_bits, outer_scopes) in &all {
            if outer.is_ipv4() == addr.is_ipv4()
                && outer_bits <= bits
                && crate::rules::tree::ip_in(*addr, *outer, *outer_bits)
            {
                *scopes |= outer_scopes;
            }
        }
    }
    nets
}

/// Replaces generation `generation`'s path and name tables with the open filter's (or
/// empties them).
fn write_paths(ebpf: &mut aya::Ebpf, generation: u8, rules: Option<&KernelFilter>) -> Result<()> {
    let scopes = rules
        .and_then(|r| r.kinds.iter().find(|k| k.kind == EventKind::Open))
        .map(|spec| &spec.scopes);
    for (table, names) in [("PATHS", false), ("NAMES", true)] {
        for scope in 0..filter::SCOPES {
            let bound = scopes.map(|s| &s[scope].paths);
            let entries: Vec<(&str, bool)> = match bound {
                Some(PathBound::Only {
                    names: leaf_names, ..
                }) => {
                    if names {
                        leaf_names.iter().map(|n| (n.as_str(), true)).collect()
                    } else {
                        path_entries(bound.expect("matched"))
                    }
                }
                _ => Vec::new(),
            };
            replace_path_entries(ebpf, table, [generation, scope as u8], &entries)?;
        }
    }
    Ok(())
}

/// Replaces generation `generation`'s port table with the connect filter's (or empties
/// it).
fn write_ports(ebpf: &mut aya::Ebpf, generation: u8, rules: Option<&KernelFilter>) -> Result<()> {
    let scopes: Vec<&PortBound> = rules
        .and_then(|r| r.kinds.iter().find(|k| k.kind == EventKind::Connect))
        .map(|spec| spec.scopes.iter().map(|s| &s.ports).collect())
        .unwrap_or_default();
    replace_ports(ebpf, generation, &scopes)
}

/// Replaces the port-table entries under `mark` (a filter generation, or a deny
/// slot's mark) by the ports of each scope's bound (its index is the key's scope).
pub(super) fn replace_ports(ebpf: &mut aya::Ebpf, mark: u8, scopes: &[&PortBound]) -> Result<()> {
    let mut table: HashMap<_, u32, u8> =
        HashMap::try_from(ebpf.map_mut("PORTS").context("map PORTS missing")?)?;
    let old: Vec<u32> = table.keys().filter_map(Result::ok).collect();
    for key in old.iter().filter(|k| (*k & 0xff) as u8 == mark) {
        let _ = table.remove(key);
    }
    for (scope, bound) in scopes.iter().enumerate() {
        let (PortBound::Only(ports) | PortBound::Except(ports)) = bound else {
            continue;
        };
        for &port in ports {
            table.insert(filter::port_key(mark, scope as u8, port), 1, 0)?;
        }
    }
    Ok(())
}

/// Replaces the network-table entries under `mark` (a deny slot's) by `nets`.
pub(super) fn replace_networks(ebpf: &mut aya::Ebpf, mark: u8, nets: &[Net]) -> Result<()> {
    let entries: Vec<ExcludedNet> = nets.iter().map(|&(addr, bits)| (addr, bits, 1)).collect();
    write_networks(ebpf, mark, &entries)
}

/// Replaces generation `generation`'s networks with `nets`.
fn write_networks(ebpf: &mut aya::Ebpf, generation: u8, nets: &[ExcludedNet]) -> Result<()> {
    let gen_bits = filter::NET_KEY_GENERATION_BITS;
    {
        let mut v4: LpmTrie<_, [u8; 5], u32> = LpmTrie::try_from(
            ebpf.map_mut("EXCLUDED_V4")
                .context("map EXCLUDED_V4 missing")?,
        )?;
        let old: Vec<Key<[u8; 5]>> = v4.keys().filter_map(Result::ok).collect();
        for key in old.iter().filter(|k| k.data()[0] == generation) {
            let _ = v4.remove(key);
        }
        for (addr, bits, scopes) in nets {
            if let IpAddr::V4(a) = addr {
                let o = a.octets();
                let key = Key::new(
                    gen_bits + *bits as u32,
                    [generation, o[0], o[1], o[2], o[3]],
                );
                v4.insert(&key, scopes, 0)?;
            }
        }
    }
    let mut v6: LpmTrie<_, [u8; 17], u32> = LpmTrie::try_from(
        ebpf.map_mut("EXCLUDED_V6")
            .context("map EXCLUDED_V6 missing")?,
    )?;
    let old: Vec<Key<[u8; 17]>> = v6.keys().filter_map(Result::ok).collect();
    for key in old.iter().filter(|k| k.data()[0] == generation) {
        let _ = v6.remove(key);
    }
    for (addr, bits, scopes) in nets {
        if let IpAddr::V6(a) = addr {
            let mut data = [0u8; 17];
            data[0] = generation;
            data[1..].copy_from_slice(&a.octets());
            v6.insert(&Key::new(gen_bits + *bits as u32, data), scopes, 0)?;
        }
    }
    Ok(())
}
