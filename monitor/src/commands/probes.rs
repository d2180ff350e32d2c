//! `monitor probes`: what the probe table chose on this kernel, and what the kernel
//! programs lost and why.
use anyhow::Result;
use monitor_common::Fault;
use serde_json::json;

use crate::{cli::ProbesArgs, config::Loaded, kinds::Interest, sensor::Sensor};

pub fn run(args: ProbesArgs, loaded: Loaded) -> Result<()> {
    let sensor = Sensor::start(&loaded.settings.sensor_config(Interest::all()))?;
    // Since the recorder was made: an adopted recorder tells what it lost while no
    // agent read it, and why.
    let lost = sensor.lifetime_counters()?;
    if args.json {
        let lost: serde_json::Map<String, serde_json::Value> = lost
            .iter()
            .map(|(kind, c)| {
                let counts = json!({"ring_full": c.dropped, "faults": c.faults});
                (kind.name().to_string(), counts)
            })
            .collect();
        let report = json!({"probes": sensor.probes(), "lost": lost});
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{:<8} {:<20} {:<9} {:<24} hooks / reason",
        "kind", "source", "required", "chosen"
    );
    for report in sensor.probes() {
        let detail = if report.chosen.is_some() {
            report.hooks.join(", ")
        } else {
            report.refused.join("; ")
        };
        println!(
            "{:<8} {:<20} {:<9} {:<24} {}",
            report.kind,
            report.source,
            if report.required { "yes" } else { "no" },
            report.chosen.unwrap_or("(skipped)"),
            detail
        );
    }
    println!();
    println!("records lost in the kernel since the recorder was made, by cause:");
    print!("{:<15} {:>12}", "kind", "ring_full");
    for fault in Fault::ALL {
        print!(" {:>12}", fault.name());
    }
    println!();
    for (kind, c) in &lost {
        print!("{:<15} {:>12}", kind.name(), c.dropped);
        for (_, n) in c.faults.iter() {
            print!(" {n:>12}");
        }
        println!();
    }
    Ok(())
}
