//! Time from start to ready, as a ratio against a plain cold start measured in the
//! same run, round by round (interleaved, so that the machine's drift cancels): the
//! baseline is `monitor events --kinds exec` (the sensor alone); the daemon runs the
//! default rules with every runtime listed before it says it is running. Each row
//! says where the daemon's start-up went, from its own log.
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::{storms::Daemon, util::workspace_root};

pub fn time_to_ready(rounds: usize) -> Result<String> {
    let rules = workspace_root().join("rules");
    let profiles =
        std::env::temp_dir().join(format!("monitor-bench-startup-{}", std::process::id()));
    let plain: Vec<String> = ["events", "--kinds", "exec"].map(String::from).to_vec();
    let daemon: Vec<String> = vec![
        "run".into(),
        "--rules".into(),
        rules.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--profiles-dir".into(),
        profiles.display().to_string(),
    ];
    let mut plain_times = Vec::new();
    let mut daemon_times = Vec::new();
    let mut last_log = Vec::new();
    for _ in 0..rounds.max(1) {
        plain_times.push(ready_after(&plain)?.0);
        let (took, log) = ready_after(&daemon)?;
        daemon_times.push(took);
        last_log = log;
    }
    let _ = std::fs::remove_dir_all(&profiles);
    let (plain_median, plain_spread) = median_and_spread(&mut plain_times);
    let (daemon_median, daemon_spread) = median_and_spread(&mut daemon_times);
    let mut out = String::new();
    out.push_str(&format!(
        "time to ready, {} rounds (median, min to max):\n\n",
        rounds.max(1)
    ));
    out.push_str("| agent | time to ready | ratio to the plain cold start |\n");
    out.push_str("| --- | ---: | ---: |\n");
    out.push_str(&format!(
        "| `monitor events --kinds exec` (plain cold start) | {} | 1.00x |\n",
        show(plain_median, plain_spread)
    ));
    out.push_str(&format!(
        "| `monitor run`, default rules, runtimes listed | {} | {:.2}x |\n",
        show(daemon_median, daemon_spread),
        daemon_median.as_secs_f64() / plain_median.as_secs_f64().max(1e-9)
    ));
    out.push_str("\nwhere the daemon's last start went (its log):\n");
    for line in last_log.iter().filter(|l| {
        l.contains("sensor start-up:")
            || l.contains("answered its first listing")
            || l.contains("has not answered")
            || l.contains("process table seeded")
    }) {
        let message = line.split_once("  INFO ").map_or(line.as_str(), |(_, m)| m);
        out.push_str(&format!("- {}\n", message.trim()));
    }
    Ok(out)
}

/// Starts the agent, waits for its ready line and stops it; how long the start took,
/// and what it logged meanwhile.
fn ready_after(args: &[String]) -> Result<(Duration, Vec<String>)> {
    let started = Instant::now();
    let daemon = Daemon::start(args, false)?;
    let took = started.elapsed();
    let log = daemon.start_log.clone();
    daemon.stop_totals()?;
    Ok((took, log))
}

fn median_and_spread(times: &mut [Duration]) -> (Duration, (Duration, Duration)) {
    times.sort();
    (times[times.len() / 2], (times[0], times[times.len() - 1]))
}

fn show(median: Duration, (min, max): (Duration, Duration)) -> String {
    format!(
        "{:.2} s ({:.2} to {:.2})",
        median.as_secs_f64(),
        min.as_secs_f64(),
        max.as_secs_f64()
    )
}
