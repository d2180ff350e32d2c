//! The process table: what the agent knows about every live process (and recently
//! exited ones, so late events still find them), kept current by exec, fork and exit
//! events and seeded from /proc at start-up.
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use super::{cgroup::ContainerRef, hash::FileKey};
use crate::event::{Capabilities, ExeFacts};

/// The exec id of a process: unique per exec for the whole boot, and the same whether
/// the agent saw the exec happen or found the process in /proc after a restart,
/// because it is derived only from what both can see: the boot id, the pid, the
/// process start time in clock ticks and the executable's path.
pub fn exec_id(boot_id: &str, pid: u32, start_ticks: u64, exepath: &[u8]) -> Arc<str> {
    let mut hasher = Sha256::new();
    hasher.update(boot_id.as_bytes());
    hasher.update(pid.to_le_bytes());
    hasher.update(start_ticks.to_le_bytes());
    hasher.update(exepath);
    let digest = hasher.finalize();
    Arc::from(
        digest[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

#[derive(Clone, Debug)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Task name (comm).
    pub name: Vec<u8>,
    /// argv[0].
    pub exe: Vec<u8>,
    /// Absolute path of the executable.
    pub exepath: Vec<u8>,
    /// argv[1..].
    pub args: Vec<Vec<u8>>,
    /// Falco's `proc.cmdline`: `name` followed by `args`, kept current by the table.
    pub cmdline: Vec<u8>,
    pub cwd: Option<Vec<u8>>,
    pub tty: u32,
    pub sid: u32,
    pub vpid: u32,
    /// Process group id in the process's own pid namespace (Falco's `proc.vpgid`);
    /// 0 when unknown.
    pub vpgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub user: Option<Arc<str>>,
    pub group: Option<Arc<str>>,
    pub loginuid: Option<u32>,
    pub start_boot_ns: u64,
    pub cgroup_id: u64,
    /// `None` for the host.
    pub container: Option<ContainerRef>,
    pub exec_id: Arc<str>,
    pub parent_exec_id: Option<Arc<str>>,
    pub exe_key: Option<FileKey>,
    /// From the last exec, or `/proc` for a process found running (a later `capset`
    /// is not seen).
    pub capabilities: Option<Capabilities>,
    /// What the executable's file is, where the kernel told at exec.
    pub exe_facts: Option<ExeFacts>,
    /// The environment as of the last exec (`NAME=value` each), shared with the
    /// process it was inherited from when unchanged.
    pub env: Option<Arc<Vec<Vec<u8>>>>,
    /// Copied from its parent by a fork and not executed since: its image is still the
    /// parent's.
    pub fresh_fork: bool,
    /// This exec started a container: the container's first process (vpid 1, forked
    /// by a runtime outside the container) ran its first program. An entrypoint's
    /// later `exec`, `docker exec` processes and nested pid namespaces are not starts.
    pub container_start: bool,
}

fn cmdline(p: &ProcessInfo) -> Vec<u8> {
    let mut line = p.name.clone();
    for arg in &p.args {
        line.push(b' ');
        line.extend_from_slice(arg);
    }
    line
}

struct Entry {
    info: Arc<ProcessInfo>,
    exited_at: Option<Instant>,
    /// Insertion order, to evict the oldest when the table is full.
    seq: u64,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct TableStats {
    pub tracked: usize,
    pub peak: usize,
    pub evictions: u64,
    pub misses: u64,
}

pub struct ProcessTable {
    entries: HashMap<u32, Entry>,
    exited: VecDeque<(u32, u64)>,
    cap: usize,
    grace: Duration,
    next_seq: u64,
    pub stats: TableStats,
}

impl ProcessTable {
    pub fn new(cap: usize, grace: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            exited: VecDeque::new(),
            cap: cap.max(1),
            grace,
            next_seq: 0,
            stats: TableStats::default(),
        }
    }

    pub fn get(&self, pid: u32) -> Option<&Arc<ProcessInfo>> {
        self.entries.get(&pid).map(|e| &e.info)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The processes not known to have exited.
    pub fn live(&self) -> impl Iterator<Item = &Arc<ProcessInfo>> {
        self.entries
            .values()
            .filter(|e| e.exited_at.is_none())
            .map(|e| &e.info)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn record_miss(&mut self) {
        self.stats.misses += 1;
    }

    pub fn insert(&mut self, mut info: ProcessInfo) -> Arc<ProcessInfo> {
        self.expire(Instant::now());
        info.cmdline = cmdline(&info);
        let pid = info.pid;
        let info = Arc::new(info);
        self.next_seq += 1;
        self.entries.insert(
            pid,
            Entry {
                info: info.clone(),
                exited_at: None,
                seq: self.next_seq,
            },
        );
        if self.entries.len() > self.cap {
            self.evict_for_room();
        }
        self.stats.tracked = self.entries.len();
        self.stats.peak = self.stats.peak.max(self.entries.len());
        info
    }

    /// Updates a known process in place (same slot, same age).
    pub fn replace(&mut self, mut info: ProcessInfo) -> Arc<ProcessInfo> {
        info.cmdline = cmdline(&info);
        let info = Arc::new(info);
        match self.entries.get_mut(&info.pid) {
            Some(entry) => entry.info = info.clone(),
            None => return self.insert((*info).clone()),
        }
        info
    }

    /// The process exited: it stays findable for the grace period.
    pub fn mark_exited(&mut self, pid: u32) {
        let now = Instant::now();
        if let Some(entry) = self.entries.get_mut(&pid)
            && entry.exited_at.is_none()
        {
            entry.exited_at = Some(now);
            self.exited.push_back((pid, entry.seq));
        }
        self.expire(now);
    }

    /// Ancestors of `pid`, parent first, at most `depth`.
    pub fn ancestors(&self, info: &ProcessInfo, depth: usize) -> Vec<Arc<ProcessInfo>> {
        let mut out = Vec::new();
        let mut ppid = info.ppid;
        while out.len() < depth && ppid != 0 {
            let Some(parent) = self.get(ppid) else { break };
            if parent.pid == parent.ppid {
                break;
            }
            ppid = parent.ppid;
            out.push(parent.clone());
        }
        out
    }

    /// Drops exited processes whose grace period is over.
    fn expire(&mut self, now: Instant) {
        while let Some(&(pid, seq)) = self.exited.front() {
            let Some(entry) = self.entries.get(&pid) else {
                self.exited.pop_front();
                continue;
            };
            if entry.seq != seq {
                // The pid was reused by a newer process: that one stays.
                self.exited.pop_front();
                continue;
            }
            match entry.exited_at {
                Some(at) if now.duration_since(at) >= self.grace => {
                    self.entries.remove(&pid);
                    self.exited.pop_front();
                }
                _ => break,
            }
        }
        self.stats.tracked = self.entries.len();
    }

    /// Over the cap: evict exited processes first (oldest exit first), then the oldest
    /// live ones, down to 90% of the cap so evictions come in batches.
    fn evict_for_room(&mut self) {
        let target = self.cap - self.cap / 10;
        while self.entries.len() > target {
            let Some((pid, seq)) = self.exited.pop_front() else {
                break;
            };
            if self.entries.get(&pid).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&pid);
                self.stats.evictions += 1;
            }
        }
        if self.entries.len() > target {
            let mut by_age: Vec<(u64, u32)> =
                self.entries.iter().map(|(pid, e)| (e.seq, *pid)).collect();
            by_age.sort_unstable();
            let excess = self.entries.len() - target;
            for (_, pid) in by_age.into_iter().take(excess) {
                self.entries.remove(&pid);
                self.stats.evictions += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, ppid: u32) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            name: b"p".to_vec(),
            exe: Vec::new(),
            exepath: Vec::new(),
            args: Vec::new(),
            cmdline: Vec::new(),
            cwd: None,
            tty: 0,
            sid: 0,
            vpid: pid,
            vpgid: 0,
            uid: 0,
            gid: 0,
            euid: 0,
            user: None,
            group: None,
            loginuid: None,
            start_boot_ns: 0,
            cgroup_id: 0,
            container: None,
            exec_id: Arc::from(format!("id{pid}")),
            parent_exec_id: None,
            exe_key: None,
            capabilities: None,
            exe_facts: None,
            env: None,
            fresh_fork: false,
            container_start: false,
        }
    }

    #[test]
    fn exec_ids_are_stable_and_distinct() {
        let a = exec_id("boot", 10, 500, b"/bin/sh");
        assert_eq!(a, exec_id("boot", 10, 500, b"/bin/sh"));
        assert_ne!(a, exec_id("boot", 10, 500, b"/bin/cat"));
        assert_ne!(a, exec_id("boot", 11, 500, b"/bin/sh"));
        assert_ne!(a, exec_id("other-boot", 10, 500, b"/bin/sh"));
        assert_eq!(a.len(), 24);
    }

    #[test]
    fn ancestry_walks_parents() {
        let mut table = ProcessTable::new(100, Duration::from_secs(30));
        table.insert(info(1, 0));
        table.insert(info(10, 1));
        table.insert(info(20, 10));
        let me = info(30, 20);
        let chain: Vec<u32> = table.ancestors(&me, 8).iter().map(|p| p.pid).collect();
        assert_eq!(chain, vec![20, 10, 1]);
        let short: Vec<u32> = table.ancestors(&me, 2).iter().map(|p| p.pid).collect();
        assert_eq!(short, vec![20, 10]);
    }

    #[test]
    fn exited_processes_stay_for_the_grace_period() {
        let mut table = ProcessTable::new(100, Duration::from_millis(50));
        table.insert(info(5, 1));
        table.mark_exited(5);
        assert!(table.get(5).is_some(), "late events must still find it");
        std::thread::sleep(Duration::from_millis(60));
        table.insert(info(6, 1));
        assert!(table.get(5).is_none());
        assert_eq!(table.stats.evictions, 0, "expiry is not eviction");
    }

    #[test]
    fn cap_bounds_the_table_and_counts_evictions() {
        let mut table = ProcessTable::new(100, Duration::from_secs(3600));
        for pid in 1..=1000 {
            table.insert(info(pid, 1));
            if pid % 2 == 0 {
                table.mark_exited(pid);
            }
        }
        assert!(table.len() <= 100);
        assert_eq!(
            table.stats.peak, 100,
            "never more than the cap after an insert"
        );
        assert!(table.stats.evictions >= 900);
        // The newest live process survives; exited ones went first.
        assert!(table.get(999).is_some());
    }
}
