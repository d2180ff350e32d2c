//! Running the daemon as operators do: the operations endpoint (/metrics parsed as
//! Prometheus text, /healthz, /readyz) moving with real events, matches and kernel
//! drops; SIGHUP and watched reloads with broken and fixed rule files; hostile argv
//! through every output; alerts kept across an HTTP outage and a daemon restart;
//! SIGTERM ending cleanly. Real kernel, real rsyslogd, a real HTTP receiver.
mod support;

use std::{
    collections::HashMap,
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::Duration,
};

use serde_json::Value;
use support::{
    Monitor,
    receivers::{Receiver, Rsyslog, temp_dir},
    serial, wait_until,
};

/// A rule that fires on opens below `dir`, so the test decides exactly how often.
fn marker_rule(name: &str, dir: &Path) -> String {
    format!(
        "- rule: {name}\n  desc: a file below the test's folder was opened\n  condition: \
         evt.type in (open, openat, openat2) and fd.name startswith {dir}/\n  output: \
         \"{name} (file=%fd.name process=%proc.name)\"\n  priority: WARNING\n  tags: [test]\n",
        dir = dir.display()
    )
}

/// Opens `count` new files below `dir`, in order. Each is written beside the folder
/// and moved in, so that the one open the rule sees is the read.
fn open_markers(dir: &Path, prefix: &str, count: usize) {
    let staging = dir.with_extension("staging");
    fs::create_dir_all(&staging).unwrap();
    for n in 0..count {
        let name = format!("{prefix}-{n:04}");
        fs::write(staging.join(&name), b"x").unwrap();
        fs::rename(staging.join(&name), dir.join(&name)).unwrap();
        drop(fs::File::open(dir.join(&name)).unwrap());
    }
}

fn alerts_of(monitor: &Monitor, rule: &str) -> Vec<Value> {
    monitor
        .events()
        .into_iter()
        .filter(|a| a["rule"] == rule)
        .collect()
}

fn wait_alerts(monitor: &Monitor, rule: &str, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} alerts of {rule}"),
        Duration::from_secs(20),
        || alerts_of(monitor, rule).len() >= n,
    );
    alerts_of(monitor, rule)
}

/// GET over a plain TCP connection: (status code, body).
fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to the endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Every sample of a scrape, parsed by an independent Prometheus text parser, keyed
/// by `name{label="value",...}` with labels sorted.
fn scrape(address: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = get(address, "/metrics");
    assert_eq!(status, 200, "{body}");
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics is Prometheus text format");
    assert!(
        parsed.samples.len() > 20,
        "too few samples: {}",
        parsed.samples.len()
    );
    let mut out = HashMap::new();
    for sample in parsed.samples {
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            other => panic!("unexpected sample type {other:?}"),
        };
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        labels.sort();
        let key = if labels.is_empty() {
            sample.metric.clone()
        } else {
            format!("{}{{{}}}", sample.metric, labels.join(","))
        };
        out.insert(key, value);
    }
    out
}

fn metric(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key}; have: {:?}", samples.keys()))
}

