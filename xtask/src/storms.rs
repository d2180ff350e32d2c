//! The daemon storms of `cargo xtask bench`: syscall storms run bare and under each
//! agent, in one invocation, with what each costs the workload (wall ratio), the agent
//! (CPU per operation and per event received), the kernel (each program's average run
//! time from `kernel.bpf_stats_enabled`), what was dropped, and how long an alert takes
//! from the syscall to its line on the agent's stdout.
//!
//! The storms run in a child process (`cargo xtask storm`), on the host or moved into a
//! running container's cgroup: the agent tells containers by cgroup, so a process there
//! is a process of that container to it, without needing a program inside the image.
//! Every `--marker-every` operations the storm opens a file named after the current
//! time below [`MARKER_DIR`]; a rule of the bench's own raises an alert for it, and the
//! reader of the agent's stdout takes the difference to its own clock.
use std::{
    fs::File,
    io::{BufRead, BufReader},
    net::{SocketAddrV4, TcpStream},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::util::{monitor_binary, step, workspace_root};

/// Where the storms' marker files are opened (the bench's rule watches it).
pub(crate) const MARKER_DIR: &str = "/tmp/monitor-bench-marker";
/// The network namespace a container's watched connects go to (one this bench makes).
const NETNS: &str = "monitor-bench";
const NETNS_HOST_IP: &str = "10.200.0.1";
const NETNS_PEER_IP: &str = "10.200.0.2";
pub(crate) const BENCH_IMAGE: &str = "monitor-bench/sleep:v2";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StormKind {
    /// open+close of one file.
    Open,
    /// TCP connects, each refused.
    Connect,
    /// fork+exec of /bin/true.
    Exec,
}

/// `cargo xtask storm`: one storm, in this process (the bench's child).
#[derive(Args, Debug)]
pub struct StormArgs {
    #[arg(long, value_enum)]
    kind: StormKind,
    #[arg(long)]
    ops: u64,
    /// The file an open storm opens.
    #[arg(long, default_value = "/etc/hostname")]
    path: PathBuf,
    /// Where a connect storm connects.
    #[arg(long, default_value = "127.0.0.1:9")]
    address: SocketAddrV4,
    /// A cgroup (v2) directory to move this process into first.
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// Open a marker file every this many operations (0: never).
    #[arg(long, default_value_t = 0)]
    marker_every: u64,
}

/// Runs one storm (the child's side).
pub fn storm(args: &StormArgs) -> Result<()> {
    if let Some(cgroup) = &args.cgroup {
        std::fs::write(cgroup.join("cgroup.procs"), std::process::id().to_string())
            .with_context(|| format!("joining {}", cgroup.display()))?;
    }
    let mark = |i: u64| {
        if args.marker_every > 0 && i.is_multiple_of(args.marker_every) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let _ = File::open(format!("{MARKER_DIR}/{}", now.as_nanos()));
        }
    };
    for i in 0..args.ops {
        mark(i);
        match args.kind {
            StormKind::Open => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(0)
                    .open(&args.path);
                drop(file);
            }
            StormKind::Connect => {
                let _ = TcpStream::connect(args.address);
            }
            StormKind::Exec => {
                let status = Command::new("/bin/true").status()?;
                if !status.success() {
                    bail!("/bin/true failed");
                }
            }
        }
    }
    Ok(())
}

/// One storm of the table.
struct Storm {
    name: &'static str,
    kind: StormKind,
    ops: u64,
    path: &'static str,
    address: String,
    /// In the bench container rather than on the host.
    in_container: bool,
}

/// One agent of the table (`None`: bare tracepoints with empty programs, the floor
/// any tracepoint-based sensor pays).
struct Agent {
    name: &'static str,
    args: Vec<String>,
    /// Its alerts are read for latency (a `monitor run`).
    alerts: bool,
}

