//! Container metadata from the container runtimes: Docker and Podman (the Docker API,
//! through bollard), containerd (its own API and its CRI plugin) and CRI-O (CRI).
//!
//! Every runtime is watched the same way: everything that exists is listed at start-up,
//! the runtime's changes keep the cache current (a container is inspected when it is
//! created, before its first process runs), and unknown ids are inspected on demand.
//! The event pipeline asks with a time bound and never waits longer; when a runtime is
//! away the agent says so once, keeps going, and reconnects with backoff.
pub mod containerd;
pub mod cri;
pub mod docker;

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream::BoxStream};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};

use super::{cgroup::Runtime, lock};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: String,
    pub destination: String,
    /// The mount's options as the runtime states them (`z`, `ro`, ...; often empty).
    pub mode: String,
    pub rw: bool,
    /// `rprivate`, `rshared`, ...
    pub propagation: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl Mount {
    /// Falco's form of one mount: `source:dest:mode:rw:propagation`.
    pub fn falco_form(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.source, self.destination, self.mode, self.rw, self.propagation
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PodInfo {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub container_name: Option<String>,
    /// The pod sandbox's own labels (CRI); empty when only the container's
    /// `io.kubernetes.*` labels named the pod.
    pub labels: BTreeMap<String, String>,
    pub ip: Option<String>,
}

/// What the runtime knows about a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_repository: Option<String>,
    pub image_tag: Option<String>,
    pub image_digest: Option<String>,
    pub image_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub privileged: bool,
    pub network_mode: Option<String>,
    pub mounts: Vec<Mount>,
    /// RFC 3339 start time.
    pub started_at: Option<String>,
    pub pod: Option<PodInfo>,
    /// The user the container's process starts as, as configured (`1000`, `app`).
    pub user: Option<String>,
    pub host_pid: bool,
    pub host_network: bool,
    pub host_ipc: bool,
    /// Capabilities added to the runtime's default set (Docker's `CapAdd`), or the
    /// effective set the runtime gives the first process (CRI).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// The cgroup the runtime asked for, when the container's id is not in it in a
    /// form the cgroup layouts know (`ctr run img web` runs in `/default/web`).
    pub cgroup_path: Option<String>,
}

impl ContainerMeta {
    /// Fills the image's repository and tag from `image`.
    fn with_image(mut self, image: String) -> Self {
        let (repository, tag) = split_image(&image);
        self.image_repository = (!repository.is_empty()).then_some(repository);
        self.image_tag = tag;
        self.image = image;
        self
    }

    /// The pod named by the `io.kubernetes.*` labels kubelet puts on its containers.
    fn pod_from_labels(labels: &BTreeMap<String, String>) -> Option<PodInfo> {
        let label = |key: &str| labels.get(key).cloned();
        label("io.kubernetes.pod.name").map(|name| PodInfo {
            name: Some(name),
            namespace: label("io.kubernetes.pod.namespace"),
            uid: label("io.kubernetes.pod.uid"),
            container_name: label("io.kubernetes.container.name"),
            ..PodInfo::default()
        })
    }
}

/// `registry:5000/team/app:1.2@sha256:…` → (`registry:5000/team/app`, `1.2`); an
/// image named without a tag is `latest`, as Docker reads it.
pub fn split_image(image: &str) -> (String, Option<String>) {
    // A container made from an image id (a classic `docker build` step) has no name
    // to split: `sha256` is no repository.
    if image.starts_with("sha256:") {
        return (image.to_string(), None);
    }
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (
                without_digest[..at].to_string(),
                Some(without_digest[at + 1..].to_string()),
            )
        }
        None => (without_digest.to_string(), Some("latest".to_string())),
    }
}

/// What a runtime's change feed says.
#[derive(Debug)]
pub enum Change {
    /// Created, started or renamed: (re)inspect it.
    Seen(String),
    /// The same, with what the change itself said of the container: kept when the
    /// container is gone before it could be inspected (a `--rm` container that ran
    /// for a millisecond), so its events still carry its name and image.
    SeenAs(Box<ContainerMeta>),
    Removed(String),
}

pub type Changes = BoxStream<'static, anyhow::Result<Change>>;

