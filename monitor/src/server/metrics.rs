//! What the daemon counts, in Prometheus types. The pipeline and the alert path update
//! these; the HTTP endpoint encodes them on each scrape.
use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FaultLabels {
    pub kind: String,
    /// `monitor_common::Fault::name`.
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
    pub priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub response: String,
    pub point: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponsePointLabels {
    pub response: String,
    pub point: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

/// A workload's learned profile; at most `profiles.max_profiles` of them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabel {
    pub workload: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub events: Family<KindLabel, Counter>,
    pub kernel_sent: Family<KindLabel, Counter>,
    pub kernel_drops: Family<KindLabel, Counter>,
    pub kernel_faults: Family<FaultLabels, Counter>,
    pub kernel_filtered: Family<KindLabel, Counter>,
    pub malformed: Counter,
    pub rule_matches: Family<RuleLabels, Counter>,
    pub response_actions: Family<ResponseLabels, Counter>,
    pub response_rules: Family<ResponsePointLabels, Gauge>,
    pub alerts: Family<SinkLabels, Counter>,
    pub alerts_suppressed: Counter,
    pub alerts_aggregated: Counter,
    pub alerts_aggregation_overflow: Counter,
    pub queue_depth: Family<SinkLabel, Gauge>,
    pub spool_pending: Family<SinkLabel, Gauge>,
    pub internal_alerts: Family<KindLabel, Counter>,
    pub processes: Gauge,
    pub recorder_pinned: Gauge,
    pub recorder_adopted: Gauge,
    pub recorder_backlog: Gauge,
    pub recorder_lost: Gauge,
    pub recorder_unobserved_ms: Gauge,
    pub container_stats_samples: Counter,
    pub container_stats_containers: Gauge,
    pub profiles_learning: Gauge,
    pub profiles_frozen: Gauge,
    pub profile_entries: Family<WorkloadLabel, Gauge>,
    pub profile_learning: Family<WorkloadLabel, Gauge>,
    pub profile_entries_refused: Counter,
    pub profiles_evicted: Counter,
    pub fleet_connected: Gauge,
    pub fleet_pending: Gauge,
    pub fleet_published: Counter,
    pub fleet_known: Counter,
    pub fleet_publish_errors: Counter,
    pub fleet_dropped: Counter,
    pub fleet_refused: Counter,
    pub fleet_received: Counter,
    pub fleet_outages: Counter,
    pub process_misses: Counter,
    pub process_evictions: Counter,
    pub metadata_missing: Counter,
    pub metadata_held: Counter,
    pub metadata_released_early: Counter,
    pub metadata_timed_out: Counter,
    pub docker_inspect_failures: Counter,
    pub docker_up: Gauge,
    pub rules_active: Gauge,
    pub reloads: Family<ResultLabel, Counter>,
    pub health: Health,
    /// Last totals seen of counters kept elsewhere (kernel maps, sinks), so the
    /// Prometheus counters move by the difference.
    last: Mutex<HashMap<String, u64>>,
}

/// Liveness and readiness, read by /healthz and /readyz.
#[derive(Default)]
pub struct Health {
    /// Unix milliseconds of the pipeline's last turn; 0: not started.
    heartbeat_ms: AtomicU64,
    ready: AtomicBool,
    /// What /readyz says: the rules and probes in use, or why not ready.
    detail: Mutex<String>,
}

/// Beyond this the pipeline is considered stuck (it turns at least once a second).
pub const STALL_MS: u64 = 10_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl Health {
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Relaxed);
    }

    pub fn set_ready(&self, ready: bool, detail: String) {
        *self.detail.lock().unwrap_or_else(|e| e.into_inner()) = detail;
        self.ready.store(ready, Relaxed);
    }

    /// `Ok(message)` when alive.
    pub fn live(&self) -> Result<String, String> {
        let beat = self.heartbeat_ms.load(Relaxed);
        if beat == 0 {
            return Err("starting: the pipeline has not turned yet".into());
        }
        let age = now_ms().saturating_sub(beat);
        if age > STALL_MS {
            Err(format!("stalled: the pipeline last turned {age} ms ago"))
        } else {
            Ok(format!("ok: the pipeline turned {age} ms ago"))
        }
    }

    pub fn ready(&self) -> Result<String, String> {
        let detail = self
            .detail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if self.ready.load(Relaxed) {
            Ok(detail)
        } else {
            Err(detail)
        }
    }
}

