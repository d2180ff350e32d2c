//! What a container did in the last minute, counted from its events as they pass:
//! programs run, connects made and failed, and the distinct destinations tried.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::{Hash, Hasher},
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    context::EnrichedEvent,
    event::{Detail, SocketFamily},
};

/// The window the `*_per_min` measures count over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Entries kept per container: a container making more events than this in a
/// minute counts the most recent ones (its rates are already far above any rule's).
const MAX_ENTRIES: usize = 20_000;

/// `connect` on a non-blocking socket: under way, not failed.
const EINPROGRESS: i64 = -115;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Exec,
    Connect { failed: bool, destination: u64 },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub execs: u64,
    pub connects: u64,
    pub failed_connects: u64,
    pub destinations: u64,
}

#[derive(Default)]
pub struct Activity {
    by_container: HashMap<Arc<str>, VecDeque<(Instant, Act)>>,
}

impl Activity {
    /// Counts `event` when it is a container's exec or IP connect.
    pub fn observe(&mut self, event: &EnrichedEvent, now: Instant) {
        if event.container.is_host() {
            return;
        }
        let act = match &event.event.detail {
            Detail::Exec(x) if x.result == 0 => Act::Exec,
            Detail::Connect(x) if matches!(x.family, SocketFamily::Inet | SocketFamily::Inet6) => {
                Act::Connect {
                    failed: x.result < 0 && x.result != EINPROGRESS,
                    destination: destination_key(x.address, x.port),
                }
            }
            _ => return,
        };
        let entries = match self.by_container.get_mut(&event.container.id) {
            Some(entries) => entries,
            None => self
                .by_container
                .entry(event.container.id.clone())
                .or_default(),
        };
        if entries.len() == MAX_ENTRIES {
            entries.pop_front();
        }
        entries.push_back((now, act));
    }

    /// The container's counts over the last minute.
    pub fn rates(&mut self, container: &str, now: Instant) -> Rates {
        let Some(entries) = self.by_container.get_mut(container) else {
            return Rates::default();
        };
        while entries
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > WINDOW)
        {
            entries.pop_front();
        }
        let mut rates = Rates::default();
        let mut destinations = HashSet::new();
        for (_, act) in entries.iter() {
            match act {
                Act::Exec => rates.execs += 1,
                Act::Connect {
                    failed,
                    destination,
                } => {
                    rates.connects += 1;
                    rates.failed_connects += u64::from(*failed);
                    destinations.insert(*destination);
                }
            }
        }
        rates.destinations = destinations.len() as u64;
        rates
    }

    /// Forgets the containers not in `running`.
    pub fn retain(&mut self, running: &HashSet<Arc<str>>) {
        self.by_container.retain(|id, _| running.contains(id));
    }
}

fn destination_key(address: Option<IpAddr>, port: u16) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    address.hash(&mut hasher);
    port.hash(&mut hasher);
    hasher.finish()
}
