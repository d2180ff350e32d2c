//! One workload's learned behaviour: what it runs, where it connects, what it listens
//! on, where it writes.
use std::{
    collections::{HashMap, HashSet},
    fmt,
    io::Write,
    net::IpAddr,
    time::Duration,
};

use serde::{Deserialize, Serialize};

type Hasher = foldhash::fast::RandomState;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a workload connects: the DNS name when the agent saw it resolved, else the
/// network (IPv4 /24, IPv6 /64), so that a service's replicas behind one subnet are
/// one destination rather than hundreds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    pub proto: Proto,
}

impl Destination {
    pub fn new(dns: Option<&str>, ip: IpAddr, port: u16, proto: Proto) -> Self {
        let mut buf = HostBuf::default();
        Destination {
            host: host_key(dns, ip, &mut buf).to_string(),
            port,
            proto,
        }
    }
}

/// Room for the longest network text (`ffff:ffff:ffff:ffff::/64`), on the stack.
pub struct HostBuf([u8; 64]);

impl Default for HostBuf {
    fn default() -> Self {
        HostBuf([0; 64])
    }
}

/// The `host` of a destination without allocating: the DNS name when known, else
/// the address's network (`10.1.2.0/24`, `2001:db8:1:2::/64`). An IPv4 address
/// carried in IPv6 (`::ffff:10.1.2.3`) is IPv4.
pub fn host_key<'a>(dns: Option<&'a str>, ip: IpAddr, buf: &'a mut HostBuf) -> &'a str {
    if let Some(name) = dns.filter(|n| !n.is_empty()) {
        return name;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut cursor = std::io::Cursor::new(&mut buf.0[..]);
    // 64 bytes hold every form below, so the writes cannot fail.
    let _ = match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            write!(cursor, "{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            write!(cursor, "{net}/64")
        }
    };
    let len = cursor.position() as usize;
    std::str::from_utf8(&buf.0[..len]).unwrap_or("")
}

/// Directories whose writes say nothing about a workload: scratch space and the
/// kernel's virtual filesystems.
const UNPROFILED_DIRS: [&[u8]; 7] = [
    b"/tmp",
    b"/var/tmp",
    b"/dev/shm",
    b"/run",
    b"/proc",
    b"/sys",
    b"/dev",
];

/// Whether writes below `dir` are left out of profiles.
pub fn is_unprofiled_dir(dir: &[u8]) -> bool {
    UNPROFILED_DIRS.iter().any(|t| {
        dir.strip_prefix(*t)
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
    })
}

/// `dir` without trailing slashes (`/` stays `/`).
pub fn trim_dir(dir: &[u8]) -> &[u8] {
    let mut end = dir.len();
    while end > 1 && dir[end - 1] == b'/' {
        end -= 1;
    }
    &dir[..end]
}

/// The outcome of adding an entry to a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    Known,
    Added,
    /// The set was full: the entry was not learned.
    Full,
}

/// A capped set. When full, new entries are refused rather than old ones dropped:
/// what a workload does first (starting up, its steady state) is what the profile
/// should hold, and a workload that keeps producing new entries (a scanner, a random
/// temp path) must not push its normal behaviour out.
#[derive(Clone, Debug)]
pub struct EntrySet<T: Eq + std::hash::Hash> {
    set: HashSet<T, Hasher>,
}

impl<T: Eq + std::hash::Hash> Default for EntrySet<T> {
    fn default() -> Self {
        EntrySet {
            set: HashSet::default(),
        }
    }
}

impl<T: Eq + std::hash::Hash> EntrySet<T> {
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
        Q: Eq + std::hash::Hash + ?Sized,
    {
        self.set.contains(key)
    }

    fn add<Q>(&mut self, key: &Q, cap: usize, own: impl FnOnce(&Q) -> T) -> Added
    where
        T: std::borrow::Borrow<Q>,
        Q: Eq + std::hash::Hash + ?Sized,
    {
        if self.set.contains(key) {
            Added::Known
        } else if self.set.len() >= cap {
            Added::Full
        } else {
            self.set.insert(own(key));
            Added::Added
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.set.iter()
    }
}

impl<T: Eq + std::hash::Hash> FromIterator<T> for EntrySet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        EntrySet {
            set: iter.into_iter().collect(),
        }
    }
}

/// Destinations keyed by host, so that a lookup borrows the host text instead of
/// building a `Destination`.
#[derive(Clone, Debug, Default)]
pub struct DestinationSet {
    by_host: HashMap<Box<str>, HashSet<(u16, Proto), Hasher>, Hasher>,
    len: usize,
}

impl DestinationSet {
    pub fn contains(&self, host: &str, port: u16, proto: Proto) -> bool {
        self.by_host
            .get(host)
            .is_some_and(|ports| ports.contains(&(port, proto)))
    }

