//! Stopping the agent at any moment: SIGINT while it loads its programs, while it
//! attaches them, just after start-up and during an open storm. A binary of its own,
//! so that no other test's agent loads programs meanwhile (the check for programs left
//! behind looks at the whole machine). `monitor events` and the daemon, whose pinned
//! recorder must go too. Real kernel, Debian's bpftool.
mod support;

use std::{fs, io::Read, process::Command, thread, time::Duration};

use serde_json::Value;
use support::{Monitor, loaded_programs, receivers::temp_dir, serial};

/// SIGINT at any moment (while loading the programs, while attaching, just after
/// start-up, during an open storm) stops the agent within 2 s, exit status 0, with its
/// totals line, and nothing it attached stays behind.
#[test]
fn sigint_at_any_moment_stops_within_two_seconds_and_leaves_nothing_attached() {
    let _serial = serial();
    support::require_root();
    let args = [
        "events",
        "--kinds",
        "exec,open,connect",
        "--log",
        "info,monitor::pipeline=debug",
    ];
    // The programs' names: what an agent that started fully added to those loaded
    // before (Debian's bpftool here cannot name a program's process).
    let before: std::collections::HashSet<u64> =
        loaded_programs().into_iter().map(|(id, _)| id).collect();
    let full = Monitor::start(&args[1..]);
    let mut names: std::collections::HashSet<String> = loaded_programs()
        .into_iter()
        .filter(|(id, _)| !before.contains(id))
        .map(|(_, name)| name)
        .collect();
    assert!(names.len() > 3, "the agent's programs: {names:?}");
    full.finish(libc::SIGINT);
    // The daemon pins its recorder: its programs are held by pinned links, which a
    // stop must remove too.
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    let root = support::unique_pin_root();
    let scratch = temp_dir("sigint-daemon");
    let daemon_args: Vec<String> = [
        "run",
        "--rules",
        rules,
        "--listen",
        "127.0.0.1:0",
        "--pin-root",
        root.to_str().unwrap(),
        "--profiles-dir",
        scratch.join("profiles").to_str().unwrap(),
        "--last-seen-file",
        scratch.join("last-seen").to_str().unwrap(),
        "--log",
        "info,monitor::pipeline=debug",
    ]
    .map(String::from)
    .to_vec();
    let daemon = Monitor::run(
        &daemon_args[1..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    names.extend(
        loaded_programs()
            .into_iter()
            .filter(|(id, _)| !before.contains(id))
            .map(|(_, name)| name),
    );
    daemon.finish(libc::SIGINT);
    // The kernel frees a released program after a grace period, so one may still be
    // listed for a moment after its process is gone; one still there after 3 s stays.
    let left_behind = || -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let left: Vec<String> = loaded_programs()
                .into_iter()
                .filter(|(id, name)| !before.contains(id) && names.contains(name))
                .map(|(id, name)| format!("{id} {name}"))
                .collect();
            if left.is_empty() || std::time::Instant::now() > deadline {
                return left;
            }
            thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(left_behind(), Vec::<String>::new());

    let storm_dir = temp_dir("sigint-storm");
    let events_args: Vec<String> = args.map(String::from).to_vec();
    for (when, storm, args) in [
        (Duration::from_millis(200), false, &events_args),
        (Duration::from_secs(1), false, &events_args),
        (Duration::from_secs(3), false, &events_args),
        (Duration::from_secs(3), true, &events_args),
        (Duration::from_millis(200), false, &daemon_args),
        (Duration::from_secs(1), false, &daemon_args),
        (Duration::from_secs(3), false, &daemon_args),
    ] {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let storming = storm.then(|| {
            let stop = stop.clone();
            let file = storm_dir.join("f");
            fs::write(&file, "x").unwrap();
            thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = fs::File::open(&file);
                }
            })
        });
        let mut child = Command::new(env!("CARGO_BIN_EXE_monitor"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        thread::sleep(when);
        // SAFETY: signalling our own, not yet reaped child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let sent = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if sent.elapsed() > Duration::from_secs(2) {
                let _ = child.wait();
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!(
                    "still running 2 s after SIGINT at {when:?} (storm: {storm}), stopped \
                     after {:?}:\n{stderr}",
                    sent.elapsed()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let took = sent.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(storming) = storming {
            storming.join().unwrap();
        }
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(status.success(), "SIGINT at {when:?}: {status}\n{stderr}");
        assert!(
            stderr.contains("monitor: totals {"),
            "SIGINT at {when:?}: no totals\n{stderr}"
        );
        // Bounded does not mean uncounted: every record the kernel sent was read,
        // judged or (past the stop's budget) counted as unjudged.
        let totals: Value = stderr
            .lines()
            .find_map(|l| l.strip_prefix("monitor: totals "))
            .map(|t| serde_json::from_str(t).unwrap())
            .unwrap();
        for (kind, t) in totals["kinds"].as_object().unwrap() {
            assert_eq!(
                t["sent"], t["received"],
                "SIGINT at {when:?}, {kind}: {totals}"
            );
        }
        let detail = stderr
            .lines()
            .filter(|l| l.contains("stopping"))
            .collect::<Vec<_>>()
            .join("; ");
        eprintln!(
            "SIGINT at {when:?} (storm: {storm}, {}): stopped in {took:?}; {detail}",
            args[0]
        );
        assert_eq!(
            left_behind(),
            Vec::<String>::new(),
            "programs left behind after SIGINT at {when:?} ({})",
            args[0]
        );
        assert!(
            !root.exists(),
            "the recorder left pinned after SIGINT at {when:?}: {:?}",
            fs::read_dir(&root).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        );
    }
    support::uninstall_recorder(&root);
    let _ = fs::remove_dir_all(&storm_dir);
    let _ = fs::remove_dir_all(&scratch);
}
