//! The pinned recorder: the kernel keeps recording while the daemon restarts, and the
//! next daemon reads what happened meanwhile, exactly once. Real kernel, real bpffs;
//! the marker workload is a real process (python3) opening files.
mod support;

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use monitor_common::RECORDER_ABI;
use serde_json::Value;
use support::{
    Monitor, loaded_programs, receivers::temp_dir, serial, uninstall_recorder, unique_pin_root,
};

const RULE: &str = "Marker opened";

/// A rule on the markers' opens, with the process context each alert must carry.
fn marker_rules(dir: &Path) -> PathBuf {
    let file = dir.with_extension("rules.yaml");
    fs::write(
        &file,
        format!(
            "- rule: {RULE}\n  desc: a marker file was created\n  condition: evt.type in \
             (open, openat, openat2) and fd.name startswith {dir}/\n  output: \"marker \
             %fd.name by %proc.name (pid=%proc.pid parent=%proc.pname cmdline=%proc.cmdline)\"\n  \
             priority: NOTICE\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    file
}

/// The daemon's arguments: the marker rule on `dir`, the recorder pinned under
/// `root` (`None`: not pinned), and a last-seen note of the test's own.
fn daemon_args(dir: &Path, root: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        "--rules".to_string(),
        marker_rules(dir).display().to_string(),
        "--last-seen-file".to_string(),
        dir.with_extension("last-seen").display().to_string(),
    ];
    match root {
        Some(root) => args.extend(["--pin-root".to_string(), root.display().to_string()]),
        None => args.push("--no-pin".to_string()),
    }
    args
}

fn start(args: &[String]) -> Monitor {
    Monitor::run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A process that creates `dir/m-00000-T`, `dir/m-00001-T`, ... one every 10 ms (T:
/// CLOCK_BOOTTIME in ns, the events' clock), `count` of them or until `DIR.stop`
/// exists ([`stop_markers`]; beside the directory, whose files are all markers).
fn start_markers(dir: &Path, count: usize) -> Child {
    Command::new("python3")
        .args([
            "-c",
            "import os, sys, time\n\
             d, n = sys.argv[1], int(sys.argv[2])\n\
             for i in range(n):\n    \
                 if os.path.exists(f'{d}.stop'): break\n    \
                 t = time.clock_gettime_ns(time.CLOCK_BOOTTIME)\n    \
                 os.close(os.open(f'{d}/m-{i:05d}-{t}', os.O_CREAT | os.O_WRONLY, 0o644))\n    \
                 time.sleep(0.01)\n",
        ])
        .arg(dir)
        .arg(count.to_string())
        .spawn()
        .expect("python3")
}

/// The marker numbers of the alerts, in the order they were written; each alert's
/// process context is checked on the way.
fn markers(alerts: &[Value], marker_pid: u32) -> Vec<usize> {
    alerts
        .iter()
        .filter(|a| a["rule"] == RULE)
        .map(|a| {
            let fields = &a["output_fields"];
            assert_eq!(fields["proc.name"], "python3", "{a}");
            assert_eq!(fields["proc.pid"], marker_pid, "{a}");
            assert!(
                fields["proc.cmdline"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("python3 -c")),
                "{a}"
            );
            let name = fields["fd.name"].as_str().unwrap();
            let (number, _) = name.rsplit("m-").next().unwrap().split_once('-').unwrap();
            number.parse().unwrap()
        })
        .collect()
}

fn wait_for_marker(monitor: &Monitor, last: usize) {
    let name = format!("/m-{last:05}-");
    monitor.wait_for_within(&name, Duration::from_secs(30), |a| {
        a["output_fields"]["fd.name"]
            .as_str()
            .is_some_and(|f| f.contains(&name))
    });
}

/// Stops the markers of [`start_markers`] and gives the number of the last one.
fn stop_markers(dir: &Path, mut marker: Child) -> usize {
    let stop = PathBuf::from(format!("{}.stop", dir.display()));
    fs::write(&stop, b"").unwrap();
    assert!(marker.wait().unwrap().success());
    let _ = fs::remove_file(stop);
    marker_times(dir).last().expect("markers were made").0
}

/// When each marker was created (CLOCK_BOOTTIME ns), from the files' names.
fn marker_times(dir: &Path) -> Vec<(usize, u64)> {
    let mut times: Vec<(usize, u64)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (number, time) = name.strip_prefix("m-")?.split_once('-')?;
            Some((number.parse().ok()?, time.parse().ok()?))
        })
        .collect();
    times.sort_unstable();
    times
}

fn pinned(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn loaded_program_ids() -> HashSet<u64> {
    loaded_programs().into_iter().map(|(id, _)| id).collect()
}

/// Removes the test's recorder whatever happens.
/// `monitor stop --keep-recording`, which finds the daemon through the recorder
/// pinned under `root`; what it printed.
fn stop_keeping_recording(root: &Path) -> std::process::Output {
    let stop = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["stop", "--keep-recording", "--pin-root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(stop.status.success(), "{stop:?}");
    stop
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        uninstall_recorder(&self.0);
    }
}

/// A marker every 10 ms while the daemon is killed (SIGKILL) and started again 3 s
/// later: every marker appears exactly once, in order, with its process, and the
/// second daemon says it adopted the recorder with the backlog the gap left.
#[test]
fn a_killed_daemon_restarts_without_a_blind_spot() {
    let _serial = serial();
    support::require_root();
    let dir = temp_dir("recorder-markers");
    let root = unique_pin_root();
    let _cleanup = Cleanup(root.clone());
    let before = loaded_program_ids();
    let args = daemon_args(&dir, Some(&root));
    let first = start(&args);
    let count = 700;
    let mut marker = start_markers(&dir, count);
    thread::sleep(Duration::from_millis(1500));
    let first = first.kill();
    let killed_at = Instant::now();
    assert!(
        pinned(&root).contains(&format!("abi-{RECORDER_ABI}")),
        "the recorder stays pinned after SIGKILL: {:?}",
        pinned(&root)
    );
    thread::sleep(Duration::from_secs(3));
    let second = start(&args);
    let gap = killed_at.elapsed();
    wait_for_marker(&second, count - 1);
    assert!(marker.wait().unwrap().success());
    let metrics = second.metrics();
    let second = second.finish(libc::SIGINT);
    for series in [
        "monitor_recorder_pinned 1",
        "monitor_recorder_adopted 1",
        "monitor_recorder_lost_records 0",
        "monitor_recorder_unobserved_milliseconds 0",
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }

    let pid = marker.id();
    let seen_first = markers(&first.events, pid);
    let seen_second = markers(&second.events, pid);
    assert!(
        seen_first.len() > 50,
        "the first daemon saw markers before it was killed: {}",
        seen_first.len()
    );
    let all: Vec<usize> = seen_first.iter().chain(&seen_second).copied().collect();
    let missing: Vec<usize> = (0..count).filter(|n| !all.contains(n)).collect();
    let mut repeated = all.clone();
    repeated.sort_unstable();
    repeated.dedup();
    assert!(
        missing.is_empty(),
        "markers lost across a restart {gap:?} long: {missing:?}"
    );
    assert_eq!(
        repeated.len(),
        all.len(),
        "markers seen twice (first daemon: {} ..= {}, second from {})",
        seen_first.first().unwrap(),
        seen_first.last().unwrap(),
        seen_second.first().unwrap()
    );
    assert_eq!(all, (0..count).collect::<Vec<_>>(), "in order");

    // The second daemon adopted the recorder: the gap's records waited in it.
    let recorder = &second.totals["recorder"];
    assert_eq!(recorder["pinned"], true, "{}", second.totals);
    assert_eq!(recorder["adopted"], true, "{}", second.totals);
    assert!(
        recorder["backlog"].as_u64().unwrap() >= 250,
        "about 300 markers waited: {}",
        second.totals
    );
    assert_eq!(recorder["dropped_without_agent"], 0, "{}", second.totals);
    assert!(recorder.get("unobserved").is_none(), "{}", second.totals);
    let open = &second.totals["kinds"]["open"];
    assert_eq!(open["sent"], open["received"], "{}", second.totals);
    assert!(
        second
            .stderr
            .iter()
            .any(|l| l.contains("adopted the recorder pinned at")),
        "{}",
        second.stderr.join("\n")
    );

    // A plain stop removes the recorder: nothing pinned, no program left.
    assert_eq!(pinned(&root), Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<u64> = loaded_program_ids().difference(&before).copied().collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "programs left attached: {left:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Without pinning, the kernel side ends with the daemon: the markers created while
/// no daemon ran are never seen. The next daemon reports that blind spot (the time
/// since the last one's last note): every marker lost was created in it.
#[test]
fn without_pinning_a_restart_is_a_reported_blind_spot() {
    let _serial = serial();
    support::require_root();
    let dir = temp_dir("recorder-unpinned");
    let args = daemon_args(&dir, None);
    let first = start(&args);
    // Markers until the second agent has seen one: however long a busy machine
    // makes its start, the stream outlasts the blind spot.
    let marker = start_markers(&dir, 100_000);
    let pid = marker.id();
    thread::sleep(Duration::from_millis(1000));
    let first = first.kill();
    let killed_ns = support::boot_ns_now();
    thread::sleep(Duration::from_secs(2));
    let second = start(&args);
    second.wait_for_within("a marker after the restart", Duration::from_secs(30), |a| {
        a["rule"] == RULE
    });
    let last = stop_markers(&dir, marker);
    wait_for_marker(&second, last);
    let second_metrics = second.metrics();
    let second = second.finish(libc::SIGINT);
    let seen: HashSet<usize> = markers(&first.events, pid)
        .into_iter()
        .chain(markers(&second.events, pid))
        .collect();
    let missed: Vec<(usize, u64)> = marker_times(&dir)
        .into_iter()
        .filter(|(n, _)| !seen.contains(n))
        .collect();
    // No agent ran for those 2 s: every marker made then is lost.
    let unwatched: Vec<usize> = marker_times(&dir)
        .into_iter()
        .filter(|(_, at)| (killed_ns..killed_ns + 2_000_000_000).contains(at))
        .map(|(n, _)| n)
        .collect();
    assert!(unwatched.len() >= 20, "{} markers in 2 s", unwatched.len());
    for n in &unwatched {
        assert!(
            !seen.contains(n),
            "marker {n} was made with no agent running"
        );
    }
    let recorder = &second.totals["recorder"];
    assert_eq!(recorder["pinned"], false, "{}", second.totals);
    let unobserved = &recorder["unobserved"];
    let (from, to) = (
        unobserved["from_ns"].as_u64().unwrap(),
        unobserved["to_ns"].as_u64().unwrap(),
    );
    for (n, at) in &missed {
        assert!(
            (from..=to).contains(at),
            "marker {n} (at {at}) was lost outside the reported blind spot {from}..={to}"
        );
    }
    // The report errs long by at most the second between notes.
    let ms = unobserved["ms"].as_u64().unwrap();
    let lost_span = (missed.last().unwrap().1 - missed[0].1) / 1_000_000;
    assert!(
        ms >= lost_span && ms <= lost_span + 1_500,
        "blind spot of {ms} ms for markers lost over {lost_span} ms"
    );
    assert!(
        second
            .stderr
            .iter()
            .any(|l| l.contains("blind spot: nothing was recorded for")),
        "{}",
        second.stderr.join("\n")
    );
    let metrics = second_metrics;
    assert!(
        metrics.contains(&format!("monitor_recorder_unobserved_milliseconds {ms}")),
        "{metrics}"
    );
}

/// An upgrade: the next daemon has another recorder ABI (a test-only override), so
/// it cannot read the pinned recorder. It replaces it, says so, and counts the
/// records it held as lost; with the same ABI the next daemon adopts it instead and
/// loses nothing.
#[test]
fn an_abi_change_replaces_the_recorder_and_counts_the_gap() {
    let _serial = serial();
    support::require_root();
    let root = unique_pin_root();
    let _cleanup = Cleanup(root.clone());
    // The same ABI adopts; the next one (what an upgrade that changes a record or a
    // shared map brings) replaces.
    let (same, next) = (RECORDER_ABI.to_string(), (RECORDER_ABI + 1).to_string());
    for (next_abi, adopts) in [(same.as_str(), true), (next.as_str(), false)] {
        let dir = temp_dir(&format!("recorder-abi-{next_abi}"));
        let args = daemon_args(&dir, Some(&root));
        let first = start(&args);
        let stop = stop_keeping_recording(&root);
        assert!(
            String::from_utf8_lossy(&stop.stdout).contains("keeps recording"),
            "{stop:?}"
        );
        let first = first.finish(libc::SIGUSR2);
        assert!(
            first
                .stderr
                .iter()
                .any(|l| l.contains("keeps recording for the next agent")),
            "{}",
            first.stderr.join("\n")
        );
        let mut marker = start_markers(&dir, 50);
        assert!(marker.wait().unwrap().success());
        // SAFETY: set before the daemon is spawned; read only by the child.
        unsafe { std::env::set_var("MONITOR_TEST_RECORDER_ABI", next_abi) };
        let second = start(&args);
        unsafe { std::env::remove_var("MONITOR_TEST_RECORDER_ABI") };
        if adopts {
            wait_for_marker(&second, 49);
        } else {
            thread::sleep(Duration::from_millis(500));
        }
        let second = second.finish(libc::SIGINT);
        let seen = markers(&second.events, marker.id());
        let recorder = &second.totals["recorder"];
        if adopts {
            assert_eq!(seen, (0..50).collect::<Vec<_>>());
            assert_eq!(recorder["adopted"], true, "{}", second.totals);
            assert_eq!(recorder["replaced"], serde_json::json!([]));
            assert!(recorder.get("unobserved").is_none(), "{}", second.totals);
        } else {
            assert_eq!(
                seen,
                Vec::<usize>::new(),
                "the older ABI's backlog is not read"
            );
            assert_eq!(recorder["adopted"], false, "{}", second.totals);
            assert!(
                recorder["unobserved"]["ms"].as_u64().is_some(),
                "{}",
                second.totals
            );
            let replaced = &recorder["replaced"][0];
            assert_eq!(replaced["abi"], RECORDER_ABI, "{}", second.totals);
            assert!(
                replaced["lost"].as_u64().unwrap() >= 50,
                "the 50 markers at least: {}",
                second.totals
            );
            assert!(
                second.stderr.iter().any(|l| l.contains(&format!(
                    "replaced the recorder of ABI {RECORDER_ABI} (this build's is {next})"
                ))),
                "{}",
                second.stderr.join("\n")
            );
        }
    }
}

/// An agent that adopts a recorder kills in the kernel as the one before did: the
/// adopted open programs judge by the kill tables the new agent writes, which the
/// pins share. The first agent hands over with `--keep-recording`, which empties its
/// slots: between the two agents the recorder records, and kills nothing.
#[test]
fn an_adopted_recorder_kills_in_the_kernel_for_the_next_agent() {
    let _serial = serial();
    support::require_root();
    let dir = temp_dir("recorder-kill");
    let guarded = dir.join("guarded");
    fs::write(&guarded, "secret\n").unwrap();
    let rules = dir.with_extension("kill.yaml");
    fs::write(&rules, support::guarded_read_kill_rules(&guarded)).unwrap();
    let root = unique_pin_root();
    let _cleanup = Cleanup(root.clone());
    let args: Vec<String> = vec![
        "--rules".into(),
        rules.display().to_string(),
        "--pin-root".into(),
        root.display().to_string(),
        "--last-seen-file".into(),
        dir.with_extension("last-seen").display().to_string(),
    ];
    let cat = || Command::new("cat").arg(&guarded).output().unwrap();
    let first = start(&args);
    first.wait_for_log("1 in-kernel kill slots installed");
    stop_keeping_recording(&root);
    first.finish(libc::SIGUSR2);
    let between = cat();
    assert_eq!(
        (between.status.code(), between.stdout.as_slice()),
        (Some(0), &b"secret\n"[..]),
        "no agent, no kill"
    );

    let second = start(&args);
    second.wait_for_log("adopted the recorder pinned at");
    second.wait_for_log("1 in-kernel kill slots installed");
    let killed = cat();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        (killed.status.signal(), killed.stdout.as_slice()),
        (Some(libc::SIGKILL), &b""[..]),
        "killed in the kernel by the adopted program: {killed:?}"
    );
    let alert = second.wait_for("the kernel's kill", |a| {
        a["rule"] == "guarded read on host" && a["response"]["outcome"] == "killed"
    });
    assert_eq!(alert["response"]["point"], "kernel", "{alert}");
    second.finish(libc::SIGINT);
}
