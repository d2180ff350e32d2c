//! `monitor probes`: what the probe table chose on this kernel.
use anyhow::Result;

use crate::{cli::ProbesArgs, config::Loaded, kinds::Interest, sensor::Sensor};

pub fn run(args: ProbesArgs, loaded: Loaded) -> Result<()> {
    let sensor = Sensor::start(&loaded.settings.sensor_config(Interest::all()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(sensor.probes())?);
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
    Ok(())
}
