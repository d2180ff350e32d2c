//! What sharing profiles through the fleet store costs a node in traffic: the agent
//! with `--fleet-url` pointing at a real nats-server (JetStream, the only client), N
//! workloads (one image each) with a container running, learning; the server's own
//! counters (`/varz`) over one minute of steady state give the node's messages and
//! bytes to and from the store. The per-event cost, store on against off, is in the
//! engine bench (`profile_lookups_fleet`).
use std::{
    io::{Read, Write},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    stats_bench::Containers,
    storms::{BENCH_IMAGE, Daemon, ensure_image},
};

const SETTLE: Duration = Duration::from_secs(15);
const MEASURE: Duration = Duration::from_secs(60);

/// The bench's image tags, removed also when the bench fails.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for chunk in self.0.chunks(50) {
            let _ = Command::new("docker")
                .arg("rmi")
                .args(chunk)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

struct Nats {
    child: Child,
    dir: std::path::PathBuf,
    monitoring: u16,
    url: String,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_nats() -> Result<Nats> {
    let (port, monitoring) = (free_port()?, free_port()?);
    let dir = std::env::temp_dir().join(format!("monitor-bench-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &monitoring.to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("nats-server (cargo xtask setup installs it)")?;
    let nats = Nats {
        child,
        dir,
        monitoring,
        url: format!("nats://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while varz(nats.monitoring).is_err() {
        if Instant::now() > deadline {
            bail!("nats-server did not start");
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(nats)
}

/// The server's totals: (messages in, messages out, bytes in, bytes out).
fn varz(port: u16) -> Result<[u64; 4]> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET /varz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("a /varz response")?;
    let v: serde_json::Value = serde_json::from_str(body)?;
    let get = |k: &str| v[k].as_u64().context("a /varz counter");
    Ok([
        get("in_msgs")?,
        get("out_msgs")?,
        get("in_bytes")?,
        get("out_bytes")?,
    ])
}

pub fn store_traffic(workloads: usize) -> Result<String> {
    ensure_image()?;
    let nats = start_nats()?;
    let id = std::process::id();
    // Declared first, dropped last: the containers go before their images.
    let mut images = Images(Vec::new());
    let mut containers = Containers(Vec::new());
    for i in 0..workloads {
        let image = format!("monitor-bench/fleet-{id}-{i}:v1");
        let status = Command::new("docker")
            .args(["tag", BENCH_IMAGE, &image])
            .status()?;
        if !status.success() {
            bail!("docker tag {image} failed");
        }
        images.0.push(image);
    }
    let rules = std::env::temp_dir().join("monitor-bench-fleet.yaml");
    std::fs::write(
        &rules,
        "- rule: Bench baseline\n  desc: Never true.\n  condition: evt.type = openat and fd.name = /nonexistent/monitor-bench\n  output: o\n  priority: INFO\n",
    )?;
    let profiles = std::env::temp_dir().join(format!("monitor-bench-fleet-profiles-{id}"));
    let _ = std::fs::remove_dir_all(&profiles);
    let args: Vec<String> = [
        "run",
        "--rules",
        rules.to_str().context("temp path")?,
        "--listen",
        "",
        "--profiles-dir",
        profiles.to_str().context("temp path")?,
        "--fleet-url",
        &nats.url,
    ]
    .map(String::from)
    .to_vec();
    let daemon = Daemon::start(&args, false)?;
    let started = Instant::now();
    for (i, image) in images.0.iter().enumerate() {
        let name = format!("monitor-bench-fleet-{id}-{i}");
        let status = Command::new("docker")
            .args(["run", "-d", "--name", &name, image, "/bin/sleep", "3600"])
            .stdout(Stdio::null())
            .status()?;
        containers.0.push(name.clone());
        if !status.success() {
            bail!("docker run {name} failed");
        }
    }
    eprintln!(
        "  {workloads} workloads started in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    thread::sleep(SETTLE);
    let before = varz(nats.monitoring)?;
    let cpu_before = daemon.cpu_time()?;
    thread::sleep(MEASURE);
    let after = varz(nats.monitoring)?;
    let cpu = daemon.cpu_time()?.saturating_sub(cpu_before);
    daemon.stop_totals()?;
    let per_minute = |i: usize| (after[i] - before[i]) as f64 * 60.0 / MEASURE.as_secs_f64();
    let mut out = String::new();
    out.push_str(&format!(
        "| fleet store traffic, one node, {workloads} learning workloads (default window: \
         a runtime mark per workload every 30 s) | per minute |\n"
    ));
    out.push_str("| --- | ---: |\n");
    out.push_str(&format!(
        "| messages to the store | {:.0} |\n| messages from the store | {:.0} |\n",
        per_minute(0),
        per_minute(1)
    ));
    out.push_str(&format!(
        "| bytes to the store | {:.1} KiB |\n| bytes from the store | {:.1} KiB |\n",
        per_minute(2) / 1024.0,
        per_minute(3) / 1024.0
    ));
    out.push_str(&format!(
        "| agent CPU over the minute (all of it, not only the link) | {:.2} % of a core |\n",
        cpu.as_secs_f64() / MEASURE.as_secs_f64() * 100.0
    ));
    Ok(out)
}
