//! From a cgroup to a container: cgroup ids (what the kernel stamps on every event) to
//! cgroup v2 paths, and cgroup names/paths to container ids and runtimes.
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use super::host::HostRoot;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
        }
    }
}

/// A container found in a cgroup path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub id: Arc<str>,
    pub runtime: Runtime,
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Recognises the cgroup layouts of Docker (cgroupfs and systemd drivers),
/// containerd/CRI (including kubepods slices), CRI-O and Podman. Anything else
/// (systemd services, session scopes, a supervisor's own groups) is the host.
pub fn container_of(cgroup_path: &str) -> Option<ContainerRef> {
    let components: Vec<&str> = cgroup_path.split('/').filter(|c| !c.is_empty()).collect();
    let in_kubepods = components.iter().any(|c| c.starts_with("kubepods"));
    // The innermost component naming a container wins (nested cgroups below a
    // container, e.g. a systemd inside it, still belong to it).
    for (i, component) in components.iter().enumerate().rev() {
        // systemd's driver makes `prefix-ID.scope`; cgroupfs (Podman's and CRI-O's
        // default without systemd) makes `prefix-ID`.
        let scoped = |prefix: &str| {
            component
                .strip_prefix(prefix)
                .map(|rest| rest.strip_suffix(".scope").unwrap_or(rest))
                .filter(|id| is_container_id(id))
        };
        let found = if let Some(id) = scoped("docker-") {
            Some((id, Runtime::Docker))
        } else if let Some(id) = scoped("cri-containerd-") {
            Some((id, Runtime::Containerd))
        } else if let Some(id) = scoped("crio-") {
            Some((id, Runtime::CriO))
        } else if let Some(id) = scoped("libpod-") {
            Some((id, Runtime::Podman))
        } else if is_container_id(component) {
            let parent = if i > 0 { components[i - 1] } else { "" };
            let runtime = if parent == "docker" {
                Runtime::Docker
            } else if parent == "libpod_parent" || parent.starts_with("machine.slice") {
                Runtime::Podman
            } else if in_kubepods {
                Runtime::Containerd
            } else {
                Runtime::Docker
            };
            Some((*component, runtime))
        } else {
            None
        };
        if let Some((id, runtime)) = found {
            return Some(ContainerRef {
                id: Arc::from(id),
                runtime,
            });
        }
    }
    None
}

/// cgroup id (the inode of the cgroup's directory in the v2 hierarchy) → path,
/// cached; a miss rescans the hierarchy, at most once per `rescan_interval`.
pub struct CgroupPaths {
    root: Option<PathBuf>,
    by_id: HashMap<u64, String>,
    last_scan: Option<Instant>,
    rescan_interval: Duration,
}

impl CgroupPaths {
    pub fn new(host: &HostRoot) -> Self {
        let root = find_cgroup2_root(host);
        if root.is_none() {
            tracing::warn!(
                "no cgroup v2 hierarchy found; events without a known process get no container"
            );
        }
        Self {
            root,
            by_id: HashMap::new(),
            last_scan: None,
            rescan_interval: Duration::from_millis(200),
        }
    }

    /// Where the cgroup v2 hierarchy is mounted, when it is.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    pub fn path_of(&mut self, cgroup_id: u64) -> Option<&str> {
        if !self.by_id.contains_key(&cgroup_id) {
            let due = self
                .last_scan
                .is_none_or(|at| at.elapsed() >= self.rescan_interval);
            if due {
                self.rescan();
            }
        }
        self.by_id.get(&cgroup_id).map(String::as_str)
    }

    /// The cgroups (by id) from a fresh scan: those that hold no container (the
    /// host's), and those that do. `claimed` says which paths a runtime made for a
    /// container of its own, beyond the layouts [`container_of`] knows.
    pub fn scopes(
        &mut self,
        claimed: impl Fn(&str) -> bool,
    ) -> (
        std::collections::HashSet<u64>,
        std::collections::HashSet<u64>,
    ) {
        self.rescan();
        let (containers, host): (Vec<_>, Vec<_>) = self
            .by_id
            .iter()
            .partition(|(_, path)| container_of(path).is_some() || claimed(path));
        (
            host.into_iter().map(|(id, _)| *id).collect(),
            containers.into_iter().map(|(id, _)| *id).collect(),
        )
    }

    fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        let Some(root) = self.root.clone() else {
            return;
        };
        self.by_id.clear();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = fs::metadata(&dir) else {
                continue;
            };
            let rel = dir.strip_prefix(&root).unwrap_or(&dir);
            self.by_id
                .insert(meta.ino(), format!("/{}", rel.to_string_lossy()));
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(entry.path());
                    }
                }
            }
        }
    }
}

