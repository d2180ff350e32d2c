//! Process and container context for every event: who ran it (process, ancestry,
//! user), and in which container (id, name, image, labels, pod).
pub mod cgroup;
pub mod dns;
pub mod hash;
pub mod hold;
pub mod host;
pub mod process;
pub mod procfs;
pub mod runtime;
pub mod users;

use std::{
    collections::HashMap,
    os::unix::{ffi::OsStrExt, fs::FileTypeExt},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::event::{Detail, Event, Exec, Fork};
use cgroup::{CgroupPaths, Runtime, container_of};
use hash::{ExeHasher, FileKey};
use hold::{MetadataHold, Verdict};
use host::HostRoot;
use process::{ProcessInfo, ProcessTable, exec_id};
use runtime::{ContainerMeta, MetadataSource, RuntimeStats};
use tokio::sync::Notify;
use users::{RootFs, UserDb};

#[derive(Clone, Debug)]
pub struct ContextConfig {
    pub host_root: PathBuf,
    /// The runtime APIs to ask for container metadata (none: ids only).
    pub runtimes: Vec<RuntimeSocket>,
    pub process_cap: usize,
    pub exited_grace: Duration,
    pub ancestry_depth: usize,
    /// Longest an event is held for a new container's metadata.
    pub metadata_wait: Duration,
    pub exe_hash: bool,
    /// Between two `container_stats` events of a container.
    pub container_stats_interval: Duration,
    /// Learned workload profiles (`None`: none learned).
    pub profiles: Option<crate::profiles::ProfilesConfig>,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            host_root: PathBuf::from("/"),
            runtimes: vec![RuntimeSocket {
                runtime: Runtime::Docker,
                socket: "/var/run/docker.sock".into(),
                required: true,
            }],
            process_cap: 65_536,
            exited_grace: Duration::from_secs(30),
            ancestry_depth: 8,
            metadata_wait: Duration::from_millis(2000),
            exe_hash: true,
            container_stats_interval: Duration::from_secs(10),
            profiles: None,
        }
    }
}

/// A runtime API to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSocket {
    pub runtime: Runtime,
    /// Below the host root.
    pub socket: String,
    /// Watched even when the socket is not there at start (else it is skipped then).
    pub required: bool,
}

/// Where an event happened: the host, or a container.
#[derive(Clone, Debug)]
pub struct ContainerContext {
    /// `host`, or the full container id.
    pub id: Arc<str>,
    pub runtime: Option<Runtime>,
    /// `None` while the runtime has not told (yet), or for the host.
    pub meta: Option<Arc<ContainerMeta>>,
}

impl ContainerContext {
    pub fn is_host(&self) -> bool {
        self.runtime.is_none()
    }
}

/// A container and whether its metadata may still come.
struct Resolved {
    container: ContainerContext,
    pending: bool,
}

/// An event with everything known about its process and container.
#[derive(Clone, Debug)]
pub struct EnrichedEvent {
    pub event: Event,
    /// `None` only when the process was gone before the agent could learn anything.
    pub process: Option<Arc<ProcessInfo>>,
    /// Parent first.
    pub ancestors: Vec<Arc<ProcessInfo>>,
    pub container: ContainerContext,
    pub exe_sha256: Option<Arc<str>>,
    /// The container's workload and what its learned profile says of this event
    /// (see [`crate::profiles`]); `None` on the host or without profiles.
    pub workload: Option<WorkloadFacts>,
}

/// A workload's profile as one event sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadFacts {
    pub id: Arc<crate::profiles::WorkloadId>,
    /// The learning window is open.
    pub learning: bool,
    /// The frozen profile lacks what the event did: its executable (exec), its
    /// destination (connect), its port (listen) or its directory (a write).
    pub new: bool,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ContextStats {
    pub processes: process::TableStats,
    /// Events that went out without their container's metadata.
    pub metadata_missing: u64,
    /// Events held for their container's metadata.
    pub hold: hold::HoldStats,
    pub bootstrapped: usize,
}

pub struct Context {
    config: ContextConfig,
    host: HostRoot,
    boot_id: String,
    /// Nanoseconds per clock tick of /proc start times.
    ns_per_tick: u64,
    processes: ProcessTable,
    cgroups: CgroupPaths,
    users: UserDb,
    hasher: Option<ExeHasher>,
    runtimes: Vec<MetadataSource>,
    /// Told whenever any runtime has answered: held events are looked at again.
    runtimes_answered: Arc<Notify>,
    hold: MetadataHold,
    host_container: ContainerContext,
    metadata_missing: u64,
    bootstrapped: usize,
}

