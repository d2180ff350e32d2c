//! SHA-256 of executed files, computed by a worker thread so the event path never
//! reads a whole binary. Results are cached by the file's identity (device, inode,
//! mtime, size): a rebuilt binary gets a new hash, a shared one is hashed once.
use std::{
    collections::HashMap,
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
    queued: HashMap<FileKey, ()>,
    requests: SyncSender<(FileKey, PathBuf)>,
    pub stats: Arc<HashStats>,
}

impl ExeHasher {
    pub fn start() -> Self {
        let (requests, inbox) = sync_channel::<(FileKey, PathBuf)>(1024);
        let done: Arc<Mutex<HashMap<FileKey, Arc<str>>>> = Arc::default();
        let stats = Arc::new(HashStats::default());
        {
            let done = done.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("exe-hasher".into())
                .spawn(move || {
                    for (key, path) in inbox {
                        match sha256_file(&path) {
                            Some(hex) => {
                                done.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .insert(key, Arc::from(hex));
                                stats.computed.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {
                                stats.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
                .expect("spawn the exe hasher thread");
        }
        Self {
            done,
            queued: HashMap::new(),
            requests,
            stats,
        }
    }

    /// The hash if it is known; otherwise asks for it (reading `path`, typically
    /// `/proc/<pid>/exe`, which reaches the file even inside a container).
    pub fn get_or_request(&mut self, key: FileKey, path: PathBuf) -> Option<Arc<str>> {
        if let Some(hash) = self
            .done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Some(hash.clone());
        }
        if self.queued.contains_key(&key) {
            return None;
        }
        match self.requests.try_send((key, path)) {
            Ok(()) => {
                self.queued.insert(key, ());
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        None
    }

    pub fn get(&self, key: &FileKey) -> Option<Arc<str>> {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
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
        assert_eq!(hasher.get_or_request(key, path.clone()), None);
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
