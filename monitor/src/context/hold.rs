//! Events held until their container's metadata is there. A container's first
//! process starts moments after the runtime created it; its first events (the ones
//! Falco's container-start rules judge) must not be evaluated with empty container
//! fields while the runtime is still answering. Other events are not held up: each
//! container has its own queue, released in order as soon as a runtime has answered,
//! or when the bound has passed (then the events go out with what is known).
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::EnrichedEvent;

/// Most events held at once; beyond it the container held longest is released early.
pub const HOLD_CAP: usize = 16_384;

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct HoldStats {
    /// Events that waited for their container's metadata.
    pub held: u64,
    /// Held events released because the hold was full, before their metadata came.
    pub released_early: u64,
    /// Held events released at the bound, the runtime not having answered.
    pub timed_out: u64,
    /// Events held now.
    pub holding: usize,
}

struct Queue {
    /// When the container's first held event arrived.
    since: Instant,
    events: VecDeque<EnrichedEvent>,
}

pub struct MetadataHold {
    bound: Duration,
    cap: usize,
    queues: HashMap<Arc<str>, Queue>,
    pub stats: HoldStats,
}

/// What a container's held events wait for.
pub enum Verdict {
    /// Still being fetched.
    Waiting,
    /// Release them: the metadata is there, or no runtime will tell.
    Release,
}

impl MetadataHold {
    pub fn new(bound: Duration, cap: usize) -> Self {
        Self {
            bound,
            cap,
            queues: HashMap::new(),
            stats: HoldStats::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    pub fn is_holding(&self, container: &str) -> bool {
        self.queues.contains_key(container)
    }

    /// Holds `event` behind its container's earlier held events.
    pub fn hold(&mut self, event: EnrichedEvent, out: &mut Vec<EnrichedEvent>) {
        if self.stats.holding >= self.cap {
            self.release_oldest(out);
        }
        let queue = self
            .queues
            .entry(event.container.id.clone())
            .or_insert_with(|| Queue {
                since: Instant::now(),
                events: VecDeque::new(),
            });
        queue.events.push_back(event);
        self.stats.held += 1;
        self.stats.holding += 1;
    }

    /// When the next queue reaches the bound.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queues.values().map(|q| q.since + self.bound).min()
    }

    /// Releases, in order, every queue `verdict` clears or whose bound has passed;
    /// `finish` gives each released event what is known of its container now.
    pub fn release(
        &mut self,
        now: Instant,
        mut verdict: impl FnMut(&str) -> Verdict,
        mut finish: impl FnMut(&mut EnrichedEvent, bool),
        out: &mut Vec<EnrichedEvent>,
    ) {
        let bound = self.bound;
        let mut released = Vec::new();
        for (id, queue) in &self.queues {
            let late = now.duration_since(queue.since) >= bound;
            if late || matches!(verdict(id), Verdict::Release) {
                released.push((id.clone(), late));
            }
        }
        for (id, late) in released {
            let Some(queue) = self.queues.remove(&id) else {
                continue;
            };
            self.stats.holding -= queue.events.len();
            if late {
                self.stats.timed_out += queue.events.len() as u64;
            }
            for mut event in queue.events {
                finish(&mut event, late);
                out.push(event);
            }
        }
    }

    /// Everything, as it is (at shutdown).
    pub fn release_all(&mut self, out: &mut Vec<EnrichedEvent>) {
        let mut queues: Vec<Queue> = self.queues.drain().map(|(_, q)| q).collect();
        queues.sort_by_key(|q| q.since);
        for queue in queues {
            out.extend(queue.events);
        }
        self.stats.holding = 0;
    }

    fn release_oldest(&mut self, out: &mut Vec<EnrichedEvent>) {
        let Some(oldest) = self
            .queues
            .iter()
            .min_by_key(|(_, q)| q.since)
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        if let Some(queue) = self.queues.remove(&oldest) {
            self.stats.holding -= queue.events.len();
            self.stats.released_early += queue.events.len() as u64;
            out.extend(queue.events);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::recorded::enriched_from_json;

    fn event_in(container: &str, pid: u32) -> EnrichedEvent {
        enriched_from_json(&json!({
            "kind": "exit", "time": "2025-03-01T12:00:00Z", "boot_ns": 1, "pid": pid,
            "tid": pid, "comm": "sh", "cgroup_id": 1, "exit_code": 0, "signal": 0,
            "core_dumped": false, "ppid": 1, "process_start_boot_ns": 1,
            "container": {"id": container},
        }))
    }

    fn pids(events: &[EnrichedEvent]) -> Vec<u32> {
        events.iter().map(|e| e.event.pid).collect()
    }

    #[test]
    fn a_container_is_released_in_order_when_its_metadata_comes() {
        let mut hold = MetadataHold::new(Duration::from_secs(60), 100);
        let mut out = Vec::new();
        for (container, pid) in [("a", 1), ("b", 2), ("a", 3)] {
            hold.hold(event_in(container, pid), &mut out);
        }
        assert!(out.is_empty());
        let described = |id: &str| {
            if id == "a" {
                Verdict::Release
            } else {
                Verdict::Waiting
            }
        };
        hold.release(
            Instant::now(),
            described,
            |_, late| assert!(!late),
            &mut out,
        );
        assert_eq!(pids(&out), [1, 3]);
        assert!(hold.is_holding("b") && !hold.is_holding("a"));
        assert_eq!((hold.stats.held, hold.stats.holding), (3, 1));
    }

    #[test]
    fn the_bound_releases_what_no_runtime_answered() {
        let mut hold = MetadataHold::new(Duration::from_millis(10), 100);
        let mut out = Vec::new();
        hold.hold(event_in("slow", 7), &mut out);
        let later = Instant::now() + Duration::from_millis(20);
        hold.release(
            later,
            |_| Verdict::Waiting,
            |_, late| assert!(late),
            &mut out,
        );
        assert_eq!(pids(&out), [7]);
        assert_eq!((hold.stats.timed_out, hold.stats.holding), (1, 0));
        assert!(hold.next_deadline().is_none());
    }

    #[test]
    fn a_full_hold_releases_the_longest_held_container_early() {
        let mut hold = MetadataHold::new(Duration::from_secs(60), 2);
        let mut out = Vec::new();
        hold.hold(event_in("first", 1), &mut out);
        hold.hold(event_in("first", 2), &mut out);
        hold.hold(event_in("second", 3), &mut out);
        assert_eq!(pids(&out), [1, 2]);
        assert_eq!((hold.stats.released_early, hold.stats.holding), (2, 1));
        assert!(hold.is_holding("second"));
    }
}
