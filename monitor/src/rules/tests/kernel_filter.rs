//! The kernel filter never drops an event a rule matches. Recorded events (the default
//! ruleset's fixtures) and random ones go through the engine and through the
//! user-space model of the kernel's checks, built by the same code that fills the
//! kernel's tables: every event the engine matches must pass the model. Also: the
//! filter does drop what no rule can match (else the test above proves nothing).
use std::path::Path;

use serde_json::{Value, json};

use crate::{
    clock::BootClock,
    event::EventKind,
    rules::{
        CompiledRule, Engine, LiveEvent, Scratch, fixtures,
        kernel_filter::{Facts, KernelFilter},
        recorded::enriched_from_json,
    },
};

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
const FALCO_STABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco_rules.yaml"
);

const FALCO_ALL: [&str; 3] = [
    FALCO_STABLE,
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/falco-rules/falco-incubating_rules.yaml"
    ),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/falco-rules/falco-sandbox_rules.yaml"
    ),
];

pub(super) fn engines() -> Vec<(&'static str, Engine)> {
    let load = |paths: &[&str]| {
        let paths: Vec<std::path::PathBuf> = paths.iter().map(|p| p.into()).collect();
        Engine::load_paths(&paths).unwrap_or_else(|e| panic!("{e}"))
    };
    vec![
        ("default", load(&[DEFAULT_RULES])),
        ("falco stable", load(&[FALCO_STABLE])),
        ("falco stable, incubating and sandbox", load(&FALCO_ALL)),
    ]
}

/// Asserts that every event a rule of `engine` matches passes `filter`; returns how
/// many events matched and how many of the others the filter dropped.
fn check(engine: &Engine, filter: &KernelFilter, events: &[Value], what: &str) -> (usize, usize) {
    let (mut hits, mut dropped) = (0, 0);
    evaluate_each(engine, events, |v, facts, matched| {
        let passes = filter.passes(facts);
        if let Some(rule) = matched.first() {
            hits += 1;
            assert!(
                passes,
                "{what}: rule \"{}\" matches an event the kernel filter drops\nfacts: {facts:?}\nevent: {v}",
                rule.name
            );
        } else if !passes {
            dropped += 1;
        }
    });
    (hits, dropped)
}

/// Hands `visit` each event the kernel has facts for: the event, its facts, and the
/// rules of `engine` it matches.
pub(super) fn evaluate_each(
    engine: &Engine,
    events: &[Value],
    mut visit: impl FnMut(&Value, &Facts, &[&CompiledRule]),
) {
    let clock = BootClock::new();
    let mut scratch = Scratch::default();
    let mut matched = Vec::new();
    for v in events {
        let enriched = enriched_from_json(v);
        let Some(facts) = Facts::of(&enriched) else {
            continue;
        };
        let live = LiveEvent::enriched(&enriched, &clock);
        engine.evaluate_all(&live, &mut scratch, &mut matched);
        visit(v, &facts, &matched);
    }
}

pub(super) fn fixture_events() -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(DEFAULT_RULES).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".fixtures.yaml") {
            let fixtures = fixtures::parse_file(Path::new(&path)).unwrap();
            out.extend(fixtures.into_iter().map(|f| f.event));
        }
    }
    // Falco's rulesets' fixtures, built by their tests.
    for fixtures in [
        super::falco::fixtures(),
        super::falco_incubating::fixtures(),
        super::falco_sandbox::fixtures(),
    ] {
        out.extend(fixtures.into_iter().map(|(_, event)| event));
    }
    out
}

