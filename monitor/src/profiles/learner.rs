//! Profiles at work in the pipeline: each container event is shown to its workload's
//! profile (learned while the window is open, judged once it is frozen) and carries
//! the verdict to the rules as [`WorkloadFacts`]; once a second the running workloads'
//! observed runtime advances, changes made by `monitor profiles` are taken in, and
//! what changed is written out now and then.
//!
//! With a fleet store, what is newly learned and the slots in which workloads ran go
//! to the fleet, the fleet's facts are merged in as they arrive, and the first events
//! of a workload wait (briefly, like events waiting for container metadata) until the
//! fleet's profile of it is in, so that a fresh node judges a frozen workload at once.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    os::unix::ffi::OsStrExt,
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    HostBuf, Profiles, ProfilesConfig, ProfilesStats, Proto, Verdict, WorkloadId,
    fleet::{Change, Fact, Fleet, FleetEntry, FleetStats, FleetUpdate, Reach, keys::slot_secs},
    host_key,
    store::Merged,
    workload_of,
};
use crate::{
    context::{ContainerContext, EnrichedEvent, WorkloadFacts},
    event::{Detail, EventType, SocketFamily},
};

/// How often changed profiles are written to the state directory.
const PERSIST_EVERY: Duration = Duration::from_secs(10);

/// `connect` on a non-blocking socket: under way, which counts as a destination.
const EINPROGRESS: i64 = -115;

const O_ACCMODE: u64 = 0o3;
const O_CREAT: u64 = 0o100;
const SOCK_DGRAM: u16 = 2;

pub struct Learner {
    profiles: Profiles,
    /// Each container's workload, worked out once from its metadata.
    workloads: HashMap<Arc<str>, Known>,
    last_persist: Instant,
    fleet: Option<FleetLink>,
}

/// What [`Learner::admit`] did with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Judged by its workload's profile (or it has none): pass it on.
    Judged,
    /// Its workload's first events wait for the fleet's profile: hold it.
    Wait(Arc<WorkloadId>),
}

/// A container's workload, and whether its events may pass without asking the
/// fleet link (its workload's fleet profile is in, or no longer waited for), so that
/// the event path stays one lookup once a container is settled.
struct Known {
    workload: Option<Arc<WorkloadId>>,
    settled: bool,
}

/// The learner's side of the fleet store.
struct FleetLink {
    fleet: Fleet,
    /// Every workload seen since the start; `Some(deadline)` while its first events
    /// wait for the fleet's profile.
    sync: HashMap<Arc<WorkloadId>, Option<Instant>>,
    /// Events waiting for their workload's fleet profile, in arrival order.
    held: VecDeque<(Arc<WorkloadId>, EnrichedEvent)>,
    /// The last runtime slot marked for each workload.
    marked: HashMap<Arc<WorkloadId>, u64>,
    /// While a workload's watch hands over what the store holds: the entries seen, so
    /// that only what the fleet lacks is offered afterwards.
    initial: HashMap<Arc<WorkloadId>, HashSet<FleetEntry>>,
    slot_secs: u64,
    /// The fleet's `dropped` count when this node last offered all it knows again.
    resent_at: u64,
}

impl FleetLink {
    fn waiting(&self, id: &WorkloadId) -> bool {
        self.sync.get(id).is_some_and(Option::is_some)
    }
}

impl Learner {
    /// With `config.fleet`, the link to the fleet store starts on the current tokio
    /// runtime.
    pub fn new(config: ProfilesConfig) -> Learner {
        let fleet = config.fleet.clone().map(|fleet| FleetLink {
            slot_secs: slot_secs(config.learning_window),
            fleet: Fleet::start(fleet),
            sync: HashMap::new(),
            held: VecDeque::new(),
            marked: HashMap::new(),
            initial: HashMap::new(),
            resent_at: 0,
        });
        let mut profiles = Profiles::open(config);
        if fleet.is_some() {
            profiles.keep_learned();
        }
        Learner {
            profiles,
            workloads: HashMap::new(),
            last_persist: Instant::now(),
            fleet,
        }
    }

