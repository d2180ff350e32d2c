//! `cargo xtask bench`: the rule engine's throughput ([`crate::engine_bench`]), then the
//! sensor's cost, as ratios against a baseline measured in the same run (absolute
//! timings on shared machines are too noisy to compare).
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

use crate::util::{build_release, is_root, monitor_binary, step};

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
    /// Extra sleeping processes for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    processes: u64,
    /// Only the rule engine's throughput (no root needed).
    #[arg(long)]
    engine_only: bool,
    /// Operations of each storm in the daemon comparison (opens; connects are a
    /// tenth, execs a hundredth).
    #[arg(long, default_value_t = 200_000)]
    storm: u64,
}

struct Workload {
    name: &'static str,
    /// `monitor events` arguments.
    agent: &'static [&'static str],
    operations: u64,
    run: fn(u64) -> Result<()>,
}

struct Measurement {
    baseline: Duration,
    monitored: Duration,
    received: u64,
    dropped: u64,
    /// The agent's CPU time (user + system) for the whole run.
    agent_cpu: Duration,
}

const ALL_KINDS: &[&str] = &["events", "--kinds", "exec,fork,exit,connect,open"];
const ALL_KINDS_RAW: &[&str] = &[
    "events",
    "--kinds",
    "exec,fork,exit,connect,open",
    "--no-context",
];