/// A small deterministic generator: the same events every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const PATHS: &[&str] = &[
    "/etc/shadow",
    "/etc/passwd",
    "/etc/hostname",
    "/etc/sudoers",
    "/etc/pam.d/login",
    "/etc/ld.so.preload",
    "/etc/kubernetes/admin.conf",
    "/root/.ssh/id_rsa",
    "/root/.ssh/authorized_keys",
    "/home/u/.aws/credentials",
    "/home/u/.kube/config",
    "/run/secrets/kubernetes.io/serviceaccount/token",
    "/usr/bin/ls",
    "/usr/local/bin/x",
    "/bin/sh",
    "/dev/shm/x",
    "/tmp/x",
    "/proc/self/mem",
    "/sys/fs/cgroup/release_agent",
    "/var/log/syslog",
    "/var/log/auth.log",
    "/opt/app/auth.log",
    "/var/lib/app/data",
    "/usr/lib/x86_64-linux-gnu/liblzma.so.5.6.1",
    "/etc/apt/sources.list.d/x.list",
    "/",
    // What the kernel leaves to the agent: relative, not normalized, traversals.
    "shadow",
    "../etc/shadow",
    "/etc//shadow",
    "/etc/./sudoers",
    "/tmp/../etc/shadow",
    "/var/log/",
];
const NAMES: &[&str] = &[
    "cat",
    "sh",
    "bash",
    "python3",
    "sshd",
    "ssh",
    "apt",
    "dpkg",
    "sudo",
    "nginx",
    "find",
    "grep",
    "vi",
    "runc",
    "containerd",
    "docker",
    "kubelet",
    "curl",
    "nc",
    "java",
];
const ADDRESSES: &[&str] = &[
    "127.0.0.1",
    "127.0.0.53",
    "0.0.0.0",
    "10.0.0.1",
    "172.17.0.2",
    "192.168.1.10",
    "169.254.169.254",
    "8.8.8.8",
    "1.2.3.4",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "fd00::1",
    "2001:db8::1",
];

pub(super) fn random_events(n: usize) -> Vec<Value> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = *rng.pick(NAMES);
        let parent = *rng.pick(NAMES);
        let mut v = if rng.next().is_multiple_of(5) {
            let syscall = *rng.pick(&[
                "ptrace",
                "symlinkat",
                "linkat",
                "finit_module",
                "socket",
                "dup2",
                "dup3",
                "unlinkat",
                "renameat2",
                "mkdir",
                "rmdir",
                "userfaultfd",
                "memfd_create",
                "listen",
                "accept4",
                "sendto",
                "recvfrom",
            ]);
            let result = *rng.pick(&[0i64, 1, 3, -1, -13]);
            json!({
                "kind": "syscall", "syscall": syscall, "comm": name, "result": result,
                "error": if result < 0 { json!("EPERM") } else { Value::Null }, "uid": 0,
                "request": *rng.pick(&[0u64, 2, 16, 0x4206]), "target_pid": 7,
                "target": *rng.pick(PATHS), "linkpath": "/tmp/l", "oldpath": *rng.pick(PATHS),
                "newpath": "/tmp/n", "domain": *rng.pick(&[1u64, 2, 10, 17]), "sock_type": 3,
                "fd": 3, "newfd": *rng.pick(&[0u64, 1, 2, 9]),
                "family": *rng.pick(&["inet", "inet6", "unix"]), "address": *rng.pick(ADDRESSES),
                "port": *rng.pick(&[22u64, 53, 443, 4444, 40000]), "local_address": "172.17.0.2",
                "local_port": *rng.pick(&[22u64, 8080, 40000]), "path": *rng.pick(PATHS),
                "name": *rng.pick(PATHS), "size": 80, "data": *rng.pick(&["GET /", "\\xca\\xfe\\xba\\xbe", ""]),
            })
        } else if rng.next().is_multiple_of(2) {
            let path = *rng.pick(PATHS);
            let flags = (rng.next() % 4)
                | *rng.pick(&[0u64, 0o100, 0o1000, 0o200000, 0o2000000, 0o100 | 0o1000]);
            let result = *rng.pick(&[3i64, 5, -2, -13, -21]);
            let resolved =
                String::from_utf8(crate::event::normalize_path(format!("/{path}").as_bytes()))
                    .unwrap();
            json!({
                "kind": "open", "syscall": *rng.pick(&["open", "openat", "openat2", "creat"]),
                "comm": name, "path": path, "resolved_path": resolved, "flags": flags,
                "mode": *rng.pick(&[0o644u64, 0o755]), "result": result,
                "error": if result < 0 { json!("ENOENT") } else { Value::Null },
                "uid": *rng.pick(&[0u64, 1000]),
            })
        } else {
            let family = *rng.pick(&["inet", "inet6", "unix", "other"]);
            let address = *rng.pick(ADDRESSES);
            let result = *rng.pick(&[0i64, -111, -115, -101, -13]);
            json!({
                "kind": "connect", "comm": name, "fd": 3, "family": family,
                "sock_type": *rng.pick(&["stream", "dgram", "raw"]),
                "address": if family == "unix" { Value::Null } else { json!(address) },
                "port": *rng.pick(&[22u64, 53, 80, 443, 4444, 6443, 9, 2379]),
                "unix_path": if family == "unix" { json!("/run/docker.sock") } else { Value::Null },
                "result": result,
                "error": if result < 0 { json!("ECONNREFUSED") } else { Value::Null },
                "uid": 0,
            })
        };
        v["process"] = json!({"pid": 100, "name": name, "exe": name,
            "exepath": format!("/usr/bin/{name}"), "args": [], "cwd": "/", "uid": 0,
            "user": "root", "start_boot_ns": 1});
        v["ancestors"] = json!([{"pid": 99, "name": parent, "exe": parent,
            "exepath": format!("/usr/bin/{parent}"), "cmdline": parent}]);
        if rng.next().is_multiple_of(2) {
            v["container"] = json!({"id": "4f2a6b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
                "name": "web", "runtime": "docker", "image": "nginx:1.25",
                "image_repository": "nginx", "image_tag": "1.25", "labels": {}, "privileged": false});
        }
        out.push(v);
    }
    out
}