/// One measured row.
struct Row {
    storm: String,
    agent: String,
    ops: u64,
    baseline: Duration,
    monitored: Duration,
    received: Option<u64>,
    filtered: Option<u64>,
    dropped: Option<u64>,
    cpu_per_op: Option<Duration>,
    cpu_per_event: Option<Duration>,
    kernel_ns: String,
    latency: Option<(Duration, Duration, usize)>,
}

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        times.push(f()?);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

pub fn daemon_storms(ops: u64, repeat: usize, enforcement_only: bool) -> Result<String> {
    let root = workspace_root();
    let rules = root.join("rules");
    let falco = root.join("../shared/falco-rules/falco_rules.yaml");
    let marker_rules = write_marker_rule()?;
    let enforcing_rules = write_enforcing_responses()?;
    std::fs::create_dir_all(MARKER_DIR)?;
    let container = BenchContainer::start()?;
    let _netns = Netns::create()?;
    let rule_args = |rules: &Path| {
        vec![
            "run".to_string(),
            "--rules".into(),
            rules.display().to_string(),
            "--rules".into(),
            marker_rules.display().to_string(),
            "--listen".into(),
            String::new(),
            "--rate-limit".into(),
            "10".into(),
        ]
    };
    let mut unfiltered = rule_args(&rules);
    unfiltered.push("--no-kernel-filter".into());
    let mut enforcing = rule_args(&rules);
    enforcing.extend(["--rules".to_string(), enforcing_rules.display().to_string()]);
    let mut agents = vec![
        Agent {
            name: "run, default rules",
            args: rule_args(&rules),
            alerts: true,
        },
        // What enforcement in the kernel adds: an active kill slot judges every open
        // that reaches the exit program, an active deny slot every IP connect (they
        // act on none of the storms').
        Agent {
            name: "run, default rules + enforced in-kernel kill and deny responses",
            args: enforcing,
            alerts: true,
        },
        // Every event delivered: the agent's cost per event, context and rules included.
        Agent {
            name: "run, default rules, --no-kernel-filter",
            args: unfiltered,
            alerts: true,
        },
        Agent {
            name: "run, Falco stable",
            args: rule_args(&falco),
            alerts: true,
        },
        Agent {
            name: "events (everything)",
            args: ["events", "--kinds", "exec,fork,exit,connect,open,syscall"]
                .map(String::from)
                .to_vec(),
            alerts: false,
        },
        Agent {
            name: "events --no-context",
            args: [
                "events",
                "--kinds",
                "exec,fork,exit,connect,open,syscall",
                "--no-context",
            ]
            .map(String::from)
            .to_vec(),
            alerts: false,
        },
    ];
    if enforcement_only {
        agents.retain(|a| a.name.starts_with("run, default rules") && !a.name.contains("--no"));
    }
    let watched = format!("{NETNS_PEER_IP}:4444");
    let mut storms = vec![
        Storm {
            name: "open+close of /etc/hostname (host)",
            kind: StormKind::Open,
            ops,
            path: "/etc/hostname",
            address: String::new(),
            in_container: false,
        },
        Storm {
            name: "refused TCP connect to 127.0.0.1:9 (host)",
            kind: StormKind::Connect,
            ops: ops / 10,
            path: "",
            address: "127.0.0.1:9".into(),
            in_container: false,
        },
        Storm {
            name: "fork+exec of /bin/true (host)",
            kind: StormKind::Exec,
            ops: ops / 500,
            path: "",
            address: String::new(),
            in_container: false,
        },
        Storm {
            name: "reads of /etc/shadow in a container (rules watch them)",
            kind: StormKind::Open,
            ops: ops / 10,
            path: "/etc/shadow",
            address: String::new(),
            in_container: true,
        },
        Storm {
            name: "refused connects from a container to port 4444 (rules watch them)",
            kind: StormKind::Connect,
            ops: ops / 20,
            path: "",
            address: watched,
            in_container: true,
        },
    ];
    if enforcement_only {
        storms.retain(|s| matches!(s.kind, StormKind::Open | StormKind::Connect));
    }
    let mut rows = Vec::new();
    for storm in &storms {
        let cgroup = storm.in_container.then(|| container.cgroup.clone());
        let run = |marker_every: u64| run_storm(storm, cgroup.as_deref(), marker_every);
        if matches!(storm.kind, StormKind::Open | StormKind::Connect)
            && !storm.in_container
            && !enforcement_only
        {
            step(&format!(
                "{}: floor (empty programs on its tracepoints)",
                storm.name
            ));
            rows.push(measure_floor(storm, repeat, &run)?);
        }
        for agent in &agents {
            step(&format!(
                "{} ({} ops) under `monitor {}`",
                storm.name, storm.ops, agent.name
            ));
            rows.push(measure(storm, agent, repeat, &run)?);
        }
    }
    Ok(table(&rows))
}