    fn add(&mut self, host: &str, port: u16, proto: Proto, cap: usize) -> Added {
        if self.contains(host, port, proto) {
            return Added::Known;
        }
        if self.len >= cap {
            return Added::Full;
        }
        match self.by_host.get_mut(host) {
            Some(ports) => {
                ports.insert((port, proto));
            }
            None => {
                let mut ports = HashSet::default();
                ports.insert((port, proto));
                self.by_host.insert(host.into(), ports);
            }
        }
        self.len += 1;
        Added::Added
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every destination, sorted (for files and output).
    pub fn to_sorted(&self) -> Vec<Destination> {
        let mut out: Vec<Destination> = self
            .by_host
            .iter()
            .flat_map(|(host, ports)| {
                ports.iter().map(|&(port, proto)| Destination {
                    host: host.to_string(),
                    port,
                    proto,
                })
            })
            .collect();
        out.sort();
        out
    }
}

/// What one workload was seen doing while it was learning.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Executable paths as the kernel gave them (bytes: not necessarily UTF-8).
    pub executables: EntrySet<Box<[u8]>>,
    pub destinations: DestinationSet,
    pub listening: EntrySet<(u16, Proto)>,
    /// Directories written in, outside [`is_unprofiled_dir`]'s.
    pub write_dirs: EntrySet<Box<[u8]>>,
    /// Runtime of the workload's containers seen by the agent (one container's worth
    /// however many run at once), while learning.
    pub observed: Duration,
    /// Learning stopped: by the window, or by `monitor profiles freeze`.
    pub frozen: bool,
    /// New entries not learned because their set was full (kept across restarts).
    pub refused: u64,
    /// The fleet's generation of this profile: a fleet-wide reset raises it, and facts
    /// of older generations no longer count (0 without a fleet).
    pub generation: u64,
}

/// One of the four sets, for messages and output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    Executables,
    Destinations,
    Listening,
    WriteDirs,
}

impl Profile {
    pub fn entries(&self) -> usize {
        self.executables.len()
            + self.destinations.len()
            + self.listening.len()
            + self.write_dirs.len()
    }

    pub fn add_executable(&mut self, exepath: &[u8], cap: usize) -> Added {
        self.executables.add(exepath, cap, |p| p.into())
    }

    pub fn add_destination(&mut self, host: &str, port: u16, proto: Proto, cap: usize) -> Added {
        self.destinations.add(host, port, proto, cap)
    }

    pub fn add_listen(&mut self, port: u16, proto: Proto, cap: usize) -> Added {
        self.listening.add(&(port, proto), cap, |k| *k)
    }

    /// `dir` as [`trim_dir`] gives it, outside the unprofiled directories.
    pub fn add_write_dir(&mut self, dir: &[u8], cap: usize) -> Added {
        self.write_dirs.add(dir, cap, |d| d.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_stand_for_addresses_without_a_name() {
        let mut buf = HostBuf::default();
        assert_eq!(
            host_key(None, "10.1.2.3".parse().unwrap(), &mut buf),
            "10.1.2.0/24"
        );
        assert_eq!(
            host_key(None, "2001:db8:1:2:3:4:5:6".parse().unwrap(), &mut buf),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            host_key(None, "::ffff:192.168.7.9".parse().unwrap(), &mut buf),
            "192.168.7.0/24"
        );
        assert_eq!(
            host_key(
                Some("api.example.com"),
                "10.1.2.3".parse().unwrap(),
                &mut buf
            ),
            "api.example.com"
        );
        let longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        assert_eq!(
            host_key(None, longest, &mut buf),
            "ffff:ffff:ffff:ffff::/64"
        );
    }

    #[test]
    fn temporary_and_virtual_dirs_are_not_profiled() {
        for dir in [
            "/tmp",
            "/tmp/x/y",
            "/var/tmp/a",
            "/dev/shm/sem",
            "/run/nginx",
            "/proc/self",
            "/sys/fs/cgroup",
            "/dev",
        ] {
            assert!(is_unprofiled_dir(dir.as_bytes()), "{dir}");
        }
        for dir in [
            "/tmpfoo",
            "/var/log",
            "/",
            "/srv/run",
            "/devices",
            "/var/tmpx",
        ] {
            assert!(!is_unprofiled_dir(dir.as_bytes()), "{dir}");
        }
        assert_eq!(trim_dir(b"/var/log//"), b"/var/log");
        assert_eq!(trim_dir(b"/"), b"/");
    }

    #[test]
    fn full_sets_refuse_new_entries_and_keep_the_first() {
        let mut p = Profile::default();
        assert_eq!(p.add_executable(b"/bin/a", 2), Added::Added);
        assert_eq!(p.add_executable(b"/bin/b", 2), Added::Added);
        assert_eq!(p.add_executable(b"/bin/c", 2), Added::Full);
        assert_eq!(p.add_executable(b"/bin/a", 2), Added::Known);
        assert!(p.executables.contains(b"/bin/a".as_slice()));
        assert!(!p.executables.contains(b"/bin/c".as_slice()));
        assert_eq!(p.add_destination("db", 5432, Proto::Tcp, 1), Added::Added);
        assert_eq!(p.add_destination("db", 5433, Proto::Tcp, 1), Added::Full);
        assert_eq!(p.add_destination("db", 5432, Proto::Tcp, 1), Added::Known);
        assert_eq!(p.entries(), 3);
    }
}
