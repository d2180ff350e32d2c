//! Time from start to ready, as a ratio against a plain cold start measured in the
//! same run, round by round (interleaved, so that the machine's drift cancels): the
//! baseline is `monitor events --kinds exec` (the sensor alone); the daemon runs the
//! default rules with every runtime listed before it says it is running. Each row
//! says where the daemon's start-up went, from its own log.
use std::{
    fs::File,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Result;

use crate::{
    storms::{Daemon, MARKER_DIR, write_marker_rule},
    util::workspace_root,
};

/// Where the bench's daemons pin their recorder (removed after each restart).
const BENCH_PIN_ROOT: &str = "/sys/fs/bpf/monitor-bench";

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
    let mut adopt_times = Vec::new();
    let mut gaps = Vec::new();
    let mut last_log = Vec::new();
    let mut adopt_log = Vec::new();
    for _ in 0..rounds.max(1) {
        plain_times.push(ready_after(&plain)?.0);
        let (took, log) = ready_after(&daemon)?;
        daemon_times.push(took);
        last_log = log;
        let pinned = restart(true, &profiles)?;
        adopt_times.push(pinned.ready);
        adopt_log = pinned.log.clone();
        gaps.push((pinned, restart(false, &profiles)?));
    }
    let _ = std::fs::remove_dir_all(&profiles);
    let (plain_median, plain_spread) = median_and_spread(&mut plain_times);
    let (daemon_median, daemon_spread) = median_and_spread(&mut daemon_times);
    let (adopt_median, adopt_spread) = median_and_spread(&mut adopt_times);
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
    out.push_str(&format!(
        "| `monitor run` adopting the pinned recorder (restart) | {} | {:.2}x |\n",
        show(adopt_median, adopt_spread),
        adopt_median.as_secs_f64() / plain_median.as_secs_f64().max(1e-9)
    ));
    out.push_str(
        "\nrestart gap: a marker opened every 10 ms while the daemon is stopped and started \
         again 1 s later (markers opened, alerted by the two daemons, lost):\n\n",
    );
    out.push_str("| round | pinned, kept recording | not pinned (`--no-pin`) |\n");
    out.push_str("| --- | ---: | ---: |\n");
    for (i, (pinned, unpinned)) in gaps.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} opened, {} alerted, **{} lost** | {} opened, {} alerted, **{} lost** |\n",
            i + 1,
            pinned.opened,
            pinned.alerted,
            pinned.opened.saturating_sub(pinned.alerted),
            unpinned.opened,
            unpinned.alerted,
            unpinned.opened.saturating_sub(unpinned.alerted)
        ));
    }
    out.push_str("\nwhere the adopting daemon's last start went (its log):\n");
    for line in adopt_log.iter().filter(|l| {
        l.contains("sensor start-up:") || l.contains("adopted") || l.contains("waited in")
    }) {
        let message = line.split_once("  INFO ").map_or(line.as_str(), |(_, m)| m);
        out.push_str(&format!("- {}\n", message.trim()));
    }
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

/// One restart under a steady marker workload.
struct Restart {
    /// The second daemon's time to ready.
    ready: Duration,
    log: Vec<String>,
    opened: u64,
    alerted: u64,
}

/// Starts a daemon with the marker rule, opens a marker every 10 ms, stops the
/// daemon (keeping its recorder when `pinned`), starts the next one 1 s later, and
/// counts the markers the two alerted.
fn restart(pinned: bool, profiles: &std::path::Path) -> Result<Restart> {
    std::fs::create_dir_all(MARKER_DIR)?;
    let rule = write_marker_rule()?;
    let mut args: Vec<String> = vec![
        "run".into(),
        "--rules".into(),
        rule.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--profiles-dir".into(),
        profiles.display().to_string(),
    ];
    if pinned {
        args.extend(["--pin-root".into(), BENCH_PIN_ROOT.into()]);
    } else {
        args.push("--no-pin".into());
    }
    let first = Daemon::start(&args, true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let markers = {
        let (stop, opened) = (stop.clone(), opened.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let _ = File::open(format!("{MARKER_DIR}/{}", now.as_nanos()));
                opened.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(10));
            }
        })
    };
    thread::sleep(Duration::from_millis(500));
    let first_alerts =
        first.alerts_seen_after_stop(if pinned { libc::SIGUSR2 } else { libc::SIGINT })?;
    thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let second = Daemon::start(&args, true)?;
    let ready = started.elapsed();
    let log = second.start_log.clone();
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let _ = markers.join();
    thread::sleep(Duration::from_millis(300));
    let second_alerts = second.alerts_seen_after_stop(libc::SIGINT)?;
    Ok(Restart {
        ready,
        log,
        opened: opened.load(Ordering::Relaxed),
        alerted: (first_alerts + second_alerts) as u64,
    })
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
