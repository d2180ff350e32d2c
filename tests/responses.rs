//! Responses on the real kernel with real containers: a dry-run kill that only says
//! what it would do, an enforced kill of the process that read the password
//! database (from user space: the default rule checks process names the kernel
//! cannot), an enforced kill in the kernel of a process that opened a file a rule
//! the kernel decides exactly names (it prints nothing), an exempt process spared by
//! the kernel, host processes untouched, the kill switch honoured on reload without
//! a restart, the metrics, and nothing acting once the agent has stopped. A deny
//! at the cgroup refuses a container's connect to a forbidden destination before a
//! packet leaves, and lets an allowed one and the host's through. One daemon for all
//! of it.
mod support;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    Monitor, docker,
    netns::{self, Netns},
    serial,
};

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
const RULE: &str = "Password database read in container";
/// A rule on facts the kernel reads (container scope, syscall, access mode, file
/// type, result, whole path), so its kill response gets the kernel point.
const KERNEL_RULE: &str = "Test secret read in container";
const SECRET: &str = "/tmp/monitor-kernel-kill-test";

fn kernel_rule() -> String {
    format!(
        "\
- rule: {KERNEL_RULE}
  desc: a container read the test's secret file
  condition: >
    evt.type in (open, openat, openat2) and evt.is_open_read = true and fd.typechar = f
    and fd.num >= 0 and container.id != host and fd.name = {SECRET}
  output: test secret read (file=%fd.name proc=%proc.name)
  priority: WARNING
  tags: [test]
- response: Stop secret reads
  rules: [{KERNEL_RULE}]
  action: kill
  mode: enforce
"
    )
}

/// A rule on facts the cgroup programs read (container scope, IP destination and
/// port), so its deny response gets the cgroup point.
const DENY_RULE: &str = "Test forbidden destination from container";
const FORBIDDEN_PORT: u16 = 8080;
const ALLOWED_PORT: u16 = 8081;

fn deny_rule() -> String {
    format!(
        "\
- rule: {DENY_RULE}
  desc: a container connected to the test's forbidden destination
  condition: >
    evt.type = connect and container.id != host and fd.sip = {peer}
    and fd.sport = {FORBIDDEN_PORT}
  output: forbidden destination (connection=%fd.name proc=%proc.name)
  priority: WARNING
  tags: [test]
- response: Refuse forbidden destination
  rules: [{DENY_RULE}]
  action: deny
  mode: enforce
",
        peer = netns::PEER_IP
    )
}

