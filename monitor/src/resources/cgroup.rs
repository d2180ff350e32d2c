//! A container's cgroup directories (found once, from one of its processes) and one
//! raw sample of its counters and limits read from them.
use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use super::mounts::{CgroupMount, CgroupMounts, Version};
use crate::context::host::HostRoot;

/// A limit as the kernel states it: a value, or none set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit<T> {
    Unlimited,
    Max(T),
}

impl<T: Copy> Limit<T> {
    /// The limit's value; `None` when there is none.
    pub fn max(self) -> Option<T> {
        match self {
            Limit::Unlimited => None,
            Limit::Max(v) => Some(v),
        }
    }
}

/// One controller's directory for a container, and which hierarchy it is in (the
/// file names and formats differ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerDir {
    pub version: Version,
    pub path: PathBuf,
}

/// Where each measure of one container is read. Found once per container so that a
/// sample reads a few small files and walks no directory.
///
/// A controller bound to a v1 hierarchy is read there: on a hybrid host the unified
/// hierarchy cannot have it (the kernel binds a controller to one hierarchy only).
/// Otherwise the v2 directory is used, whose files may still be missing when the
/// controller is not enabled for the subtree; the sample then says `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerCgroups {
    /// v1 `cpuacct`, or v2 (`cpu.stat` is there even without the cpu controller).
    pub cpu_usage: Option<ControllerDir>,
    /// v1 `cpu` (CFS quota), or v2 `cpu.max`.
    pub cpu_limit: Option<ControllerDir>,
    pub memory: Option<ControllerDir>,
    pub pids: Option<ControllerDir>,
}

impl ContainerCgroups {
    /// From `/proc/<pid>/cgroup` of one of the container's processes (a host pid).
    /// `None` when the process is gone.
    ///
    /// The kernel writes those paths relative to the *reader's* cgroup namespace: the
    /// agent must share the host's (a process outside it shows as `/../..`, which
    /// no mount reaches, so every directory is then `None`).
    pub fn of_pid(host: &HostRoot, mounts: &CgroupMounts, pid: u32) -> Option<Self> {
        let text = fs::read_to_string(host.proc(pid, "cgroup")).ok()?;
        Some(Self::from_proc_cgroup(mounts, &text))
    }

    /// From the text of a `/proc/<pid>/cgroup`: `N:controllers:path` for v1
    /// hierarchies, `0::path` for v2.
    pub fn from_proc_cgroup(mounts: &CgroupMounts, proc_cgroup: &str) -> Self {
        let mut v1: Vec<(&str, &str)> = Vec::new();
        let mut v2 = None;
        for line in proc_cgroup.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if id == "0" && controllers.is_empty() {
                v2 = Some(path);
            } else {
                v1.push((controllers, path));
            }
        }
        let dir = |controller: &str| -> Option<ControllerDir> {
            if let Some(mount) = mounts.v1(controller) {
                let path = v1
                    .iter()
                    .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))?
                    .1;
                return Some(ControllerDir {
                    version: Version::V1,
                    path: below(mount, path)?,
                });
            }
            Some(ControllerDir {
                version: Version::V2,
                path: below(mounts.v2()?, v2?)?,
            })
        };
        Self {
            cpu_usage: dir("cpuacct"),
            cpu_limit: dir("cpu"),
            memory: dir("memory"),
            pids: dir("pids"),
        }
    }

    /// Reads the counters and limits now; `at` is when (the caller's clock, so that
    /// many containers sampled in one pass share it). Never fails: what cannot be
    /// read or parsed is `None`.
    pub fn sample(&self, at: Instant) -> Sample {
        let cpu_usage_ns = self.cpu_usage.as_ref().and_then(|d| match d.version {
            Version::V1 => read_u64(&d.path, "cpuacct.usage"),
            Version::V2 => keyed(&read(&d.path, "cpu.stat")?, "usage_usec")?.checked_mul(1000),
        });
        let cpu_limit_cores = self.cpu_limit.as_ref().and_then(|d| match d.version {
            Version::V1 => cpu_limit_v1(
                &read(&d.path, "cpu.cfs_quota_us")?,
                // Only read when a quota is set.
                || read(&d.path, "cpu.cfs_period_us"),
            ),
            Version::V2 => cpu_limit_v2(&read(&d.path, "cpu.max")?),
        });
        let (memory_bytes, memory_limit_bytes, oom_kills) = match &self.memory {
            None => (None, None, None),
            Some(d) => match d.version {
                Version::V1 => (
                    working_set(
                        read_u64(&d.path, "memory.usage_in_bytes"),
                        read(&d.path, "memory.stat").and_then(|t| keyed(&t, "total_inactive_file")),
                    ),
                    read(&d.path, "memory.limit_in_bytes").and_then(|t| memory_limit_v1(&t)),
                    read(&d.path, "memory.oom_control").and_then(|t| keyed(&t, "oom_kill")),
                ),
                Version::V2 => (
                    working_set(
                        read_u64(&d.path, "memory.current"),
                        read(&d.path, "memory.stat").and_then(|t| keyed(&t, "inactive_file")),
                    ),
                    read(&d.path, "memory.max").and_then(|t| max_or_value(&t)),
                    read(&d.path, "memory.events").and_then(|t| keyed(&t, "oom_kill")),
                ),
            },
        };
        let (pids, pids_limit) = match &self.pids {
            // v1 and v2 name and format these files alike.
            Some(d) => (
                read_u64(&d.path, "pids.current"),
                read(&d.path, "pids.max").and_then(|t| max_or_value(&t)),
            ),
            None => (None, None),
        };
        Sample {
            at,
            cpu_usage_ns,
            cpu_limit_cores,
            memory_bytes,
            memory_limit_bytes,
            oom_kills,
            pids,
            pids_limit,
        }
    }
}