/// One runtime's API, as the watcher uses it.
pub trait RuntimeApi: Send + Sync + 'static {
    type Client: Send + Sync + 'static;

    fn connect(&self, socket: &Path) -> impl Future<Output = anyhow::Result<Self::Client>> + Send;

    /// Changes from now on; subscribed before the listing, so nothing falls between.
    fn changes(
        &self,
        client: &Self::Client,
    ) -> impl Future<Output = anyhow::Result<Changes>> + Send;

    /// The ids of every container there is.
    fn list(
        &self,
        client: &Self::Client,
    ) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;

    /// Top-level cgroups whose children are this runtime's containers, named by their
    /// ids whatever form those take (containerd's namespaces: `/default/web`).
    fn cgroup_parents(&self, _client: &Self::Client) -> impl Future<Output = Vec<String>> + Send {
        async { Vec::new() }
    }

    /// `Ok(None)`: the runtime does not know `id`.
    fn inspect(
        &self,
        client: &Self::Client,
        id: &str,
    ) -> impl Future<Output = anyhow::Result<Option<ContainerMeta>>> + Send;
}

#[derive(Default, Serialize)]
pub struct RuntimeStats {
    pub inspected: AtomicU64,
    pub inspect_failures: AtomicU64,
    pub reconnects: AtomicU64,
    /// The API was reached and has said it is gone since: don't wait for it.
    #[serde(skip)]
    pub down: AtomicBool,
    /// The containers that existed at the last (re)connection are all inspected.
    #[serde(skip)]
    pub synced: AtomicBool,
}

/// How long a runtime's "no such container" stands before it is asked again.
const UNKNOWN_FOR: Duration = Duration::from_secs(2);

type Cache = Arc<Mutex<HashMap<String, Arc<ContainerMeta>>>>;
type Unknown = Arc<Mutex<HashMap<String, Instant>>>;
/// The last component of a container's own cgroup path → its id.
type ByCgroup = Arc<Mutex<HashMap<String, String>>>;
type CgroupParents = Arc<Mutex<Vec<String>>>;

/// One runtime's metadata, kept current by a background task.
pub struct MetadataSource {
    pub runtime: Runtime,
    pub socket: String,
    cache: Cache,
    /// Ids the API said it does not know, with when: not asked again for a while.
    unknown: Unknown,
    by_cgroup: ByCgroup,
    cgroup_parents: CgroupParents,
    changed: Arc<Notify>,
    requests: mpsc::UnboundedSender<String>,
    pub stats: Arc<RuntimeStats>,
}

impl MetadataSource {
    /// Starts watching `socket` on the current tokio runtime; `answered` is told (as a
    /// stored permit) whenever the runtime has answered something, so events held for
    /// metadata are looked at again.
    pub fn start<A: RuntimeApi>(
        runtime: Runtime,
        socket: String,
        api: A,
        answered: Arc<Notify>,
    ) -> Self {
        let cache = Cache::default();
        let unknown = Unknown::default();
        let by_cgroup = ByCgroup::default();
        let cgroup_parents = CgroupParents::default();
        let changed = Arc::new(Notify::new());
        let stats = Arc::new(RuntimeStats::default());
        let (requests, inbox) = mpsc::unbounded_channel();
        let watcher = Watcher {
            runtime,
            socket: socket.clone(),
            api,
            cache: cache.clone(),
            unknown: unknown.clone(),
            by_cgroup: by_cgroup.clone(),
            cgroup_parents: cgroup_parents.clone(),
            changed: changed.clone(),
            answered,
            stats: stats.clone(),
        };
        tokio::spawn(watcher.run(inbox));
        Self {
            runtime,
            socket,
            cache,
            unknown,
            by_cgroup,
            cgroup_parents,
            changed,
            requests,
            stats,
        }
    }

    /// The container whose own cgroup is named `leaf`, for runtimes whose ids are not
    /// in a form the cgroup layouts know.
    pub fn by_cgroup_name(&self, leaf: &str) -> Option<String> {
        lock(&self.by_cgroup).get(leaf).cloned()
    }

    /// `/default/web` → `web` when `default` is one of this runtime's cgroup parents:
    /// a container not inspected yet, whose first process is starting.
    pub fn by_cgroup_parent(&self, path: &str) -> Option<String> {
        let mut parts = path.strip_prefix('/')?.split('/');
        let (parent, leaf, None) = (parts.next()?, parts.next()?, parts.next()) else {
            return None;
        };
        (!leaf.is_empty() && lock(&self.cgroup_parents).iter().any(|p| p == parent))
            .then(|| leaf.to_string())
    }

