//! Every workload's profile: learning, the verdict for each observation, the window,
//! the caps, and keeping the profiles in the state directory.
use std::{
    collections::{HashMap, HashSet},
    io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use super::{
    disk::{self, Stamp, StoredProfile},
    fleet::{Fact, FleetEntry},
    profile::{Added, Profile, Proto, is_unprofiled_dir, trim_dir},
    workload::WorkloadId,
};

/// Where profiles are kept unless the settings say otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/monitor/profiles";

#[derive(Clone, Debug, PartialEq)]
pub struct ProfilesConfig {
    pub enabled: bool,
    /// `None`: profiles live in memory only and start over at every start.
    pub state_dir: Option<PathBuf>,
    /// Observed runtime after which a workload's profile is frozen.
    pub learning_window: Duration,
    /// Most entries in each of a profile's four sets.
    pub max_entries: usize,
    /// Most profiles kept; past it the least recently seen is evicted.
    pub max_profiles: usize,
    /// Shared with the fleet through NATS JetStream; `None`: this node's own.
    pub fleet: Option<super::fleet::FleetConfig>,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        ProfilesConfig {
            enabled: true,
            state_dir: Some(PathBuf::from(DEFAULT_STATE_DIR)),
            learning_window: Duration::from_secs(3600),
            max_entries: 512,
            max_profiles: 1024,
            fleet: None,
        }
    }
}

/// What an observation means for the workload's profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The window is open: the entry is part of the profile now (or was already, or
    /// its set is full and the refusal was counted). Nothing is new while learning.
    Learned,
    /// Frozen, and the profile holds it.
    Known,
    /// Frozen, and the profile does not hold it.
    New,
}

/// Counts for metrics. Evictions are since this start (monotonic counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProfilesStats {
    pub profiles: usize,
    pub learning: usize,
    pub frozen: usize,
    pub entries: usize,
    /// Entries not learned because their set was full.
    pub evictions_entries: u64,
    /// Profiles dropped because there were `max_profiles` already.
    pub evictions_profiles: u64,
}

struct Slot {
    profile: Profile,
    /// `Profiles::tick` when last observed: the least recent goes first.
    seen: u64,
    /// `Profiles::epoch` of the last `advance` that counted this workload's runtime.
    advanced: u64,
    dirty: bool,
    /// The file as this process last wrote or read it.
    written: Option<(PathBuf, Stamp)>,
    /// The fleet's runtime marks of the profile's generation (slot starts), and the
    /// runtime they add up to: the time any node saw the workload run.
    marks: HashSet<u64>,
    fleet_observed: Duration,
}

impl Slot {
    fn new(profile: Profile, seen: u64) -> Self {
        Slot {
            profile,
            seen,
            advanced: 0,
            dirty: true,
            written: None,
            marks: HashSet::new(),
            fleet_observed: Duration::ZERO,
        }
    }

    /// Starts the workload over at the fleet's newer `generation` (a fleet-wide reset).
    fn regenerate(&mut self, generation: u64) {
        self.profile = Profile {
            generation,
            ..Profile::default()
        };
        self.marks.clear();
        self.fleet_observed = Duration::ZERO;
        self.dirty = true;
    }
}

/// What merging a fleet fact did to the local profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merged {
    /// Known already, or of an older generation.
    Nothing,
    Changed,
    /// The fleet's runtime closed the window, or the fleet froze the workload.
    Froze,
    /// A fleet-wide reset: learning again from nothing.
    Reset,
}

/// A fact this node learned, for the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    pub workload: WorkloadId,
    pub generation: u64,
    pub entry: FleetEntry,
}

type Hasher = foldhash::fast::RandomState;

/// All workloads' profiles.
pub struct Profiles {
    config: ProfilesConfig,
    slots: HashMap<WorkloadId, Slot, Hasher>,
    tick: u64,
    epoch: u64,
    evictions_entries: u64,
    evictions_profiles: u64,
    /// Files of evicted profiles, deleted at the next `persist`.
    removed: Vec<PathBuf>,
    /// The state directory's stamp when a full scan found nothing changed by others.
    dir_stamp: Option<Stamp>,
    /// What was newly learned, kept for the fleet when there is one.
    learned: Option<Vec<Learned>>,
}