impl Context {
    /// Builds the context and starts watching the runtimes (the process table is seeded
    /// by [`Context::seed_processes`]). Call within a tokio runtime: the runtime clients
    /// run as tasks.
    pub fn new(config: ContextConfig) -> Self {
        let host = HostRoot::new(&config.host_root);
        let boot_id = procfs::boot_id(&host);
        let runtimes_answered = Arc::new(Notify::new());
        Self {
            ns_per_tick: 1_000_000_000 / procfs::ticks_per_second(),
            processes: ProcessTable::new(config.process_cap, config.exited_grace),
            cgroups: CgroupPaths::new(&host),
            users: UserDb::new(host.clone()),
            hasher: config.exe_hash.then(ExeHasher::start),
            runtimes: config
                .runtimes
                .iter()
                .filter_map(|wanted| start_runtime(&host, wanted, &runtimes_answered))
                .collect(),
            runtimes_answered,
            hold: MetadataHold::new(config.metadata_wait, hold::HOLD_CAP),
            host_container: ContainerContext {
                id: Arc::from("host"),
                runtime: None,
                meta: None,
            },
            metadata_missing: 0,
            bootstrapped: 0,
            boot_id,
            host,
            config,
        }
    }

    /// The host's cgroups: events from them are the kernel filter's host scope. A
    /// cgroup that only a runtime can name (containerd's `/default/NAME`) is a
    /// container's once that runtime has claimed it: the host scope's narrower filter
    /// would drop what only container rules watch.
    ///
    /// Returns the host's and, apart, the containers' (a kill slot scoped to
    /// containers acts only in those: a cgroup in neither table is not judged).
    pub fn cgroup_scopes(
        &mut self,
    ) -> (
        std::collections::HashSet<u64>,
        std::collections::HashSet<u64>,
    ) {
        let runtimes = &self.runtimes;
        self.cgroups
            .scopes(|path| claimed_by_runtime(runtimes, path).is_some())
    }

    /// Where the cgroup v2 hierarchy is mounted (the deny programs attach to its root).
    pub fn cgroup_root(&self) -> Option<&std::path::Path> {
        self.cgroups.root()
    }

    pub fn stats(&self) -> ContextStats {
        ContextStats {
            processes: self.processes.stats,
            metadata_missing: self.metadata_missing,
            hold: self.hold.stats,
            bootstrapped: self.bootstrapped,
        }
    }

    /// Waits (at most `cap`, all runtimes at once) until every watched runtime has
    /// answered its first listing or is known to be down, so the first events already
    /// carry their containers' metadata. A runtime still silent at the cap is named in
    /// a warning: its containers get their metadata once it answers.
    pub async fn wait_runtimes(&self, cap: Duration) {
        let started = Instant::now();
        futures_util::future::join_all(self.runtimes.iter().map(|r| r.wait_synced(cap))).await;
        for runtime in &self.runtimes {
            let name = runtime.runtime.name();
            if runtime.is_synced() {
                tracing::info!(
                    "{name} at {} answered its first listing: {} containers described (ready \
                     waited {:?} for the runtimes)",
                    runtime.socket,
                    runtime.described(),
                    started.elapsed()
                );
            } else if !runtime.is_down() {
                tracing::warn!(
                    "{name} at {} has not answered its first listing in {cap:?}: ready without \
                     it; its containers get their metadata when it answers",
                    runtime.socket
                );
            }
        }
    }