/// One run of `storm` in a child process; its wall time.
fn run_storm(storm: &Storm, cgroup: Option<&Path>, marker_every: u64) -> Result<Duration> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "storm",
        "--kind",
        match storm.kind {
            StormKind::Open => "open",
            StormKind::Connect => "connect",
            StormKind::Exec => "exec",
        },
        "--ops",
        &storm.ops.to_string(),
        "--marker-every",
        &marker_every.to_string(),
    ]);
    if !storm.path.is_empty() {
        cmd.args(["--path", storm.path]);
    }
    if !storm.address.is_empty() {
        cmd.args(["--address", &storm.address]);
    }
    if let Some(cgroup) = cgroup {
        cmd.arg("--cgroup").arg(cgroup);
    }
    let start = Instant::now();
    let status = cmd.status().context("running the storm")?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("the storm `{}` failed", storm.name);
    }
    Ok(elapsed)
}

/// The storm's markers: about 100 per run, whatever its length.
fn marker_every(storm: &Storm) -> u64 {
    (storm.ops / 100).max(1)
}

fn measure(
    storm: &Storm,
    agent: &Agent,
    repeat: usize,
    run: &dyn Fn(u64) -> Result<Duration>,
) -> Result<Row> {
    let markers = marker_every(storm);
    let baseline = median(repeat, || run(markers))?;
    let daemon = Daemon::start(&agent.args, agent.alerts)?;
    // Timed with the statistics off: they cost every program run a little.
    let cpu_before = daemon.cpu_time()?;
    let monitored = median(repeat, || run(markers))?;
    let cpu = daemon.cpu_time()? - cpu_before;
    let kernel_ns = {
        let _stats = BpfStats::enable()?;
        let before = program_stats()?;
        run(markers)?;
        kernel_ns(&before, &program_stats()?, storm.ops)
    };
    let latencies = daemon.latencies();
    let totals = daemon.stop_totals()?;
    let sum = |field: &str| kinds_sum(&totals, field);
    let received = sum("received");
    // The CPU was measured over the timed runs, the events over all of them.
    let timed = repeat.max(1) as f64;
    let per = |total: f64| Duration::from_secs_f64(cpu.as_secs_f64() / total.max(1.0));
    Ok(Row {
        storm: storm.name.into(),
        agent: format!("`monitor {}`", agent.name),
        ops: storm.ops,
        baseline,
        monitored,
        received: Some(received),
        filtered: Some(sum("filtered")),
        dropped: Some(sum("dropped")),
        cpu_per_op: Some(per(storm.ops as f64 * timed)),
        // Where the kernel filter dropped nearly everything, the agent's CPU is its
        // idle housekeeping, not a cost of the events.
        cpu_per_event: (received >= storm.ops / 4)
            .then(|| per(received as f64 * timed / (timed + 1.0))),
        kernel_ns,
        latency: percentiles(latencies),
    })
}

