//! How profiles are laid out in the fleet's key-value bucket.
//!
//! One key per learned fact, named by a hash of the fact itself:
//!
//! ```text
//! wl.<workload hash>.state                     {"workload": ..., "generation": N, "frozen": bool}
//! wl.<workload hash>.g<N>.exe.<entry hash>     {"exe": "/usr/bin/python3"}
//! wl.<workload hash>.g<N>.dst.<entry hash>     {"dst": {"host": ..., "port": ..., "proto": ...}}
//! wl.<workload hash>.g<N>.lsn.<entry hash>     {"lsn": {"port": ..., "proto": ...}}
//! wl.<workload hash>.g<N>.dir.<entry hash>     {"dir": "/var/lib/app"}
//! wl.<workload hash>.g<N>.t.<unix second>      {"secs": S}   the workload ran then, somewhere
//! ```
//!
//! Two nodes that learn the same fact write the same key, and a key is only ever
//! created, never changed: merging is the union of keys, which is commutative and
//! idempotent with no read-modify-write and no lost update. Runtime is counted the same
//! way, as marks of the time slots in which any node saw the workload run, so replicas
//! running at once count once, as they do on one node. Only the state key is updated
//! (compare-and-set on its revision): it carries the generation, which a fleet-wide
//! reset raises so that older facts stop counting, and whether learning has stopped.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::super::{
    profile::{Added, Destination, Profile, Proto},
    workload::WorkloadId,
};
use crate::output::escape::{bytes_to_text, text_to_bytes};

/// The prefix of every key of one workload: `wl.<16 hex digits>`. Workload ids hold
/// characters that keys may not (`/`, `:`), and can be long, so keys carry a hash.
pub fn workload_prefix(w: &WorkloadId) -> String {
    format!("wl.{}", short_hash(w.to_string().as_bytes()))
}

pub fn state_key(w: &WorkloadId) -> String {
    format!("{}.state", workload_prefix(w))
}

/// What every key of `w` matches (for a watch).
pub fn workload_filter(w: &WorkloadId) -> String {
    format!("{}.>", workload_prefix(w))
}

fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The workload's fleet-wide state: the one key nodes update rather than create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetState {
    /// The workload id as text, so that `monitor profiles list --fleet` can name it.
    pub workload: String,
    /// Raised by a fleet-wide reset: facts of older generations no longer count.
    pub generation: u64,
    pub frozen: bool,
}

impl FleetState {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One learned fact, as the fleet shares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FleetEntry {
    /// An executable path as the kernel gave it (bytes, not necessarily UTF-8).
    Executable(Box<[u8]>),
    Destination(Destination),
    Listen(u16, Proto),
    WriteDir(Box<[u8]>),
}

/// The JSON of an entry's value: byte strings as text with `\xNN` escapes, as in the
/// profile files.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum EntryValue {
    #[serde(rename = "exe")]
    Executable(String),
    #[serde(rename = "dst")]
    Destination(Destination),
    #[serde(rename = "lsn")]
    Listen { port: u16, proto: Proto },
    #[serde(rename = "dir")]
    WriteDir(String),
}