    pub fn get(&self, id: &str) -> Option<Arc<ContainerMeta>> {
        lock(&self.cache).get(id).cloned()
    }

    /// Whether this runtime may still describe `id`: it is up, and has neither
    /// described it nor said (lately) that it does not know it.
    pub fn may_describe(&self, id: &str) -> bool {
        !self.is_down() && !lock(&self.cache).contains_key(id) && !self.said_unknown(id)
    }

    /// Asks the runtime to describe `id` (answered through the cache).
    pub fn ask(&self, id: &str) {
        let _ = self.requests.send(id.to_string());
    }

    fn said_unknown(&self, id: &str) -> bool {
        said_unknown(&self.unknown, id)
    }

    /// Waits (at most `timeout`) until the containers that exist now are known, or
    /// the API turned out to be unreachable.
    pub async fn wait_synced(&self, timeout: Duration) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.is_synced() || self.is_down() {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }

    pub fn is_down(&self) -> bool {
        self.stats.down.load(Ordering::Relaxed)
    }

    /// Up, and its change feed describes containers as they are created (Docker's
    /// and Podman's events carry the name, image and labels).
    pub fn describes_from_feed(&self) -> bool {
        matches!(self.runtime, Runtime::Docker | Runtime::Podman) && !self.is_down()
    }

    /// The containers of the last (re)connection are all described.
    pub fn is_synced(&self) -> bool {
        self.stats.synced.load(Ordering::Relaxed)
    }

    /// How many containers this runtime has described.
    pub fn described(&self) -> usize {
        lock(&self.cache).len()
    }
}

struct Watcher<A: RuntimeApi> {
    runtime: Runtime,
    socket: String,
    api: A,
    cache: Cache,
    unknown: Unknown,
    by_cgroup: ByCgroup,
    cgroup_parents: CgroupParents,
    changed: Arc<Notify>,
    answered: Arc<Notify>,
    stats: Arc<RuntimeStats>,
}