/// The same storm with empty programs on the tracepoints ours use (bpftrace), for the
/// part of the cost no program can avoid.
fn measure_floor(
    storm: &Storm,
    repeat: usize,
    run: &dyn Fn(u64) -> Result<Duration>,
) -> Result<Row> {
    let syscall = match storm.kind {
        StormKind::Open => "openat",
        _ => "connect",
    };
    let baseline = median(repeat, || run(0))?;
    let script = format!(
        "tracepoint:syscalls:sys_enter_{syscall} {{ }} tracepoint:syscalls:sys_exit_{syscall} {{ }} BEGIN {{ printf(\"attached\\n\"); }}"
    );
    let mut bpftrace = Command::new("bpftrace")
        .args(["-e", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running bpftrace (cargo xtask setup installs it)")?;
    let mut out = BufReader::new(bpftrace.stdout.take().context("bpftrace stdout")?);
    let mut line = String::new();
    while !line.contains("attached") {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            bail!("bpftrace exited before attaching");
        }
    }
    let monitored = median(repeat, || run(0));
    let _ = bpftrace.kill();
    let _ = bpftrace.wait();
    Ok(Row {
        storm: storm.name.into(),
        agent: "empty programs on its tracepoints (bpftrace): the floor".into(),
        ops: storm.ops,
        baseline,
        monitored: monitored?,
        received: None,
        filtered: None,
        dropped: None,
        cpu_per_op: None,
        cpu_per_event: None,
        kernel_ns: String::new(),
        latency: None,
    })
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| storm | agent | ops | baseline | monitored | ratio | received | filtered | dropped | agent CPU per op | agent CPU per event received | kernel ns per call | alert latency p50 / p99 (markers) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n",
    );
    let opt = |v: Option<u64>| v.map_or("—".to_string(), |v| v.to_string());
    let micros = |d: Option<Duration>| {
        d.map_or("—".to_string(), |d| {
            format!("{:.2} µs", d.as_secs_f64() * 1e6)
        })
    };
    for r in rows {
        let latency = r.latency.map_or("—".to_string(), |(p50, p99, n)| {
            format!(
                "{:.1} / {:.1} ms ({n})",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            )
        });
        out.push_str(&format!(
            "| {} | {} | {} | {:.3} s | {:.3} s | {:.2}x | {} | {} | {} | {} | {} | {} | {} |\n",
            r.storm,
            r.agent,
            r.ops,
            r.baseline.as_secs_f64(),
            r.monitored.as_secs_f64(),
            r.monitored.as_secs_f64() / r.baseline.as_secs_f64(),
            opt(r.received),
            opt(r.filtered),
            opt(r.dropped),
            micros(r.cpu_per_op),
            micros(r.cpu_per_event),
            r.kernel_ns,
            latency
        ));
    }
    out
}

pub(crate) fn percentiles(mut samples: Vec<Duration>) -> Option<(Duration, Duration, usize)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Some((at(0.5), at(0.99), samples.len()))
}

/// A rule of the bench's own: an alert for every marker file the storms open.
pub(crate) fn write_marker_rule() -> Result<PathBuf> {
    let path = std::env::temp_dir().join("monitor-bench-marker.yaml");
    std::fs::write(
        &path,
        format!(
            "- rule: Bench marker\n  desc: A storm's marker file, opened to time alerts.\n  condition: evt.type in (open, openat) and fd.name startswith {MARKER_DIR}/\n  output: marker %fd.name\n  priority: INFO\n"
        ),
    )?;
    Ok(path)
}

/// An enforced kill response on a rule the kernel decides exactly, on a file no storm
/// opens, and an enforced deny on a destination no storm connects to (a documentation
/// address): their slots are active and judge every open and IP connect, and act on
/// none.
fn write_enforcing_responses() -> Result<PathBuf> {
    let path = std::env::temp_dir().join("monitor-bench-enforcing.yaml");
    std::fs::write(
        &path,
        "- rule: Bench guarded file read
  desc: A file no storm opens.
  condition: evt.type in (open, openat, openat2) and evt.is_open_read = true and fd.num >= 0 and container.id != host and fd.name = /srv/monitor-bench-guarded
  output: guarded %fd.name
  priority: WARNING
- response: Bench kill
  rules: [Bench guarded file read]
  action: kill
  mode: enforce
- rule: Bench forbidden destination
  desc: A destination no storm connects to.
  condition: evt.type = connect and fd.sip = 192.0.2.77 and fd.sport = 9999
  output: forbidden %fd.name
  priority: WARNING
- response: Bench deny
  rules: [Bench forbidden destination]
  action: deny
  mode: enforce
",
    )?;
    Ok(path)
}

