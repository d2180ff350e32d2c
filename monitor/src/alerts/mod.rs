//! Alert delivery: the alert model and its formats, sinks (stdout, rotated file,
//! syslog, HTTP), a bounded queue and an on-disk spool per sink, per-rule rate
//! limiting, aggregation of repeated alerts, and counters.
//!
//! ```text
//! submit ─► aggregation ─► rate limit ─► per sink: bounded channel ─► memory queue ─► sink task ─► sink
//!  (rule matches only)                                             └─► spool (disk) ─┘
//! ```
//!
//! Aggregation comes before the rate limit so that counted repeats take no tokens:
//! a flood of one alert costs the rule two tokens (the first alert and its summary).
//!
//! Each sink runs on its own thread (a small tokio runtime with one task), so a slow
//! or dead sink never stalls the event pipeline nor the other sinks. `submit` only
//! puts the alert in the sink's bounded channel. The sink task takes alerts in order:
//! first the memory queue, then the spool. When the sink fails past its quick
//! retries, the memory queue moves to the front of the spool and everything after
//! it goes to the spool too, until the spool is delivered (order is kept; an alert
//! leaves the spool only when the sink accepted it). When the channel is full (the
//! task is busy sending), `submit` moves the channel's alerts into the memory queue
//! or the spool itself, in order, instead of losing them; alerts are dropped (and
//! counted) only when the spool is full, or, for a sink without a spool, when its
//! memory queue is.
pub mod aggregate;
pub mod config;
pub mod formats;
pub mod http;
pub mod model;
pub mod rate;
pub mod sink;
pub mod spool;
pub mod syslog;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{Notify, mpsc, oneshot};

pub use config::{
    AggregationConfig, AlertsConfig, RateLimitConfig, RetryConfig, SinkConfig, SinkKind,
    SpoolConfig,
};
pub use model::{Alert, AlertSubject, Ancestor, Container, Format};

use crate::rules::Priority;
use aggregate::{Aggregator, Observed};
use rate::RateLimiter;
use sink::Transport;
use spool::Spool;

/// The rule name of the summaries of rate-limited alerts.
pub const SUPPRESSED_RULE: &str = "monitor: alerts suppressed";

/// Longest a sink keeps delivering its backlog at shutdown before leaving the rest in
/// its spool.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Counters of one sink; read them any time (e.g. for Prometheus).
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Alerts the sink accepted.
    pub delivered: AtomicU64,
    /// Failed delivery attempts that were tried again.
    pub retried: AtomicU64,
    /// Alerts written to the spool.
    pub spooled: AtomicU64,
    /// Alerts lost: the spool (or, without one, the memory queue) was full.
    pub dropped: AtomicU64,
    /// Alerts waiting in the spool now.
    pub spool_pending: AtomicU64,
    /// Alerts waiting in memory now.
    pub queued: AtomicU64,
    /// Alerts handed to the sink, and how many of them left memory: delivered,
    /// written to the spool, or dropped (counted). Equal: nothing of the sink's is
    /// only in memory.
    handed: AtomicU64,
    settled: AtomicU64,
    /// Woken whenever alerts settle (shared by the dispatcher's sinks).
    settle_signal: Arc<Notify>,
}

impl SinkCounters {
    fn settle(&self, n: u64) {
        if n > 0 {
            self.settled.fetch_add(n, Relaxed);
            self.settle_signal.notify_one();
        }
    }
}

/// How many alerts each sink had been handed at some moment: [`Dispatcher::settled`]
/// tells when all of them are delivered or on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryMark {
    /// Which dispatcher: a mark of one that was replaced is settled (it delivered or
    /// spooled everything before it went).
    dispatcher: u64,
    handed: Vec<u64>,
}

/// Tells dispatchers apart (a reload replaces them).
static DISPATCHERS: AtomicU64 = AtomicU64::new(1);

