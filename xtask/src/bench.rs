//! `cargo xtask bench`: the sensor's cost, as ratios against a baseline measured in
//! the same run (absolute timings on shared machines are too noisy to compare).
//!
//! Each workload runs once without monitor and once with `monitor events` writing to
//! /dev/null; the ratio of the two times is the slowdown the watched workload sees.
//! The agent's own totals line tells how many events it received and dropped.
use std::{
    fs::File,
    io::{BufRead, BufReader},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::util::{is_root, monitor_binary, step};

#[derive(Args)]
pub struct BenchArgs {
    /// open+close pairs in the open storm.
    #[arg(long, default_value_t = 1_000_000)]
    opens: u64,
    /// Executions of /bin/true in the exec storm.
    #[arg(long, default_value_t = 2_000)]
    execs: u64,
    /// Runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

struct Workload {
    name: &'static str,
    kinds: &'static str,
    operations: u64,
    run: fn(u64) -> Result<()>,
}

struct Measurement {
    baseline: Duration,
    monitored: Duration,
    received: u64,
    dropped: u64,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if !is_root() {
        bail!("the benchmark loads eBPF programs: run it as root (sudo -E cargo xtask bench)");
    }
    let workloads = [
        Workload {
            name: "open/close storm",
            kinds: "exec,fork,exit,connect,open",
            operations: args.opens,
            run: open_storm,
        },
        Workload {
            name: "exec storm",
            kinds: "exec,fork,exit,connect,open",
            operations: args.execs,
            run: exec_storm,
        },
    ];
    let mut rows = Vec::new();
    for workload in &workloads {
        let mut runs = Vec::new();
        for i in 0..args.repeat.max(1) {
            step(&format!(
                "{} ({} ops), run {}/{}",
                workload.name,
                workload.operations,
                i + 1,
                args.repeat
            ));
            runs.push(measure(workload)?);
        }
        runs.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        rows.push((workload, runs.swap_remove(runs.len() / 2)));
    }
    println!();
    println!(
        "| workload | ops | baseline | with `monitor events` | slowdown | events received | events/s | dropped |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (workload, m) in rows {
        println!(
            "| {} | {} | {:.3} s | {:.3} s | {:.2}x | {} | {:.0} | {} |",
            workload.name,
            workload.operations,
            m.baseline.as_secs_f64(),
            m.monitored.as_secs_f64(),
            ratio(&m),
            m.received,
            m.received as f64 / m.monitored.as_secs_f64(),
            m.dropped
        );
    }
    Ok(())
}

fn ratio(m: &Measurement) -> f64 {
    m.monitored.as_secs_f64() / m.baseline.as_secs_f64()
}

fn measure(workload: &Workload) -> Result<Measurement> {
    let baseline = time(workload)?;
    let mut agent = Agent::start(workload.kinds)?;
    let monitored = time(workload)?;
    let (received, dropped) = agent.stop()?;
    Ok(Measurement {
        baseline,
        monitored,
        received,
        dropped,
    })
}

fn time(workload: &Workload) -> Result<Duration> {
    let start = Instant::now();
    (workload.run)(workload.operations)?;
    Ok(start.elapsed())
}

fn open_storm(n: u64) -> Result<()> {
    let path = Path::new("/tmp/monitor-bench-open");
    std::fs::write(path, b"x")?;
    for _ in 0..n {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(0)
            .open(path)?;
        drop(file);
    }
    Ok(())
}

fn exec_storm(n: u64) -> Result<()> {
    for _ in 0..n {
        let status = Command::new("/bin/true").status()?;
        if !status.success() {
            bail!("/bin/true failed");
        }
    }
    Ok(())
}

/// `monitor events` with stdout to /dev/null, started and ready.
struct Agent {
    child: Child,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Agent {
    fn start(kinds: &str) -> Result<Self> {
        let mut child = Command::new(monitor_binary())
            .args(["events", "--kinds", kinds])
            .stdout(File::create("/dev/null")?)
            .stderr(Stdio::piped())
            .spawn()
            .context("starting monitor")?;
        let mut stderr = BufReader::new(child.stderr.take().context("stderr")?);
        let mut line = String::new();
        loop {
            line.clear();
            if stderr.read_line(&mut line)? == 0 {
                bail!("monitor exited before it was ready");
            }
            if line.contains("sensor ready") {
                return Ok(Self { child, stderr });
            }
        }
    }

    /// Stops the agent; returns (received, dropped) from its totals line.
    fn stop(&mut self) -> Result<(u64, u64)> {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut line = String::new();
        let mut totals = None;
        while self.stderr.read_line(&mut line)? > 0 {
            if let Some(json) = line.strip_prefix("monitor: totals ") {
                totals = Some(json.to_string());
            }
            line.clear();
        }
        self.child.wait()?;
        let totals = totals.context("monitor printed no totals line")?;
        let value: serde_json::Value = serde_json::from_str(&totals)?;
        let sum = |field: &str| -> u64 {
            value["kinds"]
                .as_object()
                .map(|kinds| kinds.values().filter_map(|k| k[field].as_u64()).sum())
                .unwrap_or(0)
        };
        Ok((sum("received"), sum("dropped")))
    }
}
