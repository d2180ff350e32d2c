//! The daemon end to end: `monitor run` with the default ruleset (`rules/`), the real
//! kernel and real containers. Each scenario must raise the expected rule with the
//! container's name and image in the alert, and a benign workload must raise nothing.
mod support;

use std::{process::Command, time::Duration};

use serde_json::Value;
use support::{
    Monitor,
    docker::{self, Cleanup, IMAGE, docker},
    serial,
};

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");

fn unique(name: &str) -> String {
    format!("monitor-rules-{name}-{}", std::process::id())
}

/// The default ruleset plus a site file, as a user would tune it without editing the
/// defaults: the locally built test image's namespace is an allowed registry.
fn daemon() -> Monitor {
    daemon_with("", &[])
}

/// [`daemon`] with more of the site's own tuning after the registry, and more flags.
fn daemon_with(more_tuning: &str, flags: &[&str]) -> Monitor {
    let site = support::site_rules("rules", more_tuning);
    let mut args = vec!["--rules", DEFAULT_RULES, "--rules", site.to_str().unwrap()];
    args.extend_from_slice(flags);
    Monitor::run(&args)
}

fn alert_for(monitor: &Monitor, rule: &str, container: &str) -> Value {
    monitor.wait_for_within(
        &format!("{rule} in {container}"),
        Duration::from_secs(15),
        |a| a["rule"] == rule && a["output_fields"]["container.name"] == container,
    )
}

fn assert_falco_shape(alert: &Value, container: &str) {
    for key in [
        "time",
        "rule",
        "priority",
        "source",
        "hostname",
        "output",
        "tags",
        "output_fields",
    ] {
        assert!(!alert[key].is_null(), "alert lacks `{key}`: {alert}");
    }
    assert_eq!(alert["source"], "syscall");
    assert_eq!(alert["output_fields"]["container.image"], IMAGE);
    let output = alert["output"].as_str().unwrap();
    assert!(output.contains(container), "{output}");
    assert!(output.contains(IMAGE), "{output}");
}

#[test]
fn interactive_shell_from_docker_exec_it_raises_an_alert() {
    let _serial = serial();
    docker::ensure_image();
    let name = unique("tty");
    let _cleanup = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "300"]);
    let monitor = daemon();
    docker::exec_in_terminal(&name, "sleep 1");
    let alert = alert_for(&monitor, "Interactive shell in container", &name);
    monitor.stop();
    assert_falco_shape(&alert, &name);
    assert_eq!(alert["output_fields"]["proc.name"], "sh");
    assert_ne!(alert["output_fields"]["proc.tty"], 0);
}

#[test]
fn reading_etc_shadow_in_a_container_raises_an_alert() {
    let _serial = serial();
    docker::ensure_image();
    let name = unique("shadow");
    let _cleanup = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "300"]);
    let monitor = daemon();
    docker(&["exec", &name, "cat", "/etc/shadow"]);
    let alert = alert_for(&monitor, "Password database read in container", &name);
    monitor.stop();
    assert_falco_shape(&alert, &name);
    assert_eq!(alert["output_fields"]["fd.name"], "/etc/shadow");
}

