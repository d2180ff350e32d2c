//! What `container_stats` costs: the agent's CPU time with N idle containers running,
//! once with a rule on `container_stats` (so every container is sampled: its cgroup
//! files read, its usage and windows worked out, its event judged) and once with a
//! rule that needs no samples, the same time apart, in the same run. The samples come
//! every second, ten times the default, so the difference stands out of the noise;
//! the cost at the default interval is a tenth of it.
use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::storms::{BENCH_IMAGE, Daemon, ensure_image};

const MEASURE: Duration = Duration::from_secs(30);
const INTERVAL_SECS: u64 = 1;
const DEFAULT_INTERVAL_SECS: u64 = 10;

/// Removes the bench's containers, also when the bench fails.
pub struct Containers(pub Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for chunk in self.0.chunks(50) {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(chunk)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The agent's CPU time over `MEASURE`, after its start and one interval settled.
fn agent_cpu(rule: &str) -> Result<Duration> {
    let rules = std::env::temp_dir().join("monitor-bench-stats.yaml");
    std::fs::write(&rules, rule)?;
    let profiles = std::env::temp_dir().join("monitor-bench-stats-profiles");
    let _ = std::fs::remove_dir_all(&profiles);
    let interval = INTERVAL_SECS.to_string();
    let args: Vec<String> = [
        "run",
        "--rules",
        rules.to_str().context("temp path")?,
        "--listen",
        "",
        "--container-stats-interval",
        &interval,
        "--profiles-dir",
        profiles.to_str().context("temp path")?,
    ]
    .map(String::from)
    .to_vec();
    let daemon = Daemon::start(&args, false)?;
    thread::sleep(Duration::from_secs(3));
    let before = daemon.cpu_time()?;
    thread::sleep(MEASURE);
    let used = daemon.cpu_time()?.saturating_sub(before);
    daemon.stop_totals()?;
    Ok(used)
}

pub fn sampling_cost(containers: usize) -> Result<String> {
    ensure_image()?;
    let names: Vec<String> = (0..containers)
        .map(|i| format!("monitor-bench-stats-{}-{i}", std::process::id()))
        .collect();
    let _cleanup = Containers(names.clone());
    let started = Instant::now();
    for name in &names {
        let status = Command::new("docker")
            .args([
                "run",
                "-d",
                "--name",
                name,
                BENCH_IMAGE,
                "/bin/sleep",
                "3600",
            ])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("docker run {name} failed");
        }
    }
    eprintln!(
        "  {containers} containers started in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let sampled = agent_cpu(
        "- rule: Bench stats\n  desc: Never true; every container sampled.\n  condition: evt.type = container_stats and container.pids.count > 1000000000\n  output: o\n  priority: INFO\n",
    )?;
    let baseline = agent_cpu(
        "- rule: Bench baseline\n  desc: Needs no samples.\n  condition: evt.type = openat and fd.name = /nonexistent/monitor-bench\n  output: o\n  priority: INFO\n",
    )?;
    let per_second = |d: Duration| d.as_secs_f64() / MEASURE.as_secs_f64();
    let extra = (per_second(sampled) - per_second(baseline)).max(0.0);
    let at_default = extra * INTERVAL_SECS as f64 / DEFAULT_INTERVAL_SECS as f64;
    let mut out = String::new();
    out.push_str("| container_stats sampling | agent CPU (share of a core) |\n");
    out.push_str("| --- | ---: |\n");
    out.push_str(&format!(
        "| baseline: {containers} idle containers, no rule on container_stats | {:.2} % |\n",
        per_second(baseline) * 100.0
    ));
    out.push_str(&format!(
        "| {containers} containers sampled every {INTERVAL_SECS} s | {:.2} % |\n",
        per_second(sampled) * 100.0
    ));
    out.push_str(&format!(
        "| sampling's cost at {INTERVAL_SECS} s | {:.2} % |\n",
        extra * 100.0
    ));
    out.push_str(&format!(
        "| sampling's cost at the default {DEFAULT_INTERVAL_SECS} s (target ≤ 1 %) | {:.3} % |\n",
        at_default * 100.0
    ));
    Ok(out)
}
