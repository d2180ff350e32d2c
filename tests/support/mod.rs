//! Running the real `monitor` binary against the real kernel, for end-to-end tests.
#![allow(dead_code)]

pub mod attack;
pub mod corpus;
pub mod docker;
pub mod nats;
pub mod netns;
pub mod receivers;
pub mod runtimes;
pub mod schemas;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// A site file loaded after the default rules, as a deployment tunes them without
/// editing them: the test images' registry (`monitor-test`) allowed, then `more`.
/// Written to a temporary file named for `what`; its path.
pub fn site_rules(what: &str, more: &str) -> std::path::PathBuf {
    let site =
        std::env::temp_dir().join(format!("monitor-site-{what}-{}.yaml", std::process::id()));
    std::fs::write(
        &site,
        format!(
            "- list: allowed_image_registries\n  items: [monitor-test]\n  override:\n    items: append\n{more}"
        ),
    )
    .expect("write the site rules");
    site
}

/// Polls `cond` every 100 ms until it holds, for at most `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `count` until it reaches `target`, for as long as it keeps rising, and returns
/// the last count. A busy machine (the kernel matrix's emulated guests share the host's
/// cores) slows how fast the agent works through a burst without losing any of it, so
/// no fixed deadline fits: only a count that stops rising for 30 s has stopped.
pub fn wait_for_count(target: usize, mut count: impl FnMut() -> usize) -> usize {
    const STALL: Duration = Duration::from_secs(30);
    let mut last = count();
    let mut rose = Instant::now();
    while last < target && rose.elapsed() < STALL {
        thread::sleep(Duration::from_millis(200));
        let now = count();
        if now > last {
            last = now;
            rose = Instant::now();
        }
    }
    last
}

/// Tests that count events system-wide must not overlap with other tests' workloads.
static SERIAL: Mutex<()> = Mutex::new(());

/// A host rule on reads of `guarded` the kernel decides exactly, and an enforced kill
/// response on it (its slot kills in the kernel).
pub fn guarded_read_kill_rules(guarded: &std::path::Path) -> String {
    format!(
        "\
- rule: guarded read on host
  desc: d
  condition: >
    evt.type in (open, openat, openat2) and evt.is_open_read = true and fd.num >= 0
    and container.id = host and fd.name = {}
  output: o (file=%fd.name)
  priority: warning
- response: stop guarded reads
  rules: [guarded read on host]
  action: kill
  mode: enforce
",
        guarded.display()
    )
}

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

/// A running `monitor events` or `monitor run`, its stdout parsed line by line.
pub struct Monitor {
    child: Child,
    /// Where this daemon pins its recorder, when the harness chose it.
    pin_root: Option<std::path::PathBuf>,
    events: Arc<Mutex<Vec<Value>>>,
    /// Stdout as it came, line by line.
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<thread::JoinHandle<()>>,
}

/// What a stopped agent left behind.
pub struct Finished {
    pub events: Vec<Value>,
    pub lines: Vec<String>,
    pub stderr: Vec<String>,
    pub totals: Value,
}