#[test]
fn the_filter_passes_every_event_a_rule_matches() {
    let fixtures = fixture_events();
    let random = random_events(20_000);
    for (name, engine) in engines() {
        let filter = engine.kernel_filter();
        let (hits, _) = check(&engine, &filter, &fixtures, &format!("{name}: fixtures"));
        assert!(
            hits > 0,
            "{name}: no fixture matched, the test proves nothing"
        );
        let (hits, dropped) = check(&engine, &filter, &random, &format!("{name}: random"));
        assert!(hits > 100, "{name}: only {hits} random events matched");
        assert!(
            dropped > 1000,
            "{name}: the filter dropped only {dropped} events"
        );
    }
}

/// What the default rules let the kernel drop: host reads of files no host rule
/// names, failed opens, the host's connects to loopback and to ports no host rule
/// names; a container's connects all pass, counted by the fan-out rule.
#[test]
fn the_default_rules_filter_host_reads_failed_opens_and_loopback_connects() {
    let engine = Engine::load_paths(&[DEFAULT_RULES.into()]).unwrap();
    let filter = engine.kernel_filter();
    let facts = |kind, host, flags, result, family, address: Option<&str>| Facts {
        kind,
        host,
        syscall: monitor_common::syscall::OPENAT,
        flags,
        result,
        family,
        address: address.map(|a| a.parse().unwrap()),
        port: 4444,
        path: None,
    };
    let open = |host, flags, result| facts(EventKind::Open, host, flags, result, 0, None);
    let connect = |host, address| facts(EventKind::Connect, host, 0, 0, 2, Some(address));
    let host_read = |path: &str| Facts {
        path: Some(path.as_bytes().to_vec()),
        ..open(true, 0, 3)
    };
    assert!(
        !filter.passes(&host_read("/usr/lib/libc.so.6")),
        "host read"
    );
    assert!(
        filter.passes(&host_read("/etc/shadow")),
        "host read of a file a host rule names"
    );
    assert!(filter.passes(&open(true, 1, 3)), "host write");
    assert!(filter.passes(&open(false, 0, 3)), "container read");
    assert!(!filter.passes(&open(false, 0, -2)), "failed open");
    // The fan-out rule counts every connect of a container, loopback included; the
    // host's loopback connects no rule needs.
    assert!(
        filter.passes(&connect(false, "127.0.0.1")),
        "counted loopback"
    );
    assert!(!filter.passes(&connect(true, "127.0.0.1")), "host loopback");
    assert!(filter.passes(&connect(false, "10.0.0.1")), "outbound");
    let to_port = |host, port| Facts {
        port,
        ..connect(host, "10.0.0.1")
    };
    assert!(
        filter.passes(&to_port(false, 443)),
        "an allowed port, counted"
    );
    assert!(
        !filter.passes(&to_port(true, 4445)),
        "a host connect, no miner port"
    );
    assert!(
        filter.passes(&to_port(true, 3333)),
        "a host connect to a miner port"
    );
    assert!(
        !filter.passes(&facts(
            EventKind::Connect,
            true,
            0,
            0,
            10,
            Some("::ffff:127.0.0.1")
        )),
        "mapped loopback on the host"
    );
    assert!(
        filter
            .describe()
            .contains("kept open by rule \"Connection fan-out from container\""),
        "{}",
        filter.describe()
    );
    let text = filter.describe();
    assert!(
        text.contains("open events on host: passes syscall open|openat|openat2|creat, access read|write|read-write, result ok, path in /etc/"),
        "{text}"
    );
}