/// A running container whose cgroup the container storms join.
struct BenchContainer {
    id: String,
    cgroup: PathBuf,
}

impl BenchContainer {
    fn start() -> Result<Self> {
        ensure_image()?;
        let output = Command::new("docker")
            .args(["run", "-d", "--rm", BENCH_IMAGE, "/bin/sleep", "3600"])
            .output()
            .context("running docker")?;
        if !output.status.success() {
            bail!(
                "docker run: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let cgroup = [
            "/sys/fs/cgroup/unified/docker",
            "/sys/fs/cgroup/system.slice",
        ]
        .iter()
        .map(|base| {
            if base.ends_with("slice") {
                Path::new(base).join(format!("docker-{id}.scope"))
            } else {
                Path::new(base).join(&id)
            }
        })
        .chain(std::iter::once(
            Path::new("/sys/fs/cgroup/docker").join(&id),
        ))
        .find(|p| p.join("cgroup.procs").exists())
        .with_context(|| format!("no cgroup v2 directory for container {id}"))?;
        Ok(Self { id, cgroup })
    }
}

impl Drop for BenchContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// An image with just a static busybox as `sleep` and `cat`: the storms' container only
/// needs to exist; the hold bench's containers open one file.
pub(crate) fn ensure_image() -> Result<()> {
    let exists = Command::new("docker")
        .args(["image", "inspect", BENCH_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success();
    if exists {
        return Ok(());
    }
    let root = std::env::temp_dir().join("monitor-bench-image");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("busybox-static is installed by `cargo xtask setup`")?;
    for applet in ["sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()?;
    let status = Command::new("docker")
        .args(["import", "-", BENCH_IMAGE])
        .stdin(tar.stdout.take().context("tar stdout")?)
        .stdout(Stdio::null())
        .status()?;
    tar.wait()?;
    if !status.success() {
        bail!("docker import of {BENCH_IMAGE} failed");
    }
    Ok(())
}

/// A network namespace behind a veth pair: the only place other than loopback a
/// bench may send packets to. Nothing listens there, so a connect is refused.
struct Netns;

impl Netns {
    fn create() -> Result<Self> {
        let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
        let ip = |args: &[&str]| -> Result<()> {
            let status = Command::new("ip").args(args).status()?;
            if !status.success() {
                bail!("ip {}", args.join(" "));
            }
            Ok(())
        };
        ip(&["netns", "add", NETNS])?;
        let _ = Command::new("ip")
            .args(["link", "del", "mbench0"])
            .stderr(Stdio::null())
            .status();
        ip(&[
            "link", "add", "mbench0", "type", "veth", "peer", "name", "mbench1",
        ])?;
        ip(&["link", "set", "mbench1", "netns", NETNS])?;
        ip(&[
            "addr",
            "add",
            &format!("{NETNS_HOST_IP}/24"),
            "dev",
            "mbench0",
        ])?;
        ip(&["link", "set", "mbench0", "up"])?;
        ip(&[
            "-n",
            NETNS,
            "addr",
            "add",
            &format!("{NETNS_PEER_IP}/24"),
            "dev",
            "mbench1",
        ])?;
        ip(&["-n", NETNS, "link", "set", "mbench1", "up"])?;
        ip(&["-n", NETNS, "link", "set", "lo", "up"])?;
        Ok(Netns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "mbench0"]).status();
        let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    }
}

/// A running agent, ready; with `alerts`, a thread reads its stdout and times the
/// marker alerts.
pub struct Daemon {
    child: Child,
    stderr: BufReader<std::process::ChildStderr>,
    /// Each marker alert's latency, and whether its line said `in-container`.
    latencies: Arc<Mutex<Vec<(Duration, bool)>>>,
    /// What it logged up to its ready line.
    pub start_log: Vec<String>,
}

impl Daemon {
    pub fn start(args: &[String], alerts: bool) -> Result<Self> {
        let mut child = Command::new(monitor_binary())
            .args(args)
            .stdout(if alerts {
                Stdio::piped()
            } else {
                Stdio::from(File::create("/dev/null")?)
            })
            .stderr(Stdio::piped())
            .spawn()
            .context("starting monitor")?;
        let latencies = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let latencies = latencies.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let Some(at) = line.find(MARKER_DIR) else {
                        continue;
                    };
                    let opened: String = line[at + MARKER_DIR.len() + 1..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    if let Ok(ns) = opened.parse::<u64>() {
                        let opened = Duration::from_nanos(ns);
                        if let (Some(d), Ok(mut l)) = (now.checked_sub(opened), latencies.lock()) {
                            l.push((d, line.contains("in-container")));
                        }
                    }
                }
            });
        }
        let mut stderr = BufReader::new(child.stderr.take().context("stderr")?);
        let mut start_log = Vec::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line)? == 0 {
                bail!(
                    "monitor exited before it was ready:\n{}",
                    start_log.join("")
                );
            }
            let ready = line.contains("sensor ready") || line.contains("monitor running");
            start_log.push(line);
            if ready {
                return Ok(Self {
                    child,
                    stderr,
                    latencies,
                    start_log,
                });
            }
        }
    }

    /// Stops the agent with `signal` and counts the marker alerts it wrote.
    pub(crate) fn alerts_seen_after_stop(self, signal: i32) -> Result<usize> {
        let latencies = self.latencies.clone();
        self.stop_totals_with(signal)?;
        // The reader thread ends with the closed stdout, just after the exit.
        thread::sleep(Duration::from_millis(100));
        Ok(latencies.lock().map_or(0, |l| l.len()))
    }

    fn latencies(&self) -> Vec<Duration> {
        self.tagged_latencies()
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    }

    /// The markers' latencies, each with whether its alert said `in-container`.
    pub(crate) fn tagged_latencies(&self) -> Vec<(Duration, bool)> {
        // The last markers' alerts may still be on their way.
        thread::sleep(Duration::from_millis(200));
        self.latencies.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// User plus system CPU time so far.
    pub fn cpu_time(&self) -> Result<Duration> {
        process_cpu_time(self.child.id())
    }

    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS")
    }

    /// Stops the agent; returns its totals line.
    pub fn stop_totals(self) -> Result<serde_json::Value> {
        self.stop_totals_with(libc::SIGINT)
    }

    /// Stops the agent with `signal` (SIGUSR2: it keeps its pinned recorder) and
    /// returns its totals line.
    pub fn stop_totals_with(mut self, signal: i32) -> Result<serde_json::Value> {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, signal) };
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

