//! Every host path the agent reads goes through one prefix, so the same binary runs on
//! a host (`/`) and in a DaemonSet pod with the host's root mounted at `/host`.
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct HostRoot(PathBuf);

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self(root.into())
    }

    /// `absolute` (a path as the host sees it) below the host root.
    pub fn path(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let absolute = absolute.as_ref();
        self.0.join(absolute.strip_prefix("/").unwrap_or(absolute))
    }

    pub fn proc(&self, pid: u32, file: &str) -> PathBuf {
        self.path(format!("/proc/{pid}/{file}"))
    }
}

impl Default for HostRoot {
    fn default() -> Self {
        Self::new("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_below_the_root() {
        assert_eq!(
            HostRoot::default().proc(1, "status"),
            PathBuf::from("/proc/1/status")
        );
        let pod = HostRoot::new("/host");
        assert_eq!(pod.path("/etc/passwd"), PathBuf::from("/host/etc/passwd"));
        assert_eq!(pod.proc(7, "cgroup"), PathBuf::from("/host/proc/7/cgroup"));
    }
}