/// A snapshot of one sink's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    pub name: String,
    pub kind: &'static str,
    pub delivered: u64,
    pub retried: u64,
    pub spooled: u64,
    pub dropped: u64,
    pub spool_pending: u64,
    pub queued: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DispatcherStats {
    /// Alerts handed to `submit`.
    pub submitted: u64,
    /// Alerts held back by the rate limit (reported in summary alerts).
    pub suppressed: u64,
    /// Repeats counted into an aggregation window instead of being sent (reported in
    /// the window's summary).
    pub aggregated: u64,
    /// Alerts sent unaggregated because `max_keys` windows were open.
    pub aggregation_overflow: u64,
    pub sinks: Vec<SinkStats>,
}

struct SinkHandle {
    name: String,
    kind: &'static str,
    min_priority: Priority,
    counters: Arc<SinkCounters>,
    queue: Arc<Mutex<Queue>>,
    /// Wakes the sink task: new alerts, or the channel closed.
    wake: Arc<Notify>,
    /// Interrupts the sink task's backoff at shutdown.
    stop: Arc<Notify>,
}

struct Shared {
    sinks: Vec<SinkHandle>,
    senders: RwLock<Option<Vec<mpsc::Sender<Arc<Alert>>>>>,
    limiter: Option<Mutex<RateLimiter>>,
    aggregator: Option<Mutex<Aggregator>>,
    submitted: AtomicU64,
    suppressed: AtomicU64,
    aggregated: AtomicU64,
    aggregation_overflow: AtomicU64,
}

impl Shared {
    fn fan_out(&self, alert: Alert) {
        let alert = Arc::new(alert);
        let senders = self.senders.read().unwrap_or_else(|e| e.into_inner());
        let Some(senders) = senders.as_ref() else {
            return;
        };
        for (sink, tx) in self.sinks.iter().zip(senders) {
            if alert.priority > sink.min_priority {
                continue;
            }
            // Counted before the sink task can see it, so settled never passes handed.
            sink.counters.handed.fetch_add(1, Relaxed);
            match tx.try_send(alert.clone()) {
                Ok(()) => sink.wake.notify_one(),
                Err(mpsc::error::TrySendError::Full(alert)) => {
                    // The task is busy sending: take the channel's alerts (older) into
                    // the memory queue or spool, then this one.
                    let mut q = sink.queue.lock().unwrap_or_else(|e| e.into_inner());
                    q.drain_channel(&sink.counters);
                    q.accept(alert, &sink.counters);
                    drop(q);
                    sink.wake.notify_one();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    sink.counters.settle(1);
                }
            }
        }
    }

    /// Closes the channels and wakes every sink task so it flushes and stops.
    fn close(&self) {
        self.senders
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for sink in &self.sinks {
            sink.wake.notify_one();
            sink.stop.notify_one();
        }
    }

    /// Takes a token of `rule`'s bucket; false (counted) when the rate limit holds the
    /// alert back.
    fn limit(&self, rule: &str, hostname: &str) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        let allowed =
            limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(rule, hostname, Instant::now());
        if !allowed {
            self.suppressed.fetch_add(1, Relaxed);
        }
        allowed
    }

    /// Sends the summaries of the aggregation windows that ended (all of them with
    /// `all`, at shutdown). They are alerts of their rule, so the rate limit applies.
    fn emit_aggregates(&self, all: bool) {
        let Some(aggregator) = &self.aggregator else {
            return;
        };
        let summaries = {
            let mut a = aggregator.lock().unwrap_or_else(|e| e.into_inner());
            if all {
                a.take_all()
            } else {
                a.take_closed(Instant::now())
            }
        };
        for summary in summaries {
            if self.limit(&summary.rule, &summary.hostname) {
                self.fan_out(summary);
            }
        }
    }

    fn emit_summaries(&self) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        let (held, describe) = {
            let mut l = limiter.lock().unwrap_or_else(|e| e.into_inner());
            (l.take_suppressed(), l.describe())
        };
        for (rule, count, hostname) in held {
            self.fan_out(suppressed_alert(&rule, count, &hostname, &describe));
        }
    }
}

