//! Where the host mounts its cgroup hierarchies: v1 controllers (each hierarchy with
//! the controllers in its super options), the v2 unified hierarchy, or both (hybrid).
use std::{fs, path::PathBuf};

use crate::context::host::HostRoot;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V1,
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    pub version: Version,
    /// Where the agent reaches it: the host's mount point below the host root.
    pub mount_point: PathBuf,
    /// The cgroup the mount shows at its mount point (mountinfo's `root` field):
    /// `/` for a whole hierarchy, a cgroup's path for a bind mount of a subtree.
    pub root: String,
    /// v1: the controllers bound to the hierarchy (super options such as `cpu`,
    /// `memory`, `name=systemd`). Empty for v2, whose controllers are per cgroup.
    pub options: Vec<String>,
}

impl CgroupMount {
    pub fn has_controller(&self, controller: &str) -> bool {
        self.options.iter().any(|o| o == controller)
    }
}

/// How the host lays out its cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// No cgroup mounts found (or mountinfo unreadable).
    None,
    V1,
    V2,
    /// v1 controllers plus the unified hierarchy (`/sys/fs/cgroup/unified`).
    Hybrid,
}

/// The host's cgroup mounts, read once: mounts change when the host is reconfigured,
/// not while the agent runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    pub v1: Vec<CgroupMount>,
    pub v2: Option<CgroupMount>,
}

impl CgroupMounts {
    /// From the host init's mount table; the agent's own (`self`) stands in when pid
    /// 1's is unreadable. In a pod the agent's namespace may have cgroup mounts of its
    /// own, which is why pid 1 comes first (as in `context::cgroup`).
    pub fn discover(host: &HostRoot) -> Self {
        ["/proc/1/mountinfo", "/proc/self/mountinfo"]
            .iter()
            .filter_map(|path| fs::read_to_string(host.path(path)).ok())
            .map(|text| Self::parse(host, &text))
            .find(|mounts| mounts.layout() != Layout::None)
            .unwrap_or_default()
    }

    /// Parses mountinfo text (proc(5)): `id parent maj:min root mount-point options
    /// [optional fields...] - fstype source super-options`. Malformed lines are skipped.
    pub fn parse(host: &HostRoot, mountinfo: &str) -> Self {
        let mut mounts = Self::default();
        for line in mountinfo.lines() {
            let Some(mount) = parse_line(host, line) else {
                continue;
            };
            match mount.version {
                Version::V2 => {
                    // A host may show the same hierarchy more than once (bind mounts,
                    // a container's view of it); the whole hierarchy is the one that
                    // reaches every cgroup.
                    let better = match &mounts.v2 {
                        None => true,
                        Some(seen) => seen.root != "/" && mount.root == "/",
                    };
                    if better {
                        mounts.v2 = Some(mount);
                    }
                }
                Version::V1 => {
                    let same_hierarchy = mounts
                        .v1
                        .iter_mut()
                        .find(|seen| seen.options == mount.options);
                    match same_hierarchy {
                        Some(seen) if seen.root != "/" && mount.root == "/" => *seen = mount,
                        Some(_) => {}
                        None => mounts.v1.push(mount),
                    }
                }
            }
        }
        mounts
    }

    /// The v1 hierarchy that `controller` (e.g. `memory`, `cpuacct`) is bound to.
    pub fn v1(&self, controller: &str) -> Option<&CgroupMount> {
        self.v1.iter().find(|m| m.has_controller(controller))
    }

    pub fn v2(&self) -> Option<&CgroupMount> {
        self.v2.as_ref()
    }

    pub fn layout(&self) -> Layout {
        // A systemd-only v1 hierarchy (`name=systemd`) next to cgroup2 is still hybrid
        // in name, but no resource controller lives on v1 then; resource lookups
        // settle that per controller, so the layout is only informative.
        match (self.v1.is_empty(), self.v2.is_some()) {
            (true, false) => Layout::None,
            (false, false) => Layout::V1,
            (true, true) => Layout::V2,
            (false, true) => Layout::Hybrid,
        }
    }
}

fn parse_line(host: &HostRoot, line: &str) -> Option<CgroupMount> {
    let (left, right) = line.split_once(" - ")?;
    let mut right = right.split_whitespace();
    let fstype = right.next()?;
    let version = match fstype {
        "cgroup" => Version::V1,
        "cgroup2" => Version::V2,
        _ => return None,
    };
    let _source = right.next()?;
    let super_options = right.next().unwrap_or("");
    let mut left = left.split_whitespace();
    let root = unescape(left.nth(3)?);
    let mount_point = unescape(left.next()?);
    let options = match version {
        Version::V1 => super_options
            .split(',')
            .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
            .map(str::to_string)
            .collect(),
        Version::V2 => Vec::new(),
    };
    Some(CgroupMount {
        version,
        mount_point: host.path(mount_point),
        root,
        options,
    })
}

/// The kernel escapes space, tab, newline and backslash in mountinfo paths as `\ooo`.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0')));
        match octal {
            Some(value) if value <= 0xff => {
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout() {
        let mounts = CgroupMounts::parse(&HostRoot::default(), HYBRID);
        assert_eq!(mounts.layout(), Layout::Hybrid);
        assert_eq!(
            mounts.v1("cpuacct").unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/cpuacct")
        );
        assert_eq!(
            mounts.v1("memory").unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert!(mounts.v1("hugetlb").is_none());
        assert!(mounts.v1("systemd").is_none());
        assert_eq!(
            mounts.v2().unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn pure_layouts_and_combined_controllers() {
        let v2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let mounts = CgroupMounts::parse(&HostRoot::default(), v2);
        assert_eq!(mounts.layout(), Layout::V2);
        assert_eq!(
            mounts.v2().unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup")
        );

        let v1 = "\
25 22 0:22 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct
26 22 0:23 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory
";
        let mounts = CgroupMounts::parse(&HostRoot::default(), v1);
        assert_eq!(mounts.layout(), Layout::V1);
        assert_eq!(mounts.v1("cpu"), mounts.v1("cpuacct"));
        assert!(mounts.v1("cpu").unwrap().has_controller("cpuacct"));
        assert!(mounts.v1("pids").is_none());
        assert_eq!(
            CgroupMounts::parse(&HostRoot::default(), "").layout(),
            Layout::None
        );
    }

    #[test]
    fn mount_points_go_below_the_host_root_and_roots_are_kept() {
        let text = "\
900 800 0:40 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
901 800 0:41 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
902 800 0:42 /kubepods /mnt/with\\040space rw - cgroup2 cgroup2 rw
garbage line
903 800 0:43 / /proc rw - proc proc rw
";
        let mounts = CgroupMounts::parse(&HostRoot::new("/host"), text);
        let memory = mounts.v1("memory").unwrap();
        assert_eq!(memory.root, "/", "the whole hierarchy wins over a subtree");
        assert_eq!(
            memory.mount_point,
            PathBuf::from("/host/sys/fs/cgroup/memory")
        );
        assert_eq!(mounts.v1.len(), 1);
        let v2 = mounts.v2().unwrap();
        assert_eq!(v2.root, "/kubepods");
        assert_eq!(v2.mount_point, PathBuf::from("/host/mnt/with space"));
    }

    #[test]
    fn unescape_leaves_odd_escapes_alone() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\999"), "a\\999");
        assert_eq!(unescape("\\134"), "\\");
    }
}