    /// Seeds the table with every process that exists now, so processes older than the
    /// agent have the same context (and the same exec ids) as new ones. After the
    /// runtimes' first listings: a process of a container that only its runtime can
    /// name (containerd's `/default/web`) is then found in it, not on the host.
    pub fn seed_processes(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.host.path("/proc")) else {
            tracing::warn!("cannot read /proc: processes older than the agent lack context");
            return;
        };
        let mut snapshots: Vec<procfs::ProcSnapshot> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| procfs::snapshot(&self.host, pid))
            .collect();
        // Parents before children, so each finds its parent's exec id.
        snapshots.sort_by_key(|s| s.start_ticks);
        for snapshot in snapshots {
            self.insert_snapshot(snapshot);
            self.bootstrapped += 1;
        }
        tracing::info!(
            "process table seeded with {} processes from /proc",
            self.bootstrapped
        );
    }

    /// Each watched runtime, with its socket and its counters.
    pub fn runtime_stats(&self) -> impl Iterator<Item = (Runtime, &str, &RuntimeStats)> {
        self.runtimes
            .iter()
            .map(|r| (r.runtime, r.socket.as_str(), &*r.stats))
    }

    /// A container named by a cgroup path or the last part of one: by the runtimes'
    /// cgroup layouts, else by a runtime that made a cgroup of that name.
    fn container_in_cgroup(&self, path: &str) -> Option<cgroup::ContainerRef> {
        container_of(path).or_else(|| claimed_by_runtime(&self.runtimes, path))
    }

    fn insert_snapshot(&mut self, s: procfs::ProcSnapshot) -> Arc<ProcessInfo> {
        let exepath = s.exepath.clone().unwrap_or_default();
        let container = s
            .cgroup_v2_path
            .as_deref()
            .and_then(|path| self.container_in_cgroup(path));
        let root = root_fs(&container);
        let (user, group) = self.users.names(&root, s.pid, s.uid, s.gid);
        let parent_exec_id = self.processes.get(s.ppid).map(|p| p.exec_id.clone());
        let mut argv = s.argv.into_iter();
        let info = ProcessInfo {
            pid: s.pid,
            ppid: s.ppid,
            name: s.comm,
            exe: argv.next().unwrap_or_default(),
            args: argv.collect(),
            cmdline: Vec::new(),
            exec_id: exec_id(&self.boot_id, s.pid, s.start_ticks, &exepath),
            exe_key: FileKey::of(&self.host.proc(s.pid, "exe")),
            exepath,
            cwd: s.cwd,
            tty: s.tty,
            sid: s.sid,
            vpid: s.vpid,
            vpgid: s.vpgid,
            uid: s.uid,
            gid: s.gid,
            euid: s.euid,
            user,
            group,
            loginuid: s.loginuid,
            start_boot_ns: s.start_ticks * self.ns_per_tick,
            cgroup_id: 0,
            container,
            parent_exec_id,
            capabilities: s.capabilities,
            exe_facts: None,
            env: s.env.map(Arc::new),
            fresh_fork: false,
            container_start: false,
        };
        self.processes.insert(info)
    }

    fn ticks(&self, boot_ns: u64) -> u64 {
        boot_ns / self.ns_per_tick
    }

    /// Adds process and container context to `event`, updating the process table
    /// with what the event says. The container's metadata is what is known now.
    pub fn enrich(&mut self, event: Event) -> EnrichedEvent {
        self.enrich_event(event).0
    }

    /// [`Context::enrich`], and whether a runtime may still describe the container.
    fn enrich_event(&mut self, event: Event) -> (EnrichedEvent, bool) {
        let process = match &event.detail {
            Detail::Exec(exec) if exec.result == 0 => Some(self.on_exec(&event, exec)),
            Detail::Fork(fork) => {
                self.on_fork(&event, fork);
                self.process_of(&event)
            }
            _ => self.process_of(&event),
        };
        if matches!(event.detail, Detail::Exit(_)) {
            self.processes.mark_exited(event.pid);
        }
        let ancestors = process
            .as_ref()
            .map(|p| self.processes.ancestors(p, self.config.ancestry_depth))
            .unwrap_or_default();
        let Resolved { container, pending } = self.container_of(&event, process.as_deref());
        let is_exec = matches!(&event.detail, Detail::Exec(exec) if exec.result == 0);
        let exe_sha256 = match (&mut self.hasher, &process) {
            // Asked for once per exec; other events only look it up.
            (Some(hasher), Some(p)) if !is_exec => p.exe_key.and_then(|key| hasher.get(&key)),
            (Some(hasher), Some(p)) if p.exe_key.is_some() => {
                let mut paths = vec![self.host.proc(p.pid, "exe")];
                if p.container.is_none() && !p.exepath.is_empty() {
                    // A short-lived host process is gone before the worker reads it;
                    // its file usually is not.
                    paths.push(self.host.path(std::ffi::OsStr::from_bytes(&p.exepath)));
                }
                hasher.get_or_request(p.exe_key.expect("checked"), paths)
            }
            _ => None,
        };
        let enriched = EnrichedEvent {
            event,
            process,
            ancestors,
            container,
            exe_sha256,
            workload: None,
        };
        (enriched, pending)
    }

    /// The table's entry for the event's process; on a miss, /proc; failing that, none
    /// (the event still carries its own fields).
    fn process_of(&mut self, event: &Event) -> Option<Arc<ProcessInfo>> {
        if let Some(found) = self.processes.get(event.pid) {
            // A process may rename itself after exec (busybox applets run through
            // /proc/self/exe do); the main thread's current name is the one to report.
            if event.tid == event.pid && found.name != event.comm {
                let mut renamed = (**found).clone();
                renamed.name = event.comm.clone();
                return Some(self.processes.replace(renamed));
            }
            return Some(found.clone());
        }
        self.processes.record_miss();
        let snapshot = procfs::snapshot(&self.host, event.pid)?;
        Some(self.insert_snapshot(snapshot))
    }

    /// The executed file's identity. A short-lived host process may be gone before its
    /// exec is handled; its file, reached by the path the kernel resolved, usually is
    /// not (a container's path means nothing on the host, so it has only `/proc`).
    fn exe_key(&self, pid: u32, exepath: &[u8], on_host: bool) -> Option<FileKey> {
        FileKey::of(&self.host.proc(pid, "exe")).or_else(|| {
            (on_host && !exepath.is_empty())
                .then(|| FileKey::of(&self.host.path(std::ffi::OsStr::from_bytes(exepath))))
                .flatten()
        })
    }

    fn on_exec(&mut self, event: &Event, exec: &Exec) -> Arc<ProcessInfo> {
        let pid = event.pid;
        let previous = self.processes.get(pid).cloned();
        let c = &exec.credentials;
        let exepath = exec.exe.clone().unwrap_or_default();
        let container = std::str::from_utf8(&exec.cgroup_name)
            .ok()
            .and_then(|name| self.container_in_cgroup(&format!("/{name}")))
            .or_else(|| {
                // A runtime that names cgroups by namespace (containerd's `/default/web`)
                // needs the whole path.
                let path = self.cgroups.path_of(event.cgroup_id)?.to_string();
                self.container_in_cgroup(&path)
            })
            .or_else(|| previous.as_ref().and_then(|p| p.container.clone()));
        let root = root_fs(&container);
        let (user, group) = self.users.names(&root, pid, c.uid, c.gid);
        let parent = self.processes.get(c.ppid).cloned();
        // As the kernel had them at the exec (a short-lived process may be gone before
        // /proc is read); else /proc; a process gone before we look keeps what its
        // fork copied from the parent.
        let (sid, tty) = c
            .session
            .or_else(|| procfs::session(&self.host, pid))
            .unwrap_or_else(|| previous.as_ref().map_or((0, 0), |p| (p.sid, p.tty)));
        let vpid = c
            .vpid
            .unwrap_or_else(|| previous.as_ref().map_or(pid, |p| p.vpid));
        let vpgid = c
            .vpgid
            .unwrap_or_else(|| previous.as_ref().map_or(0, |p| p.vpgid));
        let container_start = container.is_some()
            && vpid == 1
            && previous.as_ref().is_none_or(|p| p.fresh_fork)
            && parent.as_ref().is_none_or(|p| p.container != container);
        let mut argv = exec.args.iter().cloned();
        let info = ProcessInfo {
            pid,
            ppid: c.ppid,
            name: event.comm.clone(),
            exe: argv.next().unwrap_or_default(),
            args: argv.collect(),
            cmdline: Vec::new(),
            exec_id: exec_id(
                &self.boot_id,
                pid,
                self.ticks(c.process_start_boot_ns),
                &exepath,
            ),
            exe_key: self.exe_key(pid, &exepath, container.is_none()),
            exepath,
            cwd: procfs::read_link(&self.host, pid, "cwd")
                .or_else(|| previous.as_ref().and_then(|p| p.cwd.clone())),
            tty,
            sid,
            vpid,
            vpgid,
            uid: c.uid,
            gid: c.gid,
            euid: c.euid,
            user,
            group,
            loginuid: c.loginuid,
            start_boot_ns: c.process_start_boot_ns,
            cgroup_id: event.cgroup_id,
            container,
            parent_exec_id: parent.map(|p| p.exec_id.clone()),
            capabilities: exec
                .capabilities
                .or_else(|| previous.as_ref().and_then(|p| p.capabilities)),
            exe_facts: exec.exe_facts,
            // An exec usually keeps the environment it inherited: share it.
            env: exec
                .env
                .as_ref()
                .map(|env| match previous.as_ref().and_then(|p| p.env.clone()) {
                    Some(inherited) if *inherited == *env => inherited,
                    _ => Arc::new(env.clone()),
                }),
            fresh_fork: false,
            container_start,
        };
        self.processes.insert(info)
    }

    /// A new process starts as a copy of its parent (same image, same cwd, same
    /// container), with its own pid and exec id.
    fn on_fork(&mut self, event: &Event, fork: &Fork) {
        let Some(parent) = self.process_of(event) else {
            return;
        };
        let mut child = (*parent).clone();
        child.pid = fork.child_pid;
        child.ppid = parent.pid;
        child.start_boot_ns = fork.child_start_boot_ns;
        child.exec_id = exec_id(
            &self.boot_id,
            fork.child_pid,
            self.ticks(fork.child_start_boot_ns),
            &parent.exepath,
        );
        child.parent_exec_id = Some(parent.exec_id.clone());
        child.vpid = fork.child_vpid.unwrap_or(fork.child_pid);
        child.fresh_fork = true;
        child.container_start = false;
        self.processes.insert(child);
    }

    /// The event's container, with its metadata when a runtime has described it.
    /// Otherwise every runtime that may know the id is asked (without waiting), and
    /// `pending` says whether one may still answer.
    fn container_of(&mut self, event: &Event, process: Option<&ProcessInfo>) -> Resolved {
        let found = match process {
            Some(p) => p.container.clone(),
            None => match self.cgroups.path_of(event.cgroup_id) {
                Some(path) => {
                    let path = path.to_string();
                    self.container_in_cgroup(&path)
                }
                None => None,
            },
        };
        let Some(cgroup::ContainerRef { id, runtime }) = found else {
            return Resolved {
                container: self.host_container.clone(),
                pending: false,
            };
        };
        if let Some((source, meta)) = described(&self.runtimes, &id) {
            return Resolved {
                container: ContainerContext {
                    id,
                    runtime: Some(source),
                    meta: Some(meta),
                },
                pending: false,
            };
        }
        // Every runtime is asked: a bare id (`/kubepods/.../ID`, `/ID`) fits several.
        let mut pending = false;
        for source in self.runtimes.iter().filter(|r| r.may_describe(&id)) {
            source.ask(&id);
            pending = true;
        }
        if !pending {
            self.metadata_missing += 1;
        }
        Resolved {
            container: ContainerContext {
                id,
                runtime: Some(runtime),
                meta: None,
            },
            pending,
        }
    }

    /// The containers with a live process the agent knows, each with one of its
    /// processes: its first (vpid 1) where that one is known, else the oldest.
    pub fn running_containers(&self) -> Vec<(ContainerContext, Arc<ProcessInfo>)> {
        let mut chosen: HashMap<&Arc<str>, (&cgroup::ContainerRef, &Arc<ProcessInfo>)> =
            HashMap::new();
        for p in self.processes.live() {
            let Some(c) = &p.container else { continue };
            let better = |current: &Arc<ProcessInfo>| {
                (p.vpid != 1, p.start_boot_ns) < (current.vpid != 1, current.start_boot_ns)
            };
            match chosen.get(&c.id) {
                Some((_, current)) if !better(current) => {}
                _ => {
                    chosen.insert(&c.id, (c, p));
                }
            }
        }
        chosen
            .into_values()
            .map(|(c, p)| {
                let container = match described(&self.runtimes, &c.id) {
                    Some((source, meta)) => ContainerContext {
                        id: c.id.clone(),
                        runtime: Some(source),
                        meta: Some(meta),
                    },
                    None => ContainerContext {
                        id: c.id.clone(),
                        runtime: Some(c.runtime),
                        meta: None,
                    },
                };
                (container, p.clone())
            })
            .collect()
    }

    /// No event waits here for its container's metadata.
    pub fn holds_nothing(&self) -> bool {
        self.hold.is_empty()
    }

    /// Adds context to `event` (see [`Context::enrich`]) and passes it on in `out`,
    /// unless its container's metadata is still being fetched: then it is held (at most
    /// `metadata_wait`), behind that container's earlier held events.
    pub fn admit(&mut self, event: Event, out: &mut Vec<EnrichedEvent>) {
        let (enriched, pending) = self.enrich_event(event);
        if pending || self.hold.is_holding(&enriched.container.id) {
            // Released by the next `release_held`: whatever answer lets it go has told
            // `runtimes_answered`, which `held_ready` waits on.
            self.hold.hold(enriched, out);
        } else {
            out.push(enriched);
        }
    }

    /// Passes on, in order, the held events whose metadata has come, whose runtimes
    /// have all said they do not know the container, or that waited their bound.
    pub fn release_held(&mut self, out: &mut Vec<EnrichedEvent>) {
        if self.hold.is_empty() {
            return;
        }
        let runtimes = &self.runtimes;
        let mut missing = 0;
        self.hold.release(
            Instant::now(),
            |id| {
                let known = described(runtimes, id).is_some();
                let asked = runtimes.iter().any(|r| r.may_describe(id));
                // Docker's and Podman's change feeds describe a container too, and can
                // lag behind the kernel (Podman's file-backed feed by some 300 ms): a
                // `--rm` container may be gone before `inspect` asks, and its
                // description still come from the feed. Until the bound, wait for it.
                let feed_may_tell = runtimes.iter().any(MetadataSource::describes_from_feed);
                if known || !(asked || feed_may_tell) {
                    Verdict::Release
                } else {
                    Verdict::Waiting
                }
            },
            |event, _late| match described(runtimes, &event.container.id) {
                Some((runtime, meta)) => {
                    event.container.runtime = Some(runtime);
                    event.container.meta = Some(meta);
                }
                None => missing += 1,
            },
            out,
        );
        self.metadata_missing += missing;
    }

    /// Everything still held, as it is (at shutdown).
    pub fn release_all_held(&mut self, out: &mut Vec<EnrichedEvent>) {
        self.hold.release_all(out);
    }

    /// Completes when held events may be released: a runtime has answered, or the
    /// first bound has passed. Never, while nothing is held.
    pub async fn held_ready(&self) {
        let Some(deadline) = self.hold.next_deadline() else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = self.runtimes_answered.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

/// The container of a runtime that made a cgroup of this name or below this parent.
fn claimed_by_runtime(runtimes: &[MetadataSource], path: &str) -> Option<cgroup::ContainerRef> {
    let leaf = path.rsplit('/').next()?;
    runtimes.iter().find_map(|r| {
        r.by_cgroup_name(leaf)
            .or_else(|| r.by_cgroup_parent(path))
            .map(|id| cgroup::ContainerRef {
                id: Arc::from(id),
                runtime: r.runtime,
            })
    })
}

/// The runtime that has described `id`, and what it said.
fn described(runtimes: &[MetadataSource], id: &str) -> Option<(Runtime, Arc<ContainerMeta>)> {
    runtimes
        .iter()
        .find_map(|r| r.get(id).map(|meta| (r.runtime, meta)))
}

fn start_runtime(
    host: &HostRoot,
    wanted: &RuntimeSocket,
    answered: &Arc<Notify>,
) -> Option<MetadataSource> {
    let socket = host.path(&wanted.socket);
    let is_socket = std::fs::metadata(&socket).is_ok_and(|m| m.file_type().is_socket());
    if !wanted.required && !is_socket {
        tracing::info!(
            "no {} socket at {}: its containers get ids only (set its socket to watch it)",
            wanted.runtime.name(),
            socket.display()
        );
        return None;
    }
    let socket = socket.to_string_lossy().into_owned();
    tracing::info!(
        "container metadata from {} at {socket}",
        wanted.runtime.name()
    );
    let (runtime, answered) = (wanted.runtime, answered.clone());
    Some(match runtime {
        Runtime::Docker | Runtime::Podman => {
            MetadataSource::start(runtime, socket, runtime::docker::DockerApi, answered)
        }
        Runtime::Containerd => MetadataSource::start(
            runtime,
            socket,
            runtime::containerd::ContainerdApi,
            answered,
        ),
        Runtime::CriO => MetadataSource::start(
            runtime,
            socket,
            runtime::cri::CriApi {
                poll: Duration::from_secs(1),
            },
            answered,
        ),
    })
}

fn root_fs(container: &Option<cgroup::ContainerRef>) -> RootFs {
    match container {
        Some(c) => RootFs::Container(c.id.clone()),
        None => RootFs::Host,
    }
}

/// A poisoned lock still guards consistent data here (every critical section is a
/// single map operation), so the context keeps going instead of panicking.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
