//! The recorder: the programs' links and the maps they write, pinned in bpffs so the
//! kernel keeps recording while no agent runs (a restart, an upgrade, a crash). The
//! next agent of the same ABI adopts it: it reuses the maps, loads no program that
//! is already attached, and reads what accumulated. An agent of another ABI cannot
//! read that backlog: it attaches its own recorder, counts the old one's records as
//! lost and removes it.
//!
//! Layout: `<root>/abi-<N>/maps/<MAP>` and `<root>/abi-<N>/links/<PROGRAM>`.
use std::{
    ffi::CString,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow};
use aya::{
    maps::MapData,
    programs::links::{FdLink, PinnedLink},
};

use super::ring::Ring;

/// Where recorders are pinned unless configured otherwise.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/monitor";

/// bpffs's magic number (`statfs`'s `f_type`).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The maps a recorder shares with the agents that read it: what the programs write
/// and what the agent steers them with. The others (per-CPU scratch, load-time
/// constants, the log buffer) are each loaded program's own.
pub const SHARED_MAPS: &[&str] = &[
    "EVENTS",
    "KIND_ENABLED",
    "STATS",
    "AGENT",
    "PENDING_EXEC",
    "PENDING_OPEN",
    "EXEC_FILE",
    "PENDING_SYSCALL",
    "PENDING_CONNECT",
    "LAST_WAKEUP",
    "FILTERS",
    "FILTER_GENERATION",
    "HOST_CGROUPS",
    "EXCLUDED_V4",
    "EXCLUDED_V6",
    "PATHS",
    "PORTS",
    "NAMES",
    // The kill slots' tables: an adopted open program judges by these.
    "KILL_SLOTS",
    "KILLS_ACTIVE",
    "KILL_WINDOWS",
    "CONTAINER_CGROUPS",
    "EXEMPT_COMMS",
];

/// This build's recorder ABI: [`monitor_common::RECORDER_ABI`], unless a test
/// overrides it (`MONITOR_TEST_RECORDER_ABI`, to play an upgrade).
pub fn abi() -> u32 {
    std::env::var("MONITOR_TEST_RECORDER_ABI")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(monitor_common::RECORDER_ABI)
}

/// One ABI's pin directory under a root.
#[derive(Clone, Debug)]
pub struct Pins {
    root: PathBuf,
    dir: PathBuf,
    pub abi: u32,
}

/// A recorder of another ABI that a starting agent replaced.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Replaced {
    pub abi: u32,
    /// Records it held that no agent of this ABI can read: lost.
    pub lost: u64,
}

/// What a starting agent holds of the pinned recorder: the root's lock (one agent
/// per root), and whether it adopted a running recorder.
pub struct Claim {
    pub pins: Pins,
    /// The root directory, flock'ed for as long as this agent runs: a second agent
    /// on the same root is told so instead of stealing the recorder.
    _lock: std::fs::File,
    /// A recorder of this ABI was attached: its programs keep running, its maps and
    /// backlog are this agent's now.
    pub adopted: bool,
    pub replaced: Vec<Replaced>,
}

/// Why a recorder cannot be claimed.
#[derive(Debug)]
pub enum Unclaimed {
    /// Another agent holds the root (its pid, when it said).
    Held(Option<u32>),
    Failed(anyhow::Error),
}

impl Pins {
    pub fn new(root: &Path, abi: u32) -> Self {
        Self {
            root: root.to_path_buf(),
            dir: root.join(format!("abi-{abi}")),
            abi,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes sure bpffs is mounted where the root lives (mounting it at its parent,
    /// `/sys/fs/bpf` by default, when that is not bpffs yet), takes the root's lock,
    /// replaces recorders of other ABIs (counting their backlog as lost), and says
    /// whether a recorder of this ABI is there to adopt.
    pub fn claim(self) -> Result<Claim, Unclaimed> {
        let failed = |err: anyhow::Error| Unclaimed::Failed(err);
        ensure_bpffs(&self.root).map_err(failed)?;
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))
            .map_err(failed)?;
        let lock = std::fs::File::open(&self.root)
            .with_context(|| format!("opening {}", self.root.display()))
            .map_err(failed)?;
        // SAFETY: flock on an fd this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Unclaimed::Held(
                reading_agent(&self.dir).ok().filter(|p| *p != 0),
            ));
        }
        let mut replaced = Vec::new();
        for (abi, dir) in self.others() {
            let lost = count_backlog(&dir).unwrap_or(0);
            remove(&dir).map_err(failed)?;
            replaced.push(Replaced { abi, lost });
        }
        let adopted = has_links(&self.dir);
        if !adopted && self.dir.exists() {
            // Maps without programs: a start that stopped half-way. Nothing records
            // into them; start afresh.
            remove(&self.dir).map_err(failed)?;
        }
        std::fs::create_dir_all(self.dir.join("maps"))
            .and_then(|()| std::fs::create_dir_all(self.dir.join("links")))
            .with_context(|| {
                format!(
                    "creating the recorder's pin directory {}",
                    self.dir.display()
                )
            })
            .map_err(failed)?;
        Ok(Claim {
            pins: self,
            _lock: lock,
            adopted,
            replaced,
        })
    }

    /// Recorders of other ABIs under the root: (ABI, directory).
    fn others(&self) -> Vec<(u32, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let abi = entry
                    .file_name()
                    .to_str()?
                    .strip_prefix("abi-")?
                    .parse::<u32>()
                    .ok()?;
                (abi != self.abi).then(|| (abi, entry.path()))
            })
            .collect()
    }

    pub fn map_path(&self, name: &str) -> PathBuf {
        self.dir.join("maps").join(name)
    }

    pub fn link_path(&self, program: &str) -> PathBuf {
        self.dir.join("links").join(program)
    }

    /// The pinned link of `program`, if the recorder has one.
    pub fn pinned_link(&self, program: &str) -> Option<PinnedLink> {
        PinnedLink::from_pin(self.link_path(program)).ok()
    }

    /// Whether `program` has a pinned link.
    pub fn has_link(&self, program: &str) -> bool {
        self.link_path(program).exists()
    }

    /// Pins an attached program's link.
    pub fn pin_link(&self, program: &str, link: FdLink) -> Result<PinnedLink> {
        link.pin(self.link_path(program))
            .with_context(|| format!("pinning the link of {program}"))
    }
}