    /// Shows `event` to its workload's profile and notes the verdict on it, unless its
    /// workload's first events are waiting for the fleet's profile: then the event
    /// goes to [`Learner::hold`] to wait with them (see [`Learner::wake`] and
    /// [`Learner::release`]). Takes the event by reference, so the common path moves
    /// nothing.
    pub fn admit(&mut self, event: &mut EnrichedEvent) -> Admission {
        if event.container.is_host() {
            return Admission::Judged;
        }
        let Some((id, settled)) = self.workload(&event.container) else {
            return Admission::Judged;
        };
        if !settled {
            self.see(&id);
            if self.fleet.as_ref().is_some_and(|link| link.waiting(&id)) {
                return Admission::Wait(id);
            }
            if let Some(known) = self.workloads.get_mut(&event.container.id) {
                known.settled = true;
            }
        }
        self.judge(event, id);
        Admission::Judged
    }

    /// Keeps an event [`Learner::admit`] said must wait, behind the others waiting.
    pub fn hold(&mut self, workload: Arc<WorkloadId>, event: EnrichedEvent) {
        if let Some(link) = &mut self.fleet {
            link.held.push_back((workload, event));
        }
    }

    /// A workload seen for the first time since the start: its fleet profile is
    /// watched, and its first events wait for it unless the store is known to be away.
    fn see(&mut self, id: &Arc<WorkloadId>) {
        let Some(link) = &mut self.fleet else { return };
        if link.sync.contains_key(id) {
            return;
        }
        link.fleet.watch(id.clone());
        link.initial.insert(id.clone(), HashSet::new());
        let wait = (link.fleet.reach() != Reach::Down)
            .then(|| Instant::now() + link.fleet.config().first_event_wait);
        link.sync.insert(id.clone(), wait);
    }