pub fn run(args: &BenchArgs) -> Result<()> {
    crate::engine_bench::run()?;
    if args.engine_only {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "the sensor benchmark loads eBPF programs: run it as root (sudo -E cargo xtask bench), or pass --engine-only"
        );
    }
    build_release()?;
    let workloads = [
        Workload {
            name: "open/close storm, sensor only (`--no-context`)",
            agent: ALL_KINDS_RAW,
            operations: args.opens,
            run: open_storm,
        },
        Workload {
            name: "open/close storm, with context",
            agent: ALL_KINDS,
            operations: args.opens,
            run: open_storm,
        },
        Workload {
            name: "exec storm, sensor only (`--no-context`)",
            agent: ALL_KINDS_RAW,
            operations: args.execs,
            run: exec_storm,
        },
        Workload {
            name: "exec storm, with context",
            agent: ALL_KINDS,
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
    let storms = daemon_storms(args)?;
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
    println!(
        "| workload | ops | baseline | with `monitor events` | slowdown | events received | events/s | dropped | agent CPU per event |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (workload, m) in rows {
        println!(
            "| {} | {} | {:.3} s | {:.3} s | {:.2}x | {} | {:.0} | {} | {:.2} µs |",
            workload.name,
            workload.operations,
            m.baseline.as_secs_f64(),
            m.monitored.as_secs_f64(),
            ratio(&m),
            m.received,
            m.received as f64 / m.monitored.as_secs_f64(),
            m.dropped,
            m.agent_cpu.as_secs_f64() * 1e6 / m.received.max(1) as f64
        );
    }
    println!();
    print!("{storms}");
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
    let idle = Agent::start(ALL_KINDS)?;
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = idle.rss_kib()?;
    let idle_tracked = idle.stop_totals()?["context"]["processes"]["tracked"]
        .as_u64()
        .unwrap_or(0);
    let mut sleepers = Vec::new();
    for _ in 0..extra {
        sleepers.push(Command::new("/bin/sleep").arg("600").spawn()?);
    }
    let result = Agent::start(ALL_KINDS).and_then(|agent| {
        std::thread::sleep(Duration::from_secs(1));
        let rss = agent.rss_kib()?;
        let tracked = agent.stop_totals()?["context"]["processes"]["tracked"]
            .as_u64()
            .unwrap_or(0);
        Ok((rss, tracked))
    });
    for mut sleeper in sleepers {
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }
    let (rss, tracked) = result?;
    Ok(((idle_rss, idle_tracked), rss, tracked))
}

fn ratio(m: &Measurement) -> f64 {
    m.monitored.as_secs_f64() / m.baseline.as_secs_f64()
}

fn measure(workload: &Workload) -> Result<Measurement> {
    let baseline = time(workload)?;
    let agent = Agent::start(workload.agent)?;
    let monitored = time(workload)?;
    let agent_cpu = agent.cpu_time()?;
    let totals = agent.stop_totals()?;
    let sum = |field: &str| kinds_sum(&totals, field);
    Ok(Measurement {
        baseline,
        monitored,
        received: sum("received"),
        dropped: sum("dropped"),
        agent_cpu,
    })
}

/// A field of the totals line summed over every kind.
fn kinds_sum(totals: &serde_json::Value, field: &str) -> u64 {
    totals["kinds"]
        .as_object()
        .map(|kinds| kinds.values().filter_map(|k| k[field].as_u64()).sum())
        .unwrap_or(0)
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

/// A workload of `n` operations.
type Storm = fn(u64) -> Result<()>;

/// `n` TCP connects to a closed loopback port, each refused.
fn connect_storm(n: u64) -> Result<()> {
    for _ in 0..n {
        let _ = std::net::TcpStream::connect("127.0.0.1:9");
    }
    Ok(())
}

/// The open, connect and exec storms under `monitor run` with the default rules, with
/// Falco's stable rules, each with and without the kernel filter, and under `monitor
/// events` (everything, with context): wall ratio against a baseline run just before,
/// what reached the agent and what the kernel filtered, the agent's CPU per operation,
/// and each kernel program's average run time (`kernel.bpf_stats_enabled`).
fn daemon_storms(args: &BenchArgs) -> Result<String> {
    let rules = crate::util::workspace_root().join("rules");
    let falco = crate::util::workspace_root().join("../shared/falco-rules/falco_rules.yaml");
    let rules = rules.to_string_lossy().to_string();
    let falco = falco.to_string_lossy().to_string();
    let agents: Vec<(&str, Vec<&str>)> = vec![
        (
            "run, default rules",
            vec!["run", "--rules", &rules, "--listen", ""],
        ),
        (
            "run, default rules, --no-kernel-filter",
            vec![
                "run",
                "--rules",
                &rules,
                "--listen",
                "",
                "--no-kernel-filter",
            ],
        ),
        (
            "run, Falco stable",
            vec!["run", "--rules", &falco, "--listen", ""],
        ),
        ("events (everything)", ALL_KINDS.to_vec()),
    ];
    let storms: [(&str, u64, Storm); 3] = [
        ("open+close of one file (host)", args.storm, open_storm),
        (
            "refused TCP connect to loopback",
            args.storm / 10,
            connect_storm,
        ),
        ("fork+exec of /bin/true", args.storm / 100, exec_storm),
    ];
    let _stats = BpfStats::enable()?;
    let mut out = String::from(
        "| storm | agent | ops | baseline | monitored | ratio | received | filtered | dropped | agent CPU per op (start-up included) | kernel ns per call |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for (storm, ops, run) in storms {
        for (agent_name, agent_args) in &agents {
            step(&format!("{storm} ({ops} ops) under `monitor {agent_name}`"));
            let baseline = {
                let start = Instant::now();
                run(ops)?;
                start.elapsed()
            };
            let agent = Agent::start(agent_args)?;
            let before = program_stats()?;
            let start = Instant::now();
            run(ops)?;
            let monitored = start.elapsed();
            let after = program_stats()?;
            let cpu = agent.cpu_time()?;
            let totals = agent.stop_totals()?;
            let sum = |field: &str| kinds_sum(&totals, field);
            let mut programs: Vec<String> = after
                .iter()
                .filter_map(|(name, (count, ns))| {
                    let (c0, n0) = before.get(name).copied().unwrap_or((0, 0));
                    let calls = count - c0;
                    // The storm's own programs, not the background's.
                    (calls >= ops / 2)
                        .then(|| format!("{name} {:.0}", (ns - n0) as f64 / calls as f64))
                })
                .collect();
            programs.sort();
            out.push_str(&format!(
                "| {storm} | `{agent_name}` | {ops} | {:.3} s | {:.3} s | {:.2}x | {} | {} | {} | {:.2} µs | {} |\n",
                baseline.as_secs_f64(),
                monitored.as_secs_f64(),
                monitored.as_secs_f64() / baseline.as_secs_f64(),
                sum("received"),
                sum("filtered"),
                sum("dropped"),
                cpu.as_secs_f64() * 1e6 / ops as f64,
                programs.join(", ")
            ));
        }
    }
    Ok(out)
}

/// `kernel.bpf_stats_enabled` on while it lives (the statistics cost a little).
struct BpfStats;

impl BpfStats {
    fn enable() -> Result<Self> {
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")
            .context("enabling kernel.bpf_stats_enabled")?;
        Ok(BpfStats)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
    }
}

/// Per loaded program: (run count, run time ns), from `bpftool prog show`.
fn program_stats() -> Result<std::collections::BTreeMap<String, (u64, u64)>> {
    let output = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("running bpftool (cargo xtask setup installs it)")?;
    let programs: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut out = std::collections::BTreeMap::new();
    for p in programs.as_array().into_iter().flatten() {
        if let (Some(name), Some(count), Some(ns)) = (
            p["name"].as_str(),
            p["run_cnt"].as_u64(),
            p["run_time_ns"].as_u64(),
        ) {
            let entry = out.entry(name.to_string()).or_insert((0, 0));
            entry.0 += count;
            entry.1 += ns;
        }
    }
    Ok(out)
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

/// `monitor` with stdout to /dev/null, started and ready.
struct Agent {
    child: Child,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Agent {
    fn start(args: &[&str]) -> Result<Self> {
        let mut child = Command::new(monitor_binary())
            .args(args)
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
            if line.contains("sensor ready") || line.contains("monitor running") {
                return Ok(Self { child, stderr });
            }
        }
    }

    fn proc_file(&self, name: &str) -> Result<String> {
        Ok(std::fs::read_to_string(format!(
            "/proc/{}/{name}",
            self.child.id()
        ))?)
    }

    /// User plus system CPU time so far.
    fn cpu_time(&self) -> Result<Duration> {
        let stat = self.proc_file("stat")?;
        let after_comm = stat.rsplit_once(')').context("stat format")?.1;
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // utime and stime are fields 14 and 15; `fields[0]` is field 3.
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
    }

    fn rss_kib(&self) -> Result<u64> {
        let status = self.proc_file("status")?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS")
    }

    /// Stops the agent; returns its totals line.
    fn stop_totals(mut self) -> Result<serde_json::Value> {
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
        Ok(serde_json::from_str(&totals)?)
    }
}
