//! The benign corpus: real containers doing ordinary things (a web server and its
//! health checks, an app reading its config under a supervisor, cron jobs, log
//! rotation, sshd logins, DNS lookups, redis over loopback and an internal network,
//! an image build installing a package, `docker exec` without a tty, find and grep
//! over a home) watched by one daemon with the default ruleset (`rules/`), the real
//! kernel and the real dockerd. The default ruleset must raise nothing on it.
//!
//! Every container is on an internal Docker network of the test's own, so the only
//! addresses anything connects to are the test's containers and Docker's embedded DNS.
mod support;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    Monitor,
    corpus::{self, HOME, IMAGE, USER},
    docker::docker,
    serial,
};

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");

/// The rule the barrier raises in the marker container.
const BARRIER_RULE: &str = "Password database read in container";

/// The containers, network, image and build context of one run, removed on drop
/// whatever the outcome: containers first (a network with containers attached cannot
/// be removed), then the network and the built image.
struct Corpus {
    prefix: String,
    network: String,
    containers: Vec<String>,
    images: Vec<String>,
    build_dir: PathBuf,
}

impl Drop for Corpus {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("docker")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        let mut rm = vec!["rm", "-f"];
        rm.extend(self.containers.iter().map(String::as_str));
        quiet(&rm);
        quiet(&["network", "rm", &self.network]);
        for image in &self.images {
            quiet(&["rmi", "-f", image]);
        }
        let _ = fs::remove_dir_all(&self.build_dir);
    }
}

impl Corpus {
    fn new() -> Corpus {
        let prefix = format!("corpus-{}", std::process::id());
        let corpus = Corpus {
            network: format!("{prefix}-net"),
            build_dir: PathBuf::from(format!("/var/tmp/monitor-{prefix}-build")),
            prefix,
            containers: Vec::new(),
            images: Vec::new(),
        };
        // Internal: the containers reach each other and Docker's DNS, nothing else.
        docker(&["network", "create", "--internal", &corpus.network]);
        corpus
    }

    fn name(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// `docker run -d` of the corpus image on the test's network as `role`.
    fn start(&mut self, role: &str, options: &[&str], command: &[&str]) -> String {
        let name = self.name(role);
        self.containers.push(name.clone());
        let mut args = vec!["run", "-d", "--name", &name, "--network", &self.network];
        args.extend(options);
        args.push(IMAGE);
        args.extend(command);
        docker(&args);
        name
    }

    fn ip(&self, role: &str) -> String {
        docker(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &self.name(role),
        ])
    }

    /// Which scenario an alert of this run came from, or None when it is not this
    /// run's (the host, other tests' containers).
    fn scenario_of(&self, alert: &Value, build_ids: &[String]) -> Option<String> {
        let fields = &alert["output_fields"];
        let name = fields["container.name"].as_str().unwrap_or("");
        if let Some(role) = name.strip_prefix(&format!("{}-", self.prefix)) {
            return Some(role.to_string());
        }
        let id = fields["container.id"].as_str().unwrap_or("");
        let from_build = !id.is_empty()
            && build_ids
                .iter()
                .any(|b| b.starts_with(id) || id.starts_with(b.as_str()));
        from_build.then(|| "image build".to_string())
    }
}

/// What each role's container does, for the failure listing.
fn describe(role: &str) -> &'static str {
    match role {
        "app" => "tini + supervisord: python app reading its config, cron jobs, logrotate",
        "web" => "busybox httpd + Docker health check; docker exec without a tty",
        "probe" => "health-check loop over the internal network",
        "db" => "redis-server; redis-cli over loopback",
        "sshd" => "sshd: key logins, shell sessions",
        "workstation" => "DNS lookups, redis-cli and ssh over the network, find/grep in the home",
        "built" => "the image built, run",
        "image build" => "docker build: dpkg-deb, dpkg -i, useradd in RUN steps",
        _ => "?",
    }
}

fn exec(container: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", container];
    args.extend(command);
    docker(&args)
}