impl Monitor {
    /// Starts `monitor events` with `args` and waits until the sensor is attached.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn("events", args, true)
    }

    /// Starts the daemon (`monitor run`); its stdout lines are alerts (JSON). Unless
    /// `args` choose an address, its operations endpoint takes a free port
    /// ([`Monitor::endpoint`]).
    pub fn run(args: &[&str]) -> Self {
        Self::spawn("run", args, true)
    }

    /// The daemon with stdout kept as text (for `--stdout-format text`).
    pub fn run_text(args: &[&str]) -> Self {
        Self::spawn("run", args, false)
    }

    fn spawn(subcommand: &str, args: &[&str], json: bool) -> Self {
        require_root();
        let mut command = Command::new(env!("CARGO_BIN_EXE_monitor"));
        command.arg(subcommand).args(args);
        if subcommand == "run" && !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        // Each daemon learns its own profiles: what one test's containers did must not
        // be another's normal (nor this machine's state directory).
        if subcommand == "run" && !args.iter().any(|a| a.starts_with("--profiles-dir")) {
            static DAEMONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = DAEMONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("monitor-profiles-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            command.arg("--profiles-dir").arg(dir);
        }
        // Each daemon pins its recorder in a directory of its own: a recorder one test
        // leaves (killed) must not be another's backlog.
        let pin_root = (subcommand == "run"
            && !args
                .iter()
                .any(|a| a.starts_with("--pin-root") || *a == "--no-pin"))
        .then(unique_pin_root);
        if let Some(root) = &pin_root {
            command.arg("--pin-root").arg(root);
            if !args.iter().any(|a| a.starts_with("--last-seen-file")) {
                command.arg("--last-seen-file").arg(
                    root.with_extension("last-seen").file_name().map_or_else(
                        || std::env::temp_dir().join("monitor-last-seen"),
                        |name| std::env::temp_dir().join(name),
                    ),
                );
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start monitor");
        let events = Arc::new(Mutex::new(Vec::new()));
        let raw_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut readers = Vec::new();
        {
            let events = events.clone();
            let raw = raw_lines.clone();
            readers.push(thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let line = line.expect("stdout is UTF-8: every output escapes bytes");
                    if json {
                        let value: Value = serde_json::from_str(&line)
                            .unwrap_or_else(|err| panic!("invalid JSON line ({err}): {line}"));
                        events.lock().unwrap().push(value);
                    }
                    raw.lock().unwrap().push(line);
                }
            }));
        }
        {
            let lines = stderr_lines.clone();
            readers.push(thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let line = line.unwrap_or_default();
                    let ready = line.contains("sensor ready") || line.contains("monitor running");
                    // Kept before readiness is told: a test that looks at the log as
                    // soon as the agent is ready finds the ready line in it.
                    lines.lock().unwrap().push(line);
                    // Every line is progress; the ready line ends the wait.
                    let _ = ready_tx.send(ready);
                }
            }));
        }
        // Attaching takes what the machine gives it (seconds here, minutes in an
        // emulated guest): the wait ends on readiness, and fails only when the agent
        // exits or logs nothing for a minute.
        loop {
            match ready_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(true) => break,
                Ok(false) => continue,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "monitor did not become ready (it exited, or logged nothing for 60 s):\n{}",
                        stderr_lines.lock().unwrap().join("\n")
                    );
                }
            }
        }
        Monitor {
            child,
            pin_root,
            events,
            lines: raw_lines,
            stderr: stderr_lines,
            readers,
        }
    }

    /// Stdout lines so far, as written.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Where the daemon's /metrics, /healthz and /readyz answer.
    pub fn endpoint(&self) -> std::net::SocketAddr {
        self.stderr_lines()
            .iter()
            .find_map(|l| {
                let rest = l.split("operations endpoint on http://").nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .expect("the daemon logs its operations endpoint")
    }

    /// The body of the agent's GET /metrics (Prometheus text).
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let address = self.endpoint();
        let mut stream = std::net::TcpStream::connect(address).expect("the metrics endpoint");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_once("\r\n\r\n")
            .map_or(response.clone(), |(_, b)| b.to_string())
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own, not yet reaped child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits (up to 15 s) for a stderr line containing `text`; returns it.
    pub fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(line) = self.stderr_lines().into_iter().find(|l| l.contains(text)) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "no log line with `{text}`:\n{}",
                    self.stderr_lines().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
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

    /// How many events so far match `pred`, counted without copying them (a burst's
    /// tens of thousands, polled).
    pub fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| pred(e))
            .count()
    }

    /// Waits until `target` events match `pred`, for as long as more keep arriving
    /// ([`wait_for_count`]); returns how many did.
    pub fn wait_for_count(&self, target: usize, pred: impl Fn(&Value) -> bool) -> usize {
        wait_for_count(target, || self.count(&pred))
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
    pub fn stop(self) -> (Vec<Value>, Value) {
        let finished = self.finish(libc::SIGINT);
        (finished.events, finished.totals)
    }

    /// Kills the agent (SIGKILL: no stop, no totals) and returns what it wrote.
    pub fn kill(mut self) -> Finished {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            reader.join().expect("reader thread");
        }
        Finished {
            events: std::mem::take(&mut *self.events.lock().unwrap()),
            lines: std::mem::take(&mut *self.lines.lock().unwrap()),
            stderr: self.stderr.lock().unwrap().clone(),
            totals: Value::Null,
        }
    }

    /// Sends `signal`, waits for a clean exit (status 0) and returns what it left.
    pub fn finish(mut self, signal: i32) -> Finished {
        self.signal(signal);
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
        Finished {
            events: std::mem::take(&mut *self.events.lock().unwrap()),
            lines: std::mem::take(&mut *self.lines.lock().unwrap()),
            stderr,
            totals,
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(root) = &self.pin_root {
            uninstall_recorder(root);
        }
    }
}

/// A pin root no other daemon of this run uses.
pub fn unique_pin_root() -> std::path::PathBuf {
    static ROOTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = ROOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::path::PathBuf::from(format!(
        "/sys/fs/bpf/monitor-tests/{}-{n}",
        std::process::id()
    ))
}

/// Removes whatever recorder a daemon left under `root` (`monitor uninstall`).
pub fn uninstall_recorder(root: &std::path::Path) {
    if root.exists() {
        let _ = Command::new(env!("CARGO_BIN_EXE_monitor"))
            .arg("uninstall")
            .arg("--pin-root")
            .arg(root)
            .output();
    }
}

/// The ids and names of the BPF programs loaded on this machine now (Debian's
/// bpftool).
pub fn loaded_programs() -> Vec<(u64, String)> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .expect("bpftool (cargo xtask setup installs it)");
    let progs: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    progs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["id"].as_u64()?, p["name"].as_str()?.to_string())))
        .collect()
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

/// A private CA made for this run and a server certificate it signed for `host`.
pub struct TestCa {
    pub ca_pem: String,
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

pub fn private_ca(host: &str) -> TestCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    TestCa {
        ca_pem: ca.pem(),
        cert,
        key,
    }
}
