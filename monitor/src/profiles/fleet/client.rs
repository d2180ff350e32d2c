//! The fleet link's task: connects to NATS (again and again, by itself), opens or
//! creates the bucket, publishes queued facts in order, watches the workloads this
//! node runs, and says once when the store goes away and once when it is back.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{
    self,
    kv::{CreateErrorKind, Operation, Store, UpdateErrorKind},
};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{
    Change, Command, FleetConfig, FleetCounters, FleetUpdate, MAX_VALUE_BYTES, Reach,
    keys::{self, FleetState},
};
use crate::profiles::workload::WorkloadId;

/// A disconnection shorter than this is a blip (a client moving to another server of
/// the cluster), not an outage worth a warning.
const OUTAGE_AFTER: Duration = Duration::from_secs(3);

/// How long one request to the store may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

const RETRY_EVERY: Duration = Duration::from_millis(500);

/// The client options the settings describe (also used by `monitor profiles --fleet`).
pub async fn options(config: &FleetConfig) -> Result<async_nats::ConnectOptions> {
    let mut options = match &config.credentials_file {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .with_context(|| {
                format!(
                    "profiles.fleet.credentials_file: cannot read {}",
                    path.display()
                )
            })?,
        None => async_nats::ConnectOptions::new(),
    };
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &config.ca_file {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(options
        .name("monitor")
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT)))
}

/// The bucket, created when it does not exist yet.
///
/// Created as the stream JetStream's key-value buckets are made of, rather than with
/// `create_key_value`: that call first asks the account's limits, and the reply of
/// nats-server 2.9 (Debian's) lacks fields async-nats 0.52 requires, so it always
/// fails there. The stream's settings are the ones a bucket has.
pub async fn open_bucket(js: &jetstream::Context, config: &FleetConfig) -> Result<Store> {
    if let Ok(store) = js.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    use jetstream::stream::{Config, DiscardPolicy, StorageType};
    js.create_stream(Config {
        name: format!("KV_{}", config.bucket),
        description: Some("monitor: learned workload profiles, one key per fact".into()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: 1,
        max_bytes: i64::try_from(config.max_bytes).unwrap_or(i64::MAX),
        max_message_size: MAX_VALUE_BYTES,
        storage: StorageType::File,
        num_replicas: config.replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .with_context(|| {
        format!(
            "cannot create the key-value bucket `{}` with {} replica(s) (a cluster with \
             fewer JetStream servers needs profiles.fleet.replicas lowered)",
            config.bucket, config.replicas
        )
    })?;
    js.get_key_value(&config.bucket)
        .await
        .with_context(|| format!("cannot open the key-value bucket `{}`", config.bucket))
}

enum Queued {
    Create { key: String, value: Vec<u8> },
    Freeze(Arc<WorkloadId>, u64),
}

pub(super) async fn run(
    config: FleetConfig,
    mut commands: mpsc::UnboundedReceiver<Command>,
    updates: mpsc::UnboundedSender<FleetUpdate>,
    counters: Arc<FleetCounters>,
) {
    let options = match options(&config).await {
        Ok(options) => options,
        Err(err) => {
            tracing::error!("profiles: fleet store off: {err:#}");
            // Nothing will come: first events must not wait for it.
            counters.set_reach(Reach::Down);
            return;
        }
    };
    let (reach_tx, mut reach_rx) = mpsc::unbounded_channel();
    let options = options
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let reach_tx = reach_tx.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        let _ = reach_tx.send(true);
                    }
                    async_nats::Event::Disconnected => {
                        let _ = reach_tx.send(false);
                    }
                    other => tracing::debug!("profiles: fleet store: {other}"),
                }
            }
        });
    let servers: Vec<&str> = config.url.split(',').map(str::trim).collect();
    let client = match options.connect(servers.as_slice()).await {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(
                "profiles: fleet store off: cannot use profiles.fleet.url `{}`: {err}",
                config.url
            );
            counters.set_reach(Reach::Down);
            return;
        }
    };
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);

    let mut link = Link {
        config,
        counters,
        updates,
        store: None,
        queue: VecDeque::new(),
        queued: HashSet::new(),
        watched: HashMap::new(),
        rewatch: false,
        down_since: Some(Instant::now()),
        reported: false,
        bucket_error: None,
    };
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => link.take(command),
                None => return,
            },
            Some(up) = reach_rx.recv() => link.reach(up),
            _ = retry.tick() => {}
        }
        // Take everything queued meanwhile before going to the network.
        while let Ok(command) = commands.try_recv() {
            link.take(command);
        }
        link.check_outage();
        if link.store.is_none() {
            link.open(&js).await;
        }
        link.flush().await;
    }
}