/// One reading of a container's cgroup files. Counters are cumulative since the
/// cgroup was created; [`super::usage::Usage`] turns two samples into rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub at: Instant,
    /// CPU time used by all the container's tasks, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// CFS bandwidth limit (`docker run --cpus`), in cores.
    pub cpu_limit_cores: Option<Limit<f64>>,
    /// The container's working set: the memory charged to the cgroup (v2
    /// `memory.current`, v1 `memory.usage_in_bytes`) less its inactive file pages
    /// (`memory.stat`), as kubelet and `docker stats` count it. The raw charge
    /// includes page cache the kernel reclaims before it kills: a container that reads
    /// files sits near its limit with it, which is no sign of trouble.
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<Limit<u64>>,
    /// Processes the OOM killer killed in the cgroup, cumulative.
    pub oom_kills: Option<u64>,
    /// Tasks (threads) in the cgroup.
    pub pids: Option<u64>,
    pub pids_limit: Option<Limit<u64>>,
}

/// `path` (a cgroup as `/proc/<pid>/cgroup` names it) as a directory below `mount`,
/// which shows the hierarchy from the cgroup `mount.root` down.
fn below(mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    // Outside the reader's cgroup namespace: no mount reaches it.
    if path.split('/').any(|c| c == "..") {
        return None;
    }
    let root = mount.root.trim_end_matches('/');
    let relative = if root.is_empty() {
        path
    } else if path == root {
        ""
    } else {
        path.strip_prefix(root)
            .filter(|rest| rest.starts_with('/'))?
    };
    Some(mount.mount_point.join(relative.trim_start_matches('/')))
}

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

/// Usage less inactive file pages; usage alone when `memory.stat` says nothing.
fn working_set(usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    Some(usage?.saturating_sub(inactive_file.unwrap_or(0)))
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// The value of `key` in a flat keyed file (`key value` lines: `cpu.stat`,
/// `memory.events`, `memory.oom_control`).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())
        })
        .flatten()
}

/// `max` or a number (v2 limits, and `pids.max` in both versions).
fn max_or_value(text: &str) -> Option<Limit<u64>> {
    match text.trim() {
        "max" => Some(Limit::Unlimited),
        value => value.parse().ok().map(Limit::Max),
    }
}

/// v1 reports "no limit" as the largest page-aligned counter value
/// (0x7ffffffffffff000 on 64-bit kernels), not as a word; no machine has 2^62 bytes.
fn memory_limit_v1(text: &str) -> Option<Limit<u64>> {
    let value: u64 = text.trim().parse().ok()?;
    Some(if value >= 1 << 62 {
        Limit::Unlimited
    } else {
        Limit::Max(value)
    })
}

