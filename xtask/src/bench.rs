//! `cargo xtask bench`: the rule engine's throughput ([`crate::engine_bench`]), then the
//! sensor's cost as ratios against a baseline measured in the same run (absolute
//! timings on shared machines are too noisy to compare): the time to ready
//! ([`crate::startup_bench`]), the daemon storms ([`crate::storms`]) and the agent's
//! memory.
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::{
    storms::{Daemon, daemon_storms},
    util::{build_release, is_root, step},
};

#[derive(Args)]
pub struct BenchArgs {
    /// Runs of each timing; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Extra sleeping processes for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    processes: u64,
    /// Only the rule engine's throughput (no root needed).
    #[arg(long)]
    engine_only: bool,
    /// Skip the rule engine's throughput.
    #[arg(long)]
    no_engine: bool,
    /// Only the metadata-hold latency (no engine, storms or memory).
    #[arg(long)]
    hold_only: bool,
    /// Only the cost of sampling containers for `container_stats`.
    #[arg(long)]
    stats_only: bool,
    /// Only the fleet store's traffic per node (a real nats-server).
    #[arg(long)]
    fleet_only: bool,
    /// Only the time from start to ready.
    #[arg(long)]
    startup_only: bool,
    /// Only what enforced in-kernel kill and deny responses add to the open and connect
    /// storms (the default rules with and without it).
    #[arg(long)]
    enforcement_only: bool,
    /// Rounds of the time to ready (0 skips it).
    #[arg(long, default_value_t = 5)]
    startup_rounds: usize,
    /// Learning workloads for the fleet store's traffic (0 skips it).
    #[arg(long, default_value_t = 100)]
    fleet_workloads: usize,
    /// Idle containers sampled for the `container_stats` cost (0 skips it).
    #[arg(long, default_value_t = 100)]
    stats_containers: usize,
    /// Containers started for the metadata-hold latency (0 skips it).
    #[arg(long, default_value_t = 20)]
    hold_containers: usize,
    /// Operations of the open storm (the others are a tenth, a twentieth, a
    /// five-hundredth of it).
    #[arg(long, default_value_t = 1_000_000)]
    storm: u64,
}

const ALL_KINDS: &[&str] = &["events", "--kinds", "exec,fork,exit,connect,open"];

pub fn run(args: &BenchArgs) -> Result<()> {
    let only_one = args.hold_only
        || args.stats_only
        || args.fleet_only
        || args.startup_only
        || args.enforcement_only;
    if !args.no_engine && !only_one {
        crate::engine_bench::run()?;
    }
    if args.engine_only {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "the sensor benchmark loads eBPF programs: run it as root (sudo -E cargo xtask bench), or pass --engine-only"
        );
    }
    build_release()?;
    if args.hold_only {
        step(&format!(
            "alert latency of {} new containers' first events (held for metadata)",
            args.hold_containers
        ));
        print!("{}", crate::hold_bench::hold_latency(args.hold_containers)?);
        return Ok(());
    }
    if args.stats_only {
        step(&format!(
            "agent CPU for container_stats with {} containers",
            args.stats_containers
        ));
        print!(
            "{}",
            crate::stats_bench::sampling_cost(args.stats_containers)?
        );
        return Ok(());
    }
    if args.fleet_only {
        step(&format!(
            "fleet store traffic with {} learning workloads",
            args.fleet_workloads
        ));
        print!(
            "{}",
            crate::fleet_bench::store_traffic(args.fleet_workloads)?
        );
        return Ok(());
    }
    if args.startup_only {
        step(&format!("time to ready, {} rounds", args.startup_rounds));
        print!(
            "{}",
            crate::startup_bench::time_to_ready(args.startup_rounds)?
        );
        return Ok(());
    }
    if args.enforcement_only {
        print!("{}", daemon_storms(args.storm, args.repeat, true)?);
        return Ok(());
    }
    let startup = if args.startup_rounds > 0 {
        step(&format!("time to ready, {} rounds", args.startup_rounds));
        Some(crate::startup_bench::time_to_ready(args.startup_rounds)?)
    } else {
        None
    };
    let storms = daemon_storms(args.storm, args.repeat, false)?;
    let hold = if args.hold_containers > 0 {
        step(&format!(
            "alert latency of {} new containers' first events (held for metadata)",
            args.hold_containers
        ));
        Some(crate::hold_bench::hold_latency(args.hold_containers)?)
    } else {
        None
    };
    let sampling = if args.stats_containers > 0 {
        step(&format!(
            "agent CPU for container_stats with {} containers",
            args.stats_containers
        ));
        Some(crate::stats_bench::sampling_cost(args.stats_containers)?)
    } else {
        None
    };
    let fleet = if args.fleet_workloads > 0 {
        step(&format!(
            "fleet store traffic with {} learning workloads",
            args.fleet_workloads
        ));
        Some(crate::fleet_bench::store_traffic(args.fleet_workloads)?)
    } else {
        None
    };
    let memory = if args.processes > 0 {
        step(&format!(
            "agent memory with {} extra processes",
            args.processes
        ));
        Some(measure_memory(args.processes)?)
    } else {
        None
    };
    println!();
    print!("{storms}");
    if let Some(startup) = startup {
        println!();
        print!("{startup}");
    }
    if let Some(hold) = hold {
        println!();
        print!("{hold}");
    }
    if let Some(sampling) = sampling {
        println!();
        print!("{sampling}");
    }
    if let Some(fleet) = fleet {
        println!();
        print!("{fleet}");
    }
    if let Some(((idle_rss, idle_tracked), rss, tracked)) = memory {
        println!();
        println!("| agent | processes tracked | VmRSS |");
        println!("| --- | ---: | ---: |");
        println!(
            "| idle machine | {idle_tracked} | {:.1} MiB |",
            idle_rss as f64 / 1024.0
        );
        println!(
            "| with {} extra sleeping processes | {tracked} | {:.1} MiB |",
            args.processes,
            rss as f64 / 1024.0
        );
        println!(
            "| difference per tracked process | | {:.2} KiB |",
            (rss as f64 - idle_rss as f64) / tracked.saturating_sub(idle_tracked).max(1) as f64
        );
    }
    Ok(())
}

/// (VmRSS KiB, tracked) of an agent on the idle machine, VmRSS with `extra` more
/// processes, and how many it then tracked.
fn measure_memory(extra: u64) -> Result<((u64, u64), u64, u64)> {
    let args: Vec<String> = ALL_KINDS.iter().map(|a| a.to_string()).collect();
    let tracked = |totals: serde_json::Value| {
        totals["context"]["processes"]["tracked"]
            .as_u64()
            .unwrap_or(0)
    };
    let idle = Daemon::start(&args, false)?;
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = idle.rss_kib()?;
    let idle_tracked = tracked(idle.stop_totals()?);
    let mut sleepers = Vec::new();
    for _ in 0..extra {
        sleepers.push(
            std::process::Command::new("/bin/sleep")
                .arg("600")
                .spawn()?,
        );
    }
    let result = Daemon::start(&args, false).and_then(|agent| {
        std::thread::sleep(Duration::from_secs(1));
        let rss = agent.rss_kib()?;
        Ok((rss, tracked(agent.stop_totals()?)))
    });
    for mut sleeper in sleepers {
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }
    let (rss, tracked) = result?;
    Ok(((idle_rss, idle_tracked), rss, tracked))
}