struct Link {
    config: FleetConfig,
    counters: Arc<FleetCounters>,
    updates: mpsc::UnboundedSender<FleetUpdate>,
    store: Option<Store>,
    /// Facts and freezes waiting for the store, oldest first.
    queue: VecDeque<Queued>,
    /// The keys in `queue`: a fact offered twice is published once.
    queued: HashSet<String>,
    /// Each watched workload's watcher (started once the bucket is open).
    watched: HashMap<Arc<WorkloadId>, Option<tokio::task::JoinHandle<()>>>,
    /// Set when the connection came back: the watchers start over once the store
    /// answers. A watch that outlived the outage resumes by itself, but only after its
    /// own back-off (up to 10 s), which a fleet-wide freeze must not wait for.
    rewatch: bool,
    down_since: Option<Instant>,
    reported: bool,
    bucket_error: Option<String>,
}

impl Link {
    fn take(&mut self, command: Command) {
        match command {
            Command::Watch(workload) => {
                self.watched.entry(workload).or_insert(None);
            }
            Command::Unwatch(workload) => {
                if let Some(Some(watcher)) = self.watched.remove(&workload) {
                    watcher.abort();
                }
            }
            Command::Create { key, value } => {
                if self.queued.contains(&key) {
                    self.counters.pending.fetch_sub(1, Ordering::Relaxed);
                } else if self.queue.len() >= self.config.max_pending {
                    self.counters.pending.fetch_sub(1, Ordering::Relaxed);
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.queued.insert(key.clone());
                    self.queue.push_back(Queued::Create { key, value });
                }
            }
            Command::Freeze {
                workload,
                generation,
            } => self.queue.push_back(Queued::Freeze(workload, generation)),
        }
    }