/// The cgroup2 mount: `/sys/fs/cgroup` on unified hosts, `/sys/fs/cgroup/unified` on
/// hybrid ones.
///
/// The host's init (pid 1) has the host's mount table; the agent's own (`self`) is
/// only a stand-in for when pid 1's is unreadable. In a pod the two differ: the
/// agent's namespace may mount a cgroup2 of its own before the host's appears.
fn find_cgroup2_root(host: &HostRoot) -> Option<PathBuf> {
    ["/proc/1/mountinfo", "/proc/self/mountinfo"]
        .iter()
        .find_map(|path| cgroup2_mount(host, &fs::read_to_string(host.path(path)).ok()?))
}

fn cgroup2_mount(host: &HostRoot, mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if !right.starts_with("cgroup2 ") {
            return None;
        }
        let mount_point = left.split_whitespace().nth(4)?;
        Some(host.path(Path::new(mount_point)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f2c0a6b1e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b";

    fn found(path: &str) -> Option<(String, &'static str)> {
        container_of(path).map(|c| (c.id.to_string(), c.runtime.name()))
    }

    #[test]
    fn runtime_layouts() {
        let want = |rt| Some((ID.to_string(), rt));
        assert_eq!(found(&format!("/docker/{ID}")), want("docker"));
        assert_eq!(
            found(&format!("/system.slice/docker-{ID}.scope")),
            want("docker")
        );
        assert_eq!(
            found(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{ID}.scope"
            )),
            want("containerd")
        );
        assert_eq!(
            found(&format!("/kubepods/besteffort/pod0a1b/{ID}")),
            want("containerd")
        );
        assert_eq!(
            found(&format!("/machine.slice/libpod-{ID}.scope")),
            want("podman")
        );
        assert_eq!(
            found(&format!("/kubepods.slice/crio-{ID}.scope")),
            want("cri-o")
        );
        assert_eq!(
            found(&format!("/libpod_parent/libpod-{ID}")),
            want("podman")
        );
        assert_eq!(
            found(&format!("/kubepods/besteffort/pod0a1b/crio-{ID}")),
            want("cri-o")
        );
        assert_eq!(found(&format!("/docker/{ID}/init.scope")), want("docker"));
    }

    #[test]
    fn host_cgroups_are_not_containers() {
        for path in [
            "/",
            "/system.slice/ssh.service",
            "/user.slice/user-0.slice/session-3.scope",
            "/system.slice/containerd.service",
            &format!("/machine.slice/libpod-conmon-{ID}.scope"),
            "/docker/not-an-id",
            &format!("/docker/{}", &ID[..12]),
        ] {
            assert_eq!(found(path), None, "{path}");
        }
    }

    #[test]
    fn own_cgroup_id_resolves_to_a_path() {
        let host = HostRoot::default();
        let mut paths = CgroupPaths::new(&host);
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .to_string();
        let root = find_cgroup2_root(&host).unwrap();
        let ino = fs::metadata(root.join(own.trim_start_matches('/')))
            .unwrap()
            .ino();
        assert_eq!(paths.path_of(ino), Some(own.as_str()));
    }
}