/// `docker exec -i` with `input` on stdin.
fn exec_with_stdin(container: &str, command: &[&str], input: &str) -> String {
    let mut child = Command::new("docker")
        .args(["exec", "-i", container])
        .args(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec -i");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "docker exec -i {container} {command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `probe` every `every` until it returns Some, for at most `timeout`.
fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(found) => return found,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen:\n{last}")
            }
            Err(_) => thread::sleep(every),
        }
    }
}

fn logs(container: &str) -> String {
    let output = Command::new("docker")
        .args(["logs", container])
        .output()
        .expect("docker logs");
    // sshd -e and supervisord log to stderr.
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn contains_all(text: &str, wanted: &[&str]) -> Result<(), String> {
    match wanted.iter().find(|w| !text.contains(*w)) {
        None => Ok(()),
        Some(missing) => Err(format!("no `{missing}` in:\n{text}")),
    }
}

fn assert_contains(what: &str, text: &str, wanted: &[&str]) {
    if let Err(err) = contains_all(text, wanted) {
        panic!("{what}: {err}");
    }
}

fn wait_healthy(container: &str) {
    wait_until(
        &format!("{container}'s Docker health check"),
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let status = docker(&["inspect", "--format", "{{.State.Health.Status}}", container]);
            if status == "healthy" {
                Ok(())
            } else {
                Err(status)
            }
        },
    );
}

