//! SHA-256 of executed files, computed by a worker thread so the event path never
//! reads a whole binary. Results are cached by the file's identity (device, inode,
//! mtime, size): a rebuilt binary gets a new hash, a shared one is hashed once.
use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io::Read,
    os::unix::fs::MetadataExt,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
};

use sha2::{Digest, Sha256};

use super::lock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i128,
    pub size: u64,
}

impl FileKey {
    pub fn of(path: &std::path::Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            size: meta.size(),
        })
    }
}

#[derive(Default)]
pub struct HashStats {
    pub computed: AtomicU64,
    pub failed: AtomicU64,
    /// Requests not queued because the worker was behind (the hash comes with a later
    /// exec of the same file).
    pub skipped: AtomicU64,
}

pub struct ExeHasher {
    done: Arc<Mutex<HashMap<FileKey, Arc<str>>>>,
    /// Files asked for and not finished; a failed one leaves it, so a later exec of
    /// the same file asks again.
    queued: Arc<Mutex<HashSet<FileKey>>>,
    requests: SyncSender<(FileKey, Vec<PathBuf>)>,
    pub stats: Arc<HashStats>,
}

impl ExeHasher {
    pub fn start() -> Self {
        let (requests, inbox) = sync_channel::<(FileKey, Vec<PathBuf>)>(1024);
        let done: Arc<Mutex<HashMap<FileKey, Arc<str>>>> = Arc::default();
        let queued: Arc<Mutex<HashSet<FileKey>>> = Arc::default();
        let stats = Arc::new(HashStats::default());
        {
            let done = done.clone();
            let queued = queued.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("exe-hasher".into())
                .spawn(move || {
                    for (key, paths) in inbox {
                        // The first path that still is the executed file (the process
                        // may be gone, the file replaced).
                        let hash = paths
                            .iter()
                            .filter(|p| FileKey::of(p) == Some(key))
                            .find_map(|p| sha256_file(p));
                        match hash {
                            Some(hex) => {
                                lock(&done).insert(key, Arc::from(hex));
                                stats.computed.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {
                                stats.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        lock(&queued).remove(&key);
                    }
                })
                .expect("spawn the exe hasher thread");
        }
        Self {
            done,
            queued,
            requests,
            stats,
        }
    }

    /// The hash if it is known; otherwise asks for it, to be read from the first of
    /// `paths` that is still the same file (`/proc/<pid>/exe` reaches it even inside a
    /// container while the process lives).
    pub fn get_or_request(&mut self, key: FileKey, paths: Vec<PathBuf>) -> Option<Arc<str>> {
        if let Some(hash) = lock(&self.done).get(&key) {
            return Some(hash.clone());
        }
        if !lock(&self.queued).insert(key) {
            return None;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.requests.try_send((key, paths))
        {
            lock(&self.queued).remove(&key);
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        }
        None
    }

    pub fn get(&self, key: &FileKey) -> Option<Arc<str>> {
        lock(&self.done).get(key).cloned()
    }
}

fn sha256_file(path: &std::path::Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_a_file_off_thread() {
        let path = std::env::temp_dir().join(format!("monitor-hash-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let key = FileKey::of(&path).unwrap();
        let mut hasher = ExeHasher::start();
        assert_eq!(hasher.get_or_request(key, vec![path.clone()]), None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let hash = loop {
            if let Some(hash) = hasher.get(&key) {
                break hash;
            }
            assert!(std::time::Instant::now() < deadline, "hash never arrived");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            &*hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_file(path).unwrap();
    }
}
