//! Profiles shared by the fleet through a NATS JetStream key-value bucket.
//!
//! Data flows: the learner hands what it newly learns, the slots in which its
//! workloads ran and the freezes its windows decide to [`Fleet`], which queues them
//! and publishes them from a task of its own (`client`), so the event path never waits
//! for the network. The same task watches the keys of every workload this node runs
//! and hands each fact back as a [`FleetUpdate`]; the learner merges them into the
//! local profile (`store::Profiles::merge_fleet`). The layout of the keys, and why
//! merging is a union, is in `keys`; `admin` is what `monitor profiles --fleet` does.
pub mod admin;
mod client;
pub mod keys;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::mpsc;

pub use keys::{Fact, FleetEntry, FleetState};

use super::workload::WorkloadId;

/// Where the fleet's profiles are kept (`profiles.fleet`).
#[derive(Clone, Debug, PartialEq)]
pub struct FleetConfig {
    /// NATS servers, comma-separated (`nats://10.0.0.1:4222,nats://10.0.0.2:4222`).
    pub url: String,
    pub bucket: String,
    /// Copies JetStream keeps of the bucket (RAFT); 3 survives the loss of a server.
    pub replicas: usize,
    /// A NATS credentials file (JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// CA certificate(s) (PEM) that the servers' certificates chain to; TLS required.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers that verify clients.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The bucket's size limit; past it new facts are refused (counted).
    pub max_bytes: u64,
    /// How long a workload's first events wait for the fleet's profile of it.
    pub first_event_wait: Duration,
    /// Facts kept for publishing while the store is unreachable; past it the newest
    /// are dropped (counted) and published again when the store is back.
    pub max_pending: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            url: String::new(),
            bucket: "monitor-profiles".into(),
            replicas: 3,
            credentials_file: None,
            user: None,
            password: None,
            token: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            max_bytes: 256 << 20,
            first_event_wait: Duration::from_millis(2000),
            max_pending: 100_000,
        }
    }
}

/// The bucket's limit on one value: every fact is far smaller, and JetStream's default
/// largest message is 1 MiB.
pub const MAX_VALUE_BYTES: i32 = 4096;

/// The store as this node last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Not connected yet since the start.
    Connecting,
    Connected,
    /// Unreachable for longer than a blip (a server restarting, a client moving to
    /// another server): reported, and first events no longer wait for it.
    Down,
}

/// Counters shared between the fleet task and the metrics.
#[derive(Debug, Default)]
pub struct FleetCounters {
    reach: AtomicU8,
    /// Facts this node created in the store.
    pub published: AtomicU64,
    /// Facts this node offered that another node had published already.
    pub known: AtomicU64,
    /// Publishing attempts that failed (the fact stays queued).
    pub publish_errors: AtomicU64,
    /// Facts waiting to be published.
    pub pending: AtomicU64,
    /// Facts dropped from a full queue (learned locally, published again on resync).
    pub dropped: AtomicU64,
    /// Facts the bucket refused because it was full (`max_bytes`).
    pub refused: AtomicU64,
    /// Facts received from the store.
    pub received: AtomicU64,
    /// Times the store became unreachable.
    pub outages: AtomicU64,
}

impl FleetCounters {
    pub fn reach(&self) -> Reach {
        match self.reach.load(Ordering::Relaxed) {
            0 => Reach::Connecting,
            1 => Reach::Connected,
            _ => Reach::Down,
        }
    }

    fn set_reach(&self, reach: Reach) -> Reach {
        let code = match reach {
            Reach::Connecting => 0,
            Reach::Connected => 1,
            Reach::Down => 2,
        };
        match self.reach.swap(code, Ordering::Relaxed) {
            0 => Reach::Connecting,
            1 => Reach::Connected,
            _ => Reach::Down,
        }
    }

    pub fn snapshot(&self) -> FleetStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FleetStats {
            connected: self.reach() == Reach::Connected,
            published: get(&self.published),
            known: get(&self.known),
            publish_errors: get(&self.publish_errors),
            pending: get(&self.pending),
            dropped: get(&self.dropped),
            refused: get(&self.refused),
            received: get(&self.received),
            outages: get(&self.outages),
        }
    }
}

/// The counters at one moment, for metrics and the totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FleetStats {
    pub connected: bool,
    pub published: u64,
    pub known: u64,
    pub publish_errors: u64,
    pub pending: u64,
    pub dropped: u64,
    pub refused: u64,
    pub received: u64,
    pub outages: u64,
}

/// A fact about a workload, from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetUpdate {
    pub workload: Arc<WorkloadId>,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Fact(Fact),
    /// Every fact the store held about the workload when its watch began has been
    /// handed over: its first events may be judged now.
    Synced,
}

enum Command {
    /// Watch the workload's keys (first the ones there, then every change).
    Watch(Arc<WorkloadId>),
    /// Stop watching (the local profile was evicted).
    Unwatch(Arc<WorkloadId>),
    /// Create the key unless it exists: a learned fact or a runtime mark.
    Create { key: String, value: Vec<u8> },
    /// Stop learning fleet-wide, if the state is still at this generation.
    Freeze {
        workload: Arc<WorkloadId>,
        generation: u64,
    },
}

/// This node's link to the fleet's store. Every call returns at once.
pub struct Fleet {
    commands: mpsc::UnboundedSender<Command>,
    updates: mpsc::UnboundedReceiver<FleetUpdate>,
    counters: Arc<FleetCounters>,
    config: FleetConfig,
}

impl Fleet {
    /// Starts the link's task on the current tokio runtime; it connects (and
    /// reconnects) by itself.
    pub fn start(config: FleetConfig) -> Fleet {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (update_tx, updates) = mpsc::unbounded_channel();
        let counters = Arc::new(FleetCounters::default());
        tokio::spawn(client::run(
            config.clone(),
            command_rx,
            update_tx,
            counters.clone(),
        ));
        Fleet {
            commands,
            updates,
            counters,
            config,
        }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    pub fn watch(&self, workload: Arc<WorkloadId>) {
        let _ = self.commands.send(Command::Watch(workload));
    }

    pub fn unwatch(&self, workload: Arc<WorkloadId>) {
        let _ = self.commands.send(Command::Unwatch(workload));
    }

    /// Queues a fact this node learned.
    pub fn publish(&self, workload: &WorkloadId, generation: u64, entry: &FleetEntry) {
        self.create(entry.key(workload, generation), entry.to_bytes());
    }

    /// Queues the mark that `workload` ran in the slot starting at `start`.
    pub fn mark_runtime(&self, workload: &WorkloadId, generation: u64, start: u64, secs: u64) {
        self.create(
            keys::runtime_key(workload, generation, start),
            keys::runtime_value(secs),
        );
    }

    fn create(&self, key: String, value: Vec<u8>) {
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        if self.commands.send(Command::Create { key, value }).is_err() {
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn freeze(&self, workload: Arc<WorkloadId>, generation: u64) {
        let _ = self.commands.send(Command::Freeze {
            workload,
            generation,
        });
    }

    /// The next fact from the store, without waiting.
    pub fn try_update(&mut self) -> Option<FleetUpdate> {
        self.updates.try_recv().ok()
    }

    /// The next fact from the store (never, once the task has ended).
    pub async fn update(&mut self) -> FleetUpdate {
        match self.updates.recv().await {
            Some(update) => update,
            None => std::future::pending().await,
        }
    }

    pub fn reach(&self) -> Reach {
        self.counters.reach()
    }

    pub fn stats(&self) -> FleetStats {
        self.counters.snapshot()
    }
}
