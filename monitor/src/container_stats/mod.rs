//! The `container_stats` events: every `stats.interval`, each running container's
//! resource usage (its cgroups, through [`crate::resources`]) and activity (its
//! events, through [`activity`]) as one event the rules judge like any other.
pub mod activity;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use crate::{
    clock::BootClock,
    context::{ContainerContext, EnrichedEvent, host::HostRoot, process::ProcessInfo},
    event::{ContainerStats, Detail, Event, Measure as StatsMeasure},
    resources::{CgroupMounts, ContainerCgroups, ContainerResources, Measure, Usage},
};

/// What the sampler did, for the metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct SamplerStats {
    pub samples: u64,
    pub containers: usize,
}

pub struct Sampler {
    host: HostRoot,
    mounts: CgroupMounts,
    containers: HashMap<Arc<str>, ContainerResources>,
    activity: activity::Activity,
    last_tick: Option<Instant>,
    pub stats: SamplerStats,
}

impl Sampler {
    pub fn new(host: HostRoot) -> Sampler {
        let mounts = CgroupMounts::discover(&host);
        Sampler {
            host,
            mounts,
            containers: HashMap::new(),
            activity: activity::Activity::default(),
            last_tick: None,
            stats: SamplerStats::default(),
        }
    }

    /// Counts a passing event towards its container's rates.
    pub fn observe(&mut self, event: &EnrichedEvent) {
        self.activity.observe(event, Instant::now());
    }

    /// One `container_stats` event per running container (`running`: each with one
    /// of its live processes). Containers gone since the last tick are forgotten.
    pub fn sample(
        &mut self,
        running: Vec<(ContainerContext, Arc<ProcessInfo>)>,
    ) -> Vec<EnrichedEvent> {
        let now = Instant::now();
        let boot_ns = BootClock::boot_ns_now();
        let interval_secs = self.last_tick.map_or(0, |t| {
            now.saturating_duration_since(t).as_secs_f64().round() as u64
        });
        self.last_tick = Some(now);
        let ids: HashSet<Arc<str>> = running.iter().map(|(c, _)| c.id.clone()).collect();
        self.containers.retain(|id, _| ids.contains(id));
        self.activity.retain(&ids);
        let mut out = Vec::with_capacity(running.len());
        for (container, process) in running {
            let resources = match self.containers.get_mut(&container.id) {
                Some(r) => r,
                None => {
                    let Some(cgroups) =
                        ContainerCgroups::of_pid(&self.host, &self.mounts, process.pid)
                    else {
                        continue;
                    };
                    self.containers
                        .entry(container.id.clone())
                        .or_insert_with(|| ContainerResources::new(cgroups))
                }
            };
            let usage = resources.tick(now);
            let rates = self.activity.rates(&container.id, now);
            let stats = ContainerStats {
                execs_per_min: Some(rates.execs),
                connects_per_min: Some(rates.connects),
                failed_connects_per_min: Some(rates.failed_connects),
                destinations_per_min: Some(rates.destinations),
                interval_secs,
                ..measures(resources, &usage, now)
            };
            self.stats.samples += 1;
            out.push(EnrichedEvent {
                event: Event {
                    boot_ns,
                    pid: process.pid,
                    tid: process.pid,
                    cgroup_id: process.cgroup_id,
                    comm: process.name.clone(),
                    detail: Detail::ContainerStats(Box::new(stats)),
                },
                process: Some(process),
                ancestors: Vec::new(),
                container,
                exe_sha256: None,
                workload: None,
            });
        }
        self.stats.containers = out.len();
        out
    }
}

/// The usage of this tick and the means of the container's history, as the event's
/// integers (millicores, rounded percentages).
fn measures(resources: &ContainerResources, usage: &Usage, now: Instant) -> ContainerStats {
    let history = &resources.history;
    let measure = |key: Measure, current: Option<f64>, scale: f64| {
        let means = history.means(key, now);
        let int = |v: Option<f64>| v.map(|v| (v * scale).round().max(0.0) as u64);
        StatsMeasure {
            now: int(current),
            mean_1m: int(means.last_minute),
            mean_5m: int(means.last_5_minutes),
        }
    };
    let sample = resources.last_sample();
    ContainerStats {
        cpu_millicores: measure(Measure::Cores, usage.cores, 1000.0),
        cpu_limit_pct: measure(Measure::CpuLimitPct, usage.cpu_limit_pct, 1.0),
        cpu_limit_millicores: sample
            .and_then(|s| s.cpu_limit_cores)
            .and_then(|l| l.max())
            .map(|cores| (cores * 1000.0).round() as u64),
        memory_bytes: measure(
            Measure::MemoryBytes,
            usage.memory_bytes.map(|b| b as f64),
            1.0,
        ),
        memory_limit_pct: measure(Measure::MemoryLimitPct, usage.memory_limit_pct, 1.0),
        memory_limit_bytes: sample
            .and_then(|s| s.memory_limit_bytes)
            .and_then(|l| l.max()),
        oom_kills: usage.oom_kills,
        new_oom_kills: usage.new_oom_kills,
        pids: measure(Measure::Pids, usage.pids.map(|p| p as f64), 1.0),
        pids_limit_pct: measure(Measure::PidsLimitPct, usage.pids_limit_pct, 1.0),
        pids_limit: sample.and_then(|s| s.pids_limit).and_then(|l| l.max()),
        ..ContainerStats::default()
    }
}
