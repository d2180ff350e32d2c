//! The daemon watching itself: metrics brought up to date from the counters kept
//! elsewhere (kernel maps, sinks, context), and internal alerts when events are lost,
//! the container runtime is unreachable or a sink fails. Each internal alert kind is
//! raised at most once per stats interval.
use std::{
    collections::HashMap,
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

use crate::{
    alerts::{Alert, DispatcherStats, internal_alert},
    context::cgroup::Runtime,
    event::EventKind,
    pipeline::Status,
    rules::Priority,
    server::{
        Metrics,
        metrics::{FaultLabels, SinkLabel, SinkLabels, kind},
    },
};

pub const KERNEL_DROPS_RULE: &str = "monitor: kernel events dropped";
pub const RUNTIME_UNREACHABLE_RULE: &str = "monitor: container runtime unreachable";
pub const SINK_FAILING_RULE: &str = "monitor: alert sink failing";
pub const RELOAD_FAILED_RULE: &str = "monitor: reload failed";

pub fn refresh_metrics(
    metrics: &Metrics,
    status: &Status<'_>,
    stats: &DispatcherStats,
    generation: u64,
) {
    // Every kind is listed, at 0 until it is seen, so rates work from the start.
    for &k in EventKind::ALL {
        let name = k.name();
        metrics.advance(
            &format!("events/{name}"),
            &metrics.events.get_or_create(&kind(name)),
            status.received.get(&k).copied().unwrap_or(0),
        );
    }
    let recorder = status.sensor.recorder_report();
    metrics.recorder_pinned.set(i64::from(recorder.pinned));
    metrics.recorder_adopted.set(i64::from(recorder.adopted));
    metrics.recorder_backlog.set(recorder.backlog as i64);
    metrics.recorder_lost.set(recorder.lost() as i64);
    metrics
        .recorder_unobserved_ms
        .set(recorder.unobserved.map_or(0, |u| u.ms as i64));
    if let Ok(counters) = status.sensor.counters() {
        for (k, c) in counters {
            let name = k.name();
            let label = kind(name);
            metrics.advance(
                &format!("sent/{name}"),
                &metrics.kernel_sent.get_or_create(&label),
                c.sent,
            );
            metrics.advance(
                &format!("dropped/{name}"),
                &metrics.kernel_drops.get_or_create(&label),
                c.dropped,
            );
            for (fault, n) in c.faults.iter() {
                let labels = FaultLabels {
                    kind: name.to_string(),
                    cause: fault.name().to_string(),
                };
                metrics.advance(
                    &format!("faults/{name}/{}", fault.name()),
                    &metrics.kernel_faults.get_or_create(&labels),
                    n,
                );
            }
            metrics.advance(
                &format!("filtered/{name}"),
                &metrics.kernel_filtered.get_or_create(&label),
                c.filtered,
            );
        }
    }
    metrics.advance("malformed", &metrics.malformed, status.malformed);
    if let Some(sampler) = status.sampler {
        metrics.advance(
            "container_stats_samples",
            &metrics.container_stats_samples,
            sampler.samples,
        );
        metrics
            .container_stats_containers
            .set(sampler.containers as i64);
    }
    if let Some(p) = status.profiles {
        metrics.profiles_learning.set(p.learning as i64);
        metrics.profiles_frozen.set(p.frozen as i64);
        metrics.advance(
            "profile_entries_refused",
            &metrics.profile_entries_refused,
            p.evictions_entries,
        );
        metrics.advance(
            "profiles_evicted",
            &metrics.profiles_evicted,
            p.evictions_profiles,
        );
        // Evicted workloads leave the families with them.
        metrics.profile_entries.clear();
        metrics.profile_learning.clear();
        for (workload, learning, entries) in &status.profile_states {
            let label = crate::server::metrics::WorkloadLabel {
                workload: workload.clone(),
            };
            metrics
                .profile_entries
                .get_or_create(&label)
                .set(*entries as i64);
            metrics
                .profile_learning
                .get_or_create(&label)
                .set(i64::from(*learning));
        }
    }
    if let Some(f) = status.fleet {
        metrics.fleet_connected.set(i64::from(f.connected));
        metrics.fleet_pending.set(f.pending as i64);
        for (key, counter, total) in [
            ("fleet/published", &metrics.fleet_published, f.published),
            ("fleet/known", &metrics.fleet_known, f.known),
            (
                "fleet/publish_errors",
                &metrics.fleet_publish_errors,
                f.publish_errors,
            ),
            ("fleet/dropped", &metrics.fleet_dropped, f.dropped),
            ("fleet/refused", &metrics.fleet_refused, f.refused),
            ("fleet/received", &metrics.fleet_received, f.received),
            ("fleet/outages", &metrics.fleet_outages, f.outages),
        ] {
            metrics.advance(key, counter, total);
        }
    }

    metrics.advance(
        &format!("{generation}/suppressed"),
        &metrics.alerts_suppressed,
        stats.suppressed,
    );
    metrics.advance(
        &format!("{generation}/aggregated"),
        &metrics.alerts_aggregated,
        stats.aggregated,
    );
    metrics.advance(
        &format!("{generation}/aggregation_overflow"),
        &metrics.alerts_aggregation_overflow,
        stats.aggregation_overflow,
    );
    for sink in &stats.sinks {
        for (outcome, total) in [
            ("delivered", sink.delivered),
            ("retried", sink.retried),
            ("spooled", sink.spooled),
            ("dropped", sink.dropped),
        ] {
            let labels = SinkLabels {
                sink: sink.name.clone(),
                outcome: outcome.into(),
            };
            metrics.advance(
                &format!("{generation}/{}/{outcome}", sink.name),
                &metrics.alerts.get_or_create(&labels),
                total,
            );
        }
        let label = SinkLabel {
            sink: sink.name.clone(),
        };
        metrics
            .queue_depth
            .get_or_create(&label)
            .set(sink.queued as i64);
        metrics
            .spool_pending
            .get_or_create(&label)
            .set(sink.spool_pending as i64);
    }

    if let Some(context) = status.context {
        let s = context.stats();
        metrics.processes.set(s.processes.tracked as i64);
        metrics.advance(
            "process_misses",
            &metrics.process_misses,
            s.processes.misses,
        );
        metrics.advance(
            "process_evictions",
            &metrics.process_evictions,
            s.processes.evictions,
        );
        metrics.advance(
            "metadata_missing",
            &metrics.metadata_missing,
            s.metadata_missing,
        );
        metrics.advance("metadata_held", &metrics.metadata_held, s.hold.held);
        metrics.advance(
            "metadata_released_early",
            &metrics.metadata_released_early,
            s.hold.released_early,
        );
        metrics.advance(
            "metadata_timed_out",
            &metrics.metadata_timed_out,
            s.hold.timed_out,
        );
        let docker = context
            .runtime_stats()
            .find(|(runtime, ..)| *runtime == Runtime::Docker);
        if let Some((_, _, docker)) = docker {
            metrics.advance(
                "docker_inspect_failures",
                &metrics.docker_inspect_failures,
                docker.inspect_failures.load(Relaxed),
            );
            metrics.docker_up.set(i64::from(!docker.down.load(Relaxed)));
        }
    }
}

pub struct Vitals {
    interval: Duration,
    last_raised: HashMap<String, Instant>,
    /// Per sink: retried + spooled + dropped when last looked at.
    sink_trouble: HashMap<String, u64>,
}

impl Vitals {
    pub fn new(interval: Duration) -> Vitals {
        Vitals {
            interval,
            last_raised: HashMap::new(),
            sink_trouble: HashMap::new(),
        }
    }

    /// At most one alert per key and interval.
    fn due(&mut self, key: &str) -> bool {
        let now = Instant::now();
        match self.last_raised.get(key) {
            Some(last) if now.duration_since(*last) < self.interval => false,
            _ => {
                self.last_raised.insert(key.to_string(), now);
                true
            }
        }
    }

    pub fn check(
        &mut self,
        status: &Status<'_>,
        stats: &DispatcherStats,
        hostname: &str,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        if status.new_drops > 0 && self.due("drops") {
            let mut fields = Map::new();
            fields.insert("monitor.dropped".into(), Value::from(status.new_drops));
            out.push(internal_alert(
                KERNEL_DROPS_RULE,
                Priority::Warning,
                format!(
                    "The kernel dropped {} events (ring buffer full); raise \
                     sensor.ring_buffer_bytes or check the agent's CPU",
                    status.new_drops
                ),
                fields,
                hostname,
            ));
        }
        let down: Vec<String> = status
            .context
            .into_iter()
            .flat_map(|c| c.runtime_stats())
            .filter(|(_, _, stats)| stats.down.load(Relaxed))
            .map(|(runtime, socket, _)| format!("{} ({socket})", runtime.name()))
            .collect();
        if !down.is_empty() && self.due("runtime") {
            out.push(internal_alert(
                RUNTIME_UNREACHABLE_RULE,
                Priority::Warning,
                format!(
                    "Container runtime API unreachable: {}. Alerts from its containers carry \
                     their ids but no names, images or labels until it is back",
                    down.join(", ")
                ),
                Map::new(),
                hostname,
            ));
        }
        for sink in &stats.sinks {
            let trouble = sink.retried + sink.spooled + sink.dropped;
            let before = self.sink_trouble.insert(sink.name.clone(), trouble);
            // A replaced dispatcher starts its counters again from zero.
            let grew = before.is_some_and(|b| trouble > b) || (before.is_none() && trouble > 0);
            if grew && self.due(&format!("sink/{}", sink.name)) {
                let mut fields = Map::new();
                fields.insert("monitor.sink".into(), Value::from(sink.name.clone()));
                fields.insert(
                    "monitor.spool_pending".into(),
                    Value::from(sink.spool_pending),
                );
                fields.insert("monitor.dropped".into(), Value::from(sink.dropped));
                out.push(internal_alert(
                    SINK_FAILING_RULE,
                    Priority::Error,
                    format!(
                        "Alert sink {} is failing: {} alerts wait in its spool, {} were dropped",
                        sink.name, sink.spool_pending, sink.dropped
                    ),
                    fields,
                    hostname,
                ));
            }
        }
        out
    }
}

pub fn reload_failed(message: &str, hostname: &str) -> Alert {
    let mut fields = Map::new();
    fields.insert("monitor.error".into(), Value::from(message));
    internal_alert(
        RELOAD_FAILED_RULE,
        Priority::Error,
        format!("Reload failed, the running rules and settings stay: {message}"),
        fields,
        hostname,
    )
}