/// `nc` from inside `container` to the namespace's `port`: the exit status and what
/// nc said.
fn connect_from(container: &str, port: u16) -> (i32, String) {
    let output = Command::new("docker")
        .args(["exec", container, "nc", "-w", "2", netns::PEER_IP])
        .arg(port.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("docker exec");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The settings file the test switches enforcement with.
fn settings(enforce: bool) -> String {
    format!("responses:\n  enforce: {enforce}\n  exempt_processes: [head]\n")
}

/// `docker exec NAME sh -c SCRIPT`: the exit status and what it printed.
fn exec_output(container: &str, script: &str) -> (i32, String) {
    let output = Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .expect("docker exec");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The exit status of `docker exec NAME sh -c SCRIPT`, and how long it took.
fn exec_status(container: &str, script: &str) -> (i32, Duration) {
    let started = Instant::now();
    let status = Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .status()
        .expect("docker exec");
    (status.code().unwrap_or(-1), started.elapsed())
}

/// `text` as a responses file of its own; its path.
fn responses_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = support::receivers::temp_dir(name).join("responses.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `response` of the alert of `rule` in `container` whose response's `key` is
/// `value` (waiting for it).
fn response_of(monitor: &Monitor, rule: &str, container: &str, key: &str, value: &str) -> Value {
    let alert = monitor.wait_for(&format!("{rule} in {container} ({key} {value})"), |a| {
        a["rule"] == rule
            && a["output_fields"]["container.name"] == container
            && a["response"][key] == value
    });
    alert["response"].clone()
}

#[test]
fn dry_run_says_what_it_would_do_and_enforce_kills_and_denies_until_the_kill_switch() {
    let _serial = serial();
    docker::ensure_image();
    let tag = std::process::id();
    let (dry, enforced) = (format!("resp-dry-{tag}"), format!("resp-kill-{tag}"));
    let _cleanup = docker::Cleanup(vec![dry.clone(), enforced.clone()]);
    for name in [&dry, &enforced] {
        docker::docker(&["run", "-d", "--name", name, docker::IMAGE, "sleep", "600"]);
    }
    let responses = responses_file(
        "responses",
        &format!(
            "\
- response: Watch credential theft
  rules: [{RULE}]
  action: kill
  scope: container.name = {dry}
- response: Stop credential theft
  tags: [mitre_credential_access]
  action: kill
  mode: enforce
  scope: container.name = {enforced}
{}{}",
            kernel_rule(),
            deny_rule()
        ),
    );
    let mut peer = Netns::create(&format!("monitor-resp-{tag}"));
    peer.serve(FORBIDDEN_PORT);
    peer.serve(ALLOWED_PORT);
    let dir = responses.parent().expect("a temporary directory");
    let config = dir.join("monitor.yaml");
    std::fs::write(&config, settings(true)).unwrap();
    let monitor = Monitor::run(&[
        "--config",
        config.to_str().unwrap(),
        "--rules",
        DEFAULT_RULES,
        "--rules",
        responses.to_str().unwrap(),
    ]);
    monitor.wait_for_log("4 responses active (3 enforcing); enforcement on");
    monitor.wait_for_log(&format!(
        "1 in-kernel kill slots installed ('Stop secret reads' on '{KERNEL_RULE}')"
    ));
    monitor.wait_for_log(&format!(
        "1 in-kernel deny slots installed ('Refuse forbidden destination' on '{DENY_RULE}')"
    ));

    // Dry-run: the read happens, the alert says what would have been done.
    let output = docker::docker(&["exec", &dry, "cat", "/etc/shadow"]);
    assert!(output.starts_with("root:"), "the read succeeded: {output}");
    let response = response_of(&monitor, RULE, &dry, "mode", "dry-run");
    assert_eq!(
        response,
        serde_json::json!({"name": "Watch credential theft", "action": "kill",
            "mode": "dry-run", "point": "user-space", "outcome": "would-kill"})
    );

    // Enforced: the shell that opened the file dies by SIGKILL long before its sleep
    // ends (docker exec reports 128 + 9).
    let (status, took) = exec_status(&enforced, "exec 3</etc/shadow; sleep 20");
    assert_eq!(status, 137, "killed by SIGKILL (took {took:?})");
    assert!(took < Duration::from_secs(15), "killed at once: {took:?}");
    let response = response_of(&monitor, RULE, &enforced, "mode", "enforce");
    assert_eq!(response["name"], "Stop credential theft");
    assert_eq!(response["point"], "user-space");
    assert_eq!(response["outcome"], "killed", "{response}");
    let metrics = monitor.metrics();
    assert!(
        metrics.contains(
            "monitor_response_actions_total{response=\"Stop credential theft\",point=\"user-space\",outcome=\"killed\"} 1"
        ),
        "{metrics}"
    );

    // Enforced in the kernel: `cat` dies as its open returns, before it reads a byte.
    let (status, _) = exec_output(&enforced, &format!("echo s3cret > {SECRET}"));
    assert_eq!(status, 0, "writing the secret is no read");
    let (status, printed) = exec_output(&enforced, &format!("cat {SECRET}"));
    assert_eq!(
        (status, printed.as_str()),
        (137, ""),
        "killed, nothing read"
    );
    let response = response_of(&monitor, KERNEL_RULE, &enforced, "outcome", "killed");
    assert_eq!(
        response,
        serde_json::json!({"name": "Stop secret reads", "action": "kill", "mode": "enforce",
            "point": "kernel", "outcome": "killed",
            "reason": "killed in the kernel as the open returned: the process ran no further \
                instruction"})
    );
    // A process the settings exempt reads it; so does the host, which the rule's
    // scope leaves out.
    // The image's busybox has `head` as an applet, and no link for it.
    let (status, printed) = exec_output(
        &enforced,
        &format!("busybox ln -sf /bin/busybox /tmp/head && /tmp/head {SECRET}"),
    );
    assert_eq!((status, printed.as_str()), (0, "s3cret\n"), "spared");
    let response = response_of(&monitor, KERNEL_RULE, &enforced, "outcome", "exempt");
    assert_eq!(response["point"], "kernel", "{response}");
    std::fs::write(SECRET, "host\n").unwrap();
    let host = Command::new("cat").arg(SECRET).output().unwrap();
    assert_eq!(
        (host.status.code(), host.stdout.as_slice()),
        (Some(0), &b"host\n"[..]),
        "the host is out of the rule's scope"
    );
    let _ = std::fs::remove_file(SECRET);
    let metrics = monitor.metrics();
    // Each response's point per rule, before and whatever the matches.
    for line in [
        "monitor_response_rules{response=\"Stop secret reads\",point=\"kernel\"} 1",
        "monitor_response_rules{response=\"Watch credential theft\",point=\"user-space\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    assert!(
        metrics.contains(
            "monitor_response_actions_total{response=\"Stop secret reads\",point=\"kernel\",outcome=\"killed\"} 1"
        ),
        "{metrics}"
    );

    // Denied at the cgroup: the connect fails with EPERM and not one packet reaches
    // the namespace; the allowed port and the host's connect go through.
    let received = peer.ipv4_received();
    let (status, said) = connect_from(&enforced, FORBIDDEN_PORT);
    assert_eq!(status, 1, "{said}");
    assert!(said.contains("Operation not permitted"), "EPERM: {said}");
    assert_eq!(peer.ipv4_received(), received, "no SYN left the container");
    let response = response_of(&monitor, DENY_RULE, &enforced, "outcome", "denied");
    assert_eq!(
        response,
        serde_json::json!({"name": "Refuse forbidden destination", "action": "deny",
            "mode": "enforce", "point": "cgroup", "outcome": "denied",
            "reason": "refused in the kernel before the connect: it failed with EPERM and no \
                packet left"})
    );
    let (status, said) = connect_from(&enforced, ALLOWED_PORT);
    assert_eq!(status, 0, "an allowed destination: {said}");
    assert!(
        peer.ipv4_received() > received,
        "the allowed connect arrived"
    );
    let host = Command::new("busybox")
        .args(["nc", "-w", "2", netns::PEER_IP, &FORBIDDEN_PORT.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        host.status.code(),
        Some(0),
        "the host is out of scope: {host:?}"
    );
    let metrics = monitor.metrics();
    for line in [
        "monitor_response_rules{response=\"Refuse forbidden destination\",point=\"cgroup\"} 1",
        "monitor_response_actions_total{response=\"Refuse forbidden destination\",point=\"cgroup\",outcome=\"denied\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }

    // The kill switch, by the settings file and a reload: the same read now only
    // says would-kill, and the shell lives on.
    std::fs::write(&config, settings(false)).unwrap();
    monitor.signal(libc::SIGHUP);
    monitor.wait_for_log("enforcement off: every response runs as dry-run");
    let (status, _) = exec_status(&enforced, "exec 3</etc/shadow; sleep 1");
    assert_eq!(status, 0, "not killed with enforcement off");
    let response = response_of(&monitor, RULE, &enforced, "mode", "dry-run");
    assert_eq!(response["outcome"], "would-kill", "{response}");
    assert_eq!(
        response["reason"],
        "enforcement is off (--no-enforce or responses.enforce: false)"
    );
    // The kernel's slots are emptied too: the secret is read, and would have been
    // killed at the kernel point.
    let (status, printed) = exec_output(&enforced, &format!("cat {SECRET}"));
    assert_eq!(
        (status, printed.as_str()),
        (0, "s3cret\n"),
        "enforcement off"
    );
    let response = response_of(&monitor, KERNEL_RULE, &enforced, "outcome", "would-kill");
    assert_eq!(response["point"], "kernel", "{response}");
    let (status, said) = connect_from(&enforced, FORBIDDEN_PORT);
    assert_eq!(status, 0, "enforcement off: {said}");
    let response = response_of(&monitor, DENY_RULE, &enforced, "outcome", "would-deny");
    assert_eq!(response["point"], "cgroup", "{response}");

    // On again by the same road; then the agent stops, and with it goes every
    // response (fail-open).
    std::fs::write(&config, settings(true)).unwrap();
    monitor.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(15);
    while monitor
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("enforcement on"))
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "no reload with enforcement on");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, _) = exec_status(&enforced, "exec 3</etc/shadow; sleep 20");
    assert_eq!(status, 137, "killed again once enforcement is back");
    let (status, said) = connect_from(&enforced, FORBIDDEN_PORT);
    assert_eq!(status, 1, "denied again once enforcement is back: {said}");
    let (_, totals) = monitor.stop();
    assert!(totals.is_object());
    let (status, _) = exec_status(&enforced, "exec 3</etc/shadow; sleep 1");
    assert_eq!(status, 0, "nothing kills once the agent has stopped");
    let (status, printed) = exec_output(&enforced, &format!("cat {SECRET}"));
    assert_eq!(
        (status, printed.as_str()),
        (0, "s3cret\n"),
        "the kernel's kills went with the agent"
    );
    let (status, said) = connect_from(&enforced, FORBIDDEN_PORT);
    assert_eq!(status, 0, "the denies went with the agent: {said}");
}

#[test]
fn rules_list_shows_each_response_and_its_point() {
    let responses = responses_file(
        "responses-list",
        &format!(
            "\
- response: Stop credential theft
  rules: [{RULE}]
  action: kill
  mode: enforce
- response: Refuse credential theft
  rules: [{RULE}]
  action: deny
  mode: enforce
"
        ),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["rules", "list", "--responses", DEFAULT_RULES])
        .arg(&responses)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let listing = &text[text.find("\nresponses (2):").expect("a responses section")..];
    let file = responses.display();
    assert_eq!(
        listing.trim(),
        format!(
            "responses (2):
Stop credential theft ({file}:1)
  kill enforce
  rule: {RULE}
    point user-space: the kernel cannot decide `proc.name`
Refuse credential theft ({file}:5)
  deny enforce
  rule: {RULE}
    unsupported: deny has no point for this rule: response 'Stop credential theft' comes \
first for this rule, and the kernel cannot tell which of the two takes a match"
        )
    );
    // A rule the kernel decides exactly gets the kernel point; a connect rule it
    // decides exactly, the cgroup point for a deny; a deny of opens, no point.
    let kernel = responses_file(
        "responses-list-kernel",
        &format!(
            "{}{}{}",
            kernel_rule(),
            deny_rule(),
            "\
- rule: Test open to refuse
  desc: an open, which no cgroup program sees
  condition: evt.type = openat and fd.name = /tmp/refused
  output: refused open (file=%fd.name)
  priority: WARNING
- response: Refuse opens
  rules: [Test open to refuse]
  action: deny
"
        ),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["rules", "list", "--responses"])
        .arg(&kernel)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in [
        format!(
            "  rule: {KERNEL_RULE}\n    point kernel: {}",
            monitor::responses::WHY_KERNEL
        ),
        format!(
            "  rule: {DENY_RULE}\n    point cgroup: {}",
            monitor::responses::WHY_CGROUP
        ),
        "  rule: Test open to refuse\n    unsupported: deny has no point for this rule: the \
         rule also matches openat events: deny acts at connects (cgroup programs); opens and \
         execs need the bpf LSM, which this agent does not attach yet"
            .to_string(),
    ] {
        assert!(text.contains(&expected), "{expected}\n---\n{text}");
    }
}

#[test]
fn replay_says_what_each_response_would_do() {
    let responses = responses_file(
        "responses-replay",
        &format!(
            "\
- response: Stop credential theft
  rules: [{RULE}]
  action: kill
  mode: enforce
  scope: container.name = shop
"
        ),
    );
    let dir = responses.parent().expect("a temporary directory");
    let event = |container: &str| {
        serde_json::json!({"kind": "open", "time": "2025-03-01T12:00:00.000000000Z",
            "boot_ns": 1, "pid": 5, "tid": 5, "comm": "cat", "cgroup_id": 1,
            "syscall": "openat", "path": "/etc/shadow", "resolved_path": "/etc/shadow",
            "dirfd": -100, "flags": 0, "mode": 0, "result": 3, "fd": 3, "error": null,
            "uid": 0, "process": {"pid": 5, "name": "cat", "exepath": "/bin/cat",
            "exec_id": "e1"}, "container": {"id": "abc", "name": container}})
    };
    let events = dir.join("events.jsonl");
    std::fs::write(&events, format!("{}\n{}\n", event("shop"), event("web"))).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .arg("replay")
        .arg(&events)
        .args(["--hostname", "n1", "--rules", DEFAULT_RULES, "--rules"])
        .arg(&responses)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let alerts: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|a: &Value| a["rule"] == RULE)
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(
        alerts[0]["response"],
        serde_json::json!({"name": "Stop credential theft", "action": "kill",
            "mode": "dry-run", "point": "user-space", "outcome": "would-kill",
            "reason": monitor::responses::REPLAY_ACTS_ON_NOTHING})
    );
    assert!(
        alerts[1].get("response").is_none(),
        "out of scope: {}",
        alerts[1]
    );
}
