//! Container metadata from the Docker API (bollard): everything running is listed at
//! start-up, the event stream keeps the cache current (a container is inspected when it
//! is created, before its first process runs), and unknown ids are inspected on demand.
//! The event pipeline asks with a time bound and never waits longer; when dockerd is
//! away the agent says so once, keeps going, and reconnects with backoff.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions},
};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Notify, mpsc};

use super::lock;

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
}

/// `registry:5000/team/app:1.2@sha256:…` → (`registry:5000/team/app`, `1.2`); an
/// image named without a tag is `latest`, as Docker reads it.
pub fn split_image(image: &str) -> (String, Option<String>) {
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
        None if without_digest.starts_with("sha256:") => (without_digest.to_string(), None),
        None => (without_digest.to_string(), Some("latest".to_string())),
    }
}

#[derive(Default, Serialize)]
pub struct DockerStats {
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

pub struct DockerMetadata {
    cache: Arc<Mutex<HashMap<String, Arc<ContainerMeta>>>>,
    /// Ids the API said it does not know, with when: not asked again for a while.
    unknown: Arc<Mutex<HashMap<String, Instant>>>,
    changed: Arc<Notify>,
    requests: mpsc::UnboundedSender<String>,
    pub stats: Arc<DockerStats>,
}

impl DockerMetadata {
    /// Starts the background task on the current tokio runtime.
    pub fn start(socket: String) -> Self {
        let cache: Arc<Mutex<HashMap<String, Arc<ContainerMeta>>>> = Arc::default();
        let unknown: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let changed = Arc::new(Notify::new());
        let stats = Arc::new(DockerStats::default());
        let (requests, inbox) = mpsc::unbounded_channel();
        let task = Task {
            socket,
            cache: cache.clone(),
            unknown: unknown.clone(),
            changed: changed.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(task.run(inbox));
        Self {
            cache,
            unknown,
            changed,
            requests,
            stats,
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<ContainerMeta>> {
        lock(&self.cache).get(id).cloned()
    }

    /// The metadata of `id`, waiting at most `wait` for the API. Returns at once when
    /// the API is down or has recently said it does not know `id`.
    pub async fn resolve(&self, id: &str, wait: Duration) -> Option<Arc<ContainerMeta>> {
        if let Some(meta) = self.get(id) {
            return Some(meta);
        }
        if self.stats.down.load(Ordering::Relaxed) {
            return None;
        }
        if lock(&self.unknown)
            .get(id)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(2))
        {
            return None;
        }
        let _ = self.requests.send(id.to_string());
        let wait_for_it = async {
            loop {
                let changed = self.changed.notified();
                if let Some(meta) = self.get(id) {
                    return Some(meta);
                }
                if lock(&self.unknown).contains_key(id) {
                    return None;
                }
                changed.await;
            }
        };
        tokio::time::timeout(wait, wait_for_it).await.ok().flatten()
    }
}

impl DockerMetadata {
    /// Waits (at most `timeout`) until the containers that exist now are known, or
    /// the API turned out to be unreachable.
    pub async fn wait_synced(&self, timeout: Duration) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.stats.synced.load(Ordering::Relaxed)
                    || self.stats.down.load(Ordering::Relaxed)
                {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }
}

struct Task {
    socket: String,
    cache: Arc<Mutex<HashMap<String, Arc<ContainerMeta>>>>,
    unknown: Arc<Mutex<HashMap<String, Instant>>>,
    changed: Arc<Notify>,
    stats: Arc<DockerStats>,
}

impl Task {
    async fn run(self, mut inbox: mpsc::UnboundedReceiver<String>) {
        let mut backoff = Duration::from_millis(500);
        let mut said_down = false;
        loop {
            match self.connect().await {
                Ok(docker) => {
                    if said_down {
                        tracing::info!("docker API at {} is reachable again", self.socket);
                    }
                    self.stats.down.store(false, Ordering::Relaxed);
                    backoff = Duration::from_millis(500);
                    let reason = self.serve(&docker, &mut inbox).await;
                    self.stats.down.store(true, Ordering::Relaxed);
                    self.stats.synced.store(false, Ordering::Relaxed);
                    self.changed.notify_waiters();
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "lost the docker API at {} ({reason}); events keep their container ids, \
                         metadata resumes when it is back",
                        self.socket
                    );
                    said_down = true;
                }
                Err(err) => {
                    self.stats.down.store(true, Ordering::Relaxed);
                    self.changed.notify_waiters();
                    if !said_down {
                        tracing::warn!(
                            "docker API at {} unreachable ({err}); events keep their container \
                             ids, metadata resumes when it is back (retrying)",
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

    async fn connect(&self) -> Result<Docker, bollard::errors::Error> {
        let docker = Docker::connect_with_unix(&self.socket, 5, bollard::API_DEFAULT_VERSION)?;
        // dockerd 20.10 speaks API 1.41: agree on a version both know.
        docker.negotiate_version().await
    }

    /// Lists, follows events and answers requests until the connection breaks.
    async fn serve(&self, docker: &Docker, inbox: &mut mpsc::UnboundedReceiver<String>) -> String {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                ["create", "start", "die", "destroy", "rename"]
                    .map(String::from)
                    .to_vec(),
            ),
        ]);
        // Subscribe before listing, so nothing created in between is missed.
        let mut events = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        match docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
        {
            Ok(list) => {
                for summary in list {
                    if let Some(id) = summary.id {
                        self.inspect(docker, &id).await;
                    }
                }
            }
            Err(err) => return format!("listing containers failed: {err}"),
        }
        self.stats.synced.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
        let mut destroyed: Vec<(Instant, String)> = Vec::new();
        let mut sweep = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(message)) => {
                        let id = message.actor.and_then(|a| a.id).unwrap_or_default();
                        match message.action.as_deref() {
                            Some("create" | "start" | "rename") => self.inspect(docker, &id).await,
                            // Late events of a removed container still find it for a while.
                            Some("destroy") => destroyed.push((Instant::now(), id)),
                            _ => {}
                        }
                    }
                    Some(Err(err)) => return format!("event stream failed: {err}"),
                    None => return "event stream ended".to_string(),
                },
                Some(id) = inbox.recv() => {
                    if lock(&self.cache).contains_key(&id) {
                        continue;
                    }
                    self.inspect(docker, &id).await;
                }
                _ = sweep.tick() => {
                    let now = Instant::now();
                    let mut cache = lock(&self.cache);
                    destroyed.retain(|(at, id)| {
                        let keep = now.duration_since(*at) < Duration::from_secs(60);
                        if !keep {
                            cache.remove(id);
                        }
                        keep
                    });
                    lock(&self.unknown).retain(|_, at| at.elapsed() < Duration::from_secs(60));
                }
            }
        }
    }