impl Profiles {
    /// The profiles in the state directory (none when it does not exist yet). A file
    /// that cannot be read is named in a warning and set aside; its workload learns
    /// again from nothing.
    pub fn open(config: ProfilesConfig) -> Self {
        let mut profiles = Profiles {
            config,
            slots: HashMap::default(),
            tick: 0,
            epoch: 0,
            evictions_entries: 0,
            evictions_profiles: 0,
            removed: Vec::new(),
            dir_stamp: None,
            learned: None,
        };
        let Some(dir) = profiles.config.state_dir.clone() else {
            return profiles;
        };
        let files = match disk::read_dir(&dir) {
            Ok(files) => files,
            Err(err) => {
                tracing::warn!(
                    "profiles: cannot read the state directory {}: {err}; every workload \
                     learns from nothing (check its permissions)",
                    dir.display()
                );
                return profiles;
            }
        };
        let mut loaded: Vec<(u64, WorkloadId, Slot)> = Vec::new();
        for read in files {
            let stored = match read.profile {
                Ok(stored) => stored,
                Err(err) => {
                    warn_corrupt(&read.path, &err);
                    continue;
                }
            };
            let Ok(id) = stored.id() else { continue };
            let mut slot = Slot::new(stored.to_profile(profiles.config.max_entries), 0);
            slot.dirty = false;
            if read.path != dir.join(disk::file_name(&id)) {
                // Renamed by hand: adopt it under its proper name.
                slot.dirty = true;
                profiles.removed.push(read.path.clone());
            } else {
                slot.written = Some((read.path, read.stamp));
            }
            loaded.push((stored.last_seen, id, slot));
        }
        // Most recently seen first: those are kept when there are too many.
        loaded.sort_by_key(|l| std::cmp::Reverse(l.0));
        let keep = profiles.max_profiles();
        let count = loaded.len();
        for (i, (_, id, mut slot)) in loaded.into_iter().enumerate() {
            if i >= keep {
                profiles.evictions_profiles += 1;
                if let Some((path, _)) = slot.written.take() {
                    profiles.removed.push(path);
                }
                continue;
            }
            slot.seen = (count - i) as u64;
            profiles.slots.insert(id, slot);
        }
        profiles.tick = count as u64;
        profiles
    }

    pub fn config(&self) -> &ProfilesConfig {
        &self.config
    }

    fn max_profiles(&self) -> usize {
        self.config.max_profiles.max(1)
    }

    /// The profile of `w`, made (learning) when it is new.
    fn slot(&mut self, w: &WorkloadId) -> &mut Slot {
        self.tick += 1;
        if !self.slots.contains_key(w) {
            self.make_room();
            self.slots
                .insert(w.clone(), Slot::new(Profile::default(), 0));
        }
        let slot = self
            .slots
            .get_mut(w)
            .expect("the profile was just inserted");
        slot.seen = self.tick;
        slot
    }