/// 1,000 reads of /etc/shadow by one process in a container, watched at once by three
/// daemons: with `--aggregate-window` one alert and one summary with the count; without
/// it every alert; with a rate limit instead, alerts and the suppressed count make
/// 1,000.
#[test]
fn a_thousand_identical_alerts_become_one_alert_and_a_summary_with_aggregation() {
    const READS: u64 = 1000;
    const RULE: &str = "Password database read in container";
    const WINDOW_SECS: u64 = 20;
    let _serial = serial();
    docker::ensure_image();
    let name = unique("flood");
    let _cleanup = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "300"]);
    support::attack::install(&name, &["reader"]);
    let window = WINDOW_SECS.to_string();
    let aggregating = daemon_with("", &["--aggregate-window", &window]);
    let every = daemon();
    let limited = daemon_with("", &["--rate-limit", "0.001", "--rate-limit-burst", "10"]);

    // Well within the window: one process, a loop of open-read-close.
    let started = std::time::Instant::now();
    docker(&[
        "exec",
        &name,
        "/tmp/reader",
        "open-many",
        &READS.to_string(),
        "/etc/shadow",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(WINDOW_SECS / 2),
        "the reads took {:?}, too close to the window",
        started.elapsed()
    );
    let ours =
        |a: &Value| a["rule"] == RULE && a["output_fields"]["container.name"] == name.as_str();

    // Without aggregation: every alert, and no more.
    let wait_count = |monitor: &Monitor, count: usize| {
        let seen = monitor.wait_for_count(count, ours);
        assert!(seen >= count, "{seen} alerts, fewer than {count}");
    };
    wait_count(&every, READS as usize);
    let every = every.finish(libc::SIGINT);
    let alerts: Vec<&Value> = every.events.iter().filter(|a| ours(a)).collect();
    assert_eq!(alerts.len() as u64, READS);
    assert!(alerts.iter().all(|a| a.get("aggregated").is_none()));

    // A rate limit instead: the burst, and the rest counted in its summary.
    wait_count(&limited, 10);
    let limited = limited.finish(libc::SIGINT);
    let sent = limited.events.iter().filter(|a| ours(a)).count() as u64;
    let suppressed: u64 = limited
        .events
        .iter()
        .filter(|a| a["output_fields"]["monitor.suppressed_rule"] == RULE)
        .map(|a| a["output_fields"]["monitor.suppressed"].as_u64().unwrap())
        .sum();
    assert_eq!((sent, sent + suppressed), (10, READS));

    // With aggregation: the first alert at once, the summary when the window ends
    // (by its timer: nothing else happens meanwhile).
    let summary = aggregating.wait_for_within(
        "the aggregation summary",
        Duration::from_secs(WINDOW_SECS + 30),
        |a| ours(a) && !a["aggregated"].is_null(),
    );
    let aggregating = aggregating.finish(libc::SIGINT);
    let alerts: Vec<&Value> = aggregating.events.iter().filter(|a| ours(a)).collect();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let first = alerts[0];
    assert!(first.get("aggregated").is_none(), "{first}");
    assert_falco_shape(first, &name);
    assert_falco_shape(&summary, &name);
    assert_eq!(*alerts[1], summary);
    let aggregated = &summary["aggregated"];
    assert_eq!(aggregated["count"], READS);
    assert_eq!(aggregated["first"], first["time"]);
    assert_eq!(aggregated["last"], summary["time"]);
    assert_eq!(aggregated["window_s"], WINDOW_SECS as f64);
    assert_eq!(summary["output_fields"]["monitor.aggregated"], READS);
    assert_eq!(summary["output_fields"]["fd.name"], "/etc/shadow");
    assert_eq!(summary["output_fields"]["proc.name"], "reader");
    assert!(
        summary["output"].as_str().unwrap().ends_with(&format!(
            "({READS} times between {} and {})",
            first["time"].as_str().unwrap(),
            summary["time"].as_str().unwrap()
        )),
        "{summary}"
    );
}

#[test]
fn connect_to_a_port_outside_the_allowlist_on_a_watched_network_raises_an_alert() {
    let _serial = serial();
    docker::ensure_image();
    let network = unique("net");
    let server = unique("server");
    let client = unique("client");
    let _cleanup = Cleanup(vec![server.clone(), client.clone()]);
    // An internal network: the two containers reach each other and nothing else.
    docker(&["network", "create", "--internal", &network]);
    struct RemoveNetwork(String);
    impl Drop for RemoveNetwork {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args(["network", "rm", &self.0])
                .status();
        }
    }
    let _network = RemoveNetwork(network.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &server,
        "--network",
        &network,
        IMAGE,
        "nc",
        "-ll",
        "-p",
        "8081",
        "-e",
        "/bin/true",
    ]);
    let server_ip = docker(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &server,
    ]);
    docker(&[
        "run",
        "-d",
        "--name",
        &client,
        "--network",
        &network,
        IMAGE,
        "sleep",
        "300",
    ]);
    // A site that watches east-west traffic too: by default the private ranges are
    // allowed, where containers reach their databases and each other every day.
    let monitor = daemon_with(
        "- list: allowed_outbound_networks\n  items: []\n  override:\n    items: replace\n",
        &[],
    );
    docker(&[
        "exec",
        &client,
        "sh",
        "-c",
        &format!("echo hi | nc -w 1 {server_ip} 8081; true"),
    ]);
    let alert = alert_for(
        &monitor,
        "Unexpected outbound connection from container",
        &client,
    );
    monitor.stop();
    assert_falco_shape(&alert, &client);
    assert_eq!(alert["output_fields"]["fd.sport"], 8081);
    assert_eq!(alert["output_fields"]["fd.sip"], server_ip.as_str());
}