    async fn inspect(&self, docker: &Docker, id: &str) {
        match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => {
                let digest = match inspect.image.as_deref() {
                    Some(image_id) => docker
                        .inspect_image(image_id)
                        .await
                        .ok()
                        .and_then(|image| image.repo_digests)
                        .and_then(|digests| digests.into_iter().next())
                        .and_then(|d| d.split_once('@').map(|(_, digest)| digest.to_string())),
                    None => None,
                };
                let meta = to_meta(inspect, digest);
                self.stats.inspected.fetch_add(1, Ordering::Relaxed);
                lock(&self.cache).insert(meta.id.clone(), Arc::new(meta));
            }
            Err(err) => {
                self.stats.inspect_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("inspecting container {id} failed: {err}");
                lock(&self.unknown).insert(id.to_string(), Instant::now());
            }
        }
        self.changed.notify_waiters();
    }
}

fn to_meta(
    inspect: bollard::models::ContainerInspectResponse,
    image_digest: Option<String>,
) -> ContainerMeta {
    let config = inspect.config.unwrap_or_default();
    let host_config = inspect.host_config.unwrap_or_default();
    let labels: BTreeMap<String, String> = config.labels.unwrap_or_default().into_iter().collect();
    let image = config.image.unwrap_or_default();
    let (repository, tag) = split_image(&image);
    let label = |key: &str| labels.get(key).cloned();
    let pod = label("io.kubernetes.pod.name").map(|name| PodInfo {
        name: Some(name),
        namespace: label("io.kubernetes.pod.namespace"),
        uid: label("io.kubernetes.pod.uid"),
        container_name: label("io.kubernetes.container.name"),
    });
    ContainerMeta {
        id: inspect.id.unwrap_or_default(),
        name: inspect
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image_repository: (!repository.is_empty()).then_some(repository),
        image_tag: tag,
        image,
        image_digest,
        image_id: inspect.image,
        privileged: host_config.privileged.unwrap_or(false),
        network_mode: host_config.network_mode,
        mounts: inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| Mount {
                source: m.source.unwrap_or_default(),
                destination: m.destination.unwrap_or_default(),
                mode: m.mode.unwrap_or_default(),
                rw: m.rw.unwrap_or(false),
                propagation: m.propagation.unwrap_or_default(),
                kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
            })
            .collect(),
        started_at: inspect
            .state
            .and_then(|s| s.started_at)
            .filter(|s| !s.starts_with("0001-")),
        pod,
        labels,
    }
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
            split("monitor-test/busybox:latest"),
            ("monitor-test/busybox".into(), Some("latest".into()))
        );
    }
}