fn sum_of(samples: &HashMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// After a clean stop, every record the kernel sent reached the agent.
fn assert_nothing_lost_in_userspace(totals: &Value) {
    for (kind, t) in totals["kinds"].as_object().unwrap() {
        assert_eq!(t["sent"], t["received"], "{kind}: {totals}");
    }
}

struct Setup {
    dir: PathBuf,
    rules: PathBuf,
}

fn setup(name: &str) -> Setup {
    let dir = temp_dir(&format!("ops-{name}"));
    let rules = dir.join("rules");
    fs::create_dir_all(&rules).unwrap();
    Setup { dir, rules }
}

#[test]
fn metrics_and_health_move_with_events_and_matches() {
    let s = setup("metrics");
    let markers = s.dir.join("markers");
    fs::create_dir_all(&markers).unwrap();
    fs::write(
        s.rules.join("marker.yaml"),
        marker_rule("Marker opened", &markers),
    )
    .unwrap();
    let monitor = Monitor::run(&["--rules", s.rules.to_str().unwrap(), "--no-docker"]);
    let endpoint = monitor.endpoint();
    assert!(endpoint.ip().is_loopback());

    let (status, body) = get(endpoint, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready: 1 rules active from "), "{body}");
    assert!(body.contains(" execve=syscall tracepoints "), "{body}");
    let (status, body) = get(endpoint, "/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok: the pipeline turned "), "{body}");
    assert_eq!(get(endpoint, "/nothing").0, 404);

    let before = scrape(endpoint);
    assert_eq!(metric(&before, "monitor_rules_active"), 1.0);
    assert!(metric(&before, "monitor_process_table_size") > 10.0);
    open_markers(&markers, "m", 7);
    let alerts = wait_alerts(&monitor, "Marker opened", 7);
    assert_eq!(alerts.len(), 7);
    // Metrics follow the pipeline once a second.
    thread::sleep(Duration::from_millis(2500));
    let after = scrape(endpoint);
    assert_eq!(
        metric(
            &after,
            "monitor_rule_matches_total{priority=\"Warning\",rule=\"Marker opened\"}"
        ),
        7.0
    );
    let opens = "monitor_events_total{kind=\"open\"}";
    assert!(
        metric(&after, opens) >= metric(&before, opens) + 7.0,
        "{} -> {}",
        metric(&before, opens),
        metric(&after, opens)
    );
    assert!(
        metric(
            &after,
            "monitor_alerts_total{outcome=\"delivered\",sink=\"stdout\"}"
        ) >= 7.0
    );
    assert_eq!(
        metric(&after, "monitor_alert_queue_depth{sink=\"stdout\"}"),
        0.0
    );
    assert_eq!(sum_of(&after, "monitor_kernel_drops_total"), 0.0);
    // Every cause is a series from the start; none happened here.
    for cause in ["scratch_busy", "read_failed", "pending_full", "missed_hook"] {
        let series = format!("monitor_kernel_faults_total{{cause=\"{cause}\",kind=\"open\"}}");
        assert_eq!(metric(&after, &series), 0.0, "{series}");
    }
    assert_eq!(
        metric(&after, "monitor_kernel_events_total{kind=\"exec\"}"),
        metric(&after, "monitor_events_total{kind=\"exec\"}"),
    );

    // SIGTERM: detach, drain, flush, exit 0 (asserted by `finish`).
    let finished = monitor.finish(libc::SIGTERM);
    assert_nothing_lost_in_userspace(&finished.totals);
    let stats = alerts_summary(&finished);
    assert_eq!(stats["sinks"][0]["delivered"], stats["submitted"]);
    assert!(
        TcpStream::connect(endpoint).is_err(),
        "the endpoint is gone with the daemon"
    );
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn kernel_drops_show_in_metrics_and_raise_an_internal_alert() {
    let _serial = serial();
    let s = setup("drops");
    fs::write(
        s.rules.join("marker.yaml"),
        marker_rule("Marker opened", &s.dir.join("none")),
    )
    .unwrap();
    // One page of ring buffer: an open storm must overflow it (unfiltered: the rule
    // lets the kernel drop opens of /dev/null before they reach the buffer).
    let monitor = Monitor::run(&[
        "--rules",
        s.rules.to_str().unwrap(),
        "--no-docker",
        "--no-kernel-filter",
        "--ring-buffer-bytes",
        "4096",
        "--stats-interval",
        "1",
    ]);
    let endpoint = monitor.endpoint();
    for _ in 0..200_000 {
        drop(fs::File::open("/dev/null").unwrap());
    }
    let alert = wait_alerts(&monitor, "monitor: kernel events dropped", 1)[0].clone();
    assert_eq!(alert["source"], "internal");
    assert_eq!(alert["priority"], "Warning");
    assert!(alert["output_fields"]["monitor.dropped"].as_u64().unwrap() > 0);
    thread::sleep(Duration::from_millis(1500));
    let samples = scrape(endpoint);
    assert!(sum_of(&samples, "monitor_kernel_drops_total") > 0.0);
    assert!(
        metric(
            &samples,
            "monitor_internal_alerts_total{kind=\"monitor: kernel events dropped\"}"
        ) >= 1.0
    );
    let finished = monitor.finish(libc::SIGTERM);
    assert_nothing_lost_in_userspace(&finished.totals);
    let dropped: u64 = finished.totals["kinds"]
        .as_object()
        .unwrap()
        .values()
        .map(|k| k["dropped"].as_u64().unwrap())
        .sum();
    assert!(dropped > 0, "{}", finished.totals);
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn sighup_keeps_the_running_rules_when_the_new_ones_are_broken() {
    let s = setup("sighup");
    let markers = s.dir.join("markers");
    fs::create_dir_all(&markers).unwrap();
    let rule_file = s.rules.join("site.yaml");
    fs::write(&rule_file, marker_rule("First rule", &markers)).unwrap();
    let monitor = Monitor::run(&["--rules", s.rules.to_str().unwrap(), "--no-docker"]);
    let endpoint = monitor.endpoint();
    open_markers(&markers, "a", 1);
    wait_alerts(&monitor, "First rule", 1);

    // Broken: an unbalanced parenthesis in the condition (line 3).
    let broken = marker_rule("Second rule", &markers).replace("evt.type in (", "evt.type in ((");
    fs::write(&rule_file, &broken).unwrap();
    monitor.signal(libc::SIGHUP);
    let failure = wait_alerts(&monitor, "monitor: reload failed", 1)[0].clone();
    assert_eq!(failure["priority"], "Error");
    let error = failure["output_fields"]["monitor.error"].as_str().unwrap();
    let location = format!("{}:3:27:", rule_file.display());
    assert!(error.contains(&location), "names file:line:col: {error}");
    assert!(error.contains("Second rule"), "{error}");
    let log = monitor.wait_for_log("reload failed, the running rules and settings stay");
    assert!(log.contains(&location), "{log}");
    // The old rule still fires.
    open_markers(&markers, "b", 1);
    wait_alerts(&monitor, "First rule", 2);
    let (status, body) = get(endpoint, "/readyz");
    assert_eq!(status, 200, "still ready with the running rules: {body}");

    // Fixed: the new rule replaces the old one without a restart.
    fs::write(&rule_file, marker_rule("Second rule", &markers)).unwrap();
    monitor.signal(libc::SIGHUP);
    monitor.wait_for_log("reloaded: 1 rules active");
    open_markers(&markers, "c", 1);
    let second = wait_alerts(&monitor, "Second rule", 1);
    assert!(
        second[0]["output"].as_str().unwrap().contains("/c-0000"),
        "{}",
        second[0]
    );
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(alerts_of(&monitor, "First rule").len(), 2);
    let samples = scrape(endpoint);
    assert_eq!(
        metric(&samples, "monitor_reloads_total{result=\"failed\"}"),
        1.0
    );
    assert_eq!(
        metric(&samples, "monitor_reloads_total{result=\"ok\"}"),
        1.0
    );
    let finished = monitor.finish(libc::SIGTERM);
    // No kernel events lost across the reloads.
    assert_nothing_lost_in_userspace(&finished.totals);
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn watched_rule_files_reload_without_a_signal() {
    let s = setup("watch");
    let markers = s.dir.join("markers");
    fs::create_dir_all(&markers).unwrap();
    fs::write(s.rules.join("a.yaml"), marker_rule("Rule A", &markers)).unwrap();
    let monitor = Monitor::run(&[
        "--rules",
        s.rules.to_str().unwrap(),
        "--no-docker",
        "--watch",
    ]);
    // A new file in a watched folder is picked up.
    fs::write(
        s.rules.join("b.yaml"),
        marker_rule("Rule B", &markers.join("b")),
    )
    .unwrap();
    monitor.wait_for_log("reloaded: 2 rules active");
    fs::create_dir_all(markers.join("b")).unwrap();
    open_markers(&markers.join("b"), "x", 1);
    // Opens below markers/b match both rules.
    wait_alerts(&monitor, "Rule B", 1);
    wait_alerts(&monitor, "Rule A", 1);
    monitor.finish(libc::SIGTERM);
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn hostile_argv_is_one_line_in_every_format() {
    let s = setup("hostile");
    let marker = format!("hostile-marker-{}", std::process::id());
    fs::write(
        s.rules.join("hostile.yaml"),
        format!(
            "- rule: Hostile argv\n  desc: test\n  condition: evt.type in (execve, execveat) \
             and proc.cmdline contains {marker}\n  output: \"Hostile argv (cmdline=%proc.cmdline)\"\n  \
             priority: CRITICAL\n  tags: [test]\n"
        ),
    )
    .unwrap();
    let rsyslog = Rsyslog::start("ops-hostile-syslog");
    let mut receiver = Receiver::new();
    receiver.start();
    let alert_file = s.dir.join("alerts.json");
    let monitor = Monitor::run_text(&[
        "--rules",
        s.rules.to_str().unwrap(),
        "--no-docker",
        "--stdout-format",
        "text",
        "--alert-file",
        alert_file.to_str().unwrap(),
        "--syslog",
        &format!("udp://127.0.0.1:{}", rsyslog.udp),
        "--http-url",
        &format!("http://127.0.0.1:{}/", receiver.port),
    ]);
    // A newline to forge a second record, and a terminal escape to recolor it.
    let hostile = format!("{marker}\nFAKE rule=forged priority=Emergency\x1b[31m red");
    let status = Command::new("/bin/sh")
        .args(["-c", "exit 0", "sh", &hostile])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the alert on stdout", Duration::from_secs(20), || {
        monitor.lines().iter().any(|l| l.contains(&marker))
    });
    wait_until("the alert over HTTP", Duration::from_secs(20), || {
        receiver.count() >= 1
    });
    let syslog = rsyslog.wait_lines(1);
    wait_until("the alert in the file", Duration::from_secs(20), || {
        fs::read_to_string(&alert_file).is_ok_and(|t| t.contains(&marker))
    });

    let check_one_line = |format: &str, lines: &[String]| {
        let with_marker: Vec<&String> = lines.iter().filter(|l| l.contains(&marker)).collect();
        assert_eq!(with_marker.len(), 1, "{format}: {lines:#?}");
        assert!(
            !lines.iter().any(|l| l.starts_with("FAKE")),
            "{format}: a forged line: {lines:#?}"
        );
        assert!(
            !with_marker[0].contains('\x1b'),
            "{format}: a raw escape: {}",
            with_marker[0]
        );
        with_marker[0].clone()
    };
    let text = check_one_line("text", &monitor.lines());
    assert!(text.contains(&format!("{marker}\\nFAKE")), "{text}");
    assert!(text.contains("\\x1b[31m"), "{text}");
    let syslog_line = check_one_line("syslog", &syslog);
    assert!(
        syslog_line.starts_with("2|16|monitor|"),
        "severity 2 (critical), local0: {syslog_line}"
    );
    assert!(
        syslog_line.contains(&format!("{marker}\\nFAKE")),
        "{syslog_line}"
    );
    let file_lines: Vec<String> = fs::read_to_string(&alert_file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let json_line = check_one_line("file", &file_lines);
    let alert: Value = serde_json::from_str(&json_line).expect("valid JSON");
    // JSON keeps the exact argv: its string escapes make it safe.
    let cmdline = alert["output_fields"]["proc.cmdline"].as_str().unwrap();
    assert!(cmdline.ends_with(&hostile), "{cmdline:?}");
    assert_eq!(alert["priority"], "Critical");
    let posted = receiver.alerts();
    let over_http: Vec<&Value> = posted
        .iter()
        .filter(|a| a["rule"] == "Hostile argv")
        .collect();
    assert_eq!(over_http.len(), 1);
    assert_eq!(over_http[0]["output_fields"]["proc.cmdline"], cmdline);
    monitor.finish(libc::SIGTERM);
    let _ = fs::remove_dir_all(&s.dir);
}

/// The `monitor: alerts {...}` line the daemon prints at exit.
fn alerts_summary(finished: &support::Finished) -> Value {
    let line = finished
        .stderr
        .iter()
        .find_map(|l| l.strip_prefix("monitor: alerts "))
        .expect("the alerts summary line");
    serde_json::from_str(line).unwrap()
}

/// The HTTP sink's counters from the alerts summary line.
fn http_sink_summary(finished: &support::Finished) -> Value {
    alerts_summary(finished)["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "http")
        .expect("an http sink")
        .clone()
}

#[test]
fn http_outage_across_a_daemon_restart_loses_nothing() {
    let s = setup("restart");
    let markers = s.dir.join("markers");
    fs::create_dir_all(&markers).unwrap();
    fs::write(
        s.rules.join("marker.yaml"),
        marker_rule("Numbered", &markers),
    )
    .unwrap();
    let spool = s.dir.join("spool");
    let mut receiver = Receiver::new();
    receiver.start();
    let url = format!("http://127.0.0.1:{}/alerts", receiver.port);
    let args = [
        "--rules",
        s.rules.to_str().unwrap(),
        "--no-docker",
        "--http-url",
        &url,
        "--spool-dir",
        spool.to_str().unwrap(),
    ];
    let numbered = |receiver: &Receiver| -> Vec<String> {
        receiver
            .alerts()
            .iter()
            .filter(|a| a["rule"] == "Numbered")
            .map(|a| {
                let file = a["output_fields"]["fd.name"].as_str().unwrap();
                file.rsplit('/').next().unwrap().to_string()
            })
            .collect()
    };

    let first = Monitor::run(&args);
    open_markers(&markers, "n", 200);
    wait_until("200 delivered", Duration::from_secs(30), || {
        numbered(&receiver).len() >= 200
    });
    receiver.stop();
    open_markers(&markers, "o", 800);
    wait_alerts(&first, "Numbered", 1000);
    // The daemon says so itself, on its other sinks, within a few seconds.
    let failing = wait_alerts(&first, "monitor: alert sink failing", 1)[0].clone();
    assert_eq!(failing["output_fields"]["monitor.sink"], "http");
    assert_eq!(failing["priority"], "Error");
    // Stopped while the receiver is down: what was not delivered stays in the spool.
    let stopped = first.finish(libc::SIGTERM);
    let http = http_sink_summary(&stopped);
    assert_eq!(http["dropped"], 0, "{http}");
    assert!(http["spool_pending"].as_u64().unwrap() >= 800, "{http}");
    assert_eq!(numbered(&receiver).len(), 200);

    receiver.start();
    let second = Monitor::run(&args);
    wait_until(
        "all 1000 after the restart",
        Duration::from_secs(60),
        || numbered(&receiver).len() >= 1000,
    );
    thread::sleep(Duration::from_millis(500));
    let got = numbered(&receiver);
    let expected: Vec<String> = (0..200)
        .map(|n| format!("n-{n:04}"))
        .chain((0..800).map(|n| format!("o-{n:04}")))
        .collect();
    assert_eq!(got, expected, "all 1000, in order, none twice");
    let restarted = second.finish(libc::SIGTERM);
    let http = http_sink_summary(&restarted);
    assert_eq!(http["spool_pending"], 0, "{http}");
    assert_eq!(http["dropped"], 0, "{http}");
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn config_check_names_every_problem_with_its_position() {
    let s = setup("config-check");
    let config = s.dir.join("monitor.yaml");
    fs::write(
        &config,
        "rules:\n  paths: [/nonexistent-rules]\nsensor:\n  ring_buffer_bytes: 1000\n  \
         colour: blue\n",
    )
    .unwrap();
    let check = |extra_env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_monitor"))
            .args(["config", "check", "--config", config.to_str().unwrap()])
            .envs(extra_env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "{}:5:3: sensor.colour: unknown field `colour`",
            config.display()
        )),
        "{stderr}"
    );

    fs::write(&config, "server:\n  listen: 127.0.0.1:9999\n").unwrap();
    let (code, _, stderr) = check(&[("MONITOR_SENSOR_RING_BUFFER_BYTES", "1000")]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(
            "environment variable MONITOR_SENSOR_RING_BUFFER_BYTES: sensor.ring_buffer_bytes: \
             1000 is not a power of two"
        ),
        "{stderr}"
    );

    let rules = s.rules.join("ok.yaml");
    fs::write(&rules, marker_rule("Fine", &s.dir)).unwrap();
    fs::write(
        &config,
        format!("rules:\n  paths: [{}]\n", s.rules.display()),
    )
    .unwrap();
    let (code, stdout, stderr) = check(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!(
            "ok: settings from {}; 1 rules loaded from {}",
            config.display(),
            s.rules.display()
        )
    );
    // A rule error is found by the check too, at its place.
    fs::write(
        &rules,
        marker_rule("Broken", &s.dir).replace("startswith", "startswiht"),
    )
    .unwrap();
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("{}:3:", rules.display())),
        "{stderr}"
    );

    let show = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["config", "show", "--config", config.to_str().unwrap()])
        .env(
            "MONITOR_OUTPUTS_HTTP_HEADERS",
            "Authorization: Bearer s3cret",
        )
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains(&format!(
            "rules.paths = [\"{}\"]    # {}:2:10",
            s.rules.display(),
            config.display()
        )),
        "{shown}"
    );
    assert!(
        shown.contains("server.listen = \"127.0.0.1:9376\"    # default"),
        "{shown}"
    );
    assert!(
        shown.contains("outputs.http.headers = [Authorization] (values hidden)    # environment variable MONITOR_OUTPUTS_HTTP_HEADERS"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"));
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn an_unreachable_container_runtime_raises_an_internal_alert() {
    let s = setup("runtime");
    fs::write(s.rules.join("marker.yaml"), marker_rule("Unused", &s.dir)).unwrap();
    let socket = s.dir.join("no-docker.sock");
    let monitor = Monitor::run(&[
        "--rules",
        s.rules.to_str().unwrap(),
        "--docker-socket",
        socket.to_str().unwrap(),
        "--stats-interval",
        "1",
    ]);
    let alert = wait_alerts(&monitor, "monitor: container runtime unreachable", 1)[0].clone();
    assert_eq!(alert["source"], "internal");
    assert_eq!(alert["priority"], "Warning");
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        metric(&scrape(monitor.endpoint()), "monitor_docker_api_up"),
        0.0
    );
    monitor.finish(libc::SIGTERM);
    let _ = fs::remove_dir_all(&s.dir);
}