    fn reach(&mut self, up: bool) {
        if up {
            self.rewatch = self.watched.values().any(Option::is_some);
            let was = self.counters.set_reach(Reach::Connected);
            if self.reported {
                let away = self.down_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                tracing::info!(
                    "profiles: the fleet store is reachable again after {away:.1} s; \
                     publishing {} waiting facts",
                    self.queue.len()
                );
            } else if was == Reach::Connecting {
                tracing::info!(
                    "profiles: connected to the fleet store at {}",
                    self.config.url
                );
            }
            self.down_since = None;
            self.reported = false;
        } else if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
        }
    }

    /// Says once that the store is away, when it has been for longer than a blip.
    fn check_outage(&mut self) {
        let Some(since) = self.down_since else { return };
        if self.reported || since.elapsed() < OUTAGE_AFTER {
            return;
        }
        self.reported = true;
        self.counters.set_reach(Reach::Down);
        self.counters.outages.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "profiles: the fleet store at {} is unreachable; judging with this node's \
             profiles and keeping what it learns ({} facts waiting) until the store is back",
            self.config.url,
            self.queue.len()
        );
    }

    async fn open(&mut self, js: &jetstream::Context) {
        if self.counters.reach() != Reach::Connected {
            return;
        }
        match open_bucket(js, &self.config).await {
            Ok(store) => {
                tracing::info!(
                    "profiles: sharing through the bucket `{}`",
                    self.config.bucket
                );
                self.store = Some(store);
                self.bucket_error = None;
            }
            Err(err) => {
                let message = format!("{err:#}");
                if self.bucket_error.as_deref() != Some(&message) {
                    tracing::warn!("profiles: {message}; trying again");
                }
                self.bucket_error = Some(message);
            }
        }
    }

    async fn flush(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if self.rewatch && store.status().await.is_ok() {
            self.rewatch = false;
            for watcher in self.watched.values_mut().filter_map(Option::take) {
                watcher.abort();
            }
        }
        for (workload, watcher) in self.watched.iter_mut() {
            if watcher.as_ref().is_none_or(|w| w.is_finished()) {
                *watcher = Some(tokio::spawn(watch(
                    store.clone(),
                    workload.clone(),
                    self.updates.clone(),
                    self.counters.clone(),
                )));
            }
        }
        while let Some(next) = self.queue.front() {
            let done = match next {
                Queued::Create { key, value } => self.create(&store, key, value).await,
                Queued::Freeze(workload, generation) => {
                    match freeze(&store, workload, *generation).await {
                        Ok(()) => true,
                        Err(err) => {
                            tracing::debug!("profiles: fleet freeze of {workload}: {err:#}");
                            self.counters.publish_errors.fetch_add(1, Ordering::Relaxed);
                            false
                        }
                    }
                }
            };
            if !done {
                // The store is away: the rest waits for the next try, in order.
                return;
            }
            if let Some(Queued::Create { key, .. }) = self.queue.pop_front() {
                self.queued.remove(&key);
                self.counters.pending.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether the fact is settled (published, already there, or refused for good).
    async fn create(&self, store: &Store, key: &str, value: &[u8]) -> bool {
        match store.create(key, value.to_vec().into()).await {
            Ok(_) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {
                self.counters.known.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(err) if is_full(&err) => {
                if self.counters.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "profiles: the fleet bucket `{}` is full (profiles.fleet.max_bytes); \
                         new facts stay on this node (counted as refused)",
                        self.config.bucket
                    );
                }
                true
            }
            Err(err) => {
                tracing::debug!("profiles: publishing {key}: {err}");
                self.counters.publish_errors.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

fn is_full(err: &impl std::fmt::Display) -> bool {
    let text = err.to_string();
    text.contains("maximum bytes") || text.contains("resource limits exceeded")
}

/// Hands over every fact about `workload`, first those already in the store (then
/// `Synced`), then each new one; starts over (from the beginning: merging is
/// idempotent) when the watch breaks.
async fn watch(
    store: Store,
    workload: Arc<WorkloadId>,
    updates: mpsc::UnboundedSender<FleetUpdate>,
    counters: Arc<FleetCounters>,
) {
    let send = |change: Change| {
        updates
            .send(FleetUpdate {
                workload: workload.clone(),
                change,
            })
            .is_ok()
    };
    // The state key always exists, so the history is never empty and its end is seen.
    let state = FleetState {
        workload: workload.to_string(),
        generation: 0,
        frozen: false,
    };
    loop {
        match store
            .create(keys::state_key(&workload), state.to_bytes().into())
            .await
        {
            Ok(_) => break,
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => break,
            Err(_) => tokio::time::sleep(RETRY_EVERY).await,
        }
    }
    let mut synced = false;
    loop {
        if let Ok(mut stream) = store
            .watch_with_history(keys::workload_filter(&workload))
            .await
        {
            while let Some(Ok(entry)) = stream.next().await {
                if entry.operation == Operation::Put
                    && let Some(fact) = keys::parse(&entry.key, &entry.value)
                {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    if !send(Change::Fact(fact)) {
                        return;
                    }
                }
                if !synced && entry.seen_current {
                    synced = true;
                    if !send(Change::Synced) {
                        return;
                    }
                }
            }
        }
        if updates.is_closed() {
            return;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Sets the workload's state to frozen, unless its generation moved on (a reset) or
/// it is frozen already; compare-and-set, so a concurrent reset is never undone.
pub async fn freeze(store: &Store, workload: &WorkloadId, generation: u64) -> Result<()> {
    update_state(store, workload, |state| {
        (state.generation == generation && !state.frozen).then(|| FleetState {
            frozen: true,
            ..state.clone()
        })
    })
    .await
    .map(|_| ())
}

/// Applies `change` to the workload's state (absent: generation 0, learning) with
/// compare-and-set, retrying on a concurrent update; returns the state written, or
/// `None` when `change` left it as it was.
pub async fn update_state(
    store: &Store,
    workload: &WorkloadId,
    change: impl Fn(&FleetState) -> Option<FleetState>,
) -> Result<Option<FleetState>> {
    let key = keys::state_key(workload);
    for _ in 0..20 {
        let entry = store.entry(key.clone()).await?;
        let current = entry
            .as_ref()
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| serde_json::from_slice::<FleetState>(&e.value).ok())
            .unwrap_or_else(|| FleetState {
                workload: workload.to_string(),
                generation: 0,
                frozen: false,
            });
        let Some(next) = change(&current) else {
            return Ok(None);
        };
        let written = match &entry {
            Some(e) => store
                .update(&key, next.to_bytes().into(), e.revision)
                .await
                .map_err(|err| (err.kind() == UpdateErrorKind::WrongLastRevision, err.into())),
            None => store
                .create(&key, next.to_bytes().into())
                .await
                .map_err(|err| (err.kind() == CreateErrorKind::AlreadyExists, err.into())),
        };
        match written {
            Ok(_) => return Ok(Some(next)),
            Err((true, _)) => continue,
            Err((false, err)) => return Err::<_, anyhow::Error>(err),
        }
    }
    anyhow::bail!("the state of {workload} kept changing under us; try again")
}
