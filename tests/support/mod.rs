//! Running the real `monitor` binary against the real kernel, for end-to-end tests.
#![allow(dead_code)]

pub mod docker;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Tests that count events system-wide must not overlap with other tests' workloads.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests load eBPF programs: run them as root (cargo xtask test)"
    );
}

/// A running `monitor events`, its stdout parsed line by line.
pub struct Monitor {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Monitor {
    /// Starts `monitor events` with `args` and waits until the sensor is attached.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn("events", args)
    }

    /// Starts the daemon (`monitor run`); its stdout lines are alerts.
    pub fn run(args: &[&str]) -> Self {
        Self::spawn("run", args)
    }

    fn spawn(subcommand: &str, args: &[&str]) -> Self {
        require_root();
        let mut child = Command::new(env!("CARGO_BIN_EXE_monitor"))
            .arg(subcommand)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start monitor");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut readers = Vec::new();
        {
            let events = events.clone();
            readers.push(thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let line = line.expect("stdout is UTF-8: the JSON encoder escapes bytes");
                    let value: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|err| panic!("invalid JSON line ({err}): {line}"));
                    events.lock().unwrap().push(value);
                }
            }));
        }
        {
            let lines = stderr_lines.clone();
            readers.push(thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let line = line.unwrap_or_default();
                    if line.contains("sensor ready") || line.contains("monitor running") {
                        let _ = ready_tx.send(());
                    }
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!(
                "monitor did not become ready:\n{}",
                stderr_lines.lock().unwrap().join("\n")
            );
        }
        Monitor {
            child,
            events,
            stderr: stderr_lines,
            readers,
        }
    }

    /// What the agent has logged so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The first event matching `pred`, waiting up to 10 s for it.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(what, Duration::from_secs(10), pred)
    }

    /// Every event seen so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    pub fn wait_for_within(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.events.lock().unwrap().iter().find(|e| pred(e)) {
                return found.clone();
            }
            if Instant::now() > deadline {
                panic!("no event matched: {what}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the agent (SIGINT), waits for it and returns every event and its totals.
    pub fn stop(mut self) -> (Vec<Value>, Value) {
        // SAFETY: signalling our own, not yet reaped child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("wait for monitor");
        for reader in self.readers.drain(..) {
            reader.join().expect("reader thread");
        }
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(
            status.success(),
            "monitor failed ({status}):\n{}",
            stderr.join("\n")
        );
        let totals = stderr
            .iter()
            .find_map(|l| l.strip_prefix("monitor: totals "))
            .unwrap_or_else(|| panic!("no totals line:\n{}", stderr.join("\n")));
        let totals = serde_json::from_str(totals).expect("totals JSON");
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        (events, totals)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The calling thread's id, as the kernel reports it in `tid`.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

pub fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` is not a string in {value}"))
}

/// CLOCK_BOOTTIME now, in the events' `boot_ns` scale.
pub fn boot_ns_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