macro_rules! register {
    ($registry:ident, $name:literal, $help:literal) => {{
        let metric = Default::default();
        $registry.register($name, $help, Clone::clone(&metric));
        metric
    }};
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("monitor");
        Metrics {
            events: register!(r, "events", "Kernel events received by the agent, by kind"),
            kernel_sent: register!(
                r,
                "kernel_events",
                "Records the kernel programs wrote to the ring buffer, by kind"
            ),
            kernel_drops: register!(
                r,
                "kernel_drops",
                "Events lost in the kernel because the ring buffer was full, by kind"
            ),
            kernel_faults: register!(
                r,
                "kernel_faults",
                "Records the kernel programs lost before the ring buffer, by kind and cause \
                 (scratch_busy, read_failed, pending_full, missed_hook)"
            ),
            kernel_filtered: register!(
                r,
                "kernel_filtered",
                "Events the kernel filter dropped because no active rule could match them, by kind"
            ),
            malformed: register!(
                r,
                "malformed_records",
                "Ring buffer records that failed validation and were skipped"
            ),
            rule_matches: register!(r, "rule_matches", "Alerts raised, by rule and priority"),
            response_actions: register!(
                r,
                "response_actions",
                "Responses run on rule matches, by response, enforcement point and outcome \
                 (killed, would-kill, alerted, exempt, failed, capped, unsupported)"
            ),
            response_rules: register!(
                r,
                "response_rules",
                "Active rules each response covers, by the point it gets on this node \
                 (kernel, user-space, none for alert, unsupported): a downgrade shows \
                 before any match"
            ),
            alerts: register!(
                r,
                "alerts",
                "Alerts per sink and outcome (delivered, retried, spooled, dropped)"
            ),
            alerts_suppressed: register!(
                r,
                "alerts_suppressed",
                "Alerts held back by the per-rule rate limit"
            ),
            alerts_aggregated: register!(
                r,
                "alerts_aggregated",
                "Repeated alerts counted into an aggregation window instead of being sent"
            ),
            alerts_aggregation_overflow: register!(
                r,
                "alerts_aggregation_overflow",
                "Alerts sent unaggregated because the most aggregation windows were open"
            ),
            queue_depth: register!(r, "alert_queue_depth", "Alerts waiting in memory, per sink"),
            spool_pending: register!(
                r,
                "alert_spool_pending",
                "Alerts waiting in the on-disk spool, per sink"
            ),
            internal_alerts: register!(
                r,
                "internal_alerts",
                "The daemon's alerts about itself, by kind"
            ),
            processes: register!(r, "process_table_size", "Processes in the process table"),
            recorder_pinned: register!(
                r,
                "recorder_pinned",
                "1 when the kernel recorder is pinned in bpffs (it records across restarts)"
            ),
            recorder_adopted: register!(
                r,
                "recorder_adopted",
                "1 when this agent took over a recorder that kept recording while no agent ran"
            ),
            recorder_backlog: register!(
                r,
                "recorder_backlog_records",
                "Records that waited in the adopted recorder when this agent started"
            ),
            recorder_lost: register!(
                r,
                "recorder_lost_records",
                "Records lost between agents: dropped while no agent read, or held by a recorder of another ABI that was replaced"
            ),
            recorder_unobserved_ms: register!(
                r,
                "recorder_unobserved_milliseconds",
                "Time before this agent's start when nothing recorded (no recorder was handed over; at most)"
            ),
            container_stats_samples: register!(
                r,
                "container_stats_samples",
                "container_stats events made (one per running container per interval)"
            ),
            container_stats_containers: register!(
                r,
                "container_stats_containers",
                "Containers sampled at the last container_stats interval"
            ),
            profiles_learning: register!(
                r,
                "profiles_learning",
                "Workload profiles still learning"
            ),
            profiles_frozen: register!(r, "profiles_frozen", "Workload profiles frozen"),
            profile_entries: register!(
                r,
                "profile_entries",
                "Entries of a workload's profile (executables, destinations, ports, directories)"
            ),
            profile_learning: register!(
                r,
                "profile_learning",
                "1 while a workload's profile learns, 0 once frozen"
            ),
            profile_entries_refused: register!(
                r,
                "profile_entries_refused",
                "Entries not learned because their profile's set was full (profiles.max_entries)"
            ),
            profiles_evicted: register!(
                r,
                "profiles_evicted",
                "Profiles dropped because there were profiles.max_profiles already"
            ),
            fleet_connected: register!(
                r,
                "profiles_fleet_connected",
                "1 while the fleet store (profiles.fleet.url) is reachable, 0 during an outage"
            ),
            fleet_pending: register!(
                r,
                "profiles_fleet_pending",
                "Learned facts waiting to be published to the fleet store"
            ),
            fleet_published: register!(
                r,
                "profiles_fleet_published",
                "Facts this node published to the fleet store"
            ),
            fleet_known: register!(
                r,
                "profiles_fleet_known",
                "Facts this node offered that another node had published already"
            ),
            fleet_publish_errors: register!(
                r,
                "profiles_fleet_publish_errors",
                "Failed attempts to publish to the fleet store (the fact stays queued)"
            ),
            fleet_dropped: register!(
                r,
                "profiles_fleet_dropped",
                "Facts dropped from a full queue (profiles.fleet.max_pending), offered again once the store is back"
            ),
            fleet_refused: register!(
                r,
                "profiles_fleet_refused",
                "Facts the fleet bucket refused because it was full (profiles.fleet.max_bytes)"
            ),
            fleet_received: register!(
                r,
                "profiles_fleet_received",
                "Facts received from the fleet store"
            ),
            fleet_outages: register!(
                r,
                "profiles_fleet_outages",
                "Times the fleet store became unreachable for longer than a reconnect"
            ),
            process_misses: register!(
                r,
                "process_table_misses",
                "Events whose process was not in the table (read from /proc instead); hit rate = 1 - misses/events"
            ),
            process_evictions: register!(
                r,
                "process_table_evictions",
                "Processes evicted because the table was full"
            ),
            metadata_missing: register!(
                r,
                "container_metadata_missing",
                "Container events that went out without the runtime's metadata (not there in time)"
            ),
            metadata_held: register!(
                r,
                "container_metadata_held",
                "Events held until their new container's metadata came (or the bound passed)"
            ),
            metadata_released_early: register!(
                r,
                "container_metadata_released_early",
                "Held events let go before their metadata because the hold was full"
            ),
            metadata_timed_out: register!(
                r,
                "container_metadata_timed_out",
                "Held events let go at the bound (context.metadata_wait_ms), the runtime not having answered"
            ),
            docker_inspect_failures: register!(
                r,
                "docker_inspect_failures",
                "Docker API container inspections that failed"
            ),
            docker_up: register!(
                r,
                "docker_api_up",
                "1 when the Docker API answers, 0 when not (absent without Docker)"
            ),
            rules_active: register!(r, "rules_active", "Rules loaded and active"),
            reloads: register!(
                r,
                "reloads",
                "Reloads of rules and settings, by result (ok, failed)"
            ),
            registry: r,
            health: Health::default(),
            last: Mutex::new(HashMap::new()),
        }
    }
}