impl<A: RuntimeApi> Watcher<A> {
    async fn run(self, mut inbox: mpsc::UnboundedReceiver<String>) {
        let runtime = self.runtime.name();
        let mut backoff = Duration::from_millis(500);
        let mut said_down = false;
        loop {
            match self.api.connect(Path::new(&self.socket)).await {
                Ok(client) => {
                    if said_down {
                        tracing::info!("{runtime} API at {} is reachable again", self.socket);
                    }
                    self.stats.down.store(false, Ordering::Relaxed);
                    backoff = Duration::from_millis(500);
                    let reason = self.serve(&client, &mut inbox).await;
                    self.stats.down.store(true, Ordering::Relaxed);
                    self.stats.synced.store(false, Ordering::Relaxed);
                    self.changed.notify_waiters();
                    self.answered.notify_one();
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "lost the {runtime} API at {} ({reason}); events keep their container \
                         ids, metadata resumes when it is back",
                        self.socket
                    );
                    said_down = true;
                }
                Err(err) => {
                    self.stats.down.store(true, Ordering::Relaxed);
                    self.changed.notify_waiters();
                    self.answered.notify_one();
                    if !said_down {
                        tracing::warn!(
                            "{runtime} API at {} unreachable ({err:#}); events keep their \
                             container ids, metadata resumes when it is back (retrying)",
                            self.socket
                        );
                        said_down = true;
                    }
                }
            }
            // Requests made while down are answered by the listing after reconnecting.
            while inbox.try_recv().is_ok() {}
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Lists, follows changes and answers requests until the connection breaks.
    async fn serve(
        &self,
        client: &A::Client,
        inbox: &mut mpsc::UnboundedReceiver<String>,
    ) -> String {
        let mut changes = match self.api.changes(client).await {
            Ok(changes) => changes,
            Err(err) => return format!("subscribing to changes failed: {err:#}"),
        };
        match self.api.list(client).await {
            Ok(ids) => {
                for id in ids {
                    self.inspect(client, &id, None).await;
                }
            }
            Err(err) => return format!("listing containers failed: {err:#}"),
        }
        *lock(&self.cgroup_parents) = self.api.cgroup_parents(client).await;
        self.stats.synced.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
        let mut removed: Vec<(Instant, String)> = Vec::new();
        let mut sweep = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(Change::Seen(id))) => self.inspect(client, &id, None).await,
                    Some(Ok(Change::SeenAs(said))) => {
                        let id = said.id.clone();
                        self.inspect(client, &id, Some(*said)).await;
                    }
                    // Late events of a removed container still find it for a while.
                    Some(Ok(Change::Removed(id))) => removed.push((Instant::now(), id)),
                    Some(Err(err)) => return format!("change feed failed: {err:#}"),
                    None => return "change feed ended".to_string(),
                },
                Some(id) = inbox.recv() => {
                    // Asked again while an answer was on its way.
                    if said_unknown(&self.unknown, &id) || lock(&self.cache).contains_key(&id) {
                        continue;
                    }
                    self.inspect(client, &id, None).await;
                }
                _ = sweep.tick() => {
                    let now = Instant::now();
                    let mut cache = lock(&self.cache);
                    removed.retain(|(at, id)| {
                        let keep = now.duration_since(*at) < Duration::from_secs(60);
                        if !keep && let Some(meta) = cache.remove(id) {
                            self.forget_cgroup(&meta);
                        }
                        keep
                    });
                    lock(&self.unknown).retain(|_, at| at.elapsed() < Duration::from_secs(60));
                }
            }
        }
    }

    fn forget_cgroup(&self, meta: &ContainerMeta) {
        if let Some(leaf) = meta.cgroup_path.as_deref().and_then(cgroup_leaf) {
            lock(&self.by_cgroup).remove(leaf);
        }
    }

    /// Asks the runtime about `id`; when it cannot tell, what the change said of the
    /// container (`said`) stands in. Held events are told only once the cache or the
    /// "unknown" mark says which.
    async fn inspect(&self, client: &A::Client, id: &str, said: Option<ContainerMeta>) {
        let described = match self.api.inspect(client, id).await {
            Ok(described) => {
                if described.is_some() {
                    self.stats.inspected.fetch_add(1, Ordering::Relaxed);
                }
                described
            }
            Err(err) => {
                self.stats.inspect_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "inspecting {} container {id} failed: {err:#}",
                    self.runtime.name()
                );
                None
            }
        };
        match described.or(said) {
            Some(meta) => {
                if let Some(leaf) = meta.cgroup_path.as_deref().and_then(cgroup_leaf) {
                    lock(&self.by_cgroup).insert(leaf.to_string(), meta.id.clone());
                }
                lock(&self.unknown).remove(&meta.id);
                lock(&self.cache).insert(meta.id.clone(), Arc::new(meta));
            }
            None => {
                lock(&self.unknown).insert(id.to_string(), Instant::now());
            }
        }
        self.changed.notify_waiters();
        self.answered.notify_one();
    }
}

/// Whether the runtime said lately that it does not know `id`.
fn said_unknown(unknown: &Unknown, id: &str) -> bool {
    lock(unknown)
        .get(id)
        .is_some_and(|at| at.elapsed() < UNKNOWN_FOR)
}

/// `/default/web` → `web`; none for systemd's `slice:prefix:name` form, which names no
/// directory.
fn cgroup_leaf(path: &str) -> Option<&str> {
    path.rsplit('/')
        .next()
        .filter(|leaf| !leaf.is_empty() && !leaf.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_into_repository_and_tag() {
        let split = |s| split_image(s);
        assert_eq!(split("nginx:1.25"), ("nginx".into(), Some("1.25".into())));
        assert_eq!(split("nginx"), ("nginx".into(), Some("latest".into())));
        assert_eq!(
            split("registry:5000/team/app:2@sha256:abcd"),
            ("registry:5000/team/app".into(), Some("2".into()))
        );
        assert_eq!(
            split("registry:5000/team/app"),
            ("registry:5000/team/app".into(), Some("latest".into()))
        );
        assert_eq!(
            split("sha256:3656a8de00"),
            ("sha256:3656a8de00".into(), None)
        );
        assert_eq!(
            split("monitor-test/busybox:latest"),
            ("monitor-test/busybox".into(), Some("latest".into()))
        );
    }
}
