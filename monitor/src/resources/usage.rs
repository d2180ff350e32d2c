//! From raw samples to usage: CPU as cores between two samples, usage against the
//! limits, new OOM kills; and a container's sampler that keeps the history.
use std::time::Instant;

use super::{
    cgroup::{ContainerCgroups, Limit, Sample},
    window::{History, Measure},
};

/// A container's use of its resources at `at`, over the interval since the previous
/// sample for the rates. `None` where a sample lacked what it needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub at: Instant,
    /// CPU time per wall time: 1.0 is one core busy all the time.
    pub cores: Option<f64>,
    /// `cores` as a percentage of the CPU limit; `None` without a limit.
    pub cpu_limit_pct: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_pct: Option<f64>,
    /// Cumulative, as the kernel counts them.
    pub oom_kills: Option<u64>,
    /// Since the previous sample.
    pub new_oom_kills: Option<u64>,
    pub pids: Option<u64>,
    pub pids_limit_pct: Option<f64>,
}

impl Usage {
    /// Usage over the interval from `prev` to `cur` (the same container's samples).
    /// A counter that went backwards (the cgroup was recreated) or no time between
    /// the samples gives `None` for the rates, never a negative or infinite one.
    pub fn between(prev: &Sample, cur: &Sample) -> Self {
        let wall_ns = cur
            .at
            .checked_duration_since(prev.at)
            .map(|d| d.as_nanos() as f64)
            .filter(|ns| *ns > 0.0);
        let cores = match (prev.cpu_usage_ns, cur.cpu_usage_ns, wall_ns) {
            (Some(before), Some(now), Some(wall)) => {
                now.checked_sub(before).map(|cpu| cpu as f64 / wall)
            }
            _ => None,
        };
        let new_oom_kills = match (prev.oom_kills, cur.oom_kills) {
            (Some(before), Some(now)) => now.checked_sub(before),
            _ => None,
        };
        Self {
            cores,
            cpu_limit_pct: pct(cores, cur.cpu_limit_cores.and_then(Limit::max)),
            new_oom_kills,
            ..Self::first(cur)
        }
    }

    /// What one sample alone tells: the levels, no rates.
    pub fn first(cur: &Sample) -> Self {
        let as_f64 = |v: Option<u64>| v.map(|v| v as f64);
        let limit = |l: Option<Limit<u64>>| l.and_then(Limit::max).map(|v| v as f64);
        Self {
            at: cur.at,
            cores: None,
            cpu_limit_pct: None,
            memory_bytes: cur.memory_bytes,
            memory_limit_pct: pct(as_f64(cur.memory_bytes), limit(cur.memory_limit_bytes)),
            oom_kills: cur.oom_kills,
            new_oom_kills: None,
            pids: cur.pids,
            pids_limit_pct: pct(as_f64(cur.pids), limit(cur.pids_limit)),
        }
    }

    /// The measures this usage has values for, as the history records them.
    pub fn measures(&self) -> impl Iterator<Item = (Measure, f64)> {
        [
            (Measure::Cores, self.cores),
            (Measure::CpuLimitPct, self.cpu_limit_pct),
            (Measure::MemoryBytes, self.memory_bytes.map(|v| v as f64)),
            (Measure::MemoryLimitPct, self.memory_limit_pct),
            (Measure::NewOomKills, self.new_oom_kills.map(|v| v as f64)),
            (Measure::Pids, self.pids.map(|v| v as f64)),
            (Measure::PidsLimitPct, self.pids_limit_pct),
        ]
        .into_iter()
        .filter_map(|(measure, value)| Some((measure, value?)))
    }
}

fn pct(used: Option<f64>, limit: Option<f64>) -> Option<f64> {
    let limit = limit.filter(|l| *l > 0.0)?;
    Some(used? / limit * 100.0)
}

impl History<Measure> {
    /// Records each measure the usage has, and trims what has aged out.
    pub fn record_usage(&mut self, usage: &Usage) {
        for (measure, value) in usage.measures() {
            self.record(measure, usage.at, value);
        }
        self.prune(usage.at);
    }
}

/// One container's sampler: its cgroup directories (found once), the previous sample
/// and the history of its usage. The caller ticks it on its own schedule and drops it
/// when the container goes.
#[derive(Clone, Debug)]
pub struct ContainerResources {
    cgroups: ContainerCgroups,
    last: Option<Sample>,
    pub history: History<Measure>,
}

impl ContainerResources {
    pub fn new(cgroups: ContainerCgroups) -> Self {
        Self {
            cgroups,
            last: None,
            history: History::new(),
        }
    }