impl Metrics {
    /// Moves `counter` up to an externally kept running `total`.
    pub fn advance(&self, key: &str, counter: &Counter, total: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let seen = last.entry(key.to_string()).or_default();
        if total > *seen {
            counter.inc_by(total - *seen);
            *seen = total;
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub fn kind(kind: &str) -> KindLabel {
    KindLabel { kind: kind.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_starting_alive_stalled_and_ready() {
        let health = Health::default();
        assert_eq!(
            health.live(),
            Err("starting: the pipeline has not turned yet".into())
        );
        assert_eq!(health.ready(), Err(String::new()));
        health.beat();
        assert!(
            health
                .live()
                .unwrap()
                .starts_with("ok: the pipeline turned ")
        );
        health
            .heartbeat_ms
            .store(now_ms() - STALL_MS - 1000, Relaxed);
        let stalled = health.live().unwrap_err();
        assert!(
            stalled.starts_with("stalled: the pipeline last turned "),
            "{stalled}"
        );
        health.set_ready(true, "ready: 3 rules".into());
        assert_eq!(health.ready(), Ok("ready: 3 rules".into()));
        health.set_ready(false, "shutting down".into());
        assert_eq!(health.ready(), Err("shutting down".into()));
    }

    #[test]
    fn counters_advance_by_the_difference_of_running_totals() {
        let metrics = Metrics::default();
        let c = metrics.events.get_or_create(&kind("open"));
        metrics.advance("open", &c, 5);
        metrics.advance("open", &c, 5);
        metrics.advance("open", &c, 12);
        assert_eq!(c.get(), 12);
        let text = metrics.encode();
        assert!(
            text.contains("monitor_events_total{kind=\"open\"} 12\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