impl FleetEntry {
    fn tag(&self) -> &'static str {
        match self {
            FleetEntry::Executable(_) => "exe",
            FleetEntry::Destination(_) => "dst",
            FleetEntry::Listen(..) => "lsn",
            FleetEntry::WriteDir(_) => "dir",
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let value = match self {
            FleetEntry::Executable(p) => EntryValue::Executable(bytes_to_text(p).into_owned()),
            FleetEntry::Destination(d) => EntryValue::Destination(d.clone()),
            FleetEntry::Listen(port, proto) => EntryValue::Listen {
                port: *port,
                proto: *proto,
            },
            FleetEntry::WriteDir(d) => EntryValue::WriteDir(bytes_to_text(d).into_owned()),
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    fn from_bytes(bytes: &[u8]) -> Option<FleetEntry> {
        Some(match serde_json::from_slice::<EntryValue>(bytes).ok()? {
            EntryValue::Executable(p) => FleetEntry::Executable(text_to_bytes(&p).into()),
            EntryValue::Destination(d) => FleetEntry::Destination(d),
            EntryValue::Listen { port, proto } => FleetEntry::Listen(port, proto),
            EntryValue::WriteDir(d) => FleetEntry::WriteDir(text_to_bytes(&d).into()),
        })
    }

    /// Adds this entry, learned elsewhere, to `profile`.
    pub fn add_to(&self, profile: &mut Profile, cap: usize) -> Added {
        match self {
            FleetEntry::Executable(p) => profile.add_executable(p, cap),
            FleetEntry::Destination(d) => profile.add_destination(&d.host, d.port, d.proto, cap),
            FleetEntry::Listen(port, proto) => profile.add_listen(*port, *proto, cap),
            FleetEntry::WriteDir(d) => profile.add_write_dir(d, cap),
        }
    }

    /// Every entry of a profile.
    pub fn all_of(p: &Profile) -> Vec<FleetEntry> {
        let mut out: Vec<FleetEntry> = p
            .executables
            .iter()
            .map(|e| FleetEntry::Executable(e.clone()))
            .collect();
        out.extend(
            p.destinations
                .to_sorted()
                .into_iter()
                .map(FleetEntry::Destination),
        );
        out.extend(
            p.listening
                .iter()
                .map(|&(port, proto)| FleetEntry::Listen(port, proto)),
        );
        out.extend(p.write_dirs.iter().map(|d| FleetEntry::WriteDir(d.clone())));
        out
    }

    /// The entry's key: the same on every node that learns it.
    pub fn key(&self, w: &WorkloadId, generation: u64) -> String {
        format!(
            "{}.g{generation}.{}.{}",
            workload_prefix(w),
            self.tag(),
            short_hash(&self.to_bytes())
        )
    }
}

/// The key that marks the workload as running in the slot starting at `start` (unix
/// seconds, a multiple of the slot's length).
pub fn runtime_key(w: &WorkloadId, generation: u64, start: u64) -> String {
    format!("{}.g{generation}.t.{start}", workload_prefix(w))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeValue {
    secs: u64,
}

pub fn runtime_value(secs: u64) -> Vec<u8> {
    serde_json::to_vec(&RuntimeValue { secs }).unwrap_or_default()
}

/// What a key and its value say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    State(FleetState),
    Entry {
        generation: u64,
        entry: FleetEntry,
    },
    Runtime {
        generation: u64,
        start: u64,
        secs: u64,
    },
}

/// Reads one key and value of the bucket; `None` for what is not a profile's (another
/// program's keys, a value that does not parse, a key whose hash does not match its
/// value). Values come from other nodes: they are checked, never trusted.
pub fn parse(key: &str, value: &[u8]) -> Option<Fact> {
    let rest = key.strip_prefix("wl.")?;
    let (_workload, rest) = rest.split_once('.')?;
    if rest == "state" {
        let state: FleetState = serde_json::from_slice(value).ok()?;
        let id: WorkloadId = state.workload.parse().ok()?;
        return (format!("wl.{_workload}") == workload_prefix(&id)).then_some(Fact::State(state));
    }
    let (generation, rest) = rest.split_once('.')?;
    let generation: u64 = generation.strip_prefix('g')?.parse().ok()?;
    let (tag, name) = rest.split_once('.')?;
    if tag == "t" {
        let start: u64 = name.parse().ok()?;
        let v: RuntimeValue = serde_json::from_slice(value).ok()?;
        return Some(Fact::Runtime {
            generation,
            start,
            secs: v.secs,
        });
    }
    let entry = FleetEntry::from_bytes(value)?;
    (entry.tag() == tag && short_hash(&entry.to_bytes()) == name)
        .then_some(Fact::Entry { generation, entry })
}

/// The length of a runtime slot for a learning window: about 120 slots per window,
/// between 1 s and 60 s, so that an hour's window costs 120 small keys per workload.
pub fn slot_secs(window: std::time::Duration) -> u64 {
    (window.as_secs() / 120).clamp(1, 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::WorkloadKind;

    fn web() -> WorkloadId {
        WorkloadId::new(WorkloadKind::Deployment, Some("shop"), "web")
    }

    #[test]
    fn every_fact_reads_back_from_its_key_and_value() {
        let w = web();
        let entries = [
            FleetEntry::Executable(b"/usr/bin/py\xffthon".as_slice().into()),
            FleetEntry::Destination(Destination {
                host: "10.0.0.0/24".into(),
                port: 5432,
                proto: Proto::Tcp,
            }),
            FleetEntry::Listen(8080, Proto::Udp),
            FleetEntry::WriteDir(b"/var/lib/app".as_slice().into()),
        ];
        for entry in entries {
            let key = entry.key(&w, 3);
            assert!(key.starts_with(&workload_prefix(&w)), "{key}");
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{key}"
            );
            assert_eq!(
                parse(&key, &entry.to_bytes()),
                Some(Fact::Entry {
                    generation: 3,
                    entry
                })
            );
        }
        let state = FleetState {
            workload: w.to_string(),
            generation: 2,
            frozen: true,
        };
        assert_eq!(
            parse(&state_key(&w), &state.to_bytes()),
            Some(Fact::State(state))
        );
        assert_eq!(
            parse(&runtime_key(&w, 1, 1_700_000_040), &runtime_value(30)),
            Some(Fact::Runtime {
                generation: 1,
                start: 1_700_000_040,
                secs: 30
            })
        );
    }

    #[test]
    fn the_same_fact_has_the_same_key_on_every_node_and_different_facts_differ() {
        let w = web();
        let a = FleetEntry::Executable(b"/bin/sh".as_slice().into());
        let b = FleetEntry::Executable(b"/bin/ls".as_slice().into());
        assert_eq!(a.key(&w, 0), a.clone().key(&w, 0));
        assert_ne!(a.key(&w, 0), b.key(&w, 0));
        assert_ne!(a.key(&w, 0), a.key(&w, 1));
        let other = WorkloadId::new(WorkloadKind::Deployment, Some("shop"), "api");
        assert_ne!(a.key(&w, 0), a.key(&other, 0));
    }

    #[test]
    fn forged_or_foreign_keys_are_ignored() {
        let w = web();
        let entry = FleetEntry::Executable(b"/bin/sh".as_slice().into());
        let key = entry.key(&w, 0);
        // A value that does not hash to its key's name.
        let other = FleetEntry::Executable(b"/bin/evil".as_slice().into());
        assert_eq!(parse(&key, &other.to_bytes()), None);
        // A state whose workload does not hash to its key.
        let state = FleetState {
            workload: "deployment/shop/other".into(),
            generation: 0,
            frozen: true,
        };
        assert_eq!(parse(&state_key(&w), &state.to_bytes()), None);
        assert_eq!(parse("other.key", b"{}"), None);
        assert_eq!(parse(&key, b"not json"), None);
        assert_eq!(
            parse(&format!("{}.gx.exe.00", workload_prefix(&w)), b"{}"),
            None
        );
    }

    #[test]
    fn slots_are_a_120th_of_the_window_within_bounds() {
        use std::time::Duration;
        assert_eq!(slot_secs(Duration::from_secs(3600)), 30);
        assert_eq!(slot_secs(Duration::from_secs(4)), 1);
        assert_eq!(slot_secs(Duration::from_secs(86400)), 60);
    }
}