/// A tiny Debian package (a program in /usr/bin, its config in /etc, a postinst) and
/// a Dockerfile that builds and installs it the way image builds do, offline.
fn write_build_context(dir: &Path) {
    let files: [(&str, u32, &str); 6] = [
        (
            "Dockerfile",
            0o644,
            &format!(
                "FROM {IMAGE}\n\
                 COPY corpus-hello /src/corpus-hello\n\
                 RUN dpkg-deb --root-owner-group --build /src/corpus-hello /tmp/corpus-hello_1.0_all.deb\n\
                 RUN dpkg -i /tmp/corpus-hello_1.0_all.deb && rm /tmp/corpus-hello_1.0_all.deb\n\
                 RUN sed -i 's/^greeting=.*/greeting=built/' /etc/corpus-hello/hello.conf\n\
                 RUN useradd --system --no-create-home hello && mkdir /srv/hello && chown hello /srv/hello\n\
                 USER hello\n\
                 CMD [\"corpus-hello\"]\n"
            ),
        ),
        (
            "corpus-hello/DEBIAN/control",
            0o644,
            "Package: corpus-hello\nVersion: 1.0\nArchitecture: all\n\
             Maintainer: monitor tests <tests@example.invalid>\n\
             Description: says hello (monitor's benign corpus)\n \
             A tiny package built and installed during an image build.\n",
        ),
        (
            "corpus-hello/DEBIAN/conffiles",
            0o644,
            "/etc/corpus-hello/hello.conf\n",
        ),
        (
            "corpus-hello/DEBIAN/postinst",
            0o755,
            "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n    \
             mkdir -p /var/lib/corpus-hello\n    \
             echo \"configured $(date -u +%Y-%m-%d)\" > /var/lib/corpus-hello/state\nfi\n",
        ),
        (
            "corpus-hello/usr/bin/corpus-hello",
            0o755,
            "#!/bin/sh\n# Prints the greeting of its config.\n\
             . /etc/corpus-hello/hello.conf\necho \"hello from corpus-hello ($greeting)\"\n",
        ),
        (
            "corpus-hello/etc/corpus-hello/hello.conf",
            0o644,
            "greeting=packaged\n",
        ),
    ];
    for (path, mode, text) in files {
        let target = dir.join(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(&target, text).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// The classic builder's intermediate containers ("---> Running in 0123456789ab"):
/// the ids the build's alerts carry.
fn build_container_ids(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("---> Running in "))
        .map(|id| id.trim().to_string())
        .collect()
}

fn field(alert: &Value, name: &str) -> String {
    match &alert["output_fields"][name] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A connection without its client port, so one health check repeated groups as one.
fn without_client_port(connection: &str) -> String {
    match connection.split_once("->") {
        Some((client, server)) => {
            let host = client.rsplit_once(':').map_or(client, |(host, _)| host);
            format!("{host}->{server}")
        }
        None => connection.to_string(),
    }
}

/// One entry per distinct alert (rule, container, process, parent, command line,
/// file or connection) with how often it came, its output fields and output text.
fn listing(alerts: &[(String, &Value)]) -> String {
    let mut groups: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (scenario, alert) in alerts {
        let parent = alert["ancestors"][0]["name"].as_str().unwrap_or("-");
        let key = format!(
            "[{scenario}: {}] {}\n    container={} repository={} tag={} proc={} parent={} \
             cmdline={} fd={}",
            describe(scenario),
            alert["rule"].as_str().unwrap_or("?"),
            field(alert, "container.name"),
            field(alert, "container.image.repository"),
            field(alert, "container.image.tag"),
            field(alert, "proc.name"),
            parent,
            field(alert, "proc.cmdline"),
            without_client_port(&field(alert, "fd.name")),
        );
        let detail = format!(
            "    fields: {}\n    output: {}",
            alert["output_fields"],
            alert["output"].as_str().unwrap_or("")
        );
        groups.entry(key).or_insert((0, detail)).0 += 1;
    }
    let mut text = String::new();
    for (key, (count, detail)) in groups {
        let _ = writeln!(text, "{key}  (x{count})\n{detail}");
    }
    text
}

/// Alerts of other tests' containers and the host: counted per container and rule.
fn summary(alerts: &[&Value]) -> String {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for alert in alerts {
        let key = (
            field(alert, "container.name"),
            alert["rule"].as_str().unwrap_or("?").to_string(),
        );
        *counts.entry(key).or_default() += 1;
    }
    let mut text = String::new();
    for ((container, rule), count) in counts {
        let _ = writeln!(text, "    {container}: {rule} (x{count})");
    }
    text
}

#[test]
fn the_default_rules_raise_nothing_on_the_benign_corpus() {
    let _serial = serial();
    corpus::ensure_image();
    let mut corpus = Corpus::new();
    let started = Instant::now();
    // As a deployment tunes it: the registry its images come from is allowed. That is
    // the only tuning; everything else is the default ruleset as shipped.
    let site = support::site_rules("benign", "");
    let monitor = Monitor::run(&["--rules", DEFAULT_RULES, "--rules", site.to_str().unwrap()]);
    let _ = std::fs::remove_file(&site);

    // The barrier's container, started now so its metadata is long known when its
    // marker event comes at the end.
    let marker = corpus.start("marker", &[], &["sleep", "infinity"]);

    // An app under an init and a supervisor: tini starts supervisord, which starts the
    // app (a shell entrypoint exec'ing Python, reading /etc/app/app.conf) and cron,
    // whose every-minute jobs write a report and run logrotate. Started first: its
    // cron jobs run at the next minute while the other scenarios go on.
    let app = corpus.start(
        "app",
        &[
            "--health-cmd",
            "busybox wget -q -O /dev/null http://127.0.0.1:8080/healthz",
            "--health-interval",
            "1s",
        ],
        &[
            "tini",
            "--",
            "supervisord",
            "--nodaemon",
            "--configuration",
            "/etc/supervisor/supervisord.conf",
        ],
    );
    // A web server with a Docker health check.
    let web = corpus.start(
        "web",
        &[
            "--health-cmd",
            "busybox wget -q -O /dev/null http://127.0.0.1/healthz",
            "--health-interval",
            "1s",
        ],
        &["busybox", "httpd", "-f", "-v", "-p", "80", "-h", "/srv/www"],
    );
    let db = corpus.start(
        "db",
        &["--user", "redis"],
        &["redis-server", "/etc/redis/corpus.conf"],
    );
    let sshd = corpus.start("sshd", &[], &["/usr/sbin/sshd", "-D", "-e"]);
    // A person's box on the same network: their shell, their keys, their tools.
    let workstation = corpus.start(
        "workstation",
        &["--user", USER, "--workdir", HOME],
        &["sleep", "infinity"],
    );

    // Health checks from another container, as a load balancer does.
    let probe_script = format!(
        "while :; do busybox wget -q -O - http://{web}/healthz \
         && busybox wget -q -O - http://{app}:8080/ && echo probe-ok; sleep 1; done"
    );
    let probe = corpus.start("probe", &[], &["sh", "-c", &probe_script]);

    wait_healthy(&web);
    wait_healthy(&app);
    wait_until(
        "the probe's health checks",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || contains_all(&logs(&probe), &["ok\nhello from the corpus app\nprobe-ok"]),
    );

    // redis over loopback, in its own container.
    wait_until(
        "redis to answer on loopback",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let out = Command::new("docker")
                .args(["exec", &db, "redis-cli", "ping"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            contains_all(&text, &["PONG"])
        },
    );
    assert_contains(
        "redis INFO over loopback",
        &exec(&db, &["redis-cli", "info", "server"]),
        &["redis_version:"],
    );

    // DNS lookups through Docker's embedded DNS, with libc and with Python.
    let web_ip = corpus.ip("web");
    let db_ip = corpus.ip("db");
    let app_ip = corpus.ip("app");
    assert_contains(
        "getent hosts",
        &exec(&workstation, &["getent", "hosts", &web]),
        &[&web_ip],
    );
    assert_contains(
        "getent ahosts",
        &exec(&workstation, &["getent", "ahosts", &db]),
        &[&db_ip],
    );
    let lookup = format!(
        "import socket; print(sorted({{a[4][0] for a in socket.getaddrinfo('{app}', 8080, \
         proto=socket.IPPROTO_TCP)}}))"
    );
    assert_contains(
        "python getaddrinfo",
        &exec(&workstation, &["python3", "-c", &lookup]),
        &[&app_ip],
    );

    // redis between two containers on the internal network.
    assert_eq!(
        exec(
            &workstation,
            &["redis-cli", "-h", &db, "set", "corpus:visits", "0"]
        ),
        "OK"
    );
    assert_eq!(
        exec(
            &workstation,
            &["redis-cli", "-h", &db, "incr", "corpus:visits"]
        ),
        "1"
    );
    assert_eq!(
        exec(
            &workstation,
            &["redis-cli", "-h", &db, "get", "corpus:visits"]
        ),
        "1"
    );

    // SSH logins with the user's key: a command, then a login shell without a tty.
    wait_until(
        "sshd to listen",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || contains_all(&logs(&sshd), &["Server listening on 0.0.0.0 port 22"]),
    );
    let target = format!("{USER}@{sshd}");
    let ssh = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
    ];
    let mut command = ssh.to_vec();
    command.extend([target.as_str(), "ls; cat notes.txt; id"]);
    assert_contains(
        "ssh command",
        &exec(&workstation, &command),
        &["notes.txt", "renew the TLS certificate", "uid=1000(alice)"],
    );
    let mut command = ssh.to_vec();
    command.extend(["-T", target.as_str()]);
    assert_contains(
        "ssh login shell",
        &exec_with_stdin(
            &workstation,
            &command,
            "echo \"shell=$0\"\ncd projects\nls\nhead -n 1 site/README.txt\nps -o pid,comm\nexit\n",
        ),
        &["shell=-bash", "scripts", "The corpus web site", "bash"],
    );

    // The user looking through their home.
    assert_contains(
        "find over the home",
        &exec(&workstation, &["bash", "-c", "find ~ -name '*.txt'"]),
        &[
            &format!("{HOME}/notes.txt"),
            &format!("{HOME}/documents/recipes.txt"),
        ],
    );
    assert_contains(
        "grep over the home",
        &exec(&workstation, &["bash", "-c", "grep -r TODO ~"]),
        &["renew the TLS certificate", "rotate old archives"],
    );

    // Debugging with docker exec, no tty.
    assert_contains("ps aux", &exec(&web, &["ps", "aux"]), &["httpd"]);
    assert_contains(
        "os-release",
        &exec(&web, &["cat", "/etc/os-release"]),
        &["bookworm"],
    );
    assert_contains("ls /proc", &exec(&web, &["ls", "/proc"]), &["self"]);
    assert_contains("env", &exec(&web, &["env"]), &["PATH="]);
    assert_contains(
        "supervisorctl status",
        &exec(&app, &["supervisorctl", "status"]),
        &["app ", "cron ", "RUNNING"],
    );
    assert_contains(
        "the app's config",
        &exec(&app, &["cat", "/etc/app/app.conf"]),
        &["port = 8080"],
    );

    // An image build installing a locally built package, offline, then its image run.
    write_build_context(&corpus.build_dir);
    let built = format!("monitor-test/corpus-built:{}", std::process::id());
    corpus.images.push(built.clone());
    let build = Command::new("docker")
        .args([
            "build",
            "--network",
            "none",
            "--rm",
            "--force-rm",
            "-t",
            &built,
        ])
        .arg(&corpus.build_dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    let build_log = String::from_utf8_lossy(&build.stdout).into_owned();
    assert!(
        build.status.success(),
        "docker build failed:\n{build_log}{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let build_ids = build_container_ids(&build_log);
    // The classic builder runs a container for each RUN step and creates one to
    // commit each of USER and CMD: 4 + 2.
    assert_eq!(
        build_ids.len(),
        6,
        "a container per step after COPY:\n{build_log}"
    );
    let built_name = corpus.name("built");
    corpus.containers.push(built_name.clone());
    assert_eq!(
        docker(&[
            "run",
            "--name",
            &built_name,
            "--network",
            &corpus.network,
            &built
        ]),
        "hello from corpus-hello (built)"
    );

    // cron's jobs: the report and logrotate (copytruncate for the access log; create
    // and a HUP the app answers by reopening its log).
    wait_until(
        "cron's report and logrotate's rotations",
        Duration::from_secs(150),
        Duration::from_secs(2),
        || {
            let state = exec(
                &app,
                &[
                    "sh",
                    "-c",
                    "cat /home/alice/app-report.log; ls /var/log/app; cat /var/log/app/app.log",
                ],
            );
            contains_all(
                &state,
                &[
                    "requests=",
                    "access.log.1",
                    "app.log.1",
                    "reopened log after SIGHUP",
                ],
            )
        },
    );

    // The barrier: an event that does raise an alert, after everything else. Once its
    // alert is out the daemon has processed what came before it.
    exec(&marker, &["cat", "/etc/shadow"]);
    monitor.wait_for_within("the barrier's alert", Duration::from_secs(30), |a| {
        a["rule"] == BARRIER_RULE && a["output_fields"]["container.name"] == marker.as_str()
    });
    thread::sleep(Duration::from_secs(1));
    let (alerts, totals) = monitor.stop();
    let elapsed = started.elapsed();

    let mut ours = Vec::new();
    let mut others = Vec::new();
    for alert in &alerts {
        match corpus.scenario_of(alert, &build_ids) {
            Some(role) if role == "marker" => {}
            Some(role) => ours.push((role, alert)),
            None => others.push(alert),
        }
    }
    let kinds = totals["kinds"].as_object().expect("totals by kind");
    let sum = |key: &str| -> u64 { kinds.values().map(|k| k[key].as_u64().unwrap_or(0)).sum() };
    let (events, dropped) = (sum("received"), sum("dropped"));
    eprintln!(
        "benign corpus: {events} events (host-wide), {} alerts in {:.0} s ({} build containers: {})",
        ours.len(),
        elapsed.as_secs_f64(),
        build_ids.len(),
        build_ids.join(" ")
    );
    if !others.is_empty() {
        eprintln!(
            "alerts from outside the corpus (the host, other tests), not counted:\n{}",
            summary(&others)
        );
    }
    assert!(
        ours.is_empty(),
        "the default rules raised {} alerts on the benign corpus:\n{}",
        ours.len(),
        listing(&ours)
    );
    assert_eq!(
        dropped, 0,
        "the kernel dropped events, so `no alert` proves nothing: {totals}"
    );
}
