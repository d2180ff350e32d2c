//! Profiles at work in the pipeline: each container event is shown to its workload's
//! profile (learned while the window is open, judged once it is frozen) and carries
//! the verdict to the rules as [`WorkloadFacts`]; once a second the running workloads'
//! observed runtime advances, changes made by `monitor profiles` are taken in, and
//! what changed is written out now and then.
use std::{
    collections::{HashMap, HashSet},
    os::unix::ffi::OsStrExt,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    HostBuf, Profiles, ProfilesConfig, ProfilesStats, Proto, Verdict, WorkloadId, host_key,
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
    workloads: HashMap<Arc<str>, Option<Arc<WorkloadId>>>,
    last_persist: Instant,
}

impl Learner {
    pub fn new(config: ProfilesConfig) -> Learner {
        Learner {
            profiles: Profiles::open(config),
            workloads: HashMap::new(),
            last_persist: Instant::now(),
        }
    }

    fn workload(&mut self, container: &ContainerContext) -> Option<Arc<WorkloadId>> {
        let meta = container.meta.as_ref()?;
        if let Some(known) = self.workloads.get(&container.id) {
            return known.clone();
        }
        let id = workload_of(meta).map(Arc::new);
        self.workloads.insert(container.id.clone(), id.clone());
        id
    }

    /// Shows `event` to its workload's profile and notes the verdict on it.
    pub fn annotate(&mut self, event: &mut EnrichedEvent) {
        if event.container.is_host() {
            return;
        }
        let Some(id) = self.workload(&event.container) else {
            return;
        };
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
        event.workload = Some(WorkloadFacts {
            learning: self.profiles.is_learning(&id),
            new: verdict == Some(Verdict::New),
            id,
        });
    }

    /// Once a second: runtime for the running workloads, the CLI's changes, and
    /// now and then the changed profiles to disk.
    pub fn housekeeping(&mut self, running: &[ContainerContext], elapsed: Duration) {
        let ids: Vec<Arc<WorkloadId>> = running.iter().filter_map(|c| self.workload(c)).collect();
        let live: HashSet<&Arc<str>> = running.iter().map(|c| &c.id).collect();
        self.workloads.retain(|id, _| live.contains(id));
        let frozen = self.profiles.stats().frozen;
        self.profiles.advance(ids.iter().map(|w| &**w), elapsed);
        self.profiles.reload_external();
        // A profile just frozen is written at once: `monitor profiles` shows it so.
        if self.last_persist.elapsed() >= PERSIST_EVERY || self.profiles.stats().frozen > frozen {
            self.persist();
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

fn proto(sock_type: u16) -> Proto {
    if sock_type == SOCK_DGRAM {
        Proto::Udp
    } else {
        Proto::Tcp
    }
}