#[test]
fn a_benign_container_workload_raises_nothing() {
    let _serial = serial();
    docker::ensure_image();
    let name = unique("benign");
    let _cleanup = Cleanup(vec![name.clone()]);
    let monitor = daemon();
    docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "300"]);
    for command in [
        vec!["cat", "/etc/hostname"],
        vec!["ls", "/"],
        vec!["cat", "/etc/passwd"],
        vec!["echo", "hello"],
        vec!["sleep", "0.2"],
    ] {
        let mut args = vec!["exec", name.as_str()];
        args.extend(command);
        docker(&args);
    }
    // A marker the daemon must see, so "no alert" is not just "not looked yet".
    docker(&["exec", &name, "cat", "/etc/shadow"]);
    alert_for(&monitor, "Password database read in container", &name);
    let (alerts, _) = monitor.stop();
    let ours: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["output_fields"]["container.name"] == name.as_str())
        .filter(|a| a["rule"] != "Password database read in container")
        .collect();
    assert!(ours.is_empty(), "benign workload raised: {ours:#?}");
}

#[test]
fn invalid_rules_keep_the_daemon_from_starting() {
    let bad = std::env::temp_dir().join(format!("monitor-bad-{}.yaml", std::process::id()));
    std::fs::write(
        &bad,
        "- rule: r\n  desc: d\n  condition: proc.name = bash and proc.nope = 1\n  output: o\n  priority: WARNING\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["run", "--rules", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid rules, not starting"), "{stderr}");
    let located = format!(
        "{}:3:35: rule 'r': unknown field 'proc.nope'",
        bad.display()
    );
    assert!(stderr.contains(&located), "{stderr}");
}

/// A copy of a host program under a name of this test's, so its alerts on the host
/// are told apart from everything else the host does meanwhile.
fn host_tool(program: &str) -> (std::path::PathBuf, String) {
    let name = format!("mkf{}{program}", std::process::id() % 10_000);
    let path = std::env::temp_dir().join(&name);
    std::fs::copy(format!("/bin/{program}"), &path).unwrap();
    (path, name)
}