/// A process's user plus system CPU time so far.
fn process_cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `fields[0]` is field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// A field of the totals line summed over every kind.
fn kinds_sum(totals: &serde_json::Value, field: &str) -> u64 {
    totals["kinds"]
        .as_object()
        .map(|kinds| kinds.values().filter_map(|k| k[field].as_u64()).sum())
        .unwrap_or(0)
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

type ProgramStats = std::collections::BTreeMap<String, (u64, u64)>;

/// Per loaded program: (run count, run time ns), from `bpftool prog show`.
fn program_stats() -> Result<ProgramStats> {
    let output = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("running bpftool (cargo xtask setup installs it)")?;
    let programs: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut out = ProgramStats::new();
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

/// Average run time of the programs the storm itself drove (at least half a call per
/// operation, so the background's do not show).
fn kernel_ns(before: &ProgramStats, after: &ProgramStats, ops: u64) -> String {
    let mut programs: Vec<String> = after
        .iter()
        .filter_map(|(name, (count, ns))| {
            let (c0, n0) = before.get(name).copied().unwrap_or((0, 0));
            let calls = count - c0;
            (calls >= ops / 2 && calls > 0)
                .then(|| format!("{name} {:.0}", (ns - n0) as f64 / calls as f64))
        })
        .collect();
    programs.sort();
    programs.join(", ")
}