/// Falco's stable rules look at fd duplication and socket creation only in containers
/// (reverse shells, packet sockets): the kernel drops the host's, which every shell
/// makes all day, and keeps the symlinks and ptraces the host rules need.
#[test]
fn falco_stable_filters_host_dups_and_sockets() {
    let engine = Engine::load_paths(&[FALCO_STABLE.into()]).unwrap();
    let filter = engine.kernel_filter();
    let syscall = |host, id, result| Facts {
        kind: EventKind::Syscall,
        host,
        syscall: id,
        flags: 0,
        result,
        family: 0,
        address: None,
        port: 0,
        path: None,
    };
    use monitor_common::syscall::{DUP2, PTRACE, SOCKET, SYMLINKAT};
    assert!(!filter.passes(&syscall(true, DUP2, 1)), "host dup2");
    assert!(!filter.passes(&syscall(true, SOCKET, 3)), "host socket");
    assert!(filter.passes(&syscall(false, DUP2, 1)), "container dup2");
    assert!(
        filter.passes(&syscall(false, SOCKET, 3)),
        "container socket"
    );
    assert!(filter.passes(&syscall(true, SYMLINKAT, 0)), "host symlink");
    assert!(filter.passes(&syscall(true, PTRACE, -1)), "host ptrace");
    let text = filter.describe();
    assert!(
        text.contains("syscall events on host: passes syscall ptrace|symlink|symlinkat|link|linkat, result ok|failed"),
        "{text}"
    );
}

/// Falco's stable rules read a host open only for the paths they name (sensitive
/// files, log files by directory or name) and for paths a directory traversal could
/// hide in: the kernel judges an absolute path by its bytes and lets the rest through.
#[test]
fn falco_stable_bounds_host_opens_by_path() {
    let engine = Engine::load_paths(&[FALCO_STABLE.into()]).unwrap();
    let filter = engine.kernel_filter();
    let open = |path: &str, flags: u64| Facts {
        kind: EventKind::Open,
        host: true,
        syscall: monitor_common::syscall::OPENAT,
        flags,
        result: 3,
        family: 0,
        address: None,
        port: 0,
        path: Some(path.as_bytes().to_vec()),
    };
    let o_wronly_trunc = 0o1 | 0o1000;
    assert!(
        !filter.passes(&open("/etc/hostname", 0)),
        "an ordinary read"
    );
    assert!(!filter.passes(&open("/usr/lib/libc.so.6", 0)), "a library");
    assert!(filter.passes(&open("/etc/shadow", 0)), "a sensitive file");
    assert!(
        filter.passes(&open("/etc/sudoers.d/90-users", 0)),
        "below a directory"
    );
    assert!(
        filter.passes(&open("/opt/app/auth.log", o_wronly_trunc)),
        "a log by name"
    );
    assert!(
        filter.passes(&open("shadow", 0)),
        "relative: the agent judges"
    );
    assert!(filter.passes(&open("/etc//hostname", 0)), "not normalized");
    assert!(
        filter.passes(&open("/tmp/../etc/hostname", 0)),
        "a traversal"
    );
    let long = format!("/{}", "x".repeat(300));
    assert!(
        filter.passes(&open(&long, 0)),
        "longer than the kernel reads"
    );
    let text = filter.describe();
    assert!(text.contains("/etc/shadow"), "{text}");
    assert!(text.contains("*/auth.log"), "{text}");
}