/// The kernel filter changes no alert: the same workload, watched at once by a daemon
/// that filters in the kernel and one that does not (`--no-kernel-filter`), raises the
/// same alerts in both, with the default rules and with Falco's stable rules; and the
/// filtering daemon's kernel counters show it did drop events.
#[test]
fn the_kernel_filter_raises_the_same_alerts_as_no_filter() {
    let _serial = serial();
    docker::ensure_image();
    let name = unique("filter");
    let _cleanup = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "300"]);
    let (cat, cat_name) = host_tool("cat");
    let falco = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/falco-rules/falco_rules.yaml"
    );
    let site = support::site_rules("kf", "");
    let default_rules = ["--rules", DEFAULT_RULES, "--rules", site.to_str().unwrap()];
    for rules in [&default_rules[..], &["--rules", falco][..]] {
        let filtered = Monitor::run(rules);
        let mut unfiltered_args = rules.to_vec();
        unfiltered_args.push("--no-kernel-filter");
        let unfiltered = Monitor::run(&unfiltered_args);
        let applet = |args: &[&str]| {
            let status = Command::new(&cat).args(args).output().unwrap().status;
            assert!(status.success(), "{cat_name} {args:?}");
        };
        // On the host: reads no default rule looks at (but Falco's do), a failed open.
        applet(&["/etc/shadow"]);
        applet(&["/etc/hostname"]);
        let _ = Command::new(&cat).arg("/nonexistent").output();
        // In the container: sensitive reads, a write below /etc, a loopback connect.
        for script in [
            "cat /etc/shadow; cat /etc/hostname; cat /nonexistent; true",
            "echo x > /etc/monitor-filter-test",
            "nc -w 1 127.0.0.1 9 </dev/null; true",
        ] {
            docker(&["exec", &name, "sh", "-c", script]);
        }
        // The marker both must have seen before they stop.
        docker(&["exec", &name, "cat", "/etc/shadow"]);
        // The default rules: the marker's is the second shadow read in the container.
        let marker = |m: &Monitor| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while m
                .events()
                .iter()
                .filter(|a| {
                    a["rule"] == "Password database read in container"
                        && a["output_fields"]["container.name"] == name.as_str()
                })
                .count()
                < 2
            {
                assert!(std::time::Instant::now() < deadline, "no marker alert");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        // Falco's rules name neither the container nor the command line the same way.
        let ours = |alerts: &[Value]| {
            let mut out: Vec<String> = alerts
                .iter()
                .filter(|a| {
                    a["output_fields"]["container.name"] == name.as_str()
                        || a["output_fields"]["proc.name"] == cat_name.as_str()
                        || a["output"]
                            .as_str()
                            .is_some_and(|o| o.contains(&name) || o.contains(&cat_name))
                })
                .map(|a| format!("{} | {}", a["rule"], a["output"]))
                .map(|s| {
                    // Times differ between the two daemons' alerts, and so may the
                    // grandparents of a `docker exec`'s first process: runc's init
                    // becomes that process, and whether a daemon still saw runc as
                    // its parent depends on when it looked.
                    s.split_whitespace()
                        .filter(|w| {
                            !w.starts_with("20")
                                && !w.contains("time=")
                                && !w.starts_with("gparent=")
                                && !w.starts_with("ggparent=")
                                && !w.starts_with("gggparent=")
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            out.sort();
            out
        };
        let default_rules = rules.len() > 2;
        if default_rules {
            marker(&filtered);
            marker(&unfiltered);
        } else {
            // Falco's rules have no marker of ours; both daemons poll every
            // millisecond, so this is ample.
            std::thread::sleep(Duration::from_secs(2));
        }
        let (with_filter, totals) = filtered.stop();
        let (without_filter, plain_totals) = unfiltered.stop();
        let (a, b) = (ours(&with_filter), ours(&without_filter));
        assert!(!b.is_empty(), "{rules:?}: the workload raised nothing");
        assert_eq!(a, b, "{rules:?}: alerts differ with the kernel filter");
        // Host reads and failed opens are dropped in the kernel under both rulesets
        // (no rule of either names /etc/hostname); the default rules drop the
        // loopback connect too.
        let dropped_kinds: &[&str] = if default_rules {
            &["open", "connect"]
        } else {
            &["open"]
        };
        for kind in dropped_kinds {
            let n = totals["kinds"][kind]["filtered"].as_u64().unwrap();
            assert!(n > 0, "{rules:?}: {kind}: nothing filtered: {totals}");
        }
        assert_eq!(
            plain_totals["kinds"]["open"]["filtered"], 0,
            "{plain_totals}"
        );
        assert_eq!(
            plain_totals["kinds"]["connect"]["filtered"], 0,
            "{plain_totals}"
        );
        for kind in ["open", "connect", "exec"] {
            assert_eq!(
                totals["kinds"][kind]["sent"], totals["kinds"][kind]["received"],
                "{totals}"
            );
        }
    }
    let _ = std::fs::remove_file(cat);
}

/// A reload from rules that let the kernel drop host reads to rules that watch one
/// takes effect at once, and loses nothing.
#[test]
fn a_reload_widens_the_kernel_filter_without_a_restart() {
    let _serial = serial();
    let (cat, cat_name) = host_tool("cat");
    let rules = std::env::temp_dir().join(format!("monitor-kf-reload-{}.yaml", std::process::id()));
    let container_only = "- rule: container hostname read\n  desc: d\n  condition: evt.type = openat and container.id != host and fd.name = /etc/hostname\n  output: read %fd.name by %proc.name\n  priority: WARNING\n";
    std::fs::write(&rules, container_only).unwrap();
    let monitor = Monitor::run(&["--rules", rules.to_str().unwrap(), "--no-docker"]);
    let read = || {
        assert!(
            Command::new(&cat)
                .arg("/etc/hostname")
                .output()
                .unwrap()
                .status
                .success()
        )
    };
    read();
    let host_rule = format!(
        "- rule: host hostname read\n  desc: d\n  condition: evt.type = openat and container.id = host and fd.name = /etc/hostname and proc.name = {cat_name}\n  output: read %fd.name by %proc.name\n  priority: WARNING\n"
    );
    std::fs::write(&rules, host_rule).unwrap();
    monitor.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while monitor
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("kernel filter installed"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload installed no filter"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    read();
    let alert = monitor.wait_for_within("host read after reload", Duration::from_secs(10), |a| {
        a["rule"] == "host hostname read"
    });
    assert_eq!(alert["output_fields"]["fd.name"], "/etc/hostname");
    assert_eq!(alert["output_fields"]["proc.name"], cat_name.as_str());
    let (alerts, totals) = monitor.stop();
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["rule"] == "host hostname read")
            .count(),
        1,
        "only the read after the reload: {alerts:#?}"
    );
    assert!(
        totals["kinds"]["open"]["filtered"].as_u64().unwrap() > 0,
        "{totals}"
    );
    assert_eq!(
        totals["kinds"]["open"]["sent"],
        totals["kinds"]["open"]["received"]
    );
    let _ = std::fs::remove_file(cat);
}
