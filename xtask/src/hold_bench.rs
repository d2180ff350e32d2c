//! What holding a new container's events for its metadata costs: the alert latency
//! (from the event to its alert line) of the first events of containers that have just
//! started, which wait until the runtime has described the container, next to that of
//! host events in the same run, which must not wait. The container's first process
//! (`cat`) opens a marker file; the bench's rule puts the event's own time
//! (`evt.rawtime`) in the alert, and the reader takes the difference to its clock.
use std::{
    fs::File,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::storms::{BENCH_IMAGE, Daemon, MARKER_DIR, ensure_image, percentiles};

const HOLD_DIR: &str = "/tmp/monitor-bench-hold";

pub fn hold_latency(containers: usize) -> Result<String> {
    ensure_image()?;
    std::fs::create_dir_all(HOLD_DIR)?;
    File::create(format!("{HOLD_DIR}/marker"))?;
    let rules = std::env::temp_dir().join("monitor-bench-hold.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: Bench hold in container\n  desc: A new container's first open.\n  condition: evt.type in (open, openat) and fd.name startswith {HOLD_DIR}/ and container.id != host\n  output: in-container {MARKER_DIR}/%evt.rawtime %container.name\n  priority: INFO\n\
             - rule: Bench hold on host\n  desc: A host open meanwhile.\n  condition: evt.type in (open, openat) and fd.name startswith {HOLD_DIR}/ and container.id = host\n  output: on-host {MARKER_DIR}/%evt.rawtime\n  priority: INFO\n"
        ),
    )?;
    let args: Vec<String> = [
        "run",
        "--rules",
        rules.to_str().context("temp path")?,
        "--listen",
        "",
    ]
    .map(String::from)
    .to_vec();
    let daemon = Daemon::start(&args, true)?;
    // Host opens all along, every 20 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let host = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = File::open(format!("{HOLD_DIR}/marker"));
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mount = format!("{HOLD_DIR}:{HOLD_DIR}:ro");
    let mut failed = None;
    for _ in 0..containers {
        let status = Command::new("docker")
            .args(["run", "--rm", "-v", &mount, BENCH_IMAGE, "/bin/cat"])
            .arg(format!("{HOLD_DIR}/marker"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            failed = Some(status);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = host.join();
    let latencies = daemon.tagged_latencies();
    let totals = daemon.stop_totals()?;
    if let Some(status) = failed {
        bail!("docker run of {BENCH_IMAGE} failed: {status:?}");
    }
    let of = |in_container: bool| {
        percentiles(
            latencies
                .iter()
                .filter(|(_, c)| *c == in_container)
                .map(|(d, _)| *d)
                .collect(),
        )
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = String::from(
        "| events | alerts | latency p50 | latency p99 |\n| --- | ---: | ---: | ---: |\n",
    );
    for (label, stats) in [
        (
            "first open of a container just started (held for its metadata)",
            of(true),
        ),
        ("host opens meanwhile (not held)", of(false)),
    ] {
        match stats {
            Some((p50, p99, n)) => out.push_str(&format!(
                "| {label} | {n} | {:.1} ms | {:.1} ms |\n",
                ms(p50),
                ms(p99)
            )),
            None => out.push_str(&format!("| {label} | 0 | — | — |\n")),
        }
    }
    let hold = &totals["context"]["hold"];
    out.push_str(&format!(
        "\nheld {} events, {} let go at the bound, {} let go early (hold full); {} containers\n",
        hold["held"], hold["timed_out"], hold["released_early"], containers
    ));
    Ok(out)
}