    fn make_room(&mut self) {
        while self.slots.len() >= self.max_profiles() {
            let Some(oldest) = self
                .slots
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(id, _)| id.clone())
            else {
                return;
            };
            if let Some(slot) = self.slots.remove(&oldest)
                && let Some((path, _)) = slot.written
            {
                self.removed.push(path);
            }
            self.evictions_profiles += 1;
        }
    }

    fn observe(
        &mut self,
        w: &WorkloadId,
        has: impl FnOnce(&Profile) -> bool,
        add: impl FnOnce(&mut Profile, usize) -> Added,
        entry: impl FnOnce() -> FleetEntry,
    ) -> Verdict {
        let cap = self.config.max_entries;
        // Known workloads take the one lookup of the fast path; only a new workload
        // pays for the insertion.
        let slot = match self.slots.get_mut(w) {
            Some(slot) => {
                self.tick += 1;
                slot.seen = self.tick;
                slot
            }
            None => self.slot(w),
        };
        if slot.profile.frozen {
            return if has(&slot.profile) {
                Verdict::Known
            } else {
                Verdict::New
            };
        }
        match add(&mut slot.profile, cap) {
            Added::Known => {}
            Added::Added => {
                slot.dirty = true;
                let generation = slot.profile.generation;
                if let Some(learned) = &mut self.learned {
                    learned.push(Learned {
                        workload: w.clone(),
                        generation,
                        entry: entry(),
                    });
                }
            }
            Added::Full => {
                slot.profile.refused += 1;
                slot.dirty = true;
                self.evictions_entries += 1;
            }
        }
        Verdict::Learned
    }

    /// An executable the workload ran (its path as the kernel gave it).
    pub fn observe_exec(&mut self, w: &WorkloadId, exepath: &[u8]) -> Verdict {
        self.observe(
            w,
            |p| p.executables.contains(exepath),
            |p, cap| p.add_executable(exepath, cap),
            || FleetEntry::Executable(exepath.into()),
        )
    }

    /// An outbound connection or datagram; `host` as [`super::profile::host_key`]
    /// gives it (the DNS name, else the network).
    pub fn observe_destination(
        &mut self,
        w: &WorkloadId,
        host: &str,
        port: u16,
        proto: Proto,
    ) -> Verdict {
        self.observe(
            w,
            |p| p.destinations.contains(host, port, proto),
            |p, cap| p.add_destination(host, port, proto, cap),
            || {
                FleetEntry::Destination(super::Destination {
                    host: host.to_string(),
                    port,
                    proto,
                })
            },
        )
    }

    /// A port the workload listens on (TCP) or receives on (UDP).
    pub fn observe_listen(&mut self, w: &WorkloadId, port: u16, proto: Proto) -> Verdict {
        self.observe(
            w,
            |p| p.listening.contains(&(port, proto)),
            |p, cap| p.add_listen(port, proto, cap),
            || FleetEntry::Listen(port, proto),
        )
    }

    /// The directory of a file the workload wrote. Temporary and virtual directories
    /// are never profiled, so a write there is always `Known`.
    pub fn observe_write_dir(&mut self, w: &WorkloadId, dir: &[u8]) -> Verdict {
        let dir = trim_dir(dir);
        if is_unprofiled_dir(dir) {
            return Verdict::Known;
        }
        self.observe(
            w,
            |p| p.write_dirs.contains(dir),
            |p, cap| p.add_write_dir(dir, cap),
            || FleetEntry::WriteDir(dir.into()),
        )
    }

    /// True while the workload's window is open; a workload never seen learns from
    /// its first event, so it is learning too.
    pub fn is_learning(&self, w: &WorkloadId) -> bool {
        self.slots.get(w).is_none_or(|s| !s.profile.frozen)
    }

    pub fn profile(&self, w: &WorkloadId) -> Option<&Profile> {
        self.slots.get(w).map(|s| &s.profile)
    }

    pub fn workloads(&self) -> impl Iterator<Item = &WorkloadId> {
        self.slots.keys()
    }

    /// Counts `elapsed` of observed runtime for each workload with a running
    /// container (once however many of its containers run), and freezes those whose
    /// window has passed. A workload with nothing running learns nothing, so its
    /// window waits for it: an hour of learning is an hour of it running.
    pub fn advance<'a>(
        &mut self,
        running: impl Iterator<Item = &'a WorkloadId>,
        elapsed: Duration,
    ) {
        self.epoch += 1;
        let window = self.config.learning_window;
        for w in running {
            let epoch = self.epoch;
            let slot = match self.slots.get_mut(w) {
                Some(slot) => {
                    // Running counts as seen: an idle but running workload is not
                    // the one to evict.
                    slot.seen = self.tick;
                    slot
                }
                None => self.slot(w),
            };
            if slot.advanced == epoch {
                continue;
            }
            slot.advanced = epoch;
            if slot.profile.frozen {
                continue;
            }
            slot.profile.observed += elapsed;
            if slot.profile.observed >= window {
                slot.profile.frozen = true;
            }
            slot.dirty = true;
        }
    }

    /// Keeps what is newly learned from here on, for [`Profiles::take_learned`].
    pub fn keep_learned(&mut self) {
        self.learned.get_or_insert_with(Vec::new);
    }

    /// Whether [`Profiles::take_learned`] has anything.
    pub fn has_learned(&self) -> bool {
        self.learned.as_ref().is_some_and(|l| !l.is_empty())
    }

    /// What was newly learned since the last call.
    pub fn take_learned(&mut self) -> Vec<Learned> {
        self.learned
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The profile's fleet generation (0 for a workload never seen).
    pub fn generation(&self, w: &WorkloadId) -> u64 {
        self.slots.get(w).map_or(0, |s| s.profile.generation)
    }

    /// Merges a fact from the fleet into the local profile. Facts of a newer
    /// generation start the profile over (a fleet-wide reset); older ones are ignored.
    /// Within a generation learning only grows: entries are added (up to the cap,
    /// refusals counted), runtime marks add up to the fleet's observed runtime, and a
    /// freeze stays.
    pub fn merge_fleet(&mut self, w: &WorkloadId, fact: &Fact) -> Merged {
        let cap = self.config.max_entries;
        let window = self.config.learning_window;
        let generation = match fact {
            Fact::State(s) => s.generation,
            Fact::Entry { generation, .. } | Fact::Runtime { generation, .. } => *generation,
        };
        let slot = match self.slots.get_mut(w) {
            Some(slot) => slot,
            None => self.slot(w),
        };
        if generation < slot.profile.generation {
            return Merged::Nothing;
        }
        let mut merged = Merged::Nothing;
        if generation > slot.profile.generation {
            slot.regenerate(generation);
            merged = Merged::Reset;
        }
        let was_frozen = slot.profile.frozen;
        let mut refused = false;
        match fact {
            Fact::State(state) => {
                if state.frozen && !slot.profile.frozen {
                    slot.profile.frozen = true;
                    slot.dirty = true;
                }
            }
            Fact::Entry { entry, .. } => match entry.add_to(&mut slot.profile, cap) {
                Added::Known => {}
                Added::Added => {
                    slot.dirty = true;
                    if merged == Merged::Nothing {
                        merged = Merged::Changed;
                    }
                }
                Added::Full => {
                    slot.profile.refused += 1;
                    slot.dirty = true;
                    refused = true;
                }
            },
            Fact::Runtime { start, secs, .. } => {
                if slot.marks.insert(*start) {
                    slot.fleet_observed += Duration::from_secs(*secs);
                    if slot.fleet_observed > slot.profile.observed {
                        slot.profile.observed = slot.fleet_observed;
                        slot.dirty = true;
                    }
                    if !slot.profile.frozen && slot.profile.observed >= window {
                        slot.profile.frozen = true;
                    }
                    if merged == Merged::Nothing {
                        merged = Merged::Changed;
                    }
                }
            }
        }
        if slot.profile.frozen && !was_frozen && merged != Merged::Reset {
            merged = Merged::Froze;
        }
        if refused {
            self.evictions_entries += 1;
        }
        merged
    }

    /// Stops learning now (as `monitor profiles freeze` does).
    pub fn freeze(&mut self, w: &WorkloadId) -> bool {
        match self.slots.get_mut(w) {
            Some(slot) if !slot.profile.frozen => {
                slot.profile.frozen = true;
                slot.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Forgets what was learned: the workload learns again from nothing.
    pub fn reset(&mut self, w: &WorkloadId) -> bool {
        match self.slots.get_mut(w) {
            Some(slot) => {
                // The fleet's generation stays: what is learned next still counts there.
                slot.profile = Profile {
                    generation: slot.profile.generation,
                    ..Profile::default()
                };
                slot.dirty = true;
                true
            }
            None => false,
        }
    }

    /// Writes the profiles changed since the last call, each to its own file,
    /// atomically, creating the state directory (0700). Changes the CLI made are
    /// taken in first, so a write never undoes a `reset` or `freeze`. Every profile
    /// is tried; the first error is returned.
    pub fn persist(&mut self) -> io::Result<()> {
        let Some(dir) = self.config.state_dir.clone() else {
            return Ok(());
        };
        self.reload_external();
        let mut first_err = None;
        for path in std::mem::take(&mut self.removed) {
            if let Err(err) = std::fs::remove_file(&path)
                && err.kind() != io::ErrorKind::NotFound
            {
                first_err.get_or_insert(err);
            }
        }
        for (id, slot) in self.slots.iter_mut().filter(|(_, s)| s.dirty) {
            let stored = StoredProfile::from_profile(id, &slot.profile);
            match disk::write(&dir, id, &stored) {
                Ok(written) => {
                    slot.written = Some(written);
                    slot.dirty = false;
                }
                Err(err) => {
                    first_err.get_or_insert(io::Error::new(
                        err.kind(),
                        format!(
                            "cannot write the profile of {id} in {}: {err}",
                            dir.display()
                        ),
                    ));
                }
            }
        }
        // Our own renames changed the directory: the next check looks at every file.
        self.dir_stamp = None;
        first_err.map_or(Ok(()), Err)
    }

    /// Takes in what `monitor profiles reset|freeze` changed on disk: a file
    /// rewritten by someone else replaces the profile in memory; a file deleted
    /// resets it. Costs one `stat` of the directory when nothing changed there.
    pub fn reload_external(&mut self) {
        let Some(dir) = self.config.state_dir.clone() else {
            return;
        };
        let now_stamp = disk::stamp(&dir).ok();
        if now_stamp.is_some() && now_stamp == self.dir_stamp {
            return;
        }
        let cap = self.config.max_entries;
        let mut retry = false;
        for (id, slot) in self.slots.iter_mut() {
            let Some((path, stamp)) = &slot.written else {
                continue;
            };
            match disk::stamp(path) {
                Ok(now) if now == *stamp => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    slot.profile = Profile {
                        generation: slot.profile.generation,
                        ..Profile::default()
                    };
                    slot.written = None;
                    slot.dirty = true;
                }
                Err(_) => retry = true,
                Ok(_) => {
                    // Unreadable for now (a permission change): tried again next time.
                    let Ok(read) = disk::read(path) else {
                        retry = true;
                        continue;
                    };
                    match read.profile {
                        Ok(stored) if stored.workload == id.to_string() => {
                            slot.profile = stored.to_profile(cap);
                            slot.written = Some((read.path, read.stamp));
                            slot.dirty = false;
                        }
                        Ok(stored) => {
                            warn_corrupt(
                                path,
                                &format!("holds workload `{}`, not {id}", stored.workload),
                            );
                            slot.profile = Profile::default();
                            slot.written = None;
                            slot.dirty = true;
                        }
                        Err(err) => {
                            warn_corrupt(path, &err);
                            slot.profile = Profile::default();
                            slot.written = None;
                            slot.dirty = true;
                        }
                    }
                }
            }
        }
        // A directory changed within the last second may change again within the same
        // timestamp tick unseen: it is trusted only once it has been still for a while.
        self.dir_stamp = now_stamp.filter(|_| {
            !retry
                && std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| {
                        SystemTime::now()
                            .duration_since(m)
                            .is_ok_and(|age| age > Duration::from_secs(1))
                    })
        });
    }

    pub fn stats(&self) -> ProfilesStats {
        let mut s = ProfilesStats {
            profiles: self.slots.len(),
            evictions_entries: self.evictions_entries,
            evictions_profiles: self.evictions_profiles,
            ..ProfilesStats::default()
        };
        for slot in self.slots.values() {
            if slot.profile.frozen {
                s.frozen += 1;
            } else {
                s.learning += 1;
            }
            s.entries += slot.profile.entries();
        }
        s
    }
}

fn warn_corrupt(path: &Path, err: &str) {
    tracing::warn!(
        "profiles: {} cannot be read ({err}); moved aside to {}.corrupt, and its \
         workload learns again from nothing",
        path.display(),
        path.display()
    );
    disk::set_aside(path);
}

#[cfg(test)]
pub(crate) mod tests;
