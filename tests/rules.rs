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
    let site = std::env::temp_dir().join(format!("monitor-site-{}.yaml", std::process::id()));
    std::fs::write(
        &site,
        "- list: allowed_image_registries\n  items: [monitor-test]\n  override:\n    items: append\n",
    )
    .unwrap();
    Monitor::run(&["--rules", DEFAULT_RULES, "--rules", site.to_str().unwrap()])
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

#[test]
fn connect_to_a_port_outside_the_allowlist_raises_an_alert() {
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
    let monitor = daemon();
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
