//! User and group names, looked up in the process's own root filesystem: a container's
//! uid 1000 is whoever its /etc/passwd says, not the host's uid 1000.
use std::{
    collections::HashMap,
    fs,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use super::host::HostRoot;

/// Where a process's /etc lives, and the key its names are cached under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RootFs {
    Host,
    /// A container, reached through the root of one of its live processes.
    Container(Arc<str>),
}

#[derive(Default)]
struct Names {
    users: HashMap<u32, Arc<str>>,
    groups: HashMap<u32, Arc<str>>,
    loaded_at: Option<Instant>,
}

pub struct UserDb {
    host: HostRoot,
    by_root: HashMap<RootFs, Names>,
    /// A uid missing from a file is looked for again at most this often (users are
    /// added while containers run, but rarely).
    reload_after: Duration,
}

impl UserDb {
    pub fn new(host: HostRoot) -> Self {
        Self {
            host,
            by_root: HashMap::new(),
            reload_after: Duration::from_secs(5),
        }
    }

    /// Names of `uid` and `gid` as seen by the process `pid` living in `root`.
    pub fn names(
        &mut self,
        root: &RootFs,
        pid: u32,
        uid: u32,
        gid: u32,
    ) -> (Option<Arc<str>>, Option<Arc<str>>) {
        let etc = match root {
            RootFs::Host => self.host.path("/etc"),
            RootFs::Container(_) => self.host.proc(pid, "root/etc"),
        };
        let reload_after = self.reload_after;
        let names = self.by_root.entry(root.clone()).or_default();
        let stale = names
            .loaded_at
            .is_none_or(|at| at.elapsed() >= reload_after);
        let missing = !names.users.contains_key(&uid) || !names.groups.contains_key(&gid);
        if names.loaded_at.is_none() || (missing && stale) {
            load(names, &etc);
        }
        (
            names.users.get(&uid).cloned(),
            names.groups.get(&gid).cloned(),
        )
    }

    /// Forgets a container's names when the container is gone.
    pub fn forget(&mut self, root: &RootFs) {
        self.by_root.remove(root);
    }
}

fn load(names: &mut Names, etc: &std::path::Path) {
    let read = |file: &str| -> Option<HashMap<u32, Arc<str>>> {
        let text = fs::read(PathBuf::from(etc).join(file)).ok()?;
        Some(parse_colon_file(&String::from_utf8_lossy(&text)))
    };
    // A root we cannot read now (the process already exited) keeps what it had.
    if let Some(users) = read("passwd") {
        names.users = users;
    }
    if let Some(groups) = read("group") {
        names.groups = groups;
    }
    names.loaded_at = Some(Instant::now());
}

/// `name:x:id:...` lines (passwd and group share the first three columns).
fn parse_colon_file(text: &str) -> HashMap<u32, Arc<str>> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut cols = line.split(':');
        let (Some(name), Some(_), Some(id)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        if let Ok(id) = id.parse::<u32>() {
            out.entry(id).or_insert_with(|| Arc::from(name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse() {
        let names = parse_colon_file(
            "root:x:0:0:root:/root:/bin/sh\n# comment\nbad\napp:x:4242:4242::/:/bin/sh\n",
        );
        assert_eq!(names.get(&0).map(|n| &**n), Some("root"));
        assert_eq!(names.get(&4242).map(|n| &**n), Some("app"));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn host_root_user_is_root() {
        let mut db = UserDb::new(HostRoot::default());
        let (user, group) = db.names(&RootFs::Host, std::process::id(), 0, 0);
        assert_eq!(user.as_deref(), Some("root"));
        assert_eq!(group.as_deref(), Some("root"));
    }
}
