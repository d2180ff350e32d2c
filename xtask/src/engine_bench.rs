//! The rule engine's throughput, from the criterion bench `monitor/benches/engine.rs`:
//! the default rules plus Falco's stable ruleset on a recorded mix of events, and the
//! baseline measured in the same run (one trivial rule on the same events). Times are
//! the bench thread's CPU time (the bench's own criterion measurement), so events/s
//! are per core.
use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result};

use crate::util::{run_cmd, step, workspace_root};

/// The benchmarks, as `(criterion id, what it measures)`; the last is the baseline.
const BENCHES: &[(&str, &str)] = &[
    (
        "evaluate_mix",
        "default rules + Falco stable rules, live events (the daemon's path)",
    ),
    (
        "evaluate_mix_incubating",
        "default rules + Falco stable and incubating rules, live events",
    ),
    (
        "evaluate_mix_all_falco",
        "default rules + Falco stable, incubating and sandbox rules, live events",
    ),
    (
        "evaluate_mix_json",
        "default rules + Falco stable rules, JSON events (fixtures, replay)",
    ),
    (
        "profile_lookups",
        "learned profiles: each event's workload and its verdict (no rules; target ≤ 100 ns)",
    ),
    (
        "profile_lookups_fleet",
        "learned profiles shared through a nats-server (target: ≤ 1.05× profile_lookups)",
    ),
    (
        "baseline_one_rule",
        "baseline: one trivial rule, live events",
    ),
];

/// Runs the bench and prints events/s and the ratio of each to the baseline.
pub fn run() -> Result<()> {
    step("rule engine throughput (criterion: cargo bench -p monitor --bench engine)");
    run_cmd(Command::new("cargo").current_dir(workspace_root()).args([
        "bench",
        "--package",
        "monitor",
        "--bench",
        "engine",
        "--",
        "--noplot",
    ]))?;
    let rates = BENCHES
        .iter()
        .map(|(id, _)| events_per_second(id))
        .collect::<Result<Vec<f64>>>()?;
    let baseline = rates[rates.len() - 1];
    println!();
    println!(
        "| engine benchmark | events/s (median, CPU time) | CPU time per event | vs baseline |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for ((_, what), rate) in BENCHES.iter().zip(&rates) {
        println!(
            "| {what} | {rate:.0} | {:.0} ns | {:.3} |",
            1e9 / rate,
            rate / baseline
        );
    }
    let rate_of = |id: &str| BENCHES.iter().position(|(b, _)| *b == id).map(|i| rates[i]);
    if let (Some(off), Some(on)) = (rate_of("profile_lookups"), rate_of("profile_lookups_fleet")) {
        println!();
        println!(
            "profiles with the fleet store on: {:.3}× the CPU time per event of the store \
             off (target ≤ 1.05)",
            off / on
        );
    }
    Ok(())
}

/// criterion's median for one benchmark, as events per second (the bench declares
/// the events of one iteration as its throughput).
fn events_per_second(id: &str) -> Result<f64> {
    let dir = target_dir().join("criterion/engine").join(id).join("new");
    let read = |name: &str| -> Result<serde_json::Value> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading criterion's results {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let ns_per_iteration = read("estimates.json")?["median"]["point_estimate"]
        .as_f64()
        .context("criterion's estimates.json has no median")?;
    let events = read("benchmark.json")?["throughput"]["Elements"]
        .as_f64()
        .context("criterion's benchmark.json has no throughput in elements")?;
    Ok(events * 1e9 / ns_per_iteration)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}