/// The internal alert that reports what the rate limit held back.
pub fn suppressed_alert(rule: &str, count: u64, hostname: &str, limit: &str) -> Alert {
    let mut fields = Map::new();
    fields.insert("monitor.suppressed_rule".into(), Value::from(rule));
    fields.insert("monitor.suppressed".into(), Value::from(count));
    internal_alert(
        SUPPRESSED_RULE,
        Priority::Warning,
        format!("{count} alerts of rule {rule} suppressed (rate limit {limit})"),
        fields,
        hostname,
    )
}

/// An alert the daemon raises about itself (source `internal`, tag `monitor`), so
/// operators learn of losses and failures where they read the other alerts.
pub fn internal_alert(
    rule: &str,
    priority: Priority,
    output: String,
    output_fields: Map<String, Value>,
    hostname: &str,
) -> Alert {
    Alert {
        time: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        rule: rule.into(),
        priority,
        source: "internal".into(),
        hostname: hostname.into(),
        output,
        tags: vec!["monitor".into()],
        output_fields,
        exec_id: None,
        event_type: None,
        ancestors: vec![],
        container: None,
        aggregated: None,
        response: None,
    }
}

/// Fans alerts out to the configured sinks. Create it from within or outside a tokio
/// runtime; every sink runs on a thread of its own.
pub struct Dispatcher {
    id: u64,
    shared: Arc<Shared>,
    /// Woken when any sink's alerts settle.
    settle_signal: Arc<Notify>,
    done: Vec<oneshot::Receiver<()>>,
    ticker: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Dispatcher {
    /// Checks the configuration, opens the spools and starts the sinks. Errors name
    /// the sink and what is wrong.
    pub fn new(config: &AlertsConfig) -> Result<Dispatcher, String> {
        let settle_signal = Arc::new(Notify::new());
        let mut sinks = Vec::new();
        let mut senders = Vec::new();
        let mut done = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut starts = Vec::new();
        for sink_config in &config.sinks {
            let kind = sink_config.type_name();
            let name = sink_config.name.clone().unwrap_or_else(|| {
                let same = names.iter().filter(|n| n.starts_with(kind)).count();
                if same == 0 {
                    kind.to_string()
                } else {
                    format!("{kind}-{}", same + 1)
                }
            });
            if names.contains(&name) {
                return Err(format!("alert sink `{name}`: the name is used twice"));
            }
            let transport =
                Transport::new(sink_config).map_err(|e| format!("alert sink `{name}`: {e}"))?;
            let spool =
                match &sink_config.spool {
                    Some(s) => Some(Spool::open(&s.dir, s.max_bytes).map_err(|e| {
                        format!("alert sink `{name}`: spool {}: {e}", s.dir.display())
                    })?),
                    None => None,
                };
            let counters = Arc::new(SinkCounters {
                settle_signal: settle_signal.clone(),
                ..SinkCounters::default()
            });
            if let Some(s) = &spool {
                counters.spool_pending.store(s.pending(), Relaxed);
                if !s.is_empty() {
                    tracing::info!(
                        "alert sink `{name}`: {} alerts from an earlier run wait in the spool",
                        s.pending()
                    );
                }
            }
            let queue_size = sink_config.queue_size.max(1);
            let (tx, rx) = mpsc::channel(queue_size);
            let (done_tx, done_rx) = oneshot::channel();
            let queue = Arc::new(Mutex::new(Queue {
                rx,
                closed: false,
                pending: VecDeque::new(),
                queue_size,
                spool,
            }));
            let wake = Arc::new(Notify::new());
            let stop = Arc::new(Notify::new());
            starts.push(Worker {
                name: name.clone(),
                transport,
                queue: queue.clone(),
                counters: counters.clone(),
                retry: sink_config.retry.clone(),
                wake: wake.clone(),
                stop: stop.clone(),
                done: Some(done_tx),
            });
            senders.push(tx);
            done.push(done_rx);
            names.push(name.clone());
            sinks.push(SinkHandle {
                name,
                kind,
                min_priority: sink_config.min_priority,
                counters,
                queue,
                wake,
                stop,
            });
        }
        for worker in starts {
            let name = worker.name.clone();
            std::thread::Builder::new()
                .name(format!("alerts-{name}"))
                .spawn(move || worker.run())
                .map_err(|e| format!("alert sink `{name}`: starting its thread: {e}"))?;
        }
        let shared = Arc::new(Shared {
            sinks,
            senders: RwLock::new(Some(senders)),
            limiter: config
                .rate_limit
                .as_ref()
                .map(|r| Mutex::new(RateLimiter::new(r))),
            aggregator: config
                .aggregation
                .as_ref()
                .filter(|a| a.window_secs > 0)
                .map(|a| Mutex::new(Aggregator::new(a))),
            submitted: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            aggregated: AtomicU64::new(0),
            aggregation_overflow: AtomicU64::new(0),
        });
        let summary_interval = config
            .rate_limit
            .as_ref()
            .map(|r| Duration::from_secs(r.summary_interval_secs.max(1)));
        // Summaries of aggregation windows are due when a window ends, not when the
        // next alert comes: checked often enough that one is at most an eighth of a
        // window (and a second) late.
        let aggregation_tick = shared.aggregator.as_ref().map(|a| {
            let window = a.lock().unwrap_or_else(|e| e.into_inner()).window();
            (window / 8).clamp(Duration::from_millis(50), Duration::from_secs(1))
        });
        let tick = match (summary_interval, aggregation_tick) {
            (Some(s), Some(a)) => Some(s.min(a)),
            (s, a) => s.or(a),
        };
        let ticker = tick.map(|tick| {
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let shared = shared.clone();
            let handle = std::thread::spawn(move || {
                let mut last_summary = Instant::now();
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(tick)
                {
                    shared.emit_aggregates(false);
                    if summary_interval.is_some_and(|s| last_summary.elapsed() >= s) {
                        last_summary = Instant::now();
                        shared.emit_summaries();
                    }
                }
            });
            (stop_tx, handle)
        });
        Ok(Dispatcher {
            id: DISPATCHERS.fetch_add(1, Relaxed),
            shared,
            settle_signal,
            done,
            ticker,
        })
    }

    /// Hands an alert to every sink whose minimum priority it meets. Never blocks on
    /// a sink: each has its own bounded queue.
    pub fn submit(&self, alert: Alert) {
        if self.admit(&alert.rule, &alert.hostname) {
            self.deliver(alert);
        }
    }

    /// Counts an alert of `rule` as submitted; false when the rate limit suppresses
    /// it (then it is counted as such, and need not even be built).
    pub fn admit(&self, rule: &str, hostname: &str) -> bool {
        self.shared.submitted.fetch_add(1, Relaxed);
        self.shared.limit(rule, hostname)
    }

    /// Hands an admitted alert to every sink.
    pub fn deliver(&self, alert: Alert) {
        self.shared.fan_out(alert);
    }

    /// [`Dispatcher::admit`] for a rule match, before its alert is built. With
    /// aggregation on, always true: whether the alert is a repeat depends on its
    /// fields, so [`Dispatcher::deliver_match`] decides once it exists.
    pub fn admit_match(&self, rule: &str, hostname: &str) -> bool {
        self.shared.aggregator.is_some() || self.admit(rule, hostname)
    }

    /// Hands the alert of a rule match that [`Dispatcher::admit_match`] let through
    /// to the sinks, unless it repeats an alert of the current aggregation window.
    /// `exe` is the executable of the matching process, part of the aggregation key.
    /// An alert reporting a kill is never folded or limited: each one is a process
    /// ended, and the kill cap already bounds how many there are.
    pub fn deliver_match(&self, alert: Alert, exe: Option<&str>) {
        if alert
            .response
            .as_ref()
            .is_some_and(|taken| taken.outcome == crate::responses::Outcome::Killed)
        {
            self.deliver(alert);
            return;
        }
        let Some(aggregator) = &self.shared.aggregator else {
            self.deliver(alert);
            return;
        };
        self.shared.submitted.fetch_add(1, Relaxed);
        let observed = aggregator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(alert, exe, Instant::now());
        let alert = match observed {
            Observed::Repeat => {
                self.shared.aggregated.fetch_add(1, Relaxed);
                return;
            }
            Observed::First(alert) => alert,
            Observed::Overflow(alert) => {
                self.shared.aggregation_overflow.fetch_add(1, Relaxed);
                alert
            }
        };
        if self.shared.limit(&alert.rule, &alert.hostname) {
            self.shared.fan_out(alert);
        }
    }

    /// What every sink has been handed so far.
    pub fn mark(&self) -> DeliveryMark {
        DeliveryMark {
            dispatcher: self.id,
            handed: self
                .shared
                .sinks
                .iter()
                .map(|s| s.counters.handed.load(Relaxed))
                .collect(),
        }
    }

    /// Whether every alert handed to the sinks up to `mark` is delivered, in a
    /// spool, or counted as dropped: nothing of it lives in memory only. (Sinks take
    /// their alerts in order.)
    pub fn settled(&self, mark: &DeliveryMark) -> bool {
        mark.dispatcher != self.id
            || self
                .shared
                .sinks
                .iter()
                .zip(&mark.handed)
                .all(|(sink, handed)| sink.counters.settled.load(Relaxed) >= *handed)
    }

    /// Resolves when alerts settle somewhere (or at once, if some did since the last
    /// wait).
    pub fn settling(&self) -> impl Future<Output = ()> + use<> {
        let signal = self.settle_signal.clone();
        async move { signal.notified().await }
    }

    /// Counters of every sink, in configuration order.
    pub fn stats(&self) -> DispatcherStats {
        DispatcherStats {
            submitted: self.shared.submitted.load(Relaxed),
            suppressed: self.shared.suppressed.load(Relaxed),
            aggregated: self.shared.aggregated.load(Relaxed),
            aggregation_overflow: self.shared.aggregation_overflow.load(Relaxed),
            sinks: self
                .shared
                .sinks
                .iter()
                .map(|s| SinkStats {
                    name: s.name.clone(),
                    kind: s.kind,
                    delivered: s.counters.delivered.load(Relaxed),
                    retried: s.counters.retried.load(Relaxed),
                    spooled: s.counters.spooled.load(Relaxed),
                    dropped: s.counters.dropped.load(Relaxed),
                    spool_pending: s.counters.spool_pending.load(Relaxed),
                    queued: s.counters.queued.load(Relaxed),
                })
                .collect(),
        }
    }

    /// The sinks' counters themselves (shared; they keep counting).
    pub fn counters(&self) -> Vec<(String, Arc<SinkCounters>)> {
        self.shared
            .sinks
            .iter()
            .map(|s| (s.name.clone(), s.counters.clone()))
            .collect()
    }

    /// Sends the summaries of every aggregation window, open or not, and the last
    /// rate-limit summaries, closes the queues and waits until every sink delivered
    /// what it holds or, when it cannot (down, or past a grace period), put it in its
    /// spool for the next run. Returns the final counters.
    pub async fn shutdown(mut self) -> DispatcherStats {
        if let Some((stop, handle)) = self.ticker.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
        // Aggregation first: a summary the rate limit holds back is in its count.
        self.shared.emit_aggregates(true);
        self.shared.emit_summaries();
        self.shared.close();
        for done in self.done.drain(..) {
            let _ = done.await;
        }
        self.stats()
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.ticker.take() {
            let _ = stop.send(());
        }
        // Dropped without a shutdown: the counts of open windows still go out.
        self.shared.emit_aggregates(true);
        // Closing the channels lets each sink flush or spool on its own thread.
        self.shared.close();
    }
}

struct Queue {
    rx: mpsc::Receiver<Arc<Alert>>,
    /// The channel is closed and empty.
    closed: bool,
    /// Older than anything in the spool.
    pending: VecDeque<Arc<Alert>>,
    queue_size: usize,
    spool: Option<Spool>,
}

impl Queue {
    /// Moves everything waiting in the channel into the queue or spool, in order.
    fn drain_channel(&mut self, counters: &SinkCounters) {
        loop {
            match self.rx.try_recv() {
                Ok(alert) => self.accept(alert, counters),
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Memory queue while the spool is empty and the queue has room; else the spool.
    fn accept(&mut self, alert: Arc<Alert>, counters: &SinkCounters) {
        let to_spool =
            self.spool.is_some() && (self.spool_busy() || self.pending.len() >= self.queue_size);
        if to_spool {
            let record = alert.to_json();
            let spool = self.spool.as_mut().unwrap();
            match spool.append(&[record.as_bytes()]) {
                Ok(1) => {
                    counters.spooled.fetch_add(1, Relaxed);
                    counters.spool_pending.store(spool.pending(), Relaxed);
                }
                Ok(_) => {
                    counters.dropped.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    tracing::error!("alert spool: {e}");
                    counters.dropped.fetch_add(1, Relaxed);
                }
            }
            counters.settle(1);
        } else if self.pending.len() >= self.queue_size {
            counters.dropped.fetch_add(1, Relaxed);
            counters.settle(1);
        } else {
            self.pending.push_back(alert);
            counters.queued.store(self.pending.len() as u64, Relaxed);
        }
    }

    fn spool_busy(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Moves the memory queue to the front of the spool. Returns (spooled, dropped).
    fn spill(&mut self) -> (u64, u64) {
        let Some(spool) = &mut self.spool else {
            return (0, 0);
        };
        if self.pending.is_empty() {
            return (0, 0);
        }
        let records: Vec<String> = self.pending.iter().map(|a| a.to_json()).collect();
        let refs: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
        let n = refs.len() as u64;
        match spool.prepend(&refs) {
            Ok(fitted) => {
                self.pending.clear();
                (fitted as u64, n - fitted as u64)
            }
            Err(e) => {
                tracing::error!("alert spool: {e}; alerts stay in memory");
                (0, 0)
            }
        }
    }
}

enum Work {
    Memory(Vec<Arc<Alert>>),
    Spool(spool::SpoolBatch, Vec<Arc<Alert>>),
}

struct Worker {
    name: String,
    transport: Transport,
    queue: Arc<Mutex<Queue>>,
    counters: Arc<SinkCounters>,
    retry: RetryConfig,
    wake: Arc<Notify>,
    stop: Arc<Notify>,
    done: Option<oneshot::Sender<()>>,
}

impl Worker {
    fn run(mut self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("alert sink `{}`: no runtime: {e}", self.name);
                return;
            }
        };
        let done = self.done.take();
        runtime.block_on(self.deliver());
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in the channel's alerts, then the next batch to send (None: nothing to
    /// do), and whether the channel is closed.
    fn next_work(&self) -> (Option<Work>, bool) {
        let mut q = self.lock();
        q.drain_channel(&self.counters);
        let closed = q.closed;
        (self.work(&mut q), closed)
    }

    fn work(&self, q: &mut Queue) -> Option<Work> {
        let batch = self.transport.batch();
        if !q.pending.is_empty() {
            return Some(Work::Memory(
                q.pending.iter().take(batch).cloned().collect(),
            ));
        }
        let spool = q.spool.as_mut()?;
        if spool.is_empty() {
            return None;
        }
        match spool.read(batch) {
            Ok(b) => {
                let mut alerts = Vec::with_capacity(b.records.len());
                for r in &b.records {
                    match serde_json::from_slice::<Alert>(r) {
                        Ok(a) => alerts.push(Arc::new(a)),
                        Err(e) => {
                            tracing::error!(
                                "alert sink `{}`: an unreadable spool record is skipped: {e}",
                                self.name
                            );
                            self.counters.dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
                Some(Work::Spool(b, alerts))
            }
            Err(e) => {
                tracing::error!("alert sink `{}`: reading the spool: {e}", self.name);
                None
            }
        }
    }

    /// Marks the first `n` alerts of the work delivered.
    fn ack(&self, work: Work, n: usize) {
        let mut q = self.lock();
        match work {
            Work::Memory(_) => {
                q.pending.drain(..n);
                self.counters.queued.store(q.pending.len() as u64, Relaxed);
                self.counters.settle(n as u64);
            }
            Work::Spool(batch, alerts) => {
                if n < alerts.len() {
                    // Partial: only whole batches move the cursor; re-read the rest.
                    // (Only possible for sinks that send one by one; move the cursor
                    // record by record.)
                    let mut end = batch.end;
                    let extra: u64 = batch.records[n..].iter().map(|r| 4 + r.len() as u64).sum();
                    end -= extra;
                    let partial = spool::SpoolBatch {
                        records: batch.records[..n].to_vec(),
                        end,
                    };
                    if let Some(s) = q.spool.as_mut()
                        && let Err(e) = s.ack(&partial)
                    {
                        tracing::error!("alert sink `{}`: spool cursor: {e}", self.name);
                    }
                } else if let Some(s) = q.spool.as_mut()
                    && let Err(e) = s.ack(&batch)
                {
                    tracing::error!("alert sink `{}`: spool cursor: {e}", self.name);
                }
                let pending = q.spool.as_ref().map_or(0, |s| s.pending());
                self.counters.spool_pending.store(pending, Relaxed);
            }
        }
        self.counters.delivered.fetch_add(n as u64, Relaxed);
    }

    fn spill(&self) {
        let mut q = self.lock();
        let (spooled, dropped) = q.spill();
        self.counters.spooled.fetch_add(spooled, Relaxed);
        self.counters.dropped.fetch_add(dropped, Relaxed);
        self.counters.settle(spooled + dropped);
        self.counters.queued.store(q.pending.len() as u64, Relaxed);
        let pending = q.spool.as_ref().map_or(0, |s| s.pending());
        self.counters.spool_pending.store(pending, Relaxed);
    }

    async fn deliver(mut self) {
        let mut failures = 0u32;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let (work, is_closing) = self.next_work();
            if is_closing && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break;
            }
            let Some(work) = work else {
                if is_closing {
                    break;
                }
                self.wake.notified().await;
                continue;
            };
            let alerts = match &work {
                Work::Memory(a) | Work::Spool(_, a) => a.clone(),
            };
            if alerts.is_empty() {
                // Only unreadable records: skip past them.
                self.ack(work, 0);
                continue;
            }
            let result = self.transport.send(&alerts).await;
            let (delivered, error) = match result {
                Ok(()) => (alerts.len(), None),
                Err((n, e)) => (n, Some(e)),
            };
            self.ack(work, delivered);
            let Some(error) = error else {
                if failures > self.retry.max_retries {
                    tracing::info!("alert sink `{}`: delivering again", self.name);
                }
                failures = 0;
                continue;
            };
            failures += 1;
            let past_deadline = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            if is_closing && (failures > self.retry.max_retries || past_deadline) {
                self.spill();
                let q = self.lock();
                let left = q.pending.len();
                if left > 0 {
                    tracing::warn!(
                        "alert sink `{}`: {left} alerts not delivered at shutdown (no spool)",
                        self.name
                    );
                    self.counters.dropped.fetch_add(left as u64, Relaxed);
                    self.counters.settle(left as u64);
                }
                break;
            }
            if failures == self.retry.max_retries + 1 {
                let spooling = self.lock().spool.is_some();
                tracing::warn!(
                    "alert sink `{}`: {error}; {}",
                    self.name,
                    if spooling {
                        "alerts go to its spool until it is back"
                    } else {
                        "alerts wait in memory until it is back"
                    }
                );
            }
            if failures > self.retry.max_retries {
                self.spill();
            }
            self.counters.retried.fetch_add(1, Relaxed);
            let wait = self.retry.backoff(failures);
            if !is_closing {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.stop.notified() => {}
                }
            }
        }
        // Past the deadline with a working sink: the rest stays in the spool.
        self.spill();
    }
}