/// Unpins every link and map of a recorder directory and removes it: its programs
/// are detached as the last references go. Returns how many links it held.
pub fn remove(dir: &Path) -> Result<usize> {
    let mut links = 0;
    if let Ok(entries) = std::fs::read_dir(dir.join("links")) {
        for entry in entries.flatten() {
            match PinnedLink::from_pin(entry.path()) {
                Ok(link) => {
                    // Unpinned and dropped: the link closes and its program detaches.
                    drop(link.unpin());
                    links += 1;
                }
                Err(_) => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("maps")) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for sub in ["links", "maps"] {
        let _ = std::fs::remove_dir(dir.join(sub));
    }
    std::fs::remove_dir(dir)
        .or_else(|err| if dir.exists() { Err(err) } else { Ok(()) })
        .with_context(|| format!("removing the recorder at {}", dir.display()))?;
    Ok(links)
}

/// Records waiting in a recorder's ring buffer, counted without decoding them (the
/// ring's framing is the kernel's, whatever the recorder's ABI).
pub fn count_backlog(dir: &Path) -> Result<u64> {
    let map = MapData::from_pin(dir.join("maps").join("EVENTS"))
        .with_context(|| format!("opening the ring buffer of {}", dir.display()))?;
    let mut ring = Ring::new(map)?;
    let mut records = 0;
    while ring.next().is_some() {
        records += 1;
    }
    Ok(records)
}

/// The pid of the agent reading a recorder (0: none).
pub fn reading_agent(dir: &Path) -> Result<u32> {
    let map = MapData::from_pin(dir.join("maps").join("AGENT"))
        .with_context(|| format!("opening {}", dir.join("maps/AGENT").display()))?;
    let agent: aya::maps::Array<MapData, u64> =
        aya::maps::Array::try_from(aya::maps::Map::Array(map))?;
    Ok(agent.get(&0, 0)? as u32)
}

fn has_links(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("links")).is_ok_and(|mut entries| entries.next().is_some())
}

/// Every recorder directory under `root`, whatever its ABI.
pub fn recorders(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("abi-"))
        })
        .map(|e| e.path())
        .collect()
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path and a zeroed statfs buffer for the call.
    unsafe {
        let mut stat: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut stat) == 0 && stat.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Makes sure `root` will be in bpffs: the nearest existing directory above it must
/// be bpffs, or be the usual `/sys/fs/bpf` (which is then mounted); any other place
/// gets bpffs mounted at the root's parent.
fn ensure_bpffs(root: &Path) -> Result<()> {
    let existing = root
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if is_bpffs(existing) {
        return Ok(());
    }
    if existing == Path::new("/sys/fs/bpf") {
        return mount_bpffs(existing);
    }
    mount_bpffs(root.parent().unwrap_or(Path::new("/")))
}

fn mount_bpffs(at: &Path) -> Result<()> {
    std::fs::create_dir_all(at)?;
    let target = at
        .to_str()
        .ok_or_else(|| anyhow!("pin path is not UTF-8"))?;
    super::tracefs::mount_pseudo_fs("bpf", target).map_err(|err| {
        anyhow!(
            "bpffs is not mounted at {target} and mounting it failed ({err}); mount it with \
             `mount -t bpf bpf {target}`, or run with --no-pin"
        )
    })?;
    tracing::info!("mounted bpffs at {target}");
    Ok(())
}
