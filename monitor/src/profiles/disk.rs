//! Profiles on disk: one JSON file per workload in the state directory, replaced
//! atomically (a temporary file renamed over it), so that a crash or the CLI never
//! leaves half a profile.
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    profile::{Destination, Profile, Proto},
    workload::WorkloadId,
};
use crate::output::escape::{bytes_to_text, text_to_bytes};

/// Bumped when the file's meaning changes; other versions are read as corrupt.
const VERSION: u32 = 1;

/// A profile as stored. Byte strings (paths) are text with `\xNN` for bytes that are
/// not UTF-8, as in the event JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredProfile {
    pub version: u32,
    /// The workload's id as text (`deployment/default/web`); the file name is only
    /// derived from it.
    pub workload: String,
    pub observed_secs: f64,
    pub frozen: bool,
    /// Unix seconds of the last write; orders profiles for eviction after a restart.
    pub last_seen: u64,
    pub refused: u64,
    pub executables: Vec<String>,
    pub destinations: Vec<Destination>,
    pub listening: Vec<Listen>,
    pub write_dirs: Vec<String>,
    /// The fleet's generation (`profiles::fleet`); absent in files of agents without one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Listen {
    pub port: u16,
    pub proto: Proto,
}

impl StoredProfile {
    pub fn from_profile(id: &WorkloadId, p: &Profile) -> Self {
        let texts = |set: &super::profile::EntrySet<Box<[u8]>>| {
            let mut v: Vec<String> = set.iter().map(|b| bytes_to_text(b).into_owned()).collect();
            v.sort();
            v
        };
        let mut listening: Vec<Listen> = p
            .listening
            .iter()
            .map(|&(port, proto)| Listen { port, proto })
            .collect();
        listening.sort();
        StoredProfile {
            version: VERSION,
            workload: id.to_string(),
            observed_secs: p.observed.as_secs_f64(),
            frozen: p.frozen,
            last_seen: now_unix(),
            refused: p.refused,
            executables: texts(&p.executables),
            destinations: p.destinations.to_sorted(),
            listening,
            write_dirs: texts(&p.write_dirs),
            generation: p.generation,
        }
    }

    /// An empty, learning profile (what `reset` writes).
    pub fn empty(id: &WorkloadId) -> Self {
        Self::from_profile(id, &Profile::default())
    }

    /// The profile, entries past `cap` left out (a file written under a larger cap).
    pub fn to_profile(&self, cap: usize) -> Profile {
        let mut p = Profile {
            observed: Duration::try_from_secs_f64(self.observed_secs).unwrap_or_default(),
            frozen: self.frozen,
            refused: self.refused,
            generation: self.generation,
            ..Profile::default()
        };
        for e in &self.executables {
            p.add_executable(&text_to_bytes(e), cap);
        }
        for d in &self.destinations {
            p.add_destination(&d.host, d.port, d.proto, cap);
        }
        for l in &self.listening {
            p.add_listen(l.port, l.proto, cap);
        }
        for d in &self.write_dirs {
            p.add_write_dir(&text_to_bytes(d), cap);
        }
        p
    }

    pub fn id(&self) -> Result<WorkloadId, String> {
        self.workload.parse()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What identifies one version of a file: a rewrite by anyone else changes it (the
/// inode changes with every rename, even within one mtime tick).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    len: u64,
}

pub fn stamp(path: &Path) -> io::Result<Stamp> {
    let m = fs::metadata(path)?;
    Ok(Stamp {
        ino: m.ino(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        len: m.len(),
    })
}

/// The file of a workload: its id with everything but `[A-Za-z0-9._-]` percent-encoded
/// (`deployment%2Fdefault%2Fweb.json`), so that names are readable and no id can
/// reach outside the directory. Ids too long for a file name keep a readable start
/// and a hash of the whole.
pub fn file_name(id: &WorkloadId) -> String {
    let text = id.to_string();
    let mut name = String::with_capacity(text.len() + 16);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.len() > 200 {
        let mut cut = 120;
        // Not inside a %XX escape.
        while name.as_bytes()[cut - 1] == b'%' || name.as_bytes()[cut - 2] == b'%' {
            cut -= 1;
        }
        let hash = Sha256::digest(text.as_bytes());
        let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
        name = format!("{}~{hex}", &name[..cut]);
    }
    name.push_str(".json");
    name
}

/// Creates the state directory (0700: profiles describe what workloads do) when
/// missing.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes the profile to `dir/<file_name>` atomically; returns the new file's stamp.
pub fn write(dir: &Path, id: &WorkloadId, stored: &StoredProfile) -> io::Result<(PathBuf, Stamp)> {
    create_dir(dir)?;
    let path = dir.join(file_name(id));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("profile"),
        std::process::id()
    ));
    let json = serde_json::to_vec_pretty(stored).map_err(io::Error::other)?;
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if let Err(err) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    let stamp = stamp(&path)?;
    Ok((path, stamp))
}

/// One file of the state directory.
pub struct Read {
    pub path: PathBuf,
    pub stamp: Stamp,
    pub profile: Result<StoredProfile, String>,
}

/// Reads one profile file; a problem is described for a warning.
pub fn read(path: &Path) -> io::Result<Read> {
    let stamp = stamp(path)?;
    let bytes = fs::read(path)?;
    let profile = serde_json::from_slice::<StoredProfile>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            if p.version != VERSION {
                return Err(format!(
                    "version {} (this agent reads version {VERSION})",
                    p.version
                ));
            }
            p.id().map(|_| p)
        });
    Ok(Read {
        path: path.to_path_buf(),
        stamp,
        profile,
    })
}

/// Every profile file in `dir` (none when it does not exist), by name. Temporary
/// files and set-aside corrupt ones are skipped.
pub fn read_dir(dir: &Path) -> io::Result<Vec<Read>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        match read(&path) {
            Ok(r) => out.push(r),
            Err(e) => out.push(Read {
                path,
                stamp: Stamp {
                    ino: 0,
                    mtime: 0,
                    mtime_nsec: 0,
                    len: 0,
                },
                profile: Err(e.to_string()),
            }),
        }
    }
    Ok(out)
}

/// Moves a corrupt file out of the way (`NAME.corrupt`), keeping it for a person to
/// look at while its workload starts over.
pub fn set_aside(path: &Path) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let _ = fs::rename(path, aside);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::workload::WorkloadKind;

    #[test]
    fn file_names_stay_in_the_directory_and_fit() {
        let id = WorkloadId::new(WorkloadKind::Deployment, Some("default"), "web");
        assert_eq!(file_name(&id), "deployment%2Fdefault%2Fweb.json");
        let hostile = WorkloadId::new(WorkloadKind::Image, None, "../../etc/passwd");
        let name = file_name(&hostile);
        assert!(!name.contains('/'), "{name}");
        let long = WorkloadId::new(WorkloadKind::Image, None, &"a/".repeat(200));
        let name = file_name(&long);
        assert!(name.len() < 255, "{}", name.len());
        let other = WorkloadId::new(WorkloadKind::Image, None, &"a/".repeat(201));
        assert_ne!(name, file_name(&other));
    }

    #[test]
    fn byte_paths_survive_the_text_form() {
        let id = WorkloadId::new(WorkloadKind::Image, None, "x");
        let mut p = Profile::default();
        p.add_executable(b"/bin/\xff\x1b[31m", 10);
        let stored = StoredProfile::from_profile(&id, &p);
        let back = stored.to_profile(10);
        assert!(back.executables.contains(b"/bin/\xff\x1b[31m".as_slice()));
    }
}