    pub fn cgroups(&self) -> &ContainerCgroups {
        &self.cgroups
    }

    /// The previous sample, if any.
    pub fn last_sample(&self) -> Option<&Sample> {
        self.last.as_ref()
    }

    /// Samples now, works out usage since the previous tick (levels only on the
    /// first), and records it in the history.
    pub fn tick(&mut self, at: Instant) -> Usage {
        let sample = self.cgroups.sample(at);
        let usage = match &self.last {
            Some(prev) => Usage::between(prev, &sample),
            None => Usage::first(&sample),
        };
        self.history.record_usage(&usage);
        self.last = Some(sample);
        usage
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resources::window::{LAST_5_MINUTES, LAST_MINUTE};

    fn sample(at: Instant, cpu_ns: u64, oom: u64) -> Sample {
        Sample {
            at,
            cpu_usage_ns: Some(cpu_ns),
            cpu_limit_cores: Some(Limit::Max(0.5)),
            memory_bytes: Some(16 << 20),
            memory_limit_bytes: Some(Limit::Max(64 << 20)),
            oom_kills: Some(oom),
            pids: Some(10),
            pids_limit: Some(Limit::Max(50)),
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn cores_and_percentages() {
        let t0 = Instant::now();
        let a = sample(t0, 1_000_000_000, 1);
        let b = sample(t0 + Duration::from_secs(2), 1_800_000_000, 3);
        let u = Usage::between(&a, &b);
        assert!(close(u.cores, 0.4), "{u:?}");
        assert!(close(u.cpu_limit_pct, 80.0), "{u:?}");
        assert_eq!(u.memory_bytes, Some(16 << 20));
        assert!(close(u.memory_limit_pct, 25.0));
        assert_eq!((u.oom_kills, u.new_oom_kills), (Some(3), Some(2)));
        assert_eq!(u.pids, Some(10));
        assert!(close(u.pids_limit_pct, 20.0));
        assert_eq!(u.at, b.at);
    }

    #[test]
    fn no_limits_no_percentages() {
        let t0 = Instant::now();
        let mut a = sample(t0, 0, 0);
        a.cpu_limit_cores = Some(Limit::Unlimited);
        a.memory_limit_bytes = Some(Limit::Unlimited);
        a.pids_limit = None;
        let mut b = a;
        b.at = t0 + Duration::from_secs(1);
        b.cpu_usage_ns = Some(2_000_000_000);
        let u = Usage::between(&a, &b);
        assert!(close(u.cores, 2.0));
        assert_eq!(
            (u.cpu_limit_pct, u.memory_limit_pct, u.pids_limit_pct),
            (None, None, None)
        );
    }

    #[test]
    fn counters_going_back_and_no_time_give_no_rates() {
        let t0 = Instant::now();
        let a = sample(t0, 5_000, 4);
        let b = sample(t0 + Duration::from_secs(1), 1_000, 1);
        let u = Usage::between(&a, &b);
        assert_eq!(
            (u.cores, u.cpu_limit_pct, u.new_oom_kills),
            (None, None, None)
        );
        assert_eq!(u.oom_kills, Some(1));
        let same = Usage::between(&a, &a);
        assert_eq!(same.cores, None);
        // Backwards in time.
        assert_eq!(Usage::between(&b, &a).cores, None);
        let first = Usage::first(&a);
        assert_eq!((first.cores, first.new_oom_kills), (None, None));
        assert!(close(first.memory_limit_pct, 25.0));
    }

    #[test]
    fn history_of_usage() {
        let t0 = Instant::now();
        let mut h = History::new();
        // Busy (0.5 cores) for 4 minutes, idle for the last one; a tick every 10 s.
        let mut cpu = 0;
        let mut prev = sample(t0, cpu, 0);
        for i in 1..=30u64 {
            cpu += if i <= 24 { 5_000_000_000 } else { 0 };
            let cur = sample(t0 + Duration::from_secs(i * 10), cpu, 0);
            h.record_usage(&Usage::between(&prev, &cur));
            prev = cur;
        }
        let now = t0 + Duration::from_secs(300);
        let cores = h.means(Measure::Cores, now);
        assert!(close(cores.last_minute, 0.0), "{cores:?}");
        assert!(close(cores.last_5_minutes, 0.5 * 24.0 / 30.0), "{cores:?}");
        assert!(close(
            h.mean(Measure::CpuLimitPct, now, LAST_5_MINUTES),
            80.0
        ));
        assert!(close(
            h.mean(Measure::MemoryLimitPct, now, LAST_MINUTE),
            25.0
        ));
        assert!(close(h.mean(Measure::NewOomKills, now, LAST_MINUTE), 0.0));
    }
}