    /// Waits for the fleet: a fact from the store (merged at once, with any others
    /// already there), or the end of a first-event wait. Never returns without a fleet.
    pub async fn wake(&mut self) {
        let Some(link) = &mut self.fleet else {
            return std::future::pending().await;
        };
        let deadline = link.sync.values().flatten().min().copied();
        let update = tokio::select! {
            update = link.fleet.update() => Some(update),
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()),
                if deadline.is_some() => None,
        };
        let mut next = update;
        while let Some(update) = next {
            self.apply(update);
            next = self.fleet.as_mut().and_then(|l| l.fleet.try_update());
        }
    }

    fn apply(&mut self, update: FleetUpdate) {
        let Some(link) = &mut self.fleet else { return };
        let id = update.workload;
        if let (Change::Fact(Fact::Entry { entry, .. }), Some(seen)) =
            (&update.change, link.initial.get_mut(&id))
        {
            seen.insert(entry.clone());
        }
        match update.change {
            Change::Synced => {
                link.sync.insert(id.clone(), None);
                // What this node knows and the fleet lacks (learned while the store was
                // away, or before a restart) goes to the fleet too.
                let has = link.initial.remove(&id).unwrap_or_default();
                offer_all(link, &self.profiles, &id, &has);
            }
            Change::Fact(fact) => match self.profiles.merge_fleet(&id, &fact) {
                Merged::Froze => {
                    tracing::info!("profiles: {id} frozen (fleet)");
                    link.fleet.freeze(id.clone(), self.profiles.generation(&id));
                }
                Merged::Reset => {
                    tracing::info!(
                        "profiles: {id} reset fleet-wide (generation {}): learning again",
                        self.profiles.generation(&id)
                    );
                    link.marked.remove(&id);
                }
                Merged::Changed | Merged::Nothing => {}
            },
        }
    }

    /// No event waits here for its workload's fleet profile.
    pub fn holds_nothing(&self) -> bool {
        self.fleet.as_ref().is_none_or(|link| link.held.is_empty())
    }

    /// Passes on, in order, the events whose workload's fleet profile is in or whose
    /// wait has ended (all of them at `shutdown`).
    pub fn release(&mut self, shutdown: bool, out: &mut Vec<EnrichedEvent>) {
        let Some(link) = &mut self.fleet else { return };
        let now = Instant::now();
        for (id, wait) in link.sync.iter_mut() {
            if wait.is_some_and(|deadline| shutdown || deadline <= now) {
                tracing::debug!("profiles: {id}: no fleet profile in time; judging locally");
                *wait = None;
            }
        }
        if link.held.is_empty() {
            return;
        }
        let (free, still): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut link.held)
            .into_iter()
            .partition(|(id, _)| !link.waiting(id));
        link.held = still;
        for (_, mut event) in free {
            self.annotate(&mut event);
            out.push(event);
        }
    }

    pub fn fleet_stats(&self) -> Option<FleetStats> {
        self.fleet.as_ref().map(|l| l.fleet.stats())
    }

    /// The container's workload, and whether its events are settled with the fleet
    /// (always, without one).
    fn workload(&mut self, container: &ContainerContext) -> Option<(Arc<WorkloadId>, bool)> {
        let meta = container.meta.as_ref()?;
        if let Some(known) = self.workloads.get(&container.id) {
            return known.workload.clone().map(|w| (w, known.settled));
        }
        let workload = workload_of(meta).map(Arc::new);
        let settled = self.fleet.is_none();
        self.workloads.insert(
            container.id.clone(),
            Known {
                workload: workload.clone(),
                settled,
            },
        );
        workload.map(|w| (w, settled))
    }

    /// Shows `event` to its workload's profile and notes the verdict on it.
    pub fn annotate(&mut self, event: &mut EnrichedEvent) {
        if event.container.is_host() {
            return;
        }
        if let Some((id, _)) = self.workload(&event.container) {
            self.judge(event, id);
        }
    }

    fn judge(&mut self, event: &mut EnrichedEvent, id: Arc<WorkloadId>) {
        let verdict = match &event.event.detail {
            Detail::Exec(x) if x.result == 0 => event
                .process
                .as_ref()
                .map(|p| self.profiles.observe_exec(&id, &p.exepath)),
            Detail::Connect(c)
                if matches!(c.family, SocketFamily::Inet | SocketFamily::Inet6)
                    && (c.result >= 0 || c.result == EINPROGRESS) =>
            {
                match c.address {
                    Some(ip) if !ip.is_loopback() && !ip.is_unspecified() => {
                        let mut buf = HostBuf::default();
                        let host = host_key(None, ip, &mut buf);
                        Some(self.profiles.observe_destination(
                            &id,
                            host,
                            c.port,
                            proto(c.sock_type),
                        ))
                    }
                    _ => None,
                }
            }
            Detail::Syscall(x) if x.syscall == EventType::Listen && x.result >= 0 => {
                x.socket.and_then(|s| s.local).map(|(_, port)| {
                    let sock_type = x.socket.map_or(0, |s| s.sock_type);
                    self.profiles.observe_listen(&id, port, proto(sock_type))
                })
            }
            Detail::Open(o)
                if o.result >= 0 && (o.flags & O_ACCMODE != 0 || o.flags & O_CREAT != 0) =>
            {
                let path = o.resolved.as_deref().unwrap_or(&o.path);
                let dir = Path::new(std::ffi::OsStr::from_bytes(path))
                    .parent()
                    .map(|d| d.as_os_str().as_bytes());
                dir.map(|d| self.profiles.observe_write_dir(&id, d))
            }
            _ => None,
        };
        if let Some(link) = &self.fleet
            && self.profiles.has_learned()
        {
            for learned in self.profiles.take_learned() {
                link.fleet
                    .publish(&learned.workload, learned.generation, &learned.entry);
            }
        }
        event.workload = Some(WorkloadFacts {
            learning: self.profiles.is_learning(&id),
            new: verdict == Some(Verdict::New),
            id,
        });
    }

    /// Once a second: runtime for the running workloads, the CLI's changes, and
    /// now and then the changed profiles to disk.
    pub fn housekeeping(&mut self, running: &[ContainerContext], elapsed: Duration) {
        let ids: Vec<Arc<WorkloadId>> = running
            .iter()
            .filter_map(|c| self.workload(c).map(|(w, _)| w))
            .collect();
        let live: HashSet<&Arc<str>> = running.iter().map(|c| &c.id).collect();
        self.workloads.retain(|id, _| live.contains(id));
        let frozen = self.profiles.stats().frozen;
        let learning: Vec<Arc<WorkloadId>> = ids
            .iter()
            .filter(|w| self.profiles.is_learning(w))
            .cloned()
            .collect();
        self.profiles.advance(ids.iter().map(|w| &**w), elapsed);
        if self.fleet.is_some() {
            for id in &ids {
                self.see(id);
            }
            self.fleet_housekeeping(&learning);
        }
        self.profiles.reload_external();
        // A profile just frozen is written at once: `monitor profiles` shows it so.
        if self.last_persist.elapsed() >= PERSIST_EVERY || self.profiles.stats().frozen > frozen {
            self.persist();
        }
    }

    /// The fleet's part of housekeeping: runtime marks for the workloads that learn,
    /// the freezes this node's window decided, and everything offered again after
    /// facts were dropped from a full queue.
    fn fleet_housekeeping(&mut self, learning: &[Arc<WorkloadId>]) {
        let Some(link) = &mut self.fleet else { return };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let start = now - now % link.slot_secs;
        for id in learning {
            let generation = self.profiles.generation(id);
            if self.profiles.is_learning(id) {
                if link.marked.get(id) != Some(&start) {
                    link.fleet
                        .mark_runtime(id, generation, start, link.slot_secs);
                    link.marked.insert(id.clone(), start);
                }
            } else {
                tracing::info!("profiles: {id} frozen: its learning window has passed");
                link.fleet.freeze(id.clone(), generation);
            }
        }
        // Watches follow the local profiles: one evicted (profiles.max_profiles) is
        // watched no more, so their number stays bounded however many workloads come
        // and go.
        let evicted: Vec<Arc<WorkloadId>> = link
            .sync
            .iter()
            .filter(|(id, wait)| wait.is_none() && self.profiles.profile(id).is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in evicted {
            link.fleet.unwatch(id.clone());
            link.sync.remove(&id);
            link.marked.remove(&id);
            link.initial.remove(&id);
        }
        let stats = link.fleet.stats();
        if stats.dropped > link.resent_at && stats.connected && stats.pending == 0 {
            link.resent_at = stats.dropped;
            let ids: Vec<Arc<WorkloadId>> = link.sync.keys().cloned().collect();
            for id in ids {
                offer_all(link, &self.profiles, &id, &HashSet::new());
            }
        }
    }

    /// Writes what changed (also at shutdown).
    pub fn persist(&mut self) {
        self.last_persist = Instant::now();
        if let Err(err) = self.profiles.persist() {
            tracing::warn!("profiles: could not write the state directory: {err}");
        }
    }

    pub fn stats(&self) -> ProfilesStats {
        self.profiles.stats()
    }

    /// Each workload's profile: its id, whether it learns, and its size.
    pub fn states(&self) -> Vec<(String, bool, usize)> {
        self.profiles
            .workloads()
            .map(|w| {
                let size = self.profiles.profile(w).map_or(0, |p| p.entries());
                (w.to_string(), self.profiles.is_learning(w), size)
            })
            .collect()
    }
}

/// Offers the fleet every entry of the workload's local profile but those it `has`.
fn offer_all(link: &FleetLink, profiles: &Profiles, id: &WorkloadId, has: &HashSet<FleetEntry>) {
    let Some(profile) = profiles.profile(id) else {
        return;
    };
    for entry in FleetEntry::all_of(profile) {
        if !has.contains(&entry) {
            link.fleet.publish(id, profile.generation, &entry);
        }
    }
}

fn proto(sock_type: u16) -> Proto {
    if sock_type == SOCK_DGRAM {
        Proto::Udp
    } else {
        Proto::Tcp
    }
}