/// `cpu.max`: `quota period`, the quota `max` when there is none.
fn cpu_limit_v2(text: &str) -> Option<Limit<f64>> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: u64 = fields.next()?.parse().ok()?;
    if quota == "max" {
        return Some(Limit::Unlimited);
    }
    cores(quota.parse().ok()?, period)
}

/// `cpu.cfs_quota_us` is -1 without a limit; the period only matters with one.
fn cpu_limit_v1(quota: &str, period: impl FnOnce() -> Option<String>) -> Option<Limit<f64>> {
    let quota: i64 = quota.trim().parse().ok()?;
    let Ok(quota) = u64::try_from(quota) else {
        return Some(Limit::Unlimited);
    };
    cores(quota, period()?.trim().parse().ok()?)
}

fn cores(quota_us: u64, period_us: u64) -> Option<Limit<f64>> {
    (period_us > 0).then(|| Limit::Max(quota_us as f64 / period_us as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::mounts::Layout;

    /// A fake host root in a temp dir, removed when dropped.
    struct FakeHost(PathBuf);

    impl FakeHost {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("monitor-resources-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path.trim_start_matches('/'));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn host(&self) -> HostRoot {
            HostRoot::new(&self.0)
        }

        fn cgroups(&self, pid: u32) -> ContainerCgroups {
            let host = self.host();
            let mounts = CgroupMounts::discover(&host);
            ContainerCgroups::of_pid(&host, &mounts, pid).unwrap()
        }
    }

    impl Drop for FakeHost {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const C: &str = "/docker/4f2c0a6b";

    fn v1_files(fake: &FakeHost, cpu: &str, cpuacct: &str, memory: &str, pids: &str) {
        fake.write(&format!("{cpuacct}{C}/cpuacct.usage"), "123456789\n");
        fake.write(&format!("{cpu}{C}/cpu.cfs_quota_us"), "50000\n");
        fake.write(&format!("{cpu}{C}/cpu.cfs_period_us"), "100000\n");
        fake.write(&format!("{memory}{C}/memory.usage_in_bytes"), "1048576\n");
        fake.write(&format!("{memory}{C}/memory.limit_in_bytes"), "67108864\n");
        fake.write(
            &format!("{memory}{C}/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        fake.write(&format!("{pids}{C}/pids.current"), "3\n");
        fake.write(&format!("{pids}{C}/pids.max"), "50\n");
    }

    fn expect_limited(s: &Sample) {
        assert_eq!(s.cpu_limit_cores, Some(Limit::Max(0.5)));
        assert_eq!(s.memory_limit_bytes, Some(Limit::Max(64 << 20)));
        assert_eq!(s.pids_limit, Some(Limit::Max(50)));
        assert_eq!(s.pids, Some(3));
        assert_eq!(s.oom_kills, Some(2));
    }

    #[test]
    fn pure_v1_with_cpu_and_cpuacct_together() {
        let fake = FakeHost::new("v1");
        fake.write(
            "/proc/1/mountinfo",
            "\
25 22 0:22 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct
26 22 0:23 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory
27 22 0:24 / /sys/fs/cgroup/pids rw shared:11 - cgroup cgroup rw,pids
",
        );
        fake.write(
            "/proc/42/cgroup",
            &format!("5:pids:{C}\n3:memory:{C}\n2:cpu,cpuacct:{C}\n1:name=systemd:/\n"),
        );
        let cpu = "/sys/fs/cgroup/cpu,cpuacct";
        v1_files(
            &fake,
            cpu,
            cpu,
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/pids",
        );
        let cgroups = fake.cgroups(42);
        assert_eq!(
            cgroups.memory,
            Some(ControllerDir {
                version: Version::V1,
                path: fake.0.join("sys/fs/cgroup/memory/docker/4f2c0a6b"),
            })
        );
        let s = cgroups.sample(Instant::now());
        assert_eq!(s.cpu_usage_ns, Some(123456789));
        assert_eq!(s.memory_bytes, Some(1 << 20));
        expect_limited(&s);
    }

    #[test]
    fn pure_v2() {
        let fake = FakeHost::new("v2");
        fake.write(
            "/proc/1/mountinfo",
            "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        fake.write("/proc/42/cgroup", &format!("0::{C}\n"));
        let dir = format!("/sys/fs/cgroup{C}");
        fake.write(
            &format!("{dir}/cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
        );
        fake.write(&format!("{dir}/cpu.max"), "50000 100000\n");
        fake.write(&format!("{dir}/memory.current"), "2097152\n");
        fake.write(&format!("{dir}/memory.max"), "67108864\n");
        fake.write(
            &format!("{dir}/memory.events"),
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n",
        );
        fake.write(&format!("{dir}/pids.current"), "3\n");
        fake.write(&format!("{dir}/pids.max"), "50\n");
        let cgroups = fake.cgroups(42);
        assert_eq!(cgroups.pids.as_ref().unwrap().version, Version::V2);
        let s = cgroups.sample(Instant::now());
        assert_eq!(s.cpu_usage_ns, Some(1_500_000));
        assert_eq!(s.memory_bytes, Some(2 << 20));
        expect_limited(&s);

        // No limits set.
        fake.write(&format!("{dir}/cpu.max"), "max 100000\n");
        fake.write(&format!("{dir}/memory.max"), "max\n");
        fake.write(&format!("{dir}/pids.max"), "max\n");
        let s = cgroups.sample(Instant::now());
        assert_eq!(s.cpu_limit_cores, Some(Limit::Unlimited));
        assert_eq!(s.memory_limit_bytes, Some(Limit::Unlimited));
        assert_eq!(s.pids_limit, Some(Limit::Unlimited));
        assert_eq!(s.cpu_limit_cores.and_then(Limit::max), None);
    }

    /// This machine's layout: v1 controllers each on their own hierarchy, the
    /// unified hierarchy with no controllers, containers in both.
    #[test]
    fn hybrid_prefers_v1_controllers() {
        let fake = FakeHost::new("hybrid");
        fake.write(
            "/proc/1/mountinfo",
            "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
",
        );
        fake.write(
            "/proc/42/cgroup",
            &format!(
                "9:name=systemd:{C}\n8:pids:{C}\n4:memory:{C}\n2:cpuacct:{C}\n1:cpu:{C}\n0::{C}\n"
            ),
        );
        v1_files(
            &fake,
            "/sys/fs/cgroup/cpu",
            "/sys/fs/cgroup/cpuacct",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/pids",
        );
        // The unified hierarchy's core files exist but must not be used.
        fake.write(
            &format!("/sys/fs/cgroup/unified{C}/cpu.stat"),
            "usage_usec 1\n",
        );
        let host = fake.host();
        assert_eq!(CgroupMounts::discover(&host).layout(), Layout::Hybrid);
        let cgroups = fake.cgroups(42);
        for dir in [
            &cgroups.cpu_usage,
            &cgroups.cpu_limit,
            &cgroups.memory,
            &cgroups.pids,
        ] {
            assert_eq!(dir.as_ref().unwrap().version, Version::V1);
        }
        let s = cgroups.sample(Instant::now());
        assert_eq!(s.cpu_usage_ns, Some(123456789));
        expect_limited(&s);
    }

    #[test]
    fn hybrid_without_v1_controllers_falls_back_to_v2() {
        let mounts = CgroupMounts::parse(
            &HostRoot::default(),
            "\
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
",
        );
        let cgroups =
            ContainerCgroups::from_proc_cgroup(&mounts, &format!("1:name=systemd:{C}\n0::{C}\n"));
        let memory = cgroups.memory.unwrap();
        assert_eq!(memory.version, Version::V2);
        assert_eq!(
            memory.path,
            PathBuf::from(format!("/sys/fs/cgroup/unified{C}"))
        );
    }

    #[test]
    fn v1_limit_values() {
        let fake = FakeHost::new("v1-limits");
        fake.write(
            "/proc/1/mountinfo",
            "\
25 22 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 22 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
27 22 0:24 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
",
        );
        fake.write(
            "/proc/42/cgroup",
            &format!("5:pids:{C}\n3:memory:{C}\n2:cpu,cpuacct:{C}\n"),
        );
        fake.write(
            &format!("/sys/fs/cgroup/cpu,cpuacct{C}/cpu.cfs_quota_us"),
            "-1\n",
        );
        fake.write(
            &format!("/sys/fs/cgroup/memory{C}/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        fake.write(&format!("/sys/fs/cgroup/pids{C}/pids.max"), "max\n");
        let s = fake.cgroups(42).sample(Instant::now());
        assert_eq!(s.cpu_limit_cores, Some(Limit::Unlimited));
        assert_eq!(s.memory_limit_bytes, Some(Limit::Unlimited));
        assert_eq!(s.pids_limit, Some(Limit::Unlimited));
        // Files that are missing.
        assert_eq!(s.cpu_usage_ns, None);
        assert_eq!(s.memory_bytes, None);
        assert_eq!(s.oom_kills, None);
        assert_eq!(s.pids, None);
    }

    #[test]
    fn bad_contents_are_none() {
        assert_eq!(cpu_limit_v2("50000 0"), None);
        assert_eq!(cpu_limit_v2("abc 100000"), None);
        assert_eq!(cpu_limit_v2(""), None);
        assert_eq!(cpu_limit_v2("150000 100000"), Some(Limit::Max(1.5)));
        assert_eq!(cpu_limit_v1("garbage", || None), None);
        assert_eq!(cpu_limit_v1("50000", || Some("x".into())), None);
        assert_eq!(memory_limit_v1("-5"), None);
        assert_eq!(
            memory_limit_v1(&((1u64 << 62) - 1).to_string()),
            Some(Limit::Max((1 << 62) - 1))
        );
        assert_eq!(max_or_value("maximum"), None);
        assert_eq!(keyed("oom_kill_disable 0\noom_kill x\n", "oom_kill"), None);
        assert_eq!(
            keyed("usage_usec 18446744073709551615\n", "usage_usec")
                .and_then(|u| u.checked_mul(1000)),
            None
        );
    }

    #[test]
    fn gone_process_and_no_mounts() {
        let fake = FakeHost::new("gone");
        let host = fake.host();
        let mounts = CgroupMounts::discover(&host);
        assert_eq!(mounts.layout(), Layout::None);
        assert!(ContainerCgroups::of_pid(&host, &mounts, 42).is_none());
        fake.write("/proc/42/cgroup", &format!("0::{C}\n"));
        let cgroups = ContainerCgroups::of_pid(&host, &mounts, 42).unwrap();
        assert_eq!(cgroups, ContainerCgroups::default());
        let s = cgroups.sample(Instant::now());
        assert_eq!((s.cpu_usage_ns, s.memory_bytes, s.pids), (None, None, None));
    }

    #[test]
    fn mount_roots_other_than_slash() {
        let mount = |root: &str| CgroupMount {
            version: Version::V2,
            mount_point: PathBuf::from("/host/sys/fs/cgroup"),
            root: root.to_string(),
            options: Vec::new(),
        };
        assert_eq!(
            below(&mount("/kubepods"), "/kubepods/pod1/abc"),
            Some(PathBuf::from("/host/sys/fs/cgroup/pod1/abc"))
        );
        assert_eq!(
            below(&mount("/kubepods/"), "/kubepods"),
            Some(PathBuf::from("/host/sys/fs/cgroup"))
        );
        assert_eq!(below(&mount("/kubepods"), "/kubepods2/x"), None);
        assert_eq!(below(&mount("/kubepods"), "/system.slice"), None);
        assert_eq!(below(&mount("/"), "/../../x"), None);
        assert_eq!(
            below(&mount("/"), "/"),
            Some(PathBuf::from("/host/sys/fs/cgroup"))
        );
        // Through a whole mountinfo line and a proc cgroup file.
        let mounts = CgroupMounts::parse(
            &HostRoot::new("/host"),
            "50 40 0:30 /docker /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        let cgroups =
            ContainerCgroups::from_proc_cgroup(&mounts, "4:memory:/docker/abc\nmalformed\n");
        assert_eq!(
            cgroups.memory.unwrap().path,
            PathBuf::from("/host/sys/fs/cgroup/memory/abc")
        );
        assert_eq!(cgroups.pids, None);
    }
}
